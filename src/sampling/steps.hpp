// The sampler steps. Each transforms a candidates set in place (filters and
// logit transforms) or picks a token from it (pickers). Definitions follow the
// references named in llmkit.h; docs/concepts/sampling.md gives the formulas.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sampling/candidates.hpp"

namespace llmkit::sampling {

enum class step_kind {
    greedy,
    dist,
    temperature,
    dynamic_temperature,
    top_k,
    top_p,
    min_p,
    typical,
    top_n_sigma,
    xtc,
    penalties,
    dry,
    logit_bias,
    mirostat,
    mirostat_v2,
};

struct step {
    step_kind kind = step_kind::dist;
    float f0 = 0, f1 = 0, f2 = 0;  // meaning per kind, see make_* in chain.cpp
    int32_t i0 = 0, i1 = 0;
    size_t min_keep = 1;
    std::vector<int32_t> ids;   // logit_bias ids, dry breakers
    std::vector<float> values;  // logit_bias values

    bool picks() const { return kind == step_kind::greedy || kind == step_kind::dist || kind == step_kind::mirostat || kind == step_kind::mirostat_v2; }
    std::string describe() const;
};

// What a step may read besides the candidates.
struct step_context {
    uint64_t seed = 0;
    uint64_t seq_id = 0;
    uint64_t step_number = 0;
    uint32_t draw_index = 0;                 // Philox draw index reserved for this step
    const std::vector<int32_t> *history = nullptr;  // the sequence's accepted tokens
};

// Applies a non-picking step. Throws core::error on an impossible result.
void apply_step(const step &s, candidates &c, const step_context &ctx);

// The result of a picking step.
struct pick_result {
    int32_t token = -1;
    float new_mu = 0;  // mirostat only
};

// Picks a token. `mu` is the sequence's current mirostat mu (ignored otherwise).
// Leaves in `c` the distribution it drew from (for processed log-probabilities).
pick_result pick(const step &s, candidates &c, const step_context &ctx, float mu);

// Individual steps, exposed for the unit tests.
void step_temperature(candidates &c, float t);
void step_dynamic_temperature(candidates &c, float t, float delta, float exponent);
void step_top_k(candidates &c, int64_t k);
void step_top_p(candidates &c, float p, size_t min_keep);
void step_min_p(candidates &c, float p, size_t min_keep);
void step_typical(candidates &c, float p, size_t min_keep);
void step_top_n_sigma(candidates &c, float n);
void step_xtc(candidates &c, float probability, float threshold, size_t min_keep, double coin);
void step_penalties(candidates &c, const std::vector<int32_t> &history, int32_t last_n, float repeat, float frequency,
                    float presence);
void step_dry(candidates &c, const std::vector<int32_t> &history, float multiplier, float base,
              int32_t allowed_length, int32_t last_n, const std::vector<int32_t> &breakers);
void step_logit_bias(candidates &c, const std::vector<int32_t> &ids, const std::vector<float> &biases);
int32_t pick_greedy(const candidates &c);
// Draws from softmax(c.logits) with a uniform u in [0,1), walking in id order.
int32_t pick_dist(const candidates &c, double u);

// Probabilities of the candidates (softmax, as double for accuracy).
void softmax(const candidates &c, std::vector<double> &probs);

}  // namespace llmkit::sampling
