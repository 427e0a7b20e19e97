// libFuzzer harness: arbitrary bytes as a Hugging Face tokenizer.json.
//
// Loading must either succeed or throw llmkit::core::error with
// LLMKIT_ERROR_FORMAT (malformed: the message names the JSON path),
// LLMKIT_ERROR_UNSUPPORTED (a component llmkit lacks) or
// LLMKIT_ERROR_INVALID_ARGUMENT; never crash, hang or leak. A tokenizer that
// loads must encode fixed texts (and the input's own valid UTF-8 prefix) with
// and without special tokens, paired with another text (with spans once),
// decode what it produced, and decode arbitrary ids
// (an id outside the vocabulary is LLMKIT_ERROR_OUT_OF_RANGE).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "tokenizer/hf_json.hpp"

using namespace llmkit;

namespace {

[[noreturn]] void fail(const char *what, const core::error &e) {
    std::fprintf(stderr, "fuzz_tokenizer_json: %s: status %d: %s\n", what, int(e.status()), e.what());
    std::abort();
}

// The longest prefix of s that is valid UTF-8 (check_utf8 rejects the rest).
std::string_view utf8_prefix(std::string_view s) {
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
void exercise_pair(const tok::tokenizer &t, std::string_view text, const tok::encode_options &o, bool with_spans) {
    const std::string_view other = "b c";
    tok::encoding e;
    try {
        t.encode_pair(text, other, o, with_spans, e);
    } catch (const core::error &err) {
        // As encode, or a template without a pair entry asked for special tokens.
        if (err.status() != LLMKIT_ERROR_INVALID_ARGUMENT && err.status() != LLMKIT_ERROR_UNSUPPORTED)
            fail("encode_pair", err);
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

void exercise(const tok::tokenizer &t, std::string_view text) {
    for (int mode = 0; mode < 3; ++mode) {
        tok::encode_options o;
        o.allow_all_special = mode == 0;
        o.special_as_text = mode == 1;
        o.add_special_tokens = mode != 1;
        std::vector<int32_t> ids;
        try {
            t.encode(text, o, ids);
        } catch (const core::error &e) {
            // Unigram without unk_id on an uncovered character, or a special token in mode 2.
            if (e.status() != LLMKIT_ERROR_INVALID_ARGUMENT) fail("encode", e);
            continue;
        }
        for (int32_t id : ids)
            if (id < 0 || id >= t.vocab_size()) std::abort();
        std::string out;
        try {
            t.decode(ids.data(), ids.size(), out);
        } catch (const core::error &e) {
            // A template may add an id that only the post-processor knows.
            if (e.status() != LLMKIT_ERROR_OUT_OF_RANGE) fail("decode", e);
        }
        exercise_pair(t, text, o, mode == 0);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char *>(data), size);
    std::unique_ptr<tok::hf_tokenizer> t;
    try {
        t = tok::hf_tokenizer::from_json(bytes, "fuzz.json");
    } catch (const core::error &e) {
        const auto s = e.status();
        if (s != LLMKIT_ERROR_FORMAT && s != LLMKIT_ERROR_UNSUPPORTED && s != LLMKIT_ERROR_INVALID_ARGUMENT)
            fail("load", e);
        return 0;
    }
    static const char *const texts[] = {"", " ", "Hello world, it's 2024!", "  two  spaces\n\ttab",
                                        "caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80", "[CLS] <s> <unk> </s>"};
    for (const char *s : texts) exercise(*t, s);
    exercise(*t, utf8_prefix(bytes.substr(0, 256)));
    // Arbitrary ids, in and out of range.
    std::vector<int32_t> ids;
    for (size_t i = 0; i < size && i < 64; ++i) ids.push_back(int32_t(data[i]) * 131 - 7);
    std::string out;
    try {
        t->decode(ids.data(), ids.size(), out);
    } catch (const core::error &e) {
        if (e.status() != LLMKIT_ERROR_OUT_OF_RANGE) fail("decode ids", e);
    }
    return 0;
}
