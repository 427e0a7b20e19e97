#include "core/finite.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <sstream>

#include "core/error.hpp"
#include "core/threads.hpp"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define LLMKIT_FINITE_AVX2 1
#endif

namespace llmkit::core {

namespace {

// Whether no value's exponent is all ones (infinity or NaN) once `map` has
// cleared the values that are allowed. The loop ORs (bits & exponent) + one
// exponent unit into eight accumulators: the sum carries into the top bit
// exactly when the exponent is all ones. No branch per value, so compilers
// vectorize it (`map` is a select).
template <typename Map>
bool no_all_ones_exponent(const float *x, int64_t n, Map map) noexcept {
    constexpr uint32_t k_exponent = 0x7f800000u, k_unit = 0x00800000u;
    uint32_t acc[8] = {};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; ++k) {
            uint32_t b;
            std::memcpy(&b, x + j + k, sizeof b);
            acc[k] |= (map(b) & k_exponent) + k_unit;
        }
    uint32_t all = 0;
    for (int k = 0; k < 8; ++k) all |= acc[k];
    for (; j < n; ++j) {
        uint32_t b;
        std::memcpy(&b, x + j, sizeof b);
        all |= (map(b) & k_exponent) + k_unit;
    }
    return (all & 0x80000000u) == 0;
}

#ifdef LLMKIT_FINITE_AVX2
// Eight values at a time: a value is infinity or NaN exactly when its
// exponent bits are all ones, so the OR of (bits & exponent) == exponent over
// the input is zero when every value is finite. Three instructions per eight
// values, where the SSE2 build of the loop above takes eight; quantize checks
// each piece of its input with this just before quantizing it, and the SSE2
// loop was a fifth of a Q4_1 quantize. Integer operations only: a float test
// (x - x) would raise the invalid-operation flag on infinity, and trap where
// the caller has enabled that exception.
__attribute__((target("avx2"))) bool all_finite_avx2(const float *x, int64_t n) noexcept {
    const __m256i exponent = _mm256_set1_epi32(0x7f800000);
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x + j));
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x + j + 8));
        acc0 = _mm256_or_si256(acc0, _mm256_cmpeq_epi32(_mm256_and_si256(a, exponent), exponent));
        acc1 = _mm256_or_si256(acc1, _mm256_cmpeq_epi32(_mm256_and_si256(b, exponent), exponent));
    }
    const __m256i acc = _mm256_or_si256(acc0, acc1);
    return _mm256_testz_si256(acc, acc) && no_all_ones_exponent(x + j, n - j, [](uint32_t b) { return b; });
}

// The same for 16-bit floats, sixteen at a time (exponent: bfloat16's or
// float16's bits). Attention decode checks each K/V row right after reading it
// (attention.cpp, check_rows); the portable loop took 40 % of a bf16 decode's
// time there.
__attribute__((target("avx2"))) bool all_finite_u16_avx2(const uint16_t *x, int64_t n, uint16_t exponent) noexcept {
    const __m256i e = _mm256_set1_epi16(int16_t(exponent));
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x + j));
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x + j + 16));
        acc0 = _mm256_or_si256(acc0, _mm256_cmpeq_epi16(_mm256_and_si256(a, e), e));
        acc1 = _mm256_or_si256(acc1, _mm256_cmpeq_epi16(_mm256_and_si256(b, e), e));
    }
    const __m256i acc = _mm256_or_si256(acc0, acc1);
    if (!_mm256_testz_si256(acc, acc)) return false;
    for (; j < n; ++j)
        if ((x[j] & exponent) == exponent) return false;
    return true;
}

// The same test in 512-bit registers, two operations per 64 bytes: a value is
// infinity or NaN exactly when its magnitude bits (the sign cleared) are at
// least the all-ones exponent `limit`, so the running unsigned maximum of the
// magnitudes says it for the whole input. T is uint32_t (float32 bits) or
// uint16_t (bf16, fp16). The last, partial vector is loaded masked (zeros are
// finite). On the Emerald Rapids VM a dense bf16 decode, which checks each
// chunk of K and V rows as it reads them, spent 8-14 % of its time in the
// AVX2 loop. (The maxima are zero-masked with every lane on: the plain
// intrinsics pass _mm512_undefined_epi32() through, which GCC 12 reports as
// used uninitialized.)
template <typename T>
__attribute__((target("avx512f,avx512bw"))) inline __m512i max_lanes(__m512i a, __m512i b) {
    if constexpr (sizeof(T) == 4) return _mm512_maskz_max_epu32(__mmask16(0xffff), a, b);
    else return _mm512_maskz_max_epu16(~__mmask32(0), a, b);
}

template <typename T>
__attribute__((target("avx512f,avx512bw"))) bool magnitudes_below_avx512(const T *x, int64_t n, T limit) noexcept {
    constexpr int64_t lanes = 64 / sizeof(T);
    const __m512i magnitude = sizeof(T) == 4 ? _mm512_set1_epi32(0x7fffffff) : _mm512_set1_epi16(0x7fff);
    __m512i m0 = _mm512_setzero_si512(), m1 = _mm512_setzero_si512();
    int64_t j = 0;
    for (; j + 2 * lanes <= n; j += 2 * lanes) {
        m0 = max_lanes<T>(m0, _mm512_and_si512(_mm512_loadu_si512(x + j), magnitude));
        m1 = max_lanes<T>(m1, _mm512_and_si512(_mm512_loadu_si512(x + j + lanes), magnitude));
    }
    for (; j < n; j += lanes) {
        const uint64_t k = n - j >= lanes ? ~uint64_t(0) : (uint64_t(1) << (n - j)) - 1u;
        __m512i v;
        if constexpr (sizeof(T) == 4) v = _mm512_maskz_loadu_epi32(__mmask16(k), x + j);
        else v = _mm512_maskz_loadu_epi16(__mmask32(k), x + j);
        m0 = max_lanes<T>(m0, _mm512_and_si512(v, magnitude));
    }
    const __m512i m = max_lanes<T>(m0, m1);
    if constexpr (sizeof(T) == 4) return _mm512_cmpge_epu32_mask(m, _mm512_set1_epi32(int32_t(limit))) == 0;
    else return _mm512_cmpge_epu16_mask(m, _mm512_set1_epi16(int16_t(limit))) == 0;
}
#endif

}  // namespace

bool all_finite(const float *x, int64_t n) noexcept {
#ifdef LLMKIT_FINITE_AVX2
    static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    if (avx512) return magnitudes_below_avx512(reinterpret_cast<const uint32_t *>(x), n, uint32_t(0x7f800000));
    static const bool avx2 = __builtin_cpu_supports("avx2");
    if (avx2) return all_finite_avx2(x, n);
#endif
    return no_all_ones_exponent(x, n, [](uint32_t b) { return b; });
}

bool all_finite(const uint16_t *x, int64_t n, dtype t) noexcept {
    // bfloat16: 8 exponent bits at 7..14; float16: 5 at 10..14.
    const uint16_t exponent = t == dtype::bf16 ? 0x7f80u : 0x7c00u;
#ifdef LLMKIT_FINITE_AVX2
    static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    if (avx512) return magnitudes_below_avx512(x, n, exponent);
    static const bool avx2 = __builtin_cpu_supports("avx2");
    if (avx2) return all_finite_u16_avx2(x, n, exponent);
#endif
    const uint16_t unit = t == dtype::bf16 ? 0x0080u : 0x0400u;
    uint16_t acc[16] = {};
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; ++k) acc[k] |= uint16_t((x[j + k] & exponent) + unit);
    uint16_t all = 0;
    for (int k = 0; k < 16; ++k) all |= acc[k];
    for (; j < n; ++j) all |= uint16_t((x[j] & exponent) + unit);
    return (all & 0x8000u) == 0;
}

bool no_nan_or_positive_infinity(const float *x, int64_t n) noexcept {
    constexpr uint32_t k_minus_infinity = 0xff800000u;
    return no_all_ones_exponent(x, n, [](uint32_t b) { return b == k_minus_infinity ? 0u : b; });
}

namespace {

float value_at(const tensor_view &t, int64_t offset) {
    float v;
    load_floats(&v, t.data + offset * int64_t(t.elem_size), 1, 1, t.type);
    return v;
}

bool is_bad(float v, bool allow_negative_infinity) {
    return std::isnan(v) || (std::isinf(v) && !(allow_negative_infinity && v < 0));
}

}  // namespace

void require_finite(const tensor_view &t, int n_threads, bool allow_negative_infinity) {
    if (t.type != dtype::f32 && t.type != dtype::bf16 && t.type != dtype::f16)
        fail(LLMKIT_ERROR_INTERNAL, t.name, ": require_finite on dtype ", dtype_name(t.type));
    if (allow_negative_infinity && t.type != dtype::f32)
        fail(LLMKIT_ERROR_INTERNAL, t.name, ": require_finite allows -inf for float32 only");
    if (t.numel() == 0) return;
    const int last = t.ndim - 1;
    const int64_t n = t.ndim == 0 ? 1 : t.shape[last];
    const int64_t step = t.ndim == 0 ? 1 : t.strides[last];
    const int64_t rows = t.numel() / n;
    // The element offset of the first value of row r (row-major over the leading axes).
    const auto row_offset = [&](int64_t r) {
        int64_t off = 0;
        for (int i = last - 1; i >= 0; --i) {
            off += (r % t.shape[i]) * t.strides[i];
            r /= t.shape[i];
        }
        return off;
    };
    const auto row_ok = [&](int64_t r) {
        const int64_t first = row_offset(r);
        const char *p = t.data + first * int64_t(t.elem_size);
        if (step == 1 || n == 1) {
            if (t.type == dtype::f32)
                return allow_negative_infinity ? no_nan_or_positive_infinity(reinterpret_cast<const float *>(p), n)
                                               : all_finite(reinterpret_cast<const float *>(p), n);
            return all_finite(reinterpret_cast<const uint16_t *>(p), n, t.type);
        }
        for (int64_t j = 0; j < n; ++j)
            if (is_bad(value_at(t, first + j * step), allow_negative_infinity)) return false;
        return true;
    };
    // Tasks of at least 64k values: the check runs at memory speed, and a
    // task per row would cost more in the pool than in the loop.
    const int64_t rows_per_task = std::max<int64_t>(1, (int64_t(1) << 16) / n);
    const int64_t tasks = (rows + rows_per_task - 1) / rows_per_task;
    std::atomic<int64_t> first_bad{rows};
    parallel_for(tasks, n_threads, [&](int64_t task) {
        const int64_t end = std::min(rows, (task + 1) * rows_per_task);
        for (int64_t r = task * rows_per_task; r < end && r < first_bad.load(std::memory_order_relaxed); ++r)
            if (!row_ok(r)) {
                int64_t cur = first_bad.load();
                while (r < cur && !first_bad.compare_exchange_weak(cur, r)) {
                }
                return;
            }
    });
    const int64_t r = first_bad.load();
    if (r == rows) return;
    const int64_t first = row_offset(r);
    int64_t j = 0;
    while (!is_bad(value_at(t, first + j * step), allow_negative_infinity)) ++j;
    std::ostringstream index;
    int64_t rest = r;
    int64_t idx[tensor_view::max_dims] = {};
    for (int i = last - 1; i >= 0; --i) {
        idx[i] = rest % t.shape[i];
        rest /= t.shape[i];
    }
    if (t.ndim > 0) idx[last] = j;
    for (int i = 0; i < t.ndim; ++i) index << (i ? ", " : "") << idx[i];
    fail(LLMKIT_ERROR_NON_FINITE, t.name, t.ndim > 0 ? "[" : "", index.str(), t.ndim > 0 ? "]" : "", " = ",
         value_at(t, first + j * step), allow_negative_infinity ? " is not allowed (only finite values and -inf are)" : " is not finite");
}

}  // namespace llmkit::core
