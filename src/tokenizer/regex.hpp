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
    // offset on a syntax error.
    explicit regex(const std::string &pattern);
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

// Whether text is valid UTF-8 (no overlong forms, surrogates or code points
// past U+10FFFF), with a fast path for ASCII.
bool is_valid_utf8(std::string_view text) noexcept;

// Throws LLMKIT_ERROR_INVALID_ARGUMENT naming the byte offset of the first
// invalid UTF-8 sequence in text (what = what the text is called).
void check_utf8(std::string_view text, const char *what);

}  // namespace llmkit::tok
