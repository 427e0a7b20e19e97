// Row drivers over the GGUF block formats: validate, then quantize or
// dequantize many rows in parallel. Used by the C layer (bindings/c/quant.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/gguf_blocks.hpp"

namespace llmkit::quant {

// A float32 matrix [rows, n] with element strides (host memory).
struct f32_rows {
    const float *data = nullptr;
    int64_t rows = 0, n = 0;
    int64_t row_stride = 0, col_stride = 1;  // in elements
};

// Fails with LLMKIT_ERROR_NON_FINITE ("quantize <type_name>: src[r, j] = nan
// is not finite", the first such element) unless every value of src is finite.
void require_finite_rows(const char *type_name, const f32_rows &src, int n_threads);

// Bytes of one quantized row of n elements; throws SHAPE when n is not a
// multiple of the block size (or negative).
size_t row_bytes(const type_traits &t, int64_t n);
// Bytes of `rows` quantized rows of n elements; throws SHAPE as row_bytes does,
// and when rows is negative or the product overflows size_t.
size_t rows_bytes(const type_traits &t, int64_t rows, int64_t n);

// Quantizes every row into dst (rows back to back, row_bytes(t, n) each).
// importance: nullptr, or n importance weights (an imatrix: one per column,
// shared by every row) for the types with a weighted quantizer; the others
// ignore it, as ggml does. Throws NON_FINITE (naming the first row and column
// that hold one, or the importance weight) when an input is NaN or infinite.
// Each piece of the input is checked just before it is quantized, so dst may
// hold other pieces by then (an importance weight is checked before any
// write). INVALID_ARGUMENT for a negative importance weight.
void quantize_rows(const type_traits &t, const f32_rows &src, void *dst, int n_threads,
                   const float *importance = nullptr);

// Decodes rows * row_bytes(t, n) bytes into dst [rows, n] (float32, strided).
void dequantize_rows(const type_traits &t, const void *src, int64_t rows, int64_t n, float *dst, int64_t row_stride,
                     int64_t col_stride, int n_threads);

}  // namespace llmkit::quant
