// Byte-level BPE as tiktoken does it: a table from token bytes to rank (the
// rank is also the token id), and the merge loop that turns one pre-token
// piece into ranks by repeatedly merging the adjacent pair whose
// concatenation has the lowest rank (the leftmost such pair on ties).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llmkit::tok {

constexpr uint32_t k_no_rank = std::numeric_limits<uint32_t>::max();

class rank_table {
public:
    // Builds the table from (token bytes, rank) entries. Fails with
    // LLMKIT_ERROR_FORMAT on a duplicate token or rank (naming `source`).
    rank_table(std::vector<std::pair<std::string, uint32_t>> entries, const std::string &source);

    rank_table(const rank_table &) = delete;
    rank_table &operator=(const rank_table &) = delete;

    // The rank of a byte string, or k_no_rank.
    uint32_t rank(std::string_view bytes) const {
        if (bytes.size() == 1) return byte_rank_[static_cast<unsigned char>(bytes[0])];
        const auto it = map_.find(bytes);
        return it == map_.end() ? k_no_rank : it->second;
    }
    // The bytes of a rank; false when no token has that rank.
    bool bytes(uint32_t rank, std::string_view &out) const {
        if (rank >= by_rank_.size() || by_rank_[rank].second == k_no_rank) return false;
        out = std::string_view(arena_.data() + by_rank_[rank].first, by_rank_[rank].second);
        return true;
    }
    // One more than the largest rank.
    uint32_t end_rank() const noexcept { return static_cast<uint32_t>(by_rank_.size()); }
    size_t size() const noexcept { return map_.size(); }
    // The first byte value that is not a token of its own, or -1 when every byte is.
    int missing_byte() const noexcept;

    // Appends the ranks of `piece` (non-empty) to `out`.
    void encode_piece(std::string_view piece, std::vector<int32_t> &out) const;

    // The two merge loops encode_piece chooses between (public for tests):
    // tiktoken's scan over the parts, for pieces of 2..128 bytes, and the
    // O(n log n) heap for any length >= 2. They give the same ranks.
    void merge_small(std::string_view piece, std::vector<int32_t> &out) const;
    void merge_large(std::string_view piece, std::vector<int32_t> &out) const;

private:

    std::string arena_;                                   // all token bytes back to back
    std::vector<std::pair<uint32_t, uint32_t>> by_rank_;  // rank -> (offset, length); length k_no_rank = absent
    std::unordered_map<std::string_view, uint32_t> map_;  // views into arena_
    uint32_t byte_rank_[256];
};

}  // namespace llmkit::tok
