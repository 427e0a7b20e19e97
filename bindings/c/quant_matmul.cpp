// C ABI: matmul with quantized weights (llmkit_quant_matmul*). Validates
// everything, then hands a matmul_problem to src/quant/matmul.cpp.
#include <cmath>
#include <cstdint>

#include "core/finite.hpp"
#include "core/tensor.hpp"
#include "guard.hpp"
#include "host_matrix.hpp"
#include "llmkit/llmkit.h"
#include "quant/gguf_blocks.hpp"
#include "quant/matmul.hpp"
#include "quant/quantize.hpp"

using namespace llmkit;
using core::fail;

namespace {

const llmkit_quant_matmul_options k_defaults = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;

// A float32 host matrix [rows, cols] (a 1-D tensor is one row) with element strides.
using matrix = capi::matrix_arg;

matrix host_matrix(const llmkit_tensor *t, const char *name, core::dtype type) {
    return capi::host_matrix_arg(t, name, type, "quantized matmul");
}

// The bytes a tensor's elements occupy, [lo, hi) (any stride signs).
struct byte_range {
    const char *lo = nullptr, *hi = nullptr;
};
byte_range range_of(const core::tensor_view &v) {
    if (v.numel() == 0) return {};
    int64_t lo = 0, hi = 0;
    for (int i = 0; i < v.ndim; ++i) {
        const int64_t ext = (v.shape[i] - 1) * v.strides[i];
        (ext < 0 ? lo : hi) += ext;
    }
    const auto es = int64_t(v.elem_size);
    return {v.data + lo * es, v.data + (hi + 1) * es};
}
bool overlaps(byte_range a, const void *b, size_t bytes) {
    const char *p = static_cast<const char *>(b);
    return a.lo && bytes > 0 && a.lo < p + bytes && p < a.hi;
}

// Outputs written from several threads must not share memory: one stride must
// step over the whole extent of the other (the layouts numpy and torch make).
void require_distinct_elements(const matrix &y, const char *name) {
    if (y.rows == 0 || y.cols == 0) return;
    const int64_t rs = y.row_stride < 0 ? -y.row_stride : y.row_stride;
    const int64_t cs = y.col_stride < 0 ? -y.col_stride : y.col_stride;
    const bool rows_ok = y.rows == 1 || rs > 0, cols_ok = y.cols == 1 || cs > 0;
    const bool nested = (y.rows == 1 || y.cols == 1) || (cs > 0 && rs >= y.cols * cs) || (rs > 0 && cs >= y.rows * rs);
    if (!(rows_ok && cols_ok && nested))
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, name, ": its strides make different elements share memory");
}

void require_finite(const matrix &x, const char *name) {
    const auto *base = reinterpret_cast<const float *>(x.v.data);
    for (int64_t i = 0; i < x.rows; ++i) {
        // Contiguous rows take the vectorized check; a row it rejects (or a
        // strided one) is scanned element by element to name the first bad one.
        if (x.col_stride == 1 && core::all_finite(base + i * x.row_stride, x.cols)) continue;
        for (int64_t j = 0; j < x.cols; ++j)
            if (!std::isfinite(base[i * x.row_stride + j * x.col_stride])) {
                if (x.v.ndim == 1) fail(LLMKIT_ERROR_NON_FINITE, name, "[", j, "] is not finite");
                fail(LLMKIT_ERROR_NON_FINITE, name, "[", i, ", ", j, "] is not finite");
            }
    }
}

// x [m, k] and y [m, n] (or [k] and [n]) as a matmul_problem, validated.
quant::matmul_problem setup(const llmkit_tensor *x_t, const llmkit_tensor *y_t, int64_t n, int64_t k) {
    const matrix x = host_matrix(x_t, "x", core::dtype::f32);
    const matrix y = host_matrix(y_t, "y", core::dtype::f32);
    if (x.cols != k) fail(LLMKIT_ERROR_SHAPE, "x: its last extent is ", x.cols, " but the weights have k = ", k);
    if (y.v.ndim != x.v.ndim || y.rows != x.rows || y.cols != n)
        fail(LLMKIT_ERROR_SHAPE, "y: shape ", y.v.shape_string(), " does not fit x ", x.v.shape_string(), " times ", n,
             " weight rows (expected ", x.v.ndim == 1 ? "[" : "[" + std::to_string(x.rows) + ", ", n, "])");
    require_distinct_elements(y, "y");
    require_finite(x, "x");
    quant::matmul_problem p;
    p.x = reinterpret_cast<const float *>(x.v.data);
    p.m = x.rows;
    p.k = k;
    p.x_row_stride = x.row_stride;
    p.x_col_stride = x.col_stride;
    p.n = n;
    p.y = reinterpret_cast<float *>(y.v.data);
    p.y_row_stride = y.row_stride;
    p.y_col_stride = y.col_stride;
    return p;
}

llmkit_quant_matmul_options options_of(const llmkit_quant_matmul_options *options) {
    const auto o = capi::read_options(options, k_defaults, "options");
    if (o.n_threads < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.n_threads must be >= 0, got ", o.n_threads);
    if (o.x_rounding != LLMKIT_QUANT_X_BLOCKS && o.x_rounding != LLMKIT_QUANT_X_ROWS)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.x_rounding must be LLMKIT_QUANT_X_BLOCKS (0) or LLMKIT_QUANT_X_ROWS (1), got ",
             o.x_rounding);
    return o;
}

}  // namespace

extern "C" {

int llmkit_quant_matmul_supported(int32_t type) { return quant::matmul_supports(type) ? 1 : 0; }

const char *llmkit_quant_matmul_isa(void) { return quant::matmul_isa_name(quant::matmul_active_isa()); }

llmkit_status llmkit_quant_matmul(const llmkit_tensor *x, int32_t type, const void *w, size_t w_bytes, int64_t n_rows,
                                  int64_t k, const llmkit_tensor *y, const llmkit_quant_matmul_options *options) {
    return capi::guard([&] {
        const llmkit_quant_matmul_options o = options_of(options);
        const int n_threads = o.n_threads;
        const quant::type_traits *t = quant::find_type(type);
        if (!t)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "quantization type ", type,
                 " is not a llmkit_quant_type that llmkit implements");
        if (o.x_rounding == LLMKIT_QUANT_X_ROWS)
            fail(LLMKIT_ERROR_UNSUPPORTED, "quant matmul: options.x_rounding = LLMKIT_QUANT_X_ROWS is for int8 weights "
                 "(llmkit_quant_matmul_int8); ", t->name, " takes LLMKIT_QUANT_X_BLOCKS");
        if (!quant::matmul_supports(type))
            fail(LLMKIT_ERROR_UNSUPPORTED, "quant matmul: no kernel for ", t->name,
                 " (supported: q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl, mxfp4, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_xs)");
        if (n_rows < 0) fail(LLMKIT_ERROR_SHAPE, "n_rows must be >= 0, got ", n_rows);
        if (k < 0 || k % t->block_elems != 0)
            fail(LLMKIT_ERROR_SHAPE, "k = ", k, " is not a non-negative multiple of ", t->name, "'s block of ",
                 t->block_elems, " elements");
        const size_t needed = quant::rows_bytes(*t, n_rows, k);
        if (w_bytes != needed)
            fail(LLMKIT_ERROR_SHAPE, "w: [", n_rows, ", ", k, "] in ", t->name, " takes ", needed,
                 " bytes, w_bytes is ", w_bytes);
        if (needed > 0) capi::require_non_null(w, "w");
        quant::matmul_problem p = setup(x, y, n_rows, k);
        const core::tensor_view yv = core::tensor_view::from(y, "y");
        if (overlaps(range_of(yv), w, w_bytes)) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "y overlaps the weights w");
        p.type = type;
        p.w = w;
        p.w_row_bytes = n_rows > 0 ? needed / size_t(n_rows) : 0;
        quant::matmul(p, n_threads);
    });
}

llmkit_status llmkit_quant_matmul_int8(const llmkit_tensor *x, const llmkit_tensor *w, const llmkit_tensor *scales,
                                       const llmkit_tensor *y, const llmkit_quant_matmul_options *options) {
    return capi::guard([&] {
        const llmkit_quant_matmul_options o = options_of(options);
        const int n_threads = o.n_threads;
        const core::tensor_view wv = core::tensor_view::from(w, "w");
        wv.require_dtype({core::dtype::i8});
        wv.require_ndim(2, 2);
        if (!wv.on_host()) fail(LLMKIT_ERROR_NO_DEVICE, "w: quantized matmul runs on the CPU; pass host memory");
        const int64_t n = wv.shape[0], k = wv.shape[1];
        if (k % 32 != 0) fail(LLMKIT_ERROR_SHAPE, "w: k = ", k, " must be a multiple of 32 for int8 weights");
        if (k > 1 && wv.strides[1] != 1)
            fail(LLMKIT_ERROR_SHAPE, "w: its column stride must be 1 (rows contiguous), got ", wv.strides[1]);
        if (n > 1 && wv.strides[0] < 0)
            fail(LLMKIT_ERROR_SHAPE, "w: a negative row stride (", wv.strides[0], ") is not supported");
        const matrix s = host_matrix(scales, "scales", core::dtype::f32);
        if (s.v.ndim != 1 || s.cols != n)
            fail(LLMKIT_ERROR_SHAPE, "scales: expected shape [", n, "] (one per row of w), got ",
                 s.v.shape_string());
        quant::matmul_problem p = setup(x, y, n, k);
        const byte_range yr = range_of(core::tensor_view::from(y, "y"));
        const byte_range wr = range_of(wv), sr = range_of(s.v);
        if (overlaps(yr, wr.lo, size_t(wr.hi - wr.lo))) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "y overlaps w");
        if (overlaps(yr, sr.lo, size_t(sr.hi - sr.lo))) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "y overlaps scales");
        p.type = quant::int8_rows;
        p.w = wv.data;
        // One row: its stride says nothing (it may be negative, as numpy
        // gives for a reversed view), and no row follows it.
        p.w_row_bytes = n > 1 ? size_t(wv.strides[0]) : size_t(k);
        p.w_scales = reinterpret_cast<const float *>(s.v.data);
        p.w_scale_stride = s.col_stride;
        if (o.x_rounding == LLMKIT_QUANT_X_ROWS) {
            if (k > quant::int8_x_rows_max_k)
                fail(LLMKIT_ERROR_SHAPE, "w: k = ", k, " is above ", quant::int8_x_rows_max_k,
                     ", where LLMKIT_QUANT_X_ROWS's int32 sums could overflow (use LLMKIT_QUANT_X_BLOCKS)");
            quant::matmul_int8_x_rows(p, n_threads);
        } else {
            quant::matmul(p, n_threads);
        }
    });
}

}  // extern "C"
