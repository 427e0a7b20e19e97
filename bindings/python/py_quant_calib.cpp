// llmkit._llmkit: calibrated quantization (GPTQ, AWQ). The Python layer
// (llmkit/_quant.py) picks the type, drives tqdm and shapes the results.
#include <deque>

#include "py_common.hpp"

namespace llmkit_py {
namespace {

// Calls a Python progress callable from the C library's thread (the GIL is
// released around the C call, so take it back here).
void progress_trampoline(int64_t done, int64_t total, void *user_data) {
    py::gil_scoped_acquire gil;
    auto *fn = static_cast<py::function *>(user_data);
    try {
        (*fn)(done, total);
    } catch (py::error_already_set &e) {
        e.discard_as_unraisable("llmkit progress callback");  // never unwind through C
    }
}

// The calibration inputs as C tensor views; the converted arrays they point
// into live as long as this object.
struct calib_tensors {
    std::deque<tensor_arg> args;
    std::deque<llmkit::tensor_ref> refs;
    std::vector<llmkit_tensor> views;
    explicit calib_tensors(const py::list &objs) {
        for (size_t i = 0; i < objs.size(); ++i) {
            args.push_back(to_tensor(objs[i], "calib_inputs[" + std::to_string(i) + "]", fallback::floating));
            refs.push_back(args.back().ref());
            views.push_back(*refs.back().get());
        }
    }
};

// Routes the options' progress callback to a Python callable, when one is given;
// fn must outlive the C call.
template <class Options>
void set_progress(Options &o, const std::optional<py::function> &progress, py::function &fn) {
    if (!progress) return;
    fn = *progress;
    o.progress = &progress_trampoline;
    o.user_data = &fn;
}

py::dict report_dict(const llmkit_quant_layer_report &r) {
    py::dict d;
    d["output_error"] = r.output_error;
    d["rtn_output_error"] = r.rtn_output_error;
    d["dead_columns"] = r.dead_columns;
    return d;
}

// Returns (bytes as uint8, report dict).
py::tuple gptq_quantize(py::handle weight_obj, const py::list &calib_objs, int32_t type, double damp,
                        int32_t block_size, bool act_order, int32_t zero_point, const std::optional<py::function> &progress,
                        int32_t num_threads) {
    const tensor_arg w = to_tensor(weight_obj, "weight", fallback::floating);
    const calib_tensors calib(calib_objs);
    const llmkit::tensor_ref wr = w.ref();
    llmkit_gptq_options o = LLMKIT_GPTQ_OPTIONS_INIT;
    o.n_threads = num_threads;
    o.damp = damp;
    o.block_size = block_size;
    o.act_order = act_order ? 1 : 0;
    o.zero_point = zero_point;
    py::function fn;
    set_progress(o, progress, fn);
    size_t needed = 0;
    if (llmkit_gptq_quantize(&needed, type, wr.get(), calib.views.data(), calib.views.size(), nullptr, 0, &o, nullptr) !=
        LLMKIT_ERROR_BUFFER_TOO_SMALL)
        needed = 0;  // the real call below reports the problem
    py::array_t<uint8_t> out(static_cast<py::ssize_t>(needed));
    llmkit_quant_layer_report rep = LLMKIT_QUANT_LAYER_REPORT_INIT;
    void *dst = needed ? out.mutable_data() : nullptr;
    llmkit_status s;
    {
        py::gil_scoped_release nogil;
        s = llmkit_gptq_quantize(nullptr, type, wr.get(), calib.views.data(), calib.views.size(), dst, needed, &o, &rep);
    }
    llmkit::check(s);
    return py::make_tuple(out, report_dict(rep));
}

// Returns (bytes as uint8, scales float32 [n], report dict).
py::tuple awq_quantize(py::handle weight_obj, const py::list &calib_objs, int32_t type, int32_t n_grid,
                       double max_shrink, bool clip, int32_t zero_point, const std::optional<py::function> &progress,
                       int32_t num_threads) {
    const tensor_arg w = to_tensor(weight_obj, "weight", fallback::floating);
    const calib_tensors calib(calib_objs);
    const llmkit::tensor_ref wr = w.ref();
    llmkit_awq_options o = LLMKIT_AWQ_OPTIONS_INIT;
    o.n_threads = num_threads;
    o.n_grid = n_grid;
    o.max_shrink = max_shrink;
    o.clip = clip ? 1 : 0;
    o.zero_point = zero_point;
    py::function fn;
    set_progress(o, progress, fn);
    size_t needed = 0;
    if (llmkit_awq_quantize(&needed, type, wr.get(), calib.views.data(), calib.views.size(), nullptr, 0, nullptr, &o, nullptr) !=
        LLMKIT_ERROR_BUFFER_TOO_SMALL)
        needed = 0;
    py::array_t<uint8_t> out(static_cast<py::ssize_t>(needed));
    py::array_t<float> scales(static_cast<py::ssize_t>(w.ndim() == 2 ? w.shape[1] : 0));
    llmkit_quant_layer_report rep = LLMKIT_QUANT_LAYER_REPORT_INIT;
    void *dst = needed ? out.mutable_data() : nullptr;
    float *sc = scales.size() ? scales.mutable_data() : nullptr;
    llmkit_status s;
    {
        py::gil_scoped_release nogil;
        s = llmkit_awq_quantize(nullptr, type, wr.get(), calib.views.data(), calib.views.size(), dst, needed, sc, &o, &rep);
    }
    llmkit::check(s);
    return py::make_tuple(out, scales, report_dict(rep));
}

}  // namespace

void bind_quant_calib(py::module_ &m) {
    m.def("gptq_quantize", &gptq_quantize, py::arg("weight"), py::arg("calib"), py::arg("type"), py::arg("damp"),
          py::arg("block_size"), py::arg("act_order"), py::arg("zero_point"), py::arg("progress") = py::none(),
          py::arg("num_threads") = 0);
    m.def("awq_quantize", &awq_quantize, py::arg("weight"), py::arg("calib"), py::arg("type"), py::arg("n_grid"),
          py::arg("max_shrink"), py::arg("clip"), py::arg("zero_point"), py::arg("progress") = py::none(),
          py::arg("num_threads") = 0);
}

}  // namespace llmkit_py
