// llmkit._llmkit: GGUF files. The Python layer (llmkit/gguf.py) turns what
// these functions return into dicts, numpy arrays and QuantizedTensors.
#include "py_common.hpp"

namespace llmkit_py {
namespace {

// An open file shared by every numpy array that views its tensor data, so the
// mapping lives until the last of them is gone.
struct gguf_handle {
    std::shared_ptr<llmkit::gguf_file> file;
};

// GGUF strings are UTF-8 by the spec; a file that breaks that still round
// trips, as bytes.
py::object to_py_string(const char *s, size_t n) {
    PyObject *u = PyUnicode_DecodeUTF8(s, py::ssize_t(n), "strict");
    if (u) return py::reinterpret_steal<py::object>(u);
    PyErr_Clear();
    return py::bytes(s, n);
}

// numpy dtype strings of the fixed-size GGUF types (little-endian).
const char *numpy_dtype(int32_t t) {
    switch (t) {
        case LLMKIT_GGUF_UINT8: return "<u1";
        case LLMKIT_GGUF_INT8: return "<i1";
        case LLMKIT_GGUF_UINT16: return "<u2";
        case LLMKIT_GGUF_INT16: return "<i2";
        case LLMKIT_GGUF_UINT32: return "<u4";
        case LLMKIT_GGUF_INT32: return "<i4";
        case LLMKIT_GGUF_FLOAT32: return "<f4";
        case LLMKIT_GGUF_BOOL: return "?";
        case LLMKIT_GGUF_UINT64: return "<u8";
        case LLMKIT_GGUF_INT64: return "<i8";
        case LLMKIT_GGUF_FLOAT64: return "<f8";
        default: return nullptr;
    }
}

// A value as Python: int, float, bool, str (or bytes); arrays as a numpy copy
// (numeric and bool), a list of str, or a list of nested arrays.
py::object to_py(const llmkit_gguf_value *v) {
    int32_t type = 0, elem = 0;
    uint64_t count = 0;
    llmkit::check(llmkit_gguf_value_type(&type, &elem, &count, v));
    switch (type) {
        case LLMKIT_GGUF_STRING: {
            const char *s = nullptr;
            size_t n = 0;
            llmkit::check(llmkit_gguf_value_string(&s, &n, v));
            return to_py_string(s, n);
        }
        case LLMKIT_GGUF_FLOAT32:
        case LLMKIT_GGUF_FLOAT64: {
            double x = 0;
            llmkit::check(llmkit_gguf_value_float(&x, v));
            return py::float_(x);
        }
        case LLMKIT_GGUF_BOOL: {
            int64_t x = 0;
            llmkit::check(llmkit_gguf_value_int(&x, v));
            return py::bool_(x != 0);
        }
        case LLMKIT_GGUF_UINT64: {
            uint64_t x = 0;
            llmkit::check(llmkit_gguf_value_uint(&x, v));
            return py::int_(x);
        }
        case LLMKIT_GGUF_ARRAY: {
            if (elem == LLMKIT_GGUF_STRING) {
                py::list out(count);
                for (uint64_t i = 0; i < count; ++i) {
                    const char *s = nullptr;
                    size_t n = 0;
                    llmkit::check(llmkit_gguf_value_array_string(&s, &n, v, i));
                    out[size_t(i)] = to_py_string(s, n);
                }
                return std::move(out);
            }
            if (elem == LLMKIT_GGUF_ARRAY) {
                py::list out(count);
                for (uint64_t i = 0; i < count; ++i) {
                    const llmkit_gguf_value *item = nullptr;
                    llmkit::check(llmkit_gguf_value_array_item(&item, v, i));
                    out[size_t(i)] = to_py(item);
                }
                return std::move(out);
            }
            const void *data = nullptr;
            llmkit::check(llmkit_gguf_value_array_data(&data, &count, v));
            py::array out(py::dtype(numpy_dtype(elem)), std::vector<py::ssize_t>{py::ssize_t(count)});
            if (count) std::memcpy(out.mutable_data(), data, size_t(out.nbytes()));
            return std::move(out);
        }
        default: {
            int64_t x = 0;
            llmkit::check(llmkit_gguf_value_int(&x, v));
            return py::int_(x);
        }
    }
}

gguf_handle gguf_open(const std::string &path, bool allow_duplicate_keys) {
    gguf_handle h;
    py::gil_scoped_release nogil;
    h.file = std::make_shared<llmkit::gguf_file>(path, allow_duplicate_keys);
    return h;
}

py::dict gguf_info(const gguf_handle &h) {
    const llmkit_gguf_file_info i = h.file->info();
    py::dict d;
    d["version"] = i.version;
    d["alignment"] = i.alignment;
    d["data_offset"] = i.data_offset;
    d["file_size"] = i.file_size;
    d["n_metadata"] = i.n_metadata;
    d["n_tensors"] = i.n_tensors;
    return d;
}

// [(key, type, elem_type or -1, value)] in file order.
py::list gguf_metadata(const gguf_handle &h) {
    const llmkit_gguf_file_info info = h.file->info();
    py::list out;
    for (int64_t i = 0; i < info.n_metadata; ++i) {
        const llmkit_gguf_value *v = h.file->value(i);
        int32_t type = 0, elem = 0;
        llmkit::check(llmkit_gguf_value_type(&type, &elem, nullptr, v));
        out.append(py::make_tuple(h.file->key(i), type, elem, to_py(v)));
    }
    return out;
}

// [(name, type, dims (ggml order), data as a read-only uint8 view of the file)].
py::list gguf_tensors(py::object self) {
    const gguf_handle &h = self.cast<const gguf_handle &>();
    const llmkit_gguf_file_info info = h.file->info();
    py::list out;
    for (int64_t i = 0; i < info.n_tensors; ++i) {
        const llmkit_gguf_tensor_info t = h.file->tensor(i);
        py::list dims;
        for (int d = 0; d < t.n_dims; ++d) dims.append(t.dims[d]);
        // The array's base is the handle object: it keeps the mapping alive.
        py::array data(py::dtype("u1"), std::vector<py::ssize_t>{py::ssize_t(t.nbytes)}, std::vector<py::ssize_t>{1},
                       static_cast<const uint8_t *>(t.data),
                       self);
        data.attr("setflags")(py::arg("write") = false);
        out.append(py::make_tuple(std::string(t.name, t.name_len), t.type, dims, data));
    }
    return out;
}

py::tuple ggml_type_info(int32_t type) {
    const char *name = nullptr;
    int64_t elems = 0, bytes = 0;
    llmkit::check(llmkit_gguf_type_info(&name, &elems, &bytes, type));
    return py::make_tuple(std::string(name), elems, bytes);
}

// ---------------------------------------------------------------------------
// Writing

// The C writer directly: the Python layer needs every value type.
struct gguf_writer_py {
    struct deleter {
        void operator()(llmkit_gguf_writer *w) const noexcept { llmkit_gguf_writer_free(w); }
    };
    std::unique_ptr<llmkit_gguf_writer, deleter> w;
    gguf_writer_py() {
        llmkit_gguf_writer *p = nullptr;
        llmkit::check(llmkit_gguf_writer_new(&p));
        w.reset(p);
    }
};

// A string as UTF-8 bytes (str) or as given (bytes).
std::string string_bytes(py::handle s, const std::string &what) {
    if (py::isinstance<py::bytes>(s)) return s.cast<std::string>();
    if (py::isinstance<py::str>(s)) return s.cast<std::string>();
    throw py::type_error(what + " must be str or bytes, got " + type_name(s));
}

// Scalars: the Python layer has chosen the type; integers are range-checked here.
void writer_set_scalar(gguf_writer_py &self, const std::string &key, int32_t type, py::handle value) {
    auto set = [&](const void *p, size_t n) {
        llmkit::check(llmkit_gguf_writer_set_kv(self.w.get(), key.c_str(), type, p, n));
    };
    auto int_in = [&](auto lo, auto hi) {
        // Python ints of any size compare exactly against the bounds.
        py::int_ x = py::reinterpret_borrow<py::object>(value);
        if (x < py::int_(lo) || x > py::int_(hi))
            throw py::value_error("metadata '" + key + "': " + py::str(value).cast<std::string>() +
                                  " does not fit the type");
        return x;
    };
    switch (type) {
        case LLMKIT_GGUF_STRING: {
            const std::string s = string_bytes(value, "metadata '" + key + "'");
            set(s.data(), s.size());
            return;
        }
        case LLMKIT_GGUF_BOOL: {
            const uint8_t b = value.cast<bool>() ? 1 : 0;
            set(&b, 1);
            return;
        }
        case LLMKIT_GGUF_FLOAT32: {
            const float f = value.cast<float>();
            set(&f, 4);
            return;
        }
        case LLMKIT_GGUF_FLOAT64: {
            const double f = value.cast<double>();
            set(&f, 8);
            return;
        }
        case LLMKIT_GGUF_UINT64: {
            const uint64_t x = int_in(uint64_t(0), UINT64_MAX).cast<uint64_t>();
            set(&x, 8);
            return;
        }
        default: break;
    }
    const int64_t x = [&]() -> int64_t {
        switch (type) {
            case LLMKIT_GGUF_UINT8: return int_in(0, UINT8_MAX).cast<int64_t>();
            case LLMKIT_GGUF_INT8: return int_in(INT8_MIN, INT8_MAX).cast<int64_t>();
            case LLMKIT_GGUF_UINT16: return int_in(0, UINT16_MAX).cast<int64_t>();
            case LLMKIT_GGUF_INT16: return int_in(INT16_MIN, INT16_MAX).cast<int64_t>();
            case LLMKIT_GGUF_UINT32: return int_in(0, UINT32_MAX).cast<int64_t>();
            case LLMKIT_GGUF_INT32: return int_in(INT32_MIN, INT32_MAX).cast<int64_t>();
            case LLMKIT_GGUF_INT64: return int_in(INT64_MIN, INT64_MAX).cast<int64_t>();
            default: throw py::value_error("metadata '" + key + "': type " + std::to_string(type) + " is not a scalar");
        }
    }();
    // Little-endian host: the low bytes of x are the value in the narrower type.
    set(&x, size_t(py::dtype(numpy_dtype(type)).itemsize()));
}

void writer_set_array(gguf_writer_py &self, const std::string &key, int32_t elem_type, py::array data) {
    const char *dt = numpy_dtype(elem_type);
    if (!dt) throw py::value_error("metadata '" + key + "': array element type " + std::to_string(elem_type));
    py::array a = py::array::ensure(data, py::array::c_style);
    if (!a || !a.dtype().is(py::dtype(dt)) || a.ndim() != 1)
        throw py::value_error("metadata '" + key + "': expected a 1-D contiguous array of dtype " + dt);
    llmkit::check(llmkit_gguf_writer_set_array(self.w.get(), key.c_str(), elem_type, a.data(), uint64_t(a.size())));
}

void writer_set_string_array(gguf_writer_py &self, const std::string &key, py::sequence items) {
    std::vector<std::string> strings;
    strings.reserve(items.size());
    for (py::handle s : items) strings.push_back(string_bytes(s, "metadata '" + key + "' elements"));
    std::vector<const char *> ptrs;
    std::vector<size_t> lens;
    for (const std::string &s : strings) {
        ptrs.push_back(s.data());
        lens.push_back(s.size());
    }
    llmkit::check(llmkit_gguf_writer_set_string_array(self.w.get(), key.c_str(), ptrs.data(), lens.data(),
                                                      uint64_t(ptrs.size())));
}

void writer_add_tensor(gguf_writer_py &self, const std::string &name, int32_t type, const std::vector<int64_t> &dims,
                       py::array data) {
    py::array a = py::array::ensure(data, py::array::c_style);
    if (!a) throw py::value_error("tensor '" + name + "': data is not an array");
    llmkit::check(llmkit_gguf_writer_add_tensor(self.w.get(), name.c_str(), type, dims.data(), int32_t(dims.size()),
                                                a.data(), size_t(a.nbytes())));
}

void writer_write(gguf_writer_py &self, const std::string &path) {
    py::gil_scoped_release nogil;
    llmkit::check(llmkit_gguf_writer_write(self.w.get(), path.c_str()));
}

}  // namespace

void bind_gguf(py::module_ &m) {
    py::class_<gguf_handle>(m, "GGUFHandle")
        .def("info", &gguf_info)
        .def("metadata", &gguf_metadata)
        .def("tensors", &gguf_tensors);
    m.def("gguf_open", &gguf_open, py::arg("path"), py::arg("allow_duplicate_keys") = false);
    m.def("ggml_type_info", &ggml_type_info, py::arg("type"));
    py::class_<gguf_writer_py>(m, "GGUFWriterHandle")
        .def(py::init<>())
        .def("set_scalar", &writer_set_scalar, py::arg("key"), py::arg("type"), py::arg("value"))
        .def("set_array", &writer_set_array, py::arg("key"), py::arg("elem_type"), py::arg("data"))
        .def("set_string_array", &writer_set_string_array, py::arg("key"), py::arg("items"))
        .def("add_tensor", &writer_add_tensor, py::arg("name"), py::arg("type"), py::arg("dims"), py::arg("data"))
        .def("write", &writer_write, py::arg("path"));
}

}  // namespace llmkit_py
