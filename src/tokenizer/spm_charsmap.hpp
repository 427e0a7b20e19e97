// SentencePiece's precompiled character map (NormalizerSpec.precompiled_charsmap):
// the normalization rules (e.g. nmt_nfkc) compiled into a double-array trie
// (darts-clone layout) of source strings whose values are offsets of the
// replacement strings. Layout: uint32 LE trie size in bytes, the trie's
// 32-bit units, then the NUL-terminated replacement strings back to back.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmkit::tok {

class spm_charsmap {
public:
    // Checks the layout; LLMKIT_ERROR_FORMAT naming `source` when it is malformed.
    spm_charsmap(std::string_view blob, const std::string &source);

    // The longest rule source that is a prefix of s: returns its length (0 when
    // none) and sets `replacement`. Every lookup stays inside the arrays, so
    // a hostile trie can give wrong text but never read out of bounds.
    size_t longest_prefix(std::string_view s, std::string_view &replacement) const;
    // The same for the shortest rule source that is a prefix of s.
    size_t shortest_prefix(std::string_view s, std::string_view &replacement) const;
    // Whether some rule's source is the byte c alone or begins with c and
    // then an ASCII byte (NFKC's rules that begin with a letter go on with a
    // combining mark, which is never ASCII).
    bool rule_before_ascii(unsigned char c) const;

private:
    size_t prefix(std::string_view s, bool longest, std::string_view &replacement) const;

    std::vector<uint32_t> units_;
    std::string replacements_;
};

}  // namespace llmkit::tok
