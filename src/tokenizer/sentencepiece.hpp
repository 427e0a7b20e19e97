// SentencePiece tokenizers (Llama 1/2, Mistral, T5-style Unigram), exactly as
// Google's sentencepiece library segments text: its normalizer (identity or a
// precompiled character map, "▁" for spaces, the dummy prefix), BPE by piece
// scores and Unigram by Viterbi, byte fallback to <0xNN> pieces, user-defined
// pieces kept whole, and the inverse decode. The model comes from a `.model`
// file (protobuf, sentencepiece_model.cpp) or from a GGUF file's
// `tokenizer.ggml.*` vocabulary (gguf_vocab.cpp); both fill an spm_model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/bpe.hpp"
#include "tokenizer/spm_charsmap.hpp"
#include "tokenizer/tokenizer.hpp"

namespace llmkit::tok {

// The piece types of the format (and of GGUF's tokenizer.ggml.token_type).
enum class spm_type : uint8_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

struct spm_piece {
    std::string text;  // UTF-8, "▁" for a space
    float score = 0;
    spm_type type = spm_type::normal;
};

// Everything a SentencePiece tokenizer needs, whatever file it came from.
struct spm_model {
    enum class algorithm { bpe, unigram };
    algorithm algo = algorithm::unigram;
    std::vector<spm_piece> pieces;  // id = index
    int32_t bos_id = -1, eos_id = -1;  // -1: none
    bool byte_fallback = false;
    // Normalizer.
    bool add_dummy_prefix = true;
    bool remove_extra_whitespaces = true;
    bool escape_whitespaces = true;
    bool treat_whitespace_as_suffix = false;
    std::string precompiled_charsmap;  // empty: identity
    std::string unk_surface = " \xE2\x81\x87 ";  // what <unk> decodes to
    // What "add special tokens" adds (GGUF's add_bos_token / add_eos_token;
    // a .model file says nothing: BOS, as Llama and Mistral use them).
    bool add_bos = false, add_eos = false;
};

// Upper bound on pieces accepted from any file (the largest real vocabularies
// have about 256k): protects against absurd counts in hostile files.
constexpr size_t k_spm_max_pieces = size_t(1) << 20;

class sentencepiece final : public tokenizer {
public:
    // Validates the model (LLMKIT_ERROR_FORMAT naming `source` and the problem).
    sentencepiece(spm_model model, const std::string &source);

    // Special tokens (the control pieces) are matched in the text only when
    // allowed (options.allow_all_special / allowed_special); otherwise they are
    // ordinary text, as in sentencepiece: finding one is never an error.
    // options.add_special_tokens adds BOS / EOS as model().add_bos / add_eos say.
    void encode(std::string_view text, const encode_options &options, std::vector<int32_t> &out) const override;
    // As encode, with BOS and/or EOS around the ids when the model has them.
    void encode(std::string_view text, const encode_options &options, bool add_bos, bool add_eos,
                std::vector<int32_t> &out) const;
    // sentencepiece's DecodeIds: "▁" becomes a space, the dummy prefix space is
    // dropped, control pieces vanish, runs of byte pieces become their bytes
    // (each byte of an invalid UTF-8 sequence becomes U+FFFD), <unk> its surface.
    void decode(const int32_t *ids, size_t n, std::string &out) const override;
    int32_t vocab_size() const override { return int32_t(model_.pieces.size()); }
    int32_t token_to_id(std::string_view piece) const override;
    bool id_to_token(int32_t id, std::string_view &out) const override;
    bool is_special(int32_t id) const override {
        return id >= 0 && size_t(id) < model_.pieces.size() && model_.pieces[size_t(id)].type == spm_type::control;
    }

    // Each id's byte span in text, as sentencepiece's SentencePieceText
    // begin/end: a piece covers the input its normalized bytes came from (so
    // "▁" covers the space it replaced, the dummy prefix nothing of its own);
    // the byte pieces of one character are empty spans at its start, the last
    // one covering the character; BOS/EOS are empty spans at 0 / at the end.
    void encode_with_offsets(std::string_view text, const encode_options &options, std::vector<int32_t> &ids,
                             std::vector<std::pair<size_t, size_t>> &spans) const override;
    // BOS / EOS around one text of a pair, as the model adds them to a single text.
    void add_sequence_specials(encoding &e, int32_t sequence, size_t text_len) const override;
    std::string kind() const override { return "SentencePiece"; }

    const spm_model &model() const noexcept { return model_; }
    int32_t unk_id() const noexcept { return unk_id_; }

    // The normalized text that segmentation sees (public for tests).
    std::string normalize(std::string_view text) const;

private:
    // Longest user-defined piece at the start of s (0 if none).
    size_t match_user_defined(std::string_view s) const;
    // sentencepiece's PieceToId: control/unknown/byte pieces first, then the
    // others, else the unknown id.
    int32_t piece_to_id(std::string_view piece) const;
    // Where segmentation reports each id's span in the normalized text (for
    // offsets; null otherwise): pieces are views into the text at `base`.
    struct span_sink {
        const char *base;
        std::vector<std::pair<size_t, size_t>> *spans;
    };
    // normalize(), also giving each normalized byte's input offset (and one
    // more entry for the end) when norm_to_orig is not null.
    std::string normalize(std::string_view text, std::vector<size_t> *norm_to_orig) const;
    // Segments normalized text and appends the ids (byte fallback applied).
    void encode_normalized(std::string_view normalized, std::vector<int32_t> &out, const span_sink *sink) const;
    void encode_bpe(std::string_view normalized, std::vector<int32_t> &out, const span_sink *sink) const;
    void encode_bpe_segment(std::string_view segment, std::vector<int32_t> &out, const span_sink *sink) const;
    void encode_unigram(std::string_view normalized, std::vector<int32_t> &out, const span_sink *sink) const;
    // Appends the id of a final piece, or its bytes' <0xNN> ids when it is unknown.
    void emit(std::string_view piece, int32_t id, std::vector<int32_t> &out, const span_sink *sink) const;
    // Encodes text (which starts at `offset` of the whole input) without
    // special tokens: normalize + segment; spans in the whole input when asked.
    void encode_plain(std::string_view text, size_t offset, std::vector<int32_t> &out,
                      std::vector<std::pair<size_t, size_t>> *spans) const;
    // encode() with optional spans.
    void encode_spans(std::string_view text, const encode_options &options, bool add_bos, bool add_eos,
                      std::vector<int32_t> &out, std::vector<std::pair<size_t, size_t>> *spans) const;

    spm_model model_;
    std::string source_;
    int32_t unk_id_ = -1;
    rank_table pieces_;                                     // normal, user-defined, unused pieces -> id
    std::unordered_map<std::string_view, int32_t> reserved_;  // control, unknown, byte pieces -> id
    int32_t byte_ids_[256];                                  // <0xNN> -> id (or unk)
    std::vector<std::string_view> user_defined_;             // views into model_.pieces
    std::vector<size_t> user_defined_lengths_;               // distinct lengths, longest first
    std::string user_defined_first_bytes_;
    // Printable ASCII bytes (not the space) that begin no user-defined piece
    // and no charsmap rule that could match before an ASCII byte: followed by
    // ASCII (or the end), each normalizes to itself, so such runs are copied whole.
    bool plain_ascii_[128] = {};
    bool has_unused_ = false;
    // BPE: no piece has a "▁" after another character, so the text may be
    // split before each such "▁" into words that are merged independently.
    bool split_words_ = false;
    float min_score_ = 0;  // Unigram: over the normal pieces
    // Unigram: a byte trie of the pieces as a double array (as sentencepiece's
    // darts-clone): node s's child by byte c is slot base + c of s when that
    // slot's check is s; id = the piece ending there (-1: none, or an unused
    // piece) and its lattice score (a user-defined piece's from its length).
    // Slot 0 is the root.
    struct trie_slot {
        int32_t base = 0, check = -1, id = -1;
        float score = 0;
    };
    std::vector<trie_slot> trie_;
    std::unique_ptr<spm_charsmap> charsmap_;
    // Specials matchable in the text: control pieces (not <s>-less empties).
    std::vector<std::pair<std::string_view, int32_t>> controls_;
    uint64_t cache_owner_;  // process-unique: keys the per-thread word cache
};

// Loads a SentencePiece `.model` file (protobuf ModelProto).
std::unique_ptr<sentencepiece> load_sentencepiece(const std::string &path);
// Parses the bytes of a `.model` file; `source` names it in errors.
spm_model parse_sentencepiece_model(std::string_view data, const std::string &source);

}  // namespace llmkit::tok
