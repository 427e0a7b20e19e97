// tokenizer.json for a byte-level BPE tokenizer (HF tokenizers' layout).
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "tokenizer/train.hpp"

namespace llmkit::tok {

namespace {

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others
// for code points 256 and up, so that every token is a printable string.
std::vector<std::string> byte_level_alphabet() {
    std::vector<std::string> out(256);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        const unsigned cp = printable ? unsigned(b) : unsigned(next++);
        std::string s;
        if (cp < 0x80) s += char(cp);
        else {
            s += char(0xC0 | (cp >> 6));
            s += char(0x80 | (cp & 0x3F));
        }
        out[size_t(b)] = s;
    }
    return out;
}

// The two tokens that the bytes of rank `r` merge into when only ranks below
// r may be used (tiktoken's merge loop cut off at r). False when they merge
// into more than two parts: no single merge makes the token.
bool split_of(const rank_table &ranks, std::string_view token, uint32_t r, std::string_view &left,
              std::string_view &right) {
    std::vector<size_t> start;  // part starts; parts end where the next starts
    for (size_t i = 0; i <= token.size(); ++i) start.push_back(i);
    for (;;) {
        uint32_t best = k_no_rank;
        size_t at = 0;
        for (size_t i = 0; i + 2 < start.size(); ++i) {
            const uint32_t q = ranks.rank(token.substr(start[i], start[i + 2] - start[i]));
            if (q < r && q < best) best = q, at = i;
        }
        if (best == k_no_rank) break;
        start.erase(start.begin() + std::ptrdiff_t(at) + 1);
    }
    if (start.size() != 3) return false;
    left = token.substr(0, start[1]);
    right = token.substr(start[1]);
    return true;
}

}  // namespace

void save_tokenizer_json(const byte_level_bpe &tok, const std::string &path) {
    using nlohmann::ordered_json;
    const std::vector<std::string> alphabet = byte_level_alphabet();
    auto visible = [&](std::string_view bytes) {
        std::string s;
        for (unsigned char c : bytes) s += alphabet[c];
        return s;
    };
    const rank_table &ranks = tok.ranks();
    ordered_json vocab = ordered_json::object();
    ordered_json merges = ordered_json::array();
    std::string_view bytes, left, right;
    for (uint32_t r = 0; r < ranks.end_rank(); ++r) {
        if (!ranks.bytes(r, bytes)) continue;
        vocab[visible(bytes)] = r;
        // A token no merge reaches stays in the vocabulary; ignore_merges
        // finds it when it is a whole piece, as tiktoken does.
        if (bytes.size() >= 2 && split_of(ranks, bytes, r, left, right))
            merges.push_back(visible(left) + " " + visible(right));
    }
    ordered_json added = ordered_json::array();
    for (int32_t id = 0; id < tok.vocab_size(); ++id) {
        if (!tok.is_special(id) || !tok.id_to_token(id, bytes)) continue;
        added.push_back({{"id", id}, {"content", std::string(bytes)}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", true}});
    }
    ordered_json j;
    j["version"] = "1.0";
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
    j["added_tokens"] = added;
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", tok.pre_tokenizer().pattern()}}}, {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
    j["post_processor"] = nullptr;
    j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
    j["model"] = {{"type", "BPE"},           {"dropout", nullptr},     {"unk_token", nullptr},
                  {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                  {"byte_fallback", false},  {"ignore_merges", true}, {"vocab", vocab},
                  {"merges", merges}};
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) core::fail(LLMKIT_ERROR_IO, "cannot open ", path, " for writing");
    f << j.dump(1, ' ', false) << '\n';
    f.flush();
    if (!f) core::fail(LLMKIT_ERROR_IO, "writing ", path, " failed");
}

}  // namespace llmkit::tok
