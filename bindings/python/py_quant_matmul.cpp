// llmkit._llmkit: matmul with quantized weights (llmkit_quant_matmul*). The
// Python layer (llmkit/_quant.py: QuantizedTensor.matmul, quant_matmul_int8)
// checks the arguments the C library cannot see.
#include "py_common.hpp"

namespace llmkit_py {
namespace {

// The output of x [m, k] (or [k]) times n weight rows: [m, n] (or [n]). Other
// ranks get a [n] output and the C library names the problem.
std::vector<int64_t> out_shape(const tensor_arg &x, int64_t n) {
    if (x.ndim() == 2) return {x.shape[0], n};
    return {n};
}

py::array_t<float> quant_matmul(py::handle x_obj, int32_t type, py::array_t<uint8_t, py::array::c_style> blocks,
                                int64_t n_rows, int64_t k, int32_t num_threads) {
    const tensor_arg x = to_tensor(x_obj, "x", fallback::floating);
    const std::vector<int64_t> shape = out_shape(x, n_rows < 0 ? 0 : n_rows);
    py::array_t<float> out(std::vector<py::ssize_t>(shape.begin(), shape.end()));
    const llmkit::tensor_ref xt = x.ref();
    const llmkit::tensor_ref yt = llmkit::f32(out.mutable_data(), shape);
    llmkit_quant_matmul_options o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    o.n_threads = num_threads;
    const void *w = blocks.data();
    const size_t w_bytes = size_t(blocks.size());
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_quant_matmul(xt.get(), type, w, w_bytes, n_rows, k, yt.get(), &o));
    }
    return out;
}

py::array_t<float> quant_matmul_int8(py::handle x_obj, py::handle w_obj, py::handle scales_obj, int32_t num_threads,
                                     int32_t x_rounding) {
    const tensor_arg x = to_tensor(x_obj, "x", fallback::floating);
    const tensor_arg w = to_tensor(w_obj, "weight", fallback::index);
    const tensor_arg s = to_tensor(scales_obj, "scales", fallback::floating);
    const std::vector<int64_t> shape = out_shape(x, w.ndim() >= 1 ? w.shape[0] : 0);
    py::array_t<float> out(std::vector<py::ssize_t>(shape.begin(), shape.end()));
    const llmkit::tensor_ref xt = x.ref(), wt = w.ref(), st = s.ref();
    const llmkit::tensor_ref yt = llmkit::f32(out.mutable_data(), shape);
    llmkit_quant_matmul_options o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    o.n_threads = num_threads;
    o.x_rounding = x_rounding;
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_quant_matmul_int8(xt.get(), wt.get(), st.get(), yt.get(), &o));
    }
    return out;
}

}  // namespace

void bind_quant_matmul(py::module_ &m) {
    m.def("quant_matmul", &quant_matmul, py::arg("x"), py::arg("type"), py::arg("blocks"), py::arg("n_rows"),
          py::arg("k"), py::arg("num_threads") = 0);
    m.def("quant_matmul_int8", &quant_matmul_int8, py::arg("x"), py::arg("weight"), py::arg("scales"),
          py::arg("num_threads") = 0, py::arg("x_rounding") = int32_t(LLMKIT_QUANT_X_BLOCKS));
    m.def("quant_matmul_supported", [](int32_t type) { return llmkit_quant_matmul_supported(type) != 0; },
          py::arg("type"));
    m.def("quant_matmul_isa", [] { return std::string(llmkit_quant_matmul_isa()); });
}

}  // namespace llmkit_py
