// Dense float64 linear algebra for GPTQ and AWQ (Eigen underneath), behind
// one dispatch point: the kernels are compiled twice, for the baseline x86-64
// ISA (linalg_generic.cpp) and for AVX2 + FMA (linalg_avx2.cpp, about 2.5x the
// baseline's flops per cycle in float64), and the CPU picks. Threads split
// the work here, outside the ISA-specific code. Matrices are row-major.
#pragma once

#include <cstdint>

namespace llmkit::quant::linalg {

// acc [n, n] += x^T x on and below the diagonal (some entries just above it
// change too; only the lower triangle is meaningful). x: [tokens, n].
void add_gram_lower(double *acc, const double *x, int64_t tokens, int64_t n, int n_threads);

// h [n, n], symmetric positive definite, is replaced by U, the upper
// Cholesky factor of h^-1 (h^-1 = U^T U), without forming h^-1: with J the
// reversal of the index order, J h J = L L^T gives h = (J L J)(J L J)^T with
// J L J upper, so U = (J L J)^-1 = J L^-1 J. One Cholesky factorization and
// one triangular inverse, n^3 / 3 flops each (inverting h, then factorizing
// the inverse, costs about four times that). Returns false, with h
// unspecified, when h is not numerically positive definite.
bool inverse_upper_cholesky(double *h, int64_t n, int n_threads);

// c [m, nn] (row stride ldc) -= a [m, k] (lda) * b [k, nn] (ldb).
void sub_product(double *c, int64_t ldc, const double *a, int64_t lda, const double *b, int64_t ldb, int64_t m,
                 int64_t k, int64_t nn, int n_threads);

// sum over the rows d_r of d [rows, n] of d_r h d_r^T, h [n, n] symmetric.
double quadratic_form_sum(const double *d, int64_t rows, int64_t n, const double *h, int n_threads);
// The same in float32 products, float64 sums (for ranking candidates).
double quadratic_form_sum_f32(const float *d, int64_t rows, int64_t n, const float *h, int n_threads);
// out[r] = d_r h d_r^T for each row of d [rows, n]; h [n, n] with row stride
// ldh. Single-threaded (called from inside parallel loops).
void quadratic_forms(const double *d, int64_t rows, int64_t n, const double *h, int64_t ldh, double *out);

// Tests: run the baseline kernels even on an AVX2 CPU (false), or the best
// the CPU has (true, the default). Returns whether AVX2 kernels are in use.
bool use_best_isa(bool best);

}  // namespace llmkit::quant::linalg
