// C ABI: GGUF files (reader handles, metadata values, tensors, writer).
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "formats/gguf.hpp"
#include "guard.hpp"
#include "llmkit/llmkit.h"

using namespace llmkit;
using core::fail;

// The handle keeps NUL-terminated copies of keys and tensor names, which C
// callers expect; everything else points into the file's mapping.
struct llmkit_gguf_file {
    gguf::file file;
    std::vector<std::string> keys;
    std::vector<std::string> names;
};

struct llmkit_gguf_writer {
    gguf::writer w;
};

namespace {

const llmkit_gguf_open_options k_open_defaults = LLMKIT_GGUF_OPEN_OPTIONS_INIT;

const gguf::value &as_value(const llmkit_gguf_value *v) { return *reinterpret_cast<const gguf::value *>(v); }
const llmkit_gguf_value *to_handle(const gguf::value &v) { return reinterpret_cast<const llmkit_gguf_value *>(&v); }

llmkit_gguf_file *wrap(gguf::file f) {
    auto h = std::make_unique<llmkit_gguf_file>(llmkit_gguf_file{std::move(f), {}, {}});
    h->keys.reserve(h->file.metadata().size());
    for (const auto &kv : h->file.metadata()) h->keys.emplace_back(kv.key);
    h->names.reserve(h->file.tensors().size());
    for (const auto &t : h->file.tensors()) h->names.emplace_back(t.name);
    return h.release();
}

gguf::open_options open_options(const llmkit_gguf_open_options *options) {
    const auto o = capi::read_options(options, k_open_defaults, "options");
    gguf::open_options out;
    out.allow_duplicate_keys = o.allow_duplicate_keys != 0;
    out.no_mmap = o.no_mmap != 0;
    return out;
}

size_t check_index(int64_t index, size_t size, const char *what) {
    if (index < 0 || uint64_t(index) >= size)
        fail(LLMKIT_ERROR_OUT_OF_RANGE, what, " index ", index, " is outside [0, ", size, ")");
    return size_t(index);
}

void require_array(const gguf::value &v) {
    if (v.type != gguf::value_type::array)
        fail(LLMKIT_ERROR_DTYPE, "the value is a ", gguf::value_type_name(v.type), ", not an array");
}

gguf::value_type value_type_arg(int32_t type, const char *what) {
    if (type < 0 || type > int32_t(gguf::value_type::f64))
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, what, " ", type, " is not an llmkit_gguf_type");
    return gguf::value_type(type);
}

}  // namespace

extern "C" {

llmkit_status llmkit_gguf_open(llmkit_gguf_file **out, const char *path, const llmkit_gguf_open_options *options) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = nullptr;
        capi::require_non_null(path, "path");
        *out = wrap(gguf::file::open(path, open_options(options)));
    });
}

llmkit_status llmkit_gguf_open_memory(llmkit_gguf_file **out, const void *data, size_t size,
                                      const llmkit_gguf_open_options *options) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = nullptr;
        if (size) capi::require_non_null(data, "data");
        *out = wrap(gguf::file::parse(data, size, "<memory>", open_options(options), true));
    });
}

void llmkit_gguf_close(llmkit_gguf_file *file) { delete file; }

llmkit_status llmkit_gguf_file_get_info(llmkit_gguf_file_info *out, const llmkit_gguf_file *file) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        capi::require_non_null(file, "file");
        const gguf::file &f = file->file;
        out->version = f.version();
        out->alignment = f.alignment();
        out->data_offset = f.data_offset();
        out->file_size = f.size();
        out->n_metadata = int64_t(f.metadata().size());
        out->n_tensors = int64_t(f.tensors().size());
    });
}

llmkit_status llmkit_gguf_metadata_key(const char **key, size_t *key_len, const llmkit_gguf_file *file,
                                       int64_t index) {
    return capi::guard([&] {
        capi::require_non_null(file, "file");
        const std::string &k = file->keys[check_index(index, file->keys.size(), "metadata")];
        if (key) *key = k.c_str();
        if (key_len) *key_len = k.size();
    });
}

llmkit_status llmkit_gguf_metadata_value(const llmkit_gguf_value **out, const llmkit_gguf_file *file, int64_t index) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        capi::require_non_null(file, "file");
        *out = to_handle(file->file.metadata()[check_index(index, file->keys.size(), "metadata")].val);
    });
}

llmkit_status llmkit_gguf_find_key(int64_t *index, const llmkit_gguf_file *file, const char *key) {
    return capi::guard([&] {
        capi::require_non_null(index, "index");
        capi::require_non_null(file, "file");
        capi::require_non_null(key, "key");
        *index = -1;
        const gguf::value *v = file->file.find(key);
        if (v) {
            const auto &kvs = file->file.metadata();
            for (size_t i = 0; i < kvs.size(); ++i)
                if (&kvs[i].val == v) *index = int64_t(i);
        }
    });
}

llmkit_status llmkit_gguf_value_type(int32_t *type, int32_t *elem_type, uint64_t *count,
                                     const llmkit_gguf_value *value) {
    return capi::guard([&] {
        capi::require_non_null(value, "value");
        const gguf::value &v = as_value(value);
        const bool array = v.type == gguf::value_type::array;
        if (type) *type = int32_t(v.type);
        if (elem_type) *elem_type = array ? int32_t(v.elem_type) : -1;
        if (count) *count = array ? v.count : 1;
    });
}

llmkit_status llmkit_gguf_value_int(int64_t *out, const llmkit_gguf_value *value) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        capi::require_non_null(value, "value");
        const gguf::value &v = as_value(value);
        if (!v.is_integer() && v.type != gguf::value_type::boolean)
            fail(LLMKIT_ERROR_DTYPE, "the value is a ", gguf::value_type_name(v.type), ", not an integer");
        if (v.type == gguf::value_type::u64 && v.u > uint64_t(std::numeric_limits<int64_t>::max()))
            fail(LLMKIT_ERROR_OUT_OF_RANGE, "uint64 value ", v.u, " does not fit int64; use llmkit_gguf_value_uint");
        *out = v.i;
    });
}

llmkit_status llmkit_gguf_value_uint(uint64_t *out, const llmkit_gguf_value *value) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        capi::require_non_null(value, "value");
        const gguf::value &v = as_value(value);
        if (!v.is_integer() && v.type != gguf::value_type::boolean)
            fail(LLMKIT_ERROR_DTYPE, "the value is a ", gguf::value_type_name(v.type), ", not an integer");
        if (v.type == gguf::value_type::u64) {
            *out = v.u;
            return;
        }
        if (v.i < 0) fail(LLMKIT_ERROR_OUT_OF_RANGE, "value ", v.i, " is negative");
        *out = uint64_t(v.i);
    });
}

llmkit_status llmkit_gguf_value_float(double *out, const llmkit_gguf_value *value) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        capi::require_non_null(value, "value");
        const gguf::value &v = as_value(value);
        if (!v.is_float() && !v.is_integer())
            fail(LLMKIT_ERROR_DTYPE, "the value is a ", gguf::value_type_name(v.type), ", not a number");
        *out = v.as_float();
    });
}

llmkit_status llmkit_gguf_value_string(const char **str, size_t *len, const llmkit_gguf_value *value) {
    return capi::guard([&] {
        capi::require_non_null(str, "str");
        capi::require_non_null(len, "len");
        capi::require_non_null(value, "value");
        const gguf::value &v = as_value(value);
        if (v.type != gguf::value_type::string)
            fail(LLMKIT_ERROR_DTYPE, "the value is a ", gguf::value_type_name(v.type), ", not a string");
        *str = v.str.data();
        *len = v.str.size();
    });
}

llmkit_status llmkit_gguf_value_array_data(const void **data, uint64_t *count, const llmkit_gguf_value *value) {
    return capi::guard([&] {
        capi::require_non_null(data, "data");
        capi::require_non_null(value, "value");
        const gguf::value &v = as_value(value);
        require_array(v);
        if (gguf::value_type_size(v.elem_type) == 0)
            fail(LLMKIT_ERROR_DTYPE, "an array of ", gguf::value_type_name(v.elem_type),
                 " has no flat element data; use llmkit_gguf_value_array_",
                 v.elem_type == gguf::value_type::string ? "string" : "item");
        *data = v.count ? v.raw : nullptr;
        if (count) *count = v.count;
    });
}

llmkit_status llmkit_gguf_value_array_string(const char **str, size_t *len, const llmkit_gguf_value *value,
                                             uint64_t index) {
    return capi::guard([&] {
        capi::require_non_null(str, "str");
        capi::require_non_null(len, "len");
        capi::require_non_null(value, "value");
        const gguf::value &v = as_value(value);
        require_array(v);
        if (v.elem_type != gguf::value_type::string)
            fail(LLMKIT_ERROR_DTYPE, "an array of ", gguf::value_type_name(v.elem_type), " is not an array of strings");
        if (index >= v.strings.size())
            fail(LLMKIT_ERROR_OUT_OF_RANGE, "array index ", index, " is outside [0, ", v.strings.size(), ")");
        *str = v.strings[size_t(index)].data();
        *len = v.strings[size_t(index)].size();
    });
}

llmkit_status llmkit_gguf_value_array_item(const llmkit_gguf_value **out, const llmkit_gguf_value *value,
                                           uint64_t index) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        capi::require_non_null(value, "value");
        const gguf::value &v = as_value(value);
        require_array(v);
        if (v.elem_type != gguf::value_type::array)
            fail(LLMKIT_ERROR_DTYPE, "an array of ", gguf::value_type_name(v.elem_type), " is not an array of arrays");
        if (index >= v.items.size())
            fail(LLMKIT_ERROR_OUT_OF_RANGE, "array index ", index, " is outside [0, ", v.items.size(), ")");
        *out = to_handle(v.items[size_t(index)]);
    });
}

llmkit_status llmkit_gguf_tensor(llmkit_gguf_tensor_info *out, const llmkit_gguf_file *file, int64_t index) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        capi::require_non_null(file, "file");
        const size_t i = check_index(index, file->names.size(), "tensor");
        const gguf::tensor_info &t = file->file.tensors()[i];
        out->name = file->names[i].c_str();
        out->name_len = file->names[i].size();
        out->type = t.type;
        out->n_dims = int32_t(t.dims.size());
        for (int d = 0; d < 4; ++d) out->dims[d] = d < int(t.dims.size()) ? t.dims[size_t(d)] : 1;
        out->n_elements = t.elements;
        out->offset = t.offset;
        out->nbytes = t.nbytes;
        out->data = file->file.tensor_data(i);
    });
}

llmkit_status llmkit_gguf_find_tensor(int64_t *index, const llmkit_gguf_file *file, const char *name) {
    return capi::guard([&] {
        capi::require_non_null(index, "index");
        capi::require_non_null(file, "file");
        capi::require_non_null(name, "name");
        *index = file->file.find_tensor(name);
    });
}

llmkit_status llmkit_gguf_type_info(const char **name, int64_t *block_elements, int64_t *block_bytes, int32_t type) {
    return capi::guard([&] {
        const gguf::ggml_type_size *t = gguf::find_ggml_type(type);
        if (!t) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "ggml type ", type, " is not a type GGUF defines");
        if (name) *name = t->name;
        if (block_elements) *block_elements = t->block_elems;
        if (block_bytes) *block_bytes = t->block_bytes;
    });
}

llmkit_status llmkit_gguf_writer_new(llmkit_gguf_writer **out) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = new llmkit_gguf_writer();
    });
}

void llmkit_gguf_writer_free(llmkit_gguf_writer *writer) { delete writer; }

llmkit_status llmkit_gguf_writer_set_kv(llmkit_gguf_writer *writer, const char *key, int32_t type, const void *value,
                                        size_t size) {
    return capi::guard([&] {
        capi::require_non_null(writer, "writer");
        capi::require_non_null(key, "key");
        const gguf::value_type t = value_type_arg(type, "type");
        if (t == gguf::value_type::array)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "key \"", key,
                 "\": set arrays with llmkit_gguf_writer_set_array or _set_string_array");
        if (size) capi::require_non_null(value, "value");
        gguf::value v;
        v.type = t;
        if (t == gguf::value_type::string) {
            v.str = std::string_view(static_cast<const char *>(value), size);
        } else {
            const size_t need = gguf::value_type_size(t);
            if (size != need)
                fail(LLMKIT_ERROR_INVALID_ARGUMENT, "key \"", key, "\": a ", gguf::value_type_name(t), " takes ", need,
                     " bytes, size is ", size);
            const auto *p = static_cast<const uint8_t *>(value);
            auto get = [&](auto x) {
                std::memcpy(&x, p, sizeof x);
                return x;
            };
            switch (t) {
                case gguf::value_type::u8: v.u = get(uint8_t()); break;
                case gguf::value_type::i8: v.i = get(int8_t()); break;
                case gguf::value_type::u16: v.u = get(uint16_t()); break;
                case gguf::value_type::i16: v.i = get(int16_t()); break;
                case gguf::value_type::u32: v.u = get(uint32_t()); break;
                case gguf::value_type::i32: v.i = get(int32_t()); break;
                case gguf::value_type::u64: v.u = get(uint64_t()); break;
                case gguf::value_type::i64: v.i = get(int64_t()); break;
                case gguf::value_type::f32: v.f = get(float()); break;
                case gguf::value_type::f64: v.f = get(double()); break;
                case gguf::value_type::boolean:
                    v.u = get(uint8_t());
                    if (v.u > 1) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "key \"", key, "\": bool value ", v.u, " is not 0 or 1");
                    break;
                default: break;
            }
        }
        writer->w.set(key, v);
    });
}

llmkit_status llmkit_gguf_writer_set_array(llmkit_gguf_writer *writer, const char *key, int32_t elem_type,
                                           const void *data, uint64_t count) {
    return capi::guard([&] {
        capi::require_non_null(writer, "writer");
        capi::require_non_null(key, "key");
        if (count) capi::require_non_null(data, "data");
        writer->w.set_array(key, value_type_arg(elem_type, "elem_type"), data, count);
    });
}

llmkit_status llmkit_gguf_writer_set_string_array(llmkit_gguf_writer *writer, const char *key,
                                                  const char *const *strings, const size_t *lengths, uint64_t count) {
    return capi::guard([&] {
        capi::require_non_null(writer, "writer");
        capi::require_non_null(key, "key");
        if (count) capi::require_non_null(strings, "strings");
        if (count > std::numeric_limits<size_t>::max() / sizeof(std::string_view))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "count ", count, " is too large");
        std::vector<std::string_view> v;
        v.reserve(size_t(count));
        for (uint64_t i = 0; i < count; ++i) {
            if (!strings[i] && (!lengths || lengths[i]))
                fail(LLMKIT_ERROR_NULL_POINTER, "strings[", i, "] is NULL");
            v.emplace_back(strings[i] ? strings[i] : "", lengths ? lengths[i] : std::strlen(strings[i]));
        }
        writer->w.set_string_array(key, v);
    });
}

llmkit_status llmkit_gguf_writer_set_value(llmkit_gguf_writer *writer, const char *key,
                                           const llmkit_gguf_value *value) {
    return capi::guard([&] {
        capi::require_non_null(writer, "writer");
        capi::require_non_null(key, "key");
        capi::require_non_null(value, "value");
        writer->w.set(key, as_value(value));
    });
}

llmkit_status llmkit_gguf_writer_remove_kv(llmkit_gguf_writer *writer, const char *key) {
    return capi::guard([&] {
        capi::require_non_null(writer, "writer");
        capi::require_non_null(key, "key");
        writer->w.remove(key);
    });
}

llmkit_status llmkit_gguf_writer_add_tensor(llmkit_gguf_writer *writer, const char *name, int32_t type,
                                            const int64_t *dims, int32_t n_dims, const void *data, size_t nbytes) {
    return capi::guard([&] {
        capi::require_non_null(writer, "writer");
        capi::require_non_null(name, "name");
        if (n_dims < 0 || n_dims > 4)
            fail(LLMKIT_ERROR_SHAPE, "tensor \"", name, "\": n_dims ", n_dims, " is outside [0, 4]");
        if (n_dims) capi::require_non_null(dims, "dims");
        writer->w.add_tensor(name, type, std::vector<int64_t>(dims, dims + n_dims), data, nbytes);
    });
}

llmkit_status llmkit_gguf_writer_write(const llmkit_gguf_writer *writer, const char *path) {
    return capi::guard([&] {
        capi::require_non_null(writer, "writer");
        capi::require_non_null(path, "path");
        writer->w.write(path);
    });
}

}  // extern "C"
