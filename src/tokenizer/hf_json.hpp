// Hugging Face tokenizer.json: the whole pipeline of the `tokenizers` crate
// (added tokens, normalizer, pre-tokenizer, model, post-processor, decoder)
// behind llmkit's tokenizer interface, and the loader that detects a
// tokenizer file's format from its content.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/hf_models.hpp"
#include "tokenizer/hf_pipeline.hpp"
#include "tokenizer/tokenizer.hpp"

namespace llmkit::tok {

// An entry of "added_tokens": matched in the text before the model, as HF does.
struct added_token {
    std::string content;
    int32_t id = -1;
    bool special = false;      // a special token (allowed_special rules; post-processors add them)
    bool lstrip = false;       // the match swallows whitespace on its left
    bool rstrip = false;       // ... and on its right
    bool normalized = false;   // matched in the normalized text (else in the raw text)
    bool single_word = false;  // only matched between non-word characters
};

// Finds added tokens in text: leftmost, then longest (HF's aho-corasick
// LeftmostLongest), then HF's single_word / lstrip / rstrip rules.
class added_token_matcher {
public:
    added_token_matcher() = default;
    // patterns[i] is matched for tokens[i]; an empty pattern is never matched.
    added_token_matcher(std::vector<std::string> patterns, std::vector<const added_token *> tokens);

    struct span {
        size_t b, e;
        const added_token *token;  // nullptr: text between added tokens
    };
    // Splits s into text and added tokens. accept(token) says whether a match
    // counts (false: the matched text stays text); it may throw.
    template <typename Accept>
    void split(std::string_view s, Accept &&accept, std::vector<span> &out) const;
    bool empty() const noexcept { return tokens_.empty(); }

private:
    bool find(std::string_view s, size_t from, size_t &b, size_t &e, const added_token *&tok) const;

    std::vector<std::string> patterns_;
    std::vector<const added_token *> tokens_;
    std::unordered_map<std::string_view, size_t> by_text_;
    std::vector<size_t> lengths_;  // distinct, longest first
    bool first_byte_[256] = {};
};

// The entries of /model/vocab (when an object) and of /model/merges, taken
// out of the document while it is parsed (hf_tokenizer::from_json): a
// vocabulary of 50k-250k keys in nlohmann's std::map cost most of the load
// (insertion, then iteration and destruction). The document keeps an empty
// object or array in their place. `vocab` is in file order, values as parsed.
struct hf_model_lists {
    bool has_vocab = false, has_merges = false;
    std::vector<std::pair<std::string, hf::json>> vocab;
    std::vector<hf::json> merges;
};

class hf_tokenizer final : public tokenizer {
public:
    // Parses the text of a tokenizer.json. `source` names it in errors:
    // LLMKIT_ERROR_FORMAT "<source>: at <json path>: <problem>" for malformed
    // content, LLMKIT_ERROR_UNSUPPORTED naming a component type llmkit lacks.
    static std::unique_ptr<hf_tokenizer> from_json(std::string_view text, const std::string &source);
    // The same from a parsed document (the GGUF loader builds one in memory),
    // with `model` instead of the document's "model" when given.
    // `lists`, when given, holds what from_json took out of the document.
    static std::unique_ptr<hf_tokenizer> from_document(const hf::json &root, const std::string &source,
                                                       std::unique_ptr<subword_model> model = nullptr,
                                                       const hf_model_lists *lists = nullptr);

    // Special tokens in the text follow encode_options (tiktoken's rules); other
    // added tokens are always matched. add_special_tokens applies the post-processor.
    void encode(std::string_view text, const encode_options &options, std::vector<int32_t> &out) const override;
    // Token strings through the JSON's decoder (joined by spaces without one),
    // special tokens included. LLMKIT_ERROR_OUT_OF_RANGE for an unknown id.
    void decode(const int32_t *ids, size_t n, std::string &out) const override;
    int32_t vocab_size() const override { return vocab_size_; }
    int32_t token_to_id(std::string_view token) const override;
    bool id_to_token(int32_t id, std::string_view &out) const override;
    bool is_special(int32_t id) const override;
    // HF tokenizers' Encoding.offsets in bytes: each id's span in the input,
    // carried through the normalizer, pre-tokenizer and model as tokenizers
    // carries its alignments (see llmkit_tokenizer_encode_with_offsets).
    void encode_with_offsets(std::string_view text, const encode_options &options, std::vector<int32_t> &ids,
                             std::vector<std::pair<size_t, size_t>> &spans) const override;
    // HF's encode(a, b): the texts typed 0 and 1, then the post-processor's
    // pair template (with add_special_tokens) and trim_offsets.
    void encode_pair(std::string_view a, std::string_view b, const encode_options &options, bool with_spans,
                     encoding &out) const override;
    std::string kind() const override { return "tokenizer.json"; }

    const subword_model &model() const noexcept { return *model_; }
    const std::vector<added_token> &added_tokens() const noexcept { return added_; }

private:
    hf_tokenizer() = default;
    void encode_text(std::string_view raw, bool at_origin, const std::vector<char> &allowed, bool special_as_text,
                     std::vector<int32_t> &out) const;
    // encode_text on the offsets path: text is bytes [b, e) of the input.
    void encode_text_aligned(std::string_view input, size_t b, size_t e, const std::vector<char> &allowed,
                             bool special_as_text, std::vector<int32_t> &out,
                             std::vector<std::pair<size_t, size_t>> &spans) const;
    // The ids of one text, before the post-processor; encode_spans with their spans.
    void encode_ids(std::string_view text, const encode_options &options, std::vector<int32_t> &out) const;
    void encode_spans(std::string_view text, const encode_options &options, std::vector<int32_t> &ids,
                      std::vector<std::pair<size_t, size_t>> &spans) const;
    // Runs the post-processor on one text's or a pair's encodings
    // (inputs[s]: the text of sequence s) and merges them into encs[0].
    void post_process(std::vector<encoding> &encs, bool add_special, const std::string_view *inputs) const;
    // Which added tokens the options allow (by index in added_).
    std::vector<char> allowed_mask(const encode_options &options) const;
    // text split at the added tokens `matcher` finds in it (raw_matcher_ on
    // the input, normalized_matcher_ on normalized text); a disallowed
    // special token is an error, or plain text with special_as_text.
    void split_at_added_tokens(const added_token_matcher &matcher, std::string_view text,
                               const std::vector<char> &allowed, bool special_as_text,
                               std::vector<added_token_matcher::span> &parts) const;

    std::unique_ptr<hf::normalizer> normalizer_;
    std::unique_ptr<hf::pre_tokenizer> pre_tokenizer_;
    std::unique_ptr<subword_model> model_;
    std::unique_ptr<hf::post_processor> post_processor_;
    std::unique_ptr<hf::decoder> decoder_;
    std::vector<added_token> added_;
    std::unordered_map<std::string_view, size_t> added_by_text_;  // views into added_
    std::unordered_map<int32_t, size_t> added_by_id_;
    added_token_matcher raw_matcher_;         // normalized == false
    added_token_matcher normalized_matcher_;  // normalized == true, patterns normalized
    int32_t vocab_size_ = 0;
};

// Builds a model from the "model" object of a tokenizer.json (type BPE,
// WordPiece or Unigram; inferred when "type" is missing). `path` is the JSON path;
// `lists` as for hf_tokenizer::from_document.
std::unique_ptr<subword_model> make_hf_model(const hf::json &model, const std::string &path,
                                             const hf_model_lists *lists = nullptr);

struct file_load_options {
    std::string tiktoken_encoding;  // preset of a tiktoken rank file (they carry no pattern or specials)
    bool gguf_allow_duplicate_keys = false;  // GGUF: a repeated metadata key keeps its first value
};

// Loads a tokenizer file of any supported format, detected from its content:
//  - a JSON object: HF tokenizer.json;
//  - "GGUF" magic: the vocabulary in a GGUF file's metadata;
//  - a protobuf starting with field 1 (0x0A): a SentencePiece ModelProto;
//  - "base64 rank" lines: a tiktoken rank file (needs options.tiktoken_encoding).
std::unique_ptr<tokenizer> load_tokenizer_file(const std::string &path, const file_load_options &options);
// The same for the bytes of such a file in memory; `source` names them in
// errors. Nothing of `data` is kept: the caller may free it afterwards.
std::unique_ptr<tokenizer> load_tokenizer_memory(std::string_view data, const std::string &source,
                                                 const file_load_options &options);

}  // namespace llmkit::tok
