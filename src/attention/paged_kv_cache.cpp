// The paged KV cache: block tables, a free list and reference counts over the
// block storage of kv_cache.hpp.
#include "attention/paged_kv_cache.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>

#include "attention/attention.hpp"
#include "attention/kv_state.hpp"
#include "core/threads.hpp"

namespace llmkit::attention {

using core::dtype;
using core::fail;
using core::tensor_view;

namespace {

// Block ids are int32 (the type of block tables).
int64_t checked_block_count(int64_t n) {
    if (n > std::numeric_limits<int32_t>::max())
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "n_blocks = ", n, " exceeds INT32_MAX (block ids are int32)");
    return n;
}

}  // namespace

paged_kv_cache::paged_kv_cache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t block_size,
                               int64_t n_blocks, int64_t max_sequences, int64_t max_blocks_per_seq, kv_dtype type,
                               int64_t v_head_dim, bool v_from_k)
    : store_(n_layers, n_kv_heads, head_dim, block_size, checked_block_count(n_blocks), type, v_head_dim, v_from_k),
      max_blocks_per_seq_(max_blocks_per_seq) {
    if (max_sequences <= 0 || max_sequences > std::numeric_limits<int32_t>::max())
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "max_sequences must be in 1..INT32_MAX, got ", max_sequences);
    if (max_blocks_per_seq <= 0)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "the longest sequence must hold at least one block, got ", max_blocks_per_seq,
             " blocks");
    free_.resize(size_t(n_blocks));
    for (int64_t i = 0; i < n_blocks; ++i) free_[size_t(i)] = int32_t(n_blocks - 1 - i);  // hand out 0, 1, 2, ...
    refs_.assign(size_t(n_blocks), 0);
    live_.assign(size_t(max_sequences), false);
    tables_.resize(size_t(max_sequences));
    len_.assign(size_t(max_sequences), std::vector<int64_t>(size_t(n_layers), 0));
}

int32_t paged_kv_cache::take_block() {
    const int32_t b = free_.back();
    free_.pop_back();
    refs_[size_t(b)] = 1;
    return b;
}

void paged_kv_cache::release_block(int32_t b) {
    if (b == k_released_block) return;  // (released already)
    if (--refs_[size_t(b)] == 0) free_.push_back(b);
}

int64_t paged_kv_cache::released_tokens(int32_t seq) const {
    // The released entries are the table's first ones: a binary search, not a walk over a long context's.
    const std::vector<int32_t> &table = tables_[size_t(seq)];
    const auto held = std::partition_point(table.begin(), table.end(), [](int32_t b) { return b == k_released_block; });
    return int64_t(held - table.begin()) * store_.block_size();
}

void paged_kv_cache::check_layer(int32_t layer) const {
    if (layer < 0 || layer >= store_.n_layers())
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "layer = ", layer, " is outside 0..", store_.n_layers() - 1);
}

int32_t paged_kv_cache::seq_new() {
    const auto it = std::find(live_.begin(), live_.end(), false);
    if (it == live_.end())
        fail(LLMKIT_ERROR_OUT_OF_MEMORY, "all ", live_.size(), " sequence slots of this paged KV cache are in use (free one first)");
    const size_t s = size_t(it - live_.begin());
    live_[s] = true;
    tables_[s].clear();
    std::fill(len_[s].begin(), len_[s].end(), 0);
    return int32_t(s);
}

int32_t paged_kv_cache::seq_fork(int32_t src) {
    check_seq(live_, src, "src");
    const int32_t dst = seq_new();
    tables_[size_t(dst)] = tables_[size_t(src)];
    for (int32_t b : tables_[size_t(dst)])
        if (b != k_released_block) ++refs_[size_t(b)];
    len_[size_t(dst)] = len_[size_t(src)];
    return dst;
}

void paged_kv_cache::seq_free(int32_t seq) {
    check_seq(live_, seq, "seq");
    for (int32_t b : tables_[size_t(seq)]) release_block(b);
    tables_[size_t(seq)].clear();
    live_[size_t(seq)] = false;
}

void paged_kv_cache::seq_truncate(int32_t seq, int64_t n) {
    check_seq(live_, seq, "seq");
    const int64_t released = released_tokens(seq);
    if (n > 0 && n < released)
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "n = ", n, ": the blocks of sequence ", seq, "'s first ", released,
             " tokens were released (release_before); truncate it to 0 or to at least ", released, " tokens");
    truncate_lengths(len_[size_t(seq)], seq, n);
    // Blocks holding tokens [0, n) stay (a shared one is copied on the next
    // write into it, as after a fork); the rest go back.
    std::vector<int32_t> &table = tables_[size_t(seq)];
    const size_t keep = size_t((n + store_.block_size() - 1) / store_.block_size());
    for (size_t i = keep; i < table.size(); ++i) release_block(table[i]);
    if (table.size() > keep) table.resize(keep);
}

int64_t paged_kv_cache::seq_release_before(int32_t seq, int64_t n) {
    check_seq(live_, seq, "seq");
    const std::vector<int64_t> &lens = len_[size_t(seq)];
    const auto shortest = std::min_element(lens.begin(), lens.end());
    if (n < 0 || n > *shortest)
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "n = ", n, " is outside 0..", *shortest, ": sequence ", seq, " holds ", *shortest,
             " tokens in layer ", shortest - lens.begin(), " (a block holds every layer's rows, so only tokens every layer"
             " holds can go)");
    // Blocks [0, n / block_size) hold tokens before n only; the one holding n stays.
    std::vector<int32_t> &table = tables_[size_t(seq)];
    for (size_t i = size_t(released_tokens(seq) / store_.block_size()); i < size_t(n / store_.block_size()); ++i) {
        release_block(table[i]);
        table[i] = k_released_block;
    }
    return released_tokens(seq);
}

void paged_kv_cache::seq_erase(int32_t seq, int64_t from, int64_t to, const rope_params *rope) {
    check_seq(live_, seq, "seq");
    std::vector<int64_t> &lens = len_[size_t(seq)];
    check_erase(lens, seq, from, to, rope, store_);
    const int64_t released = released_tokens(seq);
    if (from < released)
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "from = ", from, ": the blocks of sequence ", seq, "'s first ", released,
             " tokens were released (release_before); erase from token ", released, " on");
    std::optional<rope_rotation> rot;
    if (rope) rot.emplace(*rope, store_.head_dim());
    const int64_t delta = to - from;
    if (delta == 0) return;
    const int64_t bs = store_.block_size();
    const int64_t new_longest = *std::max_element(lens.begin(), lens.end()) - delta;
    std::vector<int32_t> &table = tables_[size_t(seq)];
    // The blocks the moved rows land in, [first, last] (none when no token
    // follows the erased ones): a shared one is copied first, as an append
    // into it would be. Counted before anything changes, so a full pool
    // leaves the sequence as it was.
    const int64_t first = from / bs, last = new_longest > from ? (new_longest - 1) / bs : first - 1;
    int64_t needed = 0;
    for (int64_t i = first; i <= last; ++i)
        if (refs_[size_t(table[size_t(i)])] > 1) ++needed;
    if (needed > free_blocks())
        fail(LLMKIT_ERROR_OUT_OF_MEMORY, "the paged KV cache's pool is exhausted: erasing tokens [", from, ", ", to,
             ") of sequence ", seq, " rewrites ", needed, " blocks it shares with other sequences, which need as many "
             "free blocks; ", free_blocks(), " of ", store_.n_blocks(), " are left");
    for (int64_t i = first; i <= last; ++i) {
        const int32_t old = table[size_t(i)];
        if (refs_[size_t(old)] > 1) {
            const int32_t fresh = take_block();
            store_.copy_block(fresh, old);
            release_block(old);
            table[size_t(i)] = fresh;
        }
    }
    for (int64_t l = 0; l < store_.n_layers(); ++l) {
        store_.move_tokens(l, table.data(), from, to, lens[size_t(l)], rot ? &*rot : nullptr);
        lens[size_t(l)] -= delta;
    }
    const size_t keep = size_t((new_longest + bs - 1) / bs);
    for (size_t i = keep; i < table.size(); ++i) release_block(table[i]);
    if (table.size() > keep) table.resize(keep);
}

int64_t paged_kv_cache::length(int32_t seq, int32_t layer) const {
    check_seq(live_, seq, "seq");
    if (layer < -1 || layer >= store_.n_layers())
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "layer = ", layer, " is outside 0..", store_.n_layers() - 1, " (or -1 for the largest)");
    const auto &l = len_[size_t(seq)];
    return layer < 0 ? *std::max_element(l.begin(), l.end()) : l[size_t(layer)];
}

const std::vector<int32_t> &paged_kv_cache::block_table(int32_t seq) const {
    check_seq(live_, seq, "seq");
    return tables_[size_t(seq)];
}

void paged_kv_cache::append(int32_t layer, int32_t seq, const tensor_view &k_in, const tensor_view *v_in,
                            const rope_params *rope) {
    check_layer(layer);
    check_seq(live_, seq, "seq");
    std::optional<rope_rotation> rot;
    if (rope) {
        cache_rotary_offset(*rope, store_.head_dim(), store_.v_head_dim(), store_.v_from_k(), "rope");
        rot.emplace(*rope, store_.head_dim());
    }
    const tensor_view k = rows_view(k_in);
    std::optional<tensor_view> v;
    if (v_in) v = rows_view(*v_in);
    const int64_t n = store_.check_rows(k, v ? &*v : nullptr);
    if (n == 0) return;
    const int64_t bs = store_.block_size();
    int64_t &len = len_[size_t(seq)][size_t(layer)];
    std::vector<int32_t> &table = tables_[size_t(seq)];
    if (n > max_seq_len() - len)
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "sequence ", seq, " holds ", len, " tokens in layer ", layer, "; appending ", n,
             " more would pass the longest sequence this cache allows (", max_seq_len(), " tokens = ", max_blocks_per_seq_,
             " blocks of ", bs, ")");

    // Blocks this append writes into: [first, last]. Those the table lacks are
    // new; a shared one among those it has must be copied first. Count both
    // before touching anything, so a full pool leaves the cache unchanged.
    const int64_t first = len / bs, last = (len + n - 1) / bs;
    int64_t needed = std::max<int64_t>(0, last + 1 - int64_t(table.size()));
    for (int64_t i = first; i < std::min<int64_t>(last + 1, int64_t(table.size())); ++i)
        if (refs_[size_t(table[size_t(i)])] > 1) ++needed;
    if (needed > free_blocks())
        fail(LLMKIT_ERROR_OUT_OF_MEMORY, "the paged KV cache's pool is exhausted: appending ", n, " tokens to sequence ", seq,
             " needs ", needed, " free blocks, ", free_blocks(), " of ", store_.n_blocks(),
             " are left (free a sequence or make a larger pool)");

    for (int64_t i = first; i < std::min<int64_t>(last + 1, int64_t(table.size())); ++i) {
        const int32_t old = table[size_t(i)];
        if (refs_[size_t(old)] > 1) {  // copy-on-write: the other holders keep `old`
            const int32_t fresh = take_block();
            store_.copy_block(fresh, old);
            release_block(old);
            table[size_t(i)] = fresh;
        }
    }
    while (int64_t(table.size()) <= last) table.push_back(take_block());

    const angle_table angles = rot ? store_.angles(*rot, len + n) : angle_table{};
    // One write per block the rows fall in; a prefill chunk's blocks go to
    // the worker threads (each write then runs on its own thread).
    struct piece {
        int64_t done, take;
    };
    std::vector<piece> pieces;
    for (int64_t done = 0; done < n;) {
        const int64_t row = (len + done) % bs, take = std::min(n - done, bs - row);
        pieces.push_back({done, take});
        done += take;
    }
    core::parallel_for(int64_t(pieces.size()), n * store_.n_kv_heads() >= 256 ? 0 : 1, [&](int64_t i) {
        const piece &pc = pieces[size_t(i)];
        const int64_t pos = len + pc.done;
        store_.write(layer, table[size_t(pos / bs)], pos % bs, k, v ? &*v : nullptr, pc.done, pc.take, rot ? &*rot : nullptr, pos,
                     angles);
    });
    len += n;
}

void paged_kv_cache::attention(int32_t layer, const tensor_view &q, const int32_t *seq_ids, int64_t n_seqs,
                               const tensor_view &out, const cache_attention_params &p) const {
    check_layer(layer);
    std::vector<cache_seq> seqs(static_cast<size_t>(n_seqs));
    for (int64_t b = 0; b < n_seqs; ++b) {
        const int32_t s = seq_ids[b];
        if (s < 0 || size_t(s) >= live_.size() || !live_[size_t(s)])
            fail(LLMKIT_ERROR_OUT_OF_RANGE, "seq_ids[", b, "] = ", s, " is not a live sequence of this cache");
        const auto &t = tables_[size_t(s)];
        seqs[size_t(b)] = {t.data(), int64_t(t.size()), len_[size_t(s)][size_t(layer)], released_tokens(s)};
    }
    cache_attention(store_.layer(layer), seqs.data(), n_seqs, q, out, p);
}

void paged_kv_cache::attention_tables(int32_t layer, const tensor_view &q, const tensor_view &tables,
                                      const tensor_view &lens, const tensor_view &out,
                                      const cache_attention_params &p) const {
    check_layer(layer);
    for (const tensor_view *t : {&tables, &lens})
        if (!t->on_host()) fail(LLMKIT_ERROR_UNSUPPORTED, t->name, ": block tables and lengths must be in host memory");
    if (tables.type != dtype::i32)
        fail(LLMKIT_ERROR_DTYPE, tables.name, ": dtype ", core::dtype_name(tables.type), " is not int32");
    if (lens.type != dtype::i32 && lens.type != dtype::i64)
        fail(LLMKIT_ERROR_DTYPE, lens.name, ": dtype ", core::dtype_name(lens.type), " is not int32 or int64");
    // The batch: q's first axis, or with packed queries the tables' rows
    // (the offsets are checked against them).
    const int64_t B = p.cu_seqlens_q ? (tables.ndim == 2 ? tables.shape[0] : -1) : q.ndim == 4 ? q.shape[0] : -1;
    if (tables.ndim != 2 || tables.shape[0] != B)
        fail(LLMKIT_ERROR_SHAPE, tables.name, ": shape ", tables.shape_string(), " must be [batch, max_blocks] with batch = ",
             B, p.cu_seqlens_q ? "" : " (q's first axis)");
    if (lens.ndim != 1 || lens.shape[0] != B)
        fail(LLMKIT_ERROR_SHAPE, lens.name, ": shape ", lens.shape_string(), " must be [", B, "]");
    const int64_t bs = store_.block_size(), nb = store_.n_blocks(), width = tables.shape[1];
    // The kernel reads table rows through a pointer: make each row compact.
    std::vector<int32_t> ids(static_cast<size_t>(B * width));
    std::vector<cache_seq> seqs(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) {
        const char *lp = lens.data + b * lens.strides[0] * int64_t(lens.elem_size);
        int64_t len;
        if (lens.type == dtype::i32) {
            int32_t x;
            std::memcpy(&x, lp, 4);
            len = x;
        } else {
            std::memcpy(&len, lp, 8);
        }
        if (len < 0 || len > width * bs)
            fail(LLMKIT_ERROR_OUT_OF_RANGE, lens.name, "[", b, "] = ", len, " is outside 0..", width * bs,
                 " (the table's ", width, " blocks of ", bs, " tokens)");
        const int64_t used = (len + bs - 1) / bs;
        // Leading entries of -1 are released blocks (as block_table() shows them).
        int64_t released = 0;
        for (int64_t i = 0; i < used; ++i) {
            int32_t id;
            std::memcpy(&id, tables.data + (b * tables.strides[0] + i * tables.strides[1]) * 4, 4);
            if (id == k_released_block && released == i * bs) {
                released += bs;
            } else if (id < 0 || id >= nb) {
                fail(LLMKIT_ERROR_OUT_OF_RANGE, tables.name, "[", b, ", ", i, "] = ", id,
                     " points outside the pool (block ids are 0..", nb - 1, "; -1, a released block, only before the "
                     "first block held)");
            }
            ids[size_t(b * width + i)] = id;
        }
        seqs[size_t(b)] = {ids.data() + b * width, used, len, released};
    }
    cache_attention(store_.layer(layer), seqs.data(), B, q, out, p);
}

uint64_t paged_kv_cache::seq_save_bytes(int32_t seq) const {
    check_seq(live_, seq, "seq");
    return seq_state_bytes(store_, {len_[size_t(seq)], released_tokens(seq)});
}

void paged_kv_cache::seq_save(int32_t seq, char *out) const {
    check_seq(live_, seq, "seq");
    seq_state_save(store_, tables_[size_t(seq)].data(), {len_[size_t(seq)], released_tokens(seq)}, out);
}

void paged_kv_cache::seq_load(int32_t seq, const void *data, size_t size) {
    check_seq(live_, seq, "seq");
    const int64_t bs = store_.block_size();
    // At most the pool's tokens held, which also bounds the sizes seq_state_check adds up.
    seq_state state = seq_state_check(store_, data, size, max_seq_len(), store_.n_blocks() * bs, bs);
    const int64_t longest = *std::max_element(state.lengths.begin(), state.lengths.end());
    const int64_t released = state.first / bs, need = (longest + bs - 1) / bs - released;
    std::vector<int32_t> &table = tables_[size_t(seq)];
    const int64_t own = std::count_if(table.begin(), table.end(),
                                      [&](int32_t b) { return b != k_released_block && refs_[size_t(b)] == 1; });
    if (need > free_blocks() + own)
        fail(LLMKIT_ERROR_OUT_OF_MEMORY, "saved sequence: its ", longest - state.first, " tokens held need ", need,
             " blocks of ", bs, "; ", free_blocks(), " are free and sequence ", seq, " holds ", own,
             " of its own (free sequences or load into a larger pool)");
    for (int32_t b : table) release_block(b);
    table.assign(size_t(released), k_released_block);
    while (int64_t(table.size()) < released + need) table.push_back(take_block());
    seq_state_load(store_, table.data(), data, state);
    len_[size_t(seq)] = std::move(state.lengths);
}

uint64_t paged_kv_cache::memory_bytes() const {
    return store_.block_bytes() * uint64_t(store_.n_blocks() - free_blocks());
}

}  // namespace llmkit::attention
