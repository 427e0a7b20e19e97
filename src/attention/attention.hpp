// The attention block's C++ core: scaled-dot-product attention (tiled online
// softmax), rotary position embeddings and KV-cache arithmetic. The C layer
// (bindings/c/attention.cpp) validates option structs and builds these calls.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.hpp"

namespace llmkit::attention {

struct kernels;

struct attention_params {
    bool causal = false;
    int64_t window = 0;          // 0 = none; implies causal
    float softcap = 0.0f;        // 0 = none
    float scale = 0.0f;          // 0 = 1/sqrt(D)
    const float *alibi_slopes = nullptr;  // Hq values or null
    const float *sinks = nullptr;         // Hq sink logits (exp(sink) joins the softmax denominator) or null
    const core::tensor_view *mask = nullptr;  // float32, broadcast to [B, Hq, Sq, Skv] (torch's order), or null
    int n_threads = 0;
    void *stream = nullptr;
    const kernels *kernel_set = nullptr;  // null = the best for this CPU (tests pick one)
    int64_t kv_splits = 0;                // key-range splits per task; 0 = automatic (tests force some)
    const core::tensor_view *lse = nullptr;  // float32 [B, Sq, Hq]: each row's log-sum-exp (finish_row), or null
};

// Attention over packed sequences of different lengths (flash-attn's varlen
// form): q [Tq, Hq, D], k and v [Tk, Hkv, D]; sequence b's queries are rows
// cu_seqlens_q[b] .. cu_seqlens_q[b + 1] - 1, its keys likewise in k and v;
// out [Tq, Hq, D]; p.lse, if any, float32 [Tq, Hq]. Each sequence is one
// attention() call on views of its rows (the same bits); no mask.
void attention_varlen(const core::tensor_view &q, const core::tensor_view &k, const core::tensor_view &v,
                      const core::tensor_view &cu_seqlens_q, const core::tensor_view &cu_seqlens_k,
                      const core::tensor_view &out, const attention_params &p);

// An attention mask (checked: 2 to 4 axes broadcast as torch's attn_mask)
// read as [B, Hq, Sq, Skv]: float32, added to the scores (-inf hides a key),
// or bool, torch's boolean attn_mask (false hides a key: 0 or -inf added).
struct mask_view {
    const char *data = nullptr;   // null: no mask
    bool is_bool = false;
    std::array<int64_t, 4> st{};  // element strides, 0 along an axis it broadcasts over

    explicit mask_view(const core::tensor_view *m);
    explicit operator bool() const { return data != nullptr; }
    const char *row(int64_t b, int64_t h, int64_t i) const {
        return data + (b * st[0] + h * st[1] + i * st[2]) * (is_bool ? 1 : 4);
    }
    // Adds row (b, h, i)'s values for keys j0 .. j0 + n - 1 to s[0], s[stride], ...
    void add(float *s, int64_t stride, int n, int64_t b, int64_t h, int64_t i, int64_t j0) const;
    // Whether row (b, h, i) hides every key of j0 .. j0 + n - 1.
    bool hides(int64_t b, int64_t h, int64_t i, int64_t j0, int n) const;
};

// The B + 1 offsets of packed sequences (flash-attn's cu_seqlens): int32 or
// int64 [B + 1], 0 first, never decreasing, `total` (the packed rows of
// `rows`, named in errors) last.
std::vector<int64_t> read_offsets(const core::tensor_view &cu, int64_t total, const char *rows);

// Rows [from, from + n) of a packed [T, H, D] tensor (or [T, H] lse) as one
// sequence, [1, n, H, D] (or [1, n, H]); errors about it name it "t of
// sequence b" (b < 0: the whole tensor, its own name).
core::tensor_view sequence_view(const core::tensor_view &t, int64_t b, int64_t from, int64_t n);

// Checks an lse output for q [B, Sq, Hq, D] (the attention calls' options.lse):
// float32 [B, Sq, Hq], any strides, each element its own; D > 0 (a head of no
// dimensions has no scores to sum).
void check_lse(const core::tensor_view &lse, const core::tensor_view &q);

// Validates shapes/dtypes/strides (errors name the tensor) and runs attention.
void attention(const core::tensor_view &q, const core::tensor_view &k, const core::tensor_view &v,
               const core::tensor_view &out, const attention_params &p);

// Attention over the union of two disjoint key sets from attention over
// each: (out, lse) becomes the merge of itself and (other_out, other_lse),
// in place (merge.cpp). out [B, S, H, D] and other_out of float types, the
// log-sum-exps float32 [B, S, H].
void merge(const core::tensor_view &out, const core::tensor_view &lse, const core::tensor_view &other_out,
           const core::tensor_view &other_lse);

enum class rope_layout { neox = 0, interleaved = 1 };
enum class rope_scaling { none = 0, linear = 1, ntk = 2, llama3 = 3, yarn = 4, longrope = 5 };

struct rope_params {
    rope_layout layout = rope_layout::neox;
    double theta = 10000.0;
    int rotary_dims = 0;  // 0 = all of D
    rope_scaling scaling = rope_scaling::none;
    double factor = 1.0;
    double alpha = 1.0;
    double low_freq_factor = 1.0;
    double high_freq_factor = 4.0;
    double original_max_position = 8192.0;
    double beta_fast = 32.0;
    double beta_slow = 1.0;
    double attention_factor = 0.0;  // YaRN, LongRoPE; 0 = the scaling's default
    int n_threads = 0;
    void *stream = nullptr;
    const float *frequency_factors = nullptr;  // n/2 divisors of inv_freq, or null
    int mrope_section[3] = {0, 0, 0};          // M-RoPE: pairs per position component; all 0 = none
    int mrope_interleaved = 0;                 // 0: contiguous sections (Qwen2-VL), 1: interleaved (Qwen3-VL)
};

// Whether p is M-RoPE (three positions per token).
bool uses_mrope(const rope_params &p);
// The caches' fused RoPE rotates token j at position j: M-RoPE is refused there.
void refuse_mrope_in_cache(const rope_params &p, const char *what);

// The n/2 inverse frequencies for n rotary dims and the factor multiplying cos
// and sin (1 except for YaRN and LongRoPE). Throws INVALID_ARGUMENT on bad
// parameters.
std::vector<double> rope_inv_freq(const rope_params &p, int n, double *cos_sin_factor);

// RoPE's rotation of one row of head_dim floats: the arithmetic llmkit_rope
// and the caches' fused appends and queries share, so they give the same bits.
// The constructor checks the layout, the rotary dims against head_dim and the
// scaling's parameters.
class rope_rotation {
public:
    rope_rotation(const rope_params &p, int64_t head_dim);
    int rotary_dims() const { return n_; }
    int pairs() const { return n_ / 2; }
    // The cosines and sines (times YaRN's factor) of every pair at `position`.
    void angles(int64_t position, float *cs, float *sn) const;
    // M-RoPE: pair k at position[component(k)] (temporal, height, width).
    bool mrope() const { return !component_.empty(); }
    void angles(const int64_t position[3], float *cs, float *sn) const;
    // The cosines and sines of a turn by `delta` positions, without YaRN's
    // factor: rotate() by them takes a row rotated at p to one rotated at
    // p + delta (the angles of each pair grow linearly with the position).
    // The caches' erase re-rotates the keys it moves with them.
    void shift_angles(int64_t delta, float *cs, float *sn) const;
    // Rotates the first rotary_dims() of row by angles() of its position.
    void rotate(float *row, const float *cs, const float *sn) const;
    // What angles() depends on: two rotations with equal inverse frequencies
    // and cos/sin factor give the same angles (the caches' memo compares them).
    const std::vector<double> &inv_freq() const { return inv_; }
    double cos_sin_factor() const { return factor_; }

private:
    // One pair's cos and sin at position p.
    void angle(int k, int64_t p, float *cs, float *sn) const;

    std::vector<double> inv_;
    std::vector<uint8_t> component_;  // M-RoPE: each pair's position component; empty otherwise
    double factor_ = 1.0;
    int n_ = 0;
    bool interleaved_ = false;
};

// One row of n elements of float dtype t at p (any alignment) as float32 in
// f, and back: 16-bit rows go through the kernel set's vector converters (the
// bits of core's) via h, n uint16_t of scratch. RoPE and the caches' appends.
void load_row(const kernels &kn, const char *p, core::dtype t, int64_t n, float *f, uint16_t *h);
void store_row(const kernels &kn, char *p, core::dtype t, int64_t n, const float *f, uint16_t *h);

// x rotated into out (same shape; any float dtypes). Passing x itself as out
// (the same object) rotates it in place.
void rope(const core::tensor_view &x, const core::tensor_view &positions, const core::tensor_view &out,
          const rope_params &p);

// layers * kv_heads * (head_dim + v_head_dim) * bytes * context * batch, with
// overflow checks (v_head_dim 0: a cache that keeps no V, MLA's latent).
uint64_t kv_cache_bytes(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t v_head_dim,
                        int64_t dtype_bytes, int64_t context, int64_t batch);

}  // namespace llmkit::attention
