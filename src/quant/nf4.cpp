// bitsandbytes' 4-bit formats, NF4 (NormalFloat, QLoRA, Dettmers et al. 2023)
// and FP4 (e2m1 scaled to [-1, 1]), with blockwise absmax:
//
//   the tensor is flattened (row-major) and cut into blocks of 64 elements
//   (the last one may be shorter); absmax[b] = max |x| over block b (float32);
//   each element becomes the index of the code nearest to x * (1 / absmax[b]);
//   two indices share a byte, the FIRST element in the HIGH nibble.
//   Decoding: x ~ code[index] * absmax[b].
//
// These are the semantics of bitsandbytes' quantize_4bit / dequantize_4bit
// (blocksize 64, quant_storage uint8, no nested absmax quantization).
#include <algorithm>
#include <cmath>

#include "core/threads.hpp"
#include "quant/format_kernels.hpp"

namespace llmkit::quant {

// The NF4 levels: quantiles of N(0, 1) normalised to [-1, 1] with an exact
// zero (QLoRA appendix E; bitsandbytes' create_normal_map), as float32.
const float nf4_code[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230850219727f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

// FP4 as bitsandbytes numbers it: bit 3 is the sign; the magnitudes of
// e2m1 values {0, 0.0625, 2, 3, 4, 6, 8, 12} divided by 12, in its own index
// order (0b001 is the subnormal 0.0625 / 12, 0b011 the maximum 1).
const float fp4_code[16] = {
    0.0f,  0.0052083333f, 0.6666667f,  1.0f,  0.33333333f,  0.5f,  0.16666667f,  0.25f,
    -0.0f, -0.0052083333f, -0.6666667f, -1.0f, -0.33333333f, -0.5f, -0.16666667f, -0.25f,
};

namespace {

// Decision thresholds: the midpoint between neighbouring levels, computed in
// float64 from the float32 levels and rounded to float32, as bitsandbytes'
// kernels hard-code them. y > threshold picks the upper level.
struct thresholds {
    float nf4[15];
    float fp4_mag[7];     // between sorted FP4 magnitudes
    uint8_t fp4_idx[8];   // index of the k-th smallest FP4 magnitude
    thresholds() {
        for (int k = 0; k < 15; ++k) nf4[k] = float((double(nf4_code[k]) + double(nf4_code[k + 1])) / 2.0);
        const uint8_t order[8] = {0, 1, 6, 7, 4, 5, 2, 3};  // 0, 1/192, 1/6, 1/4, 1/3, 1/2, 2/3, 1
        for (int k = 0; k < 8; ++k) fp4_idx[k] = order[k];
        for (int k = 0; k < 7; ++k)
            fp4_mag[k] = float((double(fp4_code[order[k]]) + double(fp4_code[order[k + 1]])) / 2.0);
    }
};

const thresholds &th() {
    static const thresholds t;
    return t;
}

}  // namespace

uint8_t nf4_index(float y) noexcept {
    const float *t = th().nf4;
    // Count thresholds strictly below y: a binary search over 15 sorted values.
    uint8_t lo = 0, hi = 15;
    while (lo < hi) {
        const uint8_t mid = uint8_t((lo + hi) / 2);
        if (y > t[mid]) lo = uint8_t(mid + 1);
        else hi = mid;
    }
    return lo;
}

uint8_t fp4_index(float y) noexcept {
    const uint8_t sign = y < 0.0f ? 8 : 0;
    const float a = std::fabs(y);
    const float *t = th().fp4_mag;
    int k = 0;
    while (k < 7 && a > t[k]) ++k;
    return uint8_t(sign | th().fp4_idx[k]);
}

namespace {

// idx[e] = the number of thresholds t[0, nt) below y[e]. The thresholds
// ascend, so this is nf4_index's binary search (and fp4_index's scan) without
// a branch: the search mispredicted about twice per element, this loop
// vectorises. NaN exceeds none (index 0), as in the search.
void count_above(const float *y, int len, const float *t, int nt, uint8_t *idx) {
    for (int e = 0; e < len; ++e) idx[e] = 0;
    for (int k = 0; k < nt; ++k)
        for (int e = 0; e < len; ++e) idx[e] = uint8_t(idx[e] + (y[e] > t[k] ? 1 : 0));
}

}  // namespace

// The code indices of one block of up to 64 values (nf4_index / fp4_index of
// each, scaled as bitsandbytes scales them), into idx[0, len).
void bnb4_block_indices(int variant, const float *x, int len, float amax, uint8_t *idx) {
    const uint8_t zero_index = variant == 0 ? 7 : 0;
    if (amax == 0.0f) {  // an all-zero block stores the index of 0
        for (int k = 0; k < len; ++k) idx[k] = zero_index;
        return;
    }
    // bitsandbytes multiplies by the reciprocal; a subnormal absmax whose
    // reciprocal overflows divides instead (bitsandbytes would produce NaN codes there).
    float y[64];
    const float inv = 1.0f / amax;
    if (std::isinf(inv)) {
        for (int k = 0; k < len; ++k) y[k] = x[k] / amax;
    } else {
        for (int k = 0; k < len; ++k) y[k] = x[k] * inv;
    }
    const thresholds &t = th();
    if (variant == 0) {
        count_above(y, len, t.nf4, 15, idx);
        return;
    }
    float a[64];
    for (int k = 0; k < len; ++k) a[k] = std::fabs(y[k]);
    count_above(a, len, t.fp4_mag, 7, idx);
    for (int k = 0; k < len; ++k) idx[k] = uint8_t((y[k] < 0.0f ? 8 : 0) | t.fp4_idx[idx[k]]);
}

namespace kernels {

void quantize_bnb4(const format_traits &f, const f32_rows &src, uint8_t *base, const std::vector<plane> &p, int threads) {
    uint8_t *packed = base + p[0].offset;
    uint8_t *absmax_plane = base + p[1].offset;
    const int64_t total = src.rows * src.n;
    const int64_t n_blocks = (total + 63) / 64;
    // 64 blocks a task (one block a task spent a few % of the call handing
    // out tasks); blocks are 64 elements = 32 whole bytes, so tasks never
    // share a byte.
    constexpr int64_t blocks_per_task = 64;
    core::parallel_for((n_blocks + blocks_per_task - 1) / blocks_per_task, threads, [&](int64_t task) {
        const int64_t b_end = std::min(n_blocks, (task + 1) * blocks_per_task);
        for (int64_t b = task * blocks_per_task; b < b_end; ++b) {
            const int64_t begin = b * 64, end = std::min(total, begin + 64);
            float x[64];
            int64_t r = begin / src.n, j = begin % src.n;  // walk the flattened index, no division per element
            for (int64_t e = begin; e < end; ++e) {
                x[e - begin] = src.data[r * src.row_stride + j * src.col_stride];
                if (++j == src.n) j = 0, ++r;
            }
            const int len = int(end - begin);
            float amax = 0.0f;
            for (int k = 0; k < len; ++k) amax = std::max(amax, std::fabs(x[k]));
            store<float>(absmax_plane + size_t(b) * 4, amax);
            uint8_t idx[64];
            bnb4_block_indices(f.variant, x, len, amax, idx);
            for (int k = 0; k < len; k += 2)  // an odd tail leaves the low nibble 0
                packed[size_t(begin + k) / 2] = uint8_t((idx[k] << 4) | (k + 1 < len ? idx[k + 1] : 0));
        }
    });
}

void dequantize_bnb4(const format_traits &f, const uint8_t *base, const std::vector<plane> &p, const out_rows &out,
                     int threads) {
    const uint8_t *packed = base + p[0].offset;
    const uint8_t *absmax_plane = base + p[1].offset;
    const float *code = f.variant == 0 ? nf4_code : fp4_code;
    const int64_t total = out.rows * out.n;
    const int64_t n_blocks = (total + 63) / 64;
    core::parallel_for(n_blocks, threads, [&](int64_t b) {
        const float amax = load<float>(absmax_plane + size_t(b) * 4);
        const int64_t begin = b * 64, end = std::min(total, begin + 64);
        int64_t r = begin / out.n, j = begin % out.n;
        for (int64_t e = begin; e < end; ++e) {
            const uint8_t byte = packed[size_t(e) / 2];
            const uint8_t idx = (e & 1) ? (byte & 0x0f) : (byte >> 4);
            out.at(r, j) = code[idx] * amax;
            if (++j == out.n) j = 0, ++r;
        }
    });
}

}  // namespace kernels
}  // namespace llmkit::quant
