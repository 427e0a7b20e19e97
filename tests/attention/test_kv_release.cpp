// Releasing the blocks a sliding window has left behind
// (llmkit_paged_kv_cache_seq_release_before): a paged sequence of a model whose
// every layer attends through a window keeps about window + block_size tokens.
// Attention over what is left must give the bits of a cache that kept every
// token (the contiguous cache, same window) and meet the float64 reference, in
// every phase (decode, a prefill chunk, split-KV parts, caller-made tables);
// a window that would reach a released token, a truncate into the released
// tokens and a release past the shortest layer are errors that change nothing;
// forks, truncation to 0 and freeing give back exactly the blocks no one holds;
// a save keeps the tokens held (format version 2) and loads into paged caches
// whose block_size divides the tokens released.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kv_helpers.hpp"
#include "llmkit/llmkit.hpp"

using namespace attn_test;
using namespace kv_test;

namespace {

int64_t release(cache &c, int32_t s, int64_t n) {
    int64_t first = -1;
    const llmkit_status st = llmkit_paged_kv_cache_seq_release_before(c.p, s, n, &first);
    INFO(llmkit_last_error_message());
    REQUIRE(st == LLMKIT_OK);
    return first;
}

int64_t released_entries(const std::vector<int32_t> &t) { return std::count(t.begin(), t.end(), -1); }

llmkit_kv_attention_options window_options(int64_t window, int64_t split = 0) {
    llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
    o.window = window;
    o.split_keys = split;
    return o;
}

}  // namespace

TEST_CASE("release_before: attention over the tokens held gives the bits of a cache that kept them all",
          "[paged][window]") {
    constexpr int64_t W = 40, Sq = 4;  // a window of 40 keys; decodes and chunks of 4 queries
    for (int32_t t : {LLMKIT_KV_F32, LLMKIT_KV_BF16, LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3})
        for (int32_t bs : {1, 7, 16}) {
            cache flat(false, 2, 2, 64, t, 400, 4), paged(true, 2, 2, 64, t, 400, 4, bs);
            std::mt19937 r1(uint32_t(t * 31 + bs)), r2(uint32_t(t * 31 + bs));
            const int64_t lens[] = {300, 45, 129};
            std::vector<seq_data> d(3), scratch(6);
            std::vector<int32_t> ids;
            const int64_t free_before = paged.free_blocks();
            int64_t blocks_released = 0;
            for (int i = 0; i < 3; ++i) {
                ids.push_back(flat.seq_new());
                REQUIRE(paged.seq_new() == ids.back());
                for (int32_t layer = 0; layer < 2; ++layer) {
                    flat.append(layer, ids.back(), lens[i], r1, layer == 0 ? d[size_t(i)] : scratch[size_t(i)]);
                    paged.append(layer, ids.back(), lens[i], r2, scratch[size_t(3 + i)]);
                }
                // What the first of the last Sq queries no longer sees.
                const int64_t n = std::max<int64_t>(0, lens[i] - Sq - W + 1);
                const int64_t first = release(paged, ids.back(), n);
                CHECK(first == n / bs * bs);
                const auto table = paged.table(ids.back());
                CHECK(released_entries(table) == n / bs);
                CHECK(std::all_of(table.begin() + n / bs, table.end(), [](int32_t b) { return b >= 0; }));
                blocks_released += n / bs;
                CHECK(release(paged, ids.back(), 0) == first);  // asking releases nothing more
            }
            int64_t held = 0;
            for (int64_t len : lens) held += (len + bs - 1) / bs;
            CHECK(paged.free_blocks() == free_before - held + blocks_released);

            std::mt19937 rq(5);
            for (int64_t rows : {int64_t(1), Sq})
                for (int64_t split : {0, 16}) {
                    tensor4 q = make(dtype::f32, 3, rows, 8, 64, layout::compact, &rq);
                    tensor4 o1 = make(dtype::f32, 3, rows, 8, 64, layout::compact, nullptr), o2 = o1;
                    const llmkit_kv_attention_options o = window_options(W, split);
                    INFO("cache " << kv_name(t) << " block " << bs << " queries " << rows << " split " << split);
                    REQUIRE(flat.attention(0, q, ids, o1, &o) == LLMKIT_OK);
                    REQUIRE(paged.attention(0, q, ids, o2, &o) == LLMKIT_OK);
                    CHECK(same_bits(o1, o2));
                    if (t == LLMKIT_KV_F32) {
                        ref_options ro;
                        ro.window = W;
                        bool ok = false;
                        max_error(o2, reference(q, {&d[0], &d[1], &d[2]}, 2, ro), 4e-6, 1e-5, &ok);
                        CHECK(ok);
                    }
                }
            // Caller-made tables: block_table()'s rows, -1s included, give the same bits.
            const int64_t width = 320;  // 300 blocks of 1
            std::vector<int32_t> tables(size_t(3 * width), 0);
            std::vector<int64_t> seq_lens;
            for (int i = 0; i < 3; ++i) {
                const auto tb = paged.table(ids[size_t(i)]);
                std::copy(tb.begin(), tb.end(), tables.begin() + i * width);
                seq_lens.push_back(lens[i]);
            }
            const int64_t tshape[2] = {3, width}, lshape[1] = {3};
            llmkit_tensor tt = host_tensor(tables.data(), llmkit_dtype LLMKIT_DTYPE_I32, 2, tshape);
            llmkit_tensor lt = host_tensor(seq_lens.data(), llmkit_dtype LLMKIT_DTYPE_I64, 1, lshape);
            tensor4 q = make(dtype::f32, 3, 1, 8, 64, layout::compact, &rq), o1 = q, o2 = q;
            const llmkit_kv_attention_options o = window_options(W);
            REQUIRE(flat.attention(1, q, ids, o1, &o) == LLMKIT_OK);
            REQUIRE(llmkit_paged_kv_cache_attention_tables(paged.p, 1, q.c(), &tt, &lt, o2.c(), &o) == LLMKIT_OK);
            CHECK(same_bits(o1, o2));
        }
}

TEST_CASE("release_before: a sequence keeps decoding in a window of W with about W + block_size tokens held",
          "[paged][window]") {
    constexpr int64_t W = 24, bs = 8;
    std::mt19937 r1(11), r2(11), rq(12);
    cache flat(false, 1, 2, 32, LLMKIT_KV_BF16, 300, 2), paged(true, 1, 2, 32, LLMKIT_KV_BF16, 300, 2, bs, 6);
    seq_data d1, d2;
    const int32_t s = flat.seq_new();
    REQUIRE(paged.seq_new() == s);
    // A pool of 6 blocks (48 tokens) serves 200 tokens of a sequence.
    for (int64_t step = 0; step < 200; ++step) {
        flat.append(0, s, 1, r1, d1);
        paged.append(0, s, 1, r2, d2);
        tensor4 q = make(dtype::f32, 1, 1, 4, 32, layout::compact, &rq);
        tensor4 o1 = make(dtype::f32, 1, 1, 4, 32, layout::compact, nullptr), o2 = o1;
        const llmkit_kv_attention_options o = window_options(W);
        REQUIRE(flat.attention(0, q, {s}, o1, &o) == LLMKIT_OK);
        REQUIRE(paged.attention(0, q, {s}, o2, &o) == LLMKIT_OK);
        INFO("step " << step);
        REQUIRE(same_bits(o1, o2));
        // The next query (at position step + 1) sees keys from step + 2 - W on.
        release(paged, s, std::max<int64_t>(0, step + 2 - W));
        CHECK(paged.free_blocks() >= 6 - (W + 2 * bs - 1) / bs);
    }
    CHECK(paged.length(s) == 200);
    CHECK(paged.table(s).size() == 25);  // positions unchanged: the table still spans them
}

TEST_CASE("release_before: windows that reach released tokens, truncation into them and bad counts are errors",
          "[paged][window][errors]") {
    std::mt19937 rng(3);
    cache c(true, 2, 1, 32, LLMKIT_KV_F32, 256, 4, 16, 40);
    seq_data d, scratch;
    const int32_t s = c.seq_new();
    c.append(0, s, 100, rng, d);
    c.append(1, s, 90, rng, scratch);  // layer 1 is behind

    expect_error(llmkit_paged_kv_cache_seq_release_before(c.p, s, 91, nullptr), LLMKIT_ERROR_OUT_OF_RANGE,
           "n = 91 is outside 0..90: sequence 0 holds 90 tokens in layer 1");
    expect_error(llmkit_paged_kv_cache_seq_release_before(c.p, s, -1, nullptr), LLMKIT_ERROR_OUT_OF_RANGE, "n = -1");
    expect_error(llmkit_paged_kv_cache_seq_release_before(c.p, 3, 0, nullptr), LLMKIT_ERROR_OUT_OF_RANGE, "seq");
    expect_error(llmkit_paged_kv_cache_seq_release_before(nullptr, s, 0, nullptr), LLMKIT_ERROR_NULL_POINTER, "cache");
    CHECK(released_entries(c.table(s)) == 0);

    const int64_t free0 = c.free_blocks();
    REQUIRE(llmkit_paged_kv_cache_seq_release_before(c.p, s, 70, nullptr) == LLMKIT_OK);  // blocks 0..3: 64 tokens
    CHECK(c.free_blocks() == free0 + 4);
    tensor4 q = make(dtype::f32, 1, 1, 2, 32, layout::compact, &rng), out = q, before = q;
    // Layer 0 (100 tokens): its query at 99 may see from 64 on: a window of at most 36.
    llmkit_kv_attention_options o = window_options(36);
    REQUIRE(c.attention(0, q, {s}, before, &o) == LLMKIT_OK);
    o = window_options(37);
    out = before;
    expect_error(c.attention(0, q, {s}, out, &o), LLMKIT_ERROR_OUT_OF_RANGE,
           "with window = 37 its query at position 99 sees keys from 63 on (a window of at most 36");
    CHECK(same_bits(out, before));  // untouched
    expect_error(c.attention(0, q, {s}, out, nullptr), LLMKIT_ERROR_OUT_OF_RANGE, "with no window");
    o = window_options(0);
    o.causal = 0;
    expect_error(c.attention(0, q, {s}, out, &o), LLMKIT_ERROR_OUT_OF_RANGE, "with no window");
    // Layer 1 (90 tokens): its query at 89 may see from 64: at most 26.
    o = window_options(27);
    expect_error(c.attention(1, q, {s}, out, &o), LLMKIT_ERROR_OUT_OF_RANGE, "a window of at most 26");
    o = window_options(26);
    CHECK(c.attention(1, q, {s}, out, &o) == LLMKIT_OK);
    // Packed queries: checked before any sequence's rows are written.
    {
        const int32_t s2 = c.seq_new();
        seq_data d2, d3;
        c.append(0, s2, 20, rng, d2);
        tensor4 qp = make(dtype::f32, 1, 3, 2, 32, layout::compact, &rng);  // [Tq = 3, Hq, D] as [1, 3, ...]
        const int64_t qshape[3] = {3, 2, 32};
        std::vector<float> packed_out(3 * 2 * 32, 7.0f);
        llmkit_tensor qt = host_tensor(qp.bytes.data(), llmkit_dtype LLMKIT_DTYPE_F32, 3, qshape);
        llmkit_tensor ot = host_tensor(packed_out.data(), llmkit_dtype LLMKIT_DTYPE_F32, 3, qshape);
        const int32_t cu[3] = {0, 2, 3};  // s2 brings 2 queries, s one
        const int64_t cshape[1] = {3};
        llmkit_tensor ct = host_tensor(const_cast<int32_t *>(cu), llmkit_dtype LLMKIT_DTYPE_I32, 1, cshape);
        const int32_t both[2] = {s2, s};
        o = window_options(37);
        o.cu_seqlens_q = &ct;
        expect_error(llmkit_paged_kv_cache_attention(c.p, 0, &qt, both, 2, &ot, &o), LLMKIT_ERROR_OUT_OF_RANGE,
               "sequence 1 of the batch");
        CHECK(std::all_of(packed_out.begin(), packed_out.end(), [](float x) { return x == 7.0f; }));
        o.window = 36;
        CHECK(llmkit_paged_kv_cache_attention(c.p, 0, &qt, both, 2, &ot, &o) == LLMKIT_OK);
        REQUIRE(c.free_seq(s2) == LLMKIT_OK);
    }
    // Caller-made tables: -1 only before the first block held.
    {
        auto tb = c.table(s);
        std::vector<int64_t> lens = {100};
        const int64_t tshape[2] = {1, int64_t(tb.size())}, lshape[1] = {1};
        llmkit_tensor tt = host_tensor(tb.data(), llmkit_dtype LLMKIT_DTYPE_I32, 2, tshape);
        llmkit_tensor lt = host_tensor(lens.data(), llmkit_dtype LLMKIT_DTYPE_I64, 1, lshape);
        o = window_options(37);
        expect_error(llmkit_paged_kv_cache_attention_tables(c.p, 0, q.c(), &tt, &lt, out.c(), &o), LLMKIT_ERROR_OUT_OF_RANGE,
               "a window of at most 36");
        o = window_options(36);
        REQUIRE(llmkit_paged_kv_cache_attention_tables(c.p, 0, q.c(), &tt, &lt, out.c(), &o) == LLMKIT_OK);
        CHECK(same_bits(out, before));
        tb[5] = -1;
        expect_error(llmkit_paged_kv_cache_attention_tables(c.p, 0, q.c(), &tt, &lt, out.c(), &o), LLMKIT_ERROR_OUT_OF_RANGE,
               "block_tables[0, 5] = -1 points outside the pool");
        tb[5] = c.table(s)[5];
        tb[1] = 0;  // a held block among released ones: -1 is not "released" after it
        o = window_options(36);
        expect_error(llmkit_paged_kv_cache_attention_tables(c.p, 0, q.c(), &tt, &lt, out.c(), &o), LLMKIT_ERROR_OUT_OF_RANGE,
               "block_tables[0, 2] = -1");
    }
    // Truncation: into the released tokens no; to 0 or past them yes.
    expect_error(llmkit_paged_kv_cache_seq_truncate(c.p, s, 30), LLMKIT_ERROR_OUT_OF_RANGE, "truncate it to 0 or to at least 64");
    CHECK(c.length(s, 0) == 100);
    REQUIRE(llmkit_paged_kv_cache_seq_truncate(c.p, s, 80) == LLMKIT_OK);
    CHECK(released_entries(c.table(s)) == 4);
    CHECK(c.table(s).size() == 5);
    REQUIRE(llmkit_paged_kv_cache_seq_truncate(c.p, s, 0) == LLMKIT_OK);
    CHECK(c.table(s).empty());
    CHECK(c.free_blocks() == 40);
    // An emptied sequence starts over with nothing released.
    seq_data fresh;
    c.append(0, s, 20, rng, fresh);
    c.append(1, s, 20, rng, scratch);
    CHECK(release(c, s, 0) == 0);
    tensor4 q1 = make(dtype::f32, 1, 1, 2, 32, layout::compact, &rng), o1 = q1;
    REQUIRE(c.attention(0, q1, {s}, o1, nullptr) == LLMKIT_OK);
    bool ok = false;
    max_error(o1, reference(q1, {&fresh}, 1, ref_options{}), 4e-6, 1e-5, &ok);
    CHECK(ok);
}

TEST_CASE("release_before: forks share what is left; loads and frees give back exactly the blocks no one holds",
          "[paged][window]") {
    std::mt19937 rng(8);
    cache c(true, 1, 2, 32, LLMKIT_KV_INT8, 256, 4, 16, 30);
    seq_data d;
    const int32_t parent = c.seq_new();
    c.append(0, parent, 100, rng, d);  // 7 blocks
    CHECK(c.free_blocks() == 23);
    int32_t child = -1;
    REQUIRE(c.fork(parent, &child) == LLMKIT_OK);
    // The parent lets its first 64 go; the child still holds those blocks.
    CHECK(release(c, parent, 64) == 64);
    CHECK(c.free_blocks() == 23);
    tensor4 q = make(dtype::f32, 1, 1, 4, 32, layout::compact, &rng), o1 = q, o2 = q;
    REQUIRE(c.attention(0, q, {child}, o1, nullptr) == LLMKIT_OK);  // every key, no window
    bool ok = false;
    const double tol = int8_decode_in_integers() ? k_int8_int_abs : 4e-6;
    max_error(o1, reference(q, {&d}, 2, ref_options{}), tol, 1e-5, &ok);
    CHECK(ok);
    // A fork of the released parent shares its table, -1s included.
    int32_t grandchild = -1;
    REQUIRE(c.fork(parent, &grandchild) == LLMKIT_OK);
    CHECK(c.table(grandchild) == c.table(parent));
    CHECK(release(c, grandchild, 0) == 64);
    // The child lets them go too: now they are free.
    CHECK(release(c, child, 64) == 64);
    CHECK(c.free_blocks() == 27);
    llmkit_kv_attention_options o = window_options(36);
    REQUIRE(c.attention(0, q, {parent}, o1, &o) == LLMKIT_OK);
    REQUIRE(c.attention(0, q, {grandchild}, o2, &o) == LLMKIT_OK);
    CHECK(same_bits(o1, o2));
    // A load replaces a released sequence's table with blocks of its own.
    cache src(true, 1, 2, 32, LLMKIT_KV_INT8, 256, 1, 16, 10);
    seq_data ds;
    const int32_t ss = src.seq_new();
    src.append(0, ss, 40, rng, ds);
    size_t n = 0;
    REQUIRE(llmkit_paged_kv_cache_seq_save(src.p, ss, nullptr, 0, &n) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    std::vector<uint8_t> bytes(n);
    REQUIRE(llmkit_paged_kv_cache_seq_save(src.p, ss, bytes.data(), n, &n) == LLMKIT_OK);
    REQUIRE(llmkit_paged_kv_cache_seq_load(c.p, grandchild, bytes.data(), n) == LLMKIT_OK);
    CHECK(released_entries(c.table(grandchild)) == 0);
    CHECK(c.table(grandchild).size() == 3);
    REQUIRE(c.attention(0, q, {grandchild}, o2, nullptr) == LLMKIT_OK);
    max_error(o2, reference(q, {&ds}, 2, ref_options{}), tol, 1e-5, &ok);
    CHECK(ok);
    for (int32_t s : {parent, child, grandchild}) REQUIRE(c.free_seq(s) == LLMKIT_OK);
    CHECK(c.free_blocks() == 30);
    CHECK(c.memory() == 0);
}

TEST_CASE("release_before: the C++ face returns the first token held and throws for a bad count", "[paged][window]") {
    std::mt19937 rng(13);
    llmkit_paged_kv_cache_options po = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
    po.n_kv_heads = 2, po.head_dim = 64, po.block_size = 8, po.n_blocks = 8, po.max_sequences = 2;
    llmkit::paged_kv_cache pc(po);
    std::vector<float> k(size_t(30 * 2 * 64)), v(k.size());
    std::normal_distribution<float> nd;
    for (float &x : k) x = nd(rng);
    for (float &x : v) x = nd(rng);
    const int32_t s = pc.seq_new();
    pc.append(0, s, llmkit::f32(k.data(), {30, 2, 64}), llmkit::f32(v.data(), {30, 2, 64}));
    CHECK(pc.free_blocks() == 4);
    CHECK(pc.release_before(s, 20) == 16);
    CHECK(pc.free_blocks() == 6);
    CHECK(pc.block_table(s) == std::vector<int32_t>{-1, -1, 2, 3});
    CHECK(pc.release_before(s, 0) == 16);
    bool threw = false;
    try {
        pc.release_before(s, 31);
    } catch (const llmkit::error &e) {
        threw = e.status() == LLMKIT_ERROR_OUT_OF_RANGE;
    }
    CHECK(threw);
}

TEST_CASE("release_before: a save holds the tokens held and loads into paged caches whose block divides the released",
          "[paged][window][kv]") {
    for (int32_t t : {LLMKIT_KV_F32, LLMKIT_KV_BF16, LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3}) {
        INFO("cache " << kv_name(t));
        std::mt19937 rng(uint32_t(60 + t));
        cache src(true, 2, 2, 32, t, 256, 2, 16);
        seq_data d, scratch;
        const int32_t s = src.seq_new();
        src.append(0, s, 100, rng, d);
        src.append(1, s, 90, rng, scratch);  // layer 1 is behind
        const std::vector<uint8_t> whole = src.save(s);
        REQUIRE(release(src, s, 70) == 64);

        // Version 2: the token counts, then the first token held, then the rows of tokens 64.. only.
        const std::vector<uint8_t> bytes = src.save(s);
        uint32_t version = 0;
        int64_t first = 0;
        std::memcpy(&version, bytes.data() + 8, 4);
        std::memcpy(&first, bytes.data() + 40 + 2 * 8, 8);
        CHECK(version == 2);
        CHECK(first == 64);
        const size_t es = t == LLMKIT_KV_F32 ? 4 : t == LLMKIT_KV_BF16 ? 2 : 1;
        const size_t row = 2 * (32 * es + (t >= LLMKIT_KV_INT8 ? 4 : 0));  // a token's K and V in one kv head
        CHECK(bytes.size() == 40 + 2 * 8 + 8 + 2 * row * (100 - 64 + 90 - 64));
        CHECK(whole.size() == 40 + 2 * 8 + 2 * row * (100 + 90));  // version 1 before the release
        CHECK(whole[8] == 1);

        tensor4 q = make(dtype::f32, 1, 1, 4, 32, layout::compact, &rng), want = q, got = q;
        const llmkit_kv_attention_options o = window_options(36);  // the query at 99 sees 64..99
        REQUIRE(src.attention(0, q, {s}, want, &o) == LLMKIT_OK);
        for (int32_t bs : {8, 16, 32, 64}) {
            INFO("into blocks of " << bs);
            cache dst(true, 2, 2, 32, t, 256, 2, bs);
            const int32_t u = dst.seq_new();
            seq_data other;
            dst.append(0, u, 30, rng, other);  // replaced by the load
            const int64_t free_before = dst.free_blocks();
            REQUIRE(dst.load(u, bytes) == LLMKIT_OK);
            CHECK(dst.length(u, 0) == 100);
            CHECK(dst.length(u, 1) == 90);
            const auto table = dst.table(u);
            CHECK(released_entries(table) == 64 / bs);
            CHECK(int64_t(table.size()) == (100 + bs - 1) / bs);
            CHECK(dst.free_blocks() == free_before + (30 + bs - 1) / bs - (int64_t(table.size()) - 64 / bs));
            REQUIRE(dst.attention(0, q, {u}, got, &o) == LLMKIT_OK);
            CHECK(same_bits(got, want));
            CHECK(dst.save(u) == bytes);  // the same bytes back
            // The released tokens stay released: a wider window is refused.
            const llmkit_kv_attention_options wide = window_options(37);
            expect_error(dst.attention(0, q, {u}, got, &wide), LLMKIT_ERROR_OUT_OF_RANGE, "a window of at most 36");
            // Decoding goes on from position 100 with the source's bits.
            std::mt19937 r1(9), r2(9);
            seq_data a1, a2;
            src.append(0, s, 1, r1, a1);
            dst.append(0, u, 1, r2, a2);
            tensor4 o1 = q, o2 = q;
            REQUIRE(src.attention(0, q, {s}, o1, &o) == LLMKIT_OK);
            REQUIRE(dst.attention(0, q, {u}, o2, &o) == LLMKIT_OK);
            CHECK(same_bits(o1, o2));
            REQUIRE(llmkit_paged_kv_cache_seq_truncate(src.p, s, 100) == LLMKIT_OK);
            REQUIRE(dst.free_seq(u) == LLMKIT_OK);
            CHECK(dst.memory() == 0);
        }
        // A block size that does not divide 64, and the contiguous cache, cannot hold the released tokens.
        for (int32_t bs : {7, 48, 128}) {
            cache dst(true, 2, 2, 32, t, 256, 2, bs);
            const int32_t u = dst.seq_new();
            expect_error(dst.load(u, bytes), LLMKIT_ERROR_UNSUPPORTED,
                         ("not a whole number of this cache's blocks of " + std::to_string(bs)).c_str());
            CHECK(dst.length(u) == 0);
        }
        cache flat(false, 2, 2, 32, t, 256, 2);
        const int32_t u = flat.seq_new();
        expect_error(flat.load(u, bytes), LLMKIT_ERROR_UNSUPPORTED, "a contiguous cache holds every token");
        // Refused from the header alone, before the rows are sized or read.
        const std::vector<uint8_t> head(bytes.begin(), bytes.begin() + 64);
        expect_error(flat.load(u, head), LLMKIT_ERROR_UNSUPPORTED, "a contiguous cache holds every token");
        REQUIRE(flat.load(u, whole) == LLMKIT_OK);  // version 1 still loads anywhere

        // Damaged version 2 bytes.
        cache dst(true, 2, 2, 32, t, 256, 2, 16);
        const int32_t v = dst.seq_new();
        std::vector<uint8_t> b = bytes;
        const auto put_first = [&](int64_t x) { b = bytes, std::memcpy(b.data() + 56, &x, 8); };
        put_first(0);
        expect_error(dst.load(v, b), LLMKIT_ERROR_FORMAT, "version 2's first token held is 0; it must lie in 1..90");
        put_first(91);
        expect_error(dst.load(v, b), LLMKIT_ERROR_FORMAT, "first token held is 91");
        put_first(-64);
        expect_error(dst.load(v, b), LLMKIT_ERROR_FORMAT, "first token held is -64");
        put_first(48);  // more tokens held than the rows saved
        expect_error(dst.load(v, b), LLMKIT_ERROR_FORMAT, "(truncated?)");
        b = bytes, b.resize(60);
        expect_error(dst.load(v, b), LLMKIT_ERROR_FORMAT, "and its first token held (truncated?)");
        b = bytes, b[8] = 1;  // read as version 1: the first token held is read as rows
        expect_error(dst.load(v, b), LLMKIT_ERROR_FORMAT, "saved sequence");
        CHECK(dst.length(v) == 0);
    }
}
