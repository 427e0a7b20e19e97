// libFuzzer harness: a user's pre-tokenizer pattern (llmkit_tokenizer_from_ranks
// in tiktoken's dialect, tokenizer.json's Split in Oniguruma's) and a text to
// split with it. The input is the pattern,
// a NUL byte, then the text. Building the tokenizer must either succeed or be
// refused with LLMKIT_ERROR_INVALID_ARGUMENT (a pattern PCRE2 rejects); encoding
// must either succeed or be refused with INVALID_ARGUMENT (text that is not
// UTF-8, a pattern that backtracks past PCRE2's limits) or OUT_OF_MEMORY (the
// JIT stack). What it returns must be ids of the vocabulary whose bytes, in
// order, are a subsequence of the text's pieces: each piece the pattern matched
// comes back whole, unmatched text is skipped (as tiktoken skips it), and a
// pattern that splits characters (\C) must not break the merges.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "tokenizer/base64.hpp"
#include "tokenizer/regex.hpp"
#include "tokenizer/tokenizer.hpp"

namespace tok = llmkit::tok;

namespace {

[[noreturn]] void fail(const char *what, const std::string &detail) {
    std::fprintf(stderr, "fuzz_pattern: %s: %s\n", what, detail.c_str());
    std::abort();
}

// The 256 bytes, then merges that cover ASCII words and two-byte characters,
// so that pieces merge (and the whole-character shortcut is taken).
const std::string &rank_file() {
    static const std::string file = [] {
        std::string f;
        int rank = 0;
        const auto add = [&](const std::string &t) { f += tok::base64_encode(t) + " " + std::to_string(rank++) + "\n"; };
        for (int b = 0; b < 256; ++b) add(std::string(1, char(b)));
        for (const char *m : {"he", "ll", "hell", "hello", " w", "or", " wor", "ld", " world", "\xC3\xA9", "caf",
                              "caf\xC3\xA9", "\xE4\xB8", "\xE4\xB8\x96", "  ", "\n\n", "12", "123"})
            add(m);
        return f;
    }();
    return file;
}

bool is_subsequence(std::string_view part, std::string_view whole) {
    size_t at = 0;
    for (char c : part) {
        at = whole.find(c, at);
        if (at == std::string_view::npos) return false;
        ++at;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view input(reinterpret_cast<const char *>(data), size);
    const size_t nul = input.find('\0');
    if (nul == std::string_view::npos) return 0;
    const std::string pattern(input.substr(0, nul));
    const std::string_view text = input.substr(nul + 1);
    // The same pattern as a tokenizer.json regex (Oniguruma's dialect): translated and run, or refused.
    try {
        const tok::regex re(tok::oniguruma_to_pcre2(pattern));
        if (tok::is_valid_utf8(text)) re.for_each_match(text, [&](size_t b, size_t e) {
            if (b > e || e > text.size()) fail("oniguruma", "a match outside the text");
        });
    } catch (const llmkit::core::error &e) {
        if (e.status() != LLMKIT_ERROR_INVALID_ARGUMENT && e.status() != LLMKIT_ERROR_OUT_OF_MEMORY)
            fail("oniguruma", e.what());
    }
    std::unique_ptr<tok::byte_level_bpe> bpe;
    try {
        bpe = tok::custom_tiktoken(rank_file(), "fuzz", pattern, {{"<|x|>", 400}});
    } catch (const llmkit::core::error &e) {
        if (e.status() != LLMKIT_ERROR_INVALID_ARGUMENT) fail("build", e.what());
        return 0;
    }
    std::vector<int32_t> ids;
    tok::encode_options options;
    options.allow_all_special = true;
    try {
        bpe->encode(text, options, ids);
    } catch (const llmkit::core::error &e) {
        if (e.status() != LLMKIT_ERROR_INVALID_ARGUMENT && e.status() != LLMKIT_ERROR_OUT_OF_MEMORY)
            fail("encode", e.what());
        return 0;
    }
    for (int32_t id : ids)
        if (id < 0 || id >= bpe->vocab_size()) fail("ids", "id " + std::to_string(id) + " outside the vocabulary");
    std::string back;
    bpe->decode(ids.data(), ids.size(), back);
    if (!is_subsequence(back, text)) fail("decode", "the decoded bytes are not drawn from the text, in order");
    // Again, now with the per-thread memo of merged pieces warm: the same ids.
    std::vector<int32_t> again;
    bpe->encode(text, options, again);
    if (again != ids) fail("determinism", "a second encode gave other ids");
    return 0;
}
