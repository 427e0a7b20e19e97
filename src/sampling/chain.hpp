// A sampler chain: an ordered list of steps configured once, plus per-sequence
// state (accepted-token history, mirostat mu, step counter). The CPU driver in
// chain.cpp is the reference implementation every backend must reproduce.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "core/tensor.hpp"
#include "sampling/steps.hpp"

namespace llmkit::sampling {

struct sequence_state {
    std::vector<int32_t> history;
    uint64_t step_number = 0;
    std::vector<float> mu;  // one per chain step (used by mirostat steps), NaN until first use
};

// The per-call options, validated (see llmkit_sample_options).
struct sample_call {
    int n_threads = 0;
    std::vector<int64_t> seq_ids;  // one per row
    const core::tensor_view *chosen_logprobs = nullptr;
    const core::tensor_view *top_ids = nullptr;
    const core::tensor_view *top_logprobs = nullptr;
    int64_t n_top = 0;
    bool processed_logprobs = false;
    void *stream = nullptr;
};

class chain {
public:
    explicit chain(uint64_t seed) : seed_(seed) {}

    void add(step s);  // validates ordering (nothing after a picker)
    size_t length() const { return steps_.size(); }
    std::string describe() const;
    uint64_t seed() const { return seed_; }

    void accept(int64_t seq_id, const int32_t *tokens, size_t n);
    void reset(int64_t seq_id);  // -1: all

    // Samples one token per row into `tokens` (host views). Advances state only on success.
    void sample(const core::tensor_view &logits, const core::tensor_view &tokens, const sample_call &call);
    // Writes the processed logits (float32) without advancing state.
    void apply(const core::tensor_view &logits, const core::tensor_view &out, const sample_call &call);

    const std::vector<step> &steps() const { return steps_; }

private:
    sequence_state &state_for(int64_t seq_id);
    // Runs the non-picking steps on one row; returns the context the picker uses.
    step_context run_filters(candidates &c, const sequence_state &st, int64_t seq_id, size_t n_filters) const;

    uint64_t seed_;
    std::vector<step> steps_;
    std::map<int64_t, sequence_state> sequences_;
};

// Validates logits ([B,V] or [V], float) and returns B and V.
void logits_shape(const core::tensor_view &logits, int64_t &rows, int64_t &vocab);

// The dispatching entry points used by the C layer.
void sample_dispatch(chain &c, const core::tensor_view &logits, const core::tensor_view &tokens, sample_call &call);
void apply_dispatch(chain &c, const core::tensor_view &logits, const core::tensor_view &out, sample_call &call);

struct speculative_call {
    uint64_t seed = 0;
    uint64_t step_number = 0;
    std::vector<int64_t> seq_ids;
    int n_threads = 0;
    void *stream = nullptr;
};

void verify_speculative(const core::tensor_view &draft_tokens, const core::tensor_view &draft_probs,
                        const core::tensor_view &target_probs, const core::tensor_view &out_tokens,
                        const core::tensor_view &out_n_accepted, const speculative_call &call);
void verify_speculative_dispatch(const core::tensor_view &draft_tokens, const core::tensor_view &draft_probs,
                                 const core::tensor_view &target_probs, const core::tensor_view &out_tokens,
                                 const core::tensor_view &out_n_accepted, const speculative_call &call);

}  // namespace llmkit::sampling
