// Token offsets: each id's byte span in the input.
#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <typeinfo>

#include "core/error.hpp"
#include "tokenizer/tokenizer.hpp"

namespace llmkit::tok {

std::string tokenizer::kind() const {
    const char *mangled = typeid(*this).name();
    int status = 0;
    std::unique_ptr<char, void (*)(void *)> name(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
    return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

void tokenizer::encode_with_offsets(std::string_view, const encode_options &, std::vector<int32_t> &,
                                    std::vector<std::pair<size_t, size_t>> &) const {
    core::fail(LLMKIT_ERROR_UNSUPPORTED, "offsets are not implemented for this tokenizer kind (", kind(), ")");
}

// Byte-level BPE is lossless and every token stands for exactly its own
// bytes, special tokens included (their text is in the input): the tokens'
// bytes laid end to end are the input. So the spans are the running sums of
// the token lengths. A token that holds part of a multi-byte character gets
// exactly the bytes it holds; its span then starts or ends inside that
// character.
void byte_level_bpe::encode_with_offsets(std::string_view text, const encode_options &options,
                                         std::vector<int32_t> &ids, std::vector<std::pair<size_t, size_t>> &spans) const {
    const size_t first = ids.size();
    encode(text, options, ids);
    spans.reserve(spans.size() + ids.size() - first);
    size_t pos = 0;
    for (size_t i = first; i < ids.size(); ++i) {
        std::string_view bytes;
        id_to_token(ids[i], bytes);
        spans.emplace_back(pos, pos + bytes.size());
        pos += bytes.size();
    }
    if (pos != text.size())
        core::fail(LLMKIT_ERROR_INTERNAL, "offsets: the tokens cover ", pos, " bytes of a ", text.size(), "-byte text");
}

}  // namespace llmkit::tok
