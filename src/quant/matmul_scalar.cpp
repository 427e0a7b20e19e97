// Portable matmul kernels: the reference every SIMD path must match bit for
// bit (the arithmetic is spelled out in matmul_kernels.hpp). Each weight row is
// decoded once into integers, then multiplied with every activation row.
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/tensor.hpp"
#include "quant/gguf_codebooks.hpp"
#include "quant/matmul_kernels.hpp"

namespace llmkit::quant::mm {
namespace {

float f16_at(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return core::f16_to_f32(h);
}

// One weight row as integers: the level of each element (as the lanes
// multiply it), an integer multiplier per 16-element group (the K-quants'
// sub-block scales; 1 otherwise), and per block the float weight scale dw and
// the offset term: bias_t = sum over groups of bias_mult * sum16, scaled by
// bias_w * dx.
struct decoded_row {
    std::vector<int16_t> q;         // [k]
    std::vector<int32_t> mult;      // [k / 16]
    std::vector<int32_t> bias_mult; // [k / 16]
    std::vector<float> dw, bias_w;  // [blocks]
    bool has_bias = false;
    bool folded = false;  // Q4_0 / Q4_1: 4 folded lanes (see matmul_kernels.hpp)

    void resize(int64_t k, int64_t block) {
        q.assign(size_t(k), 0);
        mult.assign(size_t(k / 16), 1);
        bias_mult.assign(size_t(k / 16), 0);
        dw.assign(size_t(k / block), 0.0f);
        bias_w.assign(size_t(k / block), 0.0f);
    }
};

// The 6-bit scale and min of sub-block j of a Q4_K / Q5_K block (ggml's get_scale_min_k4).
void scale_min_k4(int j, const uint8_t *s, int &sc, int &m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

void decode_row(kernel_kind kind, const uint8_t *w, int64_t k, decoded_row &r) {
    const int64_t block = kind >= k_q4_k ? 256 : 32;
    r.resize(k, block);
    r.has_bias = kind == k_q4_1 || kind == k_q5_1 || kind == k_q4_k || kind == k_q5_k || kind == k_q6_k ||
                 kind == k_q2_k || kind == k_q3_k;
    r.folded = folded_lanes(kind);
    for (int64_t b = 0; b < k / block; ++b) {
        int16_t *q = r.q.data() + b * block;
        int32_t *mult = r.mult.data() + b * block / 16;
        int32_t *bmult = r.bias_mult.data() + b * block / 16;
        switch (kind) {
        case k_q4_0: {  // {f16 d; u8 qs[16]}: (q - 8) * d
            const uint8_t *o = w + b * 18;
            r.dw[size_t(b)] = f16_at(o);
            for (int j = 0; j < 16; ++j) {
                q[j] = int16_t((o[2 + j] & 15) - 8);
                q[j + 16] = int16_t((o[2 + j] >> 4) - 8);
            }
            break;
        }
        case k_q4_1: {  // {f16 d; f16 m; u8 qs[16]}: q * d + m
            const uint8_t *o = w + b * 20;
            r.dw[size_t(b)] = f16_at(o);
            r.bias_w[size_t(b)] = f16_at(o + 2);
            bmult[0] = bmult[1] = 1;
            for (int j = 0; j < 16; ++j) {
                q[j] = int16_t(o[4 + j] & 15);
                q[j + 16] = int16_t(o[4 + j] >> 4);
            }
            break;
        }
        case k_q5_0: {  // {f16 d; u32 qh; u8 qs[16]}: (q - 16) * d, bit e of qh is bit 4 of element e
            const uint8_t *o = w + b * 22;
            r.dw[size_t(b)] = f16_at(o);
            uint32_t qh;
            std::memcpy(&qh, o + 2, 4);
            for (int j = 0; j < 16; ++j) {
                q[j] = int16_t(((o[6 + j] & 15) | ((qh >> j) & 1) << 4) - 16);
                q[j + 16] = int16_t(((o[6 + j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16);
            }
            break;
        }
        case k_q5_1: {  // {f16 d; f16 m; u32 qh; u8 qs[16]}: q * d + m, bit e of qh is bit 4 of element e
            const uint8_t *o = w + b * 24;
            r.dw[size_t(b)] = f16_at(o);
            r.bias_w[size_t(b)] = f16_at(o + 2);
            bmult[0] = bmult[1] = 1;
            uint32_t qh;
            std::memcpy(&qh, o + 4, 4);
            for (int j = 0; j < 16; ++j) {
                q[j] = int16_t((o[8 + j] & 15) | ((qh >> j) & 1) << 4);
                q[j + 16] = int16_t((o[8 + j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
            }
            break;
        }
        case k_iq4_nl:    // {f16 d; u8 qs[16]}: d * codebook[q]
        case k_mxfp4: {   // {u8 e; u8 qs[16]}: 2^(e - 128) * doubled E2M1 value
            const bool mx = kind == k_mxfp4;
            const uint8_t *o = w + b * (mx ? 17 : 18);
            const int8_t *book = mx ? k_e2m1_doubled : k_iq4_values;
            r.dw[size_t(b)] = mx ? e8m0_half(o[0]) : f16_at(o);
            const uint8_t *qs = o + (mx ? 1 : 2);
            for (int j = 0; j < 16; ++j) {
                q[j] = book[qs[j] & 15];
                q[j + 16] = book[qs[j] >> 4];
            }
            break;
        }
        case k_q8_0: {  // {f16 d; i8 qs[32]}
            const uint8_t *o = w + b * 34;
            r.dw[size_t(b)] = f16_at(o);
            for (int j = 0; j < 32; ++j) q[j] = int16_t(int8_t(o[2 + j]));
            break;
        }
        case k_i8_rows: {  // 32 int8 per block; the row scale is applied at the end
            const uint8_t *o = w + b * 32;
            r.dw[size_t(b)] = 1.0f;
            for (int j = 0; j < 32; ++j) q[j] = int16_t(int8_t(o[j]));
            break;
        }
        case k_q4_k:
        case k_q5_k: {  // {f16 d; f16 dmin; u8 scales[12]; (Q5_K: u8 qh[32];) u8 qs[128]}: d*sc*q - dmin*m
            const bool five = kind == k_q5_k;
            const uint8_t *o = w + b * (five ? 176 : 144);
            r.dw[size_t(b)] = f16_at(o);
            r.bias_w[size_t(b)] = -f16_at(o + 2);
            const uint8_t *qh = o + 16, *qs = o + (five ? 48 : 16);
            for (int j = 0; j < 8; ++j) {
                int sc, m;
                scale_min_k4(j, o + 4, sc, m);
                mult[2 * j] = mult[2 * j + 1] = sc;
                bmult[2 * j] = bmult[2 * j + 1] = m;
            }
            // Chunk c of 64 elements: low nibbles are sub-block 2c, high nibbles 2c + 1.
            for (int c = 0; c < 4; ++c) {
                for (int l = 0; l < 32; ++l) {
                    int lo = qs[32 * c + l] & 15, hi = qs[32 * c + l] >> 4;
                    if (five) {
                        lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                        hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
                    }
                    q[64 * c + l] = int16_t(lo);
                    q[64 * c + 32 + l] = int16_t(hi);
                }
            }
            break;
        }
        case k_q6_k: {  // {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: d * sc * (q - 32)
            const uint8_t *o = w + b * 210;
            const float d = f16_at(o + 208);
            r.dw[size_t(b)] = d;
            r.bias_w[size_t(b)] = -d;
            for (int g = 0; g < 16; ++g) {
                mult[g] = int8_t(o[192 + g]);
                bmult[g] = 32 * mult[g];
            }
            for (int half = 0; half < 2; ++half) {
                const uint8_t *ql = o + 64 * half, *qh = o + 128 + 32 * half;
                int16_t *y = q + 128 * half;
                for (int l = 0; l < 32; ++l) {
                    y[l] = int16_t((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4);
                    y[l + 32] = int16_t((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4);
                    y[l + 64] = int16_t((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
                    y[l + 96] = int16_t((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
                }
            }
            break;
        }
        case k_q2_k:    // {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}: d * (sc & 15) * q - dmin * (sc >> 4)
        case k_q3_k: {  // {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}: d * sc * (q - 4)
            const bool three = kind == k_q3_k;
            const uint8_t *o = w + b * (three ? 110 : 84);
            const uint8_t *qs = o + (three ? 32 : 16), *s = o + (three ? 96 : 0);
            if (three) {
                const float d = f16_at(o + 108);
                r.dw[size_t(b)] = d;
                r.bias_w[size_t(b)] = -d;
            } else {
                r.dw[size_t(b)] = f16_at(o + 80);
                r.bias_w[size_t(b)] = -f16_at(o + 82);
            }
            for (int g = 0; g < 16; ++g) {
                if (three) {  // 6-bit codes: low 4 bits in s[0..7], top 2 in s[8..11]
                    const int low = g < 8 ? (s[g] & 15) : (s[g - 8] >> 4);
                    mult[g] = (low | ((s[8 + g % 4] >> (2 * (g / 4))) & 3) << 4) - 32;
                    bmult[g] = 4 * mult[g];
                } else {
                    mult[g] = s[g] & 15;
                    bmult[g] = s[g] >> 4;
                }
            }
            // Sub-block 4h + j (elements 128h + 32j + l): bits 2j..2j+1 of qs[32h + l]
            // (Q3_K: bit 4h + j of hmask[l] as bit 2).
            for (int h = 0; h < 2; ++h)
                for (int j = 0; j < 4; ++j)
                    for (int l = 0; l < 32; ++l) {
                        int v = (qs[32 * h + l] >> (2 * j)) & 3;
                        if (three) v |= ((o[l] >> (4 * h + j)) & 1) << 2;
                        q[128 * h + 32 * j + l] = int16_t(v);
                    }
            break;
        }
        case k_iq4_xs: {  // {f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]}: d * (ls - 32) * codebook[q]
            const uint8_t *o = w + b * 136;
            r.dw[size_t(b)] = f16_at(o);
            const uint32_t scales_h = uint32_t(o[2]) | uint32_t(o[3]) << 8;
            for (int j = 0; j < 8; ++j) {
                const int ls = ((o[4 + j / 2] >> (4 * (j % 2))) & 15) | ((scales_h >> (2 * j)) & 3) << 4;
                mult[2 * j] = mult[2 * j + 1] = ls - 32;
                const uint8_t *qs = o + 8 + 16 * j;
                for (int l = 0; l < 16; ++l) {
                    q[32 * j + l] = k_iq4_values[qs[l] & 15];
                    q[32 * j + 16 + l] = k_iq4_values[qs[l] >> 4];
                }
            }
            break;
        }
        default:
            break;
        }
    }
}

// One output element, in exactly the order matmul_kernels.hpp prescribes.
float dot_row(const decoded_row &r, const act_rows &a, int64_t c, int64_t block) {
    const int8_t *xq = a.q + c * a.k;
    const float *xd = a.d + c * (a.k / block);
    const int16_t *xs = a.sum16 + c * (a.k / 16);
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    float bias = 0.0f;
    for (int64_t b = 0; b < a.k / block; ++b) {
        int32_t lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t e = b * block; e < (b + 1) * block; e += 4) {
            // Lane l: elements 4l..4l+3 of each 32; folded: also 16+4l..16+4l+3.
            const int l = r.folded ? int((e % 16) / 4) : int((e % 32) / 4);
            int32_t p = 0;
            for (int i = 0; i < 4; ++i) p += int32_t(r.q[size_t(e + i)]) * xq[e + i];
            lane[l] += p * r.mult[size_t(e / 16)];
        }
        const float dx = xd[b];
        const float s = r.dw[size_t(b)] * dx;
        if (block == 256) {  // one exact integer per block (the lanes never overflow int32 added up)
            int32_t total = 0;
            for (int l = 0; l < 8; ++l) total += lane[l];
            acc[0] = std::fma(float(total), s, acc[0]);
        } else {
            for (int l = 0; l < 8; ++l) acc[l] = std::fma(float(lane[l]), s, acc[l]);
        }
        if (r.has_bias) {
            int32_t t = 0;
            for (int64_t g = b * block / 16; g < (b + 1) * block / 16; ++g) t += r.bias_mult[size_t(g)] * xs[g];
            bias = std::fma(float(t), r.bias_w[size_t(b)] * dx, bias);
        }
    }
    if (block == 256) return acc[0] + bias;
    if (r.folded) return ((acc[0] + acc[2]) + (acc[1] + acc[3])) + bias;  // acc[4..7] stay 0
    const float t0 = acc[0] + acc[4], t1 = acc[1] + acc[5], t2 = acc[2] + acc[6], t3 = acc[3] + acc[7];
    return ((t0 + t2) + (t1 + t3)) + bias;
}

template <kernel_kind Kind>
void kernel(const kernel_args &a) {
    const int64_t block = Kind >= k_q4_k ? 256 : 32;
    decoded_row r;
    for (int64_t i = 0; i < a.rows; ++i) {
        decode_row(Kind, a.w + size_t(i) * a.w_row_bytes, a.act.k, r);
        for (int64_t c = 0; c < a.act.m; ++c) {
            float y = dot_row(r, a.act, c, block);
            if (Kind == k_i8_rows) y *= a.row_scale[i * a.row_scale_stride];
            a.y[c * a.y_row_stride + i * a.y_col_stride] = y;
        }
    }
}

void quantize_act(const float *x, int64_t k, int64_t block, int8_t *q, float *d) {
    for (int64_t b = 0; b < k / block; ++b, x += block, q += block) {
        float amax = 0.0f;
        for (int64_t j = 0; j < block; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        float db = amax / 127.0f;
        float id = db != 0.0f ? 1.0f / db : 0.0f;
        if (!(id <= FLT_MAX)) db = id = 0.0f;  // amax so tiny that 1 / d overflows
        d[b] = db;
        for (int64_t j = 0; j < block; ++j) q[j] = int8_t(std::nearbyint(x[j] * id));
    }
}

const kernel_table k_scalar = {"scalar",
                               quantize_act,
                               {kernel<k_q4_0>, kernel<k_q4_1>, kernel<k_q5_0>, kernel<k_q5_1>, kernel<k_q8_0>,
                                kernel<k_i8_rows>, kernel<k_iq4_nl>, kernel<k_mxfp4>, kernel<k_q4_k>, kernel<k_q5_k>,
                                kernel<k_q6_k>, kernel<k_q2_k>, kernel<k_q3_k>, kernel<k_iq4_xs>}};

}  // namespace

const kernel_table &scalar_kernels() { return k_scalar; }

}  // namespace llmkit::quant::mm
