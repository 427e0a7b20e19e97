// GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers"): quantizes a linear layer's weight
// W [rows = outputs, n = inputs] one input column at a time, and after each
// column spreads its rounding error over the columns not yet quantized so
// that the layer's output on calibration inputs changes as little as possible.
//
// With H = 2/N sum_t x_t x_t^T (the Hessian of the layer's squared output
// error), quantizing column j with error e_j = (w_j - q_j) / [H^-1]_jj is
// compensated by w_k -= e_j [H^-1]_jk for k > j; [H^-1] rows come from the
// upper Cholesky factor U of H^-1 (H^-1 = U^T U), which is what makes the
// updates numerically stable. Updates are applied lazily, a block of 128
// columns at a time (one matrix product per block instead of n rank-1 updates).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "quant/formats.hpp"

namespace llmkit::quant {

// Accumulates H = 2/N sum x x^T over calibration batches (float64).
class hessian {
public:
    explicit hessian(int64_t n);
    // x: [tokens, n] float32 with element strides. Throws NON_FINITE on NaN/inf.
    void add(const float *x, int64_t tokens, int64_t row_stride, int64_t col_stride, int n_threads = 0);
    int64_t n() const { return n_; }
    int64_t samples() const { return count_; }
    // Row-major n x n, scaled by 2 / samples.
    std::vector<double> matrix() const;
    // Mean |x_j| per input channel (AWQ's activation statistic).
    std::vector<double> mean_abs() const;

private:
    int64_t n_, count_ = 0;
    std::vector<double> xtx_;      // sum x x^T, lower triangle filled
    std::vector<double> abs_sum_;  // sum |x_j|
};

struct gptq_options {
    int64_t group = 128;      // elements per group along a row; 0 = the whole row
    double damp = 0.01;       // fraction of mean(diag H) added to the diagonal
    int64_t block = 128;      // lazy-update block (rounded to a multiple of group)
    bool act_order = false;   // columns by decreasing diag(H); g_idx records their groups
    bool symmetric = true;    // zero point 8 (GPTQ's default) or fitted per group
    // Emit GGUF Q4_K instead of int4 groups: group is 256 (the super-block),
    // each super-block's scales and mins are fitted (ggml's importance-weighted
    // Q4_K fit, with diag(H) as the importance) on its current weights when
    // GPTQ reaches it, then GPTQ picks the levels. No act-order.
    bool q4_k = false;
    int n_threads = 0;
    std::function<void(int64_t, int64_t)> progress;  // (columns done, total)
};

struct layer_result {
    int4_groups groups;           // q, scales, zeros and g_idx in the original column order (int4 output)
    std::vector<uint8_t> q4_k;    // Q4_K output: rows * n / 256 blocks of 144 bytes
    double output_error = 0;      // ||W X - W^ X||^2 / ||W X||^2 on the calibration inputs
    double rtn_output_error = 0;  // the same for round-to-nearest with the same grid (Q4_K: ggml's Q4_K quantizer)
    int64_t dead_columns = 0;     // inputs that were always 0 (their weights become 0)
};

layer_result gptq(const f32_rows &w, const hessian &h, const gptq_options &o);

// The relative output error ||(W - W^) X^T||^2 / ||W X^T||^2 =
// tr(dW H dW^T) / tr(W H W^T) (dW = W - W^, H from x^T x) of candidates W^
// for one layer: the denominator is computed once, each call costs one
// rows x n x n product. Holds references to w and h: they must outlive it.
class output_error_meter {
public:
    output_error_meter(const std::vector<double> &w, const std::vector<double> &h, int64_t rows, int64_t n,
                       int n_threads);
    // In float64 (what the reports give).
    double operator()(const std::vector<double> &w_hat) const;
    // The same with float32 products (sums in float64): about twice as fast,
    // relative error ~1e-5, for ranking the candidates of a search.
    double approx(const std::vector<double> &w_hat) const;

private:
    const std::vector<double> &w_, &h_;
    int64_t rows_, n_;
    int n_threads_;
    double energy_ = 0;          // tr(W H W^T)
    mutable std::vector<float> h32_;  // H in float32, made on the first approx()
};

// Dequantized int4 groups as float64 [rows, n].
std::vector<double> dequantize_groups(const int4_groups &g);
// GGUF Q4_K blocks [rows, n / 256 blocks of 144 bytes] decoded into float64 [rows, n].
std::vector<double> dequantize_q4_k_rows(const std::vector<uint8_t> &blocks, int64_t rows, int64_t n);

}  // namespace llmkit::quant
