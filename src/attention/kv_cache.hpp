// KV caches of the attention block.
//
// Both caches keep K and V in the same block-structured storage: block b of
// layer l holds, for each kv head h, `block_size` consecutive token rows of
// head_dim elements ([layer][block][head][token][dim], one array for K and one
// for V), plus a float32 scale per row when the elements are 8-bit. A sequence
// is a list of block ids (its block table): token j lives in block
// table[j / block_size], row j % block_size.
//
// - kv_cache (this file) is the contiguous cache: one block per sequence slot,
//   of `capacity` tokens, so a sequence's rows of one head are one run.
// - paged_kv_cache (paged_kv_cache.hpp) shares a pool of small blocks between
//   sequences, vLLM-style, with reference counts for fork / copy-on-write.
//
// V may have a head_dim of its own (v_head_dim, DeepSeek's 192 / 128), and a
// cache may keep no V at all (v_from_k): a token's V is then the first
// v_head_dim elements of its K row, as in multi-head latent attention, where
// one 576-wide row per token holds the 512-wide latent (the values) and the
// 64-wide rotary key.
//
// One attention kernel (cache_attention) reads both through the block table,
// converting (or dequantizing) K/V rows tile by tile as it walks them, so the
// two caches give bit-identical results.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace llmkit::attention {

struct kernels;
struct rope_params;
class rope_rotation;

enum class kv_dtype { f32 = 0, bf16 = 1, f16 = 2, i8 = 3, fp8_e4m3 = 4, fp8_e5m2 = 5 };

// The 8-bit dtypes keep a float32 scale per row (token and kv head): an
// element's value is its raw value (the kernels' reading of its byte, see
// row_type) times the row's scale. int8 rows store absmax / 127; FP8 rows
// the torch-style scale (absmax / 448 or / 57344) times the factor that
// turns their raw value into their FP8 value: 2^8 for E4M3, 1 for E5M2.
inline bool kv_has_scales(kv_dtype t) { return t == kv_dtype::i8 || t == kv_dtype::fp8_e4m3 || t == kv_dtype::fp8_e5m2; }
// The stored scale over the row's true scale (value = element's value x
// scale): 2^8 for E4M3, whose raw value is its value / 2^8 (row_type), else 1.
inline float kv_scale_factor(kv_dtype t) { return t == kv_dtype::fp8_e4m3 ? 256.0f : 1.0f; }

const char *kv_dtype_name(kv_dtype t);
int64_t kv_dtype_bytes(kv_dtype t);

// One layer of a block-structured cache, as the kernel sees it.
struct cache_layer_view {
    kv_dtype type = kv_dtype::f32;
    int64_t n_kv_heads = 0, head_dim = 0, block_size = 0, n_blocks = 0;
    const char *k = nullptr, *v = nullptr;              // [block][head][token][dim]
    const float *k_scale = nullptr, *v_scale = nullptr;  // [block][head][token], 8-bit rows only (kv_has_scales)
    // V's elements per row (0: head_dim) and from one V row to the next in
    // the block layout (0: V's own width; head_dim where V lies in K's rows).
    int64_t v_head_dim = 0, v_row = 0;
    // Plain [B, S, H, D] tensors instead (attention()'s decode over K and V
    // whose heads lie side by side, see attention.cpp): token_stride > 0, each
    // sequence one block of block_size tokens, its rows token-major with the
    // heads next to each other: K's row of (block, head, token t) at element
    // block * k_block_stride + t * token_stride + head * head_dim (token_stride
    // = n_kv_heads * head_dim), V's at block * v_block_stride +
    // t * value_token_stride + head * v_head_dim. Decode only (fewer than 16
    // rows per kv head), float types only.
    int64_t token_stride = 0, k_block_stride = 0, v_block_stride = 0;
};

// V's head_dim, and the elements between its rows in the block layout.
inline int64_t value_dim(const cache_layer_view &L) { return L.v_head_dim > 0 ? L.v_head_dim : L.head_dim; }
inline int64_t value_row(const cache_layer_view &L) { return L.v_row > 0 ? L.v_row : value_dim(L); }
// Plain tensors: the elements from one token's V rows to the next (its heads' rows side by side).
inline int64_t value_token_stride(const cache_layer_view &L) { return L.n_kv_heads * value_dim(L); }

// One sequence: its block table and how many tokens it holds.
struct cache_seq {
    const int32_t *blocks = nullptr;
    int64_t n_blocks = 0;
    int64_t length = 0;
    // Leading tokens whose blocks were released (a paged sequence past a
    // sliding window: its table's first released / block_size entries are
    // -1). No query may see them; cache_attention refuses a call whose
    // window reaches them, and the kernels read keys from a task's window
    // start on, so those entries are never read.
    int64_t released = 0;
};

struct cache_attention_params {
    bool causal = true;
    int64_t window = 0;
    float softcap = 0.0f;
    float scale = 0.0f;                   // 0 = 1/sqrt(D)
    const float *alibi_slopes = nullptr;  // Hq values or null
    const float *sinks = nullptr;         // Hq logits or null
    // Dense attention's mask over plain tensors (token_stride; the caches'
    // calls take none): float32 or bool, broadcast to [B, Hq, Sq, Skv] as
    // torch's attn_mask (see mask_view), key j of sequence b its column j.
    const core::tensor_view *mask = nullptr;
    int n_threads = 0;
    int64_t split_keys = 0;               // keys per split-KV part; 0 = automatic
    const kernels *kernel_set = nullptr;  // null = the best for this CPU
    // Plain tensors' rows (token_stride) are checked through what they give:
    // a score that is not finite (a NaN or infinity in a K row, or finite
    // rows whose product overflowed) sets *rows_finite to false; one in a V
    // row makes the results that read it NaN or infinite, which the caller
    // checks (attention.cpp's check_rows).
    std::atomic<bool> *rows_finite = nullptr;
    // RoPE for the queries (the caches' calls): q is rotated, in a copy of
    // its dtype, at its positions (query i of sequence b at length_b - Sq + i)
    // before it attends, as llmkit_rope would. Null: q is used as it is.
    const rope_params *rope = nullptr;
    // Each query row's log-sum-exp, float32 [B, Sq, Hq] (checked by check_lse), or null.
    const core::tensor_view *lse = nullptr;
    // Packed queries (cache_packed.cpp), or null: int32 or int64 [B + 1]
    // offsets; q and out are [Tq, Hq, D], the lse [Tq, Hq], and sequence b's
    // queries rows cu_seqlens_q[b] .. cu_seqlens_q[b + 1] - 1, its last tokens.
    const core::tensor_view *cu_seqlens_q = nullptr;
    // q was already checked for NaNs and infinities (the packed call's groups).
    bool q_checked = false;
};

// Refuses (OUT_OF_RANGE, naming sequence b of the batch) a call in which one
// of the sequence's last Sq tokens, as a query, would see a released key.
void check_released_keys(const cache_seq &s, int64_t b, int64_t Sq, const cache_attention_params &p);

// Attention of q [B, Sq, Hq, D] (the last Sq tokens of each sequence) over
// the cached keys of seqs[b], out [B, Sq, Hq, Dv] of q's dtype (Dv: V's head_dim). Validates the
// tensors against the layer; block ids must already be checked.
void cache_attention(const cache_layer_view &layer, const cache_seq *seqs, int64_t n_seqs, const core::tensor_view &q,
                     const core::tensor_view &out, const cache_attention_params &p);

// The checks of queries q [B, Sq, Hq, D] and output out [B, Sq, Hq, Dv] against the layer
// that do not depend on the batch: host memory, head_dim stride 1, dtypes,
// shapes, out's own elements, head_dim and the head counts.
void validate_queries(const cache_layer_view &layer, const core::tensor_view &q, const core::tensor_view &out);

// cache_attention() with p.cu_seqlens_q: sequences of different query
// counts in one call. The sequences with the same count attend in one
// cache_attention() call on views of their rows (a gathered copy where their
// rows are not evenly spaced), so each gets the bits it gets alone.
void cache_attention_packed(const cache_layer_view &layer, const cache_seq *seqs, int64_t n_seqs,
                            const core::tensor_view &q, const core::tensor_view &out, const cache_attention_params &p);

// A zeroed byte array of K or V rows: 2 MiB aligned and, on Linux, marked for
// transparent huge pages when it spans one, so that decoding over a long
// context (or a paged cache's blocks, spread over the pool) takes few TLB
// misses: with 4 KiB pages every 4 KiB of rows read is one.
class row_buffer {
public:
    row_buffer() = default;
    explicit row_buffer(size_t bytes);
    char *data() { return p_.get(); }
    const char *data() const { return p_.get(); }

private:
    struct release {
        void operator()(char *p) const;
    };
    std::unique_ptr<char[], release> p_;
};

// Cosines and sines of RoPE's pairs, [position][pair] from position 0
// (block_storage::angles); null when not kept.
struct angle_table {
    const float *cs = nullptr, *sn = nullptr;
};

// The storage both caches share (see the top of this file).
class block_storage {
public:
    // v_head_dim: V's elements per row, 0 for head_dim. v_from_k: no V is
    // kept; V is the first v_head_dim elements of each K row (<= head_dim).
    block_storage(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t block_size, int64_t n_blocks,
                  kv_dtype type, int64_t v_head_dim = 0, bool v_from_k = false);

    int64_t n_layers() const { return n_layers_; }
    int64_t n_kv_heads() const { return n_kv_heads_; }
    int64_t head_dim() const { return head_dim_; }
    int64_t v_head_dim() const { return dv_; }
    bool v_from_k() const { return v_from_k_; }
    int64_t block_size() const { return block_size_; }
    int64_t n_blocks() const { return n_blocks_; }
    kv_dtype type() const { return type_; }
    // Bytes of one block over all layers: K, V and the 8-bit rows' scales.
    uint64_t block_bytes() const { return block_bytes_; }

    // Checks k [S, Hkv, D] and v [S, Hkv, Dv] (a float dtype, unit stride on
    // the last axis, finite) against this storage; returns S. v is null
    // exactly when the storage keeps no V (v_from_k).
    int64_t check_rows(const core::tensor_view &k, const core::tensor_view *v) const;
    // Writes rows [from, from + n) of k and v to (layer, block, first row).
    // With `rope`, each K row is rotated in float32 (row from + s at position
    // `position + s`; on a v_from_k cache the row's last rotary_dims, see
    // cache_rotary_offset) before it is stored in the cache's dtype; `angles`, when
    // given, holds the cosines and sines of those positions (angles()).
    void write(int64_t layer, int64_t block, int64_t row, const core::tensor_view &k, const core::tensor_view *v,
               int64_t from, int64_t n, const rope_rotation *rope = nullptr, int64_t position = 0,
               angle_table angles = {});
    // The cosines and sines of positions [0, end) for the rotation `rot`
    // (rope_rotation::angles, the same bits), kept between calls for the
    // rotation last asked for, since every layer's fused append rotates the
    // same positions. Empty past k_memo_positions. Appends alone call it
    // (they run alone, as the C API asks).
    static constexpr int64_t k_memo_positions = 32768;
    angle_table angles(const rope_rotation &rot, int64_t end);
    // Erasing tokens [from, to) of a sequence from one layer (the caches'
    // seq_erase): its tokens [to, len) move down to [from, len - (to - from)),
    // token j living in block table[j / block_size], row j % block_size. With
    // `rope`, each moved K row is re-rotated by -(to - from) positions (in
    // float32, then stored in the cache's dtype again; the same dimensions
    // as write()'s); V rows, and K rows without `rope`, move as they are.
    void move_tokens(int64_t layer, const int32_t *table, int64_t from, int64_t to, int64_t len,
                     const rope_rotation *rope);
    // Copies block src (every layer) over block dst.
    void copy_block(int64_t dst, int64_t src);
    // Copies the first n rows of block src over block dst, in every layer.
    void copy_rows(int64_t dst, int64_t src, int64_t n);
    cache_layer_view layer(int64_t l) const;
    // Raw rows, for saving and loading a sequence (kv_state.cpp): row r of
    // layer l's K (kv 0) or V (kv 1; none where v_from_k), r = (block *
    // n_kv_heads + head) * block_size + token, and its scale (8-bit dtypes).
    int64_t elem_bytes() const { return es_; }
    const char *row(int kv, int64_t l, int64_t r) const;
    char *row(int kv, int64_t l, int64_t r) { return const_cast<char *>(std::as_const(*this).row(kv, l, r)); }
    const float *scale(int kv, int64_t l, int64_t r) const;
    float *scale(int kv, int64_t l, int64_t r) { return const_cast<float *>(std::as_const(*this).scale(kv, l, r)); }

private:
    // The first K dimension `rope` turns (cache_rotary_offset, checked by the callers).
    int64_t rotary_offset(const rope_rotation &rope) const;
    // Rows r..r+n-1 of a layer's K or V (`base`, with their `scales` for the
    // 8-bit dtypes) as n * D float32 values in x, and x stored back into such
    // rows (8-bit rows get the scale of their absmax).
    void load_cache_rows(const kernels &kn, const char *base, const float *scales, int64_t r, int64_t n, int64_t D,
                         float *x) const;
    void store_cache_rows(const kernels &kn, char *base, float *scales, int64_t r, int64_t n, int64_t D,
                          const float *x) const;

    int64_t n_layers_, n_kv_heads_, head_dim_, block_size_, n_blocks_;
    kv_dtype type_;
    int64_t dv_;
    bool v_from_k_;
    int64_t es_;
    uint64_t block_bytes_;
    int64_t layer_rows_;     // rows of K (and of V) per layer
    int64_t layer_elems_;    // elements of K per layer
    int64_t v_layer_elems_;  // elements of V per layer (0: v_from_k)
    row_buffer k_, v_;
    std::vector<float> k_scale_, v_scale_;
    struct angle_memo {
        std::vector<double> inv_freq;  // the rotation's frequencies (one per pair) ...
        double factor = 0.0;           // ... and cos/sin factor: what the angles depend on
        std::vector<float> cs, sn;     // [position][pair]
    } memo_;
};

// Sequence ids shared by both caches: slots 0..max-1, each live or not.
void check_seq(const std::vector<bool> &live, int32_t seq, const char *what);
// Both caches' truncation of one sequence's per-layer lengths to n tokens
// (n in 0..the largest of them, else OUT_OF_RANGE).
void truncate_lengths(std::vector<int64_t> &layer_lengths, int32_t seq, int64_t n);
// Both caches' checks of an erase of tokens [from, to) from a sequence whose
// layers hold `layer_lengths` (0 <= from <= to <= the shortest), and of its
// re-rotation (null: none).
void check_erase(const std::vector<int64_t> &layer_lengths, int32_t seq, int64_t from, int64_t to,
                 const rope_params *rope, const block_storage &store);
// The [S, Hkv, D] view of a K or V argument given as [S, Hkv, D] or [1, S, Hkv, D].
core::tensor_view rows_view(const core::tensor_view &t);
// Where the caches' fused RoPE (append, erase, the queries of attention)
// turns a row of head_dim, after checking that it may: no M-RoPE, whose
// three positions per token the caches do not have. Returns the first
// rotated dimension. 0 for a cache with V of its own (the first rotary_dims
// turn, as llmkit_rope does); for a v_from_k cache (MLA's latent rows: the
// latent, which is also V, then the rotary part, as DeepSeek's k_pe follows
// its compressed kv) the LAST rotary_dims turn, head_dim - rotary_dims, and
// they must lie past V's first v_head_dim (rotary_dims 0, all of the row,
// would turn the values too). `what` names the argument in messages.
int64_t cache_rotary_offset(const rope_params &rope, int64_t head_dim, int64_t v_head_dim, bool v_from_k,
                            const char *what);

// The contiguous cache: max_sequences slots of `capacity` tokens each.
class kv_cache {
public:
    kv_cache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t capacity, int64_t max_sequences,
             kv_dtype type, int64_t v_head_dim = 0, bool v_from_k = false);

    int32_t seq_new();
    int32_t seq_fork(int32_t src);  // a copy (this cache shares nothing)
    void seq_free(int32_t seq);
    // Keeps the first n tokens of seq in every layer (n <= its length).
    void seq_truncate(int32_t seq, int64_t n);
    // Removes tokens [from, to) of seq from every layer; the later tokens
    // move down, their K re-rotated by -(to - from) positions with `rope`
    // (the rotation their appends used; null: K moves as it is). Context
    // shift (llama.cpp's seq_rm + seq_add) and StreamingLLM's rolling cache.
    void seq_erase(int32_t seq, int64_t from, int64_t to, const rope_params *rope);
    int64_t length(int32_t seq, int32_t layer) const;  // layer -1: the largest over layers
    // With `rope`, K is rotated on its way in, token j of the sequence at
    // position j. v is null exactly for a cache that keeps no V (v_from_k).
    void append(int32_t layer, int32_t seq, const core::tensor_view &k, const core::tensor_view *v,
                const rope_params *rope = nullptr);
    void attention(int32_t layer, const core::tensor_view &q, const int32_t *seq_ids, int64_t n_seqs,
                   const core::tensor_view &out, const cache_attention_params &p) const;
    uint64_t memory_bytes() const;
    // The sequence's rows as a byte string (kv_state.hpp): its size, then
    // the bytes (seq_save_bytes of them at out).
    uint64_t seq_save_bytes(int32_t seq) const;
    void seq_save(int32_t seq, char *out) const;
    // Replaces seq's rows with a saved sequence's; everything is checked
    // first, so on an error seq is unchanged.
    void seq_load(int32_t seq, const void *data, size_t size);
    int64_t capacity() const { return store_.block_size(); }
    const block_storage &storage() const { return store_; }

private:
    block_storage store_;
    std::vector<bool> live_;
    std::vector<std::vector<int64_t>> len_;  // [seq][layer]
    std::vector<int32_t> slot_ids_;          // slot_ids_[s] = s, the one-block tables
};

}  // namespace llmkit::attention
