// Writes small GGUF vocabularies into the directory given as argv[1]: seeds
// for fuzz_gguf_vocab. Each llama.cpp vocabulary of the data folder (0.6-4 MB)
// is cut to its first 600 tokens (BERT's to 2200: its first 2000 are
// placeholders and single characters), with the merges among them (gpt2) and
// the special ids that stay in range, so the mutations start from files that load;
// the GPT-2 cut is also written once per pre-tokenizer family that no file of
// the data folder uses, so every family's regexes are reached.
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "formats/gguf.hpp"

using namespace llmkit;

namespace {

// The metadata of `f` with the tokenizer's arrays cut to `keep` tokens and
// `pre` (when not empty) as tokenizer.ggml.pre.
gguf::writer cut(const gguf::file &f, size_t keep, std::string_view pre) {
    gguf::writer w;
    const auto &tokens = f.find("tokenizer.ggml.tokens")->strings;
    const size_t n = tokens.size() < keep ? tokens.size() : keep;
    const std::set<std::string_view> kept(tokens.begin(), tokens.begin() + std::ptrdiff_t(n));
    for (const auto &kv : f.metadata()) {
        const std::string_view key = kv.key;
        const gguf::value &v = kv.val;
        if (key == "tokenizer.ggml.tokens") {
            w.set_string_array(key, std::vector<std::string_view>(tokens.begin(), tokens.begin() + std::ptrdiff_t(n)));
        } else if (key == "tokenizer.ggml.scores" || key == "tokenizer.ggml.token_type") {
            w.set_array(key, v.elem_type, v.raw, v.count < n ? v.count : n);
        } else if (key == "tokenizer.ggml.merges") {
            std::vector<std::string_view> merges;
            for (std::string_view m : v.strings) {
                const size_t sp = m.find(' ', 1);
                if (sp == std::string_view::npos) continue;
                const std::string joined = std::string(m.substr(0, sp)) + std::string(m.substr(sp + 1));
                if (kept.count(m.substr(0, sp)) && kept.count(m.substr(sp + 1)) && kept.count(joined))
                    merges.push_back(m);
            }
            w.set_string_array(key, merges);
        } else if (key == "tokenizer.ggml.pre" && !pre.empty()) {
            continue;  // set below
        } else if (key.size() > 9 && key.substr(key.size() - 9) == "_token_id" && v.is_integer() &&
                   v.as_int() >= int64_t(n)) {
            continue;  // a special token that was cut away
        } else {
            w.set(key, v);
        }
    }
    if (!pre.empty()) w.set_string("tokenizer.ggml.pre", pre);
    return w;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    const std::filesystem::path vocab = std::filesystem::path(LLMKIT_FUZZ_DATA_DIR) / "llama.cpp-vocab";
    std::vector<std::filesystem::path> paths;
    for (const auto &e : std::filesystem::recursive_directory_iterator(vocab))
        if (e.path().extension() == ".gguf") paths.push_back(e.path());
    int written = 0;
    try {
        for (const auto &p : paths) {
            gguf::open_options o;
            o.allow_duplicate_keys = true;  // an early DBRX file repeats a key
            const gguf::file f = gguf::file::open(p.string(), o);
            if (!f.find("tokenizer.ggml.tokens")) continue;
            const size_t keep = f.get_string("tokenizer.ggml.model") == "bert" ? 2200 : 600;
            cut(f, keep, "").write(dir + "/" + p.stem().string() + "-cut.gguf");
            ++written;
            if (p.filename() == "ggml-vocab-gpt-2.gguf")
                for (const char *pre : {"llama3", "chatglm-bpe", "qwen2", "deepseek-v3", "poro-chat", "viking"}) {
                    cut(f, keep, pre).write(dir + "/gpt-2-as-" + pre + "-cut.gguf");
                    ++written;
                }
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "seeds_gguf_vocab: %s\n", e.what());
        return 1;
    }
    if (written < 10) {
        std::fprintf(stderr, "seeds_gguf_vocab: only %d vocabularies under %s\n", written, vocab.c_str());
        return 1;
    }
    std::printf("seeds_gguf_vocab: %d seeds in %s\n", written, dir.c_str());
    return 0;
}
