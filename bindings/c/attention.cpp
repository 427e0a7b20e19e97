// C ABI: scaled-dot-product attention, RoPE, KV-cache arithmetic.
#include <cmath>
#include <optional>

#include "attention/attention.hpp"
#include "guard.hpp"
#include "llmkit/llmkit.h"

using namespace llmkit;
using core::fail;

namespace {

const llmkit_attention_options k_attention_defaults = LLMKIT_ATTENTION_OPTIONS_INIT;
const llmkit_rope_options k_rope_defaults = LLMKIT_ROPE_OPTIONS_INIT;

}  // namespace

extern "C" {

llmkit_status llmkit_attention(const llmkit_tensor *q, const llmkit_tensor *k, const llmkit_tensor *v,
                               const llmkit_tensor *out, const llmkit_attention_options *options) {
    return capi::guard([&] {
        const auto o = capi::read_options(options, k_attention_defaults, "options");
        const auto tq = core::tensor_view::from(q, "q");
        const auto tk = core::tensor_view::from(k, "k");
        const auto tv = core::tensor_view::from(v, "v");
        const auto to = core::tensor_view::from(out, "out");
        std::optional<core::tensor_view> tm;
        if (o.mask) tm = core::tensor_view::from(o.mask, "options.mask");
        if (o.window < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.window must be >= 0, got ", o.window);
        if (!std::isfinite(o.softcap) || o.softcap < 0.0f)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.softcap must be finite and >= 0, got ", o.softcap);
        if (!std::isfinite(o.scale) || o.scale < 0.0f)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.scale must be finite and >= 0 (0 = 1/sqrt(D)), got ", o.scale);
        if (o.n_threads < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.n_threads must be >= 0, got ", o.n_threads);
        if (o.alibi_slopes && tq.ndim == 4)
            for (int64_t h = 0; h < tq.shape[2]; ++h)
                if (!std::isfinite(o.alibi_slopes[h]))
                    fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.alibi_slopes[", h, "] is not finite (", o.alibi_slopes[h], ")");
        attention::attention_params p;
        p.causal = o.causal != 0;
        p.window = o.window;
        p.softcap = o.softcap;
        p.scale = o.scale;
        p.alibi_slopes = o.alibi_slopes;
        p.mask = tm ? &*tm : nullptr;
        p.n_threads = o.n_threads;
        p.stream = o.stream;
        attention::attention(tq, tk, tv, to, p);
    });
}

llmkit_status llmkit_rope(const llmkit_tensor *x, const llmkit_tensor *positions, const llmkit_rope_options *options) {
    return capi::guard([&] {
        const auto o = capi::read_options(options, k_rope_defaults, "options");
        const auto tx = core::tensor_view::from(x, "x");
        const auto tp = core::tensor_view::from(positions, "positions");
        if (o.n_threads < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.n_threads must be >= 0, got ", o.n_threads);
        attention::rope_params p;
        p.layout = attention::rope_layout(o.layout);
        p.theta = o.theta;
        p.rotary_dims = o.rotary_dims;
        p.scaling = attention::rope_scaling(o.scaling);
        p.factor = o.factor;
        p.alpha = o.alpha;
        p.low_freq_factor = o.low_freq_factor;
        p.high_freq_factor = o.high_freq_factor;
        p.original_max_position = o.original_max_position;
        p.beta_fast = o.beta_fast;
        p.beta_slow = o.beta_slow;
        p.attention_factor = o.attention_factor;
        p.n_threads = o.n_threads;
        p.stream = o.stream;
        attention::rope(tx, tp, p);
    });
}

llmkit_status llmkit_kv_cache_bytes(uint64_t *out, int64_t n_layers, int64_t n_kv_heads, int64_t head_dim,
                                    int64_t dtype_bytes, int64_t context, int64_t batch) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = 0;
        *out = attention::kv_cache_bytes(n_layers, n_kv_heads, head_dim, dtype_bytes, context, batch);
    });
}

}  // extern "C"
