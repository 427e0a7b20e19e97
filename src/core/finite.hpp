// Checks that inputs hold no NaN or infinity, before anything is computed or
// written: a NaN in one query or key row would otherwise turn whole output
// rows (and, in caches and quantized blocks, everything later) into NaN
// without a word. The checks read the bits, in loops that compilers
// vectorize, so a check costs about one pass over the data at memory speed.
#pragma once

#include <cstdint>

#include "core/tensor.hpp"

namespace llmkit::core {

// Whether x[0, n) are all finite (neither NaN nor an infinity).
bool all_finite(const float *x, int64_t n) noexcept;
// The same for 16-bit floats given as their bits: t is dtype::bf16 or dtype::f16.
bool all_finite(const uint16_t *x, int64_t n, dtype t) noexcept;
// Whether x[0, n) hold no NaN and no +inf (-inf passes: an additive mask's "hidden").
bool no_nan_or_positive_infinity(const float *x, int64_t n) noexcept;

// Fails with LLMKIT_ERROR_NON_FINITE naming t.name and the index of the first
// element (in index order) that is NaN or an infinity, e.g. "q[0, 5, 3, 17] =
// nan is not finite". t: a host tensor of float32, bfloat16 or float16 of
// any strides (rows with a unit last stride take the fast path). With
// allow_negative_infinity (float32 only), -inf passes. Rows are checked on
// n_threads threads (0 = the default).
void require_finite(const tensor_view &t, int n_threads, bool allow_negative_infinity = false);

}  // namespace llmkit::core
