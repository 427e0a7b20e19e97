// Scaled-dot-product attention on the CPU: a tiled online softmax
// (FlashAttention-style). One task is (batch, kv head, query tile); its rows are
// the tile's queries of every query head that shares the kv head, so each K/V
// tile is loaded (and, for 16-bit inputs, converted) once for the whole group.
//
// Per task, for each tile of up to 64 keys:
//   S^T[j][r] = q_r . k_j            (gemm with the queries transposed once per
//                                     task, or dot products for a few rows)
//   softcap, ALiBi, mask, causal/window -> -inf
//   m_r, l_r, P = online softmax     (running max and sum per row)
//   O_r = alpha_r O_r + P^T V        (the rescale is folded into the gemm)
// and at the end out_r = O_r / l_r (with an attention sink, l_r gains the
// sink's exp: see finish_row). Memory: O(rows * D) per thread.
//
// Query tiles hold up to 128 rows (128 / G queries of G heads), so each K/V
// tile serves many rows. A prefill whose groups have several query tiles packs
// each group's visible K/V rows once into contiguous float32 rows (bf16/fp16
// converted once, not once per query tile; no strided copy per tile), which
// the tiles then stream from the cache; groups go in waves just large enough to
// keep the threads busy, longest tasks first. Packing costs 2 * keys * D floats
// per group of the wave, the size of that group's K and V in float32.
#include "attention/attention.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <limits>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "attention/kernels.hpp"
#include "attention/kv_cache.hpp"
#include "attention/online_softmax.hpp"
#include "core/backend.hpp"
#include "core/finite.hpp"
#include "core/threads.hpp"

namespace llmkit::attention {

using core::dtype;
using core::fail;
using core::tensor_view;

namespace {

constexpr int k_tile_rows = 128;
// 576: DeepSeek's multi-head latent attention in its absorbed form (a
// latent of 512 plus 64 rotary dimensions for q and k, the latent for v).
constexpr int64_t k_max_head_dim = 576;

// Asks for n rows of row_bytes, `stride` bytes apart, from p on.
void prefetch_rows(const char *p, int n, int64_t stride, int64_t row_bytes) {
    for (int j = 0; j < n; ++j)
        for (int64_t c = 0; c < row_bytes; c += 64) __builtin_prefetch(p + j * stride + c);
}

void check_unit_d_stride(const tensor_view &t) {
    if (t.shape[3] > 1 && t.strides[3] != 1)
        fail(LLMKIT_ERROR_UNSUPPORTED, t.name, ": the head_dim axis (3) must have stride 1, got stride ", t.strides[3]);
}

void validate(const tensor_view &q, const tensor_view &k, const tensor_view &v, const tensor_view &out,
              const attention_params &p) {
    for (const tensor_view *t : {&q, &k, &v, &out})
        if (t->ndim != 4)
            fail(LLMKIT_ERROR_SHAPE, t->name, ": expected 4 dimensions [batch, seq, heads, head_dim], got ", t->ndim,
                 " (shape ", t->shape_string(), ")");
    if (q.type != dtype::f32 && q.type != dtype::bf16 && q.type != dtype::f16)
        fail(LLMKIT_ERROR_DTYPE, "q: dtype ", core::dtype_name(q.type), " is not float32, bfloat16 or float16");
    for (const tensor_view *t : {&k, &v, &out})
        if (t->type != q.type)
            fail(LLMKIT_ERROR_DTYPE, t->name, ": dtype ", core::dtype_name(t->type), " differs from q's ",
                 core::dtype_name(q.type));
    const int64_t B = q.shape[0], Sq = q.shape[1], Hq = q.shape[2], D = q.shape[3], Dv = v.shape[3];
    if (k.shape[0] != B || v.shape[0] != B)
        fail(LLMKIT_ERROR_SHAPE, "batch sizes differ: q ", q.shape_string(), ", k ", k.shape_string(), ", v ",
             v.shape_string());
    // v's head_dim may differ (DeepSeek's attention: 192 for q and k, 128
    // for v); out takes v's.
    if (k.shape[3] != D) fail(LLMKIT_ERROR_SHAPE, "head_dim differs: q has D = ", D, ", k ", k.shape[3]);
    if (k.shape[1] != v.shape[1] || k.shape[2] != v.shape[2])
        fail(LLMKIT_ERROR_SHAPE, "k ", k.shape_string(), " and v ", v.shape_string(),
             " must have the same sequence length and head count");
    if (out.shape[0] != B || out.shape[1] != Sq || out.shape[2] != Hq || out.shape[3] != Dv)
        fail(LLMKIT_ERROR_SHAPE, "out: shape ", out.shape_string(), " must be [B, Sq, Hq, Dv] = [", B, ", ", Sq, ", ",
             Hq, ", ", Dv, "] (q's first three axes, v's head_dim)");
    const int64_t Hkv = k.shape[2];
    if (Hkv == 0 ? Hq != 0 : Hq % Hkv != 0)
        fail(LLMKIT_ERROR_SHAPE, "the number of query heads (", Hq, ") must be a multiple of the number of key/value heads (",
             Hkv, ")");
    if (D > k_max_head_dim) fail(LLMKIT_ERROR_SHAPE, "head_dim D = ", D, " exceeds the supported maximum of ", k_max_head_dim);
    if (Dv > k_max_head_dim)
        fail(LLMKIT_ERROR_SHAPE, "v's head_dim Dv = ", Dv, " exceeds the supported maximum of ", k_max_head_dim);
    if ((D == 0) != (Dv == 0))
        fail(LLMKIT_ERROR_SHAPE, "head_dim: q and k have D = ", D, ", v has Dv = ", Dv, " (only both may be 0)");
    for (const tensor_view *t : {&q, &k, &v, &out}) check_unit_d_stride(*t);
    out.require_own_elements();
    if (p.lse) check_lse(*p.lse, q);
    if (p.mask) {
        const tensor_view &m = *p.mask;
        if (m.type != dtype::f32 && m.type != dtype::boolean)
            fail(LLMKIT_ERROR_DTYPE, m.name, ": dtype ", core::dtype_name(m.type), " is not float32 or bool");
        // Broadcast as torch's attn_mask: the axes line up from the right
        // with [B, Hq, Sq, Skv], each of its size or 1.
        const int64_t full[4] = {q.shape[0], Hq, Sq, k.shape[1]};
        bool fits = m.ndim >= 2 && m.ndim <= 4;
        for (int a = 0; fits && a < m.ndim; ++a) {
            const int64_t want = full[4 - m.ndim + a];
            fits = m.shape[a] == want || m.shape[a] == 1;
        }
        if (!fits)
            fail(LLMKIT_ERROR_SHAPE, m.name, ": shape ", m.shape_string(), " must be [Sq, Skv] = [", Sq, ", ",
                 k.shape[1], "] or broadcast to [B, Hq, Sq, Skv] = [", full[0], ", ", full[1], ", ", full[2], ", ",
                 full[3], "] (2 to 4 axes aligned from the right, each that size or 1)");
    }
}

void run_cpu(const tensor_view &q, const tensor_view &k, const tensor_view &v, const tensor_view &out,
             const attention_params &p) {
    const kernels &kn = p.kernel_set ? *p.kernel_set : best_kernels();
    // D: q's and k's head_dim; Dv: v's and out's (the same but in DeepSeek's
    // attention).
    const int64_t B = q.shape[0], Sq = q.shape[1], Hq = q.shape[2], D = q.shape[3], Dv = v.shape[3];
    const int64_t Skv = k.shape[1], Hkv = k.shape[2];
    // The whole-tensor checks of K, V and the mask (whose -inf hides a key),
    // naming the first bad element.
    auto require_finite_kv = [&] {
        for (const tensor_view *t : {&k, &v}) core::require_finite(*t, p.n_threads);
        if (p.mask && p.mask->type == dtype::f32) core::require_finite(*p.mask, p.n_threads, true);
    };
    if (B == 0 || Sq == 0 || Hq == 0 || D == 0) {
        // Nothing to compute; K and V may still hold rows (Sq = 0, Skv > 0),
        // and their NaNs are refused as in any other call.
        require_finite_kv();
        return;
    }
    const int64_t G = Hq / Hkv;
    const int64_t tq = std::min<int64_t>(Sq, std::max<int64_t>(1, k_tile_rows / G));
    const int64_t nqt = (Sq + tq - 1) / tq;
    // A NaN or infinity would spread to whole output rows without a word.
    // The mask's -inf hides a key; its NaN or +inf is an error too.
    // With one query tile per KV head, at most 16 queries and no window (a
    // decode, or a few tokens more), every task reads each of its K and V
    // rows once, and together they read all of them: so no pass of its own
    // checks them, which doubled a decode's memory traffic (decode on dense
    // fp32 and bf16 K/V ran at 0.6-1.3x torch's SDPA with the pass, 1.3-2.3x
    // without it; 2-core Emerald Rapids VM). Instead the results tell: a NaN
    // or infinity in a K row makes that key's scores NaN or infinite, and
    // one in a V row makes every output row that read it NaN or infinite
    // (q is finite, probabilities are in [0, 1], and NaN and infinity absorb
    // through every multiply and add: 0 * inf is NaN). Prefill-shaped tiles
    // (the gemm paths) check the rows they copy instead. The results go to
    // `scratch` and reach `out` only if the scores and results were finite;
    // otherwise the same whole-tensor checks as before, in the same order,
    // name the first bad element, and nothing has been written. (Finite
    // inputs whose scores overflow pass those checks: their results are
    // copied out, as without this shortcut.) Checking the scores and results
    // (R per key) instead of every K and V row as read: decode of 8 kv heads
    // of 128 1.14-1.22x faster from L3, 1.04-1.11x from memory (2-core Zen 5).
    const bool check_rows = nqt == 1 && p.window <= 0 && Sq <= 16;
    // K and V as [B, S, H, D] with the heads side by side (see the decode
    // over them below).
    const bool token_major = Hkv > 1 && k.strides[1] == Hkv * D && v.strides[1] == Hkv * Dv && k.strides[2] == D &&
                             v.strides[2] == Dv && k.strides[0] >= 0 && v.strides[0] >= 0;
    // Query rows per kv head up to which tasks take the dot-product kernels;
    // float32 over token-major rows 32 (the tokens kernels with 64 rows:
    // 0.95-0.96x the gemms, with 32 1.27-1.32x; 2-core Zen 5).
    int rows_max = decode_rows_max(
        q.type == dtype::f32 ? row_type::f32 : q.type == dtype::bf16 ? row_type::bf16 : row_type::f16, nqt);
    if (token_major && q.type == dtype::f32) rows_max = std::min(rows_max, 32);
    core::require_finite(q, p.n_threads);
    if (!check_rows) require_finite_kv();
    std::atomic<bool> rows_finite{true};
    std::vector<char> scratch_bytes(check_rows ? size_t(B * Sq * Hq * Dv) * out.elem_size : 0);
    std::vector<float> scratch_lse(check_rows && p.lse ? size_t(B * Sq * Hq) : 0);
    tensor_view scratch = out, lse_scratch;
    if (check_rows) {
        scratch.data = scratch_bytes.data();
        const int64_t compact[4] = {Sq * Hq * Dv, Hq * Dv, Dv, 1};
        std::copy(compact, compact + 4, scratch.strides);
        if (p.lse) {
            lse_scratch = *p.lse;
            lse_scratch.data = reinterpret_cast<char *>(scratch_lse.data());
            const int64_t compact_lse[3] = {Sq * Hq, Hq, 1};
            std::copy(compact_lse, compact_lse + 3, lse_scratch.strides);
        }
    }
    const tensor_view &dst = check_rows ? scratch : out;
    const tensor_view *lse = check_rows && p.lse ? &lse_scratch : p.lse;  // null: not wanted
    // n rows of len elements of type t at p0, `stride` bytes apart: all finite?
    // (check_rows; rows side by side go in one call, so short rows cost no more.)
    auto rows_ok = [&](const char *p0, int n, int64_t len, int64_t stride, dtype t) {
        auto finite = [&](const char *r, int64_t count) {
            return t == dtype::f32 ? core::all_finite(reinterpret_cast<const float *>(r), count)
                                   : core::all_finite(reinterpret_cast<const uint16_t *>(r), count, t);
        };
        if (stride == len * (t == dtype::f32 ? 4 : 2)) return finite(p0, n * len);
        for (int j = 0; j < n; ++j)
            if (!finite(p0 + j * stride, len)) return false;
        return true;
    };
    // With check_rows: refuses a K or V that held a NaN or infinity (naming
    // the first, as the whole-tensor checks would have) and otherwise copies
    // the results to out.
    auto checked_out = [&] {
        if (!check_rows) return;
        const int64_t n_out = B * Sq * Hq * Dv;
        const bool results_finite =
            q.type == dtype::f32 ? core::all_finite(reinterpret_cast<const float *>(scratch.data), n_out)
                                 : core::all_finite(reinterpret_cast<const uint16_t *>(scratch.data), n_out, q.type);
        if (!rows_finite.load() || !results_finite)
            for (const tensor_view *t : {&k, &v}) core::require_finite(*t, p.n_threads);  // names the first
        if (p.mask && p.mask->type == dtype::f32) core::require_finite(*p.mask, p.n_threads, true);
        const int64_t es = int64_t(q.elem_size);
        for (int64_t b = 0; b < B; ++b)
            for (int64_t i = 0; i < Sq; ++i)
                for (int64_t h = 0; h < Hq; ++h) {
                    std::memcpy(out.data + (b * out.strides[0] + i * out.strides[1] + h * out.strides[2]) * es,
                                scratch.data + (b * scratch.strides[0] + i * scratch.strides[1] + h * scratch.strides[2]) * es,
                                size_t(Dv * es));
                    if (p.lse) store_lse(p.lse, b, i, h, scratch_lse[size_t((b * Sq + i) * Hq + h)]);
                }
    };

    // Decode over K and V as [B, S, H, D] with the heads side by side (the
    // documented layout: a kv head's rows then lie H * D elements apart): a
    // task per kv head would read its 256-byte rows out of every token's
    // H rows on its own, at a third of the memory's speed. The caches' decode
    // walks such rows instead (plain tensors, see token_stride in
    // kv_cache.hpp): a few tokens at a time, every head's rows of them in
    // turn (the tokens kernels), so it streams them front to back, checking
    // the scores as they come when check_rows.
    if (token_major && G * Sq <= rows_max && Skv >= Sq && kn.dots_pf && kn.gemm_pf) {
        cache_layer_view L;
        L.type = q.type == dtype::f32 ? kv_dtype::f32 : q.type == dtype::bf16 ? kv_dtype::bf16 : kv_dtype::f16;
        L.n_kv_heads = Hkv;
        L.head_dim = D;
        L.v_head_dim = Dv;
        L.block_size = Skv;
        L.n_blocks = B;
        L.k = k.data;
        L.v = v.data;
        L.token_stride = Hkv * D;
        L.k_block_stride = k.strides[0];
        L.v_block_stride = v.strides[0];
        std::vector<int32_t> block(static_cast<size_t>(B));
        std::vector<cache_seq> seqs(static_cast<size_t>(B));
        for (int64_t b = 0; b < B; ++b) {
            block[size_t(b)] = int32_t(b);
            seqs[size_t(b)] = {&block[size_t(b)], 1, Skv};
        }
        cache_attention_params cp;
        cp.causal = p.causal;  // (a window implies it there too)
        cp.window = p.window;
        cp.softcap = p.softcap;
        cp.scale = p.scale;
        cp.alibi_slopes = p.alibi_slopes;
        cp.sinks = p.sinks;
        cp.mask = p.mask;
        cp.n_threads = p.n_threads;
        cp.kernel_set = &kn;
        cp.rows_finite = check_rows ? &rows_finite : nullptr;
        cp.lse = lse;
        // Every head in one task, so few sequences need parts of their keys to
        // keep the threads busy: about k_split_token_tasks in all, of
        // k_split_min_keys to k_default_split_keys keys each; from the shapes
        // alone, so the bits do not depend on n_threads.
        const int64_t want = (k_split_token_tasks + B - 1) / B;
        if (p.kv_splits > 0)
            cp.split_keys = (Skv + p.kv_splits - 1) / p.kv_splits;
        else if (want > 1)
            cp.split_keys = std::clamp<int64_t>((Skv + want - 1) / want, k_split_min_keys, k_default_split_keys);
        cache_attention(L, seqs.data(), B, q, dst, cp);
        checked_out();
        return;
    }

    const float scale = p.scale != 0.0f ? p.scale : float(1.0 / std::sqrt(double(D)));
    const int64_t offset = Skv - Sq;  // query i sits at position i + offset
    const bool causal = p.causal || p.window > 0;
    // A window of Skv keys or more hides nothing that causality does not; the
    // clamp keeps i + offset - window + 1 from overflowing for huge windows.
    const int64_t window = std::min(p.window, Skv);
    const dtype dt = q.type;
    const int64_t es = int64_t(q.elem_size);
    const float ninf = -std::numeric_limits<float>::infinity();
    const int64_t call_bytes = B * Hkv * Skv * (D + Dv) * es;  // K and V
    const auto gemm_pf_v = decode_gemm_pf(kn, call_bytes);  // streamed decode's p.v

    // Query head h's sink logit, or null (see finish_row).
    auto sink_of = [&](int64_t h) { return p.sinks ? p.sinks + h : nullptr; };

    // Row stride of the float32 K/V tile copies (prefill), padded so that the
    // rows a gemm walks down do not all fall into the same few L1 sets (strides
    // of 256 or 512 bytes put 64 rows into 8 or 4 of its 64 sets).
    // (K's and V's rows alike: the wider's.)
    const int64_t ldt_f32 = (std::max(D, Dv) + 15) / 16 * 16 + 16;
    // The same for the bf16 pairs of the bf16 prefill (in 32-bit words).
    const int64_t ldk2 = (D / 2 + 15) / 16 * 16 + 16, ldv2 = (Dv + 15) / 16 * 16 + 16;

    // One (task, split): the task's rows against the split-th part of their
    // keys. With part == null (no split) it writes the output; otherwise it
    // leaves the unnormalised O, the running max m and sum l in part.
    // With packed K/V (pk, pv: the group's rows from key `first` on, float32
    // rows of ldt), a prefill task reads its tiles there; without, it copies
    // (or converts) each tile itself.
    // With k2 / v2 (the bf16 prefill on bf16 dot products, see dots2 below),
    // a transposed task reads bf16 pairs there instead: K rows of ldk2 words,
    // V rows paired (keys 2p and 2p + 1 of the group, from `first`) of ldv2.
    const mask_view mask(p.mask);
    auto process = [&](int64_t task, int64_t split, int64_t n_splits, float *part, const float *pk, const float *pv,
                       int64_t first, const uint32_t *k2, const uint32_t *v2) {
        thread_local workspace ws;
        thread_local std::vector<uint32_t> ws2;
        const int64_t qt = task % nqt, g = (task / nqt) % Hkv, b = task / (nqt * Hkv);
        const int64_t i0 = qt * tq, tl = std::min(tq, Sq - i0);
        const int R = int(G * tl);
        const bool transposed = R > rows_max;  // gemm on Q^T; dot products for a few rows (decode)
        // Row strides of Q^T and of the K/V tiles (prefill), padded (see ldt_f32).
        const int64_t ldq = transposed ? R + 16 : D;
        // Decode over rows that lie one after another (each head's keys
        // contiguous, as torch's [B, H, S, D] viewed as [B, S, H, D]) on a set
        // with the pf kernels: each chunk is read where it lies while the
        // chunk `ahead` places later in the stream (a tile's K, its V, the
        // next tile's K, ...) is asked for a few lines at a time, as the KV
        // caches' decode does; a burst of prefetches per chunk (the path
        // below) stalled on the core's miss buffers. bf16 queries over bf16
        // rows score on dots_bf16_pf from the unscaled bf16 rows (Qh).
        const int64_t ks = k.strides[1], vs = v.strides[1];
        const bool streamed = !transposed && kn.dots_pf && kn.gemm_pf && ks == D && vs == Dv;
        // Keys per tile: streamed decode takes the caches' decode tiles (see
        // k_decode_tile_keys); the other paths copy or prefetch whole tiles.
        const int tile = streamed ? k_decode_tile_keys : k_tile_keys;
        const int64_t ldt = transposed ? ldt_f32 : std::max(D, Dv);
        const size_t need = size_t(transposed ? D * ldq : R * D) + size_t(R) * Dv + size_t(tile) * R +
                            size_t(R) * 3 + size_t(std::max(D, Dv)) + size_t(k_tile_keys) * ldt * 2;
        float *Qb = ws.get(need);
        float *O = Qb + (transposed ? size_t(D * ldq) : size_t(R) * D);
        float *ST = O + size_t(R) * Dv;
        float *m = ST + size_t(tile) * R;
        float *l = m + R;
        float *alpha = l + R;
        float *row = alpha + R;  // a query row in, an output row out
        float *Kf = row + std::max(D, Dv);
        float *Vf = Kf + size_t(k_tile_keys) * ldt;

        // bf16 dot products: Q^T as pairs [D/2][ldq2] (unscaled, the bf16
        // values as they are: the scale multiplies the float32 scores), and the
        // probabilities of a tile as pairs [keys/2][R], rounded (Ph) and what
        // rounding left (Pl), so P V comes out as with float32 P (to ~2^-16).
        const bool dots = k2 && transposed;
        const int64_t ldq2 = R + 16;
        uint32_t *Qp = nullptr, *Ph = nullptr, *Pl = nullptr;
        if (dots) {
            ws2.resize(size_t(D / 2 * ldq2 + k_tile_keys * R) + 16);
            Qp = align64(ws2.data());
            Ph = Qp + D / 2 * ldq2;
            Pl = Ph + k_tile_keys / 2 * R;
            for (int64_t hh = 0; hh < G; ++hh)
                for (int64_t ii = 0; ii < tl; ++ii) {
                    const char *src = q.data + (b * q.strides[0] + (i0 + ii) * q.strides[1] + (g * G + hh) * q.strides[2]) * es;
                    const int64_t r = hh * tl + ii;
                    for (int64_t i = 0; i < D / 2; ++i) std::memcpy(Qp + i * ldq2 + r, src + 4 * i, 4);
                }
        } else {
            // Queries, scaled, as Q^T [D][ldq] or Q [R][D]; row r = hh * tl + ii.
            for (int64_t hh = 0; hh < G; ++hh)
                for (int64_t ii = 0; ii < tl; ++ii)
                    load_scaled_query(q, b, i0 + ii, g * G + hh, kn, scale, transposed, ldq, hh * tl + ii, row, Qb);
        }
        // bf16 V on a set with gemm_bf16_eo_pf: O in that kernel's even/odd
        // column order until the end (as the caches' decode).
        const bool eo = streamed && dt == dtype::bf16 && kn.gemm_bf16_eo_pf && Dv % 32 == 0;
        // Keys per chunk of the stream (see decode_chunk_keys).
        const int chunk = decode_chunk_keys(call_bytes, es, eo, true);
        const uint16_t *Qh = nullptr;
        if (streamed && dt == dtype::bf16 && kn.dots_bf16_pf && D % 2 == 0) {
            ws2.resize(size_t(R * D + 1) / 2);
            uint16_t *qh = reinterpret_cast<uint16_t *>(ws2.data());
            for (int64_t hh = 0; hh < G; ++hh)
                for (int64_t ii = 0; ii < tl; ++ii) {
                    const char *src = q.data + (b * q.strides[0] + (i0 + ii) * q.strides[1] + (g * G + hh) * q.strides[2]) * es;
                    for (int64_t d = 0; d < D; ++d) std::memcpy(qh + (hh * tl + ii) * D + d, src + d * q.strides[3] * es, 2);
                }
            Qh = qh;
        }
        const row_type rt = dt == dtype::f32 ? row_type::f32 : dt == dtype::bf16 ? row_type::bf16 : row_type::f16;
        const size_t ahead = size_t(std::max<int64_t>(1, (k_prefetch_bytes + chunk * D * es - 1) / (chunk * D * es)));
        std::fill(O, O + size_t(R) * Dv, 0.0f);
        std::fill(m, m + R, ninf);
        std::fill(l, l + R, 0.0f);

        // Visible keys of query ii: [lo(ii), hi(ii)].
        auto hi_of = [&](int64_t ii) { return causal ? std::min(Skv - 1, i0 + ii + offset) : Skv - 1; };
        auto lo_of = [&](int64_t ii) { return window > 0 ? std::max<int64_t>(0, i0 + ii + offset - window + 1) : 0; };
        int64_t lo = Skv, hi = -1;
        for (int64_t ii = 0; ii < tl; ++ii)
            if (lo_of(ii) <= hi_of(ii)) {
                lo = std::min(lo, lo_of(ii));
                hi = std::max(hi, hi_of(ii));
            }

        // bf16 pairs start at even keys from `first` (even): a tile starting at
        // an odd key starts one key earlier instead, which the window hides.
        if (dots && lo <= hi) lo -= (lo - first) & 1;
        if (n_splits > 1 && lo <= hi) {  // this split's share, in whole tiles
            const int64_t tiles = (hi - lo + tile) / tile;
            const int64_t per = (tiles + n_splits - 1) / n_splits * tile;
            const int64_t from = lo + split * per;
            hi = std::min(hi, from + per - 1);
            lo = from;
        }

        const char *kbase = k.data + (b * k.strides[0] + g * k.strides[2]) * es;
        const char *vbase = v.data + (b * v.strides[0] + g * v.strides[2]) * es;
        // The chunk `ahead` places after chunk c of tile j0's K (or V) in the
        // decode's stream, and its bytes (null, 0 past the last key).
        auto stream_target = [&](int64_t j0, bool value, int64_t c, int64_t *bytes) -> const char * {
            for (size_t a = 0; a < ahead; ++a) {
                c += chunk;
                if (c >= std::min<int64_t>(tile, hi + 1 - j0)) {
                    c = 0;
                    if (value) j0 += tile;
                    value = !value;
                    if (j0 > hi) {
                        *bytes = 0;
                        return nullptr;
                    }
                }
            }
            const int64_t width = value ? Dv : D;
            *bytes = std::min<int64_t>(chunk, std::min<int64_t>(tile, hi + 1 - j0) - c) * width * es;
            return (value ? vbase : kbase) + (j0 + c) * width * es;
        };
        // Whether the mask hides keys j0 .. j0 + nk - 1 from every row of the
        // task (-inf or false throughout; broadcast axes read once): such a tile adds
        // nothing to O, m or l (its probabilities are 0 and alpha 1), so it is
        // skipped with the same bits. A left-padded batch's padding keys and
        // padding queries cost nothing then (its [B, 1, 1, Skv] mask: one row
        // per task). Not with check_rows, which finds the NaNs of K and V in
        // the tiles it reads.
        auto hidden = [&](int64_t j0, int nk) {
            if (!mask || check_rows) return false;
            const int64_t nh = mask.st[1] ? G : 1, ni = mask.st[2] ? tl : 1;
            for (int64_t hh = 0; hh < nh; ++hh)
                for (int64_t ii = 0; ii < ni; ++ii)
                    if (!mask.hides(b, g * G + hh, i0 + ii, j0, nk)) return false;
            return true;
        };
        for (int64_t j0 = lo; j0 <= hi; j0 += tile) {
            const int nk = int(std::min<int64_t>(tile, hi + 1 - j0));
            if (hidden(j0, nk)) continue;
            const int next = int(std::clamp<int64_t>(hi + 1 - j0 - tile, 0, tile));  // next tile's keys
            const bool bf16 = dt == dtype::bf16;
            const float *Kt = Kf, *Vt = Vf;  // the tile's K and V as float32 rows of ldt (prefill)
            // The next tile's packed K and V, asked for a few lines at a time
            // while this tile's gemms run (K during q.k, V during p.v): a long
            // context's packed rows (9 MiB per group at 8192 tokens) no longer
            // stay in the last-level cache, and the gemms' short row streams
            // are too short for the hardware prefetcher to take up.
            const char *pf_k = nullptr, *pf_v = nullptr;
            if (transposed && pk) {
                Kt = pk + (j0 - first) * ldt;
                Vt = pv + (j0 - first) * ldt;
                if (next > 0 && kn.gemm_pf) {
                    pf_k = reinterpret_cast<const char *>(Kt + tile * ldt);
                    pf_v = reinterpret_cast<const char *>(Vt + tile * ldt);
                }
            } else if (transposed && !dots) {
                // K and V rows of this tile as float32 rows of ldt (copied or
                // converted: contiguous rows for the gemms, whatever the strides).
                for (int j = 0; j < nk; ++j) {
                    const char *kr = kbase + (j0 + j) * ks * es, *vr = vbase + (j0 + j) * vs * es;
                    if (dt == dtype::f32) {
                        std::memcpy(Kf + j * ldt, kr, size_t(D) * 4);
                        std::memcpy(Vf + j * ldt, vr, size_t(Dv) * 4);
                    } else {
                        kn.half_to_f32(Kf + j * ldt, reinterpret_cast<const uint16_t *>(kr), D, bf16);
                        kn.half_to_f32(Vf + j * ldt, reinterpret_cast<const uint16_t *>(vr), Dv, bf16);
                    }
                }
                // (Conversion keeps NaN and infinity, so the float32 rows tell.)
                if (check_rows && !(rows_ok(reinterpret_cast<const char *>(Kf), nk, D, ldt * 4, dtype::f32) &&
                                    rows_ok(reinterpret_cast<const char *>(Vf), nk, Dv, ldt * 4, dtype::f32)))
                    rows_finite.store(false, std::memory_order_relaxed);
                // Ask for the next tile's K and V rows now, so they arrive while this
                // tile computes (rows of one head are far apart in [B, S, H, D]).
                if (next > 0) {
                    prefetch_rows(kbase + (j0 + tile) * ks * es, next, ks * es, D * es);
                    prefetch_rows(vbase + (j0 + tile) * vs * es, next, vs * es, Dv * es);
                }
            }
            if (dots) {
                kn.gemm_bf16(nk, R, int(D / 2), k2 + (j0 - first) * ldk2, nullptr, ldk2, 1, Qp, ldq2, ST, R, false,
                             nullptr);
                for (int64_t x = 0; x < int64_t(nk) * R; ++x) ST[x] *= scale;
            } else if (pf_k) {
                kn.gemm_pf(nk, R, int(D), Kt, ldt, 1, Qb, ldq, row_type::f32, ST, R, false, nullptr, pf_k,
                           int64_t(next) * ldt * int64_t(sizeof(float)));
            } else if (transposed) {
                kn.gemm(nk, R, int(D), Kt, ldt, 1, Qb, ldq, ST, R, false, nullptr);
            } else if (streamed) {
                for (int c = 0; c < nk; c += chunk) {
                    const int n = std::min(chunk, nk - c);
                    int64_t pf_bytes = 0;
                    const char *pf = stream_target(j0, false, c, &pf_bytes);
                    const char *src = kbase + (j0 + c) * ks * es;
                    if (Qh)
                        kn.dots_bf16_pf(R, n, int(D), Qh, D, reinterpret_cast<const uint16_t *>(src), ks, scale,
                                        ST + c * R, pf, pf_bytes);
                    else
                        kn.dots_pf(R, n, int(D), Qb, D, src, ks, rt, nullptr, ST + c * R, pf, pf_bytes);
                }
            } else {
                // Decode: dot products with the rows where they lie (16-bit rows
                // converted in registers when the set has dots_half), a chunk at a
                // time, asking for the same chunk of the next tile before each.
                for (int c = 0; c < nk; c += k_chunk_keys) {
                    const int n = std::min(k_chunk_keys, nk - c);
                    if (c < next)
                        prefetch_rows(kbase + (j0 + tile + c) * ks * es, std::min(k_chunk_keys, next - c), ks * es,
                                      D * es);
                    const char *src = kbase + (j0 + c) * ks * es;
                    if (dt == dtype::f32) {
                        kn.dots(R, n, int(D), Qb, D, reinterpret_cast<const float *>(src), ks, ST + c * R);
                    } else if (kn.dots_half) {
                        kn.dots_half(R, n, int(D), Qb, D, reinterpret_cast<const uint16_t *>(src), ks, bf16, ST + c * R);
                    } else {
                        for (int j = 0; j < n; ++j)
                            kn.half_to_f32(Kf + j * D, reinterpret_cast<const uint16_t *>(src + j * ks * es), D, bf16);
                        kn.dots(R, n, int(D), Qb, D, Kf, D, ST + c * R);
                    }
                }
            }
            // Decode's check of K (check_rows): a NaN or infinity anywhere in a
            // K row makes the row's scores NaN or infinite (q is finite; both
            // absorb through every multiply and add), so the tile's scores tell,
            // before the masks set any -inf. V's show in the results.
            if (check_rows && !transposed && !core::all_finite(ST, int64_t(nk) * R))
                rows_finite.store(false, std::memory_order_relaxed);

            for (int64_t hh = 0; hh < G; ++hh)
                for (int64_t ii = 0; ii < tl; ++ii) {
                    const int64_t r = hh * tl + ii, i = i0 + ii, ip = i + offset;
                    float *s = ST + r;  // s[j * R]
                    softcap_and_alibi(s, R, nk, p.softcap, p.alibi_slopes ? p.alibi_slopes + g * G + hh : nullptr, ip,
                                      j0);
                    if (mask) mask.add(s, R, nk, b, g * G + hh, i, j0);
                    const int64_t lr = lo_of(ii), hr = hi_of(ii), end = j0 + nk;
                    for (int64_t jj = j0; jj < std::min(lr, end); ++jj) s[(jj - j0) * R] = ninf;
                    for (int64_t jj = std::max(hr + 1, j0); jj < end; ++jj) s[(jj - j0) * R] = ninf;
                }

            kn.softmax_tile(ST, nk, R, m, l, alpha);
            if (dots) {
                const int np = (nk + 1) / 2;  // an odd last key pairs with a probability of 0
                for (int i = 0; i < np; ++i)
                    kn.pack_bf16_pairs(Ph + i * R, Pl + i * R, ST + 2 * i * R, 2 * i + 1 < nk ? ST + (2 * i + 1) * R : nullptr,
                                       R);
                kn.gemm_bf16(R, int(Dv), np, Ph, Pl, 1, R, v2 + (j0 - first) / 2 * ldv2, ldv2, O, Dv, true, alpha);
            } else if (pf_v) {
                kn.gemm_pf(R, int(Dv), nk, ST, 1, R, Vt, ldt, row_type::f32, O, Dv, true, alpha, pf_v,
                           int64_t(next) * ldt * int64_t(sizeof(float)));
            } else if (transposed) {
                kn.gemm(R, int(Dv), nk, ST, 1, R, Vt, ldt, O, Dv, true, alpha);
            } else if (streamed) {
                for (int c = 0; c < nk; c += chunk) {
                    const int n = std::min(chunk, nk - c);
                    int64_t pf_bytes = 0;
                    const char *pf = stream_target(j0, true, c, &pf_bytes);
                    const char *src = vbase + (j0 + c) * vs * es;
                    if (eo)
                        kn.gemm_bf16_eo_pf(R, int(Dv), n, ST + c * R, 1, R, reinterpret_cast<const uint16_t *>(src), vs,
                                           O, Dv, true, c == 0 ? alpha : nullptr, pf, pf_bytes);
                    else
                        gemm_pf_v(R, int(Dv), n, ST + c * R, 1, R, src, vs, rt, O, Dv, true, c == 0 ? alpha : nullptr,
                                  pf, pf_bytes);
                }
            } else {
                // O = alpha O + P^T V a chunk of keys at a time: the first chunk
                // applies alpha, the others add (the same sum, in the same order).
                for (int c = 0; c < nk; c += k_chunk_keys) {
                    const int n = std::min(k_chunk_keys, nk - c);
                    if (c < next)
                        prefetch_rows(vbase + (j0 + tile + c) * vs * es, std::min(k_chunk_keys, next - c), vs * es,
                                      Dv * es);
                    const char *src = vbase + (j0 + c) * vs * es;
                    const float *a = c == 0 ? alpha : nullptr;
                    if (dt == dtype::f32) {
                        kn.gemm(R, int(Dv), n, ST + c * R, 1, R, reinterpret_cast<const float *>(src), vs, O, Dv, true,
                                a);
                    } else if (kn.gemm_half) {
                        kn.gemm_half(R, int(Dv), n, ST + c * R, 1, R, reinterpret_cast<const uint16_t *>(src), vs, bf16,
                                     O, Dv, true, a);
                    } else {
                        for (int j = 0; j < n; ++j)
                            kn.half_to_f32(Vf + j * Dv, reinterpret_cast<const uint16_t *>(src + j * vs * es), Dv, bf16);
                        kn.gemm(R, int(Dv), n, ST + c * R, 1, R, Vf, Dv, O, Dv, true, a);
                    }
                }
            }
        }

        if (eo) columns_from_eo(O, R, Dv);
        if (part) {
            std::memcpy(part, O, size_t(R) * Dv * 4);
            std::memcpy(part + size_t(R) * Dv, m, size_t(R) * 4);
            std::memcpy(part + size_t(R) * (Dv + 1), l, size_t(R) * 4);
            return;
        }
        for (int64_t hh = 0; hh < G; ++hh)
            for (int64_t ii = 0; ii < tl; ++ii) {
                const int64_t r = hh * tl + ii;
                float row_lse;
                finish_row(O + r * Dv, m[r], l[r], sink_of(g * G + hh), Dv, row, lse ? &row_lse : nullptr);
                store_row(dst, b, i0 + ii, g * G + hh, kn, row);
                if (lse) store_lse(lse, b, i0 + ii, g * G + hh, row_lse);
            }
    };

    // Decoding few sequences leaves threads idle (B * Hkv tasks of one row tile
    // each): then the keys are split too, flash-decoding style, for about
    // k_split_items work items, and the parts' (O, m, l) are merged with the
    // same rescaling as the online softmax. The split depends on the shapes
    // alone, so the result is the same bits for any n_threads.
    const int64_t n_tasks = B * Hkv * nqt;
    const int threads = p.n_threads > 0 ? p.n_threads : core::default_num_threads();
    int64_t splits = p.kv_splits;
    if (splits == 0)
        splits = n_tasks >= k_split_items || Skv < 2 * k_split_min_keys
                     ? 1
                     : std::min<int64_t>((k_split_items + n_tasks - 1) / n_tasks, Skv / k_split_min_keys);
    const int64_t slot = G * tq * (Dv + 2);
    std::vector<float> parts(splits > 1 ? size_t(n_tasks * splits * slot) : 0);
    auto part_of = [&](int64_t task, int64_t split) {
        return splits > 1 ? parts.data() + (task * splits + split) * slot : nullptr;
    };

    // Prefill with several query tiles per group: the group's K/V rows are read
    // by every tile, so they are packed once per group into float32 rows of
    // ldt_f32 (converted once, contiguous, so the tiles stream them with the
    // hardware prefetcher). Groups go in waves of enough tasks to keep the
    // threads busy: the packed rows of a wave stay in the last-level cache.
    const int64_t klo = window > 0 ? std::max<int64_t>(0, offset - window + 1) : 0;  // keys any query sees
    const int64_t khi = causal ? std::min(Skv - 1, Sq - 1 + offset) : Skv - 1;
    const bool pack = G * tq > rows_max && nqt >= 2 && khi >= klo;
    if (!pack) {
        core::parallel_for(n_tasks * splits, threads,
                           [&](int64_t x) { process(x / splits, x % splits, splits, part_of(x / splits, x % splits),
                                                    nullptr, nullptr, 0, nullptr, nullptr); });
    } else {
        // bf16 on a kernel set whose bf16 dot products pay (bf16_prefill_on_pairs):
        // K and V stay bf16, packed as pairs (half the bytes of float32 rows,
        // and twice the multiplies per instruction), from an even key
        // (`first`, klo rounded down) so that tiles start at even keys; D even.
        const bool dots2 =
            dt == dtype::bf16 && kn.bf16_prefill_on_pairs && kn.gemm_bf16 && kn.pack_bf16_pairs && D % 2 == 0;
        const int64_t first = dots2 ? klo - klo % 2 : klo;
        const int64_t n_groups = B * Hkv, rows = khi - first + 1;
        const int64_t per_group = dots2 ? rows * ldk2 + (rows + 1) / 2 * ldv2 : 2 * rows * ldt_f32;  // K, then V
        const int64_t wave = std::clamp<int64_t>((4 * threads + nqt * splits - 1) / (nqt * splits), 1, n_groups);
        std::vector<float> packed_buf(dots2 ? 0 : size_t(wave * per_group) + 15);
        float *const packed = dots2 ? nullptr : align64(packed_buf.data());
        std::vector<uint32_t> packed2_buf(dots2 ? size_t(wave * per_group) + 16 : 0);
        uint32_t *const packed2 = dots2 ? align64(packed2_buf.data()) : nullptr;
        // Longest tasks first (the last query tiles, under a causal mask), so the
        // threads finish a wave together.
        std::vector<int64_t> order(static_cast<size_t>(nqt));
        for (int64_t qt = 0; qt < nqt; ++qt) order[size_t(qt)] = causal ? nqt - 1 - qt : qt;
        constexpr int64_t pack_rows = 256;  // rows per packing work item
        const int64_t chunks = (rows + pack_rows - 1) / pack_rows;
        for (int64_t w0 = 0; w0 < n_groups; w0 += wave) {
            const int64_t nw = std::min(wave, n_groups - w0);
            core::parallel_for(nw * chunks, threads, [&](int64_t x) {
                const int64_t wg = x / chunks, grp = w0 + wg, b = grp / Hkv, g = grp % Hkv;
                const int64_t r0 = x % chunks * pack_rows, r1 = std::min(rows, r0 + pack_rows);
                if (dots2) {  // r0 is even: the chunks hold whole pairs
                    uint32_t *k2 = packed2 + wg * per_group, *v2 = k2 + rows * ldk2;
                    const char *kb = k.data + (b * k.strides[0] + g * k.strides[2]) * es;
                    const char *vb = v.data + (b * v.strides[0] + g * v.strides[2]) * es;
                    for (int64_t r = r0; r < r1; ++r)
                        std::memcpy(k2 + r * ldk2, kb + (first + r) * k.strides[1] * es, size_t(D) * 2);
                    for (int64_t r = r0; r < r1; r += 2) {
                        const auto *va = reinterpret_cast<const uint16_t *>(vb + (first + r) * v.strides[1] * es);
                        const auto *vn = reinterpret_cast<const uint16_t *>(vb + (first + r + 1) * v.strides[1] * es);
                        uint32_t *dst = v2 + r / 2 * ldv2;
                        if (r + 1 < rows)
                            for (int64_t c = 0; c < Dv; ++c) dst[c] = uint32_t(va[c]) | uint32_t(vn[c]) << 16;
                        else
                            for (int64_t c = 0; c < Dv; ++c) dst[c] = va[c];
                    }
                    return;
                }
                float *pk = packed + wg * per_group, *pv = pk + rows * ldt_f32;
                for (const auto &[t, dst] : {std::pair{&k, pk}, std::pair{&v, pv}}) {
                    const char *base = t->data + (b * t->strides[0] + g * t->strides[2]) * es;
                    const int64_t width = t->shape[3];
                    for (int64_t r = r0; r < r1; ++r) {
                        const char *src = base + (klo + r) * t->strides[1] * es;
                        if (dt == dtype::f32)
                            std::memcpy(dst + r * ldt_f32, src, size_t(width) * 4);
                        else
                            kn.half_to_f32(dst + r * ldt_f32, reinterpret_cast<const uint16_t *>(src), width,
                                           dt == dtype::bf16);
                    }
                }
            });
            core::parallel_for(nw * nqt * splits, threads, [&](int64_t x) {
                const int64_t split = x % splits, wg = x / splits % nw, qt = order[size_t(x / (splits * nw))];
                const int64_t task = (w0 + wg) * nqt + qt;
                if (dots2) {
                    const uint32_t *k2 = packed2 + wg * per_group;
                    process(task, split, splits, part_of(task, split), nullptr, nullptr, first, k2, k2 + rows * ldk2);
                    return;
                }
                const float *pk = packed + wg * per_group;
                process(task, split, splits, part_of(task, split), pk, pk + rows * ldt_f32, klo, nullptr, nullptr);
            });
        }
    }
    // The split tasks' parts, merged (the same rescaling as the online softmax).
    if (splits > 1)
        core::parallel_for(n_tasks, threads, [&](int64_t task) {
            const int64_t qt = task % nqt, g = (task / nqt) % Hkv, b = task / (nqt * Hkv);
            const int64_t i0 = qt * tq, tl = std::min(tq, Sq - i0);
            const int64_t R = G * tl;
            std::vector<float> row(static_cast<size_t>(Dv));
            for (int64_t r = 0; r < R; ++r) {
                float mx, sum;
                merge_parts(parts.data() + task * splits * slot, slot, splits, R, Dv, r, row.data(), &mx, &sum);
                const int64_t h = g * G + r / tl;
                float row_lse;
                finish_row(row.data(), mx, sum, sink_of(h), Dv, row.data(), lse ? &row_lse : nullptr);
                store_row(dst, b, i0 + r % tl, h, kn, row.data());
                if (lse) store_lse(lse, b, i0 + r % tl, h, row_lse);
            }
        });
    checked_out();
}

}  // namespace

mask_view::mask_view(const tensor_view *m) {
    if (!m) return;
    data = m->data;
    is_bool = m->type == dtype::boolean;
    for (int a = 0; a < m->ndim; ++a) st[size_t(4 - m->ndim + a)] = m->shape[a] == 1 ? 0 : m->strides[a];
}

void mask_view::add(float *s, int64_t stride, int n, int64_t b, int64_t h, int64_t i, int64_t j0) const {
    const char *r = row(b, h, i);
    if (is_bool) {
        for (int j = 0; j < n; ++j)
            if (!r[(j0 + j) * st[3]]) s[j * stride] = -std::numeric_limits<float>::infinity();
        return;
    }
    for (int j = 0; j < n; ++j) {
        float x;
        std::memcpy(&x, r + (j0 + j) * st[3] * 4, 4);
        s[j * stride] += x;
    }
}

bool mask_view::hides(int64_t b, int64_t h, int64_t i, int64_t j0, int n) const {
    const char *r = row(b, h, i);
    if (is_bool) {
        for (int j = 0; j < n; ++j)
            if (r[(j0 + j) * st[3]]) return false;
        return true;
    }
    for (int j = 0; j < n; ++j) {
        float x;
        std::memcpy(&x, r + (j0 + j) * st[3] * 4, 4);
        if (x != -std::numeric_limits<float>::infinity()) return false;
    }
    return true;
}

// The B + 1 offsets of packed sequences (flash-attn's cu_seqlens): int32 or
// int64 [B + 1], 0 first, never decreasing, `total` (the packed rows) last.
std::vector<int64_t> read_offsets(const tensor_view &cu, int64_t total, const char *rows) {
    cu.require_dtype({dtype::i32, dtype::i64});
    if (cu.ndim != 1 || cu.shape[0] < 1)
        fail(LLMKIT_ERROR_SHAPE, cu.name, ": expected 1 dimension of B + 1 >= 1 offsets, got shape ", cu.shape_string());
    std::vector<int64_t> o(static_cast<size_t>(cu.shape[0]));
    for (int64_t i = 0; i < cu.shape[0]; ++i) o[size_t(i)] = cu.integer_at(i * cu.strides[0]);
    if (o[0] != 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, cu.name, "[0] must be 0, got ", o[0]);
    for (size_t i = 1; i < o.size(); ++i)
        if (o[i] < o[i - 1])
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, cu.name, "[", i, "] = ", o[i], " is below ", cu.name, "[", i - 1,
                 "] = ", o[i - 1], ": offsets must not decrease");
    if (o.back() != total)
        fail(LLMKIT_ERROR_SHAPE, cu.name, "[", o.size() - 1, "] = ", o.back(), " must equal the ", total, " rows of ",
             rows);
    return o;
}

// Rows [from, from + n) of a packed [T, H, D] tensor (or [T, H] lse) as one
// sequence, [1, n, H, D] (or [1, n, H]); errors about it name it "t of
// sequence b" (b < 0: the whole tensor, its own name).
tensor_view sequence_view(const tensor_view &t, int64_t b, int64_t from, int64_t n) {
    tensor_view s = t;
    if (b >= 0) s.name = t.name + " of sequence " + std::to_string(b);
    s.ndim = t.ndim + 1;
    for (int d = t.ndim; d >= 1; --d) {
        s.shape[d] = t.shape[d - 1];
        s.strides[d] = t.strides[d - 1];
    }
    s.shape[0] = 1;
    s.strides[0] = 0;
    s.shape[1] = n;
    s.data = t.data + from * t.strides[0] * int64_t(t.elem_size);
    return s;
}

namespace {

// The packed tensors' ranks and shapes; then, as one sequence each, the rest
// of validate()'s checks (dtypes, heads, head_dim, strides, the lse), once
// for all the sequences, whose rows are parts of them.
void validate_varlen(const tensor_view &q, const tensor_view &k, const tensor_view &v, const tensor_view &out,
                     const attention_params &p) {
    for (const tensor_view *t : {&q, &k, &v, &out})
        if (t->ndim != 3)
            fail(LLMKIT_ERROR_SHAPE, t->name, ": expected 3 dimensions [total rows, heads, head_dim], got ", t->ndim,
                 " (shape ", t->shape_string(), ")");
    if (out.shape[0] != q.shape[0] || out.shape[1] != q.shape[1] || out.shape[2] != v.shape[2])
        fail(LLMKIT_ERROR_SHAPE, "out: shape ", out.shape_string(), " must be [Tq, Hq, Dv] = [", q.shape[0], ", ",
             q.shape[1], ", ", v.shape[2], "] (q's rows and heads, v's head_dim)");
    if (k.shape[0] != v.shape[0])
        fail(LLMKIT_ERROR_SHAPE, "k ", k.shape_string(), " and v ", v.shape_string(), " must have the same rows");
    if (p.mask)
        fail(LLMKIT_ERROR_UNSUPPORTED, p.mask->name, ": an [Sq, Skv] mask has no meaning over packed sequences");
    std::optional<tensor_view> lse;
    attention_params whole = p;
    if (p.lse) {
        const tensor_view &l = *p.lse;
        if (l.ndim != 2 || l.shape[0] != q.shape[0] || l.shape[1] != q.shape[1])
            fail(LLMKIT_ERROR_SHAPE, l.name, ": shape ", l.shape_string(), " must be [Tq, Hq] = [", q.shape[0], ", ",
                 q.shape[1], "]");
        whole.lse = &lse.emplace(sequence_view(l, -1, 0, l.shape[0]));
    }
    validate(sequence_view(q, -1, 0, q.shape[0]), sequence_view(k, -1, 0, k.shape[0]),
             sequence_view(v, -1, 0, v.shape[0]), sequence_view(out, -1, 0, out.shape[0]), whole);
}

void run_varlen_cpu(const tensor_view &q, const tensor_view &k, const tensor_view &v, const tensor_view &cu_q,
                    const tensor_view &cu_k, const tensor_view &out, const attention_params &p) {
    const std::vector<int64_t> oq = read_offsets(cu_q, q.shape[0], "q"), ok = read_offsets(cu_k, k.shape[0], "k");
    if (oq.size() != ok.size())
        fail(LLMKIT_ERROR_SHAPE, cu_q.name, " holds ", oq.size(), " offsets and ", cu_k.name, " ", ok.size(),
             ": both must be B + 1");
    // One sequence at a time, each over every thread (its query tiles and heads).
    for (size_t b = 0; b + 1 < oq.size(); ++b) {
        const int64_t i = int64_t(b), nq = oq[b + 1] - oq[b], nk = ok[b + 1] - ok[b];
        std::optional<tensor_view> sl;
        attention_params sp = p;
        if (p.lse) sp.lse = &sl.emplace(sequence_view(*p.lse, i, oq[b], nq));
        run_cpu(sequence_view(q, i, oq[b], nq), sequence_view(k, i, ok[b], nk), sequence_view(v, i, ok[b], nk),
                sequence_view(out, i, oq[b], nq), sp);
    }
}

}  // namespace

void attention_varlen(const tensor_view &q, const tensor_view &k, const tensor_view &v, const tensor_view &cu_seqlens_q,
                      const tensor_view &cu_seqlens_k, const tensor_view &out, const attention_params &p) {
    validate_varlen(q, k, v, out, p);
    const core::dispatch d = core::select_backend({&q, &k, &v, &out, &cu_seqlens_q, &cu_seqlens_k, p.lse});
    if (d.kind == core::backend_kind::cpu) {
        run_varlen_cpu(q, k, v, cu_seqlens_q, cu_seqlens_k, out, p);
        return;
    }
    // No device kernel yet: stage through host memory and run the CPU path.
    core::host_stage sq(d, q, true, p.stream), sk(d, k, true, p.stream), sv(d, v, true, p.stream),
        scq(d, cu_seqlens_q, true, p.stream), sck(d, cu_seqlens_k, true, p.stream), so(d, out, false, p.stream);
    std::unique_ptr<core::host_stage> sl;
    attention_params hp = p;
    if (p.lse) {
        sl = std::make_unique<core::host_stage>(d, *p.lse, false, p.stream);
        hp.lse = &sl->view();
    }
    run_varlen_cpu(sq.view(), sk.view(), sv.view(), scq.view(), sck.view(), so.view(), hp);
    so.write_back(p.stream);
    if (sl) sl->write_back(p.stream);
}

void attention(const tensor_view &q, const tensor_view &k, const tensor_view &v, const tensor_view &out,
               const attention_params &p) {
    validate(q, k, v, out, p);
    const core::dispatch d = core::select_backend({&q, &k, &v, &out, p.mask, p.lse});
    if (d.kind == core::backend_kind::cpu) {
        run_cpu(q, k, v, out, p);
        return;
    }
    // No device kernel yet: stage through host memory and run the CPU path.
    core::host_stage sq(d, q, true, p.stream), sk(d, k, true, p.stream), sv(d, v, true, p.stream),
        so(d, out, false, p.stream);
    std::unique_ptr<core::host_stage> sm, sl;
    attention_params hp = p;
    if (p.mask) {
        sm = std::make_unique<core::host_stage>(d, *p.mask, true, p.stream);
        hp.mask = &sm->view();
    }
    if (p.lse) {
        sl = std::make_unique<core::host_stage>(d, *p.lse, false, p.stream);
        hp.lse = &sl->view();
    }
    run_cpu(sq.view(), sk.view(), sv.view(), so.view(), hp);
    so.write_back(p.stream);
    if (sl) sl->write_back(p.stream);
}

void check_lse(const tensor_view &lse, const tensor_view &q) {
    if (lse.type != dtype::f32)
        fail(LLMKIT_ERROR_DTYPE, lse.name, ": dtype ", core::dtype_name(lse.type), " is not float32");
    if (lse.ndim != 3 || lse.shape[0] != q.shape[0] || lse.shape[1] != q.shape[1] || lse.shape[2] != q.shape[2])
        fail(LLMKIT_ERROR_SHAPE, lse.name, ": shape ", lse.shape_string(), " must be [B, Sq, Hq] = [", q.shape[0], ", ",
             q.shape[1], ", ", q.shape[2], "]");
    lse.require_own_elements();
    if (q.shape[3] == 0 && lse.numel() > 0)
        fail(LLMKIT_ERROR_SHAPE, lse.name, ": head_dim is 0, so there are no scores to sum");
}

}  // namespace llmkit::attention
