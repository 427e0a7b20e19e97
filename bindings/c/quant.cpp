// C ABI: GGUF block formats (quantize, dequantize, type table).
#include <cstring>

#include "core/tensor.hpp"
#include "guard.hpp"
#include "host_matrix.hpp"
#include "quant_options.hpp"
#include "llmkit/llmkit.h"
#include "quant/formats.hpp"
#include "quant/gguf_blocks.hpp"
#include "quant/quantize.hpp"

using namespace llmkit;
using core::fail;

namespace {

using matrix = capi::matrix_arg;

const llmkit_quantize_options k_quantize_defaults = LLMKIT_QUANTIZE_OPTIONS_INIT;
const llmkit_dequantize_options k_dequantize_defaults = LLMKIT_DEQUANTIZE_OPTIONS_INIT;

const quant::type_traits &require_type(int32_t type) {
    const quant::type_traits *t = quant::find_type(type);
    if (!t)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "quantization type ", type,
             " is not a llmkit_quant_type that llmkit implements (see llmkit_quant_type_from_name)");
    return *t;
}

// The formats with side arrays (int8, nf4, fp8, gptq/awq) have no fixed
// block; their size depends on the whole shape.
void require_blocks(int32_t type) {
    if (const quant::format_traits *f = quant::find_format(type))
        fail(LLMKIT_ERROR_UNSUPPORTED, f->name,
             " keeps its scales in side arrays and has no fixed block; use llmkit_quant_tensor_bytes / llmkit_quant_planes");
}

void require_threads(int32_t n_threads) {
    if (n_threads < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.n_threads must be >= 0, got ", n_threads);
}

// A float32 host tensor [rows, n] or [n] as rows and element strides.
matrix host_matrix(const llmkit_tensor *t, const char *name) {
    return capi::host_matrix_arg(t, name, core::dtype::f32, "quantization");
}

// llmkit_quantize / llmkit_dequantize for the formats with side arrays.
void quantize_with_planes(size_t *written, const quant::format_traits &f, const llmkit_tensor *src, void *dst,
                          size_t dst_capacity, const llmkit_quantize_options *options) {
    const auto o = capi::read_options(options, k_quantize_defaults, "options");
    require_threads(o.n_threads);
    if (o.imatrix) fail(LLMKIT_ERROR_UNSUPPORTED, "quantize ", f.name, ": options.imatrix applies to GGUF types only; pass NULL");
    capi::require_zero_point(o.zero_point, f.id, "quantize");
    const matrix m = host_matrix(src, "src");
    const size_t needed = quant::format_bytes(f, m.rows, m.cols);
    if (written) *written = needed;
    if (needed > 0 && (!dst || dst_capacity < needed))
        fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "quantize ", f.name, ": dst needs ", needed, " bytes, capacity is ",
             dst ? dst_capacity : 0);
    if (needed == 0) return;  // no elements: nothing to write, and dst may be NULL
    quant::f32_rows rows{reinterpret_cast<const float *>(m.v.data), m.rows, m.cols, m.row_stride, m.col_stride};
    quant::format_options fo;
    fo.zp = quant::zero_point(o.zero_point);
    quant::quantize_format(f, rows, dst, fo, o.n_threads);
}

void dequantize_with_planes(const quant::format_traits &f, const void *src, size_t src_bytes, const llmkit_tensor *dst,
                            const llmkit_dequantize_options *options) {
    const auto o = capi::read_options(options, k_dequantize_defaults, "options");
    require_threads(o.n_threads);
    const matrix m = host_matrix(dst, "dst");
    const size_t needed = quant::format_bytes(f, m.rows, m.cols);
    if (src_bytes != needed)
        fail(LLMKIT_ERROR_SHAPE, "dequantize ", f.name, ": dst [", m.rows, ", ", m.cols, "] needs ", needed,
             " bytes, src_bytes is ", src_bytes);
    if (needed == 0) return;  // no elements: nothing to read, and src may be NULL
    capi::require_non_null(src, "src");
    quant::dequantize_format(f, src, m.rows, m.cols, reinterpret_cast<float *>(m.v.data), m.row_stride, m.col_stride,
                             o.n_threads);
}

}  // namespace

extern "C" {

llmkit_status llmkit_quant_type_from_name(int32_t *out, const char *name) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        capi::require_non_null(name, "name");
        const quant::type_traits *t = quant::find_type(name);
        if (const quant::format_traits *f = t ? nullptr : quant::find_format(name)) {
            *out = f->id;  // int8, nf4, fp8_e4m3, gptq_int4_g128...
            return;
        }
        if (!t) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "unknown quantization type name \"", name, "\"");
        *out = t->id;
    });
}

const char *llmkit_quant_type_name(int32_t type) {
    const quant::type_traits *t = quant::find_type(type);
    if (const quant::format_traits *f = t ? nullptr : quant::find_format(type)) return f->name;
    return t ? t->name : nullptr;
}

llmkit_status llmkit_quant_block_size(int64_t *elements, int64_t *bytes, int32_t type) {
    return capi::guard([&] {
        require_blocks(type);
        const auto &t = require_type(type);
        if (elements) *elements = t.block_elems;
        if (bytes) *bytes = t.block_bytes;
    });
}

llmkit_status llmkit_quant_row_bytes(size_t *out, int32_t type, int64_t n) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        require_blocks(type);
        *out = quant::row_bytes(require_type(type), n);
    });
}

llmkit_status llmkit_quantize(size_t *written, int32_t type, const llmkit_tensor *src, void *dst, size_t dst_capacity,
                              const llmkit_quantize_options *options) {
    return capi::guard([&] {
        if (const quant::format_traits *f = quant::find_format(type)) return quantize_with_planes(written, *f, src, dst, dst_capacity, options);
        const auto &t = require_type(type);
        const auto o = capi::read_options(options, k_quantize_defaults, "options");
        require_threads(o.n_threads);
        capi::require_zero_point(o.zero_point, type, "quantize");
        const matrix m = host_matrix(src, "src");
        const size_t needed = quant::rows_bytes(t, m.rows, m.cols);
        if (written) *written = needed;
        if (needed > 0 && (!dst || dst_capacity < needed))
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "quantize ", t.name, ": dst needs ", needed, " bytes, capacity is ",
                 dst ? dst_capacity : 0);
        quant::f32_rows rows;
        rows.data = reinterpret_cast<const float *>(m.v.data);
        rows.rows = m.rows;
        rows.n = m.cols;
        rows.row_stride = m.row_stride;
        rows.col_stride = m.col_stride;
        quant::quantize_rows(t, rows, dst, o.n_threads, o.imatrix);
    });
}

llmkit_status llmkit_dequantize(int32_t type, const void *src, size_t src_bytes, const llmkit_tensor *dst,
                                const llmkit_dequantize_options *options) {
    return capi::guard([&] {
        if (const quant::format_traits *f = quant::find_format(type)) return dequantize_with_planes(*f, src, src_bytes, dst, options);
        const auto &t = require_type(type);
        const auto o = capi::read_options(options, k_dequantize_defaults, "options");
        require_threads(o.n_threads);
        const matrix m = host_matrix(dst, "dst");
        const size_t needed = quant::rows_bytes(t, m.rows, m.cols);
        if (src_bytes != needed)
            fail(LLMKIT_ERROR_SHAPE, "dequantize ", t.name, ": dst [", m.rows, ", ", m.cols, "] needs ", needed,
                 " bytes of blocks, src_bytes is ", src_bytes);
        if (needed > 0) capi::require_non_null(src, "src");
        quant::dequantize_rows(t, src, m.rows, m.cols, reinterpret_cast<float *>(m.v.data), m.row_stride, m.col_stride,
                               o.n_threads);
    });
}

}  // extern "C"
