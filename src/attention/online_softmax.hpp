// What the two tiled online-softmax drivers share: attention.cpp (over q, k, v
// tensors) and cache_attention.cpp (over the contiguous and paged KV caches)
// run the same per-row algorithm: the same key tiles and decode chunks, the
// same query rows in, the same merge of split-KV parts and the same finish.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>

#include "attention/kernels.hpp"
#include "core/tensor.hpp"

namespace llmkit::attention {

// Keys per tile of the online softmax.
constexpr int k_tile_keys = 64;
// Keys per tile of decode (a few query rows, over a KV cache or over dense
// rows that lie one after another): the per-tile work (the softmax's
// bookkeeping, int8's weight scale and finish, the pieces' lists) spreads
// over 4x the keys. Against 64 on a 2-core Zen 5, 2 threads: int8 caches
// 1.13-1.25x, bf16 1.05-1.11x, fp32 1.02-1.08x. At most 256: int8 decode's
// exact int32 P V sums of a tile hold 256 keys x 32767 x 128 = 2^30.
constexpr int k_decode_tile_keys = 256;
static_assert(k_decode_tile_keys % k_tile_keys == 0 && k_decode_tile_keys <= 256, "see above");
// Decode reads a tile's K and V in chunks (pieces) of at most this many keys,
// asking for what it reads next a chunk at a time: a burst of prefetches for a
// whole tile would fill the core's miss buffers and stall it instead of
// overlapping the compute.
constexpr int k_chunk_keys = 16;
// How far ahead of the rows it reads decode asks for rows (into L2, see
// spread_prefetch.hpp), in bytes: enough lines in flight to cover the memory
// latency at one core's share of the bandwidth. On the 2-core Zen 4, 16 and
// 32 KiB measured alike and 1.4x faster than 4 KiB.
constexpr int64_t k_prefetch_bytes = 16384;
// A decode call whose K and V rows add up to at most this many bytes reads
// them mostly from the caches (the last level of the 2-core Zen 5 VM holds
// 32 MiB), where the kernels' own speed bounds it rather than the memory's:
// there decode takes gemm_pf_in_cache (kernels.hpp) and, over plain
// [B, S, H, D] rows, longer pieces (cache_attention.cpp). Larger calls
// stream from memory. Either choice gives the same bits.
constexpr int64_t k_cache_resident_bytes = int64_t(32) << 20;
// The largest call whose 16-bit rows decode reads in decode_chunk_keys'
// long in-cache pieces (a contiguous cache's or a dense head's whole 256-key
// tiles, 64 KiB):
// near the last level's size the rows come from memory after all, and a
// long piece asks for its next piece's lines in one burst. On the 2-core Zen
// 3 VM (a 32 MiB L3 that other VMs share), contiguous bf16 caches of 25-32
// MiB decoded 1.14-1.77x faster in short pieces, fp16 at 32 MiB 1.41-1.64x
// (the same bits); at 4-16 MiB the long pieces were as fast or up to 1.2x
// faster, and paged caches, whose pieces end at their blocks, measured the
// same either way. Dense [B, H, S, D] tensors likewise (bench/README.md,
// fifty-sixth session).
constexpr int64_t k_cache_long_piece_bytes = int64_t(24) << 20;

// Decode's P V kernel for a call that reads call_bytes of K and V.
inline decltype(kernels::gemm_pf) decode_gemm_pf(const kernels &kn, int64_t call_bytes) {
    return call_bytes <= k_cache_resident_bytes && kn.gemm_pf_in_cache ? kn.gemm_pf_in_cache : kn.gemm_pf;
}

// The caches' split-KV (flash-decoding): a task whose queries form one tile
// takes its keys in parts of this many (split_keys = 0), merged with the
// online softmax's rescaling.
constexpr int64_t k_default_split_keys = 1024;

// Dense attention splits the keys of its tasks (flash-decoding) when a call
// has fewer than this many (batch, kv head, query tile) tasks, into parts of
// at least k_split_min_keys keys, for about this many work items (two per
// thread of an 8-thread machine); over [B, S, H, D] rows, whose decode walks
// every head in one task, about k_split_token_tasks (parts of at most
// k_default_split_keys). Constants and not the thread count, so that the parts, and with
// them the result's bits, depend on the shapes alone, as the caches' split-KV
// parts do. (With 32 items the token walk of one or two sequences took
// parts of 256 keys: 0.82-0.87x in two cells and 1.01-1.18x in two others
// on the 2-core Zen 3; 8 keeps the parts of 1024 keys that 2 threads had.)
constexpr int64_t k_split_items = 16;
constexpr int64_t k_split_token_tasks = 8;
constexpr int64_t k_split_min_keys = 256;

// Keys per piece of decode's stream over rows that lie one after another (a
// head of dense [B, H, S, D] tensors, a cache's blocks), for a call that
// reads call_bytes of K and V in elem_bytes values; eo: bf16 on the even/odd
// p.v (gemm_bf16_eo_pf); in_place: the kernels read the float32 or 16-bit
// rows where they lie (dots_pf, gemm_pf; not through a scratch of
// k_tile_keys rows). From memory k_chunk_keys, and 32 for eo (8 KiB,
// 1.01-1.06x from DRAM). From the caches the kernels bound the call and
// fewer, longer calls pay (fewer loads and stores of the output, fewer
// prefetch targets): 2-core Zen 5, 2 threads, dense and contiguous caches
// of 8-32 MiB against 16 (32 for eo) keys: float32 32 keys 1.06-1.10x (64
// and more 0.92-1.02x), bf16 and fp16 the whole tile 1.11-1.16x and
// 1.24-1.26x; 16-bit rows only up to k_cache_long_piece_bytes. A piece's
// bits do not depend on where the pieces are cut.
inline int decode_chunk_keys(int64_t call_bytes, int64_t elem_bytes, bool eo, bool in_place) {
    const bool from_memory =
        call_bytes > k_cache_resident_bytes || (elem_bytes == 2 && call_bytes > k_cache_long_piece_bytes);
    if (from_memory || !in_place || elem_bytes == 1)
        return eo ? 2 * k_chunk_keys : k_chunk_keys;
    return elem_bytes == 4 ? 2 * k_chunk_keys : k_decode_tile_keys;
}

// The most query rows per kv head in a task (R: the query heads of a kv
// head times the task's queries) that go to decode's dot-product kernels
// (dots_pf and gemm_pf or their kin: 4 rows at a time, each group reading
// the task's K and V rows again, from L1) rather than to prefill's gemms
// over K and V tiles as float32 rows. rows: the K/V rows' type; query_tiles:
// the tasks of one sequence and kv head. Decode of one token with 16 query
// heads per kv head (Llama 3.1 405B), of a few tokens (speculative
// verification, short chunks) and MQA are such calls. 2-core Zen 5, 2
// threads, d = 128, caches and dense rows, a switch over the limit against
// the gemms (a limit of 15 rows before):
//   - bf16 and int8 up to 64 rows: 1.17-2.36x and 1.40-2.42x (bf16 over 128
//     rows, where the gemms convert K and V once for several query tiles,
//     0.87-0.95x);
//   - float32 up to 64 rows in one or two query tiles: 1.05-2.35x (in 4 to 8
//     tiles 0.95-0.99x: the gemms' float32 tiles serve them all);
//   - fp16, which converts its rows again for each group of 4 rows, up to 32
//     rows in one or two query tiles: 16 rows 1.56-1.84x, 32 rows
//     1.04-1.15x (64 rows 0.91-1.01x).
// The AVX2 set (LLMKIT_MAX_CPU_ISA=avx2 on the same machine) gains as much
// for float32 (1.09-1.83x) and fp16 (1.0-1.50x), bf16 0.96-1.19x. The new
// library against the old over the calls this changed (G = 4-32, 1-64
// tokens): float32 1.02-2.58x, bf16 1.09-2.34x, fp16 1.04-2.72x, int8
// 1.38-2.12x (bench/README.md).
inline int decode_rows_max(row_type rows, int64_t query_tiles) {
    switch (rows) {
    case row_type::bf16:
    case row_type::i8: return 64;
    case row_type::f32: return query_tiles <= 2 ? 64 : 15;
    default: return query_tiles <= 2 ? 32 : 15;  // fp16; FP8 takes fp16's limits (it converts through fp16 too), not measured apart
    }
}

// p rounded up to a multiple of 64 bytes (p has room for 64 bytes more).
// The gemms' 64-byte vector loads and stores then never straddle two cache
// lines, as they did from malloc's 16-byte alignment (every row of a padded
// tile begins at the same offset in its line): the fp32 prefill ran
// 1.08-1.2x faster aligned (2-core Emerald Rapids VM).
template <typename T>
T *align64(T *p) {
    return reinterpret_cast<T *>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

// A thread's scratch floats, grown on demand and reused across calls; 64-byte
// aligned (align64).
struct workspace {
    std::unique_ptr<float[]> data;
    size_t size = 0;
    float *get(size_t n) {
        if (n > size) {
            data.reset(new float[n + 15]);
            size = n;
        }
        return align64(data.get());
    }
};

// row = t[b, s, h, :] as float32 (t: float32, bfloat16 or float16, unit stride on D).
inline void load_row(const core::tensor_view &t, int64_t b, int64_t s, int64_t h, const kernels &kn, float *row) {
    const int64_t D = t.shape[3];
    const char *src = t.data + (b * t.strides[0] + s * t.strides[1] + h * t.strides[2]) * int64_t(t.elem_size);
    if (t.type == core::dtype::f32)
        std::memcpy(row, src, size_t(D) * 4);
    else
        kn.half_to_f32(row, reinterpret_cast<const uint16_t *>(src), D, t.type == core::dtype::bf16);
}

// t[b, s, h, :] = row, rounded to t's type (the output, written once per row).
inline void store_row(const core::tensor_view &t, int64_t b, int64_t s, int64_t h, const kernels &kn, const float *row) {
    const int64_t D = t.shape[3];
    char *dst = t.data + (b * t.strides[0] + s * t.strides[1] + h * t.strides[2]) * int64_t(t.elem_size);
    if (t.type == core::dtype::f32)
        std::memcpy(dst, row, size_t(D) * 4);
    else
        kn.f32_to_half(reinterpret_cast<uint16_t *>(dst), row, D, t.type == core::dtype::bf16);
}

// Row r of a task's scaled queries: Qb[d * ldq + r] (transposed, for the
// prefill gemm) or Qb[r * D + d] (decode's dot products) = q[b, i, h, d] * scale.
inline void load_scaled_query(const core::tensor_view &q, int64_t b, int64_t i, int64_t h, const kernels &kn,
                              float scale, bool transposed, int64_t ldq, int64_t r, float *row, float *Qb) {
    const int64_t D = q.shape[3];
    load_row(q, b, i, h, kn, row);
    if (transposed)
        for (int64_t d = 0; d < D; ++d) Qb[d * ldq + r] = row[d] * scale;
    else
        for (int64_t d = 0; d < D; ++d) Qb[r * D + d] = row[d] * scale;
}

// Soft-capping (softcap > 0), then ALiBi (slope: the row's head's, or null),
// on the scores of keys j0 .. j0 + nk - 1 of one query row at position ip:
// s[j * stride] (the scores are stored key-major).
inline void softcap_and_alibi(float *s, int64_t stride, int nk, float softcap, const float *slope, int64_t ip,
                              int64_t j0) {
    if (softcap > 0.0f) {
        const float c = softcap, ic = 1.0f / softcap;
        for (int j = 0; j < nk; ++j) s[j * stride] = c * std::tanh(s[j * stride] * ic);
    }
    if (slope)
        for (int j = 0; j < nk; ++j) s[j * stride] -= *slope * float(ip - (j0 + j));
}

// Split-KV (flash-decoding): merges row r of n_parts parts, each laid out as
// O [R][D], m [R], l [R] and `stride` floats after the previous one, by
// rescaling each part's O and l to the common max and adding them in part
// order. acc receives the merged O, *m and *l the merged max and sum; parts
// that saw no key (m = -inf) add nothing.
inline void merge_parts(const float *first, int64_t stride, int64_t n_parts, int64_t R, int64_t D, int64_t r,
                        float *acc, float *m, float *l) {
    const float ninf = -std::numeric_limits<float>::infinity();
    float mx = ninf;
    for (int64_t k = 0; k < n_parts; ++k) mx = std::max(mx, first[k * stride + R * D + r]);
    std::fill(acc, acc + D, 0.0f);
    float sum = 0.0f;
    if (mx != ninf)
        for (int64_t k = 0; k < n_parts; ++k) {
            const float *part = first + k * stride;
            if (part[R * D + r] == ninf) continue;
            const float w = std::exp(part[R * D + r] - mx);
            sum += w * part[R * (D + 1) + r];
            for (int64_t d = 0; d < D; ++d) acc[d] += w * part[r * D + d];
        }
    *m = mx;
    *l = sum;
}

// R rows of D floats (D a multiple of 32) from gemm_bf16_eo_pf's even/odd
// order back to column order: position i < 16 of each block of 32 holds
// column 2i, position 16 + i column 2i + 1.
inline void columns_from_eo(float *O, int64_t R, int64_t D) {
    float t[32];
    for (int64_t r = 0; r < R; ++r)
        for (float *b = O + r * D; b < O + (r + 1) * D; b += 32) {
            for (int i = 0; i < 16; ++i) {
                t[2 * i] = b[i];
                t[2 * i + 1] = b[16 + i];
            }
            std::memcpy(b, t, sizeof t);
        }
}

// out = O / l for one row of D, where O and l are the running output and
// softmax sum of the row relative to its running max m (O = sum_j exp(s_j - m)
// v_j, l = sum_j exp(s_j - m)). With an attention sink (gpt-oss; sink = null
// for none) the denominator gains exp(*sink), i.e. exp(*sink - m) relative to
// m; both terms are taken relative to max(m, *sink) so neither exponent can
// overflow. A row that saw no key (m = -inf, l = 0) is written as zeros.
// Without a sink this is row = O * (1 / l), the bits of a plain divide-once.
// row may equal O. lse (null: not wanted) receives the log of the row's
// softmax denominator, max + ln(norm): -inf for a row that saw no key and no
// sink, so that llmkit_attention_merge can combine rows over disjoint keys.
inline void finish_row(const float *O, float m, float l, const float *sink, int64_t D, float *row,
                       float *lse = nullptr) {
    float norm = l, top = m;
    float keep = 1.0f;  // rescales O and l when the sink exceeds the running max
    if (sink) {
        top = std::max(m, *sink);
        keep = m == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(m - top);
        norm = l * keep + std::exp(*sink - top);
    }
    const float inv = norm > 0.0f ? keep / norm : 0.0f;
    for (int64_t d = 0; d < D; ++d) row[d] = O[d] * inv;
    if (lse) *lse = norm > 0.0f ? top + std::log(norm) : -std::numeric_limits<float>::infinity();
}

// lse[b, i, h] = value (lse: float32 [B, Sq, Hq], any strides; see finish_row).
inline void store_lse(const core::tensor_view *lse, int64_t b, int64_t i, int64_t h, float value) {
    std::memcpy(lse->data + (b * lse->strides[0] + i * lse->strides[1] + h * lse->strides[2]) * 4, &value, 4);
}

}  // namespace llmkit::attention
