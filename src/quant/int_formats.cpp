// Integer formats: int8 with a scale per row or per group (symmetric, or with
// an int8 zero point), and the int4 group-wise packings of GPTQ and AWQ
// checkpoints. The layouts are drawn in llmkit.h (QUANTIZATION section) and
// in docs/concepts/quantization.md.
#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "core/threads.hpp"
#include "quant/format_kernels.hpp"

namespace llmkit::quant {
using kernels::load;
using kernels::store;

namespace {

// round-half-to-even, then clamp, in float so that huge quotients never reach
// an int conversion.
inline int round_clamp(float v, float lo, float hi) {
    v = std::nearbyint(v);
    v = v < lo ? lo : (v > hi ? hi : v);
    return int(v);
}

inline float to_f16_checked(float s, const char *who) {
    const float r = core::f16_to_f32(core::f32_to_f16(s));
    if (std::isinf(r))
        core::fail(LLMKIT_ERROR_OUT_OF_RANGE, who, ": a group scale of ", s,
                   " overflows the f16 scales of the int4 packings (weights above ~4.9e5 in magnitude)");
    return r;
}

// AWQ's packer puts columns {0, 2, 4, 6, 1, 3, 5, 7} of each 8 into nibbles
// 0..7 of a word; so column c (0..7) lives in nibble k_awq_slot[c].
constexpr int k_awq_slot[8] = {0, 4, 1, 5, 2, 6, 3, 7};

}  // namespace

// --- int4 group fitting --------------------------------------------------------

void fit_int4(const float *x, int64_t len, int64_t stride, family fam, bool symmetric, float &scale, uint8_t &zero) {
    float lo = x[0], hi = x[0];
    for (int64_t k = 1; k < len; ++k) {
        lo = std::min(lo, x[k * stride]);
        hi = std::max(hi, x[k * stride]);
    }
    if (fam == family::gptq) {
        // GPTQ's Quantizer.find_params: the range always includes 0.
        lo = std::min(lo, 0.0f);
        hi = std::max(hi, 0.0f);
        if (symmetric) {
            const float m = std::max(-lo, hi);
            lo = -m;
            hi = m;
        }
        if (lo == 0.0f && hi == 0.0f) lo = -1.0f, hi = 1.0f;
        // (hi - lo) in double: never overflows for finite input.
        scale = to_f16_checked(float((double(hi) - double(lo)) / 15.0), "gptq_int4");
        if (symmetric) {
            zero = 8;
            return;
        }
        int z = scale > 0.0f ? round_clamp(-lo / scale, 0.0f, 15.0f) : 8;
        if (z < 1) {
            // AutoGPTQ checkpoints store zero - 1 in a nibble, so a zero point
            // of 0 cannot be written: use zero 1 and stretch the top instead.
            z = 1;
            scale = to_f16_checked(hi / 14.0f, "gptq_int4");
        }
        zero = uint8_t(z);
        return;
    }
    // AWQ's pseudo_quantize_tensor.
    if (symmetric) {
        const float m = std::max(std::max(-lo, hi), 1e-5f);
        scale = to_f16_checked(m / 7.0f, "awq_int4");
        zero = 8;
        return;
    }
    const float range = std::max(float(double(hi) - double(lo)), 1e-5f);
    scale = to_f16_checked(range / 15.0f, "awq_int4");
    zero = uint8_t(scale > 0.0f ? round_clamp(-std::nearbyint(lo / scale), 0.0f, 15.0f) : 0);
}

uint8_t quantize_int4(float x, float scale, uint8_t zero) noexcept {
    if (!(scale > 0.0f)) return zero;
    return uint8_t(round_clamp(std::nearbyint(x / scale) + float(zero), 0.0f, 15.0f));
}

void int4_rounding_error(const float *w, const float *c, int64_t len, float scale, uint8_t zero, double *d) noexcept {
    if (!(scale > 0.0f)) {  // every level is the zero point: the value 0
        for (int64_t k = 0; k < len; ++k) d[k] = double(w[k]);
        return;
    }
    // quantize_int4's float operations without its nearbyint (a library call
    // on baseline x86-64, which keeps the loop scalar): round-half-even as
    // adding and removing 1.5 * 2^23, exact for |v| < 2^22; beyond that both
    // give values that the clamp to [0, 15] maps alike.
    const float magic = 12582912.0f, zf = float(zero);
    for (int64_t k = 0; k < len; ++k) {
        float q = ((c[k] / scale + magic) - magic) + zf;
        q = q < 0.0f ? 0.0f : (q > 15.0f ? 15.0f : q);
        d[k] = double(w[k]) - double(scale * (q - zf));
    }
}

// --- int4 packing ------------------------------------------------------------

void pack_int4(const format_traits &f, const int4_groups &g, void *dst) {
    const auto p = planes(f, g.rows, g.n);
    auto *base = static_cast<uint8_t *>(dst);
    std::memset(base, 0, p.back().offset + p.back().bytes);
    uint8_t *qw = base + p[0].offset, *qz = base + p[1].offset, *sc = base + p[2].offset;
    const int64_t R = g.rows, N = g.n, G = g.n_groups;
    const bool gptq = f.fam == family::gptq;
    // One task per 8 rows (output channels): the words they fill are theirs alone.
    core::parallel_for(R / 8, 0, [&](int64_t oct) {
        for (int64_t r = oct * 8; r < oct * 8 + 8; ++r) {
            const uint8_t *q = &g.q[size_t(r * N)];
            for (int64_t i = 0; i < N; ++i) {
                if (gptq) {
                    // qweight[i / 8, r], nibble i % 8 (input dim packed).
                    uint8_t *w = qw + size_t((i / 8) * R + r) * 4;
                    store<uint32_t>(w, load<uint32_t>(w) | (uint32_t(q[i]) << (4 * (i % 8))));
                } else {
                    // qweight[i, r / 8], AWQ's interleaved nibble slot for column r % 8.
                    uint8_t *w = qw + size_t(i * (R / 8) + r / 8) * 4;
                    store<uint32_t>(w, load<uint32_t>(w) | (uint32_t(q[i]) << (4 * k_awq_slot[r % 8])));
                }
            }
            for (int64_t gi = 0; gi < G; ++gi) {
                const uint8_t z = g.zero[size_t(r * G + gi)];
                uint8_t *w = qz + size_t(gi * (R / 8) + r / 8) * 4;
                // GPTQ (AutoGPTQ's "v1" checkpoints) stores zero - 1; AWQ the zero itself.
                const uint32_t nib = gptq ? uint32_t((z - 1) & 0x0f) : uint32_t(z);
                const int slot = gptq ? int(r % 8) : k_awq_slot[r % 8];
                store<uint32_t>(w, load<uint32_t>(w) | (nib << (4 * slot)));
                store<uint16_t>(sc + size_t(gi * R + r) * 2, core::f32_to_f16(g.scale[size_t(r * G + gi)]));
            }
        }
    });
    if (gptq) {
        uint8_t *gi = base + p[3].offset;
        for (int64_t i = 0; i < N; ++i) store<int32_t>(gi + size_t(i) * 4, g.g_idx[size_t(i)]);
    }
}

int4_groups unpack_int4(const format_traits &f, const void *src, int64_t rows, int64_t n) {
    const auto p = planes(f, rows, n);
    const auto *base = static_cast<const uint8_t *>(src);
    const uint8_t *qw = base + p[0].offset, *qz = base + p[1].offset, *sc = base + p[2].offset;
    int4_groups g;
    g.rows = rows;
    g.n = n;
    g.group = f.group > 0 ? f.group : n;
    g.n_groups = p[1].shape[0];
    const int64_t R = rows, N = n, G = g.n_groups;
    const bool gptq = f.fam == family::gptq;
    g.q.resize(size_t(R * N));
    g.scale.resize(size_t(R * G));
    g.zero.resize(size_t(R * G));
    g.g_idx.resize(size_t(N));
    for (int64_t i = 0; i < N; ++i) {
        const int32_t v = gptq ? load<int32_t>(base + p[3].offset + size_t(i) * 4) : int32_t(i / g.group);
        if (v < 0 || v >= G)
            core::fail(LLMKIT_ERROR_FORMAT, f.name, ": g_idx[", i, "] = ", v, " is not a group index in [0, ", G, ")");
        g.g_idx[size_t(i)] = v;
    }
    core::parallel_for(R / 8, 0, [&](int64_t oct) {
        for (int64_t r = oct * 8; r < oct * 8 + 8; ++r) {
            uint8_t *q = &g.q[size_t(r * N)];
            for (int64_t i = 0; i < N; ++i) {
                if (gptq)
                    q[i] = uint8_t((load<uint32_t>(qw + size_t((i / 8) * R + r) * 4) >> (4 * (i % 8))) & 0x0f);
                else
                    q[i] = uint8_t((load<uint32_t>(qw + size_t(i * (R / 8) + r / 8) * 4) >> (4 * k_awq_slot[r % 8])) &
                                   0x0f);
            }
            for (int64_t gi = 0; gi < G; ++gi) {
                const int slot = gptq ? int(r % 8) : k_awq_slot[r % 8];
                const uint32_t nib = (load<uint32_t>(qz + size_t(gi * (R / 8) + r / 8) * 4) >> (4 * slot)) & 0x0f;
                // v1 GPTQ: stored zero - 1 (so the nibble 15 means 16, which
                // only a corrupt file has; llmkit keeps it as 16).
                g.zero[size_t(r * G + gi)] = uint8_t(gptq ? nib + 1 : nib);
                g.scale[size_t(r * G + gi)] = core::f16_to_f32(load<uint16_t>(sc + size_t(gi * R + r) * 2));
            }
        }
    });
    return g;
}

namespace kernels {

void quantize_int4(const format_traits &f, const f32_rows &src, uint8_t *base, const format_options &o, int threads) {
    int4_groups g;
    g.rows = src.rows;
    g.n = src.n;
    g.group = f.group > 0 ? f.group : src.n;
    g.n_groups = g.group > 0 ? src.n / g.group : 1;
    if (src.n == 0) g.n_groups = 1;
    const bool symmetric = o.zp == zero_point::format_default ? f.fam == family::gptq : o.zp == zero_point::symmetric;
    g.q.resize(size_t(g.rows * g.n));
    g.scale.resize(size_t(g.rows * g.n_groups));
    g.zero.resize(size_t(g.rows * g.n_groups));
    g.g_idx.resize(size_t(g.n));
    for (int64_t i = 0; i < g.n; ++i) g.g_idx[size_t(i)] = int32_t(i / g.group);
    core::parallel_for(g.rows, threads, [&](int64_t r) {
        const float *row = src.data + r * src.row_stride;
        for (int64_t gi = 0; gi < g.n_groups && g.n > 0; ++gi) {
            const float *x = row + gi * g.group * src.col_stride;
            float s;
            uint8_t z;
            fit_int4(x, g.group, src.col_stride, f.fam, symmetric, s, z);
            g.scale[size_t(r * g.n_groups + gi)] = s;
            g.zero[size_t(r * g.n_groups + gi)] = z;
            for (int64_t k = 0; k < g.group; ++k)
                g.q[size_t(r * g.n + gi * g.group + k)] = quant::quantize_int4(x[k * src.col_stride], s, z);
        }
    });
    pack_int4(f, g, base);
}

void dequantize_int4(const format_traits &f, const uint8_t *base, const out_rows &out, int threads) {
    const int4_groups g = unpack_int4(f, base, out.rows, out.n);
    core::parallel_for(out.rows, threads, [&](int64_t r) {
        for (int64_t i = 0; i < out.n; ++i) {
            const size_t gi = size_t(r * g.n_groups + g.g_idx[size_t(i)]);
            out.at(r, i) = g.scale[gi] * float(int(g.q[size_t(r * out.n + i)]) - int(g.zero[gi]));
        }
    });
}

// --- int8 ----------------------------------------------------------------------

void quantize_int8(const format_traits &f, const f32_rows &src, uint8_t *base, const std::vector<plane> &p, int threads) {
    int8_t *q = reinterpret_cast<int8_t *>(base + p[0].offset);
    uint8_t *scales = base + p[1].offset;
    uint8_t *zeros = f.asymmetric ? base + p[2].offset : nullptr;
    const int64_t group = f.group > 0 ? f.group : src.n;
    const int64_t G = p[1].shape[1];
    core::parallel_for(src.rows, threads, [&](int64_t r) {
        const float *row = src.data + r * src.row_stride;
        for (int64_t gi = 0; gi < G && src.n > 0; ++gi) {
            const float *x = row + gi * group * src.col_stride;
            int8_t *out = q + r * src.n + gi * group;
            float lo = 0.0f, hi = 0.0f, amax = 0.0f;
            for (int64_t k = 0; k < group; ++k) {
                const float v = x[k * src.col_stride];
                lo = std::min(lo, v);
                hi = std::max(hi, v);
                amax = std::max(amax, std::fabs(v));
            }
            float s;
            if (!f.asymmetric) {
                // x ~ s * q, q in [-127, 127] (LLM.int8 / SmoothQuant convention).
                s = amax / 127.0f;
                for (int64_t k = 0; k < group; ++k)
                    out[k] = int8_t(s > 0.0f ? round_clamp(x[k * src.col_stride] / s, -127.0f, 127.0f) : 0);
            } else {
                // x ~ s * (q - z), q and z in [-128, 127]; the range [lo, hi]
                // always contains 0 so that 0 stays exact.
                s = float((double(hi) - double(lo)) / 255.0);
                int z = 0;
                if (s > 0.0f) z = round_clamp(-128.0f - lo / s, -128.0f, 127.0f);
                for (int64_t k = 0; k < group; ++k)
                    out[k] = int8_t(s > 0.0f ? round_clamp(std::nearbyint(x[k * src.col_stride] / s) + float(z),
                                                           -128.0f, 127.0f)
                                             : 0);
                zeros[r * G + gi] = uint8_t(int8_t(z));
            }
            store<float>(scales + size_t(r * G + gi) * 4, s);
        }
    });
}

void dequantize_int8(const format_traits &f, const uint8_t *base, const std::vector<plane> &p, const out_rows &out,
                     int threads) {
    const int8_t *q = reinterpret_cast<const int8_t *>(base + p[0].offset);
    const uint8_t *scales = base + p[1].offset;
    const int8_t *zeros = f.asymmetric ? reinterpret_cast<const int8_t *>(base + p[2].offset) : nullptr;
    const int64_t group = f.group > 0 ? f.group : out.n;
    const int64_t G = p[1].shape[1];
    core::parallel_for(out.rows, threads, [&](int64_t r) {
        for (int64_t gi = 0; gi < G && out.n > 0; ++gi) {
            const float s = load<float>(scales + size_t(r * G + gi) * 4);
            const int z = zeros ? zeros[r * G + gi] : 0;
            const int8_t *in = q + r * out.n + gi * group;
            for (int64_t k = 0; k < group; ++k) out.at(r, gi * group + k) = float(int(in[k]) - z) * s;
        }
    });
}

}  // namespace kernels
}  // namespace llmkit::quant
