// The merge table of byte-level BPE keyed by token ids: (left, right) -> the
// rank of bytes(left) + bytes(right), for the pairs of tokens that tiktoken's
// merges can join (rank_table::build_pair_table keeps one per token). It
// answers the question tiktoken's merge loop asks ("is this pair of adjacent
// parts a token, and which?") with one hash of two integers and, nearly
// always, one cache line, where the byte-keyed rank table needs a hash of the
// bytes, a filter word, a slot and, for tokens over 8 bytes, the rank's offset
// and the token's bytes: o200k's tables are many MiB, so each of those is a
// cache miss.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "tokenizer/huge_pages.hpp"

namespace llmkit::tok {

class pair_table {
public:
    // Ids up to this many bits pack three to a 64-bit entry.
    static constexpr unsigned k_id_bits = 21;
    // The largest id an entry can hold (all ones marks an empty entry).
    static constexpr uint32_t k_max_id = (uint32_t(1) << k_id_bits) - 2;

    pair_table() = default;

    // Builds the table from (left, right, merged) triples, every id <= k_max_id
    // and every (left, right) given once.
    struct triple {
        uint32_t left, right, merged;
    };
    explicit pair_table(const std::vector<triple> &pairs);
    // An empty table with room for up to `capacity` pairs, which insert()
    // adds one at a time (find() may be called in between).
    explicit pair_table(size_t capacity);
    // Adds (left, right) -> merged: ids <= k_max_id, (left, right) not yet
    // in the table, at most `capacity` pairs in all.
    void insert(const triple &t) noexcept;

    bool empty() const noexcept { return buckets_.empty(); }
    size_t size() const noexcept { return count_; }
    size_t bytes() const noexcept { return buckets_.size() * sizeof(bucket); }
    const void *data() const noexcept { return buckets_.data(); }

    // The merged id of (left, right), or `none` when the pair is not in the
    // table. Ids over k_max_id are never in it.
    uint32_t find(uint32_t left, uint32_t right, uint32_t none) const noexcept {
        if (left > k_max_id || right > k_max_id || buckets_.empty()) return none;
        const uint64_t key = uint64_t(left) | uint64_t(right) << k_id_bits;
        for (size_t b = home(key);; b = b + 1 == buckets_.size() ? 0 : b + 1) {
            const bucket &bk = buckets_[b];
            bool full = true;
            for (uint64_t e : bk.e) {
                if ((e & k_key_mask) == key) return uint32_t(e >> (2 * k_id_bits));
                full &= e != k_empty;
            }
            // Entries are placed in the first bucket (from home) with room and
            // never removed, so a bucket with room ends the search.
            if (!full) return none;
        }
    }
    // Starts loading the bucket where find(left, right) begins.
    void prefetch(uint32_t left, uint32_t right) const noexcept {
#if defined(__GNUC__)
        if (left <= k_max_id && right <= k_max_id && !buckets_.empty()) __builtin_prefetch(&buckets_[home(uint64_t(left) | uint64_t(right) << k_id_bits)]);
#else
        (void)left;
        (void)right;
#endif
    }

private:
    static constexpr uint64_t k_key_mask = (uint64_t(1) << (2 * k_id_bits)) - 1;
    static constexpr uint64_t k_empty = ~uint64_t(0);
    // Eight entries, one cache line: a lookup reads one line unless its
    // home bucket overflowed.
    struct alignas(64) bucket {
        uint64_t e[8];
    };
    size_t home(uint64_t key) const noexcept {
        // Multiplicative hash; its high 32 bits scaled to the bucket count
        // (which need not be a power of two).
        const uint64_t h = (key * 0x9E3779B97F4A7C15ull) >> 32;
        return size_t((h * uint64_t(buckets_.size())) >> 32);
    }

    std::vector<bucket, huge_page_allocator<bucket>> buckets_;  // on huge pages where allowed: MiBs read at random
    size_t count_ = 0;
};

}  // namespace llmkit::tok
