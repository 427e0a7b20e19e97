// Unicode helpers for the Hugging Face tokenizer.json pipeline: UTF-8
// iteration, the character classes HF's Rust code uses (char::is_whitespace,
// is_alphanumeric, the Unicode general categories), case mapping and the four
// normalization forms (utf8proc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llmkit::tok::uni {

// Decodes the character at s[i] (valid UTF-8 assumed: the text was checked)
// and returns its length in bytes.
inline size_t decode(std::string_view s, size_t i, char32_t &cp) {
    const auto c0 = static_cast<unsigned char>(s[i]);
    if (c0 < 0x80) {
        cp = c0;
        return 1;
    }
    const size_t n = c0 >= 0xF0 ? 4 : c0 >= 0xE0 ? 3 : 2;
    cp = c0 & (0x7F >> n);
    for (size_t k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    return n;
}
// Length of the character that starts with byte b.
inline size_t char_len(unsigned char b) { return b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2; }
void append(std::string &out, char32_t cp);
size_t count_chars(std::string_view s);

// Rust's char::is_whitespace (the White_Space property).
bool is_whitespace(char32_t c);
// Rust's char::is_alphanumeric (Alphabetic or Numeric), approximated with the
// general categories L*, Nl, N*, Mc (utf8proc has no Alphabetic property).
bool is_alphanumeric(char32_t c);
// Rust's char::is_numeric: Nd, Nl, No.
bool is_numeric(char32_t c);
// General category P* (unicode_categories' is_punctuation).
bool is_punctuation(char32_t c);
// char::is_ascii_punctuation.
inline bool is_ascii_punctuation(char32_t c) {
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
}
// Cc, Cf, Co, Cs (BERT's "control" test; unassigned code points are kept, as HF does).
bool is_other(char32_t c);
bool is_mark_nonspacing(char32_t c);  // Mn
bool is_mark(char32_t c);             // Mn, Mc, Me
// Canonical_Combining_Class (0 for starters).
int combining_class(char32_t c);
// Lowercase of one character as Rust's char::to_lowercase (full mapping).
void append_lowercase(std::string &out, char32_t c);

// The script tokenizers' UnicodeScripts pre-tokenizer gives c, as an ICU
// UScriptCode, or script_any (-1): a space (U+0020) or a code point that is not
// assigned in Unicode 9.0, the version of tokenizers' generated table. The
// scripts of a few characters changed after 9.0; those keep their 9.0 value.
// Hiragana, Katakana and U+30FC are Han (sentencepiece's IsValidSentencePiece).
constexpr int script_any = -1;
int script_of(char32_t c);

// Byte length of the extended grapheme cluster (UAX #29) that starts at s[i].
size_t grapheme_length(std::string_view s, size_t i);

enum class form { nfc, nfd, nfkc, nfkd };
// s in the normalization form.
std::string normalize(std::string_view s, form f);

}  // namespace llmkit::tok::uni
