// The paged KV cache: the same bits as the contiguous cache (the kernel walks
// block tables in the same tile order), fork sharing blocks with
// copy-on-write, the free list and reference counts, caller-made block
// tables, and its errors (pool exhausted, past the longest sequence, bad
// sequence ids, block ids outside the pool).
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "kv_helpers.hpp"

using namespace attn_test;
using namespace kv_test;

TEST_CASE("paged cache: the same bits as the contiguous cache, any block size, every dtype and phase", "[paged]") {
    for (int32_t t : {LLMKIT_KV_F32, LLMKIT_KV_BF16, LLMKIT_KV_F16, LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3, LLMKIT_KV_FP8_E5M2})
        for (int32_t bs : {1, 7, 16, 64, 100}) {
            cache flat(false, 1, 2, 80, t, 600, 4), paged(true, 1, 2, 80, t, 600, 4, bs);
            std::mt19937 r1(uint32_t(t * 10 + bs)), r2(uint32_t(t * 10 + bs));
            std::vector<seq_data> d1(3), d2(3);
            const int64_t lens[] = {300, 1, 77};
            std::vector<int32_t> ids;
            for (int i = 0; i < 3; ++i) {
                ids.push_back(flat.seq_new());
                REQUIRE(paged.seq_new() == ids.back());
                // In two appends, so paged sequences start mid-block.
                flat.append(0, ids.back(), lens[i] / 2 + 1, r1, d1[size_t(i)]);
                paged.append(0, ids.back(), lens[i] / 2 + 1, r2, d2[size_t(i)]);
                flat.append(0, ids.back(), lens[i] - lens[i] / 2 - 1, r1, d1[size_t(i)]);
                paged.append(0, ids.back(), lens[i] - lens[i] / 2 - 1, r2, d2[size_t(i)]);
            }
            std::mt19937 rq(7);
            for (int64_t Sq : {1, 1000}) {
                const int64_t sq = Sq == 1000 ? 1 : Sq;  // prefill: one sequence, all its tokens
                const std::vector<int32_t> use = Sq == 1000 ? std::vector<int32_t>{ids[0]} : ids;
                const int64_t rows = Sq == 1000 ? lens[0] : sq;
                tensor4 q = make(dtype::f32, int64_t(use.size()), rows, 8, 80, layout::compact, &rq);
                tensor4 o1 = make(dtype::f32, int64_t(use.size()), rows, 8, 80, layout::compact, nullptr), o2 = o1;
                for (int64_t split : {0, 64}) {
                    llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
                    o.split_keys = split;
                    REQUIRE(flat.attention(0, q, use, o1, &o) == LLMKIT_OK);
                    REQUIRE(paged.attention(0, q, use, o2, &o) == LLMKIT_OK);
                    INFO("cache " << kv_name(t) << " block " << bs << " queries " << rows << " split " << split);
                    CHECK(same_bits(o1, o2));
                }
            }
        }
}

TEST_CASE("paged cache: fork shares blocks until written; copy-on-write keeps the parent intact", "[paged]") {
    for (int32_t t : {LLMKIT_KV_F32, LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3}) {
        std::mt19937 rng(4);
        cache c(true, 2, 2, 64, t, 256, 4, 16, 40);
        seq_data pd;
        const int32_t parent = c.seq_new();
        for (int32_t layer = 0; layer < 2; ++layer) {
            seq_data tmp;
            c.append(layer, parent, 40, rng, layer == 0 ? pd : tmp);  // 2.5 blocks
        }
        const uint64_t block_bytes = c.memory() / 3;
        CHECK(c.memory() == 3 * block_bytes);
        CHECK(c.free_blocks() == 37);
        tensor4 q = make(dtype::f32, 1, 1, 4, 64, layout::compact, &rng);
        tensor4 before = make(dtype::f32, 1, 1, 4, 64, layout::compact, nullptr), after = before;
        REQUIRE(c.attention(0, q, {parent}, before, nullptr) == LLMKIT_OK);

        int32_t child = -1;
        REQUIRE(c.fork(parent, &child) == LLMKIT_OK);
        CHECK(c.memory() == 3 * block_bytes);  // nothing copied
        CHECK(c.free_blocks() == 37);
        CHECK(c.table(child) == c.table(parent));
        CHECK(c.length(child, 1) == 40);

        seq_data cd = pd;
        c.append(0, child, 1, rng, cd);  // writes into the shared third block: copied first
        CHECK(c.memory() == 4 * block_bytes);
        const auto tp = c.table(parent), tc = c.table(child);
        CHECK(tp[0] == tc[0]);
        CHECK(tp[1] == tc[1]);
        CHECK(tp[2] != tc[2]);
        c.append(0, child, 1, rng, cd);  // the copy is the child's own now
        CHECK(c.memory() == 4 * block_bytes);

        REQUIRE(c.attention(0, q, {parent}, after, nullptr) == LLMKIT_OK);
        CHECK(same_bits(before, after));  // the parent never saw the child's tokens
        CHECK(c.length(parent, 0) == 40);
        // The parent's own next token goes into its (now unshared) block in place.
        seq_data pd2 = pd;
        c.append(0, parent, 1, rng, pd2);
        CHECK(c.memory() == 4 * block_bytes);
        // Both against the reference, in one batch.
        tensor4 q2 = make(dtype::f32, 2, 2, 4, 64, layout::compact, &rng), o2 = q2;
        REQUIRE(c.attention(0, q2, {parent, child}, o2, nullptr) == LLMKIT_OK);
        bool ok = false;
        const bool in_integers = t == LLMKIT_KV_INT8 && int8_decode_in_integers();  // 4 rows per kv head: decode
        max_error(o2, reference(q2, {&pd2, &cd}, 2, ref_options{}), in_integers ? k_int8_int_abs : 4e-6, 1e-5, &ok);
        CHECK(ok);
        // The copied block kept layer 1 too: the child's layer 1 equals the parent's.
        tensor4 l1p = make(dtype::f32, 1, 1, 4, 64, layout::compact, nullptr), l1c = l1p;
        REQUIRE(c.attention(1, q, {parent}, l1p, nullptr) == LLMKIT_OK);
        REQUIRE(c.attention(1, q, {child}, l1c, nullptr) == LLMKIT_OK);
        CHECK(same_bits(l1p, l1c));

        // Freeing the parent keeps the blocks the child still holds.
        REQUIRE(c.free_seq(parent) == LLMKIT_OK);
        CHECK(c.memory() == 3 * block_bytes);
        REQUIRE(c.free_seq(child) == LLMKIT_OK);
        CHECK(c.memory() == 0);
        CHECK(c.free_blocks() == 40);
    }
}

TEST_CASE("paged cache: a fork at a block boundary copies nothing", "[paged]") {
    std::mt19937 rng(6);
    cache c(true, 1, 1, 64, LLMKIT_KV_BF16, 256, 4, 16, 10);
    seq_data d;
    const int32_t s = c.seq_new();
    c.append(0, s, 32, rng, d);
    int32_t f = -1;
    REQUIRE(c.fork(s, &f) == LLMKIT_OK);
    c.append(0, f, 3, rng, d);
    CHECK(c.free_blocks() == 7);  // two shared, one new
    const auto tf = c.table(f), ts = c.table(s);
    CHECK(tf.size() == 3);
    CHECK(ts.size() == 2);
}

TEST_CASE("paged cache: caller-made block tables give the same bits; outside the pool is an error", "[paged][errors]") {
    std::mt19937 rng(9);
    cache c(true, 1, 2, 64, LLMKIT_KV_F16, 200, 4, 16, 32);
    std::vector<seq_data> d(2);
    const int32_t a = c.seq_new(), b = c.seq_new();
    c.append(0, a, 50, rng, d[0]);
    c.append(0, b, 130, rng, d[1]);
    const auto ta = c.table(a), tb = c.table(b);
    const int64_t width = 10;
    std::vector<int32_t> tables(size_t(2 * width), 123456);  // garbage past each table's used part
    std::copy(ta.begin(), ta.end(), tables.begin());
    std::copy(tb.begin(), tb.end(), tables.begin() + width);
    std::vector<int64_t> lens = {50, 130};
    const int64_t tshape[2] = {2, width}, lshape[1] = {2};
    llmkit_tensor tt = host_tensor(tables.data(), llmkit_dtype LLMKIT_DTYPE_I32, 2, tshape);
    llmkit_tensor lt = host_tensor(lens.data(), llmkit_dtype LLMKIT_DTYPE_I64, 1, lshape);
    tensor4 q = make(dtype::f32, 2, 1, 4, 64, layout::compact, &rng), o1 = q, o2 = q;
    REQUIRE(c.attention(0, q, {a, b}, o1, nullptr) == LLMKIT_OK);
    REQUIRE(llmkit_paged_kv_cache_attention_tables(c.p, 0, q.c(), &tt, &lt, o2.c(), nullptr) == LLMKIT_OK);
    CHECK(same_bits(o1, o2));

    tables[size_t(width + 3)] = 32;  // the pool has blocks 0..31
    expect_error(llmkit_paged_kv_cache_attention_tables(c.p, 0, q.c(), &tt, &lt, o2.c(), nullptr), LLMKIT_ERROR_OUT_OF_RANGE,
           "block_tables[1, 3] = 32 points outside the pool");
    tables[size_t(width + 3)] = -1;
    expect_error(llmkit_paged_kv_cache_attention_tables(c.p, 0, q.c(), &tt, &lt, o2.c(), nullptr), LLMKIT_ERROR_OUT_OF_RANGE,
           "outside the pool");
    tables[size_t(width + 3)] = tb[3];
    lens[1] = 161;  // 11 blocks' worth, the table has 10
    expect_error(llmkit_paged_kv_cache_attention_tables(c.p, 0, q.c(), &tt, &lt, o2.c(), nullptr), LLMKIT_ERROR_OUT_OF_RANGE,
           "seq_lens[1] = 161");
    lens[1] = 130;
    llmkit_tensor tf = host_tensor(tables.data(), llmkit_dtype LLMKIT_DTYPE_F32, 2, tshape);
    expect_error(llmkit_paged_kv_cache_attention_tables(c.p, 0, q.c(), &tf, &lt, o2.c(), nullptr), LLMKIT_ERROR_DTYPE, "int32");
    const int64_t wrong[2] = {3, width};
    llmkit_tensor tw = host_tensor(tables.data(), llmkit_dtype LLMKIT_DTYPE_I32, 2, wrong);
    expect_error(llmkit_paged_kv_cache_attention_tables(c.p, 0, q.c(), &tw, &lt, o2.c(), nullptr), LLMKIT_ERROR_SHAPE,
           "block_tables");
}

TEST_CASE("paged cache: an exhausted pool, the longest sequence and bad ids are errors that change nothing",
          "[paged][errors]") {
    std::mt19937 rng(2);
    cache c(true, 2, 1, 64, LLMKIT_KV_F32, 64, 3, 16, 6);  // 6 blocks; 4 per sequence at most
    seq_data d;
    const int32_t s = c.seq_new();
    c.append(0, s, 60, rng, d);  // 4 blocks
    CHECK(c.free_blocks() == 2);
    std::vector<float> buf(size_t(40 * 64), 0.25f);
    const int64_t sh5[3] = {5, 1, 64}, sh40[3] = {40, 1, 64};
    llmkit_tensor k5 = rows_tensor(buf.data(), sh5), k40 = rows_tensor(buf.data(), sh40);
    expect_error(c.append_raw(0, s, &k5, &k5), LLMKIT_ERROR_OUT_OF_RANGE, "longest sequence");
    const int32_t t = c.seq_new();
    expect_error(c.append_raw(0, t, &k40, &k40), LLMKIT_ERROR_OUT_OF_MEMORY, "pool is exhausted");
    CHECK(c.length(t) == 0);
    CHECK(c.free_blocks() == 2);
    CHECK(c.table(t).empty());
    // A fork's copy-on-write needs a block too.
    int32_t f = -1;
    REQUIRE(c.fork(s, &f) == LLMKIT_OK);
    REQUIRE(c.append_raw(0, t, &k40, &k40) == LLMKIT_ERROR_OUT_OF_MEMORY);
    const int64_t sh32[3] = {32, 1, 64};
    llmkit_tensor k32 = rows_tensor(buf.data(), sh32);
    REQUIRE(c.append_raw(0, t, &k32, &k32) == LLMKIT_OK);  // takes the last 2 blocks
    CHECK(c.free_blocks() == 0);
    const int64_t sh2[3] = {2, 1, 64};
    llmkit_tensor k2 = rows_tensor(buf.data(), sh2);
    // f's layer 1 is empty, so this writes into block 0, shared with s: a copy.
    expect_error(c.append_raw(1, f, &k2, &k2), LLMKIT_ERROR_OUT_OF_MEMORY, "needs 1 free blocks");
    expect_error(c.append_raw(0, 3, &k2, &k2), LLMKIT_ERROR_OUT_OF_RANGE, "not a live sequence");
    expect_error(c.free_seq(99), LLMKIT_ERROR_OUT_OF_RANGE, "seq = 99");
    int32_t g = -1;
    expect_error(c.fork(5, &g), LLMKIT_ERROR_OUT_OF_RANGE, "src = 5");
    int64_t n = 0;
    int32_t one = 0;
    expect_error(llmkit_paged_kv_cache_seq_block_table(c.p, s, &one, 1, &n), LLMKIT_ERROR_BUFFER_TOO_SMALL, "block table");
    CHECK(n == 4);

    llmkit_paged_kv_cache *p = nullptr;
    llmkit_paged_kv_cache_options o = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
    o.block_size = 0;
    expect_error(llmkit_paged_kv_cache_create(&p, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "block size");
    o = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
    o.n_blocks = int64_t(1) << 33;
    expect_error(llmkit_paged_kv_cache_create(&p, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "INT32_MAX");
    o = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
    o.max_blocks_per_seq = -1;
    expect_error(llmkit_paged_kv_cache_create(&p, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "max_blocks_per_seq");
    o = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
    o.dtype = -1;
    expect_error(llmkit_paged_kv_cache_create(&p, &o), LLMKIT_ERROR_INVALID_ARGUMENT, "dtype");
    CHECK(p == nullptr);
    llmkit_paged_kv_cache_free(nullptr);
}
