// libFuzzer harness: arbitrary bytes as a SentencePiece `.model` file (the
// protobuf ModelProto). Loading must either succeed or throw
// llmkit::core::error with LLMKIT_ERROR_FORMAT (malformed) or
// LLMKIT_ERROR_UNSUPPORTED (a model type llmkit lacks); never crash, hang or
// leak. Whatever loads goes through tokenizer_checks.hpp (encode, pairs,
// decode, arbitrary ids). Seeds: seeds_sentencepiece.cpp cuts the data
// folder's Llama 2 model down to a few hundred pieces, in several settings,
// and sentencepiece.seeds adds stories260K's 512-piece model.
// (GGUF vocabularies have their own harness, fuzz_gguf_vocab.)
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.hpp"
#include "tokenizer/sentencepiece.hpp"
#include "tokenizer_checks.hpp"

using namespace llmkit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char *>(data), size);
    try {
        const tok::sentencepiece t(tok::parse_sentencepiece_model(bytes, "fuzz.model"), "fuzz.model");
        fuzz::exercise("fuzz_sentencepiece", t, bytes);
    } catch (const core::error &e) {
        if (e.status() != LLMKIT_ERROR_FORMAT && e.status() != LLMKIT_ERROR_UNSUPPORTED)
            fuzz::fail("fuzz_sentencepiece", "load", e);
    }
    return 0;
}
