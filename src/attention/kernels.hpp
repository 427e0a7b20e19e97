// The inner loops of the attention block, behind one table of function
// pointers: a portable set (plain loops), an AVX2 + FMA + F16C set and an
// AVX-512F set, the best the CPU runs chosen at run time. Raw pointers only;
// no tensor types in here.
#pragma once

#include <cstdint>

namespace llmkit::attention {

// The element type of the K/V rows a decode kernel reads (the values of
// kv_dtype). The 8-bit types are read as raw values, which the rows' scales
// multiply (kv_cache.hpp): int8 as its integer; FP8 through IEEE fp16, whose
// layout holds both: an E5M2 byte is the high byte of the fp16 of its value,
// and an E4M3 byte's sign, exponent and mantissa placed as fp16's (sign to
// bit 15, the rest from bit 7) make the fp16 of its value times 2^-8
// (exponent biases 7 and 15), subnormals included. So F16C's conversion
// widens both exactly, and E4M3's 2^8 lives in the row scales. (E4M3's NaN
// codes read as finite values; the caches never store them.)
enum class row_type : int { f32 = 0, bf16 = 1, f16 = 2, i8 = 3, e4m3 = 4, e5m2 = 5 };

inline bool is_8bit(row_type e) { return int(e) >= int(row_type::i8); }

// The fp16 bits of an FP8 byte's raw value (see row_type).
inline uint16_t fp8_raw_f16_bits(uint8_t b, bool e4m3) {
    return e4m3 ? uint16_t(((b & 0x80u) << 8) | ((b & 0x7fu) << 7)) : uint16_t(b << 8);
}

// n adjacent rows of a KV cache from row `row` (one kv head's rows inside a
// block of a paged cache).
struct row_run {
    int64_t row;
    int n;
};

// The most runs and keys one call of the runs kernels takes (int8's, and
// the 16-bit p.v's gemm_runs_pf and gemm_bf16_eo_runs_pf).
constexpr int k_runs_max = 8;
constexpr int k_runs_max_keys = 128;

// A range of bytes for a kernel to ask for (the rows read next).
struct byte_range {
    const char *p;
    int64_t bytes;
};

struct kernels {
    const char *name;
    // C[r][c] = (accumulate ? row_scale[r] * C[r][c] : 0) + sum_k A[r*ars + k*aks] * B[k*ldb + c]
    // for r < M, c < N (any N; tails are masked), k < K. row_scale may be null (= 1).
    void (*gemm)(int M, int N, int K, const float *A, int64_t ars, int64_t aks, const float *B, int64_t ldb, float *C,
                 int64_t ldc, bool accumulate, const float *row_scale);
    // ST[j*R + r] = dot(Q[r*ldq .. + D], K[j*ldk .. + D]) for r < R, j < N.
    void (*dots)(int R, int N, int D, const float *Q, int64_t ldq, const float *K, int64_t ldk, float *ST);
    // One tile of online softmax over ST[j*R + r] (j < N keys, r < R rows): updates the
    // running max m[r] and sum l[r], replaces ST by exp(ST - m_new), and writes
    // alpha[r] = exp(m_old - m_new), the factor that rescales the running output.
    void (*softmax_tile)(float *ST, int N, int R, float *m, float *l, float *alpha);
    // dst[i] = float(src[i]) for n 16-bit values: bf16 when is_bf16, else IEEE fp16.
    void (*half_to_f32)(float *dst, const uint16_t *src, int64_t n, bool is_bf16);
    // dst[i] = src[i] rounded to nearest even: bf16 when is_bf16, else IEEE fp16.
    void (*f32_to_half)(uint16_t *dst, const float *src, int64_t n, bool is_bf16);
    // dst[r*D + d] = raw(src[r*D + d]) * scales[r] for `rows` 8-bit rows of D
    // of type e (i8, e4m3 or e5m2; raw values as row_type says): KV-cache dequantisation.
    void (*q8_to_f32)(float *dst, const void *src, int64_t rows, int64_t D, const float *scales, row_type e);
    // Optional (null: convert the rows with half_to_f32 first, then dots / gemm):
    // dots and gemm reading K, resp. B, as 16-bit rows (bf16 when is_bf16, else
    // IEEE fp16; ldk / ldb count elements), converted in registers, so decoding
    // over a 16-bit KV cache streams it once with no float32 copy. Each key's
    // result is the same bits whichever keys share the call.
    void (*dots_half)(int R, int N, int D, const float *Q, int64_t ldq, const uint16_t *K, int64_t ldk, bool is_bf16,
                      float *ST) = nullptr;
    void (*gemm_half)(int M, int N, int K, const float *A, int64_t ars, int64_t aks, const uint16_t *B, int64_t ldb,
                      bool is_bf16, float *C, int64_t ldc, bool accumulate, const float *row_scale) = nullptr;
    // Optional (null: the caller asks for the next rows in one burst, then
    // calls dots / dots_half / gemm / gemm_half, 8-bit rows converted by
    // q8_to_f32 with unit scales first): decode's dots over K rows and gemm
    // over V rows of type e, with the bits of those calls, that also ask for
    // the bytes [pf, pf + pf_bytes) (the rows decoded next) a few cache lines
    // per block of work, so memory stays busy all the while the call computes
    // instead of waiting on a burst of prefetches that fills the miss buffers.
    // pf may be null. 8-bit rows (int8, FP8) are read as their raw values:
    // dots_pf multiplies key j's dot products by scales[j] once (scales is
    // unused for other types), and gemm_pf's caller folds each V row's scale
    // into A (the probabilities), so no per-element multiply competes with
    // the FMAs.
    void (*dots_pf)(int R, int N, int D, const float *Q, int64_t ldq, const void *K, int64_t ldk, row_type e,
                    const float *scales, float *ST, const char *pf, int64_t pf_bytes) = nullptr;
    void (*gemm_pf)(int M, int N, int K, const float *A, int64_t ars, int64_t aks, const void *B, int64_t ldb,
                    row_type e, float *C, int64_t ldc, bool accumulate, const float *row_scale, const char *pf,
                    int64_t pf_bytes) = nullptr;
    // Optional (null: a dots_pf and a gemm_pf call per head and piece of a
    // few rows): decode's scores and p.v over plain [S, H, D] rows, a token's
    // H rows of D side by side (row j of head h at K + (j * H + h) * D
    // elements), for R query rows per head, N keys, rows of type f32, bf16
    // or f16. A few keys at a time (gemm_tokens_pf: `group`), every head in
    // turn, so the call reads its rows front to back, and asks for them, and
    // then for [pf, pf + pf_bytes) (the rows read next), `ahead` bytes past
    // where it reads (the first `ahead` bytes of its own rows it takes as
    // asked for by the call before). Head h's queries (rows of D), scores
    // ([j * R + r]; P in gemm_tokens_pf), output (rows of D: gemm_tokens_pf's
    // D is V's head_dim, which may differ from K's) and alpha lie at
    // Q, ST, O and alpha + h * head_stride floats. The bits of dots_pf, and
    // of gemm_pf with alpha as the first key's row_scale (alpha null: none).
    void (*dots_tokens_pf)(int H, int R, int N, int D, const float *Q, const void *K, row_type e, float *ST,
                           int64_t head_stride, const char *pf, int64_t pf_bytes, int64_t ahead) = nullptr;
    void (*gemm_tokens_pf)(int H, int R, int N, int D, int group, const float *P, const void *V, row_type e, float *O,
                           const float *alpha, int64_t head_stride, const char *pf, int64_t pf_bytes,
                           int64_t ahead) = nullptr;
    // Optional (null: the pieces' dots_bf16_pf and gemm_bf16_eo_pf calls):
    // dots_bf16_pf and gemm_bf16_eo_pf as the tokens kernels above, over
    // plain [S, H, D] bf16 rows; head h's bf16 queries at Q + 2 * h *
    // head_stride (uint16_t), the rest as above. The bits of dots_bf16_pf and
    // gemm_bf16_eo_pf; set with them.
    void (*dots_bf16_tokens_pf)(int H, int R, int N, int D, const uint16_t *Q, const uint16_t *K, float scale,
                                float *ST, int64_t head_stride, const char *pf, int64_t pf_bytes,
                                int64_t ahead) = nullptr;
    void (*gemm_bf16_eo_tokens_pf)(int H, int R, int N, int D, int group, const float *P, const uint16_t *V, float *O,
                                   const float *alpha, int64_t head_stride, const char *pf, int64_t pf_bytes,
                                   int64_t ahead) = nullptr;
    // Optional (null: gemm_pf): gemm_pf for decode calls whose K and V fit in
    // the caches (k_cache_resident_bytes), with gemm_pf's bits. Set where the
    // set's gemm_pf keeps a kernel that is faster from memory but slower from
    // the caches than another (float32 rows on Zen 5, see wide_decode).
    void (*gemm_pf_in_cache)(int M, int N, int K, const float *A, int64_t ars, int64_t aks, const void *B,
                             int64_t ldb, row_type e, float *C, int64_t ldc, bool accumulate,
                             const float *row_scale, const char *pf, int64_t pf_bytes) = nullptr;
    // Optional (null: one gemm_pf / gemm_bf16_eo_pf call per run): decode's
    // p.v over the rows of n_runs runs in turn (a paged cache's blocks of one
    // head), the output loaded and stored once: for r < M and c < D,
    //   O[r*ldo + c] = (alpha ? alpha[r] * O[r*ldo + c] : O[r*ldo + c])
    //                  + sum_j P[j*ldp + r] * row_j[c]
    // key j of the call the j-th row of the runs (at most k_runs_max runs,
    // k_runs_max_keys keys), row i of the base at V + i * D elements, the
    // sum one FMA per key in order: the bits of one gemm_pf call per run,
    // alpha as the first call's row_scale. gemm_runs_pf takes float32,
    // bf16 and fp16 rows (not 8-bit); gemm_bf16_eo_runs_pf bf16 rows into O
    // in gemm_bf16_eo_pf's even/odd order (D a multiple of 32). They ask for
    // the n_pf ranges pf, spread over the work. Decode takes them for a
    // paged cache in the caches (k_cache_resident_bytes), where a call per
    // block of 16 keys loads and stores the output 8 times as often.
    void (*gemm_runs_pf)(int M, int D, const float *P, int64_t ldp, const void *V, row_type e, const row_run *runs,
                         int n_runs, float *O, int64_t ldo, const float *alpha, const byte_range *pf,
                         int n_pf) = nullptr;
    void (*gemm_bf16_eo_runs_pf)(int M, int D, const float *P, int64_t ldp, const uint16_t *V, const row_run *runs,
                                 int n_runs, float *O, int64_t ldo, const float *alpha, const byte_range *pf,
                                 int n_pf) = nullptr;
    // Optional (null: decode's p.v over bf16 rows goes through gemm_pf; set
    // where decode's p.v runs in 512-bit registers, wide_decode): gemm_pf for
    // M rows over bf16 B rows, N a multiple of 32, with C's columns in
    // "even/odd" order: in each block of 32 columns, position i < 16 holds
    // column 2i and position 16 + i column 2i + 1. A bf16 is the high half of
    // a float32, so 64 bytes of a row widen in two operations (even elements
    // shifted up, odd ones masked) into exactly those two vectors, where
    // gemm_pf's column order costs a widening load and a shift per 16
    // elements. Each element of C sees gemm_pf's operations in the same
    // order (row_scale * C or 0, then one FMA per k): the same bits, in
    // another place. The caller keeps C in this order across calls and puts
    // the columns back once at the end. (The AVX2 set has none: with 16
    // registers its 4 x 16 tile has 8 accumulators, and on Zen 3 it decoded
    // 0.94-1.03x at batch 16; bench/README.md, fifty-sixth session.)
    void (*gemm_bf16_eo_pf)(int M, int N, int K, const float *A, int64_t ars, int64_t aks, const uint16_t *B,
                            int64_t ldb, float *C, int64_t ldc, bool accumulate, const float *row_scale,
                            const char *pf, int64_t pf_bytes) = nullptr;
    // Optional (null: decode scores bf16 queries as float32 rows through
    // dots_pf; set only where the CPU has AVX512-BF16): decode's scores of R
    // bf16 query rows (unscaled) against N bf16 K rows, on pairs along D (D
    // even), asking for [pf, pf + pf_bytes) as dots_pf does:
    //   ST[j*R + r] = scale * dot(Q[r*ldq .. + D], K[j*ldk .. + D])
    // each dot product 16 float32 lanes (lane l takes pairs l, l + 16, ...:
    // exact products, float32 sums) added in a fixed tree, so a key's score
    // does not depend on which keys share the call. Both operands are exact
    // in bf16, so this is dots' float32 product with no scaling of Q. On AMD
    // the lanes are vdpbf16ps steps (half the multiplies, no conversion of
    // K, subnormals flushed); on Intel, where vdpbf16ps is slow, FMAs on K's
    // pairs widened in two operations (dots_bf16_fma_block). (An AVX2
    // version on FMAs, its widened queries loaded as operands for want of
    // registers, decoded 0.95-0.98x on Zen 3: bench/README.md.)
    void (*dots_bf16_pf)(int R, int N, int D, const uint16_t *Q, int64_t ldq, const uint16_t *K, int64_t ldk,
                         float scale, float *ST, const char *pf, int64_t pf_bytes) = nullptr;
    // Optional, all four or none (null: decode reads an int8 cache as
    // float32 through dots_pf and gemm_pf; set only where the CPU has
    // AVX512-VNNI and AVX512-BW): decode over int8 rows in integers, the
    // queries and the probabilities as int16 (vpdpwssd: 32 products per
    // instruction, no conversion of the rows). Integer sums are exact, so a
    // key's score and a tile's P V never depend on how the keys are cut into
    // calls. head_dim D <= 256.
    // quantize_i16: each of R rows of D floats (X[r*D + d]) as int16 times a
    // row scale, X ~ Qi * qs[r] with qs[r] = max |X[r]| / 32767 (0 for a zero
    // row), Qi[r*D + d] = X[r*D + d] * (32767 / max |X[r]|) rounded to nearest
    // even: off by at most half a step.
    void (*quantize_i16)(const float *X, int R, int D, int16_t *Qi, float *qs) = nullptr;
    // dots_i8_pf: the scores of R int16 query rows against N int8 K rows,
    //   ST[j*R + r] = (float(sum_d Q[r*ldq + d] * K[j*ldk + d]) * qscale[r]) * kscale[j]
    // asking for [pf, pf + pf_bytes) as dots_pf does (|Q| <= 32767: the sum
    // stays under 2^31).
    void (*dots_i8_pf)(int R, int N, int D, const int16_t *Q, int64_t ldq, const float *qscale, const int8_t *K,
                       int64_t ldk, const float *kscale, float *ST, const char *pf, int64_t pf_bytes) = nullptr;
    // gemm_i8_pf: for r < M and c < D, Acc[r][c] += sum_{j < N} W[j][r] * V[j*ldv + c]
    // with the int16 weights W[j][r] = P[j*ldp + r] * (sv[j] * k) rounded to
    // nearest even, saturated to 32767 (0 <= P * sv * k < 32767.5 keeps them
    // exact). Acc holds int32 rows of ldc >= D rounded up to 32 in the
    // kernels' own column order (zeros to start; i8_acc_finish reads them);
    // 64 keys cannot overflow it. Asks for [pf, pf + pf_bytes) as gemm_pf does.
    void (*gemm_i8_pf)(int M, int N, int D, const float *P, int64_t ldp, const float *sv, float k, const int8_t *V,
                       int64_t ldv, int32_t *Acc, int64_t ldc, const char *pf, int64_t pf_bytes) = nullptr;
    // Optional (null: the caller calls dots_i8_pf / gemm_i8_pf once per
    // run): dots_i8_pf and gemm_i8_pf over the rows of n_runs runs in turn,
    // row i of the base K (V) at K + i * D, its scale kscale[i] (sv[i]); key
    // j of the call is the j-th row of the runs (at most k_runs_max runs,
    // k_runs_max_keys keys), its scores at ST[j*R + r] and its probabilities
    // at P[j*ldp + r]. They ask for the n_pf ranges pf, spread over the work.
    // The bits of one call per run (integer sums). A paged cache's head has
    // 16 rows per block: one call per 128 keys instead of eight, the int32
    // sums of P V loaded and stored once.
    void (*dots_i8_runs_pf)(int R, int D, const int16_t *Q, int64_t ldq, const float *qscale, const int8_t *K,
                            const float *kscale, const row_run *runs, int n_runs, float *ST, const byte_range *pf,
                            int n_pf) = nullptr;
    void (*gemm_i8_runs_pf)(int M, int D, const float *P, int64_t ldp, const float *sv, float k, const int8_t *V,
                            const row_run *runs, int n_runs, int32_t *Acc, int64_t ldc, const byte_range *pf,
                            int n_pf) = nullptr;
    // O[r*ldo + c] = fma(s[r], float(Acc[r][c]), alpha[r] * O[r*ldo + c]) for
    // r < M, c < D (alpha null: O[r*ldo + c] itself), Acc as gemm_i8_pf leaves it.
    void (*i8_acc_finish)(int M, int D, const int32_t *Acc, int64_t ldc, const float *s, const float *alpha, float *O,
                          int64_t ldo) = nullptr;
    // Optional (null: the CPU has no bf16 dot products; set only where it
    // has AVX512-BF16): the bf16 prefill's products on pairs of bf16 values,
    // each pair one uint32 (element 2p in the low half). For r < M, c < N:
    //   C[r][c] = (accumulate ? row_scale[r] * C[r][c] : 0)
    //             + sum_p (A[r*ars + p*aps] . B[p*ldb + c] + A2[r*ars + p*aps] . B[p*ldb + c])
    // over p < P, "." a pair's dot product in float32 (vdpbf16ps: two fused
    // steps, round to nearest even, subnormals flushed); A2 may be null. A2
    // carries the rounding residue of A (see pack_bf16_pairs), so that the
    // float32 probabilities multiply bf16 V as if unrounded (to ~2^-16).
    void (*gemm_bf16)(int M, int N, int P, const uint32_t *A, const uint32_t *A2, int64_t ars, int64_t aps,
                      const uint32_t *B, int64_t ldb, float *C, int64_t ldc, bool accumulate,
                      const float *row_scale) = nullptr;
    // Whether the bf16 prefill runs on gemm_bf16 (K, V and the probabilities
    // as bf16 pairs) rather than on float32 tiles widened from bf16 (gemm):
    // set only where vdpbf16ps out-runs the float32 FMAs. On AMD Zen 4 (one
    // 512-bit FMA a cycle) the pairs made a 2048-token prefill 1.3x faster;
    // on Intel Emerald Rapids (two 512-bit FMA ports, vdpbf16ps on one) they
    // made it 2.1x slower. The two give different bits (both within the bf16
    // tolerances: the float32 tiles are exact widenings).
    bool bf16_prefill_on_pairs = false;
    // Float32 rows a and b (b null: zeros) as bf16 pairs: hi[c] = {bf16(a[c]),
    // bf16(b[c])} rounded to nearest even, lo[c] = the same of what rounding
    // left (a[c] - float(bf16(a[c])), ...); lo may be null. c < n.
    void (*pack_bf16_pairs)(uint32_t *hi, uint32_t *lo, const float *a, const float *b, int n) = nullptr;
};

const kernels &generic_kernels();
// nullptr when the CPU lacks AVX-512F or the compiler could not build them.
const kernels *avx512_kernels();
// The AVX-512 set with the other of its two decode bf16 scores kernels
// (dots_bf16_pf on vdpbf16ps pairs where avx512_kernels() has them on FMAs,
// and the reverse), so tests cover both on any CPU with AVX512-BF16; nullptr
// where avx512_kernels() has no dots_bf16_pf.
const kernels *avx512_kernels_other_bf16_scores();
// nullptr when the CPU lacks AVX2, FMA or F16C or the compiler could not build them.
const kernels *avx2_kernels();
// The best set for this CPU: AVX-512, else AVX2, else the portable one.
const kernels &best_kernels();

}  // namespace llmkit::attention
