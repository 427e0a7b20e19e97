// The caches' packed queries (llmkit_kv_attention_options.cu_seqlens_q): a
// batch whose sequences bring different numbers of queries (decodes, prefill
// chunks, a whole prompt, none) gives each sequence the bits of a call with
// its queries alone, outputs and log-sum-exps, over both caches, every cache
// dtype, compact and strided queries, decodes packed side by side or
// scattered between chunks, and every option; the paged cache's caller-made
// tables give the same bits; bad offsets and shapes are refused by name and
// leave the output as it was.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "kv_helpers.hpp"
#include "llmkit/llmkit.hpp"

using namespace attn_test;
using llmkit::core::dtype;

namespace {

constexpr int64_t k_hq = 8, k_hkv = 2, k_d = 64;

// The cached tokens of the six sequences and two packings of their queries:
// decodes scattered between chunks (a gathered group), and decodes side by
// side before two chunks of one count (groups viewed in place). Sequence 2
// brings all its 9 tokens (a prompt); one sequence brings none.
const std::vector<int64_t> k_lengths = {300, 40, 9, 120, 64, 5};
const std::vector<std::vector<int64_t>> k_packings = {{1, 16, 9, 0, 1, 1}, {1, 1, 0, 16, 16, 1}};

// Fills the cache with the six sequences; returns their ids.
std::vector<int32_t> fill(kv_test::cache &c, std::mt19937 &rng) {
    std::vector<int32_t> ids;
    for (const int64_t len : k_lengths) {
        ids.push_back(c.seq_new());
        kv_test::seq_data sd;
        c.append(0, ids.back(), len, rng, sd);
    }
    return ids;
}

// The block tables and lengths of the paged cache's sequences, as attention_tables takes them.
struct tables {
    std::vector<int32_t> ids;
    std::vector<int64_t> lens;
    int64_t width = 0, shape[2] = {}, len_shape[1] = {};
    llmkit_tensor t{}, l{};
    tables(llmkit_paged_kv_cache *p, const std::vector<int32_t> &seqs) {
        for (const int32_t s : seqs) {
            int64_t needed = 0;
            REQUIRE(llmkit_paged_kv_cache_seq_block_table(p, s, nullptr, 0, &needed) == LLMKIT_OK);
            width = std::max(width, needed);
        }
        ids.assign(size_t(width) * seqs.size(), 0);
        for (size_t b = 0; b < seqs.size(); ++b) {
            int64_t needed = 0, n = -1;
            REQUIRE(llmkit_paged_kv_cache_seq_block_table(p, seqs[b], ids.data() + b * size_t(width), width, &needed) ==
                    LLMKIT_OK);
            REQUIRE(llmkit_paged_kv_cache_seq_length(p, seqs[b], 0, &n) == LLMKIT_OK);
            lens.push_back(n);
        }
        shape[0] = int64_t(seqs.size()), shape[1] = width, len_shape[0] = int64_t(seqs.size());
        t = host_tensor(ids.data(), llmkit_dtype LLMKIT_DTYPE_I32, 2, shape);
        l = host_tensor(lens.data(), llmkit_dtype LLMKIT_DTYPE_I64, 1, len_shape);
    }
};

}  // namespace

TEST_CASE("kv packed: each sequence of a packed batch gets the bits of its queries alone", "[kv][packed]") {
    std::vector<float> slopes(k_hq), sinks(k_hq);
    for (int64_t h = 0; h < k_hq; ++h) {
        slopes[size_t(h)] = float(std::pow(2.0, -double(h + 1)));
        sinks[size_t(h)] = float(h) * 0.5f - 1.0f;
    }
    llmkit_rope_options rope = LLMKIT_ROPE_OPTIONS_INIT;
    for (const bool paged : {false, true})
        for (const int32_t type : {LLMKIT_KV_F32, LLMKIT_KV_BF16, LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3}) {
            kv_test::cache c(paged, 1, k_hkv, k_d, type, 512, 8);
            std::mt19937 rng(uint32_t(type * 2 + int(paged)));
            const std::vector<int32_t> ids = fill(c, rng);
            for (const dtype qt : {dtype::f32, dtype::bf16})
                for (size_t packing = 0; packing < k_packings.size(); ++packing)
                    for (int variant = 0; variant < 6; ++variant) {
                        const std::vector<int64_t> &counts = k_packings[packing];
                        const layout lay = variant % 2 ? layout::padded : layout::compact;
                        INFO((paged ? "paged" : "contiguous") << " cache " << kv_test::kv_name(type) << ", q "
                                                              << llmkit::core::dtype_name(qt) << ", packing " << packing
                                                              << ", variant " << variant);
                        offsets cu = cumulative(counts);
                        const int64_t Tq = cu.v.back();
                        packed q = make_packed(qt, Tq, k_hq, k_d, lay, &rng), out = make_packed(qt, Tq, k_hq, k_d, lay, nullptr);
                        std::vector<float> lse(size_t(Tq * k_hq), NAN);
                        int64_t lse_shape[2] = {Tq, k_hq};
                        llmkit_tensor lse_t = host_tensor(lse.data(), llmkit_dtype LLMKIT_DTYPE_F32, 2, lse_shape);
                        llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
                        o.causal = variant != 1;
                        if (variant == 2) o.window = 7, o.softcap = 4.0f;
                        if (variant == 3) o.alibi_slopes = slopes.data(), o.sinks = sinks.data();
                        if (variant == 4) o.split_keys = 64;  // the decode over 300 keys in 5 parts
                        if (variant == 5) o.rope = &rope;
                        o.lse = &lse_t;
                        o.cu_seqlens_q = cu.c();
                        llmkit_status st = paged ? llmkit_paged_kv_cache_attention(c.p, 0, q.c(), ids.data(), 6, out.c(), &o)
                                                 : llmkit_kv_cache_attention(c.c, 0, q.c(), ids.data(), 6, out.c(), &o);
                        INFO(llmkit_last_error_message());
                        REQUIRE(st == LLMKIT_OK);
                        o.cu_seqlens_q = nullptr;
                        for (size_t b = 0; b < ids.size(); ++b) {
                            const int64_t n = counts[b], from = cu.v[b];
                            if (n == 0) continue;
                            INFO("sequence " << b);
                            tensor4 qb = rows_of_packed(q, from, n), want = make(qt, 1, n, k_hq, k_d, layout::compact, nullptr);
                            lse_tensor want_lse(1, n, k_hq, false);
                            o.lse = want_lse.c();
                            REQUIRE(c.attention(0, qb, {ids[b]}, want, &o) == LLMKIT_OK);
                            bool same = true;
                            for (int64_t i = 0; i < n; ++i)
                                for (int64_t h = 0; h < k_hq; ++h) {
                                    const float got_l = lse[size_t((from + i) * k_hq + h)], want_l = want_lse.at(0, i, h);
                                    same = same && std::memcmp(&got_l, &want_l, 4) == 0;
                                    for (int64_t d = 0; d < k_d; ++d)
                                        same = same && out.x.get(0, from + i, h, d) == want.get(0, i, h, d);
                                }
                            CHECK(same);
                        }
                        if (!paged) continue;
                        // The caller's tables: the same bits.
                        tables tb(c.p, ids);
                        packed out_t = make_packed(qt, Tq, k_hq, k_d, lay, nullptr);
                        std::vector<float> lse2(size_t(Tq * k_hq), NAN);
                        llmkit_tensor lse2_t = host_tensor(lse2.data(), llmkit_dtype LLMKIT_DTYPE_F32, 2, lse_shape);
                        o.lse = &lse2_t;
                        o.cu_seqlens_q = cu.c();
                        st = llmkit_paged_kv_cache_attention_tables(c.p, 0, q.c(), &tb.t, &tb.l, out_t.c(), &o);
                        INFO(llmkit_last_error_message());
                        REQUIRE(st == LLMKIT_OK);
                        CHECK(out_t.x.bytes == out.x.bytes);
                        CHECK(std::memcmp(lse2.data(), lse.data(), lse.size() * 4) == 0);
                    }
        }
}

TEST_CASE("kv packed: the decodes of a packed batch give the bits of a batched decode", "[kv][packed]") {
    // Four decodes packed with a chunk between them (a gathered group) against
    // one [4, 1, Hq, D] call over the same sequences.
    kv_test::cache c(true, 1, k_hkv, k_d, LLMKIT_KV_BF16, 512, 8);
    std::mt19937 rng(5);
    const std::vector<int32_t> ids = fill(c, rng);
    const std::vector<int32_t> batch = {ids[0], ids[1], ids[3], ids[4]};
    const std::vector<int32_t> packed_ids = {ids[0], ids[1], ids[2], ids[3], ids[4]};
    offsets cu = cumulative({1, 1, 7, 1, 1});
    packed q = make_packed(dtype::bf16, 11, k_hq, k_d, layout::compact, &rng),
           out = make_packed(dtype::bf16, 11, k_hq, k_d, layout::compact, nullptr);
    llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    o.cu_seqlens_q = cu.c();
    REQUIRE(llmkit_paged_kv_cache_attention(c.p, 0, q.c(), packed_ids.data(), 5, out.c(), &o) == LLMKIT_OK);
    tensor4 q4 = make(dtype::bf16, 4, 1, k_hq, k_d, layout::compact, nullptr), want = q4;
    const int64_t rows[4] = {0, 1, 9, 10};
    for (int64_t b = 0; b < 4; ++b)
        for (int64_t h = 0; h < k_hq; ++h)
            for (int64_t d = 0; d < k_d; ++d) q4.set(b, 0, h, d, q.x.get(0, rows[b], h, d));
    o.cu_seqlens_q = nullptr;
    REQUIRE(c.attention(0, q4, batch, want, &o) == LLMKIT_OK);
    bool same = true;
    for (int64_t b = 0; b < 4; ++b)
        for (int64_t h = 0; h < k_hq; ++h)
            for (int64_t d = 0; d < k_d; ++d) same = same && out.x.get(0, rows[b], h, d) == want.get(b, 0, h, d);
    CHECK(same);
}

TEST_CASE("kv packed: bad offsets and shapes are refused by name and write nothing", "[kv][packed]") {
    for (const bool paged : {false, true}) {
        INFO((paged ? "paged" : "contiguous"));
        kv_test::cache c(paged, 1, k_hkv, k_d, LLMKIT_KV_F32, 512, 8);
        std::mt19937 rng(11);
        const std::vector<int32_t> ids = fill(c, rng);
        packed q = make_packed(dtype::f32, 20, k_hq, k_d, layout::compact, &rng),
               out = make_packed(dtype::f32, 20, k_hq, k_d, layout::compact, &rng);
        const std::vector<unsigned char> before = out.x.bytes;
        auto call = [&](llmkit_tensor *qt, llmkit_tensor *ot, const llmkit_kv_attention_options *o, int64_t n = 6) {
            return paged ? llmkit_paged_kv_cache_attention(c.p, 0, qt, ids.data(), n, ot, o)
                         : llmkit_kv_cache_attention(c.c, 0, qt, ids.data(), n, ot, o);
        };
        auto refused = [&](offsets cu, llmkit_status want, const char *words, llmkit_tensor *qt = nullptr,
                           llmkit_tensor *lse = nullptr, llmkit_tensor *ot = nullptr) {
            llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
            o.cu_seqlens_q = cu.c();
            o.lse = lse;
            const llmkit_status st = call(qt ? qt : q.c(), ot ? ot : out.c(), &o);
            const std::string msg = llmkit_last_error_message();
            INFO(msg);
            CHECK(st == want);
            CHECK(msg.find(words) != std::string::npos);
            CHECK(out.x.bytes == before);
        };
        refused(offsets({0, 1, 17, 18, 19, 20}), LLMKIT_ERROR_SHAPE, "must hold B + 1 = 7");
        refused(offsets({1, 1, 17, 18, 18, 19, 20}), LLMKIT_ERROR_INVALID_ARGUMENT, "options.cu_seqlens_q[0] must be 0");
        refused(offsets({0, 1, 17, 16, 18, 19, 20}), LLMKIT_ERROR_INVALID_ARGUMENT, "must not decrease");
        refused(offsets({0, 1, 17, 18, 18, 19, 19}), LLMKIT_ERROR_SHAPE, "the 20 rows of q");
        // Sequence 5 holds 5 tokens: 6 queries cannot be its last tokens.
        refused(offsets({0, 1, 2, 3, 4, 14, 20}), LLMKIT_ERROR_SHAPE, "sequence 5 of the batch holds 5 tokens");
        refused(offsets({0, 1, 17, 18, 18, 19, 20}), LLMKIT_ERROR_SHAPE, "expected 3 dimensions", q.x.c());
        std::vector<float> lse(20 * k_hq);
        int64_t bad_shape[3] = {1, 20, k_hq};
        llmkit_tensor lt = host_tensor(lse.data(), llmkit_dtype LLMKIT_DTYPE_F32, 3, bad_shape);
        refused(offsets({0, 1, 17, 18, 18, 19, 20}), LLMKIT_ERROR_SHAPE, "options.lse: shape [1, 20, 8] must be [Tq, Hq]",
                nullptr, &lt);
        packed short_out = make_packed(dtype::f32, 19, k_hq, k_d, layout::compact, nullptr);
        refused(offsets({0, 1, 17, 18, 18, 19, 20}), LLMKIT_ERROR_SHAPE, "out: shape [19, 8, 64] must be [Tq, Hq, Dv] = [20, 8, 64]", nullptr,
                nullptr, short_out.c());
        // Every stride of out's head_dim axis but 1 is refused before a copy reads it.
        packed wide = make_packed(dtype::f32, 20, k_hq, 2 * k_d, layout::compact, nullptr);
        llmkit_tensor strided = *wide.c();
        int64_t ws[3] = {20, k_hq, k_d}, wst[3] = {k_hq * 2 * k_d, 2 * k_d, 2};
        strided.shape = ws, strided.strides = wst;
        refused(offsets({0, 1, 17, 18, 18, 19, 20}), LLMKIT_ERROR_UNSUPPORTED, "out: the head_dim axis", nullptr, nullptr,
                &strided);
        // A NaN in the chunk's queries (the group of 16, which attends after
        // the decodes' group): refused before the decodes' rows are written.
        q.x.set(0, 10, 3, 5, NAN);
        refused(offsets({0, 1, 17, 18, 18, 19, 20}), LLMKIT_ERROR_NON_FINITE, "q[10, 3, 5] = nan");
        q.x.set(0, 10, 3, 5, 0.5);
        // Float offsets.
        std::vector<float> fo = {0, 1, 17, 18, 18, 19, 20};
        int64_t fs[1] = {7};
        llmkit_tensor ft = host_tensor(fo.data(), llmkit_dtype LLMKIT_DTYPE_F32, 1, fs);
        llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
        o.cu_seqlens_q = &ft;
        CHECK(call(q.c(), out.c(), &o) == LLMKIT_ERROR_DTYPE);
        CHECK(std::string(llmkit_last_error_message()).find("options.cu_seqlens_q") != std::string::npos);
        // A batch that brings no queries: nothing to do, the output stays.
        packed none = make_packed(dtype::f32, 0, k_hq, k_d, layout::compact, nullptr);
        offsets zeros({0, 0, 0, 0, 0, 0, 0});
        o.cu_seqlens_q = zeros.c();
        CHECK(call(none.c(), none.c(), &o) == LLMKIT_OK);
        // An empty batch.
        offsets just0({0});
        o.cu_seqlens_q = just0.c();
        CHECK(call(none.c(), none.c(), &o, 0) == LLMKIT_OK);
        CHECK(out.x.bytes == before);
    }
}

TEST_CASE("kv packed: an options struct from before cu_seqlens_q ignores the bytes past its size", "[kv][packed]") {
    kv_test::cache c(true, 1, k_hkv, k_d, LLMKIT_KV_F32, 512, 8);
    std::mt19937 rng(3);
    const std::vector<int32_t> ids = fill(c, rng);
    tensor4 q = make(dtype::f32, 1, 1, k_hq, k_d, layout::compact, &rng), out = q, want = q;
    llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    REQUIRE(c.attention(0, q, {ids[0]}, want, &o) == LLMKIT_OK);
    o.struct_size = uint32_t(offsetof(llmkit_kv_attention_options, cu_seqlens_q));
    o.cu_seqlens_q = reinterpret_cast<const llmkit_tensor *>(uintptr_t(1));  // never read
    REQUIRE(c.attention(0, q, {ids[0]}, out, &o) == LLMKIT_OK);
    CHECK(kv_test::same_bits(out, want));
}

TEST_CASE("kv packed: the C++ face gives the C results and throws on errors", "[kv][packed]") {
    std::mt19937 rng(21);
    std::normal_distribution<float> nd;
    auto randoms = [&](int64_t n) {
        std::vector<float> x(static_cast<size_t>(n));
        for (float &e : x) e = nd(rng);
        return x;
    };
    llmkit_paged_kv_cache_options co = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
    co.n_kv_heads = k_hkv, co.head_dim = k_d, co.n_blocks = 16;
    llmkit::paged_kv_cache cache(co);
    const std::vector<int64_t> lens = {50, 20};
    std::vector<int32_t> ids;
    for (const int64_t n : lens) {
        ids.push_back(cache.seq_new());
        const std::vector<float> k = randoms(n * k_hkv * k_d), v = randoms(n * k_hkv * k_d);
        cache.append(0, ids.back(), llmkit::f32(k.data(), {n, k_hkv, k_d}), llmkit::f32(v.data(), {n, k_hkv, k_d}));
    }
    // A decode of the first sequence and a chunk of the second's last 6 tokens.
    const std::vector<float> q = randoms(7 * k_hq * k_d);
    const std::vector<int32_t> cu = {0, 1, 7};
    std::vector<float> packed(q.size()), alone(q.size());
    const llmkit::tensor_ref offsets = llmkit::i32(cu.data(), {3});
    llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    o.cu_seqlens_q = offsets.get();
    cache.attention(0, llmkit::f32(q.data(), {7, k_hq, k_d}), ids, llmkit::f32(packed.data(), {7, k_hq, k_d}), &o);
    for (size_t b = 0; b < 2; ++b) {
        const int64_t n = cu[b + 1] - cu[b];
        REQUIRE(llmkit_paged_kv_cache_attention(cache.get(), 0, llmkit::f32(q.data() + cu[b] * k_hq * k_d, {1, n, k_hq, k_d}).get(),
                                                &ids[b], 1, llmkit::f32(alone.data() + cu[b] * k_hq * k_d, {1, n, k_hq, k_d}).get(),
                                                nullptr) == LLMKIT_OK);
    }
    CHECK(packed == alone);
    const std::vector<int32_t> too_many = {0, 1, 2, 7};
    const llmkit::tensor_ref bad = llmkit::i32(too_many.data(), {4});
    o.cu_seqlens_q = bad.get();
    CHECK_THROWS_WITH(cache.attention(0, llmkit::f32(q.data(), {7, k_hq, k_d}), ids, llmkit::f32(packed.data(), {7, k_hq, k_d}), &o),
                      Catch::Contains("must hold B + 1 = 3"));
}
