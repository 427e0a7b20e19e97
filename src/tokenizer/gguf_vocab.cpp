#include "tokenizer/gguf_vocab.hpp"

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "tokenizer/hf_json.hpp"
#include "tokenizer/regex.hpp"
#include "tokenizer/sentencepiece.hpp"

namespace llmkit::tok {

namespace {

// The array value of `key`, of element type `elem` (one of them for integers).
const gguf::value &array_of(const gguf::file &f, const char *key, std::initializer_list<gguf::value_type> elems) {
    const gguf::value &v = f.at(key);
    if (v.type != gguf::value_type::array)
        core::fail(LLMKIT_ERROR_FORMAT, f.path(), ": ", key, " is a ", gguf::value_type_name(v.type),
                   ", not an array");
    for (gguf::value_type e : elems)
        if (v.elem_type == e) return v;
    core::fail(LLMKIT_ERROR_FORMAT, f.path(), ": ", key, " is an array of ", gguf::value_type_name(v.elem_type),
               ", not of ", gguf::value_type_name(*elems.begin()));
}

// An optional token id key: -1 when absent; an error when outside [0, n).
int32_t token_id(const gguf::file &f, const char *key, size_t n) {
    const auto v = f.get_int(key);
    if (!v) return -1;
    if (*v < 0 || uint64_t(*v) >= n)
        core::fail(LLMKIT_ERROR_FORMAT, f.path(), ": ", key, " = ", *v, " is not a token id (", n, " tokens)");
    return int32_t(*v);
}

// Fails unless every string of `key` is valid UTF-8, as GGUF requires: the
// gpt2 and bert families become Hugging Face pipelines, whose tokens (and the
// JSON their pipeline parts are described in) are UTF-8.
// (SentencePiece pieces may hold any bytes, as in .model files.)
void check_utf8_strings(const gguf::file &f, const char *key, const std::vector<std::string_view> &strings) {
    for (size_t i = 0; i < strings.size(); ++i)
        if (!is_valid_utf8(strings[i]))
            core::fail(LLMKIT_ERROR_FORMAT, f.path(), ": ", key, "[", i, "] is not valid UTF-8");
}

// tokenizer.ggml.tokens and token_type, which every family has: one type per
// token, at least one token.
struct token_list {
    const std::vector<std::string_view> &tokens;
    std::vector<int64_t> types;
};
token_list tokens_and_types(const gguf::file &f) {
    const auto &tokens = array_of(f, "tokenizer.ggml.tokens", {gguf::value_type::string}).strings;
    if (tokens.empty()) core::fail(LLMKIT_ERROR_FORMAT, f.path(), ": tokenizer.ggml.tokens is empty");
    std::vector<int64_t> types =
        array_of(f, "tokenizer.ggml.token_type", {gguf::value_type::i32, gguf::value_type::u32}).int_array();
    if (types.size() != tokens.size())
        core::fail(LLMKIT_ERROR_FORMAT, f.path(), ": tokenizer.ggml.tokens has ", tokens.size(),
                   " entries but token_type has ", types.size());
    return {tokens, std::move(types)};
}

std::unique_ptr<tokenizer> spm_from_gguf(const gguf::file &f) {
    const auto [tokens, types] = tokens_and_types(f);
    const size_t n = tokens.size();
    if (n > k_spm_max_pieces)
        core::fail(LLMKIT_ERROR_FORMAT, f.path(), ": ", n, " tokens is more than the limit of ", k_spm_max_pieces);
    const std::vector<float> scores = array_of(f, "tokenizer.ggml.scores", {gguf::value_type::f32}).float_array();
    if (scores.size() != n)
        core::fail(LLMKIT_ERROR_FORMAT, f.path(), ": tokenizer.ggml.tokens has ", n, " entries but scores has ",
                   scores.size());
    spm_model m;
    m.algo = spm_model::algorithm::bpe;
    m.remove_extra_whitespaces = false;
    m.add_dummy_prefix = f.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
    m.add_bos = f.get_bool("tokenizer.ggml.add_bos_token").value_or(true);
    m.add_eos = f.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
    m.bos_id = token_id(f, "tokenizer.ggml.bos_token_id", n);
    m.eos_id = token_id(f, "tokenizer.ggml.eos_token_id", n);
    int32_t unk_id = token_id(f, "tokenizer.ggml.unknown_token_id", n);
    m.pieces.resize(n);
    for (size_t i = 0; i < n; ++i) {
        spm_piece &p = m.pieces[i];
        p.text = tokens[i];
        p.score = scores[i];
        const int64_t t = types[i];
        if (t < 1 || t > 6)
            core::fail(LLMKIT_ERROR_FORMAT, f.path(), ": tokenizer.ggml.token_type[", i, "] = ", t,
                       " is not a token type (1..6)");
        p.type = static_cast<spm_type>(t);
        if (p.type == spm_type::byte) m.byte_fallback = true;
        if (p.type == spm_type::unknown && unk_id < 0) unk_id = int32_t(i);
    }
    if (unk_id < 0) core::fail(LLMKIT_ERROR_FORMAT, f.path(), ": no unknown token (tokenizer.ggml.unknown_token_id)");
    // One unknown piece: llama.cpp files also mark unused placeholders as
    // "unknown"; those are never produced by segmentation, like control pieces.
    for (size_t i = 0; i < n; ++i) {
        spm_piece &p = m.pieces[i];
        if (int32_t(i) == unk_id)
            p.type = spm_type::unknown;
        else if (p.type == spm_type::unknown)
            p.type = spm_type::control;
    }
    return std::make_unique<sentencepiece>(std::move(m), f.path());
}


// The pre-tokenizer of each `tokenizer.ggml.pre` family as the sequence of
// regexes llama.cpp splits with (each regex splits the pieces of the previous
// one, keeping matches and the text between them). The patterns are the
// format's: llama.cpp's converter chose the name from the model's original
// tokenizer.json, whose pre-tokenizer these regexes reproduce.
struct pre_family {
    std::vector<const char *> names;
    std::vector<const char *> regexes;
    bool ignore_merges = false;  // a pre-token that is itself a token is kept whole (Llama 3)
};

const char *const k_gpt2_re = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const char *const k_llama3_re =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char *const k_qwen2_re =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const std::vector<pre_family> &pre_families() {
    static const std::vector<pre_family> families = {
        {{"default"}, {"[\\p{P}\\$\\+<=>\\^~\\|]+", k_gpt2_re, "\\p{N}+", "[0-9][0-9][0-9]"}},
        {{"gpt-2", "mpt", "olmo", "jais", "phi-2", "roberta-bpe", "jina-es", "jina-de", "jina-v1-en", "jina-v2-es",
          "jina-v2-de", "jina-v2-code", "gigachat"},
         {k_gpt2_re}},
        {{"falcon"}, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", k_gpt2_re, "[0-9][0-9][0-9]"}},
        {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva"}, {"\\p{N}", k_gpt2_re}},
        {{"llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe"}, {k_llama3_re}, true},
        {{"chatglm-bpe"}, {k_llama3_re}},
        {{"qwen2", "deepseek-r1-qwen", "stablelm2"}, {k_qwen2_re}},
        {{"deepseek-llm"},
         {"[\\r\\n]",
          "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-"
          "\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481"
          "\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-"
          "\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57"
          "\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3"
          "\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124"
          "\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b"
          "\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-"
          "\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f"
          "\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-"
          "\U000118df\U0001e900-\U0001e943]+",
          "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", "\\s+$",
          "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", "\\p{N}+"}},
        {{"deepseek-coder"}, {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+",
                              "\\p{N}"}},
        {{"deepseek-v3"},
         {"\\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
          "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
          "?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
        {{"poro-chat", "bloom", "gpt3-finnish"}, {" ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+"}},
        {{"viking"}, {" ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+", "\\p{N}"}},
    };
    return families;
}

const pre_family &find_family(const gguf::file &f) {
    const auto pre = f.get_string("tokenizer.ggml.pre");
    const std::string_view name = pre ? *pre : std::string_view("default");  // files from before the key: default
    for (const pre_family &fam : pre_families())
        for (const char *n : fam.names)
            if (name == n) return fam;
    core::fail(LLMKIT_ERROR_UNSUPPORTED, f.path(), ": tokenizer.ggml.pre \"", name,
               "\" names a pre-tokenizer llmkit does not know");
}

// Added tokens (control ones special, user-defined ones plain) and a
// post-processor that adds BOS/EOS as add_bos_token / add_eos_token say.
void add_specials(const gguf::file &f, const std::vector<std::string_view> &tokens, const std::vector<int64_t> &types,
                  bool default_add_bos, nlohmann::json &j) {
    nlohmann::json added = nlohmann::json::array();
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (types[i] != 3 && types[i] != 4) continue;
        added.push_back({{"id", i}, {"content", std::string(tokens[i])}, {"special", types[i] == 3},
                         {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"single_word", false}});
    }
    j["added_tokens"] = added;
    const size_t n = tokens.size();
    // BOS A EOS for one text; for a pair, BOS A EOS BOS B:1 EOS:1 (as
    // transformers' Llama tokenizers and Llama 3's tokenizer.json have it).
    nlohmann::json single = nlohmann::json::array(), second = nlohmann::json::array();
    nlohmann::json specials = nlohmann::json::object();
    auto special = [&](const char *id_key, const char *add_key, bool default_add, const char *name) {
        const int32_t id = token_id(f, id_key, n);
        if (id < 0 || !f.get_bool(add_key).value_or(default_add)) return;
        single.push_back({{"SpecialToken", {{"id", name}, {"type_id", 0}}}});
        second.push_back({{"SpecialToken", {{"id", name}, {"type_id", 1}}}});
        specials[name] = {{"id", name}, {"ids", {id}}, {"tokens", {std::string(tokens[size_t(id)])}}};
    };
    special("tokenizer.ggml.bos_token_id", "tokenizer.ggml.add_bos_token", default_add_bos, "bos");
    single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
    second.push_back({{"Sequence", {{"id", "B"}, {"type_id", 1}}}});
    special("tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_eos_token", false, "eos");
    nlohmann::json pair = single;
    pair.insert(pair.end(), second.begin(), second.end());
    j["post_processor"] = {
        {"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
}

// `gpt2`: byte-level BPE by merges, as a Hugging Face pipeline built in memory
// (Split by each family regex, ByteLevel without its own regex, BPE with the
// merges, ByteLevel decoder) and run by hf_tokenizer.
std::unique_ptr<tokenizer> gpt2_from_gguf(const gguf::file &f) {
    const pre_family &family = find_family(f);
    const auto [tokens, types] = tokens_and_types(f);
    check_utf8_strings(f, "tokenizer.ggml.tokens", tokens);
    const auto &merges = array_of(f, "tokenizer.ggml.merges", {gguf::value_type::string}).strings;
    check_utf8_strings(f, "tokenizer.ggml.merges", merges);
    // The model is built directly: as JSON, its 50k-250k tokens and merges
    // (a std::map of strings and an array of arrays) took most of the load.
    std::vector<std::pair<std::string, int32_t>> vocab;
    vocab.reserve(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) vocab.emplace_back(tokens[i], int32_t(i));
    std::vector<std::pair<std::string_view, std::string_view>> merge_list;
    merge_list.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
        const std::string_view m = merges[i];
        const size_t sp = m.find(' ', 1);  // the left part never starts with a space (it would be "Ġ")
        if (sp == std::string_view::npos || sp + 1 >= m.size())
            core::fail(LLMKIT_ERROR_FORMAT, f.path(), ": tokenizer.ggml.merges[", i, "] = \"", m,
                       "\" is not two tokens separated by a space");
        merge_list.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
    bpe_options options;
    options.ignore_merges = family.ignore_merges;
    options.duplicate_tokens_last_wins = true;  // as llama.cpp (and the JSON object this was built as) reads them
    auto model = std::make_unique<bpe_merges>(std::move(vocab), merge_list, std::move(options),
                                              f.path() + ": tokenizer.ggml");
    nlohmann::json pre = nlohmann::json::array();
    for (const char *re : family.regexes)
        pre.push_back({{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}});
    pre.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}});
    nlohmann::json j = {
        {"version", "1.0"},
        {"normalizer", nullptr},
        {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", pre}}},
        {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
    };
    add_specials(f, tokens, types, false, j);
    return hf_tokenizer::from_document(j, f.path(), std::move(model));
}

// `bert`: WordPiece. llama.cpp's converter writes a word-initial token "w" as
// "▁w" and a continuation "##w" as "w"; that is undone here, and the pipeline
// is BERT's (BertNormalizer lowercasing, BertPreTokenizer, WordPiece).
std::unique_ptr<tokenizer> bert_from_gguf(const gguf::file &f) {
    const auto [tokens, types] = tokens_and_types(f);
    check_utf8_strings(f, "tokenizer.ggml.tokens", tokens);
    const int32_t unk = token_id(f, "tokenizer.ggml.unknown_token_id", tokens.size());
    if (unk < 0) core::fail(LLMKIT_ERROR_FORMAT, f.path(), ": no tokenizer.ggml.unknown_token_id");
    nlohmann::json vocab = nlohmann::json::object();
    std::vector<std::string_view> original(tokens.size());
    std::vector<std::string> storage(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
        const std::string_view t = tokens[i];
        if (types[i] == 3)
            storage[i] = std::string(t);
        else if (t.substr(0, 3) == "\xE2\x96\x81")
            storage[i] = std::string(t.substr(3));
        else
            storage[i] = "##" + std::string(t);
        if (storage[i].empty() || storage[i] == "##") storage[i] = std::string(t);
        vocab[storage[i]] = i;
        original[i] = storage[i];
    }
    nlohmann::json j = {
        {"version", "1.0"},
        {"normalizer",
         {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true}, {"strip_accents", nullptr},
          {"lowercase", true}}},
        {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
        {"model",
         {{"type", "WordPiece"}, {"unk_token", storage[size_t(unk)]}, {"continuing_subword_prefix", "##"},
          {"max_input_chars_per_word", 100}, {"vocab", vocab}}},
        {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
    };
    add_specials(f, original, types, false, j);
    // BERT's [CLS] ... [SEP] when special tokens are added.
    const int32_t cls = token_id(f, "tokenizer.ggml.cls_token_id", tokens.size());
    const int32_t sep = token_id(f, "tokenizer.ggml.seperator_token_id", tokens.size());
    if (cls >= 0 && sep >= 0)
        j["post_processor"] = {{"type", "BertProcessing"},
                               {"cls", {storage[size_t(cls)], cls}},
                               {"sep", {storage[size_t(sep)], sep}}};
    return hf_tokenizer::from_document(j, f.path());
}

}  // namespace

std::unique_ptr<tokenizer> tokenizer_from_gguf(const gguf::file &f) {
    const auto model = f.get_string("tokenizer.ggml.model");
    if (!model) core::fail(LLMKIT_ERROR_FORMAT, f.path(), ": no tokenizer.ggml.model key (the file has no tokenizer)");
    if (*model == "llama") return spm_from_gguf(f);
    if (*model == "gpt2") return gpt2_from_gguf(f);
    if (*model == "bert") return bert_from_gguf(f);
    core::fail(LLMKIT_ERROR_UNSUPPORTED, f.path(), ": unknown GGUF tokenizer model \"", *model, "\"");
}

std::unique_ptr<tokenizer> load_gguf_vocab(const std::string &path, const gguf_vocab_options &options) {
    gguf::open_options o;
    o.allow_duplicate_keys = options.allow_duplicate_keys;
    const gguf::file f = gguf::file::open(path, o);
    return tokenizer_from_gguf(f);
}

}  // namespace llmkit::tok
