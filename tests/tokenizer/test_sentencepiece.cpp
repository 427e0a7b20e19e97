// SentencePiece `.model` tokenizers: exact ids against vectors no one here
// wrote (llama.cpp's Hugging Face ground truth for Llama 2, llama2.c's
// expected tokens, the mixed corpus ids cross-checked between official
// SentencePiece and llama.cpp), decode as the exact inverse, the algorithms on
// hand-made models (user-defined pieces, unused pieces, byte fallback, the
// normalizer's options, Unigram ties), and hostile files.
// The broad parity with the sentencepiece package itself is in
// tests/python/test_sentencepiece.py.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "llmkit/llmkit.h"
#include "support/test_support.hpp"
#include "tokenizer/sentencepiece.hpp"

using llmkit::tok::sentencepiece;
using llmkit::tok::spm_model;
using llmkit::tok::spm_piece;
using llmkit::tok::spm_type;

namespace {

using llmkit_test::read_file;

// llama.cpp's .inp/.out vectors: texts split on the separator, one id line per text.
std::vector<std::pair<std::string, std::vector<int32_t>>> read_vectors(const std::string &inp_path,
                                                                        const std::string &out_path) {
    const std::string sep = "\n__ggml_vocab_test__\n";
    const std::string inp = read_file(inp_path);
    std::vector<std::string> texts;
    for (size_t pos = 0;;) {
        const size_t at = inp.find(sep, pos);
        if (at == std::string::npos) break;
        texts.push_back(inp.substr(pos, at - pos));
        pos = at + sep.size();
    }
    std::istringstream out(read_file(out_path));
    std::vector<std::pair<std::string, std::vector<int32_t>>> cases;
    std::string line;
    for (const std::string &t : texts) {
        REQUIRE(std::getline(out, line));
        std::istringstream ls(line);
        std::vector<int32_t> ids;
        for (int32_t id; ls >> id;) ids.push_back(id);
        cases.emplace_back(t, ids);
    }
    REQUIRE(!std::getline(out, line));
    return cases;
}

std::vector<int32_t> encode(const sentencepiece &t, std::string_view text, bool bos = false, bool eos = false) {
    std::vector<int32_t> ids;
    t.encode(text, llmkit::tok::encode_options{}, bos, eos, ids);
    return ids;
}

std::string decode(const sentencepiece &t, const std::vector<int32_t> &ids) {
    std::string s;
    t.decode(ids.data(), ids.size(), s);
    return s;
}

// A minimal protobuf writer for hand-made (and broken) ModelProto files.
struct pb {
    std::string bytes;
    pb &varint(uint64_t v) {
        do {
            bytes += char((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
            v >>= 7;
        } while (v);
        return *this;
    }
    pb &field_varint(int field, int64_t v) { return varint(uint64_t(field) << 3).varint(uint64_t(v)); }
    pb &field_bytes(int field, const std::string &s) {
        varint(uint64_t(field) << 3 | 2).varint(s.size());
        bytes += s;
        return *this;
    }
    pb &field_float(int field, float f) {
        varint(uint64_t(field) << 3 | 5);
        char b[4];
        std::memcpy(b, &f, 4);
        bytes.append(b, 4);
        return *this;
    }
};

std::string piece_msg(const std::string &text, float score, int type) {
    return pb().field_bytes(1, text).field_float(2, score).field_varint(3, type).bytes;
}

// ModelProto bytes: pieces, then a trainer spec (model type, byte fallback)
// and a normalizer spec with identity normalization.
std::string model_bytes(const std::vector<spm_piece> &pieces, int model_type, bool byte_fallback,
                        const std::string &extra_trainer = "", bool add_dummy_prefix = true,
                        bool remove_extra_whitespaces = false) {
    pb m;
    for (const auto &p : pieces) m.field_bytes(1, piece_msg(p.text, p.score, int(p.type)));
    pb trainer;
    trainer.field_varint(3, model_type).field_varint(35, byte_fallback ? 1 : 0);
    trainer.bytes += extra_trainer;
    m.field_bytes(2, trainer.bytes);
    m.field_bytes(3, pb().field_bytes(1, "identity")
                         .field_varint(3, add_dummy_prefix)
                         .field_varint(4, remove_extra_whitespaces)
                         .bytes);
    return m.bytes;
}

std::vector<spm_piece> base_pieces() {
    return {{"<unk>", 0, spm_type::unknown}, {"<s>", 0, spm_type::control}, {"</s>", 0, spm_type::control}};
}

llmkit_status status_of(const std::string &bytes) {
    try {
        sentencepiece t(llmkit::tok::parse_sentencepiece_model(bytes, "test.model"), "test.model");
        return LLMKIT_OK;
    } catch (const llmkit::core::error &e) {
        INFO(e.what());
        CHECK(std::string(e.what()).find("test.model") != std::string::npos);
        return e.status();
    }
}

std::string message_of(const std::string &bytes) {
    try {
        sentencepiece t(llmkit::tok::parse_sentencepiece_model(bytes, "test.model"), "test.model");
    } catch (const llmkit::core::error &e) {
        return e.what();
    }
    return "";
}

}  // namespace

#ifdef LLMKIT_TEST_DATA_DIR
static const std::string k_data = LLMKIT_TEST_DATA_DIR;

TEST_CASE("Llama 2 tokenizer.model gives llama.cpp's Hugging Face ids on all 46 texts", "[sentencepiece][data]") {
    auto t = llmkit::tok::load_sentencepiece(k_data + "/sentencepiece/llama2/tokenizer.model");
    const auto cases = read_vectors(k_data + "/llama.cpp-vocab/ggml-vocab-llama-spm.gguf.inp",
                                    k_data + "/llama.cpp-vocab/ggml-vocab-llama-spm.gguf.out");
    REQUIRE(cases.size() == 46);
    int exact = 0;
    for (const auto &[text, ids] : cases) {
        INFO("text: \"" << text << "\"");
        const auto got = encode(*t, text);
        CHECK(got == ids);
        exact += got == ids;
        // Lossless: the decode gives the text back.
        CHECK(decode(*t, got) == text);
    }
    CHECK(exact == 46);
}

TEST_CASE("Llama 2 with BOS gives llama2.c's expected tokens", "[sentencepiece][data]") {
    auto t = llmkit::tok::load_sentencepiece(k_data + "/sentencepiece/llama2/tokenizer.model");
    const auto cases =
        read_vectors(k_data + "/llama2c/llama2-tokenizer-test.inp", k_data + "/llama2c/llama2-tokenizer-test.out");
    REQUIRE(cases.size() == 5);
    for (const auto &[text, ids] : cases) {
        INFO("text: \"" << text << "\"");
        CHECK(encode(*t, text, true) == ids);
        CHECK(decode(*t, ids) == text);  // BOS decodes to nothing
    }
}

TEST_CASE("Llama 2 on the mixed corpus slice in one call", "[sentencepiece][data]") {
    auto t = llmkit::tok::load_sentencepiece(k_data + "/sentencepiece/llama2/tokenizer.model");
    const std::string text = read_file(k_data + "/corpus/mixed-slice.txt");
    std::istringstream f(read_file(k_data + "/corpus/mixed-slice-ids/mixed-slice.llama2-spm.ids"));
    std::vector<int32_t> expected;
    for (int32_t id; f >> id;) expected.push_back(id);
    REQUIRE(expected.size() == 52879);
    const auto got = encode(*t, text);
    REQUIRE(got.size() == expected.size());
    CHECK(got == expected);
    CHECK(decode(*t, got) == text);
}

TEST_CASE("Mistral v1 and v3 and tok512 load with the model's pieces and specials", "[sentencepiece][data]") {
    auto v1 = llmkit::tok::load_sentencepiece(k_data + "/sentencepiece/mistral/tokenizer.model.v1");
    CHECK(v1->vocab_size() == 32000);
    CHECK(v1->unk_id() == 0);
    CHECK(v1->model().bos_id == 1);
    CHECK(v1->model().eos_id == 2);
    CHECK(v1->is_special(1));
    CHECK(!v1->is_special(3));  // <0x00> is a byte piece
    auto v3 = llmkit::tok::load_sentencepiece(k_data + "/sentencepiece/mistral/mistral_instruct_tokenizer_240323.model.v3");
    CHECK(v3->vocab_size() == 32768);
    CHECK(v3->token_to_id("[INST]") == 3);
    CHECK(v3->is_special(3));
    // Control pieces in the text are plain text unless allowed.
    const auto plain = encode(*v3, "[INST] hi");
    CHECK(plain.front() != 3);
    llmkit::tok::encode_options allow;
    allow.allow_all_special = true;
    std::vector<int32_t> ids;
    v3->encode("[INST] hi", allow, false, false, ids);
    REQUIRE(!ids.empty());
    CHECK(ids.front() == 3);
    auto tiny = llmkit::tok::load_sentencepiece(k_data + "/models/stories260K/tok512.model");
    CHECK(tiny->vocab_size() == 512);
    CHECK(tiny->model().remove_extra_whitespaces);
    // remove_extra_whitespaces: runs of spaces collapse, ends are trimmed.
    CHECK(encode(*tiny, "  Once   upon  ") == encode(*tiny, "Once upon"));
    CHECK(decode(*tiny, encode(*tiny, "  Once   upon  ")) == "Once upon");
}
#endif

TEST_CASE("BPE merges the highest score first, leftmost on ties", "[sentencepiece]") {
    auto pieces = base_pieces();
    // "▁" and letters, then merges: "ab" (score -1), "bc" (-2), "abc" (-3), "▁a" (-5).
    for (const char *s : {"\xE2\x96\x81", "a", "b", "c"}) pieces.push_back({s, -10, spm_type::normal});
    pieces.push_back({"ab", -1, spm_type::normal});
    pieces.push_back({"bc", -2, spm_type::normal});
    pieces.push_back({"abc", -3, spm_type::normal});
    pieces.push_back({"\xE2\x96\x81" "a", -5, spm_type::normal});
    sentencepiece t(llmkit::tok::parse_sentencepiece_model(model_bytes(pieces, 2, false), "t"), "t");
    // "▁abc": "ab" wins (-1) over "▁a" (-5) and "bc" (-2), then "abc" (-3).
    CHECK(encode(t, "abc") == std::vector<int32_t>{3, 9});
    // "▁bcab": bc(-2) and ab(-1): ab first, then bc; "▁" stays alone.
    CHECK(encode(t, "bcab") == std::vector<int32_t>{3, 8, 7});
    // An unknown character without byte fallback is the unknown id, and decodes to its surface.
    CHECK(encode(t, "axa") == std::vector<int32_t>{10, 0, 4});
    CHECK(decode(t, {10, 0, 4}) == "a \xE2\x81\x87 a");
    // Ties: two "ab" pairs at the same score merge left to right (same result either way here),
    // and equal-score competitors "aa" vs "aa" overlap: leftmost wins.
    auto p2 = base_pieces();
    for (const char *s : {"\xE2\x96\x81", "a"}) p2.push_back({s, -10, spm_type::normal});
    p2.push_back({"aa", -1, spm_type::normal});
    sentencepiece t2(llmkit::tok::parse_sentencepiece_model(model_bytes(p2, 2, false, "", false), "t"), "t");
    CHECK(encode(t2, "aaa") == std::vector<int32_t>{5, 4});
}

TEST_CASE("byte fallback, user-defined pieces and unused pieces", "[sentencepiece]") {
    auto pieces = base_pieces();
    for (int b = 0; b < 256; ++b) {
        char name[7];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        pieces.push_back({name, 0, spm_type::byte});
    }
    const auto base = int32_t(pieces.size());  // 259
    for (const char *s : {"\xE2\x96\x81", "a", "b", "c"}) pieces.push_back({s, -10, spm_type::normal});
    pieces.push_back({"<tool>", 0, spm_type::user_defined});  // base + 4
    pieces.push_back({"ab", -1, spm_type::unused});           // base + 5: merged, then split back
    pieces.push_back({"abc", -2, spm_type::normal});          // base + 6
    sentencepiece t(llmkit::tok::parse_sentencepiece_model(model_bytes(pieces, 2, true), "t"), "t");
    // "é" has no piece: its two UTF-8 bytes.
    CHECK(encode(t, "\xC3\xA9") == std::vector<int32_t>{base, 3 + 0xC3, 3 + 0xA9});
    CHECK(decode(t, {base, 3 + 0xC3, 3 + 0xA9}) == "\xC3\xA9");
    // A lone continuation byte decodes to U+FFFD, as sentencepiece does.
    CHECK(decode(t, {3 + 0xA9, base + 1}) == "\xEF\xBF\xBD" "a");
    // The user-defined piece is matched whole and never merged.
    CHECK(encode(t, "a<tool>b") == std::vector<int32_t>{base, base + 1, base + 4, base + 2});
    // "ab" is unused: it is split back into "a" "b" unless "abc" forms.
    CHECK(encode(t, "ab") == std::vector<int32_t>{base, base + 1, base + 2});
    CHECK(encode(t, "abc") == std::vector<int32_t>{base, base + 6});
    CHECK(t.token_to_id("<tool>") == base + 4);
    CHECK(t.token_to_id("zz") == -1);
}

TEST_CASE("the normalizer: dummy prefix, extra whitespace, malformed UTF-8", "[sentencepiece]") {
    auto pieces = base_pieces();
    pieces.push_back({"\xE2\x96\x81", -1, spm_type::normal});
    pieces.push_back({"a", -1, spm_type::normal});
    sentencepiece keep(llmkit::tok::parse_sentencepiece_model(model_bytes(pieces, 2, false), "t"), "t");
    CHECK(keep.normalize("") == "");
    CHECK(keep.normalize(" a  b ") == "\xE2\x96\x81\xE2\x96\x81" "a\xE2\x96\x81\xE2\x96\x81" "b\xE2\x96\x81");
    CHECK(keep.normalize("\xFF" "a") == "\xE2\x96\x81\xEF\xBF\xBD" "a");  // one bad byte -> U+FFFD
    sentencepiece trim(llmkit::tok::parse_sentencepiece_model(model_bytes(pieces, 2, false, "", true, true), "t"), "t");
    CHECK(trim.normalize("   ") == "");
    CHECK(trim.normalize(" a  b ") == "\xE2\x96\x81" "a\xE2\x96\x81" "b");
    sentencepiece no_prefix(llmkit::tok::parse_sentencepiece_model(model_bytes(pieces, 2, false, "", false), "t"),
                            "t");
    CHECK(no_prefix.normalize("a b") == "a\xE2\x96\x81" "b");
}

TEST_CASE("Unigram: Viterbi over piece scores, unknown penalty", "[sentencepiece]") {
    auto pieces = base_pieces();
    pieces.push_back({"\xE2\x96\x81", -3, spm_type::normal});     // 3
    pieces.push_back({"a", -2, spm_type::normal});                // 4
    pieces.push_back({"b", -2, spm_type::normal});                // 5
    pieces.push_back({"ab", -3.5f, spm_type::normal});            // 6: beats a+b (-4)
    pieces.push_back({"\xE2\x96\x81" "a", -6, spm_type::normal}); // 7: loses to ▁ + a (-5)
    sentencepiece t(llmkit::tok::parse_sentencepiece_model(model_bytes(pieces, 1, false), "t"), "t");
    CHECK(encode(t, "ab") == std::vector<int32_t>{3, 6});
    CHECK(encode(t, "a") == std::vector<int32_t>{3, 4});
    // "x" has no piece: unknown (score min - 10).
    CHECK(encode(t, "axb") == std::vector<int32_t>{3, 4, 0, 5});
    CHECK(decode(t, encode(t, "ab")) == "ab");
}

TEST_CASE("hostile and malformed .model files give a clear error", "[sentencepiece]") {
    auto pieces = base_pieces();
    pieces.push_back({"a", -1, spm_type::normal});
    const std::string good = model_bytes(pieces, 2, false);
    CHECK(status_of(good) == LLMKIT_OK);
    // Truncated anywhere inside the first piece: the protobuf does not parse.
    for (size_t cut : {size_t(1), size_t(3), size_t(5)}) CHECK(status_of(good.substr(0, cut)) == LLMKIT_ERROR_FORMAT);
    CHECK(message_of(good.substr(0, 5)).find("truncated or corrupt") != std::string::npos);
    CHECK(status_of(std::string("\xFF\xFF\xFF\xFF\xFF\xFF", 6)) == LLMKIT_ERROR_FORMAT);
    CHECK(status_of("") == LLMKIT_ERROR_FORMAT);  // no pieces
    // No unknown piece.
    const std::string no_bos_eos = pb().field_varint(41, -1).field_varint(42, -1).bytes;
    CHECK(message_of(model_bytes({{"a", 0, spm_type::normal}}, 2, false, no_bos_eos)).find("unknown type") !=
          std::string::npos);
    // Two unknown pieces; a duplicate piece; an empty piece.
    auto two_unk = pieces;
    two_unk.push_back({"<unk2>", 0, spm_type::unknown});
    CHECK(status_of(model_bytes(two_unk, 2, false)) == LLMKIT_ERROR_FORMAT);
    auto dup = pieces;
    dup.push_back({"a", -2, spm_type::normal});
    CHECK(status_of(model_bytes(dup, 2, false)) == LLMKIT_ERROR_FORMAT);
    auto empty = pieces;
    empty.push_back({"", -2, spm_type::normal});
    CHECK(message_of(model_bytes(empty, 2, false)).find("is empty") != std::string::npos);
    // A byte piece in a model without byte fallback, and a malformed one.
    auto bytes = pieces;
    bytes.push_back({"<0x41>", 0, spm_type::byte});
    CHECK(message_of(model_bytes(bytes, 2, false)).find("without byte fallback") != std::string::npos);
    auto bad_byte = pieces;
    bad_byte.push_back({"<0xZZ>", 0, spm_type::byte});
    CHECK(message_of(model_bytes(bad_byte, 2, true)).find("<0xNN>") != std::string::npos);
    // BOS id beyond the pieces.
    CHECK(message_of(model_bytes(pieces, 2, false, pb().field_varint(41, 99).bytes)).find("bos id 99") !=
          std::string::npos);
    // WORD and CHAR models are not supported.
    CHECK(status_of(model_bytes(pieces, 3, false)) == LLMKIT_ERROR_UNSUPPORTED);
    // More pieces than the limit: refused before any tokenizer is built.
    {
        pb m;
        const std::string one = piece_msg("x", 0, 1);
        m.bytes.reserve((one.size() + 2) * (llmkit::tok::k_spm_max_pieces + 1));
        for (size_t i = 0; i <= llmkit::tok::k_spm_max_pieces; ++i) m.field_bytes(1, one);
        CHECK(message_of(m.bytes).find("more than the limit") != std::string::npos);
    }
    // An id out of range in decode.
    sentencepiece t(llmkit::tok::parse_sentencepiece_model(good, "t"), "t");
    std::string out;
    const int32_t bad[] = {1, 4};
    CHECK_THROWS_AS(t.decode(bad, 2, out), llmkit::core::error);
    try {
        llmkit::tok::load_sentencepiece("/nonexistent/x.model");
        FAIL("no error for a missing file");
    } catch (const llmkit::core::error &e) {
        CHECK(e.status() == LLMKIT_ERROR_IO);
        CHECK(std::string(e.what()).find("/nonexistent/x.model") != std::string::npos);
    }
}
