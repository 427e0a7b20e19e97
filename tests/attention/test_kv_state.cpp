// Saving and loading a sequence (llmkit_kv_cache_seq_save / _load and the
// paged variants): the bytes move a sequence between caches of both kinds and
// any block size with the same bits, and bad bytes are refused with the
// sequence left as it was.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "llmkit/llmkit.h"
#include "llmkit/llmkit.hpp"

namespace {

constexpr int32_t k_all_dtypes[] = {LLMKIT_KV_F32,  LLMKIT_KV_BF16,     LLMKIT_KV_F16,
                                    LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3, LLMKIT_KV_FP8_E5M2};
constexpr int k_layers = 3;

struct shape {
    int32_t heads, head_dim, v_head_dim;  // v_head_dim 0: head_dim
    bool v_from_k;
};

// A contiguous or a paged cache of one shape, behind one face.
struct cache {
    std::unique_ptr<llmkit::kv_cache> c;
    std::unique_ptr<llmkit::paged_kv_cache> p;

    // block_size 0: contiguous, of `tokens` capacity; else paged with a pool of `tokens` tokens.
    cache(const shape &s, int32_t dtype, int32_t block_size, int32_t tokens) {
        if (block_size == 0) {
            llmkit_kv_cache_options o = LLMKIT_KV_CACHE_OPTIONS_INIT;
            o.n_layers = k_layers, o.n_kv_heads = s.heads, o.head_dim = s.head_dim, o.capacity = tokens;
            o.max_sequences = 3, o.dtype = dtype, o.v_head_dim = s.v_head_dim, o.v_from_k = s.v_from_k;
            c = std::make_unique<llmkit::kv_cache>(o);
        } else {
            llmkit_paged_kv_cache_options o = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
            o.n_layers = k_layers, o.n_kv_heads = s.heads, o.head_dim = s.head_dim, o.block_size = block_size;
            o.n_blocks = (tokens + block_size - 1) / block_size, o.max_sequences = 3, o.dtype = dtype;
            o.v_head_dim = s.v_head_dim, o.v_from_k = s.v_from_k;
            p = std::make_unique<llmkit::paged_kv_cache>(o);
        }
    }
    int32_t seq_new() { return c ? c->seq_new() : p->seq_new(); }
    int32_t fork(int32_t s) { return c ? c->fork(s) : p->fork(s); }
    int64_t length(int32_t s, int32_t layer) { return c ? c->length(s, layer) : p->length(s, layer); }
    std::vector<uint8_t> save(int32_t s) { return c ? c->save(s) : p->save(s); }
    llmkit_status load(int32_t s, const void *data, size_t size) {
        return c ? llmkit_kv_cache_seq_load(c->get(), s, data, size) : llmkit_paged_kv_cache_seq_load(p->get(), s, data, size);
    }
    void append(int32_t layer, int32_t s, const std::vector<float> &k, const std::vector<float> &v, int64_t n,
                const shape &sh) {
        const auto kt = llmkit::f32(k.data(), {n, sh.heads, sh.head_dim});
        const int32_t dv = sh.v_head_dim ? sh.v_head_dim : sh.head_dim;
        if (sh.v_from_k) {
            c ? c->append(layer, s, kt) : p->append(layer, s, kt);
            return;
        }
        const auto vt = llmkit::f32(v.data(), {n, sh.heads, dv});
        c ? c->append(layer, s, kt, vt) : p->append(layer, s, kt, vt);
    }
    // Attention of 3 queries (2 per kv head) over seq in `layer`.
    std::vector<float> attend(int32_t layer, int32_t s, const std::vector<float> &q, const shape &sh) {
        const int32_t dv = sh.v_head_dim ? sh.v_head_dim : sh.head_dim;
        std::vector<float> out(size_t(3 * 2 * sh.heads * dv));
        const auto qt = llmkit::f32(q.data(), {1, 3, 2 * sh.heads, sh.head_dim});
        const auto ot = llmkit::f32(out.data(), {1, 3, 2 * sh.heads, dv});
        c ? c->attention(layer, qt, {s}, ot) : p->attention(layer, qt, {s}, ot);
        return out;
    }
};

std::vector<float> normal(std::mt19937 &rng, size_t n) {
    std::normal_distribution<float> g;
    std::vector<float> x(n);
    for (float &v : x) v = g(rng);
    return x;
}

// Fills seq of `a` with 37, 37 and 20 tokens in its three layers (a zero row
// and a row of large values among them) and returns the queries attention uses.
std::vector<float> fill(cache &a, int32_t seq, const shape &sh, std::mt19937 &rng) {
    const int32_t dv = sh.v_head_dim ? sh.v_head_dim : sh.head_dim;
    const int64_t lens[k_layers] = {37, 37, 20};
    for (int32_t l = 0; l < k_layers; ++l) {
        std::vector<float> k = normal(rng, size_t(lens[l] * sh.heads * sh.head_dim));
        std::vector<float> v = normal(rng, size_t(lens[l] * sh.heads * dv));
        for (int32_t d = 0; d < sh.head_dim; ++d) k[size_t(3 * sh.heads * sh.head_dim + d)] = 0.0f;  // token 3, head 0
        for (int32_t d = 0; d < dv; ++d) v[size_t(5 * sh.heads * dv + d)] *= 1000.0f;
        a.append(l, seq, k, v, lens[l], sh);
    }
    return normal(rng, size_t(3 * 2 * sh.heads * sh.head_dim));
}

const shape k_shapes[] = {{2, 64, 0, false}, {2, 96, 64, false}, {1, 80, 64, true}};

}  // namespace

TEST_CASE("kv cache save/load: every dtype, contiguous and paged of any block size, the same bits", "[kv][paged]") {
    std::mt19937 rng(41);
    for (const shape &sh : k_shapes)
        for (int32_t dtype : k_all_dtypes) {
            INFO("dtype " << dtype << " heads " << sh.heads << " head_dim " << sh.head_dim << " v_head_dim "
                          << sh.v_head_dim << " v_from_k " << sh.v_from_k);
            cache src(sh, dtype, 0, 100);
            const int32_t s = src.seq_new();
            const std::vector<float> q = fill(src, s, sh, rng);
            const std::vector<uint8_t> saved = src.save(s);
            // The documented size: the header, the token counts, each layer's rows (and 8-bit scales).
            const int32_t dv = sh.v_head_dim ? sh.v_head_dim : sh.head_dim;
            const size_t es = dtype == LLMKIT_KV_F32 ? 4 : dtype == LLMKIT_KV_BF16 || dtype == LLMKIT_KV_F16 ? 2 : 1;
            const size_t sc = dtype >= LLMKIT_KV_INT8 ? 4 : 0;
            const size_t per_token = size_t(sh.heads) * ((sh.head_dim * es + sc) + (sh.v_from_k ? 0 : dv * es + sc));
            CHECK(saved.size() == 40 + 8 * k_layers + (37 + 37 + 20) * per_token);
            CHECK(std::memcmp(saved.data(), "LLMKITKV", 8) == 0);
            std::vector<std::vector<float>> want;
            for (int32_t l = 0; l < k_layers; ++l) want.push_back(src.attend(l, s, q, sh));

            // Into a fresh sequence, a sequence holding other tokens, and a fork's
            // child (the parent keeps its shared blocks), of caches of each kind.
            for (int32_t bs : {0, 1, 7, 16}) {
                INFO("block size " << bs << " (0: contiguous)");
                cache dst(sh, dtype, bs, 160);
                const int32_t other = dst.seq_new();
                fill(dst, other, sh, rng);
                const std::vector<uint8_t> other_saved = dst.save(other);
                const int32_t child = dst.fork(other);
                const int32_t fresh = dst.seq_new();
                for (int32_t t : {fresh, child}) {
                    REQUIRE(dst.load(t, saved.data(), saved.size()) == LLMKIT_OK);
                    CHECK(dst.length(t, 0) == 37);
                    CHECK(dst.length(t, 2) == 20);
                    CHECK(dst.save(t) == saved);
                    for (int32_t l = 0; l < k_layers; ++l) CHECK(dst.attend(l, t, q, sh) == want[size_t(l)]);
                }
                CHECK(dst.save(other) == other_saved);
                // And back from this cache into a contiguous one.
                cache back(sh, dtype, 0, 40);
                const int32_t b = back.seq_new();
                const std::vector<uint8_t> again = dst.save(fresh);
                REQUIRE(back.load(b, again.data(), again.size()) == LLMKIT_OK);
                for (int32_t l = 0; l < k_layers; ++l) CHECK(back.attend(l, b, q, sh) == want[size_t(l)]);
            }
        }
}

namespace {

// A load of `bytes` into a sequence of dst fails with `want`, its message
// naming `words`, and leaves the sequence as it was.
void refused(cache &dst, int32_t seq, const std::vector<uint8_t> &bytes, llmkit_status want, const char *words) {
    const std::vector<uint8_t> before = dst.save(seq);
    const llmkit_status st = dst.load(seq, bytes.data(), bytes.size());
    const std::string msg = llmkit_last_error_message();
    INFO("status " << st << ": " << msg);
    CHECK(st == want);
    CHECK(msg.find(words) != std::string::npos);
    CHECK(dst.save(seq) == before);
}

template <class T>
void put(std::vector<uint8_t> &b, size_t at, T x) {
    std::memcpy(b.data() + at, &x, sizeof x);
}

}  // namespace

TEST_CASE("kv cache load: truncated, corrupt and mismatched bytes are refused, the sequence unchanged", "[kv][paged]") {
    std::mt19937 rng(43);
    const shape sh = k_shapes[0];
    for (int32_t dtype : {LLMKIT_KV_F32, LLMKIT_KV_BF16, LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3, LLMKIT_KV_FP8_E5M2}) {
        INFO("dtype " << dtype);
        cache src(sh, dtype, 0, 100);
        const int32_t s = src.seq_new();
        fill(src, s, sh, rng);
        const std::vector<uint8_t> good = src.save(s);
        for (int32_t bs : {0, 16}) {
            INFO("block size " << bs);
            cache dst(sh, dtype, bs, 64);
            const int32_t t = dst.seq_new();
            fill(dst, t, sh, rng);

            // Every truncation (each byte of the header and the counts, then a stride through the rows).
            for (size_t n = 0; n < good.size(); n += n < 80 ? 1 : 97) {
                INFO("first " << n << " bytes");
                refused(dst, t, std::vector<uint8_t>(good.begin(), good.begin() + int64_t(n)), LLMKIT_ERROR_FORMAT,
                        "saved sequence");
            }
            std::vector<uint8_t> b = good;
            b.push_back(0);
            refused(dst, t, b, LLMKIT_ERROR_FORMAT, "bytes after the end");
            b = good, b[3] = 'X';
            refused(dst, t, b, LLMKIT_ERROR_FORMAT, "LLMKITKV");
            b = good, put<uint32_t>(b, 8, 3);
            refused(dst, t, b, LLMKIT_ERROR_FORMAT, "format version 3");
            b = good, put<uint32_t>(b, 8, 2);  // version 2's first token held is then the first row's bytes
            refused(dst, t, b, LLMKIT_ERROR_FORMAT, "version 2's first token held");
            b = good, put<uint32_t>(b, 12, 9);
            refused(dst, t, b, LLMKIT_ERROR_FORMAT, "not an llmkit_kv_dtype");
            b = good, put<uint32_t>(b, 12, dtype == LLMKIT_KV_F32 ? LLMKIT_KV_F16 : LLMKIT_KV_F32);
            refused(dst, t, b, LLMKIT_ERROR_INVALID_ARGUMENT, "cache of the dtype it was saved from");
            b = good, put<uint32_t>(b, 20, 4);
            refused(dst, t, b, LLMKIT_ERROR_INVALID_ARGUMENT, "4 kv heads");
            b = good, put<uint32_t>(b, 16, 2);
            refused(dst, t, b, LLMKIT_ERROR_INVALID_ARGUMENT, "2 layers");
            b = good, put<uint32_t>(b, 32, 2);
            refused(dst, t, b, LLMKIT_ERROR_FORMAT, "flag");
            b = good, put<int64_t>(b, 40, -1);
            refused(dst, t, b, LLMKIT_ERROR_FORMAT, "-1 tokens");
            b = good, put<int64_t>(b, 48, 1000);  // layer 1: more tokens than 64 (and than the bytes hold)
            refused(dst, t, b, LLMKIT_ERROR_OUT_OF_RANGE, "at most 64");
            b = good, put<int64_t>(b, 48, int64_t(1) << 62);
            refused(dst, t, b, LLMKIT_ERROR_OUT_OF_RANGE, "at most 64");
            b = good, put<int64_t>(b, 48, 36);  // one token short of the bytes
            refused(dst, t, b, LLMKIT_ERROR_FORMAT, "bytes after the end");

            // A value no append stores: layer 0's K, head 1, token 2, element 5.
            const size_t es = dtype == LLMKIT_KV_F32 ? 4 : dtype == LLMKIT_KV_BF16 ? 2 : 1;
            const size_t at = 40 + 8 * k_layers + ((1 * 37 + 2) * 64 + 5) * es;
            b = good;
            if (dtype == LLMKIT_KV_F32) put<float>(b, at, std::nanf(""));
            if (dtype == LLMKIT_KV_BF16) put<uint16_t>(b, at, 0x7f80);  // +inf
            if (dtype == LLMKIT_KV_FP8_E4M3) b[at] = 0xff;               // NaN
            if (dtype == LLMKIT_KV_FP8_E5M2) b[at] = 0x7c;               // +inf
            if (dtype != LLMKIT_KV_INT8)
                refused(dst, t, b, LLMKIT_ERROR_FORMAT, "layer 0, K of kv head 1, token 2, element 5 is a NaN or an infinity");
            if (dtype >= LLMKIT_KV_INT8) {  // a negative row scale: V's of layer 0, head 0, token 4
                const size_t v_at = 40 + 8 * k_layers + 2 * 37 * (64 + 4) + 2 * 37 * 64 + 4 * 4;
                b = good, put<float>(b, v_at, -0.5f);
                refused(dst, t, b, LLMKIT_ERROR_FORMAT, "layer 0, V of kv head 0, token 4: its row scale -0.5");
                b = good, put<float>(b, v_at, INFINITY);
                refused(dst, t, b, LLMKIT_ERROR_FORMAT, "row scale inf");
            }
        }
    }
}

TEST_CASE("kv cache save/load: the C calls' sizes, null pointers, dead sequences and a full pool", "[kv][paged]") {
    std::mt19937 rng(47);
    const shape sh = k_shapes[0];
    cache src(sh, LLMKIT_KV_BF16, 0, 100);
    const int32_t s = src.seq_new();
    fill(src, s, sh, rng);
    const std::vector<uint8_t> good = src.save(s);
    llmkit_kv_cache *c = src.c->get();

    size_t written = 0;
    CHECK(llmkit_kv_cache_seq_save(c, s, nullptr, 0, &written) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    CHECK(written == good.size());
    std::vector<uint8_t> buf(good.size() - 1);
    written = 0;
    CHECK(llmkit_kv_cache_seq_save(c, s, buf.data(), buf.size(), &written) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    CHECK(written == good.size());
    CHECK(std::string(llmkit_last_error_message()).find("needs " + std::to_string(good.size()) + " bytes") !=
          std::string::npos);
    buf.resize(good.size());
    CHECK(llmkit_kv_cache_seq_save(c, s, buf.data(), buf.size(), nullptr) == LLMKIT_OK);
    CHECK(buf == good);
    CHECK(llmkit_kv_cache_seq_save(nullptr, s, buf.data(), buf.size(), &written) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_kv_cache_seq_save(c, 2, buf.data(), buf.size(), &written) == LLMKIT_ERROR_OUT_OF_RANGE);
    CHECK(llmkit_kv_cache_seq_load(c, s, nullptr, 10) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_kv_cache_seq_load(nullptr, s, good.data(), good.size()) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_kv_cache_seq_load(c, -1, good.data(), good.size()) == LLMKIT_ERROR_OUT_OF_RANGE);
    CHECK(llmkit_paged_kv_cache_seq_save(nullptr, 0, nullptr, 0, &written) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_paged_kv_cache_seq_load(nullptr, 0, good.data(), good.size()) == LLMKIT_ERROR_NULL_POINTER);

    // A pool of 4 blocks of 16: 37 tokens need 3. With 2 taken by another
    // sequence the load is refused; a sequence's own blocks count as free.
    cache small(sh, LLMKIT_KV_BF16, 16, 64);
    const int32_t a = small.seq_new(), b = small.seq_new();
    std::vector<float> k = normal(rng, size_t(20 * 2 * 64)), v = normal(rng, size_t(20 * 2 * 64));
    small.append(0, a, k, v, 20, sh);
    small.append(0, b, k, v, 5, sh);
    refused(small, b, good, LLMKIT_ERROR_OUT_OF_MEMORY, "need 3 blocks of 16; 1 are free and sequence 1 holds 1");
    small.append(1, a, k, v, 20, sh);  // layer 1 adds no block
    int32_t a2 = small.fork(a);        // a's 2 blocks now shared: a holds none of its own
    refused(small, a, good, LLMKIT_ERROR_OUT_OF_MEMORY, "need 3 blocks");
    small.p->free(a2);
    small.p->free(b);  // a: 2 own blocks, 2 free
    REQUIRE(small.load(a, good.data(), good.size()) == LLMKIT_OK);
    CHECK(small.save(a) == good);
    int64_t free_blocks = -1;
    REQUIRE(llmkit_paged_kv_cache_free_blocks(small.p->get(), &free_blocks) == LLMKIT_OK);
    CHECK(free_blocks == 1);
}

// The saved scales are each row's true scale (an element's value is its int8
// integer or FP8 value times it): absmax / 127, / 448 or / 57344, whatever
// the cache keeps internally (E4M3's stored scale carries a factor 2^8).
TEST_CASE("kv cache save: 8-bit rows are saved with their true scales", "[kv]") {
    for (int32_t dtype : {LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3, LLMKIT_KV_FP8_E5M2}) {
        INFO("dtype " << dtype);
        const shape sh{1, 64, 0, false};
        cache c(sh, dtype, 0, 8);
        const int32_t s = c.seq_new();
        std::vector<float> k(64, 0.25f), v(64, -0.5f);
        k[7] = -896.0f;  // K's absmax; V's is 0.5
        for (int32_t l = 0; l < k_layers; ++l) c.append(l, s, k, v, 1, sh);
        const std::vector<uint8_t> b = c.save(s);
        const float top = dtype == LLMKIT_KV_INT8 ? 127.0f : dtype == LLMKIT_KV_FP8_E4M3 ? 448.0f : 57344.0f;
        float ks = 0.0f, vs = 0.0f;
        const size_t at = 40 + 8 * k_layers + 64;  // layer 0: K's row, then its scale, V's row, its scale
        std::memcpy(&ks, b.data() + at, 4);
        std::memcpy(&vs, b.data() + at + 4 + 64, 4);
        CHECK(ks == 896.0f / top);
        CHECK(vs == 0.5f / top);
        // Element 7 of K is the dtype's most negative value: -127, or E4M3's -448 (0xfe), E5M2's -57344 (0xfb).
        const uint8_t want = dtype == LLMKIT_KV_INT8 ? uint8_t(int8_t(-127)) : dtype == LLMKIT_KV_FP8_E4M3 ? 0xfe : 0xfb;
        CHECK(b[40 + 8 * k_layers + 7] == want);
    }
}
