// The pair table (src/tokenizer/pair_table.hpp) and the merge loop that uses
// it, against plain references: a std::map for the table; for the merges, the
// byte-keyed scan (tiktoken's algorithm, merge_small_by_bytes) and the heap
// merge (merge_large), which never touch the pair table. Synthetic
// vocabularies cover crowded buckets, tokens of 1 to over 64 bytes, tokens
// that no merge reaches and ranks in random order; the table must hold each
// token's canonical split (the last merge of its bytes merged alone, found
// here by the byte scan) and no other split; o200k has every split of every
// token checked, and the mixed corpus slice is merged both ways with r50k,
// cl100k and o200k.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/bpe.hpp"
#include "tokenizer/pair_table.hpp"
#include "tokenizer/tokenizer.hpp"
#include "support/test_support.hpp"

using llmkit::tok::k_no_rank;
using llmkit::tok::pair_table;
using llmkit::tok::rank_table;

namespace {

constexpr uint32_t k_none = 0xFFFFFFFFu;

// Distinct random (left, right) keys, ids from the whole range up to k_max_id.
std::map<std::pair<uint32_t, uint32_t>, uint32_t> random_pairs(std::mt19937 &rng, size_t count) {
    std::map<std::pair<uint32_t, uint32_t>, uint32_t> m;
    std::uniform_int_distribution<uint32_t> small(0, 40), any(0, pair_table::k_max_id);
    while (m.size() < count) {
        // Mostly small ids (many keys share a left or a right id), some from the whole range.
        const uint32_t a = rng() % 4 ? small(rng) : any(rng);
        const uint32_t b = rng() % 4 ? small(rng) : any(rng);
        m.emplace(std::make_pair(a, b), any(rng));
    }
    return m;
}

// The 256 bytes as ranks 0..255, then `extra` tokens in rank order.
std::vector<std::pair<std::string, uint32_t>> with_bytes(const std::vector<std::string> &extra) {
    std::vector<std::pair<std::string, uint32_t>> v;
    for (int b = 0; b < 256; ++b) v.emplace_back(std::string(1, char(b)), uint32_t(b));
    for (const auto &t : extra) v.emplace_back(t, uint32_t(v.size()));
    return v;
}

// A vocabulary over a small alphabet (so that merges chain), as BPE training
// makes one: words of repeated motifs start as bytes, and each new token
// joins two adjacent parts of some word (a random pair, not the most
// frequent), which then merge in every word. Lengths grow to over 64 bytes.
// Mixed in: random strings that are tokens although no merge makes them
// (unreachable), at ranks among the merges so they compete with them.
std::vector<std::string> synthetic_tokens(std::mt19937 &rng, size_t count) {
    const std::string alphabet = "abcd\xe4\xb8\xad";  // 4 letters and the bytes of one CJK character
    std::vector<std::string> motifs;
    for (int m = 0; m < 6; ++m) {
        std::string x;
        for (size_t len = 2 + rng() % 4; x.size() < len;) x += alphabet[rng() % alphabet.size()];
        motifs.push_back(x);
    }
    std::vector<std::vector<std::string>> words(200);
    for (auto &w : words) {
        for (size_t len = 20 + rng() % 100; w.size() < len;) {
            const std::string &m = rng() % 4 ? motifs[rng() % motifs.size()] : alphabet.substr(rng() % alphabet.size(), 1);
            for (char c : m) w.emplace_back(1, c);
        }
    }
    std::vector<std::string> tokens;
    std::set<std::string> seen;
    for (int b = 0; b < 256; ++b) seen.insert(std::string(1, char(b)));
    for (int tries = 0; tokens.size() < count && tries < 100000; ++tries) {
        std::string t;
        std::vector<std::string> *w = &words[rng() % words.size()];
        if (rng() % 5 == 0 || w->size() < 2) {  // unreachable (mostly): random bytes of the alphabet, 3..80 long
            const size_t len = 3 + rng() % 78;
            for (size_t i = 0; i < len; ++i) t += alphabet[rng() % alphabet.size()];
            if (seen.insert(t).second) tokens.push_back(t);
            continue;
        }
        const size_t k = rng() % (w->size() - 1);
        const std::string a = (*w)[k], b = (*w)[k + 1];
        t = a + b;
        if (t.size() > 100 || !seen.insert(t).second) continue;
        tokens.push_back(t);
        for (auto &x : words) {  // the merge, leftmost first, in every word
            for (size_t i = 0; i + 1 < x.size(); ++i) {
                if (x[i] != a || x[i + 1] != b) continue;
                x[i] = t;
                x.erase(x.begin() + std::ptrdiff_t(i) + 1);
            }
        }
    }
    return tokens;
}

// Random pieces of 2..128 bytes: runs of tokens and loose alphabet bytes.
std::vector<std::string> synthetic_pieces(std::mt19937 &rng, const std::vector<std::string> &tokens, size_t count) {
    const std::string alphabet = "abcd\xe4\xb8\xad";
    std::vector<std::string> pieces;
    while (pieces.size() < count) {
        const size_t target = 2 + rng() % 127;
        std::string p;
        while (p.size() < target) {
            if (rng() % 3) p += tokens[rng() % tokens.size()];
            else p += alphabet[rng() % alphabet.size()];
        }
        p.resize(target);
        pieces.push_back(p);
    }
    return pieces;
}

// tiktoken's merges of `bytes` alone (lowest rank first, leftmost on ties),
// looking up the parts' bytes only: true, with the two tokens the last merge
// joined, when they end as one token (its canonical split); false when they
// end as several (an unreachable token).
bool canonical_split(const rank_table &table, std::string_view bytes, uint32_t &left, uint32_t &right) {
    std::vector<std::string_view> parts;
    for (size_t i = 0; i < bytes.size(); ++i) parts.push_back(bytes.substr(i, 1));
    while (parts.size() > 1) {
        uint32_t best = k_no_rank;
        size_t at = 0;
        for (size_t k = 0; k + 1 < parts.size(); ++k) {
            const uint32_t q = table.rank(std::string_view(parts[k].data(), parts[k].size() + parts[k + 1].size()));
            if (q < best) best = q, at = k;
        }
        if (best == k_no_rank) return false;
        if (parts.size() == 2) {
            left = table.rank(parts[0]);
            right = table.rank(parts[1]);
            return true;
        }
        parts[at] = std::string_view(parts[at].data(), parts[at].size() + parts[at + 1].size());
        parts.erase(parts.begin() + std::ptrdiff_t(at) + 1);
    }
    return false;
}

// What the pair table answers for (a, b): the rank of their joined bytes when
// that token's canonical split is (a, b), else k_no_rank.
uint32_t expected_merge(const rank_table &table, uint32_t a, uint32_t b) {
    std::string_view x, y;
    if (!table.bytes(a, x) || !table.bytes(b, y)) return k_no_rank;
    const std::string joined = std::string(x) + std::string(y);
    const uint32_t r = table.rank(joined);
    uint32_t left = 0, right = 0;
    return r != k_no_rank && canonical_split(table, joined, left, right) && left == a && right == b ? r : k_no_rank;
}

std::vector<int32_t> merged(const rank_table &t, const std::string &piece, int how) {
    std::vector<int32_t> out;
    if (how == 0) t.merge_small(piece, out);
    else if (how == 1) t.merge_small_by_bytes(piece, out);
    else t.merge_large(piece, out);
    return out;
}

}  // namespace

TEST_CASE("pair table: finds every pair and nothing else, in tables of 1 to 4000 pairs", "[bpe][pairs]") {
    std::mt19937 rng(11);
    // Small tables have few buckets, so most homes are shared and buckets
    // overflow into the next one, the last into the first.
    for (size_t count : {1u, 2u, 3u, 7u, 8u, 9u, 15u, 16u, 17u, 31u, 33u, 100u, 4000u}) {
        const auto ref = random_pairs(rng, count);
        std::vector<pair_table::triple> triples;
        for (const auto &[key, merged_id] : ref) triples.push_back({key.first, key.second, merged_id});
        const pair_table table(triples);
        REQUIRE(table.size() == count);
        for (const auto &[key, merged_id] : ref) REQUIRE(table.find(key.first, key.second, k_none) == merged_id);
        // Absent keys: neighbours of present ones (the same left or right id) and random ones.
        size_t absent = 0;
        for (const auto &[key, merged_id] : ref) {
            for (uint32_t d : {1u, 2u, 1000u}) {
                const std::pair<uint32_t, uint32_t> probes[] = {{key.first, key.second + d}, {key.first + d, key.second},
                                                                {key.second, key.first}};
                for (const auto &q : probes) {
                    if (q.first > pair_table::k_max_id || q.second > pair_table::k_max_id || ref.count(q)) continue;
                    REQUIRE(table.find(q.first, q.second, k_none) == k_none);
                    ++absent;
                }
            }
        }
        CHECK(absent > count);
    }
}

TEST_CASE("pair table: ids at and beyond the limit, and the empty table", "[bpe][pairs]") {
    const uint32_t top = pair_table::k_max_id;
    const pair_table table({{0, 0, 5}, {top, 0, top}, {0, top, 1}, {top, top, 0}});
    CHECK(table.find(0, 0, k_none) == 5);
    CHECK(table.find(top, 0, k_none) == top);
    CHECK(table.find(0, top, k_none) == 1);
    CHECK(table.find(top, top, k_none) == 0);
    // One past the limit is the empty entry's key: never found, never a false hit.
    CHECK(table.find(top + 1, top + 1, k_none) == k_none);
    CHECK(table.find(top + 1, 0, k_none) == k_none);
    CHECK(table.find(0, 0xFFFFFFFFu, k_none) == k_none);
    const pair_table empty;
    CHECK(empty.empty());
    CHECK(empty.find(0, 0, k_none) == k_none);
}

TEST_CASE("merging by ids equals the byte scan and the heap on synthetic vocabularies", "[bpe][pairs]") {
    std::mt19937 rng(5);
    for (int vocab = 0; vocab < 4; ++vocab) {
        auto tokens = synthetic_tokens(rng, 400 + 300 * size_t(vocab % 3));
        // The last vocabulary in random rank order: merged tokens often rank
        // below their parts, and many tokens are unreachable.
        if (vocab == 3) std::shuffle(tokens.begin(), tokens.end(), rng);
        INFO("vocabulary " << vocab);
        const rank_table table(with_bytes(tokens), "synthetic");
        REQUIRE(table.has_pair_table());
        size_t longest = 0;
        for (const auto &t : tokens) longest = std::max(longest, t.size());
        CHECK(longest > 64);
        // The table holds one pair per reachable token, its canonical split.
        size_t reachable = 0;
        for (const auto &t : tokens) {
            uint32_t a, b;
            reachable += canonical_split(table, t, a, b);
        }
        CHECK(table.pairs().size() == reachable);
        CHECK(reachable < tokens.size());  // some tokens no merge makes
        // pair_merge(a, b), for pairs that join into a token and pairs that do not.
        std::vector<uint32_t> ids;
        for (uint32_t r = 0; r < table.end_rank(); ++r) ids.push_back(r);
        size_t hits = 0, other_splits = 0;
        for (int k = 0; k < 20000; ++k) {
            uint32_t a, b;
            if (k % 4 == 3) {  // the canonical split of a token
                if (!canonical_split(table, tokens[rng() % tokens.size()], a, b)) continue;
            } else if (k % 2) {  // a split of a token, which often is a pair of tokens
                const std::string &t = tokens[rng() % tokens.size()];
                const size_t cut = 1 + rng() % (t.size() - 1);
                a = table.rank(std::string_view(t).substr(0, cut));
                b = table.rank(std::string_view(t).substr(cut));
                if (a == k_no_rank || b == k_no_rank) continue;
            } else {
                a = ids[rng() % ids.size()];
                b = ids[rng() % ids.size()];
            }
            const uint32_t expected = expected_merge(table, a, b);
            REQUIRE(table.pair_merge(a, b) == expected);
            hits += expected != k_no_rank;
            other_splits += k % 4 == 1 && expected == k_no_rank;
        }
        CHECK(hits > 100);
        CHECK(other_splits > 100);  // splits that join into a token, but not the canonical one
        for (const auto &piece : synthetic_pieces(rng, tokens, 1500)) {
            INFO("piece of " << piece.size() << " bytes");
            const auto by_ids = merged(table, piece, 0);
            REQUIRE(by_ids == merged(table, piece, 1));
            REQUIRE(by_ids == merged(table, piece, 2));
        }
    }
}

TEST_CASE("without every byte as a token there is no pair table, and merges still agree", "[bpe][pairs]") {
    std::mt19937 rng(7);
    auto entries = with_bytes(synthetic_tokens(rng, 300));
    entries.erase(entries.begin() + 'z');  // 'z' (not in the alphabet) is no token
    const rank_table table(std::move(entries), "no z");
    CHECK_FALSE(table.has_pair_table());
    CHECK(table.pair_merge(97, 98) == k_no_rank);
    for (const auto &piece : synthetic_pieces(rng, {"ab", "cd"}, 200))
        REQUIRE(merged(table, piece, 0) == merged(table, piece, 2));
}

TEST_CASE("ranks up to the merge keys' bound get a pair table, ranks past it none, and merges agree", "[bpe][pairs]") {
    // The same vocabulary with its ranks above the bytes moved up, in order,
    // so that the highest is k_max_merge_ranks - 1 (keys at the top of their
    // range) or k_max_merge_ranks (no pair table: merges by bytes).
    std::mt19937 rng(11);
    const auto tokens = synthetic_tokens(rng, 300);
    for (const uint32_t top : {rank_table::k_max_merge_ranks - 1, rank_table::k_max_merge_ranks}) {
        auto entries = with_bytes(tokens);
        const uint32_t shift = top - entries.back().second;
        for (size_t i = 256; i < entries.size(); ++i) entries[i].second += shift;
        const rank_table table(std::move(entries), "high ranks");
        INFO("highest rank " << top);
        CHECK(table.has_pair_table() == (top < rank_table::k_max_merge_ranks));
        size_t high = 0;
        for (const auto &piece : synthetic_pieces(rng, tokens, 300)) {
            const auto by_ids = merged(table, piece, 0);
            REQUIRE(by_ids == merged(table, piece, 2));
            for (int32_t id : by_ids) high += uint32_t(id) >= 256;
        }
        CHECK(high > 100);  // merged tokens, all ranked near the top
    }
}

#ifdef LLMKIT_TEST_DATA_DIR

namespace {

const std::string k_data = LLMKIT_TEST_DATA_DIR;

using llmkit_test::read_file;

}  // namespace

TEST_CASE("o200k: each token's canonical split is in the pair table, and nothing else", "[bpe][pairs]") {
    // o200k only (the largest table; the mixed-slice test below runs all three).
    for (const char *enc : {"o200k_base"}) {
        auto t = llmkit::tok::load_tiktoken(k_data + "/tiktoken/" + enc + ".tiktoken", enc);
        const rank_table &table = t->ranks();
        REQUIRE(table.has_pair_table());
        size_t multi_byte = 0, canonical = 0, splits = 0, other_splits = 0;
        std::mt19937 rng(1);
        for (uint32_t r = 0; r < table.end_rank(); ++r) {
            std::string_view bytes;
            if (!table.bytes(r, bytes) || bytes.size() < 2) continue;
            ++multi_byte;
            uint32_t left = 0, right = 0;
            const bool reachable = canonical_split(table, bytes, left, right);
            canonical += reachable;
            for (size_t k = 1; k < bytes.size(); ++k) {
                const uint32_t a = table.rank(bytes.substr(0, k)), b = table.rank(bytes.substr(k));
                if (a == k_no_rank || b == k_no_rank) continue;
                const uint32_t expected = reachable && a == left && b == right ? r : k_no_rank;
                other_splits += expected == k_no_rank;
                if (table.pair_merge(a, b) != expected) FAIL(enc << ": rank " << r << " split at " << k);
                // The merge loop's lookup (part bitmaps, memo, filter, table) agrees.
                if (bytes.size() >= 3 &&
                    table.pair_merge_checked(a, b, reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size()) != expected)
                    FAIL(enc << ": rank " << r << " split at " << k << " through pair_merge_checked");
                // Every 8th: the same left token beside a random right one.
                if (splits++ % 8 != 0) continue;
                const uint32_t c = rng() % table.end_rank();
                std::string_view cb;
                if (!table.bytes(c, cb)) continue;
                const std::string joined = std::string(bytes.substr(0, k)) + std::string(cb);
                const uint32_t expected_c = expected_merge(table, a, c);
                if (table.pair_merge(a, c) != expected_c) FAIL(enc << ": pair " << a << ", " << c);
                if (joined.size() >= 3 &&
                    table.pair_merge_checked(a, c, reinterpret_cast<const unsigned char *>(joined.data()), joined.size()) != expected_c)
                    FAIL(enc << ": pair " << a << ", " << c << " through pair_merge_checked");
            }
        }
        CHECK(canonical == table.pairs().size());
        // Every o200k token of two bytes or more is reachable (199,742), and
        // the other 246k splits into two tokens are left out.
        CHECK(canonical == multi_byte);
        CHECK(other_splits > 200000);
    }
}

TEST_CASE("merging by ids equals the byte scan on every piece of the mixed slice", "[bpe][pairs]") {
    const std::string text = read_file(k_data + "/corpus/mixed-slice.txt");
    for (const char *enc : {"r50k_base", "cl100k_base", "o200k_base"}) {
        auto t = llmkit::tok::load_tiktoken(k_data + "/tiktoken/" + enc + ".tiktoken", enc);
        size_t compared = 0;
        t->pre_tokenizer().for_each_match(text, [&](size_t b, size_t e) {
            if (e - b < 2 || e - b > 128) return;
            const std::string piece = text.substr(b, e - b);
            if (merged(t->ranks(), piece, 0) != merged(t->ranks(), piece, 1)) FAIL(enc << ": piece at byte " << b);
            ++compared;
        });
        CHECK(compared > 10000);
    }
}

#endif  // LLMKIT_TEST_DATA_DIR
