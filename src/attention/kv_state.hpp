// A sequence's cached rows as a byte string: what llmkit_kv_cache_seq_save()
// writes and llmkit_kv_cache_seq_load() reads (prompt caching across runs,
// moving a sequence between caches). Both caches write the same format, so a
// sequence saved from a contiguous cache loads into a paged one of any block
// size and back.
//
// The format (version 1, or 2 for a sequence whose first tokens were
// released), little-endian, no padding:
//
//   offset  bytes  field
//   0       8      magic "LLMKITKV"
//   8       4      u32 version: 1, or 2 when first > 0 (below)
//   12      4      u32 dtype (an llmkit_kv_dtype)
//   16      4      u32 n_layers
//   20      4      u32 n_kv_heads
//   24      4      u32 head_dim
//   28      4      u32 v_head_dim
//   32      4      u32 flags: bit 0 v_from_k (no V section); the others 0
//   36      4      u32 reserved, 0
//   40      8 L    i64 tokens per layer (L = n_layers): its length, positions
//                  0..n_l - 1
//   version 2 only:
//   40+8L   8      i64 first, the first token held (> 0, at most every n_l):
//                  a paged sequence's tokens before it were released
//                  (llmkit_paged_kv_cache_seq_release_before), so every layer
//                  saves tokens first..n_l - 1 only
//   then per layer, K's section and (unless v_from_k) V's:
//           the rows of the tokens held, [head][token][dim] in the cache's
//           dtype, then for the 8-bit dtypes the rows' float32 scales,
//           [head][token]: an element's value is its int8 integer or FP8
//           value times its row's scale (int8: absmax / 127; FP8: absmax /
//           448 or / 57344, torch's float8 bytes of x / scale)
//
// A sequence that holds every token saves as version 1, the bytes earlier
// llmkit wrote and reads. A version 2 state loads only into a paged cache
// whose block_size divides first (the tokens before it stay released there).
//
// The rows are the cache's own bytes (no conversion; E4M3's stored scales,
// which carry the kernels' 2^8, are divided by it on the way out and
// multiplied on the way in, exactly), so a save and a load give the same
// bits back, and attention over the loaded sequence gives the bits it gave
// before.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "attention/kv_cache.hpp"

namespace llmkit::attention {

constexpr size_t k_seq_state_header_bytes = 40;

// What a saved state holds: tokens per layer (positions 0..lengths[l] - 1)
// and the first token held in every layer (0 unless released).
struct seq_state {
    std::vector<int64_t> lengths;
    int64_t first = 0;
};

// The bytes of the saved state.
uint64_t seq_state_bytes(const block_storage &s, const seq_state &state);

// Writes that state (seq_state_bytes bytes) to out; blocks is the
// sequence's block table (a contiguous cache: its one slot), read for the
// tokens held only.
void seq_state_save(const block_storage &s, const int32_t *blocks, const seq_state &state, char *out);

// Checks a saved state against the storage, everything a load needs
// (format, version, dtype, shape, sizes, and that every stored value could
// have been written by an append: finite rows, finite non-negative scales)
// and returns what it holds: at most max_positions tokens per layer, of
// which at most max_held held. release_block is the block size of a paged
// cache, which can keep released tokens released when it divides their
// count, or 0 for a cache that holds every token. Throws
// LLMKIT_ERROR_FORMAT (malformed, truncated, a value no append writes),
// LLMKIT_ERROR_INVALID_ARGUMENT (saved from a cache of another dtype or
// shape), LLMKIT_ERROR_OUT_OF_RANGE (more tokens than that) or
// LLMKIT_ERROR_UNSUPPORTED (released tokens this cache cannot keep
// released), all before it reads the rows.
seq_state seq_state_check(const block_storage &s, const void *data, size_t size, int64_t max_positions,
                          int64_t max_held, int64_t release_block);

// Writes a checked state's rows into the blocks (the table's entries for
// the tokens held).
void seq_state_load(block_storage &s, const int32_t *blocks, const void *data, const seq_state &state);

}  // namespace llmkit::attention
