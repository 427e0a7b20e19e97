// The stages of a Hugging Face tokenizer.json pipeline, each built from its
// JSON object: normalizers, pre-tokenizers, post-processors and decoders
// (the model lives in hf_models.hpp). Every stage is immutable once built.
//
// Errors while building: LLMKIT_ERROR_FORMAT for malformed JSON, naming the
// JSON path (e.g. "/pre_tokenizer/pretokenizers/1/behavior"), and
// LLMKIT_ERROR_UNSUPPORTED naming a component type llmkit does not implement.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.hpp"

namespace llmkit::tok::hf {

using json = nlohmann::json;

// --- JSON access with errors that name the path ------------------------------
[[noreturn]] void bad(const std::string &path, const std::string &what);
[[noreturn]] void unsupported(const std::string &path, const std::string &what);
// A member that must exist (any type).
const json &member(const json &obj, const char *key, const std::string &path);
std::string str(const json &obj, const char *key, const std::string &path);
// A string member that may be missing or null.
bool opt_str(const json &obj, const char *key, const std::string &path, std::string &out);
bool boolean(const json &obj, const char *key, const std::string &path, bool fallback);
uint64_t uint(const json &obj, const char *key, const std::string &path, uint64_t fallback, uint64_t max);
// The "type" of a component object; empty when missing.
std::string type_of(const json &obj, const std::string &path);
// The value of a {"String": s} or {"Regex": r} pattern object; is_regex tells which.
std::string pattern_of(const json &obj, const std::string &path, bool &is_regex);

// --- alignment (offsets) -------------------------------------------------------
// Text on its way through the pipeline with, for each of its bytes, the byte
// range [first, second) of the input it came from: HF's NormalizedString
// alignments, in input coordinates. Only the offsets path carries it; plain
// encoding rewrites bare strings.
struct aligned_text {
    using range = std::pair<size_t, size_t>;
    std::string text;
    std::vector<range> align;  // one per byte of text

    // s unchanged, as bytes [base, base + s.size()) of the input: each byte
    // aligned to its whole character (as HF aligns a fresh string).
    static aligned_text identity(std::string_view s, size_t base);
    aligned_text sub(size_t b, size_t e) const;
    // HF's NormalizedString::transform: the new text is the characters of
    // `changes`, consuming the old text from character `initial_removed`
    // (those before it are dropped). A change of 0 replaces the next old
    // character and takes its alignment; -n also drops the n characters after
    // it; +1 inserts a character aligned like the last byte consumed.
    void transform(const std::vector<std::pair<char32_t, int>> &changes, size_t initial_removed);
    // Normalized bytes [b, e) as an input range: HF's convert_offsets (the
    // first byte's start to the last byte's end).
    range original(size_t b, size_t e) const;
};

// --- stages --------------------------------------------------------------------
class normalizer {
public:
    virtual ~normalizer() = default;
    virtual void normalize(std::string &s) const = 0;
    // normalize() that keeps s.align (the same text as normalize()).
    virtual void normalize_aligned(aligned_text &s) const = 0;
};

// A piece of text on its way to the model. at_origin: it begins at byte 0
// of the original text (Metaspace's prepend_scheme "first" needs it).
struct piece {
    std::string text;
    bool at_origin;
};

// A piece with its alignment (the offsets path).
struct aligned_piece {
    aligned_text text;
    bool at_origin;
};

class pre_tokenizer {
public:
    virtual ~pre_tokenizer() = default;
    // Splits/rewrites the pieces; empty pieces are dropped by the caller.
    virtual void pre_tokenize(std::vector<piece> &pieces) const = 0;
    // The same splits and rewrites, keeping each piece's alignment.
    virtual void pre_tokenize_aligned(std::vector<aligned_piece> &pieces) const = 0;
};

// The string of a token id (the vocab's, or an added token's content).
using token_text_fn = std::function<std::string_view(int32_t)>;

// HF's PostProcessor::process_encodings: adds the special tokens around one
// text or a pair (a template merges the pair into one encoding) and trims
// offsets. Tokens it adds have sequence id -1 and the empty span at 0, as HF
// gives them; trim_offsets applies with or without add_special, as in HF,
// counted in characters of the token's text (as the Python package, which
// converts offsets to characters before post-processing, does).
class post_processor {
public:
    virtual ~post_processor() = default;
    // encodings: 1 or 2, in input order; inputs[s] is the text of sequence s.
    virtual void process(std::vector<encoding> &encodings, bool add_special, const token_text_fn &token_text,
                         const std::string_view *inputs) const = 0;
    // The largest id it adds, or -1.
    virtual int32_t max_id() const = 0;
};

class decoder {
public:
    virtual ~decoder() = default;
    // HF's decode_chain: token strings in, strings out (concatenated by the caller).
    virtual void decode_chain(std::vector<std::string> &tokens) const = 0;
};

// null (or a missing member) gives nullptr.
std::unique_ptr<normalizer> make_normalizer(const json &j, const std::string &path);
std::unique_ptr<pre_tokenizer> make_pre_tokenizer(const json &j, const std::string &path);
std::unique_ptr<post_processor> make_post_processor(const json &j, const std::string &path);
std::unique_ptr<decoder> make_decoder(const json &j, const std::string &path);

// GPT-2's map from bytes to printable characters (ByteLevel) and its inverse
// (-1 for a character that is no byte's image).
const std::string &byte_to_char(unsigned char b);
int char_to_byte(char32_t c);

// Replaces ill-formed UTF-8 in s by U+FFFD as Rust's String::from_utf8_lossy
// does (one per maximal ill-formed subpart).
std::string utf8_lossy(std::string_view s);

}  // namespace llmkit::tok::hf
