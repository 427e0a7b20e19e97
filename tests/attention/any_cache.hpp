// Test helpers for the KV caches: one face over a contiguous or a paged
// cache (one layer), and the [S, Hkv, D] rows an append takes.
#pragma once

#include <catch2/catch.hpp>

#include <vector>

#include "helpers.hpp"
#include "llmkit/llmkit.h"

namespace attn_test {

// A contiguous or paged cache behind one face.
struct any_cache {
    bool paged = false;
    llmkit_kv_cache *c = nullptr;
    llmkit_paged_kv_cache *p = nullptr;

    any_cache(bool is_paged, int32_t D, int32_t type, int32_t n_kv_heads = 2) : paged(is_paged) {
        if (paged) {
            llmkit_paged_kv_cache_options o = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;
            o.n_layers = 1, o.n_kv_heads = n_kv_heads, o.head_dim = D, o.block_size = 16, o.n_blocks = 64, o.dtype = type;
            REQUIRE(llmkit_paged_kv_cache_create(&p, &o) == LLMKIT_OK);
        } else {
            llmkit_kv_cache_options o = LLMKIT_KV_CACHE_OPTIONS_INIT;
            o.n_layers = 1, o.n_kv_heads = n_kv_heads, o.head_dim = D, o.capacity = 256, o.max_sequences = 4, o.dtype = type;
            REQUIRE(llmkit_kv_cache_create(&c, &o) == LLMKIT_OK);
        }
    }
    ~any_cache() {
        llmkit_kv_cache_free(c);
        llmkit_paged_kv_cache_free(p);
    }
    any_cache(const any_cache &) = delete;
    any_cache &operator=(const any_cache &) = delete;

    int32_t seq_new() {
        int32_t s = -1;
        REQUIRE((paged ? llmkit_paged_kv_cache_seq_new(p, &s) : llmkit_kv_cache_seq_new(c, &s)) == LLMKIT_OK);
        return s;
    }
    int32_t fork(int32_t src) {
        int32_t s = -1;
        REQUIRE((paged ? llmkit_paged_kv_cache_seq_fork(p, src, &s) : llmkit_kv_cache_seq_fork(c, src, &s)) ==
                LLMKIT_OK);
        return s;
    }
    int64_t length(int32_t seq) {
        int64_t n = -1;
        REQUIRE((paged ? llmkit_paged_kv_cache_seq_length(p, seq, 0, &n) : llmkit_kv_cache_seq_length(c, seq, 0, &n)) ==
                LLMKIT_OK);
        return n;
    }
    llmkit_status append(int32_t seq, const llmkit_tensor *k, const llmkit_tensor *v) {
        return paged ? llmkit_paged_kv_cache_append(p, 0, seq, k, v) : llmkit_kv_cache_append(c, 0, seq, k, v);
    }
    llmkit_status append_rope(int32_t seq, const llmkit_tensor *k, const llmkit_tensor *v,
                              const llmkit_rope_options *rope) {
        return paged ? llmkit_paged_kv_cache_append_rope(p, 0, seq, k, v, rope)
                     : llmkit_kv_cache_append_rope(c, 0, seq, k, v, rope);
    }
    llmkit_status truncate(int32_t seq, int64_t n) {
        return paged ? llmkit_paged_kv_cache_seq_truncate(p, seq, n) : llmkit_kv_cache_seq_truncate(c, seq, n);
    }
    void free(int32_t seq) {
        REQUIRE((paged ? llmkit_paged_kv_cache_seq_free(p, seq) : llmkit_kv_cache_seq_free(c, seq)) == LLMKIT_OK);
    }
    int64_t free_blocks() {  // paged: the pool's free list; contiguous: -1
        int64_t n = -1;
        if (paged) REQUIRE(llmkit_paged_kv_cache_free_blocks(p, &n) == LLMKIT_OK);
        return n;
    }
    llmkit_status attention(const llmkit_tensor *q, const std::vector<int32_t> &ids, const llmkit_tensor *out,
                            const llmkit_kv_attention_options *o) {
        return paged ? llmkit_paged_kv_cache_attention(p, 0, q, ids.data(), int64_t(ids.size()), out, o)
                     : llmkit_kv_cache_attention(c, 0, q, ids.data(), int64_t(ids.size()), out, o);
    }
};

// The rows a [S, Hkv, D] append takes, as the [1, S, Hkv, D] tensor4 holds them.
inline llmkit_tensor rows_of(tensor4 &x, int64_t shape3[3]) {
    llmkit_tensor t = *x.c();
    t.ndim = 3;
    shape3[0] = x.shape[1], shape3[1] = x.shape[2], shape3[2] = x.shape[3];
    t.shape = shape3;
    t.strides = x.strides + 1;
    return t;
}

}  // namespace attn_test
