// Helpers shared by the quantized-matmul tests (test_matmul*.cpp,
// test_qmatmul_*.cpp): one call of the C API, a scoped choice of kernels and
// the float64 reference of the int8-activation kernels. Header-only, internal
// to the tests.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "llmkit/llmkit.h"
#include "quant/matmul.hpp"
#include "support/test_support.hpp"

namespace llmkit_test {

// y [m, n] = x [m, k] times the quantized weights w (n rows of `type`),
// through llmkit_quant_matmul; n_threads 0 lets llmkit choose. y starts out
// as -12345 so that an output the kernels never write shows.
inline std::vector<float> quant_matmul(int32_t type, const std::vector<uint8_t> &w, int64_t n, int64_t k,
                                       std::vector<float> &x, int64_t m, int n_threads = 0) {
    const llmkit_dtype f32 = LLMKIT_DTYPE_F32;
    std::vector<float> y(size_t(m * n), -12345.0f);
    const int64_t xs[2] = {m, k}, ys[2] = {m, n};
    const llmkit_tensor xt = host_tensor(x.data(), xs, 2, f32), yt = host_tensor(y.data(), ys, 2, f32);
    llmkit_quant_matmul_options o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    o.n_threads = n_threads;
    INFO(llmkit_last_error_message());
    REQUIRE(llmkit_quant_matmul(&xt, type, w.data(), w.size(), n, k, &yt, &o) == LLMKIT_OK);
    return y;
}

// Forces the matmul kernels of one ISA while in scope, then restores the
// automatic choice (even when a REQUIRE ends the test). `ok` is false, and
// nothing changed, when the CPU cannot run that ISA.
struct matmul_isa_scope {
    explicit matmul_isa_scope(llmkit::quant::matmul_isa isa) { ok = llmkit::quant::matmul_force_isa(isa); }
    ~matmul_isa_scope() { llmkit::quant::matmul_force_isa(llmkit::quant::matmul_isa::automatic); }
    matmul_isa_scope(const matmul_isa_scope &) = delete;
    matmul_isa_scope &operator=(const matmul_isa_scope &) = delete;
    bool ok = false;
};

// The SIMD kernel sets this CPU runs (AVX2, AVX512-VNNI, and on a CPU with
// GFNI the VNNI set without its GFNI kernels too), each to be compared with
// the scalar bits; empty on a CPU with none.
inline std::vector<llmkit::quant::matmul_isa> simd_isas() {
    std::vector<llmkit::quant::matmul_isa> v;
    for (auto isa : {llmkit::quant::matmul_isa::avx2, llmkit::quant::matmul_isa::avx512vnni,
                     llmkit::quant::matmul_isa::avx512vnni_no_gfni})
        if (matmul_isa_scope(isa).ok) v.push_back(isa);
    return v;
}

// Row i of x [m, k] as the kernels quantize it (as ggml does): each block of
// `block` values to int8 at scale absmax / 127, rounded to nearest (ties to
// even), then back to the exact values those int8s stand for, in float64.
inline std::vector<double> int8_activation_row(const std::vector<float> &x, int64_t i, int64_t k, int64_t block) {
    std::vector<double> xq(static_cast<size_t>(k));
    for (int64_t b = 0; b < k / block; ++b) {
        float amax = 0.0f;
        for (int64_t j = block * b; j < block * (b + 1); ++j) amax = std::fmax(amax, std::fabs(x[size_t(i * k + j)]));
        const float d = amax / 127.0f, id = 1.0f / d;
        for (int64_t j = block * b; j < block * (b + 1); ++j)
            xq[size_t(j)] = double(std::nearbyint(x[size_t(i * k + j)] * id)) * double(d);
    }
    return xq;
}

// Row r of the dequantized weights wd [n, k] times xq in float64: the dot
// product and the sum of |products| (the scale of its float32 rounding).
inline std::pair<double, double> dot_and_magnitude(const std::vector<float> &wd, int64_t r,
                                                   const std::vector<double> &xq) {
    const int64_t k = int64_t(xq.size());
    double ref = 0, mag = 0;
    for (int64_t j = 0; j < k; ++j) {
        ref += double(wd[size_t(r * k + j)]) * xq[size_t(j)];
        mag += std::fabs(double(wd[size_t(r * k + j)]) * xq[size_t(j)]);
    }
    return {ref, mag};
}

}  // namespace llmkit_test
