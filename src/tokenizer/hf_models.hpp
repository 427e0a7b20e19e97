// The three subword models of Hugging Face tokenizers, as plain classes that
// any loader can build from vectors (tokenizer.json here; GGUF `gpt2`/`bert`
// vocabularies and SentencePiece Unigram models elsewhere):
//
//  - bpe_merges: BPE ranked by an explicit merges list (HF's BPE model), over
//    the characters of a pre-token, byte-level or not, with byte_fallback,
//    unk_token (+ fuse_unk), continuing_subword_prefix, end_of_word_suffix and
//    ignore_merges;
//  - wordpiece: greedy longest-match-first (BERT);
//  - unigram: Viterbi over log-probability scores (T5 / SentencePiece Unigram);
//  - word_level: one id per whole pre-token, else the unk token.
//
// A model turns one pre-token piece (non-empty UTF-8) into ids. Models are
// immutable after construction and safe to share between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llmkit::tok {

// Token strings by id and ids by token string. Ids may have gaps.
class vocab_table {
public:
    vocab_table() = default;
    // Fails with LLMKIT_ERROR_FORMAT (naming `source`) on a negative id, an id
    // of 2^24 or more (a bound on hostile files), or a duplicate id or token;
    // with duplicate_tokens_last_wins, a token given to several ids looks up
    // as the highest of them (each id keeps its token), as llama.cpp reads a
    // GGUF vocabulary.
    vocab_table(std::vector<std::pair<std::string, int32_t>> entries, const std::string &source,
                bool duplicate_tokens_last_wins = false);

    int32_t id(std::string_view token) const {
        if (slots_.empty()) return -1;
        const uint64_t h = std::hash<std::string_view>()(token);
        for (size_t i = size_t(h) & mask_;; i = (i + 1) & mask_) {
            const slot &s = slots_[i];
            if (s.id < 0) return -1;
            if (s.hash == uint32_t(h >> 32) && by_id_[size_t(s.id)] == token) return s.id;
        }
    }
    bool token(int32_t id, std::string_view &out) const {
        if (id < 0 || size_t(id) >= by_id_.size() || !present_[size_t(id)]) return false;
        out = by_id_[size_t(id)];
        return true;
    }
    // Max id + 1 (0 when empty).
    int32_t end_id() const noexcept { return int32_t(by_id_.size()); }
    size_t size() const noexcept { return count_; }

private:
    std::vector<std::string> by_id_;
    std::vector<bool> present_;
    // token -> id: open addressing (linear probing, load <= 1/2) over 8-byte
    // slots holding the id and the high half of the token's hash, so that a
    // lookup compares bytes only on a likely match. Loading a tokenizer.json
    // looks up three tokens per merge; std::unordered_map's nodes made that
    // a sixth of the load time.
    struct slot {
        uint32_t hash;
        int32_t id;  // -1: empty
    };
    std::vector<slot> slots_;
    size_t mask_ = 0;
    size_t count_ = 0;
};

class subword_model {
public:
    virtual ~subword_model() = default;
    // Appends the ids of one pre-token (non-empty).
    virtual void tokenize(std::string_view piece, std::vector<int32_t> &out) const = 0;
    // tokenize() that also appends each id's byte span [first, second) in
    // piece, as HF's models give token offsets (the offsets path; plain
    // encoding never pays for it). The default fails with LLMKIT_ERROR_UNSUPPORTED.
    using span = std::pair<size_t, size_t>;
    virtual void tokenize_spans(std::string_view piece, std::vector<int32_t> &out, std::vector<span> &spans) const;
    const vocab_table &vocab() const noexcept { return vocab_; }

protected:
    vocab_table vocab_;
};

struct bpe_options {
    std::optional<std::string> unk_token;  // characters not in the vocab become this (else they are dropped)
    bool fuse_unk = false;                 // consecutive unknowns become one unk
    bool byte_fallback = false;            // unknown characters become <0xXX> byte tokens when all exist
    std::optional<std::string> continuing_subword_prefix;  // put before every character but the first
    std::optional<std::string> end_of_word_suffix;         // put after the last character
    bool ignore_merges = false;            // a piece that is itself a token is taken whole
    bool duplicate_tokens_last_wins = false;  // GGUF: a repeated token string means its last id (see vocab_table)
};

class bpe_merges final : public subword_model {
public:
    // vocab: (token, id); merges: pairs (a, b) in priority order, whose merge
    // is the token a + b (b without continuing_subword_prefix). Fails with
    // LLMKIT_ERROR_FORMAT naming the merge when a, b or a + b is not in the
    // vocab. A repeated pair keeps its last rank (as HF's map does).
    bpe_merges(std::vector<std::pair<std::string, int32_t>> vocab,
               const std::vector<std::pair<std::string_view, std::string_view>> &merges, bpe_options options,
               const std::string &source);
    void tokenize(std::string_view piece, std::vector<int32_t> &out) const override;
    // A token spans the characters it merged; a byte-fallback token its one byte.
    void tokenize_spans(std::string_view piece, std::vector<int32_t> &out, std::vector<span> &spans) const override;
    const bpe_options &options() const noexcept { return options_; }

private:
    struct merge {
        uint32_t rank;
        int32_t new_id;
    };
    static uint64_t key(int32_t a, int32_t b) { return uint64_t(uint32_t(a)) << 32 | uint32_t(b); }
    // The initial symbols of a piece: (id, byte length) per character, with unknowns resolved.
    void initial_symbols(std::string_view piece, std::vector<std::pair<int32_t, uint32_t>> &symbols) const;
    // tokenize() without the cache; with Lens, each token's byte length too
    // (a template, so plain encoding runs the code it ran before offsets).
    template <bool Lens>
    void merge_word(std::string_view piece, std::vector<int32_t> &out, std::vector<uint32_t> *lens) const;

    bpe_options options_;
    int32_t unk_id_ = -1;
    int32_t byte_ids_[256];  // <0xXX> tokens, -1 when missing
    // (left id, right id) -> merge: open addressing (linear probing, load
    // <= 1/2) over 16-byte slots, so a lookup of the merge loop (and each of
    // the load's inserts) reads one line where std::unordered_map chased a node.
    class merge_table {
    public:
        void reserve(size_t n);
        // Sets key's merge (a repeated pair keeps its last rank, as HF's map does).
        void set(uint64_t key, merge m);
        const merge *find(uint64_t key) const noexcept {
            if (slots_.empty()) return nullptr;
            for (size_t i = size_t((key * 0x9E3779B97F4A7C15ull) >> 32) & mask_;; i = (i + 1) & mask_) {
                const slot &s = slots_[i];
                if (s.key == key) return &s.value;
                if (s.key == k_empty) return nullptr;
            }
        }

    private:
        static constexpr uint64_t k_empty = ~uint64_t(0);  // ids are below 2^24: no real key
        struct slot {
            uint64_t key;
            merge value;
        };
        std::vector<slot> slots_;
        size_t mask_ = 0;
    };
    merge_table merges_;
    uint64_t id_;  // never reused in the process: keys each thread's cache of merged words
};

class wordpiece final : public subword_model {
public:
    // Fails with LLMKIT_ERROR_FORMAT when unk_token is not in the vocab.
    wordpiece(std::vector<std::pair<std::string, int32_t>> vocab, std::string unk_token,
              std::string continuing_subword_prefix, size_t max_input_chars_per_word, const std::string &source);
    void tokenize(std::string_view piece, std::vector<int32_t> &out) const override;
    // Each sub-word spans its bytes; an unknown word is one token over all of it.
    void tokenize_spans(std::string_view piece, std::vector<int32_t> &out, std::vector<span> &spans) const override;

private:
    template <bool Spans>
    void run(std::string_view piece, std::vector<int32_t> &out, std::vector<span> *spans) const;
    std::string prefix_;
    size_t max_chars_;
    int32_t unk_id_;
};

class word_level final : public subword_model {
public:
    // The unk_token may be missing from the vocab: then a pre-token outside
    // the vocab fails at encode time (LLMKIT_ERROR_INVALID_ARGUMENT), as in HF.
    word_level(std::vector<std::pair<std::string, int32_t>> vocab, std::string unk_token, const std::string &source);
    void tokenize(std::string_view piece, std::vector<int32_t> &out) const override;
    void tokenize_spans(std::string_view piece, std::vector<int32_t> &out, std::vector<span> &spans) const override;

private:
    std::string unk_token_;
    int32_t unk_id_;
};

class unigram final : public subword_model {
public:
    // pieces[i] = (token, log-probability score) of id i. unk_id: the id of
    // unknown characters (none: an unknown character is an error at encode
    // time, as in HF). byte_fallback: a piece not in the vocab becomes its
    // <0xXX> byte tokens.
    unigram(const std::vector<std::pair<std::string, double>> &pieces, std::optional<int32_t> unk_id,
            bool byte_fallback, const std::string &source);
    void tokenize(std::string_view piece, std::vector<int32_t> &out) const override;
    // Each piece spans its bytes (a run of unknowns one span); the byte-fallback
    // tokens of a piece all span the whole piece, as in HF.
    void tokenize_spans(std::string_view piece, std::vector<int32_t> &out, std::vector<span> &spans) const override;

private:
    template <bool Spans>
    void run(std::string_view piece, std::vector<int32_t> &out, std::vector<span> *spans) const;
    std::vector<double> scores_;
    std::optional<int32_t> unk_id_;
    bool byte_fallback_;
    double unk_score_ = 0;
    size_t max_len_ = 0;  // longest piece in bytes
    int32_t byte_ids_[256];
};

}  // namespace llmkit::tok
