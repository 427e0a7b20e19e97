// C ABI: scaled-dot-product attention, RoPE, KV-cache arithmetic.
#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>

#include "attention/attention.hpp"
#include "attention/kernels.hpp"
#include "attention/kv_cache.hpp"
#include "attention/paged_kv_cache.hpp"
#include "guard.hpp"
#include "llmkit/llmkit.h"

using namespace llmkit;
using core::fail;

namespace {

const llmkit_attention_options k_attention_defaults = LLMKIT_ATTENTION_OPTIONS_INIT;
const llmkit_rope_options k_rope_defaults = LLMKIT_ROPE_OPTIONS_INIT;
const llmkit_kv_attention_options k_kv_attention_defaults = LLMKIT_KV_ATTENTION_OPTIONS_INIT;
const llmkit_kv_cache_options k_kv_cache_defaults = LLMKIT_KV_CACHE_OPTIONS_INIT;
const llmkit_paged_kv_cache_options k_paged_defaults = LLMKIT_PAGED_KV_CACHE_OPTIONS_INIT;

attention::kv_dtype kv_dtype_of(int32_t d) {
    if (d < LLMKIT_KV_F32 || d > LLMKIT_KV_FP8_E5M2)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.dtype = ", d, " is not an llmkit_kv_dtype (0..5)");
    return attention::kv_dtype(d);
}

// Checks per-head float arrays against q's head count.
// q's heads are axis rank - 2 of a q of the call's rank: [B, S, H, D] (rank 4)
// or packed [T, H, D] (rank 3). Nothing is read for a q of another rank,
// which the call then refuses.
void check_head_values(const float *x, const core::tensor_view &q, int rank, const char *what) {
    if (!x || q.ndim != rank) return;
    for (int64_t h = 0; h < q.shape[rank - 2]; ++h)
        if (!std::isfinite(x[h])) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.", what, "[", h, "] is not finite (", x[h], ")");
}

// The options llmkit_attention and the cache calls share: checked, then
// copied into the core's parameters p (attention_params or cache_attention_params).
template <class Options, class Params>
void take_attention_options(const Options &o, const core::tensor_view &q, int rank, Params &p) {
    if (o.window < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.window must be >= 0, got ", o.window);
    if (!std::isfinite(o.softcap) || o.softcap < 0.0f)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.softcap must be finite and >= 0, got ", o.softcap);
    if (!std::isfinite(o.scale) || o.scale < 0.0f)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.scale must be finite and >= 0 (0 = 1/sqrt(D)), got ", o.scale);
    if (o.n_threads < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.n_threads must be >= 0, got ", o.n_threads);
    check_head_values(o.alibi_slopes, q, rank, "alibi_slopes");
    check_head_values(o.sinks, q, rank, "sinks");
    p.causal = o.causal != 0;
    p.window = o.window;
    p.softcap = o.softcap;
    p.scale = o.scale;
    p.alibi_slopes = o.alibi_slopes;
    p.sinks = o.sinks;
    p.n_threads = o.n_threads;
}

// llmkit_attention_options (NULL: the defaults) as the core's parameters for
// queries q of the call's rank (4, or 3 packed); `mask` and `lse` hold the
// views p.mask and p.lse point to.
attention::attention_params attention_params_of(const llmkit_attention_options *options, const core::tensor_view &q,
                                                int rank, std::optional<core::tensor_view> &mask,
                                                std::optional<core::tensor_view> &lse) {
    const auto o = capi::read_options(options, k_attention_defaults, "options");
    if (o.mask) mask = core::tensor_view::from(o.mask, "options.mask");
    if (o.lse) lse = core::tensor_view::from(o.lse, "options.lse");
    attention::attention_params p;
    take_attention_options(o, q, rank, p);
    p.mask = mask ? &*mask : nullptr;
    p.lse = lse ? &*lse : nullptr;
    p.stream = o.stream;
    return p;
}

// llmkit_rope_options (NULL: the defaults) as the core's parameters; `name`
// prefixes the errors (a struct_size that does not fit, a negative n_threads).
attention::rope_params rope_params_of(const llmkit_rope_options *options, const char *name) {
    const auto o = capi::read_options(options, k_rope_defaults, name);
    if (o.n_threads < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, name, ".n_threads must be >= 0, got ", o.n_threads);
    attention::rope_params p;
    p.layout = attention::rope_layout(o.layout);
    p.theta = o.theta;
    p.rotary_dims = o.rotary_dims;
    p.scaling = attention::rope_scaling(o.scaling);
    p.factor = o.factor;
    p.alpha = o.alpha;
    p.low_freq_factor = o.low_freq_factor;
    p.high_freq_factor = o.high_freq_factor;
    p.original_max_position = o.original_max_position;
    p.beta_fast = o.beta_fast;
    p.beta_slow = o.beta_slow;
    p.attention_factor = o.attention_factor;
    p.n_threads = o.n_threads;
    p.stream = o.stream;
    p.frequency_factors = o.frequency_factors;
    for (int i = 0; i < 3; ++i) p.mrope_section[i] = o.mrope_section[i];
    p.mrope_interleaved = o.mrope_interleaved;
    return p;
}

// The cache calls' parameters; `rope`, `lse` and `cu_seqlens_q` hold what
// p.rope, p.lse and p.cu_seqlens_q point to, when options ask for them.
attention::cache_attention_params kv_params(const llmkit_kv_attention_options *options, const core::tensor_view &q,
                                            std::optional<attention::rope_params> &rope,
                                            std::optional<core::tensor_view> &lse,
                                            std::optional<core::tensor_view> &cu_seqlens_q) {
    const auto o = capi::read_options(options, k_kv_attention_defaults, "options");
    attention::cache_attention_params p;
    take_attention_options(o, q, o.cu_seqlens_q ? 3 : 4, p);
    if (o.split_keys < 0 || o.split_keys > (int64_t(1) << 40))
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.split_keys must be in 0..2^40, got ", o.split_keys);
    p.split_keys = o.split_keys;
    if (o.rope) p.rope = &rope.emplace(rope_params_of(o.rope, "options.rope"));
    if (o.lse) p.lse = &lse.emplace(core::tensor_view::from(o.lse, "options.lse"));
    if (o.cu_seqlens_q)
        p.cu_seqlens_q = &cu_seqlens_q.emplace(core::tensor_view::from(o.cu_seqlens_q, "options.cu_seqlens_q"));
    return p;
}

void check_seq_ids(const int32_t *seq_ids, int64_t n_seqs) {
    if (n_seqs < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "n_seqs must be >= 0, got ", n_seqs);
    if (n_seqs > 0) capi::require_non_null(seq_ids, "seq_ids");
}

}  // namespace

struct llmkit_kv_cache {
    attention::kv_cache impl;
};

struct llmkit_paged_kv_cache {
    attention::paged_kv_cache impl;
};

namespace {

// The calls the contiguous and the paged cache share, written once for both handles.
template <class Cache>
llmkit_status cache_seq_new(Cache *cache, int32_t *seq) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        capi::require_non_null(seq, "seq");
        *seq = cache->impl.seq_new();
    });
}

template <class Cache>
llmkit_status cache_seq_fork(Cache *cache, int32_t src, int32_t *seq) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        capi::require_non_null(seq, "seq");
        *seq = cache->impl.seq_fork(src);
    });
}

template <class Cache>
llmkit_status cache_seq_free(Cache *cache, int32_t seq) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        cache->impl.seq_free(seq);
    });
}

template <class Cache>
llmkit_status cache_seq_truncate(Cache *cache, int32_t seq, int64_t n) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        cache->impl.seq_truncate(seq, n);
    });
}

template <class Cache>
llmkit_status cache_seq_erase(Cache *cache, int32_t seq, int64_t from, int64_t to, const llmkit_rope_options *rope) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        std::optional<attention::rope_params> rp;
        if (rope) rp = rope_params_of(rope, "rope");
        cache->impl.seq_erase(seq, from, to, rp ? &*rp : nullptr);
    });
}

template <class Cache>
llmkit_status cache_seq_save(const Cache *cache, int32_t seq, void *buf, size_t capacity, size_t *written) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        const uint64_t needed = cache->impl.seq_save_bytes(seq);
        if (written) *written = size_t(needed);
        if (!buf || capacity < needed)
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "buf: sequence ", seq, " needs ", needed, " bytes, capacity is ",
                 buf ? capacity : 0);
        cache->impl.seq_save(seq, static_cast<char *>(buf));
    });
}

template <class Cache>
llmkit_status cache_seq_load(Cache *cache, int32_t seq, const void *data, size_t size) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        if (size > 0) capi::require_non_null(data, "data");  // NULL with size 0: an empty buffer, refused as too short
        cache->impl.seq_load(seq, data, size);
    });
}

template <class Cache>
llmkit_status cache_seq_length(const Cache *cache, int32_t seq, int32_t layer, int64_t *length) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        capi::require_non_null(length, "length");
        *length = cache->impl.length(seq, layer);
    });
}

// With fused RoPE (with_rope: `rope` NULL means the default rotation) or without.
template <class Cache>
llmkit_status cache_append(Cache *cache, int32_t layer, int32_t seq, const llmkit_tensor *k, const llmkit_tensor *v,
                           bool with_rope = false, const llmkit_rope_options *rope = nullptr) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        std::optional<attention::rope_params> rp;
        if (with_rope) rp = rope_params_of(rope, "rope");
        // v NULL: a cache that keeps no V (v_from_k); the core names the mistake otherwise.
        std::optional<core::tensor_view> tv;
        if (v) tv = core::tensor_view::from(v, "v");
        cache->impl.append(layer, seq, core::tensor_view::from(k, "k"), tv ? &*tv : nullptr, rp ? &*rp : nullptr);
    });
}

template <class Cache>
llmkit_status cache_attention(const Cache *cache, int32_t layer, const llmkit_tensor *q, const int32_t *seq_ids,
                              int64_t n_seqs, const llmkit_tensor *out, const llmkit_kv_attention_options *options) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        const auto tq = core::tensor_view::from(q, "q");
        const auto to = core::tensor_view::from(out, "out");
        check_seq_ids(seq_ids, n_seqs);
        std::optional<attention::rope_params> rope;
        std::optional<core::tensor_view> lse, cu;
        cache->impl.attention(layer, tq, seq_ids, n_seqs, to, kv_params(options, tq, rope, lse, cu));
    });
}

}  // namespace

extern "C" {

llmkit_status llmkit_attention(const llmkit_tensor *q, const llmkit_tensor *k, const llmkit_tensor *v,
                               const llmkit_tensor *out, const llmkit_attention_options *options) {
    return capi::guard([&] {
        const auto tq = core::tensor_view::from(q, "q");
        const auto tk = core::tensor_view::from(k, "k");
        const auto tv = core::tensor_view::from(v, "v");
        const auto to = core::tensor_view::from(out, "out");
        std::optional<core::tensor_view> tm, tl;
        attention::attention(tq, tk, tv, to, attention_params_of(options, tq, 4, tm, tl));
    });
}

llmkit_status llmkit_attention_varlen(const llmkit_tensor *q, const llmkit_tensor *k, const llmkit_tensor *v,
                                      const llmkit_tensor *cu_seqlens_q, const llmkit_tensor *cu_seqlens_k,
                                      const llmkit_tensor *out, const llmkit_attention_options *options) {
    return capi::guard([&] {
        const auto tq = core::tensor_view::from(q, "q");
        const auto tk = core::tensor_view::from(k, "k");
        const auto tv = core::tensor_view::from(v, "v");
        const auto tcq = core::tensor_view::from(cu_seqlens_q, "cu_seqlens_q");
        const auto tck = core::tensor_view::from(cu_seqlens_k, "cu_seqlens_k");
        const auto to = core::tensor_view::from(out, "out");
        std::optional<core::tensor_view> tm, tl;
        attention::attention_varlen(tq, tk, tv, tcq, tck, to, attention_params_of(options, tq, 3, tm, tl));
    });
}

llmkit_status llmkit_attention_merge(const llmkit_tensor *out, const llmkit_tensor *lse, const llmkit_tensor *other_out,
                                     const llmkit_tensor *other_lse) {
    return capi::guard([&] {
        attention::merge(core::tensor_view::from(out, "out"), core::tensor_view::from(lse, "lse"),
                         core::tensor_view::from(other_out, "other_out"), core::tensor_view::from(other_lse, "other_lse"));
    });
}

llmkit_status llmkit_rope(const llmkit_tensor *x, const llmkit_tensor *positions, const llmkit_rope_options *options) {
    return capi::guard([&] {
        const attention::rope_params p = rope_params_of(options, "options");
        const auto tx = core::tensor_view::from(x, "x");
        const auto tp = core::tensor_view::from(positions, "positions");
        attention::rope(tx, tp, tx, p);
    });
}

llmkit_status llmkit_rope_into(const llmkit_tensor *x, const llmkit_tensor *positions, const llmkit_tensor *out,
                               const llmkit_rope_options *options) {
    return capi::guard([&] {
        const attention::rope_params p = rope_params_of(options, "options");
        const auto tx = core::tensor_view::from(x, "x");
        const auto tp = core::tensor_view::from(positions, "positions");
        const auto to = core::tensor_view::from(out, "out");
        attention::rope(tx, tp, to, p);
    });
}

const char *llmkit_attention_isa(void) {
    const attention::kernels &k = attention::best_kernels();
    return k.dots_i8_pf ? "avx512vnni" : k.name;
}

llmkit_status llmkit_kv_cache_bytes(uint64_t *out, int64_t n_layers, int64_t n_kv_heads, int64_t head_dim,
                                    int64_t dtype_bytes, int64_t context, int64_t batch) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = 0;
        *out = attention::kv_cache_bytes(n_layers, n_kv_heads, head_dim, head_dim, dtype_bytes, context, batch);
    });
}

llmkit_status llmkit_kv_cache_bytes_dv(uint64_t *out, int64_t n_layers, int64_t n_kv_heads, int64_t head_dim,
                                       int64_t v_head_dim, int64_t dtype_bytes, int64_t context, int64_t batch) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = 0;
        *out = attention::kv_cache_bytes(n_layers, n_kv_heads, head_dim, v_head_dim, dtype_bytes, context, batch);
    });
}

// ---------------------------------------------------------------------------
// The contiguous KV cache.

llmkit_status llmkit_kv_cache_create(llmkit_kv_cache **out, const llmkit_kv_cache_options *options) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = nullptr;
        capi::require_non_null(options, "options");
        const auto o = capi::read_options(options, k_kv_cache_defaults, "options");
        auto c = std::unique_ptr<llmkit_kv_cache>(new llmkit_kv_cache{attention::kv_cache(
            o.n_layers, o.n_kv_heads, o.head_dim, o.capacity, o.max_sequences, kv_dtype_of(o.dtype), o.v_head_dim,
            o.v_from_k != 0)});
        *out = c.release();
    });
}

void llmkit_kv_cache_free(llmkit_kv_cache *cache) { delete cache; }

llmkit_status llmkit_kv_cache_seq_new(llmkit_kv_cache *cache, int32_t *seq) {
    return cache_seq_new(cache, seq);
}

llmkit_status llmkit_kv_cache_seq_fork(llmkit_kv_cache *cache, int32_t src, int32_t *seq) {
    return cache_seq_fork(cache, src, seq);
}

llmkit_status llmkit_kv_cache_seq_free(llmkit_kv_cache *cache, int32_t seq) {
    return cache_seq_free(cache, seq);
}

llmkit_status llmkit_kv_cache_seq_truncate(llmkit_kv_cache *cache, int32_t seq, int64_t n) {
    return cache_seq_truncate(cache, seq, n);
}

llmkit_status llmkit_kv_cache_seq_erase(llmkit_kv_cache *cache, int32_t seq, int64_t from, int64_t to,
                                        const llmkit_rope_options *rope) {
    return cache_seq_erase(cache, seq, from, to, rope);
}

llmkit_status llmkit_kv_cache_seq_save(const llmkit_kv_cache *cache, int32_t seq, void *buf, size_t capacity,
                                       size_t *written) {
    return cache_seq_save(cache, seq, buf, capacity, written);
}

llmkit_status llmkit_kv_cache_seq_load(llmkit_kv_cache *cache, int32_t seq, const void *data, size_t size) {
    return cache_seq_load(cache, seq, data, size);
}

llmkit_status llmkit_kv_cache_seq_length(const llmkit_kv_cache *cache, int32_t seq, int32_t layer, int64_t *length) {
    return cache_seq_length(cache, seq, layer, length);
}

llmkit_status llmkit_kv_cache_append(llmkit_kv_cache *cache, int32_t layer, int32_t seq, const llmkit_tensor *k,
                                     const llmkit_tensor *v) {
    return cache_append(cache, layer, seq, k, v);
}

llmkit_status llmkit_kv_cache_append_rope(llmkit_kv_cache *cache, int32_t layer, int32_t seq, const llmkit_tensor *k,
                                          const llmkit_tensor *v, const llmkit_rope_options *rope) {
    return cache_append(cache, layer, seq, k, v, true, rope);
}

llmkit_status llmkit_kv_cache_attention(const llmkit_kv_cache *cache, int32_t layer, const llmkit_tensor *q,
                                        const int32_t *seq_ids, int64_t n_seqs, const llmkit_tensor *out,
                                        const llmkit_kv_attention_options *options) {
    return cache_attention(cache, layer, q, seq_ids, n_seqs, out, options);
}

llmkit_status llmkit_kv_cache_memory_bytes(const llmkit_kv_cache *cache, uint64_t *bytes) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        capi::require_non_null(bytes, "bytes");
        *bytes = cache->impl.memory_bytes();
    });
}

// ---------------------------------------------------------------------------
// The paged KV cache.

llmkit_status llmkit_paged_kv_cache_create(llmkit_paged_kv_cache **out, const llmkit_paged_kv_cache_options *options) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        *out = nullptr;
        capi::require_non_null(options, "options");
        const auto o = capi::read_options(options, k_paged_defaults, "options");
        if (o.max_blocks_per_seq < 0)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.max_blocks_per_seq must be >= 0 (0 = n_blocks), got ",
                 o.max_blocks_per_seq);
        const int64_t per_seq = o.max_blocks_per_seq > 0 ? o.max_blocks_per_seq : o.n_blocks;
        auto c = std::unique_ptr<llmkit_paged_kv_cache>(new llmkit_paged_kv_cache{
            attention::paged_kv_cache(o.n_layers, o.n_kv_heads, o.head_dim, o.block_size, o.n_blocks,
                                      o.max_sequences, per_seq, kv_dtype_of(o.dtype), o.v_head_dim, o.v_from_k != 0)});
        *out = c.release();
    });
}

void llmkit_paged_kv_cache_free(llmkit_paged_kv_cache *cache) { delete cache; }

llmkit_status llmkit_paged_kv_cache_seq_new(llmkit_paged_kv_cache *cache, int32_t *seq) {
    return cache_seq_new(cache, seq);
}

llmkit_status llmkit_paged_kv_cache_seq_fork(llmkit_paged_kv_cache *cache, int32_t src, int32_t *seq) {
    return cache_seq_fork(cache, src, seq);
}

llmkit_status llmkit_paged_kv_cache_seq_free(llmkit_paged_kv_cache *cache, int32_t seq) {
    return cache_seq_free(cache, seq);
}

llmkit_status llmkit_paged_kv_cache_seq_erase(llmkit_paged_kv_cache *cache, int32_t seq, int64_t from, int64_t to,
                                              const llmkit_rope_options *rope) {
    return cache_seq_erase(cache, seq, from, to, rope);
}

llmkit_status llmkit_paged_kv_cache_seq_truncate(llmkit_paged_kv_cache *cache, int32_t seq, int64_t n) {
    return cache_seq_truncate(cache, seq, n);
}

llmkit_status llmkit_paged_kv_cache_seq_release_before(llmkit_paged_kv_cache *cache, int32_t seq, int64_t n,
                                                       int64_t *first_held) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        const int64_t first = cache->impl.seq_release_before(seq, n);
        if (first_held) *first_held = first;
    });
}

llmkit_status llmkit_paged_kv_cache_seq_save(const llmkit_paged_kv_cache *cache, int32_t seq, void *buf,
                                             size_t capacity, size_t *written) {
    return cache_seq_save(cache, seq, buf, capacity, written);
}

llmkit_status llmkit_paged_kv_cache_seq_load(llmkit_paged_kv_cache *cache, int32_t seq, const void *data,
                                             size_t size) {
    return cache_seq_load(cache, seq, data, size);
}

llmkit_status llmkit_paged_kv_cache_seq_length(const llmkit_paged_kv_cache *cache, int32_t seq, int32_t layer,
                                               int64_t *length) {
    return cache_seq_length(cache, seq, layer, length);
}

llmkit_status llmkit_paged_kv_cache_seq_block_table(const llmkit_paged_kv_cache *cache, int32_t seq, int32_t *buf,
                                                    int64_t capacity, int64_t *needed) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        capi::require_non_null(needed, "needed");
        const auto &t = cache->impl.block_table(seq);
        *needed = int64_t(t.size());
        if (!buf) return;
        if (capacity < int64_t(t.size()))
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "buf holds ", capacity, " entries; the block table has ", t.size());
        std::copy(t.begin(), t.end(), buf);
    });
}

llmkit_status llmkit_paged_kv_cache_append(llmkit_paged_kv_cache *cache, int32_t layer, int32_t seq,
                                           const llmkit_tensor *k, const llmkit_tensor *v) {
    return cache_append(cache, layer, seq, k, v);
}

llmkit_status llmkit_paged_kv_cache_append_rope(llmkit_paged_kv_cache *cache, int32_t layer, int32_t seq,
                                                const llmkit_tensor *k, const llmkit_tensor *v,
                                                const llmkit_rope_options *rope) {
    return cache_append(cache, layer, seq, k, v, true, rope);
}

llmkit_status llmkit_paged_kv_cache_attention(const llmkit_paged_kv_cache *cache, int32_t layer,
                                              const llmkit_tensor *q, const int32_t *seq_ids, int64_t n_seqs,
                                              const llmkit_tensor *out, const llmkit_kv_attention_options *options) {
    return cache_attention(cache, layer, q, seq_ids, n_seqs, out, options);
}

llmkit_status llmkit_paged_kv_cache_attention_tables(const llmkit_paged_kv_cache *cache, int32_t layer,
                                                     const llmkit_tensor *q, const llmkit_tensor *block_tables,
                                                     const llmkit_tensor *seq_lens, const llmkit_tensor *out,
                                                     const llmkit_kv_attention_options *options) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        const auto tq = core::tensor_view::from(q, "q");
        const auto to = core::tensor_view::from(out, "out");
        const auto tb = core::tensor_view::from(block_tables, "block_tables");
        const auto tl = core::tensor_view::from(seq_lens, "seq_lens");
        std::optional<attention::rope_params> rope;
        std::optional<core::tensor_view> lse, cu;
        cache->impl.attention_tables(layer, tq, tb, tl, to, kv_params(options, tq, rope, lse, cu));
    });
}

llmkit_status llmkit_paged_kv_cache_memory_bytes(const llmkit_paged_kv_cache *cache, uint64_t *used, uint64_t *pool) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        if (used) *used = cache->impl.memory_bytes();
        if (pool) *pool = cache->impl.pool_bytes();
    });
}

llmkit_status llmkit_paged_kv_cache_free_blocks(const llmkit_paged_kv_cache *cache, int64_t *n_free) {
    return capi::guard([&] {
        capi::require_non_null(cache, "cache");
        capi::require_non_null(n_free, "n_free");
        *n_free = cache->impl.free_blocks();
    });
}

}  // extern "C"
