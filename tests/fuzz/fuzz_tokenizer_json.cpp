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
//
// from_json takes the model's vocab and merges out of the document while it
// parses (hf_model_lists); the same bytes parsed into a whole document and
// given to from_document must fail with the same status or load a tokenizer
// with the same vocabulary and ids.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "tokenizer/hf_json.hpp"
#include "tokenizer_checks.hpp"

using namespace llmkit;

namespace {

// The same bytes through a whole document: a tokenizer, or the status it fails with.
std::unique_ptr<tok::hf_tokenizer> from_whole_document(std::string_view bytes, llmkit_status &status) {
    status = LLMKIT_OK;
    try {
        return tok::hf_tokenizer::from_document(tok::hf::json::parse(bytes.begin(), bytes.end()), "fuzz.json");
    } catch (const tok::hf::json::exception &) {
        status = LLMKIT_ERROR_FORMAT;
    } catch (const core::error &e) {
        status = e.status();
    }
    return nullptr;
}

void check_same(const tok::hf_tokenizer &a, const tok::hf_tokenizer &b, std::string_view bytes) {
    if (a.vocab_size() != b.vocab_size()) std::abort();
    for (int32_t id = 0; id < a.vocab_size() && id < 4096; ++id) {
        std::string_view ta, tb;
        const bool ha = a.id_to_token(id, ta), hb = b.id_to_token(id, tb);
        if (ha != hb || (ha && (ta != tb || a.token_to_id(ta) != b.token_to_id(tb)))) std::abort();
    }
    for (std::string_view text : {std::string_view("Hello world, it's 2024!"), fuzz::utf8_prefix(bytes.substr(0, 256))}) {
        std::vector<int32_t> ia, ib;
        bool fa = false, fb = false;
        try { a.encode(text, tok::encode_options(), ia); } catch (const core::error &) { fa = true; }
        try { b.encode(text, tok::encode_options(), ib); } catch (const core::error &) { fb = true; }
        if (fa != fb || ia != ib) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char *>(data), size);
    std::unique_ptr<tok::hf_tokenizer> t;
    llmkit_status status = LLMKIT_OK;
    try {
        t = tok::hf_tokenizer::from_json(bytes, "fuzz.json");
    } catch (const core::error &e) {
        status = e.status();
        if (status != LLMKIT_ERROR_FORMAT && status != LLMKIT_ERROR_UNSUPPORTED && status != LLMKIT_ERROR_INVALID_ARGUMENT)
            fuzz::fail("fuzz_tokenizer_json", "load", e);
        // Too deep to parse here (from_json refuses it before parsing).
        if (std::string_view(e.what()).find("nested deeper") != std::string_view::npos) return 0;
    }
    llmkit_status whole_status;
    const std::unique_ptr<tok::hf_tokenizer> whole = from_whole_document(bytes, whole_status);
    if (whole_status != status) {
        std::fprintf(stderr, "fuzz_tokenizer_json: from_json gives status %d, the whole document %d\n", int(status),
                     int(whole_status));
        std::abort();
    }
    if (!t) return 0;
    check_same(*t, *whole, bytes);
    fuzz::exercise("fuzz_tokenizer_json", *t, bytes);
    return 0;
}
