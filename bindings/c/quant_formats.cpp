// C ABI: sizes and planes of quantized tensors of any type, and conversions
// between types (int8, NF4/FP4, FP8, GPTQ/AWQ int4 and the GGUF blocks).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "guard.hpp"
#include "llmkit/llmkit.h"
#include "quant_options.hpp"
#include "quant/formats.hpp"
#include "quant/gguf_blocks.hpp"
#include "quant/quantize.hpp"

using namespace llmkit;
using core::fail;

namespace {

const llmkit_quantize_options k_quantize_defaults = LLMKIT_QUANTIZE_OPTIONS_INIT;

void require_known(int32_t type) {
    if (!quant::find_format(type) && !quant::find_type(type))
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "quantization type ", type,
             " is not one llmkit implements (see llmkit_quant_type_from_name)");
}

std::vector<quant::plane> planes_of(int32_t type, int64_t rows, int64_t n) {
    require_known(type);
    if (const quant::format_traits *f = quant::find_format(type)) return quant::planes(*f, rows, n);
    quant::plane p;
    p.name = "blocks";
    p.bytes = quant::rows_bytes(*quant::find_type(type), rows, n);
    p.dtype_code = LLMKIT_DTYPE_UINT;
    p.dtype_bits = 8;
    p.shape[0] = int64_t(p.bytes);
    return {p};
}

}  // namespace

extern "C" {

llmkit_status llmkit_quant_tensor_bytes(size_t *out, int32_t type, int64_t rows, int64_t n) {
    return capi::guard([&] {
        capi::require_non_null(out, "out");
        require_known(type);
        *out = quant::type_bytes(type, rows, n);
    });
}

llmkit_status llmkit_quant_planes(llmkit_quant_plane *planes, size_t capacity, size_t *count, int32_t type,
                                  int64_t rows, int64_t n) {
    return capi::guard([&] {
        const auto p = planes_of(type, rows, n);
        if (count) *count = p.size();
        if (!planes) return;
        if (capacity < p.size())
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "llmkit_quant_planes: ", p.size(), " planes, capacity is ", capacity);
        for (size_t i = 0; i < p.size(); ++i) {
            llmkit_quant_plane &o = planes[i];
            o.name = p[i].name;
            o.offset = p[i].offset;
            o.bytes = p[i].bytes;
            o.dtype.code = p[i].dtype_code;
            o.dtype.bits = p[i].dtype_bits;
            o.dtype.lanes = 1;
            o.ndim = p[i].ndim;
            o.shape[0] = p[i].shape[0];
            o.shape[1] = p[i].shape[1];
        }
    });
}

llmkit_status llmkit_quant_convert(size_t *written, int32_t dst_type, void *dst, size_t dst_capacity, int32_t src_type,
                                   const void *src, size_t src_bytes, int64_t rows, int64_t n,
                                   const llmkit_quantize_options *options, llmkit_quant_convert_stats *stats) {
    return capi::guard([&] {
        require_known(src_type);
        require_known(dst_type);
        const auto o = capi::read_options(options, k_quantize_defaults, "options");
        if (o.n_threads < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.n_threads must be >= 0, got ", o.n_threads);
        if (o.imatrix) fail(LLMKIT_ERROR_UNSUPPORTED, "convert: options.imatrix is not supported; pass NULL");
        capi::require_zero_point(o.zero_point, dst_type, "convert to");
        if (stats && (stats->struct_size < sizeof(uint32_t) || stats->struct_size > sizeof(llmkit_quant_convert_stats)))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "stats->struct_size = ", stats->struct_size,
                 " (initialise it with LLMKIT_QUANT_CONVERT_STATS_INIT)");
        const size_t in_bytes = quant::type_bytes(src_type, rows, n);
        const size_t out_bytes = quant::type_bytes(dst_type, rows, n);
        if (written) *written = out_bytes;
        if (src_bytes != in_bytes)
            fail(LLMKIT_ERROR_SHAPE, "convert: [", rows, ", ", n, "] in type ", src_type, " takes ", in_bytes,
                 " bytes, src_bytes is ", src_bytes);
        if (in_bytes > 0) capi::require_non_null(src, "src");
        if (out_bytes > 0 && (!dst || dst_capacity < out_bytes))
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "convert: dst needs ", out_bytes, " bytes, capacity is ",
                 dst ? dst_capacity : 0);
        if (size_t(rows) * size_t(n) > SIZE_MAX / (2 * sizeof(float)))
            fail(LLMKIT_ERROR_SHAPE, "convert: [", rows, ", ", n, "] is too large to decode");
        quant::format_options fo;
        fo.zp = quant::zero_point(o.zero_point);
        const quant::convert_stats s = quant::convert(src_type, src, dst_type, dst, rows, n, fo, o.n_threads);
        if (stats) {
            llmkit_quant_convert_stats full = LLMKIT_QUANT_CONVERT_STATS_INIT;
            full.lossless = s.lossless ? 1 : 0;
            full.max_abs_error = s.max_abs_error;
            full.rms_error = s.rms_error;
            full.max_abs_value = s.max_abs_value;
            const uint32_t size = stats->struct_size;
            std::memcpy(stats, &full, size);
            stats->struct_size = size;
        }
    });
}

}  // extern "C"
