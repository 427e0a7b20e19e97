// FP8 E4M3 ("fn" variant of the OCP FP8 spec) and E5M2, with a float32
// scale per tensor or per row: x ~ fp8_value * scale, scale = amax / largest
// finite value of the format (448 or 57344), so the largest magnitude maps
// onto the format's largest value and nothing overflows.
//
// The float32 -> fp8 rounding is round-to-nearest-even on the bits, matching
// torch's float32 -> float8_e4m3fn / float8_e5m2 casts bit for bit (see
// formats.hpp for what each does out of range).
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/error.hpp"
#include "core/threads.hpp"
#include "quant/format_kernels.hpp"

namespace llmkit::quant {

namespace {

inline uint32_t bits_of(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    return u;
}

// Value tables for decoding, built once from the bit layout.
struct fp8_tables {
    float e4m3[256], e5m2[256];
    fp8_tables() {
        for (int c = 0; c < 256; ++c) {
            const float sign = (c & 0x80) ? -1.0f : 1.0f;
            {
                const int e = (c >> 3) & 0x0f, m = c & 7;
                float v;
                if (e == 15 && m == 7) v = NAN;
                else if (e == 0) v = std::ldexp(float(m), -9);  // subnormal: m * 2^-6 / 8
                else v = std::ldexp(1.0f + float(m) / 8.0f, e - 7);
                e4m3[c] = sign * v;
            }
            {
                const int e = (c >> 2) & 0x1f, m = c & 3;
                float v;
                if (e == 31) v = m == 0 ? INFINITY : NAN;
                else if (e == 0) v = std::ldexp(float(m), -16);  // subnormal: m * 2^-14 / 4
                else v = std::ldexp(1.0f + float(m) / 4.0f, e - 15);
                e5m2[c] = sign * v;
            }
        }
    }
};

const fp8_tables &tables() {
    static const fp8_tables t;
    return t;
}

}  // namespace

uint8_t f32_to_e4m3(float x) noexcept {
    uint32_t u = bits_of(x);
    const uint8_t sign = uint8_t((u >> 24) & 0x80);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) return uint8_t(sign | 0x7f);  // NaN
    // Saturating, as torch's cast: from 448 up, infinities included, +-448.
    if (u >= 0x43e00000u) return uint8_t(sign | 0x7e);
    if (u < 0x3c800000u) {
        // Below the smallest normal 2^-6: multiples of 2^-9. Scaling by 2^9 is
        // exact, and nearbyint rounds half to even.
        const float a = std::fabs(x) * 512.0f;
        return uint8_t(sign | uint8_t(std::nearbyint(a)));
    }
    // Normal: drop 20 of float's 23 mantissa bits with round-half-to-even;
    // a carry moves into the exponent as it should.
    const uint32_t r = (u + 0x7ffffu + ((u >> 20) & 1u)) >> 20;
    return uint8_t(sign | uint8_t(r - ((127u - 7u) << 3)));
}

uint8_t f32_to_e5m2(float x) noexcept {
    uint32_t u = bits_of(x);
    const uint8_t sign = uint8_t((u >> 24) & 0x80);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) return uint8_t(sign | 0x7f);  // NaN
    if (u >= 0x47700000u) return uint8_t(sign | 0x7c);  // >= 61440 (halfway to 65536): infinity
    if (u < 0x38800000u) {
        // Below the smallest normal 2^-14: multiples of 2^-16.
        const float a = std::fabs(x) * 65536.0f;
        return uint8_t(sign | uint8_t(std::nearbyint(a)));
    }
    const uint32_t r = (u + 0xfffffu + ((u >> 21) & 1u)) >> 21;
    return uint8_t(sign | uint8_t(r - ((127u - 15u) << 2)));
}

float e4m3_to_f32(uint8_t c) noexcept { return tables().e4m3[c]; }
float e5m2_to_f32(uint8_t c) noexcept { return tables().e5m2[c]; }

// All-zero groups get 1 (any value decodes 0 to 0); an amax so small that
// amax / max underflows gets the smallest subnormal float, which still maps
// it inside range.
float fp8_scale(float amax, int variant) noexcept {
    if (amax == 0.0f) return 1.0f;
    const float s = amax / (variant == 0 ? 448.0f : 57344.0f);
    return s > 0.0f ? s : FLT_TRUE_MIN;
}

namespace kernels {

namespace {

float row_amax(const f32_rows &src, int64_t r) {
    const float *row = src.data + r * src.row_stride;
    float m = 0.0f;
    for (int64_t j = 0; j < src.n; ++j) m = std::max(m, std::fabs(row[j * src.col_stride]));
    return m;
}

}  // namespace

void quantize_fp8(const format_traits &f, const f32_rows &src, uint8_t *base, const std::vector<plane> &p, int threads) {
    uint8_t *q = base + p[0].offset;
    uint8_t *scales = base + p[1].offset;
    std::vector<float> amax(size_t(src.rows));
    core::parallel_for(src.rows, threads, [&](int64_t r) { amax[size_t(r)] = row_amax(src, r); });
    const bool per_tensor = f.group < 0;
    float tensor_scale = 1.0f;
    if (per_tensor) {
        float m = 0.0f;
        for (float a : amax) m = std::max(m, a);
        tensor_scale = fp8_scale(m, f.variant);
        store<float>(scales, tensor_scale);
    }
    const auto encode = f.variant == 0 ? f32_to_e4m3 : f32_to_e5m2;
    core::parallel_for(src.rows, threads, [&](int64_t r) {
        const float s = per_tensor ? tensor_scale : fp8_scale(amax[size_t(r)], f.variant);
        if (!per_tensor) store<float>(scales + size_t(r) * 4, s);
        const float *row = src.data + r * src.row_stride;
        uint8_t *out = q + size_t(r) * size_t(src.n);
        // Division, not multiplication by 1 / s: torch users write x / scale,
        // and the bytes must match theirs.
        for (int64_t j = 0; j < src.n; ++j) out[j] = encode(row[j * src.col_stride] / s);
    });
}

void dequantize_fp8(const format_traits &f, const uint8_t *base, const std::vector<plane> &p, const out_rows &out,
                    int threads) {
    const uint8_t *q = base + p[0].offset;
    const uint8_t *scales = base + p[1].offset;
    const float *table = f.variant == 0 ? tables().e4m3 : tables().e5m2;
    core::parallel_for(out.rows, threads, [&](int64_t r) {
        const float s = load<float>(scales + (f.group < 0 ? 0 : size_t(r) * 4));
        const uint8_t *in = q + size_t(r) * size_t(out.n);
        for (int64_t j = 0; j < out.n; ++j) out.at(r, j) = table[in[j]] * s;
    });
}

}  // namespace kernels
}  // namespace llmkit::quant
