// Hand-written pre-tokenizers for the byte-level BPE presets' patterns
// (r50k/p50k, cl100k, o200k, llama3, qwen2). Each scans code points with a
// compact category table and gives exactly the pieces that the preset's regex
// (as rust_regex_to_pcre2 writes it for PCRE2) gives under leftmost-first backtracking
// semantics: alternatives tried in order at each position, greedy quantifiers
// backing off where a later element fails, possessive ones not. Any other
// pattern keeps PCRE2 (pretok_kind::none). tests/tokenizer/test_pretokenize.cpp
// compares them with PCRE2 piece by piece.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace llmkit::tok {

enum class pretok_kind { none, gpt2, cl100k, o200k, llama3, qwen2 };

// The scanner for a pattern, by exact comparison with the presets' patterns
// after rust_regex_to_pcre2; pretok_kind::none for any other pattern.
pretok_kind pretokenizer_for(std::string_view pattern);

// The classes of a code point as the scanners see them (for tests): bit 0
// \p{L}, 1 \p{N}, 2 white space ([\t-\r\x{85}\p{Z}]), 3 o200k's
// [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}], 4 its [\p{Ll}\p{Lm}\p{Lo}\p{M}].
unsigned pretoken_classes(uint32_t cp);

// Scans pieces of `text` (valid UTF-8) from byte `pos` (at a piece start),
// writes the end offsets of up to `cap` (>= 1) consecutive pieces to `ends`
// and returns how many it wrote (0 only when pos == text.size()). Every
// position starts a non-empty piece with these patterns, so the pieces tile
// the text. `kind` must not be none.
size_t pretoken_ends(pretok_kind kind, std::string_view text, size_t pos, size_t *ends, size_t cap);

// Calls on_piece(begin, end) for each piece of text in order.
template <typename F>
void pretokenize(pretok_kind kind, std::string_view text, F &&on_piece) {
    size_t ends[256];
    size_t pos = 0;
    while (pos < text.size()) {
        const size_t count = pretoken_ends(kind, text, pos, ends, 256);
        for (size_t k = 0; k < count; ++k) {
            on_piece(pos, ends[k]);
            pos = ends[k];
        }
    }
}

}  // namespace llmkit::tok
