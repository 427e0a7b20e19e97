// What every tokenizer harness does with a tokenizer the fuzzed bytes loaded
// (fuzz_tokenizer_json, fuzz_sentencepiece, fuzz_gguf_vocab): encode fixed
// texts and a prefix of the input, with and without special tokens, paired
// with another text (with spans once); decode what encode gave; decode
// arbitrary ids. Any error other than the documented ones, an id outside the
// vocabulary or a span outside its text aborts (the fuzzer reports it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "tokenizer/regex.hpp"  // check_utf8
#include "tokenizer/tokenizer.hpp"

namespace llmkit::fuzz {

[[noreturn]] inline void fail(const char *harness, const char *what, const core::error &e) {
    std::fprintf(stderr, "%s: %s: status %d: %s\n", harness, what, int(e.status()), e.what());
    std::abort();
}

// The longest prefix of s that is valid UTF-8 (check_utf8 rejects the rest).
inline std::string_view utf8_prefix(std::string_view s) {
    for (size_t n = s.size(); n > 0; --n) {
        try {
            tok::check_utf8(s.substr(0, n), "text");
            return s.substr(0, n);
        } catch (const core::error &) {
        }
        if (s.size() - n > 4) return {};  // the invalid byte is early: give up cheaply
    }
    return {};
}

// The text paired with a fixed one: every id has a type, a sequence and (with
// spans) a span inside its own text.
inline void exercise_pair(const char *harness, const tok::tokenizer &t, std::string_view text,
                          const tok::encode_options &o, bool with_spans) {
    const std::string_view other = "b c";
    tok::encoding e;
    try {
        t.encode_pair(text, other, o, with_spans, e);
    } catch (const core::error &err) {
        // As encode, or a template without a pair entry asked for special tokens.
        if (err.status() != LLMKIT_ERROR_INVALID_ARGUMENT && err.status() != LLMKIT_ERROR_UNSUPPORTED)
            fail(harness, "encode_pair", err);
        return;
    }
    const size_t n = e.ids.size();
    if (e.type_ids.size() != n || e.sequence_ids.size() != n || (with_spans && e.spans.size() != n)) std::abort();
    for (size_t i = 0; with_spans && i < n; ++i) {
        const int32_t s = e.sequence_ids[i];
        if (s < -1 || s > 1) std::abort();
        const size_t len = s == 1 ? other.size() : s == 0 ? text.size() : 0;
        if (e.spans[i].first > e.spans[i].second || e.spans[i].second > len) std::abort();
    }
}

// One text in three modes: every special token allowed and added; special
// tokens as plain text; special tokens added but not allowed in the text.
inline void exercise_text(const char *harness, const tok::tokenizer &t, std::string_view text) {
    for (int mode = 0; mode < 3; ++mode) {
        tok::encode_options o;
        o.allow_all_special = mode == 0;
        o.special_as_text = mode == 1;
        o.add_special_tokens = mode != 1;
        std::vector<int32_t> ids;
        try {
            t.encode(text, o, ids);
        } catch (const core::error &e) {
            // Text that is not UTF-8, Unigram without unk_id on an uncovered
            // character, or a special token in mode 2.
            if (e.status() != LLMKIT_ERROR_INVALID_ARGUMENT) fail(harness, "encode", e);
            continue;
        }
        for (int32_t id : ids)
            if (id < 0 || id >= t.vocab_size()) std::abort();
        std::string out;
        try {
            t.decode(ids.data(), ids.size(), out);
        } catch (const core::error &e) {
            // A template may add an id that only the post-processor knows.
            if (e.status() != LLMKIT_ERROR_OUT_OF_RANGE) fail(harness, "decode", e);
        }
        exercise_pair(harness, t, text, o, mode == 0);
    }
}

// Everything above on fixed texts and on the input's own bytes, then decode
// of arbitrary ids in and out of range (out of range: LLMKIT_ERROR_OUT_OF_RANGE).
inline void exercise(const char *harness, const tok::tokenizer &t, std::string_view input) {
    static const char *const texts[] = {"",
                                        " ",
                                        "Hello world, it's 2024!",
                                        "  two  spaces\n\ttab",
                                        "caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80",
                                        "[CLS] <s> <unk> </s> [INST]",
                                        "\xFF\xFE not utf-8 \xC3"};
    for (const char *s : texts) exercise_text(harness, t, s);
    exercise_text(harness, t, utf8_prefix(input.substr(0, 256)));
    std::vector<int32_t> ids;
    for (size_t i = 0; i < input.size() && i < 64; ++i) ids.push_back(int32_t(uint8_t(input[i])) * 131 - 7);
    std::string out;
    try {
        t.decode(ids.data(), ids.size(), out);
    } catch (const core::error &e) {
        if (e.status() != LLMKIT_ERROR_OUT_OF_RANGE) fail(harness, "decode ids", e);
    }
}

}  // namespace llmkit::fuzz
