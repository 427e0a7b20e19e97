// A sequence's cached rows as a byte string: what llmkit_kv_cache_seq_save()
// writes and llmkit_kv_cache_seq_load() reads (prompt caching across runs,
// moving a sequence between caches). Both caches write the same format, so a
// sequence saved from a contiguous cache loads into a paged one of any block
// size and back.
//
// The format (version 1), little-endian, no padding:
//
//   offset  bytes  field
//   0       8      magic "LLMKITKV"
//   8       4      u32 version (1)
//   12      4      u32 dtype (an llmkit_kv_dtype)
//   16      4      u32 n_layers
//   20      4      u32 n_kv_heads
//   24      4      u32 head_dim
//   28      4      u32 v_head_dim
//   32      4      u32 flags: bit 0 v_from_k (no V section); the others 0
//   36      4      u32 reserved, 0
//   40      8 L    i64 tokens per layer (L = n_layers)
//   then per layer, K's section and (unless v_from_k) V's:
//           the rows, [head][token][dim] in the cache's dtype, then for the
//           8-bit dtypes the rows' float32 scales, [head][token]: an
//           element's value is its int8 integer or FP8 value times its row's
//           scale (int8: absmax / 127; FP8: absmax / 448 or / 57344, torch's
//           float8 bytes of x / scale)
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

constexpr uint32_t k_seq_state_version = 1;
constexpr size_t k_seq_state_header_bytes = 40;

// The bytes of the saved state of a sequence holding lengths[l] tokens in layer l.
uint64_t seq_state_bytes(const block_storage &s, const std::vector<int64_t> &lengths);

// Writes that state (seq_state_bytes bytes) to out; blocks is the
// sequence's block table (a contiguous cache: its one slot).
void seq_state_save(const block_storage &s, const int32_t *blocks, const std::vector<int64_t> &lengths, char *out);

// Checks a saved state against the storage, everything a load needs
// (format, version, dtype, shape, sizes, and that every stored value could
// have been written by an append: finite rows, finite non-negative scales)
// and returns its tokens per layer, each at most max_tokens. Throws
// LLMKIT_ERROR_FORMAT (malformed, truncated, a value no append writes),
// LLMKIT_ERROR_INVALID_ARGUMENT (saved from a cache of another dtype or
// shape) or LLMKIT_ERROR_OUT_OF_RANGE (more tokens than max_tokens).
std::vector<int64_t> seq_state_check(const block_storage &s, const void *data, size_t size, int64_t max_tokens);

// Writes a checked state's rows into the blocks (enough of them for its
// longest layer).
void seq_state_load(block_storage &s, const int32_t *blocks, const void *data, const std::vector<int64_t> &lengths);

}  // namespace llmkit::attention
