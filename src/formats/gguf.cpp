// GGUF reader and writer. See gguf.hpp for the layout and the guarantees.
#include "formats/gguf.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <tuple>

#include "core/error.hpp"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

namespace llmkit::gguf {

using core::fail;

namespace {

constexpr uint32_t k_default_alignment = 32;
constexpr uint32_t k_max_dims = 4;            // GGML_MAX_DIMS
constexpr uint64_t k_max_key_bytes = 65535;   // the GGUF spec's limit on keys
constexpr int k_max_array_depth = 16;         // nested arrays; deeper is hostile, not useful
constexpr uint64_t k_min_kv_bytes = 8 + 1 + 4 + 1;          // key length, 1-byte key, type, u8 value
constexpr uint64_t k_min_tensor_info_bytes = 8 + 1 + 4 + 4 + 8;  // name length, 1-byte name, n_dims, type, offset

// Every ggml type GGUF files can hold (ids of removed types are absent).
// Q8_1 is 36 bytes as ggml lays it out (f16 d, f16 s, 32 x i8).
constexpr ggml_type_size k_ggml_types[] = {
    {0, "f32", 1, 4},          {1, "f16", 1, 2},          {2, "q4_0", 32, 18},      {3, "q4_1", 32, 20},
    {6, "q5_0", 32, 22},       {7, "q5_1", 32, 24},       {8, "q8_0", 32, 34},      {9, "q8_1", 32, 36},
    {10, "q2_K", 256, 84},     {11, "q3_K", 256, 110},    {12, "q4_K", 256, 144},   {13, "q5_K", 256, 176},
    {14, "q6_K", 256, 210},    {15, "q8_K", 256, 292},    {16, "iq2_xxs", 256, 66}, {17, "iq2_xs", 256, 74},
    {18, "iq3_xxs", 256, 98},  {19, "iq1_s", 256, 50},    {20, "iq4_nl", 32, 18},   {21, "iq3_s", 256, 110},
    {22, "iq2_s", 256, 82},    {23, "iq4_xs", 256, 136},  {24, "i8", 1, 1},         {25, "i16", 1, 2},
    {26, "i32", 1, 4},         {27, "i64", 1, 8},         {28, "f64", 1, 8},        {29, "iq1_m", 256, 56},
    {30, "bf16", 1, 2},        {34, "tq1_0", 256, 54},    {35, "tq2_0", 256, 66},   {39, "mxfp4", 32, 17},
    {40, "nvfp4", 64, 36},     {41, "q1_0", 128, 18},
};

bool is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

// Rounds up to a multiple of a power of two; false on overflow.
bool align_up(uint64_t x, uint64_t alignment, uint64_t *out) {
    if (x > std::numeric_limits<uint64_t>::max() - (alignment - 1)) return false;
    *out = (x + alignment - 1) & ~(alignment - 1);
    return true;
}

// Element count and byte size of a tensor; an empty string, or what is wrong.
std::string tensor_size(const ggml_type_size &t, const std::vector<int64_t> &dims, int64_t *elements,
                        uint64_t *nbytes) {
    int64_t n = 1;
    for (int64_t d : dims) {
        if (d < 0) return "a negative dimension";
        if (__builtin_mul_overflow(n, d, &n)) return "an element count that overflows int64";
    }
    const int64_t row = dims.empty() ? 1 : dims[0];
    if (row % t.block_elems != 0)
        return "a row length " + std::to_string(row) + " that is not a multiple of " + t.name + "'s block of " +
               std::to_string(t.block_elems);
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(uint64_t(n / t.block_elems), uint64_t(t.block_bytes), &bytes))
        return "a byte size that overflows uint64";
    *elements = n;
    *nbytes = bytes;
    return {};
}

std::string dims_string(const std::vector<int64_t> &dims) {
    std::string s = "[";
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "]";
}

// Reads little-endian fields with bounds checks; errors name the file and offset.
class cursor {
public:
    cursor(const uint8_t *base, size_t size, const std::string &name) : base_(base), size_(size), name_(name) {}

    size_t pos() const { return pos_; }
    size_t left() const { return size_ - pos_; }
    const uint8_t *here() const { return base_ + pos_; }

    template <typename... Args>
    [[noreturn]] void fail_at(uint64_t offset, const Args &...parts) const {
        fail(LLMKIT_ERROR_FORMAT, name_, ": offset ", offset, ": ", parts...);
    }

    void need(uint64_t n, const char *what) const {
        if (n > left())
            fail_at(pos_, "truncated: ", what, " needs ", n, " bytes but the file has ", left(), " left");
    }
    void skip(uint64_t n, const char *what) {
        need(n, what);
        pos_ += size_t(n);
    }

    template <typename T>
    T read(const char *what) {
        need(sizeof(T), what);
        T x;
        std::memcpy(&x, base_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return x;
    }

    std::string_view read_string(const char *what, uint64_t max_len = std::numeric_limits<uint64_t>::max()) {
        const size_t at = pos_;
        const uint64_t len = read<uint64_t>(what);
        if (len > left())
            fail_at(at, what, " length ", len, " runs past the end of the file (", left(), " bytes left)");
        if (len > max_len) fail_at(at, what, " length ", len, " exceeds the limit of ", max_len, " bytes");
        std::string_view s(reinterpret_cast<const char *>(base_ + pos_), size_t(len));
        pos_ += size_t(len);
        return s;
    }

private:
    const uint8_t *base_;
    size_t size_;
    size_t pos_ = 0;
    const std::string &name_;
};

value_type read_type(cursor &c, const char *what) {
    const size_t at = c.pos();
    const uint32_t t = c.read<uint32_t>(what);
    if (t > uint32_t(value_type::f64)) c.fail_at(at, "unknown ", what, " ", t, " (GGUF defines 0..12)");
    return value_type(t);
}

value read_value(cursor &c, value_type type, int depth) {
    value v;
    v.type = type;
    const size_t at = c.pos();
    switch (type) {
        case value_type::u8: v.u = c.read<uint8_t>("uint8 value"); v.i = int64_t(v.u); break;
        case value_type::i8: v.i = c.read<int8_t>("int8 value"); break;
        case value_type::u16: v.u = c.read<uint16_t>("uint16 value"); v.i = int64_t(v.u); break;
        case value_type::i16: v.i = c.read<int16_t>("int16 value"); break;
        case value_type::u32: v.u = c.read<uint32_t>("uint32 value"); v.i = int64_t(v.u); break;
        case value_type::i32: v.i = c.read<int32_t>("int32 value"); break;
        case value_type::u64: v.u = c.read<uint64_t>("uint64 value"); v.i = int64_t(v.u); break;
        case value_type::i64: v.i = c.read<int64_t>("int64 value"); break;
        case value_type::f32: v.f = c.read<float>("float32 value"); break;
        case value_type::f64: v.f = c.read<double>("float64 value"); break;
        case value_type::boolean: {
            const uint8_t b = c.read<uint8_t>("bool value");
            if (b > 1) c.fail_at(at, "bool value ", int(b), " is neither 0 nor 1");
            v.u = b;
            v.i = b;
            break;
        }
        case value_type::string: v.str = c.read_string("string value"); break;
        case value_type::array: {
            if (depth >= k_max_array_depth) c.fail_at(at, "arrays nested deeper than ", k_max_array_depth, " levels");
            v.elem_type = read_type(c, "array element type");
            const size_t count_at = c.pos();
            v.count = c.read<uint64_t>("array count");
            const size_t elem = value_type_size(v.elem_type);
            if (elem) {
                if (v.count > c.left() / elem)
                    c.fail_at(count_at, "array of ", v.count, " ", value_type_name(v.elem_type),
                              " runs past the end of the file (", c.left(), " bytes left)");
                v.raw = c.here();
                if (v.elem_type == value_type::boolean)
                    for (uint64_t k = 0; k < v.count; ++k)
                        if (v.raw[k] > 1) c.fail_at(c.pos() + k, "bool array element ", k, " is ", int(v.raw[k]));
                c.skip(v.count * elem, "array elements");
            } else if (v.elem_type == value_type::string) {
                if (v.count > c.left() / 8)
                    c.fail_at(count_at, "array of ", v.count, " strings cannot fit in the ", c.left(),
                              " bytes left (8 bytes each at least)");
                v.strings.reserve(size_t(v.count));
                for (uint64_t k = 0; k < v.count; ++k) v.strings.push_back(c.read_string("array string"));
            } else {  // nested arrays: each at least a type and a count
                if (v.count > c.left() / 12)
                    c.fail_at(count_at, "array of ", v.count, " arrays cannot fit in the ", c.left(),
                              " bytes left (12 bytes each at least)");
                v.items.reserve(size_t(v.count));
                for (uint64_t k = 0; k < v.count; ++k) v.items.push_back(read_value(c, value_type::array, depth + 1));
            }
            break;
        }
    }
    return v;
}

template <typename T>
T load(const uint8_t *p) {
    T x;
    std::memcpy(&x, p, sizeof(T));
    return x;
}

}  // namespace

// ---------------------------------------------------------------------------
// Types and values

const char *value_type_name(value_type t) noexcept {
    switch (t) {
        case value_type::u8: return "uint8";
        case value_type::i8: return "int8";
        case value_type::u16: return "uint16";
        case value_type::i16: return "int16";
        case value_type::u32: return "uint32";
        case value_type::i32: return "int32";
        case value_type::f32: return "float32";
        case value_type::boolean: return "bool";
        case value_type::string: return "string";
        case value_type::array: return "array";
        case value_type::u64: return "uint64";
        case value_type::i64: return "int64";
        case value_type::f64: return "float64";
    }
    return "unknown";
}

size_t value_type_size(value_type t) noexcept {
    switch (t) {
        case value_type::u8:
        case value_type::i8:
        case value_type::boolean: return 1;
        case value_type::u16:
        case value_type::i16: return 2;
        case value_type::u32:
        case value_type::i32:
        case value_type::f32: return 4;
        case value_type::u64:
        case value_type::i64:
        case value_type::f64: return 8;
        case value_type::string:
        case value_type::array: return 0;
    }
    return 0;
}

const ggml_type_size *find_ggml_type(int32_t id) noexcept {
    for (const auto &t : k_ggml_types)
        if (t.id == id) return &t;
    return nullptr;
}

bool value::is_integer() const noexcept {
    switch (type) {
        case value_type::u8: case value_type::i8: case value_type::u16: case value_type::i16:
        case value_type::u32: case value_type::i32: case value_type::u64: case value_type::i64: return true;
        default: return false;
    }
}

bool value::is_float() const noexcept { return type == value_type::f32 || type == value_type::f64; }

int64_t value::as_int() const {
    if (!is_integer()) fail(LLMKIT_ERROR_FORMAT, "a ", value_type_name(type), " value is not an integer");
    if (type == value_type::u64 && u > uint64_t(std::numeric_limits<int64_t>::max()))
        fail(LLMKIT_ERROR_FORMAT, "uint64 value ", u, " does not fit int64");
    return i;
}

double value::as_float() const {
    if (is_float()) return f;
    if (type == value_type::u64) return double(u);
    if (is_integer()) return double(i);
    fail(LLMKIT_ERROR_FORMAT, "a ", value_type_name(type), " value is not a number");
}

bool value::as_bool() const {
    if (type != value_type::boolean) fail(LLMKIT_ERROR_FORMAT, "a ", value_type_name(type), " value is not a bool");
    return u != 0;
}

std::string_view value::as_string() const {
    if (type != value_type::string) fail(LLMKIT_ERROR_FORMAT, "a ", value_type_name(type), " value is not a string");
    return str;
}

std::vector<int64_t> value::int_array() const {
    if (type != value_type::array) fail(LLMKIT_ERROR_FORMAT, "a ", value_type_name(type), " value is not an array");
    std::vector<int64_t> out(static_cast<size_t>(count));
    for (uint64_t k = 0; k < count; ++k) {
        const uint8_t *p = raw + k * value_type_size(elem_type);
        switch (elem_type) {
            case value_type::u8: out[k] = load<uint8_t>(p); break;
            case value_type::i8: out[k] = load<int8_t>(p); break;
            case value_type::u16: out[k] = load<uint16_t>(p); break;
            case value_type::i16: out[k] = load<int16_t>(p); break;
            case value_type::u32: out[k] = load<uint32_t>(p); break;
            case value_type::i32: out[k] = load<int32_t>(p); break;
            case value_type::i64: out[k] = load<int64_t>(p); break;
            case value_type::u64: {
                const uint64_t x = load<uint64_t>(p);
                if (x > uint64_t(std::numeric_limits<int64_t>::max()))
                    fail(LLMKIT_ERROR_FORMAT, "uint64 array element ", k, " = ", x, " does not fit int64");
                out[k] = int64_t(x);
                break;
            }
            default:
                fail(LLMKIT_ERROR_FORMAT, "an array of ", value_type_name(elem_type), " is not an integer array");
        }
    }
    return out;
}

std::vector<float> value::float_array() const {
    if (type != value_type::array) fail(LLMKIT_ERROR_FORMAT, "a ", value_type_name(type), " value is not an array");
    if (elem_type == value_type::f32) {
        std::vector<float> out(static_cast<size_t>(count));
        if (count) std::memcpy(out.data(), raw, size_t(count) * 4);
        return out;
    }
    if (elem_type == value_type::f64) {
        std::vector<float> out(static_cast<size_t>(count));
        for (uint64_t k = 0; k < count; ++k) out[k] = float(load<double>(raw + k * 8));
        return out;
    }
    fail(LLMKIT_ERROR_FORMAT, "an array of ", value_type_name(elem_type), " is not a float array");
}

const std::vector<std::string_view> &value::string_array() const {
    if (type != value_type::array || elem_type != value_type::string)
        fail(LLMKIT_ERROR_FORMAT, "a ", value_type_name(type == value_type::array ? elem_type : type),
             type == value_type::array ? " array" : " value", " is not a string array");
    return strings;
}

// ---------------------------------------------------------------------------
// Reading

// The bytes behind a file: a read-only mapping, or a buffer.
struct file::storage {
    void *map = nullptr;
    size_t map_size = 0;
    std::vector<uint8_t> buffer;
    ~storage() {
        if (map) munmap(map, map_size);
    }
};

file file::open(const std::string &path, const open_options &options) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(LLMKIT_ERROR_IO, path, ": cannot open: ", std::strerror(errno));
    struct fd_closer {
        int fd;
        ~fd_closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (fstat(fd, &st) != 0) fail(LLMKIT_ERROR_IO, path, ": cannot stat: ", std::strerror(errno));

    auto s = std::make_shared<storage>();
    if (S_ISREG(st.st_mode) && !options.no_mmap) {
        if (st.st_size == 0) fail(LLMKIT_ERROR_FORMAT, path, ": offset 0: the file is empty");
        void *p = mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) fail(LLMKIT_ERROR_IO, path, ": cannot map: ", std::strerror(errno));
        s->map = p;
        s->map_size = size_t(st.st_size);
    } else {  // pipes and special files: read what there is
        if (S_ISDIR(st.st_mode)) fail(LLMKIT_ERROR_IO, path, ": is a directory");
        uint8_t chunk[1 << 16];
        for (;;) {
            const ssize_t n = ::read(fd, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail(LLMKIT_ERROR_IO, path, ": cannot read: ", std::strerror(errno));
            if (n == 0) break;
            s->buffer.insert(s->buffer.end(), chunk, chunk + n);
        }
    }
    file f;
    f.path_ = path;
    f.base_ = s->map ? static_cast<const uint8_t *>(s->map) : s->buffer.data();
    f.size_ = s->map ? s->map_size : s->buffer.size();
    f.storage_ = std::move(s);
    f.parse_all(options);
    return f;
}

file file::parse(const void *data, size_t size, const std::string &name, const open_options &options, bool copy) {
    if (!data && size) fail(LLMKIT_ERROR_NULL_POINTER, name, ": data is NULL");
    file f;
    f.path_ = name;
    if (copy) {
        auto s = std::make_shared<storage>();
        s->buffer.assign(static_cast<const uint8_t *>(data), static_cast<const uint8_t *>(data) + size);
        f.base_ = s->buffer.data();
        f.storage_ = std::move(s);
    } else {
        f.base_ = static_cast<const uint8_t *>(data);
    }
    f.size_ = size;
    f.parse_all(options);
    return f;
}

void file::parse_all(const open_options &options) {
    cursor c(base_, size_, path_);
    if (size_ < 4 || std::memcmp(base_, "GGUF", 4) != 0) {
        if (size_ < 4) c.fail_at(0, "truncated: ", size_, " bytes, not even the 4-byte magic \"GGUF\"");
        c.fail_at(0, "not a GGUF file (the magic is not \"GGUF\")");
    }
    c.skip(4, "magic");
    version_ = c.read<uint32_t>("version");
    if (version_ == 1)
        c.fail_at(4, "GGUF version 1 is not supported (it used 32-bit counts); convert the file to version 3");
    if (version_ != 2 && version_ != 3) {
        if ((version_ & 0xffff) == 0 && (__builtin_bswap32(version_) == 2 || __builtin_bswap32(version_) == 3))
            c.fail_at(4, "a big-endian GGUF file (version ", __builtin_bswap32(version_),
                      "); only little-endian files are supported");
        c.fail_at(4, "unsupported GGUF version ", version_, " (supported: 2 and 3)");
    }
    const uint64_t tensor_count = c.read<uint64_t>("tensor count");
    const uint64_t kv_count = c.read<uint64_t>("metadata count");
    if (kv_count > c.left() / k_min_kv_bytes)
        c.fail_at(16, "metadata count ", kv_count, " cannot fit in the ", c.left(), " bytes left");
    if (tensor_count > c.left() / k_min_tensor_info_bytes)
        c.fail_at(8, "tensor count ", tensor_count, " cannot fit in the ", c.left(), " bytes left");

    kvs_.reserve(size_t(kv_count));
    key_index_.reserve(size_t(kv_count));
    for (uint64_t k = 0; k < kv_count; ++k) {
        key_value kv;
        kv.offset = c.pos();
        kv.key = c.read_string("key", k_max_key_bytes);
        if (kv.key.empty()) c.fail_at(kv.offset, "metadata entry ", k, " has an empty key");
        const value_type t = read_type(c, "value type");
        kv.val = read_value(c, t, 0);
        const auto seen = key_index_.find(kv.key);
        if (seen != key_index_.end()) {
            if (options.allow_duplicate_keys) continue;  // the first occurrence wins
            c.fail_at(kv.offset, "duplicate key \"", kv.key, "\" (first at offset ", kvs_[seen->second].offset,
                      "); open with allow_duplicate_keys to keep the first value");
        }
        key_index_.emplace(kv.key, kvs_.size());
        kvs_.push_back(std::move(kv));
    }

    alignment_ = k_default_alignment;
    if (const auto it = key_index_.find("general.alignment"); it != key_index_.end()) {
        const key_value &kv = kvs_[it->second];
        if (kv.val.type != value_type::u32)
            c.fail_at(kv.offset, "general.alignment is a ", value_type_name(kv.val.type), ", not a uint32");
        if (!is_power_of_two(kv.val.u))
            c.fail_at(kv.offset, "general.alignment ", kv.val.u, " is not a power of two");
        alignment_ = uint32_t(kv.val.u);
    }

    tensors_.reserve(size_t(tensor_count));
    tensor_index_.reserve(size_t(tensor_count));
    for (uint64_t k = 0; k < tensor_count; ++k) {
        tensor_info t;
        t.info_offset = c.pos();
        t.name = c.read_string("tensor name", k_max_key_bytes);
        if (t.name.empty()) c.fail_at(t.info_offset, "tensor ", k, " has an empty name");
        const size_t dims_at = c.pos();
        const uint32_t n_dims = c.read<uint32_t>("tensor dimension count");
        if (n_dims > k_max_dims)
            c.fail_at(dims_at, "tensor \"", t.name, "\" has ", n_dims, " dimensions; GGUF allows at most ", k_max_dims);
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t ne = c.read<uint64_t>("tensor dimension");
            if (ne > uint64_t(std::numeric_limits<int64_t>::max()))
                c.fail_at(c.pos() - 8, "tensor \"", t.name, "\" dimension ", d, " = ", ne, " is absurd (over 2^63)");
            t.dims.push_back(int64_t(ne));
        }
        const size_t type_at = c.pos();
        t.type = int32_t(c.read<uint32_t>("tensor type"));
        const ggml_type_size *ts = find_ggml_type(t.type);
        if (!ts) c.fail_at(type_at, "tensor \"", t.name, "\" has unknown ggml type ", uint32_t(t.type));
        t.offset = c.read<uint64_t>("tensor offset");
        const std::string why = tensor_size(*ts, t.dims, &t.elements, &t.nbytes);
        if (!why.empty())
            c.fail_at(dims_at, "tensor \"", t.name, "\" (", ts->name, ", dims ", dims_string(t.dims), ") has ", why);
        if (!tensor_index_.emplace(t.name, tensors_.size()).second)
            c.fail_at(t.info_offset, "duplicate tensor name \"", t.name, "\" (first at offset ",
                      tensors_[tensor_index_[t.name]].info_offset, ")");
        tensors_.push_back(std::move(t));
    }

    // The data section starts at the next multiple of the alignment. A file
    // without tensors may end before it (vocab-only files do).
    if (!align_up(c.pos(), alignment_, &data_offset_) || (tensor_count > 0 && data_offset_ > size_))
        c.fail_at(c.pos(), "truncated: the tensor data section should start at offset ", data_offset_,
                  " but the file has ", size_, " bytes");
    const uint64_t data_size = data_offset_ <= size_ ? size_ - data_offset_ : 0;
    for (const tensor_info &t : tensors_) {
        if (t.offset % alignment_ != 0)
            c.fail_at(t.info_offset, "tensor \"", t.name, "\" data offset ", t.offset,
                      " is not a multiple of the alignment ", alignment_);
        if (t.offset > data_size || t.nbytes > data_size - t.offset)
            c.fail_at(t.info_offset, "tensor \"", t.name, "\" (", t.nbytes, " bytes at data offset ", t.offset,
                      ") runs past the end of the file (the data section holds ", data_size, " bytes)");
    }
    // Tensors must not share bytes: a writer bug or a hostile file.
    std::vector<size_t> order(tensors_.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
    const tensor_info *prev = nullptr;
    for (size_t k : order) {
        const tensor_info &t = tensors_[k];
        if (t.nbytes == 0) continue;
        if (prev && prev->offset + prev->nbytes > t.offset)
            c.fail_at(t.info_offset, "tensor \"", t.name, "\" (data offset ", t.offset, ") overlaps tensor \"",
                      prev->name, "\" (", prev->nbytes, " bytes at data offset ", prev->offset, ")");
        prev = &t;
    }
}

const value *file::find(std::string_view key) const {
    const auto it = key_index_.find(key);
    return it == key_index_.end() ? nullptr : &kvs_[it->second].val;
}

const value &file::at(std::string_view key) const {
    const value *v = find(key);
    if (!v) fail(LLMKIT_ERROR_FORMAT, path_, ": the key \"", key, "\" is missing");
    return *v;
}

namespace {
template <typename... Args>
[[noreturn]] void wrong_type(const std::string &path, std::string_view key, const value &v, const Args &...want) {
    fail(LLMKIT_ERROR_FORMAT, path, ": key \"", key, "\" is a ", value_type_name(v.type), ", expected ", want...);
}
}  // namespace

std::optional<std::string_view> file::get_string(std::string_view key) const {
    const value *v = find(key);
    if (!v) return std::nullopt;
    if (v->type != value_type::string) wrong_type(path_, key, *v, "a string");
    return v->str;
}

std::optional<int64_t> file::get_int(std::string_view key) const {
    const value *v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_integer()) wrong_type(path_, key, *v, "an integer");
    if (v->type == value_type::u64 && v->u > uint64_t(std::numeric_limits<int64_t>::max()))
        fail(LLMKIT_ERROR_FORMAT, path_, ": key \"", key, "\" = ", v->u, " does not fit int64");
    return v->i;
}

std::optional<double> file::get_float(std::string_view key) const {
    const value *v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_float() && !v->is_integer()) wrong_type(path_, key, *v, "a number");
    return v->as_float();
}

std::optional<bool> file::get_bool(std::string_view key) const {
    const value *v = find(key);
    if (!v) return std::nullopt;
    if (v->type != value_type::boolean) wrong_type(path_, key, *v, "a bool");
    return v->u != 0;
}

int64_t file::find_tensor(std::string_view name) const {
    const auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? -1 : int64_t(it->second);
}

const uint8_t *file::tensor_data(size_t i) const {
    if (i >= tensors_.size())
        fail(LLMKIT_ERROR_OUT_OF_RANGE, path_, ": tensor index ", i, " but the file has ", tensors_.size());
    return base_ + data_offset_ + tensors_[i].offset;
}

// ---------------------------------------------------------------------------
// Writing

namespace {

template <typename T>
void append(std::vector<uint8_t> &out, T x) {
    // resize + memcpy: GCC 12 warns falsely (-Wstringop-overflow) on insert here.
    const size_t at = out.size();
    out.resize(at + sizeof(T));
    std::memcpy(out.data() + at, &x, sizeof(T));
}

void append_string(std::vector<uint8_t> &out, std::string_view s) {
    append<uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
}

void check_key(std::string_view key) {
    if (key.empty()) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "GGUF keys must not be empty");
    if (key.size() > k_max_key_bytes)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "GGUF key of ", key.size(), " bytes exceeds the limit of ", k_max_key_bytes);
}

// Encodes a value without its type tag.
void encode_value(std::vector<uint8_t> &out, const value &v, int depth) {
    switch (v.type) {
        case value_type::u8: append<uint8_t>(out, uint8_t(v.u)); break;
        case value_type::i8: append<int8_t>(out, int8_t(v.i)); break;
        case value_type::u16: append<uint16_t>(out, uint16_t(v.u)); break;
        case value_type::i16: append<int16_t>(out, int16_t(v.i)); break;
        case value_type::u32: append<uint32_t>(out, uint32_t(v.u)); break;
        case value_type::i32: append<int32_t>(out, int32_t(v.i)); break;
        case value_type::u64: append<uint64_t>(out, v.u); break;
        case value_type::i64: append<int64_t>(out, v.i); break;
        case value_type::f32: append<float>(out, float(v.f)); break;
        case value_type::f64: append<double>(out, v.f); break;
        case value_type::boolean: append<uint8_t>(out, v.u ? 1 : 0); break;
        case value_type::string: append_string(out, v.str); break;
        case value_type::array: {
            if (depth >= k_max_array_depth)
                fail(LLMKIT_ERROR_INVALID_ARGUMENT, "arrays nested deeper than ", k_max_array_depth, " levels");
            if (uint32_t(v.elem_type) > uint32_t(value_type::f64))
                fail(LLMKIT_ERROR_INVALID_ARGUMENT, "unknown array element type ", uint32_t(v.elem_type));
            append<uint32_t>(out, uint32_t(v.elem_type));
            const size_t elem = value_type_size(v.elem_type);
            if (elem) {
                if (v.count && !v.raw) fail(LLMKIT_ERROR_NULL_POINTER, "array data is NULL");
                if (v.count > (std::numeric_limits<size_t>::max() / 2) / elem)
                    fail(LLMKIT_ERROR_INVALID_ARGUMENT, "array of ", v.count, " elements is too large");
                if (v.elem_type == value_type::boolean)
                    for (uint64_t k = 0; k < v.count; ++k)
                        if (v.raw[k] > 1) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "bool array element ", k, " is ", int(v.raw[k]));
                append<uint64_t>(out, v.count);
                out.insert(out.end(), v.raw, v.raw + v.count * elem);
            } else if (v.elem_type == value_type::string) {
                append<uint64_t>(out, v.strings.size());
                for (std::string_view s : v.strings) append_string(out, s);
            } else {
                append<uint64_t>(out, v.items.size());
                for (const value &item : v.items) {
                    if (item.type != value_type::array)
                        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "an array of arrays holds a ", value_type_name(item.type));
                    encode_value(out, item, depth + 1);
                }
            }
            break;
        }
        default: fail(LLMKIT_ERROR_INVALID_ARGUMENT, "unknown GGUF value type ", uint32_t(v.type));
    }
}

}  // namespace

writer::writer() = default;

void writer::put(std::string_view key, std::vector<uint8_t> encoded) {
    check_key(key);
    for (kv_entry &e : kvs_)
        if (e.key == key) {
            e.encoded = std::move(encoded);
            return;
        }
    kvs_.push_back({std::string(key), std::move(encoded)});
}

void writer::set(std::string_view key, const value &v) {
    if (key == "general.alignment" && (v.type != value_type::u32 || !is_power_of_two(v.u)))
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "general.alignment must be a uint32 power of two");
    std::vector<uint8_t> enc;
    append<uint32_t>(enc, uint32_t(v.type));
    encode_value(enc, v, 0);
    put(key, std::move(enc));
}

void writer::set_string(std::string_view key, std::string_view s) {
    value v;
    v.type = value_type::string;
    v.str = s;
    set(key, v);
}
void writer::set_u32(std::string_view key, uint32_t x) {
    value v;
    v.type = value_type::u32;
    v.u = x;
    set(key, v);
}
void writer::set_i32(std::string_view key, int32_t x) {
    value v;
    v.type = value_type::i32;
    v.i = x;
    set(key, v);
}
void writer::set_u64(std::string_view key, uint64_t x) {
    value v;
    v.type = value_type::u64;
    v.u = x;
    set(key, v);
}
void writer::set_f32(std::string_view key, float x) {
    value v;
    v.type = value_type::f32;
    v.f = x;
    set(key, v);
}
void writer::set_bool(std::string_view key, bool x) {
    value v;
    v.type = value_type::boolean;
    v.u = x;
    set(key, v);
}
void writer::set_array(std::string_view key, value_type elem_type, const void *data, uint64_t count) {
    if (value_type_size(elem_type) == 0)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "set_array takes numeric or bool elements, not ", value_type_name(elem_type));
    value v;
    v.type = value_type::array;
    v.elem_type = elem_type;
    v.raw = static_cast<const uint8_t *>(data);
    v.count = count;
    set(key, v);
}
void writer::set_string_array(std::string_view key, const std::vector<std::string_view> &strings) {
    value v;
    v.type = value_type::array;
    v.elem_type = value_type::string;
    v.strings = strings;
    v.count = strings.size();
    set(key, v);
}

bool writer::remove(std::string_view key) {
    for (auto it = kvs_.begin(); it != kvs_.end(); ++it)
        if (it->key == key) {
            kvs_.erase(it);
            return true;
        }
    return false;
}

void writer::add_tensor(std::string_view name, int32_t type, const std::vector<int64_t> &dims, const void *data,
                        size_t nbytes) {
    if (name.empty()) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "a tensor name must not be empty");
    if (name.size() > k_max_key_bytes) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "tensor name of ", name.size(), " bytes");
    for (const tensor_entry &t : tensors_)
        if (t.name == name) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "tensor \"", name, "\" was already added");
    const ggml_type_size *ts = find_ggml_type(type);
    if (!ts) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "tensor \"", name, "\": unknown ggml type ", type);
    if (dims.size() > k_max_dims)
        fail(LLMKIT_ERROR_SHAPE, "tensor \"", name, "\" has ", dims.size(), " dimensions; GGUF allows at most ", k_max_dims);
    int64_t elements = 0;
    uint64_t expected = 0;
    const std::string why = tensor_size(*ts, dims, &elements, &expected);
    if (!why.empty()) fail(LLMKIT_ERROR_SHAPE, "tensor \"", name, "\" (", ts->name, ", dims ", dims_string(dims), ") has ", why);
    if (expected != nbytes)
        fail(LLMKIT_ERROR_SHAPE, "tensor \"", name, "\" (", ts->name, ", dims ", dims_string(dims), ") needs ", expected,
             " bytes, got ", nbytes);
    if (nbytes && !data) fail(LLMKIT_ERROR_NULL_POINTER, "tensor \"", name, "\": data is NULL");
    tensor_entry t{std::string(name), type, dims, {}};
    t.data.assign(static_cast<const uint8_t *>(data), static_cast<const uint8_t *>(data) + nbytes);
    tensors_.push_back(std::move(t));
}

uint32_t writer::alignment() const {
    for (const kv_entry &e : kvs_)
        if (e.key == "general.alignment") return load<uint32_t>(e.encoded.data() + 4);
    return k_default_alignment;
}

namespace {
// Emits the file through `sink` (header, metadata, tensor infos, padding, data).
void emit(const std::function<void(const uint8_t *, size_t)> &sink, uint32_t alignment,
          const std::vector<std::pair<const std::string *, const std::vector<uint8_t> *>> &kvs,
          const std::vector<std::tuple<const std::string *, int32_t, const std::vector<int64_t> *,
                                       const std::vector<uint8_t> *>> &tensors) {
    std::vector<uint8_t> head;
    head.insert(head.end(), {'G', 'G', 'U', 'F'});
    append<uint32_t>(head, 3);
    append<uint64_t>(head, tensors.size());
    append<uint64_t>(head, kvs.size());
    for (const auto &[key, enc] : kvs) {
        append_string(head, *key);
        head.insert(head.end(), enc->begin(), enc->end());
    }
    uint64_t offset = 0;
    for (const auto &[name, type, dims, data] : tensors) {
        append_string(head, *name);
        append<uint32_t>(head, uint32_t(dims->size()));
        for (int64_t d : *dims) append<uint64_t>(head, uint64_t(d));
        append<uint32_t>(head, uint32_t(type));
        append<uint64_t>(head, offset);
        align_up(offset + data->size(), alignment, &offset);
    }
    uint64_t data_start = 0;
    align_up(head.size(), alignment, &data_start);
    head.resize(size_t(data_start), 0);
    sink(head.data(), head.size());
    const std::vector<uint8_t> zeros(alignment, 0);
    for (const auto &[name, type, dims, data] : tensors) {
        sink(data->data(), data->size());
        uint64_t end = 0;
        align_up(data->size(), alignment, &end);
        sink(zeros.data(), size_t(end - data->size()));
    }
}
}  // namespace

std::vector<uint8_t> writer::serialize() const {
    std::vector<std::pair<const std::string *, const std::vector<uint8_t> *>> kvs;
    for (const kv_entry &e : kvs_) kvs.emplace_back(&e.key, &e.encoded);
    std::vector<std::tuple<const std::string *, int32_t, const std::vector<int64_t> *, const std::vector<uint8_t> *>> ts;
    for (const tensor_entry &t : tensors_) ts.emplace_back(&t.name, t.type, &t.dims, &t.data);
    std::vector<uint8_t> out;
    emit([&](const uint8_t *p, size_t n) { out.insert(out.end(), p, p + n); }, alignment(), kvs, ts);
    return out;
}

void writer::write(const std::string &path) const {
    std::vector<std::pair<const std::string *, const std::vector<uint8_t> *>> kvs;
    for (const kv_entry &e : kvs_) kvs.emplace_back(&e.key, &e.encoded);
    std::vector<std::tuple<const std::string *, int32_t, const std::vector<int64_t> *, const std::vector<uint8_t> *>> ts;
    for (const tensor_entry &t : tensors_) ts.emplace_back(&t.name, t.type, &t.dims, &t.data);

    // A temporary file beside the target, renamed over it once complete, so a
    // reader never sees half a file and a failure leaves the target as it was.
    // Created with open(O_EXCL, 0666) rather than mkstemp so that the result
    // gets the caller's umask like any new file.
    static std::atomic<uint64_t> counter{0};
    std::string tmp;
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 100; ++attempt) {
        tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
        fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) fail(LLMKIT_ERROR_IO, path, ": cannot create a temporary file beside it: ", std::strerror(errno));
    bool ok = true;
    int saved_errno = 0;
    std::vector<uint8_t> buf;  // batches small writes
    auto flush = [&] {
        size_t done = 0;
        while (ok && done < buf.size()) {
            const ssize_t n = ::write(fd, buf.data() + done, buf.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                ok = false;
                saved_errno = n < 0 ? errno : EIO;
            } else {
                done += size_t(n);
            }
        }
        buf.clear();
    };
    emit(
        [&](const uint8_t *p, size_t n) {
            buf.insert(buf.end(), p, p + n);
            if (buf.size() >= (8u << 20)) flush();
        },
        alignment(), kvs, ts);
    flush();
    if (ok && fsync(fd) != 0) saved_errno = errno, ok = false;
    if (::close(fd) != 0 && ok) saved_errno = errno, ok = false;
    if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) saved_errno = errno, ok = false;
    if (!ok) {
        ::unlink(tmp.c_str());
        fail(LLMKIT_ERROR_IO, path, ": cannot write: ", std::strerror(saved_errno));
    }
}

}  // namespace llmkit::gguf
