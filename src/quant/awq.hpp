// AWQ (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization for LLM
// Compression and Acceleration"): weights that meet large activations matter
// most. Scaling input channel j of W up by s_j (and the activation down by
// s_j, folded into the previous operation) makes its weights' rounding error
// relatively smaller; s = mean|x|^alpha, with alpha chosen by grid search to
// minimise the layer's output error on calibration inputs. Then each group's
// clipping range is shrunk (grid search) where that lowers the output error.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "quant/gptq.hpp"

namespace llmkit::quant {

struct awq_options {
    int64_t group = 128;        // elements per group along a row
    int n_grid = 20;            // alpha in {0, 1/n_grid, ..., (n_grid - 1)/n_grid}
    double max_shrink = 0.5;    // clip ratios 1, 1 - 1/n_grid, ... down to > 1 - max_shrink
    bool clip = true;           // run the clipping search
    bool symmetric = false;     // AWQ's default: a zero point per group
    // Emit GGUF Q4_K of the scaled weight instead of int4 groups: each
    // candidate is rounded with ggml's importance-weighted Q4_K fit (the
    // scaled layer's diag(H) / s^2 as the importance), whose own scale and
    // min search replaces the clipping search. n must be a multiple of 256.
    bool q4_k = false;
    int n_threads = 0;
    std::function<void(int64_t, int64_t)> progress;  // (steps done, total steps)
};

struct awq_result {
    int4_groups groups;           // int4 of the SCALED weight W * s (per input column)
    std::vector<uint8_t> q4_k;    // with awq_options::q4_k: Q4_K blocks of W * s instead
    std::vector<float> scales;    // s [n]: divide the layer's input (the previous op's output) by s
    double alpha = 0;             // the exponent chosen
    double output_error = 0;      // ||(W - Q(W s) / s) X^T||^2 / ||W X^T||^2
    double rtn_output_error = 0;  // the same for plain round-to-nearest (alpha 0, no clipping; Q4_K: ggml's plain Q4_K)
};

awq_result awq(const f32_rows &w, const hessian &h, const awq_options &o);

}  // namespace llmkit::quant
