// The hand-written pre-tokenizers (src/tokenizer/pretokenize.cpp) against
// PCRE2 running the presets' patterns: the same pieces on the corpora and on
// random strings drawn from an alphabet that exercises every rule of every
// pattern. Random code points are kept to those whose classes PCRE2's tables
// (Unicode 14) and the scanners' (utf8proc's Unicode 15.0 plus tiktoken's
// 15.1/16.0 additions) agree on, so that a difference is a difference of the
// rules, not of the Unicode version.
#include <catch2/catch.hpp>

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "support/test_support.hpp"
#include "tokenizer/pretokenize.hpp"
#include "tokenizer/regex.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/train.hpp"

namespace tok = llmkit::tok;

namespace {

using llmkit_test::append_utf8;

const char *const k_presets[] = {"r50k_base", "cl100k_base", "o200k_base", "llama3", "qwen2"};

using pieces = std::vector<std::pair<size_t, size_t>>;

pieces regex_pieces(const tok::regex &re, std::string_view text) {
    pieces out;
    re.for_each_match(text, [&](size_t b, size_t e) { out.emplace_back(b, e); });
    return out;
}

pieces scanner_pieces(tok::pretok_kind kind, std::string_view text) {
    pieces out;
    tok::pretokenize(kind, text, [&](size_t b, size_t e) { out.emplace_back(b, e); });
    return out;
}

std::string show(std::string_view text, const pieces &p, size_t from) {
    std::string out;
    for (size_t k = from; k < p.size() && k < from + 6; ++k)
        out += "[" + std::string(text.substr(p[k].first, p[k].second - p[k].first)) + "]";
    return out;
}

struct compiled {
    std::unique_ptr<tok::regex> re;
    tok::pretok_kind kind;
};

const compiled &compiled_preset(const char *preset) {
    static thread_local std::vector<std::pair<std::string, compiled>> cache;
    for (const auto &c : cache)
        if (c.first == preset) return c.second;
    const std::string pattern = tok::rust_regex_to_pcre2(tok::tiktoken_preset_pattern(preset));
    cache.emplace_back(preset, compiled{std::make_unique<tok::regex>(pattern), tok::pretokenizer_for(pattern)});
    return cache.back().second;
}

// Empty when the pieces agree, else a description of the first difference.
std::string compare(const char *preset, std::string_view text) {
    const compiled &c = compiled_preset(preset);
    const tok::regex *re = c.re.get();
    const tok::pretok_kind kind = c.kind;
    const pieces want = regex_pieces(*re, text), got = scanner_pieces(kind, text);
    if (want == got) return {};
    size_t k = 0;
    while (k < want.size() && k < got.size() && want[k] == got[k]) ++k;
    const size_t from = k > 2 ? k - 2 : 0;
    std::string hex;
    const size_t at = k < want.size() ? want[k].first : (k < got.size() ? got[k].first : 0);
    for (size_t i = at; i < text.size() && i < at + 24; ++i) {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%02x", unsigned(static_cast<unsigned char>(text[i])));
        hex += buf;
        hex += ' ';
    }
    return std::string(preset) + ": piece " + std::to_string(k) + " at byte " + std::to_string(at) + " (" + hex +
           ")\n  PCRE2:   " + show(text, want, from) + "\n  scanner: " + show(text, got, from);
}

// The classes PCRE2 gives each code point, as pretoken_classes numbers them.
std::vector<uint8_t> pcre2_classes() {
    static const char *const k_class_patterns[] = {R"(\p{L})", R"(\p{N})", R"([\t-\r\x{85}\p{Z}])",
                                                   R"([\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}])",
                                                   R"([\p{Ll}\p{Lm}\p{Lo}\p{M}])"};
    std::string all;
    std::vector<uint32_t> cp_at;  // byte offset -> code point (at starts)
    for (uint32_t cp = 0; cp < 0x110000; ++cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        const size_t at = all.size();
        append_utf8(all, cp);
        cp_at.resize(all.size());
        cp_at[at] = cp;
    }
    std::vector<uint8_t> classes(0x110000, 0);
    for (unsigned bit = 0; bit < 5; ++bit) {
        tok::regex re(k_class_patterns[bit]);
        re.for_each_match(all, [&](size_t b, size_t) { classes[cp_at[b]] |= uint8_t(1u << bit); });
    }
    return classes;
}

}  // namespace

TEST_CASE("the presets' patterns select their scanners; others keep the regex", "[pretok]") {
    for (const char *preset : k_presets) {
        CHECK(tok::pretokenizer_for(tok::rust_regex_to_pcre2(tok::tiktoken_preset_pattern(preset))) !=
              tok::pretok_kind::none);
    }
    CHECK(tok::pretokenizer_for(tok::rust_regex_to_pcre2(tok::tiktoken_preset_pattern("p50k_base"))) ==
          tok::pretok_kind::gpt2);
    CHECK(tok::pretokenizer_for(R"(\p{L}+|\s+)") == tok::pretok_kind::none);
    // Unrewritten \s is not the same pattern.
    CHECK(tok::pretokenizer_for(tok::tiktoken_preset_pattern("cl100k_base")) == tok::pretok_kind::none);
}

namespace {

// The pieces a translated pattern cuts text into.
std::vector<std::string> dialect_pieces(const std::string &rust_pattern, std::string_view text) {
    const tok::regex re(tok::rust_regex_to_pcre2(rust_pattern), true);
    std::vector<std::string> out;
    re.for_each_match(text, [&](size_t b, size_t e) { out.emplace_back(text.substr(b, e - b)); });
    return out;
}

}  // namespace

TEST_CASE("tiktoken's regex dialect (Rust's regex crate) spelled for PCRE2", "[pretok][dialect]") {
    using v = std::vector<std::string>;
    // \w holds marks and connector punctuation (U+0301, U+203F); PCRE2's does not.
    CHECK(dialect_pieces(R"(\w+|\W)", "cafe\xCC\x81 a\xE2\x80\xBF" "b") == v{"cafe\xCC\x81", " ", "a\xE2\x80\xBF" "b"});
    CHECK(dialect_pieces(R"(\b\w)", "e\xCC\x81le x") == v{"e", "x"});
    CHECK(dialect_pieces(R"(\h+|\S+|\s)", "beefxyz") == v{"beef", "xyz"});  // \h: hex digit
    CHECK(dialect_pieces(R"([[:alpha:]]+|.)", "Stra\xC3\x9F" "e") == v{"Stra", "\xC3\x9F", "e"});  // ASCII only
    CHECK(dialect_pieces(R"([\p{L}&&[^a-c]]+|.)", "abcdef") == v{"a", "b", "c", "def"});
    CHECK(dialect_pieces(R"([a-f--[c-d]]+|.)", "abcdef") == v{"ab", "c", "d", "ef"});
    CHECK(dialect_pieces(R"([a-d~~c-f]+|.)", "abcdef") == v{"ab", "c", "d", "ef"});
    CHECK(dialect_pieces(R"([a[x-z]]+|.)", "axzyb") == v{"axzy", "b"});
    CHECK(dialect_pieces(R"([^a[b]]+|.)", "abcab") == v{"a", "b", "c", "a", "b"});
    CHECK(dialect_pieces(R"(\p{Han}|.)", "\xE3\x80\x82") == v{"\xE3\x80\x82"});  // U+3002: Script Common
    CHECK(dialect_pieces(R"(\p{Han}+)", "\xE3\x80\x82\xE4\xB8\x96") == v{"\xE4\xB8\x96"});
    CHECK(dialect_pieces(R"(\p{Uppercase_Letter}+|\p{gc=Ll}+|\p{Is_Greek})", "ABcd\xCD\xBA") == v{"AB", "cd", "\xCD\xBA"});
    CHECK(dialect_pieces(R"(\w+$|.|\n)", "ab\n") == v{"a", "b", "\n"});  // $: end of text only
    CHECK(dialect_pieces(R"((?m)\w+$|.|\n)", "ab\n") == v{"ab", "\n"});
    CHECK(dialect_pieces(R"(\u0041|\U00000062)", "Ab") == v{"A", "b"});
    // What it writes translates to itself (tokenizers rebuilt from pattern() are the same).
    for (const char *p : {R"(\w+|\W)", R"([\p{L}&&[^\p{Han}]]+)", R"([[:^alpha:]\W\d]+)", R"(\b\B\<\>)",
                          R"(\p{Greek}\P{^Han}\pL\p{gc=Lu})", R"([\s\S\h\H]|[^\w--x]|[]a-])", R"(\u0041\x{42}[\u0043-\u0044])"}) {
        const std::string once = tok::rust_regex_to_pcre2(p);
        CHECK(tok::rust_regex_to_pcre2(once) == once);
        CHECK_NOTHROW(tok::regex(once, true));
    }
    // Unterminated classes and escapes are named.
    for (const char *p : {"[abc", "[a-", "\\p{Han", "abc\\", "[a&&[b]"}) {
        INFO(p);
        CHECK_THROWS_WITH(tok::rust_regex_to_pcre2(p), Catch::Contains("pre-tokenizer pattern"));
    }
    // Oniguruma's dialect (tokenizer.json): its \w takes U+00B2 outside a class but not inside, ^ and $ are
    // per line, (?m) is dot-all, classes nest (BLOOM's pattern), -- is no operator.
    const auto onig = [](const std::string &p, std::string_view text) {
        const tok::regex re(tok::oniguruma_to_pcre2(p));
        std::vector<std::string> out;
        re.for_each_match(text, [&](size_t b, size_t e) { out.emplace_back(text.substr(b, e - b)); });
        return out;
    };
    CHECK(onig(R"(\w+)", "a\xC2\xB2" "b c") == v{"a\xC2\xB2" "b", "c"});
    CHECK(onig(R"([\w]+)", "a\xC2\xB2" "b") == v{"a", "b"});
    CHECK(onig(R"(^\w|\w$)", "ab\ncd") == v{"a", "b", "c", "d"});
    CHECK(onig(R"((?m)a.b)", "a\nb") == v{"a\nb"});
    CHECK(onig(R"( ?[^(\s|[.,!?])]+)", "hi, yo(u)") == v{"hi", " yo", "u"});
    CHECK(onig(R"([a--]+)", "a-b") == v{"a-"});
    CHECK(onig(R"([[:punct:]]+|[[:alpha:]]+)", "a\xC2\xA2!") == v{"a", "\xC2\xA2!"});  // U+00A2: a symbol
    CHECK(tok::oniguruma_to_pcre2(tok::oniguruma_to_pcre2(R"(^[[:graph:]\w&&[^x]]+$)")) ==
          tok::oniguruma_to_pcre2(R"(^[[:graph:]\w&&[^x]]+$)"));

    // ~~ doubles the class at each step (found by fuzz_pattern): a long chain is refused, not spelled out.
    CHECK_THROWS_WITH(tok::rust_regex_to_pcre2("[a" + std::string(80, '~') + "b]"),
                      Catch::Contains("grows past 1048576 bytes"));
    CHECK_NOTHROW(tok::rust_regex_to_pcre2("[a~~b~~c~~d]"));
}

TEST_CASE("scanner classes equal PCRE2's wherever PCRE2 (Unicode 14) assigns the code point", "[pretok]") {
    const std::vector<uint8_t> want = pcre2_classes();
    size_t differ = 0, differ_assigned = 0;
    for (uint32_t cp = 0; cp < 0x110000; ++cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        if (tok::pretoken_classes(cp) == want[cp]) continue;
        ++differ;
        if (want[cp] != 0) {  // a code point PCRE2 classes, classed otherwise
            ++differ_assigned;
            if (differ_assigned <= 5) {
                char buf[64];
                std::snprintf(buf, sizeof buf, "U+%04X: PCRE2 %u, scanner %u", cp, unsigned(want[cp]),
                              tok::pretoken_classes(cp));
                UNSCOPED_INFO(buf);
            }
        }
    }
    // What differs are code points assigned after Unicode 14 (unclassed in
    // PCRE2): Unicode 15.0 (utf8proc's tables) and 15.1/16.0 (the overrides
    // that follow tiktoken).
    CHECK(differ_assigned == 0);
    CHECK(differ < 12000);
}

#ifdef LLMKIT_TEST_DATA_DIR
TEST_CASE("scanners give PCRE2's pieces on the corpora", "[pretok]") {
    const std::string dir = std::string(LLMKIT_TEST_DATA_DIR) + "/corpus/";
    for (const char *name : {"mixed-slice.txt", "udhr-60lang.txt", "tinyshakespeare.txt"}) {
        std::FILE *f = std::fopen((dir + name).c_str(), "rb");
        REQUIRE(f != nullptr);
        std::string text;
        char buf[1 << 16];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
        std::fclose(f);
        for (const char *preset : k_presets) {
            INFO(name);
            CHECK(compare(preset, text) == "");
        }
    }
}
#endif

// The scanners find the end of a run of ASCII letters 16 bytes at a time
// where 16 bytes remain: every ASCII byte right after runs of 1 to 40
// letters (lower, upper and mixed case), with and without 16 bytes after it.
TEST_CASE("scanners give PCRE2's pieces where a long run of ASCII letters ends", "[pretok]") {
    const std::string cases[3] = {"abcdefghijklmnopqrstuvwxyzabcdefghijklmn", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMN",
                                  "aBcDeFgHiJkLmNoPqRsTuVwXyZAbCdEfGhIjKlMn"};
    size_t failures = 0;
    for (const std::string &letters : cases)
        for (size_t run = 1; run <= letters.size(); ++run)
            for (int b = 1; b < 128; ++b)
                for (const char *tail : {"", " and then some more words"})
                    for (const char *lead : {"", " "}) {
                        const std::string text = lead + letters.substr(0, run) + char(b) + tail;
                        for (const char *preset : k_presets) {
                            const std::string diff = compare(preset, text);
                            if (!diff.empty() && ++failures <= 5) FAIL_CHECK(diff);
                        }
                    }
    CHECK(failures == 0);
}

TEST_CASE("scanners give PCRE2's pieces on random strings that stress every rule", "[pretok]") {
    std::vector<uint8_t> pcre = pcre2_classes();
    // Single code points that each rule cares about.
    std::vector<uint32_t> alphabet = {
        'a', 'b', 'e', 'z', 'A', 'E', 'Z', 's', 't', 'r', 'v', 'm', 'l', 'd', 'S', 'T', 'R', 'V', 'M', 'L', 'D', '0',
        '5', '9', '\'', '\'', '\'', ' ', ' ', ' ', ' ', '\t', '\r', '\n', '\n', 0x0B, 0x0C, 0x85, 0xA0, 0x1680,
        0x2000, 0x2028, 0x2029, 0x202F, 0x3000, 0x180E, 0x200B, 0xFEFF, '/', '/', '.', ',', '!', '-', '_', '$', '+',
        '(', '"', 0x2019, 0xA7, 0xB5,
        0x0301, 0x0300, 0x0903, 0x20DD, 0x0488,        // Mn, Mn, Mc, Me, Me
        0x02B0, 0x3005, 0x1D2C, 0xFF70,                // Lm
        0x01C5, 0x01C8, 0x1F88,                        // Lt
        0x05D0, 0x4E00, 0x3042, 0xAC00, 0x0E01,        // Lo
        0x00E9, 0x00C9, 0x00DF, 0x03B1, 0x0391, 0x0430, 0x0410, 0x017F, 0x212A, 0x1E9E,  // Ll/Lu
        0x0660, 0x0966, 0xFF11, 0x2160, 0x00B2, 0x00BD, 0x2460, 0x1D7CE, 0x10107,         // Nd, Nl, No
        0x00A9, 0x20AC, 0x2603, 0x1F600, 0x1F44D, 0x1F3FD, 0x200D, 0xFE0F, 0x2764,       // symbols, emoji, ZWJ
        0x00AD, 0x0600, 0xE000, 0xFFFD, 0x10FFFD, 0x1D400, 0x1D41A, 0x10400, 0x10428};
    std::mt19937 rng(20261130);
    // Plus random code points from every plane, where the tables agree.
    for (int k = 0; k < 400; ++k) {
        uint32_t cp = k % 2 ? rng() % 0x3000 : rng() % 0x30000;
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        alphabet.push_back(cp);
    }
    std::vector<uint32_t> usable;
    for (uint32_t cp : alphabet)
        if (tok::pretoken_classes(cp) == pcre[cp]) usable.push_back(cp);
    REQUIRE(usable.size() > 150);
    // A smaller alphabet of the characters the rules single out, so that
    // their combinations (contractions, space runs before letters, marks after
    // capitals) come up often.
    const std::vector<uint32_t> dense = {'a', 'A', 's', 'S', 'l', 'L', 'e', 'r', 'v', 't', '\'', ' ', ' ', '\t', '\r',
                                         '\n', 0xA0, 0x3000, 0x0301, 0x02B0, 0x01C5, 0x4E00, 0x00E9, 0x00C9, '1',
                                         0x0660, '/', '.', 0x1F600, 0x017F};
    const int rounds = 150000;
    size_t failures = 0;
    for (int round = 0; round < rounds && failures < 5; ++round) {
        const std::vector<uint32_t> &from = round % 2 ? usable : dense;
        std::string text;
        const size_t len = 1 + rng() % 24;
        for (size_t i = 0; i < len; ++i) append_utf8(text, from[rng() % from.size()]);
        for (const char *preset : k_presets) {
            const std::string diff = compare(preset, text);
            if (!diff.empty()) {
                ++failures;
                FAIL_CHECK(diff);
                break;
            }
        }
    }
    CHECK(failures == 0);
}
