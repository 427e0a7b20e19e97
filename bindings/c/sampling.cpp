// C ABI: sampler chains, one-call sampling, speculative verification.
#include <cmath>
#include <cstring>
#include <functional>
#include <optional>

#include "guard.hpp"
#include "llmkit/llmkit.h"
#include "sampling/chain.hpp"

using namespace llmkit;
using core::fail;
using sampling::step;
using sampling::step_kind;

struct llmkit_sampler_chain {
    explicit llmkit_sampler_chain(uint64_t seed) : impl(seed) {}
    sampling::chain impl;
};

namespace {

const llmkit_sampler_chain_options k_chain_defaults = LLMKIT_SAMPLER_CHAIN_OPTIONS_INIT;
const llmkit_sample_options k_sample_defaults = LLMKIT_SAMPLE_OPTIONS_INIT;
const llmkit_sample_params k_params_defaults = LLMKIT_SAMPLE_PARAMS_INIT;
const llmkit_speculative_options k_spec_defaults = LLMKIT_SPECULATIVE_OPTIONS_INIT;

void require_finite(float x, const char *step, const char *what) {
    if (!std::isfinite(x)) fail(LLMKIT_ERROR_INVALID_ARGUMENT, step, ": ", what, " must be finite, got ", x);
}

void require_probability(float p, bool allow_zero, const char *step, const char *what) {
    const bool ok = allow_zero ? (p >= 0.0f && p <= 1.0f) : (p > 0.0f && p <= 1.0f);
    if (!ok)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, step, ": ", what, " must be in ", allow_zero ? "[0, 1]" : "(0, 1]",
             ", got ", p);
}

// Validates the step's parameters (inside `make`) and appends it.
llmkit_status add(llmkit_sampler_chain *chain, const std::function<step()> &make) {
    return capi::guard([&] {
        capi::require_non_null(chain, "chain");
        chain->impl.add(make());
    });
}

step make(step_kind k) {
    step s;
    s.kind = k;
    return s;
}

// The seq_ids of an options struct: both set, or neither.
std::vector<int64_t> seq_ids_from(const int64_t *ids, size_t n) {
    if (ids && n == 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.seq_ids is set but n_seq_ids is 0");
    if (!ids && n != 0) fail(LLMKIT_ERROR_NULL_POINTER, "options.seq_ids is NULL but n_seq_ids is ", n);
    return ids ? std::vector<int64_t>(ids, ids + n) : std::vector<int64_t>();
}

// Builds a host/device tensor_view for an optional output tensor.
std::optional<core::tensor_view> optional_view(const llmkit_tensor *t, const char *name) {
    if (!t) return std::nullopt;
    core::tensor_view v = core::tensor_view::from(t, name);
    v.require_own_elements();
    return v;
}

sampling::sample_call make_call(const llmkit_sample_options &o) {
    sampling::sample_call call;
    if (o.n_threads < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.n_threads must be >= 0, got ", o.n_threads);
    call.n_threads = o.n_threads;
    call.seq_ids = seq_ids_from(o.seq_ids, o.n_seq_ids);
    if (o.logprob_source != LLMKIT_LOGPROBS_RAW && o.logprob_source != LLMKIT_LOGPROBS_PROCESSED)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.logprob_source = ", o.logprob_source, " is not a llmkit_logprob_source");
    call.processed_logprobs = o.logprob_source == LLMKIT_LOGPROBS_PROCESSED;
    call.stream = o.stream;
    return call;
}

// top-p, min-p and typical: a probability p (0 allowed only where it means
// "off") and min_keep, where 0 means 1.
step probability_step(step_kind kind, const char *name, float p, bool allow_zero, size_t min_keep) {
    require_probability(p, allow_zero, name, "p");
    step s = make(kind);
    s.f0 = p;
    s.min_keep = min_keep ? min_keep : 1;
    return s;
}

}  // namespace

extern "C" {

llmkit_status llmkit_sampler_chain_create(llmkit_sampler_chain **out, const llmkit_sampler_chain_options *options) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = nullptr;
        const auto o = capi::read_options(options, k_chain_defaults, "options");
        *out = new llmkit_sampler_chain(o.seed);
    });
}

void llmkit_sampler_chain_free(llmkit_sampler_chain *chain) { delete chain; }

llmkit_status llmkit_sampler_chain_add_greedy(llmkit_sampler_chain *chain) {
    return add(chain, [] { return make(step_kind::greedy); });
}

llmkit_status llmkit_sampler_chain_add_dist(llmkit_sampler_chain *chain) {
    return add(chain, [] { return make(step_kind::dist); });
}

llmkit_status llmkit_sampler_chain_add_temperature(llmkit_sampler_chain *chain, float t) {
    return add(chain, [&] {
        if (!(t >= 0.0f) || !std::isfinite(t))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "temperature: t must be finite and >= 0, got ", t);
        step s = make(step_kind::temperature);
        s.f0 = t;
        return s;
    });
}

llmkit_status llmkit_sampler_chain_add_dynamic_temperature(llmkit_sampler_chain *chain, float t, float delta,
                                                           float exponent) {
    return add(chain, [&] {
        if (!(t >= 0.0f) || !std::isfinite(t))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "dynamic_temperature: t must be finite and >= 0, got ", t);
        require_finite(delta, "dynamic_temperature", "delta");
        if (!(exponent > 0.0f) || !std::isfinite(exponent))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "dynamic_temperature: exponent must be finite and > 0, got ", exponent);
        step s = make(step_kind::dynamic_temperature);
        s.f0 = t;
        s.f1 = delta;
        s.f2 = exponent;
        return s;
    });
}

llmkit_status llmkit_sampler_chain_add_top_k(llmkit_sampler_chain *chain, int32_t k) {
    return add(chain, [&] {
        if (k <= 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "top_k: k must be >= 1, got ", k);
        step s = make(step_kind::top_k);
        s.i0 = k;
        return s;
    });
}

llmkit_status llmkit_sampler_chain_add_top_p(llmkit_sampler_chain *chain, float p, size_t min_keep) {
    return add(chain, [&] { return probability_step(step_kind::top_p, "top_p", p, false, min_keep); });
}

llmkit_status llmkit_sampler_chain_add_min_p(llmkit_sampler_chain *chain, float p, size_t min_keep) {
    return add(chain, [&] { return probability_step(step_kind::min_p, "min_p", p, true, min_keep); });
}

llmkit_status llmkit_sampler_chain_add_typical(llmkit_sampler_chain *chain, float p, size_t min_keep) {
    return add(chain, [&] { return probability_step(step_kind::typical, "typical", p, false, min_keep); });
}

llmkit_status llmkit_sampler_chain_add_top_n_sigma(llmkit_sampler_chain *chain, float n) {
    return add(chain, [&] {
        if (!(n >= 0.0f) || !std::isfinite(n))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "top_n_sigma: n must be finite and >= 0, got ", n);
        step s = make(step_kind::top_n_sigma);
        s.f0 = n;
        return s;
    });
}

llmkit_status llmkit_sampler_chain_add_xtc(llmkit_sampler_chain *chain, float probability, float threshold,
                                           size_t min_keep) {
    return add(chain, [&] {
        require_probability(probability, true, "xtc", "probability");
        require_probability(threshold, true, "xtc", "threshold");
        step s = make(step_kind::xtc);
        s.f0 = probability;
        s.f1 = threshold;
        s.min_keep = min_keep ? min_keep : 1;
        return s;
    });
}

llmkit_status llmkit_sampler_chain_add_penalties(llmkit_sampler_chain *chain, int32_t last_n, float repeat,
                                                 float frequency, float presence) {
    return add(chain, [&] {
        if (last_n < -1) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "penalties: last_n must be >= -1, got ", last_n);
        if (!(repeat > 0.0f) || !std::isfinite(repeat))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "penalties: repeat must be finite and > 0, got ", repeat);
        require_finite(frequency, "penalties", "frequency");
        require_finite(presence, "penalties", "presence");
        step s = make(step_kind::penalties);
        s.i0 = last_n;
        s.f0 = repeat;
        s.f1 = frequency;
        s.f2 = presence;
        return s;
    });
}

llmkit_status llmkit_sampler_chain_add_dry(llmkit_sampler_chain *chain, float multiplier, float base,
                                           int32_t allowed_length, int32_t last_n, const int32_t *breakers,
                                           size_t n_breakers) {
    return add(chain, [&] {
        if (!(multiplier >= 0.0f) || !std::isfinite(multiplier))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "dry: multiplier must be finite and >= 0, got ", multiplier);
        if (!(base >= 1.0f) || !std::isfinite(base))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "dry: base must be finite and >= 1, got ", base);
        if (allowed_length < 1)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "dry: allowed_length must be >= 1, got ", allowed_length);
        if (last_n < -1) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "dry: last_n must be >= -1, got ", last_n);
        if (n_breakers && !breakers) fail(LLMKIT_ERROR_NULL_POINTER, "dry: breakers is NULL but n_breakers = ", n_breakers);
        step s = make(step_kind::dry);
        s.f0 = multiplier;
        s.f1 = base;
        s.i0 = allowed_length;
        s.i1 = last_n;
        s.ids.assign(breakers, breakers + n_breakers);
        return s;
    });
}

llmkit_status llmkit_sampler_chain_add_logit_bias(llmkit_sampler_chain *chain, const int32_t *ids,
                                                  const float *biases, size_t n) {
    return add(chain, [&] {
        if (n && (!ids || !biases)) fail(LLMKIT_ERROR_NULL_POINTER, "logit_bias: ids or biases is NULL");
        step s = make(step_kind::logit_bias);
        for (size_t i = 0; i < n; ++i) {
            if (ids[i] < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "logit_bias: id ", i, " is negative (", ids[i], ")");
            if (std::isnan(biases[i]) || biases[i] == INFINITY)
                fail(LLMKIT_ERROR_INVALID_ARGUMENT, "logit_bias: bias ", i, " is ", biases[i],
                     " (must be finite, or -inf to ban)");
        }
        s.ids.assign(ids, ids + n);
        s.values.assign(biases, biases + n);
        return s;
    });
}

llmkit_status llmkit_sampler_chain_add_banned_tokens(llmkit_sampler_chain *chain, const int32_t *ids, size_t n) {
    return add(chain, [&] {
        if (n && !ids) fail(LLMKIT_ERROR_NULL_POINTER, "banned_tokens: ids is NULL");
        step s = make(step_kind::logit_bias);
        for (size_t i = 0; i < n; ++i)
            if (ids[i] < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "banned_tokens: id ", i, " is negative (", ids[i], ")");
        s.ids.assign(ids, ids + n);
        s.values.assign(n, -INFINITY);
        return s;
    });
}

llmkit_status llmkit_sampler_chain_add_mirostat(llmkit_sampler_chain *chain, float tau, float eta, int32_t m) {
    return add(chain, [&] {
        if (!(tau > 0.0f) || !std::isfinite(tau)) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "mirostat: tau must be > 0, got ", tau);
        if (!(eta > 0.0f) || !std::isfinite(eta)) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "mirostat: eta must be > 0, got ", eta);
        if (m < 2) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "mirostat: m must be >= 2, got ", m);
        step s = make(step_kind::mirostat);
        s.f0 = tau;
        s.f1 = eta;
        s.i0 = m;
        return s;
    });
}

llmkit_status llmkit_sampler_chain_add_mirostat_v2(llmkit_sampler_chain *chain, float tau, float eta) {
    return add(chain, [&] {
        if (!(tau > 0.0f) || !std::isfinite(tau)) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "mirostat_v2: tau must be > 0, got ", tau);
        if (!(eta > 0.0f) || !std::isfinite(eta)) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "mirostat_v2: eta must be > 0, got ", eta);
        step s = make(step_kind::mirostat_v2);
        s.f0 = tau;
        s.f1 = eta;
        return s;
    });
}

llmkit_status llmkit_sampler_chain_length(const llmkit_sampler_chain *chain, size_t *out) {
    return capi::guard([&] {
        capi::require_non_null(chain, "chain");
        capi::require_non_null(out, "out");
        *out = chain->impl.length();
    });
}

llmkit_status llmkit_sampler_chain_describe(const llmkit_sampler_chain *chain, char *buf, size_t capacity,
                                            size_t *needed) {
    return capi::guard([&] {
        capi::require_non_null(chain, "chain");
        const std::string text = chain->impl.describe();
        if (needed) *needed = text.size() + 1;
        if (!buf) return;
        if (capacity < text.size() + 1)
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "describe: buffer of ", capacity, " bytes, ", text.size() + 1, " needed");
        std::memcpy(buf, text.c_str(), text.size() + 1);
    });
}

llmkit_status llmkit_sampler_chain_accept(llmkit_sampler_chain *chain, int64_t seq_id, const int32_t *tokens, size_t n) {
    return capi::guard([&] {
        capi::require_non_null(chain, "chain");
        if (n) capi::require_non_null(tokens, "tokens");
        chain->impl.accept(seq_id, tokens, n);
    });
}

llmkit_status llmkit_sampler_chain_reset(llmkit_sampler_chain *chain, int64_t seq_id) {
    return capi::guard([&] {
        capi::require_non_null(chain, "chain");
        chain->impl.reset(seq_id);
    });
}

llmkit_status llmkit_sampler_chain_sample(llmkit_sampler_chain *chain, const llmkit_tensor *logits,
                                          const llmkit_tensor *tokens, const llmkit_sample_options *options) {
    return capi::guard([&] {
        capi::require_non_null(chain, "chain");
        const auto o = capi::read_options(options, k_sample_defaults, "options");
        const auto lv = core::tensor_view::from(logits, "logits");
        const auto tv = core::tensor_view::from(tokens, "tokens");
        tv.require_own_elements();
        const auto chosen = optional_view(o.chosen_logprobs, "chosen_logprobs");
        const auto top_ids = optional_view(o.top_ids, "top_ids");
        const auto top_lp = optional_view(o.top_logprobs, "top_logprobs");
        sampling::sample_call call = make_call(o);
        call.chosen_logprobs = chosen ? &*chosen : nullptr;
        call.top_ids = top_ids ? &*top_ids : nullptr;
        call.top_logprobs = top_lp ? &*top_lp : nullptr;
        sampling::sample_dispatch(chain->impl, lv, tv, call);
    });
}

llmkit_status llmkit_sampler_chain_apply(llmkit_sampler_chain *chain, const llmkit_tensor *logits,
                                         const llmkit_tensor *out_logits, const llmkit_sample_options *options) {
    return capi::guard([&] {
        capi::require_non_null(chain, "chain");
        const auto o = capi::read_options(options, k_sample_defaults, "options");
        const auto lv = core::tensor_view::from(logits, "logits");
        const auto ov = core::tensor_view::from(out_logits, "out_logits");
        ov.require_own_elements();
        sampling::sample_call call = make_call(o);
        sampling::apply_dispatch(chain->impl, lv, ov, call);
    });
}

llmkit_status llmkit_sample(const llmkit_tensor *logits, const llmkit_tensor *tokens,
                            const llmkit_sample_params *params) {
    return capi::guard([&] {
        const auto p = capi::read_options(params, k_params_defaults, "params");
        const auto lv = core::tensor_view::from(logits, "logits");
        const auto tv = core::tensor_view::from(tokens, "tokens");
        tv.require_own_elements();
        if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "temperature must be finite and >= 0, got ", p.temperature);
        if (p.top_k < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "top_k must be >= 0 (0 disables it), got ", p.top_k);
        require_probability(p.top_p, false, "sample", "top_p");
        require_probability(p.min_p, true, "sample", "min_p");
        if (p.n_threads < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "n_threads must be >= 0, got ", p.n_threads);
        sampling::chain c(p.seed);
        step s = make(step_kind::temperature);
        s.f0 = p.temperature;
        if (p.temperature != 1.0f) c.add(s);
        if (p.top_k > 0) {
            step k = make(step_kind::top_k);
            k.i0 = p.top_k;
            c.add(k);
        }
        if (p.top_p < 1.0f) {
            step t = make(step_kind::top_p);
            t.f0 = p.top_p;
            c.add(t);
        }
        if (p.min_p > 0.0f) {
            step m = make(step_kind::min_p);
            m.f0 = p.min_p;
            c.add(m);
        }
        c.add(make(p.temperature == 0.0f ? step_kind::greedy : step_kind::dist));
        sampling::sample_call call;
        call.n_threads = p.n_threads;
        sampling::sample_dispatch(c, lv, tv, call);
    });
}

llmkit_status llmkit_verify_speculative(const llmkit_tensor *draft_tokens, const llmkit_tensor *draft_probs,
                                        const llmkit_tensor *target_probs, const llmkit_tensor *out_tokens,
                                        const llmkit_tensor *out_n_accepted,
                                        const llmkit_speculative_options *options) {
    return capi::guard([&] {
        const auto o = capi::read_options(options, k_spec_defaults, "options");
        const auto a = core::tensor_view::from(draft_tokens, "draft_tokens");
        const auto p = core::tensor_view::from(draft_probs, "draft_probs");
        const auto q = core::tensor_view::from(target_probs, "target_probs");
        const auto t = core::tensor_view::from(out_tokens, "out_tokens");
        const auto n = core::tensor_view::from(out_n_accepted, "out_n_accepted");
        t.require_own_elements();
        n.require_own_elements();
        if (o.n_threads < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.n_threads must be >= 0, got ", o.n_threads);
        if (o.step > 0xffffffffu) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.step must be < 2^32, got ", o.step);
        sampling::speculative_call call;
        call.seed = o.seed;
        call.step_number = o.step;
        call.n_threads = o.n_threads;
        call.stream = o.stream;
        call.seq_ids = seq_ids_from(o.seq_ids, o.n_seq_ids);
        sampling::verify_speculative_dispatch(a, p, q, t, n, call);
    });
}

}  // extern "C"
