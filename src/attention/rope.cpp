// Rotary position embeddings (RoPE) in place, the frequency scalings of
// Hugging Face transformers' modeling_rope_utils, and KV-cache arithmetic.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "attention/attention.hpp"
#include "attention/kernels.hpp"
#include "core/backend.hpp"
#include "core/finite.hpp"
#include "core/threads.hpp"

namespace llmkit::attention {

using core::dtype;
using core::fail;
using core::tensor_view;

namespace {

void require_positive(double x, const char *what) {
    if (!(x > 0.0) || !std::isfinite(x)) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.", what, " must be finite and > 0, got ", x);
}

// YaRN helpers, as transformers' _compute_yarn_parameters.
double yarn_correction_dim(double rotations, int dim, double base, double max_pos) {
    return (dim * std::log(max_pos / (rotations * 2.0 * M_PI))) / (2.0 * std::log(base));
}

}  // namespace

std::vector<double> rope_inv_freq(const rope_params &p, int n, double *cos_sin_factor) {
    require_positive(p.theta, "theta");
    const int half = n / 2;
    std::vector<double> inv(static_cast<size_t>(half));
    double base = p.theta;
    *cos_sin_factor = 1.0;
    if (p.scaling == rope_scaling::ntk) {
        require_positive(p.alpha, "alpha");
        if (n <= 2) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "NTK-aware scaling needs more than 2 rotary dims, got ", n);
        base = p.theta * std::pow(p.alpha, double(n) / double(n - 2));
    }
    for (int k = 0; k < half; ++k) inv[size_t(k)] = 1.0 / std::pow(base, double(2 * k) / double(n));
    switch (p.scaling) {
    case rope_scaling::none:
    case rope_scaling::ntk: break;
    case rope_scaling::linear:
        require_positive(p.factor, "factor");
        for (double &f : inv) f /= p.factor;
        break;
    case rope_scaling::llama3: {
        require_positive(p.factor, "factor");
        require_positive(p.low_freq_factor, "low_freq_factor");
        require_positive(p.high_freq_factor, "high_freq_factor");
        require_positive(p.original_max_position, "original_max_position");
        if (!(p.high_freq_factor > p.low_freq_factor))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.high_freq_factor (", p.high_freq_factor,
                 ") must be greater than low_freq_factor (", p.low_freq_factor, ")");
        const double low_wavelen = p.original_max_position / p.low_freq_factor;
        const double high_wavelen = p.original_max_position / p.high_freq_factor;
        for (double &f : inv) {
            const double wavelen = 2.0 * M_PI / f;
            if (wavelen > low_wavelen) {
                f /= p.factor;
            } else if (wavelen >= high_wavelen) {
                const double smooth = (p.original_max_position / wavelen - p.low_freq_factor) /
                                      (p.high_freq_factor - p.low_freq_factor);
                f = (1.0 - smooth) * f / p.factor + smooth * f;
            }
        }
        break;
    }
    case rope_scaling::yarn: {
        require_positive(p.factor, "factor");
        require_positive(p.original_max_position, "original_max_position");
        require_positive(p.beta_fast, "beta_fast");
        require_positive(p.beta_slow, "beta_slow");
        // YaRN's correction range divides by log(theta).
        if (!(base > 1.0)) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "YaRN scaling needs theta > 1, got ", p.theta);
        if (p.attention_factor < 0.0 || !std::isfinite(p.attention_factor))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.attention_factor must be finite and >= 0, got ", p.attention_factor);
        double low = std::floor(yarn_correction_dim(p.beta_fast, n, base, p.original_max_position));
        double high = std::ceil(yarn_correction_dim(p.beta_slow, n, base, p.original_max_position));
        low = std::max(low, 0.0);
        high = std::min(high, double(n - 1));
        if (low == high) high += 0.001;
        for (int k = 0; k < half; ++k) {
            const double ramp = std::clamp((double(k) - low) / (high - low), 0.0, 1.0);
            const double extrapolation = 1.0 - ramp;  // weight of the unscaled frequency
            const double f = inv[size_t(k)];
            inv[size_t(k)] = (f / p.factor) * (1.0 - extrapolation) + f * extrapolation;
        }
        *cos_sin_factor = p.attention_factor > 0.0 ? p.attention_factor
                          : p.factor <= 1.0        ? 1.0
                                                   : 0.1 * std::log(p.factor) + 1.0;
        break;
    }
    case rope_scaling::longrope: {
        // The frequencies' own factors (frequency_factors, below) are the
        // scaling; `factor` only sets the default attention factor, as
        // transformers' _compute_longrope_parameters.
        if (!p.frequency_factors)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "LongRoPE scaling needs options.frequency_factors (the model's "
                 "short_factor or long_factor, ", half, " values)");
        require_positive(p.factor, "factor");
        if (p.attention_factor < 0.0 || !std::isfinite(p.attention_factor))
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.attention_factor must be finite and >= 0, got ", p.attention_factor);
        if (p.attention_factor > 0.0) {
            *cos_sin_factor = p.attention_factor;
        } else if (p.factor > 1.0) {
            if (!(p.original_max_position > 1.0) || !std::isfinite(p.original_max_position))
                fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.original_max_position must be finite and > 1 for "
                     "LongRoPE's default attention factor, got ", p.original_max_position);
            *cos_sin_factor = std::sqrt(1.0 + std::log(p.factor) / std::log(p.original_max_position));
        }
        break;
    }
    default: fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.scaling = ", int(p.scaling), " is not a llmkit_rope_scaling");
    }
    // Per-pair divisors after the scaling (LongRoPE's factors, a GGUF model's
    // rope_freqs): llama.cpp divides the unscaled frequency before YaRN's
    // interpolation, which is the same since YaRN mixes both linearly. +inf
    // stops a pair (frequency 0: cos 1, sin 0, the pair kept exactly), as
    // Gemma 4's proportional RoPE leaves its last pairs.
    if (p.frequency_factors)
        for (int k = 0; k < half; ++k) {
            const double f = p.frequency_factors[k];
            if (!(f > 0.0))
                fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.frequency_factors[", k, "] must be > 0 (or +inf), got ", f);
            inv[size_t(k)] /= f;
        }
    return inv;
}

rope_rotation::rope_rotation(const rope_params &p, int64_t D) {
    if (p.layout != rope_layout::neox && p.layout != rope_layout::interleaved)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.layout = ", int(p.layout), " is not a llmkit_rope_layout");
    const int64_t n = p.rotary_dims == 0 ? D : p.rotary_dims;
    if (p.rotary_dims < 0 || n > D || n % 2 != 0)
        fail(LLMKIT_ERROR_SHAPE, "options.rotary_dims = ", p.rotary_dims, " must be even and in 0..D (D = ", D,
             "; 0 means D)");
    if (n > std::numeric_limits<int>::max())
        fail(LLMKIT_ERROR_SHAPE, "rotary dims = ", n, " exceeds the supported maximum of ",
             std::numeric_limits<int>::max());
    n_ = int(n);
    interleaved_ = p.layout == rope_layout::interleaved;
    inv_ = rope_inv_freq(p, n_, &factor_);  // validates the scaling's parameters, even for empty tensors
    if (!uses_mrope(p)) return;
    // M-RoPE: which position component (temporal 0, height 1, width 2) each pair takes.
    const int *sec = p.mrope_section;
    if (sec[0] < 0 || sec[1] < 0 || sec[2] < 0)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.mrope_section = [", sec[0], ", ", sec[1], ", ", sec[2],
             "] must not be negative");
    if (p.mrope_interleaved != 0 && p.mrope_interleaved != 1)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "options.mrope_interleaved must be 0 or 1, got ", p.mrope_interleaved);
    if (int64_t(sec[0]) + sec[1] + sec[2] != pairs())
        fail(LLMKIT_ERROR_SHAPE, "options.mrope_section = [", sec[0], ", ", sec[1], ", ", sec[2], "] sums to ",
             int64_t(sec[0]) + sec[1] + sec[2], " pairs; the ", n_, " rotary dims hold ", pairs());
    component_.assign(size_t(pairs()), 0);
    for (int k = 0; k < pairs(); ++k) {
        if (p.mrope_interleaved) {  // Qwen3-VL: T, H, W in turn over the first pairs
            if (k % 3 == 1 && k < 3 * int64_t(sec[1])) component_[size_t(k)] = 1;
            if (k % 3 == 2 && k < 3 * int64_t(sec[2])) component_[size_t(k)] = 2;
        } else {  // Qwen2-VL: a run of pairs per component
            component_[size_t(k)] = uint8_t(k < sec[0] ? 0 : k < sec[0] + sec[1] ? 1 : 2);
        }
    }
}

inline void rope_rotation::angle(int k, int64_t position, float *cs, float *sn) const {
    const double a = double(position) * inv_[size_t(k)];
    double c, s;
#if defined(__GLIBC__)
    sincos(a, &s, &c);  // both at once: the angles are most of a long rotation's time
#else
    c = std::cos(a);
    s = std::sin(a);
#endif
    cs[k] = float(c * factor_);
    sn[k] = float(s * factor_);
}

void rope_rotation::angles(int64_t position, float *cs, float *sn) const {
    for (int k = 0; k < pairs(); ++k) angle(k, position, cs, sn);
}

void rope_rotation::angles(const int64_t position[3], float *cs, float *sn) const {
    for (int k = 0; k < pairs(); ++k) angle(k, position[component_[size_t(k)]], cs, sn);
}

void rope_rotation::shift_angles(int64_t delta, float *cs, float *sn) const {
    for (int k = 0; k < pairs(); ++k) {
        const double a = double(delta) * inv_[size_t(k)];
        cs[k] = float(std::cos(a));
        sn[k] = float(std::sin(a));
    }
}

bool uses_mrope(const rope_params &p) {
    return p.mrope_section[0] != 0 || p.mrope_section[1] != 0 || p.mrope_section[2] != 0;
}

void refuse_mrope_in_cache(const rope_params &p, const char *what) {
    if (uses_mrope(p))
        fail(LLMKIT_ERROR_UNSUPPORTED, what, ": M-RoPE (mrope_section) has three positions per token, and the "
             "caches rotate token j at position j; rotate K and q with llmkit_rope, then append and attend");
}

void rope_rotation::rotate(float *row, const float *cs, const float *sn) const {
    const int half = pairs();
    // One loop per layout, so the compiler vectorizes each (the same
    // arithmetic on every pair either way).
    if (interleaved_) {
        for (int k = 0; k < half; ++k) {
            const float x0 = row[2 * k], x1 = row[2 * k + 1];
            row[2 * k] = x0 * cs[k] - x1 * sn[k];
            row[2 * k + 1] = x0 * sn[k] + x1 * cs[k];
        }
    } else {
        float *lo = row, *hi = row + half;
        for (int k = 0; k < half; ++k) {
            const float x0 = lo[k], x1 = hi[k];
            lo[k] = x0 * cs[k] - x1 * sn[k];
            hi[k] = x0 * sn[k] + x1 * cs[k];
        }
    }
}

void load_row(const kernels &kn, const char *p, dtype t, int64_t n, float *f, uint16_t *h) {
    if (t == dtype::f32) {
        std::memcpy(f, p, size_t(n) * 4);
        return;
    }
    std::memcpy(h, p, size_t(n) * 2);
    kn.half_to_f32(f, h, n, t == dtype::bf16);
}

void store_row(const kernels &kn, char *p, dtype t, int64_t n, const float *f, uint16_t *h) {
    if (t == dtype::f32) {
        std::memcpy(p, f, size_t(n) * 4);
        return;
    }
    kn.f32_to_half(h, f, n, t == dtype::bf16);
    std::memcpy(p, h, size_t(n) * 2);
}

namespace {

// Rotates x into out (out may be x itself: each row is read whole before it
// is written). In place, only the rotated dims are read and written.
void rope_cpu(const tensor_view &x, const tensor_view &pos, const tensor_view &out, const rope_rotation &rot,
              int n_threads) {
    // A NaN or infinity is refused before any row is written.
    core::require_finite(x, n_threads);
    const int64_t B = x.shape[0], S = x.shape[1], H = x.shape[2], D = x.shape[3];
    const bool in_place = out.data == x.data && out.type == x.type &&
                          std::equal(out.strides, out.strides + 4, x.strides);
    const int64_t width = in_place ? rot.rotary_dims() : D;  // elements read and written per row
    const int half = rot.pairs();
    const int64_t xs = int64_t(x.elem_size), os = int64_t(out.elem_size);
    const int64_t rows = B * S, chunk = 16;
    const kernels &kn = best_kernels();
    core::parallel_for((rows + chunk - 1) / chunk, n_threads, [&](int64_t c) {
        std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half)), buf(static_cast<size_t>(width));
        std::vector<uint16_t> half_row(static_cast<size_t>(width));
        for (int64_t row = c * chunk; row < std::min(rows, (c + 1) * chunk); ++row) {
            const int64_t b = row / S, s = row % S;
            if (rot.mrope()) {  // [3, B, S] or [3, S]
                int64_t p3[3];
                for (int64_t comp = 0; comp < 3; ++comp)
                    p3[comp] = pos.integer_at(pos.ndim == 3 ? comp * pos.strides[0] + b * pos.strides[1] +
                                                                  s * pos.strides[2]
                                                            : comp * pos.strides[0] + s * pos.strides[1]);
                rot.angles(p3, cs.data(), sn.data());
            } else {  // [B, S] or [S]
                rot.angles(pos.integer_at(pos.ndim == 2 ? b * pos.strides[0] + s * pos.strides[1] : s * pos.strides[0]),
                           cs.data(), sn.data());
            }
            for (int64_t h = 0; h < H; ++h) {
                const char *px = x.data + (b * x.strides[0] + s * x.strides[1] + h * x.strides[2]) * xs;
                char *po = out.data + (b * out.strides[0] + s * out.strides[1] + h * out.strides[2]) * os;
                load_row(kn, px, x.type, width, buf.data(), half_row.data());
                rot.rotate(buf.data(), cs.data(), sn.data());
                store_row(kn, po, out.type, width, buf.data(), half_row.data());
            }
        }
    });
}

void check_rope_tensor(const tensor_view &t) {
    if (t.ndim != 4)
        fail(LLMKIT_ERROR_SHAPE, t.name, ": expected 4 dimensions [batch, seq, heads, head_dim], got ", t.ndim, " (shape ",
             t.shape_string(), ")");
    if (t.type != dtype::f32 && t.type != dtype::bf16 && t.type != dtype::f16)
        fail(LLMKIT_ERROR_DTYPE, t.name, ": dtype ", core::dtype_name(t.type), " is not float32, bfloat16 or float16");
    if (t.shape[3] > 1 && t.strides[3] != 1)
        fail(LLMKIT_ERROR_UNSUPPORTED, t.name, ": the head_dim axis (3) must have stride 1, got stride ", t.strides[3]);
}

}  // namespace

void rope(const tensor_view &x, const tensor_view &positions, const tensor_view &out, const rope_params &p) {
    check_rope_tensor(x);
    const bool in_place = &out == &x;
    if (!in_place) {
        check_rope_tensor(out);
        if (!std::equal(out.shape, out.shape + 4, x.shape))
            fail(LLMKIT_ERROR_SHAPE, out.name, ": shape ", out.shape_string(), " differs from ", x.name, "'s ",
                 x.shape_string());
    }
    if (positions.type != dtype::i32 && positions.type != dtype::i64)
        fail(LLMKIT_ERROR_DTYPE, positions.name, ": dtype ", core::dtype_name(positions.type), " is not int32 or int64");
    const int64_t B = x.shape[0], S = x.shape[1], D = x.shape[3];
    const int64_t *ps = positions.shape;
    if (!uses_mrope(p)) {
        if (!((positions.ndim == 2 && ps[0] == B && ps[1] == S) || (positions.ndim == 1 && ps[0] == S)))
            fail(LLMKIT_ERROR_SHAPE, positions.name, ": shape ", positions.shape_string(), " must be [B, S] = [", B,
                 ", ", S, "] or [S] = [", S, "]");
    } else if (!((positions.ndim == 3 && ps[0] == 3 && ps[1] == B && ps[2] == S) ||
                 (positions.ndim == 2 && ps[0] == 3 && ps[1] == S))) {
        fail(LLMKIT_ERROR_SHAPE, positions.name, ": shape ", positions.shape_string(),
             " must be M-RoPE's [3, B, S] = [3, ", B, ", ", S, "] or [3, S] = [3, ", S, "]");
    }
    out.require_own_elements();  // written
    const rope_rotation rot(p, D);
    if (x.numel() == 0 || (in_place && rot.rotary_dims() == 0)) return;
    const core::dispatch d = in_place ? core::select_backend({&x, &positions})
                                      : core::select_backend({&x, &positions, &out});
    if (d.kind == core::backend_kind::cpu) {
        rope_cpu(x, positions, out, rot, p.n_threads);
        return;
    }
    core::host_stage sp(d, positions, true, p.stream);
    if (in_place) {
        core::host_stage sx(d, x, true, p.stream);
        rope_cpu(sx.view(), sp.view(), sx.view(), rot, p.n_threads);
        sx.write_back(p.stream);
        return;
    }
    core::host_stage sx(d, x, true, p.stream), so(d, out, false, p.stream);
    rope_cpu(sx.view(), sp.view(), so.view(), rot, p.n_threads);
    so.write_back(p.stream);
}

uint64_t kv_cache_bytes(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t v_head_dim,
                        int64_t dtype_bytes, int64_t context, int64_t batch) {
    const int64_t args[] = {n_layers, n_kv_heads, head_dim, v_head_dim, dtype_bytes, context, batch};
    const char *names[] = {"n_layers", "n_kv_heads", "head_dim", "v_head_dim", "dtype_bytes", "context", "batch"};
    for (int i = 0; i < 7; ++i)
        if (args[i] < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, names[i], " must be >= 0, got ", args[i]);
    // Elements per token and kv head: K's and V's (each below 2^63, so the sum fits).
    const uint64_t factors[] = {uint64_t(n_layers), uint64_t(n_kv_heads), uint64_t(head_dim) + uint64_t(v_head_dim),
                                uint64_t(dtype_bytes), uint64_t(context), uint64_t(batch)};
    uint64_t total = 1;
    for (const uint64_t a : factors) {
        if (a != 0 && total > std::numeric_limits<uint64_t>::max() / a)
            fail(LLMKIT_ERROR_OUT_OF_RANGE, "KV-cache size ", n_layers, " * ", n_kv_heads, " * (", head_dim, " + ",
                 v_head_dim, ") * ", dtype_bytes, " * ", context, " * ", batch, " bytes does not fit in 64 bits");
        total *= a;
    }
    return total;
}

}  // namespace llmkit::attention
