// RoPE fused into the KV caches: llmkit_*_append_rope() rotates K on its way
// in and llmkit_kv_attention_options.rope rotates the queries. Both must give
// the bits of the unfused path (llmkit_rope() on a float32 copy of K, then a
// plain append; llmkit_rope() on q at its positions, then attention), for both
// caches, every cache dtype, bf16 and float32 inputs, both layouts and the
// scalings, over chunks, decode steps and a forked paged sequence. llmkit_rope()
// itself is checked against a float64 reference in test_rope.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "any_cache.hpp"
#include "helpers.hpp"
#include "llmkit/llmkit.h"

using namespace attn_test;
using llmkit::core::dtype;

namespace {

constexpr int32_t k_hkv = 2, k_hq = 4;

// A float32 copy of rows [1, S, Hkv, D] rotated by llmkit_rope at first..first+S-1.
tensor4 rotated_f32_copy(const tensor4 &k, int64_t first, const llmkit_rope_options &rope) {
    tensor4 r = make(dtype::f32, 1, k.shape[1], k.shape[2], k.shape[3], layout::compact, nullptr);
    for (int64_t s = 0; s < k.shape[1]; ++s)
        for (int64_t h = 0; h < k.shape[2]; ++h)
            for (int64_t d = 0; d < k.shape[3]; ++d) r.set(0, s, h, d, k.get(0, s, h, d));
    std::vector<int64_t> pos(size_t(k.shape[1]));
    for (int64_t s = 0; s < k.shape[1]; ++s) pos[size_t(s)] = first + s;
    const int64_t shape[1] = {k.shape[1]};
    const llmkit_tensor tp = host_tensor(pos.data(), llmkit_dtype LLMKIT_DTYPE_I64, 1, shape);
    REQUIRE(llmkit_rope(r.c(), &tp, &rope) == LLMKIT_OK);
    return r;
}

// q rotated in its own dtype at query i of sequence b's position lens[b] - Sq + i.
tensor4 rotated_queries(const tensor4 &q, const std::vector<int64_t> &lens, const llmkit_rope_options &rope) {
    tensor4 r = q;
    const int64_t B = q.shape[0], Sq = q.shape[1];
    std::vector<int64_t> pos(size_t(B * Sq));
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < Sq; ++i) pos[size_t(b * Sq + i)] = lens[size_t(b)] - Sq + i;
    const int64_t shape[2] = {B, Sq};
    const llmkit_tensor tp = host_tensor(pos.data(), llmkit_dtype LLMKIT_DTYPE_I64, 2, shape);
    REQUIRE(llmkit_rope(r.c(), &tp, &rope) == LLMKIT_OK);
    return r;
}

}  // namespace

TEST_CASE("kv caches: fused RoPE gives the bits of llmkit_rope then append, and of rotated queries", "[kv][rope]") {
    const int64_t D = 64;
    std::mt19937 rng(11);
    for (bool paged : {false, true})
        for (int32_t type : {LLMKIT_KV_F32, LLMKIT_KV_BF16, LLMKIT_KV_F16, LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3,
                             LLMKIT_KV_FP8_E5M2})
            for (dtype in : {dtype::f32, dtype::bf16})
                for (const rope_case &rc : rope_cases(D)) {
                    INFO((paged ? "paged" : "contiguous") << ", cache dtype " << type << ", input "
                                                          << (in == dtype::f32 ? "f32" : "bf16") << ", " << rc.name);
                    any_cache fused(paged, int32_t(D), type), plain(paged, int32_t(D), type);
                    const int32_t sf = fused.seq_new(), sp = plain.seq_new();
                    REQUIRE(sf == sp);
                    // A prefill chunk, a second chunk across a paged block edge, then decode steps.
                    for (int64_t n : {37, 5, 1, 1}) {
                        tensor4 k = make(in, 1, n, k_hkv, D, layout::padded, &rng);
                        tensor4 v = make(in, 1, n, k_hkv, D, layout::padded, &rng);
                        int64_t sk[3], sv[3], sr[3];
                        const llmkit_tensor tk = rows_of(k, sk), tv = rows_of(v, sv);
                        const int64_t len = plain.length(sp);
                        tensor4 kr = rotated_f32_copy(k, len, rc.o);
                        const llmkit_tensor tkr = rows_of(kr, sr);
                        REQUIRE(fused.append_rope(sf, &tk, &tv, &rc.o) == LLMKIT_OK);
                        if (in == dtype::f32) {
                            REQUIRE(plain.append(sp, &tkr, &tv) == LLMKIT_OK);
                        } else {
                            // V as float32 too, so the plain append takes one dtype (bf16 widens exactly).
                            tensor4 vw = make(dtype::f32, 1, n, k_hkv, D, layout::compact, nullptr);
                            for (int64_t s = 0; s < n; ++s)
                                for (int64_t h = 0; h < k_hkv; ++h)
                                    for (int64_t d = 0; d < D; ++d) vw.set(0, s, h, d, v.get(0, s, h, d));
                            int64_t sw[3];
                            const llmkit_tensor tvw = rows_of(vw, sw);
                            REQUIRE(plain.append(sp, &tkr, &tvw) == LLMKIT_OK);
                        }
                        CHECK(fused.length(sf) == plain.length(sp));
                    }
                    // Queries of the last 3 tokens, rotated by the call against rotated by llmkit_rope.
                    tensor4 q = make(in, 1, 3, k_hq, D, layout::padded, &rng);
                    tensor4 qr = rotated_queries(q, {plain.length(sp)}, rc.o);
                    tensor4 out_f = make(in, 1, 3, k_hq, D, layout::compact, nullptr);
                    tensor4 out_p = make(in, 1, 3, k_hq, D, layout::compact, nullptr);
                    llmkit_kv_attention_options with = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
                    with.rope = &rc.o;
                    const std::vector<uint8_t> q_before(q.bytes.begin(), q.bytes.end());
                    REQUIRE(fused.attention(q.c(), {sf}, out_f.c(), &with) == LLMKIT_OK);
                    CHECK(std::vector<uint8_t>(q.bytes.begin(), q.bytes.end()) == q_before);  // q untouched
                    REQUIRE(plain.attention(qr.c(), {sp}, out_p.c(), nullptr) == LLMKIT_OK);
                    CHECK(out_f.bytes == out_p.bytes);
                    // And the rotation is not a no-op: unrotated queries read other results.
                    REQUIRE(fused.attention(q.c(), {sf}, out_p.c(), nullptr) == LLMKIT_OK);
                    CHECK(out_f.bytes != out_p.bytes);
                }
}

TEST_CASE("kv caches: fused RoPE over a batch of decodes and a forked sequence", "[kv][rope]") {
    const int64_t D = 128;
    std::mt19937 rng(12);
    llmkit_rope_options rope = LLMKIT_ROPE_OPTIONS_INIT;
    rope.theta = 500000.0;
    for (bool paged : {false, true}) {
        INFO((paged ? "paged" : "contiguous"));
        any_cache fused(paged, int32_t(D), LLMKIT_KV_BF16), plain(paged, int32_t(D), LLMKIT_KV_BF16);
        auto append_both = [&](int32_t s, int64_t n) {
            tensor4 k = make(dtype::f32, 1, n, k_hkv, D, layout::compact, &rng);
            tensor4 v = make(dtype::f32, 1, n, k_hkv, D, layout::compact, &rng);
            int64_t sk[3], sv[3], sr[3];
            const llmkit_tensor tk = rows_of(k, sk), tv = rows_of(v, sv);
            tensor4 kr = rotated_f32_copy(k, plain.length(s), rope);
            const llmkit_tensor tkr = rows_of(kr, sr);
            REQUIRE(fused.append_rope(s, &tk, &tv, &rope) == LLMKIT_OK);
            REQUIRE(plain.append(s, &tkr, &tv) == LLMKIT_OK);
        };
        const int32_t a = fused.seq_new(), b = fused.seq_new();
        REQUIRE(plain.seq_new() == a);
        REQUIRE(plain.seq_new() == b);
        append_both(a, 20);  // inside a paged block: the fork shares it
        append_both(b, 3);
        const int32_t f = fused.fork(a);
        REQUIRE(plain.fork(a) == f);
        for (int step = 0; step < 3; ++step) {  // copy-on-write on the fork's first append
            for (int32_t s : {a, b, f}) append_both(s, 1);
            const std::vector<int32_t> ids = {a, b, f};
            const std::vector<int64_t> lens = {plain.length(a), plain.length(b), plain.length(f)};
            tensor4 q = make(dtype::bf16, 3, 1, k_hq, D, layout::compact, &rng);
            tensor4 qr = rotated_queries(q, lens, rope);
            tensor4 out_f = make(dtype::bf16, 3, 1, k_hq, D, layout::compact, nullptr);
            tensor4 out_p = make(dtype::bf16, 3, 1, k_hq, D, layout::compact, nullptr);
            llmkit_kv_attention_options with = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
            with.rope = &rope;
            REQUIRE(fused.attention(q.c(), ids, out_f.c(), &with) == LLMKIT_OK);
            REQUIRE(plain.attention(qr.c(), ids, out_p.c(), nullptr) == LLMKIT_OK);
            CHECK(out_f.bytes == out_p.bytes);
        }
        CHECK(fused.length(a) == 23);
        CHECK(fused.length(f) == 23);
    }
}

TEST_CASE("kv caches: fused RoPE's bad options give clear errors and append nothing", "[kv][rope][errors]") {
    const int64_t D = 32;
    std::mt19937 rng(13);
    for (bool paged : {false, true}) {
        INFO((paged ? "paged" : "contiguous"));
        any_cache c(paged, int32_t(D), LLMKIT_KV_F32);
        const int32_t s = c.seq_new();
        tensor4 k = make(dtype::f32, 1, 4, k_hkv, D, layout::compact, &rng);
        int64_t sk[3];
        const llmkit_tensor tk = rows_of(k, sk);
        llmkit_rope_options bad = LLMKIT_ROPE_OPTIONS_INIT;
        bad.rotary_dims = 7;
        CHECK(c.append_rope(s, &tk, &tk, &bad) == LLMKIT_ERROR_SHAPE);
        CHECK(std::string(llmkit_last_error_message()).find("rotary_dims = 7") != std::string::npos);
        bad = LLMKIT_ROPE_OPTIONS_INIT;
        bad.layout = 5;
        CHECK(c.append_rope(s, &tk, &tk, &bad) == LLMKIT_ERROR_INVALID_ARGUMENT);
        bad = LLMKIT_ROPE_OPTIONS_INIT;
        bad.theta = 0.0;
        CHECK(c.append_rope(s, &tk, &tk, &bad) == LLMKIT_ERROR_INVALID_ARGUMENT);
        bad = LLMKIT_ROPE_OPTIONS_INIT;
        bad.struct_size = 3;
        CHECK(c.append_rope(s, &tk, &tk, &bad) == LLMKIT_ERROR_INVALID_ARGUMENT);
        CHECK(std::string(llmkit_last_error_message()).find("rope") != std::string::npos);
        CHECK(c.length(s) == 0);  // nothing appended
        // NULL: the default rotation; the same rows as the defaults spelled out.
        REQUIRE(c.append_rope(s, &tk, &tk, nullptr) == LLMKIT_OK);
        CHECK(c.length(s) == 4);

        tensor4 q = make(dtype::f32, 1, 1, k_hq, D, layout::compact, &rng);
        tensor4 out = make(dtype::f32, 1, 1, k_hq, D, layout::compact, nullptr);
        llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
        bad = LLMKIT_ROPE_OPTIONS_INIT;
        bad.scaling = 9;
        o.rope = &bad;
        CHECK(c.attention(q.c(), {s}, out.c(), &o) == LLMKIT_ERROR_INVALID_ARGUMENT);
        CHECK(std::string(llmkit_last_error_message()).find("scaling") != std::string::npos);
        // A NaN query is refused by name, rotated or not.
        q.set(0, 0, 2, 5, std::nan(""));
        llmkit_rope_options good = LLMKIT_ROPE_OPTIONS_INIT;
        o.rope = &good;
        CHECK(c.attention(q.c(), {s}, out.c(), &o) == LLMKIT_ERROR_NON_FINITE);
        CHECK(std::string(llmkit_last_error_message()).find("q") != std::string::npos);
        // An options struct from before the rope field: no rotation, as always.
        o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
        o.struct_size = uint32_t(offsetof(llmkit_kv_attention_options, rope));
        q.set(0, 0, 2, 5, 0.5);
        CHECK(c.attention(q.c(), {s}, out.c(), &o) == LLMKIT_OK);
    }
}

TEST_CASE("kv caches: fused RoPE past the kept angles (position 32768 on) gives the same bits", "[kv][rope]") {
    // The caches keep the cosines and sines of positions below 32768 between
    // appends; later positions are computed on the spot, the same way.
    const int64_t D = 32, first = 32768, more = 3;
    std::mt19937 rng(14);
    llmkit_kv_cache_options o = LLMKIT_KV_CACHE_OPTIONS_INIT;
    o.n_layers = 1, o.n_kv_heads = k_hkv, o.head_dim = int32_t(D), o.capacity = first + more, o.max_sequences = 1;
    llmkit_kv_cache *fused = nullptr, *plain = nullptr;
    REQUIRE(llmkit_kv_cache_create(&fused, &o) == LLMKIT_OK);
    REQUIRE(llmkit_kv_cache_create(&plain, &o) == LLMKIT_OK);
    int32_t sf = -1, sp = -1;
    REQUIRE(llmkit_kv_cache_seq_new(fused, &sf) == LLMKIT_OK);
    REQUIRE(llmkit_kv_cache_seq_new(plain, &sp) == LLMKIT_OK);
    llmkit_rope_options rope = LLMKIT_ROPE_OPTIONS_INIT;
    rope.theta = 500000.0;
    int64_t len = 0;
    for (int64_t n : {first, more}) {
        tensor4 k = make(dtype::f32, 1, n, k_hkv, D, layout::compact, &rng);
        int64_t sk[3], sr[3];
        const llmkit_tensor tk = rows_of(k, sk);
        tensor4 kr = rotated_f32_copy(k, len, rope);
        const llmkit_tensor tkr = rows_of(kr, sr);
        REQUIRE(llmkit_kv_cache_append_rope(fused, 0, sf, &tk, &tk, &rope) == LLMKIT_OK);
        REQUIRE(llmkit_kv_cache_append(plain, 0, sp, &tkr, &tk) == LLMKIT_OK);
        len += n;
    }
    // Queries of the last 3 tokens: causal, so the last ones see the keys past 32768.
    tensor4 q = make(dtype::f32, 1, more, k_hq, D, layout::compact, &rng);
    tensor4 out_f = make(dtype::f32, 1, more, k_hq, D, layout::compact, nullptr);
    tensor4 out_p = make(dtype::f32, 1, more, k_hq, D, layout::compact, nullptr);
    const std::vector<int32_t> ids = {sf};
    REQUIRE(llmkit_kv_cache_attention(fused, 0, q.c(), ids.data(), 1, out_f.c(), nullptr) == LLMKIT_OK);
    REQUIRE(llmkit_kv_cache_attention(plain, 0, q.c(), ids.data(), 1, out_p.c(), nullptr) == LLMKIT_OK);
    CHECK(out_f.bytes == out_p.bytes);
    llmkit_kv_cache_free(fused);
    llmkit_kv_cache_free(plain);
}

TEST_CASE("kv caches: fused RoPE keeps no stale angles when the frequency factors change in place", "[kv][rope]") {
    // The caches keep the angles of the rotation last used. Two rotations that
    // differ only in the values behind the same frequency_factors pointer must
    // not share them: the second sequence gets the new factors' angles.
    const int64_t D = 32, n = 24;
    std::mt19937 rng(15);
    std::vector<float> factors(size_t(D / 2), 1.0f);
    llmkit_rope_options rope = LLMKIT_ROPE_OPTIONS_INIT;
    rope.scaling = LLMKIT_ROPE_SCALING_LONGROPE;
    rope.frequency_factors = factors.data();
    for (bool paged : {false, true}) {
        INFO((paged ? "paged" : "contiguous"));
        any_cache fused(paged, int32_t(D), LLMKIT_KV_F32), plain(paged, int32_t(D), LLMKIT_KV_F32);
        for (int round = 0; round < 2; ++round) {
            std::fill(factors.begin(), factors.end(), round == 0 ? 1.0f : 7.0f);
            const int32_t sf = fused.seq_new(), sp = plain.seq_new();
            tensor4 k = make(dtype::f32, 1, n, k_hkv, D, layout::compact, &rng);
            int64_t sk[3], sr[3];
            const llmkit_tensor tk = rows_of(k, sk);
            tensor4 kr = rotated_f32_copy(k, 0, rope);
            const llmkit_tensor tkr = rows_of(kr, sr);
            REQUIRE(fused.append_rope(sf, &tk, &tk, &rope) == LLMKIT_OK);
            REQUIRE(plain.append(sp, &tkr, &tk) == LLMKIT_OK);
            tensor4 q = make(dtype::f32, 1, 2, k_hq, D, layout::compact, &rng);
            tensor4 out_f = make(dtype::f32, 1, 2, k_hq, D, layout::compact, nullptr);
            tensor4 out_p = make(dtype::f32, 1, 2, k_hq, D, layout::compact, nullptr);
            REQUIRE(fused.attention(q.c(), {sf}, out_f.c(), nullptr) == LLMKIT_OK);
            REQUIRE(plain.attention(q.c(), {sp}, out_p.c(), nullptr) == LLMKIT_OK);
            INFO("round " << round);
            CHECK(out_f.bytes == out_p.bytes);
        }
    }
}
