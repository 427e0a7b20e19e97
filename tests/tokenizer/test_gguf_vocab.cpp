// Tokenizers from GGUF metadata (tokenizer.ggml.*): exact ids against
// llama.cpp's vectors (Hugging Face ground truth) for the `llama` (SentencePiece
// BPE) vocabularies, the same ids as the .model file, and malformed metadata
// built with the GGUF writer: missing keys, wrong array types, lengths that
// disagree, ids out of range, duplicate keys.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "formats/gguf.hpp"
#include "tokenizer/gguf_vocab.hpp"
#include "tokenizer/sentencepiece.hpp"

namespace {

std::string read_text(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f.good());
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::vector<int32_t> encode(const llmkit::tok::tokenizer &t, std::string_view text, bool add_special = false) {
    llmkit::tok::encode_options o;
    o.add_special_tokens = add_special;
    std::vector<int32_t> ids;
    t.encode(text, o, ids);
    return ids;
}

std::string decode(const llmkit::tok::tokenizer &t, const std::vector<int32_t> &ids) {
    std::string s;
    t.decode(ids.data(), ids.size(), s);
    return s;
}

// Runs every .inp/.out pair of a vocab; returns how many texts gave the exact ids.
int run_vectors(const llmkit::tok::tokenizer &t, const std::string &gguf_path, size_t &total, bool lossless = true) {
    const std::string sep = "\n__ggml_vocab_test__\n";
    const std::string inp = read_text(gguf_path + ".inp");
    std::istringstream out(read_text(gguf_path + ".out"));
    int exact = 0;
    total = 0;
    std::string line;
    for (size_t pos = 0;;) {
        const size_t at = inp.find(sep, pos);
        if (at == std::string::npos) break;
        const std::string text = inp.substr(pos, at - pos);
        pos = at + sep.size();
        REQUIRE(std::getline(out, line));
        std::istringstream ls(line);
        std::vector<int32_t> expected;
        for (int32_t id; ls >> id;) expected.push_back(id);
        ++total;
        const auto got = encode(t, text);
        INFO("text: \"" << text << "\"");
        CHECK(got == expected);
        exact += got == expected;
        if (lossless) CHECK(decode(t, got) == text);
    }
    return exact;
}

// A small valid `llama` vocabulary: <unk>, <s>, </s>, "▁", "a", "b", "▁a", "ab".
llmkit::gguf::writer small_llama_vocab() {
    llmkit::gguf::writer w;
    w.set_string("general.architecture", "llama");
    w.set_string("tokenizer.ggml.model", "llama");
    const std::vector<std::string_view> tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b",
                                                  "\xE2\x96\x81" "a", "ab"};
    const std::vector<float> scores = {0, 0, 0, -5, -5, -5, -1, -2};
    const std::vector<int32_t> types = {2, 3, 3, 1, 1, 1, 1, 1};
    w.set_string_array("tokenizer.ggml.tokens", tokens);
    w.set_array("tokenizer.ggml.scores", llmkit::gguf::value_type::f32, scores.data(), scores.size());
    w.set_array("tokenizer.ggml.token_type", llmkit::gguf::value_type::i32, types.data(), types.size());
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    return w;
}

std::unique_ptr<llmkit::tok::tokenizer> load_bytes(const llmkit::gguf::writer &w) {
    const std::vector<uint8_t> bytes = w.serialize();
    const auto f = llmkit::gguf::file::parse(bytes.data(), bytes.size(), "vocab.gguf");
    return llmkit::tok::tokenizer_from_gguf(f);
}

// The error of loading w: status and message (which must name the file).
std::pair<llmkit_status, std::string> error_of(const llmkit::gguf::writer &w) {
    try {
        load_bytes(w);
    } catch (const llmkit::core::error &e) {
        CHECK(std::string(e.what()).find("vocab.gguf") != std::string::npos);
        return {e.status(), e.what()};
    }
    return {LLMKIT_OK, ""};
}

}  // namespace

#ifdef LLMKIT_TEST_DATA_DIR
static const std::string k_vocab = std::string(LLMKIT_TEST_DATA_DIR) + "/llama.cpp-vocab/";

TEST_CASE("GGUF llama vocabularies give llama.cpp's expected ids (llama-spm, phi-3)", "[gguf_vocab][data]") {
    for (const char *name : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf"}) {
        INFO(name);
        const auto t = llmkit::tok::load_gguf_vocab(k_vocab + name);
        size_t total = 0;
        const int exact = run_vectors(*t, k_vocab + name, total);
        CHECK(total == 46);
        CHECK(exact == 46);
    }
}

TEST_CASE("GGUF llama-spm equals the Llama 2 .model file, BOS from add_bos_token", "[gguf_vocab][data]") {
    const auto g = llmkit::tok::load_gguf_vocab(k_vocab + "ggml-vocab-llama-spm.gguf");
    const auto m = llmkit::tok::load_sentencepiece(std::string(LLMKIT_TEST_DATA_DIR) + "/sentencepiece/llama2/tokenizer.model");
    REQUIRE(g->vocab_size() == m->vocab_size());
    const std::string text = read_text(std::string(LLMKIT_TEST_DATA_DIR) + "/corpus/mixed-slice.txt");
    CHECK(encode(*g, text) == encode(*m, text));
    const auto with_bos = encode(*g, "Hello", true);
    REQUIRE(!with_bos.empty());
    CHECK(with_bos.front() == 1);
    CHECK(g->is_special(1));
}

TEST_CASE("GGUF gpt2 and bert vocabularies give llama.cpp's expected ids", "[gguf_vocab][data]") {
    for (const char *name : {"ggml-vocab-gpt-2.gguf", "ggml-vocab-mpt.gguf", "ggml-vocab-falcon.gguf",
                             "ggml-vocab-starcoder.gguf", "ggml-vocab-refact.gguf", "ggml-vocab-deepseek-llm.gguf",
                             "ggml-vocab-deepseek-coder.gguf", "ggml-vocab-bert-bge.gguf"}) {
        INFO(name);
        const auto t = llmkit::tok::load_gguf_vocab(k_vocab + name);
        size_t total = 0;
        // Not lossless: BERT lowercases; DeepSeek's vocabularies have user-defined tokens that are single
        // byte-level characters ("ü" standing for the byte 0xFC), matched in the raw text as llama.cpp and HF
        // do, so "Führer" decodes (as in HF) through the byte-level decoder to "F\xEF\xBF\xBDhrer".
        const std::string n(name);
        const bool lossless = n.find("bert") == std::string::npos && n.find("deepseek") == std::string::npos;
        const int exact = run_vectors(*t, k_vocab + name, total, lossless);
        CHECK(total == 46);
        CHECK(exact == 46);
    }
}

TEST_CASE("GGUF vocabularies without vectors load and round-trip (baichuan, gpt-neox)", "[gguf_vocab][data]") {
    for (const char *name : {"ggml-vocab-baichuan.gguf", "ggml-vocab-gpt-neox.gguf"}) {
        INFO(name);
        const auto t = llmkit::tok::load_gguf_vocab(k_vocab + name);
        CHECK(t->vocab_size() > 50000);
        for (const char *text : {"Hello world", "  leading spaces", "\xE4\xBD\xA0\xE5\xA5\xBD, \xE4\xB8\x96\xE7\x95\x8C",
                                 "tabs\tand\nnewlines", "\xF0\x9F\x98\x80 emoji", "x = 12345; // code", ""}) {
            INFO(text);
            CHECK(decode(*t, encode(*t, text)) == text);
        }
        const std::string corpus = read_text(std::string(LLMKIT_TEST_DATA_DIR) + "/corpus/mixed-slice.txt");
        CHECK(decode(*t, encode(*t, corpus)) == corpus);
    }
}

TEST_CASE("a GGUF file with a duplicate key is refused unless allowed", "[gguf_vocab][data]") {
    const std::string dbrx = k_vocab + "dbrx-pr/ggml-vocab-dbrx.gguf";
    try {
        llmkit::tok::load_gguf_vocab(dbrx);
        FAIL("duplicate key accepted");
    } catch (const llmkit::core::error &e) {
        CHECK(e.status() == LLMKIT_ERROR_FORMAT);
        CHECK(std::string(e.what()).find("general.file_type") != std::string::npos);
    }
    // With the option (first value kept) it is cl100k_base with the Llama 3 regex: 43/43.
    llmkit::tok::gguf_vocab_options o;
    o.allow_duplicate_keys = true;
    const auto t = llmkit::tok::load_gguf_vocab(dbrx, o);
    size_t total = 0;
    const int exact = run_vectors(*t, dbrx, total);
    CHECK(total == 43);
    CHECK(exact == 43);
}
#endif

TEST_CASE("a small GGUF llama vocabulary encodes by scores", "[gguf_vocab]") {
    const auto t = load_bytes(small_llama_vocab());
    CHECK(t->vocab_size() == 8);
    // "▁ab": "▁a" (-1) beats "ab" (-2).
    CHECK(encode(*t, "ab") == std::vector<int32_t>{6, 5});
    CHECK(encode(*t, "ab", true) == std::vector<int32_t>{1, 6, 5});  // add_bos_token defaults to true
    CHECK(decode(*t, {1, 6, 5}) == "ab");
    CHECK(encode(*t, "bab") == std::vector<int32_t>{3, 5, 7});
}

TEST_CASE("a GGUF llama vocabulary with add_eos_token: pairs put BOS and EOS around each text, empty spans at 0",
          "[gguf_vocab]") {
    llmkit::gguf::writer w = small_llama_vocab();
    w.set_bool("tokenizer.ggml.add_eos_token", true);
    const auto t = load_bytes(w);
    CHECK(encode(*t, "ab", true) == std::vector<int32_t>{1, 6, 5, 2});
    llmkit::tok::encode_options o;
    o.add_special_tokens = true;
    llmkit::tok::encoding e;
    t->encode_pair("ab", "b", o, true, e);
    CHECK(e.ids == std::vector<int32_t>{1, 6, 5, 2, 1, 3, 5, 2});
    CHECK(e.sequence_ids == std::vector<int32_t>{-1, 0, 0, -1, -1, 1, 1, -1});
    CHECK(e.type_ids == std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 1});
    // Each text's spans in its own bytes; the added BOS and EOS at (0, 0).
    const std::vector<std::pair<size_t, size_t>> spans = {{0, 0}, {0, 1}, {1, 2}, {0, 0},
                                                          {0, 0}, {0, 0}, {0, 1}, {0, 0}};
    CHECK(e.spans == spans);
}

TEST_CASE("a GGUF gpt2 vocabulary with a token given twice reads as llama.cpp reads it: the last id", "[gguf_vocab]") {
    llmkit::gguf::writer w;
    w.set_string("general.architecture", "gpt2");
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "gpt-2");
    const std::vector<std::string_view> tokens = {"a", "b", "ab", "<|end|>", "ab"};
    const std::vector<int32_t> types = {1, 1, 1, 3, 1};
    w.set_string_array("tokenizer.ggml.tokens", tokens);
    w.set_array("tokenizer.ggml.token_type", llmkit::gguf::value_type::i32, types.data(), types.size());
    w.set_string_array("tokenizer.ggml.merges", {"a b"});
    const auto t = load_bytes(w);
    CHECK(t->vocab_size() == 5);
    CHECK(t->token_to_id("ab") == 4);
    std::string_view s2, s4;
    REQUIRE(t->id_to_token(2, s2));
    REQUIRE(t->id_to_token(4, s4));
    CHECK((s2 == "ab" && s4 == "ab"));
    CHECK(encode(*t, "abab") == std::vector<int32_t>{4, 4});
    CHECK(decode(*t, {2, 4, 0}) == "ababa");
}

TEST_CASE("malformed GGUF tokenizer metadata gives a clear error", "[gguf_vocab]") {
    using llmkit::gguf::value_type;
    {
        auto w = small_llama_vocab();
        w.remove("tokenizer.ggml.model");
        const auto [status, msg] = error_of(w);
        CHECK(status == LLMKIT_ERROR_FORMAT);
        CHECK(msg.find("tokenizer.ggml.model") != std::string::npos);
    }
    {
        auto w = small_llama_vocab();
        w.remove("tokenizer.ggml.scores");
        const auto [status, msg] = error_of(w);
        CHECK(status == LLMKIT_ERROR_FORMAT);
        CHECK(msg.find("tokenizer.ggml.scores") != std::string::npos);
    }
    {  // scores as integers
        auto w = small_llama_vocab();
        const std::vector<int32_t> ints(8, 0);
        w.set_array("tokenizer.ggml.scores", value_type::i32, ints.data(), ints.size());
        const auto [status, msg] = error_of(w);
        CHECK(status == LLMKIT_ERROR_FORMAT);
        CHECK(msg.find("array of") != std::string::npos);
    }
    {  // tokens not an array
        auto w = small_llama_vocab();
        w.set_string("tokenizer.ggml.tokens", "abc");
        CHECK(error_of(w).second.find("not an array") != std::string::npos);
    }
    {  // lengths disagree
        auto w = small_llama_vocab();
        const std::vector<float> short_scores(5, 0.f);
        w.set_array("tokenizer.ggml.scores", value_type::f32, short_scores.data(), short_scores.size());
        CHECK(error_of(w).second.find("scores has 5") != std::string::npos);
    }
    {  // token type out of 1..6
        auto w = small_llama_vocab();
        const std::vector<int32_t> types = {2, 3, 3, 1, 1, 9, 1, 1};
        w.set_array("tokenizer.ggml.token_type", value_type::i32, types.data(), types.size());
        CHECK(error_of(w).second.find("token_type[5] = 9") != std::string::npos);
    }
    {  // ids out of range
        auto w = small_llama_vocab();
        w.set_u32("tokenizer.ggml.bos_token_id", 8);
        CHECK(error_of(w).second.find("bos_token_id = 8") != std::string::npos);
        auto w2 = small_llama_vocab();
        w2.set_i32("tokenizer.ggml.eos_token_id", -3);
        CHECK(error_of(w2).first == LLMKIT_ERROR_FORMAT);
    }
    {  // an unknown model and an unsupported one
        auto w = small_llama_vocab();
        w.set_string("tokenizer.ggml.model", "rwkv-world");
        CHECK(error_of(w).first == LLMKIT_ERROR_UNSUPPORTED);
    }
    {  // empty vocabulary
        auto w = small_llama_vocab();
        w.set_string_array("tokenizer.ggml.tokens", {});
        const auto [status, msg] = error_of(w);
        CHECK(status == LLMKIT_ERROR_FORMAT);
        CHECK(msg.find("tokenizer.ggml.tokens is empty") != std::string::npos);
    }
    // One token_type per token, in every family (gpt2 and bert are checked
    // before their merges or special ids are read).
    for (const char *model : {"llama", "gpt2", "bert"}) {
        INFO(model);
        auto w = small_llama_vocab();
        w.set_string("tokenizer.ggml.model", model);
        const std::vector<int32_t> types = {2, 3, 3, 1, 1};
        w.set_array("tokenizer.ggml.token_type", value_type::i32, types.data(), types.size());
        const auto [status, msg] = error_of(w);
        CHECK(status == LLMKIT_ERROR_FORMAT);
        CHECK(msg.find("tokenizer.ggml.tokens has 8 entries but token_type has 5") != std::string::npos);
    }
    // Tokens and merges that are not UTF-8 (GGUF strings are UTF-8): gpt2 and
    // bert become Hugging Face pipelines, so they are refused by name (they
    // once failed inside the JSON writer; found by fuzz_gguf_vocab). llama
    // pieces may hold any bytes.
    for (const char *model : {"gpt2", "bert"}) {
        INFO(model);
        auto w = small_llama_vocab();
        w.set_string("tokenizer.ggml.model", model);
        w.set_string_array("tokenizer.ggml.tokens",
                           {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b\x8D", "\xE2\x96\x81" "a", "ab"});
        const auto [status, msg] = error_of(w);
        CHECK(status == LLMKIT_ERROR_FORMAT);
        CHECK(msg.find("tokenizer.ggml.tokens[5] is not valid UTF-8") != std::string::npos);
    }
    {
        auto w = small_llama_vocab();
        w.set_string("tokenizer.ggml.model", "gpt2");
        w.set_string_array("tokenizer.ggml.merges", {"a b", "\xC3 b"});
        const auto [status, msg] = error_of(w);
        CHECK(status == LLMKIT_ERROR_FORMAT);
        CHECK(msg.find("tokenizer.ggml.merges[1] is not valid UTF-8") != std::string::npos);
    }
    {
        auto w = small_llama_vocab();
        w.set_string_array("tokenizer.ggml.tokens",
                           {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b\x8D", "\xE2\x96\x81" "a", "ab"});
        CHECK(load_bytes(w)->vocab_size() == 8);
    }
    {  // decode of an id out of range
        const auto t = load_bytes(small_llama_vocab());
        std::string out;
        const int32_t ids[] = {3, 99};
        CHECK_THROWS_AS(t->decode(ids, 2, out), llmkit::core::error);
    }
}
