// Tokenizers stored in a GGUF file's metadata (`tokenizer.ggml.*`), as
// llama.cpp writes them:
//  - `llama`: SentencePiece-style BPE by piece scores (tokens, scores,
//    token_type 1..6 = normal, unknown, control, user-defined, unused, byte),
//    run by the SentencePiece tokenizer of sentencepiece.hpp;
//  - `gpt2`: byte-level BPE by merges, pre-tokenized by the regex family that
//    `tokenizer.ggml.pre` names (default, gpt-2, falcon, mpt, starcoder,
//    refact, deepseek-llm, deepseek-coder, dbrx, llama3, qwen2, ...);
//  - `bert`: WordPiece with BERT's normalizer and pre-tokenizer.
// gpt2 and bert become a Hugging Face pipeline (hf_json.hpp) built in memory.
// The file is read with the strict GGUF reader of src/formats/gguf.hpp.
#pragma once

#include <memory>
#include <string>

#include "formats/gguf.hpp"
#include "tokenizer/tokenizer.hpp"

namespace llmkit::tok {

struct gguf_vocab_options {
    // Accept a file that repeats a metadata key, keeping the first value (such
    // files exist, e.g. an early DBRX vocabulary; llama.cpp refuses them).
    bool allow_duplicate_keys = false;
};

// Builds the tokenizer of an opened GGUF file. LLMKIT_ERROR_FORMAT naming the
// file and key for a missing key, a value of the wrong type, arrays of
// different lengths, or an id out of range; LLMKIT_ERROR_UNSUPPORTED for a
// tokenizer model llmkit does not have.
std::unique_ptr<tokenizer> tokenizer_from_gguf(const gguf::file &file);
// Opens `path` and builds its tokenizer.
std::unique_ptr<tokenizer> load_gguf_vocab(const std::string &path, const gguf_vocab_options &options = {});

}  // namespace llmkit::tok
