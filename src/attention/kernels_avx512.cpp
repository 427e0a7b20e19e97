// AVX-512F attention kernels. Everything in this file after the includes is
// compiled for AVX-512 through function attributes and runs only after
// __builtin_cpu_supports("avx512f") said yes, so no std:: code is instantiated
// with AVX-512 instructions (it could be merged with other translation units'
// copies and run on a CPU without them).
#include <cstdint>
#include <vector>
#include <limits>

#include "attention/kernels.hpp"
#include "core/cpu_features.hpp"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#include <immintrin.h>

#include "attention/spread_prefetch.hpp"
#define LLMKIT_AVX512 __attribute__((target("avx512f"))) inline
#define LLMKIT_HAVE_AVX512_KERNELS 1
// GCC 12 reports its own intrinsics' deliberately undefined registers.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#endif

namespace llmkit::attention {

#ifdef LLMKIT_HAVE_AVX512_KERNELS
namespace {

LLMKIT_AVX512 __mmask16 tail_mask(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

// exp(x) for float32 lanes, Cephes' expf polynomial on x - n ln2, scaled by 2^n
// with vscalefps; about 1 ulp. Lanes below -87.3 (including -inf) give exactly 0;
// NaN stays NaN (the clamps would turn it into a number: an overflowed score's
// NaN must reach the row's sum, as in the AVX2 set).
LLMKIT_AVX512 __m512 exp512(__m512 x) {
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __m512 x0 = x;
    const __m512 hi = _mm512_set1_ps(88.3762626647949f);
    const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_LT_OQ);
    x = _mm512_min_ps(x, hi);
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.33654f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    const __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_mask_mov_ps(_mm512_maskz_mov_ps(__mmask16(~tiny), _mm512_scalef_ps(p, n)), nan, x0);
}

// The NR x NV vectors of a C tile: row_scale[r] * C (1 when row_scale is
// null) when accumulating, else zeros; the last vector masked with `last`
// when Tail (else every vector is whole: no mask to keep in a register).
template <int NR, int NV, bool Tail>
LLMKIT_AVX512 void load_c_tile(__m512 (&c)[NR][NV], const float *C, int64_t ldc, bool accumulate,
                               const float *row_scale, __mmask16 last) {
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
        const __m512 s = _mm512_set1_ps(row_scale ? row_scale[r] : 1.0f);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            const float *p = C + r * ldc + 16 * v;
            const __m512 x = Tail && v == NV - 1 ? _mm512_maskz_loadu_ps(last, p) : _mm512_loadu_ps(p);
            c[r][v] = accumulate ? _mm512_mul_ps(x, s) : _mm512_setzero_ps();
        }
    }
}

template <int NR, int NV, bool Tail>
LLMKIT_AVX512 void store_c_tile(const __m512 (&c)[NR][NV], float *C, int64_t ldc, __mmask16 last) {
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            float *p = C + r * ldc + 16 * v;
            if (Tail && v == NV - 1)
                _mm512_mask_storeu_ps(p, last, c[r][v]);
            else
                _mm512_storeu_ps(p, c[r][v]);
        }
}

// A block of NR rows x NV vectors of C; the last vector is masked with `last`
// when Tail.
template <int NR, int NV, bool Tail>
LLMKIT_AVX512 void gemm_block(int K, const float *A, int64_t ars, int64_t aks, const float *B, int64_t ldb, float *C,
                              int64_t ldc, bool accumulate, const float *row_scale, __mmask16 last) {
    __m512 c[NR][NV];
    load_c_tile<NR, NV, Tail>(c, C, ldc, accumulate, row_scale, last);
    for (int k = 0; k < K; ++k) {
        __m512 b[NV];
        const float *bk = B + k * ldb;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            b[v] = Tail && v == NV - 1 ? _mm512_maskz_loadu_ps(last, bk + 16 * v) : _mm512_loadu_ps(bk + 16 * v);
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) {
            const __m512 a = _mm512_set1_ps(A[r * ars + k * aks]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) c[r][v] = _mm512_fmadd_ps(a, b[v], c[r][v]);
        }
    }
    store_c_tile<NR, NV, Tail>(c, C, ldc, last);
}

// One column chunk of C (NV vectors) for all M rows, 4 rows at a time, asking
// for pf's bytes (pf may be null) a share per group of rows.
template <int NV, bool Tail>
LLMKIT_AVX512 void gemm_chunk(int M, int K, const float *A, int64_t ars, int64_t aks, const float *B, int64_t ldb,
                              float *C, int64_t ldc, bool accumulate, const float *row_scale, __mmask16 last,
                              const char *pf, int64_t pf_bytes) {
    const int groups = (M + 3) / 4;
    int64_t asked = 0;
    for (int g = 0, r = 0; r < M; ++g) {
        const int64_t upto = pf ? pf_bytes * (g + 1) / groups : 0;
        for (; asked < upto; asked += 64) _mm_prefetch(pf + asked, _MM_HINT_T0);
        const int rows = M - r < 4 ? M - r : 4;
        const float *rs = row_scale ? row_scale + r : nullptr;
        const float *Ar = A + r * ars;
        float *Cr = C + r * ldc;
        switch (rows) {
        case 4: gemm_block<4, NV, Tail>(K, Ar, ars, aks, B, ldb, Cr, ldc, accumulate, rs, last); break;
        case 3: gemm_block<3, NV, Tail>(K, Ar, ars, aks, B, ldb, Cr, ldc, accumulate, rs, last); break;
        case 2: gemm_block<2, NV, Tail>(K, Ar, ars, aks, B, ldb, Cr, ldc, accumulate, rs, last); break;
        default: gemm_block<1, NV, Tail>(K, Ar, ars, aks, B, ldb, Cr, ldc, accumulate, rs, last); break;
        }
        r += rows;
    }
}

// gemm one chunk of 64 columns of C at a time, so that the chunk of B (K rows
// of 256 bytes: 32 KB for the prefill's K = 128) stays in L1 while every group
// of 4 rows of A walks down it; going a group of rows at a time across all of
// C instead streams all of B from L2 for each group (q.k: the 72 KB of Q^T),
// and on a 2-core Emerald Rapids VM the prefill ran 1.2x slower that way.
// pf's bytes (pf may be null) are asked for a share per chunk.
__attribute__((target("avx512f"))) void gemm_rows_any(int M, int N, int K, const float *A, int64_t ars, int64_t aks,
                                                      const float *B, int64_t ldb, float *C, int64_t ldc,
                                                      bool accumulate, const float *row_scale, const char *pf,
                                                      int64_t pf_bytes) {
    const int chunks = (N + 63) / 64;
    for (int ci = 0, n0 = 0; n0 < N; ++ci, n0 += 64) {
        const int w = N - n0 < 64 ? N - n0 : 64;
        const int nv = (w + 15) / 16;
        const __mmask16 last = tail_mask(w - 16 * (nv - 1));
        const int64_t pf_from = pf_bytes * ci / chunks, pf_to = pf_bytes * (ci + 1) / chunks;
        const char *p = pf ? pf + pf_from : nullptr;
        const int64_t pn = pf ? pf_to - pf_from : 0;
        const float *Bn = B + n0;
        float *Cn = C + n0;
        switch (w == 64 ? 0 : nv) {
        case 0: gemm_chunk<4, false>(M, K, A, ars, aks, Bn, ldb, Cn, ldc, accumulate, row_scale, last, p, pn); break;
        case 1: gemm_chunk<1, true>(M, K, A, ars, aks, Bn, ldb, Cn, ldc, accumulate, row_scale, last, p, pn); break;
        case 2: gemm_chunk<2, true>(M, K, A, ars, aks, Bn, ldb, Cn, ldc, accumulate, row_scale, last, p, pn); break;
        case 3: gemm_chunk<3, true>(M, K, A, ars, aks, Bn, ldb, Cn, ldc, accumulate, row_scale, last, p, pn); break;
        default: gemm_chunk<4, true>(M, K, A, ars, aks, Bn, ldb, Cn, ldc, accumulate, row_scale, last, p, pn); break;
        }
    }
    if (pf && pf_bytes > 0) _mm_prefetch(pf + pf_bytes - 1, _MM_HINT_T0);  // a last partial line
}

__attribute__((target("avx512f"))) void gemm_avx512(int M, int N, int K, const float *A, int64_t ars, int64_t aks,
                                                    const float *B, int64_t ldb, float *C, int64_t ldc,
                                                    bool accumulate, const float *row_scale) {
    gemm_rows_any(M, N, K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale, nullptr, 0);
}

template <int NR>
LLMKIT_AVX512 void dots_rows(int R, int N, int D, const float *Q, int64_t ldq, const float *K, int64_t ldk, float *ST) {
    for (int j = 0; j < N; ++j) {
        const float *k = K + j * ldk;
        __m512 acc[NR];
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps();
        for (int d = 0; d < D; d += 16) {
            const __mmask16 mk = tail_mask(D - d);
            const __m512 kv = _mm512_maskz_loadu_ps(mk, k + d);
#pragma GCC unroll 4
            for (int r = 0; r < NR; ++r) acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, Q + r * ldq + d), kv, acc[r]);
        }
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) ST[j * R + r] = _mm512_reduce_add_ps(acc[r]);
    }
}

__attribute__((target("avx512f"))) void dots_avx512(int R, int N, int D, const float *Q, int64_t ldq, const float *K,
                                                    int64_t ldk, float *ST) {
    int r = 0;
    for (; r + 4 <= R; r += 4) dots_rows<4>(R, N, D, Q + r * ldq, ldq, K, ldk, ST + r);
    const int rest = R - r;
    if (rest == 3) dots_rows<3>(R, N, D, Q + r * ldq, ldq, K, ldk, ST + r);
    if (rest == 2) dots_rows<2>(R, N, D, Q + r * ldq, ldq, K, ldk, ST + r);
    if (rest == 1) dots_rows<1>(R, N, D, Q + r * ldq, ldq, K, ldk, ST + r);
}

__attribute__((target("avx512f"))) void softmax_tile_avx512(float *ST, int N, int R, float *m, float *l,
                                                            float *alpha) {
    const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int r = 0; r < R; r += 16) {
        const __mmask16 mk = tail_mask(R - r);
        const __m512 m_old = _mm512_maskz_loadu_ps(mk, m + r);
        __m512 mx = m_old;
        for (int j = 0; j < N; ++j) mx = _mm512_max_ps(mx, _mm512_maskz_loadu_ps(mk, ST + j * R + r));
        // Rows that have seen no visible key yet keep m = -inf: subtract 0 instead,
        // so their p = exp(-inf) = 0 and alpha = 1.
        const __mmask16 dead = _mm512_cmp_ps_mask(mx, ninf, _CMP_EQ_OQ);
        const __m512 sub = _mm512_mask_mov_ps(mx, dead, _mm512_setzero_ps());
        const __m512 a = _mm512_mask_mov_ps(exp512(_mm512_sub_ps(m_old, sub)), dead, _mm512_set1_ps(1.0f));
        __m512 sum = _mm512_setzero_ps();
        for (int j = 0; j < N; ++j) {
            const __m512 p = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, ST + j * R + r), sub));
            _mm512_mask_storeu_ps(ST + j * R + r, mk, p);
            sum = _mm512_add_ps(sum, p);
        }
        const __m512 l_new = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, l + r), a, sum);
        _mm512_mask_storeu_ps(l + r, mk, l_new);
        _mm512_mask_storeu_ps(m + r, mk, mx);
        _mm512_mask_storeu_ps(alpha + r, mk, a);
    }
}

__attribute__((target("avx512f"))) void half_to_f32_avx512(float *dst, const uint16_t *src, int64_t n, bool is_bf16) {
    for (int64_t i = 0; i < n; i += 16) {
        const int w = int(n - i < 16 ? n - i : 16);
        const __mmask16 mk = tail_mask(w);
        __m256i h;
        if (w == 16) {
            h = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(src + i));
        } else {  // a masked 16-bit load needs AVX512BW: copy the tail instead
            uint16_t tmp[16] = {};
            for (int t = 0; t < w; ++t) tmp[t] = src[i + t];
            h = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(tmp));
        }
        __m512 f;
        if (is_bf16)
            f = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        else
            f = _mm512_cvtph_ps(h);
        _mm512_mask_storeu_ps(dst + i, mk, f);
    }
}

// Round to nearest even, as core::f32_to_bf16 / f32_to_f16 (NaN stays a quiet NaN).
__attribute__((target("avx512f"))) void f32_to_half_avx512(uint16_t *dst, const float *src, int64_t n, bool is_bf16) {
    for (int64_t i = 0; i < n; i += 16) {
        const int w = int(n - i < 16 ? n - i : 16);
        const __mmask16 mk = tail_mask(w);
        const __m512 x = _mm512_maskz_loadu_ps(mk, src + i);
        __m256i h;
        if (is_bf16) {
            const __m512i b = _mm512_castps_si512(x);
            const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
            __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7FFF)), lsb), 16);
            const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
            r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(0x40)));
            h = _mm512_cvtepi32_epi16(r);
        } else {
            h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        }
        if (w == 16) {
            _mm256_storeu_si256(reinterpret_cast<__m256i *>(dst + i), h);
        } else {  // a masked 16-bit store needs AVX512BW: store a copy's head instead
            uint16_t tmp[16];
            _mm256_storeu_si256(reinterpret_cast<__m256i *>(tmp), h);
            for (int t = 0; t < w; ++t) dst[i + t] = tmp[t];
        }
    }
}

__attribute__((target("avx512f"))) void i8_to_f32_avx512(float *dst, const int8_t *src, int64_t rows, int64_t D,
                                                         const float *scales) {
    for (int64_t r = 0; r < rows; ++r) {
        const __m512 s = _mm512_set1_ps(scales[r]);
        for (int64_t d = 0; d < D; d += 16) {
            const int w = int(D - d < 16 ? D - d : 16);
            __m128i b;
            if (w == 16) {
                b = _mm_loadu_si128(reinterpret_cast<const __m128i *>(src + r * D + d));
            } else {  // a masked 8-bit load needs AVX512BW: copy the tail instead
                int8_t tmp[16] = {};
                for (int t = 0; t < w; ++t) tmp[t] = src[r * D + d + t];
                b = _mm_loadu_si128(reinterpret_cast<const __m128i *>(tmp));
            }
            const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)), s);
            _mm512_mask_storeu_ps(dst + r * D + d, tail_mask(w), f);
        }
    }
}

// The AVX2 set, whose decode kernels this set shares (see avx512_kernels()).
const kernels *g_avx2 = nullptr;

// int8 rows here; FP8 rows through the AVX2 set's conversion (every AVX-512
// CPU has F16C), else the portable one.
__attribute__((target("avx512f"))) void q8_to_f32_avx512(float *dst, const void *src, int64_t rows, int64_t D,
                                                         const float *scales, row_type e) {
    if (e == row_type::i8)
        i8_to_f32_avx512(dst, static_cast<const int8_t *>(src), rows, D, scales);
    else
        (g_avx2 ? *g_avx2 : generic_kernels()).q8_to_f32(dst, src, rows, D, scales, e);
}

// Decode's p.v with 512-bit vectors (M = the 1..4 query rows of a KV head):
// the AVX2 set's gemm_few_rows, twice as wide. Panels of 48 columns (NR x 3
// accumulators), then of up to 32; B's rows float32, bfloat16 or float16,
// widened in registers. Every element of C sees the operations of the AVX2
// kernel in the same order (row_scale * C or 0, then one FMA per k), so the
// bits are the same. On Intel cores with two 512-bit FMA ports it halves the
// instructions per product: bf16 decode 1.05-1.14x, fp32 1.00-1.07x (batch 1
// and 16, 1k and 8k keys, caches and dense K/V; 2-core Emerald Rapids VM,
// alternated runs). Zen 4 splits 512-bit operations, so there decode keeps
// the AVX2 kernels. Zen 5 (AMD family 1Ah) has 512-bit data paths: its
// 16-bit p.v and softmax run here (bf16 caches at 2 threads: batch 16
// with 8k keys 1.05-1.08x, with 1k 1.28x, batch 1 1.34-1.49x; twice the
// AVX2 rate from L1; the same bits), but its
// float32 p.v keeps the AVX2 kernel, which from DRAM ran 1.02-1.07x faster
// than this one (2-core EPYC VM, alternated runs) and, over a paged cache at
// batch 16 with 8k keys, 1.14-1.17x. From the caches the 512-bit kernel is
// the faster one there, so Zen 5 has it as gemm_pf_in_cache
// (gemm_pf_f32_wide).
bool wide_decode = false;      // softmax and 16-bit p.v (gemm_half, gemm_pf, gemm_bf16_eo_pf)
bool wide_decode_f32 = false;  // float32 p.v (gemm, gemm_pf)

template <int E>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 load16_row(const char *p, __mmask16 m, bool masked) {
    if constexpr (E == 0) {  // float32
        return masked ? _mm512_maskz_loadu_ps(m, p) : _mm512_loadu_ps(p);
    } else {
        const __m256i h = masked ? _mm256_maskz_loadu_epi16(m, p) : _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p));
        if constexpr (E == 1)  // bfloat16
            return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        else  // float16
            return _mm512_cvtph_ps(h);
    }
}

// Where row k of a p.v's B lies, from a byte offset on (col): strided_rows
// ld_bytes apart; listed_rows a pointer per row (the keys of several runs,
// see gemm_runs_pf).
struct strided_rows {
    const char *b;
    int64_t ld_bytes;
    const char *at(int k) const { return b + k * ld_bytes; }
    strided_rows col(int64_t bytes) const { return {b + bytes, ld_bytes}; }
};
struct listed_rows {
    const char *const *p;
    int64_t ofs;
    const char *at(int k) const { return p[k] + ofs; }
    listed_rows col(int64_t bytes) const { return {p, ofs + bytes}; }
};

// gemm_block's loop for rows of any element type E. (Not one template with
// gemm_block: the 16-bit tails need AVX512BW/VL, and gemm_block, for
// prefill, must run on AVX512F alone.)
template <int NR, int NV, bool Tail, int E, class Rows, class PF>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void few_rows_block(
    int K, const float *A, int64_t ars, int64_t aks, Rows rows, float *C, int64_t ldc, bool accumulate,
    const float *row_scale, __mmask16 last, PF *pf) {
    constexpr int64_t eb = E == 0 ? 4 : 2;
    __m512 c[NR][NV];
    load_c_tile<NR, NV, Tail>(c, C, ldc, accumulate, row_scale, last);
    for (int k = 0; k < K; ++k) {
        if (pf) pf->step();
        const char *bk = rows.at(k);
        __m512 b[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) b[v] = load16_row<E>(bk + 16 * v * eb, last, Tail && v == NV - 1);
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) {
            const __m512 a = _mm512_set1_ps(A[r * ars + k * aks]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) c[r][v] = _mm512_fmadd_ps(a, b[v], c[r][v]);
        }
    }
    store_c_tile<NR, NV, Tail>(c, C, ldc, last);
}

template <int NR, int E, class Rows, class PF>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void few_rows_impl(
    int N, int K, const float *A, int64_t ars, int64_t aks, Rows rows, float *C, int64_t ldc, bool accumulate,
    const float *row_scale, PF *pf) {
    constexpr int64_t eb = E == 0 ? 4 : 2;
    const __mmask16 full = 0xFFFF;
    int n0 = 0;
    for (; n0 + 48 <= N; n0 += 48) {
        few_rows_block<NR, 3, false, E>(K, A, ars, aks, rows.col(n0 * eb), C + n0, ldc, accumulate, row_scale, full, pf);
    }
    for (; n0 < N; n0 += 32) {
        const int w = N - n0 < 32 ? N - n0 : 32;
        const Rows b = rows.col(n0 * eb);
        float *c = C + n0;
        if (w == 32)
            few_rows_block<NR, 2, false, E>(K, A, ars, aks, b, c, ldc, accumulate, row_scale, full, pf);
        else if (w > 16)
            few_rows_block<NR, 2, true, E>(K, A, ars, aks, b, c, ldc, accumulate, row_scale, tail_mask(w - 16), pf);
        else if (w == 16)
            few_rows_block<NR, 1, false, E>(K, A, ars, aks, b, c, ldc, accumulate, row_scale, full, pf);
        else
            few_rows_block<NR, 1, true, E>(K, A, ars, aks, b, c, ldc, accumulate, row_scale, tail_mask(w), pf);
    }
}

// M rows of A and C, 4 at a time: the first 4 carry pf (may be null), the
// others find B's rows in L1. Always inlined, as the switch it replaced at
// each caller was: left to GCC, the tokens p.v of 16 rows ran 0.94-0.96x.
template <int E, class Rows, class PF>
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline void few_rows_groups(
    int M, int N, int K, const float *A, int64_t ars, int64_t aks, Rows rows, float *C, int64_t ldc,
    bool accumulate, const float *row_scale, PF *pf) {
    for (int r = 0; r < M; r += 4, pf = nullptr) {
        const float *a = A + r * ars, *rs = row_scale ? row_scale + r : nullptr;
        float *c = C + r * ldc;
        switch (M - r < 4 ? M - r : 4) {
        case 4: few_rows_impl<4, E>(N, K, a, ars, aks, rows, c, ldc, accumulate, rs, pf); break;
        case 3: few_rows_impl<3, E>(N, K, a, ars, aks, rows, c, ldc, accumulate, rs, pf); break;
        case 2: few_rows_impl<2, E>(N, K, a, ars, aks, rows, c, ldc, accumulate, rs, pf); break;
        default: few_rows_impl<1, E>(N, K, a, ars, aks, rows, c, ldc, accumulate, rs, pf); break;
        }
    }
}

// M rows, 4 at a time (few_rows_groups); E: 0 float32, 1 bfloat16, 2
// float16. pf may be null; it takes a step per row of B in each panel (as
// gemm_bf16_eo_pf).
template <int E>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void gemm_few_rows512(
    int M, int N, int K, const float *A, int64_t ars, int64_t aks, const void *B, int64_t ldb, float *C,
    int64_t ldc, bool accumulate, const float *row_scale, const char *pf, int64_t pf_bytes) {
    spread_prefetch s(pf, pf_bytes, int64_t(N / 48 + (N % 48 + 31) / 32) * K);
    const strided_rows b{static_cast<const char *>(B), ldb * (E == 0 ? 4 : 2)};
    few_rows_groups<E>(M, N, K, A, ars, aks, b, C, ldc, accumulate, row_scale, pf ? &s : nullptr);
    if (pf) s.rest();
}

// gemm_tokens_pf (see kernels.hpp) on gemm_few_rows512, 4 rows at a time
// (the AVX2 kernel's bits): a few keys at a time, every head in turn. (More
// than 4 rows went to the AVX2 kernel: float32 decode over compact
// [B, S, H, D] rows with 8 query heads per kv head runs 1.50x faster here.)
template <int E>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void gemm_tokens512(int H, int R, int N, int D, int group,
                                                                        const float *P, const char *V, float *O,
                                                                        const float *alpha, int64_t hs,
                                                                        stream_prefetch *pf) {
    constexpr int64_t eb = E == 0 ? 4 : 2;
    const int64_t ts = int64_t(H) * D, row_bytes = D * eb;
    for (int j = 0; j < N; j += group) {
        const int n = N - j < group ? N - j : group;
        for (int h = 0; h < H; ++h) {
            pf->upto(j * ts * eb + n * (h + 1) * row_bytes);
            const strided_rows b{V + (j * ts + h * D) * eb, ts * eb};
            const float *rs = j == 0 && alpha ? alpha + h * hs : nullptr;
            few_rows_groups<E>(R, D, n, P + h * hs + j * R, 1, R, b, O + h * hs, D, true, rs,
                               static_cast<spread_prefetch *>(nullptr));
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void gemm_tokens_pf_avx512(
    int H, int R, int N, int D, int group, const float *P, const void *V, row_type e, float *O, const float *alpha,
    int64_t head_stride, const char *pf, int64_t pf_bytes, int64_t ahead) {
    if (is_8bit(e)) {
        g_avx2->gemm_tokens_pf(H, R, N, D, group, P, V, e, O, alpha, head_stride, pf, pf_bytes, ahead);
        return;
    }
    const char *v = static_cast<const char *>(V);
    const int64_t eb = e == row_type::f32 ? 4 : 2;
    stream_prefetch s(v, int64_t(N) * H * D * eb, pf, pf_bytes, ahead);
    switch (e) {
    case row_type::f32: gemm_tokens512<0>(H, R, N, D, group, P, v, O, alpha, head_stride, &s); break;
    case row_type::bf16: gemm_tokens512<1>(H, R, N, D, group, P, v, O, alpha, head_stride, &s); break;
    default: gemm_tokens512<2>(H, R, N, D, group, P, v, O, alpha, head_stride, &s); break;
    }
}

// gemm_bf16_eo_pf (see kernels.hpp): NR rows x NV vectors (NV even: pairs
// of vectors, the even and odd columns of 32) over K bf16 rows of B.
template <int NR, int NV, class Rows, class PF>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void eo_block(int K, const float *A, int64_t ars,
                                                                          int64_t aks, Rows rows, float *C,
                                                                          int64_t ldc, bool accumulate,
                                                                          const float *row_scale, PF &pf) {
    __m512 c[NR][NV];
    load_c_tile<NR, NV, false>(c, C, ldc, accumulate, row_scale, 0xFFFF);
    const __m512i odd_mask = _mm512_set1_epi32(int32_t(0xFFFF0000u));
    for (int k = 0; k < K; ++k) {
        pf.step();
        const uint16_t *bk = reinterpret_cast<const uint16_t *>(rows.at(k));
        __m512 b[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v += 2) {
            const __m512i x = _mm512_loadu_si512(bk + 16 * v);
            b[v] = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
            b[v + 1] = _mm512_castsi512_ps(_mm512_and_si512(x, odd_mask));
        }
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) {
            const __m512 a = _mm512_set1_ps(A[r * ars + k * aks]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) c[r][v] = _mm512_fmadd_ps(a, b[v], c[r][v]);
        }
    }
    store_c_tile<NR, NV, false>(c, C, ldc, 0xFFFF);
}

// Panels of 64 columns (16 accumulators), then one of 32; one prefetch step
// per row of B in each panel (a step per panel asked for 32-64 lines at once:
// bf16 decode 0.90x from DRAM on Zen 5, the miss buffers full).
template <int NR, class Rows, class PF>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void eo_rows(int N, int K, const float *A, int64_t ars,
                                                                         int64_t aks, Rows rows, float *C,
                                                                         int64_t ldc, bool accumulate,
                                                                         const float *row_scale, PF &pf) {
    int n0 = 0;
    for (; n0 + 64 <= N; n0 += 64) {
        eo_block<NR, 4>(K, A, ars, aks, rows.col(n0 * 2), C + n0, ldc, accumulate, row_scale, pf);
    }
    if (n0 < N) {
        eo_block<NR, 2>(K, A, ars, aks, rows.col(n0 * 2), C + n0, ldc, accumulate, row_scale, pf);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void gemm_bf16_eo_pf_avx512(
    int M, int N, int K, const float *A, int64_t ars, int64_t aks, const uint16_t *B, int64_t ldb, float *C,
    int64_t ldc, bool accumulate, const float *row_scale, const char *pf, int64_t pf_bytes) {
    // Rows 4 at a time; the first group carries the prefetches (the others
    // find B in L1).
    spread_prefetch s(pf, pf_bytes, int64_t((N + 63) / 64) * K), none(nullptr, 0, 1);
    const strided_rows rows{reinterpret_cast<const char *>(B), ldb * 2};
    for (int r = 0; r < M; r += 4) {
        const float *a = A + r * ars, *rs = row_scale ? row_scale + r : nullptr;
        float *c = C + r * ldc;
        spread_prefetch &sp = r == 0 ? s : none;
        switch (M - r < 4 ? M - r : 4) {
        case 4: eo_rows<4>(N, K, a, ars, aks, rows, c, ldc, accumulate, rs, sp); break;
        case 3: eo_rows<3>(N, K, a, ars, aks, rows, c, ldc, accumulate, rs, sp); break;
        case 2: eo_rows<2>(N, K, a, ars, aks, rows, c, ldc, accumulate, rs, sp); break;
        default: eo_rows<1>(N, K, a, ars, aks, rows, c, ldc, accumulate, rs, sp); break;
        }
    }
    s.rest();
}

// gemm_bf16_eo_tokens_pf (see kernels.hpp): `group` keys at a time, every
// head in turn, rows 4 at a time as gemm_bf16_eo_pf.
__attribute__((target("avx512f,avx512bw,avx512vl"))) void gemm_bf16_eo_tokens_pf_avx512(
    int H, int R, int N, int D, int group, const float *P, const uint16_t *V, float *O, const float *alpha,
    int64_t hs, const char *pf, int64_t pf_bytes, int64_t ahead) {
    const int64_t ts = int64_t(H) * D, row_bytes = int64_t(D) * 2;
    stream_prefetch s(reinterpret_cast<const char *>(V), int64_t(N) * ts * 2, pf, pf_bytes, ahead);
    spread_prefetch none(nullptr, 0, 1);
    for (int j = 0; j < N; j += group) {
        const int n = N - j < group ? N - j : group;
        for (int h = 0; h < H; ++h) {
            s.upto(j * ts * 2 + n * (h + 1) * row_bytes);
            const strided_rows b{reinterpret_cast<const char *>(V + j * ts + h * D), ts * 2};
            for (int r = 0; r < R; r += 4) {
                const float *a = P + h * hs + j * R + r;
                const float *rs = j == 0 && alpha ? alpha + h * hs + r : nullptr;
                float *c = O + h * hs + r * D;
                switch (R - r < 4 ? R - r : 4) {
                case 4: eo_rows<4>(D, n, a, 1, R, b, c, D, true, rs, none); break;
                case 3: eo_rows<3>(D, n, a, 1, R, b, c, D, true, rs, none); break;
                case 2: eo_rows<2>(D, n, a, 1, R, b, c, D, true, rs, none); break;
                default: eo_rows<1>(D, n, a, 1, R, b, c, D, true, rs, none); break;
                }
            }
        }
    }
}

// The rows of the runs (kernels.hpp, gemm_runs_pf), a pointer per key:
// row i of the base at base + i * row_bytes. Returns the keys.
inline int list_run_rows(const char *base, int64_t row_bytes, const row_run *runs, int n_runs,
                         const char *(&rows)[k_runs_max_keys]) {
    int n = 0;
    for (int i = 0; i < n_runs; ++i)
        for (int t = 0; t < runs[i].n; ++t) rows[n++] = base + (runs[i].row + t) * row_bytes;
    return n;
}

// gemm_runs_pf (see kernels.hpp): gemm_few_rows512 over the rows of the
// runs (the AVX2 kernel's bits, as gemm_pf has them), 4 rows of P at a time,
// the first group carrying the prefetches (one step per key and panel). A
// function per row type: the three inlined into gemm_runs_pf_avx512 ran
// fp16 paged decode 0.64x.
template <int E>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void few_rows_runs(int M, int D, const float *P, int64_t ldp,
                                                                        const listed_rows rows, int N, float *O,
                                                                        int64_t ldo, const float *alpha,
                                                                        ranges_prefetch *pf) {
    few_rows_groups<E>(M, D, N, P, 1, ldp, rows, O, ldo, true, alpha, pf);
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void gemm_runs_pf_avx512(
    int M, int D, const float *P, int64_t ldp, const void *V, row_type e, const row_run *runs, int n_runs, float *O,
    int64_t ldo, const float *alpha, const byte_range *pf, int n_pf) {
    const int64_t eb = e == row_type::f32 ? 4 : 2;
    const char *rows[k_runs_max_keys];
    const int N = list_run_rows(static_cast<const char *>(V), D * eb, runs, n_runs, rows);
    ranges_prefetch s(pf, n_pf, int64_t(D / 48 + (D % 48 + 31) / 32) * N);
    const listed_rows lr{rows, 0};
    switch (e) {
    case row_type::f32: few_rows_runs<0>(M, D, P, ldp, lr, N, O, ldo, alpha, &s); break;
    case row_type::bf16: few_rows_runs<1>(M, D, P, ldp, lr, N, O, ldo, alpha, &s); break;
    default: few_rows_runs<2>(M, D, P, ldp, lr, N, O, ldo, alpha, &s); break;
    }
    s.rest();
}

// gemm_bf16_eo_runs_pf (see kernels.hpp): gemm_bf16_eo_pf over the rows of
// the runs.
__attribute__((target("avx512f,avx512bw,avx512vl"))) void gemm_bf16_eo_runs_pf_avx512(
    int M, int D, const float *P, int64_t ldp, const uint16_t *V, const row_run *runs, int n_runs, float *O,
    int64_t ldo, const float *alpha, const byte_range *pf, int n_pf) {
    const char *rows[k_runs_max_keys];
    const int N = list_run_rows(reinterpret_cast<const char *>(V), int64_t(D) * 2, runs, n_runs, rows);
    ranges_prefetch s(pf, n_pf, int64_t((D + 63) / 64) * N), none(nullptr, 0, 1);
    const listed_rows lr{rows, 0};
    for (int r = 0; r < M; r += 4) {
        const float *a = P + r, *rs = alpha ? alpha + r : nullptr;
        float *c = O + r * ldo;
        ranges_prefetch &sp = r == 0 ? s : none;  // the first rows carry the prefetches
        switch (M - r < 4 ? M - r : 4) {
        case 4: eo_rows<4>(D, N, a, 1, ldp, lr, c, ldo, true, rs, sp); break;
        case 3: eo_rows<3>(D, N, a, 1, ldp, lr, c, ldo, true, rs, sp); break;
        case 2: eo_rows<2>(D, N, a, 1, ldp, lr, c, ldo, true, rs, sp); break;
        default: eo_rows<1>(D, N, a, 1, ldp, lr, c, ldo, true, rs, sp); break;
        }
    }
    s.rest();
}

// The 16-bit p.v of decode over dense K/V (gemm_half): 512-bit for 1..4 rows
// where wide_decode, else the AVX2 set's.
__attribute__((target("avx512f"))) void gemm_half_shared(int M, int N, int K, const float *A, int64_t ars,
                                                         int64_t aks, const uint16_t *B, int64_t ldb, bool is_bf16,
                                                         float *C, int64_t ldc, bool accumulate,
                                                         const float *row_scale) {
    if (wide_decode && M >= 1 && M <= 4) {
        if (is_bf16)
            gemm_few_rows512<1>(M, N, K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale, nullptr, 0);
        else
            gemm_few_rows512<2>(M, N, K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale, nullptr, 0);
        return;
    }
    g_avx2->gemm_half(M, N, K, A, ars, aks, B, ldb, is_bf16, C, ldc, accumulate, row_scale);
}

// Products with at least this many rows of A (prefill tiles: a tile's keys
// against its query rows) run on the AVX-512 micro-kernels; fewer rows (decode:
// the query heads of one KV head) on the AVX2 set's, so that gemm and gemm_pf
// agree bit for bit, as the kernels contract asks.
constexpr int k_avx512_min_rows = 16;

__attribute__((target("avx512f"))) void gemm_shared(int M, int N, int K, const float *A, int64_t ars, int64_t aks,
                                                    const float *B, int64_t ldb, float *C, int64_t ldc,
                                                    bool accumulate, const float *row_scale) {
    if (wide_decode_f32 && M >= 1 && M <= 4)
        gemm_few_rows512<0>(M, N, K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale, nullptr, 0);
    else if (M < k_avx512_min_rows)
        g_avx2->gemm(M, N, K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale);
    else
        gemm_avx512(M, N, K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale);
}

// Decode's softmax for R = 1, 2 or 4 rows (the query heads of one KV head):
// the tile's N * R scores are contiguous, so whole vectors of 16 / R keys x R
// rows go through exp512 (half the vectors of the AVX2 set's softmax_packed)
// and are folded per row at the end: the row maxima and sums over lanes r,
// r + R, ... (halves, then 128-bit lanes, then pairs, then neighbours).
template <bool Max>
LLMKIT_AVX512 __m512 fold_op(__m512 a, __m512 b) {
    return Max ? _mm512_max_ps(a, b) : _mm512_add_ps(a, b);
}
template <bool Max>
LLMKIT_AVX512 __m512 fold16(__m512 x, int R) {
    x = fold_op<Max>(x, _mm512_shuffle_f32x4(x, x, 0x4E));
    x = fold_op<Max>(x, _mm512_shuffle_f32x4(x, x, 0xB1));
    if (R <= 2) x = fold_op<Max>(x, _mm512_permute_ps(x, 0x4E));
    if (R == 1) x = fold_op<Max>(x, _mm512_permute_ps(x, 0xB1));
    return x;
}

__attribute__((target("avx512f"))) void softmax_packed512(float *ST, int N, int R, float *m, float *l, float *alpha) {
    const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    alignas(64) float mp[16], lp[16];
    for (int i = 0; i < 16; ++i) mp[i] = m[i % R], lp[i] = l[i % R];
    const __m512 m_old = _mm512_load_ps(mp);
    const int total = N * R, nv = total / 16, rest = total - 16 * nv;
    const __mmask16 rk = tail_mask(rest);
    __m512 mx = m_old;
    for (int v = 0; v < nv; ++v) mx = _mm512_max_ps(mx, _mm512_loadu_ps(ST + 16 * v));
    if (rest) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(ninf, rk, ST + 16 * nv));
    mx = fold16<true>(mx, R);
    // Rows that have seen no visible key yet keep m = -inf: subtract 0 instead,
    // so their p = exp(-inf) = 0 and alpha = 1.
    const __mmask16 dead = _mm512_cmp_ps_mask(mx, ninf, _CMP_EQ_OQ);
    const __m512 sub = _mm512_mask_mov_ps(mx, dead, _mm512_setzero_ps());
    const __m512 a = _mm512_mask_mov_ps(exp512(_mm512_sub_ps(m_old, sub)), dead, _mm512_set1_ps(1.0f));
    __m512 sum = _mm512_setzero_ps();
    for (int v = 0; v < nv; ++v) {
        const __m512 p = exp512(_mm512_sub_ps(_mm512_loadu_ps(ST + 16 * v), sub));
        _mm512_storeu_ps(ST + 16 * v, p);
        sum = _mm512_add_ps(sum, p);
    }
    if (rest) {
        const __m512 p = exp512(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, rk, ST + 16 * nv), sub));
        _mm512_mask_storeu_ps(ST + 16 * nv, rk, p);
        sum = _mm512_add_ps(sum, p);
    }
    sum = fold16<false>(sum, R);
    const __mmask16 rows = tail_mask(R);
    _mm512_mask_storeu_ps(l, rows, _mm512_fmadd_ps(_mm512_load_ps(lp), a, sum));
    _mm512_mask_storeu_ps(m, rows, mx);
    _mm512_mask_storeu_ps(alpha, rows, a);
}

// softmax_tile's AVX-512 loop puts 16 query rows in a vector; decode has a
// few (the query heads of one KV head): there the AVX2 loop, vectorised over
// the keys, wastes no lanes, and where wide_decode the same in 512 bits
// (softmax_packed512) for 1, 2 or 4 rows.
__attribute__((target("avx512f"))) void softmax_shared(float *ST, int N, int R, float *m, float *l, float *alpha) {
    if (wide_decode && (R == 1 || R == 2 || R == 4))
        softmax_packed512(ST, N, R, m, l, alpha);
    else if (R < k_avx512_min_rows)
        g_avx2->softmax_tile(ST, N, R, m, l, alpha);
    else
        softmax_tile_avx512(ST, N, R, m, l, alpha);
}

// gemm_pf with the bits of gemm_shared (float32 and int8 B; int8 as raw
// values, which the plain path converts with unit scales and hands to gemm)
// and of the AVX2 gemm_half (16-bit B, which this set takes from AVX2).
__attribute__((target("avx512f"))) void gemm_pf_shared(int M, int N, int K, const float *A, int64_t ars,
                                                       int64_t aks, const void *B, int64_t ldb, row_type e, float *C,
                                                       int64_t ldc, bool accumulate, const float *row_scale,
                                                       const char *pf, int64_t pf_bytes) {
    // (16-bit rows for more than 4 rows of P too, 4 at a time: through the
    // AVX2 kernel fp16 decode of 32 query heads over one kv head ran 0.81x
    // as fast as on the gemms, on this one 1.04-1.15x.)
    if (M >= 1 && (e == row_type::f32 ? wide_decode_f32 && M <= 4 : wide_decode && !is_8bit(e))) {
        if (e == row_type::f32)
            gemm_few_rows512<0>(M, N, K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale, pf, pf_bytes);
        else if (e == row_type::bf16)
            gemm_few_rows512<1>(M, N, K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale, pf, pf_bytes);
        else
            gemm_few_rows512<2>(M, N, K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale, pf, pf_bytes);
        return;
    }
    if (M < k_avx512_min_rows || e == row_type::bf16 || e == row_type::f16 || e == row_type::e4m3 ||
        e == row_type::e5m2) {  // (FP8 rows: the AVX2 kernels' conversion)
        g_avx2->gemm_pf(M, N, K, A, ars, aks, B, ldb, e, C, ldc, accumulate, row_scale, pf, pf_bytes);
        return;
    }
    if (e == row_type::f32) {
        gemm_rows_any(M, N, K, A, ars, aks, static_cast<const float *>(B), ldb, C, ldc, accumulate, row_scale, pf,
                      pf_bytes);
        return;
    }
    // int8 rows: converted a chunk of K at a time; the sums continue from
    // chunk to chunk exactly as in one call (C stored, then reloaded times 1).
    constexpr int chunk = 32, max_n = 256;
    alignas(64) float buf[chunk * max_n];
    const int8_t *Bi = static_cast<const int8_t *>(B);
    if (K == 0) {
        gemm_rows_any(M, N, 0, A, ars, aks, buf, 0, C, ldc, accumulate, row_scale, pf, pf_bytes);
        return;
    }
    const int chunks = (K + chunk - 1) / chunk;
    for (int c = 0; c < chunks; ++c) {
        const int k0 = c * chunk, kn = K - k0 < chunk ? K - k0 : chunk;
        const int64_t pf_from = pf_bytes * c / chunks, pf_to = pf_bytes * (c + 1) / chunks;
        for (int n0 = 0; n0 < N; n0 += max_n) {
            const int nn = N - n0 < max_n ? N - n0 : max_n;
            const float one = 1.0f;
            for (int j = 0; j < kn; ++j) i8_to_f32_avx512(buf + j * nn, Bi + (k0 + j) * ldb + n0, 1, nn, &one);
            const bool first = c == 0;
            gemm_rows_any(M, nn, kn, A + k0 * aks, ars, aks, buf, nn, C + n0, ldc, first ? accumulate : true,
                          first ? row_scale : nullptr, pf && n0 == 0 ? pf + pf_from : nullptr, pf_to - pf_from);
        }
    }
}

// ---------------------------------------------------------------- AVX512-BF16
#define LLMKIT_AVX512BF16 __attribute__((target("avx512f,avx512bf16"))) inline

// A block of NR rows x NV vectors of C over P pairs; the last vector is masked with `last`.
template <int NR, int NV, bool Two>
LLMKIT_AVX512BF16 void gemm_bf16_block(int P, const uint32_t *A, const uint32_t *A2, int64_t ars, int64_t aps,
                                       const uint32_t *B, int64_t ldb, float *C, int64_t ldc, bool accumulate,
                                       const float *row_scale, __mmask16 last) {
    __m512 c[NR][NV];
    load_c_tile<NR, NV, true>(c, C, ldc, accumulate, row_scale, last);
    for (int p = 0; p < P; ++p) {
        __m512bh b[NV];
        const uint32_t *bp = B + p * ldb;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            b[v] = (__m512bh)(v == NV - 1 ? _mm512_maskz_loadu_epi32(last, bp + 16 * v)
                                          : _mm512_loadu_si512(bp + 16 * v));
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32(int(A[r * ars + p * aps]));
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) c[r][v] = _mm512_dpbf16_ps(c[r][v], a, b[v]);
            if (Two) {
                const __m512bh a2 = (__m512bh)_mm512_set1_epi32(int(A2[r * ars + p * aps]));
#pragma GCC unroll 4
                for (int v = 0; v < NV; ++v) c[r][v] = _mm512_dpbf16_ps(c[r][v], a2, b[v]);
            }
        }
    }
    store_c_tile<NR, NV, true>(c, C, ldc, last);
}

// One column chunk of C (NV vectors) for all M rows, 4 rows at a time.
template <int NV, bool Two>
LLMKIT_AVX512BF16 void gemm_bf16_chunk(int M, int P, const uint32_t *A, const uint32_t *A2, int64_t ars, int64_t aps,
                                       const uint32_t *B, int64_t ldb, float *C, int64_t ldc, bool accumulate,
                                       const float *row_scale, __mmask16 last) {
    for (int r = 0; r < M; r += 4) {
        const uint32_t *Ar = A + r * ars, *A2r = Two ? A2 + r * ars : nullptr;
        const float *rs = row_scale ? row_scale + r : nullptr;
        float *Cr = C + r * ldc;
        switch (M - r < 4 ? M - r : 4) {
        case 4: gemm_bf16_block<4, NV, Two>(P, Ar, A2r, ars, aps, B, ldb, Cr, ldc, accumulate, rs, last); break;
        case 3: gemm_bf16_block<3, NV, Two>(P, Ar, A2r, ars, aps, B, ldb, Cr, ldc, accumulate, rs, last); break;
        case 2: gemm_bf16_block<2, NV, Two>(P, Ar, A2r, ars, aps, B, ldb, Cr, ldc, accumulate, rs, last); break;
        default: gemm_bf16_block<1, NV, Two>(P, Ar, A2r, ars, aps, B, ldb, Cr, ldc, accumulate, rs, last); break;
        }
    }
}

// A chunk of 64 columns of C at a time, so that the chunk of B stays in L1
// while the groups of rows walk down it (see gemm_rows_any).
template <bool Two>
__attribute__((target("avx512f,avx512bf16"))) void gemm_bf16_all(int M, int N, int P, const uint32_t *A,
                                                                  const uint32_t *A2, int64_t ars, int64_t aps,
                                                                  const uint32_t *B, int64_t ldb, float *C,
                                                                  int64_t ldc, bool accumulate, const float *row_scale) {
    for (int n0 = 0; n0 < N; n0 += 64) {
        const int w = N - n0 < 64 ? N - n0 : 64;
        const int nv = (w + 15) / 16;
        const __mmask16 last = tail_mask(w - 16 * (nv - 1));
        const uint32_t *Bn = B + n0;
        float *Cn = C + n0;
        switch (nv) {
        case 1: gemm_bf16_chunk<1, Two>(M, P, A, A2, ars, aps, Bn, ldb, Cn, ldc, accumulate, row_scale, last); break;
        case 2: gemm_bf16_chunk<2, Two>(M, P, A, A2, ars, aps, Bn, ldb, Cn, ldc, accumulate, row_scale, last); break;
        case 3: gemm_bf16_chunk<3, Two>(M, P, A, A2, ars, aps, Bn, ldb, Cn, ldc, accumulate, row_scale, last); break;
        default: gemm_bf16_chunk<4, Two>(M, P, A, A2, ars, aps, Bn, ldb, Cn, ldc, accumulate, row_scale, last); break;
        }
    }
}

void gemm_bf16_avx512(int M, int N, int P, const uint32_t *A, const uint32_t *A2, int64_t ars, int64_t aps,
                      const uint32_t *B, int64_t ldb, float *C, int64_t ldc, bool accumulate, const float *row_scale) {
    if (A2)
        gemm_bf16_all<true>(M, N, P, A, A2, ars, aps, B, ldb, C, ldc, accumulate, row_scale);
    else
        gemm_bf16_all<false>(M, N, P, A, A2, ars, aps, B, ldb, C, ldc, accumulate, row_scale);
}

// 16 floats as bf16 (round to nearest even), widened to the low halves of 32-bit lanes.
LLMKIT_AVX512BF16 __m512i bf16_lanes(__m512 x) {
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x));
}
// The float a bf16 in the low half of each lane stands for.
LLMKIT_AVX512BF16 __m512 bf16_value(__m512i lanes) { return _mm512_castsi512_ps(_mm512_slli_epi32(lanes, 16)); }

__attribute__((target("avx512f,avx512bf16"))) void pack_bf16_pairs_avx512(uint32_t *hi, uint32_t *lo, const float *a,
                                                                           const float *b, int n) {
    for (int c = 0; c < n; c += 16) {
        const __mmask16 mk = tail_mask(n - c);
        const __m512 fa = _mm512_maskz_loadu_ps(mk, a + c);
        const __m512 fb = b ? _mm512_maskz_loadu_ps(mk, b + c) : _mm512_setzero_ps();
        const __m512i ha = bf16_lanes(fa), hb = bf16_lanes(fb);
        _mm512_mask_storeu_epi32(hi + c, mk, _mm512_or_si512(ha, _mm512_slli_epi32(hb, 16)));
        if (lo) {
            const __m512i la = bf16_lanes(_mm512_sub_ps(fa, bf16_value(ha)));
            const __m512i lb = bf16_lanes(_mm512_sub_ps(fb, bf16_value(hb)));
            _mm512_mask_storeu_epi32(lo + c, mk, _mm512_or_si512(la, _mm512_slli_epi32(lb, 16)));
        }
    }
}

// The 16 scores of NJ (1..4) keys x 4 rows, acc[j][r] 16 lanes each, times
// `scale` into ST (key-major, R apart; rows r >= NR not stored): each lane set
// folded to 8 (low half + high half), then the 4 rows of a key reduced
// together by the horizontal-add tree of the AVX2 set's dots, so every key
// and row takes the same tree whatever NR, NJ or its slot.
template <int NR, int NJ>
LLMKIT_AVX512BF16 void store_scores4(const __m512 (&acc)[NJ][NR], int R, float scale, float *ST) {
    const __m128 sc = _mm_set1_ps(scale);
#pragma GCC unroll 4
    for (int j = 0; j < NJ; ++j) {
        __m256 h[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r)
            h[r] = r < NR ? _mm256_add_ps(_mm512_castps512_ps256(acc[j][r]),
                                          _mm512_castps512_ps256(_mm512_shuffle_f32x4(acc[j][r], acc[j][r], 0xEE)))
                          : _mm256_setzero_ps();
        const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
        const __m128 s = _mm_mul_ps(_mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)), sc);
        if (NR == 4) {
            _mm_storeu_ps(ST + j * R, s);
        } else {
            alignas(16) float v[4];
            _mm_store_ps(v, s);
            for (int r = 0; r < NR; ++r) ST[j * R + r] = v[r];
        }
    }
}

// The same with the 16 sums reduced together, in 45 operations (30 of them
// shuffles) instead of 4 x 20 (44 shuffles): lanes (l, l + 2) of each
// 128-bit block added, then (l, l + 1), then blocks (b, b + 2), then (b,
// b + 1). Addition commutes, so every accumulator's sum takes the same
// order in any slot, and the result comes out key-major, row-minor: ST's
// order. Missing keys or rows (NJ or NR < 4) are zeros.
// (Always inlined: out of line, its 16 accumulators go through memory, and
// GCC dropped it out of dots512_block once the file grew: 0.9x decode.)
template <int NR, int NJ>
LLMKIT_AVX512 __attribute__((always_inline)) void store_scores16(const __m512 (&acc)[NJ][NR], int R, float scale,
                                                                  float *ST) {
    __m512 y[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
        if (j >= NJ) {
            y[j] = _mm512_setzero_ps();
            continue;
        }
        const __m512 zero = _mm512_setzero_ps();
        const __m512 a0 = acc[j][0], a1 = NR > 1 ? acc[j][NR > 1 ? 1 : 0] : zero,
                     a2 = NR > 2 ? acc[j][NR > 2 ? 2 : 0] : zero, a3 = NR > 3 ? acc[j][NR > 3 ? 3 : 0] : zero;
        const __m512 x01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
        const __m512 x23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
        y[j] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(x01), _mm512_castps_pd(x23))),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(x01), _mm512_castps_pd(x23))));
    }
    const __m512 w = _mm512_add_ps(_mm512_shuffle_f32x4(y[0], y[1], 0x44), _mm512_shuffle_f32x4(y[0], y[1], 0xEE));
    const __m512 z = _mm512_add_ps(_mm512_shuffle_f32x4(y[2], y[3], 0x44), _mm512_shuffle_f32x4(y[2], y[3], 0xEE));
    const __m512 s = _mm512_mul_ps(
        _mm512_add_ps(_mm512_shuffle_f32x4(w, z, 0x88), _mm512_shuffle_f32x4(w, z, 0xDD)), _mm512_set1_ps(scale));
    if (NR == 4 && R == 4) {
        _mm512_mask_storeu_ps(ST, __mmask16((1u << (4 * NJ)) - 1u), s);
    } else {
        alignas(64) float v[16];
        _mm512_store_ps(v, s);
        for (int j = 0; j < NJ; ++j)
            for (int r = 0; r < NR; ++r) ST[j * R + r] = v[4 * j + r];
    }
}

// Decode's scores on bf16 pairs (dots_bf16_pf on AMD): NR (1..4) query rows x
// NJ keys, 16 pairs of D per vdpbf16ps (a masked last step for D % 32; Full:
// D a multiple of 32, plain loads), then store_scores4. Plain loads: 3.4-3.5
// against 3.8 ns per key and 4 rows in L1 (Zen 5), 1.00-1.02x end to end.
template <int NR, int NJ, bool Full>
LLMKIT_AVX512BF16 void dots_bf16_block(int R, int D, const uint16_t *Q, int64_t ldq, const uint16_t *K, int64_t ldk,
                                       float scale, float *ST) {
    __m512 acc[NJ][NR];
#pragma GCC unroll 4
    for (int j = 0; j < NJ; ++j)
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) acc[j][r] = _mm512_setzero_ps();
    for (int d = 0; d < D; d += 32) {
        const __mmask16 mk = Full ? __mmask16(0xFFFF) : tail_mask((D - d) / 2);  // pairs left (D is even)
        __m512bh q[NR];
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r)
            q[r] = (__m512bh)(Full ? _mm512_loadu_si512(Q + r * ldq + d) : _mm512_maskz_loadu_epi32(mk, Q + r * ldq + d));
#pragma GCC unroll 4
        for (int j = 0; j < NJ; ++j) {
            const __m512bh k =
                (__m512bh)(Full ? _mm512_loadu_si512(K + j * ldk + d) : _mm512_maskz_loadu_epi32(mk, K + j * ldk + d));
#pragma GCC unroll 4
            for (int r = 0; r < NR; ++r) acc[j][r] = _mm512_dpbf16_ps(acc[j][r], q[r], k);
        }
    }
    store_scores4<NR, NJ>(acc, R, scale, ST);
}

// The same scores with float32 FMAs (dots_bf16_pf on Intel), where a
// vdpbf16ps (32 products) takes two cycles of the FMA port and an FMA (16)
// one issue on either of two ports: measured 0.76 ns against 0.18 ns per
// instruction (Emerald Rapids), so FMAs multiply twice as fast. A bf16 is
// the high half of its float32, so the 16 pairs of a 64-byte step widen in
// two operations: the even elements shifted up, the odd ones masked. Qf holds
// the query rows widened so once per call (see widen_pairs): each 32 of D as
// 16 even then 16 odd floats. Products of bf16 values are exact in float32.
template <int NR, int NJ, bool Full>
LLMKIT_AVX512BF16 void dots_bf16_fma_block(int R, int D, const float *Qf, int64_t ldq, const uint16_t *K,
                                           int64_t ldk, float scale, float *ST) {
    __m512 acc[NJ][NR];
#pragma GCC unroll 4
    for (int j = 0; j < NJ; ++j)
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) acc[j][r] = _mm512_setzero_ps();
    const __m512i odd_mask = _mm512_set1_epi32(int32_t(0xFFFF0000u));
    for (int d = 0; d < D; d += 32) {
        const __mmask16 mk = Full ? __mmask16(0xFFFF) : tail_mask((D - d) / 2);  // pairs left (D even); Qf is zero past D
#pragma GCC unroll 4
        for (int j = 0; j < NJ; ++j) {
            const __m512i k = Full ? _mm512_loadu_si512(K + j * ldk + d) : _mm512_maskz_loadu_epi32(mk, K + j * ldk + d);
            const __m512 ke = _mm512_castsi512_ps(_mm512_slli_epi32(k, 16));
            const __m512 ko = _mm512_castsi512_ps(_mm512_and_si512(k, odd_mask));
#pragma GCC unroll 4
            for (int r = 0; r < NR; ++r) {
                acc[j][r] = _mm512_fmadd_ps(_mm512_loadu_ps(Qf + r * ldq + d), ke, acc[j][r]);
                acc[j][r] = _mm512_fmadd_ps(_mm512_loadu_ps(Qf + r * ldq + d + 16), ko, acc[j][r]);
            }
        }
    }
    store_scores16<NR, NJ>(acc, R, scale, ST);
}

// NR rows x NJ keys of the scores, on pairs or on FMAs (as Q is).
template <int NR, int NJ, bool FMA, bool Full, typename QT>
LLMKIT_AVX512BF16 void dots_bf16_any(int R, int D, const QT *Q, int64_t ldq, const uint16_t *K, int64_t ldk,
                                     float scale, float *ST) {
    if constexpr (FMA) dots_bf16_fma_block<NR, NJ, Full>(R, D, Q, ldq, K, ldk, scale, ST);
    else dots_bf16_block<NR, NJ, Full>(R, D, Q, ldq, K, ldk, scale, ST);
}

// Keys 4 at a time (16 accumulators), then one by one; pf (may be null) takes
// one step per block of keys. Q is the bf16 rows (pairs) or the widened
// float32 rows (FMA), as Block reads them.
template <int NR, bool FMA, bool Full, typename QT>
LLMKIT_AVX512BF16 void dots_bf16_rows(int R, int N, int D, const QT *Q, int64_t ldq, const uint16_t *K, int64_t ldk,
                                      float scale, float *ST, spread_prefetch *pf) {
    int j = 0;
    for (; j + 4 <= N; j += 4) {
        if (pf) pf->step();
        dots_bf16_any<NR, 4, FMA, Full>(R, D, Q, ldq, K + j * ldk, ldk, scale, ST + j * R);
    }
    for (; j < N; ++j) {
        if (pf) pf->step();
        dots_bf16_any<NR, 1, FMA, Full>(R, D, Q, ldq, K + j * ldk, ldk, scale, ST + j * R);
    }
}

// The rows in groups of 4: the first group streams K from memory and carries
// the prefetches; the others find K in L1.
template <bool FMA, bool Full, typename QT>
LLMKIT_AVX512BF16 void dots_bf16_groups(int R, int N, int D, const QT *Q, int64_t ldq, const uint16_t *K,
                                        int64_t ldk, float scale, float *ST, const char *pf, int64_t pf_bytes) {
    spread_prefetch s(pf, pf_bytes, N / 4 + N % 4);
    spread_prefetch *sp = &s;
    int r = 0;
    for (; r + 4 <= R; r += 4, sp = nullptr)
        dots_bf16_rows<4, FMA, Full>(R, N, D, Q + r * ldq, ldq, K, ldk, scale, ST + r, sp);
    switch (R - r) {
    case 3: dots_bf16_rows<3, FMA, Full>(R, N, D, Q + r * ldq, ldq, K, ldk, scale, ST + r, sp); break;
    case 2: dots_bf16_rows<2, FMA, Full>(R, N, D, Q + r * ldq, ldq, K, ldk, scale, ST + r, sp); break;
    case 1: dots_bf16_rows<1, FMA, Full>(R, N, D, Q + r * ldq, ldq, K, ldk, scale, ST + r, sp); break;
    default: break;
    }
    s.rest();
}

__attribute__((target("avx512f,avx512bf16"))) void dots_bf16_pf_avx512(int R, int N, int D, const uint16_t *Q,
                                                                        int64_t ldq, const uint16_t *K, int64_t ldk,
                                                                        float scale, float *ST, const char *pf,
                                                                        int64_t pf_bytes) {
    if (D % 32 == 0)
        dots_bf16_groups<false, true>(R, N, D, Q, ldq, K, ldk, scale, ST, pf, pf_bytes);
    else
        dots_bf16_groups<false, false>(R, N, D, Q, ldq, K, ldk, scale, ST, pf, pf_bytes);
}

// The R bf16 rows of Q widened for dots_bf16_fma_block: row r at Qf + r * Dp
// (Dp = D rounded up to 32), each 32 of D as 16 even then 16 odd floats,
// zeros past D.
LLMKIT_AVX512BF16 void widen_pairs(int R, int D, int Dp, const uint16_t *Q, int64_t ldq, float *Qf) {
    const __m512i odd_mask = _mm512_set1_epi32(int32_t(0xFFFF0000u));
    for (int r = 0; r < R; ++r)
        for (int d = 0; d < Dp; d += 32) {
            const __m512i q = _mm512_maskz_loadu_epi32(tail_mask((D - d) / 2), Q + r * ldq + d);
            _mm512_store_ps(Qf + r * Dp + d, _mm512_castsi512_ps(_mm512_slli_epi32(q, 16)));
            _mm512_store_ps(Qf + r * Dp + d + 16, _mm512_castsi512_ps(_mm512_and_si512(q, odd_mask)));
        }
}

// Decode's rows are few (R < 16: the query heads of a kv head, or a few
// tokens of them) and head dims mostly at most 256, so the widened rows fit a
// 16 KiB array on the stack; other shapes (head dims up to 576, for
// DeepSeek's absorbed latent attention, dense or cached) take the pairs.
// Head dims that are a multiple of 32 (64, 96, 128, 256) read K with plain
// loads: the masked loads of the general path (a mask built per step) cost
// 13.4 against 11.4 ns per key and 4 query rows in L1 (Emerald Rapids).
__attribute__((target("avx512f,avx512bf16"))) void dots_bf16_fma_avx512(int R, int N, int D, const uint16_t *Q,
                                                                         int64_t ldq, const uint16_t *K, int64_t ldk,
                                                                         float scale, float *ST, const char *pf,
                                                                         int64_t pf_bytes) {
    constexpr int k_max_rows = 16, k_max_d = 256;
    if (R > k_max_rows || D > k_max_d) {
        dots_bf16_groups<false, false>(R, N, D, Q, ldq, K, ldk, scale, ST, pf, pf_bytes);
        return;
    }
    alignas(64) float Qf[k_max_rows * k_max_d];
    const int Dp = (D + 31) / 32 * 32;
    widen_pairs(R, D, Dp, Q, ldq, Qf);
    if (D % 32 == 0)
        dots_bf16_groups<true, true>(R, N, D, static_cast<const float *>(Qf), Dp, K, ldk, scale, ST, pf, pf_bytes);
    else
        dots_bf16_groups<true, false>(R, N, D, static_cast<const float *>(Qf), Dp, K, ldk, scale, ST, pf, pf_bytes);
}

// dots_bf16_tokens_pf (see kernels.hpp): 4 keys at a time (then one by one),
// every head in turn, each head's rows 4 at a time, as dots_bf16_pf (FMA:
// dots_bf16_fma_avx512's, on the query rows widened once per call).
template <int NJ, bool FMA, bool Full, typename QT>
LLMKIT_AVX512BF16 void dots_bf16_keys(int R, int D, const QT *Q, int64_t ldq, const uint16_t *K, int64_t ldk,
                                      float scale, float *ST) {
    int r = 0;
    for (; r + 4 <= R; r += 4) dots_bf16_any<4, NJ, FMA, Full>(R, D, Q + r * ldq, ldq, K, ldk, scale, ST + r);
    switch (R - r) {
    case 3: dots_bf16_any<3, NJ, FMA, Full>(R, D, Q + r * ldq, ldq, K, ldk, scale, ST + r); break;
    case 2: dots_bf16_any<2, NJ, FMA, Full>(R, D, Q + r * ldq, ldq, K, ldk, scale, ST + r); break;
    case 1: dots_bf16_any<1, NJ, FMA, Full>(R, D, Q + r * ldq, ldq, K, ldk, scale, ST + r); break;
    default: break;
    }
}

template <bool FMA, bool Full, typename QT>
LLMKIT_AVX512BF16 void dots_bf16_tokens(int H, int R, int N, int D, const QT *Q, int64_t qhs, int64_t ldq,
                                        const uint16_t *K, float scale, float *ST, int64_t hs, stream_prefetch &s) {
    const int64_t ts = int64_t(H) * D, row_bytes = int64_t(D) * 2;
    int j = 0;
    for (; j + 4 <= N; j += 4)
        for (int h = 0; h < H; ++h) {
            s.upto(j * ts * 2 + 4 * (h + 1) * row_bytes);
            dots_bf16_keys<4, FMA, Full>(R, D, Q + h * qhs, ldq, K + j * ts + h * D, ts, scale, ST + h * hs + j * R);
        }
    for (; j < N; ++j)
        for (int h = 0; h < H; ++h) {
            s.upto(j * ts * 2 + (h + 1) * row_bytes);
            dots_bf16_keys<1, FMA, Full>(R, D, Q + h * qhs, ldq, K + j * ts + h * D, ts, scale, ST + h * hs + j * R);
        }
}

template <bool FMA>
__attribute__((target("avx512f,avx512bf16"))) void dots_bf16_tokens_impl(int H, int R, int N, int D, const uint16_t *Q,
                                                                          const uint16_t *K, float scale, float *ST,
                                                                          int64_t hs, const char *pf, int64_t pf_bytes,
                                                                          int64_t ahead) {
    stream_prefetch s(reinterpret_cast<const char *>(K), int64_t(N) * H * D * 2, pf, pf_bytes, ahead);
    const int64_t qhs = 2 * hs;  // head h's bf16 queries at Q + 2 * h * hs
    if constexpr (FMA) {
        // Every head's query rows widened (see widen_pairs), 64-byte aligned.
        thread_local std::vector<float> buf;
        const int Dp = (D + 31) / 32 * 32;
        buf.resize(size_t(H) * R * Dp + 16);
        float *Qf = reinterpret_cast<float *>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
        for (int h = 0; h < H; ++h) widen_pairs(R, D, Dp, Q + h * qhs, D, Qf + int64_t(h) * R * Dp);
        if (D % 32 == 0)
            dots_bf16_tokens<true, true>(H, R, N, D, Qf, int64_t(R) * Dp, Dp, K, scale, ST, hs, s);
        else
            dots_bf16_tokens<true, false>(H, R, N, D, Qf, int64_t(R) * Dp, Dp, K, scale, ST, hs, s);
    } else {
        if (D % 32 == 0)
            dots_bf16_tokens<false, true>(H, R, N, D, Q, qhs, D, K, scale, ST, hs, s);
        else
            dots_bf16_tokens<false, false>(H, R, N, D, Q, qhs, D, K, scale, ST, hs, s);
    }
}

__attribute__((target("avx512f,avx512bf16"))) void dots_bf16_tokens_pf_avx512(int H, int R, int N, int D,
                                                                               const uint16_t *Q, const uint16_t *K,
                                                                               float scale, float *ST, int64_t hs,
                                                                               const char *pf, int64_t pf_bytes,
                                                                               int64_t ahead) {
    dots_bf16_tokens_impl<false>(H, R, N, D, Q, K, scale, ST, hs, pf, pf_bytes, ahead);
}

__attribute__((target("avx512f,avx512bf16"))) void dots_bf16_fma_tokens_avx512(int H, int R, int N, int D,
                                                                                const uint16_t *Q, const uint16_t *K,
                                                                                float scale, float *ST, int64_t hs,
                                                                                const char *pf, int64_t pf_bytes,
                                                                                int64_t ahead) {
    dots_bf16_tokens_impl<true>(H, R, N, D, Q, K, scale, ST, hs, pf, pf_bytes, ahead);
}

// ------------------------------------------------ 512-bit decode scores (Zen 5)
// dots, dots_half, dots_pf and the tokens' scores in 512-bit registers, the
// AVX-512 set's on Zen 5 (wide_decode but not wide_decode_f32): NR (1..4)
// query rows x NJ (1..4) keys, 16 elements of D per FMA (a masked last
// step), the 16 sums of a key's rows reduced by store_scores16, so a key's
// score does not depend on the keys or rows beside it. Their own bits, the
// same in all four kernels (the AVX2 set's lanes take D 8 at a time, so its
// sums differ). An int8 key's sums are multiplied by its row scale once, at
// the end. Against the AVX2 scores on Zen 5 (2 threads, 8 kv heads of 128):
// float32 decode from the caches 1.14-1.17x faster (caches and dense K/V,
// batch 1 and 2, 1-2k keys), fp16 1.10-1.21x, batch 16 with 1k 1.07x; from
// memory at batch 16 with 8k 0.96-1.0x (3-key blocks measured the same there
// and 1.05x instead of 1.17x from the caches).
#define LLMKIT_AVX512W __attribute__((target("avx512f,avx512bw,avx512vl"))) inline

// 16 elements of type E (0 float32, 1 bf16, 2 fp16, 3 int8 as its raw
// values) as float32; masked: only the lanes of m, zeros elsewhere.
template <int E>
LLMKIT_AVX512W __m512 load16_any(const char *p, __mmask16 m, bool masked) {
    if constexpr (E == 3) {
        const __m128i b = masked ? _mm_maskz_loadu_epi8(m, p) : _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
    } else {
        return load16_row<E>(p, m, masked);
    }
}

template <int NR, int NJ, int E>
LLMKIT_AVX512W void dots512_block(int R, int D, const float *Q, int64_t ldq, const char *K, int64_t ldk, float *ST,
                                  const float *sc) {
    constexpr int64_t eb = E == 0 ? 4 : E == 3 ? 1 : 2;
    __m512 acc[NJ][NR];
#pragma GCC unroll 4
    for (int j = 0; j < NJ; ++j)
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) acc[j][r] = _mm512_setzero_ps();
    int d = 0;
    for (; d + 16 <= D; d += 16) {
        __m512 q[NR];
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) q[r] = _mm512_loadu_ps(Q + r * ldq + d);
#pragma GCC unroll 4
        for (int j = 0; j < NJ; ++j) {
            const __m512 k = load16_any<E>(K + (j * ldk + d) * eb, 0xFFFF, false);
#pragma GCC unroll 4
            for (int r = 0; r < NR; ++r) acc[j][r] = _mm512_fmadd_ps(q[r], k, acc[j][r]);
        }
    }
    if (d < D) {
        const __mmask16 mk = tail_mask(D - d);
        __m512 q[NR];
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) q[r] = _mm512_maskz_loadu_ps(mk, Q + r * ldq + d);
#pragma GCC unroll 4
        for (int j = 0; j < NJ; ++j) {
            const __m512 k = load16_any<E>(K + (j * ldk + d) * eb, mk, true);
#pragma GCC unroll 4
            for (int r = 0; r < NR; ++r) acc[j][r] = _mm512_fmadd_ps(q[r], k, acc[j][r]);
        }
    }
    store_scores16<NR, NJ>(acc, R, 1.0f, ST);
    if constexpr (E == 3)
        for (int j = 0; j < NJ; ++j)
            for (int r = 0; r < NR; ++r) ST[j * R + r] *= sc[j];
}

// NJ keys against R rows, 4 rows at a time.
template <int NJ, int E>
LLMKIT_AVX512W void dots512_keys(int R, int D, const float *Q, int64_t ldq, const char *K, int64_t ldk, float *ST,
                                 const float *sc) {
    int r = 0;
    for (; r + 4 <= R; r += 4) dots512_block<4, NJ, E>(R, D, Q + r * ldq, ldq, K, ldk, ST + r, sc);
    switch (R - r) {
    case 3: dots512_block<3, NJ, E>(R, D, Q + r * ldq, ldq, K, ldk, ST + r, sc); break;
    case 2: dots512_block<2, NJ, E>(R, D, Q + r * ldq, ldq, K, ldk, ST + r, sc); break;
    case 1: dots512_block<1, NJ, E>(R, D, Q + r * ldq, ldq, K, ldk, ST + r, sc); break;
    default: break;
    }
}

// Keys 4 at a time, then one by one, every row for each; pf (may be null)
// takes a step per block of keys.
template <int E>
LLMKIT_AVX512W void dots512(int R, int N, int D, const float *Q, int64_t ldq, const char *K, int64_t ldk, float *ST,
                            const float *sc, spread_prefetch *pf) {
    constexpr int64_t eb = E == 0 ? 4 : E == 3 ? 1 : 2;
    int j = 0;
    for (; j + 4 <= N; j += 4) {
        if (pf) pf->step();
        dots512_keys<4, E>(R, D, Q, ldq, K + j * ldk * eb, ldk, ST + j * R, sc ? sc + j : nullptr);
    }
    for (; j < N; ++j) {
        if (pf) pf->step();
        dots512_keys<1, E>(R, D, Q, ldq, K + j * ldk * eb, ldk, ST + j * R, sc ? sc + j : nullptr);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void dots_avx512w(int R, int N, int D, const float *Q,
                                                                        int64_t ldq, const float *K, int64_t ldk,
                                                                        float *ST) {
    dots512<0>(R, N, D, Q, ldq, reinterpret_cast<const char *>(K), ldk, ST, nullptr, nullptr);
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void dots_half_avx512w(int R, int N, int D, const float *Q,
                                                                             int64_t ldq, const uint16_t *K,
                                                                             int64_t ldk, bool is_bf16, float *ST) {
    const char *k = reinterpret_cast<const char *>(K);
    if (is_bf16)
        dots512<1>(R, N, D, Q, ldq, k, ldk, ST, nullptr, nullptr);
    else
        dots512<2>(R, N, D, Q, ldq, k, ldk, ST, nullptr, nullptr);
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void dots_pf_avx512w(int R, int N, int D, const float *Q,
                                                                          int64_t ldq, const void *K, int64_t ldk,
                                                                          row_type e, const float *scales, float *ST,
                                                                          const char *pf, int64_t pf_bytes) {
    if (e == row_type::e4m3 || e == row_type::e5m2) {  // FP8 rows: the AVX2 kernel
        g_avx2->dots_pf(R, N, D, Q, ldq, K, ldk, e, scales, ST, pf, pf_bytes);
        return;
    }
    spread_prefetch s(pf, pf_bytes, N / 4 + N % 4);
    const char *k = static_cast<const char *>(K);
    switch (e) {
    case row_type::f32: dots512<0>(R, N, D, Q, ldq, k, ldk, ST, nullptr, &s); break;
    case row_type::bf16: dots512<1>(R, N, D, Q, ldq, k, ldk, ST, nullptr, &s); break;
    case row_type::f16: dots512<2>(R, N, D, Q, ldq, k, ldk, ST, nullptr, &s); break;
    case row_type::i8: dots512<3>(R, N, D, Q, ldq, k, ldk, ST, scales, &s); break;
    default: break;  // FP8: above
    }
    s.rest();
}

// dots_tokens_pf (see kernels.hpp): 4 keys at a time, every head in turn.
template <int E>
LLMKIT_AVX512W void dots512_tokens(int H, int R, int N, int D, const float *Q, const char *K, float *ST, int64_t hs,
                                   stream_prefetch &s) {
    constexpr int64_t eb = E == 0 ? 4 : 2;
    const int64_t ts = int64_t(H) * D, row_bytes = D * eb;
    int j = 0;
    for (; j + 4 <= N; j += 4)
        for (int h = 0; h < H; ++h) {
            s.upto(j * ts * eb + 4 * (h + 1) * row_bytes);
            dots512_keys<4, E>(R, D, Q + h * hs, D, K + (j * ts + h * D) * eb, ts, ST + h * hs + j * R, nullptr);
        }
    for (; j < N; ++j)
        for (int h = 0; h < H; ++h) {
            s.upto(j * ts * eb + (h + 1) * row_bytes);
            dots512_keys<1, E>(R, D, Q + h * hs, D, K + (j * ts + h * D) * eb, ts, ST + h * hs + j * R, nullptr);
        }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void dots_tokens_pf_avx512w(int H, int R, int N, int D,
                                                                                 const float *Q, const void *K,
                                                                                 row_type e, float *ST, int64_t hs,
                                                                                 const char *pf, int64_t pf_bytes,
                                                                                 int64_t ahead) {
    const char *k = static_cast<const char *>(K);
    const int64_t eb = e == row_type::f32 ? 4 : 2;
    stream_prefetch s(k, int64_t(N) * H * D * eb, pf, pf_bytes, ahead);
    switch (e) {
    case row_type::f32: dots512_tokens<0>(H, R, N, D, Q, k, ST, hs, s); break;
    case row_type::bf16: dots512_tokens<1>(H, R, N, D, Q, k, ST, hs, s); break;
    case row_type::f16: dots512_tokens<2>(H, R, N, D, Q, k, ST, hs, s); break;
    default: break;  // 8-bit rows: not taken (see kernels.hpp)
    }
}

// ---------------------------------------------------------------- AVX512-VNNI
// Decode over an int8 cache in integers (quantize_i16, dots_i8_pf,
// gemm_i8_pf, i8_acc_finish): vpdpwssd multiplies 32 int16 pairs and adds them into 16
// int32 lanes, so the int8 rows are only sign-extended, never converted to
// float, and a 64-byte K row costs 4 instructions per query row instead of
// the 16 conversions and FMAs of the float path.
#define LLMKIT_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) inline

LLMKIT_VNNI __mmask32 tail_mask32(int n) {
    return n >= 32 ? ~__mmask32(0) : n <= 0 ? __mmask32(0) : __mmask32((1u << n) - 1u);
}

// Per 128-bit lane, the sums of a0..a3's four lanes there: lane L of the
// result holds {sum a0, sum a1, sum a2, sum a3} over lane L's elements.
LLMKIT_VNNI __m512i sum4_lanes(__m512i a0, __m512i a1, __m512i a2, __m512i a3) {
    const __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
    const __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
}

// The sums of the 16 lanes of a0..a3, in that order (integers: exact in any order).
LLMKIT_VNNI __m128i sum4_epi32(__m512i a0, __m512i a1, __m512i a2, __m512i a3) {
    const __m512i s = sum4_lanes(a0, a1, a2, a3);
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// NR (1..4) int16 query rows x NJ int8 keys: 32 elements of D per step (the
// last masked), then each key's row sums to float, times the row's and the
// key's scales. For 4 rows x 4 keys the 16 sums are folded together into one
// vector, in ST's order (key-major).
template <int NR, int NJ>
LLMKIT_VNNI void dots_i8_block(int R, int D, const int16_t *Q, int64_t ldq, const float *qs, const int8_t *K,
                               int64_t ldk, const float *ks, float *ST) {
    __m512i acc[NJ][4];
#pragma GCC unroll 4
    for (int j = 0; j < NJ; ++j)
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) acc[j][r] = _mm512_setzero_si512();
    int d = 0;
    for (; d + 32 <= D; d += 32) {
        __m512i q[NR];
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) q[r] = _mm512_loadu_si512(Q + r * ldq + d);
#pragma GCC unroll 4
        for (int j = 0; j < NJ; ++j) {
            const __m512i k =
                _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(K + j * ldk + d)));
#pragma GCC unroll 4
            for (int r = 0; r < NR; ++r) acc[j][r] = _mm512_dpwssd_epi32(acc[j][r], q[r], k);
        }
    }
    if (d < D) {
        const __mmask32 m = tail_mask32(D - d);
        __m512i q[NR];
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) q[r] = _mm512_maskz_loadu_epi16(m, Q + r * ldq + d);
#pragma GCC unroll 4
        for (int j = 0; j < NJ; ++j) {
            const __m512i k = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, K + j * ldk + d));
#pragma GCC unroll 4
            for (int r = 0; r < NR; ++r) acc[j][r] = _mm512_dpwssd_epi32(acc[j][r], q[r], k);
        }
    }
    if constexpr (NR == 4 && NJ == 4) {
        // Lane L of t[j]: key j's four row sums over lane L; then the four
        // 128-bit lanes of each added: {key 0 rows 0-3, key 1 rows 0-3, ...}.
        __m512i t[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) t[j] = sum4_lanes(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
        const __m512i t01 = _mm512_add_epi32(_mm512_shuffle_i32x4(t[0], t[1], 0x44), _mm512_shuffle_i32x4(t[0], t[1], 0xEE));
        const __m512i t23 = _mm512_add_epi32(_mm512_shuffle_i32x4(t[2], t[3], 0x44), _mm512_shuffle_i32x4(t[2], t[3], 0xEE));
        const __m512i all = _mm512_add_epi32(_mm512_shuffle_i32x4(t01, t23, 0x88), _mm512_shuffle_i32x4(t01, t23, 0xDD));
        const __m512 qv = _mm512_broadcast_f32x4(_mm_loadu_ps(qs));
        const __m512 kv = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                                _mm512_castps128_ps512(_mm_loadu_ps(ks)));
        const __m512 f = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(all), qv), kv);
        if (R == 4)
            _mm512_storeu_ps(ST, f);
        else {  // R > 4: this group's 4 rows of each key
            _mm_storeu_ps(ST, _mm512_castps512_ps128(f));
            _mm_storeu_ps(ST + R, _mm512_extractf32x4_ps(f, 1));
            _mm_storeu_ps(ST + 2 * R, _mm512_extractf32x4_ps(f, 2));
            _mm_storeu_ps(ST + 3 * R, _mm512_extractf32x4_ps(f, 3));
        }
        return;
    }
    const __m128 qv = _mm_maskz_loadu_ps(__mmask8((1u << NR) - 1u), qs);
#pragma GCC unroll 4
    for (int j = 0; j < NJ; ++j) {
        const __m128i s = sum4_epi32(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
        const __m128 f = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(s), qv), _mm_set1_ps(ks[j]));
        if (NR == 4)
            _mm_storeu_ps(ST + j * R, f);
        else
            _mm_mask_storeu_ps(ST + j * R, __mmask8((1u << NR) - 1u), f);
    }
}

// Keys 4 at a time (16 accumulators), then one by one; pf (may be null) takes
// one step per block of keys.
template <int NR, class PF>
LLMKIT_VNNI void dots_i8_rows(int R, int N, int D, const int16_t *Q, int64_t ldq, const float *qs, const int8_t *K,
                              int64_t ldk, const float *ks, float *ST, PF *pf) {
    int j = 0;
    for (; j + 4 <= N; j += 4) {
        if (pf) pf->step();
        dots_i8_block<NR, 4>(R, D, Q, ldq, qs, K + j * ldk, ldk, ks + j, ST + j * R);
    }
    for (; j < N; ++j) {
        if (pf) pf->step();
        dots_i8_block<NR, 1>(R, D, Q, ldq, qs, K + j * ldk, ldk, ks + j, ST + j * R);
    }
}

// The R query rows in groups of (up to) 4: the first group streams K from
// memory and carries the prefetches (pf, may be null); the others find K in L1.
template <class PF>
LLMKIT_VNNI void dots_i8_row_groups(int R, int N, int D, const int16_t *Q, int64_t ldq, const float *qs,
                                    const int8_t *K, int64_t ldk, const float *ks, float *ST, PF *pf) {
    int r = 0;
    for (; r + 4 <= R; r += 4, pf = nullptr)
        dots_i8_rows<4>(R, N, D, Q + r * ldq, ldq, qs + r, K, ldk, ks, ST + r, pf);
    switch (R - r) {
    case 3: dots_i8_rows<3>(R, N, D, Q + r * ldq, ldq, qs + r, K, ldk, ks, ST + r, pf); break;
    case 2: dots_i8_rows<2>(R, N, D, Q + r * ldq, ldq, qs + r, K, ldk, ks, ST + r, pf); break;
    case 1: dots_i8_rows<1>(R, N, D, Q + r * ldq, ldq, qs + r, K, ldk, ks, ST + r, pf); break;
    default: break;
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void dots_i8_pf_avx512(
    int R, int N, int D, const int16_t *Q, int64_t ldq, const float *qs, const int8_t *K, int64_t ldk,
    const float *ks, float *ST, const char *pf, int64_t pf_bytes) {
    spread_prefetch s(pf, pf_bytes, N / 4 + N % 4);
    dots_i8_row_groups(R, N, D, Q, ldq, qs, K, ldk, ks, ST, &s);
    s.rest();
}

// One call over several runs (see kernels.hpp): each run through the strided
// kernel, the prefetches spread over all of them.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void dots_i8_runs_pf_avx512(
    int R, int D, const int16_t *Q, int64_t ldq, const float *qs, const int8_t *K, const float *ks,
    const row_run *runs, int n_runs, float *ST, const byte_range *pf, int n_pf) {
    int64_t steps = 0;
    for (int i = 0; i < n_runs; ++i) steps += runs[i].n / 4 + runs[i].n % 4;
    ranges_prefetch s(pf, n_pf, steps);
    for (int i = 0, j = 0; i < n_runs; j += runs[i].n, ++i)
        dots_i8_row_groups(R, runs[i].n, D, Q, ldq, qs, K + runs[i].row * D, D, ks + runs[i].row, ST + j * R, &s);
    s.rest();
}

// P V on int16 pairs of keys. Rows t and t + 1 of V (32 columns, sign
// extended) are interleaved by vpunpck{l,h}wd, which works inside each 128-bit
// lane, so a chunk of 32 columns c0.. lives in two vectors of int32 sums:
// lane i of the first holds column c0 + 8 (i / 4) + i % 4, of the second
// column c0 + 8 (i / 4) + 4 + i % 4 (Acc stores them in that order;
// i8_acc_finish puts the columns back in place).
//
// One pair of keys into the NR x NC chunk accumulators: rows v and v1 of V
// (One: row v alone, zeros for the other), weights w[r] for row r.
template <int NR, int NC, bool One>
LLMKIT_VNNI void gemm_i8_pair(__m512i (&lo)[NR][NC], __m512i (&hi)[NR][NC], const int8_t *v, const int8_t *v1,
                              const uint32_t *w, __mmask32 last) {
    __m512i a[NC], b[NC];
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) {
        const __mmask32 m = c == NC - 1 ? last : ~__mmask32(0);
        const __m512i x = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, v + 32 * c));
        const __m512i y = One ? _mm512_setzero_si512() : _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, v1 + 32 * c));
        a[c] = _mm512_unpacklo_epi16(x, y);
        b[c] = _mm512_unpackhi_epi16(x, y);
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
        const __m512i wr = _mm512_set1_epi32(int(w[r]));
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) {
            lo[r][c] = _mm512_dpwssd_epi32(lo[r][c], a[c], wr);
            hi[r][c] = _mm512_dpwssd_epi32(hi[r][c], b[c], wr);
        }
    }
}

// Where the rows of pair p of keys lie: first(p) and second(p), from column
// col on. strided_pairs: rows 2p and 2p + 1 of V, ldv apart; listed_pairs:
// the pointers a[p] and b[p] (the keys of several runs, see gemm_i8_runs_pf).
struct strided_pairs {
    const int8_t *v;
    int64_t ldv;
    const int8_t *first(int p) const { return v + 2 * p * ldv; }
    const int8_t *second(int p) const { return v + (2 * p + 1) * ldv; }
    strided_pairs from_column(int c) const { return {v + c, ldv}; }
};
struct listed_pairs {
    const int8_t *const *a, *const *b;
    int col;
    const int8_t *first(int p) const { return a[p] + col; }
    const int8_t *second(int p) const { return b[p] + col; }
    listed_pairs from_column(int c) const { return {a, b, col + c}; }
};

// NR (1..4) rows x NC chunks of 32 columns over `pairs` pairs of keys (the
// last a lone key when `lone`), the last chunk's bytes masked by `last`; the
// weights of pair p and row r are the int16 pair Wp[p * ws + r].
template <int NR, int NC, class Pairs, class PF>
LLMKIT_VNNI void gemm_i8_block(int pairs, bool lone, const uint32_t *Wp, int ws, Pairs rows, int32_t *Acc,
                               int64_t ldc, __mmask32 last, PF *pf) {
    __m512i lo[NR][NC], hi[NR][NC];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) {
            lo[r][c] = _mm512_loadu_si512(Acc + r * ldc + 32 * c);
            hi[r][c] = _mm512_loadu_si512(Acc + r * ldc + 32 * c + 16);
        }
    const int full = lone ? pairs - 1 : pairs;
    for (int p = 0; p < full; ++p) {
        if (pf) pf->step();
        gemm_i8_pair<NR, NC, false>(lo, hi, rows.first(p), rows.second(p), Wp + p * ws, last);
    }
    if (lone) {
        if (pf) pf->step();
        gemm_i8_pair<NR, NC, true>(lo, hi, rows.first(full), nullptr, Wp + full * ws, last);
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) {
            _mm512_storeu_si512(Acc + r * ldc + 32 * c, lo[r][c]);
            _mm512_storeu_si512(Acc + r * ldc + 32 * c + 16, hi[r][c]);
        }
}

// NR rows over every chunk of D, NCmax chunks at a time (16 accumulators);
// pf (may be null) goes with the first chunks.
template <int NR, class Pairs, class PF>
LLMKIT_VNNI void gemm_i8_rows(int pairs, bool lone, int D, const uint32_t *Wp, int ws, Pairs rows, int32_t *Acc,
                              int64_t ldc, PF *pf) {
    constexpr int NCmax = NR <= 2 ? 4 : 2;
    const int chunks = (D + 31) / 32;
    const __mmask32 full = ~__mmask32(0), last = tail_mask32(D - 32 * (chunks - 1));
    for (int c0 = 0; c0 < chunks; c0 += NCmax, pf = nullptr) {
        const int nc = chunks - c0 < NCmax ? chunks - c0 : NCmax;
        const __mmask32 m = c0 + nc == chunks ? last : full;
        const Pairs v = rows.from_column(32 * c0);
        int32_t *acc = Acc + 32 * c0;
        if constexpr (NCmax == 4) {
            if (nc == 4) { gemm_i8_block<NR, 4>(pairs, lone, Wp, ws, v, acc, ldc, m, pf); continue; }
            if (nc == 3) { gemm_i8_block<NR, 3>(pairs, lone, Wp, ws, v, acc, ldc, m, pf); continue; }
        }
        if (nc == 2)
            gemm_i8_block<NR, 2>(pairs, lone, Wp, ws, v, acc, ldc, m, pf);
        else
            gemm_i8_block<NR, 1>(pairs, lone, Wp, ws, v, acc, ldc, m, pf);
    }
}

// The weights of keys j and j + 1 (none when `one`: zeros) for the nr <= 16
// rows of P from r0, w = P * c rounded to nearest (saturated to int16), as
// int16 pairs out[r] = w(j, r0 + r) | w(j + 1, r0 + r) << 16.
LLMKIT_VNNI void pack_weight_pair(const float *pj, const float *pj1, float cj, float cj1, int nr, uint32_t *out) {
    const __mmask16 m = tail_mask(nr);
    const __m512 a = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, pj), _mm512_set1_ps(cj));
    const __m512 b = pj1 ? _mm512_mul_ps(_mm512_maskz_loadu_ps(m, pj1), _mm512_set1_ps(cj1)) : _mm512_setzero_ps();
    const __m256i x = _mm512_cvtsepi32_epi16(_mm512_cvt_roundps_epi32(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256i y = _mm512_cvtsepi32_epi16(_mm512_cvt_roundps_epi32(b, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256i l = _mm256_unpacklo_epi16(x, y), h = _mm256_unpackhi_epi16(x, y);  // rows 0-3 | 8-11, 4-7 | 12-15
    _mm256_mask_storeu_epi32(out, __mmask8(m), _mm256_permute2x128_si256(l, h, 0x20));
    _mm256_mask_storeu_epi32(out + 8, __mmask8(m >> 8), _mm256_permute2x128_si256(l, h, 0x31));
}

// For nr rows per key (nr = 1, 2, 4 or 8): the words of vpmovsdw's output
// (key i / nr, row i % nr in word i) taken in pairs of keys, so that dword
// q * nr + r holds pair q's two weights for row r: word 2 (q nr + r) + h is
// key 2q + h, row r.
struct pair_words_table {
    alignas(32) int16_t idx[4][16];
    constexpr pair_words_table() : idx() {
        for (int l = 0; l < 4; ++l)
            for (int w = 0; w < 16; ++w) {
                const int nr = 1 << l, d = w / 2, h = w % 2, q = d / nr, r = d % nr;
                idx[l][w] = int16_t((2 * q + h) * nr + r);
            }
    }
};
constexpr pair_words_table k_pair_words;

// The weights of keys 2p and 2p + 1 for p < pairs and the nr rows of P
// (P[j * ldp + r]), w = P * (c[j] * k) rounded to nearest and saturated to
// int16 (pack_weight_pair's bits), at Wp[p * nr + r]. A key past n weighs 0
// (a lone last key). Where a key's rows are P's whole row (ldp == nr) and nr
// divides 8, 16 / nr keys go through one vector, stored in one go: a pair
// at a time took about a fifth of the p.v's time with 4 rows.
LLMKIT_VNNI void pack_weights(const float *P, int64_t ldp, const float *c, float k, int n, int nr, uint32_t *Wp) {
    const int pairs = (n + 1) / 2;
    const int l = nr == 1 ? 0 : nr == 2 ? 1 : nr == 4 ? 2 : nr == 8 ? 3 : -1;
    if (l < 0 || ldp != nr) {
        for (int p = 0; p < pairs; ++p) {
            const int j = 2 * p;
            const bool two = j + 1 < n;
            pack_weight_pair(P + j * ldp, two ? P + (j + 1) * ldp : nullptr, c[j] * k, two ? c[j + 1] * k : 0.0f, nr,
                             Wp + p * nr);
        }
        return;
    }
    const int keys_per = 16 / nr;
    const __m512i key_of_lane = _mm512_srli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), l);
    const __m256i words = _mm256_load_si256(reinterpret_cast<const __m256i *>(k_pair_words.idx[l]));
    const __m512 kv = _mm512_set1_ps(k);
    for (int j = 0; j < n; j += keys_per) {
        const int keys = n - j < keys_per ? n - j : keys_per;
        const __m512 s = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail_mask(keys), c + j), kv);
        const __m512 w = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail_mask(keys * nr), P + int64_t(j) * nr),
                                       _mm512_permutexvar_ps(key_of_lane, s));
        const __m256i x = _mm512_cvtsepi32_epi16(_mm512_cvt_roundps_epi32(w, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        // All 8 dwords, past the last pair too (Wp has room): a masked store
        // does not forward to the p.v's loads of the weights.
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(Wp + j / 2 * nr), _mm256_permutexvar_epi16(words, x));
    }
}

// The nr rows of a block of P V's rows, 4 at a time; the first carry pf (may
// be null).
template <class Pairs, class PF>
LLMKIT_VNNI void gemm_i8_row_groups(int nr, int pairs, bool lone, int D, const uint32_t *Wp, Pairs rows, int32_t *Acc,
                                    int64_t ldc, PF *pf) {
    // The weights of pair p and row r at Wp[p * nr + r] (see pack_weights).
    int r = 0;
    for (; r + 4 <= nr; r += 4, pf = nullptr) gemm_i8_rows<4>(pairs, lone, D, Wp + r, nr, rows, Acc + r * ldc, ldc, pf);
    switch (nr - r) {
    case 3: gemm_i8_rows<3>(pairs, lone, D, Wp + r, nr, rows, Acc + r * ldc, ldc, pf); break;
    case 2: gemm_i8_rows<2>(pairs, lone, D, Wp + r, nr, rows, Acc + r * ldc, ldc, pf); break;
    case 1: gemm_i8_rows<1>(pairs, lone, D, Wp + r, nr, rows, Acc + r * ldc, ldc, pf); break;
    default: break;
    }
}

// Keys in runs of up to 64 (32 pairs: a decode tile), rows in blocks of up to
// 16: each run's weights packed for the block (2 KiB on the stack), then the
// block's rows 4 at a time. The first rows carry pf, one step per pair.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void gemm_i8_pf_avx512(
    int M, int N, int D, const float *P, int64_t ldp, const float *sv, float k, const int8_t *V, int64_t ldv,
    int32_t *Acc, int64_t ldc, const char *pf, int64_t pf_bytes) {
    spread_prefetch s(pf, pf_bytes, (N + 1) / 2);
    alignas(64) uint32_t Wp[32 * 16];
    for (int j0 = 0; j0 < N; j0 += 64) {
        const int n = N - j0 < 64 ? N - j0 : 64, pairs = (n + 1) / 2;
        for (int rb = 0; rb < M; rb += 16) {
            const int nr = M - rb < 16 ? M - rb : 16;
            pack_weights(P + j0 * ldp + rb, ldp, sv + j0, k, n, nr, Wp);
            spread_prefetch *sp = rb == 0 ? &s : nullptr;
            gemm_i8_row_groups(nr, pairs, n % 2 != 0, D, Wp, strided_pairs{V + j0 * ldv, ldv}, Acc + rb * ldc, ldc, sp);
        }
    }
    s.rest();
}

// One call over several runs (see kernels.hpp; k_runs_max, k_runs_max_keys):
// pairs of keys inside each run, a run's odd last key paired with a row of
// zeros at weight 0 (the same integer sums), all the pairs' weights packed
// before the rows, so the int32 sums are loaded and stored once per call.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void gemm_i8_runs_pf_avx512(
    int M, int D, const float *P, int64_t ldp, const float *sv, float k, const int8_t *V, const row_run *runs,
    int n_runs, int32_t *Acc, int64_t ldc, const byte_range *pf, int n_pf) {
    constexpr int max_pairs = k_runs_max_keys / 2 + k_runs_max;
    alignas(64) static const int8_t zeros[256] = {};
    const int8_t *a[max_pairs], *b[max_pairs];
    int ja[max_pairs], jb[max_pairs];  // the keys of each pair (jb -1: the row of zeros)
    int pairs = 0;
    for (int i = 0, j = 0; i < n_runs; j += runs[i].n, ++i)
        for (int t = 0; t < runs[i].n; t += 2, ++pairs) {
            a[pairs] = V + (runs[i].row + t) * D;
            ja[pairs] = j + t;
            const bool two = t + 1 < runs[i].n;
            b[pairs] = two ? a[pairs] + D : zeros;
            jb[pairs] = two ? j + t + 1 : -1;
        }
    // Each key's V row scale, by key.
    float svk[k_runs_max_keys];
    int keys = 0;
    for (int i = 0; i < n_runs; keys += runs[i].n, ++i)
        for (int t = 0; t < runs[i].n; ++t) svk[keys + t] = sv[runs[i].row + t] * k;
    ranges_prefetch s(pf, n_pf, pairs);
    alignas(64) uint32_t Wp[max_pairs * 16];
    for (int rb = 0; rb < M; rb += 16) {
        const int nr = M - rb < 16 ? M - rb : 16;
        if (keys == 2 * pairs)  // no run of odd length: pair p is keys 2p and 2p + 1
            pack_weights(P + rb, ldp, svk, 1.0f, keys, nr, Wp);
        else
            for (int p = 0; p < pairs; ++p)
                pack_weight_pair(P + ja[p] * ldp + rb, jb[p] >= 0 ? P + jb[p] * ldp + rb : nullptr, svk[ja[p]],
                                 jb[p] >= 0 ? svk[jb[p]] : 0.0f, nr, Wp + p * nr);
        gemm_i8_row_groups(nr, pairs, false, D, Wp, listed_pairs{a, b, 0}, Acc + rb * ldc, ldc, rb == 0 ? &s : nullptr);
    }
    s.rest();
}

// Each of R rows of D floats as int16 times a row scale (see kernels.hpp).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void quantize_i16_avx512(const float *X, int R, int D,
                                                                                          int16_t *Qi, float *qs) {
    for (int r = 0; r < R; ++r) {
        const float *x = X + r * D;
        __m512 mx = _mm512_setzero_ps();
        for (int d = 0; d < D; d += 16) mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_maskz_loadu_ps(tail_mask(D - d), x + d)));
        const float m = _mm512_reduce_max_ps(mx);
        const __m512 inv = _mm512_set1_ps(m > 0.0f ? 32767.0f / m : 0.0f);
        qs[r] = m / 32767.0f;
        for (int d = 0; d < D; d += 16) {
            const __mmask16 mk = tail_mask(D - d);
            const __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + d), inv),
                                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm256_mask_storeu_epi16(Qi + r * D + d, mk, _mm512_cvtsepi32_epi16(q));
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void i8_acc_finish_avx512(
    int M, int D, const int32_t *Acc, int64_t ldc, const float *s, const float *alpha, float *O, int64_t ldo) {
    // Columns c0 .. c0 + 15, then c0 + 16 .. c0 + 31, from the two vectors of a chunk.
    const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i second = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int r = 0; r < M; ++r) {
        const __m512 sv = _mm512_set1_ps(s[r]);
        const __m512 av = _mm512_set1_ps(alpha ? alpha[r] : 1.0f);
        for (int c0 = 0; c0 < D; c0 += 32) {
            const __m512i x = _mm512_loadu_si512(Acc + r * ldc + c0), y = _mm512_loadu_si512(Acc + r * ldc + c0 + 16);
            const __m512i cols[2] = {_mm512_permutex2var_epi32(x, first, y), _mm512_permutex2var_epi32(x, second, y)};
            for (int h = 0; h < 2; ++h) {
                const int c = c0 + 16 * h;
                if (c >= D) break;
                const __mmask16 m = tail_mask(D - c);
                float *o = O + r * ldo + c;
                const __m512 old = _mm512_maskz_loadu_ps(m, o);
                const __m512 base = alpha ? _mm512_mul_ps(av, old) : old;
                _mm512_mask_storeu_ps(o, m, _mm512_fmadd_ps(sv, _mm512_cvtepi32_ps(cols[h]), base));
            }
        }
    }
}

// AVX512-BF16 (CPUID leaf 7, sub-leaf 1, EAX bit 5), after AVX-512F.
bool cpu_has_avx512_bf16() {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return (a & (1u << 5)) != 0;
}

// gemm_pf_in_cache where wide_decode but not wide_decode_f32 (Zen 5): the
// 512-bit p.v for float32 rows too (the AVX2 kernel's bits). Decode calls
// whose K and V fit in the caches, 2-core Zen 5 VM, 2 threads, against the
// library before, alternated runs: contiguous and paged caches at batch 1
// with 1k keys and batch 2 with 2k 1.06-1.09x, dense [B, H, S, D] rows
// 1.05-1.06x (32 query and 8 KV heads, d = 128).
__attribute__((target("avx512f"))) void gemm_pf_f32_wide(int M, int N, int K, const float *A, int64_t ars,
                                                         int64_t aks, const void *B, int64_t ldb, row_type e, float *C,
                                                         int64_t ldc, bool accumulate, const float *row_scale,
                                                         const char *pf, int64_t pf_bytes) {
    if (e == row_type::f32 && M >= 1 && M <= 4)
        gemm_few_rows512<0>(M, N, K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale, pf, pf_bytes);
    else
        gemm_pf_shared(M, N, K, A, ars, aks, B, ldb, e, C, ldc, accumulate, row_scale, pf, pf_bytes);
}

const kernels k_avx512 = {"avx512", gemm_avx512, dots_avx512, softmax_tile_avx512, half_to_f32_avx512,
                          f32_to_half_avx512, q8_to_f32_avx512};

}  // namespace

// The AVX-512 gemm and softmax serve prefill (16 or more query rows a
// tile); decode (a few query rows against long K/V rows) takes the AVX2 set's
// gemm, softmax, dots, dots_half, gemm_half, dots_pf and gemm_pf (except,
// where wide_decode, the softmax of 1, 2 or 4 rows and the p.v of 1..4 rows,
// gemm_few_rows512 with the AVX2 kernel's bits: Intel, and Zen 5 for 16-bit
// rows; and on Zen 5 the scores, dots512), which read
// 16-bit and int8 caches in registers and pace their prefetches: on a Zen 4
// VM, 2 threads, the AVX-512 set without them decoded 1k of context 1.6-2.7x
// slower than the AVX2 set (fp32 and bf16, batch 1 and 16), and its prefill
// of 512 tokens was 1.1-1.15x faster. Every AVX-512 CPU has AVX2, FMA and F16C.
// Where the CPU has AVX512-VNNI (and BW, VL), decode over an int8 cache runs on
// this set's integer kernels instead: 1.3-1.7x the float path end to end
// (2-core Zen 4, 2 threads, batch 1 and 16, 1k and 8k of context).
const kernels *avx512_kernels() {
    static const kernels *set = []() -> const kernels * {
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("avx512f")) return nullptr;
        static kernels k = k_avx512;
        g_avx2 = avx2_kernels();
        if (g_avx2) {
            k.gemm = gemm_shared;
            k.softmax_tile = softmax_shared;
            k.dots = g_avx2->dots;
            k.dots_half = g_avx2->dots_half;
            k.gemm_half = gemm_half_shared;
            k.dots_pf = g_avx2->dots_pf;
            k.gemm_pf = gemm_pf_shared;
        }
        // 512-bit decode on Intel and on AMD from Zen 5 (family 1Ah) on; float32 p.v on Intel only (see wide_decode).
        const unsigned amd_family = core::cpu_amd_family();  // 0: not AMD
        wide_decode = g_avx2 && (amd_family == 0 || amd_family >= 0x1Au) && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl");
        wide_decode_f32 = wide_decode && amd_family == 0;
        if (wide_decode) {
            k.gemm_bf16_eo_pf = gemm_bf16_eo_pf_avx512;
            k.gemm_bf16_eo_tokens_pf = gemm_bf16_eo_tokens_pf_avx512;
            k.gemm_bf16_eo_runs_pf = gemm_bf16_eo_runs_pf_avx512;
            k.gemm_runs_pf = gemm_runs_pf_avx512;
        }
        if (wide_decode && !wide_decode_f32) k.gemm_pf_in_cache = gemm_pf_f32_wide;
        if (g_avx2) {
            k.dots_tokens_pf = g_avx2->dots_tokens_pf;
            k.gemm_tokens_pf = wide_decode ? gemm_tokens_pf_avx512 : g_avx2->gemm_tokens_pf;
        }
        if (wide_decode && !wide_decode_f32) {  // Zen 5: decode's scores in 512 bits (see dots512)
            k.dots = dots_avx512w;
            k.dots_half = dots_half_avx512w;
            k.dots_pf = dots_pf_avx512w;
            k.dots_tokens_pf = dots_tokens_pf_avx512w;
        }
        if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512vnni")) {
            k.quantize_i16 = quantize_i16_avx512;
            k.dots_i8_pf = dots_i8_pf_avx512;
            k.gemm_i8_pf = gemm_i8_pf_avx512;
            k.dots_i8_runs_pf = dots_i8_runs_pf_avx512;
            k.gemm_i8_runs_pf = gemm_i8_runs_pf_avx512;
            k.i8_acc_finish = i8_acc_finish_avx512;
        }
        if (cpu_has_avx512_bf16()) {
            k.gemm_bf16 = gemm_bf16_avx512;
            k.pack_bf16_pairs = pack_bf16_pairs_avx512;
            // vdpbf16ps where it is fast (Zen 4), FMAs on Intel (see dots_bf16_fma_block).
            k.dots_bf16_pf = __builtin_cpu_is("amd") ? dots_bf16_pf_avx512 : dots_bf16_fma_avx512;
            k.dots_bf16_tokens_pf = __builtin_cpu_is("amd") ? dots_bf16_tokens_pf_avx512 : dots_bf16_fma_tokens_avx512;
            k.bf16_prefill_on_pairs = __builtin_cpu_is("amd");  // see kernels.hpp
        }
        return &k;
    }();
    return set;
}

const kernels *avx512_kernels_other_bf16_scores() {
    static const kernels *set = []() -> const kernels * {
        const kernels *base = avx512_kernels();
        if (!base || !base->dots_bf16_pf) return nullptr;
        static kernels k = *base;
        k.name = "avx512 (the other bf16 scores)";
        const bool pairs = base->dots_bf16_pf == dots_bf16_pf_avx512;
        k.dots_bf16_pf = pairs ? dots_bf16_fma_avx512 : dots_bf16_pf_avx512;
        k.dots_bf16_tokens_pf = pairs ? dots_bf16_fma_tokens_avx512 : dots_bf16_tokens_pf_avx512;
        return &k;
    }();
    return set;
}
#else
const kernels *avx512_kernels() { return nullptr; }
const kernels *avx512_kernels_other_bf16_scores() { return nullptr; }
#endif

}  // namespace llmkit::attention
