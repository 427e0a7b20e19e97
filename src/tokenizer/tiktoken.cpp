// tiktoken rank files and the named encodings (pattern + special tokens).

#include "core/error.hpp"
#include "core/file.hpp"
#include "tokenizer/base64.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/train.hpp"

namespace llmkit::tok {

namespace {

std::string quote_line(std::string_view line) {
    std::string s(line.substr(0, 60));
    for (char &c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';
    return "\"" + s + (line.size() > 60 ? "...\"" : "\"");
}

struct preset {
    const char *name;
    const char *alias;
    const char *pattern;
    std::vector<special_token> (*specials)();
    // tiktoken's own spelling of the pattern where it differs (possessive
    // quantifiers and a `\s++$` branch, which tiktoken added for speed): the
    // same splits, so a tokenizer given it gets the preset's scanner.
    const char *tiktoken_spelling;
};

const char *const k_gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char *const k_cl100k_pattern =
    R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)";
const char *const k_o200k_pattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char *const k_llama3_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char *const k_qwen2_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::vector<special_token> r50k_specials() { return {{"<|endoftext|>", 50256}}; }
std::vector<special_token> cl100k_specials() {
    return {{"<|endoftext|>", 100257},
            {"<|fim_prefix|>", 100258},
            {"<|fim_middle|>", 100259},
            {"<|fim_suffix|>", 100260},
            {"<|endofprompt|>", 100276}};
}
std::vector<special_token> o200k_specials() { return {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}}; }
// As meta-llama/llama-models (models/llama3/tokenizer.py) numbers them.
std::vector<special_token> llama3_specials() {
    const char *named[] = {"<|begin_of_text|>", "<|end_of_text|>",   "<|reserved_special_token_0|>",
                           "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
                           "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
                           "<|eot_id|>", "<|python_tag|>", "<|image|>"};
    std::vector<special_token> out;
    int32_t id = 128000;
    for (const char *s : named) out.push_back({s, id++});
    for (int i = 2; id < 128256; ++i) out.push_back({"<|reserved_special_token_" + std::to_string(i) + "|>", id++});
    return out;
}
// Qwen2's tokenizer.json special tokens (Qwen2.5 adds more after 151645).
std::vector<special_token> qwen2_specials() {
    return {{"<|endoftext|>", 151643}, {"<|im_start|>", 151644}, {"<|im_end|>", 151645}};
}

const char *const k_gpt2_tiktoken_spelling =
    R"('(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s)";
const char *const k_cl100k_tiktoken_spelling =
    R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s)";

const preset k_presets[] = {
    {"r50k_base", "gpt2", k_gpt2_pattern, r50k_specials, k_gpt2_tiktoken_spelling},
    {"p50k_base", nullptr, k_gpt2_pattern, r50k_specials, k_gpt2_tiktoken_spelling},
    {"cl100k_base", nullptr, k_cl100k_pattern, cl100k_specials, k_cl100k_tiktoken_spelling},
    {"o200k_base", nullptr, k_o200k_pattern, o200k_specials, nullptr},
    {"llama3", nullptr, k_llama3_pattern, llama3_specials, nullptr},
    {"qwen2", nullptr, k_qwen2_pattern, qwen2_specials, nullptr},
};

}  // namespace

const char *tiktoken_encoding_names() { return "r50k_base (or gpt2), p50k_base, cl100k_base, o200k_base, llama3, qwen2"; }

std::vector<std::pair<std::string, uint32_t>> parse_tiktoken_ranks(std::string_view data, const std::string &source) {
    std::vector<std::pair<std::string, uint32_t>> out;
    out.reserve(data.size() / 12);
    size_t line_no = 0;
    std::string bytes;
    for (size_t pos = 0; pos < data.size();) {
        size_t eol = data.find('\n', pos);
        if (eol == std::string_view::npos) eol = data.size();
        std::string_view line = data.substr(pos, eol - pos);
        pos = eol + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;  // as tiktoken's loader
        const size_t sp = line.find(' ');
        auto bad = [&](const char *why) {
            core::fail(LLMKIT_ERROR_FORMAT, source, ":", line_no, ": ", why, " in ", quote_line(line),
                       " (expected \"base64(token) rank\")");
        };
        if (sp == std::string_view::npos) bad("no space");
        const std::string_view b64 = line.substr(0, sp), num = line.substr(sp + 1);
        if (!base64_decode(b64, bytes)) bad("invalid base64 token");
        if (num.empty() || num.size() > 10) bad("invalid rank");
        uint64_t rank = 0;
        for (char c : num) {
            if (c < '0' || c > '9') bad("invalid rank");
            rank = rank * 10 + uint64_t(c - '0');
        }
        // Ranks index a table, so a hostile file must not make it huge.
        if (rank >= (uint64_t(1) << 24)) bad("rank over 16777215");
        out.emplace_back(bytes, static_cast<uint32_t>(rank));
    }
    if (out.empty()) core::fail(LLMKIT_ERROR_FORMAT, source, ": no ranks");
    return out;
}

std::unique_ptr<byte_level_bpe> load_tiktoken(const std::string &path, const std::string &encoding_name) {
    const std::string data = core::read_file(path);
    return tiktoken_from_ranks(data, path, encoding_name);
}

std::unique_ptr<byte_level_bpe> tiktoken_from_ranks(std::string_view data, const std::string &source,
                                                    const std::string &encoding_name) {
    const preset *p = nullptr;
    for (const preset &q : k_presets)
        if (encoding_name == q.name || (q.alias && encoding_name == q.alias)) p = &q;
    if (!p)
        core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "unknown tiktoken encoding \"", encoding_name, "\"; known: ",
                   tiktoken_encoding_names());
    return std::make_unique<byte_level_bpe>(parse_tiktoken_ranks(data, source), rust_regex_to_pcre2(p->pattern),
                                            p->specials(), source);
}

std::unique_ptr<byte_level_bpe> custom_tiktoken(std::string_view data, const std::string &source,
                                                const std::string &pattern, std::vector<special_token> specials) {
    if (pattern.empty()) core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "the pattern is empty");
    const char *preset = tiktoken_preset_pattern(pattern);
    return std::make_unique<byte_level_bpe>(parse_tiktoken_ranks(data, source),
                                            rust_regex_to_pcre2(preset ? preset : pattern), std::move(specials), source);
}

}  // namespace llmkit::tok

namespace llmkit::tok {

// For BPE training (toktrain): a preset's pattern by name.
const char *tiktoken_preset_pattern(const std::string &name) {
    for (const preset &q : k_presets)
        if (name == q.name || (q.alias && name == q.alias)) return q.pattern;
    return nullptr;
}

const char *tiktoken_preset_spelling(const std::string &name) {
    for (const preset &q : k_presets)
        if (name == q.name || (q.alias && name == q.alias)) return q.tiktoken_spelling;
    return nullptr;
}

}  // namespace llmkit::tok
