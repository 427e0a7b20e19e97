// Long pieces and UTF-8 validation, against independent references:
// - merge_small (merge_by_ids: pair-table lookups and a blocked minimum, up to
//   rank_table::k_max_id_merge bytes) against merge_large, the heap merge that
//   looks up bytes only and never touches the pair table, on long pieces made
//   of each preset's own tokens and of non-Latin scripts (the pieces of Thai,
//   Lao or CJK text without spaces), and on every long piece of the 60-language
//   UDHR corpus;
// - is_valid_utf8 / check_utf8 (a table-driven automaton, then a walk to find
//   the first bad byte) against utf8proc's decoder.
#include <catch2/catch.hpp>

#include <utf8proc.h>

#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/pretokenize.hpp"
#include "tokenizer/regex.hpp"
#include "tokenizer/tokenizer.hpp"
#include "support/test_support.hpp"

using llmkit::tok::rank_table;

namespace {

// Code points of scripts whose words run together or are long in UTF-8.
const char *const k_script_text[] = {
    "\xe0\xb8\x9b\xe0\xb8\xa3\xe0\xb8\xb0\xe0\xb8\x81\xe0\xb8\xb2\xe0\xb8\xa8",  // Thai
    "\xe0\xba\x9c\xe0\xbb\x89\xe0\xba\x87\xe0\xba\xa5\xe0\xba\xb2\xe0\xba\xa7",  // Lao
    "\xe4\xba\xba\xe4\xba\xba\xe7\x94\x9f\xe8\x80\x8c\xe8\x87\xaa\xe7\x94\xb1",  // Chinese
    "\xe0\xa4\xb8\xe0\xa4\xad\xe0\xa5\x80\x20\xe0\xa4\xae\xe0\xa4\xa8\xe0\xa5\x81",  // Devanagari
    "\xd0\x92\xd1\x81\xd0\xb5\xd0\xbe\xd0\xb1\xd1\x89\xd0\xb0\xd1\x8f",  // Cyrillic
    "\xe1\x9e\x98\xe1\x9e\x93\xe1\x9e\xbb\xe1\x9e\x9f\xe1\x9f\x92\xe1\x9e\x9f",  // Khmer
};

// Random pieces of `min_len`..`max_len` bytes: the bytes of random tokens of
// `table` (so that merges chain into long tokens), copies of the script
// samples, and single letters, cut at the target length (which may split a
// character: merges work on bytes either way).
std::vector<std::string> long_pieces(const rank_table &table, std::mt19937 &rng, size_t count, size_t min_len,
                                     size_t max_len) {
    std::vector<std::string> pieces;
    while (pieces.size() < count) {
        const size_t target = min_len + rng() % (max_len - min_len + 1);
        std::string p;
        while (p.size() < target) {
            const unsigned pick = rng() % 4;
            std::string_view bytes;
            if (pick < 2 && table.bytes(uint32_t(rng() % table.end_rank()), bytes)) p.append(bytes.data(), bytes.size());
            else if (pick == 2) p += k_script_text[rng() % (sizeof k_script_text / sizeof *k_script_text)];
            else p += char('a' + rng() % 26);
        }
        p.resize(target);
        pieces.push_back(p);
    }
    return pieces;
}

}  // namespace

TEST_CASE("UTF-8 validation equals utf8proc's decoder, and the first bad byte is found", "[bpe][utf8]") {
    // utf8proc's walk: the offset of the first sequence it rejects, or the size.
    const auto reference = [](const std::string &s) -> size_t {
        const auto *p = reinterpret_cast<const utf8proc_uint8_t *>(s.data());
        size_t i = 0;
        while (i < s.size()) {
            utf8proc_int32_t cp;
            const utf8proc_ssize_t len = utf8proc_iterate(p + i, utf8proc_ssize_t(s.size() - i), &cp);
            if (len < 0) return i;
            i += size_t(len);
        }
        return s.size();
    };
    // is_valid_utf8 always; check_utf8's message (an exception each time) when `message`.
    const auto check = [&](const std::string &s, bool message) {
        const size_t bad = reference(s);
        INFO("bytes of length " << s.size() << ", utf8proc rejects at " << bad);
        REQUIRE(llmkit::tok::is_valid_utf8(s) == (bad == s.size()));
        if (bad == s.size() || !message) return;
        try {
            llmkit::tok::check_utf8(s, "text");
            FAIL("check_utf8 accepted invalid text");
        } catch (const llmkit::core::error &e) {
            const std::string message = e.what(), tail = "not valid UTF-8 at byte " + std::to_string(bad);
            INFO(message);
            REQUIRE(message.size() >= tail.size());
            REQUIRE(message.compare(message.size() - tail.size(), tail.size(), tail) == 0);
        }
    };
    // Every string of one and two bytes, alone and after 15 ASCII bytes (the
    // validator skips ASCII in blocks of 16, so these straddle a block's end).
    size_t invalid = 0;
    for (unsigned a = 0; a < 256; ++a) {
        for (int b = -1; b < 256; ++b) {
            std::string s(1, char(a));
            if (b >= 0) s += char(b);
            for (size_t pad : {0u, 15u}) check(std::string(pad, 'x') + s, pad == 15 && (a + b) % 8 == 0);
            invalid += reference(s) != s.size();
        }
    }
    CHECK(invalid > 30000);
    // Every lead byte with second, third and fourth bytes at the edges of the
    // ranges that matter (overlongs, surrogates, past U+10FFFF).
    const unsigned edges[] = {0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0};
    for (unsigned lead = 0xC0; lead < 256; ++lead)
        for (unsigned b : edges)
            for (unsigned c : edges)
                for (unsigned d : edges) {
                    const std::string s = {char(lead), char(b), char(c), char(d)};
                    check(s, false);
                    check("0123456789abcdef" + s + "tail of text....", (b + c + d) % 4 == 0);
                }
    // Long random text: valid characters of 1-4 bytes with now and then one
    // byte replaced, so that errors fall at every offset within the blocks.
    std::mt19937 rng(3);
    const uint32_t samples[] = {0x41, 0x20, 0xE9, 0x416, 0x627, 0xE01, 0x4E2D, 0xAC00, 0xFFFD, 0x1F600, 0x10FFFF};
    for (int iter = 0; iter < 3000; ++iter) {
        std::string s;
        const size_t chars = rng() % 80;
        for (size_t k = 0; k < chars; ++k) {
            utf8proc_uint8_t buf[4];
            const utf8proc_ssize_t len = utf8proc_encode_char(utf8proc_int32_t(samples[rng() % 11]), buf);
            s.append(reinterpret_cast<const char *>(buf), size_t(len));
        }
        if (!s.empty() && iter % 2) s[rng() % s.size()] = char(rng() % 256);
        check(s, true);
    }
    // Texts of 256 bytes and more are validated as four quarters side by
    // side, each cut where no continuation byte is: errors anywhere, and in
    // particular right at and around the cuts (n / 4, n / 2, 3n / 4).
    for (int iter = 0; iter < 600; ++iter) {
        std::string s;
        const size_t chars = 64 + rng() % 700;
        for (size_t k = 0; k < chars; ++k) {
            utf8proc_uint8_t buf[4];
            const utf8proc_ssize_t len = utf8proc_encode_char(utf8proc_int32_t(samples[rng() % 11]), buf);
            s.append(reinterpret_cast<const char *>(buf), size_t(len));
        }
        if (iter % 3 == 1) s[rng() % s.size()] = char(rng() % 256);
        if (iter % 3 == 2) {
            const size_t cut = (1 + rng() % 3) * (s.size() / 4);
            const size_t at = std::min(s.size() - 1, cut + rng() % 9 - std::min<size_t>(cut, 4));
            // A stray continuation byte, or a lead byte (or F5-FF) where it does not fit.
            s[at] = char(iter % 2 ? 0x80 + rng() % 0x40 : 0xC0 + rng() % 0x40);
        }
        check(s, iter % 10 == 0);
    }
    // Four continuation bytes in a row where a cut would fall.
    std::string run(1024, 'a');
    for (size_t k = 254; k < 258; ++k) run[k] = char(0x80);
    check(run, true);
}

#ifdef LLMKIT_TEST_DATA_DIR

namespace {

const std::string k_data = LLMKIT_TEST_DATA_DIR;

// merge_small against the byte-only heap on long pieces of `table`'s own
// tokens and scripts: lengths from just over the old scan's 128 bytes to past
// k_max_id_merge (where merge_small hands over to the heap itself), and the
// sizes at that edge exactly.
void check_long_pieces(const char *rank_file, const char *encoding) {
    auto t = llmkit::tok::load_tiktoken(k_data + "/" + rank_file, encoding);
    const rank_table &table = t->ranks();
    REQUIRE(table.has_pair_table());
    std::mt19937 rng(17);
    auto pieces = long_pieces(table, rng, 40, 129, rank_table::k_max_id_merge + 60);
    for (size_t n : {size_t(rank_table::k_max_id_merge - 1), size_t(rank_table::k_max_id_merge),
                     size_t(rank_table::k_max_id_merge + 1)})
        pieces.push_back(long_pieces(table, rng, 1, n, n)[0]);
    size_t bytes = 0;
    for (const std::string &piece : pieces) {
        std::vector<int32_t> by_ids, by_bytes;
        table.merge_small(piece, by_ids);
        table.merge_large(piece, by_bytes);
        INFO(encoding << ": piece of " << piece.size() << " bytes");
        REQUIRE(by_ids == by_bytes);
        bytes += piece.size();
    }
    CHECK(bytes > 20000);
}

}  // namespace

TEST_CASE("long pieces: merging by ids equals the byte heap, r50k_base", "[bpe][long]") {
    check_long_pieces("tiktoken/r50k_base.tiktoken", "r50k_base");
}
TEST_CASE("long pieces: merging by ids equals the byte heap, cl100k_base", "[bpe][long]") {
    check_long_pieces("tiktoken/cl100k_base.tiktoken", "cl100k_base");
}
TEST_CASE("long pieces: merging by ids equals the byte heap, o200k_base", "[bpe][long]") {
    check_long_pieces("tiktoken/o200k_base.tiktoken", "o200k_base");
}
TEST_CASE("long pieces: merging by ids equals the byte heap, llama3", "[bpe][long]") {
    check_long_pieces("tiktoken/llama3/tokenizer.model", "llama3");
}
TEST_CASE("long pieces: merging by ids equals the byte heap, qwen2", "[bpe][long]") {
    check_long_pieces("tiktoken/qwen/qwen.tiktoken", "qwen2");
}

TEST_CASE("every piece of over 64 bytes in 60 languages merges the same by ids and by bytes", "[bpe][long]") {
    // udhr-60lang: Thai, Lao, Khmer, Burmese, Chinese and Japanese lines make
    // pieces of hundreds of bytes under both patterns.
    const std::string text = llmkit_test::read_file(k_data + "/corpus/udhr-60lang.txt");
    for (const char *enc : {"cl100k_base", "o200k_base"}) {
        auto t = llmkit::tok::load_tiktoken(k_data + "/tiktoken/" + enc + ".tiktoken", enc);
        size_t compared = 0, longest = 0;
        llmkit::tok::pretokenize(t->pre_tokenizer_kind(), text, [&](size_t b, size_t e) {
            if (e - b <= 64) return;
            const std::string_view piece = std::string_view(text).substr(b, e - b);
            std::vector<int32_t> by_ids, by_bytes;
            t->ranks().merge_small(piece, by_ids);
            t->ranks().merge_large(piece, by_bytes);
            if (by_ids != by_bytes) FAIL(enc << ": the piece at byte " << b << " merges differently");
            ++compared;
            longest = std::max(longest, e - b);
        });
        CHECK(compared > 100);
        CHECK(longest > 150);
    }
}

#endif  // LLMKIT_TEST_DATA_DIR
