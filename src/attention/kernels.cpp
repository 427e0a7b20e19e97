// Portable attention kernels (the reference the AVX2 and AVX-512 sets are
// tested against) and the run-time choice between the three.
#include "attention/kernels.hpp"

#include <cmath>
#include <limits>

#include "core/cpu_features.hpp"
#include "core/tensor.hpp"
#include "attention/spread_prefetch.hpp"

namespace llmkit::attention {

namespace {

void gemm_generic(int M, int N, int K, const float *A, int64_t ars, int64_t aks, const float *B, int64_t ldb, float *C,
                  int64_t ldc, bool accumulate, const float *row_scale) {
    for (int r = 0; r < M; ++r) {
        float *c = C + r * ldc;
        const float s = row_scale ? row_scale[r] : 1.0f;
        for (int n = 0; n < N; ++n) c[n] = accumulate ? c[n] * s : 0.0f;
        for (int k = 0; k < K; ++k) {
            const float a = A[r * ars + k * aks];
            const float *b = B + k * ldb;
            for (int n = 0; n < N; ++n) c[n] += a * b[n];
        }
    }
}

void dots_generic(int R, int N, int D, const float *Q, int64_t ldq, const float *K, int64_t ldk, float *ST) {
    for (int j = 0; j < N; ++j)
        for (int r = 0; r < R; ++r) {
            const float *q = Q + r * ldq, *k = K + j * ldk;
            float acc = 0.0f;
            for (int d = 0; d < D; ++d) acc += q[d] * k[d];
            ST[j * R + r] = acc;
        }
}

void softmax_tile_generic(float *ST, int N, int R, float *m, float *l, float *alpha) {
    const float ninf = -std::numeric_limits<float>::infinity();
    for (int r = 0; r < R; ++r) {
        float mx = m[r];
        for (int j = 0; j < N; ++j) mx = std::max(mx, ST[j * R + r]);
        if (mx == ninf) {
            alpha[r] = 1.0f;
            for (int j = 0; j < N; ++j) ST[j * R + r] = 0.0f;
            continue;
        }
        alpha[r] = std::exp(m[r] - mx);
        float sum = 0.0f;
        for (int j = 0; j < N; ++j) {
            const float p = std::exp(ST[j * R + r] - mx);
            ST[j * R + r] = p;
            sum += p;
        }
        l[r] = l[r] * alpha[r] + sum;
        m[r] = mx;
    }
}

void half_to_f32_generic(float *dst, const uint16_t *src, int64_t n, bool is_bf16) {
    if (is_bf16)
        for (int64_t i = 0; i < n; ++i) dst[i] = core::bf16_to_f32(src[i]);
    else
        for (int64_t i = 0; i < n; ++i) dst[i] = core::f16_to_f32(src[i]);
}

void f32_to_half_generic(uint16_t *dst, const float *src, int64_t n, bool is_bf16) {
    if (is_bf16)
        for (int64_t i = 0; i < n; ++i) dst[i] = core::f32_to_bf16(src[i]);
    else
        for (int64_t i = 0; i < n; ++i) dst[i] = core::f32_to_f16(src[i]);
}

// The raw values of the 256 FP8 bytes (see row_type): [0] E4M3, [1] E5M2.
struct fp8_raw_tables {
    float v[2][256];
    fp8_raw_tables() {
        for (int b = 0; b < 256; ++b)
            for (int t = 0; t < 2; ++t) v[t][b] = core::f16_to_f32(fp8_raw_f16_bits(uint8_t(b), t == 0));
    }
};

void q8_to_f32_generic(float *dst, const void *src, int64_t rows, int64_t D, const float *scales, row_type e) {
    if (e == row_type::i8) {
        const int8_t *q = static_cast<const int8_t *>(src);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t d = 0; d < D; ++d) dst[r * D + d] = float(q[r * D + d]) * scales[r];
        return;
    }
    static const fp8_raw_tables tables;
    const float *raw = tables.v[e == row_type::e4m3 ? 0 : 1];
    const uint8_t *q = static_cast<const uint8_t *>(src);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t d = 0; d < D; ++d) dst[r * D + d] = raw[q[r * D + d]] * scales[r];
}

const kernels k_generic = {"generic", gemm_generic, dots_generic, softmax_tile_generic, half_to_f32_generic,
                           f32_to_half_generic, q8_to_f32_generic};

}  // namespace

const kernels &generic_kernels() { return k_generic; }

bool decode_prefetch_into_l1() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static const bool l1 = core::cpu_amd_family() >= 0x1Au;
    return l1;
#else
    return false;
#endif
}

const kernels &best_kernels() {
    static const kernels *best = [] {
        const core::isa_level cap = core::max_cpu_isa();
        if (cap >= core::isa_level::avx512 && avx512_kernels()) return avx512_kernels();
        if (cap >= core::isa_level::avx2 && avx2_kernels()) return avx2_kernels();
        return &k_generic;
    }();
    return *best;
}

}  // namespace llmkit::attention
