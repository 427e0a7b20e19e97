// Internal: the per-family quantize / dequantize kernels behind formats.cpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "quant/formats.hpp"

namespace llmkit::quant::kernels {

// A float32 destination [rows, n] with element strides.
struct out_rows {
    float *data;
    int64_t rows, n, row_stride, col_stride;
    float &at(int64_t r, int64_t j) const { return data[r * row_stride + j * col_stride]; }
};

// Unaligned little-endian loads and stores (planes may sit anywhere in the
// caller's buffer).
template <typename T>
inline T load(const uint8_t *p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}
template <typename T>
inline void store(uint8_t *p, T v) {
    std::memcpy(p, &v, sizeof(T));
}

void quantize_int8(const format_traits &f, const f32_rows &src, uint8_t *base, const std::vector<plane> &p, int threads);
void dequantize_int8(const format_traits &f, const uint8_t *base, const std::vector<plane> &p, const out_rows &out,
                     int threads);
void quantize_bnb4(const format_traits &f, const f32_rows &src, uint8_t *base, const std::vector<plane> &p, int threads);
void dequantize_bnb4(const format_traits &f, const uint8_t *base, const std::vector<plane> &p, const out_rows &out,
                     int threads);
void quantize_fp8(const format_traits &f, const f32_rows &src, uint8_t *base, const std::vector<plane> &p, int threads);
void dequantize_fp8(const format_traits &f, const uint8_t *base, const std::vector<plane> &p, const out_rows &out,
                    int threads);
void quantize_int4(const format_traits &f, const f32_rows &src, uint8_t *base, const format_options &o, int threads);
void dequantize_int4(const format_traits &f, const uint8_t *base, const out_rows &out, int threads);

}  // namespace llmkit::quant::kernels
