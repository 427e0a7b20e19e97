// BPE training (minbpe's semantics): a worked example derived by hand from
// the algorithm, tie-breaking by first occurrence, the C API's options and
// errors, cancellation, and saving + reloading the ranks. Identity with a
// Python reimplementation of minbpe on real text is in
// tests/python/test_tokenizer_train.py.
#include <catch2/catch.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "llmkit/llmkit.hpp"
#include "tokenizer/train.hpp"

using namespace llmkit;

namespace {

// The tokens made by the merges, in order (ids 256, 257, ...).
std::vector<std::string> learned(const tok::bpe_train_result &r) {
    std::vector<std::string> out;
    for (size_t i = 256; i < r.ranks.size(); ++i) out.push_back(r.ranks[i].first);
    return out;
}

tok::bpe_train_options whole_text(size_t vocab) {
    tok::bpe_train_options o;
    o.vocab_size = vocab;
    o.pattern = "[\\s\\S]+";  // one chunk: no pre-tokenizer split
    return o;
}

}  // namespace

TEST_CASE("the classic aaabdaaabac example, by minbpe's rules", "[train]") {
    // Counts with overlap: aa 4 (two in each "aaa"), ab 2, ... -> aa.
    // Left-to-right merge: Z a b d Z a b a c; Za 2 and ab 2 tie, Za occurs
    // first -> Za = "aaa"; then Y b d Y b a c: Yb 2 -> "aaab".
    const auto r = tok::train_bpe({"aaabdaaabac"}, whole_text(259));
    CHECK(learned(r) == std::vector<std::string>{"aa", "aaa", "aaab"});
    CHECK(r.merges == std::vector<std::pair<uint32_t, uint32_t>>{{'a', 'a'}, {256, 'a'}, {257, 'b'}});
}

TEST_CASE("ties go to the pair that occurs first; chunks never merge across the split", "[train]") {
    // Every pair occurs once: the first one (x,y) wins, then (xy, z) ...
    CHECK(learned(tok::train_bpe({"xyzw"}, whole_text(259))) == std::vector<std::string>{"xy", "xyz", "xyzw"});
    // Two texts are two chunks: "ba" never forms across them, "ab" twice wins.
    const auto r = tok::train_bpe({"ab", "ab", "ba"}, whole_text(258));
    CHECK(learned(r) == std::vector<std::string>{"ab", "ba"});
    // With a word-splitting pattern the space-prefixed words are the chunks.
    tok::bpe_train_options o = whole_text(300);
    o.pattern = tok::tiktoken_preset_pattern("cl100k_base");
    const auto w = tok::train_bpe({"the cat the hat the"}, o);
    CHECK(learned(w).front() == "th");  // "th" and "he" occur 3 times each; "th" is met first
    for (const std::string &t : learned(w)) CHECK(t.find("e ") == std::string::npos);  // never across chunks
    // The corpus runs out of pairs before the vocabulary is full: training stops.
    CHECK(tok::train_bpe({"ab"}, whole_text(1000)).ranks.size() == 257);
}

TEST_CASE("C API: train, encode, save .tiktoken and load it back; cancel; bad options", "[train][errors]") {
    const std::string corpus =
        "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
        "foolishness, it was the epoch of belief, it was the epoch of incredulity. Der Ausschu\xC3\x9F tagte; "
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE6\x96\x87\xE7\xAB\xA0\xE3\x80\x82 \xF0\x9F\xA6\x99\xF0\x9F\xA6\x99";
    const char *texts[] = {corpus.data()};
    const size_t lens[] = {corpus.size()};
    const char *specials[] = {"<|endoftext|>", "<|pad|>"};
    llmkit_bpe_train_options o = LLMKIT_BPE_TRAIN_OPTIONS_INIT;
    o.vocab_size = 300;
    o.special_tokens = specials;
    o.n_special_tokens = 2;
    llmkit_tokenizer *t = nullptr;
    REQUIRE(llmkit_bpe_train(&t, texts, lens, 1, &o) == LLMKIT_OK);
    int32_t n = 0;
    REQUIRE(llmkit_tokenizer_vocab_size(t, &n) == LLMKIT_OK);
    CHECK(n == 302);
    int32_t id = 0;
    REQUIRE(llmkit_tokenizer_token_to_id(t, "<|pad|>", 7, &id) == LLMKIT_OK);
    CHECK(id == 301);

    // Round trip and the saved file reproduce the ids.
    const std::string path = "llmkit_train_test_" + std::to_string(reinterpret_cast<uintptr_t>(&o)) + ".tiktoken";
    REQUIRE(llmkit_tokenizer_save_tiktoken(t, path.c_str()) == LLMKIT_OK);
    {
        tokenizer reloaded = tokenizer::from_tiktoken(path, "cl100k_base");
        std::vector<int32_t> ids(corpus.size());
        size_t count = 0;
        REQUIRE(llmkit_tokenizer_encode(t, corpus.data(), corpus.size(), ids.data(), ids.size(), &count, nullptr) ==
                LLMKIT_OK);
        ids.resize(count);
        CHECK(count < corpus.size() / 2);  // the merges compress the text they were learned on
        CHECK(reloaded.encode(corpus) == ids);
        CHECK(reloaded.decode(ids) == corpus);
    }
    std::remove(path.c_str());
    CHECK(llmkit_tokenizer_save_tiktoken(t, "/nonexistent-dir/x.tiktoken") == LLMKIT_ERROR_IO);
    CHECK(llmkit_tokenizer_save_tokenizer_json(t, "/nonexistent-dir/x.json") == LLMKIT_ERROR_IO);
    llmkit_tokenizer_free(t);

    // Cancellation: the callback sees (done, total) and stops after 5 merges.
    struct counter {
        size_t calls = 0, last_total = 0;
    } seen;
    o.progress = [](void *user, size_t done, size_t total) -> int {
        auto *c = static_cast<counter *>(user);
        ++c->calls;
        c->last_total = total;
        return done >= 5 ? 1 : 0;
    };
    o.user_data = &seen;
    t = reinterpret_cast<llmkit_tokenizer *>(&seen);
    CHECK(llmkit_bpe_train(&t, texts, lens, 1, &o) == LLMKIT_ERROR_CANCELLED);
    CHECK(t == nullptr);
    CHECK(seen.calls == 5);
    CHECK(seen.last_total == 44);
    CHECK(std::string(llmkit_last_error_message()).find("cancelled") != std::string::npos);
    o.progress = nullptr;

    // Bad options.
    auto status = [&](llmkit_bpe_train_options opts) {
        llmkit_tokenizer *x = nullptr;
        const llmkit_status s = llmkit_bpe_train(&x, texts, lens, 1, &opts);
        llmkit_tokenizer_free(x);
        return s;
    };
    llmkit_bpe_train_options bad = o;
    bad.vocab_size = 255;
    CHECK(status(bad) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(llmkit_last_error_message()).find("vocab_size") != std::string::npos);
    bad = o;
    bad.pattern = "(unclosed";
    CHECK(status(bad) == LLMKIT_ERROR_INVALID_ARGUMENT);
    bad = o;
    const char *twice[] = {"<|a|>", "<|a|>"};
    bad.special_tokens = twice;
    CHECK(status(bad) == LLMKIT_ERROR_INVALID_ARGUMENT);
    bad = o;
    const char *empty[] = {""};
    bad.special_tokens = empty;
    bad.n_special_tokens = 1;
    CHECK(status(bad) == LLMKIT_ERROR_INVALID_ARGUMENT);
    bad = o;
    bad.n_threads = -1;
    CHECK(status(bad) == LLMKIT_ERROR_INVALID_ARGUMENT);
    bad = o;
    bad.special_tokens = nullptr;
    CHECK(status(bad) == LLMKIT_ERROR_NULL_POINTER);
    bad = o;
    bad.struct_size = sizeof(llmkit_bpe_train_options) + 8;
    CHECK(status(bad) == LLMKIT_ERROR_INVALID_ARGUMENT);
    const char *invalid_utf8[] = {"ok\xFF"};
    const size_t invalid_len[] = {3};
    llmkit_tokenizer *x = nullptr;
    CHECK(llmkit_bpe_train(&x, invalid_utf8, invalid_len, 1, &o) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(llmkit_last_error_message()).find("texts[0]") != std::string::npos);
    CHECK(llmkit_bpe_train(&x, texts, lens, 1, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_bpe_train(nullptr, texts, lens, 1, &o) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_bpe_train(&x, nullptr, lens, 1, &o) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_tokenizer_save_tiktoken(nullptr, "x") == LLMKIT_ERROR_NULL_POINTER);
    // An empty corpus learns nothing: the 256 bytes.
    REQUIRE(llmkit_bpe_train(&x, nullptr, nullptr, 0, &o) == LLMKIT_OK);
    REQUIRE(llmkit_tokenizer_vocab_size(x, &n) == LLMKIT_OK);
    CHECK(n == 256 + 2);
    llmkit_tokenizer_free(x);
}
