// The tokenizer interface of the C++ core and the byte-level BPE tokenizer
// (tiktoken's algorithm). A tokenizer is immutable once built, so one object
// may serve any number of threads at once.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/bpe.hpp"
#include "tokenizer/pretokenize.hpp"
#include "tokenizer/regex.hpp"

namespace llmkit::tok {

// How special tokens in the text are treated (tiktoken's allowed_special /
// disallowed_special).
struct encode_options {
    bool allow_all_special = false;                // allowed_special="all"
    std::vector<std::string_view> allowed_special; // encoded as their id where they occur
    bool special_as_text = false;                  // disallowed_special=(): other specials are plain text
    bool add_special_tokens = false;               // BOS/EOS etc. as the tokenizer's post-processor says (HF)
};

// Token ids with, per id, its segment, its source text and its span there:
// what encode_pair gives, and HF's Encoding as far as post-processors touch it.
struct encoding {
    std::vector<int32_t> ids;
    std::vector<int32_t> type_ids;      // BERT's token_type_ids (the post-processor's template says)
    std::vector<int32_t> sequence_ids;  // 0 or 1: the text an id came from; -1: added by the post-processor
    std::vector<std::pair<size_t, size_t>> spans;  // byte spans in that text, one per id when has_spans
    bool has_spans = false;                        // offsets are wanted

    // The ids of text `sequence`, each typed `sequence` (as HF's encode types
    // them), without spans / with them.
    static encoding of_sequence(std::vector<int32_t> ids, int32_t sequence);
    static encoding of_sequence(std::vector<int32_t> ids, int32_t sequence, std::vector<std::pair<size_t, size_t>> spans);
    // Appends `other` (HF's merge_with).
    void append(const encoding &other);
};

// The encoding of text `sequence` of a pair: encode_text(ids, spans) gives
// its ids (and spans when with_spans); its errors get "text_a: " or
// "text_b: " before them, as the C function's messages say.
using pair_text_fn = std::function<void(std::vector<int32_t> &, std::vector<std::pair<size_t, size_t>> &)>;
encoding encode_pair_text(int32_t sequence, bool with_spans, const pair_text_fn &encode_text);

struct special_token {
    std::string text;
    int32_t id;
};

class tokenizer {
public:
    virtual ~tokenizer() = default;
    // Appends the ids of `text` to `out`.
    virtual void encode(std::string_view text, const encode_options &options, std::vector<int32_t> &out) const = 0;
    // Appends the bytes of ids to `out`; LLMKIT_ERROR_OUT_OF_RANGE for an id that is no token.
    virtual void decode(const int32_t *ids, size_t n, std::string &out) const = 0;
    // Max id + 1, special tokens included.
    virtual int32_t vocab_size() const = 0;
    // The id of a token's exact bytes (regular or special), or -1.
    virtual int32_t token_to_id(std::string_view bytes) const = 0;
    // The bytes of a token; false when no token has this id.
    virtual bool id_to_token(int32_t id, std::string_view &out) const = 0;
    // Whether id is a special token.
    virtual bool is_special(int32_t id) const = 0;

    // Offsets (toktrain, src/tokenizer/offsets.cpp). Encodes as encode() does
    // and gives each id its byte span [first, second) in `text`. The default
    // fails with LLMKIT_ERROR_UNSUPPORTED naming kind(); a tokenizer that can
    // map its tokens back to the input overrides it.
    virtual void encode_with_offsets(std::string_view text, const encode_options &options, std::vector<int32_t> &ids,
                                     std::vector<std::pair<size_t, size_t>> &spans) const;
    // Encodes a pair of texts into one sequence (BERT's sentence pairs,
    // rerankers' query + document), with spans when with_spans. The default
    // gives the two encodings back to back, typed 0 and 1 (with
    // add_special_tokens, each text's own special tokens, sequence id -1);
    // tokenizer.json overrides it with its post-processor's pair template.
    virtual void encode_pair(std::string_view a, std::string_view b, const encode_options &options, bool with_spans,
                             encoding &out) const;
    // The default encode_pair's hook: puts the special tokens that
    // add_special_tokens adds to one text around `e`, the encoding of text
    // `sequence` (`text_len` bytes), typed `sequence`. The default adds none.
    virtual void add_sequence_specials(encoding &e, int32_t sequence, size_t text_len) const;
    // The tokenizer's kind in messages; the default is the C++ class name.
    virtual std::string kind() const;
};

class byte_level_bpe final : public tokenizer {
public:
    // ranks: the mergeable tokens (rank = id); pattern: the pre-tokenizer
    // regex; specials: ids outside the ranks. `source` names the data in errors.
    byte_level_bpe(std::vector<std::pair<std::string, uint32_t>> ranks, const std::string &pattern,
                   std::vector<special_token> specials, const std::string &source);

    void encode(std::string_view text, const encode_options &options, std::vector<int32_t> &out) const override;
    void decode(const int32_t *ids, size_t n, std::string &out) const override;
    int32_t vocab_size() const override { return vocab_size_; }
    int32_t token_to_id(std::string_view bytes) const override;
    bool id_to_token(int32_t id, std::string_view &out) const override;
    bool is_special(int32_t id) const override { return special_by_id_.count(id) != 0; }
    void encode_with_offsets(std::string_view text, const encode_options &options, std::vector<int32_t> &ids,
                             std::vector<std::pair<size_t, size_t>> &spans) const override;
    std::string kind() const override { return "byte-level BPE"; }

    // Encodes text with no special-token handling at all (tiktoken's
    // encode_ordinary); LLMKIT_ERROR_INVALID_ARGUMENT if it is not valid UTF-8.
    void encode_ordinary(std::string_view text, std::vector<int32_t> &out) const;

    const rank_table &ranks() const noexcept { return ranks_; }
    const regex &pre_tokenizer() const noexcept { return regex_; }
    // The hand-written scanner that replaces the regex for a preset's pattern
    // (pretok_kind::none: the regex splits).
    pretok_kind pre_tokenizer_kind() const noexcept { return pretok_; }

private:
    // encode_ordinary on text already checked to be valid UTF-8.
    void encode_split(std::string_view text, std::vector<int32_t> &out) const;
    // The leftmost (then longest) special token at or after `from`; false if none.
    bool find_special(std::string_view text, size_t from, size_t &pos, const special_token *&found) const;

    rank_table ranks_;
    regex regex_;
    pretok_kind pretok_ = pretok_kind::none;
    std::vector<special_token> specials_;
    std::unordered_map<std::string_view, size_t> special_by_text_;  // views into specials_
    std::unordered_map<int32_t, size_t> special_by_id_;
    std::vector<size_t> special_lengths_;  // distinct lengths, longest first
    std::string special_first_bytes_;
    std::array<bool, 256> starts_special_{};  // the bytes of special_first_bytes_
    int32_t vocab_size_ = 0;
};

// Builds a tiktoken encoding from a rank file (`base64(token) rank` per line)
// and a preset name: r50k_base (gpt2), p50k_base, cl100k_base, o200k_base,
// llama3, qwen2.
std::unique_ptr<byte_level_bpe> load_tiktoken(const std::string &path, const std::string &encoding_name);
// The same from the text of a rank file; `source` names it in errors.
std::unique_ptr<byte_level_bpe> tiktoken_from_ranks(std::string_view data, const std::string &source,
                                                    const std::string &encoding_name);

// A tiktoken encoding given in full, as tiktoken.Encoding(pat_str=...,
// mergeable_ranks=..., special_tokens=...) makes one: the text of a rank file,
// the pre-tokenizer regex (or a preset name whose regex to use) and the
// special tokens with their ids. `source` names the ranks in errors.
std::unique_ptr<byte_level_bpe> custom_tiktoken(std::string_view data, const std::string &source,
                                                const std::string &pattern, std::vector<special_token> specials);

// Parses the text of a rank file; `source` names it in errors ("path:line: ...").
std::vector<std::pair<std::string, uint32_t>> parse_tiktoken_ranks(std::string_view data, const std::string &source);

// The names load_tiktoken accepts, comma-separated.
const char *tiktoken_encoding_names();

}  // namespace llmkit::tok
