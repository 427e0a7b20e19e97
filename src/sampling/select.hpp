// The two kernels every filtering step leans on:
//   exp_shifted  - e_i = exp(l_i - shift) for a whole row, vectorised, with one
//                  fixed sequence of float operations (not libm's), so another
//                  backend can reproduce it bit for bit;
//   select_prefix - the cut-off of "the first k, or the first items reaching a
//                  mass, in descending key order (ties: lower position first)",
//                  in expected O(n) without sorting: a 4096-bin radix histogram
//                  on the top 12 key bits finds the one bin the cut falls in,
//                  and a quickselect finishes inside that bin.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace llmkit::sampling {

// exp(x) for x <= 0; 0 below -87.3 (where float exp underflows anyway) and
// for NaN. Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then a degree-7
// Taylor polynomial in Horner form (relative error < 1e-7 before rounding).
// Branch-free (the cut-off is two selects), so the loop vectorises on every
// x86 level: with an early return, GCC vectorised it for AVX-512 (masked
// lanes) but left the AVX2 clone scalar, 4x slower per logit.
inline float exp_nonpositive(float x) {
    const bool keep = x >= -87.3f;  // false for NaN
    x = keep ? x : -87.3f;          // so that no NaN reaches the int conversion below
    // Round to nearest (even) by adding and removing 1.5 * 2^23: plain float
    // operations.
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = (int32_t(n) + 127) << 23;  // 2^n, n in [-126, 0]
    float scale;
    std::memcpy(&scale, &bits, 4);
    return keep ? p * scale : 0.0f;
}

// out[i] = exp_nonpositive(in[i] - shift); returns the sum (in double, fixed order).
double exp_shifted(const float *in, size_t n, float shift, float *out);

// The sum of x[0, n) in double (eight interleaved accumulators: a fixed
// order the compiler can vectorise). *bad is set when an entry is negative,
// infinite or NaN (the caller then finds which, and reports it).
double sum_nonnegative(const float *x, size_t n, bool *bad);
// w[i] = max(0, q[i] / sq - p[i] / sp) in double (speculative decoding's
// residual), and their sum in the same fixed order as sum_nonnegative.
double residual_weights(const float *q, double sq, const float *p, double sp, size_t n, double *w);

// A float's bits as an unsigned key with the same order (-0 just below +0).
inline uint32_t order_key(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Where a prefix ends: item i is in the prefix iff
// key_i > key || (key_i == key && i <= pos). `count` is the prefix's size.
struct prefix_cut {
    uint32_t key = 0;
    uint32_t pos = 0;
    size_t count = 0;
    bool all = false;  // the whole set (target not reached)
    bool contains(uint32_t k, uint32_t i) const { return all || k > key || (k == key && i <= pos); }
};

// The shortest prefix in descending-key order whose summed `mass` is >= target.
prefix_cut select_prefix_by_mass(const uint32_t *keys, const float *mass, size_t n, double target);
// The first k items in descending-key order (k >= 1).
prefix_cut select_prefix_by_count(const uint32_t *keys, size_t n, size_t k);

}  // namespace llmkit::sampling
