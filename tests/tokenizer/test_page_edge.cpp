// rank_table::load_head reads 8 bytes at once where they stay inside one 4 KiB
// page, even past the end of a piece (src/tokenizer/bpe.hpp). These tests put
// text right before a page that is not mapped at all, so that a read across
// the page's end would crash, and check that every piece there encodes as the
// same text does in an ordinary string (Linux: mmap and mprotect).
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>

namespace {

// Two pages: the first readable and writable, the second no access.
class guarded_page {
public:
    guarded_page() {
        size_ = size_t(sysconf(_SC_PAGESIZE));
        void *p = mmap(nullptr, 2 * size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(p != MAP_FAILED);
        base_ = static_cast<char *>(p);
        REQUIRE(mprotect(base_ + size_, size_, PROT_NONE) == 0);
    }
    ~guarded_page() { munmap(base_, 2 * size_); }
    guarded_page(const guarded_page &) = delete;
    guarded_page &operator=(const guarded_page &) = delete;
    // A copy of text that ends at the last byte before the unmapped page.
    std::string_view at_end(const std::string &text) {
        REQUIRE(text.size() <= size_);
        char *start = base_ + size_ - text.size();
        std::memcpy(start, text.data(), text.size());
        return {start, text.size()};
    }

private:
    char *base_ = nullptr;
    size_t size_ = 0;
};

void check_encoding(const char *rank_file, const char *encoding) {
    auto tok = llmkit::tok::load_tiktoken(std::string(LLMKIT_TEST_DATA_DIR) + "/" + rank_file, encoding);
    guarded_page page;
    std::mt19937 rng(41);
    // Words of every length from 1 to 40 bytes (ASCII, Cyrillic, CJK, digits,
    // spaces), each also as the end of a longer text: the whole piece, the
    // pieces' hashes and the merges' pair lookups all read near the page end.
    const std::vector<std::string> parts = {"a", "Z", "é", "ж", "中", "7", " ", "\n", "!", "ing", "tion", "😀"};
    for (int trial = 0; trial < 400; ++trial) {
        std::string text;
        const size_t target = 1 + rng() % 40;
        while (text.size() < target) text += parts[rng() % parts.size()];
        const std::string longer = "Some words before it, " + text;
        for (const std::string &t : {text, longer}) {
            std::vector<int32_t> at_edge, ordinary;
            tok->encode_ordinary(page.at_end(t), at_edge);
            tok->encode_ordinary(t, ordinary);
            INFO(encoding << ": " << t.size() << " bytes ending at a page edge");
            REQUIRE(!ordinary.empty());
            REQUIRE(at_edge == ordinary);
        }
    }
}

}  // namespace

TEST_CASE("page edge: text that ends before an unmapped page encodes as elsewhere, o200k_base", "[bpe][page_edge]") {
    check_encoding("tiktoken/o200k_base.tiktoken", "o200k_base");
}

TEST_CASE("page edge: text that ends before an unmapped page encodes as elsewhere, cl100k_base", "[bpe][page_edge]") {
    check_encoding("tiktoken/cl100k_base.tiktoken", "cl100k_base");
}
#endif
