#include "tokenizer/bpe.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <queue>
#include <unordered_map>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

#include "core/error.hpp"

namespace llmkit::tok {

namespace {
std::atomic<uint64_t> g_next_table_id{1};
}  // namespace

// 4096 entries of 128 bytes (512 KiB, within a core's L2), direct-mapped by
// the piece hash. An entry is valid for the table whose id it holds; ids are
// never reused, so a destroyed table's entries can only miss.
struct piece_cache {
    static constexpr size_t k_entries = 4096;
    static constexpr size_t k_max_bytes = 64;
    static constexpr size_t k_max_ids = 13;
    struct alignas(64) entry {
        uint64_t owner = 0;  // 0: empty
        uint8_t len = 0, count = 0;
        char bytes[k_max_bytes];
        int32_t ids[k_max_ids];
    };
    static_assert(sizeof(entry) == 128, "two cache lines per entry");
    entry entries[k_entries];
};

piece_cache &this_thread_piece_cache() {
    thread_local std::unique_ptr<piece_cache> cache(new piece_cache());
    return *cache;
}

rank_table::rank_table(const std::vector<std::pair<std::string_view, uint32_t>> &entries, const std::string &source)
    : id_(g_next_table_id.fetch_add(1, std::memory_order_relaxed)) {
    size_t total = 0;
    uint32_t max_rank = 0;
    for (const auto &e : entries) {
        total += e.first.size();
        max_rank = std::max(max_rank, e.second);
    }
    // Offsets and lengths are 32-bit (k_no_rank marks an absent length).
    if (total >= k_no_rank) core::fail(LLMKIT_ERROR_FORMAT, source, ": the tokens total 4 GiB or more");
    arena_.reserve(total);
    by_rank_.assign(entries.empty() ? 0 : size_t(max_rank) + 1, {0u, k_no_rank});
    for (const auto &e : entries) {
        if (by_rank_[e.second].second != k_no_rank)
            core::fail(LLMKIT_ERROR_FORMAT, source, ": rank ", e.second, " is given to two tokens");
        by_rank_[e.second] = {static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(e.first.size())};
        arena_.insert(arena_.end(), e.first.begin(), e.first.end());
    }
    size_t cap = 16;
    while (cap < 2 * entries.size()) cap *= 2;
    slots_.assign(cap, slot{0, k_no_rank, 0});
    mask_ = cap - 1;
    // ~8+ bits per token in 64-bit words: two bits per token give ~3% false
    // positives. Filled in the loop below; no lookup reads it before.
    size_t words = 1;
    while (words * 64 < 8 * entries.size()) words *= 2;
    filter_.assign(words, 0);
    filter_mask_ = words - 1;
    std::fill(std::begin(byte_rank_), std::end(byte_rank_), k_no_rank);
    pair_rank_.assign(65536, k_no_rank);
    uint32_t empty_rank = k_no_rank;
    for (uint32_t r = 0; r < by_rank_.size(); ++r) {
        const auto [off, len] = by_rank_[r];
        if (len == k_no_rank) continue;
        const auto *p = reinterpret_cast<const unsigned char *>(arena_.data() + off);
        auto duplicate = [&](uint32_t existing) {
            core::fail(LLMKIT_ERROR_FORMAT, source, ": the same token bytes have ranks ", existing, " and ", r);
        };
        ++count_;
        if (len == 0) {  // no piece is empty, so an empty token is never looked up
            if (empty_rank != k_no_rank) duplicate(empty_rank);
            empty_rank = r;
        } else if (len == 1) {
            if (byte_rank_[p[0]] != k_no_rank) duplicate(byte_rank_[p[0]]);
            byte_rank_[p[0]] = r;
        } else if (len == 2) {
            uint32_t &slot2 = pair_rank_[p[0] | unsigned(p[1]) << 8];
            if (slot2 != k_no_rank) duplicate(slot2);
            slot2 = r;
        } else {
            // One probe both finds an earlier token with these bytes and the free slot.
            const uint64_t head = load_head(p, len);
            const uint64_t h = hash(p, len, head);
            size_t i = size_t(h) & mask_;
            for (; slots_[i].rank != k_no_rank; i = (i + 1) & mask_) {
                const slot &s = slots_[i];
                if (s.len == len && s.head == head && (len <= 8 || same_tail(arena_.data() + by_rank_[s.rank].first, p, len)))
                    duplicate(s.rank);
            }
            slots_[i] = slot{head, r, len};
            filter_[size_t(h >> 20) & filter_mask_] |= filter_bits(h);
        }
    }
    build_pair_table();
}

void rank_table::build_pair_table() {
    static_assert(k_max_merge_ranks <= pair_table::k_max_id + 1, "the merge keys' bound is the tighter one");
    if (missing_byte() >= 0 || end_rank() > k_max_merge_ranks) return;
    // Of the ways to split a token into two tokens (o200k: 446k pairs from
    // 200k tokens), tiktoken's merges only ever join one: the last merge of
    // the token's own bytes merged alone, its canonical split. Why: while a
    // part t forms inside a piece, no merge has crossed its edges yet, so
    // the merges within its span are exactly those of bytes(t) merged alone
    // (each was the lowest rank of the whole piece, so also of the span;
    // leftmost on ties both ways), and the last of them joins t's canonical
    // split. Any other split (a, b) of t is therefore never the merge chosen,
    // so leaving it out of the table changes no choice, and a token whose
    // bytes merged alone do not end as itself (unreachable) is never a part.
    // The table holds about half the pairs, and the part bitmaps filter more.
    //
    // The canonical splits, shortest tokens first: merging bytes(t) with the
    // splits of the shorter tokens makes the same merges as with the whole
    // table until two parts are left (a merge of the whole table joins a
    // proper substring of t, whose canonical split is in by then, or t), and
    // with the whole table those two then join into t. So bytes(t) merged
    // with the table so far ends in two parts exactly when they are t's
    // canonical split, and in more when t is unreachable.
    std::vector<uint32_t> by_length;  // tokens of 2 bytes and more, shortest first
    {
        uint32_t longest = 0;
        for (const auto &[off, len] : by_rank_)
            if (len != k_no_rank) longest = std::max(longest, len);
        std::vector<size_t> first(size_t(longest) + 2, 0);  // first[len + 1]: how many are shorter than len + 1, once summed
        for (uint32_t r = 0; r < by_rank_.size(); ++r) {
            const uint32_t len = by_rank_[r].second;
            if (len != k_no_rank && len >= 2) ++first[len + 1];
        }
        for (size_t len = 1; len < first.size(); ++len) first[len] += first[len - 1];
        by_length.resize(first.back());
        for (uint32_t r = 0; r < by_rank_.size(); ++r) {
            const uint32_t len = by_rank_[r].second;
            if (len != k_no_rank && len >= 2) by_length[first[len]++] = r;
        }
    }
    pair_table table(by_length.size());
    left_parts_.assign(size_t(end_rank()) / 64 + 1, 0);
    right_parts_.assign(size_t(end_rank()) / 64 + 1, 0);
    // tiktoken's scan over the parts (id and first byte) and the rank each
    // forms with the next. Pairs of bytes are answered by pair_rank_ and most
    // other pairs that join into no token by the Bloom filter, so that few
    // lookups reach the table's cache lines, spread over MiBs.
    std::vector<uint32_t> part, start, merge;
    // The highest rank among the merges of each reachable token's bytes merged
    // alone: its own and its split's parts' (k_no_rank: unreachable).
    std::vector<uint32_t> inner(by_rank_.size(), k_no_rank);
    const auto inner_of = [&](uint32_t x) { return by_rank_[x].second == 1 ? 0u : inner[x]; };
    for (uint32_t r : by_length) {
        const uint32_t len = by_rank_[r].second;  // not a structured binding: the lambda below captures it
        const auto *t = reinterpret_cast<const unsigned char *>(arena_.data() + by_rank_[r].first);
        const auto joined = [&](size_t k) {  // rank of part[k] + part[k + 1] with the splits of shorter tokens
            const uint32_t n = start[k + 2] - start[k];
            if (n == len) return k_no_rank;  // t itself: its split is what the scan finds
            if (n == 2) return pair_rank_[t[start[k]] | unsigned(t[start[k] + 1]) << 8];
            return may_be_token(t + start[k], n) ? table.find(part[k], part[k + 1], k_no_rank) : k_no_rank;
        };
        part.resize(len);
        start.resize(len + 1);
        for (uint32_t k = 0; k < len; ++k) part[k] = byte_rank_[t[k]], start[k] = k;
        start[len] = len;
        merge.resize(len - 1);
        for (uint32_t k = 0; k + 1 < len; ++k) merge[k] = joined(k);
        for (;;) {
            size_t at = 0;
            for (size_t k = 1; k < merge.size(); ++k)
                if (merge[k] < merge[at]) at = k;
            if (merge.empty() || merge[at] == k_no_rank) break;
            part[at] = merge[at];
            part.erase(part.begin() + std::ptrdiff_t(at) + 1);
            start.erase(start.begin() + std::ptrdiff_t(at) + 1);
            merge.erase(merge.begin() + std::ptrdiff_t(at));
            if (at > 0) merge[at - 1] = joined(at - 1);
            if (at < merge.size()) merge[at] = joined(at);
        }
        if (part.size() != 2) continue;  // unreachable: never a part, never joined
        table.insert({part[0], part[1], r});
        inner[r] = std::max({r, inner_of(part[0]), inner_of(part[1])});
        left_parts_[part[0] >> 6] |= uint64_t(1) << (part[0] & 63);
        right_parts_[part[1] >> 6] |= uint64_t(1) << (part[1] & 63);
    }
    pairs_ = std::move(table);
    pair_memo_.reset(new std::atomic<uint64_t>[size_t(1) << k_memo_bits]);
    for (size_t i = 0; i < (size_t(1) << k_memo_bits); ++i) pair_memo_[i].store(~uint64_t(0), std::memory_order_relaxed);
    build_char_table(inner);
}

namespace {

// The length of the UTF-8 sequence that byte b starts: 1 for ASCII, 2..4 for
// a lead byte, 0 for a continuation byte or one that starts nothing.
inline uint32_t sequence_length(unsigned char b) {
    return b < 0x80 ? 1 : b < 0xC2 ? 0 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : b < 0xF5 ? 4 : 0;
}
inline bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }
// Whether p[0, len) (len >= 2) is a lead byte of that length and its
// continuation bytes: a "character" below. Only the bytes are checked (an
// overlong form counts too): build_char_table and merge_by_ids need the same
// answer, not Unicode's.
inline bool is_character(const unsigned char *p, uint32_t len) {
    if (sequence_length(p[0]) != len) return false;
    for (uint32_t k = 1; k < len; ++k)
        if (!is_continuation(p[k])) return false;
    return true;
}
// Up to 8 bytes as a number, the first one lowest (lead_entry keys).
inline uint64_t pack64(const unsigned char *p, uint32_t len) {
    uint64_t v = 0;
    for (uint32_t k = 0; k < len; ++k) v |= uint64_t(p[k]) << (8 * k);
    return v;
}
// Up to 4 bytes (a character) as a number, the first one lowest.
inline uint32_t pack(const unsigned char *p, uint32_t len) { return uint32_t(pack64(p, len)); }
// The index of the character p[0, len) in bmp_chars_: its code point, for a
// 2-byte character or a 3-byte one that is not overlong (an overlong form
// shares a 2-byte character's code point); k_not_bmp for the others.
constexpr uint32_t k_not_bmp = ~uint32_t(0);
inline uint32_t bmp_index(const unsigned char *p, uint32_t len) {
    if (len == 2) return (p[0] & 0x1Fu) << 6 | (p[1] & 0x3Fu);
    if (len != 3) return k_not_bmp;
    const uint32_t cp = (p[0] & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
    return cp >= 0x800 ? cp : k_not_bmp;
}

}  // namespace

// Why a character c may start whole. Say its bytes, merged alone, end as the
// single token c, and the highest rank among those merges is inner(c). In a
// piece, while c is still in parts, one of its own merges (rank <= inner(c))
// is always available, so every merge made meanwhile ranks <= inner(c). If
// every token that holds a byte of c and a byte next to it ranks higher than
// inner(c), no such merge happens before c is whole, and merging c first
// changes nothing: the other merges see the same parts and the same ranks
// (the pairs that c whole forms with its neighbours are such tokens, so they
// rank above every merge they could overtake). Such a token holds the last
// byte of the character before c and the first of c (or the last of c and
// the first after): it ranks at least max(right(before), left(c)), where
// left(c) is the lowest rank of a token with a byte and then a prefix of c
// (or c whole), right(c) that of a token with a suffix of c (or c whole) and
// then a byte. merge_by_ids starts c whole when inner(c) is below both
// max(right(before), left(c)) and max(right(c), left(after)) (a bound that
// is not known counts as 0; the piece's ends bound nothing). Where those
// fail, a sharper bound by the actual neighbouring byte may hold: when the
// byte before c is a continuation byte e, only the tokens with e and then a
// prefix of c (or c whole) cross that edge; low_after marks the e for which
// one ranks at or below inner(c). Likewise low_before for a lead byte after c.
void rank_table::build_char_table(const std::vector<uint32_t> &inner_ranks) {
    std::vector<uint32_t> char_ids;
    for (uint32_t r = 0; r < by_rank_.size(); ++r) {
        const auto [off, len] = by_rank_[r];
        if (len >= 2 && len <= 4 && is_character(reinterpret_cast<const unsigned char *>(arena_.data() + off), len))
            char_ids.push_back(r);
    }
    if (char_ids.empty()) return;
    size_t cap = 16;
    while (cap < char_ids.size() + char_ids.size() / 2) cap *= 2;  // load <= 2/3
    chars_.assign(cap, char_entry{0, k_no_rank, k_no_rank, k_no_rank, k_no_rank, 0, 0});
    chars_mask_ = cap - 1;
    const auto slot_of = [&](uint32_t key) -> char_entry & {
        size_t i = size_t((uint64_t(key) * 0x9E3779B97F4A7C15ull) >> 32) & chars_mask_;
        while (chars_[i].key != 0 && chars_[i].key != key) i = (i + 1) & chars_mask_;
        return chars_[i];
    };
    for (uint32_t r : char_ids) {
        const auto *c = reinterpret_cast<const unsigned char *>(arena_.data() + by_rank_[r].first);
        const uint32_t len = by_rank_[r].second;
        char_entry &e = slot_of(pack(c, len));
        e.key = pack(c, len);
        e.id = r;
        e.inner = inner_ranks[r];  // its bytes merged alone (k_no_rank: they do not end as c)
    }
    // For a proper prefix of a character (key: its bytes and 2^24 * length),
    // the lowest rank of a token that ends with it after a byte: after any
    // byte ([64]), after continuation byte 0x80 + b ([b]). For a proper
    // suffix (continuation bytes), of a token that starts with it and goes
    // on: with any byte, with lead byte 0xC0 + b.
    using by_byte = std::array<uint32_t, 65>;
    std::unordered_map<uint32_t, by_byte> after, before;
    const auto lower = [](std::unordered_map<uint32_t, by_byte> &m, uint32_t key, unsigned b, uint32_t r) {
        auto it = m.find(key);
        if (it == m.end()) {
            it = m.emplace(key, by_byte()).first;
            it->second.fill(k_no_rank);
        }
        it->second[64] = std::min(it->second[64], r);
        if (b < 64) it->second[b] = std::min(it->second[b], r);
    };
    for (uint32_t r = 0; r < by_rank_.size(); ++r) {
        const auto [off, len] = by_rank_[r];
        if (len == k_no_rank || len < 2) continue;
        const auto *t = reinterpret_cast<const unsigned char *>(arena_.data() + off);
        for (uint32_t k = 1; k <= 3 && k < len && is_continuation(t[k - 1]); ++k)
            lower(before, pack(t, k) | k << 24, sequence_length(t[k]) >= 2 ? t[k] & 63u : 64u, r);
        for (uint32_t d = 0; d < len; ++d) {
            const uint32_t l = sequence_length(t[d]);
            if (l < 2) continue;
            if (d + l <= len) {
                if (!is_character(t + d, l)) continue;
                char_entry &e = slot_of(pack(t + d, l));
                if (e.key == 0) continue;  // no token: never starts whole
                if (d > 0) {
                    e.left = std::min(e.left, r);
                    if (is_continuation(t[d - 1]) && r <= e.inner) e.low_after |= uint64_t(1) << (t[d - 1] & 63);
                }
                if (d + l < len) {
                    e.right = std::min(e.right, r);
                    if (sequence_length(t[d + l]) >= 2 && r <= e.inner) e.low_before |= uint64_t(1) << (t[d + l] & 63);
                }
            } else if (d > 0) {
                bool prefix = true;
                for (uint32_t k = d + 1; k < len; ++k) prefix &= is_continuation(t[k]);
                if (prefix) lower(after, pack(t + d, len - d) | (len - d) << 24, is_continuation(t[d - 1]) ? t[d - 1] & 63u : 64u, r);
            }
        }
    }
    for (char_entry &e : chars_) {
        if (e.key == 0) continue;
        const auto [off, len] = by_rank_[e.id];
        const auto *c = reinterpret_cast<const unsigned char *>(arena_.data() + off);
        for (uint32_t k = 1; k < len; ++k) {
            const auto a = after.find(pack(c, k) | k << 24);
            const auto b = before.find(pack(c + k, len - k) | (len - k) << 24);
            for (unsigned x = 0; x < 64; ++x) {
                if (a != after.end() && a->second[x] <= e.inner) e.low_after |= uint64_t(1) << x;
                if (b != before.end() && b->second[x] <= e.inner) e.low_before |= uint64_t(1) << x;
            }
            if (a != after.end()) e.left = std::min(e.left, a->second[64]);
            if (b != before.end()) e.right = std::min(e.right, b->second[64]);
        }
    }
    if (chars_.size() < 65535) {
        bmp_chars_.assign(65536, 0);
        for (size_t i = 0; i < chars_.size(); ++i) {
            const uint32_t key = chars_[i].key;
            if (key == 0) continue;
            const unsigned char c[4] = {static_cast<unsigned char>(key), static_cast<unsigned char>(key >> 8),
                                        static_cast<unsigned char>(key >> 16), static_cast<unsigned char>(key >> 24)};
            const uint32_t cp = bmp_index(c, sequence_length(c[0]));
            if (cp != k_not_bmp) bmp_chars_[cp] = static_cast<uint16_t>(i + 1);
        }
    }
    // Tokens of an ASCII byte and a character that has a token, whose bytes
    // merged alone end as themselves.
    std::vector<lead_entry> leads;
    for (uint32_t r = 0; r < by_rank_.size(); ++r) {
        const auto [off, len] = by_rank_[r];
        if (len == k_no_rank || len < 3 || len > 5) continue;
        const auto *t = reinterpret_cast<const unsigned char *>(arena_.data() + off);
        if (t[0] >= 0x80 || !is_character(t + 1, len - 1) || !find_char(pack(t + 1, len - 1))) continue;
        if (inner_ranks[r] != k_no_rank) leads.push_back({pack64(t, len), r, inner_ranks[r]});
    }
    if (!leads.empty()) {
        size_t lcap = 16;
        while (lcap < leads.size() + leads.size() / 2) lcap *= 2;
        leads_.assign(lcap, lead_entry{0, 0, 0});
        leads_mask_ = lcap - 1;
        for (const lead_entry &e : leads) {
            size_t i = size_t((e.key * 0x9E3779B97F4A7C15ull) >> 32) & leads_mask_;
            while (leads_[i].key != 0) i = (i + 1) & leads_mask_;
            leads_[i] = e;
        }
    }
}

int rank_table::missing_byte() const noexcept {
    for (int b = 0; b < 256; ++b)
        if (byte_rank_[b] == k_no_rank) return b;
    return -1;
}

void rank_table::prefetch_merge_tables(bool pair_table) const noexcept {
#if defined(__GNUC__)
    const auto stream = [](const void *data, size_t bytes) {
        const char *c = static_cast<const char *>(data);
        for (size_t i = 0; i < bytes; i += 64) __builtin_prefetch(c + i, 0, 2);
    };
    if (pairs_.empty()) return;
    // The pair table and the character tables first, the tables every
    // merge reads (filter, part bitmaps, memo) last, so that those are the
    // likeliest still in L2 when the merges start.
    if (pair_table) stream(pairs_.data(), pairs_.bytes());
    stream(chars_.data(), chars_.size() * sizeof(char_entry));
    stream(leads_.data(), leads_.size() * sizeof(lead_entry));
    stream(bmp_chars_.data(), bmp_chars_.size() * sizeof(uint16_t));
    stream(pair_rank_.data(), pair_rank_.size() * sizeof(uint32_t));
    stream(filter_.data(), filter_.size() * sizeof(uint64_t));
    stream(left_parts_.data(), left_parts_.size() * sizeof(uint64_t));
    stream(right_parts_.data(), right_parts_.size() * sizeof(uint64_t));
    stream(pair_memo_.get(), sizeof(uint64_t) << k_memo_bits);
#endif
}

void rank_table::prefetch_piece(std::string_view piece, uint64_t h, const piece_cache &cache) const noexcept {
    const size_t n = piece.size();
    if (n <= 2) return;  // direct tables, small and hot
#if defined(__GNUC__)
    __builtin_prefetch(&filter_[size_t(h >> 20) & filter_mask_]);
    __builtin_prefetch(&slots_[size_t(h) & mask_]);
    if (n <= piece_cache::k_max_bytes) __builtin_prefetch(&cache.entries[(h >> 40) & (piece_cache::k_entries - 1)]);
#else
    (void)h;
    (void)cache;
#endif
}

void rank_table::encode_piece(std::string_view piece, uint64_t h, std::vector<int32_t> &out, piece_cache &cache) const {
    const size_t n = piece.size();
    const auto *p = reinterpret_cast<const unsigned char *>(piece.data());
    const uint32_t whole = n <= 2 ? rank(piece) : find(p, n, load_head(p, n), h);
    if (whole != k_no_rank) {
        out.push_back(static_cast<int32_t>(whole));
        return;
    }
    if (n <= piece_cache::k_max_bytes) {
        piece_cache::entry &e = cache.entries[(h >> 40) & (piece_cache::k_entries - 1)];
        if (e.owner == id_ && e.len == n && std::memcmp(e.bytes, p, n) == 0) {
            out.insert(out.end(), e.ids, e.ids + e.count);
            return;
        }
        const size_t first = out.size();
        merge_small(piece, out);
        const size_t count = out.size() - first;
        if (count <= piece_cache::k_max_ids) {
            e.owner = id_;
            e.len = static_cast<uint8_t>(n);
            e.count = static_cast<uint8_t>(count);
            std::memcpy(e.bytes, p, n);
            std::copy(out.begin() + std::ptrdiff_t(first), out.end(), e.ids);
        }
        return;
    }
    // Pieces of ordinary text are short, but Thai, Lao, Khmer or CJK text
    // without spaces makes pieces of hundreds of bytes: merge_by_ids keeps
    // them near-linear up to k_max_id_merge bytes; longer ones (a megabyte of
    // one letter) go to the heap, which is O(n log n).
    merge_small(piece, out);
}

void rank_table::merge_small(std::string_view piece, std::vector<int32_t> &out) const {
    if (!pairs_.empty() && piece.size() <= k_max_id_merge) merge_by_ids(piece, out);
    else if (pairs_.empty() && piece.size() <= 128) merge_small_by_bytes(piece, out);  // its arrays hold 128 bytes
    else merge_large(piece, out);
}

namespace {

// Blocks of rank_of that merge_by_ids keeps the minimum of.
constexpr uint32_t k_block = 16;
// merge_by_ids keeps each pair's rank and the position of its left part in
// one integer, rank << k_pos_bits | position: the smallest key is the lowest
// rank and, among equal ranks, the leftmost pair, so one minimum gives both
// and no second search for the slot follows (the merge loop is one
// dependent chain per merge, and that search was a third of its length).
//
// The keys are positive int32s, and the bit patterns of positive floats
// order as the integers do, so SSE2's float minimum (minps, one
// instruction) finds the lowest key where its 32-bit integer minimum takes
// four (SSE4.1 is not in the baseline). Every key is biased by 2^23 so that
// none is a denormal, which a thread in DAZ mode would read as zero, and
// stays below +inf's pattern, k_none: ranks below k_max_merge_ranks.
constexpr uint32_t k_pos_bits = 10;
constexpr uint32_t k_pos_mask = (uint32_t(1) << k_pos_bits) - 1;
constexpr int32_t k_key_bias = int32_t(1) << 23;  // the smallest normal float
constexpr int32_t k_none = 0x7F800000;             // +inf
static_assert(rank_table::k_max_id_merge <= (uint32_t(1) << k_pos_bits), "positions fit their bits");
static_assert(k_key_bias % (int32_t(1) << k_pos_bits) == 0, "the bias leaves the position bits alone");
static_assert(((int64_t(rank_table::k_max_merge_ranks) - 1) << k_pos_bits | k_pos_mask) + k_key_bias < k_none,
              "every key is a finite float pattern below k_none");
inline int32_t pair_key(uint32_t rank, uint32_t pos) {
    return rank == k_no_rank ? k_none : int32_t(rank << k_pos_bits | pos) + k_key_bias;
}
inline uint32_t key_position(int32_t key) { return uint32_t(key) & k_pos_mask; }
inline uint32_t key_rank(int32_t key) { return uint32_t(key - k_key_bias) >> k_pos_bits; }

// The smallest of r[0, k_block).
inline int32_t block_minimum(const int32_t *r) {
#if defined(__SSE2__)
    __m128 m = _mm_min_ps(_mm_min_ps(_mm_load_ps(reinterpret_cast<const float *>(r)),
                                     _mm_load_ps(reinterpret_cast<const float *>(r + 4))),
                          _mm_min_ps(_mm_load_ps(reinterpret_cast<const float *>(r + 8)),
                                     _mm_load_ps(reinterpret_cast<const float *>(r + 12))));
    m = _mm_min_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
    m = _mm_min_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(_mm_castps_si128(m));
#else
    int32_t m = r[0];
    for (uint32_t k = 1; k < k_block; ++k) m = std::min(m, r[k]);
    return m;
#endif
}

// r[k] = value as a read-modify-write of the aligned 4 keys holding it:
// block_minimum reads rank_of 16 bytes at a time right after it changes,
// and a 16-byte load cannot take its data from a pending 4-byte store (it
// waits for the store to reach the cache), but it can from a 16-byte store
// to the same address.
inline void set_rank(int32_t *r, uint32_t k, int32_t value) {
#if defined(__SSE2__)
    alignas(16) static const int32_t lane_masks[4][4] = {{-1, 0, 0, 0}, {0, -1, 0, 0}, {0, 0, -1, 0}, {0, 0, 0, -1}};
    auto *q = reinterpret_cast<__m128i *>(r + (k & ~3u));
    const __m128i m = _mm_load_si128(reinterpret_cast<const __m128i *>(lane_masks[k & 3]));
    _mm_store_si128(q, _mm_or_si128(_mm_and_si128(m, _mm_set1_epi32(value)), _mm_andnot_si128(m, _mm_load_si128(q))));
#else
    r[k] = value;
#endif
}

}  // namespace

// By code point below U+10000: no probe loop (one or two steps, its exit
// mispredicted half the time) for each character of a piece.
inline const rank_table::char_entry *rank_table::find_char_at(const unsigned char *p, uint32_t len) const noexcept {
    if (!bmp_chars_.empty()) {
        const uint32_t cp = bmp_index(p, len);
        if (cp != k_not_bmp) return bmp_chars_[cp] ? &chars_[bmp_chars_[cp] - 1] : nullptr;
    }
    return find_char(pack(p, len));
}

// The parts merge_by_ids starts from, in order: bytes, and the characters
// that may start whole (see build_char_table), each decided one unit (a
// character or a byte) behind the scan, once the bound of the unit after it
// is known.
template <typename AddPart>
void rank_table::first_parts(const unsigned char *p, uint32_t n, AddPart &&add_part) const {
    struct unit {
        uint32_t start, len, id, inner, left, right;
        uint64_t low_after, low_before;
    };
    const auto unit_at = [&](uint32_t i) -> unit {
        const uint32_t len = sequence_length(p[i]);
        if (len >= 2 && !chars_.empty() && i + len <= n && is_character(p + i, len))
            if (const char_entry *e = find_char_at(p + i, len))
                return {i, len, e->id, e->inner, e->left, e->right, e->low_after, e->low_before};
        return {i, 1, byte_rank_[p[i]], k_no_rank, 0, 0, 0, 0};
    };
    // Whether a token across the edge before cur (after it) may rank at or
    // below cur.inner, by the neighbour's bound, cur's own, and cur's bound
    // for the neighbouring byte when that is a continuation (lead) byte.
    unit cur = unit_at(0);
    uint32_t right_before = k_no_rank;  // no token crosses the piece's start
    // A piece that starts with an ASCII byte and a character (" слово"): when
    // the two are a token t whose own merges all rank below every token
    // across its right edge, t starts whole (the proof above, with nothing
    // before the piece's start; a token across that edge holds a suffix of
    // the character, so the character's right bound applies). It saves the
    // merges that make t, two or three a piece in text of other scripts.
    if (cur.len == 1 && p[0] < 0x80 && !leads_.empty() && n >= 3) {
        const unit c = unit_at(1);
        if (c.len >= 2) {
            if (const lead_entry *e = find_lead(pack64(p, 1 + c.len))) {
                const uint32_t end = 1 + c.len;
                const unit after = end < n ? unit_at(end) : unit{n, 0, 0, 0, k_no_rank, 0, 0, 0};
                if (e->inner < std::max(c.right, after.left)) {
                    add_part(0, end, e->id);
                    if (end >= n) return;
                    right_before = c.right;
                    cur = after;
                }
            }
        }
    }
    for (;;) {
        const uint32_t end = cur.start + cur.len;
        const unit after = end < n ? unit_at(end) : unit{n, 0, 0, 0, k_no_rank, 0, 0, 0};
        // (Tested only for characters: a byte's inner is k_no_rank.)
        const auto left_ok = [&] {
            return cur.inner < std::max(right_before, cur.left) ||
                   (cur.start > 0 && is_continuation(p[cur.start - 1]) && !(cur.low_after >> (p[cur.start - 1] & 63) & 1));
        };
        const auto right_ok = [&] {
            return cur.inner < std::max(cur.right, after.left) ||
                   (end < n && sequence_length(p[end]) >= 2 && !(cur.low_before >> (p[end] & 63) & 1));
        };
        if (cur.inner != k_no_rank && left_ok() && right_ok()) {
            add_part(cur.start, cur.len, cur.id);
        } else {
            for (uint32_t k = cur.start; k < end; ++k) add_part(k, 1, byte_rank_[p[k]]);
        }
        if (end >= n) break;
        right_before = cur.right;
        cur = after;
    }
}

size_t rank_table::count_first_parts(std::string_view piece) const {
    if (pairs_.empty() || piece.empty() || piece.size() > k_max_id_merge) return piece.size();
    size_t count = 0;
    first_parts(reinterpret_cast<const unsigned char *>(piece.data()), uint32_t(piece.size()),
                [&](uint32_t, uint32_t, uint32_t) { ++count; });
    return count;
}

// tiktoken's merges with the pair table, from bytes and whole characters
// (first_parts). Parts are named by their first byte and linked (next/prev),
// so a merge rewrites a few entries instead of shifting arrays. rank_of[i]
// is the key (pair_key) of part i and the next; a merged-away part, or a
// byte inside a whole character, keeps k_none. rank_of is cut into blocks of
// k_block entries whose minima are kept in block_min, so a merge rescans
// only the blocks it changed and the short row of minima, not the whole
// piece (the whole-piece scan made long Thai, Lao or CJK pieces quadratic);
// the lowest key names the pair to merge.
void rank_table::merge_by_ids(std::string_view piece, std::vector<int32_t> &out) const {
    constexpr uint32_t k_cap = k_max_id_merge;
    alignas(64) int32_t rank_of[k_cap + k_block];
    int32_t block_min[k_cap / k_block + 1];
    uint32_t tok[k_cap], next[k_cap], prev[k_cap];
    const uint32_t n = static_cast<uint32_t>(piece.size());
    if (n == 0) return;
    const uint32_t blocks = (n + k_block - 1) / k_block;
    const auto *p = reinterpret_cast<const unsigned char *>(piece.data());
    // The key of parts a and b = next[a] side by side. One of them is a
    // merged part or a whole character, so they join at least 3 bytes, as
    // pair_merge_checked needs (byte pairs come from pair_rank_).
    const auto pair_rank = [&](uint32_t a, uint32_t b) -> int32_t {
        if (b >= n) return k_none;
        return pair_key(pair_merge_checked(tok[a], tok[b], p + a, next[b] - a), a);
    };
    for (uint32_t i = 0; i < blocks * k_block; ++i) rank_of[i] = k_none;
    uint32_t last = n;  // the part before: none yet
    first_parts(p, n, [&](uint32_t start, uint32_t len, uint32_t id) {
        tok[start] = id;
        next[start] = start + len;
        prev[start] = last;
        if (last < n) rank_of[last] = next[start] - last == 2 ? pair_key(pair_rank_[p[last] | unsigned(p[start]) << 8], last)
                                                              : pair_rank(last, start);
        last = start;
    });
    const auto refresh = [&](uint32_t b) { block_min[b] = block_minimum(rank_of + b * k_block); };
    for (uint32_t b = 0; b < blocks; ++b) refresh(b);
    for (;;) {
        // The lowest key: the lowest rank, the leftmost on ties.
        int32_t best = block_min[0];
        for (uint32_t b = 1; b < blocks; ++b) best = std::min(best, block_min[b]);
        if (best == k_none) break;
        const uint32_t i = key_position(best), bi = i / k_block;
        const uint32_t j = next[i];  // absorbed into part i
        tok[i] = key_rank(best);
        set_rank(rank_of, j, k_none);
        next[i] = next[j];
        if (next[j] < n) prev[next[j]] = i;
        set_rank(rank_of, i, pair_rank(i, next[i]));
        if (i > 0) set_rank(rank_of, prev[i], pair_rank(prev[i], i));
        refresh(bi);
        if (j / k_block != bi) refresh(j / k_block);
        if (i > 0 && prev[i] / k_block != bi) refresh(prev[i] / k_block);
    }
    for (uint32_t i = 0; i < n; i = next[i]) out.push_back(static_cast<int32_t>(tok[i]));
}

// tiktoken's _byte_pair_merge: parts[i] = (start, rank of merging part i with part i+1).
void rank_table::merge_small_by_bytes(std::string_view piece, std::vector<int32_t> &out) const {
    // Structure of arrays: the scan for the lowest pair reads rank[] alone.
    // tok[i] is the token of part i (the rank that made it), so the parts need
    // no lookup at the end.
    uint32_t start[130], rank_of[130], tok[130];
    const size_t n = piece.size();
    const auto *p = reinterpret_cast<const unsigned char *>(piece.data());
    size_t len = n + 1;
    for (size_t i = 0; i + 1 < n; ++i) {
        start[i] = uint32_t(i);
        rank_of[i] = pair_rank_[p[i] | unsigned(p[i + 1]) << 8];
        tok[i] = byte_rank_[p[i]];
    }
    start[n - 1] = uint32_t(n - 1);
    rank_of[n - 1] = k_no_rank;
    tok[n - 1] = byte_rank_[p[n - 1]];
    start[n] = uint32_t(n);
    rank_of[n] = k_no_rank;
    // Rank of merging part i with part i+1 after part i+1 has absorbed part i+2.
    auto pair_rank = [&](size_t i) -> uint32_t {
        if (i + 3 < len) return rank(piece.substr(start[i], start[i + 3] - start[i]));
        return k_no_rank;
    };
    for (;;) {
        uint32_t min_rank = k_no_rank;
        for (size_t k = 0; k + 1 < len; ++k) min_rank = std::min(min_rank, rank_of[k]);
        if (min_rank == k_no_rank) break;
        size_t i = 0;
        while (rank_of[i] != min_rank) ++i;  // the leftmost pair of that rank
        if (i > 0) {
            const size_t j = i - 1;
            if (j + 3 < len) prefetch(p + start[j], start[j + 3] - start[j]);
        }
        tok[i] = min_rank;
        const uint32_t right = pair_rank(i);
        if (i > 0) rank_of[i - 1] = pair_rank(i - 1);
        rank_of[i] = right;
        std::copy(start + i + 2, start + len, start + i + 1);
        std::copy(rank_of + i + 2, rank_of + len, rank_of + i + 1);
        std::copy(tok + i + 2, tok + len, tok + i + 1);
        --len;
    }
    for (size_t k = 0; k + 1 < len; ++k) out.push_back(static_cast<int32_t>(tok[k]));
}

// The same merges with a doubly linked list of parts and a min-heap of
// candidate pairs keyed (rank, start). A heap entry is current when its left
// part is alive and still has that pair rank: a rank names one byte string,
// so the same (rank, start) always means the same pair.
void rank_table::merge_large(std::string_view piece, std::vector<int32_t> &out) const {
    const uint32_t n = static_cast<uint32_t>(piece.size());
    // Parts are indexed by their start byte; next[i] == n marks the last part.
    std::vector<uint32_t> next(n), prev(n), pair(n);
    std::vector<uint8_t> alive(n, 1);
    using entry = std::pair<uint32_t, uint32_t>;  // (rank, start)
    std::vector<entry> heap;
    heap.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
        next[i] = i + 1;
        prev[i] = i == 0 ? n : i - 1;
        pair[i] = i + 1 < n ? rank(piece.substr(i, 2)) : k_no_rank;
        if (pair[i] != k_no_rank) heap.emplace_back(pair[i], i);
    }
    std::greater<entry> cmp;
    std::make_heap(heap.begin(), heap.end(), cmp);
    auto end_of = [&](uint32_t i) { return next[i]; };  // a part ends where the next starts
    auto pair_rank = [&](uint32_t i) -> uint32_t {
        const uint32_t j = next[i];
        if (j >= n) return k_no_rank;
        return rank(piece.substr(i, end_of(j) - i));
    };
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), cmp);
        const auto [r, i] = heap.back();
        heap.pop_back();
        if (!alive[i] || pair[i] != r) continue;
        const uint32_t j = next[i];
        alive[j] = 0;
        next[i] = next[j];
        if (next[j] < n) prev[next[j]] = i;
        pair[i] = pair_rank(i);
        if (pair[i] != k_no_rank) {
            heap.emplace_back(pair[i], i);
            std::push_heap(heap.begin(), heap.end(), cmp);
        }
        if (prev[i] < n) {
            const uint32_t p = prev[i];
            pair[p] = pair_rank(p);
            if (pair[p] != k_no_rank) {
                heap.emplace_back(pair[p], p);
                std::push_heap(heap.begin(), heap.end(), cmp);
            }
        }
    }
    for (uint32_t i = 0; i < n; i = next[i])
        out.push_back(static_cast<int32_t>(rank(piece.substr(i, next[i] - i))));
}

}  // namespace llmkit::tok
