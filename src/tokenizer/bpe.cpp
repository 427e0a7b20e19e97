#include "tokenizer/bpe.hpp"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <queue>

#if defined(__SSE2__)
#include <emmintrin.h>
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
        arena_.insert(arena_.end(), e.first.begin(), e.first.end());
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
// Above every rank (they fit pair_table's 21 bits) as a signed number: SSE2
// has a signed 32-bit compare and no unsigned one.
constexpr int32_t k_none = std::numeric_limits<int32_t>::max();

#if defined(__SSE2__)
inline __m128i min_epi32(__m128i a, __m128i b) {
    const __m128i a_greater = _mm_cmpgt_epi32(a, b);
    return _mm_or_si128(_mm_and_si128(a_greater, b), _mm_andnot_si128(a_greater, a));
}
#endif

// The smallest of r[0, k_block).
inline int32_t block_minimum(const int32_t *r) {
#if defined(__SSE2__)
    const __m128i *v = reinterpret_cast<const __m128i *>(r);
    __m128i m = min_epi32(min_epi32(_mm_load_si128(v), _mm_load_si128(v + 1)),
                          min_epi32(_mm_load_si128(v + 2), _mm_load_si128(v + 3)));
    m = min_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
    m = min_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(m);
#else
    int32_t m = r[0];
    for (uint32_t k = 1; k < k_block; ++k) m = std::min(m, r[k]);
    return m;
#endif
}

// The first k < k_block with r[k] == value (which is there).
inline uint32_t block_find(const int32_t *r, int32_t value) {
#if defined(__SSE2__)
    const __m128i *v = reinterpret_cast<const __m128i *>(r);
    const __m128i x = _mm_set1_epi32(value);
    const __m128i lo = _mm_packs_epi32(_mm_cmpeq_epi32(_mm_load_si128(v), x), _mm_cmpeq_epi32(_mm_load_si128(v + 1), x));
    const __m128i hi = _mm_packs_epi32(_mm_cmpeq_epi32(_mm_load_si128(v + 2), x), _mm_cmpeq_epi32(_mm_load_si128(v + 3), x));
    const unsigned mask = unsigned(_mm_movemask_epi8(_mm_packs_epi16(lo, hi)));
    return uint32_t(__builtin_ctz(mask));
#else
    uint32_t k = 0;
    while (r[k] != value) ++k;
    return k;
#endif
}

}  // namespace

// tiktoken's merges with the pair table. Parts are named by their first byte
// and linked (next/prev), so a merge rewrites a few entries instead of
// shifting arrays; a merged-away part keeps rank k_none. The lowest rank is
// found in two steps: rank_of is cut into blocks of k_block entries whose
// minima are kept in block_min, so a merge rescans only the blocks it changed
// and the short row of minima, not the whole piece (the whole-piece scan made
// long Thai, Lao or CJK pieces quadratic).
void rank_table::merge_by_ids(std::string_view piece, std::vector<int32_t> &out) const {
    constexpr uint32_t k_cap = k_max_id_merge;
    alignas(64) int32_t rank_of[k_cap + k_block];
    alignas(64) int32_t block_min[k_cap / k_block + 1];
    uint32_t tok[k_cap], next[k_cap], prev[k_cap];
    const uint32_t n = static_cast<uint32_t>(piece.size());
    if (n == 0) return;
    const uint32_t blocks = (n + k_block - 1) / k_block;
    const auto *p = reinterpret_cast<const unsigned char *>(piece.data());
    const auto as_int = [](uint32_t r) { return r == k_no_rank ? k_none : int32_t(r); };
    for (uint32_t i = 0; i + 1 < n; ++i) {
        rank_of[i] = as_int(pair_rank_[p[i] | unsigned(p[i + 1]) << 8]);
        tok[i] = byte_rank_[p[i]];
        next[i] = i + 1;
        prev[i] = i - 1;  // wraps for part 0: never read
    }
    tok[n - 1] = byte_rank_[p[n - 1]];
    next[n - 1] = n;
    prev[n - 1] = n - 2;
    for (uint32_t i = n - 1; i < blocks * k_block; ++i) rank_of[i] = k_none;
    const auto refresh = [&](uint32_t b) { block_min[b] = block_minimum(rank_of + b * k_block); };
    for (uint32_t b = 0; b < blocks; ++b) refresh(b);
    // The rank of parts a and b = next[a] side by side. One of them is a
    // merged part, so they join at least 3 bytes, as pair_merge_checked needs
    // (byte pairs come from pair_rank_ above).
    const auto pair_rank = [&](uint32_t a, uint32_t b) -> int32_t {
        if (b >= n) return k_none;
        return as_int(pair_merge_checked(tok[a], tok[b], p + a, next[b] - a));
    };
    for (;;) {
        // The lowest rank, the leftmost on ties: the first block holding it,
        // then the first entry of that block holding it.
        int32_t min_rank = k_none;
        for (uint32_t b = 0; b < blocks; ++b) min_rank = std::min(min_rank, block_min[b]);
        if (min_rank == k_none) break;
        uint32_t bi = 0;
        while (block_min[bi] != min_rank) ++bi;
        const uint32_t i = bi * k_block + block_find(rank_of + bi * k_block, min_rank);
        const uint32_t j = next[i];  // absorbed into part i
        tok[i] = uint32_t(min_rank);
        rank_of[j] = k_none;
        next[i] = next[j];
        if (next[j] < n) prev[next[j]] = i;
        rank_of[i] = pair_rank(i, next[i]);
        if (i > 0) rank_of[prev[i]] = pair_rank(prev[i], i);
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
