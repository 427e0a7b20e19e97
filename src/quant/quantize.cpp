#include "quant/quantize.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <vector>

#include "core/error.hpp"
#include "core/finite.hpp"
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

void require_finite_rows(const char *type_name, const f32_rows &src, int n_threads) {
    core::tensor_view v;
    v.name = std::string("quantize ") + type_name + ": src";
    v.data = const_cast<char *>(reinterpret_cast<const char *>(src.data));
    v.type = core::dtype::f32;
    v.elem_size = sizeof(float);
    v.ndim = 2;
    v.shape[0] = src.rows;
    v.shape[1] = src.n;
    v.strides[0] = src.row_stride;
    v.strides[1] = src.col_stride;
    core::require_finite(v, n_threads);
}

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
    // One pass: each part of the input is checked and then quantized while it
    // is in cache. A scan of the whole input first read it from memory twice:
    // for the 32-element types, which run near memory speed, that scan was
    // 40 % of the call (Q4_1, 4096 x 4096, one thread). The price: parts
    // other than the bad one may be written before the error.
    std::atomic<int64_t> first_bad{src.rows};
    const auto note_bad = [&](int64_t r) {
        int64_t seen = first_bad.load(std::memory_order_relaxed);
        while (r < seen && !first_bad.compare_exchange_weak(seen, r, std::memory_order_relaxed)) {
        }
    };
    // Unweighted blocks depend on nothing outside themselves, so a contiguous
    // row goes in pieces of k_piece elements (whole blocks of every type),
    // each checked and quantized from L1 while the piece k_ahead pieces on is
    // prefetched: the loads overlap the arithmetic, where checking a whole
    // row left the memory idle while the row was quantized. The weighted fits
    // of Q4_0 ... Q5_1 use the whole row's mean square, so they go by rows.
    constexpr int64_t k_piece = 512, k_ahead = 2;
    const bool by_pieces = !weighted && src.col_stride == 1 && k_piece % t.block_elems == 0;
    const size_t piece_bytes = size_t(k_piece / t.block_elems) * size_t(t.block_bytes);
    core::parallel_for(src.rows, n_threads, [&](int64_t r) {
        const float *row = src.data + r * src.row_stride;
        auto *out = static_cast<uint8_t *>(dst) + size_t(r) * rb;
        if (by_pieces) {
            for (int64_t j = 0; j < src.n; j += k_piece, out += piece_bytes) {
                const int64_t len = std::min(k_piece, src.n - j);
#if defined(__GNUC__)
                // Prefetches never fault, so a piece past the input costs nothing; its
                // address is computed as an integer (a pointer past the array would be UB).
                const uintptr_t ahead = reinterpret_cast<uintptr_t>(row + j) + k_ahead * k_piece * sizeof(float);
                for (uintptr_t b = 0; b < k_piece * sizeof(float); b += 64)
                    __builtin_prefetch(reinterpret_cast<const void *>(ahead + b));
#endif
                if (!core::all_finite(row + j, len)) return note_bad(r);
                t.quantize_row(row + j, out, len);
            }
            return;
        }
        std::vector<float> tmp;
        if (src.col_stride != 1) {
            tmp.resize(size_t(src.n));
            for (int64_t j = 0; j < src.n; ++j) tmp[size_t(j)] = row[j * src.col_stride];
            row = tmp.data();
        }
        if (!core::all_finite(row, src.n)) return note_bad(r);
        if (weighted)
            weighted(row, out, src.n, importance);
        else
            t.quantize_row(row, out, src.n);
    });
    const int64_t bad = first_bad.load();
    if (bad < src.rows) {
        // The message names the first non-finite element.
        require_finite_rows(t.name, src, n_threads);
        core::fail(LLMKIT_ERROR_NON_FINITE, "quantize ", t.name, ": src row ", bad,
                   " holds a value that is not finite (the input changed during the call)");
    }
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
