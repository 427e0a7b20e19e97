// Byte-level BPE training with minbpe's semantics (Karpathy's minbpe
// RegexTokenizer.train): split the corpus into chunks with the pre-tokenizer
// regex, start every chunk as its UTF-8 bytes (ids 0..255 = byte values), and
// repeatedly merge the most frequent adjacent pair into a new token.
//
// Counting is incremental (the "fast BPE" layout HF tokenizers' trainer also
// uses): chunks are deduplicated into words with counts, each pair keeps the
// words it occurs in, and a merge rewrites only those words and adjusts the
// counts of the pairs it changes; a max-heap with lazy re-validation picks the
// next pair.
//
// Tie-breaking is minbpe's, exactly: of the pairs with the highest count
// (adjacent occurrences counted with overlap, as minbpe's get_stats does), the
// one Python's dict met first when counting, i.e. the pair whose first
// occurrence in the corpus (chunk order, then position in the chunk) comes
// first. Since equal chunks share a word numbered by first appearance, that is
// the least (word number, token index) where the pair occurs.
//
// Where minbpe would give two ids the same bytes (merging a+bc after ab+c),
// the vocabulary keeps the first id only (a rank file cannot hold the same
// bytes twice) and training goes on until vocab_size distinct tokens exist;
// the merges themselves stay minbpe's. Training stops early when no pair is
// left (the corpus is exhausted).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.hpp"

namespace llmkit::tok {

struct bpe_train_options {
    size_t vocab_size = 0;                    // >= 256, special tokens not included
    std::string pattern;                      // the pre-tokenizer regex (a preset already resolved)
    std::vector<std::string> special_tokens;  // ids vocab_size, vocab_size + 1, ... in this order
    int n_threads = 0;                        // for splitting a list of texts; 0 = llmkit's default
    // Called after each merge with (merges done, merges wanted); returning
    // false cancels (the training then fails with LLMKIT_ERROR_CANCELLED).
    std::function<bool(size_t, size_t)> progress;
};

struct bpe_train_result {
    std::vector<std::pair<std::string, uint32_t>> ranks;  // token bytes -> rank (= id), 0..255 the bytes
    std::vector<std::pair<uint32_t, uint32_t>> merges;    // in order; merge i made internal id 256 + i
    std::vector<uint32_t> merge_rank;                     // rank of each merge's token (its first id)
};

// Trains on the texts; each is split on its own (a chunk never spans two texts).
bpe_train_result train_bpe(const std::vector<std::string_view> &texts, const bpe_train_options &options);

// train_bpe, then the tokenizer of the ranks with the pattern and special tokens.
std::unique_ptr<byte_level_bpe> train_bpe_tokenizer(const std::vector<std::string_view> &texts,
                                                    const bpe_train_options &options);

// The pattern of a tiktoken preset name (cl100k_base, ...), or nullptr.
const char *tiktoken_preset_pattern(const std::string &name);
// tiktoken's own spelling of a preset's pattern where it differs from ours
// (same splits; tiktoken_ext/openai_public.py's pat_str), or nullptr.
const char *tiktoken_preset_spelling(const std::string &name);

// The tokenizer's ranks as the text of a .tiktoken file, ordered by rank.
std::string tiktoken_text(const byte_level_bpe &tok);

// Writes the tokenizer's ranks as a .tiktoken file (special tokens are not
// stored there, as in tiktoken's own files).
void save_tiktoken(const byte_level_bpe &tok, const std::string &path);

// Writes an HF tokenizer.json (BPE model, Split + ByteLevel pre-tokenizer,
// ByteLevel decoder, the special tokens as added tokens) that HF tokenizers
// loads and that gives the same ids. The merges are derived from the ranks:
// a token is the pair its bytes merge into under the lower ranks.
void save_tokenizer_json(const byte_level_bpe &tok, const std::string &path);

}  // namespace llmkit::tok
