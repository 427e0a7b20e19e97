// Attention over a KV cache (contiguous or paged): the tiled online softmax of
// attention.cpp, reading K and V through each sequence's block table.
//
// A task is (sequence, kv heads, query tile); its rows, per kv head, are the
// tile's queries of every query head sharing that kv head. Per tile of up to
// 64 keys the rows j0..j0+63 are found through the block table (row j is row
// j % block_size of block table[j / block_size]). Prefill (16 rows or more,
// one kv head per task) converts them to float32 in a small buffer as they are
// read (bf16/fp16 exactly, int8 and FP8 times their row's scale; an fp32 tile
// inside one block is used in place) for the gemms. Decode reads them where
// they lie, in pieces of up to 16 rows of one head inside one block: fp32 in
// place, bf16/fp16/int8/FP8 converted in registers (into a small buffer,
// piece by piece, for a kernel set without dots_pf / gemm_pf). 8-bit rows are
// read as their raw values and their row scales multiply the scores and the
// probabilities (2 multiplies per key and row of the task instead of one per
// element); where the kernel set has integer dot products (AVX512-VNNI)
// decode over int8 works in integers, the queries and the weights as int16
// (see i8_ints below); over a paged cache in the caches, a head's pieces of
// up to 8 blocks go to one call of the runs kernels (i8_runs). Either way
// there is no pass over the cache and no gathered copy.
//
// Decode is bound by how fast the cache streams from memory, so a decode task
// takes several kv heads (all of them unless the threads would starve) and
// walks each block's runs of those heads in turn, front to back: a paged
// block's heads lie next to each other, so even blocks of 16 rows read as one
// long run instead of one short run per task, which the hardware prefetcher
// cannot follow. Each piece's kernel asks, into L2, for the piece about
// 16 KiB further on in the stream (through the block table), a few lines per
// block of its work, so the next rows are always on their way.
//
// Split-KV (flash-decoding): a task whose queries form a single tile (decode,
// short chunks) splits its keys into parts of split_keys keys, computed in
// parallel and merged with the online-softmax rescaling. The parts depend on
// the sequence alone (never on the thread count or the other sequences of the
// batch), so results are the same bits for any number of threads and any
// batch a sequence is decoded in.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>

#include "attention/attention.hpp"
#include "attention/kernels.hpp"
#include "attention/spread_prefetch.hpp"
#include "attention/kv_cache.hpp"
#include "attention/online_softmax.hpp"
#include "core/finite.hpp"
#include "core/threads.hpp"

namespace llmkit::attention {

using core::dtype;
using core::fail;
using core::tensor_view;

namespace {

constexpr int k_tile_rows = 64;
// Row scales of 1: decode converts a piece's 8-bit rows to their raw values
// and applies the row scales to the scores and the probabilities instead.
constexpr float k_unit_scales[k_chunk_keys] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f,
                                               1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};

void validate(const cache_layer_view &L, const cache_seq *seqs, int64_t n_seqs, const tensor_view &q,
              const tensor_view &out, const cache_attention_params &p) {
    validate_queries(L, q, out);
    if (q.shape[0] != n_seqs)
        fail(LLMKIT_ERROR_SHAPE, "q: ", q.shape[0], " rows of queries (axis 0, shape ", q.shape_string(), ") for ", n_seqs,
             " sequences");
    const int64_t Sq = q.shape[1];
    for (int64_t b = 0; b < n_seqs; ++b) {
        if (seqs[b].length < Sq)
            fail(LLMKIT_ERROR_SHAPE, "sequence ", b, " of the batch holds ", seqs[b].length, " tokens but q has ", Sq,
                 " queries for it: append the new tokens' K and V before attending (queries are the last Sq tokens)");
        if (seqs[b].n_blocks * L.block_size < seqs[b].length)
            fail(LLMKIT_ERROR_INTERNAL, "sequence ", b, " holds more tokens than its block table covers");
        check_released_keys(seqs[b], b, Sq, p);
    }
}

}  // namespace

void check_released_keys(const cache_seq &s, int64_t b, int64_t Sq, const cache_attention_params &p) {
    if (s.released <= 0 || Sq <= 0) return;
    // Every bound grows with the query's position: the first query sees the earliest key.
    const int64_t first = s.length - Sq, w = p.window > 0 ? std::min(p.window, s.length) : 0;
    const int64_t lo = w > 0 ? std::max<int64_t>(0, first - w + 1) : 0;
    if (lo >= s.released) return;
    if (w > 0)
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "sequence ", b, " of the batch: the blocks of its first ", s.released,
             " tokens were released (release_before), but with window = ", p.window, " its query at position ", first,
             " sees keys from ", lo, " on (a window of at most ", first - s.released + 1, " keeps to the tokens held)");
    fail(LLMKIT_ERROR_OUT_OF_RANGE, "sequence ", b, " of the batch: the blocks of its first ", s.released,
         " tokens were released (release_before), but with no window its queries see every earlier key (pass the "
         "sliding window the tokens were released for)");
}

void validate_queries(const cache_layer_view &L, const tensor_view &q, const tensor_view &out) {
    for (const tensor_view *t : {&q, &out}) {
        if (t->ndim != 4)
            fail(LLMKIT_ERROR_SHAPE, t->name, ": expected 4 dimensions [batch, queries, heads, head_dim], got ", t->ndim,
                 " (shape ", t->shape_string(), ")");
        if (!t->on_host()) fail(LLMKIT_ERROR_UNSUPPORTED, t->name, ": the KV caches take host tensors only");
        if (t->shape[3] > 1 && t->strides[3] != 1)
            fail(LLMKIT_ERROR_UNSUPPORTED, t->name, ": the head_dim axis (the last) must have stride 1, got stride ", t->strides[3]);
    }
    if (q.type != dtype::f32 && q.type != dtype::bf16 && q.type != dtype::f16)
        fail(LLMKIT_ERROR_DTYPE, "q: dtype ", core::dtype_name(q.type), " is not float32, bfloat16 or float16");
    if (out.type != q.type)
        fail(LLMKIT_ERROR_DTYPE, "out: dtype ", core::dtype_name(out.type), " differs from q's ", core::dtype_name(q.type));
    const int64_t Dv = value_dim(L);
    for (int i = 0; i < 4; ++i)
        if (out.shape[i] != (i < 3 ? q.shape[i] : Dv))
            fail(LLMKIT_ERROR_SHAPE, "out: shape ", out.shape_string(), " must be [B, Sq, Hq, Dv] = [", q.shape[0], ", ",
                 q.shape[1], ", ", q.shape[2], ", ", Dv, "] (q's first three axes, the cache's v_head_dim)");
    out.require_own_elements();
    if (q.shape[3] != L.head_dim)
        fail(LLMKIT_ERROR_SHAPE, "q: head_dim ", q.shape[3], " differs from the cache's ", L.head_dim);
    if (q.shape[2] % L.n_kv_heads != 0)
        fail(LLMKIT_ERROR_SHAPE, "the number of query heads (", q.shape[2],
             ") must be a multiple of the cache's key/value heads (", L.n_kv_heads, ")");
}

namespace {

// Rows [j0, j0 + n) of kv head g of one sequence as float32 rows of D (K's
// head_dim, or V's): returns where they are, *ld elements apart (in place for
// an fp32 run inside one block, else converted into buf, D apart).
const float *load_tile(const cache_layer_view &L, const cache_seq &s, int64_t g, int64_t j0, int n, bool value,
                       const kernels &kn, float *buf, int64_t *ld) {
    const int64_t bs = L.block_size, es = kv_dtype_bytes(L.type);
    const int64_t D = value ? value_dim(L) : L.head_dim, stride = value ? value_row(L) : L.head_dim;
    const char *base = value ? L.v : L.k;
    const float *scales = value ? L.v_scale : L.k_scale;
    if (L.type == kv_dtype::f32 && j0 / bs == (j0 + n - 1) / bs) {
        const int64_t row = (int64_t(s.blocks[j0 / bs]) * L.n_kv_heads + g) * bs + j0 % bs;
        *ld = stride;
        return reinterpret_cast<const float *>(base + row * stride * es);
    }
    *ld = D;
    for (int64_t j = j0; j < j0 + n;) {
        const int64_t t = j % bs, run = std::min(bs - t, j0 + n - j);
        const int64_t row = (int64_t(s.blocks[j / bs]) * L.n_kv_heads + g) * bs + t;
        for (int64_t r = 0; r < (stride == D ? 1 : run); ++r) {  // a run at once where its rows lie back to back
            const int64_t rows = stride == D ? run : 1;
            const char *src = base + (row + r) * stride * es;
            float *dst = buf + (j - j0 + r) * D;
            switch (L.type) {
            case kv_dtype::f32: std::memcpy(dst, src, size_t(rows * D) * 4); break;
            case kv_dtype::bf16:
            case kv_dtype::f16:
                kn.half_to_f32(dst, reinterpret_cast<const uint16_t *>(src), rows * D, L.type == kv_dtype::bf16);
                break;
            case kv_dtype::i8:
            case kv_dtype::fp8_e4m3:
            case kv_dtype::fp8_e5m2: kn.q8_to_f32(dst, src, rows, D, scales + row + r, row_type(int(L.type))); break;
            }
        }
        j += run;
    }
    return buf;
}

// Decode walks a task's keys in pieces: up to k_chunk_keys rows (a whole
// tile for int8 in integers, whose kernels keep their sums in memory between
// calls: fewer, longer calls) of one kv head inside one block, so each piece
// is one run of adjacent rows.
struct piece {
    int64_t hh;          // kv head, counted from the task's first
    int64_t j;           // first key
    int n;               // keys
    int64_t row;         // the first key's row in the storage (K and V alike; 8-bit rows' scales)
    int64_t kofs, vofs;  // its first element in K and in V; later keys row_stride(L) (v_stride(L)) on
};

// Elements from one key's row to the next inside a piece: K's, and V's.
int64_t row_stride(const cache_layer_view &L) { return L.token_stride > 0 ? L.token_stride : L.head_dim; }
int64_t v_stride(const cache_layer_view &L) { return L.token_stride > 0 ? value_token_stride(L) : value_row(L); }

// The pieces of keys [j0, j0 + n) of heads g0 .. g0 + ng - 1, in the order the
// storage holds them: each block's run of keys for every head (the heads'
// runs of a block lie next to each other), then the next block. Within one
// head the pieces come in key order.
//
// Plain tensors (token_stride) hold a sequence's keys token-major, every head's
// row of a token side by side: there the pieces go a chunk of keys at a time,
// every head's piece of it in turn, so together they read the chunk's rows
// front to back.
void tile_pieces(const cache_layer_view &L, const cache_seq &s, int64_t g0, int64_t ng, int64_t j0, int n,
                 int chunk, std::vector<piece> &out) {
    const int64_t bs = L.block_size, D = L.head_dim;
    out.clear();
    if (L.token_stride > 0) {
        const int64_t blk = s.blocks[0], Dv = value_dim(L), vts = value_token_stride(L);
        for (int64_t c = 0; c < n; c += chunk)
            for (int64_t hh = 0; hh < ng; ++hh) {
                const int64_t j = j0 + c;
                out.push_back({hh, j, int(std::min<int64_t>(chunk, n - c)), 0,
                               blk * L.k_block_stride + j * L.token_stride + (g0 + hh) * D,
                               blk * L.v_block_stride + j * vts + (g0 + hh) * Dv});
            }
        return;
    }
    for (int64_t j = j0; j < j0 + n;) {
        const int64_t t = j % bs, seg = std::min(bs - t, j0 + n - j);
        for (int64_t hh = 0; hh < ng; ++hh)
            for (int64_t c = 0; c < seg; c += chunk) {
                const int64_t row = (int64_t(s.blocks[j / bs]) * L.n_kv_heads + g0 + hh) * bs + t + c;
                out.push_back({hh, j + c, int(std::min<int64_t>(chunk, seg - c)), row, row * D, row * value_row(L)});
            }
        j += seg;
    }
}

// One call of the runs kernels (dots_i8_runs_pf and gemm_i8_runs_pf, or the
// 16-bit p.v's gemm_runs_pf and gemm_bf16_eo_runs_pf): kv head hh's pieces
// of up to 8 consecutive blocks, at most 128 keys from key j, runs [first,
// first + count) of the run list.
struct runs_call {
    int64_t hh, j;
    int n;
    size_t first;
    int count;
};

// The runs calls of a tile's pieces (tile_pieces' order for a paged cache
// whose blocks are shorter than the pieces: each block's piece of every head
// in turn): for each group of blocks, every head's call in turn.
void group_runs(const std::vector<piece> &pieces, int64_t ng, std::vector<runs_call> &calls,
                std::vector<row_run> &runs) {
    calls.clear();
    runs.clear();
    const size_t segs = pieces.size() / size_t(ng);
    for (size_t s0 = 0; s0 < segs;) {
        size_t s1 = s0;
        int keys = 0;
        while (s1 < segs && s1 - s0 < k_runs_max && keys + pieces[s1 * size_t(ng)].n <= k_runs_max_keys)
            keys += pieces[s1++ * size_t(ng)].n;
        for (int64_t hh = 0; hh < ng; ++hh) {
            calls.push_back({hh, pieces[s0 * size_t(ng) + size_t(hh)].j, keys, runs.size(), int(s1 - s0)});
            for (size_t x = s0; x < s1; ++x) {
                const piece &pc = pieces[x * size_t(ng) + size_t(hh)];
                runs.push_back({pc.row, pc.n});
            }
        }
        s0 = s1;
    }
}

// Asks for the bytes [p, p + n) now, a line at a time.
void prefetch_bytes(const char *p, int64_t n) {
    for (int64_t c = 0; c < n; c += 64) __builtin_prefetch(p + c);
    if (n > 0) __builtin_prefetch(p + n - 1);
}

// Per kv head of a task: its scaled queries (or, for bf16 pairs, its bf16
// queries as given, Qh), output, scores and softmax state; for int8 in
// integers (see i8_ints in cache_attention), the queries as int16 rows Qi
// times the row scales qs, P V's int32 sums acc (in the kernels' order), the
// tile's weight step ws (the same for every row: i8_acc_finish takes one per
// row) and its inverse wi.
struct head_state {
    float *Qb, *O, *ST, *m, *l, *alpha;
    uint16_t *Qh;
    int16_t *Qi;
    float *qs, *ws;
    float wi;
    int32_t *acc;
};

// S^T = Q K^T over one piece's rows where they lie (st = the piece's first
// score): through dots_pf where the set has it (16-bit and 8-bit rows
// converted in registers, [pf, pf + pf_bytes), the rows decoded next, asked
// for a few lines at a time as it computes); otherwise those bytes are asked
// for up front and fp32 rows read in place, 16-bit through dots_half, 8-bit
// (or 16-bit for a set without dots_half) dequantised into buf first. A key's score does
// not depend on which keys share a call, so paged and contiguous caches give
// the same bits.
void piece_scores(const cache_layer_view &L, const piece &pc, const kernels &kn, const head_state &H, int R,
                  float *buf, float *st, const char *pf, int64_t pf_bytes, float scale) {
    const int64_t D = L.head_dim, es = kv_dtype_bytes(L.type);
    const bool bf16 = L.type == kv_dtype::bf16;
    const int64_t ld = row_stride(L);
    const char *src = L.k + pc.kofs * es;
    const float *Qb = H.Qb;
    if (H.Qh) {  // bf16 queries and rows: pair products (see bf16_pairs in cache_attention)
        kn.dots_bf16_pf(R, pc.n, int(D), H.Qh, D, reinterpret_cast<const uint16_t *>(src), ld, scale, st, pf, pf_bytes);
        return;
    }
    if (H.Qi) {  // int8 in integers (see i8_ints in cache_attention)
        kn.dots_i8_pf(R, pc.n, int(D), H.Qi, D, H.qs, reinterpret_cast<const int8_t *>(src), D, L.k_scale + pc.row, st,
                      pf, pf_bytes);
        return;
    }
    if (kn.dots_pf) {
        const float *scales = kv_has_scales(L.type) ? L.k_scale + pc.row : nullptr;
        kn.dots_pf(R, pc.n, int(D), Qb, D, src, ld, row_type(int(L.type)), scales, st, pf, pf_bytes);
        return;
    }
    prefetch_bytes(pf, pf_bytes);
    switch (L.type) {
    case kv_dtype::f32: kn.dots(R, pc.n, int(D), Qb, D, reinterpret_cast<const float *>(src), ld, st); break;
    case kv_dtype::bf16:
    case kv_dtype::f16:
        if (kn.dots_half) {
            kn.dots_half(R, pc.n, int(D), Qb, D, reinterpret_cast<const uint16_t *>(src), ld, bf16, st);
        } else {
            for (int j = 0; j < pc.n; ++j)
                kn.half_to_f32(buf + j * D, reinterpret_cast<const uint16_t *>(src + j * ld * es), D, bf16);
            kn.dots(R, pc.n, int(D), Qb, D, buf, D, st);
        }
        break;
    case kv_dtype::i8:  // raw values, then each key's scores times its scale (as dots_pf computes them)
    case kv_dtype::fp8_e4m3:
    case kv_dtype::fp8_e5m2:
        kn.q8_to_f32(buf, src, pc.n, D, k_unit_scales, row_type(int(L.type)));
        kn.dots(R, pc.n, int(D), Qb, D, buf, D, st);
        for (int j = 0; j < pc.n; ++j)
            for (int r = 0; r < R; ++r) st[j * R + r] *= L.k_scale[pc.row + j];
        break;
    }
}

// O = scale O + P^T V over one piece's rows where they lie (p = the piece's
// first probability), read as piece_scores reads K. The caller passes alpha
// as `scale` for a head's first piece of a tile and null (1) for the others,
// so the sum runs over the keys in the same order, with the same bits,
// however the keys are cut into pieces (a scale of 1 is exact). For 8-bit rows
// each key's probabilities are multiplied by its row scale first, in place
// (p is not read again), and the rows are used as their raw values.
//
// eo: O's columns are in gemm_bf16_eo_pf's even/odd order (bf16 rows, D a
// multiple of 32; see columns_from_eo).
//
// gemm_pf: the kernel set's gemm_pf, or its gemm_pf_in_cache for a call that
// reads its rows from the caches (the same bits).
void piece_values(const cache_layer_view &L, const piece &pc, const kernels &kn, decltype(kernels::gemm_pf) gemm_pf,
                  float *p, int R, const float *scale, float *buf, float *O, const char *pf, int64_t pf_bytes,
                  bool eo) {
    const int64_t D = value_dim(L), es = kv_dtype_bytes(L.type);  // V's head_dim
    const bool bf16 = L.type == kv_dtype::bf16;
    const int64_t ld = v_stride(L);
    const char *src = L.v + pc.vofs * es;
    if (eo) {
        kn.gemm_bf16_eo_pf(R, int(D), pc.n, p, 1, R, reinterpret_cast<const uint16_t *>(src), ld, O, D, true, scale, pf,
                           pf_bytes);
        return;
    }
    if (kv_has_scales(L.type))
        for (int j = 0; j < pc.n; ++j)
            for (int r = 0; r < R; ++r) p[j * R + r] *= L.v_scale[pc.row + j];
    if (gemm_pf) {
        gemm_pf(R, int(D), pc.n, p, 1, R, src, ld, row_type(int(L.type)), O, D, true, scale, pf, pf_bytes);
        return;
    }
    prefetch_bytes(pf, pf_bytes);
    switch (L.type) {
    case kv_dtype::f32:
        kn.gemm(R, int(D), pc.n, p, 1, R, reinterpret_cast<const float *>(src), ld, O, D, true, scale);
        break;
    case kv_dtype::bf16:
    case kv_dtype::f16:
        if (kn.gemm_half) {
            kn.gemm_half(R, int(D), pc.n, p, 1, R, reinterpret_cast<const uint16_t *>(src), ld, bf16, O, D, true, scale);
        } else {
            for (int j = 0; j < pc.n; ++j)
                kn.half_to_f32(buf + j * D, reinterpret_cast<const uint16_t *>(src + j * ld * es), D, bf16);
            kn.gemm(R, int(D), pc.n, p, 1, R, buf, D, O, D, true, scale);
        }
        break;
    case kv_dtype::i8:
    case kv_dtype::fp8_e4m3:
    case kv_dtype::fp8_e5m2:
        for (int j = 0; j < (ld == D ? 1 : pc.n); ++j)  // one call where the rows lie back to back
            kn.q8_to_f32(buf + j * D, src + j * ld * es, ld == D ? pc.n : 1, D, k_unit_scales, row_type(int(L.type)));
        kn.gemm(R, int(D), pc.n, p, 1, R, buf, D, O, D, true, scale);
        break;
    }
}

// Asks for rows [j0, j0 + n) of K (or V) now.
void prefetch_rows(const cache_layer_view &L, const cache_seq &s, int64_t g, int64_t j0, int n, bool value) {
    const int64_t bs = L.block_size, row_bytes = (value ? value_row(L) : L.head_dim) * kv_dtype_bytes(L.type);
    const char *base = value ? L.v : L.k;
    for (int64_t j = j0; j < j0 + n;) {
        const int64_t t = j % bs, run = std::min(bs - t, j0 + n - j);
        const char *p = base + ((int64_t(s.blocks[j / bs]) * L.n_kv_heads + g) * bs + t) * row_bytes;
        for (int64_t c = 0; c < run * row_bytes; c += 64) __builtin_prefetch(p + c);
        j += run;
    }
}

struct task {
    int64_t b, g0, ng, i0, tl;  // sequence, first kv head, kv heads, first query, queries
    int64_t lo, hi;             // keys any of its rows sees: [lo, hi]
    int64_t parts, first_slot;  // split-KV parts; the first (part, head) slot of parts[]
};

}  // namespace

namespace {

// The caches' fused RoPE for queries: a compact copy of q rotated at the
// queries' positions (query i of sequence b at length_b - Sq + i), which then
// attends in q's place; q itself is left as it is.
void attention_with_rotated_queries(const cache_layer_view &L, const cache_seq *seqs, int64_t n_seqs,
                                    const tensor_view &q, const tensor_view &out, const cache_attention_params &p) {
    const int64_t B = n_seqs, Sq = q.shape[1], Hq = q.shape[2], D = q.shape[3];
    const int64_t es = int64_t(q.elem_size);
    std::vector<char> bytes(size_t(B * Sq * Hq * D * es));
    tensor_view qr = q;
    qr.data = bytes.data();
    qr.device_type = LLMKIT_DEVICE_CPU;
    qr.strides[0] = Sq * Hq * D;
    qr.strides[1] = Hq * D;
    qr.strides[2] = D;
    qr.strides[3] = 1;
    std::vector<int64_t> positions(static_cast<size_t>(B * Sq));
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < Sq; ++i) positions[size_t(b * Sq + i)] = seqs[b].length - Sq + i;
    tensor_view pos;
    pos.name = "query positions";
    pos.data = reinterpret_cast<char *>(positions.data());
    pos.ndim = 2;
    pos.type = core::dtype::i64;
    pos.elem_size = 8;
    pos.shape[0] = B;
    pos.shape[1] = Sq;
    pos.strides[0] = Sq;
    pos.strides[1] = 1;
    rope_params rp = *p.rope;
    rp.n_threads = p.n_threads;
    rp.stream = nullptr;
    const int64_t turn_at = cache_rotary_offset(rp, L.head_dim, value_dim(L), L.v == L.k, "options.rope");
    if (turn_at == 0) {
        rope(q, pos, qr, rp);
    } else {
        // A v_from_k cache's queries (MLA's absorbed q: the latent part, then
        // q_pe): the part before turn_at as it is, the rotary tail turned.
        for (int64_t b = 0; b < B; ++b)
            for (int64_t i = 0; i < Sq; ++i)
                for (int64_t h = 0; h < Hq; ++h)
                    std::memcpy(qr.data + ((b * Sq + i) * Hq + h) * D * es,
                                q.data + (b * q.strides[0] + i * q.strides[1] + h * q.strides[2]) * es,
                                size_t(turn_at * es));
        tensor_view q_tail = q, qr_tail = qr;
        q_tail.data += turn_at * es;
        qr_tail.data += turn_at * es;
        q_tail.shape[3] = qr_tail.shape[3] = D - turn_at;
        rp.rotary_dims = 0;  // all of the tail
        rope(q_tail, pos, qr_tail, rp);
    }
    cache_attention_params plain = p;
    plain.rope = nullptr;
    plain.q_checked = false;  // the rotated copy is checked, as q was
    cache_attention(L, seqs, n_seqs, qr, out, plain);
}

}  // namespace

void cache_attention(const cache_layer_view &L, const cache_seq *seqs, int64_t n_seqs, const tensor_view &q,
                     const tensor_view &out, const cache_attention_params &p) {
    if (p.cu_seqlens_q) return cache_attention_packed(L, seqs, n_seqs, q, out, p);
    validate(L, seqs, n_seqs, q, out, p);
    if (p.lse) {
        check_lse(*p.lse, q);
        if (!p.lse->on_host()) fail(LLMKIT_ERROR_UNSUPPORTED, p.lse->name, ": the KV caches take host tensors only");
    }
    if (p.rope) return attention_with_rotated_queries(L, seqs, n_seqs, q, out, p);
    const kernels &kn = p.kernel_set ? *p.kernel_set : best_kernels();
    const int64_t B = n_seqs, Sq = q.shape[1], Hq = q.shape[2], D = q.shape[3], Hkv = L.n_kv_heads;
    const int64_t Dv = value_dim(L);  // V's and out's head_dim
    const bool v_in_k = L.v == L.k;   // V read from K's rows (v_from_k)
    if (B == 0 || Sq == 0 || Hq == 0) return;
    if (!p.q_checked) core::require_finite(q, p.n_threads);  // the cache's rows were checked on append
    const int64_t G = Hq / Hkv;
    const int64_t tq = std::min<int64_t>(Sq, std::max<int64_t>(1, k_tile_rows / G));
    const int64_t nqt = (Sq + tq - 1) / tq;
    const float scale = p.scale != 0.0f ? p.scale : float(1.0 / std::sqrt(double(D)));
    const bool causal = p.causal || p.window > 0;
    const float ninf = -std::numeric_limits<float>::infinity();
    const int threads = p.n_threads > 0 ? p.n_threads : core::default_num_threads();
    int64_t split = p.split_keys > 0 ? p.split_keys : k_default_split_keys;
    split = (split + k_tile_keys - 1) / k_tile_keys * k_tile_keys;  // whole tiles
    // Decode's tiles: the largest of k_decode_tile_keys, its halves, ... down
    // to k_tile_keys that divides the split, so a part is whole tiles.
    int dtile = k_decode_tile_keys;
    while (split % dtile != 0) dtile /= 2;
    // Plain float32 [B, S, H, D] rows: tiles of at most 128 keys. Every head
    // of a task shares them (all heads per task), so a 256-key tile's scores
    // (32 KiB for 8 heads of 4 rows) and queries crowd L1 while the rows
    // stream past: 8 heads of 128 on 2-core Zen 5, 1.03-1.09x faster from
    // the caches, 1.07-1.10x from memory in fast phases, 1.01-1.03x in slow
    // ones; 64 keys no better. bf16 rows keep 256 (128: 0.92-1.02x).
    if (L.token_stride > 0 && L.type == kv_dtype::f32) dtile = std::min(dtile, 128);
    // Decode (every tile has fewer than 16 rows: dot products, not gemms)
    // walks several kv heads per task, a block's runs of every head in turn,
    // so a paged cache streams each block front to back instead of a short
    // run per block per task.
    const int rows_max = decode_rows_max(row_type(int(L.type)), nqt);
    const bool decode = G * tq <= rows_max;
    if (L.token_stride > 0 && (!decode || L.token_stride != Hkv * D || kv_has_scales(L.type)))
        fail(LLMKIT_ERROR_INTERNAL, "plain K/V rows: decode of float rows with the heads side by side only");
    // The K and V bytes of the call (all of every sequence's rows; a window
    // reads fewer): at most k_cache_resident_bytes, decode reads them from
    // the caches (the kernels bound it, not the memory).
    int64_t call_bytes = 0;
    for (int64_t b = 0; b < B; ++b) call_bytes += seqs[b].length * Hkv * (D + Dv) * kv_dtype_bytes(L.type);
    const bool in_cache = call_bytes <= k_cache_resident_bytes;
    const auto gemm_pf = decode_gemm_pf(kn, call_bytes);

    // Query ii of a task sits at position i0 + ii + (length - Sq); it sees keys [lo_of, hi_of].
    auto hi_of = [&](int64_t len, int64_t i) { return causal ? i + len - Sq : len - 1; };
    auto lo_of = [&](int64_t len, int64_t i) {
        return p.window > 0 ? std::max<int64_t>(0, i + len - Sq - std::min(p.window, len) + 1) : int64_t(0);
    };
    auto parts_of = [&](int64_t lo, int64_t hi) {
        return nqt == 1 && hi - lo + 1 > split ? (hi - lo + split) / split : int64_t(1);
    };
    // Heads per decode task: all of them unless that leaves too few work
    // items to keep the threads busy (the parts depend on the sequence alone
    // and the heads are independent, so this choice never changes the bits).
    int64_t heads_per_task = 1;
    if (decode) {
        int64_t parts_total = 0;
        for (int64_t b = 0; b < B; ++b)
            for (int64_t qt = 0; qt < nqt; ++qt) {
                const int64_t len = seqs[b].length, i0 = qt * tq, tl = std::min(tq, Sq - i0);
                parts_total += parts_of(lo_of(len, i0), hi_of(len, i0 + tl - 1));
            }
        heads_per_task = Hkv;
        // (Plain tensors keep every head: their rows of a token lie together.)
        while (L.token_stride == 0 && heads_per_task > 1 &&
               parts_total * ((Hkv + heads_per_task - 1) / heads_per_task) < 4 * int64_t(threads))
            heads_per_task = (heads_per_task + 1) / 2;
    }
    std::vector<task> tasks;
    int64_t n_slots = 0, n_items = 0;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t g0 = 0; g0 < Hkv; g0 += heads_per_task)
            for (int64_t qt = 0; qt < nqt; ++qt) {
                task t{b, g0, std::min(heads_per_task, Hkv - g0), qt * tq, std::min(tq, Sq - qt * tq), 0, -1, 1, 0};
                const int64_t len = seqs[b].length;
                t.lo = lo_of(len, t.i0);  // both bounds grow with the query index
                t.hi = hi_of(len, t.i0 + t.tl - 1);
                t.parts = parts_of(t.lo, t.hi);
                t.first_slot = n_slots;
                if (t.parts > 1) n_slots += t.parts * t.ng;
                n_items += t.parts;
                tasks.push_back(t);
            }


    const int64_t slot = G * tq * (Dv + 2);  // one part of one head: O [R][Dv], m [R], l [R]
    std::vector<float> parts(size_t(n_slots * slot));

    // Softcap, ALiBi, the mask (plain tensors) and the causal / window masks
    // on the scores of keys [j0, j0 + nk) of sequence b's kv head g's rows.
    const mask_view mask(p.mask);
    auto bias_and_mask = [&](float *ST, int64_t b, int64_t g, int64_t len, int64_t i0, int64_t tl, int R, int64_t j0,
                             int nk) {
        for (int64_t hh = 0; hh < G; ++hh)
            for (int64_t ii = 0; ii < tl; ++ii) {
                const int64_t r = hh * tl + ii, ip = i0 + ii + len - Sq;
                float *s = ST + r;  // s[j * R]
                softcap_and_alibi(s, R, nk, p.softcap, p.alibi_slopes ? p.alibi_slopes + g * G + hh : nullptr, ip, j0);
                if (mask) mask.add(s, R, nk, b, g * G + hh, i0 + ii, j0);
                const int64_t lr = lo_of(len, i0 + ii), hr = hi_of(len, i0 + ii), end = j0 + nk;
                for (int64_t jj = j0; jj < std::min(lr, end); ++jj) s[(jj - j0) * R] = ninf;
                for (int64_t jj = std::max(hr + 1, j0); jj < end; ++jj) s[(jj - j0) * R] = ninf;
            }
    };

    auto process = [&](int64_t ti, int64_t part) {
        thread_local workspace ws;
        thread_local std::vector<head_state> heads;
        thread_local std::vector<piece> cur, nxt;
        thread_local std::vector<runs_call> cur_calls, nxt_calls;
        thread_local std::vector<row_run> cur_runs, nxt_runs;
        const task &t = tasks[size_t(ti)];
        const cache_seq &seq = seqs[t.b];
        const int64_t len = seq.length, tl = t.tl, i0 = t.i0, b = t.b, ng = t.ng;
        const int R = int(G * tl);
        const bool transposed = R > rows_max;  // gemm on Q^T; dot products for a few rows (decode)
        // Decode of bf16 queries over bf16 rows on a set with bf16 dot
        // products: the scores come from pairs of the values as they are
        // (exact products, half the multiplies of float32 rows, no conversion
        // of K), the scale applied to the sums. The probabilities stay
        // float32, so P V is unchanged.
        const bool bf16_pairs =
            !transposed && kn.dots_bf16_pf && q.type == dtype::bf16 && L.type == kv_dtype::bf16 && D % 2 == 0;
        // Decode over an int8 cache on a set with integer dot products: the
        // queries as int16 rows times a row scale (each value off by at most
        // 2^-16 of its row's largest), the scores exact integer sums times
        // the scales; the probabilities times each V row's scale, as int16
        // steps of the tile's largest V row scale / 32767 (p <= 1: off by at
        // most half a step), and P V exact int32 sums over the tile, added to
        // O as a float once per tile. Integer sums do not depend on how the
        // keys are cut, so paged and contiguous caches give the same bits.
        // (Its int32 sums hold D <= 256 products of int16 and int8 values.)
        const bool i8_ints = !transposed && kn.dots_i8_pf && L.type == kv_dtype::i8 && D <= 256 && Dv <= 256;
        // Decode over bf16 rows on a set with gemm_bf16_eo_pf: P V keeps O's
        // columns in that kernel's even/odd order (two operations widen 64
        // bytes of V, where column order takes four); put back at the end.
        const bool eo = !transposed && kn.gemm_bf16_eo_pf && L.type == kv_dtype::bf16 && Dv % 32 == 0;
        const int64_t Dpad = (Dv + 31) / 32 * 32;  // an int32 row of P V's sums
        const int tile = transposed ? k_tile_keys : dtile;  // keys per tile of the online softmax
        const size_t per_head = size_t(R) * (D + Dv) + size_t(tile) * R + size_t(R) * 3 +
                                (i8_ints ? size_t(R) * Dpad + size_t(R) * size_t((D + 1) / 2) + size_t(R) * 2 : 0);
        const int64_t widest = std::max(D, Dv);  // `row`: a query on its way in, an output on its way out
        float *row = ws.get(per_head * size_t(ng) + size_t(widest) + size_t(k_tile_keys) * (D + Dv));
        float *Kf = row + widest;
        float *Vf = Kf + size_t(k_tile_keys) * D;
        heads.resize(size_t(ng));
        for (int64_t hh = 0; hh < ng; ++hh) {
            head_state &H = heads[size_t(hh)];
            H.Qb = Vf + size_t(k_tile_keys) * Dv + per_head * size_t(hh);
            H.O = H.Qb + size_t(R) * D;
            H.ST = H.O + size_t(R) * Dv;
            H.m = H.ST + size_t(tile) * R;
            H.l = H.m + R;
            H.alpha = H.l + R;
            H.Qh = bf16_pairs ? reinterpret_cast<uint16_t *>(H.Qb) : nullptr;  // in Qb's room, unused then
            H.Qi = nullptr;  // set for int8 in integers only
            if (i8_ints) {
                H.acc = reinterpret_cast<int32_t *>(H.alpha + R);
                H.qs = H.alpha + R + size_t(R) * Dpad;
                H.ws = H.qs + R;
                H.Qi = reinterpret_cast<int16_t *>(H.ws + R);
            }
            const int64_t g = t.g0 + hh;
            for (int64_t qh = 0; qh < G; ++qh)
                for (int64_t ii = 0; ii < tl; ++ii) {
                    if (bf16_pairs) {
                        const char *src = q.data + (b * q.strides[0] + (i0 + ii) * q.strides[1] +
                                                    (g * G + qh) * q.strides[2]) * int64_t(q.elem_size);
                        std::memcpy(H.Qh + (qh * tl + ii) * D, src, size_t(D) * 2);
                        continue;
                    }
                    load_scaled_query(q, b, i0 + ii, g * G + qh, kn, scale, transposed, R, qh * tl + ii, row, H.Qb);
                }
            if (i8_ints) kn.quantize_i16(H.Qb, R, int(D), H.Qi, H.qs);
            std::fill(H.O, H.O + size_t(R) * Dv, 0.0f);
            std::fill(H.m, H.m + R, ninf);
            std::fill(H.l, H.l + R, 0.0f);
        }

        int64_t lo = t.lo, hi = t.hi;
        if (t.parts > 1) {
            lo = t.lo + part * split;
            hi = std::min(t.hi, lo + split - 1);
        }
        if (transposed) {  // prefill (one head per task): K and V tiles as float32 rows, K^T Q^T by the gemm
            const head_state &H = heads[0];
            for (int64_t j0 = lo; j0 <= hi; j0 += k_tile_keys) {
                const int nk = int(std::min<int64_t>(k_tile_keys, hi + 1 - j0));
                const int next = int(std::clamp<int64_t>(hi + 1 - j0 - k_tile_keys, 0, k_tile_keys));
                int64_t ldk = 0, ldv = 0;
                const float *Kp = load_tile(L, seq, t.g0, j0, nk, false, kn, Kf, &ldk);
                // V read from K's rows (v_from_k): the K tile's first Dv columns, converted once.
                const float *Vp = v_in_k ? Kp : load_tile(L, seq, t.g0, j0, nk, true, kn, Vf, &ldv);
                if (v_in_k) ldv = ldk;
                if (next > 0) {  // ask for the next tile now, so it arrives while this one computes
                    prefetch_rows(L, seq, t.g0, j0 + k_tile_keys, next, false);
                    if (!v_in_k) prefetch_rows(L, seq, t.g0, j0 + k_tile_keys, next, true);
                }
                kn.gemm(nk, R, int(D), Kp, ldk, 1, H.Qb, R, H.ST, R, false, nullptr);
                bias_and_mask(H.ST, b, t.g0, len, i0, tl, R, j0, nk);
                kn.softmax_tile(H.ST, nk, R, H.m, H.l, H.alpha);
                kn.gemm(R, int(Dv), nk, H.ST, 1, R, Vp, ldv, H.O, Dv, true, H.alpha);
            }
        } else {
            // Decode: the pieces of each tile read where they lie, K then V.
            // Every piece asks for the piece `ahead` places later in that
            // stream (K of this tile, V of this tile, K of the next, ...), so
            // about k_prefetch_bytes of rows are always on their way.
            const int64_t row_bytes = D * kv_dtype_bytes(L.type);  // K's
            const int64_t v_row_bytes = value_row(L) * kv_dtype_bytes(L.type);
            // The runs kernels find V's rows as they find K's: D apart.
            const bool v_like_k = Dv == D && value_row(L) == D;
            // Pieces as decode_chunk_keys has them; plain [B, S, H, D] rows
            // (below) start from the memory's (a head's rows lie apart there).
            // (bf16 on the even/odd p.v from memory: pieces of 32 keys, 8 KiB,
            // 1.01-1.06x; float32 and fp16 measured 0.92-0.98x that way and
            // keep 16.) A cache's whole-tile pieces of 16-bit rows only up to
            // k_cache_long_piece_bytes (decode_chunk_keys; a paged cache's
            // pieces end at its blocks anyway; float32's in-cache pieces are
            // 32 keys, and at 32 MiB measured the same either way, 0.77-1.42x).
            const bool in_place = (bf16_pairs || kn.dots_pf) && (eo || gemm_pf);
            int chunk = i8_ints ? tile
                                : decode_chunk_keys(L.token_stride > 0 ? k_cache_resident_bytes + 1 : call_bytes,
                                                    kv_dtype_bytes(L.type), eo, in_place);
            // Plain tensors read from memory on a set without the tokens
            // kernels (below): a head's rows lie token_stride
            // apart, so in L1 they fall into the same few sets (all into one
            // group of sets for a stride of 4 KiB), and pieces of at most 4
            // rows per group leave those sets room for the lines asked for
            // ahead. Over [B, S, 8, 128] at batch 16 (2-core Zen 5): float32
            // 4-row pieces 1.1-1.2x faster than 16, bf16 8-row 1.4x than 32.
            // Calls whose rows fit in the caches (in_cache) are bound by the
            // kernels instead, which prefer long pieces: calls of 16 and 24
            // MiB decoded 1.28-1.36x faster with 32-row bf16 and 16-row
            // float32 pieces than with the short ones (this bound was 16 MiB).
            if (L.token_stride > 0 && !in_cache) {
                const int64_t groups = 4096 / std::gcd(L.token_stride * kv_dtype_bytes(L.type), int64_t(4096));
                chunk = int(std::min<int64_t>(chunk, 4 * groups));
            }
            // int8 in integers over blocks of at most 32 rows (a paged cache)
            // in the caches (in_cache): a head's pieces of up to 8 consecutive
            // blocks in one call of up to 128 keys (the runs kernels). From L3
            // a contiguous cache cut into 16-key pieces decodes at 0.77x its
            // 256-key pieces; paged caches of 16-row blocks decode 1.06-1.09x
            // faster this way (2-core Zen 5, 1 and 2 threads, 1k and 8k keys;
            // 64-key calls: 1.04-1.08x). From memory they ran 0.83x: a group
            // of blocks is read a head at a time, not a block front to back.
            const bool i8_runs = i8_ints && in_cache && kn.dots_i8_runs_pf && kn.gemm_i8_runs_pf && v_like_k &&
                                 L.token_stride == 0 && L.block_size <= 32 && L.block_size < tile;
            // The same for the p.v over bf16 and fp16 rows (the scores stay a
            // call per block: they keep no sums across keys), where a call per
            // block of 16 keys loads and stores the output 8 times as often.
            // Paged caches of 16 MiB, blocks of 16, 2-core Zen 5, 2 threads:
            // bf16 1.12x, fp16 1.09-1.11x (the same bits); with the calls'
            // prefetch ranges (a whole call ahead, 32 KiB, into L1) 0.93x and
            // 1.0x, so the calls ask for nothing, and so only for calls of at
            // most half the resident bound: at 24 and 32 MiB, where part of
            // the rows come from memory, they ran 0.97x and 0.70x (asking 16
            // KiB ahead of each call's reading: 1.0x at 32 MiB, 0.93x at 16).
            // float32 keeps a call per block: a call's 64 KiB of rows, read
            // once per panel of columns, no longer fit in L1 (0.86x with
            // prefetches, 0.70x without).
            const bool f_runs = !i8_ints && call_bytes <= k_cache_resident_bytes / 2 && in_place && v_like_k &&
                                kv_dtype_bytes(L.type) == 2 &&
                                L.token_stride == 0 && L.block_size <= 32 && L.block_size < tile &&
                                (eo ? kn.gemm_bf16_eo_runs_pf != nullptr : kn.gemm_runs_pf != nullptr);
            const bool runs = i8_runs || f_runs;
            // The stream's items: int8's runs calls (they carry the requests), else the pieces.
            const int64_t piece_bytes =
                i8_runs ? std::min<int64_t>(k_runs_max_keys / L.block_size * L.block_size, tile) * row_bytes
                        : std::min<int64_t>(chunk, L.block_size) * row_bytes;
            // int8 rows in integers on a core that asks into L1 (Zen 5): half as
            // far (see decode_prefetch_into_l1).
            const int64_t pf_reach = i8_ints && decode_prefetch_into_l1() ? k_prefetch_bytes / 2 : k_prefetch_bytes;
            const size_t ahead = size_t(std::max<int64_t>(1, (pf_reach + piece_bytes - 1) / piece_bytes));
            auto nk_at = [&](int64_t j0) { return int(std::min<int64_t>(tile, hi + 1 - j0)); };
            // Plain [B, S, H, D] rows on a set with the tokens kernels: each
            // tile's K and V in one call each, a few tokens at a time, every
            // head in turn, so the rows are read front to back with no piece
            // bookkeeping or call per head and few rows (see tokens_group).
            const bool tokens = L.token_stride > 0 && ng * D == L.token_stride && !kv_has_scales(L.type) &&
                                (bf16_pairs ? kn.dots_bf16_tokens_pf != nullptr : kn.dots_tokens_pf != nullptr) &&
                                (eo ? kn.gemm_bf16_eo_tokens_pf != nullptr : kn.gemm_tokens_pf != nullptr);
            const int64_t es = kv_dtype_bytes(L.type);
            const int64_t head_stride = int64_t(per_head);  // between heads[hh]'s arrays
            // Plain rows of token j on: K, or V.
            auto token_rows = [&](bool value, int64_t j) {
                const int64_t blk = seq.blocks[0];
                return value ? L.v + (blk * L.v_block_stride + j * value_token_stride(L)) * es
                             : L.k + (blk * L.k_block_stride + j * L.token_stride) * es;
            };
            // Keys per group of the tokens' p.v (each head's output loaded and
            // stored once per group): 16 KiB of tokens from memory, where a
            // head's rows lie a token apart and so share a few of L1's sets
            // (longer groups evict the rows asked for ahead), 64 KiB from the
            // caches (fewer loads and stores of the output). 8 heads of 128 on
            // 2-core Zen 5: float32 groups of 4 from memory 1.13-1.21x faster
            // than 6 or 8, 16 from the caches 1.13x faster than 4; bf16
            // groups of 8 from memory 1.11x than 4 and 1.3x than 16, 32 from
            // the caches 1.06x than 16.
            // (Counted in V's rows of a token, which the p.v reads.)
            const int64_t token_bytes = L.token_stride * es, v_token_bytes = value_token_stride(L) * es;
            const int tokens_group =
                int(std::clamp<int64_t>((in_cache ? 65536 : 16384) / std::max<int64_t>(v_token_bytes, 1), 1, 64));
            if (!tokens) tile_pieces(L, seq, t.g0, ng, lo, nk_at(lo), chunk, nxt);
            if (runs) group_runs(nxt, ng, nxt_calls, nxt_runs);
            // The item (piece, or runs call) `ahead` places after K (or V) item
            // i of this tile in the stream: after K, this tile's V, then the
            // next tile's K; after V, the next tile's K, then its V. n_cur and
            // n_nxt: the items of this tile and of the next. False past the end.
            struct stream_spot {
                bool next_tile, value;
                size_t k;
            };
            auto stream_ahead = [&](bool value, size_t i, size_t n_cur, size_t n_nxt, stream_spot *at) {
                const size_t sizes[3] = {n_cur, value ? n_nxt : n_cur, n_nxt};
                const bool next_tile[3] = {false, value, true}, is_v[3] = {value, !value, value};
                size_t k = i + ahead;
                for (int x = 0; x < 3; ++x) {
                    if (k < sizes[x]) {
                        *at = {next_tile[x], is_v[x], k};
                        return true;
                    }
                    k -= sizes[x];
                }
                return false;
            };
            // That piece's rows (null past the end) and their bytes; an 8-bit
            // piece's scales are asked for here.
            auto target = [&](bool value, size_t i, int64_t *bytes) -> const char * {
                stream_spot at;
                if (!stream_ahead(value, i, cur.size(), nxt.size(), &at)) {
                    *bytes = 0;
                    return nullptr;
                }
                const piece &pc = (at.next_tile ? nxt : cur)[at.k];
                if (at.value && v_in_k) {  // V lies in K's rows, read just before
                    *bytes = 0;
                    return nullptr;
                }
                if (kv_has_scales(L.type))
                    prefetch_bytes(reinterpret_cast<const char *>((at.value ? L.v_scale : L.k_scale) + pc.row), pc.n * 4);
                *bytes = pc.n * (at.value ? v_row_bytes : row_bytes);
                const char *base = at.value ? L.v : L.k;
                const int64_t ofs = at.value ? pc.vofs : pc.kofs;
                // Plain tensors: the heads' pieces of a chunk read its rows
                // together (ng * D = token_stride: one run), so each asks for
                // its share of that run, in turn.
                if (L.token_stride > 0) return base + (ofs - pc.hh * (at.value ? Dv : D)) * es + pc.hh * *bytes;
                return base + ofs * es;
            };
            // i8_runs: that call's ranges (at most k_runs_max; their count),
            // their scales asked for here.
            auto runs_target = [&](bool value, size_t i, byte_range *out) -> int {
                stream_spot at;
                if (!stream_ahead(value, i, cur_calls.size(), nxt_calls.size(), &at)) return 0;
                const runs_call &c = (at.next_tile ? nxt_calls : cur_calls)[at.k];
                const std::vector<row_run> &runs = at.next_tile ? nxt_runs : cur_runs;
                const char *base = at.value ? L.v : L.k;
                const float *scales = at.value ? L.v_scale : L.k_scale;
                for (int r = 0; r < c.count; ++r) {
                    const row_run &run = runs[c.first + size_t(r)];
                    prefetch_bytes(reinterpret_cast<const char *>(scales + run.row), run.n * 4);
                    out[r] = {base + run.row * row_bytes, run.n * row_bytes};
                }
                return c.count;
            };
            for (int64_t j0 = lo; j0 <= hi; j0 += tile) {
                const int nk = nk_at(j0);
                const bool more = j0 + tile <= hi;  // a tile after this one
                std::swap(cur, nxt);
                if (more && !tokens)
                    tile_pieces(L, seq, t.g0, ng, j0 + tile, nk_at(j0 + tile), chunk, nxt);
                else
                    nxt.clear();
                if (runs) {
                    std::swap(cur_calls, nxt_calls);
                    std::swap(cur_runs, nxt_runs);
                    group_runs(nxt, ng, nxt_calls, nxt_runs);
                }
                int64_t pf_bytes = 0;
                byte_range pf_runs[k_runs_max];
                // tokens: this tile's K and V rows, and the next tile's K (read after this tile's V).
                const char *tile_k = tokens ? token_rows(false, j0) : nullptr;
                const char *tile_v = tokens ? token_rows(true, j0) : nullptr;
                const char *next_k = tokens && more ? token_rows(false, j0 + tile) : nullptr;
                const int64_t v_tile_bytes = nk * v_token_bytes, next_bytes = more ? nk_at(j0 + tile) * token_bytes : 0;
                if (tokens && bf16_pairs)
                    kn.dots_bf16_tokens_pf(int(ng), R, nk, int(D), heads[0].Qh, reinterpret_cast<const uint16_t *>(tile_k),
                                           scale, heads[0].ST, head_stride, tile_v, v_tile_bytes, k_prefetch_bytes);
                else if (tokens)
                    kn.dots_tokens_pf(int(ng), R, nk, int(D), heads[0].Qb, tile_k, row_type(int(L.type)), heads[0].ST,
                                      head_stride, tile_v, v_tile_bytes, k_prefetch_bytes);
                else if (i8_runs)
                    for (size_t i = 0; i < cur_calls.size(); ++i) {
                        const runs_call &c = cur_calls[i];
                        const head_state &H = heads[size_t(c.hh)];
                        const int n_pf = runs_target(false, i, pf_runs);
                        kn.dots_i8_runs_pf(R, int(D), H.Qi, D, H.qs, reinterpret_cast<const int8_t *>(L.k), L.k_scale,
                                           cur_runs.data() + c.first, c.count, H.ST + (c.j - j0) * R, pf_runs, n_pf);
                    }
                else
                    for (size_t i = 0; i < cur.size(); ++i) {
                        const piece &pc = cur[i];
                        const head_state &H = heads[size_t(pc.hh)];
                        const char *pf = target(false, i, &pf_bytes);
                        piece_scores(L, pc, kn, H, R, Kf, H.ST + (pc.j - j0) * R, pf, pf_bytes, scale);
                    }
                for (int64_t hh = 0; hh < ng; ++hh) {
                    const head_state &H = heads[size_t(hh)];
                    // (rows_finite: a NaN or infinity in a K row makes its scores so.)
                    if (p.rows_finite && !core::all_finite(H.ST, int64_t(nk) * R))
                        p.rows_finite->store(false, std::memory_order_relaxed);
                    bias_and_mask(H.ST, b, t.g0 + hh, len, i0, tl, R, j0, nk);
                    kn.softmax_tile(H.ST, nk, R, H.m, H.l, H.alpha);
                }
                if (i8_ints) {
                    // The weights p * (V row scale) as int16 steps of the
                    // tile's largest V row scale / 32767 (p <= 1).
                    for (int64_t hh = 0; hh < ng; ++hh) heads[size_t(hh)].wi = 0.0f;  // the largest scale, first
                    for (const piece &pc : cur) {
                        // Four running maxima in locals: one through heads[].wi
                        // was a chain of dependent maxss and stores, a key each.
                        const float *sv = L.v_scale + pc.row;
                        float m4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                        int j = 0;
                        for (; j + 4 <= pc.n; j += 4)
                            for (int u = 0; u < 4; ++u) m4[u] = std::max(m4[u], sv[j + u]);
                        for (; j < pc.n; ++j) m4[0] = std::max(m4[0], sv[j]);
                        float &mx = heads[size_t(pc.hh)].wi;
                        mx = std::max({mx, m4[0], m4[1], m4[2], m4[3]});
                    }
                    for (int64_t hh = 0; hh < ng; ++hh) {
                        head_state &H = heads[size_t(hh)];
                        std::fill(H.ws, H.ws + R, H.wi / 32767.0f);
                        H.wi = H.wi > 0.0f ? 32767.0f / H.wi : 0.0f;
                        std::fill(H.acc, H.acc + size_t(R) * Dpad, 0);
                    }
                }
                if (tokens && eo)
                    kn.gemm_bf16_eo_tokens_pf(int(ng), R, nk, int(Dv), tokens_group, heads[0].ST,
                                              reinterpret_cast<const uint16_t *>(tile_v), heads[0].O, heads[0].alpha,
                                              head_stride, next_k, next_bytes, k_prefetch_bytes);
                else if (tokens)
                    kn.gemm_tokens_pf(int(ng), R, nk, int(Dv), tokens_group, heads[0].ST, tile_v, row_type(int(L.type)),
                                      heads[0].O, heads[0].alpha, head_stride, next_k, next_bytes, k_prefetch_bytes);
                else if (i8_runs)
                    for (size_t i = 0; i < cur_calls.size(); ++i) {
                        const runs_call &c = cur_calls[i];
                        const head_state &H = heads[size_t(c.hh)];
                        const int n_pf = runs_target(true, i, pf_runs);
                        kn.gemm_i8_runs_pf(R, int(D), H.ST + (c.j - j0) * R, R, L.v_scale, H.wi,
                                           reinterpret_cast<const int8_t *>(L.v), cur_runs.data() + c.first, c.count,
                                           H.acc, Dpad, pf_runs, n_pf);
                    }
                else if (f_runs)
                    for (size_t i = 0; i < cur_calls.size(); ++i) {
                        const runs_call &c = cur_calls[i];
                        const head_state &H = heads[size_t(c.hh)];
                        const float *alpha = c.j == j0 ? H.alpha : nullptr;  // a head's first call of the tile
                        // (No prefetches: see f_runs.)
                        if (eo)
                            kn.gemm_bf16_eo_runs_pf(R, int(D), H.ST + (c.j - j0) * R, R,
                                                    reinterpret_cast<const uint16_t *>(L.v), cur_runs.data() + c.first,
                                                    c.count, H.O, D, alpha, nullptr, 0);
                        else
                            kn.gemm_runs_pf(R, int(D), H.ST + (c.j - j0) * R, R, L.v, row_type(int(L.type)),
                                            cur_runs.data() + c.first, c.count, H.O, D, alpha, nullptr, 0);
                    }
                else
                    for (size_t i = 0; i < cur.size(); ++i) {
                        const piece &pc = cur[i];
                        const head_state &H = heads[size_t(pc.hh)];
                        const char *pf = target(true, i, &pf_bytes);
                        if (i8_ints) {
                            kn.gemm_i8_pf(R, pc.n, int(Dv), H.ST + (pc.j - j0) * R, R, L.v_scale + pc.row, H.wi,
                                          reinterpret_cast<const int8_t *>(L.v) + pc.vofs, value_row(L), H.acc, Dpad,
                                          pf, pf_bytes);
                            continue;
                        }
                        piece_values(L, pc, kn, gemm_pf, H.ST + (pc.j - j0) * R, R, pc.j == j0 ? H.alpha : nullptr,
                                     Vf, H.O, pf, pf_bytes, eo);
                    }
                if (i8_ints)
                    for (int64_t hh = 0; hh < ng; ++hh) {
                        const head_state &H = heads[size_t(hh)];
                        kn.i8_acc_finish(R, int(Dv), H.acc, Dpad, H.ws, H.alpha, H.O, Dv);
                    }
            }
        }

        for (int64_t hh = 0; hh < ng; ++hh) {
            const head_state &H = heads[size_t(hh)];
            const int64_t g = t.g0 + hh;
            if (eo) columns_from_eo(H.O, R, Dv);
            if (t.parts > 1) {
                float *dst = parts.data() + (t.first_slot + part * ng + hh) * slot;
                std::memcpy(dst, H.O, size_t(R) * Dv * 4);
                std::memcpy(dst + size_t(R) * Dv, H.m, size_t(R) * 4);
                std::memcpy(dst + size_t(R) * (Dv + 1), H.l, size_t(R) * 4);
                continue;
            }
            for (int64_t qh = 0; qh < G; ++qh)
                for (int64_t ii = 0; ii < tl; ++ii) {
                    const int64_t r = qh * tl + ii;
                    float row_lse;
                    finish_row(H.O + r * Dv, H.m[r], H.l[r], p.sinks ? p.sinks + g * G + qh : nullptr, Dv, row,
                               p.lse ? &row_lse : nullptr);
                    store_row(out, b, i0 + ii, g * G + qh, kn, row);
                    if (p.lse) store_lse(p.lse, b, i0 + ii, g * G + qh, row_lse);
                }
        }
    };

    // Every (task, part) as one work item: item_task[x] is x's task.
    std::vector<int64_t> item_task(static_cast<size_t>(n_items)), item_first(tasks.size());
    for (size_t ti = 0, x = 0; ti < tasks.size(); ++ti) {
        item_first[ti] = int64_t(x);
        for (int64_t k = 0; k < tasks[ti].parts; ++k) item_task[x++] = int64_t(ti);
    }
    core::parallel_for(n_items, threads, [&](int64_t x) {
        const int64_t ti = item_task[size_t(x)];
        process(ti, x - item_first[size_t(ti)]);
    });
    if (parts.empty()) return;

    // Merge the parts of split tasks: rescale each part's (O, l) to the
    // common max and add, in part order.
    core::parallel_for(int64_t(tasks.size()), threads, [&](int64_t ti) {
        const task &t = tasks[size_t(ti)];
        if (t.parts <= 1) return;
        const int64_t R = G * t.tl;
        std::vector<float> row(static_cast<size_t>(Dv));
        for (int64_t hh = 0; hh < t.ng; ++hh)
            for (int64_t r = 0; r < R; ++r) {
                // Part k of head hh is slot first_slot + k * ng + hh.
                float mx, sum;
                merge_parts(parts.data() + (t.first_slot + hh) * slot, t.ng * slot, t.parts, R, Dv, r, row.data(), &mx,
                            &sum);
                const int64_t qh = r / t.tl, ii = r % t.tl, g = t.g0 + hh;
                float row_lse;
                finish_row(row.data(), mx, sum, p.sinks ? p.sinks + g * G + qh : nullptr, Dv, row.data(),
                           p.lse ? &row_lse : nullptr);
                store_row(out, t.b, t.i0 + ii, g * G + qh, kn, row.data());
                if (p.lse) store_lse(p.lse, t.b, t.i0 + ii, g * G + qh, row_lse);
            }
    });
}

}  // namespace llmkit::attention
