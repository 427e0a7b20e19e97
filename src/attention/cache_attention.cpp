// Attention over a KV cache (contiguous or paged): the tiled online softmax of
// attention.cpp, reading K and V through each sequence's block table.
//
// A task is (sequence, kv head, query tile); its rows are the tile's queries
// of every query head sharing the kv head. Per tile of up to 64 keys the rows
// j0..j0+63 are found through the block table (row j is row j % block_size of
// block table[j / block_size]). Prefill (16 rows or more) converts them to
// float32 in a small buffer as they are read (bf16/fp16 exactly, int8 times its
// row's scale; an fp32 tile inside one block is used in place) for the gemms.
// Decode reads them where they lie, a run of rows inside a block at a time:
// fp32 in place, bf16/fp16 through the kernels' fused dots_half / gemm_half
// (converted in registers), int8 dequantised run by run. Either way there is
// no pass over the cache and no gathered copy of it.
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

#include "attention/kernels.hpp"
#include "attention/kv_cache.hpp"
#include "core/threads.hpp"

namespace llmkit::attention {

using core::dtype;
using core::fail;
using core::tensor_view;

namespace {

constexpr int k_tile_keys = 64;
constexpr int k_tile_rows = 64;
constexpr int64_t k_default_split_keys = 1024;
// Decode walks a tile in chunks of this many keys, asking for the same chunk
// of the next tile before each: a burst of prefetches for a whole tile would
// fill the core's miss buffers and stall it instead of overlapping the compute.
constexpr int k_chunk_keys = 16;

struct workspace {
    std::unique_ptr<float[]> data;
    size_t size = 0;
    float *get(size_t n) {
        if (n > size) {
            data.reset(new float[n]);
            size = n;
        }
        return data.get();
    }
};

void validate(const cache_layer_view &L, const cache_seq *seqs, int64_t n_seqs, const tensor_view &q,
              const tensor_view &out) {
    for (const tensor_view *t : {&q, &out}) {
        if (t->ndim != 4)
            fail(LLMKIT_ERROR_SHAPE, t->name, ": expected 4 dimensions [batch, queries, heads, head_dim], got ", t->ndim,
                 " (shape ", t->shape_string(), ")");
        if (!t->on_host()) fail(LLMKIT_ERROR_UNSUPPORTED, t->name, ": the KV caches take host tensors only");
        if (t->shape[3] > 1 && t->strides[3] != 1)
            fail(LLMKIT_ERROR_UNSUPPORTED, t->name, ": the head_dim axis (3) must have stride 1, got stride ", t->strides[3]);
    }
    if (q.type != dtype::f32 && q.type != dtype::bf16 && q.type != dtype::f16)
        fail(LLMKIT_ERROR_DTYPE, "q: dtype ", core::dtype_name(q.type), " is not float32, bfloat16 or float16");
    if (out.type != q.type)
        fail(LLMKIT_ERROR_DTYPE, "out: dtype ", core::dtype_name(out.type), " differs from q's ", core::dtype_name(q.type));
    for (int i = 0; i < 4; ++i)
        if (out.shape[i] != q.shape[i])
            fail(LLMKIT_ERROR_SHAPE, "out: shape ", out.shape_string(), " must equal q's ", q.shape_string());
    if (q.shape[0] != n_seqs)
        fail(LLMKIT_ERROR_SHAPE, "q: ", q.shape[0], " rows of queries (axis 0, shape ", q.shape_string(), ") for ", n_seqs,
             " sequences");
    if (q.shape[3] != L.head_dim)
        fail(LLMKIT_ERROR_SHAPE, "q: head_dim ", q.shape[3], " differs from the cache's ", L.head_dim);
    if (q.shape[2] % L.n_kv_heads != 0)
        fail(LLMKIT_ERROR_SHAPE, "the number of query heads (", q.shape[2],
             ") must be a multiple of the cache's key/value heads (", L.n_kv_heads, ")");
    const int64_t Sq = q.shape[1];
    for (int64_t b = 0; b < n_seqs; ++b) {
        if (seqs[b].length < Sq)
            fail(LLMKIT_ERROR_SHAPE, "sequence ", b, " of the batch holds ", seqs[b].length, " tokens but q has ", Sq,
                 " queries for it: append the new tokens' K and V before attending (queries are the last Sq tokens)");
        if (seqs[b].n_blocks * L.block_size < seqs[b].length)
            fail(LLMKIT_ERROR_INTERNAL, "sequence ", b, " holds more tokens than its block table covers");
    }
}

// Rows [j0, j0 + n) of kv head g of one sequence as float32 rows of D:
// returns where they are (in place for an fp32 run inside one block, else
// converted into buf).
const float *load_tile(const cache_layer_view &L, const cache_seq &s, int64_t g, int64_t j0, int n, bool value,
                       const kernels &kn, float *buf) {
    const int64_t bs = L.block_size, D = L.head_dim, es = kv_dtype_bytes(L.type);
    const char *base = value ? L.v : L.k;
    const float *scales = value ? L.v_scale : L.k_scale;
    if (L.type == kv_dtype::f32 && j0 / bs == (j0 + n - 1) / bs) {
        const int64_t row = (int64_t(s.blocks[j0 / bs]) * L.n_kv_heads + g) * bs + j0 % bs;
        return reinterpret_cast<const float *>(base + row * D * es);
    }
    for (int64_t j = j0; j < j0 + n;) {
        const int64_t t = j % bs, run = std::min(bs - t, j0 + n - j);
        const int64_t row = (int64_t(s.blocks[j / bs]) * L.n_kv_heads + g) * bs + t;
        const char *src = base + row * D * es;
        float *dst = buf + (j - j0) * D;
        switch (L.type) {
        case kv_dtype::f32: std::memcpy(dst, src, size_t(run * D) * 4); break;
        case kv_dtype::bf16:
        case kv_dtype::f16:
            kn.half_to_f32(dst, reinterpret_cast<const uint16_t *>(src), run * D, L.type == kv_dtype::bf16);
            break;
        case kv_dtype::i8: kn.i8_to_f32(dst, reinterpret_cast<const int8_t *>(src), run, D, scales + row); break;
        }
        j += run;
    }
    return buf;
}

// Decode (few rows, dot products): S^T = Q K^T over the tile's rows where they
// lie, one call per run of rows inside a block. fp32 rows are read in place and
// 16-bit rows through the kernels' fused dots_half when the set has it, so the
// cache is streamed once with no float32 copy; int8 rows (and 16-bit rows for a
// set without dots_half) are dequantised run by run into buf. A key's score
// does not depend on which keys share a call, so paged and contiguous caches
// give the same bits.
void tile_scores(const cache_layer_view &L, const cache_seq &s, int64_t g, int64_t j0, int n, const kernels &kn,
                 const float *Qb, int R, float *buf, float *ST) {
    const int64_t bs = L.block_size, D = L.head_dim, es = kv_dtype_bytes(L.type);
    const bool bf16 = L.type == kv_dtype::bf16;
    for (int64_t j = j0; j < j0 + n;) {
        const int64_t t = j % bs, run = std::min(bs - t, j0 + n - j);
        const int64_t row = (int64_t(s.blocks[j / bs]) * L.n_kv_heads + g) * bs + t;
        const char *src = L.k + row * D * es;
        float *st = ST + (j - j0) * R;
        switch (L.type) {
        case kv_dtype::f32: kn.dots(R, int(run), int(D), Qb, D, reinterpret_cast<const float *>(src), D, st); break;
        case kv_dtype::bf16:
        case kv_dtype::f16:
            if (kn.dots_half) {
                kn.dots_half(R, int(run), int(D), Qb, D, reinterpret_cast<const uint16_t *>(src), D, bf16, st);
            } else {
                kn.half_to_f32(buf, reinterpret_cast<const uint16_t *>(src), run * D, bf16);
                kn.dots(R, int(run), int(D), Qb, D, buf, D, st);
            }
            break;
        case kv_dtype::i8:
            kn.i8_to_f32(buf, reinterpret_cast<const int8_t *>(src), run, D, L.k_scale + row);
            kn.dots(R, int(run), int(D), Qb, D, buf, D, st);
            break;
        }
        j += run;
    }
}

// Decode: O = alpha O + P^T V over the tile's rows where they lie, as
// tile_scores reads K. The first run's gemm applies alpha, the others add to
// O (a scale of 1 is exact), so the sum runs over the keys in the same order,
// with the same bits, however the rows are split into runs.
void tile_values(const cache_layer_view &L, const cache_seq &s, int64_t g, int64_t j0, int n, const kernels &kn,
                 const float *ST, int R, const float *alpha, float *buf, float *O) {
    const int64_t bs = L.block_size, D = L.head_dim, es = kv_dtype_bytes(L.type);
    const bool bf16 = L.type == kv_dtype::bf16;
    for (int64_t j = j0; j < j0 + n;) {
        const int64_t t = j % bs, run = std::min(bs - t, j0 + n - j);
        const int64_t row = (int64_t(s.blocks[j / bs]) * L.n_kv_heads + g) * bs + t;
        const char *src = L.v + row * D * es;
        const float *p = ST + (j - j0) * R;
        const float *scale = j == j0 ? alpha : nullptr;
        switch (L.type) {
        case kv_dtype::f32:
            kn.gemm(R, int(D), int(run), p, 1, R, reinterpret_cast<const float *>(src), D, O, D, true, scale);
            break;
        case kv_dtype::bf16:
        case kv_dtype::f16:
            if (kn.gemm_half) {
                kn.gemm_half(R, int(D), int(run), p, 1, R, reinterpret_cast<const uint16_t *>(src), D, bf16, O, D, true,
                             scale);
            } else {
                kn.half_to_f32(buf, reinterpret_cast<const uint16_t *>(src), run * D, bf16);
                kn.gemm(R, int(D), int(run), p, 1, R, buf, D, O, D, true, scale);
            }
            break;
        case kv_dtype::i8:
            kn.i8_to_f32(buf, reinterpret_cast<const int8_t *>(src), run, D, L.v_scale + row);
            kn.gemm(R, int(D), int(run), p, 1, R, buf, D, O, D, true, scale);
            break;
        }
        j += run;
    }
}

// Asks for rows [j0, j0 + n) of K (or V) now.
void prefetch_rows(const cache_layer_view &L, const cache_seq &s, int64_t g, int64_t j0, int n, bool value) {
    const int64_t bs = L.block_size, row_bytes = L.head_dim * kv_dtype_bytes(L.type);
    const char *base = value ? L.v : L.k;
    for (int64_t j = j0; j < j0 + n;) {
        const int64_t t = j % bs, run = std::min(bs - t, j0 + n - j);
        const char *p = base + ((int64_t(s.blocks[j / bs]) * L.n_kv_heads + g) * bs + t) * row_bytes;
        for (int64_t c = 0; c < run * row_bytes; c += 64) __builtin_prefetch(p + c);
        j += run;
    }
}

struct task {
    int64_t b, g, i0, tl;  // sequence, kv head, first query, queries
    int64_t lo, hi;        // keys any of its rows sees: [lo, hi]
    int64_t parts, first_part;
};

}  // namespace

void cache_attention(const cache_layer_view &L, const cache_seq *seqs, int64_t n_seqs, const tensor_view &q,
                     const tensor_view &out, const cache_attention_params &p) {
    validate(L, seqs, n_seqs, q, out);
    const kernels &kn = p.kernel_set ? *p.kernel_set : best_kernels();
    const int64_t B = n_seqs, Sq = q.shape[1], Hq = q.shape[2], D = q.shape[3], Hkv = L.n_kv_heads;
    if (B == 0 || Sq == 0 || Hq == 0) return;
    const int64_t G = Hq / Hkv;
    const int64_t tq = std::min<int64_t>(Sq, std::max<int64_t>(1, k_tile_rows / G));
    const int64_t nqt = (Sq + tq - 1) / tq;
    const float scale = p.scale != 0.0f ? p.scale : float(1.0 / std::sqrt(double(D)));
    const bool causal = p.causal || p.window > 0;
    const dtype dt = q.type;
    const int64_t es = int64_t(q.elem_size);
    const float ninf = -std::numeric_limits<float>::infinity();
    int64_t split = p.split_keys > 0 ? p.split_keys : k_default_split_keys;
    split = (split + k_tile_keys - 1) / k_tile_keys * k_tile_keys;  // whole tiles

    // Query ii of a task sits at position i0 + ii + (length - Sq); it sees keys [lo_of, hi_of].
    auto hi_of = [&](int64_t len, int64_t i) { return causal ? i + len - Sq : len - 1; };
    auto lo_of = [&](int64_t len, int64_t i) {
        return p.window > 0 ? std::max<int64_t>(0, i + len - Sq - std::min(p.window, len) + 1) : int64_t(0);
    };
    std::vector<task> tasks;
    tasks.reserve(size_t(B * Hkv * nqt));
    int64_t n_parts = 0;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t g = 0; g < Hkv; ++g)
            for (int64_t qt = 0; qt < nqt; ++qt) {
                task t{b, g, qt * tq, std::min(tq, Sq - qt * tq), 0, -1, 1, 0};
                const int64_t len = seqs[b].length;
                t.lo = lo_of(len, t.i0);  // both bounds grow with the query index
                t.hi = hi_of(len, t.i0 + t.tl - 1);
                if (nqt == 1 && t.hi - t.lo + 1 > split) t.parts = (t.hi - t.lo + split) / split;
                t.first_part = n_parts;
                n_parts += t.parts;
                tasks.push_back(t);
            }

    auto write_row = [&](int64_t b, int64_t i, int64_t h, const float *row) {
        char *dst = out.data + (b * out.strides[0] + i * out.strides[1] + h * out.strides[2]) * es;
        if (dt == dtype::f32)
            std::memcpy(dst, row, size_t(D) * 4);
        else
            kn.f32_to_half(reinterpret_cast<uint16_t *>(dst), row, D, dt == dtype::bf16);
    };
    // out = O / l, with the sink logit (if any) joining the softmax's denominator.
    auto finish_row = [&](const float *O, float m, float l, int64_t h, float *row) {
        float norm = l;
        float keep = 1.0f;  // rescales O and l when the sink exceeds the running max
        if (p.sinks) {
            const float s = p.sinks[h];
            const float mx = std::max(m, s);
            keep = m == ninf ? 0.0f : std::exp(m - mx);
            norm = l * keep + std::exp(s - mx);
        }
        const float inv = norm > 0.0f ? keep / norm : 0.0f;
        for (int64_t d = 0; d < D; ++d) row[d] = O[d] * inv;
    };

    const int64_t slot = G * tq * (D + 2);  // one part: O [R][D], m [R], l [R]
    std::vector<float> parts(n_parts > int64_t(tasks.size()) ? size_t(n_parts * slot) : 0);

    auto process = [&](int64_t ti, int64_t part) {
        thread_local workspace ws;
        const task &t = tasks[size_t(ti)];
        const cache_seq &seq = seqs[t.b];
        const int64_t len = seq.length, tl = t.tl, i0 = t.i0, g = t.g, b = t.b;
        const int R = int(G * tl);
        const bool transposed = R >= 16;  // gemm on Q^T; dot products for a few rows (decode)
        const size_t need = size_t(R) * D * 2 + size_t(k_tile_keys) * R + size_t(R) * 3 + size_t(D) +
                            size_t(k_tile_keys) * D * 2;
        float *Qb = ws.get(need);
        float *O = Qb + size_t(R) * D;
        float *ST = O + size_t(R) * D;
        float *m = ST + size_t(k_tile_keys) * R;
        float *l = m + R;
        float *alpha = l + R;
        float *row = alpha + R;
        float *Kf = row + D;
        float *Vf = Kf + size_t(k_tile_keys) * D;

        for (int64_t hh = 0; hh < G; ++hh)
            for (int64_t ii = 0; ii < tl; ++ii) {
                const int64_t r = hh * tl + ii;
                const char *src = q.data + (b * q.strides[0] + (i0 + ii) * q.strides[1] + (g * G + hh) * q.strides[2]) * es;
                if (dt == dtype::f32)
                    std::memcpy(row, src, size_t(D) * 4);
                else
                    kn.half_to_f32(row, reinterpret_cast<const uint16_t *>(src), D, dt == dtype::bf16);
                if (transposed)
                    for (int64_t d = 0; d < D; ++d) Qb[d * R + r] = row[d] * scale;
                else
                    for (int64_t d = 0; d < D; ++d) Qb[r * D + d] = row[d] * scale;
            }
        std::fill(O, O + size_t(R) * D, 0.0f);
        std::fill(m, m + R, ninf);
        std::fill(l, l + R, 0.0f);

        int64_t lo = t.lo, hi = t.hi;
        if (t.parts > 1) {
            lo = t.lo + part * split;
            hi = std::min(t.hi, lo + split - 1);
        }
        for (int64_t j0 = lo; j0 <= hi; j0 += k_tile_keys) {
            const int nk = int(std::min<int64_t>(k_tile_keys, hi + 1 - j0));
            const int next = int(std::clamp<int64_t>(hi + 1 - j0 - k_tile_keys, 0, k_tile_keys));  // next tile's keys
            const float *Vp = nullptr;
            if (transposed) {  // prefill: K and V tiles as float32 rows, K^T Q^T by the gemm
                const float *Kp = load_tile(L, seq, g, j0, nk, false, kn, Kf);
                Vp = load_tile(L, seq, g, j0, nk, true, kn, Vf);
                if (next > 0) {  // ask for the next tile now, so it arrives while this one computes
                    prefetch_rows(L, seq, g, j0 + k_tile_keys, next, false);
                    prefetch_rows(L, seq, g, j0 + k_tile_keys, next, true);
                }
                kn.gemm(nk, R, int(D), Kp, D, 1, Qb, R, ST, R, false, nullptr);
            } else {  // decode: read the rows where they lie, a chunk at a time
                for (int c = 0; c < nk; c += k_chunk_keys) {
                    if (c < next) prefetch_rows(L, seq, g, j0 + k_tile_keys + c, std::min(k_chunk_keys, next - c), false);
                    tile_scores(L, seq, g, j0 + c, std::min(k_chunk_keys, nk - c), kn, Qb, R, Kf, ST + c * R);
                }
            }
            for (int64_t hh = 0; hh < G; ++hh)
                for (int64_t ii = 0; ii < tl; ++ii) {
                    const int64_t r = hh * tl + ii, ip = i0 + ii + len - Sq;
                    float *s = ST + r;  // s[j * R]
                    if (p.softcap > 0.0f) {
                        const float c = p.softcap, ic = 1.0f / p.softcap;
                        for (int j = 0; j < nk; ++j) s[j * R] = c * std::tanh(s[j * R] * ic);
                    }
                    if (p.alibi_slopes) {
                        const float slope = p.alibi_slopes[g * G + hh];
                        for (int j = 0; j < nk; ++j) s[j * R] -= slope * float(ip - (j0 + j));
                    }
                    const int64_t lr = lo_of(len, i0 + ii), hr = hi_of(len, i0 + ii), end = j0 + nk;
                    for (int64_t jj = j0; jj < std::min(lr, end); ++jj) s[(jj - j0) * R] = ninf;
                    for (int64_t jj = std::max(hr + 1, j0); jj < end; ++jj) s[(jj - j0) * R] = ninf;
                }

            kn.softmax_tile(ST, nk, R, m, l, alpha);
            if (transposed)
                kn.gemm(R, int(D), nk, ST, 1, R, Vp, D, O, D, true, alpha);
            else
                for (int c = 0; c < nk; c += k_chunk_keys) {
                    if (c < next) prefetch_rows(L, seq, g, j0 + k_tile_keys + c, std::min(k_chunk_keys, next - c), true);
                    tile_values(L, seq, g, j0 + c, std::min(k_chunk_keys, nk - c), kn, ST + c * R, R,
                                c == 0 ? alpha : nullptr, Vf, O);
                }
        }

        if (t.parts > 1) {
            float *dst = parts.data() + (t.first_part + part) * slot;
            std::memcpy(dst, O, size_t(R) * D * 4);
            std::memcpy(dst + size_t(R) * D, m, size_t(R) * 4);
            std::memcpy(dst + size_t(R) * (D + 1), l, size_t(R) * 4);
            return;
        }
        for (int64_t hh = 0; hh < G; ++hh)
            for (int64_t ii = 0; ii < tl; ++ii) {
                const int64_t r = hh * tl + ii;
                finish_row(O + r * D, m[r], l[r], g * G + hh, row);
                write_row(b, i0 + ii, g * G + hh, row);
            }
    };

    const int threads = p.n_threads > 0 ? p.n_threads : core::default_num_threads();
    // Every (task, part) as one work item: part_task[x] is x's task.
    std::vector<int64_t> part_task(static_cast<size_t>(n_parts));
    for (size_t ti = 0; ti < tasks.size(); ++ti)
        for (int64_t k = 0; k < tasks[ti].parts; ++k) part_task[size_t(tasks[ti].first_part + k)] = int64_t(ti);
    core::parallel_for(n_parts, threads, [&](int64_t x) {
        const int64_t ti = part_task[size_t(x)];
        process(ti, x - tasks[size_t(ti)].first_part);
    });
    if (parts.empty()) return;

    // Merge the parts of split tasks: rescale each part's (O, l) to the
    // common max and add, in part order.
    core::parallel_for(int64_t(tasks.size()), threads, [&](int64_t ti) {
        const task &t = tasks[size_t(ti)];
        if (t.parts <= 1) return;
        const int64_t R = G * t.tl;
        std::vector<float> acc(static_cast<size_t>(D)), row(static_cast<size_t>(D));
        for (int64_t r = 0; r < R; ++r) {
            float mx = ninf;
            for (int64_t k = 0; k < t.parts; ++k) mx = std::max(mx, parts[size_t((t.first_part + k) * slot + R * D + r)]);
            std::fill(acc.begin(), acc.end(), 0.0f);
            float sum = 0.0f;
            if (mx != ninf)
                for (int64_t k = 0; k < t.parts; ++k) {
                    const float *part = parts.data() + (t.first_part + k) * slot;
                    if (part[R * D + r] == ninf) continue;
                    const float w = std::exp(part[R * D + r] - mx);
                    sum += w * part[R * (D + 1) + r];
                    for (int64_t d = 0; d < D; ++d) acc[size_t(d)] += w * part[r * D + d];
                }
            const int64_t hh = r / t.tl, ii = r % t.tl;
            finish_row(acc.data(), mx, sum, t.g * G + hh, row.data());
            write_row(t.b, t.i0 + ii, t.g * G + hh, row.data());
        }
    });
}

}  // namespace llmkit::attention
