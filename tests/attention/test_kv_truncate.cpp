// Truncating a KV-cache sequence (llmkit_*_seq_truncate): what speculative
// decoding does after verification rejects draft tokens. After truncating to
// n and appending again, attention must give the bits of a cache that never
// held the dropped tokens, in both caches and every cache dtype, through
// forks that share paged blocks (copy-on-write into a kept shared block),
// with fused RoPE (the next token rotated at position n), and the paged
// pool must get back exactly the blocks no one holds.
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include "any_cache.hpp"
#include "helpers.hpp"
#include "llmkit/llmkit.h"

using namespace attn_test;
using llmkit::core::dtype;

namespace {

constexpr int32_t k_kv_heads = 2, k_q_heads = 4;
constexpr int64_t k_dim = 32;

// Rows for n tokens, [1, n, Hkv, D].
tensor4 rows(std::mt19937 &rng, int64_t n) { return make(dtype::f32, 1, n, k_kv_heads, k_dim, layout::compact, &rng); }

// Appends rows [from, from + n) of k and v to seq.
void append_part(any_cache &c, int32_t seq, const tensor4 &k, const tensor4 &v, int64_t from, int64_t n,
                 const llmkit_rope_options *rope) {
    tensor4 kp = make(dtype::f32, 1, n, k_kv_heads, k_dim, layout::compact, nullptr);
    tensor4 vp = kp;
    for (int64_t s = 0; s < n; ++s)
        for (int64_t h = 0; h < k_kv_heads; ++h)
            for (int64_t d = 0; d < k_dim; ++d) {
                kp.set(0, s, h, d, k.get(0, from + s, h, d));
                vp.set(0, s, h, d, v.get(0, from + s, h, d));
            }
    int64_t sk[3], sv[3];
    const llmkit_tensor tk = rows_of(kp, sk), tv = rows_of(vp, sv);
    REQUIRE((rope ? c.append_rope(seq, &tk, &tv, rope) : c.append(seq, &tk, &tv)) == LLMKIT_OK);
}

std::vector<unsigned char> attend(any_cache &c, const tensor4 &q, int32_t seq, const llmkit_rope_options *rope) {
    tensor4 out = make(dtype::f32, 1, q.shape[1], k_q_heads, k_dim, layout::compact, nullptr);
    llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    o.rope = rope;
    tensor4 qq = q;
    REQUIRE(c.attention(qq.c(), {seq}, out.c(), &o) == LLMKIT_OK);
    return out.bytes;
}

}  // namespace

TEST_CASE("kv caches: truncate then append reads as if the dropped tokens were never there", "[kv][truncate]") {
    std::mt19937 rng(51);
    const llmkit_rope_options neox = LLMKIT_ROPE_OPTIONS_INIT;
    for (bool paged : {false, true})
        for (int32_t type : {LLMKIT_KV_F32, LLMKIT_KV_BF16, LLMKIT_KV_F16, LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3,
                             LLMKIT_KV_FP8_E5M2})
            for (const llmkit_rope_options *rope : {static_cast<const llmkit_rope_options *>(nullptr), &neox}) {
                INFO((paged ? "paged" : "contiguous") << ", dtype " << type << (rope ? ", fused RoPE" : ""));
                any_cache a(paged, int32_t(k_dim), type), b(paged, int32_t(k_dim), type);
                const tensor4 k = rows(rng, 40), v = rows(rng, 40), kd = rows(rng, 7), vd = rows(rng, 7);
                const int32_t sa = a.seq_new(), sb = b.seq_new();
                // a: 37 tokens, then 7 drafts (the paged cache's third block starts at 32), of which
                // verification keeps 2; then 3 more. b: the same tokens without the rejected 5.
                append_part(a, sa, k, v, 0, 37, rope);
                append_part(a, sa, kd, vd, 0, 7, rope);
                REQUIRE(a.truncate(sa, 39) == LLMKIT_OK);
                CHECK(a.length(sa) == 39);
                append_part(a, sa, k, v, 37, 3, rope);
                append_part(b, sb, k, v, 0, 37, rope);
                append_part(b, sb, kd, vd, 0, 2, rope);
                append_part(b, sb, k, v, 37, 3, rope);
                REQUIRE(a.length(sa) == 42);
                const tensor4 q = make(dtype::f32, 1, 3, k_q_heads, k_dim, layout::compact, &rng);
                CHECK(attend(a, q, sa, rope) == attend(b, q, sb, rope));
                // Truncating to the whole length changes nothing; to 0 empties it.
                const std::vector<unsigned char> before = attend(a, q, sa, rope);
                REQUIRE(a.truncate(sa, 42) == LLMKIT_OK);
                CHECK(attend(a, q, sa, rope) == before);
                REQUIRE(a.truncate(sa, 0) == LLMKIT_OK);
                CHECK(a.length(sa) == 0);
            }
}

TEST_CASE("paged cache: truncate returns the blocks no one holds and copies a kept shared one on write",
          "[kv][truncate]") {
    std::mt19937 rng(52);
    any_cache a(true, int32_t(k_dim), LLMKIT_KV_BF16), ref(true, int32_t(k_dim), LLMKIT_KV_BF16);
    const int64_t pool = a.free_blocks();
    const tensor4 k = rows(rng, 60), v = rows(rng, 60), k2 = rows(rng, 9), v2 = rows(rng, 9);
    const int32_t parent = a.seq_new();
    append_part(a, parent, k, v, 0, 60, nullptr);  // blocks of 16: 4 blocks
    CHECK(pool - a.free_blocks() == 4);
    const int32_t child = a.fork(parent);  // shares all 4
    CHECK(pool - a.free_blocks() == 4);
    // The child drops to 20 tokens: blocks 2 and 3 stay with the parent, block 1 is kept, shared.
    REQUIRE(a.truncate(child, 20) == LLMKIT_OK);
    CHECK(pool - a.free_blocks() == 4);
    // Its next append writes into shared block 1: copied first, the parent's rows untouched.
    append_part(a, child, k2, v2, 0, 9, nullptr);
    CHECK(pool - a.free_blocks() == 5);
    const tensor4 q = make(dtype::f32, 1, 2, k_q_heads, k_dim, layout::compact, &rng);
    const int32_t r_parent = ref.seq_new(), r_child = ref.seq_new();
    append_part(ref, r_parent, k, v, 0, 60, nullptr);
    append_part(ref, r_child, k, v, 0, 20, nullptr);
    append_part(ref, r_child, k2, v2, 0, 9, nullptr);
    CHECK(attend(a, q, parent, nullptr) == attend(ref, q, r_parent, nullptr));
    CHECK(attend(a, q, child, nullptr) == attend(ref, q, r_child, nullptr));
    // The parent drops to 10: its blocks 1-3 go (block 1 is the parent's own, the child copied it);
    // block 0 stays, shared with the child.
    REQUIRE(a.truncate(parent, 10) == LLMKIT_OK);
    CHECK(pool - a.free_blocks() == 2);
    a.free(child);
    CHECK(pool - a.free_blocks() == 1);
    a.free(parent);
    CHECK(a.free_blocks() == pool);
}

TEST_CASE("kv caches: truncate's bad arguments give clear errors and change nothing", "[kv][truncate][errors]") {
    std::mt19937 rng(53);
    for (bool paged : {false, true}) {
        INFO((paged ? "paged" : "contiguous"));
        any_cache c(paged, int32_t(k_dim), LLMKIT_KV_F32);
        const int32_t s = c.seq_new();
        const tensor4 k = rows(rng, 5);
        append_part(c, s, k, k, 0, 5, nullptr);
        auto expect = [](llmkit_status got, const std::string &needle) {
            INFO("message: " << llmkit_last_error_message());
            CHECK(got == LLMKIT_ERROR_OUT_OF_RANGE);
            CHECK(std::string(llmkit_last_error_message()).find(needle) != std::string::npos);
        };
        expect(c.truncate(s, 6), "n = 6 is outside 0..5 (sequence 0 holds 5 tokens)");
        expect(c.truncate(s, -1), "n = -1 is outside 0..5");
        expect(c.truncate(s + 1, 0), "seq");
        CHECK(c.length(s) == 5);
    }
    CHECK(llmkit_kv_cache_seq_truncate(nullptr, 0, 0) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_paged_kv_cache_seq_truncate(nullptr, 0, 0) == LLMKIT_ERROR_NULL_POINTER);
}
