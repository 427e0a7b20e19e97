// libFuzzer harness: arbitrary bytes as a tiktoken rank file (one
// "base64(token) rank" per line). Parsing must either succeed or throw
// llmkit::core::error with LLMKIT_ERROR_FORMAT (the message names the line);
// whatever parses must either build a tokenizer with o200k_base's pattern or
// be refused with LLMKIT_ERROR_FORMAT / LLMKIT_ERROR_INVALID_ARGUMENT (e.g. a
// byte with no token); a tokenizer that builds must encode fixed texts and
// decode them back byte for byte, and map every rank back to its bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/regex.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/train.hpp"

namespace tok = llmkit::tok;

namespace {

[[noreturn]] void fail(const char *what, const std::string &detail) {
    std::fprintf(stderr, "fuzz_tiktoken_ranks: %s: %s\n", what, detail.c_str());
    std::abort();
}

void exercise(const tok::byte_level_bpe &bpe) {
    static const char *texts[] = {"", "Hello world", "  a  b \n\n", "don't 123 4567",
                                  "\xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x98\x80 caf\xC3\xA9"};
    for (const char *text : texts) {
        std::vector<int32_t> ids;
        bpe.encode_ordinary(text, ids);
        std::string back;
        bpe.decode(ids.data(), ids.size(), back);
        if (back != text) fail("round trip", std::string("\"") + text + "\" came back as \"" + back + "\"");
    }
    for (uint32_t r = 0; r < bpe.ranks().end_rank() && r < 4096; ++r) {
        std::string_view bytes;
        if (bpe.ranks().bytes(r, bytes) && bpe.ranks().rank(bytes) != r)
            fail("ranks", "rank " + std::to_string(r) + "'s bytes look up another rank");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view file(reinterpret_cast<const char *>(data), size);
    std::vector<std::pair<std::string, uint32_t>> ranks;
    try {
        ranks = tok::parse_tiktoken_ranks(file, "fuzz.tiktoken");
    } catch (const llmkit::core::error &e) {
        if (e.status() != LLMKIT_ERROR_FORMAT) fail("parse", e.what());
        return 0;
    }
    try {
        const tok::byte_level_bpe bpe(std::move(ranks), tok::rust_regex_to_pcre2(tok::tiktoken_preset_pattern("o200k_base")),
                                      {}, "fuzz.tiktoken");
        exercise(bpe);
    } catch (const llmkit::core::error &e) {
        if (e.status() != LLMKIT_ERROR_FORMAT && e.status() != LLMKIT_ERROR_INVALID_ARGUMENT)
            fail("build or encode", e.what());
    }
    return 0;
}
