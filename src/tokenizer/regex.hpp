// A compiled PCRE2 pattern (UTF + Unicode properties, JIT when available) that
// splits text into pre-tokens. Immutable after construction and safe to use
// from many threads at once: match data and the JIT stack live per thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace llmkit::tok {

class regex {
public:
    // Compiles `pattern`; fails with LLMKIT_ERROR_INVALID_ARGUMENT naming the
    // offset on a syntax error. dollar_end_only: `$` (outside multiline mode)
    // matches only at the end of the text, as in Rust's regex crate, not also
    // before a final newline as in PCRE2 and Perl.
    explicit regex(const std::string &pattern, bool dollar_end_only = false);
    ~regex();
    regex(const regex &) = delete;
    regex &operator=(const regex &) = delete;

    const std::string &pattern() const noexcept { return pattern_; }

    // Calls on_match(begin, end) for each successive non-overlapping match in
    // text[begin, end), as Python's re.finditer (text between matches is
    // skipped; an empty match advances by one character). `text` must be valid
    // UTF-8 (see check_utf8).
    template <typename F>
    void for_each_match(std::string_view text, F &&on_match) const {
        size_t pos = 0;
        size_t b = 0, e = 0;
        while (pos < text.size() && next_match(text, pos, b, e)) {
            if (e > b) {
                on_match(b, e);
                pos = e;
            } else {
                pos = b + 1;
                while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
            }
        }
    }

private:
    // Finds the first match at or after `start`; false when there is none.
    bool next_match(std::string_view text, size_t start, size_t &begin, size_t &end) const;

    std::string pattern_;
    void *code_ = nullptr;  // pcre2_code_8*
    bool jit_ = false;
};

// A pattern of tiktoken's regex dialect (Rust's regex crate, through
// fancy-regex) spelled so that PCRE2 matches what tiktoken matches; compile it
// with dollar_end_only. Rust and PCRE2 agree on most syntax but not on what
// some classes mean: \s is White_Space (PCRE2 adds U+180E), \w is UTS #18's
// word class (Alphabetic, marks, decimal digits, connector punctuation, ZWJ and
// ZWNJ; PCRE2's lacks marks and Pc), \b, \B, \< and \> follow that \w,
// \h is a hex digit (fancy-regex; PCRE2's is horizontal space), POSIX classes
// ([[:alpha:]]) are ASCII, Rust's \u and \U code point escapes become \x{...}, and classes
// nest and combine with && (intersection), -- (difference) and ~~ (symmetric
// difference), which become one-character lookaheads. Everything else passes
// through unchanged. The result translates to itself, so a pattern read back
// from a tokenizer (pattern()) builds the same tokenizer. Fails with
// LLMKIT_ERROR_INVALID_ARGUMENT for an unterminated class or escape.
std::string rust_regex_to_pcre2(std::string_view pattern);

// The same for Hugging Face tokenizers' dialect (Oniguruma with Ruby syntax),
// the regexes of tokenizer.json files: \s is White_Space, \w Alphabetic,
// marks, decimal digits and connector punctuation (outside classes also
// Latin-1's superscripts and fractions; \b, \B, \<, \> follow it), \h a hex
// digit, POSIX classes Unicode properties ([[:alpha:]] is Alphabetic,
// [[:punct:]] holds symbols), bare script names Script, classes nest and
// intersect (&&),
// ^ and $ match at line ends (Ruby), and (?m) is PCRE2's (?s).
std::string oniguruma_to_pcre2(std::string_view pattern);

// Whether text is valid UTF-8 (no overlong forms, surrogates or code points
// past U+10FFFF), with a fast path for ASCII.
bool is_valid_utf8(std::string_view text) noexcept;

// Throws LLMKIT_ERROR_INVALID_ARGUMENT naming the byte offset of the first
// invalid UTF-8 sequence in text (what = what the text is called).
void check_utf8(std::string_view text, const char *what);

}  // namespace llmkit::tok
