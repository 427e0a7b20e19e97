// libFuzzer harness: the attention block's C API (llmkit.h) on arbitrary
// descriptors. The input is a script; byte 0 picks the part:
//   - llmkit_attention, llmkit_rope and llmkit_rope_into on tensors whose ranks, shapes,
//     strides (negative, zero and overlapping ones included), dtypes, byte
//     offsets and options come from the input;
//   - a program over a contiguous or paged KV cache (V of its own head_dim,
//     or read from K's rows, sometimes): create, new / fork / free /
//     truncate sequences, erase a span (its keys turned back, or not),
//     release a paged sequence's first tokens (after a
//     well-formed chunk into every layer, mostly), append, attention,
//     attention over caller-made block tables, and save a sequence (also
//     just after a release: format version 2) and load the bytes (damaged
//     or not) into one.
// Every tensor's elements lie in a heap buffer of exactly the bytes its
// shape and strides reach, so ASan sees any access past them. What must hold:
//   - no crash and no sanitizer report;
//   - a failed call returns one of the documented statuses and leaves a
//     message that is not empty;
//   - a successful call writes finite outputs (inputs are finite unless the
//     input asks for a NaN or an infinity, which must be refused).
//   - a successful llmkit_attention matches a float64 evaluation of the
//     formula in llmkit.h (check_reference), whatever the strides, and so do
//     the log-sum-exps it was asked for (options.lse, also from the caches:
//     finite or -inf there); merging a result with itself
//     (llmkit_attention_merge) keeps its rows and adds ln 2 to its lse, and
//     the merge refuses bad shapes, dtypes, strides and values by status;
//   - llmkit_attention_varlen takes packed tensors and offsets, valid or not.
// Sizes are capped so that one input runs in milliseconds. Built with
// -DFUZZ_VERBOSE, the harness prints each call's tensors and status
// (for reading a reproducer).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "fuzz_tensors.hpp"
#include "llmkit/llmkit.h"

namespace {
using namespace llmkit_fuzz;

// Element (i0, i1, i2, i3) of a 4-d tensor, (i0, i1) of a 2-d one, as a double.
double get(const fuzz_tensor &f, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    const int64_t idx[4] = {i0, i1, i2, i3};
    return value_at(f, idx);
}

// Element [b, h, i, j] of a mask broadcast to [B, Hq, Sq, Skv] (torch's attn_mask rule).
double mask_at(const fuzz_tensor &m, int64_t b, int64_t h, int64_t i, int64_t j) {
    const int64_t full[4] = {b, h, i, j};
    int64_t idx[4] = {};
    const int rank = m.t.ndim;
    for (int a = 0; a < rank; ++a) idx[a] = m.shape[a] == 1 ? 0 : full[4 - rank + a];
    if (m.t.dtype.code == LLMKIT_DTYPE_BOOL) return value_at(m, idx) != 0.0 ? 0.0 : -INFINITY;  // (read as int8)
    return value_at(m, idx);
}

// llmkit_attention's result against a float64 evaluation of the formula in
// llmkit.h. The tolerance grows with the scores' float32 rounding (their
// size: sum |q_d k_d| * scale) and with out's own rounding.
void check_reference(const fuzz_tensor &q, const fuzz_tensor &k, const fuzz_tensor &v, const fuzz_tensor &o,
                     const llmkit_attention_options &opt, const fuzz_tensor *mask, const fuzz_tensor *lse) {
    const int64_t B = q.shape[0], Sq = q.shape[1], Hq = q.shape[2], D = q.shape[3], Dv = v.shape[3];
    const int64_t Skv = k.shape[1], Hkv = k.shape[2];
    if (B == 0 || Sq == 0 || Hq == 0 || D == 0) return;
#ifdef FUZZ_VERBOSE
    std::fprintf(stderr, "reference check of [%lld, %lld, %lld, %lld]\n", (long long)B, (long long)Sq, (long long)Hq,
                 (long long)D);
#endif
    const int64_t G = Hq / Hkv;
    const double scale = opt.scale != 0.0f ? double(opt.scale) : 1.0 / std::sqrt(double(D));
    const bool causal = opt.causal || opt.window > 0;
    const double out_eps = o.elem == 4 ? 1e-6 : o.t.dtype.code == LLMKIT_DTYPE_BFLOAT ? 8e-3 : 1e-3;
    std::vector<double> sc(static_cast<size_t>(Skv));
    std::vector<char> vis(static_cast<size_t>(Skv));
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < Sq; ++i)
            for (int64_t h = 0; h < Hq; ++h) {
                const int64_t g = h / G, ip = i + Skv - Sq;
                double m = -INFINITY, size = 0.0, vmax = 0.0;
                bool any = false;
                for (int64_t j = 0; j < Skv; ++j) {
                    vis[size_t(j)] = !(causal && j > ip) && !(opt.window > 0 && j <= ip - opt.window);
                    if (!vis[size_t(j)]) continue;
                    double dot = 0.0, mag = 0.0;
                    for (int64_t d = 0; d < D; ++d) {
                        const double x = get(q, b, i, h, d) * get(k, b, j, g, d);
                        dot += x;
                        mag += std::fabs(x);
                    }
                    double s = scale * dot;
                    if (opt.softcap > 0.0f) s = opt.softcap * std::tanh(s / opt.softcap);
                    if (opt.alibi_slopes) s -= double(opt.alibi_slopes[h]) * double(ip - j);
                    if (mask) s += mask_at(*mask, b, h, i, j);
                    sc[size_t(j)] = s;
                    m = std::max(m, s);
                    size = std::max(size, mag * scale);
                    for (int64_t d = 0; d < Dv; ++d) vmax = std::max(vmax, std::fabs(get(v, b, j, g, d)));
                    any = true;
                }
                const double tol = (4e-6 * (size + 1.0) + out_eps) * (vmax + 1e-30) + 1e-6;
                if (lse) {
                    // ln(sum exp(s_j) + exp(sink)): the scores' float32 rounding plus a float32 sum's.
                    const double sink = opt.sinks ? double(opt.sinks[h]) : -INFINITY;
                    const double top = std::max(m, sink);
                    double den = opt.sinks ? std::exp(sink - top) : 0.0;
                    for (int64_t j = 0; j < Skv; ++j)
                        if (vis[size_t(j)]) den += std::exp(sc[size_t(j)] - top);
                    const int64_t at[3] = {b, i, h};
                    const double want = top == -INFINITY ? -INFINITY : top + std::log(den), got = value_at(*lse, at);
                    const bool ok = std::isinf(want) ? got == want
                                                     : std::fabs(got - want) <= 4e-6 * (size + 1.0) + 2e-6 * std::fabs(want) + 1e-5;
                    if (!ok) {
                        std::fprintf(stderr, "lse[%lld, %lld, %lld] = %.9g, the float64 reference %.9g\n", (long long)b,
                                     (long long)i, (long long)h, got, want);
                        fail("llmkit_attention's lse differs from the reference");
                    }
                }
                for (int64_t d = 0; d < Dv; ++d) {
                    double want = 0.0;  // a row that sees no key (or only -inf ones) and no sink: zeros
                    if (any && m != -INFINITY) {
                        const double sink = opt.sinks ? double(opt.sinks[h]) : -INFINITY;
                        const double top = std::max(m, sink);
                        double num = 0.0, den = opt.sinks ? std::exp(sink - top) : 0.0;
                        for (int64_t j = 0; j < Skv; ++j)
                            if (vis[size_t(j)]) {
                                const double w = std::exp(sc[size_t(j)] - top);
                                den += w;
                                num += w * get(v, b, j, g, d);
                            }
                        want = num / den;
                    }
                    const double got = get(o, b, i, h, d);
                    if (!(std::fabs(got - want) <= tol)) {
                        std::fprintf(stderr, "out[%lld, %lld, %lld, %lld] = %.9g, the float64 reference %.9g (tolerance %.3g)\n",
                                     (long long)b, (long long)i, (long long)h, (long long)d, got, want, tol);
                        fail("llmkit_attention differs from the reference");
                    }
                }
            }
}

// Calls f(index) for every (b, i, h) of a 4-d out (no call when an extent is 0).
template <typename F>
void for_each_row(const fuzz_tensor &o, F &&f) {
    for (int64_t b = 0; b < o.shape[0]; ++b)
        for (int64_t i = 0; i < o.shape[1]; ++i)
            for (int64_t h = 0; h < o.shape[2]; ++h) {
                const int64_t at[3] = {b, i, h};
                f(at);
            }
}

// RoPE options from the script, in and out of their domains (layout, theta,
// rotary dims against D, every scaling and its parameters, frequency factors
// with bad values among them, struct_size). The factors live in `factors`
// (one per rotated pair, as the C API asks of its callers).
llmkit_rope_options rope_options(script &s, int64_t D, std::vector<float> &factors) {
    llmkit_rope_options ro = LLMKIT_ROPE_OPTIONS_INIT;
    ro.layout = s.pick(3);
    ro.theta = s.pick(8) == 7 ? -1.0 : 10000.0 * (1 + s.pick(50));
    ro.rotary_dims = s.pick(4) == 3 ? int32_t(s.pick(int(D) + 3)) - 1 : 0;
    ro.scaling = s.pick(7);
    if (s.pick(3) != 0) {
        factors.assign(size_t(D / 2 + 2), 1.0f);
        for (float &f : factors) {
            const int w = s.pick(32);
            f = w == 31 ? NAN : w == 30 ? 0.0f : w == 29 ? -1.0f : w == 28 ? INFINITY : 0.5f + float(w) * 2.0f;
        }
        ro.frequency_factors = factors.data();
    }
    if (s.pick(4) == 3) {  // M-RoPE: sections that fit the pairs (usually) or not
        const int pairs = int((ro.rotary_dims > 0 ? ro.rotary_dims : D) / 2);
        ro.mrope_section[0] = s.pick(pairs + 1);
        ro.mrope_section[1] = s.pick(pairs + 1 - ro.mrope_section[0]);
        ro.mrope_section[2] = s.pick(8) == 7 ? int32_t(s.pick(pairs + 2)) - 1
                                              : pairs - ro.mrope_section[0] - ro.mrope_section[1];
        ro.mrope_interleaved = s.pick(3);
    }
    ro.factor = double(s.pick(40)) / 4.0;
    ro.alpha = double(s.pick(20)) / 4.0;
    ro.low_freq_factor = double(s.pick(8));
    ro.high_freq_factor = double(s.pick(8));
    ro.original_max_position = double(s.pick(3)) * 4096.0;
    ro.beta_fast = double(s.pick(64));
    ro.beta_slow = double(s.pick(8));
    ro.n_threads = 1 + s.pick(2);
    if (s.pick(16) == 15) ro.struct_size = s.pick(int(sizeof ro) + 8);
    return ro;
}

// llmkit_attention_merge on tensors of fuzzed shapes, dtypes, strides and
// values (a NaN or infinity in an output, a NaN or +inf in an lse, must be
// refused); other_out is sometimes out itself.
void fuzz_merge(script &s) {
    const int64_t B = 1 + s.pick(3), S = 1 + s.pick(5), H = 1 + s.pick(4), D = 1 + s.pick(40);
    const int poison = s.pick(12);  // 1: out, 2: lse, 3: other_out, 4: other_lse
    fuzz_tensor out, lse, other_out, other_lse;
    auto lse_dims = [&] {
        std::vector<int64_t> d{dim(s, B), dim(s, S), dim(s, H)};
        if (s.pick(16) == 15) d.push_back(1);
        return d;
    };
    if (!make_tensor(s, out, {dim(s, B), dim(s, S), dim(s, H), dim(s, D)}, pick_kind(s), poison == 1)) return;
    if (!make_tensor(s, lse, lse_dims(), s.pick(8) == 7 ? pick_kind(s) : kind::f32, poison == 2)) return;
    const bool same = s.pick(4) == 3;
    if (!same && !make_tensor(s, other_out, {dim(s, B), dim(s, S), dim(s, H), dim(s, D)}, pick_kind(s), poison == 3))
        return;
    if (!make_tensor(s, other_lse, lse_dims(), s.pick(8) == 7 ? pick_kind(s) : kind::f32, poison == 4)) return;
    // Some rows that saw no key.
    for (fuzz_tensor *l : {&lse, &other_lse})
        if (l->kind_index == int(kind::f32) && !l->hostile && !l->poisoned && s.bit()) {
            const float ninf = -INFINITY;
            std::memcpy(l->buf.get() + s.pick(int(l->bytes / 4)) * 4, &ninf, 4);
        }
    const fuzz_tensor &oo = same ? out : other_out;
    const llmkit_status st = llmkit_attention_merge(s.pick(64) == 63 ? nullptr : &out.t, &lse.t, &oo.t, &other_lse.t);
    check_status(st);
    if (st != LLMKIT_OK) return;
    if (out.poisoned || lse.poisoned || oo.poisoned || other_lse.poisoned)
        fail("a NaN or infinity in the merge's inputs was accepted");
    if (out.hostile || lse.hostile || oo.hostile || other_lse.hostile) fail("overflowing strides were accepted");
    check_finite(out);
    for (size_t i = 0; i < lse.bytes; i += 4)
        if (std::isnan(read_at(lse, i)) || read_at(lse, i) == INFINITY) fail("a merge wrote a NaN or +inf lse");
}

// llmkit_attention_varlen on packed tensors of fuzzed shapes, dtypes and
// strides with offsets that are mostly valid (sometimes not starting at 0,
// decreasing, ending past the rows, of another length or dtype); a
// successful call writes finite outputs and finite or -inf lse.
void fuzz_varlen(script &s) {
    const int64_t B = s.pick(4), Hkv = 1 + s.pick(3), Hq = Hkv * (1 + s.pick(3));
    static const int64_t dims[] = {1, 8, 16, 64, 80, 128};
    const int64_t D = dims[s.pick(6)];
    std::vector<int64_t> cq{0}, ck{0};
    for (int64_t b = 0; b < B; ++b) {
        cq.push_back(cq.back() + s.pick(12));
        ck.push_back(ck.back() + s.pick(40));
    }
    const int64_t Tq = cq.back(), Tk = ck.back();
    switch (s.pick(16)) {  // broken offsets
    case 15: cq[0] = 1; break;
    case 14: if (cq.size() > 2) std::swap(cq[1], cq[2]); break;
    case 13: ck.back() += 1; break;
    case 12: ck.push_back(Tk); break;
    default: break;
    }
    const kind kq = pick_kind(s);
    const int poison = s.pick(16);  // 1: q, 2: k, 3: v
    fuzz_tensor q, k, v, o, lse;
    if (!make_tensor(s, q, {dim(s, Tq), dim(s, Hq), dim(s, D)}, kq, poison == 1)) return;
    if (!make_tensor(s, k, {dim(s, Tk), dim(s, Hkv), dim(s, D)}, s.pick(8) == 7 ? pick_kind(s) : kq, poison == 2)) return;
    if (!make_tensor(s, v, {dim(s, Tk), dim(s, Hkv), dim(s, D)}, kq, poison == 3)) return;
    if (!make_tensor(s, o, {dim(s, Tq), dim(s, Hq), dim(s, D)}, kq, false)) return;
    clear(o);
    llmkit_attention_options opt = LLMKIT_ATTENTION_OPTIONS_INIT;
    opt.causal = s.bit();
    if (opt.causal && s.pick(4) == 3) opt.window = int64_t(s.pick(20));
    std::vector<float> sinks(size_t(Hq + 2), 0.5f);
    if (s.pick(4) == 3) opt.sinks = sinks.data();
    if (s.bit()) {
        if (!make_tensor(s, lse, {dim(s, Tq), dim(s, Hq)}, s.pick(8) == 7 ? pick_kind(s) : kind::f32, false)) return;
        clear(lse);
        opt.lse = &lse.t;
    }
    opt.n_threads = 1 + s.pick(2);
    int64_t sq[1] = {int64_t(cq.size())}, sk[1] = {int64_t(ck.size())};
    std::vector<int32_t> cq32(cq.begin(), cq.end());
    llmkit_tensor tq{}, tk{};
    tq.device = tk.device = LLMKIT_DEVICE_HOST;
    tq.ndim = tk.ndim = 1;
    tq.shape = sq;
    tk.shape = sk;
    const bool narrow = s.bit();
    tq.dtype = narrow ? llmkit_dtype LLMKIT_DTYPE_I32 : llmkit_dtype LLMKIT_DTYPE_I64;
    tq.data = narrow ? static_cast<void *>(cq32.data()) : static_cast<void *>(cq.data());
    tk.dtype = LLMKIT_DTYPE_I64;
    tk.data = ck.data();
    const llmkit_status st = llmkit_attention_varlen(&q.t, &k.t, &v.t, &tq, &tk, &o.t, &opt);
    check_status(st);
    if (st != LLMKIT_OK) return;
    if (q.poisoned || k.poisoned || v.poisoned) fail("varlen accepted a NaN or infinity");
    if (q.hostile || k.hostile || v.hostile || o.hostile || (opt.lse && lse.hostile))
        fail("varlen accepted overflowing strides");
    check_finite(o);
    if (opt.lse)
        for (size_t i = 0; i < lse.bytes; i += 4)
            if (std::isnan(read_at(lse, i)) || read_at(lse, i) == INFINITY) fail("varlen wrote a NaN or +inf lse");
}

void fuzz_attention(script &s) {
    const int64_t B = 1 + s.pick(3), Sq = 1 + s.pick(9), Hkv = 1 + s.pick(3), G = 1 + s.pick(4);
    const int64_t Skv = s.bit() ? Sq : Sq + s.pick(80);
    static const int64_t dims[] = {1, 2, 8, 16, 24, 32, 64, 80, 96, 128, 256, 260, 192, 576, 600, 0};
    const int64_t D = dims[s.pick(15)];
    // v's own head_dim (DeepSeek's attention) one time in four; 0 and 600 are refused.
    const int64_t Dv = s.pick(4) == 3 ? dims[s.pick(16)] : D;
    const int64_t Hq = Hkv * G;
    const kind kq = pick_kind(s);
    const kind kk = s.pick(8) == 7 ? pick_kind(s) : kq;
    const int poison = s.pick(24);  // 1: q, 2: k, 3: v
    const bool rank3 = s.pick(32) == 31;

    fuzz_tensor q, k, v, o;
    auto shape4 = [&](int64_t b, int64_t sq, int64_t h, int64_t d) {
        std::vector<int64_t> r{dim(s, b), dim(s, sq), dim(s, h), dim(s, d)};
        if (rank3) r.erase(r.begin());
        return r;
    };
    if (!make_tensor(s, q, shape4(B, Sq, Hq, D), kq, poison == 1)) return;
    if (!make_tensor(s, k, shape4(B, Skv, Hkv, D), kk, poison == 2)) return;
    if (!make_tensor(s, v, shape4(B, Skv, Hkv, Dv), kk, poison == 3)) return;
    if (!make_tensor(s, o, shape4(B, Sq, Hq, Dv), kq, false)) return;
    clear(o);

    llmkit_attention_options opt = LLMKIT_ATTENTION_OPTIONS_INIT;
    opt.causal = s.bit();
    if (s.pick(4) == 3) opt.window = int64_t(s.pick(40)) - 2;
    if (s.pick(4) == 3) opt.softcap = float(s.pick(60)) - 5.0f;
    if (s.pick(4) == 3) opt.scale = s.pick(8) == 7 ? NAN : float(s.pick(50)) / 16.0f - 0.5f;
    std::vector<float> slopes(size_t(Hq + 2)), sinks(size_t(Hq + 2));
    for (auto &x : slopes) x = float(s.pick(64)) / 64.0f;
    for (auto &x : sinks) x = float(s.pick(64)) / 8.0f - 4.0f;
    if (s.pick(16) == 15) slopes[size_t(s.pick(int(Hq)))] = NAN;
    if (s.bit()) opt.alibi_slopes = slopes.data();
    if (s.pick(4) == 3) opt.sinks = sinks.data();
    fuzz_tensor mask;
    if (s.pick(4) == 3) {
        // [Sq, Skv], or 3 or 4 axes broadcast to [B, Hq, Sq, Skv] (each axis its size or 1).
        const int64_t full[4] = {B, Hq, Sq, Skv};
        const int rank = 2 + s.pick(3);
        std::vector<int64_t> md;
        for (int a = 4 - rank; a < 4; ++a) md.push_back(dim(s, rank > 2 && s.pick(3) == 2 ? 1 : full[a]));
        // float32, bool (bytes: 0 hides a key, any other value lets it be seen) or bf16 (refused).
        const int mk = s.pick(8);
        const bool as_bool = mk >= 5;
        if (!make_tensor(s, mask, md, mk == 4 ? kind::bf16 : as_bool ? kind::i8 : kind::f32, !as_bool && s.pick(8) == 7))
            return;
        if (as_bool) {
            mask.t.dtype = llmkit_dtype{LLMKIT_DTYPE_BOOL, 8, 1};
            if (!mask.hostile)
                for (size_t i = 0; i < mask.bytes; ++i) mask.buf[i] = mask.buf[i] & 3 ? mask.buf[i] : 0;
        }
        const int64_t esz = as_bool ? 1 : 4;
        if (!mask.hostile && mk != 4 && mask.bytes >= size_t(esz) && s.pick(3) == 2) {
            // A run of -inf or false (padding, a block), sometimes everything:
            // whole key tiles hidden from every row of a task, which the kernels skip.
            const int64_t n = int64_t(mask.bytes) / esz, from = s.bit() ? 0 : s.pick(int(std::min<int64_t>(n, 256)));
            const int64_t len = s.bit() ? n : 1 + s.pick(int(std::min<int64_t>(n, 256)));
            const float ninf = -INFINITY;
            for (int64_t i = from; i < std::min(n, from + len); ++i)
                if (as_bool) mask.buf[size_t(i)] = 0;
                else std::memcpy(mask.buf.get() + i * 4, &ninf, 4);
        }
        opt.mask = &mask.t;
    }
    fuzz_tensor lse;
    if (s.pick(3) == 2) {  // options.lse: usually float32 [B, Sq, Hq], sometimes not
        std::vector<int64_t> ld{dim(s, B), dim(s, Sq), dim(s, Hq)};
        if (s.pick(16) == 15) ld.push_back(1);
        if (!make_tensor(s, lse, ld, s.pick(8) == 7 ? pick_kind(s) : kind::f32, false)) return;
        clear(lse);
        opt.lse = &lse.t;
    }
    opt.n_threads = 1 + s.pick(3);
    if (s.pick(32) == 31) opt.struct_size = s.pick(int(sizeof opt) + 8);
    const bool null_arg = s.pick(64) == 63;

#ifdef FUZZ_VERBOSE
    for (const fuzz_tensor *t : {&q, &k, &v, &o}) {
        std::fprintf(stderr, "tensor dtype %d/%d ndim %d shape", t->t.dtype.code, t->t.dtype.bits, t->t.ndim);
        for (int d = 0; d < t->t.ndim; ++d) std::fprintf(stderr, " %lld", (long long)t->shape[d]);
        std::fprintf(stderr, " strides");
        for (int d = 0; d < t->t.ndim; ++d) std::fprintf(stderr, " %lld", t->t.strides ? (long long)t->strides[d] : -99LL);
        std::fprintf(stderr, " offset %llu\n", (unsigned long long)t->t.byte_offset);
    }
    std::fprintf(stderr, "causal %d window %lld softcap %g scale %g alibi %d sinks %d mask %d poison %d\n", opt.causal,
                 (long long)opt.window, opt.softcap, opt.scale, opt.alibi_slopes != nullptr, opt.sinks != nullptr,
                 opt.mask != nullptr, poison);
#endif
    const llmkit_status st = llmkit_attention(&q.t, null_arg ? nullptr : &k.t, &v.t, &o.t, &opt);
    check_status(st);
    if (st == LLMKIT_OK) {
        if (q.poisoned || k.poisoned || v.poisoned) fail("a NaN or infinity in q, k or v was accepted");
        if (q.hostile || k.hostile || v.hostile || o.hostile || mask.hostile) fail("overflowing strides were accepted");
        check_finite(o);
        // (A struct_size that ends early leaves options past it at their defaults.)
        const bool lse_read = opt.lse && opt.struct_size == sizeof opt;
        if (lse_read && lse.hostile) fail("overflowing lse strides were accepted");
        const bool lse_checked = lse_read && !self_overlapping(lse);
        if (q.t.ndim == 4 && opt.struct_size == sizeof opt && !self_overlapping(o))
            check_reference(q, k, v, o, opt, opt.mask ? &mask : nullptr, lse_checked ? &lse : nullptr);
        if (lse_checked && !self_overlapping(o) && s.bit()) {
            // Merged with itself: the same rows (halves of equal weights add back
            // exactly) and lse + ln 2 (rows that saw nothing stay zeros and -inf).
            std::vector<double> was_o, was_lse;
            for_each_row(o, [&](const int64_t *at) {
                was_lse.push_back(value_at(lse, at));
                for (int64_t d = 0; d < o.shape[3]; ++d) {
                    const int64_t e[4] = {at[0], at[1], at[2], d};
                    was_o.push_back(value_at(o, e));
                }
            });
            const llmkit_status ms = llmkit_attention_merge(&o.t, &lse.t, &o.t, &lse.t);
            check_status(ms);
            if (ms != LLMKIT_OK) fail("merging a result with itself failed");
            size_t io = 0, il = 0;
            for_each_row(o, [&](const int64_t *at) {
                const double was = was_lse[il++], now = value_at(lse, at);
                const double want = std::isinf(was) ? was : was + std::log(2.0);
                if (!(std::isinf(want) ? now == want : std::fabs(now - want) <= 1e-6 * (1.0 + std::fabs(want))))
                    fail("merging a result with itself did not add ln 2 to its lse");
                for (int64_t d = 0; d < o.shape[3]; ++d) {
                    const int64_t e[4] = {at[0], at[1], at[2], d};
                    if (value_at(o, e) != was_o[io++]) fail("merging a result with itself changed it");
                }
            });
        }
    }

    // RoPE over q, positions int32 or int64 [Sq] (or bad).
    fuzz_tensor x;
    std::vector<int64_t> xd{dim(s, B), dim(s, Sq), dim(s, Hq), dim(s, D)};
    if (!make_tensor(s, x, xd, pick_kind(s), false)) return;
    // [Sq], or M-RoPE's [3, Sq] (three components per token).
    std::vector<int64_t> pos64(size_t(3 * (Sq + 2)));
    for (auto &p : pos64) p = int64_t(s.u16()) - (s.pick(16) == 15 ? 70000 : 0);
    std::vector<int32_t> pos32(pos64.begin(), pos64.end());
    const bool three = s.bit();
    int64_t pshape[2] = {three ? 3 : dim(s, Sq), dim(s, Sq)};
    llmkit_tensor pos{};
    pos.device = LLMKIT_DEVICE_HOST;
    pos.ndim = three ? 2 : 1;
    pos.shape = three ? pshape : pshape + 1;
    const bool p64 = s.bit();
    pos.dtype = p64 ? llmkit_dtype LLMKIT_DTYPE_I64 : llmkit_dtype LLMKIT_DTYPE_I32;
    pos.data = p64 ? static_cast<void *>(pos64.data()) : static_cast<void *>(pos32.data());
    std::vector<float> factors;
    llmkit_rope_options ro = rope_options(s, D, factors);
    // In place, or into an out tensor of its own (shape, dtype and strides fuzzed too).
    fuzz_tensor out;
    const bool into = s.bit();
    if (into) {
        std::vector<int64_t> od = xd;
        if (s.pick(8) == 7) od[size_t(s.pick(4))] = dim(s, 1 + s.pick(9));
        if (!make_tensor(s, out, od, pick_kind(s), false)) return;
    }
    const llmkit_status rs = into ? llmkit_rope_into(&x.t, &pos, s.pick(32) == 31 ? nullptr : &out.t, &ro)
                                  : llmkit_rope(&x.t, &pos, &ro);
    check_status(rs);
    if (rs == LLMKIT_OK) {
        if (x.hostile || (into && out.hostile)) fail("overflowing strides were accepted");
        check_finite(into ? out : x);
    }
}

// One program over a contiguous (odd selector) or paged KV cache.
void fuzz_cache(script &s) {
    const bool paged = s.bit();
    const int32_t layers = 1 + s.pick(2), hkv = 1 + s.pick(2);
    static const int32_t dims[] = {8, 16, 32, 64, 80, 128};
    const int32_t D = dims[s.pick(6)];
    // V's own head_dim one time in four (sometimes past D, or 0: D); V read
    // from K's rows (v_from_k) one time in four, where Dv > D is refused.
    const int32_t dv_pick = s.pick(4) == 3 ? dims[s.pick(6)] : 0;
    const bool v_from_k = s.pick(4) == 3;
    const int32_t Dv = dv_pick > 0 ? dv_pick : D;
    // A v_from_k cache's RoPE turns the last rotary_dims of each row: only dims past V may turn.
    const auto turns_past_v = [&](const llmkit_rope_options *r) {
        return r && r->rotary_dims > 0 && r->rotary_dims <= D - Dv;
    };
    // Scripted rotations rarely fit there by chance: half the time such a cache's
    // get an even rotary_dims from 2 to one pair past the room after V.
    const auto tail_rope = [&](llmkit_rope_options ro) {
        if (v_from_k && D - Dv >= 2 && s.bit()) ro.rotary_dims = 2 * int32_t(1 + s.pick(int((D - Dv) / 2) + 1));
        return ro;
    };
    const int32_t dtype = s.pick(6);
    const int32_t block = 1 + s.pick(20), n_blocks = 1 + s.pick(24), max_seqs = 1 + s.pick(4);
    const int64_t capacity = 1 + s.pick(64);

    llmkit_kv_cache *cc = nullptr;
    llmkit_paged_kv_cache *pc = nullptr;
    if (paged) {
        llmkit_paged_kv_cache_options po = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
        po.n_layers = layers;
        po.n_kv_heads = hkv;
        po.head_dim = D;
        po.block_size = block;
        po.n_blocks = n_blocks;
        po.max_sequences = max_seqs;
        po.max_blocks_per_seq = s.pick(4) == 3 ? s.pick(30) : 0;
        po.dtype = dtype;
        po.v_head_dim = dv_pick;
        po.v_from_k = v_from_k;
        const llmkit_status st = llmkit_paged_kv_cache_create(&pc, &po);
        check_status(st);
        if (st == LLMKIT_OK && v_from_k && Dv > D) fail("a v_from_k cache with V wider than K was created");
        if (st != LLMKIT_OK) return;
    } else {
        llmkit_kv_cache_options co = LLMKIT_KV_CACHE_OPTIONS_INIT;
        co.n_layers = layers;
        co.n_kv_heads = hkv;
        co.head_dim = D;
        co.capacity = capacity;
        co.max_sequences = max_seqs;
        co.dtype = dtype;
        co.v_head_dim = dv_pick;
        co.v_from_k = v_from_k;
        const llmkit_status st = llmkit_kv_cache_create(&cc, &co);
        check_status(st);
        if (st == LLMKIT_OK && v_from_k && Dv > D) fail("a v_from_k cache with V wider than K was created");
        if (st != LLMKIT_OK) return;
    }
    std::vector<int32_t> live;
    // Saves sequence id, damages the bytes sometimes (flipped or set bytes,
    // a cut, bytes added, a header from the script) and loads them into a
    // sequence. A load that succeeds must have read a valid state: saving
    // the sequence again gives back exactly those bytes.
    const auto save_load = [&](int32_t id) {
        size_t need = 0;
        llmkit_status st = paged ? llmkit_paged_kv_cache_seq_save(pc, id, nullptr, 0, &need)
                   : llmkit_kv_cache_seq_save(cc, id, nullptr, 0, &need);
        if (st == LLMKIT_OK) fail("a save into a NULL buffer succeeded");
        if (st != LLMKIT_ERROR_BUFFER_TOO_SMALL) {
            check_status(st);
            return;
        }
        std::vector<uint8_t> bytes(need);
        const size_t cap = s.pick(16) == 15 ? need - 1 - s.pick(int(std::min<size_t>(need, 200))) % need : need;
        st = paged ? llmkit_paged_kv_cache_seq_save(pc, id, bytes.data(), cap, nullptr)
                   : llmkit_kv_cache_seq_save(cc, id, bytes.data(), cap, nullptr);
        check_status(st);
        if ((st == LLMKIT_OK) != (cap >= need)) fail("a save into a buffer of the wrong size");
        if (st != LLMKIT_OK) return;
        switch (s.pick(6)) {
        case 1:  // flip or set bytes anywhere, the header's mostly
            for (int n = 1 + s.pick(4); n > 0; --n) {
                const size_t at = s.bit() ? s.pick(64) % bytes.size() : (s.u16() * 131u) % bytes.size();
                bytes[at] = s.bit() ? uint8_t(bytes[at] ^ (1u << s.pick(8))) : s.u8();
            }
            break;
        case 2: bytes.resize(s.u16() % (bytes.size() + 1)); break;
        case 3: for (int n = 1 + s.pick(8); n > 0; --n) bytes.push_back(s.u8()); break;
        case 4:  // the header kept, the token counts and rows from the script
            bytes.resize(40 + s.pick(200));
            for (size_t i = 40; i < bytes.size(); ++i) bytes[i] = s.u8();
            break;
        default: break;
        }
        const int32_t to = live.empty() || s.pick(8) == 7 ? int32_t(s.pick(8)) - 2 : live[size_t(s.pick(int(live.size())))];
        st = paged ? llmkit_paged_kv_cache_seq_load(pc, to, bytes.data(), bytes.size())
                   : llmkit_kv_cache_seq_load(cc, to, bytes.data(), bytes.size());
        check_status(st);
        if (st == LLMKIT_OK) {
            size_t again = 0;
            if ((paged ? llmkit_paged_kv_cache_seq_save(pc, to, nullptr, 0, &again)
                       : llmkit_kv_cache_seq_save(cc, to, nullptr, 0, &again)) != LLMKIT_ERROR_BUFFER_TOO_SMALL ||
                again != bytes.size())
                fail("a loaded sequence saves to another size");
            std::vector<uint8_t> back(again);
            if ((paged ? llmkit_paged_kv_cache_seq_save(pc, to, back.data(), again, nullptr)
                       : llmkit_kv_cache_seq_save(cc, to, back.data(), again, nullptr)) != LLMKIT_OK ||
                back != bytes)
                fail("a loaded sequence saves to other bytes");
        }
    };
    for (int step = 0; step < 24 && s.i < s.n; ++step) {
        const int op = s.pick(8);  // 0 new, 1 fork, 2 free, 3 append, 4-5 attention, 6 truncate, 7 save/load
        // A live id mostly; sometimes a stale or wild one.
        const int32_t id = live.empty() || s.pick(8) == 7 ? int32_t(s.pick(8)) - 2
                                                          : live[size_t(s.pick(int(live.size())))];
        llmkit_status st = LLMKIT_OK;
        if (op == 0) {
            int32_t seq = -1;
            st = paged ? llmkit_paged_kv_cache_seq_new(pc, &seq) : llmkit_kv_cache_seq_new(cc, &seq);
            if (st == LLMKIT_OK) live.push_back(seq);
        } else if (op == 1) {
            int32_t seq = -1;
            st = paged ? llmkit_paged_kv_cache_seq_fork(pc, id, &seq) : llmkit_kv_cache_seq_fork(cc, id, &seq);
            if (st == LLMKIT_OK) live.push_back(seq);
        } else if (op == 2) {
            st = paged ? llmkit_paged_kv_cache_seq_free(pc, id) : llmkit_kv_cache_seq_free(cc, id);
            if (st == LLMKIT_OK)
                for (size_t j = 0; j < live.size(); ++j)
                    if (live[j] == id) {
                        live.erase(live.begin() + std::ptrdiff_t(j));
                        break;
                    }
        } else if (op == 3) {
            const int64_t S = 1 + s.pick(24);
            const kind k = pick_kind(s);
            fuzz_tensor kt, vt;
            const bool batch = s.bit();
            std::vector<int64_t> d{dim(s, S), dim(s, hkv), dim(s, D)};
            if (batch) d.insert(d.begin(), dim(s, 1));
            std::vector<int64_t> dv = d;
            dv.back() = dim(s, Dv);
            if (!make_tensor(s, kt, d, k, s.pick(32) == 31) || !make_tensor(s, vt, dv, k, false)) break;
            // A v_from_k cache takes no V: mostly none, sometimes one (refused). Others sometimes get none too.
            const bool with_v = v_from_k ? s.pick(8) == 7 : s.pick(16) != 15;
            const llmkit_tensor *vp = with_v ? &vt.t : nullptr;
            const int32_t layer = s.pick(8) == 7 ? layers : int32_t(s.pick(layers));
            const int how = s.pick(3);  // plain, fused RoPE, fused RoPE with NULL (the defaults)
            std::vector<float> factors;
            const llmkit_rope_options ro = tail_rope(rope_options(s, D, factors));
            const llmkit_rope_options *rp = how == 1 ? &ro : nullptr;
            if (how == 0)
                st = paged ? llmkit_paged_kv_cache_append(pc, layer, id, &kt.t, vp)
                           : llmkit_kv_cache_append(cc, layer, id, &kt.t, vp);
            else
                st = paged ? llmkit_paged_kv_cache_append_rope(pc, layer, id, &kt.t, vp, rp)
                           : llmkit_kv_cache_append_rope(cc, layer, id, &kt.t, vp, rp);
            if (st == LLMKIT_OK && with_v == v_from_k) fail("an append's V was accepted where the cache keeps none, or missed");
            if (st == LLMKIT_OK && v_from_k && how != 0 && !turns_past_v(rp))
                fail("a fused RoPE turning V's dims was accepted by a v_from_k cache");
            if (st == LLMKIT_OK && (kt.hostile || (with_v && vt.hostile))) fail("overflowing strides were accepted");
            if (st == LLMKIT_OK && kt.poisoned) fail("a NaN or infinity in k was appended");
        } else if (op == 7) {
            save_load(id);
            continue;
        } else if (op == 6) {
            // Keep the first n tokens (n sometimes negative or past the length);
            // on a paged cache sometimes release the first n instead.
            const int64_t n = int64_t(s.pick(64)) - 2;
            int64_t before = -1, after = -1;
            const bool known = (paged ? llmkit_paged_kv_cache_seq_length(pc, id, -1, &before)
                                      : llmkit_kv_cache_seq_length(cc, id, -1, &before)) == LLMKIT_OK;
            if (paged && s.bit()) {
                // Sometimes first a well-formed chunk into every layer, so that
                // there are whole blocks to release (scripted appends are rarer).
                if (s.pick(4) != 3) {
                    const int64_t m = 1 + s.pick(64);
                    std::vector<float> kb(size_t(m * hkv * D)), vb(size_t(m * hkv * Dv));
                    for (float &x : kb) x = float(int(s.u8()) - 128) / 32.0f;
                    for (float &x : vb) x = float(int(s.u8()) - 128) / 32.0f;
                    const int64_t ks[3] = {m, hkv, D}, vs[3] = {m, hkv, Dv};
                    const llmkit_tensor kt{kb.data(), LLMKIT_DEVICE_HOST, 3, LLMKIT_DTYPE_F32, ks, nullptr, 0};
                    const llmkit_tensor vt{vb.data(), LLMKIT_DEVICE_HOST, 3, LLMKIT_DTYPE_F32, vs, nullptr, 0};
                    for (int32_t layer = 0; layer < layers; ++layer)
                        check_status(llmkit_paged_kv_cache_append(pc, layer, id, &kt, v_from_k ? nullptr : &vt));
                }
                const bool known = llmkit_paged_kv_cache_seq_length(pc, id, -1, &before) == LLMKIT_OK;
                // Mostly a count within the length, counted back from it (an
                // exhausted input: all of it); sometimes the scripted one.
                const int64_t n = known && before > 0 && s.pick(4) != 3
                                      ? before - int64_t(s.pick(int(std::min<int64_t>(before, 254)) + 1))
                                      : int64_t(s.pick(64)) - 2;
                int64_t first = -1, entries = 0;
                st = llmkit_paged_kv_cache_seq_release_before(pc, id, n, &first);
                if (st == LLMKIT_OK) {
                    if (!known || n < 0 || n > before) fail("a release outside 0..length was accepted");
                    if (first < n / block * block || first > before) fail("a release reports the wrong first token held");
                    if (first % block != 0) fail("a release ends mid-block");
                    std::vector<int32_t> table(size_t(before / block + 1));
                    if (llmkit_paged_kv_cache_seq_block_table(pc, id, table.data(), int64_t(table.size()), &entries) !=
                        LLMKIT_OK)
                        fail("a released sequence's block table");
                    for (int64_t i = 0; i < entries; ++i)
                        if ((table[size_t(i)] == -1) != (i < first / block)) fail("released entries are not the first");
                }
                check_status(st);
                if (st == LLMKIT_OK && s.pick(4) != 3) save_load(id);  // a released sequence's save (format version 2)
                continue;
            }
            if (s.bit()) {
                // Erase [from, to) (context shift), K turned back with scripted
                // RoPE options or not; the range sometimes outside the tokens held.
                const int64_t from = known && before > 0 && s.pick(4) != 3 ? int64_t(s.pick(int(std::min<int64_t>(before, 254)) + 1))
                                                                          : int64_t(s.pick(64)) - 2;
                const int64_t to = from + int64_t(s.pick(40)) - 2;
                std::vector<float> factors;
                const llmkit_rope_options ro = tail_rope(rope_options(s, D, factors));
                const llmkit_rope_options *rp = s.bit() ? &ro : nullptr;
                st = paged ? llmkit_paged_kv_cache_seq_erase(pc, id, from, to, rp)
                           : llmkit_kv_cache_seq_erase(cc, id, from, to, rp);
                if (st == LLMKIT_OK) {
                    if (!known || from < 0 || to < from || to > before) fail("an erase outside 0..length was accepted");
                    if (v_from_k && rp && !turns_past_v(rp)) fail("an erase's RoPE turning V's dims was accepted by a v_from_k cache");
                    if ((paged ? llmkit_paged_kv_cache_seq_length(pc, id, -1, &after)
                               : llmkit_kv_cache_seq_length(cc, id, -1, &after)) != LLMKIT_OK ||
                        after != before - (to - from))
                        fail("an erased sequence does not hold length - (to - from) tokens");
                }
                check_status(st);
                continue;
            }
            st = paged ? llmkit_paged_kv_cache_seq_truncate(pc, id, n) : llmkit_kv_cache_seq_truncate(cc, id, n);
            if (st == LLMKIT_OK) {
                if (!known || n < 0 || n > before) fail("a truncation outside 0..length was accepted");
                if ((paged ? llmkit_paged_kv_cache_seq_length(pc, id, -1, &after)
                           : llmkit_kv_cache_seq_length(cc, id, -1, &after)) != LLMKIT_OK || after != n)
                    fail("a truncated sequence does not hold n tokens");
            }
        } else {
            // Attention of B sequences' last Sq tokens.
            const int64_t B = 1 + s.pick(3), Sq = 1 + s.pick(4), G = 1 + s.pick(3);
            std::vector<int32_t> ids(static_cast<size_t>(B));
            for (auto &x : ids)
                x = live.empty() || s.pick(8) == 7 ? int32_t(s.pick(8)) - 2 : live[size_t(s.pick(int(live.size())))];
            const kind k = pick_kind(s);
            // Packed queries (options.cu_seqlens_q): 0-4 per sequence, the offsets sometimes broken.
            const bool packed = s.pick(3) == 2;
            std::vector<int64_t> cu{0};
            for (int64_t b = 0; b < B; ++b) cu.push_back(cu.back() + s.pick(5));
            const int64_t Tq = cu.back();
            switch (packed ? s.pick(12) : 0) {
            case 11: cu[0] = 1; break;
            case 10: if (cu.size() > 2) std::swap(cu[1], cu[2]); break;
            case 9: cu.push_back(Tq); break;
            default: break;
            }
            int64_t cu_shape[1] = {int64_t(cu.size())};
            llmkit_tensor cut{};
            cut.device = LLMKIT_DEVICE_HOST;
            cut.ndim = 1;
            cut.shape = cu_shape;
            cut.dtype = LLMKIT_DTYPE_I64;
            cut.data = cu.data();
            std::vector<int64_t> qdims{dim(s, B), dim(s, Sq), dim(s, hkv * G), dim(s, D)};
            if (packed) qdims = {dim(s, Tq), dim(s, hkv * G), dim(s, D)};
            fuzz_tensor q, o;
            if (!make_tensor(s, q, qdims, k, s.pick(32) == 31)) break;
            if (packed) qdims = {dim(s, Tq), dim(s, hkv * G), dim(s, Dv)};
            else qdims = {dim(s, B), dim(s, Sq), dim(s, hkv * G), dim(s, Dv)};
            if (!make_tensor(s, o, qdims, k, false)) break;
            clear(o);
            llmkit_kv_attention_options ko = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
            ko.causal = s.pick(4) != 3;
            if (s.pick(4) == 3) ko.window = int64_t(s.pick(20)) - 1;
            if (s.pick(4) == 3) ko.softcap = float(s.pick(40));
            if (s.pick(4) == 3) ko.split_keys = int64_t(s.pick(200)) - 10;
            ko.n_threads = 1 + s.pick(3);
            std::vector<float> slopes(size_t(hkv * G + 1), 0.125f);
            if (s.pick(4) == 3) ko.alibi_slopes = slopes.data();
            std::vector<float> qfactors;
            const llmkit_rope_options qrope = tail_rope(rope_options(s, D, qfactors));
            if (s.pick(4) == 3) ko.rope = &qrope;
            fuzz_tensor lse;
            if (s.pick(3) == 2) {
                std::vector<int64_t> ldims{dim(s, B), dim(s, Sq), dim(s, hkv * G)};
                if (packed) ldims = {dim(s, Tq), dim(s, hkv * G)};
                if (!make_tensor(s, lse, ldims, s.pick(8) == 7 ? pick_kind(s) : kind::f32, false)) break;
                clear(lse);
                ko.lse = &lse.t;
            }
            if (packed) ko.cu_seqlens_q = &cut;
            const int32_t layer = s.pick(8) == 7 ? -1 : int32_t(s.pick(layers));
            if (op == 5 && paged) {
                // Caller-made tables: random ids (some outside the pool) and lengths.
                const int64_t width = 1 + s.pick(6);
                std::vector<int32_t> tables(size_t(B * width));
                for (auto &x : tables) x = int32_t(s.pick(n_blocks + 3)) - 1;
                std::vector<int64_t> lens(static_cast<size_t>(B));
                for (auto &x : lens) x = int64_t(s.pick(int(width * block) + 4)) - 1;
                int64_t tshape[2] = {B, width}, lshape[1] = {B};
                llmkit_tensor tt{}, lt{};
                tt.device = lt.device = LLMKIT_DEVICE_HOST;
                tt.ndim = 2;
                tt.shape = tshape;
                tt.dtype = LLMKIT_DTYPE_I32;
                tt.data = tables.data();
                lt.ndim = 1;
                lt.shape = lshape;
                lt.dtype = LLMKIT_DTYPE_I64;
                lt.data = lens.data();
                st = llmkit_paged_kv_cache_attention_tables(pc, layer, &q.t, &tt, &lt, &o.t, &ko);
            } else {
                st = paged ? llmkit_paged_kv_cache_attention(pc, layer, &q.t, ids.data(), B, &o.t, &ko)
                           : llmkit_kv_cache_attention(cc, layer, &q.t, ids.data(), B, &o.t, &ko);
            }
            check_status(st);
            if (st == LLMKIT_OK) {
                if (q.hostile || o.hostile || (ko.lse && lse.hostile)) fail("overflowing strides were accepted");
                if (q.poisoned) fail("a NaN or infinity in q was accepted");
                check_finite(o);
                if (ko.lse)  // finite, or -inf for a row that saw no key (cleared gaps stay 0)
                    for (size_t i = 0; i < lse.bytes; i += 4)
                        if (std::isnan(read_at(lse, i)) || read_at(lse, i) == INFINITY) fail("a cache wrote a NaN or +inf lse");
            }
            continue;
        }
        check_status(st);
    }
    if (paged)
        llmkit_paged_kv_cache_free(pc);
    else
        llmkit_kv_cache_free(cc);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    script s{data, size};
    if (s.bit())
        fuzz_cache(s);
    else if (s.pick(4) == 3)
        fuzz_merge(s);
    else if (s.pick(4) == 3)
        fuzz_varlen(s);
    else
        fuzz_attention(s);
    return 0;
}
