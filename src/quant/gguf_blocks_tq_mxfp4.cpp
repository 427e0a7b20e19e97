// The GGUF block formats that store no fitted scale: the ternary TQ1_0 and
// TQ2_0 (BitNet b1.58 weights, every value d * {-1, 0, +1} with d the block's
// absolute maximum) and MXFP4 (OCP microscaling FP4, gpt-oss's weights: a
// power-of-two scale and 4-bit E2M1 values). Byte-exact with ggml's reference
// quantizers (quantize_row_tq1_0_ref, _tq2_0_ref, _mxfp4_ref) and with gguf-py's
// numpy ones; see gguf_blocks.hpp for the conventions.
//
// None of the three takes an importance matrix: their levels are fixed by the
// block's maximum, and ggml ignores the weights too.
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

#include "quant/gguf_blocks.hpp"
#include "quant/gguf_codebooks.hpp"
#include "quant/gguf_f16.hpp"

namespace llmkit::quant {

namespace {

constexpr int qk_k = 256;

float abs_max(const float *x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; ++j) {
        const float a = std::fabs(x[j]);
        amax = a > amax ? a : amax;  // input is finite (checked by the caller): a max that vectorizes
    }
    return amax;
}

// A ternary block's scale d = max |x| and its 256 digits (0, 1, 2 for -1, 0,
// +1): x * (1 / d) rounded half away from zero, as ggml's lroundf (|x / d| <=
// 1 + 2^-23, so only the +-0.5 thresholds matter). A block whose maximum is
// subnormal has 1 / d = inf, so x * id is inf or NaN: lroundf's x86-64 result
// there (LONG_MIN) plus one, truncated to int, is 1, and so it is here.
// Written as compares so that the loop vectorizes.
float ternary_digits(const float *x, uint8_t *t) {
    const float d = abs_max(x, qk_k);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < qk_k; ++j) {
        const float r = x[j] * id;
        const int digit = int(r >= 0.5f) - int(r <= -0.5f) + 1;
        t[j] = uint8_t(std::fabs(r) < 2.0f ? digit : 1);
    }
    return d;
}

}  // namespace

// ---------------------------------------------------------------- TQ2_0
// {u8 qs[64]; f16 d}: 256 values of 2 bits. Byte m of each 32-byte half holds
// the 4 values m, m + 32, m + 64, m + 96 of that half's 128, lowest bits first.

void quantize_tq2_0(const float *x, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k) {
        uint8_t *o = static_cast<uint8_t *>(dst) + b * 66;
        uint8_t t[qk_k];
        const float d = ternary_digits(x, t);
        for (int half = 0; half < 2; ++half)
            for (int m = 0; m < 32; ++m) {
                const uint8_t *h = t + 128 * half + m;
                o[32 * half + m] = uint8_t(h[0] | h[32] << 2 | h[64] << 4 | h[96] << 6);
            }
        put_f16(o + 64, d);
    }
}

void dequantize_tq2_0(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b) {
        const uint8_t *p = static_cast<const uint8_t *>(src) + b * 66;
        const float d = get_f16(p + 64);
        for (int half = 0; half < 2; ++half)
            for (int k = 0; k < 4; ++k)
                for (int m = 0; m < 32; ++m)
                    *y++ = float(int((p[32 * half + m] >> (2 * k)) & 3) - 1) * d;
    }
}

// ---------------------------------------------------------------- TQ1_0
// {u8 qs[48]; u8 qh[4]; f16 d}: 256 values at 1.6875 bits. Five base-3 digits
// t0..t4 make the number v = 81 t0 + 27 t1 + 9 t2 + 3 t3 + t4 < 243, stored as
// the byte ceil(v * 256 / 243), so that digit k comes back as the top of
// (byte * 3^k mod 256) * 3, an 8-bit multiply and a shift, no division. qs[0..32)
// hold values 0..159 (byte m: m, m + 32, ..., m + 128), qs[32..48) values
// 160..239 (byte m: 160 + m, 176 + m, ...), qh[0..4) four digits each of
// 240..255 (byte m: 240 + m, 244 + m, 248 + m, 252 + m; the fifth digit 0).

namespace {

// ceil(v * 256 / 243) of the base-3 number v = 81 t[0] + 27 t[s] + 9 t[2s] +
// 3 t[3s] + t[4s] (the last digit 0 when only four are given).
inline uint8_t pack5(const uint8_t *t, int s, bool five = true) {
    const int v = 81 * t[0] + 27 * t[s] + 9 * t[2 * s] + 3 * t[3 * s] + (five ? t[4 * s] : 0);
    return uint8_t((v * 256 + 242) / 243);
}

}  // namespace

void quantize_tq1_0(const float *x, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k) {
        uint8_t *o = static_cast<uint8_t *>(dst) + b * 54;
        uint8_t t[qk_k];
        const float d = ternary_digits(x, t);
        for (int m = 0; m < 32; ++m) o[m] = pack5(t + m, 32);
        for (int m = 0; m < 16; ++m) o[32 + m] = pack5(t + 160 + m, 16);
        for (int m = 0; m < 4; ++m) o[48 + m] = pack5(t + 240 + m, 4, false);
        put_f16(o + 52, d);
    }
}

namespace {

constexpr uint8_t pow3[5] = {1, 3, 9, 27, 81};

// Digit k of a packed byte (see above), as -1, 0 or +1.
inline int unpack_trit(uint8_t byte, int k) {
    const uint8_t shifted = uint8_t(byte * pow3[k]);
    return ((unsigned(shifted) * 3) >> 8) - 1;
}

}  // namespace

void dequantize_tq1_0(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b) {
        const uint8_t *p = static_cast<const uint8_t *>(src) + b * 54;
        const float d = get_f16(p + 52);
        for (int k = 0; k < 5; ++k)
            for (int m = 0; m < 32; ++m) *y++ = float(unpack_trit(p[m], k)) * d;
        for (int k = 0; k < 5; ++k)
            for (int m = 0; m < 16; ++m) *y++ = float(unpack_trit(p[32 + m], k)) * d;
        for (int k = 0; k < 4; ++k)
            for (int m = 0; m < 4; ++m) *y++ = float(unpack_trit(p[48 + m], k)) * d;
    }
}

// ---------------------------------------------------------------- MXFP4
// {u8 e; u8 qs[16]}: 32 values. e is an E8M0 exponent; the code below works with
// d = 2^(e - 128), half the OCP scale, so that the E2M1 values become the
// integers 2 * {0, 0.5, 1, 1.5, 2, 3, 4, 6} (indices 0-7, and 8-15 negated).
// Byte j holds value j (low nibble) and value j + 16 (high nibble).

namespace {

// The nearest of the 16 codes for each of the 32 values, as ggml's scan finds
// it: the first code (in the table's order) whose rounded error |k d - x| is
// smallest. k d is exact (d is a power of two), so for x < 0 code 8 + i has
// exactly the error code i has for |x|, and every positive level's error is
// larger than code 0's |x|: the scan reduces to the 8 magnitudes of |x|, ties
// to the smaller, with the sign's 8 added where the level is not zero (code 8,
// -0, never wins: code 0 comes first with the same error).
void nearest_codes_scalar(const float *x, float d, uint8_t *code) {
    for (int j = 0; j < 32; ++j) {
        const float a = std::fabs(x[j]);
        float best = a;
        int idx = 0;
        for (int c = 1; c < 8; ++c) {
            const float err = std::fabs(float(k_e2m1_doubled[c]) * d - a);
            if (err < best) {
                best = err;
                idx = c;
            }
        }
        code[j] = uint8_t(idx + (x[j] < 0.0f && idx != 0 ? 8 : 0));
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The same compares 8 lanes at a time (AVX2, chosen at run time): the same
// IEEE subtractions and absolute values, so the same codes.
__attribute__((target("avx2"))) void nearest_codes_avx2(const float *x, float d, uint8_t *code) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 ax[4], best[4];
    __m256i idx[4];
    for (int v = 0; v < 4; ++v) {
        ax[v] = _mm256_and_ps(_mm256_loadu_ps(x + 8 * v), abs_mask);
        best[v] = ax[v];
        idx[v] = _mm256_setzero_si256();
    }
    for (int c = 1; c < 8; ++c) {
        const __m256 level = _mm256_set1_ps(float(k_e2m1_doubled[c]) * d);
        const __m256i cv = _mm256_set1_epi32(c);
        for (int v = 0; v < 4; ++v) {
            const __m256 err = _mm256_and_ps(_mm256_sub_ps(level, ax[v]), abs_mask);
            const __m256 better = _mm256_cmp_ps(err, best[v], _CMP_LT_OQ);
            best[v] = _mm256_blendv_ps(best[v], err, better);
            idx[v] = _mm256_blendv_epi8(idx[v], cv, _mm256_castps_si256(better));
        }
    }
    for (int v = 0; v < 4; ++v) {
        // + 8 where x < 0 and the level is not zero.
        const __m256i neg = _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(x + 8 * v), _mm256_setzero_ps(), _CMP_LT_OQ));
        const __m256i nonzero = _mm256_xor_si256(_mm256_cmpeq_epi32(idx[v], _mm256_setzero_si256()), _mm256_set1_epi32(-1));
        const __m256i c = _mm256_add_epi32(idx[v], _mm256_and_si256(_mm256_and_si256(neg, nonzero), _mm256_set1_epi32(8)));
        alignas(32) int32_t lanes[8];
        _mm256_store_si256(reinterpret_cast<__m256i *>(lanes), c);
        for (int k = 0; k < 8; ++k) code[8 * v + k] = uint8_t(lanes[k]);
    }
}

#endif

}  // namespace

void mxfp4_nearest_codes(const float *x, float d, uint8_t *code) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (avx2_quantizers_enabled()) return nearest_codes_avx2(x, d, code);
#endif
    nearest_codes_scalar(x, d, code);
}

void quantize_mxfp4(const float *x, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, x += 32) {
        uint8_t *o = static_cast<uint8_t *>(dst) + b * 17;
        const float amax = abs_max(x, 32);
        // floor(log2(amax)) - 2 + 127 lies in [-24, 253] for finite input; the
        // byte keeps its low 8 bits, as ggml's (uint8_t) cast does on x86-64
        // (a block below 2^-125 wraps to a huge scale and stores code 0).
        const uint8_t e = amax > 0.0f ? uint8_t(int(std::floor(std::log2(amax)) - 2.0f + 127.0f) & 0xff) : 0;
        o[0] = e;
        uint8_t code[32];
        mxfp4_nearest_codes(x, e8m0_half(e), code);
        for (int j = 0; j < 16; ++j) o[1 + j] = uint8_t(code[j] | (code[j + 16] << 4));
    }
}

void dequantize_mxfp4(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, y += 32) {
        const uint8_t *p = static_cast<const uint8_t *>(src) + b * 17;
        const float d = e8m0_half(p[0]);
        for (int j = 0; j < 16; ++j) {
            y[j] = float(k_e2m1_doubled[p[1 + j] & 0x0f]) * d;
            y[j + 16] = float(k_e2m1_doubled[p[1 + j] >> 4]) * d;
        }
    }
}

}  // namespace llmkit::quant
