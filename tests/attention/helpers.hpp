// Shared helpers of the attention tests: strided 4-D tensors of any float
// dtype whose logical values (after rounding to the dtype) are kept as doubles.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "llmkit/llmkit.h"

namespace attn_test {

enum class layout { compact, padded, bhsd };

// Draws from N(0, sigma) for the tests' random inputs: Box-Muller over 53-bit
// uniforms made from two of the engine's 32-bit words. std::normal_distribution
// takes its uniforms from std::generate_canonical, which in libstdc++ computes
// two long double logarithms per draw; GCC folds them, clang does not, and in
// CI's sanitizer build (clang, -O1) they were a fifth of the attention tests' time.
class normal_draws {
public:
    explicit normal_draws(double sigma = 1.0) : sigma_(sigma) {}
    double operator()(std::mt19937 &rng) {
        if (have_spare_) {
            have_spare_ = false;
            return spare_;
        }
        const double u1 = open_uniform(rng), u2 = open_uniform(rng);
        const double r = sigma_ * std::sqrt(-2.0 * std::log(u1)), a = 6.283185307179586 * u2;
        spare_ = r * std::sin(a);
        have_spare_ = true;
        return r * std::cos(a);
    }

private:
    // Uniform in (0, 1): 53 random bits plus half an ulp, never 0 (log(0)).
    static double open_uniform(std::mt19937 &rng) {
        const uint64_t hi = rng() >> 5, lo = rng() >> 6;  // 27 + 26 bits
        return (double((hi << 26) | lo) + 0.5) * 0x1p-53;
    }
    double sigma_, spare_ = 0.0;
    bool have_spare_ = false;
};

// RoPE options the cache tests run through: both layouts, partial rotary
// dims and the scalings (Llama 3.1's, YaRN's with its attention factor, LongRoPE's).
struct rope_case {
    const char *name;
    llmkit_rope_options o;
};

inline std::vector<rope_case> rope_cases(int64_t D) {
    std::vector<rope_case> cases;
    llmkit_rope_options o = LLMKIT_ROPE_OPTIONS_INIT;
    cases.push_back({"neox", o});
    o.layout = LLMKIT_ROPE_INTERLEAVED;
    o.theta = 500000.0;
    o.scaling = LLMKIT_ROPE_SCALING_LLAMA3;
    o.factor = 8.0, o.low_freq_factor = 1.0, o.high_freq_factor = 4.0, o.original_max_position = 64.0;
    cases.push_back({"interleaved, llama3", o});
    o = LLMKIT_ROPE_OPTIONS_INIT;
    o.rotary_dims = int32_t(D / 2);
    o.scaling = LLMKIT_ROPE_SCALING_YARN;
    o.factor = 4.0, o.original_max_position = 32.0;
    cases.push_back({"partial, yarn", o});
    // LongRoPE: per-pair factors and a default attention factor. The cases
    // point to the factors, so they are kept for the whole run, one list per
    // D (a map's elements never move).
    static std::map<int64_t, std::vector<float>> factors_by_dim;
    std::vector<float> &factors = factors_by_dim[D];
    if (factors.empty())
        for (int64_t i = 0; i < D / 2; ++i) factors.push_back(1.0f + 1.5f * float(i));
    o = LLMKIT_ROPE_OPTIONS_INIT;
    o.scaling = LLMKIT_ROPE_SCALING_LONGROPE;
    o.factor = 32.0, o.original_max_position = 4096.0;
    o.frequency_factors = factors.data();
    cases.push_back({"longrope", o});
    return cases;
}

// A compact host tensor descriptor over `data` (masks, positions).
inline llmkit_tensor host_tensor(void *data, llmkit_dtype dtype, int ndim, const int64_t *shape) {
    llmkit_tensor t{};
    t.data = data;
    t.device = llmkit_device LLMKIT_DEVICE_HOST;
    t.ndim = ndim;
    t.dtype = dtype;
    t.shape = shape;
    return t;
}

inline llmkit_dtype to_llmkit(llmkit::core::dtype t) {
    using llmkit::core::dtype;
    if (t == dtype::bf16) return llmkit_dtype LLMKIT_DTYPE_BF16;
    if (t == dtype::f16) return llmkit_dtype LLMKIT_DTYPE_F16;
    return llmkit_dtype LLMKIT_DTYPE_F32;
}

inline double round_to(llmkit::core::dtype t, double x) {
    using namespace llmkit::core;
    if (t == dtype::bf16) return bf16_to_f32(f32_to_bf16(float(x)));
    if (t == dtype::f16) return f16_to_f32(f32_to_f16(float(x)));
    return double(float(x));
}

struct tensor4 {
    llmkit::core::dtype type = llmkit::core::dtype::f32;
    int64_t shape[4] = {};
    int64_t strides[4] = {};
    std::vector<unsigned char> bytes;
    std::vector<double> vals;  // logical [B][S][H][D], compact
    llmkit_tensor t{};

    // The descriptor (rebuilt on each call: a copied tensor4 must not point at the original).
    llmkit_tensor *c() {
        t.data = bytes.data();
        t.device = llmkit_device LLMKIT_DEVICE_HOST;
        t.ndim = 4;
        t.dtype = to_llmkit(type);
        t.shape = shape;
        t.strides = strides;
        t.byte_offset = 0;
        return &t;
    }
    size_t es() const { return type == llmkit::core::dtype::f32 ? 4 : 2; }
    int64_t idx(int64_t b, int64_t s, int64_t h, int64_t d) const {
        return ((b * shape[1] + s) * shape[2] + h) * shape[3] + d;
    }
    int64_t off(int64_t b, int64_t s, int64_t h, int64_t d) const {
        return b * strides[0] + s * strides[1] + h * strides[2] + d * strides[3];
    }
    void set(int64_t b, int64_t s, int64_t h, int64_t d, double x) {
        using namespace llmkit::core;
        x = round_to(type, x);
        vals[size_t(idx(b, s, h, d))] = x;
        unsigned char *p = bytes.data() + off(b, s, h, d) * int64_t(es());
        if (type == dtype::f32) {
            const float f = float(x);
            std::memcpy(p, &f, 4);
        } else {
            const uint16_t u = type == dtype::bf16 ? f32_to_bf16(float(x)) : f32_to_f16(float(x));
            std::memcpy(p, &u, 2);
        }
    }
    double get(int64_t b, int64_t s, int64_t h, int64_t d) const {
        using namespace llmkit::core;
        const unsigned char *p = bytes.data() + off(b, s, h, d) * int64_t(es());
        if (type == dtype::f32) {
            float f;
            std::memcpy(&f, p, 4);
            return f;
        }
        uint16_t u;
        std::memcpy(&u, p, 2);
        return type == dtype::bf16 ? bf16_to_f32(u) : f16_to_f32(u);
    }
};

// A tensor [B, S, H, D] in the given memory layout, filled with N(0, sigma) values
// (or zeros when rng is null).
inline tensor4 make(llmkit::core::dtype type, int64_t B, int64_t S, int64_t H, int64_t D, layout lay, std::mt19937 *rng,
                    double sigma = 1.0) {
    tensor4 x;
    x.type = type;
    const int64_t sh[4] = {B, S, H, D};
    std::memcpy(x.shape, sh, sizeof sh);
    int64_t total = 0;
    if (lay == layout::compact) {
        x.strides[3] = 1, x.strides[2] = D, x.strides[1] = H * D, x.strides[0] = S * H * D;
        total = B * S * H * D;
    } else if (lay == layout::padded) {  // gaps between heads and rows
        x.strides[3] = 1, x.strides[2] = D + 8, x.strides[1] = H * (D + 8) + 3, x.strides[0] = S * (H * (D + 8) + 3) + 5;
        total = B * x.strides[0];
    } else {  // memory [B, H, S, D], as torch's usual attention layout
        x.strides[3] = 1, x.strides[1] = D, x.strides[2] = S * D, x.strides[0] = H * S * D;
        total = B * H * S * D;
    }
    x.bytes.assign(size_t(std::max<int64_t>(total, 1)) * x.es(), 0xAB);  // garbage in the gaps
    x.vals.assign(size_t(B * S * H * D), 0.0);
    normal_draws nd(sigma);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t s = 0; s < S; ++s)
            for (int64_t h = 0; h < H; ++h)
                for (int64_t d = 0; d < D; ++d) x.set(b, s, h, d, rng ? nd(*rng) : 0.0);
    return x;
}

// An lse output [B, Sq, Hq] of float32, compact or (bhsd) laid out [B, Hq, Sq]
// as flash-attn's softmax_lse, prefilled with NaN so an unwritten row shows.
struct lse_tensor {
    int64_t shape[3] = {}, strides[3] = {};
    std::vector<float> data;
    llmkit_tensor t{};
    lse_tensor(int64_t B, int64_t S, int64_t H, bool heads_first) {
        shape[0] = B, shape[1] = S, shape[2] = H;
        if (heads_first)
            strides[0] = H * S, strides[1] = 1, strides[2] = S;
        else
            strides[0] = S * H, strides[1] = H, strides[2] = 1;
        data.assign(size_t(std::max<int64_t>(B * S * H, 1)), NAN);
    }
    llmkit_tensor *c() {
        t = host_tensor(data.data(), llmkit_dtype LLMKIT_DTYPE_F32, 3, shape);
        t.strides = strides;
        return &t;
    }
    float at(int64_t b, int64_t s, int64_t h) const { return data[size_t(b * strides[0] + s * strides[1] + h * strides[2])]; }
};

// lse against the reference's [B][S][H]: |got - ref| <= abs + 2e-6 |ref| (a
// float32 max plus the log of a float32 sum: abs 2e-5 for float32 scores);
// -inf exactly where the reference has it.
inline bool lse_within(const lse_tensor &got, const std::vector<double> &ref, double abs, double *max_err) {
    bool ok = true;
    for (int64_t b = 0; b < got.shape[0]; ++b)
        for (int64_t s = 0; s < got.shape[1]; ++s)
            for (int64_t h = 0; h < got.shape[2]; ++h) {
                const double want = ref[size_t((b * got.shape[1] + s) * got.shape[2] + h)], have = got.at(b, s, h);
                if (std::isinf(want) || std::isinf(have)) {
                    ok = ok && have == want;
                    continue;
                }
                const double err = std::fabs(have - want);
                if (!(err <= abs + 2e-6 * std::fabs(want))) ok = false;
                if (!(err <= *max_err)) *max_err = std::isnan(err) ? INFINITY : err;
            }
    return ok;
}

// Packed sequences (llmkit_attention_varlen, the caches' options.cu_seqlens_q).

// A packed [T, H, D] tensor: a tensor4 of shape [1, T, H, D] seen without its batch axis.
struct packed {
    tensor4 x;
    llmkit_tensor t{};
    llmkit_tensor *c() {
        t = *x.c();
        t.ndim = 3;
        t.shape = x.shape + 1;
        t.strides = x.strides + 1;
        return &t;
    }
};

inline packed make_packed(llmkit::core::dtype type, int64_t T, int64_t H, int64_t D, layout lay, std::mt19937 *rng) {
    return packed{make(type, 1, T, H, D, lay, rng)};
}

// Rows [from, from + n) of p as a compact [1, n, H, D] tensor4.
inline tensor4 rows_of_packed(const packed &p, int64_t from, int64_t n) {
    tensor4 r = make(p.x.type, 1, n, p.x.shape[2], p.x.shape[3], layout::compact, nullptr);
    for (int64_t s = 0; s < n; ++s)
        for (int64_t h = 0; h < p.x.shape[2]; ++h)
            for (int64_t d = 0; d < p.x.shape[3]; ++d) r.set(0, s, h, d, p.x.get(0, from + s, h, d));
    return r;
}

// B + 1 int64 offsets (cu_seqlens).
struct offsets {
    std::vector<int64_t> v;
    int64_t shape[1] = {};
    llmkit_tensor t{};
    explicit offsets(std::vector<int64_t> values) : v(std::move(values)) {}
    llmkit_tensor *c() {
        shape[0] = int64_t(v.size());
        t = host_tensor(v.data(), llmkit_dtype LLMKIT_DTYPE_I64, 1, shape);
        return &t;
    }
};

// The offsets of sequences of lens rows each.
inline offsets cumulative(const std::vector<int64_t> &lens) {
    std::vector<int64_t> o{0};
    for (int64_t n : lens) o.push_back(o.back() + n);
    return offsets(o);
}

}  // namespace attn_test
