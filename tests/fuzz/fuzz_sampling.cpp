// libFuzzer harness: the sampling block's C API (llmkit.h) on arbitrary
// programs. The input builds a sampler chain (every step kind, with
// parameters in and out of their domains, ids and DRY breakers from the
// input), then runs up to 12 operations on it: sample and apply over logits
// of any dtype, shape and strides (-inf, NaN and infinities included), with
// sequence ids and the optional logprob outputs; accept, reset, describe
// into a small buffer; llmkit_sample; and speculative verification on
// probabilities that may be unnormalised, negative or NaN, and drafts that
// may lie outside the vocabulary. Every tensor lies in a heap buffer of
// exactly the bytes it reaches (fuzz_tensors.hpp). What must hold:
//   - no crash and no sanitizer report;
//   - a failed call returns a documented status with a message;
//   - a successful sample gives every row a token id in [0, V), and a
//     processed logit for it that is not -inf (nor NaN);
//   - a successful apply writes no NaN and no +inf;
//   - a successful verification accepts 0..K drafts per row, emits them
//     and then an id in [0, V), and -1 after.
#include <cmath>
#include <cstdint>
#include <vector>

#include "fuzz_tensors.hpp"
#include "llmkit/llmkit.h"

namespace {

using namespace llmkit_fuzz;

// An id or int64 element of a 1-d or 2-d integer tensor.
int64_t int_at(const fuzz_tensor &f, int64_t i0, int64_t i1 = 0) {
    const int64_t idx[2] = {i0, i1};
    return int64_t(value_at(f, idx));
}

float param(script &s) {
    switch (s.pick(16)) {  // mostly small values, sometimes out of every domain
    case 15: return NAN;
    case 14: return INFINITY;
    case 13: return -1.0f;
    default: return float(s.pick(40)) / 16.0f;
    }
}

void add_steps(script &s, llmkit_sampler_chain *c, int64_t V) {
    const int n = s.pick(7);
    for (int i = 0; i < n; ++i) {
        llmkit_status st = LLMKIT_OK;
        switch (s.pick(18)) {
        case 0: st = llmkit_sampler_chain_add_temperature(c, param(s)); break;
        case 1: st = llmkit_sampler_chain_add_top_k(c, int32_t(s.pick(20)) - 2); break;
        case 2: st = llmkit_sampler_chain_add_top_p(c, param(s), s.pick(4)); break;
        case 3: st = llmkit_sampler_chain_add_min_p(c, param(s), s.pick(4)); break;
        case 4: st = llmkit_sampler_chain_add_typical(c, param(s), s.pick(4)); break;
        case 5: st = llmkit_sampler_chain_add_top_n_sigma(c, param(s)); break;
        case 6: st = llmkit_sampler_chain_add_xtc(c, param(s), param(s), s.pick(4)); break;
        case 7:
            st = llmkit_sampler_chain_add_penalties(c, int32_t(s.pick(40)) - 2, param(s), param(s) - 1.0f,
                                                    param(s) - 1.0f);
            break;
        case 8: {
            std::vector<int32_t> breakers(static_cast<size_t>(s.pick(5)));
            for (auto &b : breakers) b = int32_t(s.pick(int(V) + 4)) - 2;
            st = llmkit_sampler_chain_add_dry(c, param(s), param(s) + 1.0f, int32_t(s.pick(6)) - 1,
                                              int32_t(s.pick(40)) - 2, breakers.empty() ? nullptr : breakers.data(),
                                              breakers.size());
            break;
        }
        case 9: {
            const size_t n_ids = s.pick(6);
            std::vector<int32_t> ids(n_ids);
            std::vector<float> biases(n_ids);
            for (size_t j = 0; j < n_ids; ++j) {
                ids[j] = int32_t(s.pick(int(V) + 8)) - 2;
                biases[j] = s.pick(8) == 7 ? -INFINITY : param(s) - 1.0f;
            }
            st = llmkit_sampler_chain_add_logit_bias(c, n_ids ? ids.data() : nullptr, n_ids ? biases.data() : nullptr,
                                                     n_ids);
            break;
        }
        case 10: {
            std::vector<int32_t> ids(static_cast<size_t>(s.pick(6)));
            for (auto &x : ids) x = int32_t(s.pick(int(V) + 8)) - 2;
            st = llmkit_sampler_chain_add_banned_tokens(c, ids.empty() ? nullptr : ids.data(), ids.size());
            break;
        }
        case 11: st = llmkit_sampler_chain_add_mirostat(c, param(s), param(s), int32_t(s.pick(120)) - 2); break;
        case 12: st = llmkit_sampler_chain_add_mirostat_v2(c, param(s), param(s)); break;
        case 13: st = llmkit_sampler_chain_add_dynamic_temperature(c, param(s), param(s), param(s)); break;
        case 14: st = llmkit_sampler_chain_add_greedy(c); break;
        case 15: st = llmkit_sampler_chain_add_dist(c); break;
        default: break;
        }
        check_status(st);
    }
}

// One sample or apply call over a [B, V] (or [V]) logits tensor.
void sample_or_apply(script &s, llmkit_sampler_chain *c, int64_t V, bool apply) {
    const bool rank1 = s.pick(4) == 3;
    const int64_t B = rank1 ? 1 : 1 + s.pick(4);
    const kind lk = pick_kind(s);
    fuzz_tensor logits;
    std::vector<int64_t> ld = rank1 ? std::vector<int64_t>{dim(s, V)} : std::vector<int64_t>{dim(s, B), dim(s, V)};
    if (!make_tensor(s, logits, ld, lk, s.pick(16) == 15)) return;
    // Some logits -inf (banned by the caller); maybe a whole row.
    if (s.pick(4) == 3 && logits.elem == 4 && !logits.hostile) {
        const float ninf = -INFINITY;
        const size_t every = 1 + s.pick(4);
        for (size_t b = 4; b < logits.bytes; b += 4 * every) std::memcpy(logits.buf.get() + b, &ninf, 4);  // not the poison at 0
    }
    llmkit_sample_options o = LLMKIT_SAMPLE_OPTIONS_INIT;
    o.n_threads = s.pick(3);
    std::vector<int64_t> ids(static_cast<size_t>(B));
    if (s.pick(4) == 3) {
        for (auto &x : ids) x = int64_t(s.pick(6)) - (s.pick(16) == 15 ? 3 : 0);
        o.seq_ids = ids.data();
        o.n_seq_ids = size_t(s.pick(8) == 7 && B > 1 ? B - 1 : B);
    }
    o.logprob_source = s.pick(16) == 15 ? 2 : s.pick(2);  // 2 is no source
    fuzz_tensor chosen, top_ids, top_lp;
    const int64_t n_top = s.pick(5);
    if (!apply && s.bit()) {
        if (!make_tensor(s, chosen, {dim(s, B)}, kind::f32, false)) return;
        o.chosen_logprobs = &chosen.t;
    }
    if (!apply && s.bit()) {
        if (!make_tensor(s, top_ids, {dim(s, B), dim(s, n_top)}, s.bit() ? kind::i64 : kind::i32, false)) return;
        if (!make_tensor(s, top_lp, {dim(s, B), dim(s, n_top)}, kind::f32, false)) return;
        o.top_ids = &top_ids.t;
        o.top_logprobs = &top_lp.t;
    }
    if (s.pick(32) == 31) o.struct_size = s.pick(80);
    if (apply) {
        fuzz_tensor out;
        if (!make_tensor(s, out, ld, s.pick(8) == 7 ? kind::bf16 : kind::f32, false)) return;
        const llmkit_status st = llmkit_sampler_chain_apply(c, &logits.t, &out.t, &o);
        check_status(st);
        if (st != LLMKIT_OK) return;
        if (logits.poisoned || logits.hostile || out.hostile) fail("bad logits were accepted");
        for (size_t b = 0; b < out.bytes; b += size_t(out.elem)) {
            const double x = read_at(out, b);
            if (std::isnan(x) || x == INFINITY) fail("apply wrote a NaN or +inf");
        }
        return;
    }
    fuzz_tensor tokens;
    const std::vector<int64_t> td = rank1 ? std::vector<int64_t>{} : std::vector<int64_t>{dim(s, B)};
    if (!make_tensor(s, tokens, td, s.bit() ? kind::i64 : kind::i32, false)) return;
    const llmkit_status st = llmkit_sampler_chain_sample(c, &logits.t, &tokens.t, &o);
    check_status(st);
    if (st != LLMKIT_OK) return;
    if (logits.poisoned || logits.hostile || tokens.hostile) fail("bad logits were accepted");
    if (self_overlapping(tokens)) return;
    const int64_t rows = rank1 ? 1 : logits.shape[0], vocab = logits.shape[rank1 ? 0 : 1];  // as accepted
    for (int64_t b = 0; b < rows; ++b) {
        const int64_t id = rank1 ? int64_t(read_at(tokens, size_t(tokens.t.byte_offset))) : int_at(tokens, b);
        if (id < 0 || id >= vocab) fail("a sampled token id is outside [0, V)");
        const int64_t li[2] = {b, id}, l1[1] = {id};
        if (rank1 ? value_at(logits, l1) == -INFINITY : value_at(logits, li) == -INFINITY)
            fail("a token whose logit is -inf was sampled");
    }
}

void verify(script &s, int64_t V) {
    const int64_t B = 1 + s.pick(3), K = s.pick(5);
    const kind pk = s.pick(4) == 3 ? kind::f64 : pick_kind(s);
    fuzz_tensor drafts, dp, tp, out, n_acc;
    if (!make_tensor(s, drafts, {dim(s, B), dim(s, K)}, s.bit() ? kind::i64 : kind::i32, false,
                     s.pick(16) == 15 ? V + 2 : V))
        return;
    if (!make_tensor(s, dp, {dim(s, B), dim(s, K), dim(s, V)}, pk, s.pick(16) == 15)) return;
    if (!make_tensor(s, tp, {dim(s, B), dim(s, K + 1), dim(s, V)}, pk, s.pick(16) == 15)) return;
    // Probabilities: |x| mostly (the generator's values are signed), sometimes left negative.
    const bool keep_negative = s.pick(8) == 7;
    for (fuzz_tensor *p : {&dp, &tp})
        if (!keep_negative && !p->hostile)
            for (size_t b = 0; b < p->bytes; b += size_t(p->elem))
                p->buf[b + size_t(p->elem) - 1] &= 0x7F;  // the sign bit (little-endian)
    const bool tok64 = s.bit();
    if (!make_tensor(s, out, {dim(s, B), dim(s, K + 1)}, tok64 ? kind::i64 : kind::i32, false)) return;
    if (!make_tensor(s, n_acc, {dim(s, B)}, tok64 ? kind::i64 : kind::i32, false)) return;
    llmkit_speculative_options o = LLMKIT_SPECULATIVE_OPTIONS_INIT;
    o.seed = s.u16();
    o.step = s.u16();
    o.n_threads = s.pick(3);
    const llmkit_status st = llmkit_verify_speculative(&drafts.t, &dp.t, &tp.t, &out.t, &n_acc.t, &o);
    check_status(st);
    if (st != LLMKIT_OK) return;
    // (A NaN in a probability row past the first rejection is never read, as
    // llmkit.h says, so poisoned probabilities may pass.)
    for (const fuzz_tensor *t : {&drafts, &dp, &tp, &out, &n_acc})
        if (t->hostile) fail("overflowing strides were accepted");
    if (self_overlapping(out) || self_overlapping(n_acc)) return;
    const int64_t rows = drafts.shape[0], k = drafts.shape[1], vocab = dp.shape[2];  // as accepted
    for (int64_t b = 0; b < rows; ++b) {
        const int64_t n = int_at(n_acc, b);
        if (n < 0 || n > k) fail("n_accepted outside 0..K");
        for (int64_t j = 0; j <= k; ++j) {
            const int64_t id = int_at(out, b, j);
            if (j <= n ? (id < 0 || id >= vocab) : id != -1) fail("verification emitted a bad token row");
            if (j < n && id != int_at(drafts, b, j)) fail("an accepted token is not the draft");
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    script s{data, size};
    const int64_t V = 1 + s.pick(64);
    llmkit_sampler_chain_options co = LLMKIT_SAMPLER_CHAIN_OPTIONS_INIT;
    co.seed = s.u16();
    llmkit_sampler_chain *c = nullptr;
    check_status(llmkit_sampler_chain_create(&c, &co));
    if (!c) return 0;
    add_steps(s, c, V);
    for (int step = 0; step < 12 && s.i < s.n; ++step) {
        switch (s.pick(8)) {
        case 0:
        case 1: sample_or_apply(s, c, V, false); break;
        case 2: sample_or_apply(s, c, V, true); break;
        case 3: {
            std::vector<int32_t> toks(static_cast<size_t>(s.pick(8)));
            for (auto &t : toks) t = int32_t(s.pick(int(V) + 4)) - 2;
            check_status(llmkit_sampler_chain_accept(c, int64_t(s.pick(6)) - 1, toks.empty() ? nullptr : toks.data(),
                                                     toks.size()));
            break;
        }
        case 4: check_status(llmkit_sampler_chain_reset(c, int64_t(s.pick(6)) - 2)); break;
        case 5: {
            char buf[24];
            size_t needed = 0;
            const llmkit_status st = llmkit_sampler_chain_describe(c, s.bit() ? buf : nullptr, s.pick(25), &needed);
            if (st != LLMKIT_ERROR_BUFFER_TOO_SMALL) check_status(st);
            break;
        }
        case 6: {
            fuzz_tensor logits, tokens;
            const int64_t B = 1 + s.pick(3);
            if (!make_tensor(s, logits, {dim(s, B), dim(s, V)}, pick_kind(s), s.pick(16) == 15)) break;
            if (!make_tensor(s, tokens, {dim(s, B)}, s.bit() ? kind::i64 : kind::i32, false)) break;
            llmkit_sample_params p = LLMKIT_SAMPLE_PARAMS_INIT;
            p.temperature = param(s);
            p.top_k = int32_t(s.pick(10)) - 1;
            p.top_p = s.pick(4) == 3 ? param(s) : 1.0f;
            p.min_p = s.pick(4) == 3 ? param(s) : 0.0f;
            p.seed = s.u16();
            const llmkit_status st = llmkit_sample(&logits.t, &tokens.t, &p);
            check_status(st);
            if (st == LLMKIT_OK) {
                if (logits.poisoned || logits.hostile || tokens.hostile) fail("bad logits were accepted");
                if (self_overlapping(tokens)) break;
                for (int64_t b = 0; b < logits.shape[0]; ++b)
                    if (int_at(tokens, b) < 0 || int_at(tokens, b) >= logits.shape[1])
                        fail("llmkit_sample gave an id outside [0, V)");
            }
            break;
        }
        default: verify(s, V); break;
        }
    }
    llmkit_sampler_chain_free(c);
    return 0;
}
