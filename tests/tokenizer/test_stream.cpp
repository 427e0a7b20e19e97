// Streaming decode: chunks joined equal the one-shot decode with U+FFFD for
// invalid UTF-8, for every split of the ids; the replacement follows Unicode's
// "maximal subpart" rule (the example of Unicode 15, section 3.9, U+FFFD substitution);
// the C API's buffer protocol consumes nothing on failure.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "llmkit/llmkit.hpp"
#include "tokenizer/base64.hpp"
#include "tokenizer/stream_decoder.hpp"

using llmkit::tok::utf8_replace_invalid;

namespace {

std::string replaced(const std::string &bytes) {
    std::string out;
    REQUIRE(utf8_replace_invalid(bytes, true, out) == bytes.size());
    return out;
}

const std::string k_fffd = "\xEF\xBF\xBD";

}  // namespace

TEST_CASE("U+FFFD per maximal subpart, as the Unicode standard's example", "[stream]") {
    // Unicode 15.0 section 3.9, table 3-8: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64
    // -> a FFFD FFFD FFFD b FFFD c FFFD FFFD d (F1 80 80, E1 80 and C2 are
    // maximal subparts; 80 and BF are each one). Python's decode agrees.
    const std::string in = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
    CHECK(replaced(in) == "a" + k_fffd + k_fffd + k_fffd + "b" + k_fffd + "c" + k_fffd + k_fffd + "d");
    // Surrogates, overlongs and bytes above U+10FFFF never start a valid prefix longer than the lead.
    CHECK(replaced("\xED\xA0\x80") == k_fffd + k_fffd + k_fffd);
    CHECK(replaced("\xC0\xAF") == k_fffd + k_fffd);
    CHECK(replaced("\xE0\x80\xAF") == k_fffd + k_fffd + k_fffd);
    CHECK(replaced("\xF4\x90\x80\x80") == k_fffd + k_fffd + k_fffd + k_fffd);
    CHECK(replaced("\xF5") == k_fffd);
    // A truncated but valid prefix at the end of the stream is one U+FFFD.
    CHECK(replaced("ab\xF0\x9F\x98") == "ab" + k_fffd);
    // Valid text passes unchanged, 4-byte characters included.
    CHECK(replaced("h\xC3\xA9llo \xF0\x9F\x98\x80 \xE4\xB8\xAD") == "h\xC3\xA9llo \xF0\x9F\x98\x80 \xE4\xB8\xAD");
    // Not final: the incomplete tail is held back, a definitely invalid byte is not.
    std::string out;
    CHECK(utf8_replace_invalid("ab\xF0\x9F\x98", false, out) == 2);
    CHECK(out == "ab");
    out.clear();
    CHECK(utf8_replace_invalid("a\xF0\x9F\x41", false, out) == 4);
    CHECK(out == "a" + k_fffd + "A");
}

TEST_CASE("random bytes: every split into two or many chunks gives the one-shot result", "[stream]") {
    std::mt19937 rng(7);
    // Bytes biased towards UTF-8 lead and continuation bytes, so that partial
    // sequences and invalid subparts are frequent.
    const unsigned char alphabet[] = {'a', ' ', 0x80, 0x8F, 0x9F, 0xA0, 0xBF, 0xC2, 0xC3, 0xDF, 0xE0, 0xE1,
                                      0xED, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xC0, 0xFF, 0x90};
    for (int trial = 0; trial < 400; ++trial) {
        std::string bytes(size_t(rng() % 24), '\0');
        for (char &c : bytes) c = char(alphabet[rng() % sizeof alphabet]);
        const std::string whole = replaced(bytes);
        for (size_t cut = 0; cut <= bytes.size(); ++cut) {
            std::string out;
            const std::string first = bytes.substr(0, cut);
            const size_t used = utf8_replace_invalid(first, false, out);
            REQUIRE(bytes.size() - used >= bytes.size() - cut);
            REQUIRE(cut - used <= 3);
            utf8_replace_invalid(first.substr(used) + bytes.substr(cut), true, out);
            INFO("trial " << trial << " cut " << cut);
            REQUIRE(out == whole);
        }
    }
}

TEST_CASE("stream decoder over a real tokenizer: byte-at-a-time tokens", "[stream]") {
    // The 256 single-byte tokens of a tiny rank file let the test feed any byte sequence as ids.
    std::vector<std::pair<std::string, uint32_t>> ranks;
    for (int b = 0; b < 256; ++b) ranks.emplace_back(std::string(1, char(b)), uint32_t(b));
    ranks.emplace_back("\xF0\x9F", 256);  // half an emoji
    llmkit::tok::byte_level_bpe tok(std::move(ranks), "\\X", {{"<|end|>", 300}}, "test");
    std::mt19937 rng(11);
    for (int trial = 0; trial < 300; ++trial) {
        std::vector<int32_t> ids(size_t(rng() % 20));
        for (int32_t &id : ids) {
            const unsigned r = rng() % 10;
            id = r == 0 ? 256 : r == 1 ? 300 : int32_t(r < 5 ? 0x80 + rng() % 0x80 : rng() % 256);
        }
        std::string bytes;
        tok.decode(ids.data(), ids.size(), bytes);
        const std::string whole = replaced(bytes);
        // Random chunking, and one id at a time.
        for (int mode = 0; mode < 2; ++mode) {
            llmkit::tok::stream_decoder dec(tok);
            std::string out;
            for (size_t i = 0; i < ids.size();) {
                const size_t k = mode == 0 ? 1 + rng() % 4 : 1;
                const size_t n = std::min(k, ids.size() - i);
                const size_t before = out.size();
                dec.feed(ids.data() + i, n, out);
                // Every chunk is valid UTF-8 on its own.
                std::string check;
                utf8_replace_invalid(out.substr(before), true, check);
                REQUIRE(check == out.substr(before));
                REQUIRE(dec.pending() <= 3);
                i += n;
            }
            dec.flush(out);
            REQUIRE(out == whole);
            REQUIRE(dec.pending() == 0);
        }
    }
}

namespace {

// A rank file of the 256 single bytes (ids = byte values), removed at the end.
struct byte_rank_file {
    std::string path = "llmkit_stream_test_" + std::to_string(reinterpret_cast<uintptr_t>(this)) + ".tiktoken";
    byte_rank_file() {
        std::ofstream f(path, std::ios::binary);
        for (int b = 0; b < 256; ++b) f << llmkit::tok::base64_encode(std::string(1, char(b))) << ' ' << b << '\n';
    }
    ~byte_rank_file() { std::remove(path.c_str()); }
};

}  // namespace

TEST_CASE("C API and C++ face: size query and short buffers consume nothing; bad ids leave the state",
          "[stream][errors]") {
    byte_rank_file file;
    const auto tok = llmkit::tokenizer::from_tiktoken(file.path, "gpt2");
    llmkit_tokenizer_decoder *d = nullptr;
    REQUIRE(llmkit_tokenizer_decoder_new(&d, tok.get()) == LLMKIT_OK);
    const int32_t emoji[] = {0xF0, 0x9F, 0x98, 0x80, 'a'};  // U+1F600 then 'a'
    char buf[32];
    size_t needed = 99;
    REQUIRE(llmkit_tokenizer_decoder_feed(d, emoji, 2, buf, sizeof buf, &needed) == LLMKIT_OK);
    CHECK(needed == 0);
    // A size query consumes nothing: asking twice gives the same answer.
    REQUIRE(llmkit_tokenizer_decoder_feed(d, emoji + 2, 3, nullptr, 0, &needed) == LLMKIT_OK);
    CHECK(needed == 5);
    REQUIRE(llmkit_tokenizer_decoder_feed(d, emoji + 2, 3, nullptr, 0, &needed) == LLMKIT_OK);
    CHECK(needed == 5);
    CHECK(llmkit_tokenizer_decoder_feed(d, emoji + 2, 3, buf, 4, &needed) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    CHECK(needed == 5);
    // An id that names no token fails and keeps nothing of the call.
    const int32_t bad[] = {0x98, 50256 + 7};
    CHECK(llmkit_tokenizer_decoder_feed(d, bad, 2, buf, sizeof buf, &needed) == LLMKIT_ERROR_OUT_OF_RANGE);
    CHECK(std::string(llmkit_last_error_message()).find("ids[1]") != std::string::npos);
    REQUIRE(llmkit_tokenizer_decoder_feed(d, emoji + 2, 3, buf, sizeof buf, &needed) == LLMKIT_OK);
    CHECK(std::string(buf, needed) == "\xF0\x9F\x98\x80" "a");
    // Flush of an incomplete character: a size query, a short buffer, then U+FFFD.
    REQUIRE(llmkit_tokenizer_decoder_feed(d, emoji, 3, buf, sizeof buf, &needed) == LLMKIT_OK);
    CHECK(needed == 0);
    REQUIRE(llmkit_tokenizer_decoder_flush(d, nullptr, 0, &needed) == LLMKIT_OK);
    CHECK(needed == 3);
    CHECK(llmkit_tokenizer_decoder_flush(d, buf, 2, &needed) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    REQUIRE(llmkit_tokenizer_decoder_flush(d, buf, sizeof buf, &needed) == LLMKIT_OK);
    CHECK(std::string(buf, needed) == k_fffd);
    REQUIRE(llmkit_tokenizer_decoder_flush(d, buf, sizeof buf, &needed) == LLMKIT_OK);
    CHECK(needed == 0);  // flush reset the decoder
    llmkit_tokenizer_decoder_free(d);

    // Null pointers.
    CHECK(llmkit_tokenizer_decoder_new(nullptr, tok.get()) == LLMKIT_ERROR_NULL_POINTER);
    d = reinterpret_cast<llmkit_tokenizer_decoder *>(&needed);
    CHECK(llmkit_tokenizer_decoder_new(&d, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(d == nullptr);
    CHECK(llmkit_tokenizer_decoder_feed(nullptr, emoji, 1, nullptr, 0, &needed) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_tokenizer_decoder_flush(nullptr, nullptr, 0, &needed) == LLMKIT_ERROR_NULL_POINTER);
    llmkit_tokenizer_decoder_free(nullptr);

    // The C++ face.
    llmkit::tokenizer_decoder dec(tok);
    CHECK(dec.feed({0xE4, 0xB8}).empty());
    CHECK(dec.feed({0xAD, 'x', 0xC3}) == "\xE4\xB8\xAD" "x");
    CHECK(dec.flush() == k_fffd);
    CHECK_THROWS_AS(dec.feed({-1}), llmkit::error);
}
