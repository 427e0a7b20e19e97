// The block storage shared by the KV caches, and the contiguous cache.
#include "attention/kv_cache.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <limits>
#include <new>
#include <optional>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "attention/attention.hpp"
#include "attention/kernels.hpp"
#include "attention/kv_state.hpp"
#include "core/finite.hpp"
#include "core/threads.hpp"
#include "quant/formats.hpp"

namespace llmkit::attention {

using core::dtype;
using core::fail;
using core::tensor_view;

namespace {

// DeepSeek's latent rows (512 + 64), as attention() takes them.
constexpr int64_t k_max_head_dim = 576;

// a * b, or an OUT_OF_RANGE error naming `what` when it passes 2^62.
int64_t mul_checked(int64_t a, int64_t b, const char *what) {
    constexpr int64_t limit = int64_t(1) << 62;
    if (a != 0 && b > limit / a) fail(LLMKIT_ERROR_OUT_OF_RANGE, what, " overflows: the cache would be too large");
    return a * b;
}

void require_positive(int64_t x, const char *what) {
    if (x <= 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, what, " must be > 0, got ", x);
}

// A sequence-slot count: positive and an int32 id each.
int64_t checked_slots(int64_t n) {
    if (n <= 0 || n > std::numeric_limits<int32_t>::max())
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "max_sequences must be in 1..INT32_MAX, got ", n);
    return n;
}

void require_host(const tensor_view &t) {
    if (!t.on_host())
        fail(LLMKIT_ERROR_UNSUPPORTED, t.name, ": the KV caches live in host memory and take host tensors only");
}

// The largest magnitude of a row of D floats.
float row_absmax(const float *x, int64_t D) {
    float m = 0.0f;
    for (int64_t d = 0; d < D; ++d) m = std::max(m, std::fabs(x[d]));
    return m;
}

}  // namespace

const char *kv_dtype_name(kv_dtype t) {
    switch (t) {
    case kv_dtype::f32: return "float32";
    case kv_dtype::bf16: return "bfloat16";
    case kv_dtype::f16: return "float16";
    case kv_dtype::i8: return "int8";
    case kv_dtype::fp8_e4m3: return "fp8_e4m3";
    case kv_dtype::fp8_e5m2: return "fp8_e5m2";
    }
    return "?";
}

int64_t kv_dtype_bytes(kv_dtype t) { return t == kv_dtype::f32 ? 4 : kv_has_scales(t) ? 1 : 2; }

tensor_view rows_view(const tensor_view &t) {
    if (t.ndim == 4 && t.shape[0] == 1) {  // [1, S, Hkv, D]: drop the batch axis
        tensor_view r = t;
        r.ndim = 3;
        for (int i = 0; i < 3; ++i) r.shape[i] = t.shape[i + 1], r.strides[i] = t.strides[i + 1];
        return r;
    }
    if (t.ndim != 3)
        fail(LLMKIT_ERROR_SHAPE, t.name, ": expected [tokens, kv_heads, head_dim] (or [1, tokens, kv_heads, head_dim]), got shape ",
             t.shape_string());
    return t;
}

void check_seq(const std::vector<bool> &live, int32_t seq, const char *what) {
    if (seq < 0 || size_t(seq) >= live.size() || !live[size_t(seq)])
        fail(LLMKIT_ERROR_OUT_OF_RANGE, what, " = ", seq, " is not a live sequence of this cache (ids are 0..",
             int64_t(live.size()) - 1, "; create one with seq_new or seq_fork)");
}

row_buffer::row_buffer(size_t bytes) {
    constexpr size_t huge = size_t(2) << 20;
    const size_t align = bytes >= huge ? huge : 64;
    const size_t size = (std::max<size_t>(bytes, 1) + align - 1) / align * align;  // a multiple, as aligned_alloc wants
    char *p = static_cast<char *>(std::aligned_alloc(align, size));
    if (!p) throw std::bad_alloc();
#ifdef __linux__
    if (align == huge) madvise(p, size, MADV_HUGEPAGE);  // a hint: without THP the pages stay 4 KiB
#endif
    std::memset(p, 0, size);
    p_.reset(p);
}

void row_buffer::release::operator()(char *p) const { std::free(p); }

block_storage::block_storage(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t block_size,
                             int64_t n_blocks, kv_dtype type, int64_t v_head_dim, bool v_from_k)
    : n_layers_(n_layers), n_kv_heads_(n_kv_heads), head_dim_(head_dim), block_size_(block_size),
      n_blocks_(n_blocks), type_(type), dv_(v_head_dim > 0 ? v_head_dim : head_dim), v_from_k_(v_from_k),
      es_(kv_dtype_bytes(type)) {
    require_positive(n_layers, "n_layers");
    require_positive(n_kv_heads, "n_kv_heads");
    require_positive(head_dim, "head_dim");
    require_positive(block_size, "block size (capacity)");
    require_positive(n_blocks, "block count (sequences)");
    if (head_dim > k_max_head_dim)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "head_dim = ", head_dim, " exceeds the supported maximum of ", k_max_head_dim);
    if (v_head_dim < 0 || v_head_dim > k_max_head_dim)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "v_head_dim = ", v_head_dim, " is outside 0..", k_max_head_dim,
             " (0: head_dim)");
    if (v_from_k && dv_ > head_dim)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "v_from_k: V is the first v_head_dim elements of each K row, so v_head_dim = ",
             dv_, " must not exceed head_dim = ", head_dim);
    if (int(type) < 0 || int(type) > int(kv_dtype::fp8_e5m2)) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "dtype = ", int(type), " is not a KV-cache dtype");
    const int64_t rows = mul_checked(mul_checked(n_blocks, n_kv_heads, "blocks * heads"), block_size, "rows");
    layer_rows_ = rows;
    layer_elems_ = mul_checked(rows, head_dim, "elements per layer");
    v_layer_elems_ = v_from_k ? 0 : mul_checked(rows, dv_, "elements per layer");
    const int64_t bytes = mul_checked(mul_checked(layer_elems_, n_layers, "elements"), es_, "bytes");
    const int64_t v_bytes = mul_checked(mul_checked(v_layer_elems_, n_layers, "elements"), es_, "bytes");
    if (uint64_t(bytes) > uint64_t(std::numeric_limits<size_t>::max()) / 2 ||
        uint64_t(v_bytes) > uint64_t(std::numeric_limits<size_t>::max()) / 2)
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "the cache would need ", bytes, " bytes for K and ", v_bytes, " for V");
    k_ = row_buffer(size_t(bytes));
    if (!v_from_k) v_ = row_buffer(size_t(v_bytes));
    if (kv_has_scales(type)) {
        k_scale_.resize(size_t(rows * n_layers));
        if (!v_from_k) v_scale_.resize(size_t(rows * n_layers));
    }
    const uint64_t scale_bytes = kv_has_scales(type) ? 4 : 0;
    const uint64_t k_row_bytes = uint64_t(head_dim * es_) + scale_bytes;
    const uint64_t v_row_bytes = v_from_k ? 0 : uint64_t(dv_ * es_) + scale_bytes;
    block_bytes_ = uint64_t(n_layers * n_kv_heads * block_size) * (k_row_bytes + v_row_bytes);
}

int64_t block_storage::check_rows(const tensor_view &k, const tensor_view *v) const {
    if (v_from_k_ && v)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "v: this cache keeps no V (v_from_k: a token's V is the first ", dv_,
             " elements of its K row); pass none");
    if (!v_from_k_ && !v) fail(LLMKIT_ERROR_NULL_POINTER, "v: tensor pointer is NULL");
    for (const tensor_view *t : {&k, v}) {
        if (!t) continue;
        const int64_t width = t == &k ? head_dim_ : dv_;
        require_host(*t);
        if (t->type != dtype::f32 && t->type != dtype::bf16 && t->type != dtype::f16)
            fail(LLMKIT_ERROR_DTYPE, t->name, ": dtype ", core::dtype_name(t->type), " is not float32, bfloat16 or float16");
        if (t->ndim != 3 || t->shape[1] != n_kv_heads_ || t->shape[2] != width)
            fail(LLMKIT_ERROR_SHAPE, t->name, ": shape ", t->shape_string(), " must be [tokens, ", n_kv_heads_, ", ", width,
                 "] (this cache's kv heads and ", t == &k ? "head_dim" : "v_head_dim", ")");
        if (t->shape[2] > 1 && t->strides[2] != 1)
            fail(LLMKIT_ERROR_UNSUPPORTED, t->name, ": the head_dim axis must have stride 1, got stride ", t->strides[2]);
    }
    if (v && k.type != v->type)
        fail(LLMKIT_ERROR_DTYPE, "v: dtype ", core::dtype_name(v->type), " differs from k's ", core::dtype_name(k.type));
    if (v && k.shape[0] != v->shape[0])
        fail(LLMKIT_ERROR_SHAPE, "k ", k.shape_string(), " and v ", v->shape_string(), " hold different token counts");
    // Non-finite values would poison every later query (and int8 scales):
    // refuse them before anything is written.
    core::require_finite(k, 0);
    if (v) core::require_finite(*v, 0);
    return k.shape[0];
}

int64_t cache_rotary_offset(const rope_params &rope, int64_t head_dim, int64_t v_head_dim, bool v_from_k,
                            const char *what) {
    refuse_mrope_in_cache(rope, what);
    if (!v_from_k) return 0;
    const int64_t room = head_dim - v_head_dim;  // the dimensions past V
    if (room < 2)
        fail(LLMKIT_ERROR_SHAPE, what, ": a v_from_k cache turns the rotary part after V (the first ", v_head_dim,
             " of each K row), and this one has ", room, " dims past V (head_dim ", head_dim,
             "): rotate the keys before appending, or give V fewer dims than K");
    if (rope.rotary_dims <= 0 || rope.rotary_dims > room)
        fail(LLMKIT_ERROR_SHAPE, what, ": a v_from_k cache (V is the first ", v_head_dim, " of each K row, as MLA's "
             "latent) turns the rotary part at the end of each row: rotary_dims must be in 2..", room, " (head_dim ",
             head_dim, " - v_head_dim ", v_head_dim, "), got ", rope.rotary_dims,
             rope.rotary_dims == 0 ? " (all of the row, the values too)" : "");
    return head_dim - rope.rotary_dims;  // (rope_rotation checks that it is even)
}

int64_t block_storage::rotary_offset(const rope_rotation &rope) const {
    return v_from_k_ ? head_dim_ - rope.rotary_dims() : 0;
}

angle_table block_storage::angles(const rope_rotation &rot, int64_t end) {
    if (end > k_memo_positions) return {};
    // The angles depend on the frequencies and the cos/sin factor alone (not on
    // the layout): those, compared exactly, say whether the memo holds them.
    angle_memo &m = memo_;
    if (m.inv_freq != rot.inv_freq() || m.factor != rot.cos_sin_factor()) {
        m.inv_freq = rot.inv_freq();
        m.factor = rot.cos_sin_factor();
        m.cs.clear();
        m.sn.clear();
    }
    const size_t pairs = m.inv_freq.size();
    const int64_t have = pairs ? int64_t(m.cs.size() / pairs) : 0;
    if (have < end) {
        const int64_t want = std::min(k_memo_positions, std::max(end, 2 * have));  // amortised growth
        m.cs.resize(size_t(want) * pairs);
        m.sn.resize(size_t(want) * pairs);
        for (int64_t q = have; q < want; ++q) rot.angles(q, m.cs.data() + size_t(q) * pairs, m.sn.data() + size_t(q) * pairs);
    }
    return {m.cs.data(), m.sn.data()};
}

void block_storage::load_cache_rows(const kernels &kn, const char *base, const float *scales, int64_t r, int64_t n,
                                    int64_t D, float *x) const {
    const char *src = base + r * D * es_;
    switch (type_) {
    case kv_dtype::f32: std::memcpy(x, src, size_t(n * D) * 4); break;
    case kv_dtype::bf16:  // (the rows' buffer is 64-byte aligned: 16-bit rows are read and written in place)
    case kv_dtype::f16: kn.half_to_f32(x, reinterpret_cast<const uint16_t *>(src), n * D, type_ == kv_dtype::bf16); break;
    case kv_dtype::i8:
    case kv_dtype::fp8_e4m3:
    case kv_dtype::fp8_e5m2: kn.q8_to_f32(x, src, n, D, scales + r, row_type(int(type_))); break;
    }
}

void block_storage::store_cache_rows(const kernels &kn, char *base, float *scales, int64_t r, int64_t n, int64_t D,
                                     const float *x) const {
    char *dst = base + r * D * es_;
    switch (type_) {
    case kv_dtype::f32: std::memcpy(dst, x, size_t(n * D) * 4); return;
    case kv_dtype::bf16:
    case kv_dtype::f16: kn.f32_to_half(reinterpret_cast<uint16_t *>(dst), x, n * D, type_ == kv_dtype::bf16); return;
    default: break;
    }
    for (int64_t i = 0; i < n; ++i, x += D, dst += D, ++r) {
        const float amax = row_absmax(x, D);
        if (type_ == kv_dtype::i8) {
            // Symmetric per token and head: scale = absmax / 127, q = round(x / scale).
            const float scale = amax / 127.0f;
            const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
            for (int64_t d = 0; d < D; ++d) {
                const float qv = std::min(127.0f, std::max(-127.0f, std::nearbyint(x[d] * inv)));
                dst[d] = char(int8_t(qv));
            }
            scales[r] = scale;
            continue;
        }
        // FP8, per token and head as the quant block's fp8_*_channel formats:
        // scale = absmax / 448 (or / 57344), q = fp8(x / scale), a division
        // as torch users write it, so the bytes match theirs.
        const bool e4m3 = type_ == kv_dtype::fp8_e4m3;
        const float scale = quant::fp8_scale(amax, e4m3 ? 0 : 1);
        const auto encode = e4m3 ? quant::f32_to_e4m3 : quant::f32_to_e5m2;
        uint8_t *q = reinterpret_cast<uint8_t *>(dst);
        for (int64_t d = 0; d < D; ++d) q[d] = encode(x[d] / scale);
        scales[r] = scale * kv_scale_factor(type_);
    }
}

void block_storage::write(int64_t layer, int64_t block, int64_t row, const tensor_view &k, const tensor_view *v,
                          int64_t from, int64_t n, const rope_rotation *rope, int64_t position, angle_table table) {
    const int64_t H = n_kv_heads_;
    const size_t pairs = rope ? size_t(rope->pairs()) : 0;
    const int64_t turn_at = rope ? rotary_offset(*rope) : 0;  // the first rotated dimension of a K row
    // Rows already in the cache's dtype and not rotated are copied as they are.
    const auto same_type = [&](const tensor_view &t) {
        return (type_ == kv_dtype::f32 && t.type == dtype::f32) || (type_ == kv_dtype::bf16 && t.type == dtype::bf16) ||
               (type_ == kv_dtype::f16 && t.type == dtype::f16);
    };
    const kernels &kn = best_kernels();
    // Tokens [s0, s1) of the append: both K and V, every head.
    const auto write_tokens = [&](int64_t s0, int64_t s1) {
        const int64_t widest = std::max(head_dim_, dv_);
        std::vector<float> x(static_cast<size_t>(widest)), cs(pairs), sn(pairs);
        std::vector<uint16_t> half(static_cast<size_t>(widest));  // a 16-bit row on its way in or out
        for (int kv = 0; kv < (v ? 2 : 1); ++kv) {
            const tensor_view &t = kv == 0 ? k : *v;
            const int64_t D = kv == 0 ? head_dim_ : dv_;
            const bool rotate = kv == 0 && pairs > 0;
            const bool copy = !rotate && same_type(t);
            char *base = kv == 0 ? k_.data() + layer * layer_elems_ * es_ : v_.data() + layer * v_layer_elems_ * es_;
            float *scales =
                kv_has_scales(type_) ? (kv == 0 ? k_scale_ : v_scale_).data() + layer * layer_rows_ : nullptr;
            for (int64_t s = s0; s < s1; ++s) {
                const float *c = cs.data(), *sn_row = sn.data();
                if (rotate && table.cs) {
                    c = table.cs + size_t(position + s) * pairs;
                    sn_row = table.sn + size_t(position + s) * pairs;
                } else if (rotate) {
                    rope->angles(position + s, cs.data(), sn.data());
                }
                for (int64_t h = 0; h < H; ++h) {
                    const char *src = t.data + ((from + s) * t.strides[0] + h * t.strides[1]) * int64_t(t.elem_size);
                    const int64_t r = (block * H + h) * block_size_ + row + s;  // row index in the layer
                    char *dst = base + r * D * es_;
                    if (copy) {
                        std::memcpy(dst, src, size_t(D * es_));
                        continue;
                    }
                    load_row(kn, src, t.type, D, x.data(), half.data());
                    if (rotate) rope->rotate(x.data() + turn_at, c, sn_row);
                    store_cache_rows(kn, base, scales, r, 1, D, x.data());
                }
            }
        }
    };
    // A prefill chunk's rows on the worker threads, 16 tokens a task; a
    // decode step's few rows here (a task would cost more than they do).
    constexpr int64_t k_tokens_per_task = 16;
    if (n * H < 256) {
        write_tokens(0, n);
        return;
    }
    core::parallel_for((n + k_tokens_per_task - 1) / k_tokens_per_task, 0, [&](int64_t c) {
        write_tokens(c * k_tokens_per_task, std::min(n, (c + 1) * k_tokens_per_task));
    });
}

void block_storage::copy_rows(int64_t dst, int64_t src, int64_t n) {
    if (dst == src || n <= 0) return;
    for (int64_t l = 0; l < n_layers_; ++l)
        for (int64_t h = 0; h < n_kv_heads_; ++h) {
            const int64_t rd = l * layer_rows_ + (dst * n_kv_heads_ + h) * block_size_;
            const int64_t rs = l * layer_rows_ + (src * n_kv_heads_ + h) * block_size_;
            for (int kv = 0; kv < (v_from_k_ ? 1 : 2); ++kv) {
                char *buf = (kv == 0 ? k_ : v_).data();
                const int64_t D = kv == 0 ? head_dim_ : dv_;
                std::memcpy(buf + rd * D * es_, buf + rs * D * es_, size_t(n * D * es_));
                if (kv_has_scales(type_)) {
                    float *sc = (kv == 0 ? k_scale_ : v_scale_).data();
                    std::memcpy(sc + rd, sc + rs, size_t(n) * 4);
                }
            }
        }
}

void block_storage::move_tokens(int64_t layer, const int32_t *table, int64_t from, int64_t to, int64_t len,
                                const rope_rotation *rope) {
    const int64_t delta = to - from, bs = block_size_;
    if (delta <= 0 || len <= to) return;
    const kernels &kn = best_kernels();
    // One turn for every moved key: by -delta positions, the same for all.
    const size_t pairs = rope ? size_t(rope->pairs()) : 0;
    std::vector<float> cs(pairs), sn(pairs);
    if (rope) rope->shift_angles(-delta, cs.data(), sn.data());
    const int64_t turn_at = rope ? rotary_offset(*rope) : 0;  // the first rotated dimension of a K row
    constexpr int64_t k_chunk_rows = 64;  // K rows turned per conversion call
    // Moves head h's tokens [a, b) (to <= a < b <= len) to a - delta.. in
    // ascending order. A run of tokens that stays within one block at both
    // ends is a run of rows.
    const auto move_tokens_of_head = [&](int64_t h, int64_t a, int64_t b) {
        const auto row_of = [&](int64_t t) { return (int64_t(table[t / bs]) * n_kv_heads_ + h) * bs + t % bs; };
        std::vector<float> x(rope ? size_t(k_chunk_rows * head_dim_) : 0);
        for (int kv = 0; kv < (v_from_k_ ? 1 : 2); ++kv) {
            const int64_t D = kv == 0 ? head_dim_ : dv_;
            char *base = kv == 0 ? k_.data() + layer * layer_elems_ * es_ : v_.data() + layer * v_layer_elems_ * es_;
            float *scales =
                kv_has_scales(type_) ? (kv == 0 ? k_scale_ : v_scale_).data() + layer * layer_rows_ : nullptr;
            for (int64_t t = a; t < b;) {
                const int64_t run = std::min({b - t, bs - t % bs, bs - (t - delta) % bs});
                const int64_t rs = row_of(t), rd = row_of(t - delta);
                const bool turn = kv == 0 && rope;
                if (turn && (turn_at == 0 || scales)) {
                    // Whole rows through float32 (an 8-bit row's scale covers all of it).
                    // Ascending chunks: a chunk's destination rows lie below its source rows.
                    for (int64_t c = 0; c < run; c += k_chunk_rows) {
                        const int64_t n = std::min(k_chunk_rows, run - c);
                        load_cache_rows(kn, base, scales, rs + c, n, D, x.data());
                        for (int64_t i = 0; i < n; ++i) rope->rotate(x.data() + i * D + turn_at, cs.data(), sn.data());
                        store_cache_rows(kn, base, scales, rd + c, n, D, x.data());
                    }
                } else {
                    // memmove: within one block the two runs overlap when delta < run.
                    std::memmove(base + rd * D * es_, base + rs * D * es_, size_t(run * D * es_));
                    if (scales) std::memmove(scales + rd, scales + rs, size_t(run) * 4);
                    // A v_from_k cache's 16- or 32-bit rows: the latent moved as it is, and
                    // the rotary tail is turned where it landed.
                    if (turn)
                        for (int64_t r = rd; r < rd + run; ++r) {
                            char *tail = base + (r * D + turn_at) * es_;
                            if (type_ == kv_dtype::f32) {
                                rope->rotate(reinterpret_cast<float *>(tail), cs.data(), sn.data());
                                continue;
                            }
                            uint16_t *h16 = reinterpret_cast<uint16_t *>(tail);
                            kn.half_to_f32(x.data(), h16, D - turn_at, type_ == kv_dtype::bf16);
                            rope->rotate(x.data(), cs.data(), sn.data());
                            kn.f32_to_half(h16, x.data(), D - turn_at, type_ == kv_dtype::bf16);
                        }
                }
                t += run;
            }
        }
    };
    // Token t moves to t - delta, below every token still to move, so walking
    // t upwards reads each row before anything is written over it: each head
    // on a thread of its own (they share no row)...
    constexpr int64_t k_wave_min = 64, k_wave_chunk = 256;  // tokens
    if (n_kv_heads_ >= core::default_num_threads() || delta < k_wave_min) {
        core::parallel_for(n_kv_heads_, 0, [&](int64_t h) { move_tokens_of_head(h, to, len); });
        return;
    }
    // ... or, with fewer heads than threads (MLA's one) and a wide span, in
    // waves of delta tokens: a wave's destination is the previous wave's
    // source (the first's, the erased tokens), already read, and none of its
    // own sources, so the tokens of one wave move in parallel, in chunks.
    for (int64_t w0 = to; w0 < len; w0 += delta) {
        const int64_t w1 = std::min(len, w0 + delta);
        const int64_t chunks = (w1 - w0 + k_wave_chunk - 1) / k_wave_chunk;
        core::parallel_for(n_kv_heads_ * chunks, 0, [&](int64_t i) {
            const int64_t c0 = w0 + i % chunks * k_wave_chunk;
            move_tokens_of_head(i / chunks, c0, std::min(w1, c0 + k_wave_chunk));
        });
    }
}

void block_storage::copy_block(int64_t dst, int64_t src) { copy_rows(dst, src, block_size_); }

cache_layer_view block_storage::layer(int64_t l) const {
    cache_layer_view c;
    c.type = type_;
    c.n_kv_heads = n_kv_heads_;
    c.head_dim = head_dim_;
    c.block_size = block_size_;
    c.n_blocks = n_blocks_;
    c.k = k_.data() + l * layer_elems_ * es_;
    c.v = v_from_k_ ? c.k : v_.data() + l * v_layer_elems_ * es_;
    c.v_head_dim = dv_;
    c.v_row = v_from_k_ ? head_dim_ : dv_;
    if (kv_has_scales(type_)) {
        c.k_scale = k_scale_.data() + l * layer_rows_;
        c.v_scale = v_from_k_ ? c.k_scale : v_scale_.data() + l * layer_rows_;
    }
    return c;
}

const char *block_storage::row(int kv, int64_t l, int64_t r) const {
    return kv == 0 ? k_.data() + (l * layer_elems_ + r * head_dim_) * es_ : v_.data() + (l * v_layer_elems_ + r * dv_) * es_;
}

const float *block_storage::scale(int kv, int64_t l, int64_t r) const {
    return (kv == 0 ? k_scale_ : v_scale_).data() + l * layer_rows_ + r;
}

// ---------------------------------------------------------------------------
// The contiguous cache.

kv_cache::kv_cache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t capacity, int64_t max_sequences,
                   kv_dtype type, int64_t v_head_dim, bool v_from_k)
    : store_(n_layers, n_kv_heads, head_dim, capacity, checked_slots(max_sequences), type, v_head_dim, v_from_k),
      live_(size_t(max_sequences), false),
      len_(size_t(max_sequences), std::vector<int64_t>(size_t(n_layers), 0)),
      slot_ids_(size_t(max_sequences)) {
    for (size_t s = 0; s < slot_ids_.size(); ++s) slot_ids_[s] = int32_t(s);
}

int32_t kv_cache::seq_new() {
    const auto it = std::find(live_.begin(), live_.end(), false);
    if (it == live_.end())
        fail(LLMKIT_ERROR_OUT_OF_MEMORY, "all ", live_.size(), " sequence slots of this KV cache are in use (free one first)");
    const size_t s = size_t(it - live_.begin());
    live_[s] = true;
    std::fill(len_[s].begin(), len_[s].end(), 0);
    return int32_t(s);
}

int32_t kv_cache::seq_fork(int32_t src) {
    check_seq(live_, src, "src");
    const int32_t dst = seq_new();
    const int64_t n = *std::max_element(len_[size_t(src)].begin(), len_[size_t(src)].end());
    store_.copy_rows(dst, src, n);
    len_[size_t(dst)] = len_[size_t(src)];
    return dst;
}

void kv_cache::seq_free(int32_t seq) {
    check_seq(live_, seq, "seq");
    live_[size_t(seq)] = false;
}

void truncate_lengths(std::vector<int64_t> &layer_lengths, int32_t seq, int64_t n) {
    const int64_t longest = *std::max_element(layer_lengths.begin(), layer_lengths.end());
    if (n < 0 || n > longest)
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "n = ", n, " is outside 0..", longest, " (sequence ", seq, " holds ", longest,
             " tokens)");
    for (int64_t &len : layer_lengths) len = std::min(len, n);
}

void check_erase(const std::vector<int64_t> &layer_lengths, int32_t seq, int64_t from, int64_t to,
                 const rope_params *rope, const block_storage &store) {
    const auto shortest = std::min_element(layer_lengths.begin(), layer_lengths.end());
    if (from < 0 || to < from || to > *shortest)
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "[from, to) = [", from, ", ", to, ") must satisfy 0 <= from <= to <= ", *shortest,
             ": sequence ", seq, " holds ", *shortest, " tokens in layer ", shortest - layer_lengths.begin(),
             " (only tokens every layer holds can be erased)");
    if (rope) cache_rotary_offset(*rope, store.head_dim(), store.v_head_dim(), store.v_from_k(), "rope");
}

void kv_cache::seq_erase(int32_t seq, int64_t from, int64_t to, const rope_params *rope) {
    check_seq(live_, seq, "seq");
    std::vector<int64_t> &lens = len_[size_t(seq)];
    check_erase(lens, seq, from, to, rope, store_);
    std::optional<rope_rotation> rot;
    if (rope) rot.emplace(*rope, store_.head_dim());
    for (int64_t l = 0; l < store_.n_layers(); ++l) {
        store_.move_tokens(l, &slot_ids_[size_t(seq)], from, to, lens[size_t(l)], rot ? &*rot : nullptr);
        lens[size_t(l)] -= to - from;
    }
}

void kv_cache::seq_truncate(int32_t seq, int64_t n) {
    check_seq(live_, seq, "seq");
    truncate_lengths(len_[size_t(seq)], seq, n);
}

int64_t kv_cache::length(int32_t seq, int32_t layer) const {
    check_seq(live_, seq, "seq");
    if (layer < -1 || layer >= store_.n_layers())
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "layer = ", layer, " is outside 0..", store_.n_layers() - 1, " (or -1 for the largest)");
    const auto &l = len_[size_t(seq)];
    return layer < 0 ? *std::max_element(l.begin(), l.end()) : l[size_t(layer)];
}

void kv_cache::append(int32_t layer, int32_t seq, const tensor_view &k_in, const tensor_view *v_in,
                      const rope_params *rope) {
    if (layer < 0 || layer >= store_.n_layers())
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "layer = ", layer, " is outside 0..", store_.n_layers() - 1);
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
    int64_t &len = len_[size_t(seq)][size_t(layer)];
    if (n > capacity() - len)
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "sequence ", seq, " holds ", len, " tokens in layer ", layer, "; appending ", n,
             " more would pass the cache's capacity of ", capacity());
    const angle_table angles = rot ? store_.angles(*rot, len + n) : angle_table{};
    store_.write(layer, seq, len, k, v ? &*v : nullptr, 0, n, rot ? &*rot : nullptr, len, angles);
    len += n;
}

void kv_cache::attention(int32_t layer, const tensor_view &q, const int32_t *seq_ids, int64_t n_seqs,
                         const tensor_view &out, const cache_attention_params &p) const {
    if (layer < 0 || layer >= store_.n_layers())
        fail(LLMKIT_ERROR_OUT_OF_RANGE, "layer = ", layer, " is outside 0..", store_.n_layers() - 1);
    std::vector<cache_seq> seqs(static_cast<size_t>(n_seqs));
    for (int64_t b = 0; b < n_seqs; ++b) {
        const int32_t s = seq_ids[b];
        if (s < 0 || size_t(s) >= live_.size() || !live_[size_t(s)])
            fail(LLMKIT_ERROR_OUT_OF_RANGE, "seq_ids[", b, "] = ", s, " is not a live sequence of this cache");
        seqs[size_t(b)] = {&slot_ids_[size_t(s)], 1, len_[size_t(s)][size_t(layer)]};
    }
    cache_attention(store_.layer(layer), seqs.data(), n_seqs, q, out, p);
}

uint64_t kv_cache::memory_bytes() const { return store_.block_bytes() * uint64_t(store_.n_blocks()); }

uint64_t kv_cache::seq_save_bytes(int32_t seq) const {
    check_seq(live_, seq, "seq");
    return seq_state_bytes(store_, {len_[size_t(seq)], 0});
}

void kv_cache::seq_save(int32_t seq, char *out) const {
    check_seq(live_, seq, "seq");
    seq_state_save(store_, &slot_ids_[size_t(seq)], {len_[size_t(seq)], 0}, out);
}

void kv_cache::seq_load(int32_t seq, const void *data, size_t size) {
    check_seq(live_, seq, "seq");
    seq_state state = seq_state_check(store_, data, size, capacity(), capacity(), 0);
    seq_state_load(store_, &slot_ids_[size_t(seq)], data, state);
    len_[size_t(seq)] = std::move(state.lengths);
}

}  // namespace llmkit::attention
