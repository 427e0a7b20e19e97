// merge_by_ids finds the lowest merge key with SSE2's float minimum on the
// keys' bit patterns (src/tokenizer/bpe.cpp), biased so that no key is a
// denormal. A thread may run with the MXCSR's DAZ and FTZ bits set (code
// built with -ffast-math sets them at start-up); then a denormal key would
// read as zero and the wrong pair would merge. These tests encode the same
// text with and without those bits and want the same ids.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.hpp"

#if defined(__SSE2__)
#include <xmmintrin.h>

namespace {

// Sets DAZ (bit 6) and FTZ (bit 15) for its lifetime.
class denormals_are_zero {
public:
    denormals_are_zero() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x0040u | 0x8000u); }
    ~denormals_are_zero() { _mm_setcsr(saved_); }
    denormals_are_zero(const denormals_are_zero &) = delete;
    denormals_are_zero &operator=(const denormals_are_zero &) = delete;

private:
    unsigned saved_;
};

void check_encoding(const char *rank_file, const char *encoding) {
    auto tok = llmkit::tok::load_tiktoken(std::string(LLMKIT_TEST_DATA_DIR) + "/" + rank_file, encoding);
    std::ifstream f(std::string(LLMKIT_TEST_DATA_DIR) + "/corpus/mixed-slice.txt", std::ios::binary);
    REQUIRE(f);
    std::stringstream text;
    text << f.rdbuf();
    std::vector<int32_t> plain, daz;
    tok->encode_ordinary(text.str(), plain);
    // A fresh tokenizer, so that its memos answer nothing the first encode left.
    auto again = llmkit::tok::load_tiktoken(std::string(LLMKIT_TEST_DATA_DIR) + "/" + rank_file, encoding);
    {
        denormals_are_zero mode;
        again->encode_ordinary(text.str(), daz);
    }
    REQUIRE(plain.size() > 10000);
    REQUIRE(daz == plain);
}

}  // namespace

TEST_CASE("merge keys: DAZ and FTZ change no id, o200k_base", "[bpe][merge_keys]") {
    check_encoding("tiktoken/o200k_base.tiktoken", "o200k_base");
}

TEST_CASE("merge keys: DAZ and FTZ change no id, cl100k_base", "[bpe][merge_keys]") {
    check_encoding("tiktoken/cl100k_base.tiktoken", "cl100k_base");
}
#endif
