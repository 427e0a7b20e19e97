// llmkit._llmkit: attention, RoPE and KV-cache sizes.
#include "py_common.hpp"

namespace llmkit_py {
namespace {

// ---------------------------------------------------------------------------
// Attention, RoPE, KV-cache sizes. Outputs are allocated by the Python layer
// (llmkit/_attention.py) in the input's own array type, so a bf16 or CUDA torch
// tensor gets a torch tensor back; here every array is just a tensor.

void attention(py::handle q_obj, py::handle k_obj, py::handle v_obj, py::handle out_obj, bool causal, int64_t window,
               float softcap, float scale, const std::optional<f32_array> &alibi_slopes, py::handle mask_obj,
               int32_t num_threads) {
    const tensor_arg q = to_tensor(q_obj, "q", fallback::floating);
    const tensor_arg k = to_tensor(k_obj, "k", fallback::floating);
    const tensor_arg v = to_tensor(v_obj, "v", fallback::floating);
    const tensor_arg out = to_tensor(out_obj, "out", fallback::floating);
    std::optional<tensor_arg> mask;
    if (!mask_obj.is_none()) mask.emplace(to_tensor(mask_obj, "mask", fallback::floating));
    llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
    o.causal = causal ? 1 : 0;
    o.window = window;
    o.softcap = softcap;
    o.scale = scale;
    o.n_threads = num_threads;
    if (alibi_slopes) {
        // The C call reads Hq slopes from a bare pointer: the count is checked here.
        const int64_t hq = q.ndim() == 4 ? q.shape[2] : -1;
        if (hq >= 0 && alibi_slopes->ndim() != 1)
            throw py::value_error("alibi_slopes must be 1-D with one slope per query head (" + std::to_string(hq) +
                                  "), got " + std::to_string(alibi_slopes->ndim()) + " dimensions");
        if (hq >= 0 && alibi_slopes->size() != hq)
            throw py::value_error("alibi_slopes has " + std::to_string(alibi_slopes->size()) +
                                  " slopes, but q has " + std::to_string(hq) + " heads");
        o.alibi_slopes = alibi_slopes->data();
    }
    llmkit::tensor_ref qt = q.ref(), kt = k.ref(), vt = v.ref(), ot = out.ref();
    std::optional<llmkit::tensor_ref> mt;
    if (mask) o.mask = mt.emplace(mask->ref()).get();
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_attention(qt.get(), kt.get(), vt.get(), ot.get(), &o));
    }
}

// Rotates x in place (the Python layer copies first unless asked not to).
void rope(py::handle x_obj, py::handle positions_obj, int32_t layout, double theta, int32_t rotary_dims,
          int32_t scaling, double factor, double alpha, double low_freq_factor, double high_freq_factor,
          double original_max_position, double beta_fast, double beta_slow, double attention_factor,
          int32_t num_threads) {
    const tensor_arg x = to_tensor(x_obj, "x", fallback::floating);
    const tensor_arg pos = to_tensor(positions_obj, "positions", fallback::index);
    llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
    o.layout = layout;
    o.theta = theta;
    o.rotary_dims = rotary_dims;
    o.scaling = scaling;
    o.factor = factor;
    o.alpha = alpha;
    o.low_freq_factor = low_freq_factor;
    o.high_freq_factor = high_freq_factor;
    o.original_max_position = original_max_position;
    o.beta_fast = beta_fast;
    o.beta_slow = beta_slow;
    o.attention_factor = attention_factor;
    o.n_threads = num_threads;
    llmkit::tensor_ref xt = x.ref(), pt = pos.ref();
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_rope(xt.get(), pt.get(), &o));
    }
}

uint64_t kv_cache_bytes(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t dtype_bytes, int64_t context,
                        int64_t batch) {
    uint64_t out = 0;
    llmkit::check(llmkit_kv_cache_bytes(&out, n_layers, n_kv_heads, head_dim, dtype_bytes, context, batch));
    return out;
}


}  // namespace

void bind_attention(py::module_ &m) {
    m.def("attention", &attention, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("causal") = false,
          py::arg("window") = 0, py::arg("softcap") = 0.0f, py::arg("scale") = 0.0f,
          py::arg("alibi_slopes") = py::none(), py::arg("mask") = py::none(), py::arg("num_threads") = 0);
    m.def("rope", &rope, py::arg("x"), py::arg("positions"), py::arg("layout") = 0, py::arg("theta") = 10000.0,
          py::arg("rotary_dims") = 0, py::arg("scaling") = 0, py::arg("factor") = 1.0, py::arg("alpha") = 1.0,
          py::arg("low_freq_factor") = 1.0, py::arg("high_freq_factor") = 4.0,
          py::arg("original_max_position") = 8192.0, py::arg("beta_fast") = 32.0, py::arg("beta_slow") = 1.0,
          py::arg("attention_factor") = 0.0, py::arg("num_threads") = 0);
    m.def("kv_cache_bytes", &kv_cache_bytes, py::arg("n_layers"), py::arg("n_kv_heads"), py::arg("head_dim"),
          py::arg("dtype_bytes"), py::arg("context"), py::arg("batch") = 1);
}

}  // namespace llmkit_py
