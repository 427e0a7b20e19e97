// GGUF block formats: reference quantizers and dequantizers, byte-exact with
// ggml (see gguf_blocks.hpp). Block layouts follow ggml-common.h; every block
// is read and written through byte offsets, never through packed structs, so
// the code does not depend on the host's struct padding. Multi-byte fields are
// little-endian, as GGUF stores them (llmkit supports little-endian hosts only).
//
// Each routine mirrors the arithmetic of ggml's reference code step by step
// (same operand order, float precision throughout), because a different but
// mathematically equal expression rounds differently and changes the bytes.
#include "quant/gguf_blocks.hpp"
#include "quant/gguf_codebooks.hpp"
#include "quant/gguf_f16.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstring>

#include "core/tensor.hpp"

// The 32-element quantizers (Q4_0, Q4_1, Q5_0, Q5_1) run 4 floats at a time
// with SSE2 (part of every x86-64 CPU): the same IEEE operations, and
// cvttps2dq truncates, out-of-range values included, exactly as the scalar
// cvttss2si that ggml's casts compile to. Elsewhere the scalar loops run.
#if defined(__SSE2__)
#include <emmintrin.h>
#define LLMKIT_QUANT_SSE2 1
#endif
// Q4_0 and Q4_1 also have AVX2 forms (functions built for AVX2 by a target
// attribute, chosen at run time by has_avx2()): the same operations 8 wide.
// F16C comes with them (every AVX2 CPU has it; the F16 type converts with it).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "core/cpu_features.hpp"
#define LLMKIT_QUANT_AVX2 1
#define LLMKIT_AVX2_FN __attribute__((target("avx2,f16c")))
#endif

namespace llmkit::quant {

int nearest_int(float x) noexcept {
    // Adding 1.5 * 2^23 leaves the rounded integer in the low mantissa bits.
    const float biased = x + 12582912.0f;
    int32_t bits;
    std::memcpy(&bits, &biased, 4);
    return (bits & 0x007fffff) - 0x00400000;
}

namespace {

// The fits below run dozens of candidate scales over 16-32 values: GCC builds
// them twice, for AVX2 and for the baseline, and picks one at load time. The
// arithmetic is the same IEEE float ops either way (FMA is not enabled and
// contraction is off), so the bytes do not depend on the CPU.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define LLMKIT_FIT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LLMKIT_FIT_CLONES
#endif

// Tests turn the AVX2 paths off (set_avx2_quantizers) to compare them with
// the baseline ones byte for byte.
std::atomic<bool> g_avx2_enabled{true};

#ifdef LLMKIT_QUANT_AVX2
bool cpu_has_avx2() {
    static const bool yes = __builtin_cpu_supports("avx2") && core::cpu_has_f16c();
    return yes;
}
bool has_avx2() { return cpu_has_avx2() && g_avx2_enabled.load(std::memory_order_relaxed); }
#endif

constexpr int qk_k = 256;              // elements of a K-quant super-block
constexpr float group_max_eps = 1e-15f;  // below this a group counts as all zero


inline uint8_t *out_block(void *dst, int64_t i, int64_t bytes) { return static_cast<uint8_t *>(dst) + i * bytes; }
inline const uint8_t *in_block(const void *src, int64_t i, int64_t bytes) {
    return static_cast<const uint8_t *>(src) + i * bytes;
}
inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// float -> int truncation as ggml's casts compile on x86-64 (cvttss2si): an
// in-range value truncates toward zero; NaN and out-of-range values give
// INT_MIN instead of the C++ undefined behaviour. Reachable with finite input:
// huge values (hi - lo overflows to inf, so 0 * inf) or a block whose absmax
// is so small that 1 / d overflows.
inline int trunc_int(float v) {
    if (v >= -2147483648.0f && v < 2147483648.0f) return int(v);
    return INT32_MIN;
}
// ggml's (int8_t) and (uint8_t) casts of a float (to_u8: the non-SSE2 Q5_1 path).
inline int8_t to_i8(float v) { return int8_t(trunc_int(v)); }
[[maybe_unused]] inline uint8_t to_u8(float v) { return uint8_t(trunc_int(v)); }

// ---------------------------------------------------------------- F32, F16, BF16

void quantize_f32(const float *x, void *dst, int64_t n) { std::memcpy(dst, x, size_t(n) * 4); }
void dequantize_f32(const void *src, float *y, int64_t n) { std::memcpy(y, src, size_t(n) * 4); }

#ifdef LLMKIT_QUANT_AVX2
// F16 and BF16 eight values at a time (AVX2; F16 with F16C's conversion,
// which rounds to nearest even as put_f16 does). A group holding a NaN goes
// through the scalar path, whose NaN is core's canonical quiet one where
// F16C's would keep the payload.
LLMKIT_AVX2_FN void quantize_f16_f16c(const float *x, uint8_t *p, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0) {
            for (int64_t k = i; k < i + 8; ++k) put_f16(p + 2 * k, x[k]);
            continue;
        }
        _mm_storeu_si128(reinterpret_cast<__m128i *>(p + 2 * i),
                         _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < n; ++i) put_f16(p + 2 * i, x[i]);
}

// core::f32_to_bf16's formula: (bits + 0x7fff + bit 16) >> 16, a NaN's top
// half with the quiet bit set.
LLMKIT_AVX2_FN void quantize_bf16_avx2(const float *x, uint8_t *p, int64_t n) {
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff), quiet = _mm256_set1_epi32(0x40);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256i u = _mm256_castps_si256(v);
        const __m256i top = _mm256_srli_epi32(u, 16);
        const __m256i rounded =
            _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(top, one))), 16);
        const __m256i h = _mm256_blendv_epi8(rounded, _mm256_or_si256(top, quiet),
                                             _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
        // Eight values below 2^16 to 16 bits: packus works within 128-bit halves, the permute joins them.
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(h, h), _MM_SHUFFLE(3, 1, 2, 0));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(p + 2 * i), _mm256_castsi256_si128(packed));
    }
    for (; i < n; ++i) {
        const uint16_t h = core::f32_to_bf16(x[i]);
        std::memcpy(p + 2 * i, &h, 2);
    }
}

// F16C's widening is exact; a group holding a NaN goes through core's
// conversion, which keeps a signalling NaN signalling where F16C quiets it.
LLMKIT_AVX2_FN void dequantize_f16_f16c(const uint8_t *p, float *y, int64_t n) {
    const __m128i exponent = _mm_set1_epi16(0x7c00), magnitude = _mm_set1_epi16(0x7fff);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p + 2 * i));
        // NaN: magnitude above 0x7c00 (as signed 16-bit: the magnitude is below 0x8000).
        if (_mm_movemask_epi8(_mm_cmpgt_epi16(_mm_and_si128(h, magnitude), exponent)) != 0) {
            for (int64_t k = i; k < i + 8; ++k) y[k] = get_f16(p + 2 * k);
            continue;
        }
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; ++i) y[i] = get_f16(p + 2 * i);
}
#endif

void quantize_f16(const float *x, void *dst, int64_t n) {
    auto *p = static_cast<uint8_t *>(dst);
#ifdef LLMKIT_QUANT_AVX2
    if (has_avx2()) return quantize_f16_f16c(x, p, n);
#endif
    for (int64_t i = 0; i < n; ++i) put_f16(p + 2 * i, x[i]);
}
void dequantize_f16(const void *src, float *y, int64_t n) {
    const auto *p = static_cast<const uint8_t *>(src);
#ifdef LLMKIT_QUANT_AVX2
    if (has_avx2()) return dequantize_f16_f16c(p, y, n);
#endif
    for (int64_t i = 0; i < n; ++i) y[i] = get_f16(p + 2 * i);
}

void quantize_bf16(const float *x, void *dst, int64_t n) {
    auto *p = static_cast<uint8_t *>(dst);
#ifdef LLMKIT_QUANT_AVX2
    if (has_avx2()) return quantize_bf16_avx2(x, p, n);
#endif
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = core::f32_to_bf16(x[i]);
        std::memcpy(p + 2 * i, &h, 2);
    }
}
void dequantize_bf16(const void *src, float *y, int64_t n) {
    const auto *p = static_cast<const uint8_t *>(src);
    for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        y[i] = core::bf16_to_f32(h);
    }
}

// ---------------------------------------------------------------- 32-element blocks

// The signed value of largest magnitude (the first one on ties), or 0.
inline float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; ++j) {
        if (std::fabs(x[j]) > amax) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

inline void min_max(const float *x, int n, float &lo, float &hi) {
    lo = 3.402823466e+38f;
    hi = -3.402823466e+38f;
    for (int j = 0; j < n; ++j) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
}

inline float abs_max(const float *x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
    return amax;
}

#ifdef LLMKIT_QUANT_SSE2
// SSE2 forms of the scans and roundings above for one 32-element block.
// Each falls back to the scalar loop when the block holds a NaN (the drivers
// refuse NaN input, but these stay exact for any input).
struct block32_sse2 {
    __m128 v[8];  // x[0..31]
    bool ordered;  // no NaN

    explicit block32_sse2(const float *x) {
        __m128 ord = _mm_castsi128_ps(_mm_set1_epi32(-1));
        for (int i = 0; i < 8; ++i) {
            v[i] = _mm_loadu_ps(x + 4 * i);
            ord = _mm_and_ps(ord, _mm_cmpord_ps(v[i], v[i]));
        }
        ordered = _mm_movemask_ps(ord) == 0xF;
    }

    static float hmax(__m128 m) {
        m = _mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
        return _mm_cvtss_f32(_mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1))));
    }
    static float hmin(__m128 m) {
        m = _mm_min_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
        return _mm_cvtss_f32(_mm_min_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1))));
    }
    // The first element equal to `value` (which is one of them).
    float first_equal(const float *x, float value) const {
        const __m128 t = _mm_set1_ps(value);
        for (int i = 0; i < 8; ++i)
            if (const int m = _mm_movemask_ps(_mm_cmpeq_ps(v[i], t))) return x[4 * i + __builtin_ctz(unsigned(m))];
        return value;
    }

    // signed_absmax(x, 32): the largest |x| by a max reduction, then the first
    // element of that magnitude (its sign); 0 when every element is +-0.
    float signed_absmax(const float *x) const {
        if (!ordered) return llmkit::quant::signed_absmax(x, 32);
        const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
        __m128 m = _mm_setzero_ps();
        for (int i = 0; i < 8; ++i) m = _mm_max_ps(m, _mm_and_ps(v[i], abs_mask));
        const float amax = hmax(m);
        if (amax == 0.0f) return 0.0f;
        const __m128 t = _mm_set1_ps(amax);
        for (int i = 0; i < 8; ++i)
            if (const int k = _mm_movemask_ps(_mm_cmpeq_ps(_mm_and_ps(v[i], abs_mask), t)))
                return x[4 * i + __builtin_ctz(unsigned(k))];
        return 0.0f;  // not reached
    }
    // abs_max(x, 32): the largest |x| (max is exact; the scalar loop's
    // std::max keeps the first of equal values, which only matters for NaN).
    float abs_max(const float *x) const {
        if (!ordered) return llmkit::quant::abs_max(x, 32);
        const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
        __m128 m = _mm_setzero_ps();
        for (int i = 0; i < 8; ++i) m = _mm_max_ps(m, _mm_and_ps(v[i], abs_mask));
        return hmax(m);
    }
    // min_max(x, 32, lo, hi): the values by reductions; a zero result is the
    // first +-0 of the block, as the scalar scan keeps the first of equal values.
    void min_max(const float *x, float &lo, float &hi) const {
        if (!ordered) return llmkit::quant::min_max(x, 32, lo, hi);
        __m128 mn = v[0], mx = v[0];
        for (int i = 1; i < 8; ++i) {
            mn = _mm_min_ps(mn, v[i]);
            mx = _mm_max_ps(mx, v[i]);
        }
        lo = hmin(mn);
        hi = hmax(mx);
        if (lo == 0.0f) lo = first_equal(x, 0.0f);
        if (hi == 0.0f) hi = first_equal(x, 0.0f);
    }

    // Levels of elements 4i..4i+3: min(cap, int8_t(trunc((x - sub) * id + add))),
    // as int32 (cap < 0: no min, ggml's Q5_1).
    __m128i levels(int i, __m128 sub, __m128 id, __m128 add, int cap, bool subtract) const {
        const __m128 xs = subtract ? _mm_sub_ps(v[i], sub) : v[i];
        __m128i t = _mm_cvttps_epi32(_mm_add_ps(_mm_mul_ps(xs, id), add));
        t = _mm_srai_epi32(_mm_slli_epi32(t, 24), 24);  // the (int8_t) cast
        if (cap >= 0) {
            const __m128i c = _mm_set1_epi32(cap), over = _mm_cmpgt_epi32(t, c);
            t = _mm_or_si128(_mm_andnot_si128(over, t), _mm_and_si128(over, c));
        }
        return t;
    }
};

// Q8_0's levels int8_t(roundf(x * id)) of the 32 elements into q, roundf
// (half away from zero) as trunc, plus the sign when the rest is >= 0.5 (x -
// trunc(x) is exact below 2^23). Returns false, writing nothing, when some
// x * id is not below 2^23 in magnitude (or NaN): the scalar loop then runs.
inline bool put_q8_levels(const block32_sse2 &v, float id, uint8_t *q) {
    const __m128 vid = _mm_set1_ps(id), abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
    const __m128 limit = _mm_set1_ps(8388608.0f), half = _mm_set1_ps(0.5f);
    __m128i l[8];
    for (int i = 0; i < 8; ++i) {
        const __m128 y = _mm_mul_ps(v.v[i], vid);
        if (_mm_movemask_ps(_mm_cmplt_ps(_mm_and_ps(y, abs_mask), limit)) != 0xF) return false;
        const __m128i t = _mm_cvttps_epi32(y);
        const __m128 rest = _mm_and_ps(_mm_sub_ps(y, _mm_cvtepi32_ps(t)), abs_mask);
        // +1 or -1 (the sign of y) where |rest| >= 0.5: (y < 0 ? -1 : 1) is 1 | (sign bit >> 31, arithmetic).
        const __m128i sign = _mm_or_si128(_mm_srai_epi32(_mm_castps_si128(y), 31), _mm_set1_epi32(1));
        const __m128i up = _mm_castps_si128(_mm_cmpge_ps(rest, half));
        l[i] = _mm_add_epi32(t, _mm_and_si128(up, sign));
    }
    // |level| <= 2^23 here; int8_t keeps the low byte (as the scalar cast chain does).
    const __m128i low_byte = _mm_set1_epi32(0xFF);
    for (int h = 0; h < 2; ++h) {
        __m128i b[4];
        for (int i = 0; i < 4; ++i) b[i] = _mm_and_si128(l[4 * h + i], low_byte);
        const __m128i bytes = _mm_packus_epi16(_mm_packs_epi32(b[0], b[1]), _mm_packs_epi32(b[2], b[3]));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(q + 16 * h), bytes);
    }
    return true;
}

// qs[j] = uint8_t(a_j | c_j << 4) for the 16 int32 a (elements 0..15) and c (16..31).
inline void put_nibble_pairs(const __m128i *a, const __m128i *c, uint8_t *qs) {
    const __m128i low_byte = _mm_set1_epi32(0xFF);
    __m128i b[4];
    for (int i = 0; i < 4; ++i)
        b[i] = _mm_and_si128(_mm_or_si128(a[i], _mm_slli_epi32(c[i], 4)), low_byte);
    const __m128i bytes = _mm_packus_epi16(_mm_packs_epi32(b[0], b[1]), _mm_packs_epi32(b[2], b[3]));
    _mm_storeu_si128(reinterpret_cast<__m128i *>(qs), bytes);
}

// Q5 packing (put_q5_pair for j = 0..15): low nibbles into qs, bit 4 of a_j
// and c_j into bits j and j + 16 of the returned qh.
inline uint32_t put_q5_pairs(const __m128i *a, const __m128i *c, uint8_t *qs) {
    const __m128i nibble = _mm_set1_epi32(15);
    __m128i lo[4], hi[4];
    uint32_t qh = 0;
    for (int i = 0; i < 4; ++i) {
        lo[i] = _mm_and_si128(a[i], nibble);
        hi[i] = _mm_and_si128(c[i], nibble);
        // Bit 4 to the sign bit, then one bit per element.
        qh |= uint32_t(_mm_movemask_ps(_mm_castsi128_ps(_mm_slli_epi32(a[i], 27)))) << (4 * i);
        qh |= uint32_t(_mm_movemask_ps(_mm_castsi128_ps(_mm_slli_epi32(c[i], 27)))) << (16 + 4 * i);
    }
    put_nibble_pairs(lo, hi, qs);
    return qh;
}

// Q4_0 / Q5_0 (half = 8 / 16): d = signed absmax / -half, stored at o; the
// levels min(2 half - 1, int8_t(x * id + half + 0.5)) of elements 0..15 into
// a, of 16..31 into c.
inline void symmetric_levels(const block32_sse2 &v, const float *x, int half, uint8_t *o, __m128i *a, __m128i *c) {
    const float d = v.signed_absmax(x) / float(-half);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(o, d);
    const __m128 vid = _mm_set1_ps(id), add = _mm_set1_ps(float(half) + 0.5f), none = _mm_setzero_ps();
    for (int i = 0; i < 4; ++i) {
        a[i] = v.levels(i, none, vid, add, 2 * half - 1, false);
        c[i] = v.levels(i + 4, none, vid, add, 2 * half - 1, false);
    }
}

// Q4_1 / Q5_1 (nmax = 15 / 31): d = (max - min) / nmax and the min stored at
// o and o + 2; the levels of (x - min) * id + 0.5 (Q4_1: at most 15, as
// ggml's MIN; Q5_1: no min, as ggml's plain cast) of elements 0..15 into a,
// of 16..31 into c.
inline void asymmetric_levels(const block32_sse2 &v, const float *x, int nmax, uint8_t *o, __m128i *a, __m128i *c) {
    float lo, hi;
    v.min_max(x, lo, hi);
    const float d = (hi - lo) / float(nmax);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(o, d);
    put_f16(o + 2, lo);
    const __m128 vlo = _mm_set1_ps(lo), vid = _mm_set1_ps(id), add = _mm_set1_ps(0.5f);
    const int cap = nmax == 15 ? 15 : -1;
    for (int i = 0; i < 4; ++i) {
        a[i] = v.levels(i, vlo, vid, add, cap, true);
        c[i] = v.levels(i + 4, vlo, vid, add, cap, true);
    }
}
#endif

// Q5_0 / Q5_1 packing of levels a (element j) and c (element j + 16), both
// 0..31: low nibbles into qs[j], bit 4 into bits j and j + 16 of qh.
inline void put_q5_pair(unsigned a, unsigned c, int j, uint8_t *qs, uint32_t &qh) {
    qs[j] = uint8_t((a & 15) | (c & 15) << 4);
    qh |= (a >> 4 & 1u) << j;
    qh |= (c >> 4 & 1u) << (j + 16);
}

// One Q4_0 block (SSE2 where available, else scalar).
void quantize_q4_0_sse2_block(const float *x, uint8_t *o) {
#ifdef LLMKIT_QUANT_SSE2
    __m128i a[4], c[4];
    symmetric_levels(block32_sse2(x), x, 8, o, a, c);
    put_nibble_pairs(a, c, o + 2);
#else
    const float d = signed_absmax(x, 32) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(o, d);
    for (int j = 0; j < 16; ++j) {
        const int lo = std::min(15, int(to_i8(x[j] * id + 8.5f)));
        const int hi = std::min(15, int(to_i8(x[j + 16] * id + 8.5f)));
        o[2 + j] = uint8_t(lo | hi << 4);
    }
#endif
}

// One Q4_1 block (SSE2 where available, else scalar).
void quantize_q4_1_sse2_block(const float *x, uint8_t *o) {
#ifdef LLMKIT_QUANT_SSE2
    __m128i a[4], c[4];
    asymmetric_levels(block32_sse2(x), x, 15, o, a, c);
    put_nibble_pairs(a, c, o + 4);
#else
    float lo, hi;
    min_max(x, 32, lo, hi);
    const float d = (hi - lo) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(o, d);
    put_f16(o + 2, lo);
    for (int j = 0; j < 16; ++j) {
        const int a = std::min(15, int(to_i8((x[j] - lo) * id + 0.5f)));
        const int c = std::min(15, int(to_i8((x[j + 16] - lo) * id + 0.5f)));
        o[4 + j] = uint8_t(a | c << 4);
    }
#endif
}

// One Q5_0 block (SSE2 where available, else scalar).
void quantize_q5_0_sse2_block(const float *x, uint8_t *o) {
#ifdef LLMKIT_QUANT_SSE2
    __m128i a[4], c[4];
    symmetric_levels(block32_sse2(x), x, 16, o, a, c);
    const uint32_t qh5 = put_q5_pairs(a, c, o + 6);
    std::memcpy(o + 2, &qh5, 4);
#else
    const float d = signed_absmax(x, 32) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(o, d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
        const unsigned a = unsigned(std::min(31, int(to_i8(x[j] * id + 16.5f))));
        const unsigned c = unsigned(std::min(31, int(to_i8(x[j + 16] * id + 16.5f))));
        put_q5_pair(a, c, j, o + 6, qh);
    }
    std::memcpy(o + 2, &qh, 4);
#endif
}

#ifdef LLMKIT_QUANT_AVX2
// Q4_0 and Q4_1 blocks 8 floats at a time: the same IEEE operations as the
// SSE2 path (mul, then add: gguf_blocks.cpp is built without contraction, and
// the target adds no FMA), with the first element of largest magnitude (Q4_0)
// found without branches. They were half of quantize's time, the SSE2 path's
// search for that element mispredicting once per block. Called only when the
// CPU has AVX2 (has_avx2()), and only for blocks without NaN.
struct block32_avx2 {
    __m256 v[4];  // x[0..31]
};

LLMKIT_AVX2_FN inline bool load_block32_avx2(const float *x, block32_avx2 &b) {
    __m256 ord = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    for (int i = 0; i < 4; ++i) {
        b.v[i] = _mm256_loadu_ps(x + 8 * i);
        ord = _mm256_and_ps(ord, _mm256_cmp_ps(b.v[i], b.v[i], _CMP_ORD_Q));
    }
    return _mm256_movemask_ps(ord) == 0xFF;
}

LLMKIT_AVX2_FN inline float hmax8(__m256 m) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}
LLMKIT_AVX2_FN inline float hmin8(__m256 m) {
    __m128 h = _mm_min_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_min_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_min_ss(h, _mm_movehdup_ps(h)));
}

// The index of the first of the 32 elements whose bits under `mask` equal
// those of `value` as floats compare (cmpeq: +0 == -0); 32 when none does.
LLMKIT_AVX2_FN inline int first_equal8(const block32_avx2 &b, __m256 mask, float value) {
    const __m256 t = _mm256_set1_ps(value);
    uint32_t hits = 0;
    for (int i = 0; i < 4; ++i)
        hits |= uint32_t(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(b.v[i], mask), t, _CMP_EQ_OQ))) << (8 * i);
    return hits ? __builtin_ctz(hits) : 32;
}

// min(15, int8_t(trunc((x - sub) * id + add))) for x = b.v[i] (sub = 0: Q4_0,
// where x - 0 == x exactly), then qs[j] = uint8_t(l_j | l_(j+16) << 4).
LLMKIT_AVX2_FN inline void put_levels4_avx2(const block32_avx2 &b, __m256 sub, __m256 id, __m256 add, uint8_t *qs) {
    __m256i l[4];
    for (int i = 0; i < 4; ++i) {
        __m256i t = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(b.v[i], sub), id), add));
        t = _mm256_srai_epi32(_mm256_slli_epi32(t, 24), 24);  // the (int8_t) cast
        l[i] = _mm256_min_epi32(t, _mm256_set1_epi32(15));
    }
    const __m256i low_byte = _mm256_set1_epi32(0xFF);
    const __m256i b0 = _mm256_and_si256(_mm256_or_si256(l[0], _mm256_slli_epi32(l[2], 4)), low_byte);  // j = 0..7
    const __m256i b1 = _mm256_and_si256(_mm256_or_si256(l[1], _mm256_slli_epi32(l[3], 4)), low_byte);  // j = 8..15
    // packs works within 128-bit halves: {b0 0..3, b1 0..3 | b0 4..7, b1 4..7}; the permute restores j order.
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(b0, b1), _MM_SHUFFLE(3, 1, 2, 0));
    const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i *>(qs), bytes);
}

// signed_absmax of a loaded block: the first element of the largest
// magnitude, or +0 when all are +-0.
LLMKIT_AVX2_FN inline float signed_absmax_avx2(const block32_avx2 &v, const float *x) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) m = _mm256_max_ps(m, _mm256_and_ps(v.v[i], abs_mask));
    const float amax = hmax8(m);
    return amax == 0.0f ? 0.0f : x[first_equal8(v, abs_mask, amax)];
}

// The symmetric types' scales of two loaded blocks v (at xv) and w (at xw),
// side by side as quantize_q4_1_avx2 does (see symmetric_avx2): {d_v, d_w}
// with d = signed_absmax / divisor, and {1/d or 0, ...}, by the same IEEE
// operations as one block's.
LLMKIT_AVX2_FN inline void symmetric_scales_pair(const block32_avx2 &v, const float *xv, const block32_avx2 &w,
                                                 const float *xw, float divisor, __m128 &d, __m128 &id) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m_v = _mm256_and_ps(v.v[0], abs_mask), m_w = _mm256_and_ps(w.v[0], abs_mask);
    for (int i = 1; i < 4; ++i) {
        m_v = _mm256_max_ps(m_v, _mm256_and_ps(v.v[i], abs_mask));
        m_w = _mm256_max_ps(m_w, _mm256_and_ps(w.v[i], abs_mask));
    }
    __m256 m = _mm256_max_ps(_mm256_unpacklo_ps(m_v, m_w), _mm256_unpackhi_ps(m_v, m_w));
    m = _mm256_max_ps(m, _mm256_permute_ps(m, _MM_SHUFFLE(1, 0, 3, 2)));
    const __m128 amax = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));  // {v, w, v, w}
    const float a_v = _mm_cvtss_f32(amax), a_w = _mm_cvtss_f32(_mm_movehdup_ps(amax));
    const float s_v = a_v == 0.0f ? 0.0f : xv[first_equal8(v, abs_mask, a_v)];
    const float s_w = a_w == 0.0f ? 0.0f : xw[first_equal8(w, abs_mask, a_w)];
    d = _mm_div_ps(_mm_setr_ps(s_v, s_w, 0.0f, 0.0f), _mm_set1_ps(divisor));
    id = _mm_and_ps(_mm_div_ps(_mm_set1_ps(1.0f), d), _mm_cmpneq_ps(d, _mm_setzero_ps()));
}

// {d_v, d_w} as f16 (F16C, round to nearest even, as put_f16) at ov and ow.
LLMKIT_AVX2_FN inline void put_f16_pair(__m128 d, uint8_t *ov, uint8_t *ow) {
    const uint32_t halves = uint32_t(_mm_cvtsi128_si32(_mm_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT)));
    const uint16_t h_v = uint16_t(halves), h_w = uint16_t(halves >> 16);
    std::memcpy(ov, &h_v, 2);
    std::memcpy(ow, &h_w, 2);
}

// Q4_0's levels of a loaded block for the scale inverse vid, into o + 2.
LLMKIT_AVX2_FN inline void put_q4_0_levels_avx2(const block32_avx2 &v, __m256 vid, uint8_t *o) {
    put_levels4_avx2(v, _mm256_setzero_ps(), vid, _mm256_set1_ps(8.5f), o + 2);
}

// One Q4_1 block (the tail of quantize_q4_1_avx2, and pairs it cannot take).
LLMKIT_AVX2_FN void quantize_q4_1_avx2_block(const float *x, uint8_t *o) {
    const __m256 all_bits = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    block32_avx2 v;
    if (!load_block32_avx2(x, v)) {
        quantize_q4_1_sse2_block(x, o);
        return;
    }
    __m256 mn = v.v[0], mx = v.v[0];
    for (int i = 1; i < 4; ++i) {
        mn = _mm256_min_ps(mn, v.v[i]);
        mx = _mm256_max_ps(mx, v.v[i]);
    }
    float lo = hmin8(mn), hi = hmax8(mx);
    // The scalar scan keeps the first of equal values: a zero result is the block's first +-0.
    if (lo == 0.0f) lo = x[first_equal8(v, all_bits, 0.0f)];
    if (hi == 0.0f) hi = x[first_equal8(v, all_bits, 0.0f)];
    const float d = (hi - lo) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(o, d);
    put_f16(o + 2, lo);
    put_levels4_avx2(v, _mm256_set1_ps(lo), _mm256_set1_ps(id), _mm256_set1_ps(0.5f), o + 4);
}

// Q4_1 two blocks at a time. One block is a chain of dependent steps (min and
// max, their horizontal reductions, two divisions, the levels) longer than
// the out-of-order window overlaps, so a pair runs side by side: both
// blocks' minima and maxima are reduced by the same shuffles, d and 1/d come
// from one division each and the four f16 fields from one F16C conversion
// (round to nearest even, as put_f16). Same IEEE operations per block as
// quantize_q4_1_avx2_block, so the same bytes.
LLMKIT_AVX2_FN void quantize_q4_1_avx2(const float *x, void *dst, int64_t n) {
    const int64_t blocks = n / 32;
    int64_t b = 0;
    for (; b + 2 <= blocks; b += 2, x += 64) {
        uint8_t *o = out_block(dst, b, 20);
        block32_avx2 v, w;
        const bool v_ok = load_block32_avx2(x, v), w_ok = load_block32_avx2(x + 32, w);
        if (!(v_ok && w_ok)) {  // NaN: the scalar scan's semantics
            quantize_q4_1_avx2_block(x, o);
            quantize_q4_1_avx2_block(x + 32, o + 20);
            continue;
        }
        __m256 mn_v = v.v[0], mx_v = v.v[0], mn_w = w.v[0], mx_w = w.v[0];
        for (int i = 1; i < 4; ++i) {
            mn_v = _mm256_min_ps(mn_v, v.v[i]);
            mx_v = _mm256_max_ps(mx_v, v.v[i]);
            mn_w = _mm256_min_ps(mn_w, w.v[i]);
            mx_w = _mm256_max_ps(mx_w, w.v[i]);
        }
        // Per 128-bit lane: {v0 w0 v1 w1} op {v2 w2 v3 w3}, then the 64-bit
        // halves swapped, then the two lanes: {v w v w} over all 32.
        __m256 mn = _mm256_min_ps(_mm256_unpacklo_ps(mn_v, mn_w), _mm256_unpackhi_ps(mn_v, mn_w));
        __m256 mx = _mm256_max_ps(_mm256_unpacklo_ps(mx_v, mx_w), _mm256_unpackhi_ps(mx_v, mx_w));
        mn = _mm256_min_ps(mn, _mm256_permute_ps(mn, _MM_SHUFFLE(1, 0, 3, 2)));
        mx = _mm256_max_ps(mx, _mm256_permute_ps(mx, _MM_SHUFFLE(1, 0, 3, 2)));
        const __m128 lo = _mm_min_ps(_mm256_castps256_ps128(mn), _mm256_extractf128_ps(mn, 1));
        const __m128 hi = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        const __m128 zero = _mm_setzero_ps();
        // A zero min or max must be the block's first +-0 (the scalar scan's
        // choice): rare, so those pairs go one block at a time.
        if (_mm_movemask_ps(_mm_or_ps(_mm_cmpeq_ps(lo, zero), _mm_cmpeq_ps(hi, zero))) & 3) {
            quantize_q4_1_avx2_block(x, o);
            quantize_q4_1_avx2_block(x + 32, o + 20);
            continue;
        }
        const __m128 d = _mm_div_ps(_mm_sub_ps(hi, lo), _mm_set1_ps(15.0f));
        const __m128 id = _mm_and_ps(_mm_div_ps(_mm_set1_ps(1.0f), d), _mm_cmpneq_ps(d, zero));  // 1/d, or 0 for d == 0
        // {d_v, lo_v, d_w, lo_w} as halves: the first 4 bytes of each block.
        const __m128i halves = _mm_cvtps_ph(_mm_unpacklo_ps(d, lo), _MM_FROUND_TO_NEAREST_INT);
        const uint32_t head_v = uint32_t(_mm_cvtsi128_si32(halves)), head_w = uint32_t(_mm_extract_epi32(halves, 1));
        std::memcpy(o, &head_v, 4);
        std::memcpy(o + 20, &head_w, 4);
        const __m128 lo_w = _mm_movehdup_ps(lo), id_w = _mm_movehdup_ps(id);
        put_levels4_avx2(v, _mm256_broadcastss_ps(lo), _mm256_broadcastss_ps(id), _mm256_set1_ps(0.5f), o + 4);
        put_levels4_avx2(w, _mm256_broadcastss_ps(lo_w), _mm256_broadcastss_ps(id_w), _mm256_set1_ps(0.5f), o + 24);
    }
    if (b < blocks) quantize_q4_1_avx2_block(x, out_block(dst, b, 20));
}

// Q5_0 as Q4_0 with half = 16: the levels of a loaded block for the scale
// inverse vid, min(31, int8_t(trunc(x * id + 16.5))), low nibbles into qs
// (o + 6), bit 4 of element j into bit j of qh (o + 2; one movemask per 8).
LLMKIT_AVX2_FN inline void put_q5_0_levels_avx2(const block32_avx2 &v, __m256 vid, uint8_t *o) {
    const __m256 add = _mm256_set1_ps(16.5f);
    __m256i l[4];
    uint32_t qh = 0;
    for (int i = 0; i < 4; ++i) {
        __m256i t = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v.v[i], vid), add));
        t = _mm256_srai_epi32(_mm256_slli_epi32(t, 24), 24);  // the (int8_t) cast
        l[i] = _mm256_min_epi32(t, _mm256_set1_epi32(31));
        // Bit 4 to the sign bit: elements 8i..8i+7 give bits 8i..8i+7.
        qh |= uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(l[i], 27)))) << (8 * i);
    }
    std::memcpy(o + 2, &qh, 4);
    const __m256i nibble = _mm256_set1_epi32(15);
    const __m256i b0 = _mm256_or_si256(_mm256_and_si256(l[0], nibble), _mm256_slli_epi32(_mm256_and_si256(l[2], nibble), 4));
    const __m256i b1 = _mm256_or_si256(_mm256_and_si256(l[1], nibble), _mm256_slli_epi32(_mm256_and_si256(l[3], nibble), 4));
    // As in put_levels4_avx2: packs within 128-bit halves, the permute restores j order.
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(b0, b1), _MM_SHUFFLE(3, 1, 2, 0));
    const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i *>(o + 6), bytes);
}

// The symmetric 32-element types (Q4_0: Half = 8, Q5_0: Half = 16):
// d = signed_absmax / -Half, then PutLevels writes the levels; Scalar is the
// baseline block, for blocks holding a NaN (the scalar scan's semantics).
template <int BlockBytes, int Half, void (*Scalar)(const float *, uint8_t *),
          void (*PutLevels)(const block32_avx2 &, __m256, uint8_t *)>
struct symmetric_avx2 {
    // One block: the tail of a row, and pairs holding a NaN.
    LLMKIT_AVX2_FN static void block(const float *x, uint8_t *o) {
        block32_avx2 v;
        if (!load_block32_avx2(x, v)) {
            Scalar(x, o);
            return;
        }
        const float d = signed_absmax_avx2(v, x) / -float(Half);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(o, d);
        PutLevels(v, _mm256_set1_ps(id), o);
    }
    // Two blocks at a time, for the reason given at quantize_q4_1_avx2.
    LLMKIT_AVX2_FN static void row(const float *x, void *dst, int64_t n) {
        const int64_t blocks = n / 32;
        int64_t b = 0;
        for (; b + 2 <= blocks; b += 2, x += 64) {
            uint8_t *o = out_block(dst, b, BlockBytes);
            block32_avx2 v, w;
            const bool v_ok = load_block32_avx2(x, v), w_ok = load_block32_avx2(x + 32, w);
            if (!(v_ok && w_ok)) {
                block(x, o);
                block(x + 32, o + BlockBytes);
                continue;
            }
            __m128 d, id;
            symmetric_scales_pair(v, x, w, x + 32, -float(Half), d, id);
            put_f16_pair(d, o, o + BlockBytes);
            PutLevels(v, _mm256_broadcastss_ps(id), o);
            PutLevels(w, _mm256_broadcastss_ps(_mm_movehdup_ps(id)), o + BlockBytes);
        }
        if (b < blocks) block(x, out_block(dst, b, BlockBytes));
    }
};
using q4_0_avx2 = symmetric_avx2<18, 8, quantize_q4_0_sse2_block, put_q4_0_levels_avx2>;
using q5_0_avx2 = symmetric_avx2<22, 16, quantize_q5_0_sse2_block, put_q5_0_levels_avx2>;
#endif

// Q4_0 {f16 d; u8 qs[16]}: x = (q - 8) * d; the extreme value maps to -8.
void quantize_q4_0(const float *x, void *dst, int64_t n) {
#ifdef LLMKIT_QUANT_AVX2
    if (has_avx2()) return q4_0_avx2::row(x, dst, n);
#endif
    for (int64_t b = 0; b < n / 32; ++b, x += 32) quantize_q4_0_sse2_block(x, out_block(dst, b, 18));
}
void dequantize_q4_0(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, y += 32) {
        const uint8_t *o = in_block(src, b, 18);
        const float d = get_f16(o);
        for (int j = 0; j < 16; ++j) {
            y[j] = float((o[2 + j] & 15) - 8) * d;
            y[j + 16] = float((o[2 + j] >> 4) - 8) * d;
        }
    }
}

// Q4_1 {f16 d; f16 m; u8 qs[16]}: x = q * d + m.
void quantize_q4_1(const float *x, void *dst, int64_t n) {
#ifdef LLMKIT_QUANT_AVX2
    if (has_avx2()) return quantize_q4_1_avx2(x, dst, n);
#endif
    for (int64_t b = 0; b < n / 32; ++b, x += 32) quantize_q4_1_sse2_block(x, out_block(dst, b, 20));
}
void dequantize_q4_1(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, y += 32) {
        const uint8_t *o = in_block(src, b, 20);
        const float d = get_f16(o), m = get_f16(o + 2);
        for (int j = 0; j < 16; ++j) {
            y[j] = float(o[4 + j] & 15) * d + m;
            y[j + 16] = float(o[4 + j] >> 4) * d + m;
        }
    }
}

// Q5_0 {f16 d; u8 qh[4]; u8 qs[16]}: x = (q - 16) * d, bit 4 of element j in bit j of qh.
void quantize_q5_0(const float *x, void *dst, int64_t n) {
#ifdef LLMKIT_QUANT_AVX2
    if (has_avx2()) return q5_0_avx2::row(x, dst, n);
#endif
    for (int64_t b = 0; b < n / 32; ++b, x += 32) quantize_q5_0_sse2_block(x, out_block(dst, b, 22));
}
void dequantize_q5_0(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, y += 32) {
        const uint8_t *o = in_block(src, b, 22);
        const float d = get_f16(o);
        uint32_t qh;
        std::memcpy(&qh, o + 2, 4);
        for (int j = 0; j < 16; ++j) {
            const int a = int((o[6 + j] & 15) | (qh >> j & 1u) << 4) - 16;
            const int c = int((o[6 + j] >> 4) | (qh >> (j + 16) & 1u) << 4) - 16;
            y[j] = float(a) * d;
            y[j + 16] = float(c) * d;
        }
    }
}

// Q5_1 {f16 d; f16 m; u8 qh[4]; u8 qs[16]}: x = q * d + m.
void quantize_q5_1(const float *x, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, x += 32) {
        uint8_t *o = out_block(dst, b, 24);
#ifdef LLMKIT_QUANT_SSE2
        __m128i a[4], c[4];
        asymmetric_levels(block32_sse2(x), x, 31, o, a, c);
        const uint32_t qh5 = put_q5_pairs(a, c, o + 8);
        std::memcpy(o + 4, &qh5, 4);
#else
        float lo, hi;
        min_max(x, 32, lo, hi);
        const float d = (hi - lo) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(o, d);
        put_f16(o + 2, lo);
        uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
            const unsigned a = to_u8((x[j] - lo) * id + 0.5f);
            const unsigned c = to_u8((x[j + 16] - lo) * id + 0.5f);
            put_q5_pair(a, c, j, o + 8, qh);
        }
        std::memcpy(o + 4, &qh, 4);
#endif
    }
}
void dequantize_q5_1(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, y += 32) {
        const uint8_t *o = in_block(src, b, 24);
        const float d = get_f16(o), m = get_f16(o + 2);
        uint32_t qh;
        std::memcpy(&qh, o + 4, 4);
        for (int j = 0; j < 16; ++j) {
            const int a = int((o[8 + j] & 15) | (qh >> j & 1u) << 4);
            const int c = int((o[8 + j] >> 4) | (qh >> (j + 16) & 1u) << 4);
            y[j] = float(a) * d + m;
            y[j + 16] = float(c) * d + m;
        }
    }
}

// Q8_0 {f16 d; i8 qs[32]}: x = q * d with d = absmax / 127.
void quantize_q8_0(const float *x, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, x += 32) {
        uint8_t *o = out_block(dst, b, 34);
#ifdef LLMKIT_QUANT_SSE2
        const block32_sse2 v(x);
        const float d = v.abs_max(x) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(o, d);
        if (put_q8_levels(v, id, o + 2)) continue;
#else
        const float d = abs_max(x, 32) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(o, d);
#endif
        for (int j = 0; j < 32; ++j) o[2 + j] = uint8_t(to_i8(std::round(x[j] * id)));
    }
}
void dequantize_q8_0(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, y += 32) {
        const uint8_t *o = in_block(src, b, 34);
        const float d = get_f16(o);
        for (int j = 0; j < 32; ++j) y[j] = float(int8_t(o[2 + j])) * d;
    }
}

// Q8_1 {f16 d; f16 s; i8 qs[32]}: as Q8_0 plus s = d * sum(q).
void quantize_q8_1(const float *x, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, x += 32) {
        uint8_t *o = out_block(dst, b, 36);
        const float d = abs_max(x, 32) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(o, d);
        int sum = 0;
        for (int j = 0; j < 32; ++j) {
            const int8_t q = to_i8(std::round(x[j] * id));
            o[4 + j] = uint8_t(q);
            sum += q;
        }
        put_f16(o + 2, float(sum) * d);
    }
}
void dequantize_q8_1(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, y += 32) {
        const uint8_t *o = in_block(src, b, 36);
        const float d = get_f16(o);
        for (int j = 0; j < 32; ++j) y[j] = float(int8_t(o[4 + j])) * d;
    }
}

// ---------------------------------------------------------------- K-quant helpers

// Symmetric fit with levels -nmax..nmax-1 (ggml's make_qx_quants with
// rmse_type 1): tries 19 scales around nmax / max and keeps the one with the
// best weighted projection. The weights are qw (importance) or, without it,
// x^2. L receives level + nmax; returns the scale.
LLMKIT_FIT_CLONES float fit_symmetric(int n, int nmax, const float *x, int8_t *L, const float *qw = nullptr) {
    const float max = signed_absmax(x, n);
    if (std::fabs(max) < group_max_eps) {
        std::fill(L, L + n, int8_t(0));
        return 0.0f;
    }
    // The weights once, so the projections below run branch-free (n <= 32 for every caller).
    float wbuf[32];
    const float *w = qw;
    if (!qw) {
        for (int i = 0; i < n; ++i) wbuf[i] = x[i] * x[i];
        w = wbuf;
    }
    // The 19 candidate scales (nmax / max first, then is = -9..9 without 0)
    // projected together: element by element, each candidate's sums take the
    // same float operations in the same order as one projection at a time,
    // and the inner loop over candidates vectorizes (24 lanes, 5 unused).
    constexpr int n_cand = 19, lanes = 24;
    float iscale[lanes], sumlx[lanes], suml2[lanes];
    for (int c = 0; c < lanes; ++c) {
        const int is = c <= 9 ? c - 10 : c - 9;  // c = 1..9 -> -9..-1, c = 10..18 -> 1..9
        iscale[c] = c == 0 ? float(-nmax) / max : c < n_cand ? -(float(nmax) + 0.1f * float(is)) / max : 0.0f;
        sumlx[c] = suml2[c] = 0.0f;
    }
    for (int i = 0; i < n; ++i) {
        const float wx = w[i] * x[i], wi = w[i], xi = x[i];
        for (int c = 0; c < lanes; ++c) {
            const float l = float(clampi(nearest_int(iscale[c] * xi), -nmax, nmax - 1));
            sumlx[c] += wx * l;
            suml2[c] += wi * l * l;
        }
    }
    // Keep the best projection, candidates in ggml's order.
    int chosen = 0;
    float scale = suml2[0] != 0.0f ? sumlx[0] / suml2[0] : 0.0f;
    float best = scale * sumlx[0];
    for (int c = 1; c < n_cand; ++c) {
        if (suml2[c] > 0 && sumlx[c] * sumlx[c] > best * suml2[c]) {
            scale = sumlx[c] / suml2[c];
            best = scale * sumlx[c];
            chosen = c;
        }
    }
    for (int i = 0; i < n; ++i) L[i] = int8_t(clampi(nearest_int(iscale[chosen] * x[i]), -nmax, nmax - 1) + nmax);
    return scale;
}

// Q3_K's group fit (ggml's make_q3_quants with do_rmse): start from the
// nearest levels, then move single levels while the weighted projection improves.
float fit_q3_group(int n, int nmax, const float *x, int8_t *L) {
    const float max = signed_absmax(x, n);
    if (std::fabs(max) < group_max_eps) {
        std::fill(L, L + n, int8_t(0));
        return 0.0f;
    }
    const float iscale = float(-nmax) / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = int8_t(l);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * float(l);
        suml2 += w * float(l) * float(l);
    }
    for (int pass = 0; pass < 5; ++pass) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * float(L[i]);
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * float(L[i]) * float(L[i]);
            const int nl = clampi(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i]) continue;
            slx += w * x[i] * float(nl);
            sl2 += w * float(nl) * float(nl);
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = int8_t(nl);
                sumlx = slx;
                suml2 = sl2;
                ++changed;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric fit x ~ scale * L - m with L in 0..nmax (ggml's make_qkx2_quants):
// a grid of nstep+1 candidate scales, each refined by weighted least squares,
// keeping the lowest weighted error (absolute or squared). Returns the scale;
// *neg_min receives m >= 0.
LLMKIT_FIT_CLONES float fit_asymmetric(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, float rmin,
                     float rdelta, int nstep, bool use_mad) {
    uint8_t Laux[32];
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        std::fill(L, L + n, uint8_t(0));
        *neg_min = -min;
        return 0.0f;
    }
    auto error_of = [&](float d, float m, const uint8_t *levels) {
        float err = 0.0f;
        for (int i = 0; i < n; ++i) {
            float diff = d * float(levels[i]) + m - x[i];
            diff = use_mad ? std::fabs(diff) : diff * diff;
            err += w[i] * diff;
        }
        return err;
    };
    float iscale = float(nmax) / (max - min);
    float scale = 1 / iscale;
    for (int i = 0; i < n; ++i) L[i] = uint8_t(clampi(nearest_int(iscale * (x[i] - min)), 0, nmax));
    float best_error = error_of(scale, min, L);
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = uint8_t(l);
            const float fl = float(l);
            sum_l += w[i] * fl;
            sum_l2 += w[i] * fl * fl;
            sum_xl += w[i] * fl * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        const float cur = error_of(this_scale, this_min, Laux);
        if (cur < best_error) {
            std::copy(Laux, Laux + n, L);
            best_error = cur;
            scale = this_scale;
            min = this_min;
        }
    }
    *neg_min = -min;
    return scale;
}

#ifdef LLMKIT_QUANT_AVX2
// fit_asymmetric on 8 groups at once, lane k of every vector holding group k:
// each lane runs the scalar fit's float operations in the same order (the sums
// over a group's elements stay sequential, candidates stay one after another,
// an accepted candidate moves only its own lane's min), so the bytes are the
// same. The scalar fit cannot be vectorized along a group (that reorders its
// sums) nor across candidates (each depends on the ones accepted before it);
// across groups nothing depends on anything.

// v[i] (i = 0..7) = element i of the 8 rows p, p + stride, ..., p + 7 stride.
LLMKIT_AVX2_FN inline void load_transposed8(const float *p, int64_t stride, __m256 *v) {
    __m256 r[8];
    for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(p + k * stride);
    // Pairs of rows interleaved, then quadruples, then the 128-bit halves swapped into place.
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));  // rows 0-3, elements 0 | 4
    const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));  // 1 | 5
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));  // 2 | 6
    const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));  // 3 | 7
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));  // rows 4-7
    const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    v[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    v[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    v[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    v[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    v[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    v[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    v[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    v[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// clampi(nearest_int(is * (x - min)), 0, nmax) as a float, 8 lanes.
LLMKIT_AVX2_FN inline __m256 asym_level8(__m256 is, __m256 x, __m256 min, __m256i nmax) {
    const __m256 biased = _mm256_add_ps(_mm256_mul_ps(is, _mm256_sub_ps(x, min)), _mm256_set1_ps(12582912.0f));
    __m256i l = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(biased), _mm256_set1_epi32(0x007fffff)),
                                 _mm256_set1_epi32(0x00400000));
    l = _mm256_min_epi32(_mm256_max_epi32(l, _mm256_setzero_si256()), nmax);
    return _mm256_cvtepi32_ps(l);
}

// sum_i w_i * e_i with e_i = |d l_i + m - x_i| (use_mad) or its square, i in order.
LLMKIT_AVX2_FN inline __m256 asym_error8(int n, const __m256 *x, const __m256 *w, const __m256 *l, __m256 d, __m256 m,
                                         bool use_mad) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 err = _mm256_setzero_ps();
    for (int i = 0; i < n; ++i) {
        const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(d, l[i]), m), x[i]);
        const __m256 e = use_mad ? _mm256_and_ps(diff, abs_mask) : _mm256_mul_ps(diff, diff);
        err = _mm256_add_ps(err, _mm256_mul_ps(w[i], e));
    }
    return err;
}

// Group k (0..7) of n elements (n = 16 or 32) at x + k * n, its weights at
// w + k * n, its levels into L + k * n, scale[k] and neg_min[k]: as
// fit_asymmetric for each.
LLMKIT_AVX2_FN void fit_asymmetric_x8(int n, int nmax, const float *x, const float *w, uint8_t *L, float *scale_out,
                                      float *neg_min_out, float rmin, float rdelta, int nstep, bool use_mad) {
    __m256 xv[32], wv[32], best_l[32], aux_l[32];
    for (int i = 0; i < n; i += 8) {
        load_transposed8(x + i, n, xv + i);
        load_transposed8(w + i, n, wv + i);
    }
    const __m256 zero = _mm256_setzero_ps();
    const __m256i nmax_i = _mm256_set1_epi32(nmax);
    __m256 min = xv[0], max = xv[0], sum_w = wv[0], sum_x = _mm256_mul_ps(sum_w, xv[0]);
    for (int i = 1; i < n; ++i) {
        min = _mm256_min_ps(xv[i], min);  // x < min ? x : min
        max = _mm256_max_ps(xv[i], max);  // x > max ? x : max
        sum_w = _mm256_add_ps(sum_w, wv[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(wv[i], xv[i]));
    }
    min = _mm256_andnot_ps(_mm256_cmp_ps(min, zero, _CMP_GT_OQ), min);  // min > 0 -> 0
    // Lanes with max == min get the scalar fit's early answer at the end; what
    // they compute meanwhile (divisions by 0) is never accepted.
    const __m256 flat = _mm256_cmp_ps(max, min, _CMP_EQ_OQ);
    __m256 iscale = _mm256_div_ps(_mm256_set1_ps(float(nmax)), _mm256_sub_ps(max, min));
    __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale);
    for (int i = 0; i < n; ++i) best_l[i] = asym_level8(iscale, xv[i], min, nmax_i);
    __m256 best_error = asym_error8(n, xv, wv, best_l, scale, min, use_mad);
    for (int is = 0; is <= nstep; ++is) {
        iscale = _mm256_div_ps(_mm256_set1_ps(rmin + rdelta * float(is) + float(nmax)), _mm256_sub_ps(max, min));
        __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < n; ++i) {
            const __m256 l = asym_level8(iscale, xv[i], min, nmax_i);
            aux_l[i] = l;
            const __m256 wl = _mm256_mul_ps(wv[i], l);
            sum_l = _mm256_add_ps(sum_l, wl);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, l));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, xv[i]));
        }
        const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        const __m256 solvable = _mm256_andnot_ps(flat, _mm256_cmp_ps(D, zero, _CMP_GT_OQ));
        if (_mm256_movemask_ps(solvable) == 0) continue;
        __m256 this_scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
        __m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
        // A positive min is clamped to 0 and the scale refitted without it.
        const __m256 positive = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
        this_min = _mm256_andnot_ps(positive, this_min);
        this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(sum_xl, sum_l2), positive);
        const __m256 cur = asym_error8(n, xv, wv, aux_l, this_scale, this_min, use_mad);
        const __m256 better = _mm256_and_ps(solvable, _mm256_cmp_ps(cur, best_error, _CMP_LT_OQ));
        if (_mm256_movemask_ps(better) == 0) continue;
        for (int i = 0; i < n; ++i) best_l[i] = _mm256_blendv_ps(best_l[i], aux_l[i], better);
        best_error = _mm256_blendv_ps(best_error, cur, better);
        scale = _mm256_blendv_ps(scale, this_scale, better);
        min = _mm256_blendv_ps(min, this_min, better);
    }
    // Flat lanes: levels 0, scale 0 (min is still the clamped one there).
    scale = _mm256_andnot_ps(flat, scale);
    _mm256_storeu_ps(scale_out, scale);
    _mm256_storeu_ps(neg_min_out, _mm256_xor_ps(min, _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN))));
    alignas(32) int32_t levels[32][8];
    for (int i = 0; i < n; ++i)
        _mm256_store_si256(reinterpret_cast<__m256i *>(levels[i]),
                           _mm256_cvttps_epi32(_mm256_andnot_ps(flat, best_l[i])));
    for (int k = 0; k < 8; ++k)
        for (int i = 0; i < n; ++i) L[k * n + i] = uint8_t(levels[i][k]);
}
#endif

// fit_asymmetric on `count` groups of n elements (n <= 32) stored back to
// back: group g at x + g * n, weights w + g * n, levels into L + g * n,
// scales[g], neg_mins[g]. Eight at a time where the CPU has AVX2.
void fit_asymmetric_groups(int count, int n, int nmax, const float *x, const float *w, uint8_t *L, float *scales,
                           float *neg_mins, float rmin, float rdelta, int nstep, bool use_mad) {
    int g = 0;
#ifdef LLMKIT_QUANT_AVX2
    if (has_avx2() && n % 8 == 0)
        for (; g + 8 <= count; g += 8)
            fit_asymmetric_x8(n, nmax, x + g * n, w + g * n, L + g * n, scales + g, neg_mins + g, rmin, rdelta, nstep,
                              use_mad);
#endif
    for (; g < count; ++g)
        scales[g] = fit_asymmetric(n, nmax, x + g * n, w + g * n, L + g * n, &neg_mins[g], rmin, rdelta, nstep, use_mad);
}

#ifdef LLMKIT_QUANT_AVX2
// clampi(nearest_int(v), lo, hi) as a float, 8 lanes.
LLMKIT_AVX2_FN inline __m256 q3_level8(__m256 v, __m256i lo, __m256i hi) {
    const __m256 biased = _mm256_add_ps(v, _mm256_set1_ps(12582912.0f));
    const __m256i l = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(biased), _mm256_set1_epi32(0x007fffff)),
                                       _mm256_set1_epi32(0x00400000));
    return _mm256_cvtepi32_ps(_mm256_min_epi32(_mm256_max_epi32(l, lo), hi));
}

// fit_q3_group on 8 groups of 16 at once (group k at x + 16 k), lane k of
// every vector holding group k, with the scalar fit's operations in the same
// order. Passes run while any lane still moves a level: a pass that changed
// nothing in a lane leaves its state as it was, so repeating it there is a no-op.
LLMKIT_AVX2_FN void fit_q3_group_x8(int nmax, const float *x, int8_t *L, float *scale_out) {
    constexpr int n = 16;
    __m256 xv[n], lv[n];
    load_transposed8(x, n, xv);
    load_transposed8(x + 8, n, xv + 8);
    const __m256 zero = _mm256_setzero_ps(), abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i lo = _mm256_set1_epi32(-nmax), hi = _mm256_set1_epi32(nmax - 1);
    // signed_absmax per lane: the first element of the largest magnitude.
    __m256 amax = zero, max = zero;
    for (int i = 0; i < n; ++i) {
        const __m256 a = _mm256_and_ps(xv[i], abs_mask), larger = _mm256_cmp_ps(a, amax, _CMP_GT_OQ);
        amax = _mm256_blendv_ps(amax, a, larger);
        max = _mm256_blendv_ps(max, xv[i], larger);
    }
    const __m256 flat = _mm256_cmp_ps(_mm256_and_ps(max, abs_mask), _mm256_set1_ps(group_max_eps), _CMP_LT_OQ);
    const __m256 iscale = _mm256_div_ps(_mm256_set1_ps(float(-nmax)), max);
    __m256 sumlx = zero, suml2 = zero;
    for (int i = 0; i < n; ++i) {
        lv[i] = q3_level8(_mm256_mul_ps(iscale, xv[i]), lo, hi);
        const __m256 w = _mm256_mul_ps(xv[i], xv[i]);
        sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(w, xv[i]), lv[i]));
        suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w, lv[i]), lv[i]));
    }
    for (int pass = 0; pass < 5; ++pass) {
        __m256 changed = zero;
        for (int i = 0; i < n; ++i) {
            const __m256 w = _mm256_mul_ps(xv[i], xv[i]), wx = _mm256_mul_ps(w, xv[i]);
            __m256 slx = _mm256_sub_ps(sumlx, _mm256_mul_ps(wx, lv[i]));
            __m256 sl2 = _mm256_sub_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w, lv[i]), lv[i]));
            const __m256 nl = q3_level8(_mm256_div_ps(_mm256_mul_ps(xv[i], sl2), slx), lo, hi);
            __m256 take = _mm256_andnot_ps(flat, _mm256_cmp_ps(slx, zero, _CMP_GT_OQ));
            take = _mm256_and_ps(take, _mm256_cmp_ps(nl, lv[i], _CMP_NEQ_OQ));
            if (_mm256_movemask_ps(take) == 0) continue;
            slx = _mm256_add_ps(slx, _mm256_mul_ps(wx, nl));
            sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(_mm256_mul_ps(w, nl), nl));
            take = _mm256_and_ps(take, _mm256_cmp_ps(sl2, zero, _CMP_GT_OQ));
            const __m256 gain = _mm256_cmp_ps(_mm256_mul_ps(_mm256_mul_ps(slx, slx), suml2),
                                              _mm256_mul_ps(_mm256_mul_ps(sumlx, sumlx), sl2), _CMP_GT_OQ);
            take = _mm256_and_ps(take, gain);
            lv[i] = _mm256_blendv_ps(lv[i], nl, take);
            sumlx = _mm256_blendv_ps(sumlx, slx, take);
            suml2 = _mm256_blendv_ps(suml2, sl2, take);
            changed = _mm256_or_ps(changed, take);
        }
        if (_mm256_movemask_ps(changed) == 0) break;
    }
    const __m256 scale = _mm256_and_ps(_mm256_cmp_ps(suml2, zero, _CMP_GT_OQ), _mm256_div_ps(sumlx, suml2));
    _mm256_storeu_ps(scale_out, _mm256_andnot_ps(flat, scale));
    // Levels + nmax; a flat group's levels stay 0, as the scalar fit leaves them.
    alignas(32) int32_t levels[n][8];
    const __m256 offset = _mm256_set1_ps(float(nmax));
    for (int i = 0; i < n; ++i)
        _mm256_store_si256(reinterpret_cast<__m256i *>(levels[i]),
                           _mm256_cvttps_epi32(_mm256_andnot_ps(flat, _mm256_add_ps(lv[i], offset))));
    for (int k = 0; k < 8; ++k)
        for (int i = 0; i < n; ++i) L[k * n + i] = int8_t(levels[i][k]);
}
#endif

// fit_q3_group on `count` groups of 16 stored back to back (levels into
// L + 16 g, scales[g]); eight at a time where the CPU has AVX2.
void fit_q3_groups(int count, int nmax, const float *x, int8_t *L, float *scales) {
    int g = 0;
#ifdef LLMKIT_QUANT_AVX2
    if (has_avx2())
        for (; g + 8 <= count; g += 8) fit_q3_group_x8(nmax, x + 16 * g, L + 16 * g, scales + g);
#endif
    for (; g < count; ++g) scales[g] = fit_q3_group(16, nmax, x + 16 * g, L + 16 * g);
}

// Fit of non-negative values (the scales or mins of a super-block's groups)
// with levels 0..nmax and importance weights qw (ggml's make_qp_quants): 8
// scales around nmax / max by weighted squared error, then single levels moved
// while the weighted projection improves. Returns the scale.
LLMKIT_FIT_CLONES float fit_positive(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0;
    for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
    if (max < group_max_eps) {
        std::fill(L, L + n, uint8_t(0));
        return 0.0f;
    }
    float iscale = float(nmax) / max;
    // ggml keeps the first guess's levels as uint8_t and the others as int;
    // the two differ only for a negative x, but the bytes must match there too.
    auto mse_of = [&](float is, bool first) {
        const float scale = 1 / is;
        float mse = 0;
        for (int i = 0; i < n; ++i) {
            const int l = nearest_int(is * x[i]);
            const float fl = first ? float(uint8_t(l)) : float(std::min(nmax, l));
            const float diff = x[i] - scale * fl;
            mse += qw[i] * diff * diff;
        }
        return mse;
    };
    float best_mse = mse_of(iscale, true);
    for (int is = -4; is <= 4; ++is) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * float(is) + float(nmax)) / max;
        const float mse = mse_of(iscale_is, false);
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = std::min(nmax, nearest_int(iscale * x[i]));
        L[i] = uint8_t(l);
        sumlx += qw[i] * x[i] * float(l);
        suml2 += qw[i] * float(l) * float(l);
    }
    for (int pass = 0; pass < 5; ++pass) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = qw[i];
            float slx = sumlx - w * x[i] * float(L[i]);
            float sl2 = suml2 - w * float(L[i]) * float(L[i]);
            if (!(slx > 0 && sl2 > 0)) continue;
            const int nl = std::min(nmax, nearest_int(x[i] * sl2 / slx));
            if (nl == L[i]) continue;
            slx += w * x[i] * float(nl);
            sl2 += w * float(nl) * float(nl);
            if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = uint8_t(nl);
                sumlx = slx;
                suml2 = sl2;
                ++changed;
            }
        }
        if (!changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Importance weights of a group, as ggml's imatrix quantizers form them:
// w[l] = qw[l] * sqrt(sigma2 + x[l]^2), sigma2 a mean square of the row or
// super-block. Returns their sum.
float importance_weights(int n, const float *x, const float *qw, float sigma2, float *w) {
    float sum = 0;
    for (int l = 0; l < n; ++l) w[l] = qw[l] * std::sqrt(sigma2 + x[l] * x[l]);
    for (int l = 0; l < n; ++l) sum += w[l];
    return sum;
}

float sum_squares(const float *x, int64_t n) {
    float s = 0;
    for (int64_t j = 0; j < n; ++j) s += x[j] * x[j];
    return s;
}

// The 6-bit scale and min of sub-block j from Q4_K / Q5_K's 12 packed bytes.
inline void unpack_scale_min(int j, const uint8_t *q, uint8_t &d, uint8_t &m) {
    if (j < 4) {
        d = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        d = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}
inline void pack_scale_min(int j, uint8_t ls, uint8_t lm, uint8_t *q) {
    if (j < 4) {
        q[j] = ls;
        q[j + 4] = lm;
    } else {
        q[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
        q[j - 4] = uint8_t(q[j - 4] | ((ls >> 4) << 6));
        q[j] = uint8_t(q[j] | ((lm >> 4) << 6));
    }
}

// Q2_K / Q3_K: 256 2-bit levels (0..3), four 32-element quarters of each
// 128-element half sharing one byte.
template <typename T>
inline void pack_2bit(const T *L, uint8_t *qs) {
    for (int j = 0; j < qk_k; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = uint8_t(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
}

// ---------------------------------------------------------------- Q2_K
// {u8 scales[16] (4-bit scale | 4-bit min << 4); u8 qs[64]; f16 d; f16 dmin}

// The levels against the stored 4-bit scales and mins, packed (both fits end here).
void finish_q2_k(const float *x, uint8_t *o, uint8_t *L) {
    const uint8_t *sc = o;
    const float dd = get_f16(o + 80), dmin = get_f16(o + 82);
    for (int j = 0; j < 16; ++j) {
        const float d = dd * float(sc[j] & 0xF);
        if (d == 0.0f) continue;
        const float dm = dmin * float(sc[j] >> 4);
        for (int i = 0; i < 16; ++i) L[16 * j + i] = uint8_t(clampi(nearest_int((x[16 * j + i] + dm) / d), 0, 3));
    }
    pack_2bit(L, o + 16);
}

void quantize_q2_k(const float *x, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k) {
        uint8_t *o = out_block(dst, b, 84);
        uint8_t *sc = o;
        uint8_t L[qk_k];
        float w[qk_k], mins[16], scales[16];
        float max_scale = 0, max_min = 0;
        for (int l = 0; l < qk_k; ++l) w[l] = std::fabs(x[l]);
        fit_asymmetric_groups(16, 16, 3, x, w, L, scales, mins, -0.5f, 0.1f, 15, true);
        for (int j = 0; j < 16; ++j) {
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = 15.f / max_scale;
            for (int j = 0; j < 16; ++j) sc[j] = uint8_t(nearest_int(iscale * scales[j]));
            put_f16(o + 80, max_scale / 15.f);
        } else {
            std::fill(sc, sc + 16, uint8_t(0));
            put_f16(o + 80, 0.f);
        }
        if (max_min > 0) {
            const float iscale = 15.f / max_min;
            for (int j = 0; j < 16; ++j) sc[j] = uint8_t(sc[j] | uint8_t(unsigned(nearest_int(iscale * mins[j])) << 4));
            put_f16(o + 82, max_min / 15.f);
        } else {
            put_f16(o + 82, 0.f);
        }
        finish_q2_k(x, o, L);
    }
}

// With importance weights (ggml's quantize_row_q2_K_impl): weighted group
// fits, then the 4-bit scales and mins themselves fitted with the groups'
// weight sums.
void quantize_q2_k_weighted(const float *x, void *dst, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k, qw += qk_k) {
        uint8_t *o = out_block(dst, b, 84);
        uint8_t L[qk_k], Ls[16], Lm[16];
        float w[qk_k], sw[16], mins[16], scales[16];
        const float sigma2 = sum_squares(x, qk_k) / qk_k;
        for (int j = 0; j < 16; ++j) sw[j] = importance_weights(16, x + 16 * j, qw + 16 * j, sigma2, w + 16 * j);
        fit_asymmetric_groups(16, 16, 3, x, w, L, scales, mins, -0.9f, 0.05f, 36, false);
        const float dm = fit_positive(16, 15, scales, Ls, sw);
        const float mm = fit_positive(16, 15, mins, Lm, sw);
        put_f16(o + 80, dm);
        put_f16(o + 82, mm);
        for (int j = 0; j < 16; ++j) o[j] = uint8_t(Ls[j] | Lm[j] << 4);
        finish_q2_k(x, o, L);
    }
}
void dequantize_q2_k(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b) {
        const uint8_t *o = in_block(src, b, 84);
        const uint8_t *sc = o, *q = o + 16;
        const float d = get_f16(o + 80), min = get_f16(o + 82);
        int is = 0;
        for (int half = 0; half < 2; ++half, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; ++part) {
                    const uint8_t s = sc[is++];
                    const float dl = d * float(s & 0xF), ml = min * float(s >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * float((q[l + 16 * part] >> shift) & 3) - ml;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- Q3_K
// {u8 hmask[32]; u8 qs[64]; u8 scales[12] (16 6-bit scales); f16 d}

inline int q3_scale(const uint8_t *s, int j) {
    const int low = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    return (low | ((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
}

// Packs group j's 6-bit scale code (0..63, the scale + 32) into Q3_K's 12 bytes.
inline void pack_q3_scale(uint8_t *s, int j, int l) {
    if (j < 8)
        s[j] = uint8_t(l & 0xF);
    else
        s[j - 8] = uint8_t(s[j - 8] | (l & 0xF) << 4);
    s[j % 4 + 8] = uint8_t(s[j % 4 + 8] | (l >> 4) << (2 * (j / 4)));
}

// The levels against the stored scales, the high bits and the packing (both fits end here).
void finish_q3_k(const float *x, uint8_t *o, int8_t *L) {
    uint8_t *hmask = o, *s = o + 96;
    const float dd = get_f16(o + 108);
    for (int j = 0; j < 16; ++j) {
        const float d = dd * float(int8_t(q3_scale(s, j)));
        if (d == 0.0f) continue;
        for (int i = 0; i < 16; ++i) L[16 * j + i] = int8_t(clampi(nearest_int(x[16 * j + i] / d), -4, 3) + 4);
    }
    std::fill(hmask, hmask + 32, uint8_t(0));
    for (int j = 0; j < qk_k; ++j) {
        if (L[j] > 3) {
            hmask[j % 32] = uint8_t(hmask[j % 32] | 1u << (j / 32));
            L[j] = int8_t(L[j] - 4);
        }
    }
    pack_2bit(L, o + 32);
}

void quantize_q3_k(const float *x, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k) {
        uint8_t *o = out_block(dst, b, 110);
        uint8_t *s = o + 96;
        int8_t L[qk_k];
        float scales[16];
        fit_q3_groups(16, 4, x, L, scales);
        const float max_scale = signed_absmax(scales, 16);
        std::fill(s, s + 12, uint8_t(0));
        if (max_scale != 0.0f) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; ++j) pack_q3_scale(s, j, clampi(int8_t(nearest_int(iscale * scales[j])), -32, 31) + 32);
            put_f16(o + 108, 1 / iscale);
        } else {
            put_f16(o + 108, 0.f);
        }
        finish_q3_k(x, o, L);
    }
}

// With importance weights (ggml's quantize_row_q3_K_impl): weighted symmetric
// group fits, then the 16 scales fitted symmetrically with the groups' weight sums.
void quantize_q3_k_weighted(const float *x, void *dst, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k, qw += qk_k) {
        uint8_t *o = out_block(dst, b, 110);
        uint8_t *s = o + 96;
        int8_t L[qk_k], Ls[16];
        float w[16], sw[16], scales[16];
        const float sigma2 = 2 * sum_squares(x, qk_k) / qk_k;
        for (int j = 0; j < 16; ++j) {
            sw[j] = importance_weights(16, x + 16 * j, qw + 16 * j, sigma2, w);
            scales[j] = fit_symmetric(16, 4, x + 16 * j, L + 16 * j, w);
        }
        const float d_block = fit_symmetric(16, 32, scales, Ls, sw);
        std::fill(s, s + 12, uint8_t(0));
        for (int j = 0; j < 16; ++j) pack_q3_scale(s, j, Ls[j]);
        put_f16(o + 108, d_block);
        finish_q3_k(x, o, L);
    }
}
void dequantize_q3_k(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b) {
        const uint8_t *o = in_block(src, b, 110);
        const uint8_t *hm = o, *q = o + 32, *s = o + 96;
        const float d_all = get_f16(o + 108);
        int is = 0;
        unsigned m = 1;
        for (int half = 0; half < 2; ++half, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
                for (int part = 0; part < 2; ++part) {
                    const float dl = d_all * float(q3_scale(s, is++));
                    for (int l = 0; l < 16; ++l) {
                        const int k = 16 * part + l;
                        const int v = int((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4);
                        *y++ = dl * float(v);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- Q4_K and Q5_K
// Q4_K {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}
// Q5_K {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}

// Q4_K's 4-bit levels: 32-element groups in pairs, low nibbles then high.
inline void pack_q4_k_levels(const uint8_t *L, uint8_t *q) {
    for (int j = 0; j < qk_k; j += 64, q += 32)
        for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | L[j + l + 32] << 4);
}

// Q5_K's 5-bit levels: qh[32] holds bit 4, ql[128] the low nibbles as in Q4_K.
inline void pack_q5_k_levels(const uint8_t *L, uint8_t *qh) {
    uint8_t *ql = qh + 32;
    std::fill(qh, qh + 32, uint8_t(0));
    unsigned m1 = 1, m2 = 2;
    for (int j0 = 0; j0 < qk_k; j0 += 64, m1 <<= 2, m2 <<= 2, ql += 32) {
        for (int j = 0; j < 32; ++j) {
            int l1 = L[j0 + j], l2 = L[j0 + j + 32];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] = uint8_t(qh[j] | m1);
            }
            if (l2 > 15) {
                l2 -= 16;
                qh[j] = uint8_t(qh[j] | m2);
            }
            ql[j] = uint8_t(l1 | l2 << 4);
        }
    }
}

// Q4_K / Q5_K's final levels (0..nmax) against the stored scales and mins.
void requantize_k(const float *x, int nmax, const uint8_t *head, uint8_t *L) {
    const uint8_t *packed = head + 4;
    const float dd = get_f16(head), dmin = get_f16(head + 2);
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        unpack_scale_min(j, packed, sc, m);
        const float d = dd * float(sc);
        if (d == 0.0f) continue;
        const float dm = dmin * float(m);
        for (int i = 0; i < 32; ++i) L[32 * j + i] = uint8_t(clampi(nearest_int((x[32 * j + i] + dm) / d), 0, nmax));
    }
}

// The shared first half: per-32 asymmetric fits, 6-bit scales and mins, then
// the final levels (0..nmax) against the stored scales.
void quantize_k_scales(const float *x, int nmax, float rmin, float rdelta, int nstep, uint8_t *head, uint8_t *L) {
    float w[qk_k], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        const float *xb = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += xb[l] * xb[l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) w[32 * j + l] = av_x + std::fabs(xb[l]);
    }
    fit_asymmetric_groups(8, 32, nmax, x, w, L, scales, mins, rmin, rdelta, nstep, false);
    for (int j = 0; j < 8; ++j) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t *packed = head + 4;
    for (int j = 0; j < 8; ++j) {
        const uint8_t ls = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
        const uint8_t lm = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
        pack_scale_min(j, ls, lm, packed);
    }
    put_f16(head, max_scale / 63.f);
    put_f16(head + 2, max_min / 63.f);
    requantize_k(x, nmax, head, L);
}

// With importance weights (ggml's quantize_row_q4_K_impl / q5_K_impl): weighted
// group fits, then the 6-bit scales and mins fitted with the groups' weight sums.
void quantize_k_scales_weighted(const float *x, const float *qw, int nmax, uint8_t *head, uint8_t *L) {
    float w[qk_k], sw[8], mins[8], scales[8];
    uint8_t Ls[8], Lm[8];
    const float sigma2 = 2 * sum_squares(x, qk_k) / qk_k;
    for (int j = 0; j < 8; ++j) sw[j] = importance_weights(32, x + 32 * j, qw + 32 * j, sigma2, w + 32 * j);
    fit_asymmetric_groups(8, 32, nmax, x, w, L, scales, mins, -0.9f, 0.05f, 36, false);
    const float d_block = fit_positive(8, 63, scales, Ls, sw);
    const float m_block = fit_positive(8, 63, mins, Lm, sw);
    for (int j = 0; j < 8; ++j) pack_scale_min(j, std::min<uint8_t>(63, Ls[j]), std::min<uint8_t>(63, Lm[j]), head + 4);
    put_f16(head, d_block);
    put_f16(head + 2, m_block);
    requantize_k(x, nmax, head, L);
}

void quantize_q4_k_weighted(const float *x, void *dst, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k, qw += qk_k) {
        uint8_t *o = out_block(dst, b, 144);
        uint8_t L[qk_k];
        quantize_k_scales_weighted(x, qw, 15, o, L);
        pack_q4_k_levels(L, o + 16);
    }
}

void quantize_q5_k_weighted(const float *x, void *dst, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k, qw += qk_k) {
        uint8_t *o = out_block(dst, b, 176);
        uint8_t L[qk_k];
        quantize_k_scales_weighted(x, qw, 31, o, L);
        pack_q5_k_levels(L, o + 16);
    }
}

void quantize_q4_k(const float *x, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k) {
        uint8_t *o = out_block(dst, b, 144);
        uint8_t L[qk_k];
        quantize_k_scales(x, 15, -1.f, 0.1f, 20, o, L);
        pack_q4_k_levels(L, o + 16);
    }
}
void dequantize_q4_k(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b) {
        const uint8_t *o = in_block(src, b, 144);
        const float d = get_f16(o), min = get_f16(o + 2);
        const uint8_t *q = o + 16;
        for (int is = 0; is < 8; is += 2, q += 32) {
            uint8_t sc, m;
            unpack_scale_min(is, o + 4, sc, m);
            const float d1 = d * float(sc), m1 = min * float(m);
            unpack_scale_min(is + 1, o + 4, sc, m);
            const float d2 = d * float(sc), m2 = min * float(m);
            for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
        }
    }
}

void quantize_q5_k(const float *x, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k) {
        uint8_t *o = out_block(dst, b, 176);
        uint8_t L[qk_k];
        quantize_k_scales(x, 31, -0.5f, 0.1f, 15, o, L);
        pack_q5_k_levels(L, o + 16);
    }
}
void dequantize_q5_k(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b) {
        const uint8_t *o = in_block(src, b, 176);
        const float d = get_f16(o), min = get_f16(o + 2);
        const uint8_t *qh = o + 16, *ql = o + 48;
        unsigned u1 = 1, u2 = 2;
        for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            unpack_scale_min(is, o + 4, sc, m);
            const float d1 = d * float(sc), m1 = min * float(m);
            unpack_scale_min(is + 1, o + 4, sc, m);
            const float d2 = d * float(sc), m2 = min * float(m);
            for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
        }
    }
}

// ---------------------------------------------------------------- Q6_K
// {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}

// One super-block; qw: importance weights of its 256 elements, or nullptr
// (then each group fit weighs x^2). ggml's imatrix path uses qw as given.
void quantize_q6_k_block(const float *x, uint8_t *o, const float *qw) {
    int8_t L[qk_k];
    float scales[16];
    for (int ib = 0; ib < 16; ++ib)
        scales[ib] = fit_symmetric(16, 32, x + 16 * ib, L + 16 * ib, qw ? qw + 16 * ib : nullptr);
    const float max_scale = signed_absmax(scales, 16);
    if (std::fabs(max_scale) < group_max_eps) {
        std::fill(o, o + 210, uint8_t(0));
        return;
    }
    auto *sc = reinterpret_cast<int8_t *>(o + 192);
    const float iscale = -128.f / max_scale;
    put_f16(o + 208, 1 / iscale);
    for (int ib = 0; ib < 16; ++ib) sc[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
    const float dd = get_f16(o + 208);
    for (int j = 0; j < 16; ++j) {
        const float d = dd * float(sc[j]);
        if (d == 0.0f) continue;
        for (int i = 0; i < 16; ++i) L[16 * j + i] = int8_t(clampi(nearest_int(x[16 * j + i] / d), -32, 31) + 32);
    }
    uint8_t *ql = o, *qh = o + 128;
    for (int j = 0; j < qk_k; j += 128, ql += 64, qh += 32) {
        for (int l = 0; l < 32; ++l) {
            const int a = L[j + l], c = L[j + l + 32], e = L[j + l + 64], g = L[j + l + 96];
            ql[l] = uint8_t((a & 0xF) | (e & 0xF) << 4);
            ql[l + 32] = uint8_t((c & 0xF) | (g & 0xF) << 4);
            qh[l] = uint8_t((a >> 4) | (c >> 4) << 2 | (e >> 4) << 4 | (g >> 4) << 6);
        }
    }
}

void quantize_q6_k(const float *x, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k) quantize_q6_k_block(x, out_block(dst, b, 210), nullptr);
}
void quantize_q6_k_weighted(const float *x, void *dst, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k, qw += qk_k) quantize_q6_k_block(x, out_block(dst, b, 210), qw);
}
void dequantize_q6_k(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b) {
        const uint8_t *o = in_block(src, b, 210);
        const float d = get_f16(o + 208);
        const uint8_t *ql = o, *qh = o + 128;
        const auto *sc = reinterpret_cast<const int8_t *>(o + 192);
        for (int half = 0; half < 2; ++half, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = int((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                const int q2 = int((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                const int q3 = int((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                const int q4 = int((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                y[l] = d * float(sc[is]) * float(q1);
                y[l + 32] = d * float(sc[is + 2]) * float(q2);
                y[l + 64] = d * float(sc[is + 4]) * float(q3);
                y[l + 96] = d * float(sc[is + 6]) * float(q4);
            }
        }
    }
}

// ---------------------------------------------------------------- Q8_K
// {f32 d; i8 qs[256]; i16 bsums[16]}: the intermediate format of K-quant dot products.

void quantize_q8_k(const float *x, void *dst, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k) {
        uint8_t *o = out_block(dst, b, 292);
        const float max = signed_absmax(x, qk_k);
        if (max == 0.0f) {
            std::fill(o, o + 292, uint8_t(0));
            continue;
        }
        const float iscale = -127.f / max;
        auto *qs = reinterpret_cast<int8_t *>(o + 4);
        for (int j = 0; j < qk_k; ++j) qs[j] = int8_t(std::min(127, nearest_int(iscale * x[j])));
        for (int j = 0; j < 16; ++j) {
            int sum = 0;
            for (int i = 0; i < 16; ++i) sum += qs[16 * j + i];
            const int16_t s = int16_t(sum);
            std::memcpy(o + 260 + 2 * j, &s, 2);
        }
        const float d = 1 / iscale;
        std::memcpy(o, &d, 4);
    }
}
void dequantize_q8_k(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b, y += qk_k) {
        const uint8_t *o = in_block(src, b, 292);
        float d;
        std::memcpy(&d, o, 4);
        for (int j = 0; j < qk_k; ++j) y[j] = d * float(int8_t(o[4 + j]));
    }
}

// ---------------------------------------------------------------- IQ4_NL and IQ4_XS
// IQ4_NL {f16 d; u8 qs[16]}: x = d * codebook[q].
// IQ4_XS {f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]}: 8 sub-blocks of 32 with 6-bit scales.

// The codebook entry nearest to v (the upper one on an exact tie).
inline int nearest_code(float v) {
    const float v2 = v + v;
    int idx = 0;
    for (int step = 8; step > 0; step >>= 1) {
        const int j = idx + step;
        if (v2 >= float(k_iq4_values[j - 1] + k_iq4_values[j])) idx = j;
    }
    return idx;
}

// Fits one sub-block of 32 against the codebook with weights w (x^2 when
// nullptr), trying 15 scales around max / codebook[0]; returns the best scale
// (0 for a zero block) and leaves the levels of the first guess in L.
LLMKIT_FIT_CLONES float fit_codebook(const float *xb, uint8_t *L, const float *w = nullptr) {
    constexpr int ntry = 7;
    const float max = signed_absmax(xb, 32);
    if (std::fabs(max) < group_max_eps) return 0.0f;
    float d = -max / float(k_iq4_values[0]);
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
        const int l = nearest_code(id * xb[j]);
        L[j] = uint8_t(l);
        const float q = float(k_iq4_values[l]);
        const float wj = w ? w[j] : xb[j] * xb[j];
        sumqx += wj * q * xb[j];
        sumq2 += wj * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; ++itry) {
        id = float(itry + k_iq4_values[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            const float q = float(k_iq4_values[nearest_code(id * xb[j])]);
            const float wj = w ? w[j] : xb[j] * xb[j];
            sumqx += wj * q * xb[j];
            sumq2 += wj * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

#ifdef LLMKIT_QUANT_AVX2
// IQ4_NL's codebook search 8 values at a time. nearest_code's binary search
// compares 2v with the midpoints m_k = codebook[k - 1] + codebook[k]; here
// each step picks every lane's midpoint from a table by the index so far.
struct codebook_tables {
    __m256 mid8, mid4, mid2, mid1;  // m_8; m_4, m_12; m_2, m_6, m_10, m_14; m_1, m_3, ..., m_15
    __m256 lo, hi;                 // codebook[0..7], codebook[8..15]
};

LLMKIT_AVX2_FN inline codebook_tables make_codebook_tables() {
    auto mid = [](int k) { return float(k_iq4_values[k - 1] + k_iq4_values[k]); };
    codebook_tables t;
    t.mid8 = _mm256_set1_ps(mid(8));
    t.mid4 = _mm256_setr_ps(mid(4), mid(12), 0, 0, 0, 0, 0, 0);
    t.mid2 = _mm256_setr_ps(mid(2), mid(6), mid(10), mid(14), 0, 0, 0, 0);
    t.mid1 = _mm256_setr_ps(mid(1), mid(3), mid(5), mid(7), mid(9), mid(11), mid(13), mid(15));
    const auto *book = reinterpret_cast<const __m128i *>(k_iq4_values);
    t.lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(book)));
    t.hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(_mm_loadu_si128(book), 8)));
    return t;
}

// nearest_code(v) of 8 values (a NaN gives 0, as in the scalar search).
LLMKIT_AVX2_FN inline __m256i nearest_code8(const codebook_tables &t, __m256 v) {
    const __m256 v2 = _mm256_add_ps(v, v);
    __m256i idx = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(v2, t.mid8, _CMP_GE_OQ)), _mm256_set1_epi32(8));
    __m256 m = _mm256_permutevar8x32_ps(t.mid4, _mm256_srli_epi32(idx, 3));
    idx = _mm256_add_epi32(idx, _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(v2, m, _CMP_GE_OQ)), _mm256_set1_epi32(4)));
    m = _mm256_permutevar8x32_ps(t.mid2, _mm256_srli_epi32(idx, 2));
    idx = _mm256_add_epi32(idx, _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(v2, m, _CMP_GE_OQ)), _mm256_set1_epi32(2)));
    m = _mm256_permutevar8x32_ps(t.mid1, _mm256_srli_epi32(idx, 1));
    return _mm256_add_epi32(idx, _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(v2, m, _CMP_GE_OQ)), _mm256_set1_epi32(1)));
}

// codebook[idx] as a float.
LLMKIT_AVX2_FN inline __m256 code_value8(const codebook_tables &t, __m256i idx) {
    // Bit 3 of idx into the sign bit selects the upper half.
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t.lo, idx), _mm256_permutevar8x32_ps(t.hi, idx),
                            _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

// L[j] = nearest_code(id * x[j]) for j = 0..31.
LLMKIT_AVX2_FN void nearest_codes32_avx2(const float *x, float id, uint8_t *L) {
    const codebook_tables t = make_codebook_tables();
    const __m256 vid = _mm256_set1_ps(id);
    alignas(32) int32_t idx[32];
    for (int i = 0; i < 32; i += 8)
        _mm256_store_si256(reinterpret_cast<__m256i *>(idx + i), nearest_code8(t, _mm256_mul_ps(vid, _mm256_loadu_ps(x + i))));
    for (int j = 0; j < 32; ++j) L[j] = uint8_t(idx[j]);
}

// fit_codebook's scale (not its levels): the first guess and the 15 tries
// are independent, so the 16 candidates run as the lanes of two vectors,
// each lane's sums in the scalar order; then the same choice, in order.
LLMKIT_AVX2_FN float fit_codebook_avx2(const float *xb, const float *w) {
    const float max = signed_absmax(xb, 32);
    if (std::fabs(max) < group_max_eps) return 0.0f;
    const codebook_tables t = make_codebook_tables();
    alignas(32) float ids[16];
    ids[0] = 1 / (-max / float(k_iq4_values[0]));
    for (int c = 1; c < 16; ++c) ids[c] = float(c - 8 + k_iq4_values[0]) / max;  // itry = c - 8 = -7..7
    const __m256 id_a = _mm256_load_ps(ids), id_b = _mm256_load_ps(ids + 8);
    __m256 sqx_a = _mm256_setzero_ps(), sq2_a = sqx_a, sqx_b = sqx_a, sq2_b = sqx_a;
    for (int j = 0; j < 32; ++j) {
        const __m256 xj = _mm256_set1_ps(xb[j]), wj = _mm256_set1_ps(w ? w[j] : xb[j] * xb[j]);
        const __m256 qa = code_value8(t, nearest_code8(t, _mm256_mul_ps(id_a, xj)));
        const __m256 qb = code_value8(t, nearest_code8(t, _mm256_mul_ps(id_b, xj)));
        const __m256 wqa = _mm256_mul_ps(wj, qa), wqb = _mm256_mul_ps(wj, qb);
        sqx_a = _mm256_add_ps(sqx_a, _mm256_mul_ps(wqa, xj));
        sq2_a = _mm256_add_ps(sq2_a, _mm256_mul_ps(wqa, qa));
        sqx_b = _mm256_add_ps(sqx_b, _mm256_mul_ps(wqb, xj));
        sq2_b = _mm256_add_ps(sq2_b, _mm256_mul_ps(wqb, qb));
    }
    alignas(32) float sumqx[16], sumq2[16];
    _mm256_store_ps(sumqx, sqx_a);
    _mm256_store_ps(sumqx + 8, sqx_b);
    _mm256_store_ps(sumq2, sq2_a);
    _mm256_store_ps(sumq2 + 8, sq2_b);
    float d = sumq2[0] > 0 ? sumqx[0] / sumq2[0] : 0.0f;
    float best = d * sumqx[0];
    for (int c = 1; c < 16; ++c) {
        if (sumq2[c] > 0 && sumqx[c] * sumqx[c] > best * sumq2[c]) {
            d = sumqx[c] / sumq2[c];
            best = d * sumqx[c];
        }
    }
    return d;
}
#endif

// fit_codebook's scale, with the AVX2 form where the CPU has it. L may be
// left untouched: the callers write every level from the returned scale.
float fit_codebook_scale(const float *xb, uint8_t *L, const float *w) {
#ifdef LLMKIT_QUANT_AVX2
    if (has_avx2()) return fit_codebook_avx2(xb, w);
#endif
    return fit_codebook(xb, L, w);
}

// L[j] = nearest_code(id * x[j]), j = 0..31.
void nearest_codes32(const float *x, float id, uint8_t *L) {
#ifdef LLMKIT_QUANT_AVX2
    if (has_avx2()) return nearest_codes32_avx2(x, id, L);
#endif
    for (int j = 0; j < 32; ++j) L[j] = uint8_t(nearest_code(id * x[j]));
}

inline void pack_nibbles16(const uint8_t *L, uint8_t *q) {
    for (int j = 0; j < 16; ++j) q[j] = uint8_t(L[j] | L[16 + j] << 4);
}

// qw: importance weights of the row's elements, or nullptr.
void quantize_iq4_nl_row(const float *x, void *dst, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / 32; ++b, x += 32) {
        uint8_t *o = out_block(dst, b, 18);
        uint8_t L[32] = {};
        float w[32];
        if (qw) importance_weights(32, x, qw + 32 * b, sum_squares(x, 32) * (2.f / 32), w);
        const float d = fit_codebook_scale(x, L, qw ? w : nullptr);
        put_f16(o, d);
        const float id = d != 0.0f ? 1 / d : 0;
        nearest_codes32(x, id, L);
        pack_nibbles16(L, o + 2);
    }
}
void quantize_iq4_nl(const float *x, void *dst, int64_t n) { quantize_iq4_nl_row(x, dst, n, nullptr); }
void quantize_iq4_nl_weighted(const float *x, void *dst, int64_t n, const float *qw) {
    quantize_iq4_nl_row(x, dst, n, qw);
}
void dequantize_iq4_nl(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, y += 32) {
        const uint8_t *o = in_block(src, b, 18);
        const float d = get_f16(o);
        for (int j = 0; j < 16; ++j) {
            y[j] = d * float(k_iq4_values[o[2 + j] & 0xF]);
            y[j + 16] = d * float(k_iq4_values[o[2 + j] >> 4]);
        }
    }
}

// qw: importance weights of the row's elements, or nullptr.
void quantize_iq4_xs_row(const float *x, void *dst, int64_t n, const float *qw) {
    for (int64_t b = 0; b < n / qk_k; ++b, x += qk_k) {
        uint8_t *o = out_block(dst, b, 136);
        uint8_t L[qk_k] = {};
        float scales[8], w[32];
        const float sigma2 = qw ? sum_squares(x, qk_k) * (2.f / qk_k) : 0.f;
        for (int ib = 0; ib < 8; ++ib) {
            if (qw) importance_weights(32, x + 32 * ib, qw + qk_k * b + 32 * ib, sigma2, w);
            scales[ib] = fit_codebook_scale(x + 32 * ib, L + 32 * ib, qw ? w : nullptr);
        }
        const float max_scale = signed_absmax(scales, 8);
        const float d = -max_scale / 32;
        put_f16(o, d);
        const float id = d != 0.0f ? 1 / d : 0.f;
        uint16_t scales_h = 0;
        uint8_t *scales_l = o + 4;
        std::fill(scales_l, scales_l + 4, uint8_t(0));
        for (int ib = 0; ib < 8; ++ib) {
            int l = clampi(nearest_int(id * scales[ib]), -32, 31);
            const float dl = d * float(l);
            const float idl = dl != 0.0f ? 1 / dl : 0.f;
            nearest_codes32(x + 32 * ib, idl, L + 32 * ib);
            l += 32;
            scales_l[ib / 2] = uint8_t(scales_l[ib / 2] | (l & 0xF) << (4 * (ib % 2)));
            scales_h = uint16_t(scales_h | (l >> 4) << (2 * ib));
        }
        std::memcpy(o + 2, &scales_h, 2);
        for (int ib = 0; ib < 8; ++ib) pack_nibbles16(L + 32 * ib, o + 8 + 16 * ib);
    }
}
void quantize_iq4_xs(const float *x, void *dst, int64_t n) { quantize_iq4_xs_row(x, dst, n, nullptr); }
void quantize_iq4_xs_weighted(const float *x, void *dst, int64_t n, const float *qw) {
    quantize_iq4_xs_row(x, dst, n, qw);
}
void dequantize_iq4_xs(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / qk_k; ++b) {
        const uint8_t *o = in_block(src, b, 136);
        const float d = get_f16(o);
        uint16_t scales_h;
        std::memcpy(&scales_h, o + 2, 2);
        const uint8_t *qs = o + 8;
        for (int ib = 0; ib < 8; ++ib, qs += 16, y += 32) {
            const int ls = ((o[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) | ((scales_h >> (2 * ib)) & 3) << 4;
            const float dl = d * float(ls - 32);
            for (int j = 0; j < 16; ++j) {
                y[j] = dl * float(k_iq4_values[qs[j] & 0xF]);
                y[j + 16] = dl * float(k_iq4_values[qs[j] >> 4]);
            }
        }
    }
}

// ---------------------------------------------------------------- 32-element blocks with importance weights
// ggml's quantize_row_q4_0_impl ... q5_1_impl: sigma2 is the mean square of
// the whole row; the symmetric types fit as Q6_K's groups do, the asymmetric
// ones as Q4_K's, and the fitted scale is stored as is (no second pass).

struct row_weights {
    float sigma2;
    explicit row_weights(const float *x, int64_t n) : sigma2(sum_squares(x, n) / float(n)) {}

    // Fits block xb (importance qw): stores d at o, levels + nmax in L.
    void symmetric(const float *xb, const float *qw, int nmax, uint8_t *o, int8_t *L) const {
        float w[32];
        importance_weights(32, xb, qw, sigma2, w);
        put_f16(o, fit_symmetric(32, nmax, xb, L, w));
    }
    // Fits the `count` (<= 8) blocks at xb (importance qw), block g's d and m
    // stored at o + g * block_bytes, its levels 0..nmax into L + 32 g.
    void asymmetric(int count, const float *xb, const float *qw, int nmax, uint8_t *o, int64_t block_bytes,
                    uint8_t *L) const {
        float w[8 * 32], scales[8], neg_mins[8];
        for (int g = 0; g < count; ++g) importance_weights(32, xb + 32 * g, qw + 32 * g, sigma2, w + 32 * g);
        fit_asymmetric_groups(count, 32, nmax, xb, w, L, scales, neg_mins, -0.9f, 0.05f, 36, false);
        for (int g = 0; g < count; ++g) {
            put_f16(o + g * block_bytes, scales[g]);
            put_f16(o + g * block_bytes + 2, -neg_mins[g]);
        }
    }
};

void quantize_q4_0_weighted(const float *x, void *dst, int64_t n, const float *qw) {
    const row_weights rw(x, n);
    for (int64_t b = 0; b < n / 32; ++b) {
        uint8_t *o = out_block(dst, b, 18);
        int8_t L[32];
        rw.symmetric(x + 32 * b, qw + 32 * b, 8, o, L);
        for (int j = 0; j < 16; ++j) o[2 + j] = uint8_t(L[j] | L[j + 16] << 4);
    }
}

// Q4_1 / Q5_1 fit 8 blocks at a time (fit_asymmetric_groups).
void quantize_q4_1_weighted(const float *x, void *dst, int64_t n, const float *qw) {
    const row_weights rw(x, n);
    for (int64_t b0 = 0; b0 < n / 32; b0 += 8) {
        const int count = int(std::min<int64_t>(8, n / 32 - b0));
        uint8_t L[8 * 32];
        rw.asymmetric(count, x + 32 * b0, qw + 32 * b0, 15, out_block(dst, b0, 20), 20, L);
        for (int g = 0; g < count; ++g) {
            uint8_t *o = out_block(dst, b0 + g, 20);
            for (int j = 0; j < 16; ++j) o[4 + j] = uint8_t(L[32 * g + j] | L[32 * g + j + 16] << 4);
        }
    }
}

void quantize_q5_0_weighted(const float *x, void *dst, int64_t n, const float *qw) {
    const row_weights rw(x, n);
    for (int64_t b = 0; b < n / 32; ++b) {
        uint8_t *o = out_block(dst, b, 22);
        int8_t L[32];
        rw.symmetric(x + 32 * b, qw + 32 * b, 16, o, L);
        uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) put_q5_pair(unsigned(L[j]), unsigned(L[j + 16]), j, o + 6, qh);
        std::memcpy(o + 2, &qh, 4);
    }
}

void quantize_q5_1_weighted(const float *x, void *dst, int64_t n, const float *qw) {
    const row_weights rw(x, n);
    for (int64_t b0 = 0; b0 < n / 32; b0 += 8) {
        const int count = int(std::min<int64_t>(8, n / 32 - b0));
        uint8_t L[8 * 32];
        rw.asymmetric(count, x + 32 * b0, qw + 32 * b0, 31, out_block(dst, b0, 24), 24, L);
        for (int g = 0; g < count; ++g) {
            uint8_t *o = out_block(dst, b0 + g, 24);
            uint32_t qh = 0;
            for (int j = 0; j < 16; ++j) put_q5_pair(L[32 * g + j], L[32 * g + j + 16], j, o + 8, qh);
            std::memcpy(o + 4, &qh, 4);
        }
    }
}

// ---------------------------------------------------------------- the table

const type_traits k_types[] = {
    {t_f32, "f32", 1, 4, quantize_f32, dequantize_f32, nullptr},
    {t_f16, "f16", 1, 2, quantize_f16, dequantize_f16, nullptr},
    {t_q4_0, "q4_0", 32, 18, quantize_q4_0, dequantize_q4_0, quantize_q4_0_weighted},
    {t_q4_1, "q4_1", 32, 20, quantize_q4_1, dequantize_q4_1, quantize_q4_1_weighted},
    {t_q5_0, "q5_0", 32, 22, quantize_q5_0, dequantize_q5_0, quantize_q5_0_weighted},
    {t_q5_1, "q5_1", 32, 24, quantize_q5_1, dequantize_q5_1, quantize_q5_1_weighted},
    {t_q8_0, "q8_0", 32, 34, quantize_q8_0, dequantize_q8_0, nullptr},
    {t_q8_1, "q8_1", 32, 36, quantize_q8_1, dequantize_q8_1, nullptr},
    {t_q2_k, "q2_K", 256, 84, quantize_q2_k, dequantize_q2_k, quantize_q2_k_weighted},
    {t_q3_k, "q3_K", 256, 110, quantize_q3_k, dequantize_q3_k, quantize_q3_k_weighted},
    {t_q4_k, "q4_K", 256, 144, quantize_q4_k, dequantize_q4_k, quantize_q4_k_weighted},
    {t_q5_k, "q5_K", 256, 176, quantize_q5_k, dequantize_q5_k, quantize_q5_k_weighted},
    {t_q6_k, "q6_K", 256, 210, quantize_q6_k, dequantize_q6_k, quantize_q6_k_weighted},
    {t_q8_k, "q8_K", 256, 292, quantize_q8_k, dequantize_q8_k, nullptr},
    {t_iq4_nl, "iq4_nl", 32, 18, quantize_iq4_nl, dequantize_iq4_nl, quantize_iq4_nl_weighted},
    {t_iq4_xs, "iq4_xs", 256, 136, quantize_iq4_xs, dequantize_iq4_xs, quantize_iq4_xs_weighted},
    {t_bf16, "bf16", 1, 2, quantize_bf16, dequantize_bf16, nullptr},
    {t_tq1_0, "tq1_0", 256, 54, quantize_tq1_0, dequantize_tq1_0, nullptr},
    {t_tq2_0, "tq2_0", 256, 66, quantize_tq2_0, dequantize_tq2_0, nullptr},
    {t_mxfp4, "mxfp4", 32, 17, quantize_mxfp4, dequantize_mxfp4, nullptr},
};

}  // namespace

void q4_k_sub_block(const uint8_t *block, int j, float &d, float &m) noexcept {
    uint8_t sc, mn;
    unpack_scale_min(j, block + 4, sc, mn);
    d = get_f16(block) * float(sc);
    m = get_f16(block + 2) * float(mn);
}

void q4_k_put_levels(const uint8_t *levels, uint8_t *block) noexcept { pack_q4_k_levels(levels, block + 16); }

bool set_avx2_quantizers(bool enabled) noexcept {
    g_avx2_enabled.store(enabled);
#ifdef LLMKIT_QUANT_AVX2
    return cpu_has_avx2();
#else
    return false;
#endif
}

bool avx2_quantizers_enabled() noexcept {
#ifdef LLMKIT_QUANT_AVX2
    return has_avx2();
#else
    return false;
#endif
}

const type_traits *find_type(int32_t id) noexcept {
    for (const auto &t : k_types)
        if (t.id == id) return &t;
    return nullptr;
}

const type_traits *find_type(const char *name) noexcept {
    if (!name) return nullptr;
    for (const auto &t : k_types) {
        size_t i = 0;
        while (t.name[i] && name[i] &&
               std::tolower(static_cast<unsigned char>(t.name[i])) == std::tolower(static_cast<unsigned char>(name[i])))
            ++i;
        if (!t.name[i] && !name[i]) return &t;
    }
    return nullptr;
}

const type_traits *all_types(size_t *count) noexcept {
    if (count) *count = sizeof(k_types) / sizeof(k_types[0]);
    return k_types;
}

}  // namespace llmkit::quant
