// The paged KV cache: a pool of fixed-size blocks (block_size tokens each, all
// layers) shared by the sequences, as in vLLM and FlashInfer. Each sequence
// owns a block table; a free list hands out blocks; reference counts let a
// forked sequence share its parent's blocks until one of them writes into a
// shared block, which is then copied first (copy-on-write). Only the last,
// partially filled block can ever be written again, so that is the only one a
// fork ever copies.
#pragma once

#include <cstdint>
#include <vector>

#include "attention/kv_cache.hpp"

namespace llmkit::attention {

class paged_kv_cache {
public:
    // A block table's entry for a block released by seq_release_before.
    static constexpr int32_t k_released_block = -1;

    paged_kv_cache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t block_size, int64_t n_blocks,
                   int64_t max_sequences, int64_t max_blocks_per_seq, kv_dtype type, int64_t v_head_dim = 0,
                   bool v_from_k = false);

    int32_t seq_new();
    int32_t seq_fork(int32_t src);  // shares every block of src
    void seq_free(int32_t seq);
    // Keeps the first n tokens of seq in every layer (n <= its length); the
    // blocks past them are released (freed unless another sequence holds them).
    void seq_truncate(int32_t seq, int64_t n);
    // The sequence no longer needs its first n tokens, in any layer (n <= its
    // shortest layer): the blocks holding only such tokens are released
    // (freed unless another sequence holds them) and their table entries set
    // to k_released_block. For sliding-window models: attention must then
    // keep to the tokens held (cache_attention refuses a window that reaches
    // a released one). Returns the first token the sequence still holds (a
    // multiple of block_size; n = 0 just asks).
    int64_t seq_release_before(int32_t seq, int64_t n);
    // Removes tokens [from, to) of seq from every layer, as kv_cache's
    // seq_erase: the later tokens move down (their K re-rotated with `rope`),
    // the blocks they then fill are copied first where shared, and the blocks
    // past the new length are released. from must not precede the tokens
    // held (seq_release_before).
    void seq_erase(int32_t seq, int64_t from, int64_t to, const rope_params *rope);
    int64_t length(int32_t seq, int32_t layer) const;  // layer -1: the largest over layers
    const std::vector<int32_t> &block_table(int32_t seq) const;
    // With `rope`, K is rotated on its way in, token j of the sequence at
    // position j. v is null exactly for a cache that keeps no V (v_from_k).
    void append(int32_t layer, int32_t seq, const core::tensor_view &k, const core::tensor_view *v,
                const rope_params *rope = nullptr);
    void attention(int32_t layer, const core::tensor_view &q, const int32_t *seq_ids, int64_t n_seqs,
                   const core::tensor_view &out, const cache_attention_params &p) const;
    // With caller-made block tables: block_tables [B, max_blocks] int32, seq_lens [B] int32 or int64.
    void attention_tables(int32_t layer, const core::tensor_view &q, const core::tensor_view &block_tables,
                          const core::tensor_view &seq_lens, const core::tensor_view &out,
                          const cache_attention_params &p) const;

    // The sequence's rows as a byte string (kv_state.hpp), as kv_cache's:
    // the same format, so a sequence moves between the two kinds of cache.
    // A sequence with released tokens saves the tokens it holds (version 2).
    uint64_t seq_save_bytes(int32_t seq) const;
    void seq_save(int32_t seq, char *out) const;
    // Replaces seq's rows with a saved sequence's, in blocks of its own
    // (released first, as seq_truncate(seq, 0) would); the tokens a version
    // 2 state released stay released, which needs a block_size dividing
    // their count. Everything is checked first, so on an error seq is unchanged.
    void seq_load(int32_t seq, const void *data, size_t size);

    int64_t free_blocks() const { return int64_t(free_.size()); }
    int64_t ref_count(int32_t block) const { return refs_[size_t(block)]; }
    uint64_t memory_bytes() const;  // blocks in use
    uint64_t pool_bytes() const { return store_.block_bytes() * uint64_t(store_.n_blocks()); }
    int64_t max_seq_len() const { return max_blocks_per_seq_ * store_.block_size(); }
    const block_storage &storage() const { return store_; }

private:
    int32_t take_block();
    void release_block(int32_t b);
    void check_layer(int32_t layer) const;
    int64_t released_tokens(int32_t seq) const;  // leading tokens whose blocks seq_release_before released

    block_storage store_;
    int64_t max_blocks_per_seq_;
    std::vector<int32_t> free_;  // a stack of free block ids
    std::vector<int32_t> refs_;  // per block: how many tables hold it
    std::vector<bool> live_;
    std::vector<std::vector<int32_t>> tables_;  // [seq] -> block ids
    std::vector<std::vector<int64_t>> len_;     // [seq][layer]
};

}  // namespace llmkit::attention
