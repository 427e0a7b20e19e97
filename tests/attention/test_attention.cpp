// llmkit_attention against a float64 reference that materialises the scores,
// on random inputs: MHA/GQA/MQA x causal/bidirectional/window/ALiBi/softcap/mask
// x D in {64, 80, 96, 128, 256} x float32/bfloat16/float16, Sq != Skv, strided
// layouts, every kernel set the CPU runs (portable, AVX2, AVX-512), decode ==
// prefill rows, attention sinks, and the errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <string>

#include "attention/attention.hpp"
#include "attention/kernels.hpp"
#include "attention/online_softmax.hpp"
#include "helpers.hpp"
#include "llmkit/llmkit.h"
#include "quant/formats.hpp"

using namespace attn_test;
using llmkit::attention::row_type;
using llmkit::core::dtype;

namespace {

struct config {
    bool causal = false;
    int64_t window = 0;
    float softcap = 0.0f;
    float scale = 0.0f;
    bool alibi = false;
    bool mask = false;
    int mask_form = 0;   // 0 [Sq, Skv]; broadcast as torch's attn_mask: 1 [B, 1, 1, Skv] (padding),
                         // 2 [B, Hq, Sq, Skv], 3 [Hq, Sq, Skv], 4 [1, Hq, 1, Skv]; whole key tiles
                         // hidden: 5 [B, 1, 1, Skv] (long padding), 6 [B, Hq, Sq, Skv] (blocks)
    bool sinks = false;  // gpt-oss attention sinks, one random logit per query head
    bool bool_mask = false;  // the mask as bool (false where it holds -inf; its finite values become 0)
    int64_t dv = 0;          // v's head_dim (DeepSeek's attention); 0 = D
};

struct mask_data {
    std::vector<float> values;  // compact over dims
    int ndim = 2;
    int64_t shape[4] = {};      // the tensor's shape (ndim axes)
    int64_t dims[4] = {1, 1, 1, 1};  // its extent along [B, Hq, Sq, Skv], 1 where it broadcasts
    double at(int64_t b, int64_t h, int64_t i, int64_t j) const {
        const int64_t x[4] = {b, h, i, j};
        int64_t idx = 0;
        for (int a = 0; a < 4; ++a) idx = idx * dims[a] + (dims[a] == 1 ? 0 : x[a]);
        return double(values[size_t(idx)]);
    }
};

// Additive mask of the config's form: random biases and some -inf (never key
// 0, so never a whole row), or for the padding form (1) the first b % 3 keys
// of batch row b hidden (left padding), the others 0.
// Forms 5 and 6 hide runs of keys longer than the kernels' tiles (64 keys), so
// that whole tiles are hidden from some rows of a task and not from others:
// 5 left-pads batch row b by one of 0, 64, 100, 190 keys or all of them
// (a row that sees no key); 6 hides, per batch row, head and band of 24 query
// rows, a run of 70-170 keys starting anywhere, over random biases.
mask_data make_mask(int form, int64_t B, int64_t Hq, int64_t Sq, int64_t Skv, std::mt19937 &rng) {
    mask_data m;
    static const int64_t forms[7][4] = {{0, 0, 1, 1}, {1, 0, 0, 1}, {1, 1, 1, 1}, {0, 1, 1, 1},
                                        {0, 1, 0, 1}, {1, 0, 0, 1}, {1, 1, 1, 1}};
    const int64_t full[4] = {B, Hq, Sq, Skv};
    for (int a = 0; a < 4; ++a) m.dims[a] = forms[form][a] ? full[a] : 1;
    m.ndim = form == 0 ? 2 : form == 3 ? 3 : 4;
    for (int a = 0; a < m.ndim; ++a) m.shape[a] = m.dims[4 - m.ndim + a];
    m.values.resize(size_t(m.dims[0] * m.dims[1] * m.dims[2] * m.dims[3]));
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    std::uniform_int_distribution<int> hide(0, 6);
    if (form >= 5) {
        static const int64_t pads[5] = {0, 64, 100, 190, -1};
        std::uniform_int_distribution<int64_t> start(0, Skv - 1), len(70, 170);
        std::vector<int64_t> run_start(size_t(B * Hq * (Sq / 24 + 1))), run_len(run_start.size());
        for (size_t x = 0; x < run_start.size(); ++x) {
            run_start[x] = start(rng);
            run_len[x] = len(rng);
        }
        size_t n = 0;
        for (int64_t b = 0; b < m.dims[0]; ++b)
            for (int64_t h = 0; h < m.dims[1]; ++h)
                for (int64_t i = 0; i < m.dims[2]; ++i)
                    for (int64_t j = 0; j < m.dims[3]; ++j, ++n) {
                        if (form == 5) {
                            const int64_t pad = pads[b % 5] < 0 ? Skv : std::min(pads[b % 5], Skv);
                            m.values[n] = j < pad ? -INFINITY : 0.0f;
                        } else {
                            const size_t x = size_t((b * Hq + h) * (Sq / 24 + 1) + i / 24);
                            const bool hid = j >= run_start[x] && j < run_start[x] + run_len[x];
                            m.values[n] = hid ? -INFINITY : u(rng);
                        }
                    }
        return m;
    }
    size_t n = 0;
    for (int64_t b = 0; b < m.dims[0]; ++b)
        for (int64_t h = 0; h < m.dims[1]; ++h)
            for (int64_t i = 0; i < m.dims[2]; ++i)
                for (int64_t j = 0; j < m.dims[3]; ++j, ++n)
                    m.values[n] = form == 1 ? (j < std::min<int64_t>(b % 3, Skv - 1) ? -INFINITY : 0.0f)
                                            : (hide(rng) == 0 && j != 0) ? -INFINITY : u(rng);
    return m;
}

std::vector<float> alibi_slopes(int64_t H) {
    // The geometric sequence of Press et al. for H heads: 2^(-8 h / H).
    std::vector<float> s(static_cast<size_t>(H));
    for (int64_t h = 0; h < H; ++h) s[size_t(h)] = float(std::pow(2.0, -8.0 * double(h + 1) / double(H)));
    return s;
}

// Sink logits for H heads, around the scale of the scores (N(0, 1) for unit
// inputs), so each one takes a real share of its head's softmax.
std::vector<float> sink_logits(int64_t H, std::mt19937 &rng) {
    std::uniform_real_distribution<float> u(-1.5f, 2.5f);
    std::vector<float> s(static_cast<size_t>(H));
    for (float &x : s) x = u(rng);
    return s;
}

// The float64 reference; returns logical [B][Sq][Hq][Dv] (Dv: v's head_dim). sinks: Hq logits or
// null; sink h adds exp(sinks[h]) to head h's softmax denominator. lse (null:
// not wanted) receives [B][Sq][Hq]: the log of each row's denominator, -inf
// for a row that sees no key and no sink.
std::vector<double> reference(const tensor4 &q, const tensor4 &k, const tensor4 &v, const config &c,
                              const std::vector<float> &slopes, const mask_data *mask, const float *sinks = nullptr,
                              std::vector<double> *lse = nullptr) {
    const int64_t B = q.shape[0], Sq = q.shape[1], Hq = q.shape[2], D = q.shape[3], Dv = v.shape[3];
    const int64_t Skv = k.shape[1], Hkv = k.shape[2], G = Hq / Hkv;
    const double scale = c.scale != 0.0f ? double(c.scale) : 1.0 / std::sqrt(double(D));
    const bool causal = c.causal || c.window > 0;
    std::vector<double> out(size_t(B * Sq * Hq * Dv), 0.0), s(static_cast<size_t>(Skv));
    if (lse) lse->assign(size_t(B * Sq * Hq), -INFINITY);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < Hq; ++h)
            for (int64_t i = 0; i < Sq; ++i) {
                const int64_t ip = i + Skv - Sq, g = h / G;
                // Row pointers, not an index per element: the sanitizer build compiles
                // this at -O1, where the per-element index calls were a tenth of the
                // attention tests' time. The same products in the same order.
                const double *qr = &q.vals[size_t(q.idx(b, i, h, 0))];
                double mx = -INFINITY;
                for (int64_t j = 0; j < Skv; ++j) {
                    const double *kr = &k.vals[size_t(k.idx(b, j, g, 0))];
                    double acc = 0.0;
                    for (int64_t d = 0; d < D; ++d) acc += qr[d] * kr[d];
                    acc *= scale;
                    if (c.softcap > 0.0f) acc = double(c.softcap) * std::tanh(acc / double(c.softcap));
                    if (c.alibi) acc -= double(slopes[size_t(h)]) * double(ip - j);
                    if (mask) acc += mask->at(b, h, i, j);
                    if (causal && j > ip) acc = -INFINITY;
                    if (c.window > 0 && j <= ip - c.window) acc = -INFINITY;
                    s[size_t(j)] = acc;
                    mx = std::max(mx, acc);
                }
                double *row_lse = lse ? &(*lse)[size_t((b * Sq + i) * Hq + h)] : nullptr;
                if (mx == -INFINITY) {  // no visible key: zeros
                    if (row_lse && sinks) *row_lse = double(sinks[h]);
                    continue;
                }
                if (sinks) mx = std::max(mx, double(sinks[h]));
                double sum = sinks ? std::exp(double(sinks[h]) - mx) : 0.0;
                for (int64_t j = 0; j < Skv; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
                if (row_lse) *row_lse = mx + std::log(sum);
                double *o = &out[size_t(((b * Sq + i) * Hq + h) * Dv)];
                for (int64_t j = 0; j < Skv; ++j) {
                    const double p = s[size_t(j)] / sum;
                    if (p == 0.0) continue;
                    const double *vr = &v.vals[size_t(v.idx(b, j, g, 0))];
                    for (int64_t d = 0; d < Dv; ++d) o[d] += p * vr[d];
                }
            }
    return out;
}

// Tolerance per dtype: |got - ref| <= abs + rel * |ref|. The 16-bit outputs are
// rounded once at the end, so rel is that rounding (half an ulp) plus slack.
struct tolerance {
    double abs, rel;
};
tolerance tolerance_for(dtype t) {
    if (t == dtype::bf16) return {2e-4, 1.0 / 256};   // bf16: 8 significant bits
    if (t == dtype::f16) return {2e-4, 1.0 / 1024};   // fp16: 11 significant bits
    return {4e-6, 1e-5};                              // fp32
}

struct run_result {
    double max_abs_err = 0.0;
    bool within = true;
};

run_result compare(const tensor4 &out, const std::vector<double> &ref, tolerance tol) {
    run_result r;
    for (int64_t b = 0; b < out.shape[0]; ++b)
        for (int64_t s = 0; s < out.shape[1]; ++s)
            for (int64_t h = 0; h < out.shape[2]; ++h)
                for (int64_t d = 0; d < out.shape[3]; ++d) {
                    const double want = ref[size_t(out.idx(b, s, h, d))], got = out.get(b, s, h, d);
                    const double err = std::fabs(got - want);
                    if (!(err <= tol.abs + tol.rel * std::fabs(want))) r.within = false;
                    if (!(err <= r.max_abs_err)) r.max_abs_err = std::isnan(err) ? INFINITY : err;
                }
    return r;
}

// Runs one case through the C ABI (kernel_set null) or the core with a given
// kernel set, and checks it and its log-sum-exps against the reference.
void check_case(dtype t, int64_t B, int64_t Sq, int64_t Skv, int64_t Hq, int64_t Hkv, int64_t D, const config &c,
                layout lay = layout::compact, const llmkit::attention::kernels *ks = nullptr, int64_t splits = 0) {
    const uint32_t seed = 1;
    std::mt19937 rng(seed + uint32_t(D * 131 + Hq * 7 + Hkv + Sq * 3 + Skv));
    const int64_t Dv = c.dv > 0 ? c.dv : D;
    tensor4 q = make(t, B, Sq, Hq, D, lay, &rng), k = make(t, B, Skv, Hkv, D, lay, &rng),
            v = make(t, B, Skv, Hkv, Dv, lay, &rng), out = make(t, B, Sq, Hq, Dv, lay, nullptr);
    const std::vector<float> slopes = alibi_slopes(Hq);
    mask_data mask;
    if (c.mask) mask = make_mask(c.mask_form, B, Hq, Sq, Skv, rng);
    std::vector<uint8_t> mask_bools;  // c.bool_mask: the mask as bool, and its values 0 / -inf for the reference
    if (c.bool_mask)
        for (float &x : mask.values) {
            mask_bools.push_back(x != -INFINITY);
            x = x == -INFINITY ? -INFINITY : 0.0f;
        }
    const std::vector<float> sinks = sink_logits(Hq, rng);
    llmkit_tensor mt = c.bool_mask ? host_tensor(mask_bools.data(), llmkit_dtype{LLMKIT_DTYPE_BOOL, 8, 1}, mask.ndim, mask.shape)
                                   : host_tensor(mask.values.data(), llmkit_dtype LLMKIT_DTYPE_F32, mask.ndim, mask.shape);
    lse_tensor lse(B, Sq, Hq, lay == layout::bhsd);
    INFO("dtype " << llmkit::core::dtype_name(t) << " B " << B << " Sq " << Sq << " Skv " << Skv << " Hq " << Hq
                  << " Hkv " << Hkv << " D " << D << " Dv " << Dv << " causal " << c.causal << " window " << c.window << " softcap "
                  << c.softcap << " alibi " << c.alibi << " mask " << c.mask << " form " << c.mask_form << " bool " << c.bool_mask << " sinks " << c.sinks << " layout " << int(lay) << " kernels "
                  << (ks ? ks->name : "C ABI") << " kv splits " << splits);
    if (!ks) {
        llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
        o.causal = c.causal;
        o.window = c.window;
        o.softcap = c.softcap;
        o.scale = c.scale;
        o.alibi_slopes = c.alibi ? slopes.data() : nullptr;
        o.mask = c.mask ? &mt : nullptr;
        o.sinks = c.sinks ? sinks.data() : nullptr;
        o.lse = lse.c();
        const llmkit_status st = llmkit_attention(q.c(), k.c(), v.c(), out.c(), &o);
        INFO(llmkit_last_error_message());
        REQUIRE(st == LLMKIT_OK);
    } else {
        using llmkit::core::tensor_view;
        const auto tq = tensor_view::from(q.c(), "q"), tk = tensor_view::from(k.c(), "k"),
                   tv = tensor_view::from(v.c(), "v"), to = tensor_view::from(out.c(), "out");
        const auto tm = tensor_view::from(&mt, "mask");
        const auto tl = tensor_view::from(lse.c(), "lse");
        llmkit::attention::attention_params p;
        p.lse = &tl;
        p.causal = c.causal;
        p.window = c.window;
        p.softcap = c.softcap;
        p.scale = c.scale;
        p.alibi_slopes = c.alibi ? slopes.data() : nullptr;
        p.mask = c.mask ? &tm : nullptr;
        p.sinks = c.sinks ? sinks.data() : nullptr;
        p.kernel_set = ks;
        p.kv_splits = splits;
        llmkit::attention::attention(tq, tk, tv, to, p);
    }
    std::vector<double> ref_lse;
    const auto ref = reference(q, k, v, c, slopes, c.mask ? &mask : nullptr, c.sinks ? sinks.data() : nullptr, &ref_lse);
    const run_result r = compare(out, ref, tolerance_for(t));
    INFO("max abs error " << r.max_abs_err);
    CHECK(r.within);
    double lse_err = 0.0;
    const bool lse_ok = lse_within(lse, ref_lse, 2e-5, &lse_err);
    INFO("lse max abs error " << lse_err);
    CHECK(lse_ok);
}

std::vector<const llmkit::attention::kernels *> kernel_sets() {
    std::vector<const llmkit::attention::kernels *> v{&llmkit::attention::generic_kernels()};
    if (llmkit::attention::avx2_kernels()) v.push_back(llmkit::attention::avx2_kernels());
    if (const auto *k512 = llmkit::attention::avx512_kernels()) {
        v.push_back(k512);
        // The bf16 prefill's other path too, whichever this CPU's vendor picks
        // (bf16 pairs on AMD, float32 tiles elsewhere; see kernels.hpp).
        if (k512->gemm_bf16) {
            static llmkit::attention::kernels other = *k512;
            other.bf16_prefill_on_pairs = !k512->bf16_prefill_on_pairs;
            other.name = other.bf16_prefill_on_pairs ? "avx512 (bf16 prefill on pairs)" : "avx512 (bf16 prefill on f32)";
            v.push_back(&other);
        }
    }
    return v;
}

// Each set of kernel_sets() that has the tokens kernels, without them: its
// decode over compact [B, S, H, D] rows then goes a piece of a few rows per
// head at a time, the path of a set that lacks them.
std::vector<const llmkit::attention::kernels *> sets_without_tokens_kernels() {
    static std::vector<llmkit::attention::kernels> copies = [] {
        std::vector<llmkit::attention::kernels> v;
        for (const auto *ks : kernel_sets())
            if (ks->dots_tokens_pf) {
                llmkit::attention::kernels c = *ks;
                c.dots_tokens_pf = nullptr;
                c.gemm_tokens_pf = nullptr;
                c.dots_bf16_tokens_pf = nullptr;
                c.gemm_bf16_eo_tokens_pf = nullptr;
                v.push_back(c);
            }
        return v;
    }();
    std::vector<const llmkit::attention::kernels *> out;
    for (const auto &c : copies) out.push_back(&c);
    return out;
}

struct heads {
    int64_t hq, hkv;
};
const heads k_heads[] = {{4, 4}, {8, 2}, {4, 1}};  // MHA, GQA, MQA
const int64_t k_dims[] = {64, 80, 96, 128, 256};

}  // namespace

TEST_CASE("attention float32 matches the float64 reference: MHA/GQA/MQA x D, causal and bidirectional",
          "[attention]") {
    for (int64_t D : k_dims)
        for (const heads &h : k_heads)
            for (bool causal : {false, true}) {
                config c;
                c.causal = causal;
                check_case(dtype::f32, 2, 70, 70, h.hq, h.hkv, D, c);
            }
}

TEST_CASE("attention float32: window, ALiBi, softcap, mask and scale, alone and together", "[attention]") {
    for (int64_t D : k_dims) {
        const heads h = k_heads[size_t(D) % 3];
        config w;
        w.window = 13;
        check_case(dtype::f32, 1, 90, 90, h.hq, h.hkv, D, w);
        config a;
        a.alibi = true;
        a.causal = D % 2 == 0;
        check_case(dtype::f32, 1, 40, 70, h.hq, h.hkv, D, a);
        config s;
        s.softcap = 2.0f;  // small, so tanh bends the scores
        s.causal = true;
        check_case(dtype::f32, 1, 33, 33, h.hq, h.hkv, D, s);
        config m;
        m.mask = true;
        check_case(dtype::f32, 2, 20, 75, h.hq, h.hkv, D, m);
        config all;
        all.window = 30;
        all.alibi = all.mask = true;
        all.softcap = 5.0f;
        all.scale = 0.3f;
        check_case(dtype::f32, 1, 50, 80, h.hq, h.hkv, D, all);
    }
}

// f(config with mask form `form`, heads, kernel set, dtype) for every form of
// [first, last] over MHA and GQA, every kernel set, fp32 and bf16.
template <class F>
void for_each_mask_case(int first, int last, F &&f) {
    for (int form = first; form <= last; ++form)
        for (const heads &h : {k_heads[0], k_heads[1]})
            for (const auto *ks : kernel_sets())
                for (dtype t : {dtype::f32, dtype::bf16}) {
                    config c;
                    c.mask = true;
                    c.mask_form = form;
                    f(c, h, ks, t);
                }
}

TEST_CASE("attention: masks broadcast as torch's attn_mask match the reference", "[attention][mask]") {
    // [B, 1, 1, Skv] padding, [B, Hq, Sq, Skv], [Hq, Sq, Skv] and [1, Hq, 1, Skv] per-head key biases, over
    // prefill, a chunk and decode, every kernel set, compact and [B, H, S, D] memory, fp32 and bf16.
    for_each_mask_case(1, 4, [](config &c, const heads &h, const llmkit::attention::kernels *ks, dtype t) {
        const int form = c.mask_form;
        c.causal = form != 2;
        c.window = form == 4 ? 40 : 0;
        c.alibi = form == 3;
        check_case(t, 3, 70, 70, h.hq, h.hkv, 64, c, layout::compact, ks);
        check_case(t, 3, 9, 130, h.hq, h.hkv, 64, c, layout::bhsd, ks);
        check_case(t, 3, 1, 300, h.hq, h.hkv, 128, c, layout::padded, ks, form == 1 ? 3 : 0);
        // Compact [B, S, H, D] decode and a few tokens: the token-walking decode.
        check_case(t, 3, 1, 300, h.hq, h.hkv, 64, c, layout::compact, ks);
        check_case(t, 3, 3, 300, h.hq, h.hkv, 64, c, layout::compact, ks, form == 2 ? 2 : 0);
    });
    // Through the C ABI too, float32 and bool.
    for (int form = 1; form <= 6; ++form)
        for (bool as_bool : {false, true}) {
            config c;
            c.mask = true;
            c.mask_form = form;
            c.causal = true;
            c.bool_mask = as_bool;
            check_case(dtype::f32, 2, 33, 80, 8, 2, 80, c);
        }
}

TEST_CASE("attention: masks that hide whole key tiles (which are skipped) match the reference", "[attention][mask]") {
    // Long left padding (some tiles hidden from every row of a task, one batch
    // row hidden entirely) and runs of hidden keys that differ between the
    // heads and the query rows of one task, over prefill (packed K/V: several
    // query tiles), a chunk, a decode with a window (decode tiles, split keys),
    // every kernel set, fp32 and bf16.
    // Bool masks (torch's boolean attn_mask) on half of them.
    for_each_mask_case(5, 6, [](config &c, const heads &h, const llmkit::attention::kernels *ks, dtype t) {
        const int form = c.mask_form;
        c.bool_mask = (h.hq == h.hkv) != (t == dtype::bf16);
        c.causal = form == 5;
        check_case(t, 5, 200, 200, h.hq, h.hkv, 64, c, layout::compact, ks);
        check_case(t, 5, 20, 200, h.hq, h.hkv, 64, c, layout::bhsd, ks);
        check_case(t, 5, 2, 200, h.hq, h.hkv, 64, c, layout::compact, ks);
        config w = c;
        w.window = 250;
        check_case(t, 5, 1, 500, h.hq, h.hkv, 64, w, layout::padded, ks, 3);
    });
}

TEST_CASE("attention: v's head_dim may differ from q's and k's (DeepSeek's 192 / 128, MLA's 576 / 512)",
          "[attention][dv]") {
    // Every path that reads V: packed prefill (several query tiles), a chunk
    // over [B, H, S, D] rows (streamed decode tiles), decode over padded rows
    // with split keys, a compact [B, S, H, D] decode (the token-walking
    // decode, with V's token rows H * Dv wide) whole and in parts, and the
    // same in fp16 below, V wider than K, and
    // DeepSeek's multi-head latent attention in its absorbed form (one kv
    // head: the latent of 512 and 64 rotary dimensions; v the latent).
    for (const auto *ks : kernel_sets())
        for (dtype t : {dtype::f32, dtype::bf16}) {
            config c;
            c.causal = true;
            c.dv = 128;
            check_case(t, 1, 150, 150, 4, 4, 192, c, layout::compact, ks);
            check_case(t, 2, 9, 130, 8, 2, 192, c, layout::bhsd, ks);
            check_case(t, 2, 1, 300, 8, 2, 192, c, layout::padded, ks, 3);
            check_case(t, 2, 1, 300, 8, 2, 192, c, layout::compact, ks);
            check_case(t, 3, 1, 300, 8, 2, 192, c, layout::compact, ks, 3);
            config wide = c;
            wide.dv = 96;
            check_case(t, 1, 140, 140, 8, 2, 64, wide, layout::compact, ks);
            check_case(t, 2, 2, 200, 8, 2, 64, wide, layout::compact, ks);
            config mla = c;
            mla.dv = 512;
            check_case(t, 2, 1, 200, 16, 1, 576, mla, layout::compact, ks);
            check_case(t, 1, 4, 200, 16, 1, 576, mla, layout::compact, ks, 2);
        }
    // Compact decodes, 192 / 128 whole and 64 / 96 in parts: in fp16 on every
    // set, and by pieces (a set without the tokens kernels) in every dtype.
    auto compact_decodes = [](dtype t, const llmkit::attention::kernels *ks) {
        config c;
        c.causal = true;
        c.dv = 128;
        check_case(t, 2, 1, 300, 8, 2, 192, c, layout::compact, ks);
        c.dv = 96;
        check_case(t, 2, 2, 200, 8, 4, 64, c, layout::compact, ks, 2);
    };
    for (const auto *ks : kernel_sets()) compact_decodes(dtype::f16, ks);
    for (const auto *ks : sets_without_tokens_kernels())
        for (dtype t : {dtype::f32, dtype::bf16, dtype::f16}) compact_decodes(t, ks);
    // Through the C ABI, with every option.
    for (dtype t : {dtype::f32, dtype::bf16, dtype::f16}) {
        config all;
        all.window = 30;
        all.alibi = all.mask = all.sinks = true;
        all.softcap = 5.0f;
        all.dv = 128;
        check_case(t, 2, 50, 80, 8, 2, 192, all);
        check_case(t, 2, 1, 80, 8, 2, 192, all);
    }
}

TEST_CASE("attention bfloat16 and float16 inputs match the reference on the rounded inputs", "[attention]") {
    for (dtype t : {dtype::bf16, dtype::f16})
        for (int64_t D : k_dims)
            for (const heads &h : k_heads) {
                config c;
                c.causal = D != 96;
                c.alibi = D == 80;
                c.mask = D == 128;
                c.window = D == 256 ? 20 : 0;
                check_case(t, 1, 45, 70, h.hq, h.hkv, D, c);
            }
}

TEST_CASE("attention with Sq != Skv: decode (Sq = 1, Skv = 1000) and chunked prefill (Sq = 17, Skv = 100)",
          "[attention]") {
    for (const heads &h : k_heads)
        for (dtype t : {dtype::f32, dtype::bf16}) {
            config c;
            c.causal = true;
            check_case(t, 2, 1, 1000, h.hq, h.hkv, 128, c);
            check_case(t, 2, 17, 100, h.hq, h.hkv, 128, c);
            config w;
            w.window = 40;
            check_case(t, 1, 17, 100, h.hq, h.hkv, 64, w);
            check_case(t, 1, 1, 1000, h.hq, h.hkv, 64, w);
            config bi;  // bidirectional decode, odd head_dim tails
            check_case(t, 1, 3, 300, h.hq, h.hkv, 72, bi);
        }
}

// Decode's dot-product kernels take up to 64 rows per kv head (see
// decode_rows_max): one token of 16 or 32 query heads per kv head, a few
// tokens of 16, and past 64 rows the gemms again, on every kernel set, with
// K and V compact [B, S, H, D] (whose decode walks the tokens) and as
// [B, H, S, D] rows.
TEST_CASE("attention: decode and short chunks with 16 and 32 query heads per kv head", "[attention]") {
    const heads many[] = {{32, 2}, {32, 1}};
    for (const auto *ks : kernel_sets())
        for (dtype t : {dtype::f32, dtype::bf16, dtype::f16})
            for (const heads &h : many)
                for (int64_t Sq : {1, 2, 4, 5})
                    for (layout lay : {layout::compact, layout::bhsd}) {
                        config c;
                        c.causal = true;
                        check_case(t, 2, Sq, 150, h.hq, h.hkv, Sq == 5 ? 80 : 64, c, lay, ks);
                        // The rest of the scores' options on those rows: a window, ALiBi,
                        // soft-capping, sinks, a scale; and a mask, bidirectional.
                        config all;
                        all.window = 37;
                        all.alibi = all.sinks = true;
                        all.softcap = 6.0f;
                        all.scale = 0.2f;
                        check_case(t, 1, Sq, 150, h.hq, h.hkv, 64, all, lay, ks);
                        config m;
                        m.mask = true;
                        check_case(t, 1, Sq, 150, h.hq, h.hkv, 64, m, lay, ks);
                    }
}

TEST_CASE("attention: more queries than keys leaves the rows that see no key at zero", "[attention]") {
    config c;
    c.causal = true;
    check_case(dtype::f32, 1, 20, 8, 2, 1, 64, c);  // rows 0..11 see nothing
}

TEST_CASE("attention: a huge window with more queries than keys equals plain causal", "[attention]") {
    std::mt19937 rng(5);
    tensor4 q = make(dtype::f32, 1, 20, 2, 16, layout::compact, &rng), k = make(dtype::f32, 1, 8, 1, 16, layout::compact, &rng),
            v = make(dtype::f32, 1, 8, 1, 16, layout::compact, &rng), o1 = make(dtype::f32, 1, 20, 2, 16, layout::compact, nullptr),
            o2 = o1;
    llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
    o.causal = 1;
    REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), o1.c(), &o) == LLMKIT_OK);
    o.window = INT64_MAX;  // i + (Skv - Sq) - window + 1 would overflow for the first rows
    REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), o2.c(), &o) == LLMKIT_OK);
    CHECK(o1.bytes == o2.bytes);
}

TEST_CASE("attention accepts any strides on B, S and H (padded and [B, H, S, D] memory)", "[attention]") {
    for (layout lay : {layout::padded, layout::bhsd})
        for (dtype t : {dtype::f32, dtype::bf16}) {
            config c;
            c.causal = true;
            check_case(t, 2, 37, 37, 8, 2, 64, c, lay);
            check_case(t, 2, 1, 130, 8, 2, 96, c, lay);
        }
}

TEST_CASE("attention: the portable and AVX-512 kernel sets both match the reference", "[attention]") {
    for (const auto *ks : kernel_sets())
        for (dtype t : {dtype::f32, dtype::bf16, dtype::f16})
            for (const heads &h : k_heads) {
                config c;
                c.causal = true;
                c.alibi = h.hkv == 2;
                c.softcap = h.hkv == 1 ? 3.0f : 0.0f;
                check_case(t, 1, 70, 70, h.hq, h.hkv, 80, c, layout::compact, ks);
                check_case(t, 1, 1, 150, h.hq, h.hkv, 48, c, layout::compact, ks);
                config m;
                m.mask = true;
                m.window = 10;
                check_case(t, 1, 19, 70, h.hq, h.hkv, 40, m, layout::compact, ks);
            }
}

// K and V compact ([B, S, H, D], heads side by side: decode walks them as the
// caches' decode does) and as [B, H, S, D] (each head's keys contiguous:
// decode streams them); both in tiles of k_decode_tile_keys, against the
// prefill's 64, at positions off both tiles' edges.
TEST_CASE("attention: decoding token t gives row t of the full causal prefill", "[attention]") {
    for (dtype t : {dtype::f32, dtype::bf16})
    for (layout kv : {layout::compact, layout::bhsd}) {
        const int64_t S = 300, Hq = 8, Hkv = 2, D = 64;
        std::mt19937 rng(7);
        tensor4 q = make(t, 1, S, Hq, D, layout::compact, &rng), k = make(t, 1, S, Hkv, D, kv, &rng),
                v = make(t, 1, S, Hkv, D, kv, &rng), full = make(t, 1, S, Hq, D, layout::compact, nullptr);
        llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
        o.causal = 1;
        REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), full.c(), &o) == LLMKIT_OK);
        for (int64_t pos : {0, 1, 63, 64, 65, 100, 149, 255, 256, 257, 299}) {
            // q row pos as [1, 1, Hq, D]; the cache holds keys 0..pos.
            tensor4 q1 = q, k1 = k, v1 = v, o1 = make(t, 1, 1, Hq, D, layout::compact, nullptr);
            llmkit_tensor tq = *q1.c(), tk = *k1.c(), tv = *v1.c();
            const int64_t qshape[4] = {1, 1, Hq, D}, kshape[4] = {1, pos + 1, Hkv, D};
            tq.shape = qshape;
            tq.byte_offset = uint64_t(pos * Hq * D) * q.es();
            tk.shape = tv.shape = kshape;
            REQUIRE(llmkit_attention(&tq, &tk, &tv, o1.c(), &o) == LLMKIT_OK);
            double worst = 0.0;
            for (int64_t h = 0; h < Hq; ++h)
                for (int64_t d = 0; d < D; ++d) worst = std::max(worst, std::fabs(o1.get(0, 0, h, d) - full.get(0, pos, h, d)));
            INFO("dtype " << llmkit::core::dtype_name(t) << " position " << pos << " bhsd " << (kv == layout::bhsd));
            // Tiling differs (one row vs a row tile), so sums are ordered differently.
            CHECK(worst <= (t == dtype::f32 ? 2e-6 : 1.0 / 128));
        }
    }
}

TEST_CASE("attention: n_threads and empty tensors", "[attention]") {
    std::mt19937 rng(3);
    tensor4 q = make(dtype::f32, 1, 40, 4, 64, layout::compact, &rng), k = make(dtype::f32, 1, 40, 2, 64, layout::compact, &rng),
            v = make(dtype::f32, 1, 40, 2, 64, layout::compact, &rng), o1 = make(dtype::f32, 1, 40, 4, 64, layout::compact, nullptr),
            o2 = o1;
    llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
    o.causal = 1;
    o.n_threads = 1;
    REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), o1.c(), &o) == LLMKIT_OK);
    o.n_threads = 3;
    REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), o2.c(), &o) == LLMKIT_OK);
    CHECK(o1.bytes == o2.bytes);  // each row is computed by one task: bit-identical
    tensor4 e = make(dtype::f32, 1, 0, 4, 64, layout::compact, nullptr), eo = e;
    CHECK(llmkit_attention(e.c(), k.c(), v.c(), eo.c(), nullptr) == LLMKIT_OK);
    // No keys at all: zeros.
    tensor4 k0 = make(dtype::f32, 1, 0, 2, 64, layout::compact, nullptr), v0 = k0;
    tensor4 o3 = make(dtype::f32, 1, 40, 4, 64, layout::compact, &rng);
    REQUIRE(llmkit_attention(q.c(), k0.c(), v0.c(), o3.c(), nullptr) == LLMKIT_OK);
    CHECK(o3.get(0, 5, 1, 7) == 0.0);
    // Empty tensors as numpy describes them: every stride 0.
    const int64_t zero_strides[4] = {0, 0, 0, 0};
    llmkit_tensor ez = *e.c(), eoz = *eo.c();
    ez.strides = zero_strides;
    eoz.strides = zero_strides;
    CHECK(llmkit_attention(&ez, k.c(), v.c(), &eoz, nullptr) == LLMKIT_OK);
}

TEST_CASE("attention: a NaN or infinity in q, k, v or the mask is refused, naming the first one; out untouched",
          "[attention][errors]") {
    std::mt19937 rng(17);
    const double bad_values[3] = {NAN, INFINITY, -INFINITY};
    const char *bad_names[3] = {"nan", "inf", "-inf"};
    for (dtype t : {dtype::f32, dtype::bf16, dtype::f16})
        for (int which = 0; which < 3; ++which)
            for (int b = 0; b < 3; ++b) {
                // Strided q (padded rows), compact k and v; two bad values,
                // the message names the first in index order.
                tensor4 q = make(t, 2, 19, 4, 80, layout::padded, &rng), k = make(t, 2, 23, 2, 80, layout::compact, &rng),
                        v = make(t, 2, 23, 2, 80, layout::compact, &rng), o = make(t, 2, 19, 4, 80, layout::compact, &rng);
                tensor4 &x = which == 0 ? q : which == 1 ? k : v;
                std::uniform_int_distribution<int64_t> bi(0, 1), si(0, x.shape[1] - 2), hi(0, x.shape[2] - 1), di(0, 79);
                const int64_t b0 = bi(rng), s0 = si(rng), h0 = hi(rng), d0 = di(rng);
                x.set(b0, s0, h0, d0, bad_values[b]);
                x.set(b0, s0 + 1, h0, d0, NAN);  // later: not the one named
                const std::vector<unsigned char> before = o.bytes;
                llmkit_attention_options op = LLMKIT_ATTENTION_OPTIONS_INIT;
                op.causal = 1;
                op.n_threads = 2;
                const llmkit_status st = llmkit_attention(q.c(), k.c(), v.c(), o.c(), &op);
                const std::string msg = llmkit_last_error_message();
                const std::string want = std::string(which == 0 ? "q" : which == 1 ? "k" : "v") + "[" + std::to_string(b0) + ", " +
                                         std::to_string(s0) + ", " + std::to_string(h0) + ", " + std::to_string(d0) +
                                         "] = " + bad_names[b] + " is not finite";
                INFO("dtype " << llmkit::core::dtype_name(t) << ", message: " << msg << ", expected: " << want);
                CHECK(st == LLMKIT_ERROR_NON_FINITE);
                CHECK(msg.find(want) != std::string::npos);
                CHECK(o.bytes == before);
            }
    // The mask: -inf hides a key and passes; NaN and +inf are refused.
    tensor4 q = make(dtype::f32, 1, 6, 2, 64, layout::compact, &rng), k = make(dtype::f32, 1, 6, 1, 64, layout::compact, &rng),
            o = make(dtype::f32, 1, 6, 2, 64, layout::compact, nullptr);
    std::vector<float> mv(36, 0.25f);
    mv[3] = -INFINITY;
    const int64_t msh[2] = {6, 6};
    llmkit_tensor mt = host_tensor(mv.data(), llmkit_dtype LLMKIT_DTYPE_F32, 2, msh);
    llmkit_attention_options op = LLMKIT_ATTENTION_OPTIONS_INIT;
    op.mask = &mt;
    CHECK(llmkit_attention(q.c(), k.c(), k.c(), o.c(), &op) == LLMKIT_OK);
    for (float badm : {NAN, INFINITY}) {
        mv[20] = badm;
        INFO("message: " << llmkit_last_error_message());
        CHECK(llmkit_attention(q.c(), k.c(), k.c(), o.c(), &op) == LLMKIT_ERROR_NON_FINITE);
        CHECK(std::string(llmkit_last_error_message()).find("options.mask[3, 2] = ") != std::string::npos);
    }
}

TEST_CASE("attention: decode-shaped calls check K and V as they read them: the same bits, the same errors, out untouched",
          "[attention][errors]") {
    // Up to 16 queries in one tile per KV head and no window: K and V rows
    // are checked after the kernels read them and the result is copied out
    // at the end (run_cpu's check_rows). A window of Skv keys hides nothing
    // but takes the whole-tensor check first, so it gives the reference bits.
    struct shape_case {
        int64_t B, Sq, Hq, Hkv, Skv, D;
        layout kv;
    };
    const shape_case cases[] = {
        {2, 1, 8, 2, 37, 64, layout::bhsd},     // dot products, 4 query heads per KV head, 4 tasks
        {1, 2, 4, 1, 700, 80, layout::compact},  // one task: its keys split between the threads
        {1, 1, 32, 1, 100, 64, layout::padded},  // 32 query rows: the gemm tiles
        {1, 16, 1, 1, 50, 64, layout::compact},  // 16 queries, one head each
        {2, 1, 8, 2, 300, 64, layout::compact},  // [B, S, H, D] with 2 heads side by side: the caches' decode
        {1, 2, 8, 4, 700, 80, layout::compact},  // the same, its keys in parts for the threads
    };
    std::mt19937 rng(29);
    const double bad_values[3] = {NAN, INFINITY, -INFINITY};
    const char *bad_names[3] = {"nan", "inf", "-inf"};
    for (const shape_case &sc : cases)
        for (dtype t : {dtype::f32, dtype::bf16, dtype::f16}) {
            INFO("B " << sc.B << " Sq " << sc.Sq << " Hq " << sc.Hq << " Hkv " << sc.Hkv << " Skv " << sc.Skv << " dtype "
                      << llmkit::core::dtype_name(t));
            tensor4 q = make(t, sc.B, sc.Sq, sc.Hq, sc.D, layout::compact, &rng);
            tensor4 k = make(t, sc.B, sc.Skv, sc.Hkv, sc.D, sc.kv, &rng), v = make(t, sc.B, sc.Skv, sc.Hkv, sc.D, sc.kv, &rng);
            tensor4 o = make(t, sc.B, sc.Sq, sc.Hq, sc.D, layout::padded, nullptr), ref = o;
            llmkit_attention_options op = LLMKIT_ATTENTION_OPTIONS_INIT;
            op.causal = 1;
            op.n_threads = 2;
            REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), o.c(), &op) == LLMKIT_OK);
            llmkit_attention_options whole = op;
            whole.window = sc.Skv;
            REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), ref.c(), &whole) == LLMKIT_OK);
            CHECK(o.bytes == ref.bytes);  // every output row, and the gaps between them left alone

            // The bad value with a NaN after it (not the one named); alone (a
            // lone -inf in K scores -inf, like a masked key); alone where
            // every query is 0 (0 * inf is NaN).
            for (int which = 0; which < 2; ++which)
                for (int b = 0; b < 3; ++b)
                    for (int alone = 0; alone < 3; ++alone) {
                        const char *how = alone == 0   ? " and a NaN after it"
                                          : alone == 1 ? " alone"
                                                       : " alone, q 0 there";
                        INFO((which == 0 ? "k" : "v") << " " << bad_names[b] << how);
                        tensor4 kb = k, vb = v, qb = q;
                        tensor4 &x = which == 0 ? kb : vb;
                        std::uniform_int_distribution<int64_t> bi(0, sc.B - 1), si(0, sc.Skv - 2), hi(0, sc.Hkv - 1),
                            di(0, sc.D - 1);
                        const int64_t b0 = bi(rng), s0 = si(rng), h0 = hi(rng), d0 = di(rng);
                        x.set(b0, s0, h0, d0, bad_values[b]);
                        if (alone == 0) x.set(b0, s0 + 1, h0, d0, NAN);  // later: not the one named
                        if (alone == 2)
                            for (int64_t i = 0; i < sc.Sq; ++i)
                                for (int64_t h = 0; h < sc.Hq; ++h) qb.set(b0, i, h, d0, 0.0);
                        const std::vector<unsigned char> before = o.bytes;
                        const llmkit_status st = llmkit_attention(qb.c(), kb.c(), vb.c(), o.c(), &op);
                        const std::string msg = llmkit_last_error_message();
                        const std::string want = std::string(which == 0 ? "k" : "v") + "[" + std::to_string(b0) +
                                                 ", " + std::to_string(s0) + ", " + std::to_string(h0) + ", " +
                                                 std::to_string(d0) + "] = " + bad_names[b] + " is not finite";
                        INFO("message: " << msg << ", expected: " << want);
                        CHECK(st == LLMKIT_ERROR_NON_FINITE);
                        CHECK(msg.find(want) != std::string::npos);
                        CHECK(o.bytes == before);
                    }
            // Finite rows whose scores overflow are not refused (the whole-
            // tensor checks find nothing), and give the reference's bits.
            if (t == dtype::f32) {
                tensor4 kb = k;
                for (int64_t d = 0; d < sc.D; ++d) kb.set(0, sc.Skv / 2, 0, d, q.get(0, 0, 0, d) < 0 ? -3e38 : 3e38);
                tensor4 ob = o, refb = o;
                INFO("scores that overflow");
                CHECK(llmkit_attention(q.c(), kb.c(), v.c(), ob.c(), &op) == LLMKIT_OK);
                CHECK(llmkit_attention(q.c(), kb.c(), v.c(), refb.c(), &whole) == LLMKIT_OK);
                CHECK(ob.bytes == refb.bytes);
                // (The overflow did happen: the row's results are not all finite.)
                bool all_finite = true;
                for (int64_t d = 0; d < sc.D; ++d) all_finite = all_finite && std::isfinite(ob.get(0, 0, 0, d));
                CHECK(!all_finite);
            }
        }
    // A key outside a decode's window is still refused (the window takes the
    // whole-tensor check), and a bad k is named before a bad mask, as before.
    tensor4 q = make(dtype::f32, 1, 1, 4, 64, layout::compact, &rng), k = make(dtype::f32, 1, 40, 1, 64, layout::compact, &rng);
    tensor4 o = make(dtype::f32, 1, 1, 4, 64, layout::compact, nullptr);
    k.set(0, 2, 0, 5, NAN);
    llmkit_attention_options op = LLMKIT_ATTENTION_OPTIONS_INIT;
    op.window = 8;
    CHECK(llmkit_attention(q.c(), k.c(), k.c(), o.c(), &op) == LLMKIT_ERROR_NON_FINITE);
    CHECK(std::string(llmkit_last_error_message()).find("k[0, 2, 0, 5] = nan") != std::string::npos);
    std::vector<float> mv(40, 0.0f);
    mv[7] = NAN;
    const int64_t msh[2] = {1, 40};
    llmkit_tensor mt = host_tensor(mv.data(), llmkit_dtype LLMKIT_DTYPE_F32, 2, msh);
    llmkit_attention_options om = LLMKIT_ATTENTION_OPTIONS_INIT;
    om.mask = &mt;
    CHECK(llmkit_attention(q.c(), k.c(), k.c(), o.c(), &om) == LLMKIT_ERROR_NON_FINITE);
    CHECK(std::string(llmkit_last_error_message()).find("k[0, 2, 0, 5] = nan") != std::string::npos);
    k.set(0, 2, 0, 5, 0.5);
    CHECK(llmkit_attention(q.c(), k.c(), k.c(), o.c(), &om) == LLMKIT_ERROR_NON_FINITE);
    CHECK(std::string(llmkit_last_error_message()).find("options.mask[0, 7] = nan") != std::string::npos);
    // The same over [B, S, H, D] rows with the heads side by side (the
    // token-walking decode, which takes masks too): a padding mask's NaN is
    // refused and named, and so is a NaN in k under the padding's -inf (a
    // hidden key is still read); out untouched.
    {
        tensor4 qd = make(dtype::f32, 2, 1, 8, 64, layout::compact, &rng), kd = make(dtype::f32, 2, 300, 2, 64, layout::compact, &rng);
        tensor4 od = make(dtype::f32, 2, 1, 8, 64, layout::compact, nullptr);
        std::vector<float> pad(600, 0.0f);
        for (int j = 0; j < 100; ++j) pad[size_t(300 + j)] = -INFINITY;  // batch row 1 left-padded by 100
        const int64_t psh[4] = {2, 1, 1, 300};
        llmkit_tensor pt = host_tensor(pad.data(), llmkit_dtype LLMKIT_DTYPE_F32, 4, psh);
        llmkit_attention_options op2 = LLMKIT_ATTENTION_OPTIONS_INIT;
        op2.mask = &pt;
        REQUIRE(llmkit_attention(qd.c(), kd.c(), kd.c(), od.c(), &op2) == LLMKIT_OK);
        const std::vector<unsigned char> before = od.bytes;
        pad[size_t(300 + 150)] = NAN;
        CHECK(llmkit_attention(qd.c(), kd.c(), kd.c(), od.c(), &op2) == LLMKIT_ERROR_NON_FINITE);
        CHECK(std::string(llmkit_last_error_message()).find("options.mask[1, 0, 0, 150] = nan") != std::string::npos);
        CHECK(od.bytes == before);
        pad[size_t(300 + 150)] = 0.0f;
        kd.set(1, 40, 1, 9, NAN);
        CHECK(llmkit_attention(qd.c(), kd.c(), kd.c(), od.c(), &op2) == LLMKIT_ERROR_NON_FINITE);
        CHECK(std::string(llmkit_last_error_message()).find("k[1, 40, 1, 9] = nan") != std::string::npos);
        CHECK(od.bytes == before);
    }
    // No queries: nothing to compute, but a NaN in k or v is refused as in any
    // other call (found by fuzz_attention: an empty q let it through).
    tensor4 q0 = make(dtype::f32, 1, 0, 4, 64, layout::compact, &rng), o0 = q0;
    tensor4 v1 = make(dtype::f32, 1, 40, 1, 64, layout::compact, &rng);
    CHECK(llmkit_attention(q0.c(), k.c(), v1.c(), o0.c(), nullptr) == LLMKIT_OK);
    v1.set(0, 39, 0, 63, INFINITY);
    CHECK(llmkit_attention(q0.c(), k.c(), v1.c(), o0.c(), nullptr) == LLMKIT_ERROR_NON_FINITE);
    CHECK(std::string(llmkit_last_error_message()).find("v[0, 39, 0, 63] = inf") != std::string::npos);
}

TEST_CASE("attention: bad arguments give clear errors that name the problem", "[attention][errors]") {
    std::mt19937 rng(5);
    auto mk = [&](dtype t, int64_t S, int64_t H, int64_t D) { return make(t, 1, S, H, D, layout::compact, &rng); };
    tensor4 q = mk(dtype::f32, 8, 6, 64), k = mk(dtype::f32, 8, 4, 64), v = mk(dtype::f32, 8, 4, 64), o = mk(dtype::f32, 8, 6, 64);
    auto expect = [](llmkit_status got, llmkit_status want, const std::string &needle) {
        INFO("message: " << llmkit_last_error_message());
        CHECK(got == want);
        CHECK(std::string(llmkit_last_error_message()).find(needle) != std::string::npos);
    };
    expect(llmkit_attention(q.c(), k.c(), v.c(), o.c(), nullptr), LLMKIT_ERROR_SHAPE, "multiple of the number of key/value heads");
    tensor4 k2 = mk(dtype::f32, 8, 2, 64), v2 = mk(dtype::f32, 8, 2, 64);
    REQUIRE(llmkit_attention(q.c(), k2.c(), v2.c(), o.c(), nullptr) == LLMKIT_OK);
    tensor4 kd = mk(dtype::f32, 8, 2, 32);
    expect(llmkit_attention(q.c(), kd.c(), v2.c(), o.c(), nullptr), LLMKIT_ERROR_SHAPE, "head_dim differs");
    tensor4 kb = mk(dtype::bf16, 8, 2, 64);
    expect(llmkit_attention(q.c(), kb.c(), v2.c(), o.c(), nullptr), LLMKIT_ERROR_DTYPE, "k: dtype bfloat16 differs");
    tensor4 vs = mk(dtype::f32, 9, 2, 64);
    expect(llmkit_attention(q.c(), k2.c(), vs.c(), o.c(), nullptr), LLMKIT_ERROR_SHAPE, "same sequence length");
    tensor4 os = mk(dtype::f32, 8, 6, 32);
    expect(llmkit_attention(q.c(), k2.c(), v2.c(), os.c(), nullptr), LLMKIT_ERROR_SHAPE, "out: shape");
    tensor4 big = mk(dtype::f32, 2, 2, 584), bigo = big;
    expect(llmkit_attention(big.c(), big.c(), big.c(), bigo.c(), nullptr), LLMKIT_ERROR_SHAPE,
           "head_dim D = 584 exceeds the supported maximum of 576");
    // v's head_dim may differ from q's and k's (out takes it), within the same maximum.
    tensor4 vw = mk(dtype::f32, 8, 2, 584), ow = mk(dtype::f32, 8, 6, 584);
    expect(llmkit_attention(q.c(), k2.c(), vw.c(), ow.c(), nullptr), LLMKIT_ERROR_SHAPE,
           "v's head_dim Dv = 584 exceeds");
    tensor4 v96 = mk(dtype::f32, 8, 2, 96), o96 = mk(dtype::f32, 8, 6, 96);
    REQUIRE(llmkit_attention(q.c(), k2.c(), v96.c(), o96.c(), nullptr) == LLMKIT_OK);
    expect(llmkit_attention(q.c(), k2.c(), v96.c(), o.c(), nullptr), LLMKIT_ERROR_SHAPE,
           "out: shape [1, 8, 6, 64] must be [B, Sq, Hq, Dv] = [1, 8, 6, 96]");
    tensor4 q0 = mk(dtype::f32, 8, 6, 0), k0 = mk(dtype::f32, 8, 2, 0);
    expect(llmkit_attention(q0.c(), k0.c(), v96.c(), o96.c(), nullptr), LLMKIT_ERROR_SHAPE, "only both may be 0");
    expect(llmkit_attention(nullptr, k2.c(), v2.c(), o.c(), nullptr), LLMKIT_ERROR_NULL_POINTER, "q");
    expect(llmkit_attention(q.c(), k2.c(), nullptr, o.c(), nullptr), LLMKIT_ERROR_NULL_POINTER, "v");
    // A non-unit stride on D.
    llmkit_tensor kt = *k2.c();
    const int64_t kst[4] = {8 * 2 * 64, 2 * 64, 64, 2}, ksh[4] = {1, 8, 2, 32};
    kt.strides = kst;
    kt.shape = ksh;
    tensor4 q32 = mk(dtype::f32, 8, 6, 32), v32 = mk(dtype::f32, 8, 2, 32), o32 = q32;
    expect(llmkit_attention(q32.c(), &kt, v32.c(), o32.c(), nullptr), LLMKIT_ERROR_UNSUPPORTED, "k: the head_dim axis (3) must have stride 1");
    // Rank.
    llmkit_tensor q3 = *q.c();
    q3.ndim = 3;
    expect(llmkit_attention(&q3, k2.c(), v2.c(), o.c(), nullptr), LLMKIT_ERROR_SHAPE, "q: expected 4 dimensions");
    // An output whose elements share memory (a stride of 0), and strides
    // whose offsets overflow (found by fuzz_attention's checks; the second is
    // refused before any element is read).
    {
        llmkit_tensor ob = *o.c();
        const int64_t obst[4] = {o.shape[1] * o.shape[2] * o.shape[3], o.shape[2] * o.shape[3], 0, 1};
        ob.strides = obst;
        expect(llmkit_attention(q.c(), k2.c(), v2.c(), &ob, nullptr), LLMKIT_ERROR_UNSUPPORTED,
               "out: dimension 2 (extent 6) has stride 0");
        llmkit_tensor kh = *k2.c();
        const int64_t khst[4] = {0, int64_t(1) << 61, k2.shape[3], 1};
        kh.strides = khst;
        expect(llmkit_attention(q.c(), &kh, v2.c(), o.c(), nullptr), LLMKIT_ERROR_SHAPE,
               "k: stride 2305843009213693952 of dimension 1 (extent 8) puts elements past 2^63 bytes");
    }
    // Options.
    llmkit_attention_options op = LLMKIT_ATTENTION_OPTIONS_INIT;
    op.scale = NAN;
    expect(llmkit_attention(q.c(), k2.c(), v2.c(), o.c(), &op), LLMKIT_ERROR_INVALID_ARGUMENT, "options.scale");
    op = llmkit_attention_options LLMKIT_ATTENTION_OPTIONS_INIT;
    op.softcap = -1.0f;
    expect(llmkit_attention(q.c(), k2.c(), v2.c(), o.c(), &op), LLMKIT_ERROR_INVALID_ARGUMENT, "options.softcap");
    op = llmkit_attention_options LLMKIT_ATTENTION_OPTIONS_INIT;
    op.window = -3;
    expect(llmkit_attention(q.c(), k2.c(), v2.c(), o.c(), &op), LLMKIT_ERROR_INVALID_ARGUMENT, "options.window");
    op = llmkit_attention_options LLMKIT_ATTENTION_OPTIONS_INIT;
    op.struct_size = sizeof(op) + 8;
    expect(llmkit_attention(q.c(), k2.c(), v2.c(), o.c(), &op), LLMKIT_ERROR_INVALID_ARGUMENT, "struct_size");
    // A size that ends inside a field (here half of the mask pointer, whose
    // other half would come from the default NULL) is refused, not read.
    op = llmkit_attention_options LLMKIT_ATTENTION_OPTIONS_INIT;
    float unused = 0.0f;
    llmkit_tensor mask_tensor{};
    mask_tensor.data = &unused;
    op.mask = &mask_tensor;
    for (uint32_t cut : {uint32_t(offsetof(llmkit_attention_options, mask) + 4),
                         uint32_t(offsetof(llmkit_attention_options, window) + 2),
                         uint32_t(offsetof(llmkit_attention_options, sinks) + 1)}) {
        op.struct_size = cut;
        expect(llmkit_attention(q.c(), k2.c(), v2.c(), o.c(), &op), LLMKIT_ERROR_INVALID_ARGUMENT,
               "options.struct_size = " + std::to_string(cut) + " ends inside field");
    }
    op = llmkit_attention_options LLMKIT_ATTENTION_OPTIONS_INIT;
    std::vector<float> slopes(6, 0.5f);
    slopes[4] = INFINITY;
    op.alibi_slopes = slopes.data();
    expect(llmkit_attention(q.c(), k2.c(), v2.c(), o.c(), &op), LLMKIT_ERROR_INVALID_ARGUMENT, "alibi_slopes[4]");
    op = llmkit_attention_options LLMKIT_ATTENTION_OPTIONS_INIT;
    std::vector<float> mv(8 * 7, 0.0f);
    const int64_t msh[2] = {8, 7};
    llmkit_tensor mt = host_tensor(mv.data(), llmkit_dtype LLMKIT_DTYPE_F32, 2, msh);
    op.mask = &mt;
    expect(llmkit_attention(q.c(), k2.c(), v2.c(), o.c(), &op), LLMKIT_ERROR_SHAPE, "options.mask: shape [8, 7] must be [Sq, Skv] = [8, 8]");
    // Broadcast masks: each axis [B, Hq, Sq, Skv]'s size or 1; 2 to 4 axes.
    std::vector<float> mv4(2 * 8 * 8, 0.0f);
    const int64_t bad4[4] = {1, 2, 8, 8}, bad1[1] = {8}, bad5[5] = {1, 1, 1, 8, 8};
    llmkit_tensor m4 = host_tensor(mv4.data(), llmkit_dtype LLMKIT_DTYPE_F32, 4, bad4);
    op.mask = &m4;
    expect(llmkit_attention(q.c(), k2.c(), v2.c(), o.c(), &op), LLMKIT_ERROR_SHAPE,
           "options.mask: shape [1, 2, 8, 8] must be [Sq, Skv] = [8, 8] or broadcast to [B, Hq, Sq, Skv]");
    llmkit_tensor m1 = host_tensor(mv4.data(), llmkit_dtype LLMKIT_DTYPE_F32, 1, bad1);
    op.mask = &m1;
    expect(llmkit_attention(q.c(), k2.c(), v2.c(), o.c(), &op), LLMKIT_ERROR_SHAPE, "options.mask: shape [8]");
    llmkit_tensor m5 = host_tensor(mv4.data(), llmkit_dtype LLMKIT_DTYPE_F32, 5, bad5);
    op.mask = &m5;
    expect(llmkit_attention(q.c(), k2.c(), v2.c(), o.c(), &op), LLMKIT_ERROR_SHAPE, "options.mask: shape [1, 1, 1, 8, 8]");
    // CUDA tensors without a GPU backend: a clear NO_DEVICE (or, with CUDA and a GPU, it runs).
    llmkit_tensor qc = *q.c();
    qc.device.device_type = LLMKIT_DEVICE_CUDA;
    int32_t n = 0;
    llmkit_device_count(&n, LLMKIT_DEVICE_CUDA);
    if (n == 0) expect(llmkit_attention(&qc, k2.c(), v2.c(), o.c(), nullptr), LLMKIT_ERROR_NO_DEVICE, "q is a CUDA tensor");
}

TEST_CASE("llmkit_kv_cache_bytes: published model configs and overflow", "[attention][kv]") {
    uint64_t b = 0;
    // Llama 2 7B: 32 layers, 32 kv heads, head_dim 128; fp16, 4096 tokens: 2 GiB.
    REQUIRE(llmkit_kv_cache_bytes(&b, 32, 32, 128, 2, 4096, 1) == LLMKIT_OK);
    CHECK(b == 2ull * 1024 * 1024 * 1024);
    // Llama 3 8B: 32 layers, 8 kv heads: 128 KiB per token.
    REQUIRE(llmkit_kv_cache_bytes(&b, 32, 8, 128, 2, 1, 1) == LLMKIT_OK);
    CHECK(b == 131072);
    CHECK(llmkit_kv_cache_bytes(&b, 80, 8, 128, 2, int64_t(1) << 40, int64_t(1) << 20) == LLMKIT_ERROR_OUT_OF_RANGE);
    CHECK(std::string(llmkit_last_error_message()).find("64 bits") != std::string::npos);
    CHECK(llmkit_kv_cache_bytes(&b, -1, 8, 128, 2, 1, 1) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(llmkit_last_error_message()).find("n_layers") != std::string::npos);
    CHECK(llmkit_kv_cache_bytes(nullptr, 1, 8, 128, 2, 1, 1) == LLMKIT_ERROR_NULL_POINTER);
    REQUIRE(llmkit_kv_cache_bytes(&b, 0, 8, 128, 2, int64_t(1) << 62, int64_t(1) << 62) == LLMKIT_OK);
    CHECK(b == 0);
    // V with its own head_dim: DeepSeek-V3 (61 layers, 128 heads, K 192, V 128) in bf16, per token; its
    // latent cache (one head of 512 + 64, no V); a V as wide as K is llmkit_kv_cache_bytes.
    REQUIRE(llmkit_kv_cache_bytes_dv(&b, 61, 128, 192, 128, 2, 1, 1) == LLMKIT_OK);
    CHECK(b == 61ull * 128 * (192 + 128) * 2);
    REQUIRE(llmkit_kv_cache_bytes_dv(&b, 61, 1, 576, 0, 2, 131072, 1) == LLMKIT_OK);
    CHECK(b == 61ull * 1152 * 131072);
    uint64_t same = 0;
    REQUIRE(llmkit_kv_cache_bytes_dv(&same, 32, 8, 128, 128, 2, 4096, 3) == LLMKIT_OK);
    REQUIRE(llmkit_kv_cache_bytes(&b, 32, 8, 128, 2, 4096, 3) == LLMKIT_OK);
    CHECK(same == b);
    CHECK(llmkit_kv_cache_bytes_dv(&b, 1, 1, 128, -1, 2, 1, 1) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(llmkit_last_error_message()).find("v_head_dim must be >= 0") != std::string::npos);
    CHECK(llmkit_kv_cache_bytes_dv(&b, 1, 1, int64_t(1) << 62, int64_t(1) << 62, 4, 1, 1) == LLMKIT_ERROR_OUT_OF_RANGE);
    CHECK(llmkit_kv_cache_bytes_dv(nullptr, 1, 1, 1, 1, 1, 1, 1) == LLMKIT_ERROR_NULL_POINTER);
}

TEST_CASE("attention kernels: the AVX2 and AVX-512 16-bit and 8-bit conversions are bit-exact with the core's",
          "[attention][kernels]") {
    const auto &gen = llmkit::attention::generic_kernels();
    std::mt19937 rng(17);
    std::vector<float> f;
    std::uniform_real_distribution<float> u(-70000.0f, 70000.0f);
    for (int i = 0; i < 3000; ++i) f.push_back(u(rng));
    for (int e = -30; e <= 20; ++e) f.push_back(std::ldexp(1.2345f, e));  // fp16 subnormals and overflow
    for (float x : {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 65504.0f, 65520.0f, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256})
        f.push_back(x);
    // Rounding ties of both formats, either parity, and values near the fp16 subnormal and overflow edges.
    for (uint32_t bits : {0x3F808000u, 0x3F818000u, 0x3F800FFFu, 0x3F801000u, 0x3F803000u, 0x33000000u, 0x33000001u,
                          0x387FE000u, 0x387FF000u, 0x477FEFFFu, 0x477FF000u, 0xC77FF000u, 0x00000001u, 0x80400000u}) {
        float x;
        std::memcpy(&x, &bits, 4);
        f.push_back(x);
    }
    f.push_back(1.0f);  // an odd count: exercises the tail
    // Every 16-bit pattern (NaN payloads, signalling NaNs, subnormals) as input to half_to_f32.
    std::vector<uint16_t> all(65536);
    for (uint32_t i = 0; i < 65536; ++i) all[i] = uint16_t(i);
    std::vector<const llmkit::attention::kernels *> sets;
    if (llmkit::attention::avx2_kernels()) sets.push_back(llmkit::attention::avx2_kernels());
    if (llmkit::attention::avx512_kernels()) sets.push_back(llmkit::attention::avx512_kernels());
    for (const auto *ks : sets) {
        INFO("kernels " << ks->name);
        const bool avx2 = std::string(ks->name) == "avx2";
        for (bool bf : {true, false}) {
            INFO("bf16 " << bf);
            std::vector<uint16_t> a(f.size()), b(f.size());
            ks->f32_to_half(a.data(), f.data(), int64_t(f.size()), bf);
            gen.f32_to_half(b.data(), f.data(), int64_t(f.size()), bf);
            CHECK(a == b);
            std::vector<float> x(f.size()), y(f.size());
            ks->half_to_f32(x.data(), a.data(), int64_t(a.size()), bf);
            gen.half_to_f32(y.data(), a.data(), int64_t(a.size()), bf);
            CHECK(std::memcmp(x.data(), y.data(), x.size() * 4) == 0);
            if (!avx2) continue;  // the AVX-512 set lets F16C quiet signalling NaNs and keep NaN payloads
            // Every length 0..40 (tails), every 16-bit pattern, and float NaNs with payloads.
            for (int64_t n = 0; n <= 40; ++n) {
                std::vector<uint16_t> c(size_t(n) + 1, 0xABCD), d(size_t(n) + 1, 0xABCD);
                ks->f32_to_half(c.data(), f.data() + 100, n, bf);
                gen.f32_to_half(d.data(), f.data() + 100, n, bf);
                CHECK(c == d);  // including the guard element after the end
                std::vector<float> g(size_t(n) + 1, 7.0f), h(size_t(n) + 1, 7.0f);
                ks->half_to_f32(g.data(), a.data() + 7, n, bf);
                gen.half_to_f32(h.data(), a.data() + 7, n, bf);
                CHECK(std::memcmp(g.data(), h.data(), g.size() * 4) == 0);
            }
            std::vector<float> p(all.size()), q(all.size());
            ks->half_to_f32(p.data(), all.data(), int64_t(all.size()), bf);
            gen.half_to_f32(q.data(), all.data(), int64_t(all.size()), bf);
            CHECK(std::memcmp(p.data(), q.data(), p.size() * 4) == 0);
            std::vector<float> nans;
            for (uint32_t bits : {0x7F800001u, 0x7FC00000u, 0x7FC12345u, 0xFFBFFFFFu, 0x7FFFFFFFu, 0xFF801000u,
                                  0x7F802000u})
                for (int rep = 0; rep < 3; ++rep) {
                    float x;
                    std::memcpy(&x, &bits, 4);
                    nans.push_back(x);
                }
            std::vector<uint16_t> na(nans.size()), nb(nans.size());
            ks->f32_to_half(na.data(), nans.data(), int64_t(nans.size()), bf);
            gen.f32_to_half(nb.data(), nans.data(), int64_t(nans.size()), bf);
            CHECK(na == nb);
        }
        // 8-bit rows (every byte value among them; E4M3's NaN codes left
        // out: no cache stores them, and their raw values are finite).
        std::vector<int8_t> i8(37 * 41);
        for (size_t i = 0; i < i8.size(); ++i) i8[i] = int8_t(int(i * 37 % 256) - 128);
        std::vector<float> sc(41);
        for (size_t i = 0; i < sc.size(); ++i) sc[i] = 0.001f * float(i + 1) + 1e-7f;
        for (row_type e : {row_type::i8, row_type::e4m3, row_type::e5m2}) {
            std::vector<int8_t> rows = i8;
            if (e == row_type::e4m3)
                for (int8_t &b : rows)
                    if ((uint8_t(b) & 0x7f) == 0x7f) b = 0x11;
            for (int64_t D : {1, 7, 8, 16, 37}) {
                INFO("row type " << int(e) << " D " << D);
                std::vector<float> x(size_t(41 * D)), y(size_t(41 * D));
                ks->q8_to_f32(x.data(), rows.data(), 41, D, sc.data(), e);
                gen.q8_to_f32(y.data(), rows.data(), 41, D, sc.data(), e);
                CHECK(std::memcmp(x.data(), y.data(), x.size() * 4) == 0);
            }
        }
    }
}

// The FP8 raw values (kernels.hpp's row_type: fp16 bits) against the quant
// block's decoding tables (built from the formats' definitions, checked
// against torch's casts in test_quant_formats.py): E5M2 is its value, E4M3
// its value / 2^8, for every byte (E4M3's NaN codes aside).
TEST_CASE("attention kernels: FP8 rows widen to their values (E4M3 / 2^8) in every kernel set", "[attention][kernels][fp8]") {
    std::vector<const llmkit::attention::kernels *> sets{&llmkit::attention::generic_kernels()};
    if (llmkit::attention::avx2_kernels()) sets.push_back(llmkit::attention::avx2_kernels());
    if (llmkit::attention::avx512_kernels()) sets.push_back(llmkit::attention::avx512_kernels());
    std::vector<uint8_t> bytes(256);
    for (int b = 0; b < 256; ++b) bytes[size_t(b)] = uint8_t(b);
    const float one = 1.0f;
    for (const auto *ks : sets) {
        INFO("kernel set " << ks->name);
        std::vector<float> a(256), b(256);
        ks->q8_to_f32(a.data(), bytes.data(), 1, 256, &one, row_type::e4m3);
        ks->q8_to_f32(b.data(), bytes.data(), 1, 256, &one, row_type::e5m2);
        int checked = 0;
        for (int c = 0; c < 256; ++c) {
            INFO("byte " << c);
            if ((c & 0x7f) != 0x7f) {
                CHECK(a[size_t(c)] * 256.0f == llmkit::quant::e4m3_to_f32(uint8_t(c)));
                CHECK(std::signbit(a[size_t(c)]) == bool(c & 0x80));
                ++checked;
            }
            const float want = llmkit::quant::e5m2_to_f32(uint8_t(c));
            if (std::isnan(want))
                CHECK(std::isnan(b[size_t(c)]));
            else
                CHECK(b[size_t(c)] == want);
        }
        CHECK(checked == 254);
    }
}

TEST_CASE("attention kernels: the vectorised exp of softmax_tile is within 2 ulp of exp", "[attention][kernels]") {
    std::vector<const llmkit::attention::kernels *> sets;
    if (llmkit::attention::avx2_kernels()) sets.push_back(llmkit::attention::avx2_kernels());
    if (llmkit::attention::avx512_kernels()) sets.push_back(llmkit::attention::avx512_kernels());
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-87.0f, 0.0f);
    for (const auto *ks : sets)
        for (int R : {1, 2, 4, 8, 20}) {  // packed rows (decode), whole vectors, a partial vector
            const int N = 301;
            std::vector<float> st(static_cast<size_t>(N * R)), m(static_cast<size_t>(R), -INFINITY), l(static_cast<size_t>(R), 0.0f),
                alpha(static_cast<size_t>(R));
            for (float &x : st) x = u(rng);
            for (int r = 0; r < R; ++r) st[size_t(7 * R + r)] = 0.0f;  // every row's max is 0: p = exp(x) exactly
            for (int r = 0; r < R; ++r) st[size_t(9 * R + r)] = -INFINITY;  // a hidden key
            const std::vector<float> x = st;
            ks->softmax_tile(st.data(), N, R, m.data(), l.data(), alpha.data());
            double worst = 0.0;
            for (size_t i = 0; i < st.size(); ++i) {
                const double want = std::exp(double(x[i]));
                if (want == 0.0) continue;  // the hidden key, checked below
                const double ulp = std::ldexp(1.0, std::ilogb(float(want)) - 23);
                worst = std::max(worst, std::fabs(double(st[i]) - want) / ulp);
            }
            INFO("kernels " << ks->name << " R " << R << " worst error " << worst << " ulp");
            CHECK(worst <= 2.0);
            for (int r = 0; r < R; ++r) {
                CHECK(m[size_t(r)] == 0.0f);
                CHECK(alpha[size_t(r)] == 0.0f);  // exp(-inf): the empty running sum is scaled away
                CHECK(st[size_t(9 * R + r)] == 0.0f);
                double sum = 0.0;
                for (int j = 0; j < N; ++j) sum += std::exp(double(x[size_t(j * R + r)]));
                CHECK(std::fabs(double(l[size_t(r)]) - sum) <= 1e-5 * sum);
            }
        }
    // A sweep of [-87.33, 0] in steps of 2^-10 (every reduction boundary
    // n ln2 +- ln2 / 2 is crossed, down to the smallest normal result), and
    // the first lanes below it, which give 0.
    for (const auto *ks : sets) {
        const int R = 8, N = 1024;
        double worst = 0.0;
        int zeros = 0, below = 0;
        for (double x0 = -87.3365; x0 < 0.0; x0 += double(R) * N / 1024.0) {
            std::vector<float> st(static_cast<size_t>(N * R)), m(static_cast<size_t>(R), -INFINITY),
                l(static_cast<size_t>(R), 0.0f), alpha(static_cast<size_t>(R));
            for (size_t i = 0; i < st.size(); ++i) st[i] = std::min(0.0f, float(x0 + double(i) / 1024.0));
            for (int r = 0; r < R; ++r) st[size_t(r)] = 0.0f;  // every row's max is 0: p = exp(x)
            if (x0 < -87.0) {  // the lanes just below the smallest normal result
                st[size_t(R)] = -87.3366f;
                st[size_t(R + 1)] = -87.34f;
                st[size_t(R + 2)] = -100.0f;
                below = 3;
            }
            const std::vector<float> x = st;
            ks->softmax_tile(st.data(), N, R, m.data(), l.data(), alpha.data());
            for (size_t i = 0; i < st.size(); ++i) {
                if (double(x[i]) < -87.33654) {
                    zeros += st[i] == 0.0f;
                    continue;
                }
                const double want = std::exp(double(x[i]));
                const double ulp = std::ldexp(1.0, std::ilogb(float(want)) - 23);
                worst = std::max(worst, std::fabs(double(st[i]) - want) / ulp);
            }
        }
        INFO("kernels " << ks->name << " sweep: worst error " << worst << " ulp");
        CHECK(worst <= 2.0);
        CHECK(zeros == below);
    }
    // A NaN score (an overflowed q.k) stays NaN as a probability and makes
    // its row's sum NaN, so the results tell (see check_rows in
    // attention.cpp); the other rows keep their numbers.
    for (const auto *ks : sets)
        for (int R : {4, 8, 20}) {
            const int N = 70;
            std::vector<float> st(static_cast<size_t>(N * R)), m(static_cast<size_t>(R), -INFINITY),
                l(static_cast<size_t>(R), 0.0f), alpha(static_cast<size_t>(R));
            for (float &x : st) x = u(rng) / 16.0f;
            st[size_t(5 * R + 3)] = NAN;
            ks->softmax_tile(st.data(), N, R, m.data(), l.data(), alpha.data());
            INFO("kernels " << ks->name << " R " << R);
            CHECK(std::isnan(l[3]));
            CHECK(std::isnan(st[size_t(5 * R + 3)]));
            int nan_elsewhere = 0;
            for (int j = 0; j < N; ++j)
                for (int r = 0; r < R; ++r)
                    if (r != 3) nan_elsewhere += std::isnan(st[size_t(j * R + r)]);
            CHECK(nan_elsewhere == 0);
            for (int r = 0; r < R; ++r)
                if (r != 3) CHECK(std::isfinite(l[size_t(r)]));
        }
}

TEST_CASE("attention: odd shapes (tiny and odd head_dim, 96 query heads on one kv head)", "[attention]") {
    for (const auto *ks : kernel_sets()) {
        config c;
        c.causal = true;
        check_case(dtype::f32, 1, 5, 9, 96, 1, 64, c, layout::compact, ks);
        check_case(dtype::f32, 2, 3, 70, 2, 2, 1, c, layout::padded, ks);
        check_case(dtype::bf16, 1, 20, 20, 3, 1, 17, c, layout::compact, ks);
        config bi;
        check_case(dtype::f16, 1, 65, 129, 2, 1, 8, bi, layout::bhsd, ks);
    }
}

TEST_CASE("attention: splitting the keys across threads (flash-decoding) merges to the same result", "[attention]") {
    for (const auto *ks : kernel_sets())
        for (int64_t splits : {2, 3, 7}) {
            config c;
            c.causal = true;
            check_case(dtype::f32, 1, 1, 1000, 8, 1, 128, c, layout::compact, ks, splits);
            check_case(dtype::bf16, 2, 17, 300, 4, 2, 64, c, layout::bhsd, ks, splits);
            config w;  // a window: most splits of a row see nothing
            w.window = 50;
            w.alibi = true;
            check_case(dtype::f32, 1, 3, 700, 4, 4, 80, w, layout::compact, ks, splits);
            check_case(dtype::bf16, 2, 1, 1000, 8, 2, 64, c, layout::compact, ks, splits);  // heads side by side
            config m;
            m.mask = true;
            m.softcap = 4.0f;
            check_case(dtype::f32, 1, 2, 200, 2, 1, 64, m, layout::compact, ks, splits);
        }
}

// Decode calls whose K and V exceed k_cache_resident_bytes stream them from
// memory: shorter pieces over [B, S, H, D] rows and, on Zen 5, the AVX2 p.v
// where calls that fit in the caches take gemm_pf_in_cache. Both must give
// the same bits: a batch past the threshold against each sequence alone
// (under it), with the same key splits, and against the float64 reference.
TEST_CASE("attention decode: calls past the caches' size give the bits of calls that fit", "[attention]") {
    const int64_t Hq = 32, Hkv = 8, D = 128;
    for (dtype t : {dtype::f32, dtype::bf16})
        for (layout lay : {layout::compact, layout::bhsd}) {
            const int64_t es = t == dtype::f32 ? 4 : 2;
            // The smallest whole batch past the threshold whose sequences each fit under it.
            const int64_t B = 2, Skv = llmkit::attention::k_cache_resident_bytes / (2 * Hkv * D * es) * 9 / (8 * B) + 5;
            REQUIRE(2 * B * Skv * Hkv * D * es > llmkit::attention::k_cache_resident_bytes);
            INFO("dtype " << llmkit::core::dtype_name(t) << " layout " << int(lay) << " Skv " << Skv);
            std::mt19937 rng(61);
            tensor4 q = make(t, B, 1, Hq, D, layout::compact, &rng);
            tensor4 k = make(t, B, Skv, Hkv, D, lay, &rng), v = make(t, B, Skv, Hkv, D, lay, &rng);
            tensor4 whole = make(t, B, 1, Hq, D, layout::compact, nullptr), alone = whole;
            llmkit::attention::attention_params p;
            p.causal = true;
            p.kv_splits = 3;
            p.n_threads = 2;
            using llmkit::core::tensor_view;
            llmkit::attention::attention(tensor_view::from(q.c(), "q"), tensor_view::from(k.c(), "k"),
                                         tensor_view::from(v.c(), "v"), tensor_view::from(whole.c(), "out"), p);
            // Sequence b alone: the same tensors from b on, one row of the batch.
            auto one = [](tensor4 &x, int64_t b, const char *name) {
                tensor_view view = tensor_view::from(x.c(), name);
                view.data += b * x.strides[0] * int64_t(x.es());
                view.shape[0] = 1;
                return view;
            };
            for (int64_t b = 0; b < B; ++b)
                llmkit::attention::attention(one(q, b, "q"), one(k, b, "k"), one(v, b, "v"), one(alone, b, "out"), p);
            CHECK(std::memcmp(whole.bytes.data(), alone.bytes.data(), whole.bytes.size()) == 0);
            config c;
            c.causal = true;
            const run_result r = compare(whole, reference(q, k, v, c, {}, nullptr, nullptr), tolerance_for(t));
            INFO("max abs error " << r.max_abs_err);
            CHECK(r.within);
        }
}

TEST_CASE("attention prefill tiles: lengths off the tile edges, GQA 1/4/8, causal and window edges, waves of packed K/V",
          "[attention]") {
    // Query tiles hold 128 / G queries (128, 32, 16 for G = 1, 4, 8) and key
    // tiles 64 keys; a group with several query tiles packs its K/V rows once
    // and groups run in waves. Lengths one past or short of those edges, a last
    // tile of 1 query (dot products instead of the gemm), windows ending inside
    // a tile and Sq != Skv, on every kernel set and through the C ABI.
    std::vector<const llmkit::attention::kernels *> sets = kernel_sets();
    sets.push_back(nullptr);
    for (const auto *ks : sets) {
        config causal;
        causal.causal = true;
        config win;
        win.window = 70;
        config bi;
        check_case(dtype::f32, 1, 129, 129, 2, 2, 48, causal, layout::compact, ks);  // G = 1: 128 + 1 queries
        check_case(dtype::bf16, 1, 150, 150, 2, 2, 40, win, layout::padded, ks);
        check_case(dtype::f32, 1, 140, 203, 3, 3, 40, bi, layout::bhsd, ks);
        config wa = win;
        wa.window = 33;
        wa.alibi = true;
        check_case(dtype::f32, 2, 97, 97, 8, 2, 32, causal, layout::compact, ks);  // G = 4: 3 tiles + 1 query
        check_case(dtype::f16, 1, 65, 191, 8, 2, 48, wa, layout::compact, ks);
        config mk;
        mk.mask = true;
        mk.causal = true;
        check_case(dtype::f32, 1, 130, 130, 4, 1, 40, mk, layout::padded, ks);
        config ws = win;
        ws.window = 17;
        ws.softcap = 3.0f;
        check_case(dtype::f32, 2, 47, 47, 16, 2, 40, causal, layout::compact, ks);  // G = 8: 2 tiles + 15 queries
        check_case(dtype::bf16, 1, 33, 100, 16, 2, 32, ws, layout::bhsd, ks);
    }
}

TEST_CASE("attention prefill with packed K/V: the same bits for 1, 2 and 3 threads, split keys match the reference",
          "[attention]") {
    std::mt19937 rng(11);
    for (dtype t : {dtype::f32, dtype::bf16}) {
        tensor4 q = make(t, 2, 150, 8, 32, layout::compact, &rng), k = make(t, 2, 150, 2, 32, layout::compact, &rng),
                v = make(t, 2, 150, 2, 32, layout::compact, &rng), o1 = make(t, 2, 150, 8, 32, layout::compact, nullptr),
                o2 = o1, o3 = o1;
        llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
        o.causal = 1;
        o.n_threads = 1;
        REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), o1.c(), &o) == LLMKIT_OK);
        o.n_threads = 2;
        REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), o2.c(), &o) == LLMKIT_OK);
        o.n_threads = 3;
        REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), o3.c(), &o) == LLMKIT_OK);
        INFO("dtype " << llmkit::core::dtype_name(t));
        CHECK(o1.bytes == o2.bytes);
        CHECK(o1.bytes == o3.bytes);
    }
    for (const auto *ks : kernel_sets())
        for (int64_t splits : {2, 3}) {  // several query tiles and split keys
            config c;
            c.causal = true;
            check_case(dtype::f32, 1, 100, 200, 8, 2, 32, c, layout::compact, ks, splits);
            config w;
            w.window = 45;
            check_case(dtype::bf16, 2, 70, 70, 8, 1, 32, w, layout::compact, ks, splits);
        }
}

TEST_CASE("attention sinks match the float64 reference: prefill, chunked prefill, decode with split keys, every kernel set",
          "[attention][sinks]") {
    // Every path that finishes a row: a prefill with packed K/V, a chunk with
    // the dot-product tail, decode merged from split keys (forced through the
    // core, automatic through the C ABI: one kv head leaves threads idle), and
    // rows that see no key (zeros whatever the sink).
    std::vector<const llmkit::attention::kernels *> sets = kernel_sets();
    sets.push_back(nullptr);
    for (const auto *ks : sets) {
        config c;
        c.causal = c.sinks = true;
        check_case(dtype::f32, 1, 150, 150, 8, 2, 64, c, layout::compact, ks);
        check_case(dtype::f32, 2, 20, 8, 2, 1, 32, c, layout::compact, ks);  // rows 0..11 see no key
        check_case(dtype::f16, 1, 1, 700, 8, 1, 128, c, layout::compact, ks, ks ? 3 : 0);
        config w = c;
        w.window = 40;
        w.alibi = true;
        check_case(dtype::bf16, 1, 17, 100, 4, 4, 64, w, layout::padded, ks);
        config m;
        m.sinks = m.mask = true;
        m.softcap = 4.0f;
        check_case(dtype::f32, 1, 3, 600, 4, 2, 48, m, layout::bhsd, ks, ks ? 2 : 0);
    }
}

TEST_CASE("attention sinks: absent, -inf and -FLT_MAX give the no-sink bits; a sink s shrinks a row by L / (L + e^s)",
          "[attention][sinks]") {
    using llmkit::core::tensor_view;
    const int64_t S = 70, Hq = 4, Hkv = 2, D = 32;
    std::mt19937 rng(13);
    for (int64_t Sq : {S, int64_t(1)}) {  // prefill (packed K/V) and decode (split keys)
        tensor4 q = make(dtype::f32, 1, Sq, Hq, D, layout::compact, &rng), k = make(dtype::f32, 1, S, Hkv, D, layout::compact, &rng),
                v = make(dtype::f32, 1, S, Hkv, D, layout::compact, &rng), base = make(dtype::f32, 1, Sq, Hq, D, layout::compact, nullptr),
                got = base;
        INFO("Sq " << Sq);
        llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
        o.causal = 1;
        REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), base.c(), &o) == LLMKIT_OK);
        // The most negative finite sink (the C ABI takes finite sinks only): exp underflows to 0.
        const std::vector<float> lowest(size_t(Hq), -FLT_MAX);
        o.sinks = lowest.data();
        REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), got.c(), &o) == LLMKIT_OK);
        CHECK(got.bytes == base.bytes);
        // -inf, through the core (sink = -inf is "no sink" in the formula), with and without split keys.
        const std::vector<float> ninf(size_t(Hq), -INFINITY);
        const auto tq = tensor_view::from(q.c(), "q"), tk = tensor_view::from(k.c(), "k"), tv = tensor_view::from(v.c(), "v"),
                   to = tensor_view::from(got.c(), "out");
        for (int64_t splits : {1, 3}) {
            llmkit::attention::attention_params p;
            p.causal = true;
            p.sinks = ninf.data();
            p.kv_splits = splits;
            std::fill(got.bytes.begin(), got.bytes.end(), 0xAB);
            llmkit::attention::attention(tq, tk, tv, to, p);
            p.sinks = nullptr;
            tensor4 plain = base;
            llmkit::attention::attention(tq, tk, tv, tensor_view::from(plain.c(), "out"), p);
            INFO("splits " << splits);
            CHECK(got.bytes == plain.bytes);
        }
        // A large sink: the keys' weights are e^{s_j} / (L + e^sink) instead of
        // e^{s_j} / L, so the row is the no-sink row times L / (L + e^sink),
        // with L = sum over visible keys of e^{s_j} (float64, from the inputs).
        std::vector<float> big(static_cast<size_t>(Hq));
        for (int64_t h = 0; h < Hq; ++h) big[size_t(h)] = 3.0f + 2.5f * float(h);
        o.sinks = big.data();
        REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), got.c(), &o) == LLMKIT_OK);
        const double scale = 1.0 / std::sqrt(double(D));
        double smallest_ratio = 1.0;
        for (int64_t i = 0; i < Sq; ++i)
            for (int64_t h = 0; h < Hq; ++h) {
                const int64_t ip = i + S - Sq, g = h / (Hq / Hkv);
                double L = 0.0;
                for (int64_t j = 0; j <= ip; ++j) {
                    double dot = 0.0;
                    for (int64_t d = 0; d < D; ++d) dot += q.vals[size_t(q.idx(0, i, h, d))] * k.vals[size_t(k.idx(0, j, g, d))];
                    L += std::exp(dot * scale);
                }
                const double ratio = L / (L + std::exp(double(big[size_t(h)])));
                smallest_ratio = std::min(smallest_ratio, ratio);
                bool within = true;  // the fp32 tolerance of the reference checks
                for (int64_t d = 0; d < D; ++d) {
                    const double want = ratio * base.get(0, i, h, d);
                    within = within && std::fabs(got.get(0, i, h, d) - want) <= 4e-6 + 1e-5 * std::fabs(want);
                }
                INFO("row " << i << " head " << h << " ratio " << ratio);
                CHECK(within);
            }
        CHECK(smallest_ratio < 0.05);  // the sinks really take most of some rows' weight
    }
}

TEST_CASE("attention sinks: non-finite sinks are refused; an old caller's smaller struct_size means no sinks",
          "[attention][sinks][errors]") {
    std::mt19937 rng(17);
    tensor4 q = make(dtype::f32, 1, 8, 6, 64, layout::compact, &rng), k = make(dtype::f32, 1, 8, 2, 64, layout::compact, &rng),
            v = make(dtype::f32, 1, 8, 2, 64, layout::compact, &rng), base = make(dtype::f32, 1, 8, 6, 64, layout::compact, nullptr),
            got = base;
    for (float bad : {NAN, INFINITY, -INFINITY}) {
        std::vector<float> sinks(6, 0.5f);
        sinks[2] = bad;
        llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
        o.sinks = sinks.data();
        INFO("sink " << bad << ": " << llmkit_last_error_message());
        CHECK(llmkit_attention(q.c(), k.c(), v.c(), got.c(), &o) == LLMKIT_ERROR_INVALID_ARGUMENT);
        CHECK(std::string(llmkit_last_error_message()).find("options.sinks[2] is not finite") != std::string::npos);
    }
    // A struct from before the field existed ends at the field: whatever
    // lies past struct_size is not read, so a poisoned sinks pointer is ignored.
    REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), base.c(), nullptr) == LLMKIT_OK);
    const std::vector<float> poison(6, NAN);
    llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
    o.struct_size = uint32_t(offsetof(llmkit_attention_options, sinks));
    o.sinks = poison.data();
    REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), got.c(), &o) == LLMKIT_OK);
    CHECK(got.bytes == base.bytes);
}
