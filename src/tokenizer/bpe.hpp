// Byte-level BPE as tiktoken does it: a table from token bytes to rank (the
// rank is also the token id), and the merge loop that turns one pre-token
// piece into ranks by repeatedly merging the adjacent pair whose
// concatenation has the lowest rank (the leftmost such pair on ties).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/huge_pages.hpp"
#include "tokenizer/pair_table.hpp"

// load_head may read a few bytes past the end of its bytes, within their
// page (see there), except under AddressSanitizer, which checks objects'
// bounds, and ThreadSanitizer, which would see another thread write bytes
// that follow a piece in memory (both detected in huge_pages.hpp).
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && !defined(LLMKIT_TOK_ASAN) && \
    !defined(LLMKIT_TOK_TSAN)
#define LLMKIT_TOK_LOAD_PAST_END 1
#endif

namespace llmkit::tok {

constexpr uint32_t k_no_rank = std::numeric_limits<uint32_t>::max();

// Each thread's memo of recently merged pieces (see rank_table::encode_piece).
struct piece_cache;
piece_cache &this_thread_piece_cache();

class rank_table {
public:
    // Builds the table from (token bytes, rank) entries. Fails with
    // LLMKIT_ERROR_FORMAT on a duplicate token or rank (naming `source`).
    rank_table(const std::vector<std::pair<std::string_view, uint32_t>> &entries, const std::string &source);
    rank_table(const std::vector<std::pair<std::string, uint32_t>> &entries, const std::string &source)
        : rank_table(views(entries), source) {}

    rank_table(const rank_table &) = delete;
    rank_table &operator=(const rank_table &) = delete;

    // The rank of a byte string, or k_no_rank.
    uint32_t rank(std::string_view bytes) const {
        const size_t n = bytes.size();
        const auto *p = reinterpret_cast<const unsigned char *>(bytes.data());
        if (n == 1) return byte_rank_[p[0]];
        if (n == 2) return pair_rank_[p[0] | unsigned(p[1]) << 8];
        return n == 0 ? k_no_rank : find(p, n);
    }
    // The bytes of a rank; false when no token has that rank.
    bool bytes(uint32_t rank, std::string_view &out) const {
        if (rank >= by_rank_.size() || by_rank_[rank].second == k_no_rank) return false;
        out = std::string_view(arena_.data() + by_rank_[rank].first, by_rank_[rank].second);
        return true;
    }
    // One more than the largest rank.
    uint32_t end_rank() const noexcept { return static_cast<uint32_t>(by_rank_.size()); }
    size_t size() const noexcept { return count_; }
    // The first byte value that is not a token of its own, or -1 when every byte is.
    int missing_byte() const noexcept;

    // Appends the ranks of `piece` (non-empty) to `out`. Short pieces that
    // need merging are memoised in `cache` (a direct-mapped table keyed by the
    // exact bytes and this table's process-unique id), so a word that recurs
    // is merged once per thread; the ids are the same either way.
    // `h` is piece_hash(piece), which the whole-piece lookup, its prefetch
    // and the piece cache share (piece_queue computes it once per piece).
    void encode_piece(std::string_view piece, uint64_t h, std::vector<int32_t> &out, piece_cache &cache) const;
    void encode_piece(std::string_view piece, std::vector<int32_t> &out, piece_cache &cache) const {
        if (!piece.empty()) encode_piece(piece, piece_hash(piece), out, cache);
    }
    void encode_piece(std::string_view piece, std::vector<int32_t> &out) const {
        encode_piece(piece, out, this_thread_piece_cache());
    }
    static uint64_t piece_hash(std::string_view piece) noexcept {
        if (piece.empty()) return 0;
        const auto *p = reinterpret_cast<const unsigned char *>(piece.data());
        return hash(p, piece.size(), load_head(p, piece.size()));
    }
    // Starts loading what encode_piece(piece, h, ..., cache) will read first:
    // the filter word and slot of the whole piece, and its piece cache entry.
    void prefetch_piece(std::string_view piece, uint64_t h, const piece_cache &cache) const noexcept;

    // The merge loops encode_piece chooses between (public for tests); they
    // give the same ranks. merge_small: with a pair table, tiktoken's merges
    // with a blocked minimum (merge_by_ids) for pieces of 2..k_max_id_merge
    // bytes; without one, tiktoken's scan looking up the parts' bytes
    // (merge_small_by_bytes, 2..128 bytes); longer pieces go to merge_large,
    // the O(n log n) heap for any length >= 2, which looks up bytes only.
    static constexpr uint32_t k_max_id_merge = 1024;
    // merge_by_ids' keys hold ranks below this (bpe.cpp); the pair table is
    // built only for tables whose ranks all are (below pair_table::k_max_id
    // too, which is larger).
    static constexpr uint32_t k_max_merge_ranks = 0x1FC000;
    void merge_small(std::string_view piece, std::vector<int32_t> &out) const;
    void merge_small_by_bytes(std::string_view piece, std::vector<int32_t> &out) const;
    void merge_large(std::string_view piece, std::vector<int32_t> &out) const;
    // How many parts merge_small starts `piece` from: its bytes, less those
    // of the characters it takes whole (see build_char_table). For tests.
    size_t count_first_parts(std::string_view piece) const;

    // Starts loading the tables that merges read at random (o200k: 1.6 MB,
    // and 3.2 MB more with the pair table), one line after the other. For a
    // long text: when another program ran since the last encode and they
    // left the caches, streaming them in takes ~50-150 us, where missing on
    // them one line at a time takes a millisecond or more.
    void prefetch_merge_tables(bool pair_table) const noexcept;

    // Whether merges go through the pair table: built when every byte is a
    // token (so every part of a piece is a token: a byte or a merge of two)
    // and every rank is below k_max_merge_ranks.
    bool has_pair_table() const noexcept { return !pairs_.empty(); }
    const pair_table &pairs() const noexcept { return pairs_; }
    // rank(bytes(left) + bytes(right)) through the pair table, or k_no_rank
    // (also for any pair when there is no pair table).
    uint32_t pair_merge(uint32_t left, uint32_t right) const noexcept {
        return pairs_.empty() ? k_no_rank : pairs_.find(left, right, k_no_rank);
    }
    // The same answer through the memo of recent pair lookups (see pair_memo_).
    uint32_t pair_merge_memo(uint32_t left, uint32_t right) const noexcept {
        return memoized(left, right, [&] { return pairs_.find(left, right, k_no_rank); });
    }

    // pair_merge_memo for parts whose joined bytes are bytes[0, n) (n >= 3):
    // first the bitmaps of the tokens that are ever a left or a right part,
    // then the memo, then the Bloom filter on the bytes (most pairs that miss
    // the memo are no token), then the pair table. The memo is keyed by the
    // two ids alone, so a hit costs no hash of the bytes.
    // left and right must be ranks of this table (below end_rank()).
    uint32_t pair_merge_checked(uint32_t left, uint32_t right, const unsigned char *bytes, size_t n) const noexcept {
        if (pairs_.empty()) return k_no_rank;
        // The bitmaps cover every rank, so neither test needs a bounds check,
        // and both bits are tested with one branch.
        if (!(left_parts_[left >> 6] >> (left & 63) & right_parts_[right >> 6] >> (right & 63) & 1)) return k_no_rank;
        return memoized_ids(left, right,
                            [&] { return may_be_token(bytes, n) ? pairs_.find(left, right, k_no_rank) : k_no_rank; });
    }

private:
    static std::vector<std::pair<std::string_view, uint32_t>> views(
        const std::vector<std::pair<std::string, uint32_t>> &entries) {
        std::vector<std::pair<std::string_view, uint32_t>> v;
        v.reserve(entries.size());
        for (const auto &[bytes, r] : entries) v.emplace_back(bytes, r);
        return v;
    }

    // Lookups of 3 bytes and more: an open-addressing table (linear probing,
    // power-of-two size, load <= 1/2) whose slots hold the first 8 bytes of
    // the token, so that most probes compare without touching the arena.
    struct slot {
        uint64_t head;  // the first min(len, 8) bytes, zero-padded (see load_head)
        uint32_t rank;  // k_no_rank = empty
        uint32_t len;
    };
    // The first min(n, 8) bytes of p as a number (n >= 1), the rest zero.
    static uint64_t load_head(const unsigned char *p, size_t n) noexcept {
#if defined(LLMKIT_TOK_LOAD_PAST_END)
        // Every piece, its hash and each pair a merge looks up come through
        // here, with lengths that vary from one call to the next: one 8-byte
        // load and two shifts, where the loads by length below mispredict
        // their branches. Memory is mapped a 4 KiB page at a time, so eight
        // bytes that start at p and stay in p's page can be read even when
        // fewer are p's; the shifts clear the ones past n.
        if ((reinterpret_cast<uintptr_t>(p) & 4095) <= 4096 - 8) {
#if defined(__GNUC__)
            // An empty asm hides which object p points into, so that the
            // compiler treats the load as a plain load of memory.
            __asm__("" : "+r"(p));
#endif
            uint64_t w;
            std::memcpy(&w, p, 8);
            const unsigned s = 64 - 8 * unsigned(n < 8 ? n : 8);
            return w << s >> s;
        }
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        uint64_t v = 0;
        if (n >= 8) {
            std::memcpy(&v, p, 8);
        } else if (n >= 4) {  // two overlapping loads; the shared bytes are equal, so OR is exact
            uint32_t lo, hi;
            std::memcpy(&lo, p, 4);
            std::memcpy(&hi, p + n - 4, 4);
            v = uint64_t(lo) | uint64_t(hi) << (8 * (n - 4));
        } else if (n >= 2) {
            uint16_t lo, hi;
            std::memcpy(&lo, p, 2);
            std::memcpy(&hi, p + n - 2, 2);
            v = uint64_t(lo) | uint64_t(hi) << (8 * (n - 2));
        } else {
            v = p[0];
        }
        return v;
#else
        uint64_t v = 0;
        for (size_t i = 0; i < n && i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
        return v;
#endif
    }
    static uint64_t hash(const unsigned char *p, size_t n, uint64_t head) noexcept {
        uint64_t h = head ^ (uint64_t(n) * 0x9E3779B97F4A7C15ull);
        for (size_t i = 8; i < n; i += 8) {
            h = (h ^ (h >> 31)) * 0xBF58476D1CE4E5B9ull;
            h ^= load_head(p + i, n - i);
        }
        h ^= h >> 32;
        h *= 0xD6E8FEB86659FD93ull;
        h ^= h >> 32;
        h *= 0xD6E8FEB86659FD93ull;
        return h ^ (h >> 32);
    }
    // Starts loading the slot where a lookup of p[0, n) begins.
    void prefetch(const unsigned char *p, size_t n) const noexcept {
        if (n <= 2) return;
        const size_t i = size_t(hash(p, n, load_head(p, n))) & mask_;
#if defined(__GNUC__)
        __builtin_prefetch(&slots_[i]);
#else
        (void)i;
#endif
    }
    // Two bits of a 64-bit filter word that every token with hash h sets.
    static uint64_t filter_bits(uint64_t h) noexcept { return uint64_t(1) << (h >> 58) | uint64_t(1) << ((h >> 52) & 63); }
    // False when p[0, n) (n >= 3) is surely no token; true when it may be one.
    bool may_be_token(const unsigned char *p, size_t n) const noexcept {
        const uint64_t h = hash(p, n, load_head(p, n));
        const uint64_t bits = filter_bits(h);
        return (filter_[size_t(h >> 20) & filter_mask_] & bits) == bits;
    }
    // merge_small with the pair table (2..k_max_id_merge bytes).
    void merge_by_ids(std::string_view piece, std::vector<int32_t> &out) const;
    // Each token's canonical split, the only pair merges ever join (none when not built).
    void build_pair_table();

    // Characters that merge_by_ids may take as one part from the start
    // instead of merging their bytes (see build_char_table for the proof that
    // the ids stay the same). One entry per token that is one UTF-8 character
    // of 2 to 4 bytes (a lead byte and its continuation bytes).
    struct char_entry {
        uint32_t key;    // the character's bytes, the first one lowest; 0: empty slot
        uint32_t id;     // its token
        uint32_t inner;  // the highest rank among the merges that build it from its bytes; k_no_rank: they don't
        uint32_t left;   // no token holding a byte before it and a byte of it ranks lower
        uint32_t right;  // no token holding a byte of it and a byte after it ranks lower
        // Sharper bounds by the neighbouring byte: bit e & 63 is set when a
        // token with continuation byte e and then (a prefix of) the character
        // ranks at most inner; bit f & 63, when one with (a suffix of) the
        // character and then lead byte f does.
        uint64_t low_after;   // by e, the byte before the character
        uint64_t low_before;  // by f, the byte after it
    };
    void build_char_table(const std::vector<uint32_t> &inner_ranks);
    // Calls add_part(start, length, id) for each part merge_by_ids starts p[0, n) from.
    template <typename AddPart>
    void first_parts(const unsigned char *p, uint32_t n, AddPart &&add_part) const;
    const char_entry *find_char(uint32_t key) const noexcept {
        for (size_t i = size_t((uint64_t(key) * 0x9E3779B97F4A7C15ull) >> 32) & chars_mask_;; i = (i + 1) & chars_mask_) {
            const char_entry &e = chars_[i];
            if (e.key == key) return &e;
            if (e.key == 0) return nullptr;
        }
    }
    // A token that is an ASCII byte and then one character of 2 to 4 bytes
    // (" с", "(中"), whose bytes merged alone end as itself: first_parts may
    // start a piece that begins with it as one part (see build_char_table).
    struct lead_entry {
        uint64_t key;    // the bytes, the first one lowest; 0: empty slot
        uint32_t id;     // the token
        uint32_t inner;  // the highest rank among the merges that build it from its bytes
    };
    const lead_entry *find_lead(uint64_t key) const noexcept {
        for (size_t i = size_t((key * 0x9E3779B97F4A7C15ull) >> 32) & leads_mask_;; i = (i + 1) & leads_mask_) {
            const lead_entry &e = leads_[i];
            if (e.key == key) return &e;
            if (e.key == 0) return nullptr;
        }
    }
    // find_char for the character p[0, len) (is_character holds), by code
    // point through bmp_chars_ where it can (see bpe.cpp).
    const char_entry *find_char_at(const unsigned char *p, uint32_t len) const noexcept;
    uint32_t find(const unsigned char *p, size_t n) const noexcept {
        const uint64_t head = load_head(p, n);
        return find(p, n, head, hash(p, n, head));
    }
    // find with the head and hash of p[0, n) given.
    uint32_t find(const unsigned char *p, size_t n, uint64_t head, uint64_t h) const noexcept {
        // Most lookups while merging are of byte strings that are no token;
        // the filter (about 10 bits per token, L2-sized) answers nearly all of
        // them without the cache miss into the much larger slot table.
        const uint64_t bits = filter_bits(h);
        if ((filter_[size_t(h >> 20) & filter_mask_] & bits) != bits) return k_no_rank;
        size_t i = size_t(h) & mask_;
        for (;; i = (i + 1) & mask_) {
            const slot &s = slots_[i];
            if (s.rank == k_no_rank) return k_no_rank;
            if (s.len == n && s.head == head &&
                (n <= 8 || same_tail(arena_.data() + by_rank_[s.rank].first, p, n)))
                return s.rank;
        }
    }

    // Whether a[8, n) == p[8, n) (n > 8), eight bytes at a time: tokens are
    // short, and a call to memcmp costs more than the compare.
    static bool same_tail(const char *a, const unsigned char *p, size_t n) noexcept {
        const auto *b = reinterpret_cast<const unsigned char *>(a);
        for (size_t i = 8; i < n; i += 8)
            if (load_head(b + i, n - i) != load_head(p + i, n - i)) return false;
        return true;
    }

    // The tables that lookups read at random (MiBs for o200k) sit on huge
    // pages where the system allows (see huge_page_allocator).
    template <typename T>
    using big_vector = std::vector<T, huge_page_allocator<T>>;
    big_vector<char> arena_;                              // all token bytes back to back
    big_vector<std::pair<uint32_t, uint32_t>> by_rank_;   // rank -> (offset, length); length k_no_rank = absent
    big_vector<slot> slots_;                              // tokens of 3 bytes and more
    std::vector<uint64_t> filter_;                        // blocked Bloom filter of the slots' tokens
    size_t filter_mask_ = 0;                              // filter_.size() - 1
    size_t mask_ = 0;                                     // slots_.size() - 1
    size_t count_ = 0;                                    // tokens in the table
    uint32_t byte_rank_[256];
    std::vector<uint32_t> pair_rank_;                     // 65536: b0 | b1 << 8 -> rank of a 2-byte token
    uint64_t id_;                                         // never reused in the process: keys piece_cache
    pair_table pairs_;                                    // (left id, right id) -> merged id
    // Bit i: token i is the left (right) part of some pair in pairs_. Of
    // o200k's 200k tokens only 35k are ever a left part and 28k a right one,
    // and these bitmaps (25 KiB each) stay in L1/L2 where the memo and the
    // filter would not.
    std::vector<uint64_t> left_parts_, right_parts_;
    std::vector<char_entry> chars_;                       // open addressing by key; empty without a pair table
    size_t chars_mask_ = 0;                               // chars_.size() - 1
    // Code point below U+10000 (2-byte characters and 3-byte ones that are
    // not overlong) -> its slot in chars_ + 1, 0 for none (128 KiB); empty
    // when chars_ has 65535 slots or more.
    std::vector<uint16_t> bmp_chars_;
    std::vector<lead_entry> leads_;                       // open addressing by key; empty without a character table
    size_t leads_mask_ = 0;                               // leads_.size() - 1
    // A direct-mapped memo of the pairs the pair table merged (2^k_memo_bits
    // entries of 8 bytes: left, right, merged; 256 KiB). Text reuses few
    // pairs over and over (o200k on the mixed corpus slice: 50k merges make
    // 9.4k distinct tokens), and packed eight to a cache line they stay in
    // L2, where the pair table's lines, one per pair, would not. Pairs that
    // are no token are not kept: the bitmaps and the Bloom filter turn them
    // away without the table, and kept they took the slots of pairs that
    // merge. o200k on the UDHR corpus reads 31k distinct pairs from the
    // table in one encode; with 16k slots its encode took 1.05x as long.
    // Shared by all threads: each entry is one atomic word, written whole,
    // so a reader sees a complete old or new entry; the all-ones word (ids
    // beyond k_max_id) is empty.
    static constexpr unsigned k_memo_bits = 15;
    static constexpr uint64_t k_memo_key_mask = (uint64_t(1) << (2 * pair_table::k_id_bits)) - 1;
    std::unique_ptr<std::atomic<uint64_t>[]> pair_memo_;

    // The memo's answer for (left, right), or lookup()'s, which it then keeps
    // when it is a token.
    template <typename Lookup>
    uint32_t memoized(uint32_t left, uint32_t right, Lookup lookup) const noexcept {
        if (pairs_.empty() || left > pair_table::k_max_id || right > pair_table::k_max_id) return k_no_rank;
        return memoized_ids(left, right, lookup);
    }
    // memoized for ids known to be ranks of this table, with a pair table
    // (every rank is at most pair_table::k_max_id then).
    template <typename Lookup>
    uint32_t memoized_ids(uint32_t left, uint32_t right, Lookup lookup) const noexcept {
        const uint64_t key = uint64_t(left) | uint64_t(right) << pair_table::k_id_bits;
        std::atomic<uint64_t> &m = pair_memo_[size_t((key * 0x9E3779B97F4A7C15ull) >> (64 - k_memo_bits))];
        const uint64_t e = m.load(std::memory_order_relaxed);
        if ((e & k_memo_key_mask) == key) return uint32_t(e >> (2 * pair_table::k_id_bits));
        const uint32_t r = lookup();
        if (r != k_no_rank) m.store(key | uint64_t(r) << (2 * pair_table::k_id_bits), std::memory_order_relaxed);
        return r;
    }
};

// Encodes the pieces pushed to it, in order, each k_depth pieces after it was
// pushed. Pushing a piece starts loading the table memory its lookup reads
// (rank_table::prefetch_piece), so the cache misses of several pieces overlap
// instead of coming one after another: with o200k most pieces are one token,
// found with one miss into a table of many MiB.
class piece_queue {
public:
    piece_queue(const rank_table &table, piece_cache &cache, std::vector<int32_t> &out) noexcept
        : table_(table), cache_(cache), out_(out) {}
    void push(std::string_view piece) {
        if (count_ == k_depth) pop();
        const uint64_t h = rank_table::piece_hash(piece);
        table_.prefetch_piece(piece, h, cache_);
        ring_[(head_ + count_) % k_depth] = {piece, h};
        ++count_;
    }
    // Encodes the pieces still waiting; call it after the last push.
    void flush() {
        while (count_ > 0) pop();
    }

private:
    static constexpr size_t k_depth = 8;
    void pop() {
        table_.encode_piece(ring_[head_].piece, ring_[head_].h, out_, cache_);
        head_ = (head_ + 1) % k_depth;
        --count_;
    }
    const rank_table &table_;
    piece_cache &cache_;
    std::vector<int32_t> &out_;
    struct waiting {
        std::string_view piece;
        uint64_t h;  // rank_table::piece_hash(piece)
    };
    waiting ring_[k_depth];
    size_t head_ = 0, count_ = 0;
};

}  // namespace llmkit::tok
