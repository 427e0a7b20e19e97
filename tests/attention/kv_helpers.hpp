// Shared by the KV-cache tests: one handle over either cache (through the C
// ABI), the values a cache stores for a row (the input rounded to the cache's
// dtype: bf16/fp16 rounding, or int8 and FP8 with the documented per-row scale), and a
// float64 reference of attention over those stored values.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "attention/kernels.hpp"
#include "helpers.hpp"
#include "llmkit/llmkit.h"
#include "quant/formats.hpp"

namespace kv_test {

using llmkit::core::dtype;

// Decode over an int8 cache (every query tile of fewer than 16 rows per kv
// head: decode, and the last tile of a prefill) on a CPU
// whose kernel set works in integers (AVX512-VNNI: kernels::dots_i8_pf)
// rounds the scaled queries to int16 per row (half a step of max |q| / 32767)
// and each weight p * (V row scale) to an int16 step of its tile's largest V
// row scale / 32767, so it meets the float64 reference over the stored values
// to about 2^-16 of the scores and weights instead of float32's 2^-24. On the
// N(0, 1) inputs of these tests (D 40..256, up to 411 keys) the outputs moved
// by at most 1.3e-4; this bound leaves about 2x. (Against the unquantised
// inputs int8 itself is off by up to 0.03.)
constexpr double k_int8_int_abs = 3e-4;
inline bool int8_decode_in_integers() { return llmkit::attention::best_kernels().dots_i8_pf != nullptr; }

inline const char *kv_name(int32_t t) {
    static const char *names[] = {"f32", "bf16", "f16", "int8", "fp8_e4m3", "fp8_e5m2"};
    return t >= 0 && t < 6 ? names[t] : "?";
}
inline bool kv_is_fp8(int32_t t) { return t == LLMKIT_KV_FP8_E4M3 || t == LLMKIT_KV_FP8_E5M2; }

// The value a cache of type t stores for each element of one row of D (the
// int8 format is the header's: scale = absmax / 127, q = round(x / scale);
// FP8's: scale = absmax / 448 or / 57344, q = fp8(x / scale), decoded by the
// quant block's tables, which test_quant_formats.py checks against torch).
inline std::vector<double> stored_row(int32_t t, const std::vector<double> &x) {
    using namespace llmkit::core;
    std::vector<double> y(x.size());
    if (kv_is_fp8(t)) {
        const bool e4m3 = t == LLMKIT_KV_FP8_E4M3;
        float amax = 0.0f;
        for (double e : x) amax = std::max(amax, std::fabs(float(e)));
        const float scale = amax > 0.0f ? amax / (e4m3 ? 448.0f : 57344.0f) : 1.0f;
        for (size_t d = 0; d < x.size(); ++d) {
            const float v = float(x[d]) / scale;
            const float q = e4m3 ? llmkit::quant::e4m3_to_f32(llmkit::quant::f32_to_e4m3(v))
                                 : llmkit::quant::e5m2_to_f32(llmkit::quant::f32_to_e5m2(v));
            y[d] = double(q) * double(scale);
        }
        return y;
    }
    if (t == LLMKIT_KV_INT8) {
        float amax = 0.0f;
        for (double e : x) amax = std::max(amax, std::fabs(float(e)));
        const float scale = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (size_t d = 0; d < x.size(); ++d) {
            const float q = std::min(127.0f, std::max(-127.0f, std::nearbyint(float(x[d]) * inv)));
            y[d] = double(q) * double(scale);
        }
        return y;
    }
    for (size_t d = 0; d < x.size(); ++d)
        y[d] = t == LLMKIT_KV_BF16   ? double(bf16_to_f32(f32_to_bf16(float(x[d]))))
               : t == LLMKIT_KV_F16 ? double(f16_to_f32(f32_to_f16(float(x[d]))))
                                    : double(float(x[d]));
    return y;
}

// One sequence's tokens as the test knows them: the inputs and what the cache holds.
struct seq_data {
    std::vector<double> k_in, v_in;        // [len][Hkv][D] and [len][Hkv][Dv], exactly the appended values
    std::vector<double> k_store, v_store;  // the same, as stored
    int64_t len = 0;
};

// V's head_dim as the sequences hold it (D where they hold no tokens).
inline int64_t value_dim(const std::vector<const seq_data *> &seqs, int64_t Hkv, int64_t D) {
    for (const seq_data *s : seqs)
        if (s->len > 0) return int64_t(s->v_store.size()) / (s->len * Hkv);
    return D;
}

struct ref_options {
    bool causal = true;
    int64_t window = 0;
    double softcap = 0.0;
    const float *alibi = nullptr;
    const float *sinks = nullptr;
    bool use_inputs = false;  // attend over the unquantised inputs instead of the stored values
};

// float64 attention of q [B][Sq][Hq][D] (the last Sq tokens of seqs[b]); returns [B][Sq][Hq][Dv].
// lse (null: not wanted) receives each row's log-sum-exp [B][Sq][Hq].
inline std::vector<double> reference(const attn_test::tensor4 &q, const std::vector<const seq_data *> &seqs,
                                     int64_t Hkv, const ref_options &o, std::vector<double> *lse = nullptr) {
    const int64_t B = q.shape[0], Sq = q.shape[1], Hq = q.shape[2], D = q.shape[3], G = Hq / Hkv;
    const int64_t Dv = value_dim(seqs, Hkv, D);
    const double scale = 1.0 / std::sqrt(double(D));
    std::vector<double> out(size_t(B * Sq * Hq * Dv), 0.0);
    if (lse) lse->assign(size_t(B * Sq * Hq), -INFINITY);
    for (int64_t b = 0; b < B; ++b) {
        const seq_data &s = *seqs[size_t(b)];
        const auto &K = o.use_inputs ? s.k_in : s.k_store;
        const auto &V = o.use_inputs ? s.v_in : s.v_store;
        const int64_t L = s.len;
        std::vector<double> sc(static_cast<size_t>(L));
        for (int64_t i = 0; i < Sq; ++i)
            for (int64_t h = 0; h < Hq; ++h) {
                const int64_t pos = L - Sq + i, g = h / G;
                // Row pointers rather than an index per element (see test_attention.cpp's reference).
                const double *qr = &q.vals[size_t(q.idx(b, i, h, 0))];
                double mx = -INFINITY;
                for (int64_t j = 0; j < L; ++j) {
                    const double *kr = &K[size_t((j * Hkv + g) * D)];
                    double acc = 0.0;
                    for (int64_t d = 0; d < D; ++d) acc += qr[d] * kr[d];
                    acc *= scale;
                    if (o.softcap > 0) acc = o.softcap * std::tanh(acc / o.softcap);
                    if (o.alibi) acc -= double(o.alibi[h]) * double(pos - j);
                    if ((o.causal || o.window > 0) && j > pos) acc = -INFINITY;
                    if (o.window > 0 && j <= pos - o.window) acc = -INFINITY;
                    sc[size_t(j)] = acc;
                    mx = std::max(mx, acc);
                }
                if (o.sinks) mx = std::max(mx, double(o.sinks[h]));
                if (mx == -INFINITY) continue;
                double sum = o.sinks ? std::exp(double(o.sinks[h]) - mx) : 0.0;
                for (int64_t j = 0; j < L; ++j) sum += (sc[size_t(j)] = std::exp(sc[size_t(j)] - mx));
                if (lse) (*lse)[size_t((b * Sq + i) * Hq + h)] = mx + std::log(sum);
                double *o = &out[size_t(((b * Sq + i) * Hq + h) * Dv)];
                for (int64_t j = 0; j < L; ++j) {
                    const double *vr = &V[size_t((j * Hkv + g) * Dv)];
                    for (int64_t d = 0; d < Dv; ++d) o[d] += sc[size_t(j)] / sum * vr[d];
                }
            }
    }
    return out;
}

// A call's status is `want` and its message holds `needle`.
inline void expect_error(llmkit_status st, llmkit_status want, const char *needle) {
    INFO("message: " << llmkit_last_error_message());
    CHECK(st == want);
    CHECK(std::string(llmkit_last_error_message()).find(needle) != std::string::npos);
}

inline llmkit_tensor rows_tensor(float *data, const int64_t *shape3) {
    return attn_test::host_tensor(data, llmkit_dtype LLMKIT_DTYPE_F32, 3, shape3);
}

// Either cache, through the C ABI.
struct cache {
    bool paged = false;
    llmkit_kv_cache *c = nullptr;
    llmkit_paged_kv_cache *p = nullptr;
    int64_t Hkv = 0, D = 0, Dv = 0;  // Dv: V's head_dim
    int32_t type = LLMKIT_KV_F32;
    bool v_from_k = false;  // no V kept: a token's V is the first Dv elements of its K row

    cache(bool paged_, int32_t n_layers, int32_t hkv, int32_t d, int32_t t, int64_t capacity = 1024, int32_t max_seqs = 8,
          int32_t block_size = 16, int64_t n_blocks = 0, int32_t dv = 0, bool v_in_k = false)
        : paged(paged_), Hkv(hkv), D(d), Dv(dv > 0 ? dv : d), type(t), v_from_k(v_in_k) {
        if (paged) {
            llmkit_paged_kv_cache_options o = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
            o.n_layers = n_layers, o.n_kv_heads = hkv, o.head_dim = d, o.block_size = block_size, o.dtype = t;
            o.v_head_dim = dv, o.v_from_k = v_in_k;
            o.max_sequences = max_seqs;
            o.n_blocks = n_blocks > 0 ? n_blocks : max_seqs * ((capacity + block_size - 1) / block_size);
            o.max_blocks_per_seq = (capacity + block_size - 1) / block_size;
            REQUIRE(llmkit_paged_kv_cache_create(&p, &o) == LLMKIT_OK);
        } else {
            llmkit_kv_cache_options o = LLMKIT_KV_CACHE_OPTIONS_INIT;
            o.n_layers = n_layers, o.n_kv_heads = hkv, o.head_dim = d, o.capacity = capacity, o.dtype = t;
            o.max_sequences = max_seqs;
            o.v_head_dim = dv, o.v_from_k = v_in_k;
            REQUIRE(llmkit_kv_cache_create(&c, &o) == LLMKIT_OK);
        }
    }
    cache(const cache &) = delete;
    cache &operator=(const cache &) = delete;
    ~cache() {
        llmkit_kv_cache_free(c);
        llmkit_paged_kv_cache_free(p);
    }

    int32_t seq_new() {
        int32_t s = -1;
        const llmkit_status st = paged ? llmkit_paged_kv_cache_seq_new(p, &s) : llmkit_kv_cache_seq_new(c, &s);
        INFO(llmkit_last_error_message());
        REQUIRE(st == LLMKIT_OK);
        return s;
    }
    llmkit_status fork(int32_t src, int32_t *dst) {
        return paged ? llmkit_paged_kv_cache_seq_fork(p, src, dst) : llmkit_kv_cache_seq_fork(c, src, dst);
    }
    llmkit_status free_seq(int32_t s) { return paged ? llmkit_paged_kv_cache_seq_free(p, s) : llmkit_kv_cache_seq_free(c, s); }
    int64_t length(int32_t s, int32_t layer = -1) {
        int64_t n = -1;
        const llmkit_status st =
            paged ? llmkit_paged_kv_cache_seq_length(p, s, layer, &n) : llmkit_kv_cache_seq_length(c, s, layer, &n);
        REQUIRE(st == LLMKIT_OK);
        return n;
    }
    llmkit_status append_raw(int32_t layer, int32_t s, const llmkit_tensor *k, const llmkit_tensor *v) {
        return paged ? llmkit_paged_kv_cache_append(p, layer, s, k, v) : llmkit_kv_cache_append(c, layer, s, k, v);
    }
    // Appends n random tokens (N(0,1)) to layer `layer` of sequence s and records them in sd.
    void append(int32_t layer, int32_t s, int64_t n, std::mt19937 &rng, seq_data &sd) {
        attn_test::normal_draws nd;
        std::vector<float> kb(size_t(n * Hkv * D)), vb(size_t(n * Hkv * Dv));
        for (int kv = 0; kv < (v_from_k ? 1 : 2); ++kv) {
            auto &buf = kv == 0 ? kb : vb;
            auto &in = kv == 0 ? sd.k_in : sd.v_in;
            auto &st = kv == 0 ? sd.k_store : sd.v_store;
            const int64_t W = kv == 0 ? D : Dv;
            for (int64_t r = 0; r < n * Hkv; ++r) {
                std::vector<double> row(static_cast<size_t>(W));
                for (int64_t d = 0; d < W; ++d) {
                    buf[size_t(r * W + d)] = float(nd(rng));
                    row[size_t(d)] = buf[size_t(r * W + d)];
                }
                const std::vector<double> stored = stored_row(type, row);
                in.insert(in.end(), row.begin(), row.end());
                st.insert(st.end(), stored.begin(), stored.end());
                if (v_from_k) {  // V: the first Dv of the row, as given and as stored (K's int8 scale)
                    sd.v_in.insert(sd.v_in.end(), row.begin(), row.begin() + Dv);
                    sd.v_store.insert(sd.v_store.end(), stored.begin(), stored.begin() + Dv);
                }
            }
        }
        const int64_t shape[3] = {n, Hkv, D}, v_shape[3] = {n, Hkv, Dv};
        llmkit_tensor kt = rows_tensor(kb.data(), shape), vt = rows_tensor(vb.data(), v_shape);
        const llmkit_status st = append_raw(layer, s, &kt, v_from_k ? nullptr : &vt);
        INFO(llmkit_last_error_message());
        REQUIRE(st == LLMKIT_OK);
        sd.len += n;
    }
    llmkit_status attention(int32_t layer, attn_test::tensor4 &q, const std::vector<int32_t> &ids,
                            attn_test::tensor4 &out, const llmkit_kv_attention_options *o) {
        return paged ? llmkit_paged_kv_cache_attention(p, layer, q.c(), ids.data(), int64_t(ids.size()), out.c(), o)
                     : llmkit_kv_cache_attention(c, layer, q.c(), ids.data(), int64_t(ids.size()), out.c(), o);
    }
    // The paged cache's block table of s (-1: released), and its free blocks.
    std::vector<int32_t> table(int32_t s) {
        int64_t n = 0;
        REQUIRE(llmkit_paged_kv_cache_seq_block_table(p, s, nullptr, 0, &n) == LLMKIT_OK);
        std::vector<int32_t> t(static_cast<size_t>(n));
        REQUIRE(llmkit_paged_kv_cache_seq_block_table(p, s, t.data(), n, &n) == LLMKIT_OK);
        return t;
    }
    int64_t free_blocks() {
        int64_t n = -1;
        REQUIRE(llmkit_paged_kv_cache_free_blocks(p, &n) == LLMKIT_OK);
        return n;
    }
    uint64_t memory() {
        uint64_t used = 0;
        if (paged)
            REQUIRE(llmkit_paged_kv_cache_memory_bytes(p, &used, nullptr) == LLMKIT_OK);
        else
            REQUIRE(llmkit_kv_cache_memory_bytes(c, &used) == LLMKIT_OK);
        return used;
    }
    llmkit_status erase(int32_t s, int64_t from, int64_t to, const llmkit_rope_options *rope) {
        return paged ? llmkit_paged_kv_cache_seq_erase(p, s, from, to, rope)
                     : llmkit_kv_cache_seq_erase(c, s, from, to, rope);
    }
    // The saved bytes of s (llmkit_*_seq_save), and a load of bytes into s.
    std::vector<uint8_t> save(int32_t s) {
        size_t n = 0;
        REQUIRE((paged ? llmkit_paged_kv_cache_seq_save(p, s, nullptr, 0, &n) : llmkit_kv_cache_seq_save(c, s, nullptr, 0, &n)) ==
                LLMKIT_ERROR_BUFFER_TOO_SMALL);
        std::vector<uint8_t> bytes(n);
        const llmkit_status st = paged ? llmkit_paged_kv_cache_seq_save(p, s, bytes.data(), n, nullptr)
                                       : llmkit_kv_cache_seq_save(c, s, bytes.data(), n, nullptr);
        INFO(llmkit_last_error_message());
        REQUIRE(st == LLMKIT_OK);
        return bytes;
    }
    llmkit_status load(int32_t s, const std::vector<uint8_t> &bytes) {
        return paged ? llmkit_paged_kv_cache_seq_load(p, s, bytes.data(), bytes.size())
                     : llmkit_kv_cache_seq_load(c, s, bytes.data(), bytes.size());
    }
};

// |got - ref| <= abs + rel |ref| everywhere; returns the largest error.
inline double max_error(const attn_test::tensor4 &out, const std::vector<double> &ref, double abs, double rel,
                        bool *within) {
    double worst = 0.0;
    *within = true;
    for (int64_t b = 0; b < out.shape[0]; ++b)
        for (int64_t s = 0; s < out.shape[1]; ++s)
            for (int64_t h = 0; h < out.shape[2]; ++h)
                for (int64_t d = 0; d < out.shape[3]; ++d) {
                    const double want = ref[size_t(out.idx(b, s, h, d))], got = out.get(b, s, h, d);
                    const double err = std::fabs(got - want);
                    if (!(err <= abs + rel * std::fabs(want))) *within = false;
                    if (!(err <= worst)) worst = std::isnan(err) ? INFINITY : err;
                }
    return worst;
}

inline bool same_bits(const attn_test::tensor4 &a, const attn_test::tensor4 &b) { return a.bytes == b.bytes; }

}  // namespace kv_test
