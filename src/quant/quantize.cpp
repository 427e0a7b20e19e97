#include "quant/quantize.hpp"

#include <atomic>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <vector>

#include "core/error.hpp"
#include "core/threads.hpp"

namespace llmkit::quant {

size_t row_bytes(const type_traits &t, int64_t n) {
    if (n < 0 || n % t.block_elems != 0)
        core::fail(LLMKIT_ERROR_SHAPE, t.name, ": a row of ", n, " elements is not a multiple of the block size ",
                   t.block_elems);
    const size_t blocks = size_t(n / t.block_elems);
    if (blocks > SIZE_MAX / size_t(t.block_bytes))
        core::fail(LLMKIT_ERROR_SHAPE, t.name, ": a row of ", n, " elements overflows size_t bytes");
    return blocks * size_t(t.block_bytes);
}

size_t rows_bytes(const type_traits &t, int64_t rows, int64_t n) {
    const size_t rb = row_bytes(t, n);
    if (rows < 0) core::fail(LLMKIT_ERROR_SHAPE, t.name, ": row count ", rows, " is negative");
    if (rb != 0 && size_t(rows) > SIZE_MAX / rb)
        core::fail(LLMKIT_ERROR_SHAPE, t.name, ": ", rows, " rows of ", rb, " bytes overflow size_t");
    return rb * size_t(rows);
}

namespace {

// Whether n contiguous floats are all finite, in a loop of integer and/add/or
// that compilers vectorize: (bits & exponent) + one exponent unit carries
// into bit 31 exactly when the exponent is all ones (infinity or NaN).
bool all_finite(const float *x, int64_t n) {
    constexpr uint32_t k_exponent = 0x7f800000u, k_unit = 0x00800000u;
    uint32_t acc[8] = {};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; ++k) {
            uint32_t b;
            std::memcpy(&b, x + j + k, sizeof b);
            acc[k] |= (b & k_exponent) + k_unit;
        }
    uint32_t all = 0;
    for (int k = 0; k < 8; ++k) all |= acc[k];
    for (; j < n; ++j) {
        uint32_t b;
        std::memcpy(&b, x + j, sizeof b);
        all |= (b & k_exponent) + k_unit;
    }
    return (all & 0x80000000u) == 0;
}

}  // namespace

void quantize_rows(const type_traits &t, const f32_rows &src, void *dst, int n_threads, const float *importance) {
    const size_t rb = row_bytes(t, src.n);
    if (src.rows == 0 || src.n == 0) return;
    if (importance) {
        // ggml takes the weights on trust; here a NaN or a negative weight
        // would silently give a meaningless fit, so it is an error.
        for (int64_t j = 0; j < src.n; ++j) {
            if (!std::isfinite(importance[j]))
                core::fail(LLMKIT_ERROR_NON_FINITE, "quantize ", t.name, ": imatrix[", j, "] = ", importance[j],
                           " is not finite");
            if (importance[j] < 0)
                core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "quantize ", t.name, ": imatrix[", j, "] = ", importance[j],
                           " is negative (importance weights are sums of squared activations)");
        }
    }
    const quantize_weighted_fn weighted = importance ? t.quantize_row_weighted : nullptr;
    // Pass 1: refuse non-finite input before any byte is written (ggml's
    // behaviour on NaN or infinity is undefined).
    std::atomic<int64_t> bad_row{-1};
    core::parallel_for(src.rows, n_threads, [&](int64_t r) {
        const float *row = src.data + r * src.row_stride;
        if (src.col_stride == 1 && all_finite(row, src.n)) return;  // the common case, without a branch per float
        for (int64_t j = 0; j < src.n; ++j) {
            if (!std::isfinite(row[j * src.col_stride])) {
                // Keep the first bad row, whichever thread finds it.
                int64_t cur = bad_row.load();
                while ((cur < 0 || r < cur) && !bad_row.compare_exchange_weak(cur, r)) {
                }
                return;
            }
        }
    });
    if (bad_row.load() >= 0) {
        const int64_t r = bad_row.load();
        const float *row = src.data + r * src.row_stride;
        int64_t j = 0;
        while (std::isfinite(row[j * src.col_stride])) ++j;
        core::fail(LLMKIT_ERROR_NON_FINITE, "quantize ", t.name, ": src[", r, ", ", j, "] = ", row[j * src.col_stride],
                   " is not finite");
    }
    // Pass 2: quantize, one row per task.
    core::parallel_for(src.rows, n_threads, [&](int64_t r) {
        const float *row = src.data + r * src.row_stride;
        std::vector<float> tmp;
        if (src.col_stride != 1) {
            tmp.resize(size_t(src.n));
            for (int64_t j = 0; j < src.n; ++j) tmp[size_t(j)] = row[j * src.col_stride];
            row = tmp.data();
        }
        void *out = static_cast<uint8_t *>(dst) + size_t(r) * rb;
        if (weighted)
            weighted(row, out, src.n, importance);
        else
            t.quantize_row(row, out, src.n);
    });
}

void dequantize_rows(const type_traits &t, const void *src, int64_t rows, int64_t n, float *dst, int64_t row_stride,
                     int64_t col_stride, int n_threads) {
    const size_t rb = row_bytes(t, n);
    if (rows == 0 || n == 0) return;
    core::parallel_for(rows, n_threads, [&](int64_t r) {
        const uint8_t *in = static_cast<const uint8_t *>(src) + size_t(r) * rb;
        float *out = dst + r * row_stride;
        if (col_stride == 1) {
            t.dequantize_row(in, out, n);
            return;
        }
        std::vector<float> tmp(static_cast<size_t>(n));
        t.dequantize_row(in, tmp.data(), n);
        for (int64_t j = 0; j < n; ++j) out[j * col_stride] = tmp[size_t(j)];
    });
}

}  // namespace llmkit::quant
