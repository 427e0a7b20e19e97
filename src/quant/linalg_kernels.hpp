// Internal: the single-threaded float64 kernels behind linalg.hpp, one table
// per ISA. Plain function pointers only, and no inline functions: this header
// is included by translation units compiled for different ISAs.
#pragma once

#include <cstdint>

namespace llmkit::quant::linalg {

struct kernel_table {
    const char *name;
    // acc rows [r0, r1), columns [0, r1) += x[:, r0:r1]^T x[:, 0:r1].
    void (*gram_rows)(double *acc, const double *x, int64_t tokens, int64_t n, int64_t r0, int64_t r1);
    // a [n, n] := its lower Cholesky factor L (in place); false if not positive definite.
    bool (*cholesky_lower)(double *a, int64_t n);
    // Columns [c0, c1) of L^-1 (L lower [n, n]) into inv (row-major [n, n]); rows above c0 are left alone.
    void (*lower_inverse_cols)(const double *l, int64_t n, double *inv, int64_t c0, int64_t c1);
    // c -= a b (see linalg::sub_product), single-threaded.
    void (*sub_product)(double *c, int64_t ldc, const double *a, int64_t lda, const double *b, int64_t ldb, int64_t m,
                        int64_t k, int64_t nn);
    void (*quadratic_forms)(const double *d, int64_t rows, int64_t n, const double *h, int64_t ldh, double *out);
    double (*quadratic_sum_f32)(const float *d, int64_t rows, int64_t n, const float *h);
};

const kernel_table &generic_kernels();
// nullptr when the compiler could not target AVX2 + FMA; check the CPU first.
extern const kernel_table *const avx2_table;

}  // namespace llmkit::quant::linalg
