// Erasing a span of a KV-cache sequence (llmkit_*_seq_erase): llama.cpp's
// context shift and StreamingLLM's rolling cache. After erasing [from, to)
// with the appends' rotation, every kept key must be the key rotated at its
// new position (a float64 rotation for the default RoPE; llmkit_rope, itself
// checked against float64 in test_rope.cpp, for the scalings), within a
// tolerance per cache dtype stated below; V must keep its bytes; without a
// rotation the cache must hold the bytes of one that never held the span;
// both caches must agree bit for bit, through forks whose shared blocks are
// copied first; and bad calls must leave the sequence as it was.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "helpers.hpp"
#include "kv_helpers.hpp"
#include "llmkit/llmkit.h"
#include "llmkit/llmkit.hpp"
#include "quant/formats.hpp"

using namespace attn_test;
using namespace kv_test;

namespace {

constexpr int32_t k_hkv = 2, k_hq = 4, k_dim = 64;
constexpr int64_t k_tokens = 45;  // three paged blocks of 16

const int32_t k_all_types[] = {LLMKIT_KV_F32, LLMKIT_KV_BF16, LLMKIT_KV_F16,
                               LLMKIT_KV_INT8, LLMKIT_KV_FP8_E4M3, LLMKIT_KV_FP8_E5M2};

// A one-layer saved sequence (llmkit_*_seq_save, format in kv_state.hpp)
// decoded to values: K and V as [head][token][dim].
struct saved_rows {
    int64_t len = 0;
    std::vector<double> k, v;
};

// Heads of dim elements each; a v_from_k cache's (has_v false) saves K alone.
saved_rows decode(const std::vector<uint8_t> &b, int32_t type, int64_t heads = k_hkv, int64_t dim = k_dim,
                  bool has_v = true) {
    using namespace llmkit;
    REQUIRE(b.size() >= 48);
    saved_rows r;
    std::memcpy(&r.len, b.data() + 40, 8);
    const bool eight = type == LLMKIT_KV_INT8 || kv_is_fp8(type);
    const int64_t es = type == LLMKIT_KV_F32 ? 4 : eight ? 1 : 2, rows = heads * r.len;
    size_t at = 48;
    for (std::vector<double> *out : {&r.k, &r.v}) {
        if (out == &r.v && !has_v) break;
        const uint8_t *p = b.data() + at;
        at += size_t(rows * dim * es);
        const uint8_t *sc = b.data() + at;
        if (eight) at += size_t(rows) * 4;
        REQUIRE(at <= b.size());
        out->resize(size_t(rows * dim));
        for (int64_t i = 0; i < rows; ++i) {
            float scale = 1.0f;
            if (eight) std::memcpy(&scale, sc + i * 4, 4);
            for (int64_t d = 0; d < dim; ++d) {
                const uint8_t *e = p + (i * dim + d) * es;
                float x = 0.0f;
                uint16_t u = 0;
                if (es == 2) std::memcpy(&u, e, 2);
                switch (type) {
                case LLMKIT_KV_F32: std::memcpy(&x, e, 4); break;
                case LLMKIT_KV_BF16: x = core::bf16_to_f32(u); break;
                case LLMKIT_KV_F16: x = core::f16_to_f32(u); break;
                case LLMKIT_KV_INT8: x = float(int8_t(*e)) * scale; break;
                case LLMKIT_KV_FP8_E4M3: x = quant::e4m3_to_f32(*e) * scale; break;
                default: x = quant::e5m2_to_f32(*e) * scale; break;
                }
                (*out)[size_t(i * dim + d)] = x;
            }
        }
    }
    REQUIRE(at == b.size());
    return r;
}

// Tokens' K and V rows [S][Hkv][D] as float32, the inputs of the appends.
struct token_rows {
    std::vector<float> k, v;
};

token_rows draw(std::mt19937 &rng, int64_t n) {
    normal_draws nd;
    token_rows t;
    for (std::vector<float> *x : {&t.k, &t.v}) {
        x->resize(size_t(n * k_hkv * k_dim));
        for (float &e : *x) e = float(nd(rng));
    }
    return t;
}

// Tokens [from, from + n) of t appended to layer `layer` of s, K rotated at
// their positions when rope is given.
void append(cache &c, int32_t layer, int32_t s, token_rows &t, int64_t from, int64_t n,
            const llmkit_rope_options *rope) {
    const int64_t shape[3] = {n, k_hkv, k_dim};
    const size_t at = size_t(from * k_hkv * k_dim);
    llmkit_tensor tk = rows_tensor(t.k.data() + at, shape), tv = rows_tensor(t.v.data() + at, shape);
    const llmkit_status st = rope ? (c.paged ? llmkit_paged_kv_cache_append_rope(c.p, layer, s, &tk, &tv, rope)
                                             : llmkit_kv_cache_append_rope(c.c, layer, s, &tk, &tv, rope))
                                  : c.append_raw(layer, s, &tk, &tv);
    INFO(llmkit_last_error_message());
    REQUIRE(st == LLMKIT_OK);
}

// The indices into t of the tokens an erase of [from, to) keeps, in order.
std::vector<int64_t> kept(int64_t n, int64_t from, int64_t to) {
    std::vector<int64_t> idx;
    for (int64_t j = 0; j < n; ++j)
        if (j < from || j >= to) idx.push_back(j);
    return idx;
}

// t's tokens idx, in that order, as rows of their own.
token_rows pick(const token_rows &t, const std::vector<int64_t> &idx) {
    token_rows r;
    const size_t row = size_t(k_hkv * k_dim);
    for (int64_t j : idx) {
        r.k.insert(r.k.end(), t.k.begin() + long(size_t(j) * row), t.k.begin() + long(size_t(j + 1) * row));
        r.v.insert(r.v.end(), t.v.begin() + long(size_t(j) * row), t.v.begin() + long(size_t(j + 1) * row));
    }
    return r;
}

// K rows [S][Hkv][D] rotated by llmkit_rope at positions 0..S-1, as [head][token][dim].
std::vector<double> rotated_by_llmkit(const token_rows &t, const llmkit_rope_options &rope) {
    const int64_t S = int64_t(t.k.size()) / (k_hkv * k_dim);
    std::vector<float> x = t.k;
    std::vector<int64_t> pos(static_cast<size_t>(S));
    for (int64_t s = 0; s < S; ++s) pos[size_t(s)] = s;
    const int64_t shape[4] = {1, S, k_hkv, k_dim}, pshape[1] = {S};
    llmkit_tensor tx = host_tensor(x.data(), llmkit_dtype LLMKIT_DTYPE_F32, 4, shape);
    const llmkit_tensor tp = host_tensor(pos.data(), llmkit_dtype LLMKIT_DTYPE_I64, 1, pshape);
    REQUIRE(llmkit_rope(&tx, &tp, &rope) == LLMKIT_OK);
    std::vector<double> out(x.size());
    for (int64_t s = 0; s < S; ++s)
        for (int64_t h = 0; h < k_hkv; ++h)
            for (int64_t d = 0; d < k_dim; ++d)
                out[size_t((h * S + s) * k_dim + d)] = x[size_t((s * k_hkv + h) * k_dim + d)];
    return out;
}

// The same for the default RoPE (GPT-NeoX halves, theta 10000) in float64.
std::vector<double> rotated_float64(const token_rows &t) {
    const int64_t S = int64_t(t.k.size()) / (k_hkv * k_dim), half = k_dim / 2;
    std::vector<double> out(t.k.size());
    for (int64_t s = 0; s < S; ++s)
        for (int64_t h = 0; h < k_hkv; ++h) {
            const float *x = t.k.data() + (s * k_hkv + h) * k_dim;
            double *y = out.data() + (h * S + s) * k_dim;
            for (int64_t i = 0; i < half; ++i) {
                const double a = double(s) * std::pow(10000.0, -2.0 * double(i) / double(k_dim));
                y[i] = double(x[i]) * std::cos(a) - double(x[i + half]) * std::sin(a);
                y[i + half] = double(x[i]) * std::sin(a) + double(x[i + half]) * std::cos(a);
            }
        }
    return out;
}

// The tolerance of an erased key against the exact rotation at its new
// position, as a fraction of that row's largest magnitude (amax). The append
// rounded the key at its old position to the cache's dtype, the erase turns
// that rounded row and rounds it again. With u the dtype's unit roundoff, the
// first rounding's error (u of a pair's length, which is at most sqrt(2) amax)
// turned, plus the second's, stays below 3 u amax: 16-bit u = 2^-8 (bf16),
// 2^-11 (fp16); FP8 u = 2^-4 (E4M3), 2^-3 (E5M2). int8 rounds to half a step
// of absmax / 127 twice, and the turn can change a row's absmax by sqrt(2):
// below 1.75 / 127. float32: a few ulps of two rotations, 1e-6. (Measured
// here: 2.3e-7, 0.0061, 0.00091, 0.0090, 0.073, 0.145.)
double erase_tolerance(int32_t type) {
    switch (type) {
    case LLMKIT_KV_F32: return 1e-6;
    case LLMKIT_KV_BF16: return 3 * std::ldexp(1.0, -8);
    case LLMKIT_KV_F16: return 3 * std::ldexp(1.0, -11);
    case LLMKIT_KV_INT8: return 1.75 / 127.0;
    case LLMKIT_KV_FP8_E4M3: return 3 * std::ldexp(1.0, -4);
    default: return 3 * std::ldexp(1.0, -3);
    }
}

// The largest |got - want| over a row's largest |want|, over all rows of `width`.
double worst_row_error(const std::vector<double> &got, const std::vector<double> &want, int64_t width = k_dim) {
    REQUIRE(got.size() == want.size());
    double worst = 0.0;
    for (size_t r = 0; r < got.size(); r += size_t(width)) {
        double amax = 0.0, err = 0.0;
        for (size_t d = r; d < r + size_t(width); ++d) {
            amax = std::max(amax, std::fabs(want[d]));
            err = std::max(err, std::fabs(got[d] - want[d]));
        }
        worst = std::max(worst, err / amax);
    }
    return worst;
}

// Rows [S][H][W] whose last R dims (MLA's rotary part) are turned in place by
// llmkit_rope at positions first..first+S-1: a strided view of those dims.
void rotate_tails(float *x, int64_t S, int64_t H, int64_t W, int64_t R, int64_t first, llmkit_rope_options rope) {
    rope.rotary_dims = 0;  // all of the view
    std::vector<int64_t> pos(static_cast<size_t>(S));
    for (int64_t i = 0; i < S; ++i) pos[size_t(i)] = first + i;
    const int64_t shape[4] = {1, S, H, R}, strides[4] = {S * H * W, H * W, W, 1}, pshape[1] = {S};
    llmkit_tensor t = host_tensor(x + (W - R), llmkit_dtype LLMKIT_DTYPE_F32, 4, shape);
    t.strides = strides;
    const llmkit_tensor tp = host_tensor(pos.data(), llmkit_dtype LLMKIT_DTYPE_I64, 1, pshape);
    INFO(llmkit_last_error_message());
    REQUIRE(llmkit_rope(&t, &tp, &rope) == LLMKIT_OK);
}

// n latent rows of W (one kv head) appended to s of a v_from_k cache: K
// alone, the fused RoPE turning their rotary part.
void append_latent(cache &c, int32_t s, float *rows, int64_t n, int64_t W, const llmkit_rope_options &rope) {
    const int64_t shape[3] = {n, 1, W};
    llmkit_tensor tk = rows_tensor(rows, shape);
    const llmkit_status st = c.paged ? llmkit_paged_kv_cache_append_rope(c.p, 0, s, &tk, nullptr, &rope)
                                     : llmkit_kv_cache_append_rope(c.c, 0, s, &tk, nullptr, &rope);
    INFO(llmkit_last_error_message());
    REQUIRE(st == LLMKIT_OK);
}

// The rows idx of x ([n][W]), in that order.
std::vector<float> pick_rows(const std::vector<float> &x, const std::vector<int64_t> &idx, int64_t W) {
    std::vector<float> r;
    for (int64_t j : idx) r.insert(r.end(), x.begin() + long(j * W), x.begin() + long((j + 1) * W));
    return r;
}

// A paged sequence holding t's k_tokens rows (rotated at their positions:
// blocks 0-2), and a fork of it sharing its blocks.
std::pair<int32_t, int32_t> sequence_and_fork(cache &c, token_rows &t, const llmkit_rope_options &rope) {
    const int32_t s0 = c.seq_new();
    append(c, 0, s0, t, 0, k_tokens, &rope);
    int32_t s1 = -1;
    REQUIRE(c.fork(s0, &s1) == LLMKIT_OK);
    return {s0, s1};
}

// Sequences of n tokens and the spans [from, to) erased from them:
// StreamingLLM's (keep 4 sinks), the front, one across paged blocks, the tail
// (nothing moves), none, a few tokens within a block (rows moved within it),
// 144 tokens moved in a contiguous cache's one run (more than a chunk of
// 64 rows turned at once), and 80 tokens moved 68 down: with fewer kv heads
// than threads (threads_for_waves below) two waves of tokens moved in
// parallel.
struct span_case {
    int64_t n, from, to;
};
const span_case k_spans[] = {{k_tokens, 4, 20}, {k_tokens, 0, 10}, {k_tokens, 17, 40}, {k_tokens, 30, 45},
                             {k_tokens, 12, 12}, {k_tokens, 5, 8}, {150, 3, 9}, {150, 2, 70}};
constexpr int64_t k_capacity = 160;

// An erase moves a cache with fewer kv heads than threads in waves of tokens
// run in parallel when it drops 64 tokens or more (move_tokens): these tests
// ask for 4 threads, so that the heads (1 or 2) are fewer whatever the machine.
struct threads_for_waves {
    int32_t before = llmkit_get_num_threads();
    threads_for_waves() { REQUIRE(llmkit_set_num_threads(4) == LLMKIT_OK); }
    ~threads_for_waves() { llmkit_set_num_threads(before); }
};
constexpr int64_t k_pool = 2 * k_capacity / 16;  // the paged caches' blocks (2 sequences)

}  // namespace

TEST_CASE("kv caches: erase turns the kept keys to their new positions", "[kv][erase]") {
    const threads_for_waves waves;
    std::mt19937 rng(71);
    // Every layout and scaling, YaRN's among them: its attention factor scales
    // cos and sin, and is already in the stored keys, so the turn must not apply it again.
    for (const rope_case &rc : rope_cases(k_dim))
        for (int32_t type : k_all_types)
            for (const span_case &span : k_spans) {
                const int64_t from = span.from, to = span.to;
                INFO(rc.name << ", cache " << kv_name(type) << ", " << span.n << " tokens, erase [" << from << ", "
                             << to << ")");
                token_rows t = draw(rng, span.n);
                const std::vector<int64_t> idx = kept(span.n, from, to);
                const token_rows keep = pick(t, idx);
                std::vector<uint8_t> saved[2];
                for (bool paged : {false, true}) {
                    cache c(paged, 1, k_hkv, k_dim, type, k_capacity, 2);
                    const int32_t s = c.seq_new();
                    append(c, 0, s, t, 0, span.n - 15, &rc.o);  // a prefill chunk, then decode steps
                    for (int64_t j = span.n - 15; j < span.n; ++j) append(c, 0, s, t, j, 1, &rc.o);
                    const llmkit_status st = c.erase(s, from, to, &rc.o);
                    INFO(llmkit_last_error_message());
                    REQUIRE(st == LLMKIT_OK);
                    REQUIRE(c.length(s) == int64_t(idx.size()));
                    saved[paged] = c.save(s);
                    // The paged pool gets back every block past the new length.
                    if (paged) CHECK(c.free_blocks() == k_pool - (int64_t(idx.size()) + 15) / 16);
                }
                // Both caches hold the same bytes.
                CHECK(saved[0] == saved[1]);
                const saved_rows got = decode(saved[0], type);
                // K: the kept keys rotated at their new positions.
                const double err = worst_row_error(got.k, rotated_by_llmkit(keep, rc.o));
                INFO("worst error " << err << " of the row's absmax, tolerance " << erase_tolerance(type));
                CHECK(err <= erase_tolerance(type));
                if (std::string(rc.name) == "neox") CHECK(worst_row_error(got.k, rotated_float64(keep)) <= erase_tolerance(type));
                // V: the bytes a cache of the kept tokens alone holds.
                cache fresh(false, 1, k_hkv, k_dim, type, k_capacity, 1);
                const int32_t f = fresh.seq_new();
                token_rows keep_copy = keep;
                append(fresh, 0, f, keep_copy, 0, int64_t(idx.size()), &rc.o);
                CHECK(decode(fresh.save(f), type).v == got.v);
            }
}

TEST_CASE("kv caches: erase without a rotation holds the bytes of a cache that never held the span", "[kv][erase]") {
    const threads_for_waves waves;
    std::mt19937 rng(72);
    for (int32_t type : k_all_types)
        for (bool paged : {false, true})
            for (const span_case &span : k_spans) {
                INFO((paged ? "paged" : "contiguous") << ", cache " << kv_name(type) << ", " << span.n
                                                      << " tokens, erase [" << span.from << ", " << span.to << ")");
                token_rows t = draw(rng, span.n);
                token_rows keep = pick(t, kept(span.n, span.from, span.to));
                cache a(paged, 1, k_hkv, k_dim, type, k_capacity, 2), b(paged, 1, k_hkv, k_dim, type, k_capacity, 2);
                const int32_t sa = a.seq_new(), sb = b.seq_new();
                append(a, 0, sa, t, 0, span.n, nullptr);
                REQUIRE(a.erase(sa, span.from, span.to, nullptr) == LLMKIT_OK);
                append(b, 0, sb, keep, 0, int64_t(keep.k.size()) / (k_hkv * k_dim), nullptr);
                CHECK(a.save(sa) == b.save(sb));
            }
}

TEST_CASE("kv caches: decoding after an erase equals decoding a cache of the kept tokens", "[kv][erase]") {
    // The next append lands at the new length and the queries sit at the new
    // positions: float32 attention after an erase and three more tokens,
    // against a cache that held the kept tokens and those three from the start.
    std::mt19937 rng(73);
    const llmkit_rope_options rope = LLMKIT_ROPE_OPTIONS_INIT;
    for (bool paged : {false, true}) {
        INFO((paged ? "paged" : "contiguous"));
        token_rows t = draw(rng, k_tokens + 3);
        std::vector<int64_t> idx = kept(k_tokens, 4, 20);
        for (int64_t j = k_tokens; j < k_tokens + 3; ++j) idx.push_back(j);
        token_rows keep = pick(t, idx);
        cache a(paged, 1, k_hkv, k_dim, LLMKIT_KV_F32, 64, 2), b(paged, 1, k_hkv, k_dim, LLMKIT_KV_F32, 64, 2);
        const int32_t sa = a.seq_new(), sb = b.seq_new();
        append(a, 0, sa, t, 0, k_tokens, &rope);
        REQUIRE(a.erase(sa, 4, 20, &rope) == LLMKIT_OK);
        append(a, 0, sa, t, k_tokens, 3, &rope);
        append(b, 0, sb, keep, 0, int64_t(idx.size()), &rope);
        REQUIRE(a.length(sa) == b.length(sb));
        tensor4 q = make(llmkit::core::dtype::f32, 1, 3, k_hq, k_dim, layout::compact, &rng);
        tensor4 out_a = make(llmkit::core::dtype::f32, 1, 3, k_hq, k_dim, layout::compact, nullptr), out_b = out_a;
        llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
        o.rope = &rope;
        REQUIRE(a.attention(0, q, {sa}, out_a, &o) == LLMKIT_OK);
        REQUIRE(b.attention(0, q, {sb}, out_b, &o) == LLMKIT_OK);
        double worst = 0.0, largest = 0.0;
        for (int64_t i = 0; i < 3; ++i)
            for (int64_t h = 0; h < k_hq; ++h)
                for (int64_t d = 0; d < k_dim; ++d) {
                    worst = std::max(worst, std::fabs(out_a.get(0, i, h, d) - out_b.get(0, i, h, d)));
                    largest = std::max(largest, std::fabs(out_b.get(0, i, h, d)));
                }
        INFO("max |diff| " << worst);
        CHECK(worst <= 2e-6);
        CHECK(largest > 0.01);  // (make() zero-filled the outputs: the calls wrote them)
    }
}

TEST_CASE("paged kv cache: erase copies the blocks it shares before writing them", "[kv][erase][paged]") {
    std::mt19937 rng(74);
    const llmkit_rope_options rope = LLMKIT_ROPE_OPTIONS_INIT;
    token_rows t = draw(rng, k_tokens);
    // 45 tokens: blocks 0-2. The fork shares them; erasing [4, 20) from it
    // rewrites tokens 4..28 (blocks 0 and 1, copied first) and gives back block 2.
    cache c(true, 1, k_hkv, k_dim, LLMKIT_KV_BF16, 64, 4, 16, 8);
    const auto [s0, s1] = sequence_and_fork(c, t, rope);
    const std::vector<uint8_t> before = c.save(s0);
    REQUIRE(c.free_blocks() == 5);
    REQUIRE(c.erase(s1, 4, 20, &rope) == LLMKIT_OK);
    CHECK(c.length(s1) == 29);
    CHECK(c.free_blocks() == 3);  // two copies taken; block 2 still s0's
    CHECK(c.save(s0) == before);  // the parent is untouched
    const std::vector<int32_t> t0 = c.table(s0), t1 = c.table(s1);
    REQUIRE(t1.size() == 2);
    CHECK(t1[0] != t0[0]);
    CHECK(t1[1] != t0[1]);
    // The contiguous cache gives the same bytes.
    cache flat(false, 1, k_hkv, k_dim, LLMKIT_KV_BF16, 64, 1);
    const int32_t f = flat.seq_new();
    append(flat, 0, f, t, 0, k_tokens, &rope);
    REQUIRE(flat.erase(f, 4, 20, &rope) == LLMKIT_OK);
    CHECK(c.save(s1) == flat.save(f));
    // Erasing the tail of an unshared sequence gives its blocks back.
    REQUIRE(c.erase(s1, 10, 29, &rope) == LLMKIT_OK);
    CHECK(c.free_blocks() == 4);
    REQUIRE(c.free_seq(s0) == LLMKIT_OK);
    REQUIRE(c.free_seq(s1) == LLMKIT_OK);
    CHECK(c.free_blocks() == 8);
}

TEST_CASE("kv caches: MLA's latent cache turns only the rotary part at the end of its rows", "[kv][erase][mla]") {
    // DeepSeek's multi-head latent attention in its absorbed form: one kv head
    // of 576 = the 512-wide latent (V is its first 512: v_from_k) and then the
    // 64 rotary dimensions (k_pe). The appends' fused RoPE, the queries' and
    // the erase turn the last 64 alone, as llama.cpp's shift of DeepSeek's
    // cache does. After an erase each kept row must hold its latent as given
    // and its rotary part rotated (by llmkit_rope, checked against float64 in
    // test_rope.cpp) at its new position, within the tolerances above.
    // Its one head moves in waves of tokens (threads_for_waves): 82 tokens
    // moved 66 down (two waves) and 300 moved 297 down (chunks of 256 tokens).
    const threads_for_waves waves;
    constexpr int32_t C = 512, R = 64, W = C + R;
    std::mt19937 rng(78);
    normal_draws nd;
    const span_case spans[] = {{k_tokens, 4, 20}, {k_tokens, 17, 40}, {k_tokens, 5, 8}, {150, 2, 68}, {600, 3, 300}};
    for (rope_case rc : rope_cases(R)) {
        rc.o.rotary_dims = R;  // (a "partial" case turns 64 as the others: the tail is all there is to turn)
        for (int32_t type : k_all_types)
            for (const span_case &span : spans) {
                const int64_t n = span.n;
                INFO(rc.name << ", cache " << kv_name(type) << ", erase [" << span.from << ", " << span.to << ")");
                std::vector<float> x(size_t(n * W));
                for (float &e : x) e = float(nd(rng));
                const std::vector<int64_t> idx = kept(n, span.from, span.to);
                // The kept rows, their tails rotated at their new positions 0..
                std::vector<float> kept_rows = pick_rows(x, idx, W);
                rotate_tails(kept_rows.data(), int64_t(idx.size()), 1, W, R, 0, rc.o);
                const std::vector<double> want(kept_rows.begin(), kept_rows.end());
                std::vector<uint8_t> saved[2];
                for (bool paged : {false, true}) {
                    cache c(paged, 1, 1, W, type, 640, 1, 16, 0, C, true);
                    const int32_t s = c.seq_new();
                    // A prefill chunk, then decode steps.
                    for (const auto &[at, count] : {std::pair<int64_t, int64_t>{0, n - 3}, {n - 3, 1}, {n - 2, 2}})
                        append_latent(c, s, x.data() + at * W, count, W, rc.o);
                    const llmkit_status st = c.erase(s, span.from, span.to, &rc.o);
                    INFO(llmkit_last_error_message());
                    REQUIRE(st == LLMKIT_OK);
                    saved[paged] = c.save(s);
                }
                CHECK(saved[0] == saved[1]);
                const saved_rows got = decode(saved[0], type, 1, W, false);
                const double err = worst_row_error(got.k, want, W);
                INFO("worst error " << err << " of the row's absmax, tolerance " << erase_tolerance(type));
                CHECK(err <= erase_tolerance(type));
                // 16- and 32-bit rows: the latent moved bit for bit (the rows round-trip through float32).
                if (type == LLMKIT_KV_F32 || type == LLMKIT_KV_BF16 || type == LLMKIT_KV_F16) {
                    int64_t moved = 0, equal = 0;
                    for (size_t i = 0; i < idx.size(); ++i)
                        for (int64_t d = 0; d < C; ++d, ++moved) {
                            const double given = x[size_t(idx[i] * W + d)];
                            const double as_stored = type == LLMKIT_KV_F32 ? given
                                                     : type == LLMKIT_KV_BF16
                                                         ? llmkit::core::bf16_to_f32(llmkit::core::f32_to_bf16(float(given)))
                                                         : llmkit::core::f16_to_f32(llmkit::core::f32_to_f16(float(given)));
                            equal += got.k[i * W + size_t(d)] == as_stored;
                        }
                    CHECK(equal == moved);
                }
            }
    }
}

TEST_CASE("kv caches: attention after an MLA erase equals float64 attention over the kept latent rows", "[kv][erase][mla]") {
    // The queries' fused RoPE on a v_from_k cache turns their last 64 too
    // (MLA's absorbed q: the latent part, then q_pe): an erase, three more
    // tokens, and 16 query heads attending against float64 over the kept
    // rows with both tails rotated at their positions.
    constexpr int32_t C = 512, R = 64, W = C + R, Hq = 16;
    std::mt19937 rng(79);
    normal_draws nd;
    llmkit_rope_options rope = LLMKIT_ROPE_OPTIONS_INIT;
    rope.layout = LLMKIT_ROPE_INTERLEAVED;  // DeepSeek V3's k_pe
    rope.rotary_dims = R;
    rope.scaling = LLMKIT_ROPE_SCALING_YARN;
    rope.factor = 40.0, rope.original_max_position = 32.0;  // (DeepSeek V3: 40 over 4096)
    const int64_t n = k_tokens + 3, from = 4, to = 20, Sq = 3;
    std::vector<float> x(size_t(n * W)), q(size_t(Sq * Hq * W));
    for (float &e : x) e = float(nd(rng));
    for (float &e : q) e = float(nd(rng));
    std::vector<int64_t> idx = kept(k_tokens, from, to);
    for (int64_t j = k_tokens; j < n; ++j) idx.push_back(j);
    const int64_t L = int64_t(idx.size());
    // Float64's inputs: the kept rows and the queries, their tails rotated by
    // llmkit_rope at their positions; V the kept rows' latent.
    std::vector<float> keys = pick_rows(x, idx, W);
    rotate_tails(keys.data(), L, 1, W, R, 0, rope);
    seq_data kept_seq;
    kept_seq.len = L;
    kept_seq.k_store.assign(keys.begin(), keys.end());
    for (int64_t j = 0; j < L; ++j)
        kept_seq.v_store.insert(kept_seq.v_store.end(), keys.begin() + long(j * W), keys.begin() + long(j * W + C));
    std::vector<float> qr = q;
    rotate_tails(qr.data(), Sq, Hq, W, R, L - Sq, rope);
    tensor4 q_turned = make(llmkit::core::dtype::f32, 1, Sq, Hq, W, layout::compact, nullptr);
    for (int64_t i = 0; i < Sq; ++i)
        for (int64_t h = 0; h < Hq; ++h)
            for (int64_t d = 0; d < W; ++d) q_turned.set(0, i, h, d, qr[size_t((i * Hq + h) * W + d)]);
    const std::vector<double> ref = reference(q_turned, {&kept_seq}, 1, ref_options{});
    for (bool paged : {false, true}) {
        INFO((paged ? "paged" : "contiguous"));
        cache c(paged, 1, 1, W, LLMKIT_KV_F32, 64, 1, 16, 0, C, true);
        const int32_t s = c.seq_new();
        append_latent(c, s, x.data(), k_tokens, W, rope);
        REQUIRE(c.erase(s, from, to, &rope) == LLMKIT_OK);
        append_latent(c, s, x.data() + k_tokens * W, Sq, W, rope);
        REQUIRE(c.length(s) == L);
        tensor4 tq = make(llmkit::core::dtype::f32, 1, Sq, Hq, W, layout::compact, nullptr);
        for (int64_t i = 0; i < Sq; ++i)
            for (int64_t h = 0; h < Hq; ++h)
                for (int64_t d = 0; d < W; ++d) tq.set(0, i, h, d, q[size_t((i * Hq + h) * W + d)]);
        tensor4 out = make(llmkit::core::dtype::f32, 1, Sq, Hq, C, layout::compact, nullptr);
        llmkit_kv_attention_options o = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
        o.causal = 1;
        o.rope = &rope;
        const llmkit_status st = c.attention(0, tq, {s}, out, &o);
        INFO(llmkit_last_error_message());
        REQUIRE(st == LLMKIT_OK);
        double worst = 0.0;
        for (int64_t i = 0; i < Sq; ++i)
            for (int64_t h = 0; h < Hq; ++h)
                for (int64_t d = 0; d < C; ++d)
                    worst = std::max(worst, std::fabs(out.get(0, i, h, d) - ref[size_t((i * Hq + h) * C + d)]));
        INFO("max |diff| " << worst);
        CHECK(worst <= 2e-5);  // float32 over 576-wide dot products and 32 keys
        // q itself is left as it was (the rotation works on a copy).
        CHECK(tq.get(0, 2, 15, W - 1) == q[size_t((2 * Hq + 15) * W + W - 1)]);
    }
    // The C++ face's K-only fused append and erase: the bytes of the C calls.
    llmkit_kv_cache_options co = LLMKIT_KV_CACHE_OPTIONS_INIT;
    co.n_kv_heads = 1, co.head_dim = W, co.capacity = 64, co.max_sequences = 1, co.v_head_dim = C, co.v_from_k = 1;
    llmkit::kv_cache kc(co);
    const int32_t a = kc.seq_new();
    kc.append_rope(0, a, llmkit::f32(x.data(), {k_tokens, 1, W}), &rope);
    kc.erase(a, from, to, &rope);
    llmkit_paged_kv_cache_options po = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
    po.n_kv_heads = 1, po.head_dim = W, po.block_size = 16, po.n_blocks = 4, po.max_sequences = 1;
    po.v_head_dim = C, po.v_from_k = 1;
    llmkit::paged_kv_cache pc(po);
    const int32_t b = pc.seq_new();
    pc.append_rope(0, b, llmkit::f32(x.data(), {k_tokens, 1, W}), &rope);
    pc.erase(b, from, to, &rope);
    cache c(false, 1, 1, W, LLMKIT_KV_F32, 64, 1, 16, 0, C, true);
    const int32_t s = c.seq_new();
    append_latent(c, s, x.data(), k_tokens, W, rope);
    REQUIRE(c.erase(s, from, to, &rope) == LLMKIT_OK);
    CHECK(kc.save(a) == c.save(s));
    CHECK(pc.save(b) == c.save(s));
}

TEST_CASE("kv caches: erase refuses bad calls and leaves the sequence as it was", "[kv][erase][errors]") {
    std::mt19937 rng(75);
    const llmkit_rope_options rope = LLMKIT_ROPE_OPTIONS_INIT;
    for (bool paged : {false, true}) {
        INFO((paged ? "paged" : "contiguous"));
        // Two layers, one of them behind (as within a decode step): only tokens both hold can go.
        cache c(paged, 2, k_hkv, k_dim, LLMKIT_KV_F32, 64, 4);
        const int32_t s = c.seq_new();
        token_rows t = draw(rng, k_tokens);
        append(c, 0, s, t, 0, k_tokens, &rope);
        append(c, 1, s, t, 0, 40, &rope);
        const std::vector<uint8_t> before = c.save(s);
        expect_error(c.erase(s, 4, 42, &rope), LLMKIT_ERROR_OUT_OF_RANGE, "layer 1");
        expect_error(c.erase(s, -1, 4, &rope), LLMKIT_ERROR_OUT_OF_RANGE, "0 <= from <= to <= 40");
        expect_error(c.erase(s, 9, 8, &rope), LLMKIT_ERROR_OUT_OF_RANGE, "[9, 8)");
        expect_error(c.erase(3, 0, 1, &rope), LLMKIT_ERROR_OUT_OF_RANGE, "seq = 3 is not a live sequence");
        expect_error(c.erase(-2, 0, 1, &rope), LLMKIT_ERROR_OUT_OF_RANGE, "seq = -2 is not a live sequence");
        llmkit_rope_options odd = rope;
        odd.rotary_dims = 7;
        expect_error(c.erase(s, 0, 4, &odd), LLMKIT_ERROR_SHAPE, "rotary_dims");
        llmkit_rope_options mrope = rope;
        mrope.mrope_section[0] = 16, mrope.mrope_section[1] = 8, mrope.mrope_section[2] = 8;
        expect_error(c.erase(s, 0, 4, &mrope), LLMKIT_ERROR_UNSUPPORTED, "M-RoPE");
        llmkit_rope_options bad_size = rope;
        bad_size.struct_size = 3;
        CHECK(c.erase(s, 0, 4, &bad_size) == LLMKIT_ERROR_INVALID_ARGUMENT);
        CHECK(c.save(s) == before);
        CHECK(c.length(s, 0) == k_tokens);
        CHECK(c.length(s, 1) == 40);
        // The range both layers hold goes from both.
        REQUIRE(c.erase(s, 4, 20, &rope) == LLMKIT_OK);
        CHECK(c.length(s, 0) == 29);
        CHECK(c.length(s, 1) == 24);
    }
    CHECK(llmkit_kv_cache_seq_erase(nullptr, 0, 0, 1, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_paged_kv_cache_seq_erase(nullptr, 0, 0, 1, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    // A cache whose V lies in K's rows (MLA's latent) turns the dims past V
    // alone: all of the row (rotary_dims 0), or dims reaching into V, are refused.
    cache latent(false, 1, 1, k_dim, LLMKIT_KV_F32, 64, 1, 16, 0, 32, true);
    const int32_t s = latent.seq_new();
    seq_data sd;
    latent.append(0, s, 8, rng, sd);
    const std::vector<uint8_t> before = latent.save(s);
    expect_error(latent.erase(s, 0, 2, &rope), LLMKIT_ERROR_SHAPE,
                 "rotary_dims must be in 2..32 (head_dim 64 - v_head_dim 32), got 0 (all of the row, the values too)");
    llmkit_rope_options wide = rope;
    wide.rotary_dims = 34;
    expect_error(latent.erase(s, 0, 2, &wide), LLMKIT_ERROR_SHAPE, "got 34");
    CHECK(latent.save(s) == before);
    cache flat(false, 1, 1, k_dim, LLMKIT_KV_F32, 64, 1, 16, 0, 0, true);  // V the whole row: nothing past it
    const int32_t fs = flat.seq_new();
    seq_data fd;
    flat.append(0, fs, 8, rng, fd);
    wide.rotary_dims = 2;
    expect_error(flat.erase(fs, 0, 2, &wide), LLMKIT_ERROR_SHAPE, "this one has 0 dims past V (head_dim 64)");
    REQUIRE(latent.erase(s, 0, 2, nullptr) == LLMKIT_OK);
    CHECK(latent.length(s) == 6);
}

TEST_CASE("paged kv cache: erase refuses released tokens and a pool too small for its copies", "[kv][erase][paged]") {
    std::mt19937 rng(76);
    const llmkit_rope_options rope = LLMKIT_ROPE_OPTIONS_INIT;
    token_rows t = draw(rng, k_tokens);
    {
        cache c(true, 1, k_hkv, k_dim, LLMKIT_KV_F32, 64, 2, 16, 4);
        const int32_t s1 = sequence_and_fork(c, t, rope).second;
        const std::vector<uint8_t> before = c.save(s1);
        // Blocks 0 and 1 are shared and must be copied: two free blocks needed, one left.
        expect_error(c.erase(s1, 4, 20, &rope), LLMKIT_ERROR_OUT_OF_MEMORY, "exhausted");
        CHECK(c.save(s1) == before);
        CHECK(c.free_blocks() == 1);
        // Erasing within the last block needs one copy: it fits.
        REQUIRE(c.erase(s1, 40, 44, &rope) == LLMKIT_OK);
        CHECK(c.length(s1) == 41);
    }
    cache c(true, 1, k_hkv, k_dim, LLMKIT_KV_F32, 64, 2, 16, 8);
    const int32_t s = c.seq_new();
    append(c, 0, s, t, 0, k_tokens, &rope);
    int64_t first = -1;
    REQUIRE(llmkit_paged_kv_cache_seq_release_before(c.p, s, 32, &first) == LLMKIT_OK);
    REQUIRE(first == 32);
    expect_error(c.erase(s, 4, 36, &rope), LLMKIT_ERROR_OUT_OF_RANGE, "released");
    REQUIRE(c.erase(s, 34, 36, &rope) == LLMKIT_OK);
    CHECK(c.length(s) == 43);
}

TEST_CASE("kv caches: the C++ face erases as the C calls do and throws for a bad span", "[kv][erase]") {
    std::mt19937 rng(77);
    const llmkit_rope_options rope = LLMKIT_ROPE_OPTIONS_INIT;
    token_rows t = draw(rng, k_tokens);
    llmkit_kv_cache_options co = LLMKIT_KV_CACHE_OPTIONS_INIT;
    co.n_kv_heads = k_hkv, co.head_dim = k_dim, co.capacity = 64, co.max_sequences = 1, co.dtype = LLMKIT_KV_BF16;
    llmkit_paged_kv_cache_options po = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
    po.n_kv_heads = k_hkv, po.head_dim = k_dim, po.block_size = 16, po.n_blocks = 4, po.max_sequences = 1;
    po.dtype = LLMKIT_KV_BF16;
    llmkit::kv_cache kc(co);
    llmkit::paged_kv_cache pc(po);
    const int32_t a = kc.seq_new(), b = pc.seq_new();
    const llmkit::tensor_ref k = llmkit::f32(t.k.data(), {k_tokens, k_hkv, k_dim});
    const llmkit::tensor_ref v = llmkit::f32(t.v.data(), {k_tokens, k_hkv, k_dim});
    kc.append_rope(0, a, k, v, &rope);
    pc.append_rope(0, b, k, v, &rope);
    kc.erase(a, 4, 20, &rope);
    pc.erase(b, 4, 20, &rope);
    // The C calls on a cache of the same rows give the same bytes.
    cache c(false, 1, k_hkv, k_dim, LLMKIT_KV_BF16, 64, 1);
    const int32_t s = c.seq_new();
    append(c, 0, s, t, 0, k_tokens, &rope);
    REQUIRE(c.erase(s, 4, 20, &rope) == LLMKIT_OK);
    CHECK(kc.save(a) == c.save(s));
    CHECK(pc.save(b) == c.save(s));
    CHECK(pc.free_blocks() == 2);
    for (int64_t to : {int64_t(40), int64_t(-1)}) {
        bool threw = false;
        try {
            kc.erase(a, 0, to);
        } catch (const llmkit::error &e) {
            threw = e.status() == LLMKIT_ERROR_OUT_OF_RANGE;
        }
        CHECK(threw);
    }
}
