// huge_page_allocator (src/tokenizer/huge_pages.hpp), which holds the rank and
// pair tables: vectors on it keep their contents through growth across its
// 1 MiB threshold, blocks from the threshold on start on a 2 MiB boundary
// (Linux, without ASan), smaller ones keep their type's alignment, and a table built on it
// answers lookups as before (the token-exactness tests cover that at scale).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/bpe.hpp"
#include "tokenizer/huge_pages.hpp"

using llmkit::tok::huge_page_allocator;

namespace {

struct alignas(64) line {
    uint64_t v[8];
};

template <typename T>
uintptr_t address(const T *p) {
    return reinterpret_cast<uintptr_t>(p);
}

}  // namespace

TEST_CASE("huge page allocator: contents survive growth across the threshold", "[bpe][huge_pages]") {
    std::vector<uint32_t, huge_page_allocator<uint32_t>> v;
    std::mt19937 rng(5);
    std::vector<uint32_t> expected;
    // 1 MiB is 262144 values: push past it so that the vector moves from
    // operator new to a mapping (and grows again inside mappings).
    for (size_t i = 0; i < 700000; ++i) {
        const uint32_t x = uint32_t(rng());
        v.push_back(x);
        expected.push_back(x);
    }
    REQUIRE(v.size() == expected.size());
    CHECK(std::equal(v.begin(), v.end(), expected.begin()));
    v.shrink_to_fit();  // back into a smaller mapping, then release it all
    CHECK(std::equal(v.begin(), v.end(), expected.begin()));
    v.clear();
    v.shrink_to_fit();
    CHECK(v.capacity() == 0);
}

TEST_CASE("huge page allocator: alignment of small and large blocks", "[bpe][huge_pages]") {
    huge_page_allocator<line> a;
    for (size_t n : {size_t(1), size_t(7), size_t(1000), size_t(16383), size_t(16384), size_t(50000)}) {
        line *p = a.allocate(n);
        INFO(n << " lines of 64 bytes");
        CHECK(address(p) % 64 == 0);
        if (huge_page_allocator<line>::maps_huge_pages && n * sizeof(line) >= huge_page_allocator<line>::k_min_bytes)
            CHECK(address(p) % (size_t(2) << 20) == 0);
        // Every byte is writable, first and last lines included.
        for (size_t i = 0; i < n; ++i) p[i].v[0] = p[i].v[7] = i;
        size_t bad = 0;
        for (size_t i = 0; i < n; ++i) bad += p[i].v[0] != i || p[i].v[7] != i;
        CHECK(bad == 0);
        a.deallocate(p, n);
    }
    CHECK_THROWS_AS(a.allocate(SIZE_MAX / 2), std::bad_array_new_length);
}

TEST_CASE("huge page allocator: a rank table on it finds its tokens and no others", "[bpe][huge_pages]") {
    // ~300k tokens: the slot table, the arena and the rank index all pass
    // the 1 MiB threshold.
    std::vector<std::pair<std::string, uint32_t>> entries;
    for (uint32_t b = 0; b < 256; ++b) entries.emplace_back(std::string(1, char(b)), b);
    std::mt19937 rng(11);
    std::vector<std::string> tokens;
    while (entries.size() < 300000) {
        std::string t(3 + rng() % 14, '\0');
        for (char &c : t) c = char('a' + rng() % 26);
        tokens.push_back(t);
        entries.emplace_back(t, uint32_t(entries.size()));
    }
    // Random strings this long repeat rarely; drop any repeat so ranks stay unique.
    std::sort(entries.begin() + 256, entries.end());
    entries.erase(std::unique(entries.begin() + 256, entries.end(),
                              [](const auto &x, const auto &y) { return x.first == y.first; }),
                  entries.end());
    std::vector<std::pair<std::string, uint32_t>> copy = entries;
    const llmkit::tok::rank_table table(std::move(copy), "test");
    size_t wrong = 0;
    for (const auto &e : entries) wrong += table.rank(e.first) != e.second;
    CHECK(wrong == 0);
    size_t found = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string t(3 + rng() % 14, '\0');
        for (char &c : t) c = char('A' + rng() % 26);  // upper case: never a token
        found += table.rank(t) != llmkit::tok::k_no_rank;
    }
    CHECK(found == 0);
}
