// AVX2 + FMA + F16C attention kernels. Everything in this file after the
// includes is compiled for those extensions through function attributes and
// runs only after __builtin_cpu_supports("avx2") and ("fma") and CPUID's F16C
// bit said yes, so no std:: code is instantiated with AVX2 instructions (it
// could be merged with other translation units' copies and run on a CPU
// without them).
//
// gemm is a register-blocked micro-kernel: 6 rows x 16 columns of accumulators
// (12 of the 16 ymm registers), one broadcast of A and two loads of B per k for
// 12 FMAs; the last vector of a row is masked. dots keeps 4 query rows x 3 keys
// of accumulators (7 loads per 12 FMAs) and reduces them 4 at a time with a
// horizontal-add tree. The 16-bit conversions give the portable versions' bits
// for every input, NaN payloads included.
#include <cstdint>

#include "attention/kernels.hpp"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#include "attention/spread_prefetch.hpp"
#include "core/cpu_features.hpp"
#define LLMKIT_AVX2 __attribute__((target("avx2,fma,f16c"))) inline
#define LLMKIT_AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define LLMKIT_HAVE_AVX2_KERNELS 1
#endif

namespace llmkit::attention {

#ifdef LLMKIT_HAVE_AVX2_KERNELS
namespace {

// mask_table + 8 - n: the first n lanes set (n in 0..8).
alignas(32) const int32_t k_mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

LLMKIT_AVX2 __m256i lane_mask(int n) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i *>(k_mask_table + 8 - n));
}

LLMKIT_AVX2 int imin(int a, int b) { return a < b ? a : b; }

// exp(x) for float32 lanes x <= 88 (softmax's x - max <= 0, and -inf), about
// 1 ulp: x = n ln2 + r (|r| <= ln2 / 2) with n rounded by the fused multiply-add
// onto 1.5 * 2^23 + 127, whose low bits are then n + 127, 2^n's exponent field;
// e^r by a degree-6 polynomial (relative error 2e-9 in float64, fitted to the
// relative error on [-ln2 / 2, ln2 / 2]). Lanes below -87.3 (including -inf)
// give exactly 0; NaN stays NaN. 14 instructions where Cephes' expf with its
// clamps and two-factor scaling took 27: softmax_tile was 9% of an fp32
// prefill at 8192 tokens (2-core Zen 3).
LLMKIT_AVX2 __m256 exp256(__m256 x) {
    const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33654f), _CMP_LT_OQ);
    const __m256 shifter = _mm256_set1_ps(12583039.0f);  // 1.5 * 2^23 + 127
    const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), shifter);
    const __m256 n = _mm256_sub_ps(t, shifter);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 in two parts (Cephes')
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(0x1.6ae6e0p-10f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0x1.1267d8p-7f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0x1.555824p-5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0x1.555418p-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0x1.fffffcp-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256 two_n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, two_n));
}

// ---- element loads ------------------------------------------------------

// The element types K and V rows may have: float32, or 16-bit or 8-bit
// converted on the fly (8-bit as their raw values, see row_type: the row
// scales are applied to the dot products and to the probabilities, never per
// element). The values of row_type.
enum : int { e_f32 = 0, e_bf16 = 1, e_f16 = 2, e_i8 = 3, e_e4m3 = 4, e_e5m2 = 5 };

template <int E>
constexpr int64_t elem_bytes() {
    return E == e_f32 ? 4 : E >= e_i8 ? 1 : 2;
}

// 8 consecutive elements as float32 (8-bit: their raw values, not yet scaled).
template <int E>
LLMKIT_AVX2 __m256 load8(const char *p) {
    if constexpr (E == e_f32) {
        return _mm256_loadu_ps(reinterpret_cast<const float *>(p));
    } else if constexpr (E == e_i8) {
        const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(p));
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
    } else if constexpr (E == e_e5m2) {  // the byte is the high half of an fp16
        const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(p));
        return _mm256_cvtph_ps(_mm_unpacklo_epi8(_mm_setzero_si128(), b));
    } else if constexpr (E == e_e4m3) {
        // Sign-extended to 16 bits and shifted up 7: the sign lands in bits
        // 15 and 14, exponent and mantissa in 13..7; clearing bit 14 leaves
        // fp8_raw_f16_bits' layout.
        const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(p));
        const __m128i h = _mm_and_si128(_mm_slli_epi16(_mm_cvtepi8_epi16(b), 7), _mm_set1_epi16(short(0xBF80)));
        return _mm256_cvtph_ps(h);
    } else {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
        if constexpr (E == e_bf16)
            return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        else
            return _mm256_cvtph_ps(h);
    }
}

// The first w (1..8) elements as float32, zeros after; reads nothing past them.
template <int E>
LLMKIT_AVX2 __m256 load8_part(const char *p, int w, __m256i mask) {
    if constexpr (E == e_f32) {
        return _mm256_maskload_ps(reinterpret_cast<const float *>(p), mask);
    } else {
        alignas(16) char t[16] = {};
        for (int i = 0; i < w * int(elem_bytes<E>()); ++i) t[i] = p[i];
        return load8<E>(t);
    }
}

// ---- gemm ----------------------------------------------------------------

// NR rows x NV (1 or 2) vectors of 8 columns of C; with MASK the last vector
// has `wlast` columns (mask `last`). B's elements are of type E (int8: raw values).
template <int NR, int NV, bool MASK, int E>
LLMKIT_AVX2 void gemm_block(int K, const float *A, int64_t ars, int64_t aks, const char *B, int64_t ldb, float *C,
                            int64_t ldc, bool accumulate, const float *row_scale, int wlast, __m256i last) {
    constexpr int64_t eb = elem_bytes<E>();
    __m256 c[NR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
        const __m256 s = _mm256_set1_ps(row_scale ? row_scale[r] : 1.0f);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            if (!accumulate) {
                c[r][v] = _mm256_setzero_ps();
            } else {
                const float *cp = C + r * ldc + 8 * v;
                const __m256 x = (MASK && v == NV - 1) ? _mm256_maskload_ps(cp, last) : _mm256_loadu_ps(cp);
                c[r][v] = row_scale ? _mm256_mul_ps(x, s) : x;  // x * 1 is x: skip the multiply
            }
        }
    }
    const float *a[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) a[r] = A + r * ars;
    for (int k = 0; k < K; ++k) {
        const char *bk = B + k * ldb * eb;
        __m256 b[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
            b[v] = (MASK && v == NV - 1) ? load8_part<E>(bk + 8 * v * eb, wlast, last) : load8<E>(bk + 8 * v * eb);
#pragma GCC unroll 8
        for (int r = 0; r < NR; ++r) {
            const __m256 x = _mm256_broadcast_ss(a[r] + k * aks);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) c[r][v] = _mm256_fmadd_ps(x, b[v], c[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            float *cp = C + r * ldc + 8 * v;
            if (MASK && v == NV - 1)
                _mm256_maskstore_ps(cp, last, c[r][v]);
            else
                _mm256_storeu_ps(cp, c[r][v]);
        }
}

// NR rows x the w (1..16) columns of C from column 0 of B and C.
template <int NR, int E>
LLMKIT_AVX2 void gemm_panel(int w, int K, const float *A, int64_t ars, int64_t aks, const char *B, int64_t ldb,
                            float *C, int64_t ldc, bool accumulate, const float *row_scale) {
    const __m256i full = _mm256_set1_epi32(-1);
    if (w == 16)
        gemm_block<NR, 2, false, E>(K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale, 8, full);
    else if (w > 8)
        gemm_block<NR, 2, true, E>(K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale, w - 8, lane_mask(w - 8));
    else if (w == 8)
        gemm_block<NR, 1, false, E>(K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale, 8, full);
    else
        gemm_block<NR, 1, true, E>(K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale, w, lane_mask(w));
}

// Decode's p.v (M = the few query rows of a kv head, 1..4): panels of 24
// columns, NR x 3 accumulators (12 for 4 rows: enough independent chains to
// keep both FMA pipes busy through the FMA latency, where 4 x 2 leaves them
// waiting), then panels of up to 16 for the last columns. Every element of C
// sees the same operations in the same order as with gemm_panel, so the bits
// do not depend on the panel width. pf takes one step per panel.
template <int E>
LLMKIT_AVX2 void gemm_few_rows(int M, int N, int K, const float *A, int64_t ars, int64_t aks, const char *B,
                               int64_t ldb, float *C, int64_t ldc, bool accumulate, const float *row_scale,
                               spread_prefetch *pf) {
    constexpr int64_t eb = elem_bytes<E>();
    const __m256i full = _mm256_set1_epi32(-1);
    int n0 = 0;
    for (; n0 + 24 <= N; n0 += 24) {
        if (pf) pf->step();
        const char *b = B + n0 * eb;
        float *c = C + n0;
        switch (M) {
        case 4: gemm_block<4, 3, false, E>(K, A, ars, aks, b, ldb, c, ldc, accumulate, row_scale, 8, full); break;
        case 3: gemm_block<3, 3, false, E>(K, A, ars, aks, b, ldb, c, ldc, accumulate, row_scale, 8, full); break;
        case 2: gemm_block<2, 3, false, E>(K, A, ars, aks, b, ldb, c, ldc, accumulate, row_scale, 8, full); break;
        default: gemm_block<1, 3, false, E>(K, A, ars, aks, b, ldb, c, ldc, accumulate, row_scale, 8, full); break;
        }
    }
    for (; n0 < N; n0 += 16) {
        if (pf) pf->step();
        const int w = imin(16, N - n0);
        const char *b = B + n0 * eb;
        float *c = C + n0;
        switch (M) {
        case 4: gemm_panel<4, E>(w, K, A, ars, aks, b, ldb, c, ldc, accumulate, row_scale); break;
        case 3: gemm_panel<3, E>(w, K, A, ars, aks, b, ldb, c, ldc, accumulate, row_scale); break;
        case 2: gemm_panel<2, E>(w, K, A, ars, aks, b, ldb, c, ldc, accumulate, row_scale); break;
        default: gemm_panel<1, E>(w, K, A, ars, aks, b, ldb, c, ldc, accumulate, row_scale); break;
        }
    }
}

// Panels of 16 columns, outer, so that a K x 16 panel of B stays in L1 while
// every block of 6 rows (then the 1..5 rows left) runs over it; A is read a
// broadcast at a time, a few lines per 16 k.
// pf (may be null) takes one step per panel.
template <int E>
LLMKIT_AVX2 void gemm_impl(int M, int N, int K, const float *A, int64_t ars, int64_t aks, const char *B, int64_t ldb,
                           float *C, int64_t ldc, bool accumulate, const float *row_scale,
                           spread_prefetch *pf = nullptr) {
    constexpr int64_t eb = elem_bytes<E>();
    if (M > 0 && M <= 4) {
        gemm_few_rows<E>(M, N, K, A, ars, aks, B, ldb, C, ldc, accumulate, row_scale, pf);
        return;
    }
    for (int n0 = 0; n0 < N; n0 += 16) {
        const int w = imin(16, N - n0);
        const char *b = B + n0 * eb;
        int r = 0;
        for (; r + 6 <= M; r += 6) {
            if (pf) pf->step();
            gemm_panel<6, E>(w, K, A + r * ars, ars, aks, b, ldb, C + r * ldc + n0, ldc, accumulate,
                             row_scale ? row_scale + r : nullptr);
        }
        if (pf && r < M) pf->step();
        const float *rs = row_scale ? row_scale + r : nullptr;
        const float *a = A + r * ars;
        float *c = C + r * ldc + n0;
        switch (M - r) {
        case 5: gemm_panel<5, E>(w, K, a, ars, aks, b, ldb, c, ldc, accumulate, rs); break;
        case 4: gemm_panel<4, E>(w, K, a, ars, aks, b, ldb, c, ldc, accumulate, rs); break;
        case 3: gemm_panel<3, E>(w, K, a, ars, aks, b, ldb, c, ldc, accumulate, rs); break;
        case 2: gemm_panel<2, E>(w, K, a, ars, aks, b, ldb, c, ldc, accumulate, rs); break;
        case 1: gemm_panel<1, E>(w, K, a, ars, aks, b, ldb, c, ldc, accumulate, rs); break;
        default: break;
        }
    }
}

LLMKIT_AVX2_FN void gemm_avx2(int M, int N, int K, const float *A, int64_t ars, int64_t aks, const float *B,
                              int64_t ldb, float *C, int64_t ldc, bool accumulate, const float *row_scale) {
    gemm_impl<e_f32>(M, N, K, A, ars, aks, reinterpret_cast<const char *>(B), ldb, C, ldc, accumulate, row_scale);
}

LLMKIT_AVX2_FN void gemm_half_avx2(int M, int N, int K, const float *A, int64_t ars, int64_t aks, const uint16_t *B,
                                   int64_t ldb, bool is_bf16, float *C, int64_t ldc, bool accumulate,
                                   const float *row_scale) {
    const char *b = reinterpret_cast<const char *>(B);
    if (is_bf16)
        gemm_impl<e_bf16>(M, N, K, A, ars, aks, b, ldb, C, ldc, accumulate, row_scale);
    else
        gemm_impl<e_f16>(M, N, K, A, ars, aks, b, ldb, C, ldc, accumulate, row_scale);
}

// ---- dots ----------------------------------------------------------------

// The sums of the lanes of v0..v3, in that order. Every input goes through the
// same tree whatever its slot: pairs, then pairs of pairs, then the halves.
LLMKIT_AVX2 __m128 reduce4(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(v0, v1), _mm256_hadd_ps(v2, v3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// NR (1..4) query rows x NJ keys of type E; the dot products run over D in
// vectors of 8 with a masked tail, and an 8-bit key's sums are multiplied by
// its row scale sc[j] once at the end. A key's sums do not depend on NR, NJ or
// which keys share its block.
template <int NR, int NJ, int E>
LLMKIT_AVX2 void dots_block(int R, int D, const float *Q, int64_t ldq, const char *K, int64_t ldk, float *ST,
                            const float *sc) {
    constexpr int64_t eb = elem_bytes<E>();
    __m256 acc[NJ][4];
#pragma GCC unroll 4
    for (int j = 0; j < NJ; ++j)
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) acc[j][r] = _mm256_setzero_ps();
    int d = 0;
    for (; d + 8 <= D; d += 8) {
        __m256 q[NR];
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) q[r] = _mm256_loadu_ps(Q + r * ldq + d);
#pragma GCC unroll 4
        for (int j = 0; j < NJ; ++j) {
            const __m256 kv = load8<E>(K + (j * ldk + d) * eb);
#pragma GCC unroll 4
            for (int r = 0; r < NR; ++r) acc[j][r] = _mm256_fmadd_ps(q[r], kv, acc[j][r]);
        }
    }
    if (d < D) {
        const __m256i mk = lane_mask(D - d);
        __m256 q[NR];
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) q[r] = _mm256_maskload_ps(Q + r * ldq + d, mk);
#pragma GCC unroll 4
        for (int j = 0; j < NJ; ++j) {
            const __m256 kv = load8_part<E>(K + (j * ldk + d) * eb, D - d, mk);
#pragma GCC unroll 4
            for (int r = 0; r < NR; ++r) acc[j][r] = _mm256_fmadd_ps(q[r], kv, acc[j][r]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NJ; ++j) {
        __m128 s = reduce4(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
        if constexpr (E >= e_i8) s = _mm_mul_ps(s, _mm_set1_ps(sc[j]));
        if (NR == 4) {
            _mm_storeu_ps(ST + j * R, s);
        } else {
            alignas(16) float t[4];
            _mm_store_ps(t, s);
            for (int r = 0; r < NR; ++r) ST[j * R + r] = t[r];
        }
    }
}

// pf (may be null) takes one step per block of keys; sc: 8-bit K's row scales.
template <int NR, int E>
LLMKIT_AVX2 void dots_rows(int R, int N, int D, const float *Q, int64_t ldq, const char *K, int64_t ldk, float *ST,
                           spread_prefetch *pf, const float *sc) {
    // 4 rows: 3 keys at a time (12 accumulators); fewer rows: 4 keys at a time.
    constexpr int NJ = NR == 4 ? 3 : 4;
    constexpr int64_t eb = elem_bytes<E>();
    int j = 0;
    for (; j + NJ <= N; j += NJ) {
        if (pf) pf->step();
        dots_block<NR, NJ, E>(R, D, Q, ldq, K + j * ldk * eb, ldk, ST + j * R, sc ? sc + j : nullptr);
    }
    for (; j < N; ++j) {
        if (pf) pf->step();
        dots_block<NR, 1, E>(R, D, Q, ldq, K + j * ldk * eb, ldk, ST + j * R, sc ? sc + j : nullptr);
    }
}

// The first group of (up to) 4 rows streams K from memory and carries pf;
// the others find K in L1.
template <int E>
LLMKIT_AVX2 void dots_impl(int R, int N, int D, const float *Q, int64_t ldq, const char *K, int64_t ldk, float *ST,
                           spread_prefetch *pf = nullptr, const float *sc = nullptr) {
    int r = 0;
    for (; r + 4 <= R; r += 4, pf = nullptr) dots_rows<4, E>(R, N, D, Q + r * ldq, ldq, K, ldk, ST + r, pf, sc);
    switch (R - r) {
    case 3: dots_rows<3, E>(R, N, D, Q + r * ldq, ldq, K, ldk, ST + r, pf, sc); break;
    case 2: dots_rows<2, E>(R, N, D, Q + r * ldq, ldq, K, ldk, ST + r, pf, sc); break;
    case 1: dots_rows<1, E>(R, N, D, Q + r * ldq, ldq, K, ldk, ST + r, pf, sc); break;
    default: break;
    }
}

LLMKIT_AVX2_FN void dots_avx2(int R, int N, int D, const float *Q, int64_t ldq, const float *K, int64_t ldk,
                              float *ST) {
    dots_impl<e_f32>(R, N, D, Q, ldq, reinterpret_cast<const char *>(K), ldk, ST);
}

LLMKIT_AVX2_FN void dots_half_avx2(int R, int N, int D, const float *Q, int64_t ldq, const uint16_t *K, int64_t ldk,
                                   bool is_bf16, float *ST) {
    const char *k = reinterpret_cast<const char *>(K);
    if (is_bf16)
        dots_impl<e_bf16>(R, N, D, Q, ldq, k, ldk, ST);
    else
        dots_impl<e_f16>(R, N, D, Q, ldq, k, ldk, ST);
}

// ---- decode with spread prefetches -----------------------------------------

LLMKIT_AVX2_FN void dots_pf_avx2(int R, int N, int D, const float *Q, int64_t ldq, const void *K, int64_t ldk,
                                 row_type e, const float *scales, float *ST, const char *pf, int64_t pf_bytes) {
    // One step per block of keys of the first row group (3 keys for 4+ rows, else 4).
    spread_prefetch s(pf, pf_bytes, R >= 4 ? (N + 2) / 3 : (N + 3) / 4);
    const char *k = static_cast<const char *>(K);
    switch (e) {
    case row_type::f32: dots_impl<e_f32>(R, N, D, Q, ldq, k, ldk, ST, &s); break;
    case row_type::bf16: dots_impl<e_bf16>(R, N, D, Q, ldq, k, ldk, ST, &s); break;
    case row_type::f16: dots_impl<e_f16>(R, N, D, Q, ldq, k, ldk, ST, &s); break;
    case row_type::i8: dots_impl<e_i8>(R, N, D, Q, ldq, k, ldk, ST, &s, scales); break;
    case row_type::e4m3: dots_impl<e_e4m3>(R, N, D, Q, ldq, k, ldk, ST, &s, scales); break;
    case row_type::e5m2: dots_impl<e_e5m2>(R, N, D, Q, ldq, k, ldk, ST, &s, scales); break;
    }
    s.rest();
}

LLMKIT_AVX2_FN void gemm_pf_avx2(int M, int N, int K, const float *A, int64_t ars, int64_t aks, const void *B,
                                 int64_t ldb, row_type e, float *C, int64_t ldc, bool accumulate,
                                 const float *row_scale, const char *pf, int64_t pf_bytes) {
    // One step per panel of 24 columns then 16 for M <= 4 (gemm_few_rows),
    // else per block of up to 6 rows of each panel of 16: a prefill's tile of
    // 64 keys stepped once per panel asked for 72 lines of the next tile's K
    // or V at a time, which stalled on the miss buffers (4% of an fp32
    // prefill at 8192 tokens sat on the prefetches); per block, that prefill
    // ran 1.12x faster (2-core Zen 3 VM, calls alternated with the old).
    const int steps = M > 0 && M <= 4 ? N / 24 + (N % 24 + 15) / 16 : (N + 15) / 16 * ((M + 5) / 6);
    spread_prefetch s(pf, pf_bytes, steps);
    const char *b = static_cast<const char *>(B);
    switch (e) {
    case row_type::f32: gemm_impl<e_f32>(M, N, K, A, ars, aks, b, ldb, C, ldc, accumulate, row_scale, &s); break;
    case row_type::bf16: gemm_impl<e_bf16>(M, N, K, A, ars, aks, b, ldb, C, ldc, accumulate, row_scale, &s); break;
    case row_type::f16: gemm_impl<e_f16>(M, N, K, A, ars, aks, b, ldb, C, ldc, accumulate, row_scale, &s); break;
    case row_type::i8: gemm_impl<e_i8>(M, N, K, A, ars, aks, b, ldb, C, ldc, accumulate, row_scale, &s); break;
    case row_type::e4m3: gemm_impl<e_e4m3>(M, N, K, A, ars, aks, b, ldb, C, ldc, accumulate, row_scale, &s); break;
    case row_type::e5m2: gemm_impl<e_e5m2>(M, N, K, A, ars, aks, b, ldb, C, ldc, accumulate, row_scale, &s); break;
    }
    s.rest();
}

// ---- decode over plain [S, H, D] rows ----------------------------------------

// NJ keys (rows ldk elements apart) against R query rows (of D): dots_block
// over groups of 4 rows.
template <int NJ, int E>
LLMKIT_AVX2 void dots_keys(int R, int D, const float *Q, const char *K, int64_t ldk, float *ST) {
    int r = 0;
    for (; r + 4 <= R; r += 4) dots_block<4, NJ, E>(R, D, Q + r * D, D, K, ldk, ST + r, nullptr);
    switch (R - r) {
    case 3: dots_block<3, NJ, E>(R, D, Q + r * D, D, K, ldk, ST + r, nullptr); break;
    case 2: dots_block<2, NJ, E>(R, D, Q + r * D, D, K, ldk, ST + r, nullptr); break;
    case 1: dots_block<1, NJ, E>(R, D, Q + r * D, D, K, ldk, ST + r, nullptr); break;
    default: break;
    }
}

// Three keys at a time (dots_block's 12 accumulators for 4 rows), every head
// in turn: the call reads three tokens' rows front to back (12 KiB for 8
// heads of 128 float32), each head's part of them once.
template <int E>
LLMKIT_AVX2 void dots_tokens(int H, int R, int N, int D, const float *Q, const char *K, float *ST, int64_t hs,
                             stream_prefetch *pf) {
    constexpr int64_t eb = elem_bytes<E>();
    const int64_t ts = int64_t(H) * D, row_bytes = D * eb;
    int j = 0;
    for (; j + 3 <= N; j += 3)
        for (int h = 0; h < H; ++h) {
            pf->upto(j * ts * eb + 3 * (h + 1) * row_bytes);
            dots_keys<3, E>(R, D, Q + h * hs, K + (j * ts + h * D) * eb, ts, ST + h * hs + j * R);
        }
    for (; j < N; ++j)
        for (int h = 0; h < H; ++h) {
            pf->upto(j * ts * eb + (h + 1) * row_bytes);
            dots_keys<1, E>(R, D, Q + h * hs, K + (j * ts + h * D) * eb, ts, ST + h * hs + j * R);
        }
}

// `group` keys at a time, every head in turn; each head's output rows are
// loaded and stored once per group.
template <int E>
LLMKIT_AVX2 void gemm_tokens(int H, int R, int N, int D, int group, const float *P, const char *V, float *O,
                             const float *alpha, int64_t hs, stream_prefetch *pf) {
    constexpr int64_t eb = elem_bytes<E>();
    const int64_t ts = int64_t(H) * D, row_bytes = D * eb;
    for (int j = 0; j < N; j += group) {
        const int n = imin(group, N - j);
        for (int h = 0; h < H; ++h) {
            pf->upto(j * ts * eb + n * (h + 1) * row_bytes);
            gemm_impl<E>(R, D, n, P + h * hs + j * R, 1, R, V + (j * ts + h * D) * eb, ts, O + h * hs, D, true,
                         j == 0 && alpha ? alpha + h * hs : nullptr);
        }
    }
}

LLMKIT_AVX2_FN void dots_tokens_pf_avx2(int H, int R, int N, int D, const float *Q, const void *K, row_type e,
                                        float *ST, int64_t head_stride, const char *pf, int64_t pf_bytes,
                                        int64_t ahead) {
    const char *k = static_cast<const char *>(K);
    const int64_t eb = e == row_type::f32 ? 4 : 2;
    stream_prefetch s(k, int64_t(N) * H * D * eb, pf, pf_bytes, ahead);
    switch (e) {
    case row_type::f32: dots_tokens<e_f32>(H, R, N, D, Q, k, ST, head_stride, &s); break;
    case row_type::bf16: dots_tokens<e_bf16>(H, R, N, D, Q, k, ST, head_stride, &s); break;
    case row_type::f16: dots_tokens<e_f16>(H, R, N, D, Q, k, ST, head_stride, &s); break;
    default: break;  // 8-bit rows: not taken (see kernels.hpp)
    }
}

LLMKIT_AVX2_FN void gemm_tokens_pf_avx2(int H, int R, int N, int D, int group, const float *P, const void *V,
                                        row_type e, float *O, const float *alpha, int64_t head_stride, const char *pf,
                                        int64_t pf_bytes, int64_t ahead) {
    const char *v = static_cast<const char *>(V);
    const int64_t eb = e == row_type::f32 ? 4 : 2;
    stream_prefetch s(v, int64_t(N) * H * D * eb, pf, pf_bytes, ahead);
    switch (e) {
    case row_type::f32: gemm_tokens<e_f32>(H, R, N, D, group, P, v, O, alpha, head_stride, &s); break;
    case row_type::bf16: gemm_tokens<e_bf16>(H, R, N, D, group, P, v, O, alpha, head_stride, &s); break;
    case row_type::f16: gemm_tokens<e_f16>(H, R, N, D, group, P, v, O, alpha, head_stride, &s); break;
    default: break;  // 8-bit rows: not taken
    }
}

// ---- softmax -------------------------------------------------------------

// w (1..8) consecutive floats; the other lanes read `fill`.
LLMKIT_AVX2 __m256 load_lanes(const float *p, int w, float fill) {
    if (w == 8) return _mm256_loadu_ps(p);
    const __m256i mk = lane_mask(w);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, mk), _mm256_castsi256_ps(mk));
}

LLMKIT_AVX2 void store_lanes(float *p, int w, __m256 x) {
    if (w == 8) {
        _mm256_storeu_ps(p, x);
        return;
    }
    alignas(32) float t[8];
    _mm256_store_ps(t, x);
    for (int i = 0; i < w; ++i) p[i] = t[i];
}

// Lane l of the result combines the lanes l' == l (mod R) of x, R in {1, 2, 4}:
// folds the 8 lanes of a packed [keys][R] vector into per-row values.
LLMKIT_AVX2 __m256 fold_max(__m256 x, int R) {
    x = _mm256_max_ps(x, _mm256_permute2f128_ps(x, x, 1));
    if (R <= 2) x = _mm256_max_ps(x, _mm256_permute_ps(x, 0x4E));
    if (R == 1) x = _mm256_max_ps(x, _mm256_permute_ps(x, 0xB1));
    return x;
}

LLMKIT_AVX2 __m256 fold_sum(__m256 x, int R) {
    x = _mm256_add_ps(x, _mm256_permute2f128_ps(x, x, 1));
    if (R <= 2) x = _mm256_add_ps(x, _mm256_permute_ps(x, 0x4E));
    if (R == 1) x = _mm256_add_ps(x, _mm256_permute_ps(x, 0xB1));
    return x;
}

// Fewer rows than a vector (R = 1, 2 or 4, decode): the tile's N * R scores
// are contiguous, so whole vectors of 8 / R keys x R rows are processed and
// folded per row at the end.
LLMKIT_AVX2 void softmax_packed(float *ST, int N, int R, float *m, float *l, float *alpha) {
    const float ninf_f = -__builtin_inff();
    alignas(32) float mp[8], lp[8];
    for (int i = 0; i < 8; ++i) mp[i] = m[i % R], lp[i] = l[i % R];
    const __m256 m_old = _mm256_load_ps(mp);
    const int total = N * R, nv = total / 8, rest = total - 8 * nv;
    __m256 mx = m_old;
    for (int v = 0; v < nv; ++v) mx = _mm256_max_ps(mx, _mm256_loadu_ps(ST + 8 * v));
    if (rest) mx = _mm256_max_ps(mx, load_lanes(ST + 8 * nv, rest, ninf_f));
    mx = fold_max(mx, R);
    const __m256 dead = _mm256_cmp_ps(mx, _mm256_set1_ps(ninf_f), _CMP_EQ_OQ);
    const __m256 sub = _mm256_blendv_ps(mx, _mm256_setzero_ps(), dead);
    const __m256 a = _mm256_blendv_ps(exp256(_mm256_sub_ps(m_old, sub)), _mm256_set1_ps(1.0f), dead);
    __m256 sum = _mm256_setzero_ps();
    for (int v = 0; v < nv; ++v) {
        const __m256 p = exp256(_mm256_sub_ps(_mm256_loadu_ps(ST + 8 * v), sub));
        _mm256_storeu_ps(ST + 8 * v, p);
        sum = _mm256_add_ps(sum, p);
    }
    if (rest) {
        const __m256 p = exp256(_mm256_sub_ps(load_lanes(ST + 8 * nv, rest, ninf_f), sub));
        store_lanes(ST + 8 * nv, rest, p);
        sum = _mm256_add_ps(sum, p);
    }
    sum = fold_sum(sum, R);
    const __m256 l_new = _mm256_fmadd_ps(_mm256_load_ps(lp), a, sum);
    store_lanes(l, R, l_new);
    store_lanes(m, R, mx);
    store_lanes(alpha, R, a);
}

LLMKIT_AVX2_FN void softmax_tile_avx2(float *ST, int N, int R, float *m, float *l, float *alpha) {
    if (R == 1 || R == 2 || R == 4) {
        softmax_packed(ST, N, R, m, l, alpha);
        return;
    }
    const float ninf_f = -__builtin_inff();
    const __m256 ninf = _mm256_set1_ps(ninf_f);
    for (int r = 0; r < R; r += 8) {
        const int w = imin(8, R - r);
        const __m256 m_old = load_lanes(m + r, w, ninf_f);
        __m256 mx = m_old;
        for (int j = 0; j < N; ++j) mx = _mm256_max_ps(mx, load_lanes(ST + j * R + r, w, ninf_f));
        // Rows that have seen no visible key yet keep m = -inf: subtract 0 instead,
        // so their p = exp(-inf) = 0 and alpha = 1.
        const __m256 dead = _mm256_cmp_ps(mx, ninf, _CMP_EQ_OQ);
        const __m256 sub = _mm256_blendv_ps(mx, _mm256_setzero_ps(), dead);
        const __m256 a = _mm256_blendv_ps(exp256(_mm256_sub_ps(m_old, sub)), _mm256_set1_ps(1.0f), dead);
        __m256 sum = _mm256_setzero_ps();
        for (int j = 0; j < N; ++j) {
            const __m256 p = exp256(_mm256_sub_ps(load_lanes(ST + j * R + r, w, ninf_f), sub));
            store_lanes(ST + j * R + r, w, p);
            sum = _mm256_add_ps(sum, p);
        }
        const __m256 l_new = _mm256_fmadd_ps(load_lanes(l + r, w, 0.0f), a, sum);
        store_lanes(l + r, w, l_new);
        store_lanes(m + r, w, mx);
        store_lanes(alpha + r, w, a);
    }
}

// ---- conversions ---------------------------------------------------------

// 8 halves (as 32-bit lanes) to float32: bf16 by a shift; fp16 by F16C, with
// NaN lanes rebuilt by hand (vcvtph2ps quiets signalling NaNs, the portable
// conversion keeps every payload bit).
LLMKIT_AVX2 __m256 halves_to_f32(__m128i h, bool is_bf16) {
    const __m256i x = _mm256_cvtepu16_epi32(h);
    if (is_bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
    const __m256 f = _mm256_cvtph_ps(h);
    const __m256i mag = _mm256_and_si256(x, _mm256_set1_epi32(0x7FFF));
    const __m256i nan = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7C00));
    const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x8000)), 16);
    const __m256i bits = _mm256_or_si256(_mm256_or_si256(sign, _mm256_set1_epi32(0x7F800000)),
                                         _mm256_slli_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x3FF)), 13));
    return _mm256_blendv_ps(f, _mm256_castsi256_ps(bits), _mm256_castsi256_ps(nan));
}

LLMKIT_AVX2_FN void half_to_f32_avx2(float *dst, const uint16_t *src, int64_t n, bool is_bf16) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(src + i));
        _mm256_storeu_ps(dst + i, halves_to_f32(_mm256_castsi256_si128(h), is_bf16));
        _mm256_storeu_ps(dst + i + 8, halves_to_f32(_mm256_extracti128_si256(h, 1), is_bf16));
    }
    for (; i < n; i += 8) {
        const int w = int(n - i < 8 ? n - i : 8);
        __m128i h;
        if (w == 8) {
            h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(src + i));
        } else {
            alignas(16) uint16_t t[8] = {};
            for (int k = 0; k < w; ++k) t[k] = src[i + k];
            h = _mm_load_si128(reinterpret_cast<const __m128i *>(t));
        }
        store_lanes(dst + i, w, halves_to_f32(h, is_bf16));
    }
}

// 8 floats to 8 halves (32-bit lanes), rounded to nearest even as
// core::f32_to_bf16 / f32_to_f16: bf16 by integer rounding, NaN -> quiet NaN
// keeping the top payload bits; fp16 by F16C, NaN -> sign | 0x7E00.
LLMKIT_AVX2 __m256i f32_to_halves(__m256 x, bool is_bf16) {
    const __m256i b = _mm256_castps_si256(x);
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    if (is_bf16) {
        const __m256i hi = _mm256_srli_epi32(b, 16);
        const __m256i lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
        const __m256i r =
            _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7FFF)), lsb), 16);
        const __m256i q = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
        return _mm256_castps_si256(
            _mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(q), nan));
    }
    const __m256i h = _mm256_cvtepu16_epi32(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(0x8000)),
                                      _mm256_set1_epi32(0x7E00));
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(h), _mm256_castsi256_ps(q), nan));
}

LLMKIT_AVX2_FN void f32_to_half_avx2(uint16_t *dst, const float *src, int64_t n, bool is_bf16) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i a = f32_to_halves(_mm256_loadu_ps(src + i), is_bf16);
        const __m256i b = f32_to_halves(_mm256_loadu_ps(src + i + 8), is_bf16);
        // packus interleaves the 128-bit halves: put them back in order.
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(dst + i), p);
    }
    for (; i < n; i += 8) {
        const int w = int(n - i < 8 ? n - i : 8);
        const __m256i a = f32_to_halves(load_lanes(src + i, w, 0.0f), is_bf16);
        const __m128i p = _mm_packus_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
        if (w == 8) {
            _mm_storeu_si128(reinterpret_cast<__m128i *>(dst + i), p);
        } else {
            alignas(16) uint16_t t[8];
            _mm_store_si128(reinterpret_cast<__m128i *>(t), p);
            for (int k = 0; k < w; ++k) dst[i + k] = t[k];
        }
    }
}

// 8-bit rows of type E (not int8) through load8: raw values times the row scales.
template <int E>
LLMKIT_AVX2 void fp8_to_f32(float *dst, const char *src, int64_t rows, int64_t D, const float *scales) {
    for (int64_t r = 0; r < rows; ++r) {
        const __m256 s = _mm256_set1_ps(scales[r]);
        const char *in = src + r * D;
        float *out = dst + r * D;
        int64_t d = 0;
        for (; d + 8 <= D; d += 8) _mm256_storeu_ps(out + d, _mm256_mul_ps(load8<E>(in + d), s));
        if (d < D) {
            const int w = int(D - d);
            store_lanes(out + d, w, _mm256_mul_ps(load8_part<E>(in + d, w, lane_mask(w)), s));
        }
    }
}

LLMKIT_AVX2_FN void q8_to_f32_avx2(float *dst, const void *src_any, int64_t rows, int64_t D, const float *scales,
                                   row_type e) {
    if (e != row_type::i8) {
        const char *p = static_cast<const char *>(src_any);
        if (e == row_type::e4m3)
            fp8_to_f32<e_e4m3>(dst, p, rows, D, scales);
        else
            fp8_to_f32<e_e5m2>(dst, p, rows, D, scales);
        return;
    }
    const int8_t *src = static_cast<const int8_t *>(src_any);
    for (int64_t r = 0; r < rows; ++r) {
        const __m256 s = _mm256_set1_ps(scales[r]);
        const int8_t *in = src + r * D;
        float *out = dst + r * D;
        int64_t d = 0;
        for (; d + 16 <= D; d += 16) {
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i *>(in + d));
            _mm256_storeu_ps(out + d, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), s));
            _mm256_storeu_ps(out + d + 8,
                             _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8))), s));
        }
        for (; d < D; d += 8) {
            const int w = int(D - d < 8 ? D - d : 8);
            alignas(16) int8_t t[16] = {};
            for (int k = 0; k < w; ++k) t[k] = in[d + k];
            const __m128i b = _mm_load_si128(reinterpret_cast<const __m128i *>(t));
            store_lanes(out + d, w, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), s));
        }
    }
}

const kernels k_avx2 = {"avx2",           gemm_avx2,      dots_avx2,      softmax_tile_avx2,
                        half_to_f32_avx2, f32_to_half_avx2, q8_to_f32_avx2, dots_half_avx2,
                        gemm_half_avx2,   dots_pf_avx2,   gemm_pf_avx2,      dots_tokens_pf_avx2,
                        gemm_tokens_pf_avx2};

}  // namespace

const kernels *avx2_kernels() {
    static const bool ok = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && core::cpu_has_f16c();
    }();
    return ok ? &k_avx2 : nullptr;
}
#else
const kernels *avx2_kernels() { return nullptr; }
#endif

}  // namespace llmkit::attention
