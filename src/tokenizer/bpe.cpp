#include "tokenizer/bpe.hpp"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <queue>

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

rank_table::rank_table(std::vector<std::pair<std::string, uint32_t>> entries, const std::string &source)
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
    for (auto &e : entries) {
        if (by_rank_[e.second].second != k_no_rank)
            core::fail(LLMKIT_ERROR_FORMAT, source, ": rank ", e.second, " is given to two tokens");
        by_rank_[e.second] = {static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(e.first.size())};
        arena_ += e.first;
        std::string().swap(e.first);
    }
    size_t cap = 16;
    while (cap < 2 * entries.size()) cap *= 2;
    slots_.assign(cap, slot{0, k_no_rank, 0});
    mask_ = cap - 1;
    // ~8+ bits per token in 64-bit words: two bits per token give ~3% false
    // positives. Filled in the loop below, before any lookup uses it.
    size_t words = 1;
    while (words * 64 < 8 * entries.size()) words *= 2;
    filter_.assign(words, ~uint64_t(0));  // all ones while the table is built: lookups fall through to the slots
    filter_mask_ = words - 1;
    std::vector<uint64_t> filter(words, 0);
    std::fill(std::begin(byte_rank_), std::end(byte_rank_), k_no_rank);
    pair_rank_.assign(65536, k_no_rank);
    uint32_t empty_rank = k_no_rank;
    for (uint32_t r = 0; r < by_rank_.size(); ++r) {
        const auto [off, len] = by_rank_[r];
        if (len == k_no_rank) continue;
        const auto *p = reinterpret_cast<const unsigned char *>(arena_.data() + off);
        const uint32_t existing = len == 0 ? empty_rank : rank(std::string_view(arena_.data() + off, len));
        if (existing != k_no_rank)
            core::fail(LLMKIT_ERROR_FORMAT, source, ": the same token bytes have ranks ", existing, " and ", r);
        ++count_;
        if (len == 0) {  // no piece is empty, so an empty token is never looked up
            empty_rank = r;
            continue;
        }
        if (len == 1) {
            byte_rank_[p[0]] = r;
        } else if (len == 2) {
            pair_rank_[p[0] | unsigned(p[1]) << 8] = r;
        } else {
            const uint64_t head = load_head(p, len);
            const uint64_t h = hash(p, len, head);
            size_t i = size_t(h) & mask_;
            while (slots_[i].rank != k_no_rank) i = (i + 1) & mask_;
            slots_[i] = slot{head, r, len};
            filter[size_t(h >> 20) & filter_mask_] |= filter_bits(h);
        }
    }
    filter_ = std::move(filter);
    build_pair_table();
}

void rank_table::build_pair_table() {
    if (missing_byte() >= 0 || end_rank() > pair_table::k_max_id + 1) return;
    // A token splits into two tokens at some of its inner positions; each
    // such split is one pair. (o200k: 446k pairs from 200k tokens.)
    std::vector<pair_table::triple> pairs;
    pairs.reserve(2 * count_);
    for (uint32_t r = 0; r < by_rank_.size(); ++r) {
        const auto [off, len] = by_rank_[r];
        if (len == k_no_rank || len < 2) continue;
        const std::string_view t(arena_.data() + off, len);
        for (size_t k = 1; k < len; ++k) {
            const uint32_t left = rank(t.substr(0, k));
            if (left == k_no_rank) continue;
            const uint32_t right = rank(t.substr(k));
            if (right != k_no_rank) pairs.push_back({left, right, r});
        }
    }
    pairs_ = pair_table(pairs);
    pair_memo_.reset(new std::atomic<uint64_t>[size_t(1) << k_memo_bits]);
    for (size_t i = 0; i < (size_t(1) << k_memo_bits); ++i) pair_memo_[i].store(~uint64_t(0), std::memory_order_relaxed);
}

int rank_table::missing_byte() const noexcept {
    for (int b = 0; b < 256; ++b)
        if (byte_rank_[b] == k_no_rank) return b;
    return -1;
}

void rank_table::prefetch_piece(std::string_view piece, const piece_cache &cache) const noexcept {
    const size_t n = piece.size();
    if (n <= 2) return;  // direct tables, small and hot
    const auto *p = reinterpret_cast<const unsigned char *>(piece.data());
    const uint64_t h = hash(p, n, load_head(p, n));
#if defined(__GNUC__)
    __builtin_prefetch(&filter_[size_t(h >> 20) & filter_mask_]);
    __builtin_prefetch(&slots_[size_t(h) & mask_]);
    if (n <= piece_cache::k_max_bytes) __builtin_prefetch(&cache.entries[(h >> 40) & (piece_cache::k_entries - 1)]);
#else
    (void)h;
    (void)cache;
#endif
}

void rank_table::encode_piece(std::string_view piece, std::vector<int32_t> &out, piece_cache &cache) const {
    const uint32_t whole = rank(piece);
    if (whole != k_no_rank) {
        out.push_back(static_cast<int32_t>(whole));
        return;
    }
    const size_t n = piece.size();
    if (n <= piece_cache::k_max_bytes) {
        const auto *p = reinterpret_cast<const unsigned char *>(piece.data());
        const uint64_t h = hash(p, n, load_head(p, n));
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
    // The simple scan is quadratic but has the smallest constant; pieces of
    // ordinary text are short. Long pieces (a megabyte of one letter) go to
    // the heap, which is O(n log n) and gives the same merges.
    if (piece.size() <= 128) merge_small(piece, out);
    else merge_large(piece, out);
}

void rank_table::merge_small(std::string_view piece, std::vector<int32_t> &out) const {
    if (piece.size() > 128) merge_large(piece, out);  // the scans' arrays hold 128 bytes
    else if (pairs_.empty()) merge_small_by_bytes(piece, out);
    else merge_by_ids(piece, out);
}

// tiktoken's scan with the pair table. Parts are named by their first byte
// and linked (next/prev), so a merge rewrites a few entries instead of
// shifting the arrays; a merged-away part keeps rank k_no_rank, so the scan
// for the lowest rank may run over all n entries without looking at links.
void rank_table::merge_by_ids(std::string_view piece, std::vector<int32_t> &out) const {
    uint32_t rank_of[129], tok[129], next[129], prev[129];
    const uint32_t n = static_cast<uint32_t>(piece.size());
    const auto *p = reinterpret_cast<const unsigned char *>(piece.data());
    for (uint32_t i = 0; i < n; ++i) {
        rank_of[i] = i + 1 < n ? pair_rank_[p[i] | unsigned(p[i + 1]) << 8] : k_no_rank;
        tok[i] = byte_rank_[p[i]];
        next[i] = i + 1;
        prev[i] = i - 1;  // wraps for part 0: never read
    }
    // The rank of parts a and b = next[a] side by side: the Bloom filter on
    // their bytes answers most pairs that are no token (it is L2-sized), the
    // memo or the pair table the others.
    auto pair_rank = [&](uint32_t a, uint32_t b) -> uint32_t {
        if (b >= n) return k_no_rank;
        const uint32_t end = next[b];
        if (!may_be_token(p + a, end - a)) return k_no_rank;
        return pair_merge_memo(tok[a], tok[b]);
    };
    for (;;) {
        // The lowest rank, the leftmost on ties (only a lower rank replaces it).
        uint32_t min_rank = k_no_rank, i = 0;
        for (uint32_t k = 0; k + 1 < n; ++k) {
            if (rank_of[k] < min_rank) {
                min_rank = rank_of[k];
                i = k;
            }
        }
        if (min_rank == k_no_rank) break;
        const uint32_t j = next[i];  // absorbed into part i
        tok[i] = min_rank;
        rank_of[j] = k_no_rank;
        next[i] = next[j];
        if (next[j] < n) prev[next[j]] = i;
        rank_of[i] = pair_rank(i, next[i]);
        if (i > 0) rank_of[prev[i]] = pair_rank(prev[i], i);
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
