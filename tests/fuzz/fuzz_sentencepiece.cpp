// libFuzzer harness: arbitrary bytes as a SentencePiece `.model` file and as a
// GGUF tokenizer vocabulary. Loading must either succeed or throw
// llmkit::core::error (a clear message); whatever loads must then encode and
// decode text (part of the input itself, and fixed strings) without crashing,
// and decode must accept every id encode gives.
//
//   clang++ -g -O1 -fsanitize=fuzzer,address,undefined ... fuzz_sentencepiece.cpp libllmkit.a
//   ./fuzz_sentencepiece -max_total_time=60 corpus/   (seed: the .model files in shared/data)
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "formats/gguf.hpp"
#include "tokenizer/gguf_vocab.hpp"
#include "tokenizer/sentencepiece.hpp"

namespace {

void exercise(const llmkit::tok::tokenizer &t, std::string_view sample) {
    static const char *fixed[] = {"", " ", "Hello world", "  a  b  ", "\xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x98\x80",
                                  "<s></s><unk>[INST]", "\xFF\xFE bad utf-8 \xC3"};
    std::vector<std::string_view> texts(std::begin(fixed), std::end(fixed));
    texts.push_back(sample);
    for (const bool special : {false, true}) {
        llmkit::tok::encode_options o;
        o.allow_all_special = special;
        o.add_special_tokens = special;
        o.special_as_text = !special;
        for (std::string_view text : texts) {
            std::vector<int32_t> ids;
            try {
                t.encode(text, o, ids);
            } catch (const llmkit::core::error &) {
                continue;  // e.g. text the tokenizer refuses
            }
            for (int32_t id : ids)
                if (id < 0 || id >= t.vocab_size()) __builtin_trap();  // encode gave an id that is no token
            std::string out;
            t.decode(ids.data(), ids.size(), out);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char *>(data), size);
    const std::string_view sample = bytes.substr(0, 64);
    try {
        llmkit::tok::sentencepiece t(llmkit::tok::parse_sentencepiece_model(bytes, "fuzz.model"), "fuzz.model");
        exercise(t, sample);
    } catch (const llmkit::core::error &) {
    }
    try {
        const auto f = llmkit::gguf::file::parse(data, size, "fuzz.gguf", {}, false);
        const auto t = llmkit::tok::tokenizer_from_gguf(f);
        exercise(*t, sample);
    } catch (const llmkit::core::error &) {
    }
    return 0;
}
