// Byte-level BPE (tiktoken): exact ids against llama.cpp's tokenizer vectors
// (Hugging Face ground truth), tiktoken's own test vectors and the mixed corpus
// slice; round trips; special-token rules; errors; the heap merge against
// tiktoken's scan; long pieces; concurrent use.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "llmkit/llmkit.hpp"
#include "tokenizer/tokenizer.hpp"
#include "support/test_support.hpp"

namespace {

using llmkit_test::read_file;

// Scratch .tiktoken files, removed at the end of the test.
struct temp_file : llmkit_test::temp_file {
    explicit temp_file(const std::string &contents) : llmkit_test::temp_file(contents, ".tiktoken") {}
};

std::string b64(const std::string &s) {
    static const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < s.size(); i += 3) {
        const uint32_t v = uint32_t(uint8_t(s[i])) << 16 | uint32_t(uint8_t(s[i + 1])) << 8 | uint8_t(s[i + 2]);
        out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], a[v & 63]};
    }
    if (s.size() - i == 1) {
        const uint32_t v = uint32_t(uint8_t(s[i])) << 16;
        out += {a[v >> 18], a[(v >> 12) & 63], '=', '='};
    } else if (s.size() - i == 2) {
        const uint32_t v = uint32_t(uint8_t(s[i])) << 16 | uint32_t(uint8_t(s[i + 1])) << 8;
        out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], '='};
    }
    return out;
}

// A tiny rank file: the 256 bytes, then "ab", "abab", "ba", in that order.
std::string tiny_ranks() {
    std::string f;
    for (int b = 0; b < 256; ++b) f += b64(std::string(1, char(b))) + " " + std::to_string(b) + "\n";
    f += b64("ab") + " 256\n" + b64("abab") + " 257\n" + b64("ba") + " 258\n";
    return f;
}

llmkit_status load_status(const std::string &path, const char *name, std::string *message = nullptr) {
    llmkit_tokenizer *t = nullptr;
    const llmkit_status st = llmkit_tokenizer_from_tiktoken(&t, path.c_str(), name);
    if (message) *message = llmkit_last_error_message();
    llmkit_tokenizer_free(t);
    return st;
}

}  // namespace

TEST_CASE("tiny rank file: merges, round trip, lookups and buffers", "[bpe]") {
    temp_file f(tiny_ranks());
    auto tok = llmkit::tokenizer::from_tiktoken(f.path, "gpt2");
    CHECK(tok.vocab_size() == 50257);
    // "ababa": pairs ab(256) ba(258) ab ba -> merge leftmost ab, then ab again, then abab.
    CHECK(tok.encode("ababa") == std::vector<int32_t>{257, 'a'});
    CHECK(tok.encode("") == std::vector<int32_t>{});
    CHECK(tok.decode({257, 'a'}) == "ababa");
    CHECK(tok.token_to_id("abab") == 257);
    CHECK(tok.token_to_id("abc") == -1);
    CHECK(tok.token_to_id("<|endoftext|>") == 50256);
    CHECK(tok.id_to_token(258) == "ba");
    CHECK(tok.id_to_token(50256) == "<|endoftext|>");

    const llmkit_tokenizer *t = tok.get();
    int32_t ids[8];
    size_t n = 0;
    CHECK(llmkit_tokenizer_encode(t, "ab ab", 5, nullptr, 0, &n, nullptr) == LLMKIT_OK);
    CHECK(n == 3);
    CHECK(llmkit_tokenizer_encode(t, "ab ab", 5, ids, 2, &n, nullptr) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    CHECK(n == 3);
    CHECK(llmkit_tokenizer_encode(t, "ab ab", 5, ids, 3, &n, nullptr) == LLMKIT_OK);
    char buf[4];
    size_t needed = 0;
    CHECK(llmkit_tokenizer_decode(t, ids, 3, buf, 4, &needed) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    CHECK(needed == 5);
    int32_t is_special = -1;
    CHECK(llmkit_tokenizer_id_to_token(t, 50256, nullptr, 0, &needed, &is_special) == LLMKIT_OK);
    CHECK((needed == 13 && is_special == 1));
    CHECK(llmkit_tokenizer_id_to_token(t, 259, nullptr, 0, &needed, nullptr) == LLMKIT_ERROR_OUT_OF_RANGE);
    const int32_t bad[] = {1, 300};
    CHECK(llmkit_tokenizer_decode(t, bad, 2, nullptr, 0, &needed) == LLMKIT_ERROR_OUT_OF_RANGE);
    CHECK(std::string(llmkit_last_error_message()).find("ids[1] = 300") != std::string::npos);
    const int32_t negative[] = {-1};
    CHECK(llmkit_tokenizer_decode(t, negative, 1, nullptr, 0, &needed) == LLMKIT_ERROR_OUT_OF_RANGE);
    CHECK(llmkit_tokenizer_encode(t, "\xff", 1, ids, 8, &n, nullptr) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(llmkit_last_error_message()).find("UTF-8 at byte 0") != std::string::npos);
    CHECK(llmkit_tokenizer_encode(nullptr, "a", 1, ids, 8, &n, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    llmkit_encode_options o = LLMKIT_ENCODE_OPTIONS_INIT;
    o.struct_size = sizeof(o) + 8;
    CHECK(llmkit_tokenizer_encode(t, "a", 1, ids, 8, &n, &o) == LLMKIT_ERROR_INVALID_ARGUMENT);
}

TEST_CASE("loading errors: missing file, malformed lines, unknown encoding", "[errors]") {
    std::string msg;
    CHECK(load_status("/nonexistent/ranks.tiktoken", "cl100k_base", &msg) == LLMKIT_ERROR_IO);
    CHECK(msg.find("/nonexistent/ranks.tiktoken") != std::string::npos);
    {
        temp_file f(tiny_ranks());
        CHECK(load_status(f.path, "cl100k", &msg) == LLMKIT_ERROR_INVALID_ARGUMENT);
        CHECK(msg.find("cl100k_base") != std::string::npos);  // lists the known names
        llmkit_tokenizer *t = nullptr;
        CHECK(llmkit_tokenizer_from_tiktoken(&t, f.path.c_str(), nullptr) == LLMKIT_ERROR_NULL_POINTER);
        CHECK(t == nullptr);
    }
    const std::string good = tiny_ranks();
    const struct {
        std::string contents;
        const char *where;
    } cases[] = {
        {good + "YWJj\n", ":260: no space"},
        {good + "YW!j 300\n", ":260: invalid base64"},
        {good + "YWJj 3x0\n", ":260: invalid rank"},
        {good + "YWJj 99999999\n", ":260: rank over"},
        {good + "YWJj\t300\n", ":260: no space"},
        {good + "YWI= 300\n", "same token bytes"},  // "ab" again
        {good + "YQ== 300\n", "same token bytes have ranks 97 and 300"},  // "a" again
        {good + "YWJhYg== 300\n", "same token bytes have ranks 257 and 300"},  // "abab" again (slot table)
        {good + b64("abcdefghij") + " 300\n" + b64("abcdefghij") + " 301\n", "same token bytes have ranks 300 and 301"},
        {good + "YWJj 256\n", "rank 256 is given to two tokens"},
        {"\n" + good.substr(good.find('\n') + 1), "byte 0x00 is not a token"},
        {"", ": no ranks"},
        {"\r\n\n", ": no ranks"},
        {good + "YQ=A 300\n", ":260: invalid base64"},  // padding before the end
        {good + "YWJj= 300\n", ":260: invalid base64"},
        {good + "YWJj 4294967296\n", ":260: rank over"},   // 2^32: must not wrap to 0
        {good + "YWJj 12345678901\n", ":260: invalid rank"},
        {good + "YWJj -1\n", ":260: invalid rank"},
        {good + "YWJj \n", ":260: invalid rank"},
    };
    for (const auto &c : cases) {
        temp_file f(c.contents);
        INFO(c.where);
        CHECK(load_status(f.path, "gpt2", &msg) == LLMKIT_ERROR_FORMAT);
        CHECK(msg.find(c.where) != std::string::npos);
        CHECK(msg.find(f.path) != std::string::npos);
    }
    {  // Tokens that share their first 8 bytes and their length are different tokens (2000 of them, so
       // that many meet in the same probe sequence of the slot table, which keeps 8 bytes inline).
        std::string ranks = good + b64("abcdefgh") + " 300\n" + b64("abcdefgz") + " 301\n";
        for (int k = 0; k < 2000; ++k)
            ranks += b64(std::string("abcdefgh") + char('a' + k % 40) + char('a' + k / 40)) + " " + std::to_string(302 + k) + "\n";
        temp_file f(ranks);
        CHECK(load_status(f.path, "gpt2", &msg) == LLMKIT_OK);
    }
    {
        temp_file f(good + "YWJj 50256\n");  // collides with <|endoftext|>
        CHECK(load_status(f.path, "r50k_base", &msg) == LLMKIT_ERROR_FORMAT);
        CHECK(msg.find("<|endoftext|>") != std::string::npos);
    }
}

TEST_CASE("special tokens follow tiktoken's allowed/disallowed rules", "[special]") {
    temp_file f(tiny_ranks());
    auto tok = llmkit::tokenizer::from_tiktoken(f.path, "cl100k_base");
    const std::string text = "ab<|endoftext|>ab<|fim_prefix|>";
    try {
        tok.encode(text);
        FAIL("a disallowed special token must be an error");
    } catch (const llmkit::error &e) {
        CHECK(e.status() == LLMKIT_ERROR_INVALID_ARGUMENT);
        CHECK(std::string(e.what()).find("<|endoftext|>") != std::string::npos);
    }
    CHECK(tok.encode(text, {}, true) == std::vector<int32_t>{256, 100257, 256, 100258});
    CHECK_THROWS_AS(tok.encode(text, {"<|endoftext|>"}), llmkit::error);  // fim_prefix still disallowed
    const auto as_text = tok.encode(text, {"<|endoftext|>"}, false, true);
    CHECK(as_text.size() > 4);
    CHECK(as_text[1] == 100257);
    CHECK(tok.decode(as_text) == text);
    const auto all_text = tok.encode(text, {}, false, true);
    CHECK(std::find(all_text.begin(), all_text.end(), 100257) == all_text.end());
    CHECK(tok.decode(all_text) == text);
    CHECK_THROWS_AS(tok.encode(text, {"<|nope|>"}), llmkit::error);
    // A partial special token is ordinary text.
    CHECK(tok.decode(tok.encode("<|endoftext|")) == "<|endoftext|");
}

TEST_CASE("heap merge equals tiktoken's scan, on short pieces and on a 1 MB one", "[bpe]") {
    // Speed on long pieces is checked by ratios in test_linear.cpp and measured in bench/.
    // Pieces of repeated patterns exercise ties between equal pairs.
    temp_file f(tiny_ranks());
    auto t = llmkit::tok::load_tiktoken(f.path, "gpt2");
    std::mt19937 rng(7);
    for (int iter = 0; iter < 2000; ++iter) {
        std::string piece(2 + rng() % 120, 'a');
        for (char &c : piece) c = "ab"[rng() % 2];
        std::vector<int32_t> small, large;
        t->ranks().merge_small(piece, small);
        t->ranks().merge_large(piece, large);
        REQUIRE(small == large);
    }
    std::string big(1 << 20, 'a');
    for (size_t i = 1; i < big.size(); i += 2) big[i] = 'b';
    std::vector<int32_t> ids;
    t->encode_ordinary(big, ids);
    CHECK(ids == std::vector<int32_t>(big.size() / 4, 257));
}

#ifdef LLMKIT_TEST_DATA_DIR

namespace {

const std::string k_data = LLMKIT_TEST_DATA_DIR;

struct vector_set {
    std::vector<std::string> texts;
    std::vector<std::vector<int32_t>> ids;
};

// llama.cpp's test-tokenizer-0 format (see MANIFEST.md).
vector_set read_vectors(const std::string &base) {
    vector_set v;
    const std::string inp = read_file(base + ".inp"), out = read_file(base + ".out");
    const std::string sep = "\n__ggml_vocab_test__\n";
    for (size_t pos = 0, next; (next = inp.find(sep, pos)) != std::string::npos; pos = next + sep.size())
        v.texts.push_back(inp.substr(pos, next - pos));
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream nums(line);
        std::vector<int32_t> ids;
        int32_t id;
        while (nums >> id) ids.push_back(id);
        v.ids.push_back(ids);
    }
    REQUIRE(v.texts.size() == v.ids.size());
    return v;
}

size_t check_vectors(const std::string &rank_file, const char *encoding, const std::string &vectors, size_t expect) {
    auto tok = llmkit::tokenizer::from_tiktoken(k_data + "/" + rank_file, encoding);
    const vector_set v = read_vectors(k_data + "/llama.cpp-vocab/" + vectors);
    CHECK(v.texts.size() == expect);
    size_t pass = 0;
    for (size_t i = 0; i < v.texts.size(); ++i) {
        const auto ids = tok.encode(v.texts[i], {}, false, true);  // parse_special = false
        INFO("case " << i << ": \"" << v.texts[i] << "\"");
        CHECK(ids == v.ids[i]);
        CHECK(tok.decode(ids) == v.texts[i]);
        pass += ids == v.ids[i];
    }
    WARN(encoding << " vs " << vectors << ": " << pass << "/" << v.texts.size());
    return pass;
}

void check_slice(const std::string &rank_file, const char *encoding, const char *ids_name) {
    auto tok = llmkit::tokenizer::from_tiktoken(k_data + "/" + rank_file, encoding);
    const std::string text = read_file(k_data + "/corpus/mixed-slice.txt");
    std::vector<int32_t> expected;
    std::istringstream in(read_file(k_data + "/corpus/mixed-slice-ids/mixed-slice." + std::string(ids_name) + ".ids"));
    for (int32_t id; in >> id;) expected.push_back(id);
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok.encode(text, {}, false, true);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE(ids.size() == expected.size());
    size_t first_diff = ids.size();
    for (size_t i = 0; i < ids.size() && first_diff == ids.size(); ++i)
        if (ids[i] != expected[i]) first_diff = i;
    CHECK(first_diff == ids.size());
    CHECK(tok.decode(ids) == text);
    WARN(encoding << " mixed slice: " << ids.size() << " ids, " << text.size() / s / 1e6 << " MB/s");
}

}  // namespace

TEST_CASE("r50k_base matches llama.cpp's gpt-2 vectors", "[vectors]") {
    CHECK(check_vectors("tiktoken/r50k_base.tiktoken", "r50k_base", "ggml-vocab-gpt-2.gguf", 46) == 46);
}
TEST_CASE("cl100k_base matches llama.cpp's dbrx vectors", "[vectors]") {
    CHECK(check_vectors("tiktoken/cl100k_base.tiktoken", "cl100k_base", "dbrx-pr/ggml-vocab-dbrx.gguf", 43) == 43);
}
TEST_CASE("llama3 matches llama.cpp's llama-bpe vectors", "[vectors]") {
    CHECK(check_vectors("tiktoken/llama3/tokenizer.model", "llama3", "ggml-vocab-llama-bpe.gguf", 46) == 46);
}
TEST_CASE("qwen2 matches llama.cpp's qwen2 vectors", "[vectors]") {
    CHECK(check_vectors("tiktoken/qwen/qwen.tiktoken", "qwen2", "ggml-vocab-qwen2.gguf", 46) == 46);
}

TEST_CASE("mixed slice, gpt2", "[slice]") { check_slice("tiktoken/r50k_base.tiktoken", "gpt2", "gpt2"); }
TEST_CASE("mixed slice, cl100k_base", "[slice]") {
    check_slice("tiktoken/cl100k_base.tiktoken", "cl100k_base", "cl100k");
}
TEST_CASE("mixed slice, llama3", "[slice]") { check_slice("tiktoken/llama3/tokenizer.model", "llama3", "llama3"); }
TEST_CASE("mixed slice, qwen2", "[slice]") { check_slice("tiktoken/qwen/qwen.tiktoken", "qwen2", "qwen2"); }
TEST_CASE("mixed slice, o200k_base", "[slice]") { check_slice("tiktoken/o200k_base.tiktoken", "o200k_base", "o200k"); }

TEST_CASE("tiktoken's own test vectors", "[vectors]") {
    auto gpt2 = llmkit::tokenizer::from_tiktoken(k_data + "/tiktoken/r50k_base.tiktoken", "gpt2");
    auto p50k = llmkit::tokenizer::from_tiktoken(k_data + "/tiktoken/p50k_base.tiktoken", "p50k_base");
    auto cl100k = llmkit::tokenizer::from_tiktoken(k_data + "/tiktoken/cl100k_base.tiktoken", "cl100k_base");
    using v = std::vector<int32_t>;
    CHECK(gpt2.encode("hello world") == v{31373, 995});
    CHECK(gpt2.encode("hello <|endoftext|>", {}, true) == v{31373, 220, 50256});
    CHECK(cl100k.encode("hello <|endoftext|>", {}, true) == v{15339, 220, 100257});
    CHECK(gpt2.encode("0000000000000000") == v{25645});
    CHECK(gpt2.encode("00000000000000000") == v{8269, 10535, 830});
    CHECK(cl100k.encode("'rer") == v{2351, 81});
    CHECK(cl100k.encode("today\n ") == v{31213, 198, 220});
    CHECK(cl100k.encode("today\n \n") == v{31213, 27907});
    CHECK(cl100k.encode("today\n  \n") == v{31213, 14211});
    CHECK(cl100k.encode(" \xc2\x85" "0") == v{220, 126, 227, 15});  // U+0085 is White_Space
    CHECK(cl100k.encode("\xf0\x9f\x91\x8d") == v{9468, 239, 235});
    CHECK(p50k.encode("hello world") == v{31373, 995});
    CHECK(p50k.vocab_size() == 50281);
    CHECK(cl100k.vocab_size() == 100277);
}

TEST_CASE("presets: vocabulary sizes and special ids", "[special]") {
    auto llama3 = llmkit::tokenizer::from_tiktoken(k_data + "/tiktoken/llama3/tokenizer.model", "llama3");
    CHECK(llama3.vocab_size() == 128256);
    CHECK(llama3.token_to_id("<|begin_of_text|>") == 128000);
    CHECK(llama3.token_to_id("<|eot_id|>") == 128009);
    CHECK(llama3.token_to_id("<|reserved_special_token_245|>") == 128255);
    CHECK(llama3.encode("<|start_header_id|>user<|end_header_id|>", {}, true) ==
          std::vector<int32_t>{128006, 882, 128007});
    auto qwen = llmkit::tokenizer::from_tiktoken(k_data + "/tiktoken/qwen/qwen.tiktoken", "qwen2");
    CHECK(qwen.vocab_size() == 151646);
    CHECK(qwen.token_to_id("<|im_end|>") == 151645);
    auto o200k = llmkit::tokenizer::from_tiktoken(k_data + "/tiktoken/o200k_base.tiktoken", "o200k_base");
    CHECK(o200k.vocab_size() == 200019);
    CHECK(o200k.encode("<|endofprompt|>", {"<|endofprompt|>"}) == std::vector<int32_t>{200018});
}

TEST_CASE("heap merge equals tiktoken's scan on every piece of the mixed slice", "[bpe]") {
    for (const char *enc : {"cl100k_base", "o200k_base"}) {
        auto t = llmkit::tok::load_tiktoken(k_data + "/tiktoken/" + enc + ".tiktoken", enc);
        const std::string text = read_file(k_data + "/corpus/mixed-slice.txt");
        size_t compared = 0;
        t->pre_tokenizer().for_each_match(text, [&](size_t b, size_t e) {
            if (e - b < 2 || e - b > 128) return;
            std::vector<int32_t> small, large;
            t->ranks().merge_small(std::string_view(text).substr(b, e - b), small);
            t->ranks().merge_large(std::string_view(text).substr(b, e - b), large);
            if (small != large) FAIL("pieces differ at byte " << b);
            ++compared;
        });
        CHECK(compared > 10000);
    }
}

TEST_CASE("the per-thread piece cache never mixes tokenizers", "[bpe]") {
    // cl100k and o200k alternate on one thread, sentence by sentence, and a
    // tokenizer is destroyed and rebuilt between rounds: every call must still
    // give the ids of a fresh encode of the whole text.
    std::string text = read_file(k_data + "/corpus/mixed-slice.txt");
    size_t cut = 60000;
    while ((static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text.resize(cut);
    std::vector<std::string> parts;
    // About 997 bytes each, cut at character starts (encode takes valid UTF-8 only).
    for (size_t pos = 0, end; pos < text.size(); pos = end) {
        end = std::min(text.size(), pos + 997);
        while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
        parts.push_back(text.substr(pos, end - pos));
    }
    for (int round = 0; round < 2; ++round) {
        auto a = llmkit::tok::load_tiktoken(k_data + "/tiktoken/cl100k_base.tiktoken", "cl100k_base");
        auto b = llmkit::tok::load_tiktoken(k_data + "/tiktoken/o200k_base.tiktoken", "o200k_base");
        for (const auto &part : parts) {
            std::vector<int32_t> ia, ib, ia2, ib2;
            a->encode_ordinary(part, ia);
            b->encode_ordinary(part, ib);
            a->encode_ordinary(part, ia2);
            b->encode_ordinary(part, ib2);
            REQUIRE(ia == ia2);
            REQUIRE(ib == ib2);
            // Bypass the cache: the merge alone, piece by piece.
            std::vector<int32_t> ra, rb;
            a->pre_tokenizer().for_each_match(part, [&](size_t s, size_t e) {
                const auto piece = std::string_view(part).substr(s, e - s);
                if (a->ranks().rank(piece) != llmkit::tok::k_no_rank) ra.push_back(int32_t(a->ranks().rank(piece)));
                else a->ranks().merge_large(piece, ra);
            });
            b->pre_tokenizer().for_each_match(part, [&](size_t s, size_t e) {
                const auto piece = std::string_view(part).substr(s, e - s);
                if (b->ranks().rank(piece) != llmkit::tok::k_no_rank) rb.push_back(int32_t(b->ranks().rank(piece)));
                else b->ranks().merge_large(piece, rb);
            });
            REQUIRE(ia == ra);
            REQUIRE(ib == rb);
        }
    }
}

TEST_CASE("one tokenizer serves many threads at once", "[threads]") {
    auto tok = llmkit::tokenizer::from_tiktoken(k_data + "/tiktoken/cl100k_base.tiktoken", "cl100k_base");
    const std::string text = read_file(k_data + "/corpus/mixed-slice.txt").substr(0, 40000);
    const auto expected = tok.encode(text, {}, false, true);
    std::vector<int> ok(4, 0);
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&, i] {
            for (int r = 0; r < 3; ++r) ok[size_t(i)] += tok.encode(text, {}, false, true) == expected;
        });
    for (auto &t : threads) t.join();
    CHECK(ok == std::vector<int>(4, 3));
}

TEST_CASE("a megabyte of one letter round-trips", "[bpe]") {
    // Its time grows linearly: test_linear.cpp checks that by a ratio within one run.
    auto tok = llmkit::tokenizer::from_tiktoken(k_data + "/tiktoken/cl100k_base.tiktoken", "cl100k_base");
    const std::string text(1 << 20, 'x');
    const auto ids = tok.encode(text);
    CHECK(tok.decode(ids) == text);
}

TEST_CASE("long runs of one character class round-trip", "[bpe]") {
    // Linear time on such runs is checked by ratios in test_linear.cpp.
    auto tok = llmkit::tokenizer::from_tiktoken(k_data + "/tiktoken/o200k_base.tiktoken", "o200k_base");
    std::mt19937 rng(3);
    std::string letters(1 << 18, 'a');
    for (char &c : letters) c = char('a' + rng() % 26);
    std::string cjk;
    while (cjk.size() < (1u << 18)) cjk += "\xe4\xb8\xad";
    const std::string inputs[] = {std::string(1 << 18, ' '), std::string(1 << 18, '!'), std::string(1 << 18, '\n'),
                                  std::string(1 << 18, '/'), letters, cjk};
    for (const auto &text : inputs) {
        const auto ids = tok.encode(text);
        CHECK(tok.decode(ids) == text);
    }
}

#endif  // LLMKIT_TEST_DATA_DIR

TEST_CASE("an encoding given in full: from_ranks, to_tiktoken, pattern", "[custom]") {
    using v = std::vector<int32_t>;
    // The tiny ranks with a pattern no preset has and a special token of our own.
    const std::string tiny = tiny_ranks();
    auto tok = llmkit::tokenizer::from_ranks(tiny, R"(\S+|\s+)", {{"<|x|>", 300}});
    CHECK(tok.vocab_size() == 301);
    CHECK(tok.encode("ababa ab<|x|>", {}, true) == v{257, 'a', ' ', 256, 300});
    CHECK(tok.encode("ab ba", {}, true) == v{256, ' ', 258});
    CHECK(tok.pattern() == "[^\\t-\\r\\x{85}\\p{Z}]+|[\\t-\\r\\x{85}\\p{Z}]+");  // \s as White_Space
    CHECK(tok.to_tiktoken() == tiny);
    // Tokens far longer than a typical vocabulary's (a's doubling up to 32 KiB):
    // the text outgrows the C++ face's first guess, which then asks again.
    std::string doubling;
    for (int b = 0; b < 256; ++b) doubling += b64(std::string(1, char(b))) + " " + std::to_string(b) + "\n";
    for (int k = 1; k <= 15; ++k) doubling += b64(std::string(size_t(1) << k, 'a')) + " " + std::to_string(255 + k) + "\n";
    auto long_tokens = llmkit::tokenizer::from_ranks(doubling, R"(\S+|\s+)", {});
    REQUIRE(doubling.size() > size_t(long_tokens.vocab_size()) * 32 + 4096);
    CHECK(long_tokens.to_tiktoken() == doubling);
    CHECK(long_tokens.encode(std::string(32768 + 3, 'a')) == v{270, 256, 'a'});  // a^32768, aa, a
    // A preset's name as the pattern: the preset's ids with other special tokens.
    auto named = llmkit::tokenizer::from_ranks(tiny, "gpt2", {{"<|x|>", 259}});
    auto gpt2 = llmkit::tokenizer::from_tiktoken(temp_file(tiny).path, "gpt2");
    CHECK(named.encode("abab ba's x") == gpt2.encode("abab ba's x"));
    CHECK(named.vocab_size() == 260);
    CHECK(named.pattern() == gpt2.pattern());

    // cl100k given in full equals the preset on the mixed slice; its ranks come back byte for byte.
    const std::string file = read_file(k_data + "/tiktoken/cl100k_base.tiktoken");
    auto preset = llmkit::tokenizer::from_tiktoken(k_data + "/tiktoken/cl100k_base.tiktoken", "cl100k_base");
    std::vector<std::pair<std::string, int32_t>> specials;
    for (int32_t id = 0; id < preset.vocab_size(); ++id) {
        int32_t is_special = 0;
        if (llmkit_tokenizer_id_to_token(preset.get(), id, nullptr, 0, nullptr, &is_special) == LLMKIT_OK && is_special)
            specials.push_back({preset.id_to_token(id), id});
    }
    REQUIRE(specials.size() == 5);
    auto full = llmkit::tokenizer::from_ranks(file, preset.pattern(), specials);
    const std::string text = read_file(k_data + "/corpus/mixed-slice.txt");
    CHECK(full.encode(text, {}, true) == preset.encode(text, {}, true));
    CHECK(full.vocab_size() == preset.vocab_size());
    CHECK(preset.to_tiktoken() == file);

    // A preset's pattern as tiktoken spells it (tiktoken_ext/openai_public.py) gets the preset's scanner;
    // one branch more (that never matches) makes it PCRE2's.
    const std::string cl100k_tiktoken =
        R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s)";
    using llmkit::tok::pretok_kind;
    CHECK(llmkit::tok::custom_tiktoken(tiny, "t", cl100k_tiktoken, {})->pre_tokenizer_kind() == pretok_kind::cl100k);
    CHECK(llmkit::tok::custom_tiktoken(tiny, "t", "o200k_base", {})->pre_tokenizer_kind() == pretok_kind::o200k);
    CHECK(llmkit::tok::custom_tiktoken(tiny, "t", cl100k_tiktoken + "|(?!)", {})->pre_tokenizer_kind() ==
          pretok_kind::none);
}

TEST_CASE("from_ranks, to_tiktoken and pattern: bad arguments", "[custom][errors]") {
    const std::string tiny = tiny_ranks();
    llmkit_tokenizer *t = reinterpret_cast<llmkit_tokenizer *>(&t);  // must come back NULL
    llmkit_tiktoken_encoding e = LLMKIT_TIKTOKEN_ENCODING_INIT;
    auto status = [&](const void *ranks, size_t size, const llmkit_tiktoken_encoding *enc, const char *needle) {
        const llmkit_status st = llmkit_tokenizer_from_ranks(&t, ranks, size, enc);
        const std::string msg = llmkit_last_error_message();
        INFO(msg);
        CHECK(t == nullptr);
        CHECK(msg.find(needle) != std::string::npos);
        return st;
    };
    CHECK(llmkit_tokenizer_from_ranks(nullptr, tiny.data(), tiny.size(), &e) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(status(tiny.data(), tiny.size(), nullptr, "encoding") == LLMKIT_ERROR_NULL_POINTER);
    CHECK(status(tiny.data(), tiny.size(), &e, "encoding.pattern") == LLMKIT_ERROR_NULL_POINTER);
    e.pattern = R"(\S+)";
    CHECK(status(nullptr, 10, &e, "ranks") == LLMKIT_ERROR_NULL_POINTER);
    CHECK(status(nullptr, 0, &e, "no ranks") == LLMKIT_ERROR_FORMAT);
    CHECK(status("YQ== 0\n", 7, &e, "byte 0x00 is not a token") == LLMKIT_ERROR_FORMAT);
    CHECK(status("YQ== x\n", 7, &e, "(memory):1: invalid rank") == LLMKIT_ERROR_FORMAT);
    e.struct_size = sizeof(e) + 8;
    CHECK(status(tiny.data(), tiny.size(), &e, "struct_size") == LLMKIT_ERROR_INVALID_ARGUMENT);
    e.struct_size = sizeof(e);
    e.pattern = "";
    CHECK(status(tiny.data(), tiny.size(), &e, "pattern is empty") == LLMKIT_ERROR_INVALID_ARGUMENT);
    e.pattern = R"((\p{L}+)";
    CHECK(status(tiny.data(), tiny.size(), &e, "(\\p{L}+") == LLMKIT_ERROR_INVALID_ARGUMENT);
    e.pattern = R"(\S+)";
    e.n_special_tokens = 1;
    CHECK(status(tiny.data(), tiny.size(), &e, "encoding.special_tokens") == LLMKIT_ERROR_NULL_POINTER);
    const char *names[] = {"<|a|>", "<|b|>"};
    e.special_tokens = names;
    CHECK(status(tiny.data(), tiny.size(), &e, "encoding.special_token_ids") == LLMKIT_ERROR_NULL_POINTER);
    const int32_t rank_id[] = {257};
    e.special_token_ids = rank_id;
    CHECK(status(tiny.data(), tiny.size(), &e, "already a regular token's rank") == LLMKIT_ERROR_FORMAT);
    const int32_t twice[] = {400, 400};
    e.special_token_ids = twice;
    e.n_special_tokens = 2;
    CHECK(status(tiny.data(), tiny.size(), &e, "given twice") == LLMKIT_ERROR_INVALID_ARGUMENT);
    const char *null_name[] = {"<|a|>", nullptr};
    e.special_tokens = null_name;
    CHECK(status(tiny.data(), tiny.size(), &e, "encoding.special_tokens[1] is NULL") == LLMKIT_ERROR_NULL_POINTER);

    auto tok = llmkit::tokenizer::from_ranks(tiny, R"(\S+)");
    size_t needed = 0;
    char small[16];
    CHECK(llmkit_tokenizer_to_tiktoken(tok.get(), nullptr, 0, &needed) == LLMKIT_OK);
    CHECK(needed == tiny.size());
    CHECK(llmkit_tokenizer_to_tiktoken(tok.get(), small, sizeof small, &needed) == LLMKIT_ERROR_BUFFER_TOO_SMALL);
    CHECK(needed == tiny.size());
    CHECK(llmkit_tokenizer_to_tiktoken(nullptr, small, sizeof small, &needed) == LLMKIT_ERROR_NULL_POINTER);
    const char *pattern = nullptr;
    CHECK(llmkit_tokenizer_pattern(tok.get(), nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_tokenizer_pattern(nullptr, &pattern) == LLMKIT_ERROR_NULL_POINTER);
    auto json = llmkit::tokenizer::from_file(k_data + "/hf-tokenizers/gpt2/tokenizer.json");
    CHECK(llmkit_tokenizer_to_tiktoken(json.get(), nullptr, 0, &needed) == LLMKIT_ERROR_UNSUPPORTED);
    CHECK(std::string(llmkit_last_error_message()).find("to_tiktoken needs a byte-level BPE tokenizer") !=
          std::string::npos);
    CHECK(llmkit_tokenizer_pattern(json.get(), &pattern) == LLMKIT_ERROR_UNSUPPORTED);
}
