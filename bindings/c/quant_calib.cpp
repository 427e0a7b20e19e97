// C ABI: calibrated int4 quantization of a linear layer (GPTQ; AWQ).
#include <cstring>

#include "core/tensor.hpp"
#include "guard.hpp"
#include "llmkit/llmkit.h"
#include "quant/formats.hpp"
#include "quant/awq.hpp"
#include "quant/gptq.hpp"

using namespace llmkit;
using core::fail;

namespace {

const llmkit_gptq_options k_gptq_defaults = LLMKIT_GPTQ_OPTIONS_INIT;
const llmkit_awq_options k_awq_defaults = LLMKIT_AWQ_OPTIONS_INIT;

struct host_rows {
    const float *data;
    int64_t rows = 1, n = 0, row_stride = 0, col_stride = 1;
};

host_rows host_f32(const llmkit_tensor *t, const char *name) {
    const core::tensor_view v = core::tensor_view::from(t, name);
    v.require_dtype({core::dtype::f32});
    v.require_ndim(1, 2);
    if (!v.on_host()) fail(LLMKIT_ERROR_NO_DEVICE, name, ": calibrated quantization runs on the CPU; pass host memory");
    host_rows h;
    h.data = reinterpret_cast<const float *>(v.data);
    if (v.ndim == 1) {
        h.n = v.shape[0];
        h.col_stride = v.strides[0];
    } else {
        h.rows = v.shape[0];
        h.n = v.shape[1];
        h.row_stride = v.strides[0];
        h.col_stride = v.strides[1];
    }
    return h;
}

// Accumulates the calibration batches into H, checking each one's shape.
quant::hessian build_hessian(const llmkit_tensor *calib, size_t n_calib, int64_t n, int n_threads) {
    capi::require_non_null(calib, "calib");
    if (n_calib == 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "n_calib is 0: calibration needs at least one batch");
    quant::hessian h(n);
    for (size_t b = 0; b < n_calib; ++b) {
        const std::string name = "calib[" + std::to_string(b) + "]";
        const host_rows x = host_f32(&calib[b], name.c_str());
        if (x.n != n) fail(LLMKIT_ERROR_SHAPE, name, " has ", x.n, " features, the weight has ", n, " inputs");
        h.add(x.data, x.rows, x.row_stride, x.col_stride, n_threads);
    }
    if (h.samples() == 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "the calibration batches hold no tokens");
    return h;
}

void write_report(llmkit_quant_layer_report *report, double output_error, double rtn_output_error,
                  int64_t dead_columns) {
    if (!report) return;
    llmkit_quant_layer_report full = LLMKIT_QUANT_LAYER_REPORT_INIT;
    full.output_error = output_error;
    full.rtn_output_error = rtn_output_error;
    full.dead_columns = dead_columns;
    const uint32_t size = report->struct_size;
    std::memcpy(report, &full, size);
    report->struct_size = size;
}

void check_report(const llmkit_quant_layer_report *report) {
    if (report && (report->struct_size < sizeof(uint32_t) || report->struct_size > sizeof(llmkit_quant_layer_report)))
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "report->struct_size = ", report->struct_size,
             " (initialise it with LLMKIT_QUANT_LAYER_REPORT_INIT)");
}

}  // namespace

extern "C" {

llmkit_status llmkit_gptq_quantize(size_t *written, int32_t type, const llmkit_tensor *weight,
                                   const llmkit_tensor *calib, size_t n_calib, void *dst, size_t dst_capacity,
                                   const llmkit_gptq_options *options, llmkit_quant_layer_report *report) {
    return capi::guard([&] {
        const auto o = capi::read_options(options, k_gptq_defaults, "options");
        check_report(report);
        const quant::format_traits *f = quant::find_format(type);
        const bool to_q4_0 = type == LLMKIT_QUANT_Q4_0, to_q4_k = type == LLMKIT_QUANT_Q4_K;
        if (!to_q4_0 && !to_q4_k && (!f || f->fam != quant::family::gptq))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "gptq: type ", type,
                 " is not a GPTQ packing (gptq_int4, gptq_int4_g32/g64/g128), q4_0 or q4_K");
        if (o.n_threads < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.n_threads must be >= 0, got ", o.n_threads);
        if (o.block_size <= 0)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.block_size must be > 0, got ", o.block_size);
        if (o.zero_point < 0 || o.zero_point > 2)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.zero_point must be 0, 1 or 2, got ", o.zero_point);
        if (o.act_order != 0 && o.act_order != 1)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.act_order must be 0 or 1, got ", o.act_order);
        if (!(o.damp > 0.0) || !(o.damp < 1e6))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.damp must be a positive number, got ", o.damp);
        const bool symmetric = o.zero_point != LLMKIT_QUANT_ZERO_POINT_ASYMMETRIC;
        if (to_q4_0 && (o.act_order || !symmetric))
            fail(LLMKIT_ERROR_UNSUPPORTED,
                 "gptq to q4_0: Q4_0 has no zero point and no column order; use act_order 0 and a symmetric grid");
        if (to_q4_k && (o.act_order || o.zero_point == LLMKIT_QUANT_ZERO_POINT_SYMMETRIC))
            fail(LLMKIT_ERROR_UNSUPPORTED,
                 "gptq to q4_K: Q4_K has a min per 32 weights and no column order; use act_order 0 and zero_point 0 "
                 "(or asymmetric)");

        const host_rows w = host_f32(weight, "weight");
        if (weight->ndim != 2) fail(LLMKIT_ERROR_SHAPE, "weight must be [rows, n], got ", weight->ndim, " dimensions");
        // Q4_K's super-block plays the part of the group (its grid is Q4_K's own).
        const int32_t out_type = to_q4_0 ? int32_t(quant::f_gptq_int4_g32) : to_q4_k ? int32_t(quant::f_gptq_int4) : type;
        const quant::format_traits &fmt = *quant::find_format(out_type);
        const size_t needed = to_q4_0   ? quant::type_bytes(LLMKIT_QUANT_Q4_0, w.rows, w.n)
                              : to_q4_k ? quant::type_bytes(LLMKIT_QUANT_Q4_K, w.rows, w.n)
                                        : quant::format_bytes(fmt, w.rows, w.n);
        if (written) *written = needed;
        if (needed > 0 && (!dst || dst_capacity < needed))
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "gptq: dst needs ", needed, " bytes, capacity is ", dst ? dst_capacity : 0);

        const quant::hessian h = build_hessian(calib, n_calib, w.n, o.n_threads);
        quant::gptq_options go;
        go.group = to_q4_k ? 256 : fmt.group;
        go.q4_k = to_q4_k;
        go.damp = o.damp;
        go.block = o.block_size;
        go.act_order = o.act_order == 1;
        go.symmetric = symmetric;
        go.n_threads = o.n_threads;
        if (o.progress) go.progress = [&](int64_t done, int64_t total) { o.progress(done, total, o.user_data); };
        const quant::f32_rows src{w.data, w.rows, w.n, w.row_stride, w.col_stride};
        const quant::layer_result r = quant::gptq(src, h, go);
        if (to_q4_k) {
            std::memcpy(dst, r.q4_k.data(), r.q4_k.size());
        } else if (to_q4_0) {
            if (!quant::write_q4_0(r.groups, dst)) fail(LLMKIT_ERROR_INTERNAL, "gptq: result not representable as q4_0");
        } else {
            quant::pack_int4(fmt, r.groups, dst);
        }
        write_report(report, r.output_error, r.rtn_output_error, r.dead_columns);
    });
}

llmkit_status llmkit_awq_quantize(size_t *written, int32_t type, const llmkit_tensor *weight,
                                  const llmkit_tensor *calib, size_t n_calib, void *dst, size_t dst_capacity,
                                  float *scales, const llmkit_awq_options *options, llmkit_quant_layer_report *report) {
    return capi::guard([&] {
        const auto o = capi::read_options(options, k_awq_defaults, "options");
        check_report(report);
        const quant::format_traits *f = quant::find_format(type);
        const bool to_q4_k = type == LLMKIT_QUANT_Q4_K;
        if (!to_q4_k && (!f || f->fam != quant::family::awq))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "awq: type ", type,
                 " is not an AWQ packing (awq_int4_g32/g64/g128) or q4_K");
        if (o.n_threads < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.n_threads must be >= 0, got ", o.n_threads);
        if (o.n_grid < 1 || o.n_grid > 1000)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.n_grid must be in [1, 1000], got ", o.n_grid);
        if (!(o.max_shrink >= 0.0 && o.max_shrink < 1.0))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.max_shrink must be in [0, 1), got ", o.max_shrink);
        if (o.clip != 0 && o.clip != 1) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.clip must be 0 or 1, got ", o.clip);
        if (o.zero_point < 0 || o.zero_point > 2)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.zero_point must be 0, 1 or 2, got ", o.zero_point);
        const host_rows w = host_f32(weight, "weight");
        if (weight->ndim != 2) fail(LLMKIT_ERROR_SHAPE, "weight must be [rows, n], got ", weight->ndim, " dimensions");
        if (to_q4_k && o.zero_point == LLMKIT_QUANT_ZERO_POINT_SYMMETRIC)
            fail(LLMKIT_ERROR_UNSUPPORTED, "awq to q4_K: Q4_K has a min per 32 weights; use zero_point 0 (or asymmetric)");
        const size_t needed = to_q4_k ? quant::type_bytes(LLMKIT_QUANT_Q4_K, w.rows, w.n)
                                      : quant::format_bytes(*f, w.rows, w.n);
        if (written) *written = needed;
        if (needed > 0 && (!dst || dst_capacity < needed))
            fail(LLMKIT_ERROR_BUFFER_TOO_SMALL, "awq: dst needs ", needed, " bytes, capacity is ", dst ? dst_capacity : 0);
        const quant::hessian h = build_hessian(calib, n_calib, w.n, o.n_threads);
        quant::awq_options ao;
        ao.group = to_q4_k ? 256 : f->group;
        ao.q4_k = to_q4_k;
        ao.n_grid = o.n_grid;
        ao.max_shrink = o.max_shrink;
        ao.clip = o.clip == 1;
        ao.symmetric = o.zero_point == LLMKIT_QUANT_ZERO_POINT_SYMMETRIC;
        ao.n_threads = o.n_threads;
        if (o.progress) ao.progress = [&](int64_t done, int64_t total) { o.progress(done, total, o.user_data); };
        const quant::f32_rows src{w.data, w.rows, w.n, w.row_stride, w.col_stride};
        const quant::awq_result r = quant::awq(src, h, ao);
        if (to_q4_k)
            std::memcpy(dst, r.q4_k.data(), r.q4_k.size());
        else
            quant::pack_int4(*f, r.groups, dst);
        if (scales) std::memcpy(scales, r.scales.data(), r.scales.size() * sizeof(float));
        write_report(report, r.output_error, r.rtn_output_error, 0);
    });
}

}  // extern "C"
