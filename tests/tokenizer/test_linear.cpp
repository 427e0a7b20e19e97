// Linear time on adversarial input: 4 MB of one repeated letter, and of
// random lowercase letters (one pre-tokenizer piece, no split), and long runs
// of spaces and of CJK, take less than
// 10x the time of 1 MB (4x is linear, a little more with cache effects;
// tiktoken's merge loop is quadratic and takes ~16x). Ratios within one run, not absolute times, so a slow or busy
// machine does not make the test flaky. bench/bench_tokenizer.py shows the
// times next to tiktoken's.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "llmkit/llmkit.hpp"

#ifdef LLMKIT_TEST_DATA_DIR

namespace {

// The fastest of three encodes of each text, the two texts taking turns, so
// that a burst of other work on the machine slows both alike instead of
// only the one timed during it (a busy machine only ever slows an encode).
struct encode_times {
    double small = 1e30, big = 1e30;
    size_t n_small = 0, n_big = 0;
};
encode_times time_encodes(const llmkit::tokenizer &tok, const std::string &small, const std::string &big) {
    encode_times t;
    const auto timed = [&](const std::string &text, size_t &n_ids, double &best) {
        const auto t0 = std::chrono::steady_clock::now();
        n_ids = tok.encode(text).size();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    };
    for (int rep = 0; rep < 3; ++rep) {
        timed(small, t.n_small, t.small);
        timed(big, t.n_big, t.big);
    }
    return t;
}

}  // namespace

TEST_CASE("encoding time is linear on one long piece (r50k, cl100k, o200k)", "[linear]") {
    const std::string data = LLMKIT_TEST_DATA_DIR;
    std::mt19937 rng(3);
    std::string letters(4u << 20, 'a');
    for (char &c : letters) c = char('a' + rng() % 26);
    const std::string repeated(4u << 20, 'a');
    for (const char *name : {"r50k_base", "cl100k_base", "o200k_base"}) {
        const auto tok = llmkit::tokenizer::from_tiktoken(data + "/tiktoken/" + name + ".tiktoken", name);
        for (const std::string *big : std::vector<const std::string *>{&repeated, &letters}) {
            const encode_times t = time_encodes(tok, big->substr(0, big->size() / 4), *big);
            INFO(name << (big == &repeated ? " repeated letter" : " random letters") << ": 1 MB " << t.small
                      << " s, 4 MB " << t.big << " s, ratio " << t.big / t.small);
            CHECK(t.n_big > 3 * t.n_small);  // sanity: the input really is 4x larger in tokens too
            CHECK(t.big / t.small < 10.0);
        }
    }
}

TEST_CASE("encoding time is linear on long runs of spaces and of CJK (o200k)", "[linear]") {
    // Whitespace runs meet the pattern's \s+(?!\S) look-ahead; CJK runs are one
    // long letter piece of 3-byte characters.
    const std::string data = LLMKIT_TEST_DATA_DIR;
    const auto tok = llmkit::tokenizer::from_tiktoken(data + "/tiktoken/o200k_base.tiktoken", "o200k_base");
    std::string cjk;
    while (cjk.size() < (3u << 20)) cjk += "\xe4\xb8\xad";
    for (const std::string &big : {std::string(4u << 20, ' '), cjk}) {
        const encode_times t = time_encodes(tok, big.substr(0, big.size() / 4), big);
        INFO((big[0] == ' ' ? "spaces" : "CJK") << ": 1/4 " << t.small << " s, whole " << t.big << " s, ratio "
                                                << t.big / t.small);
        CHECK(t.n_big > 3 * t.n_small);
        CHECK(t.big / t.small < 10.0);
    }
}

#endif  // LLMKIT_TEST_DATA_DIR
