#include "tokenizer/pair_table.hpp"

#include <algorithm>

namespace llmkit::tok {

pair_table::pair_table(size_t capacity) {
    if (capacity == 0) return;
    // About four entries per bucket of eight: few buckets overflow, so most
    // lookups, hits and misses alike, read one line.
    const size_t n_buckets = std::max<size_t>(1, (capacity + 3) / 4);
    bucket empty_bucket;
    std::fill(std::begin(empty_bucket.e), std::end(empty_bucket.e), k_empty);
    buckets_.assign(n_buckets, empty_bucket);
}

pair_table::pair_table(const std::vector<triple> &pairs) : pair_table(pairs.size()) {
    for (const triple &t : pairs) insert(t);
}

void pair_table::insert(const triple &t) noexcept {
    const uint64_t key = uint64_t(t.left) | uint64_t(t.right) << k_id_bits;
    const uint64_t entry = key | uint64_t(t.merged) << (2 * k_id_bits);
    for (size_t b = home(key);; b = b + 1 == buckets_.size() ? 0 : b + 1) {
        uint64_t *slot = std::find(std::begin(buckets_[b].e), std::end(buckets_[b].e), k_empty);
        if (slot != std::end(buckets_[b].e)) {
            *slot = entry;
            ++count_;
            return;
        }
    }
}

}  // namespace llmkit::tok
