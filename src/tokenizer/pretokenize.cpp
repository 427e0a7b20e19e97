#include "tokenizer/pretokenize.hpp"

#include <utf8proc.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <string>
#include <unordered_map>

#include "tokenizer/tokenizer.hpp"
#include "tokenizer/train.hpp"

namespace llmkit::tok {

namespace {

// What the patterns ask of a code point. \r and \n are tested by value.
enum : uint8_t {
    f_letter = 1,  // \p{L}
    f_number = 2,  // \p{N}
    f_space = 4,   // \s as rust_regex_to_pcre2 writes it: [\t-\r\x{85}\p{Z}]
    f_upper = 8,   // o200k's [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
    f_lower = 16,  // o200k's [\p{Ll}\p{Lm}\p{Lo}\p{M}]
};

// Code points that utf8proc 2.8 (Unicode 15.0) leaves unassigned and that
// tiktoken's regex engine (Rust regex-syntax, Unicode 16.0) classes: Unicode
// 15.1 and 16.0 additions, {first, last, flags}. Extracted by running
// tiktoken 0.14 over every code point with each class (\p{L}, \p{N}, \s and
// o200k's two classes) as the whole pattern and diffing with utf8proc; no
// code point differs otherwise. tests/python/test_tokenizer.py checks every
// code point against tiktoken. (PCRE2 10.42 has Unicode 14 and differs on
// these and on Unicode 15.0's additions; the scanners follow tiktoken.)
struct override_range {
    uint32_t first, last;
    uint8_t flags;
};
const override_range k_overrides[] = {
    {0x897, 0x897, 24}, {0x1C89, 0x1C89, 9}, {0x1C8A, 0x1C8A, 17}, {0xA7CB, 0xA7CC, 9}, {0xA7CD, 0xA7CD, 17},
    {0xA7DA, 0xA7DA, 9}, {0xA7DB, 0xA7DB, 17}, {0xA7DC, 0xA7DC, 9}, {0x105C0, 0x105F3, 25}, {0x10D40, 0x10D49, 2},
    {0x10D4A, 0x10D4F, 25}, {0x10D50, 0x10D65, 9}, {0x10D69, 0x10D6D, 24}, {0x10D6F, 0x10D6F, 25},
    {0x10D70, 0x10D85, 17}, {0x10EC2, 0x10EC4, 25}, {0x10EFC, 0x10EFC, 24}, {0x11380, 0x11389, 25},
    {0x1138B, 0x1138B, 25}, {0x1138E, 0x1138E, 25}, {0x11390, 0x113B5, 25}, {0x113B7, 0x113B7, 25},
    {0x113B8, 0x113C0, 24}, {0x113C2, 0x113C2, 24}, {0x113C5, 0x113C5, 24}, {0x113C7, 0x113CA, 24},
    {0x113CC, 0x113D0, 24}, {0x113D1, 0x113D1, 25}, {0x113D2, 0x113D2, 24}, {0x113D3, 0x113D3, 25},
    {0x113E1, 0x113E2, 24}, {0x116D0, 0x116E3, 2}, {0x11BC0, 0x11BE0, 25}, {0x11BF0, 0x11BF9, 2},
    {0x11F5A, 0x11F5A, 24}, {0x13460, 0x143FA, 25}, {0x16100, 0x1611D, 25}, {0x1611E, 0x1612F, 24},
    {0x16130, 0x16139, 2}, {0x16D40, 0x16D6C, 25}, {0x16D70, 0x16D79, 2}, {0x18CFF, 0x18CFF, 25},
    {0x1CCF0, 0x1CCF9, 2}, {0x1E5D0, 0x1E5ED, 25}, {0x1E5EE, 0x1E5EF, 24}, {0x1E5F0, 0x1E5F0, 25},
    {0x1E5F1, 0x1E5FA, 2}, {0x2EBF0, 0x2EE5D, 25},
};

uint8_t flags_from_utf8proc(uint32_t cp) {
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return f_space;
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LT: return f_letter | f_upper;
    case UTF8PROC_CATEGORY_LL: return f_letter | f_lower;
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return f_letter | f_upper | f_lower;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME: return f_upper | f_lower;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return f_number;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: return f_space;
    default: return 0;
    }
}

// Two stages: the high bits of a code point pick a 256-entry block, blocks
// with the same contents are stored once (about 300 blocks, ~80 KiB).
struct category_table {
    uint16_t stage1[0x1100];
    std::vector<uint8_t> stage2;
    // Code points below U+0800 (ASCII and every 2-byte sequence: Latin,
    // Greek, Cyrillic, Armenian, Hebrew, Arabic, ...) by one direct load.
    uint8_t below_800[0x800];

    category_table() {
        std::unordered_map<std::string, uint16_t> seen;
        std::string block(256, '\0');
        for (uint32_t hi = 0; hi < 0x1100; ++hi) {
            for (uint32_t lo = 0; lo < 256; ++lo) {
                const uint32_t cp = hi << 8 | lo;
                block[lo] = static_cast<char>((cp >= 0xD800 && cp <= 0xDFFF) ? 0 : flags_from_utf8proc(cp));
            }
            for (const override_range &o : k_overrides)
                for (uint32_t cp = std::max(o.first, hi << 8); cp <= o.last && cp <= (hi << 8 | 0xFF); ++cp)
                    block[cp & 0xFF] = static_cast<char>(o.flags);
            const auto it = seen.find(block);
            if (it != seen.end()) {
                stage1[hi] = it->second;
                continue;
            }
            const uint16_t index = static_cast<uint16_t>(stage2.size() / 256);
            seen.emplace(block, index);
            stage1[hi] = index;
            stage2.insert(stage2.end(), block.begin(), block.end());
        }
        for (uint32_t c = 0; c < 0x800; ++c) below_800[c] = stage2[size_t(stage1[c >> 8]) * 256 + (c & 0xFF)];
    }
    uint8_t of(uint32_t cp) const noexcept {
        if (cp >= 0x110000) return 0;
        return stage2[size_t(stage1[cp >> 8]) * 256 + (cp & 0xFF)];
    }
};

const category_table &table() {
    static const category_table t;
    return t;
}

// One scan over valid UTF-8 (bytes past a truncated sequence are never read).
struct scanner {
    const unsigned char *p;
    size_t n;
    const category_table &t;

    // The flags of the code point at i (< n) and its length in bytes.
    uint8_t at(size_t i, size_t &len) const noexcept {
        const unsigned c = p[i];
        if (c < 0x80) {
            len = 1;
            return t.below_800[c];
        }
        uint32_t cp;
        if (c < 0xE0) {
            if (i + 1 >= n) return len = 1, 0;
            len = 2;
            return t.below_800[(c & 0x1Fu) << 6 | (p[i + 1] & 0x3Fu)];
        } else if (c < 0xF0) {
            if (i + 2 >= n) return len = 1, 0;
            cp = (c & 0x0Fu) << 12 | (p[i + 1] & 0x3Fu) << 6 | (p[i + 2] & 0x3Fu);
            len = 3;
        } else {
            if (i + 3 >= n) return len = 1, 0;
            cp = (c & 0x07u) << 18 | (p[i + 1] & 0x3Fu) << 12 | (p[i + 2] & 0x3Fu) << 6 | (p[i + 3] & 0x3Fu);
            len = 4;
        }
        return t.of(cp);
    }
    uint8_t at(size_t i) const noexcept {
        size_t len;
        return at(i, len);
    }
    bool is_crlf(size_t i) const noexcept { return p[i] == '\r' || p[i] == '\n'; }

    // The end of the run of ASCII letters from i, 16 bytes at a time (a-z, or
    // a-z and A-Z when `both_cases`), where 16 bytes remain; i when p[i] is
    // none. Most runs are short words of ASCII letters, which the loop in
    // run() ends with a mispredicted branch; this finds the end in one step.
    size_t ascii_letters(size_t i, bool both_cases) const noexcept {
#if defined(__SSE2__)
        const __m128i fold = _mm_set1_epi8(both_cases ? 0x20 : 0);
        for (; i + 16 <= n; i += 16) {
            // b | 0x20 is in a..z exactly when b is an ASCII letter (bytes >= 0x80 keep their top bit);
            // (c - 'a') < 26 unsigned is (c + 31) < -102 signed.
            const __m128i c = _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p + i)), fold);
            const __m128i in = _mm_cmplt_epi8(_mm_add_epi8(c, _mm_set1_epi8(31)), _mm_set1_epi8(-102));
            const unsigned out = ~unsigned(_mm_movemask_epi8(in)) & 0xFFFFu;
            if (out) return i + unsigned(__builtin_ctz(out));
        }
#else
        static_cast<void>(both_cases);
#endif
        return i;
    }
    // The end of the longest run from i of code points with any of `mask`.
    size_t run(size_t i, uint8_t mask) const noexcept {
        // a-z have f_letter and f_lower, A-Z f_letter and f_upper.
        if (mask & (f_letter | f_lower)) i = ascii_letters(i, (mask & f_letter) || (mask & f_upper));
        size_t len;
        while (i < n && (at(i, len) & mask)) i += len;
        return i;
    }
    // [^\s\p{L}\p{N}]+ from i (whose code point is in the class).
    size_t run_other(size_t i) const noexcept {
        size_t len;
        while (i < n && !(at(i, len) & (f_letter | f_number | f_space))) i += len;
        return i;
    }
    // \p{N}{1,limit} from i (a number).
    size_t numbers(size_t i, int limit) const noexcept {
        size_t len;
        for (int k = 0; k < limit && i < n && (at(i, len) & f_number); ++k) i += len;
        return i;
    }
    // [^\r\n\p{L}\p{N}]: flags f of the code point at i.
    bool is_prefix(size_t i, uint8_t f) const noexcept { return !(f & (f_letter | f_number)) && !is_crlf(i); }

    // A contraction at i (p[i] == '\''): 's 't 're 've 'm 'll 'd, in either
    // case when `caseless` (where 's also matches U+017F LONG S, as both
    // engines fold it). Its end, or 0.
    size_t contraction(size_t i, bool caseless) const noexcept {
        if (i + 1 >= n) return 0;
        unsigned c = p[i + 1];
        if (caseless) {
            if (c == 0xC5 && i + 2 < n && p[i + 2] == 0xBF) return i + 3;  // U+017F
            if (c >= 'A' && c <= 'Z') c += 32;
        }
        switch (c) {
        case 's':
        case 't':
        case 'm':
        case 'd': return i + 2;
        default: break;
        }
        if (i + 2 >= n) return 0;
        unsigned d = p[i + 2];
        if (caseless && d >= 'A' && d <= 'Z') d += 32;
        if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return i + 3;
        return 0;
    }

    // The white-space alternatives from i (a white-space code point):
    // \s*[\r\n] / \s*[\r\n]+ when `newline_rule` (both end after the last
    // \r or \n of the run), then \s+(?!\S) (the run, less its last code point
    // when a non-space follows), then \s+.
    size_t spaces(size_t i, bool newline_rule) const noexcept {
        size_t j = i, last = i, len;
        size_t newline = 0;
        bool has_newline = false;
        while (j < n && (at(j, len) & f_space)) {
            if (is_crlf(j)) {
                newline = j;
                has_newline = true;
            }
            last = j;
            j += len;
        }
        if (newline_rule && has_newline) return newline + 1;
        if (j == n) return n;
        return last > i ? last : j;
    }

    // r50k/p50k: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    size_t next_gpt2(size_t i) const noexcept {
        if (p[i] == '\'') {
            if (const size_t e = contraction(i, false)) return e;
        }
        if (p[i] == ' ' && i + 1 < n) {
            const uint8_t g = at(i + 1);
            if (g & f_letter) return run(i + 1, f_letter);
            if (g & f_number) return run(i + 1, f_number);
            if (!(g & f_space)) return run_other(i + 1);
        }
        const uint8_t f = at(i);
        if (f & f_letter) return run(i, f_letter);
        if (f & f_number) return run(i, f_number);
        if (!(f & f_space)) return run_other(i);
        return spaces(i, false);
    }

    // cl100k: '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+
    // llama3 and qwen2 differ only in \p{N}{1,3} vs \p{N}, [\r\n]+ after \s*
    // (the same end) and a non-possessive ? (the same pieces: a prefix is
    // never a letter).
    size_t next_cl100k(size_t i, int digits) const noexcept {
        if (p[i] == '\'') {
            if (const size_t e = contraction(i, true)) return e;
        }
        size_t len;
        const uint8_t f = at(i, len);
        if (f & f_letter) return run(i, f_letter);
        if (is_prefix(i, f) && i + len < n && (at(i + len) & f_letter)) return run(i + len, f_letter);
        if (f & f_number) return numbers(i, digits);
        size_t e = 0;
        if (p[i] == ' ' && i + 1 < n && !(at(i + 1) & (f_letter | f_number | f_space))) e = run_other(i + 1);
        else if (!(f & f_space)) e = run_other(i);  // not a letter or number either, by now
        if (e) {
            while (e < n && is_crlf(e)) ++e;
            return e;
        }
        return spaces(i, true);
    }

    // o200k's letter alternatives from s: [A]*[B]+ (upper_first false) or
    // [A]+[B]* (true), A = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}], B = [\p{Ll}\p{Lm}\p{Lo}\p{M}].
    // The end, or 0 when it does not match.
    size_t upper_lower(size_t s, bool upper_first) const noexcept {
        size_t a = s, len, end_of_last_lower = 0;
        uint8_t f = 0;
        while (a < n && ((f = at(a, len)) & f_upper)) {
            if (f & f_lower) end_of_last_lower = a + len;
            a += len;
        }
        if (upper_first) return a > s ? run(a, f_lower) : 0;
        if (a < n && (f & f_lower)) return run(a, f_lower);
        // B+ fails after the greedy A*: A* gives back code points up to the
        // last one that is also in B, which B+ then matches alone.
        return end_of_last_lower;
    }

    // o200k: [^\r\n\p{L}\p{N}]?[A]*[B]+C?|[^\r\n\p{L}\p{N}]?[A]+[B]*C?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
    // with C = (?i:'s|'t|'re|'ve|'m|'ll|'d).
    size_t next_o200k(size_t i) const noexcept {
        size_t len;
        const uint8_t f = at(i, len);
        const bool prefix = is_prefix(i, f) && i + len < n;
        const bool letter_here = (f & (f_upper | f_lower)) != 0;
        size_t e = 0;
        if (prefix) e = upper_lower(i + len, false);
        if (!e && letter_here) e = upper_lower(i, false);
        if (!e && prefix) e = upper_lower(i + len, true);
        if (!e && letter_here) e = upper_lower(i, true);
        if (e) {
            if (e < n && p[e] == '\'') {
                if (const size_t c = contraction(e, true)) return c;
            }
            return e;
        }
        if (f & f_number) return numbers(i, 3);
        if (p[i] == ' ' && i + 1 < n && !(at(i + 1) & (f_letter | f_number | f_space))) e = run_other(i + 1);
        else if (!(f & f_space)) e = run_other(i);
        if (e) {
            while (e < n && (is_crlf(e) || p[e] == '/')) ++e;
            return e;
        }
        return spaces(i, true);
    }
};

}  // namespace

unsigned pretoken_classes(uint32_t cp) { return table().of(cp); }

pretok_kind pretokenizer_for(std::string_view pattern) {
    static const struct {
        const char *preset;
        pretok_kind kind;
    } k_kinds[] = {{"r50k_base", pretok_kind::gpt2},
                   {"cl100k_base", pretok_kind::cl100k},
                   {"o200k_base", pretok_kind::o200k},
                   {"llama3", pretok_kind::llama3},
                   {"qwen2", pretok_kind::qwen2}};
    for (const auto &k : k_kinds) {
        const char *raw = tiktoken_preset_pattern(k.preset);
        const char *spelling = tiktoken_preset_spelling(k.preset);
        if ((raw && pattern == rust_regex_to_pcre2(raw)) || (spelling && pattern == rust_regex_to_pcre2(spelling))) {
            // Build the category table now, while the tokenizer loads: it takes
            // ~10 ms (a utf8proc lookup per code point), which would otherwise
            // fall on the first encode.
            table();
            return k.kind;
        }
    }
    return pretok_kind::none;
}

size_t pretoken_ends(pretok_kind kind, std::string_view text, size_t pos, size_t *ends, size_t cap) {
    const scanner s{reinterpret_cast<const unsigned char *>(text.data()), text.size(), table()};
    size_t count = 0;
    switch (kind) {
    case pretok_kind::gpt2:
        for (; count < cap && pos < s.n; ++count) ends[count] = pos = s.next_gpt2(pos);
        break;
    case pretok_kind::cl100k:
    case pretok_kind::llama3:
        for (; count < cap && pos < s.n; ++count) ends[count] = pos = s.next_cl100k(pos, 3);
        break;
    case pretok_kind::qwen2:
        for (; count < cap && pos < s.n; ++count) ends[count] = pos = s.next_cl100k(pos, 1);
        break;
    case pretok_kind::o200k:
        for (; count < cap && pos < s.n; ++count) ends[count] = pos = s.next_o200k(pos);
        break;
    case pretok_kind::none: break;
    }
    return count;
}

}  // namespace llmkit::tok
