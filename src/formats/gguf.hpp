// GGUF files (llama.cpp's model format, versions 2 and 3): a strict,
// memory-mapped reader and an atomic writer.
//
// Layout of a GGUF file (all little-endian):
//   "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count   x { string key | u32 value_type | value }
//   tensor_count x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding to general.alignment (default 32)
//   tensor data: each tensor at data_offset + offset, offset a multiple of the alignment
// where string = u64 length + bytes (no NUL) and an array value is
// u32 element_type | u64 count | elements (arrays may nest).
//
// The reader trusts nothing in the file: every count and length is checked
// against the bytes that remain before anything is allocated, sizes are
// overflow-checked, and every error (llmkit::core::error, LLMKIT_ERROR_FORMAT)
// names the file, the byte offset and what was wrong. Values point into the
// mapping (no copies), so they live as long as the file object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llmkit::gguf {

// GGUF metadata value types, numbered as in the file.
enum class value_type : uint32_t {
    u8 = 0,
    i8 = 1,
    u16 = 2,
    i16 = 3,
    u32 = 4,
    i32 = 5,
    f32 = 6,
    boolean = 7,
    string = 8,
    array = 9,
    u64 = 10,
    i64 = 11,
    f64 = 12,
};

// "uint32", "string", ...: gguf's names, for messages. "unknown" otherwise.
const char *value_type_name(value_type t) noexcept;
// Bytes of one element of a fixed-size type; 0 for string and array.
size_t value_type_size(value_type t) noexcept;

// One metadata value. Scalars are decoded; strings and arrays point into the
// file's bytes (numeric array elements are raw little-endian and may be
// unaligned: read them with the helpers below, or memcpy).
struct value {
    value_type type = value_type::u8;
    // Scalars: integers (and bool) in i or u, floats in f.
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    std::string_view str;  // type == string

    // type == array:
    value_type elem_type = value_type::u8;
    uint64_t count = 0;
    const uint8_t *raw = nullptr;            // numeric/bool elements, count * value_type_size(elem_type) bytes
    std::vector<std::string_view> strings;   // elem_type == string
    std::vector<value> items;                // elem_type == array (nested arrays)

    bool is_integer() const noexcept;  // any integer type (not bool)
    bool is_float() const noexcept;    // f32 or f64

    // Typed access; throw core::error (LLMKIT_ERROR_FORMAT) on a type that
    // does not convert exactly (an integer out of range, a float for an int).
    int64_t as_int() const;
    double as_float() const;  // integers and floats
    bool as_bool() const;
    std::string_view as_string() const;

    // Whole arrays, converted element by element (integers range-checked).
    std::vector<int64_t> int_array() const;
    std::vector<float> float_array() const;
    const std::vector<std::string_view> &string_array() const;
};

struct key_value {
    std::string_view key;
    value val;
    uint64_t offset = 0;  // where the key starts in the file
};

struct tensor_info {
    std::string_view name;
    std::vector<int64_t> dims;  // ggml's ne: dims[0] is the row length (contiguous)
    int32_t type = 0;           // ggml_type
    uint64_t offset = 0;        // from the start of the data section
    uint64_t nbytes = 0;        // from the type's block size and the dims
    int64_t elements = 0;
    uint64_t info_offset = 0;   // where the tensor info starts in the file
};

// Block geometry of a ggml tensor type, or nullptr for an id GGUF does not
// define (including the removed ones).
struct ggml_type_size {
    int32_t id;
    const char *name;  // ggml's spelling: "q4_K"
    int64_t block_elems;
    int64_t block_bytes;
};
const ggml_type_size *find_ggml_type(int32_t id) noexcept;

struct open_options {
    // A file that repeats a key is malformed (llama.cpp refuses it). With this
    // set, the first occurrence is kept and the repeats are ignored.
    bool allow_duplicate_keys = false;
    // Read the file into memory instead of mapping it (pipes, special files).
    bool no_mmap = false;
};

class file {
public:
    // Opens and validates a file (memory-mapped, read-only). Throws
    // core::error: LLMKIT_ERROR_IO (cannot open/map) or LLMKIT_ERROR_FORMAT.
    static file open(const std::string &path, const open_options &options = {});
    // Parses bytes in memory; `name` stands for the file in messages. The
    // bytes are copied when `copy` is true, otherwise they must outlive the object.
    static file parse(const void *data, size_t size, const std::string &name, const open_options &options = {},
                      bool copy = true);

    const std::string &path() const noexcept { return path_; }
    uint32_t version() const noexcept { return version_; }
    uint32_t alignment() const noexcept { return alignment_; }
    uint64_t data_offset() const noexcept { return data_offset_; }
    size_t size() const noexcept { return size_; }
    const uint8_t *bytes() const noexcept { return base_; }

    // Metadata in file order.
    const std::vector<key_value> &metadata() const noexcept { return kvs_; }
    // nullptr when the key is absent.
    const value *find(std::string_view key) const;
    // The value of a key that must exist (LLMKIT_ERROR_FORMAT naming it otherwise).
    const value &at(std::string_view key) const;
    // Typed getters; std::nullopt when absent, an error when of the wrong type.
    std::optional<std::string_view> get_string(std::string_view key) const;
    std::optional<int64_t> get_int(std::string_view key) const;
    std::optional<double> get_float(std::string_view key) const;
    std::optional<bool> get_bool(std::string_view key) const;

    const std::vector<tensor_info> &tensors() const noexcept { return tensors_; }
    // Index of a tensor by name, or -1.
    int64_t find_tensor(std::string_view name) const;
    // The tensor's bytes (inside the mapping; aligned to alignment() relative
    // to the file start, so to the page for a mapping).
    const uint8_t *tensor_data(size_t i) const;

private:
    struct storage;
    void parse_all(const open_options &options);

    std::shared_ptr<const storage> storage_;
    const uint8_t *base_ = nullptr;
    size_t size_ = 0;
    std::string path_;
    uint32_t version_ = 0;
    uint32_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<key_value> kvs_;
    std::vector<tensor_info> tensors_;
    std::unordered_map<std::string_view, size_t> key_index_;
    std::unordered_map<std::string_view, size_t> tensor_index_;
};

// Builds a GGUF v3 file in memory and writes it atomically (a temporary file
// in the same directory, renamed over the target once complete).
class writer {
public:
    writer();

    // Sets a key (replacing an earlier value of the same key, keeping its
    // place). The value is serialized now: its pointers need only be valid
    // during the call. general.alignment must be a u32 power of two.
    void set(std::string_view key, const value &v);
    void set_string(std::string_view key, std::string_view s);
    void set_u32(std::string_view key, uint32_t x);
    void set_i32(std::string_view key, int32_t x);
    void set_u64(std::string_view key, uint64_t x);
    void set_f32(std::string_view key, float x);
    void set_bool(std::string_view key, bool x);
    // A numeric array: count elements of elem_type, raw little-endian bytes.
    void set_array(std::string_view key, value_type elem_type, const void *data, uint64_t count);
    void set_string_array(std::string_view key, const std::vector<std::string_view> &strings);
    bool remove(std::string_view key);

    // Adds a tensor; its bytes are copied. nbytes must equal what the type
    // and dims give, and dims[0] must be a multiple of the type's block.
    void add_tensor(std::string_view name, int32_t type, const std::vector<int64_t> &dims, const void *data,
                    size_t nbytes);

    size_t kv_count() const noexcept { return kvs_.size(); }
    size_t tensor_count() const noexcept { return tensors_.size(); }

    // Writes the file (LLMKIT_ERROR_IO on failure; the target is untouched then).
    void write(const std::string &path) const;
    // The whole file as bytes (for tests and in-memory use).
    std::vector<uint8_t> serialize() const;

private:
    struct kv_entry {
        std::string key;
        std::vector<uint8_t> encoded;  // u32 type + value
    };
    struct tensor_entry {
        std::string name;
        int32_t type;
        std::vector<int64_t> dims;
        std::vector<uint8_t> data;
    };
    uint32_t alignment() const;
    void put(std::string_view key, std::vector<uint8_t> encoded);

    std::vector<kv_entry> kvs_;
    std::vector<tensor_entry> tensors_;
};

}  // namespace llmkit::gguf
