// libFuzzer harness: arbitrary bytes as a Hugging Face tokenizer.json.
//
// Loading must either succeed or throw llmkit::core::error with
// LLMKIT_ERROR_FORMAT (malformed: the message names the JSON path),
// LLMKIT_ERROR_UNSUPPORTED (a component llmkit lacks) or
// LLMKIT_ERROR_INVALID_ARGUMENT; never crash, hang or leak. A tokenizer that
// loads must encode fixed texts (and the input's own valid UTF-8 prefix) with
// and without special tokens, paired with another text (with spans once),
// decode what it produced, and decode arbitrary ids
// (an id outside the vocabulary is LLMKIT_ERROR_OUT_OF_RANGE): tokenizer_checks.hpp.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "core/error.hpp"
#include "tokenizer/hf_json.hpp"
#include "tokenizer_checks.hpp"

using namespace llmkit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char *>(data), size);
    std::unique_ptr<tok::hf_tokenizer> t;
    try {
        t = tok::hf_tokenizer::from_json(bytes, "fuzz.json");
    } catch (const core::error &e) {
        const auto s = e.status();
        if (s != LLMKIT_ERROR_FORMAT && s != LLMKIT_ERROR_UNSUPPORTED && s != LLMKIT_ERROR_INVALID_ARGUMENT)
            fuzz::fail("fuzz_tokenizer_json", "load", e);
        return 0;
    }
    fuzz::exercise("fuzz_tokenizer_json", *t, bytes);
    return 0;
}
