#include "tokenizer/spm_charsmap.hpp"

#include <cstring>

#include "core/error.hpp"

namespace llmkit::tok {

namespace {
// The fields of one darts-clone unit.
inline bool has_leaf(uint32_t u) { return (u >> 8) & 1; }
inline uint32_t value_of(uint32_t u) { return u & 0x7FFFFFFFu; }
inline uint32_t label_of(uint32_t u) { return u & (0x80000000u | 0xFFu); }
inline uint32_t offset_of(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
}  // namespace

spm_charsmap::spm_charsmap(std::string_view blob, const std::string &source) {
    if (blob.size() < 4) core::fail(LLMKIT_ERROR_FORMAT, source, ": precompiled_charsmap is shorter than its header");
    const auto *p = reinterpret_cast<const unsigned char *>(blob.data());
    const uint32_t trie_bytes = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
    if (trie_bytes % 4 != 0 || trie_bytes == 0 || trie_bytes > blob.size() - 4)
        core::fail(LLMKIT_ERROR_FORMAT, source, ": precompiled_charsmap trie size ", trie_bytes,
                   " does not fit its ", blob.size(), " bytes");
    units_.resize(trie_bytes / 4);
    for (size_t i = 0; i < units_.size(); ++i) {
        const unsigned char *u = p + 4 + 4 * i;
        units_[i] = uint32_t(u[0]) | uint32_t(u[1]) << 8 | uint32_t(u[2]) << 16 | uint32_t(u[3]) << 24;
    }
    replacements_.assign(blob.substr(4 + trie_bytes));
}

size_t spm_charsmap::longest_prefix(std::string_view s, std::string_view &replacement) const {
    return prefix(s, true, replacement);
}

size_t spm_charsmap::shortest_prefix(std::string_view s, std::string_view &replacement) const {
    return prefix(s, false, replacement);
}

bool spm_charsmap::rule_before_ascii(unsigned char c) const {
    const size_t n_units = units_.size();
    size_t node = offset_of(units_[0]) ^ c;
    if (node >= n_units || label_of(units_[node]) != c) return false;  // no rule begins with c
    const uint32_t unit = units_[node];
    if (has_leaf(unit)) return true;  // c alone
    node ^= offset_of(unit);
    for (unsigned x = 0; x < 0x80; ++x) {
        const size_t child = node ^ x;
        if (child < n_units && label_of(units_[child]) == x) return true;
    }
    return false;
}

size_t spm_charsmap::prefix(std::string_view s, bool longest, std::string_view &replacement) const {
    const size_t n_units = units_.size();
    size_t node = offset_of(units_[0]);
    size_t best_len = 0;
    uint32_t best_value = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        node ^= c;
        if (node >= n_units) break;
        const uint32_t unit = units_[node];
        if (label_of(unit) != c) break;
        node ^= offset_of(unit);
        if (node >= n_units) break;
        if (has_leaf(unit)) {
            best_len = i + 1;
            best_value = value_of(units_[node]);
            if (!longest) break;
        }
    }
    if (best_len == 0) return 0;
    if (best_value >= replacements_.size()) {
        replacement = std::string_view();
    } else {
        const char *r = replacements_.data() + best_value;
        replacement = std::string_view(r, strnlen(r, replacements_.size() - best_value));
    }
    return best_len;
}

}  // namespace llmkit::tok
