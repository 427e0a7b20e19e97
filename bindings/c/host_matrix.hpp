// A 1-D or 2-D host tensor argument seen as a matrix [rows, cols] (a 1-D
// tensor is one row), with element strides: the shape the quantization calls
// (quantize, dequantize, quantized matmul) take their float arrays in.
#pragma once

#include <cstdint>

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace llmkit::capi {

struct matrix_arg {
    core::tensor_view v;
    int64_t rows = 1, cols = 0, row_stride = 0, col_stride = 1;
};

// Checks dtype, rank and residence; `what` names the operation in the error
// for device memory ("quantization", "quantized matmul").
inline matrix_arg host_matrix_arg(const llmkit_tensor *t, const char *name, core::dtype type, const char *what) {
    matrix_arg m;
    m.v = core::tensor_view::from(t, name);
    m.v.require_dtype({type});
    m.v.require_ndim(1, 2);
    if (!m.v.on_host()) core::fail(LLMKIT_ERROR_NO_DEVICE, name, ": ", what, " runs on the CPU; pass host memory");
    if (m.v.ndim == 1) {
        m.cols = m.v.shape[0];
        m.col_stride = m.v.strides[0];
    } else {
        m.rows = m.v.shape[0];
        m.cols = m.v.shape[1];
        m.row_stride = m.v.strides[0];
        m.col_stride = m.v.strides[1];
    }
    return m;
}

}  // namespace llmkit::capi
