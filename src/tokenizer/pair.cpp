// Pairs of texts encoded together (BERT's sentence pairs, a reranker's query
// and document): the encoding type and the default encode_pair. tokenizer.json
// has its own (its post-processor's pair template, hf_json.cpp).
#include <utility>

#include "core/error.hpp"

#include "tokenizer/tokenizer.hpp"

namespace llmkit::tok {

encoding encoding::of_sequence(std::vector<int32_t> ids, int32_t sequence) {
    encoding e;
    e.type_ids.assign(ids.size(), sequence);
    e.sequence_ids.assign(ids.size(), sequence);
    e.ids = std::move(ids);
    return e;
}

encoding encoding::of_sequence(std::vector<int32_t> ids, int32_t sequence,
                               std::vector<std::pair<size_t, size_t>> spans) {
    encoding e = of_sequence(std::move(ids), sequence);
    e.spans = std::move(spans);
    e.has_spans = true;
    return e;
}

void encoding::append(const encoding &o) {
    ids.insert(ids.end(), o.ids.begin(), o.ids.end());
    type_ids.insert(type_ids.end(), o.type_ids.begin(), o.type_ids.end());
    sequence_ids.insert(sequence_ids.end(), o.sequence_ids.begin(), o.sequence_ids.end());
    spans.insert(spans.end(), o.spans.begin(), o.spans.end());
    has_spans = has_spans && o.has_spans;
}

// Each text on its own, as encode() or encode_with_offsets() gives it without
// special tokens, then each text's own special tokens (a SentencePiece
// model's BOS/EOS: transformers' Llama tokenizers make "<s> A <s> B" so).
void tokenizer::encode_pair(std::string_view a, std::string_view b, const encode_options &options, bool with_spans,
                            encoding &out) const {
    encode_options plain = options;
    plain.add_special_tokens = false;
    out = encoding();
    const std::string_view texts[2] = {a, b};
    for (int32_t s = 0; s < 2; ++s) {
        encoding e = encode_pair_text(s, with_spans, [&](auto &ids, auto &spans) {
            if (with_spans) encode_with_offsets(texts[s], plain, ids, spans);
            else encode(texts[s], plain, ids);
        });
        if (options.add_special_tokens) add_sequence_specials(e, s, texts[s].size());
        out.append(e);
    }
}

encoding encode_pair_text(int32_t sequence, bool with_spans, const pair_text_fn &encode_text) {
    std::vector<int32_t> ids;
    std::vector<std::pair<size_t, size_t>> spans;
    try {
        encode_text(ids, spans);
    } catch (const core::error &e) {
        throw core::error(e.status(), std::string(sequence == 0 ? "text_a: " : "text_b: ") + e.what());
    }
    return with_spans ? encoding::of_sequence(std::move(ids), sequence, std::move(spans))
                      : encoding::of_sequence(std::move(ids), sequence);
}

void tokenizer::add_sequence_specials(encoding &, int32_t, size_t) const {}

}  // namespace llmkit::tok
