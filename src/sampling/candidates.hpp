// The working set of one row while a sampler chain runs: the tokens still in
// play and their current logits. Invariant: ids are strictly ascending. Steps
// never reorder it; they find a cut-off by selection on a scratch copy and then
// compact in place, which keeps the final random draw's walk order (token id)
// independent of how a step found its cut-off. That canonical order is what lets
// another backend reproduce exactly the same token for the same Philox draw.
#pragma once

#include <cstdint>
#include <vector>

namespace llmkit::sampling {

struct candidates {
    std::vector<int32_t> ids;
    std::vector<float> logits;
    int32_t vocab_size = 0;  // V of the row, for steps that need it (mirostat)

    size_t size() const { return ids.size(); }
    // Keeps the entries whose flag is set, preserving order.
    template <typename Keep>
    void compact(Keep keep) {
        // Branch-free: always write, advance by the flag. Survivors are often
        // scattered through the ids, where a branch per token mispredicts.
        int32_t *id = ids.data();
        float *lg = logits.data();
        const size_t n = ids.size();
        size_t w = 0;
        for (size_t r = 0; r < n; ++r) {
            const bool k = keep(r);
            id[w] = id[r];
            lg[w] = lg[r];
            w += k ? 1 : 0;
        }
        ids.resize(w);
        logits.resize(w);
    }
    // Position of token id, or -1.
    int64_t find(int32_t id) const;
    float max_logit() const;
};

}  // namespace llmkit::sampling
