// libFuzzer harness: arbitrary bytes as a GGUF file holding a tokenizer in
// its metadata (tokenizer.ggml.*: the llama, gpt2 and bert models). The GGUF
// reader has its own harness (fuzz_gguf); here bytes it refuses are skipped,
// and what it accepts must either build a tokenizer or throw
// llmkit::core::error with LLMKIT_ERROR_FORMAT (a missing key, a wrong type,
// arrays of different lengths, an id out of range, a malformed merge or
// token) or LLMKIT_ERROR_UNSUPPORTED (a model or pre-tokenizer llmkit lacks);
// never another exception, a crash, a hang or a leak. Whatever loads goes
// through tokenizer_checks.hpp. Seeds: seeds_gguf_vocab.cpp cuts the data
// folder's llama.cpp vocabularies down to a few hundred tokens.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/error.hpp"
#include "formats/gguf.hpp"
#include "tokenizer/gguf_vocab.hpp"
#include "tokenizer_checks.hpp"

using namespace llmkit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char *>(data), size);
    // Repeated keys allowed (the first one kept): a file without repeats reads
    // the same either way, and the loader then sees the files with them too.
    gguf::open_options o;
    o.allow_duplicate_keys = true;
    std::optional<gguf::file> f;
    try {
        f.emplace(gguf::file::parse(data, size, "fuzz.gguf", o, false));
    } catch (const core::error &) {
        return 0;  // not a GGUF file: fuzz_gguf's domain
    }
    try {
        const auto t = tok::tokenizer_from_gguf(*f);
        fuzz::exercise("fuzz_gguf_vocab", *t, bytes.substr(bytes.size() > 64 ? bytes.size() - 64 : 0));
    } catch (const core::error &e) {
        if (e.status() != LLMKIT_ERROR_FORMAT && e.status() != LLMKIT_ERROR_UNSUPPORTED)
            fuzz::fail("fuzz_gguf_vocab", "load", e);
    }
    return 0;
}
