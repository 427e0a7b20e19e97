// libFuzzer harness: arbitrary bytes through the C ABI's format detection,
// llmkit_tokenizer_from_memory with default options (tokenizer.json, .tiktoken
// rank files, SentencePiece .model, GGUF; each format's parser has its own
// harness). Every call must return a status the header documents for it,
// with a message whenever it fails, and never LLMKIT_ERROR_INTERNAL: nothing
// may escape the C boundary as an exception. A tokenizer that loads must
// encode a text into a caller buffer (LLMKIT_ERROR_BUFFER_TOO_SMALL giving the
// size, then the retry), decode the ids and be freed.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "llmkit/llmkit.h"

namespace {

[[noreturn]] void fail(const char *what, llmkit_status st) {
    std::fprintf(stderr, "fuzz_tokenizer_memory: %s: status %d: %s\n", what, int(st), llmkit_last_error_message());
    std::abort();
}

bool has_message() {
    const char *m = llmkit_last_error_message();
    return m && m[0];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llmkit_tokenizer *t = nullptr;
    const llmkit_status st = llmkit_tokenizer_from_memory(&t, data, size, nullptr);
    if (st != LLMKIT_OK) {
        if (st != LLMKIT_ERROR_FORMAT && st != LLMKIT_ERROR_UNSUPPORTED && st != LLMKIT_ERROR_INVALID_ARGUMENT &&
            st != LLMKIT_ERROR_OUT_OF_MEMORY)
            fail("from_memory", st);
        if (!has_message()) fail("from_memory without a message", st);
        if (t) fail("from_memory failed but set the tokenizer", st);
        return 0;
    }
    if (!t) fail("from_memory succeeded without a tokenizer", st);
    static const char text[] = "Hello world, caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 <s> 2024!";
    llmkit_encode_options o = LLMKIT_ENCODE_OPTIONS_INIT;
    o.special_as_text = 1;
    std::vector<int32_t> ids(4);
    size_t n = 0;
    llmkit_status e = llmkit_tokenizer_encode(t, text, sizeof text - 1, ids.data(), ids.size(), &n, &o);
    if (e == LLMKIT_ERROR_BUFFER_TOO_SMALL) {
        if (n <= ids.size()) fail("BUFFER_TOO_SMALL without a larger size", e);
        ids.resize(n);
        e = llmkit_tokenizer_encode(t, text, sizeof text - 1, ids.data(), ids.size(), &n, &o);
    }
    if (e == LLMKIT_OK) {
        std::vector<char> out(4);
        size_t len = 0;
        llmkit_status d = llmkit_tokenizer_decode(t, ids.data(), n, out.data(), out.size(), &len);
        if (d == LLMKIT_ERROR_BUFFER_TOO_SMALL) {
            if (len <= out.size()) fail("decode: BUFFER_TOO_SMALL without a larger size", d);
            out.resize(len);
            d = llmkit_tokenizer_decode(t, ids.data(), n, out.data(), out.size(), &len);
        }
        // A template may add an id only the post-processor knows.
        if (d != LLMKIT_OK && d != LLMKIT_ERROR_OUT_OF_RANGE) fail("decode", d);
        if (d != LLMKIT_OK && !has_message()) fail("decode without a message", d);
    } else if (e != LLMKIT_ERROR_INVALID_ARGUMENT) {  // e.g. Unigram without unk_id on an uncovered character
        fail("encode", e);
    } else if (!has_message()) {
        fail("encode without a message", e);
    }
    llmkit_tokenizer_free(t);
    return 0;
}
