// Whole characters as first parts (rank_table::build_char_table): merge_small
// starts some UTF-8 characters as one part instead of their bytes, where the
// rank table proves that this changes no id. Checked against the plain
// reference algorithm written here (parts as byte strings, merge the adjacent
// pair whose concatenation has the lowest rank, the leftmost on ties; no pair
// table, no memo, no character table):
// - small vocabularies built so that starting a character whole would give
//   other ids, through a token across its left edge, across its right edge,
//   or a 3-byte character built by two merges, or one after a given byte;
//   and the same vocabularies with the ranks that make it safe, where it must
//   start whole;
// - random text of many scripts (tokens that are one character, random code
//   points of 2, 3 and 4 bytes, ASCII, stray bytes) with every preset's rank
//   file, and the characters must start whole somewhere in it.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "support/test_support.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/tokenizer.hpp"

using llmkit::tok::k_no_rank;
using llmkit::tok::rank_table;

namespace {

using llmkit_test::append_utf8;

// The reference: lowest-rank-first merging of byte strings.
std::vector<int32_t> reference_merge(const rank_table &t, const std::string &piece) {
    std::vector<std::string> parts;
    for (char c : piece) parts.emplace_back(1, c);
    for (;;) {
        uint32_t best = k_no_rank;
        size_t at = 0;
        for (size_t k = 0; k + 1 < parts.size(); ++k) {
            const uint32_t r = t.rank(parts[k] + parts[k + 1]);
            if (r < best) best = r, at = k;
        }
        if (best == k_no_rank) break;
        parts[at] += parts[at + 1];
        parts.erase(parts.begin() + std::ptrdiff_t(at) + 1);
    }
    std::vector<int32_t> ids;
    for (const std::string &s : parts) ids.push_back(int32_t(t.rank(s)));
    return ids;
}

std::vector<int32_t> merged(const rank_table &t, const std::string &piece) {
    std::vector<int32_t> out;
    t.merge_small(piece, out);
    return out;
}

// The 256 bytes as ranks 0..255, then `extra` from rank 256 on, in order.
rank_table table_of(const std::vector<std::string> &extra) {
    std::vector<std::pair<std::string, uint32_t>> v;
    for (int b = 0; b < 256; ++b) v.emplace_back(std::string(1, char(b)), uint32_t(b));
    for (const auto &t : extra) v.emplace_back(t, uint32_t(v.size()));
    return rank_table(std::move(v), "test");
}

const std::string e_acute = "\xc3\xa9";      // U+00E9, 2 bytes
const std::string zhong = "\xe4\xb8\xad";    // U+4E2D, 3 bytes

}  // namespace

TEST_CASE("whole characters: a token across the left edge that ranks below the character keeps it in bytes",
          "[bpe][chars]") {
    // "x" + "é" ranks below "é": from bytes, "wx" (257) merges before "é"
    // (258) exists, so "xé" never forms: [wx, é]. Starting "é" whole would
    // merge "xé" (256) first: [w, xé].
    const rank_table unsafe = table_of({"x" + e_acute, "wx", e_acute});
    const std::string piece = "wx" + e_acute;
    CHECK(reference_merge(unsafe, piece) == std::vector<int32_t>{257, 258});
    CHECK(merged(unsafe, piece) == reference_merge(unsafe, piece));
    CHECK(unsafe.count_first_parts(piece) == 4);
    // With "é" ranked first it may start whole, and does; same ids as from bytes.
    const rank_table safe = table_of({e_acute, "wx", "x" + e_acute});
    CHECK(safe.count_first_parts(piece) == 3);
    CHECK(merged(safe, piece) == reference_merge(safe, piece));
    CHECK(reference_merge(safe, piece) == std::vector<int32_t>{257, 256});
}

TEST_CASE("whole characters: a token across the right edge that ranks below the character keeps it in bytes",
          "[bpe][chars]") {
    // "\xa9y" (the end of "é" and a letter) ranks below "é": from bytes it
    // merges first and "é" never forms: [\xc3, \xa9y].
    const rank_table unsafe = table_of({"\xa9y", e_acute});
    const std::string piece = "a" + e_acute + "y";
    CHECK(reference_merge(unsafe, piece) == std::vector<int32_t>{'a', 0xc3, 256});
    CHECK(merged(unsafe, piece) == reference_merge(unsafe, piece));
    CHECK(unsafe.count_first_parts(piece) == 4);
    const rank_table safe = table_of({e_acute, "\xa9y"});
    CHECK(safe.count_first_parts(piece) == 3);
    CHECK(merged(safe, piece) == reference_merge(safe, piece));
}

TEST_CASE("whole characters: a 3-byte character is bounded by its highest inner merge, not its own rank",
          "[bpe][chars]") {
    // 中 = "\xe4\xb8" (258) + "\xad", ranked 256: below its own part (a rank
    // file need not be in training order), so the bound is 258. From bytes,
    // "a\xe4" (257) beats "\xe4\xb8" (258) and 中 never forms:
    // [b, a\xe4, \xb8, \xad]. Bounded by its rank 256 it would look safe (no
    // token across its edges ranks below 257) and give [b, a, 中].
    const rank_table t = table_of({zhong, "a\xe4", "\xe4\xb8"});
    const std::string piece = "ba" + zhong;
    CHECK(reference_merge(t, piece) == std::vector<int32_t>{'b', 257, 0xb8, 0xad});
    CHECK(merged(t, piece) == reference_merge(t, piece));
    CHECK(t.count_first_parts(piece) == 5);
    // In training order (the part first) it starts whole.
    const rank_table ordered = table_of({"\xe4\xb8", zhong, "a\xe4"});
    CHECK(ordered.count_first_parts(piece) == 3);
    CHECK(merged(ordered, piece) == reference_merge(ordered, piece));
    CHECK(reference_merge(ordered, piece) == std::vector<int32_t>{'b', 'a', 257});
}

TEST_CASE("whole characters: the bound by the actual byte before a character", "[bpe][chars]") {
    const std::string o_uml = "\xc3\xb6";  // U+00F6
    // "\xbf\xc3" (258) and "\xa9a" (257) rank below ö (259), so the bounds
    // that ignore the neighbouring byte fail at the edge é|ö; but the byte
    // before ö is \xa9, and no token holds \xa9 and then a prefix of ö.
    const rank_table t = table_of({e_acute, "\xa9" "a", "\xbf\xc3", o_uml});
    const std::string piece = e_acute + o_uml;
    CHECK(t.count_first_parts(piece) == 2);
    CHECK(merged(t, piece) == reference_merge(t, piece));
    CHECK(reference_merge(t, piece) == std::vector<int32_t>{256, 259});
    // With "\xa9\xc3" (258) instead it may not: after a stray \xa9 that token
    // forms before ö and splits it.
    const rank_table u = table_of({e_acute, "\xa9" "a", "\xa9\xc3", o_uml});
    const std::string stray = "\xa9" + o_uml;
    CHECK(reference_merge(u, stray) == std::vector<int32_t>{258, 0xb6});
    CHECK(merged(u, stray) == reference_merge(u, stray));
    CHECK(u.count_first_parts(stray) == 3);
    CHECK(u.count_first_parts(piece) == 3);
    CHECK(merged(u, piece) == reference_merge(u, piece));
}

TEST_CASE("whole characters: an overlong 3-byte form is not the 2-byte character of its code point", "[bpe][chars]") {
    // Characters below U+10000 are found by code point (bmp_chars_), but
    // "\xe0\x82\x80" (an overlong U+0080: only the bytes are checked, so
    // it is a character) shares U+0080 with "\xc2\x80": it must be found
    // by its bytes, as its own token. Both start whole here.
    const std::string two = "\xc2\x80", overlong = "\xe0\x82\x80", surrogate = "\xed\xa0\x80";
    const rank_table t = table_of({two, "\xe0\x82", overlong, "\xed\xa0", surrogate});
    for (const std::string &piece : {overlong + two, two + overlong, "a" + overlong + "b" + two, surrogate + overlong}) {
        INFO("piece of " << piece.size() << " bytes");
        CHECK(merged(t, piece) == reference_merge(t, piece));
    }
    CHECK(merged(t, overlong + two) == std::vector<int32_t>{258, 256});
    CHECK(t.count_first_parts(overlong + two) == 2);
    CHECK(merged(t, surrogate + two) == std::vector<int32_t>{260, 256});
}

TEST_CASE("whole characters: a piece's leading byte and character start as one token where that is safe", "[bpe][chars]") {
    // " é" (258) is built as é (256) then " " + é; nothing crosses its right
    // edge, so " éa" starts from [" é", a] (the bytes and é: [" ", é, a]).
    const rank_table safe = table_of({e_acute, " \xc3", " " + e_acute});
    for (const std::string &piece : {" " + e_acute + "a", " " + e_acute + e_acute, " " + e_acute, "." + e_acute + "a"}) {
        INFO("piece of " << piece.size() << " bytes");
        CHECK(merged(safe, piece) == reference_merge(safe, piece));
    }
    CHECK(safe.count_first_parts(" " + e_acute + "a") == 2);
    CHECK(merged(safe, " " + e_acute + "a") == std::vector<int32_t>{258, 'a'});
    // Here " é" (258) forms only after " \xc3" (256), and "\xa9a" (257)
    // takes é's last byte first: [" \xc3", "\xa9a"]. Starting " é" whole
    // would give [" é", a]: the token across its right edge ranks below its
    // last merge, so it starts in bytes.
    const rank_table unsafe = table_of({" \xc3", "\xa9" "a", " " + e_acute, e_acute});
    const std::string piece = " " + e_acute + "a";
    CHECK(reference_merge(unsafe, piece) == std::vector<int32_t>{256, 257});
    CHECK(merged(unsafe, piece) == reference_merge(unsafe, piece));
    CHECK(unsafe.count_first_parts(piece) == 4);
}

#ifdef LLMKIT_TEST_DATA_DIR

namespace {

// Pieces of 2..max_len bytes: mostly characters of one script at a time (as
// in words), drawn from the table's one-character tokens, from script blocks
// (Latin-1, Greek, Cyrillic, Arabic, Devanagari, Thai, CJK, Hangul, emoji)
// and ASCII letters; a few with a leading space or punctuation, a stray
// continuation byte, or a character cut short.
std::vector<std::string> multibyte_pieces(const rank_table &t, std::mt19937 &rng, size_t count, size_t max_len) {
    std::vector<std::string> one_char;
    for (uint32_t r = 0; r < t.end_rank(); ++r) {
        std::string_view b;
        if (t.bytes(r, b) && b.size() >= 2 && b.size() <= 4 && (static_cast<unsigned char>(b[0]) >= 0xC2) &&
            (static_cast<unsigned char>(b[0]) < 0xE0 ? 2u : static_cast<unsigned char>(b[0]) < 0xF0 ? 3u : 4u) ==
                b.size())
            one_char.emplace_back(b);
    }
    REQUIRE(one_char.size() > 100);
    const uint32_t blocks[][2] = {{0xC0, 0x17F},   {0x391, 0x3C9},   {0x410, 0x44F},   {0x627, 0x64A},
                                  {0x905, 0x94D},  {0xE01, 0xE4E},   {0x4E00, 0x4FFF}, {0xAC00, 0xAD00},
                                  {0x1F600, 0x1F64F}};
    std::vector<std::string> pieces;
    while (pieces.size() < count) {
        const size_t target = 2 + rng() % (max_len - 1);
        const auto &block = blocks[rng() % (sizeof blocks / sizeof *blocks)];
        std::string p;
        if (rng() % 4 == 0) p += " .,'("[rng() % 5];
        while (p.size() < target) {
            const unsigned pick = rng() % 10;
            if (pick < 5) p += one_char[rng() % one_char.size()];
            else if (pick < 8) append_utf8(p, block[0] + rng() % (block[1] - block[0] + 1));
            else if (pick < 9) p += char('a' + rng() % 26);
            else p += rng() % 2 ? char(0x80 + rng() % 64) : char(0xE0 + rng() % 16);  // stray or cut short
        }
        pieces.push_back(p);
    }
    return pieces;
}

void check_preset(const char *rank_file, const char *encoding) {
    auto tok = llmkit::tok::load_tiktoken(std::string(LLMKIT_TEST_DATA_DIR) + "/" + rank_file, encoding);
    const rank_table &t = tok->ranks();
    REQUIRE(t.has_pair_table());
    std::mt19937 rng(29);
    size_t bytes = 0, parts = 0;
    for (const std::string &piece : multibyte_pieces(t, rng, 1500, 40)) {
        INFO(encoding << ": piece of " << piece.size() << " bytes");
        REQUIRE(merged(t, piece) == reference_merge(t, piece));
        bytes += piece.size();
        parts += t.count_first_parts(piece);
    }
    // Some characters did start whole (each saves 1 to 3 parts).
    INFO(encoding << ": " << parts << " first parts for " << bytes << " bytes");
    CHECK(parts < bytes - bytes / 20);
}

}  // namespace

TEST_CASE("whole characters: random multi-byte text merges as the reference, r50k_base", "[bpe][chars]") {
    check_preset("tiktoken/r50k_base.tiktoken", "r50k_base");
}
TEST_CASE("whole characters: random multi-byte text merges as the reference, p50k_base", "[bpe][chars]") {
    check_preset("tiktoken/p50k_base.tiktoken", "p50k_base");
}
TEST_CASE("whole characters: random multi-byte text merges as the reference, cl100k_base", "[bpe][chars]") {
    check_preset("tiktoken/cl100k_base.tiktoken", "cl100k_base");
}
TEST_CASE("whole characters: random multi-byte text merges as the reference, o200k_base", "[bpe][chars]") {
    check_preset("tiktoken/o200k_base.tiktoken", "o200k_base");
}
TEST_CASE("whole characters: random multi-byte text merges as the reference, llama3", "[bpe][chars]") {
    check_preset("tiktoken/llama3/tokenizer.model", "llama3");
}
TEST_CASE("whole characters: random multi-byte text merges as the reference, qwen2", "[bpe][chars]") {
    check_preset("tiktoken/qwen/qwen.tiktoken", "qwen2");
}

#endif  // LLMKIT_TEST_DATA_DIR
