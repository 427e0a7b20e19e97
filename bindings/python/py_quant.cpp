// llmkit._llmkit: quantization (GGUF block formats).
#include "py_common.hpp"

namespace llmkit_py {
namespace {

// ---------------------------------------------------------------------------
// Quantization (GGUF block formats). The Python layer (llmkit/_quant.py) turns
// type names into ggml type ids and keeps the bytes with their type and shape.

std::optional<std::string> quant_type_name(int32_t type) {
    const char *n = llmkit_quant_type_name(type);
    if (!n) return std::nullopt;
    return std::string(n);
}

py::tuple quant_block_size(int32_t type) {
    int64_t elements = 0, bytes = 0;
    llmkit::check(llmkit_quant_block_size(&elements, &bytes, type));
    return py::make_tuple(elements, bytes);
}

size_t quant_row_bytes(int32_t type, int64_t n) {
    size_t out = 0;
    llmkit::check(llmkit_quant_row_bytes(&out, type, n));
    return out;
}

// Quantizes a float32 [rows, n] or [n] array; returns the blocks as uint8.
// The output size comes from the shape; where the shape is one llmkit refuses
// (rank, n not a multiple of the block), the call is made with no buffer so
// that the C library reports the problem in its own words.
py::array_t<uint8_t> quantize(py::handle src_obj, int32_t type, const std::optional<f32_array> &imatrix,
                              int32_t num_threads, int32_t zero_point) {
    const tensor_arg src = to_tensor(src_obj, "array", fallback::floating);
    size_t needed = 0;
    if (src.ndim() == 1 || src.ndim() == 2) {
        size_t bytes = 0;
        if (llmkit_quant_tensor_bytes(&bytes, type, src.ndim() == 2 ? src.shape[0] : 1, src.shape.back()) == LLMKIT_OK)
            needed = bytes;
    }
    py::array_t<uint8_t> out(static_cast<py::ssize_t>(needed));
    llmkit::tensor_ref st = src.ref();
    llmkit_quantize_options o = LLMKIT_QUANTIZE_OPTIONS_INIT;
    o.n_threads = num_threads;
    if (imatrix) {
        // The C call cannot see the length: it reads one weight per column.
        if (src.ndim() >= 1 && imatrix->size() != py::ssize_t(src.shape.back()))
            throw py::value_error("imatrix has " + std::to_string(imatrix->size()) + " weights; the rows have " +
                                  std::to_string(src.shape.back()) + " columns (one weight per column)");
        o.imatrix = imatrix->data();
    }
    o.zero_point = zero_point;
    size_t written = 0;
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_quantize(&written, type, st.get(), needed ? out.mutable_data() : nullptr, needed, &o));
    }
    return out;
}

// Decodes blocks into a new float32 array of the given shape ([rows, n] or [n]).
py::array_t<float> dequantize(int32_t type, py::array_t<uint8_t, py::array::c_style> blocks,
                              const std::vector<int64_t> &shape, int32_t num_threads) {
    std::vector<py::ssize_t> pshape(shape.begin(), shape.end());
    py::array_t<float> out(pshape);
    llmkit::tensor_ref dt = llmkit::f32(out.mutable_data(), shape);
    llmkit_dequantize_options o = LLMKIT_DEQUANTIZE_OPTIONS_INIT;
    o.n_threads = num_threads;
    const void *src = blocks.data();
    const size_t n = size_t(blocks.size());
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_dequantize(type, src, n, dt.get(), &o));
    }
    return out;
}

// Formats with side arrays (int8, nf4, fp8, gptq/awq int4): total size, plane
// layout and conversions.
size_t quant_tensor_bytes(int32_t type, int64_t rows, int64_t n) {
    size_t out = 0;
    llmkit::check(llmkit_quant_tensor_bytes(&out, type, rows, n));
    return out;
}

// [(name, offset, bytes, numpy dtype string, shape tuple), ...]
py::list quant_planes(int32_t type, int64_t rows, int64_t n) {
    llmkit_quant_plane planes[8];
    size_t count = 0;
    llmkit::check(llmkit_quant_planes(planes, 8, &count, type, rows, n));
    py::list out;
    for (size_t i = 0; i < count; ++i) {
        const llmkit_quant_plane &p = planes[i];
        const char kind = p.dtype.code == LLMKIT_DTYPE_INT ? 'i' : (p.dtype.code == LLMKIT_DTYPE_UINT ? 'u' : 'f');
        const std::string dtype = std::string("<") + kind + std::to_string(p.dtype.bits / 8);
        py::tuple shape = p.ndim == 1 ? py::tuple(py::make_tuple(p.shape[0])) : py::tuple(py::make_tuple(p.shape[0], p.shape[1]));
        out.append(py::make_tuple(std::string(p.name), p.offset, p.bytes, dtype, shape));
    }
    return out;
}

// Returns (bytes, {"lossless", "max_abs_error", "rms_error", "max_abs_value"}).
py::tuple quant_convert(int32_t src_type, py::array_t<uint8_t, py::array::c_style> src, int64_t rows, int64_t n,
                        int32_t dst_type, int32_t zero_point, int32_t num_threads) {
    size_t needed = 0;
    llmkit::check(llmkit_quant_tensor_bytes(&needed, dst_type, rows, n));
    py::array_t<uint8_t> out(static_cast<py::ssize_t>(needed));
    llmkit_quantize_options o = LLMKIT_QUANTIZE_OPTIONS_INIT;
    o.n_threads = num_threads;
    o.zero_point = zero_point;
    llmkit_quant_convert_stats st = LLMKIT_QUANT_CONVERT_STATS_INIT;
    const void *in = src.data();
    const size_t in_bytes = size_t(src.size());
    void *dst = needed ? out.mutable_data() : nullptr;
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_quant_convert(nullptr, dst_type, dst, needed, src_type, in, in_bytes, rows, n, &o, &st));
    }
    py::dict stats;
    stats["lossless"] = bool(st.lossless);
    stats["max_abs_error"] = st.max_abs_error;
    stats["rms_error"] = st.rms_error;
    stats["max_abs_value"] = st.max_abs_value;
    return py::make_tuple(out, stats);
}

}  // namespace

void bind_quant(py::module_ &m) {
    m.def("quant_type_from_name", [](const std::string &name) { return llmkit::quant_type_from_name(name); },
          py::arg("name"));
    m.def("quant_type_name", &quant_type_name, py::arg("type"));
    m.def("quant_block_size", &quant_block_size, py::arg("type"));
    m.def("quant_row_bytes", &quant_row_bytes, py::arg("type"), py::arg("n"));
    m.def("quantize", &quantize, py::arg("array"), py::arg("type"), py::arg("imatrix") = py::none(),
          py::arg("num_threads") = 0, py::arg("zero_point") = 0);
    m.def("quant_tensor_bytes", &quant_tensor_bytes, py::arg("type"), py::arg("rows"), py::arg("n"));
    m.def("quant_planes", &quant_planes, py::arg("type"), py::arg("rows"), py::arg("n"));
    m.def("quant_convert", &quant_convert, py::arg("src_type"), py::arg("src"), py::arg("rows"), py::arg("n"),
          py::arg("dst_type"), py::arg("zero_point") = 0, py::arg("num_threads") = 0);
    m.def("dequantize", &dequantize, py::arg("type"), py::arg("blocks"), py::arg("shape"), py::arg("num_threads") = 0);
}

}  // namespace llmkit_py
