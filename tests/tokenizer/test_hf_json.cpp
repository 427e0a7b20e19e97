// Hugging Face tokenizer.json: exact ids against the data folder's reference
// vectors (llama.cpp's bert-bge and gpt-2 vectors, made with HF tokenizers;
// the gpt2 ids of the mixed corpus slice), the model classes built from plain
// vectors, the C API (format detection, add_special_tokens, buffers), and
// malformed or hostile files (clear errors naming the JSON path, no crash).
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "llmkit/llmkit.h"
#include "llmkit/llmkit.hpp"
#include "support/test_support.hpp"
#include "tokenizer/hf_json.hpp"
#include "tokenizer/hf_models.hpp"
#include "tokenizer/hf_unicode.hpp"

using llmkit::tok::hf_tokenizer;

namespace {

using llmkit_test::temp_file;
using llmkit_test::read_file;

// The status and message of loading a tokenizer.json given as text.
std::pair<llmkit_status, std::string> load_error(const std::string &json) {
    try {
        hf_tokenizer::from_json(json, "t.json");
    } catch (const llmkit::core::error &e) {
        return {e.status(), e.what()};
    }
    return {LLMKIT_OK, ""};
}

std::vector<int32_t> encode(const llmkit::tok::tokenizer &t, const std::string &text, bool add_special = false) {
    llmkit::tok::encode_options o;
    o.add_special_tokens = add_special;
    std::vector<int32_t> ids;
    t.encode(text, o, ids);
    return ids;
}

const char *const k_wordpiece_json = R"({
  "added_tokens": [{"id": 0, "content": "[UNK]", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false},
                   {"id": 1, "content": "[CLS]", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false},
                   {"id": 2, "content": "[SEP]", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false}],
  "normalizer": {"type": "BertNormalizer", "lowercase": true},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
  "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
  "model": {"unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
            "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "un": 3, "##aff": 4, "##able": 5, "a": 6, ",": 7}}
})";

}  // namespace

// ---------------------------------------------------------------------------
// Model classes from plain vectors (the expected ids follow from the
// algorithms' definitions, worked by hand in the comments).

TEST_CASE("bpe_merges applies merges by rank, leftmost first, pair by pair", "[hf_json]") {
    using llmkit::tok::bpe_merges;
    std::vector<std::pair<std::string, int32_t>> vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}, {"aa", 6}};
    // (b c) ranks before (a b): "abc" -> a|bc; no merge (a, bc) is listed, so it stays two tokens
    // even though "abc" is in the vocab (HF merges pairs, not concatenations).
    bpe_merges m1(vocab, {{"b", "c"}, {"a", "b"}, {"ab", "c"}}, {}, "test");
    std::vector<int32_t> out;
    m1.tokenize("abc", out);
    CHECK(out == std::vector<int32_t>{0, 4});
    // (a b) first, then (ab c): "abc" -> ab|c -> abc.
    bpe_merges m2(vocab, {{"a", "b"}, {"ab", "c"}}, {}, "test");
    out.clear();
    m2.tokenize("abc", out);
    CHECK(out == std::vector<int32_t>{5});
    // "aaa" with (a a): the leftmost pair merges first -> aa|a.
    bpe_merges m3(vocab, {{"a", "a"}}, {}, "test");
    out.clear();
    m3.tokenize("aaa", out);
    CHECK(out == std::vector<int32_t>{6, 0});
}

TEST_CASE("bpe_merges: unknown characters, byte fallback, fused unk, prefix and suffix", "[hf_json]") {
    using llmkit::tok::bpe_merges;
    using llmkit::tok::bpe_options;
    std::vector<std::pair<std::string, int32_t>> vocab = {{"<unk>", 0}, {"a", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}};
    bpe_options o;
    o.unk_token = "<unk>";
    o.fuse_unk = true;
    std::vector<int32_t> out;
    bpe_merges(vocab, {}, o, "t").tokenize("a\xC3\xA9\xC3\xA9z", out);  // a é é z: é, é, z unknown, fused
    CHECK(out == std::vector<int32_t>{1, 0});
    o.byte_fallback = true;
    out.clear();
    bpe_merges(vocab, {}, o, "t").tokenize("a\xC3\xA9z", out);  // é as its two byte tokens, z unk
    CHECK(out == std::vector<int32_t>{1, 2, 3, 0});
    // The prefix goes before every character but the first, the suffix after the last.
    bpe_options p;
    p.continuing_subword_prefix = "##";
    p.end_of_word_suffix = "</w>";
    std::vector<std::pair<std::string, int32_t>> v2 = {{"x", 0}, {"##y", 1}, {"##z</w>", 2}, {"xy", 3}};  // merge (x, ##y) makes x + y
    out.clear();
    bpe_merges(v2, {{"x", "##y"}}, p, "t").tokenize("xyz", out);
    CHECK(out == std::vector<int32_t>{3, 2});
    // A merge whose parts are not in the vocab is a format error naming it.
    CHECK_THROWS_WITH(bpe_merges(vocab, {{"a", "q"}}, {}, "t"), Catch::Contains("merges[0]"));
}

TEST_CASE("wordpiece and unigram from plain vectors", "[hf_json]") {
    using llmkit::tok::unigram;
    using llmkit::tok::wordpiece;
    std::vector<std::pair<std::string, int32_t>> vocab = {{"[UNK]", 0}, {"un", 1}, {"##aff", 2}, {"##able", 3}};
    wordpiece wp(vocab, "[UNK]", "##", 100, "t");
    std::vector<int32_t> out;
    wp.tokenize("unaffable", out);
    CHECK(out == std::vector<int32_t>{1, 2, 3});
    out.clear();
    wp.tokenize("unaffablex", out);  // an unmatched tail makes the whole word unknown
    CHECK(out == std::vector<int32_t>{0});
    CHECK_THROWS_WITH(wordpiece(vocab, "[NOPE]", "##", 100, "t"), Catch::Contains("unk_token"));

    // Viterbi: "ab" scores -1 as one piece, -1.5 + -1.5 as two, so one piece wins.
    unigram u({{"<unk>", 0.0}, {"a", -1.5}, {"b", -1.5}, {"ab", -1.0}, {"c", -5.0}}, 0, false, "t");
    out.clear();
    u.tokenize("abcab", out);
    CHECK(out == std::vector<int32_t>{3, 4, 3});
    out.clear();
    u.tokenize("a\xE2\x98\x83\xE2\x98\x83" "b", out);  // two unknown snowmen fuse into one unk
    CHECK(out == std::vector<int32_t>{1, 0, 2});
    unigram no_unk({{"a", -1.0}}, std::nullopt, false, "t");
    out.clear();
    CHECK_THROWS_WITH(no_unk.tokenize("ab", out), Catch::Contains("no unk_id"));
}

// ---------------------------------------------------------------------------
// A small pipeline written here.

TEST_CASE("tokenizer.json pipeline: BERT normalizer, pre-tokenizer, WordPiece, BertProcessing", "[hf_json]") {
    const auto t = hf_tokenizer::from_json(k_wordpiece_json, "t.json");
    CHECK(encode(*t, "UnAffable, a") == std::vector<int32_t>{3, 4, 5, 7, 6});
    CHECK(encode(*t, "UnAffable, a", true) == std::vector<int32_t>{1, 3, 4, 5, 7, 6, 2});
    CHECK(encode(*t, "") == std::vector<int32_t>{});
    CHECK(encode(*t, "", true) == std::vector<int32_t>{1, 2});
    std::string text;
    const std::vector<int32_t> ids = {1, 3, 4, 5, 7, 6, 2};
    t->decode(ids.data(), ids.size(), text);
    CHECK(text == "[CLS] unaffable, a [SEP]");
    const int32_t bad = 99;
    text.clear();
    CHECK_THROWS_WITH(t->decode(&bad, 1, text), Catch::Contains("not a token id"));
    // Special tokens follow the tiktoken rules: an error unless allowed or encoded as text.
    CHECK_THROWS_WITH(encode(*t, "a [SEP] a"), Catch::Contains("[SEP]"));
    llmkit::tok::encode_options o;
    o.allowed_special = {"[SEP]"};
    std::vector<int32_t> got;
    t->encode("a [SEP] a", o, got);
    CHECK(got == std::vector<int32_t>{6, 2, 6});
    CHECK(t->token_to_id("##aff") == 4);
    CHECK(t->is_special(2));
    CHECK_FALSE(t->is_special(4));
}

TEST_CASE("tokenizer.json offsets: lowercased, accent-stripped tokens map back to the original bytes", "[hf_json]") {
    const auto t = hf_tokenizer::from_json(k_wordpiece_json, "t.json");
    // BertNormalizer lowercases and strips accents ("Ä" is 2 bytes, "Å" 2 bytes);
    // the spans are in the original text, special tokens are empty spans at 0.
    const std::string text = "Un\xC3\x84" "ff\xC3\x85" "ble,  A";
    llmkit::tok::encode_options o;
    o.add_special_tokens = true;
    std::vector<int32_t> ids;
    std::vector<std::pair<size_t, size_t>> spans;
    t->encode_with_offsets(text, o, ids, spans);
    CHECK(ids == std::vector<int32_t>{1, 3, 4, 5, 7, 6, 2});
    using span = std::pair<size_t, size_t>;
    CHECK(spans == std::vector<span>{{0, 0}, {0, 2}, {2, 6}, {6, 11}, {11, 12}, {14, 15}, {0, 0}});
    std::vector<std::string> pieces;
    for (const auto &[b, e] : spans) pieces.push_back(text.substr(b, e - b));
    CHECK(pieces == std::vector<std::string>{"", "Un", "\xC3\x84" "ff", "\xC3\x85" "ble", ",", "A", ""});
    // The ids are encode()'s; through the C API the same spans, and a short buffer says how many.
    CHECK(ids == encode(*t, text, true));
    const temp_file file(k_wordpiece_json, ".json");
    const auto face = llmkit::tokenizer::from_file(file.path);
    const llmkit_tokenizer *h = face.get();
    llmkit_encode_options co = LLMKIT_ENCODE_OPTIONS_INIT;
    co.add_special_tokens = 1;
    int32_t cid[16];
    size_t off[32], n = 0;
    CHECK(llmkit_tokenizer_encode_with_offsets(h, text.data(), text.size(), cid, off, 3, &n, &co) ==
          LLMKIT_ERROR_BUFFER_TOO_SMALL);
    CHECK(n == 7);
    REQUIRE(llmkit_tokenizer_encode_with_offsets(h, text.data(), text.size(), cid, off, 16, &n, &co) == LLMKIT_OK);
    REQUIRE(n == 7);
    for (size_t i = 0; i < n; ++i) CHECK(span(off[2 * i], off[2 * i + 1]) == spans[i]);
    // An empty text still gets [CLS] [SEP] (more ids than bytes): the C++ face retries.
    std::vector<size_t> face_off;
    CHECK(face.encode_with_offsets("", face_off, &co) == std::vector<int32_t>{1, 2});
    CHECK(face_off == std::vector<size_t>{0, 0, 0, 0});
}

TEST_CASE("tokenizer.json pairs: BertProcessing's [CLS] a [SEP] b [SEP], types, sequences and spans", "[hf_json]") {
    const temp_file file(k_wordpiece_json, ".json");
    const auto face = llmkit::tokenizer::from_file(file.path);
    const llmkit_tokenizer *h = face.get();
    const std::string a = "UnAffable", b = " a ,";
    llmkit_encode_options co = LLMKIT_ENCODE_OPTIONS_INIT;
    co.add_special_tokens = 1;
    int32_t ids[16], types[16], seqs[16];
    size_t off[32], n = 0;
    // The count alone, then a short buffer, then the whole encoding.
    REQUIRE(llmkit_tokenizer_encode_pair(h, a.data(), a.size(), b.data(), b.size(), nullptr, nullptr, nullptr, nullptr,
                                         0, &n, &co) == LLMKIT_OK);
    CHECK(n == 8);
    CHECK(llmkit_tokenizer_encode_pair(h, a.data(), a.size(), b.data(), b.size(), ids, types, seqs, off, 7, &n, &co) ==
          LLMKIT_ERROR_BUFFER_TOO_SMALL);
    CHECK(n == 8);
    REQUIRE(llmkit_tokenizer_encode_pair(h, a.data(), a.size(), b.data(), b.size(), ids, types, seqs, off, 16, &n,
                                         &co) == LLMKIT_OK);
    REQUIRE(n == 8);
    CHECK(std::vector<int32_t>(ids, ids + n) == std::vector<int32_t>{1, 3, 4, 5, 2, 6, 7, 2});
    CHECK(std::vector<int32_t>(types, types + n) == std::vector<int32_t>{0, 0, 0, 0, 0, 1, 1, 1});
    CHECK(std::vector<int32_t>(seqs, seqs + n) == std::vector<int32_t>{-1, 0, 0, 0, -1, 1, 1, -1});
    // Spans index each id's own text; added tokens are empty spans at 0.
    CHECK(std::vector<size_t>(off, off + 2 * n) == std::vector<size_t>{0, 0, 0, 2, 2, 5, 5, 9, 0, 0, 1, 2, 3, 4, 0, 0});
    // Without special tokens: the two encodings, typed 0 and 1; the outputs are optional.
    REQUIRE(llmkit_tokenizer_encode_pair(h, a.data(), a.size(), b.data(), b.size(), ids, types, nullptr, nullptr, 16,
                                         &n, nullptr) == LLMKIT_OK);
    CHECK(std::vector<int32_t>(ids, ids + n) == std::vector<int32_t>{3, 4, 5, 6, 7});
    CHECK(std::vector<int32_t>(types, types + n) == std::vector<int32_t>{0, 0, 0, 1, 1});
    // The C++ face, and empty texts (NULL allowed at length 0).
    const auto e = face.encode_pair("", "", true, &co);
    CHECK(e.ids == std::vector<int32_t>{1, 2, 2});
    CHECK(e.type_ids == std::vector<int32_t>{0, 0, 1});
    CHECK(e.offsets == std::vector<size_t>(6, 0));
    REQUIRE(llmkit_tokenizer_encode_pair(h, nullptr, 0, nullptr, 0, ids, nullptr, nullptr, nullptr, 16, &n, &co) ==
            LLMKIT_OK);
    CHECK(n == 3);
    // Errors: NULL text with a length, NULL count, and a bad second text named as such.
    CHECK(llmkit_tokenizer_encode_pair(h, nullptr, 1, b.data(), b.size(), ids, nullptr, nullptr, nullptr, 16, &n,
                                       &co) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(std::string(llmkit_last_error_message()).find("text_a") != std::string::npos);
    CHECK(llmkit_tokenizer_encode_pair(h, a.data(), a.size(), b.data(), b.size(), ids, nullptr, nullptr, nullptr, 16,
                                       nullptr, &co) == LLMKIT_ERROR_NULL_POINTER);
    const std::string special = "x [SEP]", invalid = "\xff";
    CHECK(llmkit_tokenizer_encode_pair(h, a.data(), a.size(), special.data(), special.size(), ids, nullptr, nullptr,
                                       nullptr, 16, &n, &co) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK_THAT(llmkit_last_error_message(), Catch::Contains("text_b: text contains the special token [SEP]"));
    CHECK(llmkit_tokenizer_encode_pair(h, invalid.data(), invalid.size(), a.data(), a.size(), ids, nullptr, nullptr,
                                       nullptr, 16, &n, &co) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK_THAT(llmkit_last_error_message(), Catch::Contains("text_a: text is not valid UTF-8"));
}

TEST_CASE("tokenizer.json errors name the JSON path and the problem", "[hf_json]") {
    const std::string good = k_wordpiece_json;
    SECTION("truncated JSON") {
        for (size_t cut : {size_t(0), size_t(1), size_t(50), good.size() / 2, good.size() - 2}) {
            const auto [st, msg] = load_error(good.substr(0, cut));
            CHECK(st == LLMKIT_ERROR_FORMAT);
            CHECK_THAT(msg, Catch::Contains("invalid JSON"));
        }
    }
    SECTION("wrong types") {
        auto e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"a": "1", "[UNK]": 0}}})");
        CHECK(e.first == LLMKIT_ERROR_FORMAT);
        CHECK_THAT(e.second, Catch::Contains("/model/vocab/a") && Catch::Contains("expected an id"));
        e = load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}})");
        CHECK_THAT(e.second, Catch::Contains("/model/merges/0"));
        e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}, "normalizer": {"type": "Lowercase"}, "decoder": {"type": "Strip", "content": " ", "start": "x"}})");
        CHECK_THAT(e.second, Catch::Contains("/decoder/start"));
        e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}})");
        CHECK(e.first == LLMKIT_ERROR_FORMAT);
        CHECK_THAT(e.second, Catch::Contains("/pre_tokenizer/pattern") && Catch::Contains("invalid regex"));
        e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}, "pre_tokenizer": {"type": "Split", "pattern": {"String": "x"}, "behavior": "Sideways"}})");
        CHECK_THAT(e.second, Catch::Contains("/pre_tokenizer/behavior") && Catch::Contains("Sideways"));
        e = load_error("[1, 2]");
        CHECK_THAT(e.second, Catch::Contains("expected a tokenizer.json object"));
        e = load_error(R"({"normalizer": null})");
        CHECK_THAT(e.second, Catch::Contains("missing member \"model\""));
    }
    SECTION("unknown components are unsupported, naming the type") {
        auto e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WordSegmenter"}]}})");
        CHECK(e.first == LLMKIT_ERROR_UNSUPPORTED);
        CHECK_THAT(e.second, Catch::Contains("WordSegmenter") && Catch::Contains("/pre_tokenizer/pretokenizers/0"));
        e = load_error(R"({"model": {"type": "Morfessor", "vocab": {"a": 0}}})");
        CHECK(e.first == LLMKIT_ERROR_UNSUPPORTED);
        CHECK_THAT(e.second, Catch::Contains("Morfessor") && Catch::Contains("/model"));
        e = load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}})");
        CHECK(e.first == LLMKIT_ERROR_UNSUPPORTED);
    }
    SECTION("ids out of range") {
        auto e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 2147483647}}})");
        CHECK(e.first == LLMKIT_ERROR_FORMAT);
        CHECK_THAT(e.second, Catch::Contains("outside"));
        e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": -1}}})");
        CHECK(e.first == LLMKIT_ERROR_FORMAT);
        e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}, "added_tokens": [{"id": 16777216, "content": "x"}]})");
        CHECK_THAT(e.second, Catch::Contains("/added_tokens/0/id"));
        e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "X"}}], "special_tokens": {"X": {"ids": [7]}}}})");
        CHECK_THAT(e.second, Catch::Contains("/post_processor") && Catch::Contains("outside the vocabulary"));
        e = load_error(R"({"model": {"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 5}})");
        CHECK_THAT(e.second, Catch::Contains("/model/unk_id"));
        e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "b": 0}}})");
        CHECK_THAT(e.second, Catch::Contains("is given to both"));
    }
    SECTION("hostile sizes") {
        const std::string deep = std::string(100000, '[') + std::string(100000, ']');
        auto e = load_error(deep);
        CHECK(e.first == LLMKIT_ERROR_FORMAT);
        CHECK_THAT(e.second, Catch::Contains("nested deeper"));
        e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}, "decoder": {"type": "Strip", "content": " ", "start": 99999999999999}})");
        CHECK(e.first == LLMKIT_ERROR_FORMAT);
        // A huge max_input_chars_per_word is only a bound: fine.
        CHECK(load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}, "max_input_chars_per_word": 1099511627776}})").first == LLMKIT_OK);
    }
}

namespace {

// from_json (vocab and merges taken out while parsing) against from_document
// on the whole parsed document: the same vocabulary, token by token, and the
// same ids for `texts`.
void check_same_as_whole_document(const std::string &json_text, const std::vector<std::string> &texts) {
    INFO(json_text.substr(0, 200));
    const auto taken = hf_tokenizer::from_json(json_text, "t.json");
    const auto whole = hf_tokenizer::from_document(llmkit::tok::hf::json::parse(json_text), "t.json");
    REQUIRE(taken->vocab_size() == whole->vocab_size());
    size_t differ = 0;
    for (int32_t id = 0; id < taken->vocab_size(); ++id) {
        std::string_view a, b;
        const bool ha = taken->id_to_token(id, a), hb = whole->id_to_token(id, b);
        differ += ha != hb || (ha && (a != b || taken->token_to_id(a) != whole->token_to_id(b)));
    }
    CHECK(differ == 0);
    for (const std::string &text : texts) CHECK(encode(*taken, text) == encode(*whole, text));
}

}  // namespace

TEST_CASE("tokenizer.json: the vocab and merges taken out while parsing read as the whole document does",
          "[hf_json]") {
    const std::vector<std::string> texts = {"ab", "abc ab", "a b c", "cab"};
    SECTION("a key given twice keeps its last id, as the JSON object does") {
        const std::string j = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "c": 4, "a": 3}, "merges": ["a b"]}})";
        check_same_as_whole_document(j, texts);
        const auto t = hf_tokenizer::from_json(j, "t.json");
        CHECK(t->token_to_id("a") == 3);
        std::string_view tok0;
        CHECK_FALSE(t->id_to_token(0, tok0));
        CHECK(encode(*t, "ab") == std::vector<int32_t>{2});
    }
    SECTION("a repeated vocab, merges or model replaces the earlier one") {
        check_same_as_whole_document(
            R"({"model": {"type": "BPE", "vocab": {"x": 0}, "merges": ["x y"], "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3}, "merges": ["a b"]}})",
            texts);
        check_same_as_whole_document(
            R"({"model": {"type": "BPE", "vocab": {"q": 0, "r": 1, "qr": 2}, "merges": ["q r"]}, "normalizer": null,
                "model": {"type": "WordLevel", "vocab": {"a": 0, "<unk>": 1, "ab": 2}, "unk_token": "<unk>"},
                "pre_tokenizer": {"type": "Whitespace"}})",
            texts);
        const auto t = hf_tokenizer::from_json(
            R"({"model": {"type": "BPE", "vocab": {"q": 0, "r": 1, "qr": 2}, "merges": ["q r"]},
                "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": []}})",
            "t.json");
        CHECK(t->token_to_id("q") == -1);  // the first model's vocab is gone
        CHECK(encode(*t, "ab") == std::vector<int32_t>{0, 1});  // and so are its merges: the second has none
        auto e = load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "vocab": null}})");
        CHECK(e.first == LLMKIT_ERROR_FORMAT);
        CHECK_THAT(e.second, Catch::Contains("/model/vocab") && Catch::Contains("expected an object"));
    }
    SECTION("merges as strings and as pairs, and keys named like ours elsewhere in the document") {
        check_same_as_whole_document(
            R"({"added_tokens": [{"id": 5, "content": "<s>", "special": true, "model": {"vocab": {"zz": 9}}}],
                "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3, "abc": 4}, "merges": ["a b", ["ab", "c"]],
                          "extra": {"vocab": {"y": 1}, "merges": [["y", "y"]]}}})",
            texts);
    }
    SECTION("errors in the taken entries name their JSON path and keep their index") {
        auto e = load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", {"x": 1}]}})");
        CHECK(e.first == LLMKIT_ERROR_FORMAT);
        CHECK_THAT(e.second, Catch::Contains("/model/merges/1"));
        e = load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", ["a"]]}})");
        CHECK_THAT(e.second, Catch::Contains("/model/merges/1"));
        e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": {"id": 1}}}})");
        CHECK_THAT(e.second, Catch::Contains("/model/vocab/a") && Catch::Contains("got object"));
        e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": [1]}}})");
        CHECK_THAT(e.second, Catch::Contains("/model/vocab/a") && Catch::Contains("got array"));
        e = load_error(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "b": 1.5}}})");
        CHECK_THAT(e.second, Catch::Contains("/model/vocab/b") && Catch::Contains("got number"));
    }
}

TEST_CASE("C API: from_file detects formats; add_special_tokens; buffers", "[hf_json]") {
    temp_file json(k_wordpiece_json, ".json");
    llmkit_tokenizer *t = nullptr;
    REQUIRE(llmkit_tokenizer_from_file(&t, json.path.c_str(), nullptr) == LLMKIT_OK);
    llmkit_encode_options o = LLMKIT_ENCODE_OPTIONS_INIT;
    o.add_special_tokens = 1;
    int32_t ids[4];
    size_t n = 0;
    CHECK(llmkit_tokenizer_encode(t, "a a a", 5, ids, 4, &n, &o) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    CHECK(n == 5);  // [CLS] a a a [SEP]: more ids than the buffer, reported
    int32_t ids5[5];
    REQUIRE(llmkit_tokenizer_encode(t, "a a a", 5, ids5, 5, &n, &o) == LLMKIT_OK);
    CHECK(std::vector<int32_t>(ids5, ids5 + 5) == std::vector<int32_t>{1, 6, 6, 6, 2});
    // An options struct from an older header (without add_special_tokens) adds nothing.
    o.struct_size = uint32_t(offsetof(llmkit_encode_options, add_special_tokens));
    REQUIRE(llmkit_tokenizer_encode(t, "a a a", 5, ids5, 5, &n, &o) == LLMKIT_OK);
    CHECK(n == 3);
    llmkit_tokenizer_free(t);

    llmkit_tokenizer_load_options lo = LLMKIT_TOKENIZER_LOAD_OPTIONS_INIT;
    lo.tiktoken_encoding = "gpt2";
    t = reinterpret_cast<llmkit_tokenizer *>(1);
    CHECK(llmkit_tokenizer_from_file(&t, json.path.c_str(), &lo) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(t == nullptr);
    CHECK(llmkit_tokenizer_from_file(nullptr, json.path.c_str(), nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_tokenizer_from_file(&t, nullptr, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_tokenizer_from_file(&t, "/no/such/file.json", nullptr) == LLMKIT_ERROR_IO);
    temp_file junk("\x01\x02\x03 not a tokenizer", ".bin");
    CHECK(llmkit_tokenizer_from_file(&t, junk.path.c_str(), nullptr) == LLMKIT_ERROR_FORMAT);
    temp_file empty("", ".json");
    CHECK(llmkit_tokenizer_from_file(&t, empty.path.c_str(), nullptr) == LLMKIT_ERROR_FORMAT);
    temp_file rank("YQ== 0\nYg== 1\n", ".tiktoken");
    CHECK(llmkit_tokenizer_from_file(&t, rank.path.c_str(), nullptr) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK_THAT(llmkit_last_error_message(), Catch::Contains("tiktoken rank file"));
    temp_file gguf(std::string("GGUF\x03\0\0\0", 8), ".gguf");
    const llmkit_status st = llmkit_tokenizer_from_file(&t, gguf.path.c_str(), nullptr);
    CHECK(st != LLMKIT_OK);  // the GGUF loader is another engineer's; a bare header never loads
    lo.struct_size = 1000;
    CHECK(llmkit_tokenizer_from_file(&t, json.path.c_str(), &lo) == LLMKIT_ERROR_INVALID_ARGUMENT);
}

#ifdef LLMKIT_TEST_DATA_DIR

namespace {

const std::string k_data = LLMKIT_TEST_DATA_DIR;

// llama.cpp's .inp/.out pair (see MANIFEST.md): texts and their expected ids.
void read_vectors(const std::string &base, std::vector<std::string> &texts, std::vector<std::vector<int32_t>> &ids) {
    const std::string inp = read_file(base + ".inp"), out = read_file(base + ".out");
    const std::string sep = "\n__ggml_vocab_test__\n";
    for (size_t pos = 0;;) {
        const size_t e = inp.find(sep, pos);
        if (e == std::string::npos) break;
        texts.push_back(inp.substr(pos, e - pos));
        pos = e + sep.size();
    }
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream nums(line);
        std::vector<int32_t> v;
        int32_t x;
        while (nums >> x) v.push_back(x);
        ids.push_back(v);
    }
    REQUIRE(texts.size() == ids.size());
}

}  // namespace

TEST_CASE("bert-base-uncased tokenizer.json matches llama.cpp's bert-bge vectors", "[hf_json][data]") {
    const auto t = llmkit::tokenizer::from_file(k_data + "/hf-tokenizers/bert-base-uncased/tokenizer.json");
    std::vector<std::string> texts;
    std::vector<std::vector<int32_t>> expected;
    read_vectors(k_data + "/llama.cpp-vocab/ggml-vocab-bert-bge.gguf", texts, expected);
    REQUIRE(texts.size() == 46);
    int same = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
        const auto got = t.encode(texts[i], {}, false, true);
        if (got == expected[i]) ++same;
        else UNSCOPED_INFO("text " << i << " differs");
    }
    CHECK(same == 46);
}

TEST_CASE("gpt2 tokenizer.json matches llama.cpp's gpt-2 vectors and the mixed-slice ids", "[hf_json][data]") {
    const auto t = llmkit::tokenizer::from_file(k_data + "/hf-tokenizers/gpt2/tokenizer.json");
    std::vector<std::string> texts;
    std::vector<std::vector<int32_t>> expected;
    read_vectors(k_data + "/llama.cpp-vocab/ggml-vocab-gpt-2.gguf", texts, expected);
    int same = 0;
    for (size_t i = 0; i < texts.size(); ++i) same += t.encode(texts[i], {}, false, true) == expected[i];
    CHECK(same == 46);

    const std::string slice = read_file(k_data + "/corpus/mixed-slice.txt");
    std::istringstream in(read_file(k_data + "/corpus/mixed-slice-ids/mixed-slice.gpt2.ids"));
    std::vector<int32_t> want;
    for (int32_t x; in >> x;) want.push_back(x);
    REQUIRE(want.size() == 65428);
    CHECK(t.encode(slice, {}, false, true) == want);
    // Decoding gives the text back (GPT-2's byte-level BPE is lossless).
    CHECK(t.decode(want) == slice);
}

TEST_CASE("every tokenizer.json of the data reads the same with its vocab and merges taken out while parsing",
          "[hf_json][data]") {
    const std::vector<std::string> texts = {read_file(k_data + "/corpus/mixed-slice.txt")};
    for (const char *name : {"gpt2", "bert-base-uncased", "bge-large-zh-v1.5", "mistral-7b-v0.1"}) {
        INFO(name);
        check_same_as_whole_document(read_file(k_data + "/hf-tokenizers/" + name + "/tokenizer.json"), texts);
    }
}

TEST_CASE("tokenizer.json offsets on the mixed slice: in bounds, in order, every byte the normalizer keeps covered", "[hf_json][data]") {
    const std::string slice = read_file(k_data + "/corpus/mixed-slice.txt");
    for (const char *name : {"gpt2", "bert-base-uncased", "mistral-7b-v0.1"}) {
        INFO(name);
        const auto t = llmkit::tokenizer::from_file(k_data + "/hf-tokenizers/" + name + "/tokenizer.json");
        std::vector<size_t> off;
        const auto ids = t.encode_with_offsets(slice, off);
        REQUIRE(ids == t.encode(slice, {}, false, true));
        REQUIRE(off.size() == 2 * ids.size());
        std::vector<char> covered(slice.size(), 0);
        bool in_order = true, in_bounds = true, on_chars = true;
        for (size_t i = 0; i < ids.size(); ++i) {
            const size_t b = off[2 * i], e = off[2 * i + 1];
            in_bounds = in_bounds && b <= e && e <= slice.size();
            // Tokens inside one character share its span, so starts never go back.
            if (i > 0) in_order = in_order && b >= off[2 * i - 2] && e >= off[2 * i - 1];
            on_chars = on_chars && (b == slice.size() || (static_cast<unsigned char>(slice[b]) & 0xC0) != 0x80);
            for (size_t k = b; k < e && k < slice.size(); ++k) covered[k] = 1;
        }
        CHECK(in_bounds);
        CHECK(in_order);
        CHECK(on_chars);
        // Only what BERT's normalizer drops may be left uncovered: whitespace,
        // controls and formats, nonspacing marks (strip_accents).
        size_t missed = 0;
        for (size_t k = 0; k < slice.size();) {
            char32_t c;
            const size_t n = llmkit::tok::uni::decode(slice, k, c);
            namespace uni = llmkit::tok::uni;
            missed += !covered[k] && !uni::is_whitespace(c) && !uni::is_other(c) && !uni::is_mark_nonspacing(c);
            k += n;
        }
        CHECK(missed == 0);
    }
}

TEST_CASE("mistral tokenizer.json: BOS from the template, byte fallback, concurrent use", "[hf_json][data]") {
    const auto t = llmkit::tokenizer::from_file(k_data + "/hf-tokenizers/mistral-7b-v0.1/tokenizer.json");
    CHECK(t.vocab_size() == 32000);
    CHECK(t.token_to_id("<s>") == 1);
    CHECK(t.id_to_token(1) == "<s>");
    const std::string text = read_file(k_data + "/corpus/udhr-60lang.txt").substr(0, 20000);
    // Cut at a character boundary.
    size_t end = text.size();
    while (end > 0 && (static_cast<unsigned char>(text[end - 1]) & 0xC0) == 0x80) --end;
    if (end > 0 && static_cast<unsigned char>(text[end - 1]) >= 0xC0) --end;
    const std::string t0 = text.substr(0, end);
    const auto plain = t.encode(t0);
    const auto with_bos = t.encode(t0, {}, false, false, true);
    REQUIRE(with_bos.size() == plain.size() + 1);
    CHECK(with_bos[0] == 1);
    CHECK(std::equal(plain.begin(), plain.end(), with_bos.begin() + 1));
    CHECK(t.decode(plain) == t0);  // the decoder strips the prepended space
    std::vector<std::thread> threads;
    std::vector<int> ok(4, 0);
    for (int k = 0; k < 4; ++k)
        threads.emplace_back([&, k] { ok[size_t(k)] = t.encode(t0) == plain; });
    for (auto &th : threads) th.join();
    CHECK(ok == std::vector<int>{1, 1, 1, 1});
}

TEST_CASE("llmkit_tokenizer_from_memory: every format gives from_file's ids; the buffer is not kept; bad bytes",
          "[hf][memory]") {
    const std::string text = read_file(k_data + "/corpus/mixed-slice.txt").substr(0, 3000);
    struct source {
        const char *file, *encoding;
    };
    const source sources[] = {
        {"/tiktoken/cl100k_base.tiktoken", "cl100k_base"},
        {"/hf-tokenizers/gpt2/tokenizer.json", nullptr},
        {"/hf-tokenizers/bert-base-uncased/tokenizer.json", nullptr},
        {"/sentencepiece/llama2/tokenizer.model", nullptr},
        {"/llama.cpp-vocab/ggml-vocab-phi-3.gguf", nullptr},
    };
    for (const source &src : sources) {
        INFO(src.file);
        const std::string path = k_data + src.file;
        const auto from_file = llmkit::tokenizer::from_file(path, src.encoding ? src.encoding : "");
        std::string bytes = read_file(path);
        const auto from_memory = llmkit::tokenizer::from_memory(bytes, src.encoding ? src.encoding : "");
        std::fill(bytes.begin(), bytes.end(), '\xAA');  // nothing of the buffer may be in use any more
        bytes = std::string();
        const auto ids = from_file.encode(text, {}, false, true, true);
        CHECK(ids.size() > 100);
        CHECK(from_memory.encode(text, {}, false, true, true) == ids);
        CHECK(from_memory.vocab_size() == from_file.vocab_size());
        CHECK(from_memory.decode(ids) == from_file.decode(ids));
    }
    auto expect = [](llmkit_status got, llmkit_status want, const char *needle) {
        INFO("message: " << llmkit_last_error_message());
        CHECK(got == want);
        CHECK(std::string(llmkit_last_error_message()).find(needle) != std::string::npos);
    };
    llmkit_tokenizer *t = nullptr;
    expect(llmkit_tokenizer_from_memory(&t, nullptr, 10, nullptr), LLMKIT_ERROR_NULL_POINTER, "data");
    expect(llmkit_tokenizer_from_memory(nullptr, "{}", 2, nullptr), LLMKIT_ERROR_NULL_POINTER, "out");
    expect(llmkit_tokenizer_from_memory(&t, nullptr, 0, nullptr), LLMKIT_ERROR_FORMAT, "(memory): not a tokenizer file");
    expect(llmkit_tokenizer_from_memory(&t, "hello", 5, nullptr), LLMKIT_ERROR_FORMAT, "(memory): not a tokenizer file");
    const std::string ranks = read_file(k_data + "/tiktoken/r50k_base.tiktoken");
    expect(llmkit_tokenizer_from_memory(&t, ranks.data(), ranks.size(), nullptr), LLMKIT_ERROR_INVALID_ARGUMENT,
           "give the encoding preset");
    // Cut short: a truncated rank file, tokenizer.json and GGUF file are format errors, never a crash.
    llmkit_tokenizer_load_options lo = LLMKIT_TOKENIZER_LOAD_OPTIONS_INIT;
    lo.tiktoken_encoding = "r50k_base";
    const size_t cut = ranks.find('\n', ranks.size() / 2) + 4;  // three digits of base64, no rank
    expect(llmkit_tokenizer_from_memory(&t, ranks.data(), cut, &lo), LLMKIT_ERROR_FORMAT, "(memory)");
    const std::string json = read_file(k_data + "/hf-tokenizers/gpt2/tokenizer.json");
    expect(llmkit_tokenizer_from_memory(&t, json.data(), json.size() / 2, nullptr), LLMKIT_ERROR_FORMAT, "(memory)");
    const std::string gguf = read_file(k_data + "/llama.cpp-vocab/ggml-vocab-phi-3.gguf");
    expect(llmkit_tokenizer_from_memory(&t, gguf.data(), gguf.size() / 3, nullptr), LLMKIT_ERROR_FORMAT, "(memory)");
    CHECK(t == nullptr);
}

#endif  // LLMKIT_TEST_DATA_DIR
