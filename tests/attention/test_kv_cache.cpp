// KV caches (contiguous and paged, through the C ABI) against a float64
// reference over the values the cache stores, on random N(0, 1) inputs:
// MHA/GQA/MQA x head_dim {64, 80, 96, 128, 256} x cache dtype {f32, bf16,
// f16, int8, fp8_e4m3, fp8_e5m2} x phase {prefill, chunked prefill, batched
// decode of different lengths}; int8 and FP8 also against the unquantised
// inputs with their own stated tolerances; options (window, softcap, ALiBi, sinks); thread and batch
// invariance; decode == prefill rows; and the contiguous cache's errors.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "kv_helpers.hpp"
#include "llmkit/llmkit.hpp"

using namespace attn_test;
using namespace kv_test;

namespace {

struct heads {
    int64_t hq, hkv;
};
const heads k_heads[] = {{4, 4}, {8, 2}, {4, 1}};  // MHA, GQA, MQA
const int64_t k_dims[] = {64, 80, 96, 128, 256};
const int32_t k_types[] = {LLMKIT_KV_F32,  LLMKIT_KV_BF16,     LLMKIT_KV_F16,
                           LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3, LLMKIT_KV_FP8_E5M2};

// fp32 accumulation against float64 over the same stored values (the int8
// dequantisation x = q * scale is exact up to one float rounding).
constexpr double k_abs = 4e-6, k_rel = 1e-5;
// int8 against the unquantised inputs: each element is off by at most
// absmax / 254 of its row; on N(0, 1) rows of 64..256 that moves outputs by
// less than 0.03. Rows of 576 (MLA's latent) have a larger absmax and sum
// more rounded products into each score: 0.033 seen, so 0.05 there.
constexpr double k_int8_abs = 0.03, k_int8_abs_wide = 0.05;
// FP8 against the unquantised inputs: each element is off by up to 2^-4 of
// itself (E4M3's half step) or 2^-3 (E5M2), so the large elements of an
// N(0, 1) row move more than int8's absmax / 254: 0.138 seen for E4M3 (0.149
// on rows of 576), 0.244 for E5M2 (0.341); bounds 0.2 and 0.45.
constexpr double k_e4m3_abs = 0.2, k_e5m2_abs = 0.45;

enum class phase { prefill, chunked, decode };
const char *phase_name(phase p) { return p == phase::prefill ? "prefill" : p == phase::chunked ? "chunked prefill" : "decode"; }

// V's own head_dim (0: D), and whether the cache keeps V in K's rows (v_from_k).
struct value_layout {
    int64_t dv = 0;
    bool from_k = false;
};

// Builds sequences for a phase, runs attention, compares with the reference.
void check_phase(bool paged, phase ph, const heads &h, int64_t D, int32_t type, const llmkit_kv_attention_options *o,
                 const ref_options &ro, uint32_t seed, value_layout vl = {}) {
    std::mt19937 rng(seed);
    cache c(paged, 2, int32_t(h.hkv), int32_t(D), type, 512, 4, 16, 0, int32_t(vl.dv), vl.from_k);
    std::vector<seq_data> data(3);
    std::vector<int32_t> ids;
    int64_t Sq = 0;
    const int32_t layer = 1;
    if (ph == phase::prefill) {
        ids.push_back(c.seq_new());
        c.append(layer, ids[0], 70, rng, data[0]);
        Sq = 70;
    } else if (ph == phase::chunked) {
        ids.push_back(c.seq_new());
        c.append(layer, ids[0], 50, rng, data[0]);  // the cached prefix
        c.append(layer, ids[0], 23, rng, data[0]);  // this chunk's own K and V
        Sq = 23;
    } else {  // three sequences of different lengths, each with its new token appended
        const int64_t lens[] = {1, 90, 300};
        for (int i = 0; i < 3; ++i) {
            ids.push_back(c.seq_new());
            c.append(layer, ids[size_t(i)], lens[i] - 1, rng, data[size_t(i)]);
            c.append(layer, ids[size_t(i)], 1, rng, data[size_t(i)]);
        }
        Sq = 1;
    }
    const int64_t B = int64_t(ids.size());
    tensor4 q = make(dtype::f32, B, Sq, h.hq, D, layout::compact, &rng);
    tensor4 out = make(dtype::f32, B, Sq, h.hq, c.Dv, layout::compact, nullptr);
    INFO((paged ? "paged" : "contiguous") << " " << phase_name(ph) << " Hq " << h.hq << " Hkv " << h.hkv << " D " << D
                                          << " Dv " << c.Dv << (vl.from_k ? " (V from K)" : "") << " cache "
                                          << kv_name(type));
    // Every case also asks for the rows' log-sum-exps (laid out [B, Hq, Sq] for paged caches).
    lse_tensor lse(B, Sq, h.hq, paged);
    llmkit_kv_attention_options with_lse = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    if (o) with_lse = *o;
    with_lse.lse = lse.c();
    const llmkit_status st = c.attention(layer, q, ids, out, &with_lse);
    INFO(llmkit_last_error_message());
    REQUIRE(st == LLMKIT_OK);
    std::vector<const seq_data *> sp;
    for (int64_t b = 0; b < B; ++b) sp.push_back(&data[size_t(b)]);
    bool ok = false;
    // (a prefill's last query tile may have fewer than 16 rows too: 70 = 64 + 6)
    const bool in_integers = type == LLMKIT_KV_INT8 && int8_decode_in_integers();
    std::vector<double> ref_lse;
    const double err =
        max_error(out, reference(q, sp, h.hkv, ro, &ref_lse), in_integers ? k_int8_int_abs : k_abs, k_rel, &ok);
    INFO("max abs error vs the stored values " << err);
    CHECK(ok);
    double lse_err = 0.0;
    const bool lse_ok = lse_within(lse, ref_lse, in_integers ? k_int8_int_abs : 2e-5, &lse_err);
    INFO("lse max abs error vs the stored values " << lse_err);
    CHECK(lse_ok);
    if (type == LLMKIT_KV_INT8 || kv_is_fp8(type)) {
        ref_options raw = ro;
        raw.use_inputs = true;
        const double tol = type == LLMKIT_KV_FP8_E4M3   ? k_e4m3_abs
                           : type == LLMKIT_KV_FP8_E5M2 ? k_e5m2_abs
                                                        : (D > 256 ? k_int8_abs_wide : k_int8_abs);
        const double e8 = max_error(out, reference(q, sp, h.hkv, raw), tol, 0.0, &ok);
        INFO(kv_name(type) << ": max abs error vs the unquantised inputs " << e8);
        CHECK(ok);
    }
}

}  // namespace

TEST_CASE("kv cache attention matches the float64 reference: MHA/GQA/MQA x D x cache dtype x phase", "[kv]") {
    for (bool paged : {false, true})
        for (phase ph : {phase::prefill, phase::chunked, phase::decode})
            for (const heads &h : k_heads)
                for (int64_t D : k_dims)
                    for (int32_t t : k_types)
                        check_phase(paged, ph, h, D, t, nullptr, ref_options{},
                                    uint32_t(D * 7 + h.hq * 3 + h.hkv + t * 1000 + int(ph) * 31));
}

// DeepSeek's heads (K 192, V 128), V wider than K, and multi-head latent
// attention's cache: one kv head of 576 whose first 512 elements are the
// values (v_from_k), read by 16 query heads. Every dtype, phase and cache;
// decode also in split-KV parts of 64 keys (the prefills' several query
// tiles take no parts).
TEST_CASE("kv caches: V with a head_dim of its own, and V read from K's rows (MLA)", "[kv][dv]") {
    struct shape_case {
        heads h;
        int64_t D;
        value_layout vl;
    };
    const shape_case cases[] = {
        {{4, 2}, 192, {128, false}}, {{4, 4}, 64, {96, false}}, {{16, 1}, 576, {512, true}}, {{4, 1}, 128, {64, true}}};
    llmkit_kv_attention_options split = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    split.split_keys = 64;
    for (const shape_case &sc : cases)
        for (bool paged : {false, true})
            for (phase ph : {phase::prefill, phase::chunked, phase::decode})
                for (int32_t t : k_types)
                    for (const llmkit_kv_attention_options *o : {static_cast<const llmkit_kv_attention_options *>(nullptr),
                                                                 static_cast<const llmkit_kv_attention_options *>(&split)})
                        if (!o || ph == phase::decode)
                            check_phase(paged, ph, sc.h, sc.D, t, o, ref_options{},
                                        uint32_t(sc.D * 5 + sc.vl.dv + t * 100 + int(ph) * 7 + (o ? 1 : 0)), sc.vl);
}

TEST_CASE("kv cache attention: window, softcap, ALiBi, sinks, bidirectional, split-KV", "[kv]") {
    const heads h{8, 2};
    std::vector<float> slopes(8), sinks(8);
    for (int i = 0; i < 8; ++i) {
        slopes[size_t(i)] = float(std::pow(2.0, -(i + 1)));
        sinks[size_t(i)] = float(i) * 0.7f - 2.0f;  // some below, some above the typical scores
    }
    for (phase ph : {phase::prefill, phase::chunked, phase::decode})
        for (int variant = 0; variant < 6; ++variant) {
            llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
            ref_options r;
            if (variant == 0) o.window = r.window = 17;
            if (variant == 1) o.softcap = 5.0f, r.softcap = 5.0;
            if (variant == 2) o.alibi_slopes = r.alibi = slopes.data();
            if (variant == 3) o.sinks = r.sinks = sinks.data();
            if (variant == 4) o.causal = 0, r.causal = false;
            if (variant == 5) o.split_keys = 64, o.sinks = r.sinks = sinks.data(), o.window = r.window = 200;
            INFO("variant " << variant);
            for (bool paged : {false, true})
                for (int32_t t : {LLMKIT_KV_F32, LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3})
                    check_phase(paged, ph, h, 64, t, &o, r, 99 + variant);
        }
}

TEST_CASE("kv cache attention: bf16 and fp16 queries give outputs of their dtype", "[kv]") {
    std::mt19937 rng(5);
    cache c(false, 1, 2, 128, LLMKIT_KV_BF16, 256, 2);
    seq_data sd;
    const int32_t s = c.seq_new();
    c.append(0, s, 40, rng, sd);
    for (dtype t : {dtype::bf16, dtype::f16}) {
        tensor4 q = make(t, 1, 40, 8, 128, layout::padded, &rng), out = make(t, 1, 40, 8, 128, layout::bhsd, nullptr);
        REQUIRE(c.attention(0, q, {s}, out, nullptr) == LLMKIT_OK);
        bool ok = false;
        const double rel = t == dtype::bf16 ? 1.0 / 256 : 1.0 / 1024;
        const double err = max_error(out, reference(q, {&sd}, 2, ref_options{}), 2e-4, rel, &ok);
        INFO(llmkit::core::dtype_name(t) << " max abs error " << err);
        CHECK(ok);
    }
}

TEST_CASE("kv cache: decoding token t gives row t of the full prefill (fp32, within 2e-6)", "[kv]") {
    // Not bitwise: the prefill computes its 64-row tiles with a gemm, decode
    // with dot products, so the sums run in a different order. int8 decode
    // in integers is within k_int8_int_abs of the float64 answer instead.
    std::mt19937 rng(11);
    for (int32_t t : k_types) {
        cache c(false, 1, 2, 96, t, 256, 2);
        seq_data sd;
        const int32_t full = c.seq_new();
        c.append(0, full, 150, rng, sd);
        tensor4 q = make(dtype::f32, 1, 150, 8, 96, layout::compact, &rng);
        tensor4 out = make(dtype::f32, 1, 150, 8, 96, layout::compact, nullptr);
        REQUIRE(c.attention(0, q, {full}, out, nullptr) == LLMKIT_OK);
        // A second sequence grows one token at a time and decodes each.
        const int32_t grow = c.seq_new();
        const int64_t shape[3] = {1, 2, 96};
        std::vector<float> kr(192), vr(192);
        for (int64_t pos = 0; pos < 150; ++pos) {
            for (int64_t i = 0; i < 192; ++i) kr[size_t(i)] = float(sd.k_in[size_t(pos * 192 + i)]), vr[size_t(i)] = float(sd.v_in[size_t(pos * 192 + i)]);
            llmkit_tensor kt = rows_tensor(kr.data(), shape), vt = rows_tensor(vr.data(), shape);
            REQUIRE(c.append_raw(0, grow, &kt, &vt) == LLMKIT_OK);
            tensor4 q1 = make(dtype::f32, 1, 1, 8, 96, layout::compact, nullptr), o1 = q1;
            for (int64_t h = 0; h < 8; ++h)
                for (int64_t d = 0; d < 96; ++d) q1.set(0, 0, h, d, q.vals[size_t(q.idx(0, pos, h, d))]);
            REQUIRE(c.attention(0, q1, {grow}, o1, nullptr) == LLMKIT_OK);
            double worst = 0.0;
            for (int64_t h = 0; h < 8; ++h)
                for (int64_t d = 0; d < 96; ++d) worst = std::max(worst, std::fabs(o1.get(0, 0, h, d) - out.get(0, pos, h, d)));
            INFO("cache " << kv_name(t) << " token " << pos << " max difference " << worst);
            REQUIRE(worst <= (t == LLMKIT_KV_INT8 && int8_decode_in_integers() ? k_int8_int_abs : 2e-6));
        }
    }
}

// int8 decode sums a tile's P V exactly in int32 (see k_decode_tile_keys): its
// largest sums come from keys that all score the same (every weight 32767)
// over V rows whose int8 values are all +-127. Identical rows make the output
// V itself, whatever the weights; a tile long enough to overflow int32 would
// not give it.
TEST_CASE("kv cache int8 decode: whole tiles at the largest integer sums give V", "[kv]") {
    const int64_t Hkv = 2, Hq = 8, D = 128, S = 700;  // two whole 256-key tiles and a part
    for (bool paged : {false, true}) {
        cache c(paged, 1, int32_t(Hkv), int32_t(D), LLMKIT_KV_INT8, 1024, 2);
        std::mt19937 rng(11);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> k1(size_t(Hkv * D)), v1(size_t(Hkv * D));
        for (float &x : k1) x = nd(rng);
        for (int64_t i = 0; i < Hkv * D; ++i) v1[size_t(i)] = (i % 3 == 0 ? -1.5f : 1.5f);
        std::vector<float> kb, vb;
        for (int64_t t = 0; t < S; ++t) {
            kb.insert(kb.end(), k1.begin(), k1.end());
            vb.insert(vb.end(), v1.begin(), v1.end());
        }
        const int32_t s = c.seq_new();
        const int64_t shape[3] = {S, Hkv, D};
        llmkit_tensor kt = rows_tensor(kb.data(), shape), vt = rows_tensor(vb.data(), shape);
        REQUIRE(c.append_raw(0, s, &kt, &vt) == LLMKIT_OK);
        tensor4 q = make(dtype::f32, 1, 1, Hq, D, layout::compact, &rng);
        tensor4 out = make(dtype::f32, 1, 1, Hq, D, layout::compact, nullptr);
        REQUIRE(c.attention(0, q, {s}, out, nullptr) == LLMKIT_OK);
        double worst = 0.0;
        for (int64_t h = 0; h < Hq; ++h)
            for (int64_t d = 0; d < D; ++d)
                worst = std::max(worst, std::fabs(out.get(0, 0, h, d) - double(v1[size_t((h / (Hq / Hkv)) * D + d)])));
        INFO((paged ? "paged" : "contiguous") << " worst " << worst);
        CHECK(worst <= 1e-5);
    }
}

TEST_CASE("kv cache attention: the same bits for any thread count and any batch", "[kv]") {
    std::mt19937 rng(21);
    for (bool paged : {false, true}) {
        cache c(paged, 1, 2, 128, LLMKIT_KV_BF16, 4096, 4);
        std::vector<seq_data> sd(3);
        std::vector<int32_t> ids;
        const int64_t lens[] = {3000, 17, 1500};
        for (int i = 0; i < 3; ++i) {
            ids.push_back(c.seq_new());
            c.append(0, ids.back(), lens[i], rng, sd[size_t(i)]);
        }
        for (int64_t Sq : {1, 5}) {
            tensor4 q = make(dtype::f32, 3, Sq, 8, 128, layout::compact, &rng);
            tensor4 ref = make(dtype::f32, 3, Sq, 8, 128, layout::compact, nullptr);
            llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
            o.n_threads = 1;
            REQUIRE(c.attention(0, q, ids, ref, &o) == LLMKIT_OK);
            for (int threads : {2, 3, 8}) {
                tensor4 out = ref;
                std::fill(out.bytes.begin(), out.bytes.end(), 0);
                o.n_threads = threads;
                REQUIRE(c.attention(0, q, ids, out, &o) == LLMKIT_OK);
                INFO((paged ? "paged" : "contiguous") << " Sq " << Sq << " threads " << threads);
                CHECK(same_bits(out, ref));
            }
            // Sequence 1 decoded alone equals its row of the batch.
            tensor4 q1 = make(dtype::f32, 1, Sq, 8, 128, layout::compact, nullptr), o1 = q1;
            for (int64_t i = 0; i < Sq; ++i)
                for (int64_t h = 0; h < 8; ++h)
                    for (int64_t d = 0; d < 128; ++d) q1.set(0, i, h, d, q.vals[size_t(q.idx(2, i, h, d))]);
            REQUIRE(c.attention(0, q1, {ids[2]}, o1, nullptr) == LLMKIT_OK);
            bool same = true;
            for (int64_t i = 0; i < Sq; ++i)
                for (int64_t h = 0; h < 8; ++h)
                    for (int64_t d = 0; d < 128; ++d) same = same && o1.get(0, i, h, d) == ref.get(2, i, h, d);
            CHECK(same);
        }
    }
}

TEST_CASE("kv cache: fork copies the rows, lengths, seq_free, layers and memory", "[kv]") {
    std::mt19937 rng(3);
    cache c(false, 3, 2, 64, LLMKIT_KV_F16, 100, 2);
    seq_data a;
    const int32_t s = c.seq_new();
    c.append(0, s, 30, rng, a);
    CHECK(c.length(s, 0) == 30);
    CHECK(c.length(s, 1) == 0);
    CHECK(c.length(s, -1) == 30);
    int32_t f = -1;
    REQUIRE(c.fork(s, &f) == LLMKIT_OK);
    CHECK(f != s);
    CHECK(c.length(f, 0) == 30);
    seq_data b = a;
    c.append(0, f, 5, rng, b);
    CHECK(c.length(s, 0) == 30);
    CHECK(c.length(f, 0) == 35);
    tensor4 q = make(dtype::f32, 2, 1, 4, 64, layout::compact, &rng), out = make(dtype::f32, 2, 1, 4, 64, layout::compact, nullptr);
    REQUIRE(c.attention(0, q, {s, f}, out, nullptr) == LLMKIT_OK);
    bool ok = false;
    max_error(out, reference(q, {&a, &b}, 2, ref_options{}), k_abs, k_rel, &ok);
    CHECK(ok);
    // 3 layers x 2 sequences x 100 tokens x 2 heads x 64 x 2 bytes, for K and V.
    CHECK(c.memory() == uint64_t(2) * 3 * 2 * 100 * 2 * 64 * 2);
    int32_t third = -1;
    CHECK(c.fork(s, &third) == LLMKIT_ERROR_OUT_OF_MEMORY);  // both slots in use
    REQUIRE(c.free_seq(f) == LLMKIT_OK);
    CHECK(c.free_seq(f) == LLMKIT_ERROR_OUT_OF_RANGE);
    const int32_t again = c.seq_new();
    CHECK(c.length(again) == 0);
}

TEST_CASE("kv cache: bad arguments give clear errors that name the problem", "[kv][errors]") {
    auto expect = [](llmkit_status st, llmkit_status want, const char *needle) {
        INFO("message: " << llmkit_last_error_message());
        CHECK(st == want);
        CHECK(std::string(llmkit_last_error_message()).find(needle) != std::string::npos);
    };
    llmkit_kv_cache *c = nullptr;
    llmkit_kv_cache_options o = LLMKIT_KV_CACHE_OPTIONS_INIT;
    expect(llmkit_kv_cache_create(nullptr, &o), LLMKIT_ERROR_NULL_POINTER, "out");
    expect(llmkit_kv_cache_create(&c, nullptr), LLMKIT_ERROR_NULL_POINTER, "options");
    o.dtype = 9;
    expect(llmkit_kv_cache_create(&c, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "dtype");
    o.dtype = LLMKIT_KV_FP8_E5M2 + 1;  // one past the last
    expect(llmkit_kv_cache_create(&c, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "is not an llmkit_kv_dtype (0..5)");
    // FP8 caches count a byte per element and a float32 scale per row, as int8's.
    for (int32_t t : {LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3, LLMKIT_KV_FP8_E5M2}) {
        o = LLMKIT_KV_CACHE_OPTIONS_INIT;
        o.dtype = t;
        o.n_kv_heads = 2;
        o.capacity = 100;
        REQUIRE(llmkit_kv_cache_create(&c, &o) == LLMKIT_OK);
        uint64_t bytes = 0;
        REQUIRE(llmkit_kv_cache_memory_bytes(c, &bytes) == LLMKIT_OK);
        CHECK(bytes == uint64_t(2) * 2 * 100 * (128 + 4));
        llmkit_kv_cache_free(c);
        c = nullptr;
    }
    o = LLMKIT_KV_CACHE_OPTIONS_INIT;
    o = LLMKIT_KV_CACHE_OPTIONS_INIT;
    o.head_dim = 600;
    expect(llmkit_kv_cache_create(&c, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "head_dim = 600 exceeds the supported maximum of 576");
    o = LLMKIT_KV_CACHE_OPTIONS_INIT;
    o.v_head_dim = 600;
    expect(llmkit_kv_cache_create(&c, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "v_head_dim = 600 is outside 0..576");
    o.v_head_dim = -1;
    expect(llmkit_kv_cache_create(&c, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "v_head_dim = -1");
    o.v_head_dim = 256;
    o.v_from_k = 1;
    expect(llmkit_kv_cache_create(&c, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "v_head_dim = 256 must not exceed head_dim = 128");
    o = LLMKIT_KV_CACHE_OPTIONS_INIT;
    o.capacity = 0;
    expect(llmkit_kv_cache_create(&c, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "capacity");
    o = LLMKIT_KV_CACHE_OPTIONS_INIT;
    o.capacity = int64_t(1) << 60;
    o.n_layers = 1000;
    expect(llmkit_kv_cache_create(&c, &o), LLMKIT_ERROR_OUT_OF_RANGE, "overflows");
    o = LLMKIT_KV_CACHE_OPTIONS_INIT;
    o.struct_size = 3;
    expect(llmkit_kv_cache_create(&c, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "struct_size");
    CHECK(c == nullptr);
    llmkit_kv_cache_free(nullptr);

    std::mt19937 rng(8);
    cache kc(false, 2, 2, 64, LLMKIT_KV_F32, 40, 2);
    seq_data sd;
    const int32_t s = kc.seq_new();
    kc.append(0, s, 30, rng, sd);
    std::vector<float> buf(size_t(20 * 2 * 64), 0.5f);
    std::vector<uint16_t> half(buf.size(), 0);
    const int64_t sh20[3] = {20, 2, 64}, sh_heads[3] = {20, 3, 64}, sh_dim[3] = {20, 2, 32}, sh10[3] = {10, 2, 64};
    llmkit_tensor k20 = rows_tensor(buf.data(), sh20);
    expect(kc.append_raw(0, s, &k20, &k20), LLMKIT_ERROR_OUT_OF_RANGE, "capacity");
    CHECK(kc.length(s, 0) == 30);  // unchanged
    expect(kc.append_raw(2, s, &k20, &k20), LLMKIT_ERROR_OUT_OF_RANGE, "layer");
    expect(kc.append_raw(0, 1, &k20, &k20), LLMKIT_ERROR_OUT_OF_RANGE, "not a live sequence");
    expect(kc.append_raw(0, -4, &k20, &k20), LLMKIT_ERROR_OUT_OF_RANGE, "seq");
    llmkit_tensor kh = rows_tensor(buf.data(), sh_heads), kd = rows_tensor(buf.data(), sh_dim), k10 = rows_tensor(buf.data(), sh10);
    expect(kc.append_raw(1, s, &kh, &kh), LLMKIT_ERROR_SHAPE, "kv heads");
    expect(kc.append_raw(1, s, &kd, &kd), LLMKIT_ERROR_SHAPE, "head_dim");
    expect(kc.append_raw(1, s, &k20, &k10), LLMKIT_ERROR_SHAPE, "token counts");
    llmkit_tensor vb = host_tensor(half.data(), llmkit_dtype LLMKIT_DTYPE_BF16, 3, sh20);
    expect(kc.append_raw(1, s, &k20, &vb), LLMKIT_ERROR_DTYPE, "differs");
    llmkit_tensor ki = host_tensor(buf.data(), llmkit_dtype LLMKIT_DTYPE_I32, 3, sh20);
    expect(kc.append_raw(1, s, &ki, &ki), LLMKIT_ERROR_DTYPE, "int32");
    buf[77] = NAN;
    expect(kc.append_raw(1, s, &k20, &k20), LLMKIT_ERROR_NON_FINITE, "k[0, 1, 13]");
    CHECK(kc.length(s, 1) == 0);
    expect(kc.append_raw(1, s, nullptr, &k20), LLMKIT_ERROR_NULL_POINTER, "k");
    expect(kc.append_raw(1, s, &k20, nullptr), LLMKIT_ERROR_NULL_POINTER, "v: tensor pointer is NULL");
    buf[77] = 0.5f;

    // V of its own head_dim, and V read from K's rows (v_from_k).
    cache own_v(false, 1, 2, 64, LLMKIT_KV_F32, 40, 1, 16, 0, 32);
    const int32_t so = own_v.seq_new();
    expect(own_v.append_raw(0, so, &k20, &k20), LLMKIT_ERROR_SHAPE, "v: shape [20, 2, 64] must be [tokens, 2, 32] (this cache's kv heads and v_head_dim)");
    llmkit_tensor v32 = rows_tensor(buf.data(), sh_dim);
    REQUIRE(own_v.append_raw(0, so, &k20, &v32) == LLMKIT_OK);
    tensor4 qo = make(dtype::f32, 1, 1, 4, 64, layout::compact, &rng), oo = qo;
    expect(own_v.attention(0, qo, {so}, oo, nullptr), LLMKIT_ERROR_SHAPE,
           "out: shape [1, 1, 4, 64] must be [B, Sq, Hq, Dv] = [1, 1, 4, 32] (q's first three axes, the cache's v_head_dim)");
    for (bool paged : {false, true}) {
        cache latent(paged, 1, 2, 64, LLMKIT_KV_F32, 48, 1, 16, 0, 32, true);
        const int32_t sl = latent.seq_new();
        expect(latent.append_raw(0, sl, &k20, &v32), LLMKIT_ERROR_INVALID_ARGUMENT,
               "v: this cache keeps no V (v_from_k: a token's V is the first 32 elements of its K row); pass none");
        const llmkit_status rope_st = paged ? llmkit_paged_kv_cache_append_rope(latent.p, 0, sl, &k20, nullptr, nullptr)
                                            : llmkit_kv_cache_append_rope(latent.c, 0, sl, &k20, nullptr, nullptr);
        expect(rope_st, LLMKIT_ERROR_SHAPE, "rotary_dims must be in 2..32 (head_dim 64 - v_head_dim 32), got 0");
        CHECK(latent.length(sl) == 0);
        REQUIRE(latent.append_raw(0, sl, &k20, nullptr) == LLMKIT_OK);
        CHECK(latent.length(sl) == 20);
        // K's rows alone: 48 tokens (paged: the two blocks in use) x 2 heads x 64 x 4 bytes.
        CHECK(latent.memory() == uint64_t(paged ? 32 : 48) * 2 * 64 * 4);
    }

    tensor4 q = make(dtype::f32, 1, 1, 4, 64, layout::compact, &rng), out = q;
    const int32_t id = s, bad = 7;
    expect(llmkit_kv_cache_attention(kc.c, 0, q.c(), &bad, 1, out.c(), nullptr), LLMKIT_ERROR_OUT_OF_RANGE, "seq_ids[0] = 7");
    expect(llmkit_kv_cache_attention(kc.c, 0, q.c(), nullptr, 1, out.c(), nullptr), LLMKIT_ERROR_NULL_POINTER, "seq_ids");
    const int32_t two[2] = {s, s};
    expect(llmkit_kv_cache_attention(kc.c, 0, q.c(), two, 2, out.c(), nullptr), LLMKIT_ERROR_SHAPE, "2 sequences");
    expect(llmkit_kv_cache_attention(kc.c, 1, q.c(), &id, 1, out.c(), nullptr), LLMKIT_ERROR_SHAPE,
           "append the new tokens");  // layer 1 holds nothing yet
    tensor4 q3 = make(dtype::f32, 1, 1, 3, 64, layout::compact, &rng), o3 = q3;
    expect(llmkit_kv_cache_attention(kc.c, 0, q3.c(), &id, 1, o3.c(), nullptr), LLMKIT_ERROR_SHAPE, "multiple");
    tensor4 q32 = make(dtype::f32, 1, 1, 4, 32, layout::compact, &rng), o32 = q32;
    expect(llmkit_kv_cache_attention(kc.c, 0, q32.c(), &id, 1, o32.c(), nullptr), LLMKIT_ERROR_SHAPE, "head_dim");
    tensor4 ob = make(dtype::bf16, 1, 1, 4, 64, layout::compact, nullptr);
    expect(llmkit_kv_cache_attention(kc.c, 0, q.c(), &id, 1, ob.c(), nullptr), LLMKIT_ERROR_DTYPE, "out");
    llmkit_kv_attention_options ao = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    ao.window = -1;
    expect(llmkit_kv_cache_attention(kc.c, 0, q.c(), &id, 1, out.c(), &ao), LLMKIT_ERROR_INVALID_ARGUMENT, "window");
    ao = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    const float sinks[4] = {0.0f, NAN, 0.0f, 0.0f};
    ao.sinks = sinks;
    expect(llmkit_kv_cache_attention(kc.c, 0, q.c(), &id, 1, out.c(), &ao), LLMKIT_ERROR_INVALID_ARGUMENT, "sinks[1]");
    ao = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    ao.split_keys = -2;
    expect(llmkit_kv_cache_attention(kc.c, 0, q.c(), &id, 1, out.c(), &ao), LLMKIT_ERROR_INVALID_ARGUMENT, "split_keys");
    expect(llmkit_kv_cache_attention(nullptr, 0, q.c(), &id, 1, out.c(), nullptr), LLMKIT_ERROR_NULL_POINTER, "cache");
    tensor4 qn = make(dtype::bf16, 1, 1, 4, 64, layout::compact, &rng), on = make(dtype::bf16, 1, 1, 4, 64, layout::compact, &rng);
    qn.set(0, 0, 2, 9, -INFINITY);
    const std::vector<unsigned char> before = on.bytes;
    expect(llmkit_kv_cache_attention(kc.c, 0, qn.c(), &id, 1, on.c(), nullptr), LLMKIT_ERROR_NON_FINITE, "q[0, 0, 2, 9] = -inf");
    CHECK(on.bytes == before);
    int64_t len = 0;
    expect(llmkit_kv_cache_seq_length(kc.c, s, 5, &len), LLMKIT_ERROR_OUT_OF_RANGE, "layer");
    expect(llmkit_kv_cache_seq_length(kc.c, s, 0, nullptr), LLMKIT_ERROR_NULL_POINTER, "length");
}

TEST_CASE("kv caches: the C++ face (RAII, exceptions) gives the C results", "[kv]") {
    std::mt19937 rng(12);
    llmkit_paged_kv_cache_options po = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
    po.n_kv_heads = 2, po.head_dim = 64, po.n_blocks = 8, po.max_sequences = 2;
    llmkit::paged_kv_cache pc(po);
    llmkit_kv_cache_options co = LLMKIT_KV_CACHE_OPTIONS_INIT;
    co.n_kv_heads = 2, co.head_dim = 64, co.capacity = 64;
    llmkit::kv_cache cc(co);
    std::vector<float> k(size_t(20 * 2 * 64)), v(k.size());
    std::normal_distribution<float> nd;
    for (float &x : k) x = nd(rng);
    for (float &x : v) x = nd(rng);
    const int32_t ps = pc.seq_new(), cs = cc.seq_new();
    pc.append(0, ps, llmkit::f32(k.data(), {20, 2, 64}), llmkit::f32(v.data(), {20, 2, 64}));
    cc.append(0, cs, llmkit::f32(k.data(), {20, 2, 64}), llmkit::f32(v.data(), {20, 2, 64}));
    CHECK(pc.length(ps) == 20);
    CHECK(pc.block_table(ps).size() == 2);
    CHECK(pc.free_blocks() == 6);
    const int32_t pf = pc.fork(ps);
    CHECK(pc.free_blocks() == 6);
    CHECK(pc.length(pf) == 20);
    std::vector<float> q(size_t(4 * 64)), o1(q.size()), o2(q.size());
    for (float &x : q) x = nd(rng);
    pc.attention(0, llmkit::f32(q.data(), {1, 1, 4, 64}), {pf}, llmkit::f32(o1.data(), {1, 1, 4, 64}));
    cc.attention(0, llmkit::f32(q.data(), {1, 1, 4, 64}), {cs}, llmkit::f32(o2.data(), {1, 1, 4, 64}));
    CHECK(o1 == o2);
    pc.free(pf);
    bool threw = false;
    try {
        pc.free(pf);
    } catch (const llmkit::error &e) {
        threw = e.status() == LLMKIT_ERROR_OUT_OF_RANGE;
    }
    CHECK(threw);
    CHECK(cc.memory_bytes() == uint64_t(2) * 64 * 2 * 64 * 4);

    // Fused RoPE through the C++ face: the same bits in both caches.
    const std::vector<float> unrotated = o2;
    cc.free(cs);
    const llmkit_rope_options rope = LLMKIT_ROPE_OPTIONS_INIT;
    const int32_t pr = pc.seq_new(), cr = cc.seq_new();
    pc.append_rope(0, pr, llmkit::f32(k.data(), {20, 2, 64}), llmkit::f32(v.data(), {20, 2, 64}), &rope);
    cc.append_rope(0, cr, llmkit::f32(k.data(), {20, 2, 64}), llmkit::f32(v.data(), {20, 2, 64}), &rope);
    llmkit_kv_attention_options with_rope = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    with_rope.rope = &rope;
    pc.attention(0, llmkit::f32(q.data(), {1, 1, 4, 64}), {pr}, llmkit::f32(o1.data(), {1, 1, 4, 64}), &with_rope);
    cc.attention(0, llmkit::f32(q.data(), {1, 1, 4, 64}), {cr}, llmkit::f32(o2.data(), {1, 1, 4, 64}), &with_rope);
    CHECK(o1 == o2);
    CHECK(o2 != unrotated);  // rotated keys and query read other weights
    // And through llmkit::rope_into / llmkit::rope: the plain cache fed rotated rows reads the same.
    std::vector<float> kr(k.size()), qr(q.size());
    std::vector<int32_t> positions(20), last = {19};
    for (int32_t i = 0; i < 20; ++i) positions[size_t(i)] = i;
    llmkit::rope_into(llmkit::f32(k.data(), {1, 20, 2, 64}), llmkit::i32(positions.data(), {20}),
                      llmkit::f32(kr.data(), {1, 20, 2, 64}), &rope);
    qr = q;
    llmkit::rope(llmkit::f32(qr.data(), {1, 1, 4, 64}), llmkit::i32(last.data(), {1}), &rope);
    cc.free(cr);
    const int32_t cp = cc.seq_new();
    cc.append(0, cp, llmkit::f32(kr.data(), {20, 2, 64}), llmkit::f32(v.data(), {20, 2, 64}));
    std::vector<float> o3(o2.size());
    cc.attention(0, llmkit::f32(qr.data(), {1, 1, 4, 64}), {cp}, llmkit::f32(o3.data(), {1, 1, 4, 64}));
    CHECK(o3 == o2);
    CHECK_THROWS_WITH(llmkit::rope_into(llmkit::f32(k.data(), {1, 20, 2, 64}), llmkit::i32(positions.data(), {20}),
                                       llmkit::f32(kr.data(), {1, 10, 2, 64}), &rope),
                      Catch::Contains("out: shape [1, 10, 2, 64] differs"));
}
