// Log-sum-exps and llmkit_attention_merge: attention over keys cut in two
// parts, merged, against the float64 reference over all of them (the parts
// in float32, bf16 and fp16, causal suffixes, sinks on one side, a window);
// cascade attention (a prefix shared by a batch, attended once for every
// sequence, merged with each sequence's own keys in a paged cache); a
// requested lse never changes out's bits; the merge's exact cases and errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <random>
#include <vector>

#include "any_cache.hpp"
#include "helpers.hpp"
#include "kv_helpers.hpp"
#include "llmkit/llmkit.hpp"

using namespace attn_test;
using llmkit::core::dtype;

namespace {

// Keys [from, from + n) of x [B, S, H, D], as a view (same strides).
llmkit_tensor key_range(tensor4 &x, int64_t from, int64_t n, int64_t shape4[4]) {
    llmkit_tensor t = *x.c();
    std::memcpy(shape4, x.shape, sizeof x.shape);
    shape4[1] = n;
    t.shape = shape4;
    t.byte_offset = uint64_t(from * x.strides[1]) * x.es();
    return t;
}

// float64 attention of q over all of k and v (the last Sq keys' positions
// for causality and the window; sinks: Hq logits or null) and its lse.
std::vector<double> whole_reference(const tensor4 &q, const tensor4 &k, const tensor4 &v, bool causal, int64_t window,
                                    const float *sinks, std::vector<double> &lse) {
    const int64_t B = q.shape[0], Sq = q.shape[1], Hq = q.shape[2], D = q.shape[3];
    const int64_t Skv = k.shape[1], G = Hq / k.shape[2];
    std::vector<double> out(size_t(B * Sq * Hq * D), 0.0), s(static_cast<size_t>(Skv));
    lse.assign(size_t(B * Sq * Hq), -INFINITY);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < Sq; ++i)
            for (int64_t h = 0; h < Hq; ++h) {
                const int64_t ip = i + Skv - Sq;
                double mx = sinks ? double(sinks[h]) : -INFINITY;
                for (int64_t j = 0; j < Skv; ++j) {
                    double acc = 0.0;
                    for (int64_t d = 0; d < D; ++d) acc += q.vals[size_t(q.idx(b, i, h, d))] * k.vals[size_t(k.idx(b, j, h / G, d))];
                    acc /= std::sqrt(double(D));
                    if ((causal || window > 0) && j > ip) acc = -INFINITY;
                    if (window > 0 && j <= ip - window) acc = -INFINITY;
                    mx = std::max(mx, s[size_t(j)] = acc);
                }
                if (mx == -INFINITY) continue;
                double sum = sinks ? std::exp(double(sinks[h]) - mx) : 0.0;
                for (int64_t j = 0; j < Skv; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
                lse[size_t((b * Sq + i) * Hq + h)] = mx + std::log(sum);
                for (int64_t j = 0; j < Skv; ++j)
                    for (int64_t d = 0; d < D; ++d)
                        out[size_t(((b * Sq + i) * Hq + h) * D + d)] += s[size_t(j)] / sum * v.vals[size_t(v.idx(b, j, h / G, d))];
            }
    return out;
}

bool outputs_within(const tensor4 &out, const std::vector<double> &ref, double abs, double rel, double *worst) {
    bool ok = true;
    for (int64_t b = 0; b < out.shape[0]; ++b)
        for (int64_t s = 0; s < out.shape[1]; ++s)
            for (int64_t h = 0; h < out.shape[2]; ++h)
                for (int64_t d = 0; d < out.shape[3]; ++d) {
                    const double want = ref[size_t(out.idx(b, s, h, d))], err = std::fabs(out.get(b, s, h, d) - want);
                    if (!(err <= abs + rel * std::fabs(want))) ok = false;
                    if (!(err <= *worst)) *worst = std::isnan(err) ? INFINITY : err;
                }
    return ok;
}

}  // namespace

TEST_CASE("attention merge: two parts of the keys merged equal attention over all of them", "[attention][merge]") {
    struct shape {
        int64_t B, Sq, Skv, cut, Hq, Hkv, D;
    };
    const shape shapes[] = {
        {2, 1, 700, 300, 8, 2, 128},  // decode: split-KV in each part
        {1, 20, 150, 100, 4, 4, 64},  // a chunk: the prefix whole, the rest causal
        {2, 5, 90, 40, 4, 1, 80},     // MQA, few queries
    };
    std::vector<float> sink_values(8);
    for (int h = 0; h < 8; ++h) sink_values[size_t(h)] = float(h) * 0.6f - 1.5f;
    for (const shape &sh : shapes)
        for (dtype t : {dtype::f32, dtype::bf16, dtype::f16})
            for (int variant = 0; variant < 3; ++variant) {
                // 0: plain causal; 1: sinks, given to the prefix's call only; 2: a
                // window wholly inside the suffix, so the prefix part sees no key (lse -inf).
                const bool sinks = variant == 1;
                const int64_t window = variant == 2 ? sh.Skv - sh.cut - sh.Sq + 1 : 0;
                INFO("B " << sh.B << " Sq " << sh.Sq << " Skv " << sh.Skv << " cut " << sh.cut << " dtype "
                          << llmkit::core::dtype_name(t) << " variant " << variant);
                std::mt19937 rng(uint32_t(sh.Skv * 7 + variant));
                tensor4 q = make(t, sh.B, sh.Sq, sh.Hq, sh.D, layout::compact, &rng);
                tensor4 k = make(t, sh.B, sh.Skv, sh.Hkv, sh.D, layout::bhsd, &rng);
                tensor4 v = make(t, sh.B, sh.Skv, sh.Hkv, sh.D, layout::bhsd, &rng);
                // The prefix's result in float32 (merges accumulate there), the suffix's in t.
                tensor4 out_a = make(dtype::f32, sh.B, sh.Sq, sh.Hq, sh.D, layout::padded, nullptr);
                tensor4 out_b = make(t, sh.B, sh.Sq, sh.Hq, sh.D, layout::compact, nullptr);
                lse_tensor lse_a(sh.B, sh.Sq, sh.Hq, true), lse_b(sh.B, sh.Sq, sh.Hq, false);
                int64_t ka[4], va[4], kb[4], vb[4];
                llmkit_tensor k_pre = key_range(k, 0, sh.cut, ka), v_pre = key_range(v, 0, sh.cut, va);
                llmkit_tensor k_suf = key_range(k, sh.cut, sh.Skv - sh.cut, kb), v_suf = key_range(v, sh.cut, sh.Skv - sh.cut, vb);
                // The prefix lies before every query: it is attended whole (no causality),
                // except where the window hides it all.
                llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
                o.sinks = sinks ? sink_values.data() : nullptr;
                o.lse = lse_a.c();
                tensor4 q32 = make(dtype::f32, sh.B, sh.Sq, sh.Hq, sh.D, layout::compact, nullptr);
                // out_a is float32: the prefix call takes float32 queries and keys (q,
                // k and v of type t converted exactly) when t is 16-bit.
                tensor4 k32 = make(dtype::f32, sh.B, sh.cut, sh.Hkv, sh.D, layout::compact, nullptr), v32 = k32;
                for (int64_t b = 0; b < sh.B; ++b) {
                    for (int64_t i = 0; i < sh.Sq; ++i)
                        for (int64_t h = 0; h < sh.Hq; ++h)
                            for (int64_t d = 0; d < sh.D; ++d) q32.set(b, i, h, d, q.get(b, i, h, d));
                    for (int64_t j = 0; j < sh.cut; ++j)
                        for (int64_t h = 0; h < sh.Hkv; ++h)
                            for (int64_t d = 0; d < sh.D; ++d) {
                                k32.set(b, j, h, d, k.get(b, j, h, d));
                                v32.set(b, j, h, d, v.get(b, j, h, d));
                            }
                }
                if (variant == 2) {
                    // Every prefix key outside the window: the prefix's call with the same
                    // window positions its queries at its own end, so hide them with a mask.
                    std::vector<float> hide(size_t(sh.Sq * sh.cut), -INFINITY);
                    int64_t ms[2] = {sh.Sq, sh.cut};
                    llmkit_tensor m = host_tensor(hide.data(), llmkit_dtype LLMKIT_DTYPE_F32, 2, ms);
                    o.mask = &m;
                    REQUIRE(llmkit_attention(q32.c(), k32.c(), v32.c(), out_a.c(), &o) == LLMKIT_OK);
                    o.mask = nullptr;
                } else {
                    const llmkit_status st = t == dtype::f32 ? llmkit_attention(q.c(), &k_pre, &v_pre, out_a.c(), &o)
                                                             : llmkit_attention(q32.c(), k32.c(), v32.c(), out_a.c(), &o);
                    INFO(llmkit_last_error_message());
                    REQUIRE(st == LLMKIT_OK);
                }
                o.sinks = nullptr;  // counted once, on the prefix's side
                o.causal = 1;
                o.window = window;
                o.lse = lse_b.c();
                REQUIRE(llmkit_attention(q.c(), &k_suf, &v_suf, out_b.c(), &o) == LLMKIT_OK);
                if (variant == 2)
                    for (int64_t b = 0; b < sh.B; ++b) CHECK(std::isinf(lse_a.at(b, 0, 0)));
                const llmkit_status st = llmkit_attention_merge(out_a.c(), lse_a.c(), out_b.c(), lse_b.c());
                INFO(llmkit_last_error_message());
                REQUIRE(st == LLMKIT_OK);
                std::vector<double> ref_lse;
                const auto ref = whole_reference(q, k, v, true, window, sinks ? sink_values.data() : nullptr, ref_lse);
                double worst = 0.0, lse_worst = 0.0;
                // The suffix's 16-bit result is rounded once before the merge (half an ulp
                // of t relative to that part's values, which can exceed the merged ones: the
                // bound is absolute: half an ulp at 2, as those outputs are means of N(0, 1)
                // rows, some over a window of 31 keys, below 2 in magnitude).
                const double abs = t == dtype::bf16 ? 1.0 / 256 : t == dtype::f16 ? 1.0 / 2048 : 4e-6;
                const bool out_ok = outputs_within(out_a, ref, abs, 1e-5, &worst);
                const bool lse_ok = lse_within(lse_a, ref_lse, 2e-5, &lse_worst);
                INFO("max abs error " << worst << ", lse " << lse_worst);
                CHECK(out_ok);
                CHECK(lse_ok);
            }
}

TEST_CASE("attention merge: cascade attention over a prefix shared by a batch", "[attention][merge]") {
    // Four sequences share a 300-token prompt; each continues with its own
    // tokens in a paged cache. One llmkit_attention call attends the prefix for
    // every sequence's query at once (q [B, 1, Hq, D] viewed as one sequence
    // of B queries, so the prefix's rows are read once), the cache gives each
    // sequence's own part, and the merge gives attention over the whole.
    const int64_t B = 4, P = 300, Hq = 8, Hkv = 2, D = 64;
    const int64_t own[B] = {1, 17, 40, 129};
    for (int32_t type : {LLMKIT_KV_F32, LLMKIT_KV_BF16}) {
        INFO("cache " << kv_test::kv_name(type));
        std::mt19937 rng(uint32_t(11 + type));
        kv_test::cache c(true, 1, int32_t(Hkv), int32_t(D), type, 256, int32_t(B));
        // The prefix, stored as the cache would store it (so the reference sees one set of rows).
        tensor4 kp = make(dtype::f32, 1, P, Hkv, D, layout::compact, &rng), vp = kp;
        for (int64_t j = 0; j < P; ++j)
            for (int64_t h = 0; h < Hkv; ++h)
                for (int64_t d = 0; d < D; ++d) vp.set(0, j, h, d, std::normal_distribution<double>(0.0, 1.0)(rng));
        for (tensor4 *x : {&kp, &vp})
            for (int64_t j = 0; j < P; ++j)
                for (int64_t h = 0; h < Hkv; ++h) {
                    std::vector<double> row(static_cast<size_t>(D));
                    for (int64_t d = 0; d < D; ++d) row[size_t(d)] = x->get(0, j, h, d);
                    row = kv_test::stored_row(type, row);
                    for (int64_t d = 0; d < D; ++d) x->set(0, j, h, d, row[size_t(d)]);
                }
        std::vector<kv_test::seq_data> data(B);
        std::vector<int32_t> ids;
        for (int64_t b = 0; b < B; ++b) {
            ids.push_back(c.seq_new());
            c.append(0, ids.back(), own[b], rng, data[size_t(b)]);
        }
        tensor4 q = make(dtype::f32, B, 1, Hq, D, layout::compact, &rng);
        tensor4 out = make(dtype::f32, B, 1, Hq, D, layout::compact, nullptr), out_own = out;
        lse_tensor lse(B, 1, Hq, false), lse_own(B, 1, Hq, false);
        // The batch's queries as one sequence of B over the prefix, bidirectional.
        int64_t qs[4] = {1, B, Hq, D}, ls[3] = {1, B, Hq};
        llmkit_tensor q1 = *q.c(), out1 = *out.c(), lse1 = *lse.c();
        q1.shape = qs, out1.shape = qs, lse1.shape = ls;
        int64_t q1_strides[4] = {B * Hq * D, Hq * D, D, 1}, l1_strides[3] = {B * Hq, Hq, 1};
        q1.strides = out1.strides = q1_strides;
        lse1.strides = l1_strides;
        llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
        o.lse = &lse1;
        REQUIRE(llmkit_attention(&q1, kp.c(), vp.c(), &out1, &o) == LLMKIT_OK);
        llmkit_kv_attention_options ko = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
        ko.lse = lse_own.c();
        REQUIRE(c.attention(0, q, ids, out_own, &ko) == LLMKIT_OK);
        REQUIRE(llmkit_attention_merge(out.c(), lse.c(), out_own.c(), lse_own.c()) == LLMKIT_OK);
        // Reference: each sequence's keys are the prefix, then its own.
        std::vector<kv_test::seq_data> whole(B);
        for (int64_t b = 0; b < B; ++b) {
            kv_test::seq_data &w = whole[size_t(b)];
            w.len = P + own[b];
            for (int64_t j = 0; j < P; ++j)
                for (int64_t h = 0; h < Hkv; ++h)
                    for (int64_t d = 0; d < D; ++d) {
                        w.k_store.push_back(kp.get(0, j, h, d));
                        w.v_store.push_back(vp.get(0, j, h, d));
                    }
            const auto &own_data = data[size_t(b)];
            w.k_store.insert(w.k_store.end(), own_data.k_store.begin(), own_data.k_store.end());
            w.v_store.insert(w.v_store.end(), own_data.v_store.begin(), own_data.v_store.end());
        }
        std::vector<const kv_test::seq_data *> sp;
        for (const auto &w : whole) sp.push_back(&w);
        std::vector<double> ref_lse;
        const auto ref = kv_test::reference(q, sp, Hkv, kv_test::ref_options{}, &ref_lse);
        bool ok = false;
        const double err = kv_test::max_error(out, ref, 4e-6, 1e-5, &ok);
        INFO("max abs error " << err);
        CHECK(ok);
        double lse_err = 0.0;
        CHECK(lse_within(lse, ref_lse, 2e-5, &lse_err));
    }
}

TEST_CASE("attention: asking for the lse leaves out's bits as they were", "[attention][merge]") {
    // Prefill, decode over [B, H, S, D] rows and over compact [B, S, H, D] rows
    // (the caches' walk), split or not, each with and without options.lse.
    struct shape {
        int64_t B, Sq, Skv, Hq, Hkv, D;
        layout lay;
    };
    const shape shapes[] = {{1, 100, 100, 4, 2, 64, layout::compact}, {1, 1, 3000, 8, 2, 128, layout::bhsd},
                            {2, 1, 2000, 8, 2, 128, layout::compact}, {3, 4, 500, 8, 8, 64, layout::compact}};
    for (const shape &sh : shapes)
        for (dtype t : {dtype::f32, dtype::bf16}) {
            std::mt19937 rng(uint32_t(sh.Skv));
            tensor4 q = make(t, sh.B, sh.Sq, sh.Hq, sh.D, layout::compact, &rng);
            tensor4 k = make(t, sh.B, sh.Skv, sh.Hkv, sh.D, sh.lay, &rng), v = make(t, sh.B, sh.Skv, sh.Hkv, sh.D, sh.lay, &rng);
            tensor4 plain = make(t, sh.B, sh.Sq, sh.Hq, sh.D, layout::compact, nullptr), with = plain;
            lse_tensor lse(sh.B, sh.Sq, sh.Hq, false);
            llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
            o.causal = 1;
            REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), plain.c(), &o) == LLMKIT_OK);
            o.lse = lse.c();
            REQUIRE(llmkit_attention(q.c(), k.c(), v.c(), with.c(), &o) == LLMKIT_OK);
            INFO("Skv " << sh.Skv << " dtype " << llmkit::core::dtype_name(t));
            CHECK(plain.bytes == with.bytes);
            for (float x : lse.data) CHECK(std::isfinite(x));
        }
}

TEST_CASE("attention merge: exact cases", "[attention][merge]") {
    std::mt19937 rng(3);
    const int64_t B = 2, S = 3, H = 4, D = 40;
    tensor4 a = make(dtype::f32, B, S, H, D, layout::compact, &rng), b = make(dtype::bf16, B, S, H, D, layout::padded, &rng);
    const tensor4 a0 = a;
    lse_tensor la(B, S, H, false), lb(B, S, H, true);
    std::uniform_real_distribution<float> u(-3.0f, 3.0f);
    for (float &x : la.data) x = u(rng);
    // Every row of b's side saw no key: the merge keeps a exactly.
    for (float &x : lb.data) x = -INFINITY;
    const std::vector<float> la0 = la.data;
    REQUIRE(llmkit_attention_merge(a.c(), la.c(), b.c(), lb.c()) == LLMKIT_OK);
    CHECK(a.bytes == a0.bytes);
    CHECK(la.data == la0);
    // Merged with itself: the same rows, lse + ln 2.
    REQUIRE(llmkit_attention_merge(a.c(), la.c(), a.c(), la.c()) == LLMKIT_OK);
    CHECK(a.bytes == a0.bytes);
    for (size_t i = 0; i < la.data.size(); ++i) CHECK(la.data[i] == Approx(la0[i] + std::log(2.0)).margin(1e-6));
    // Neither side saw a key: zeros, lse -inf.
    for (float &x : la.data) x = -INFINITY;
    REQUIRE(llmkit_attention_merge(a.c(), la.c(), b.c(), lb.c()) == LLMKIT_OK);
    for (int64_t i = 0; i < B * S * H * D; ++i) CHECK(a.get(i / (S * H * D), i / (H * D) % S, i / D % H, i % D) == 0.0);
    for (float x : la.data) CHECK(x == -INFINITY);
    // a's side empty: b's rows exactly (bf16 values, exact in float32), b's lse.
    for (float &x : lb.data) x = u(rng);
    REQUIRE(llmkit_attention_merge(a.c(), la.c(), b.c(), lb.c()) == LLMKIT_OK);
    bool same = true;
    for (int64_t bb = 0; bb < B; ++bb)
        for (int64_t s = 0; s < S; ++s)
            for (int64_t h = 0; h < H; ++h) {
                same = same && la.at(bb, s, h) == lb.at(bb, s, h);
                for (int64_t d = 0; d < D; ++d) same = same && a.get(bb, s, h, d) == b.get(bb, s, h, d);
            }
    CHECK(same);
}

TEST_CASE("attention merge and lse: errors name the problem and write nothing", "[attention][merge]") {
    std::mt19937 rng(4);
    const int64_t B = 1, S = 2, H = 2, D = 16;
    tensor4 a = make(dtype::f32, B, S, H, D, layout::compact, &rng), b = make(dtype::f32, B, S, H, D, layout::compact, &rng);
    lse_tensor la(B, S, H, false), lb(B, S, H, false);
    for (float &x : la.data) x = 0.5f;
    for (float &x : lb.data) x = -0.25f;
    const tensor4 a0 = a;
    const std::vector<float> la0 = la.data;
    auto refused = [&](llmkit_status want, const char *words) {
        const llmkit_status st = llmkit_attention_merge(a.c(), la.c(), b.c(), lb.c());
        INFO(llmkit_last_error_message());
        CHECK(st == want);
        CHECK(std::string(llmkit_last_error_message()).find(words) != std::string::npos);
        CHECK(a.bytes == a0.bytes);
        CHECK(la.data == la0);
    };
    lb.data[1] = NAN;
    refused(LLMKIT_ERROR_NON_FINITE, "other_lse");
    lb.data[1] = INFINITY;
    refused(LLMKIT_ERROR_NON_FINITE, "other_lse");
    lb.data[1] = -0.25f;
    b.set(0, 1, 1, 3, NAN);
    refused(LLMKIT_ERROR_NON_FINITE, "other_out");
    b.set(0, 1, 1, 3, 1.0);
    lb.shape[2] = 3;
    refused(LLMKIT_ERROR_SHAPE, "other_lse");
    lb.shape[2] = H;
    b.shape[3] = 8;
    refused(LLMKIT_ERROR_SHAPE, "other_out");
    b.shape[3] = D;
    CHECK(llmkit_attention_merge(nullptr, la.c(), b.c(), lb.c()) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_attention_merge(a.c(), la.c(), b.c(), nullptr) == LLMKIT_ERROR_NULL_POINTER);
    llmkit_tensor l64 = *lb.c();
    l64.dtype.bits = 64;  // float64
    CHECK(llmkit_attention_merge(a.c(), la.c(), b.c(), &l64) == LLMKIT_ERROR_DTYPE);
    int64_t zero[3] = {0, 0, 1};
    llmkit_tensor shared = *la.c();
    shared.strides = zero;
    CHECK(llmkit_attention_merge(a.c(), &shared, b.c(), lb.c()) == LLMKIT_ERROR_UNSUPPORTED);
    REQUIRE(llmkit_attention_merge(a.c(), la.c(), b.c(), lb.c()) == LLMKIT_OK);

    // options.lse of llmkit_attention and of the caches.
    tensor4 q = make(dtype::f32, B, S, H, D, layout::compact, &rng), out = q;
    lse_tensor lse(B, S, H, false);
    llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
    lse.shape[1] = 3;
    o.lse = lse.c();
    CHECK(llmkit_attention(q.c(), a.c(), b.c(), out.c(), &o) == LLMKIT_ERROR_SHAPE);
    CHECK(std::string(llmkit_last_error_message()).find("options.lse") != std::string::npos);
    lse.shape[1] = S;
    llmkit_tensor lbf = *lse.c();
    lbf.dtype = llmkit_dtype LLMKIT_DTYPE_BF16;
    o.lse = &lbf;
    CHECK(llmkit_attention(q.c(), a.c(), b.c(), out.c(), &o) == LLMKIT_ERROR_DTYPE);
    llmkit_tensor l0 = *lse.c();
    l0.strides = zero;
    o.lse = &l0;
    CHECK(llmkit_attention(q.c(), a.c(), b.c(), out.c(), &o) == LLMKIT_ERROR_UNSUPPORTED);
    // A head of no dimensions has no scores to sum.
    int64_t empty_d[4] = {B, S, H, 0};
    llmkit_tensor q0 = *q.c(), k0 = *a.c(), v0 = *b.c(), o0 = *out.c();
    q0.shape = k0.shape = v0.shape = o0.shape = empty_d;
    o.lse = lse.c();
    CHECK(llmkit_attention(&q0, &k0, &v0, &o0, &o) == LLMKIT_ERROR_SHAPE);
    // A NaN in k: the error, and the lse left as it was (decode stages its results).
    a.set(0, 1, 0, 2, NAN);
    std::fill(lse.data.begin(), lse.data.end(), 7.0f);
    o.lse = lse.c();
    CHECK(llmkit_attention(q.c(), a.c(), b.c(), out.c(), &o) == LLMKIT_ERROR_NON_FINITE);
    for (float x : lse.data) CHECK(x == 7.0f);

    any_cache c(false, int32_t(D), LLMKIT_KV_F32, int32_t(H));
    const int32_t s = c.seq_new();
    int64_t sk[3], sv[3];
    tensor4 kk = make(dtype::f32, 1, 5, H, D, layout::compact, &rng), vv = kk;
    const llmkit_tensor tk = rows_of(kk, sk), tv = rows_of(vv, sv);
    REQUIRE(c.append(s, &tk, &tv) == LLMKIT_OK);
    llmkit_kv_attention_options ko = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    lse_tensor wrong(1, S, H + 1, false);
    ko.lse = wrong.c();
    CHECK(c.attention(q.c(), {s}, out.c(), &ko) == LLMKIT_ERROR_SHAPE);
    CHECK(std::string(llmkit_last_error_message()).find("options.lse") != std::string::npos);
    llmkit_tensor dev = *lse.c();
    dev.device.device_type = LLMKIT_DEVICE_CUDA;
    ko.lse = &dev;
    CHECK(c.attention(q.c(), {s}, out.c(), &ko) == LLMKIT_ERROR_UNSUPPORTED);
}

TEST_CASE("attention lse: an option struct from before the field never writes through it", "[attention][merge]") {
    // Callers built against 0.1.0's headers pass structs that end before lse:
    // whatever lies past struct_size (here a pointer to a bad tensor) is not read.
    std::mt19937 rng(6);
    tensor4 q = make(dtype::f32, 1, 3, 4, 32, layout::compact, &rng), k = make(dtype::f32, 1, 9, 2, 32, layout::compact, &rng);
    tensor4 v = k, out = q;
    llmkit_tensor poison{};  // no data, no shape: an error if it were read
    auto names_lse = [] { return std::string(llmkit_last_error_message()).find("options.lse") != std::string::npos; };
    llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
    o.lse = &poison;
    CHECK(llmkit_attention(q.c(), k.c(), v.c(), out.c(), &o) != LLMKIT_OK);
    CHECK(names_lse());
    o.struct_size = uint32_t(offsetof(llmkit_attention_options, lse));
    CHECK(llmkit_attention(q.c(), k.c(), v.c(), out.c(), &o) == LLMKIT_OK);

    any_cache c(true, 32, LLMKIT_KV_BF16, 2);
    const int32_t s = c.seq_new();
    int64_t sk[3], sv[3];
    const llmkit_tensor tk = rows_of(k, sk), tv = rows_of(v, sv);
    REQUIRE(c.append(s, &tk, &tv) == LLMKIT_OK);
    llmkit_kv_attention_options ko = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    ko.lse = &poison;
    CHECK(c.attention(q.c(), {s}, out.c(), &ko) != LLMKIT_OK);
    CHECK(names_lse());
    ko.struct_size = uint32_t(offsetof(llmkit_kv_attention_options, lse));
    CHECK(c.attention(q.c(), {s}, out.c(), &ko) == LLMKIT_OK);
}

TEST_CASE("attention merge: rows of no elements merge their lse alone", "[attention][merge]") {
    // head_dim 0 (found by fuzz_attention: the row copies were handed a null buffer).
    tensor4 a = make(dtype::f32, 1, 2, 3, 0, layout::compact, nullptr), b = a;
    lse_tensor la(1, 2, 3, false), lb(1, 2, 3, true);
    for (size_t i = 0; i < la.data.size(); ++i) la.data[i] = float(i), lb.data[i] = -float(i);
    REQUIRE(llmkit_attention_merge(a.c(), la.c(), b.c(), lb.c()) == LLMKIT_OK);
    for (int64_t s = 0; s < 2; ++s)
        for (int64_t h = 0; h < 3; ++h) {
            const double x = double(s * 3 + h), y = -double(h * 2 + s);  // lb is laid out [B, H, S]
            CHECK(la.at(0, s, h) == Approx(std::max(x, y) + std::log1p(std::exp(-std::fabs(x - y)))).margin(1e-6));
        }
}

TEST_CASE("attention lse, merge and varlen: the C++ face gives the C results and throws on errors",
          "[attention][merge][varlen]") {
    std::mt19937 rng(12);
    const int64_t S = 6, Hq = 4, Hkv = 2, D = 32, K1 = 40, K2 = 25;
    std::normal_distribution<float> nd;
    auto randoms = [&](int64_t n) {
        std::vector<float> x(static_cast<size_t>(n));
        for (float &e : x) e = nd(rng);
        return x;
    };
    const std::vector<float> q = randoms(S * Hq * D), k = randoms((K1 + K2) * Hkv * D), v = randoms((K1 + K2) * Hkv * D);
    // Keys [0, K1) and [K1, K1 + K2) in two calls, merged, against one call over all of them (C API).
    std::vector<float> o1(q.size()), o2(q.size()), l1(size_t(S * Hq)), l2(l1.size()), whole(q.size()), lw(l1.size());
    llmkit_attention_options o = LLMKIT_ATTENTION_OPTIONS_INIT;
    const llmkit::tensor_ref lse1 = llmkit::f32(l1.data(), {1, S, Hq}), lse2 = llmkit::f32(l2.data(), {1, S, Hq});
    o.lse = lse1.get();
    llmkit::scaled_dot_product_attention(llmkit::f32(q.data(), {1, S, Hq, D}), llmkit::f32(k.data(), {1, K1, Hkv, D}),
                                         llmkit::f32(v.data(), {1, K1, Hkv, D}), llmkit::f32(o1.data(), {1, S, Hq, D}), &o);
    o.lse = lse2.get();
    o.causal = 1;
    llmkit::scaled_dot_product_attention(
        llmkit::f32(q.data(), {1, S, Hq, D}), llmkit::f32(k.data() + K1 * Hkv * D, {1, K2, Hkv, D}),
        llmkit::f32(v.data() + K1 * Hkv * D, {1, K2, Hkv, D}), llmkit::f32(o2.data(), {1, S, Hq, D}), &o);
    llmkit::attention_merge(llmkit::f32(o1.data(), {1, S, Hq, D}), lse1, llmkit::f32(o2.data(), {1, S, Hq, D}), lse2);
    const llmkit::tensor_ref lsew = llmkit::f32(lw.data(), {1, S, Hq});
    o.lse = lsew.get();
    REQUIRE(llmkit_attention(llmkit::f32(q.data(), {1, S, Hq, D}).get(), llmkit::f32(k.data(), {1, K1 + K2, Hkv, D}).get(),
                             llmkit::f32(v.data(), {1, K1 + K2, Hkv, D}).get(), llmkit::f32(whole.data(), {1, S, Hq, D}).get(),
                             &o) == LLMKIT_OK);
    for (size_t i = 0; i < whole.size(); ++i) CHECK(o1[i] == Approx(whole[i]).margin(1e-5));
    for (size_t i = 0; i < lw.size(); ++i) CHECK(l1[i] == Approx(lw[i]).margin(2e-5));
    // Varlen: two sequences of 2 and 4 queries over 30 and 35 keys, each the bits of the C call on its rows.
    const std::vector<int32_t> cq = {0, 2, 6}, ck = {0, 30, 65};
    std::vector<float> packed(q.size()), alone(q.size());
    llmkit::attention_varlen(llmkit::f32(q.data(), {S, Hq, D}), llmkit::f32(k.data(), {K1 + K2, Hkv, D}),
                             llmkit::f32(v.data(), {K1 + K2, Hkv, D}), llmkit::i32(cq.data(), {3}),
                             llmkit::i32(ck.data(), {3}), llmkit::f32(packed.data(), {S, Hq, D}));
    for (int b = 0; b < 2; ++b) {
        const int64_t nq = cq[size_t(b) + 1] - cq[size_t(b)], nk = ck[size_t(b) + 1] - ck[size_t(b)];
        REQUIRE(llmkit_attention(llmkit::f32(q.data() + cq[size_t(b)] * Hq * D, {1, nq, Hq, D}).get(),
                                 llmkit::f32(k.data() + ck[size_t(b)] * Hkv * D, {1, nk, Hkv, D}).get(),
                                 llmkit::f32(v.data() + ck[size_t(b)] * Hkv * D, {1, nk, Hkv, D}).get(),
                                 llmkit::f32(alone.data() + cq[size_t(b)] * Hq * D, {1, nq, Hq, D}).get(),
                                 nullptr) == LLMKIT_OK);
    }
    CHECK(packed == alone);
    // Errors become llmkit::error with the C message.
    CHECK_THROWS_WITH(llmkit::attention_merge(llmkit::f32(o1.data(), {1, S, Hq, D}), lse1,
                                              llmkit::f32(o2.data(), {1, S, Hq, D / 2}), lse2),
                      Catch::Contains("other_out"));
    CHECK_THROWS_WITH(llmkit::attention_varlen(llmkit::f32(q.data(), {S, Hq, D}), llmkit::f32(k.data(), {K1 + K2, Hkv, D}),
                                               llmkit::f32(v.data(), {K1 + K2, Hkv, D}), llmkit::i32(cq.data(), {2}),
                                               llmkit::i32(ck.data(), {3}), llmkit::f32(packed.data(), {S, Hq, D})),
                      Catch::Contains("cu_seqlens_q"));
}
