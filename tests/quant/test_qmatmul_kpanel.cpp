// The K-quant (and IQ4_XS) GEMM path of the AVX2 kernels (kpanel_gemm in matmul_avx2.cpp,
// taken from 4 activation rows on): weight rows decoded into panels of 4,
// activation rows in tiles of 4, the offset terms of 2 blocks at a time. Every
// edge of that walk -- a partial panel (n not a multiple of 4, or a thread's
// share that ends mid-panel), a partial activation tile (m % 4 = 1..3), an odd
// block count -- must give the scalar kernels' bits, on weights of random
// bytes (every scale and min bit pattern, Q6_K's scale -128, Q3_K's and IQ4_XS's
// scale -32, every hmask bit) and on quantized
// ones; and the scalar result must agree with float64.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "llmkit/llmkit.h"
#include "matmul_test_support.hpp"
#include "quant/matmul.hpp"
#include "support/test_support.hpp"

namespace {

using namespace llmkit_test;  // quant_matmul, the int8 reference, host_tensor
using llmkit::quant::matmul_isa;
using isa_scope = matmul_isa_scope;

struct kquant {
    const char *name;
    int32_t type;
    size_t block_bytes;
    std::vector<size_t> f16_offsets;  // d (and dmin) within a block
};
const kquant k_kquants[] = {{"q4_K", LLMKIT_QUANT_Q4_K, 144, {0, 2}},
                            {"q5_K", LLMKIT_QUANT_Q5_K, 176, {0, 2}},
                            {"q6_K", LLMKIT_QUANT_Q6_K, 210, {208}},
                            {"q2_K", LLMKIT_QUANT_Q2_K, 84, {80, 82}},  // d, dmin
                            {"q3_K", LLMKIT_QUANT_Q3_K, 110, {108}},
                            {"iq4_xs", LLMKIT_QUANT_IQ4_XS, 136, {0}}};

// n rows of k elements in random bytes, the float16 scales made finite
// (2^-10 <= |v| < 2^6); every fourth row of Q6_K gets the scale -128 in each group.
std::vector<uint8_t> random_rows(const kquant &t, int64_t n, int64_t k, std::mt19937 &rng) {
    size_t row = 0;
    REQUIRE(llmkit_quant_row_bytes(&row, t.type, k) == LLMKIT_OK);
    std::vector<uint8_t> w(row * size_t(n));
    for (auto &b : w) b = uint8_t(rng());
    for (size_t o = 0; o < w.size(); o += t.block_bytes) {
        for (size_t f : t.f16_offsets) {
            const uint16_t h = uint16_t((rng() & 1u) << 15 | (5 + rng() % 16) << 10 | (rng() & 0x3FFu));
            std::memcpy(&w[o + f], &h, 2);
        }
        if (t.type == LLMKIT_QUANT_Q6_K && (o / row) % 4 == 0) std::memset(&w[o + 192], 0x80, 16);
    }
    return w;
}

// y (m x n, scalar kernels) against float64 with x rounded to int8 in blocks of
// 256 as the kernels round it: only float32 rounding remains, 2^-16 of sum |w| |xq|.
void check_float64(const kquant &t, const std::vector<uint8_t> &w, int64_t n, int64_t k, const std::vector<float> &x,
                   int64_t m, const std::vector<float> &y) {
    std::vector<float> wd(size_t(n * k));
    const int64_t ws[2] = {n, k};
    const llmkit_tensor wdt = host_tensor(wd.data(), ws, 2, LLMKIT_DTYPE_F32);
    REQUIRE(llmkit_dequantize(t.type, w.data(), w.size(), &wdt, nullptr) == LLMKIT_OK);
    for (int64_t i = 0; i < m; ++i) {
        const std::vector<double> xq = int8_activation_row(x, i, k, 256);
        for (int64_t r = 0; r < n; ++r) {
            const auto [ref, mag] = dot_and_magnitude(wd, r, xq);
            INFO(t.name << " m=" << m << " n=" << n << " k=" << k << ": x row " << i << ", weight row " << r);
            REQUIRE(std::fabs(double(y[size_t(i * n + r)]) - ref) <= std::ldexp(mag, -16));
        }
    }
}

}  // namespace

TEST_CASE("quant matmul: K-quant GEMM panels and tiles, every edge, give the scalar bits", "[quant][matmul]") {
    std::mt19937 rng(4242);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const auto simd = llmkit_test::simd_isas();
    if (simd.empty()) WARN("this CPU has no AVX2: only the scalar kernels are checked");
    // n: a lone row, a partial panel, one panel, a panel and a row, several panels
    // split over threads mid-panel. m: one full activation tile, then 1-3 more rows,
    // two tiles; for the AVX512-VNNI GEMM (16 activation rows in the lanes, from
    // M = 8) a partial group, one group, a group and a row. k: 1, 3 and 5 blocks
    // (the offset terms go 2 blocks at a time).
    const int64_t ns[] = {1, 3, 4, 5, 22};
    const int64_t ms[] = {4, 5, 6, 7, 8, 13, 16, 17};
    const int64_t ks[] = {256, 768, 1280};
    for (const auto &t : k_kquants)
        for (int64_t k : ks)
            for (int64_t n : ns) {
                const std::vector<uint8_t> w = random_rows(t, n, k, rng);
                for (int64_t m : ms) {
                    std::vector<float> x(size_t(m * k));
                    for (auto &v : x) v = normal(rng);
                    std::vector<float> scalar;
                    {
                        const isa_scope s(matmul_isa::scalar);
                        REQUIRE(s.ok);
                        scalar = quant_matmul(t.type, w, n, k, x, m, 1);
                    }
                    if (n == 5 && m == 7) check_float64(t, w, n, k, x, m, scalar);
                    for (const auto isa : simd) {
                        const isa_scope s(isa);
                        for (int threads : {1, 2, 3}) {
                            INFO(t.name << " m=" << m << " n=" << n << " k=" << k << ", " << llmkit_quant_matmul_isa()
                                        << ", " << threads << " threads");
                            const auto y = quant_matmul(t.type, w, n, k, x, m, threads);
                            CHECK(std::memcmp(scalar.data(), y.data(), scalar.size() * 4) == 0);
                        }
                    }
                    // The last activation row alone (GEMV) gives its row of the GEMM.
                    std::vector<float> xl(x.end() - k, x.end());
                    const auto yl = quant_matmul(t.type, w, n, k, xl, 1, 1);
                    INFO(t.name << " m=" << m << " n=" << n << " k=" << k << ", last row alone");
                    CHECK(std::memcmp(yl.data(), scalar.data() + (m - 1) * n, size_t(n) * 4) == 0);
                }
            }
}

// Quantized (not random) weights at a prefill size: 130 weight rows (a partial
// panel at the end of each thread's share), M = 33 (eight tiles and a lone row).
TEST_CASE("quant matmul: K-quant GEMM at M = 33 on quantized weights gives the scalar bits", "[quant][matmul]") {
    std::mt19937 rng(77);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t n = 130, k = 512, m = 33;
    std::vector<float> wf(size_t(n * k)), x(size_t(m * k));
    for (auto &v : wf) v = normal(rng);
    for (auto &v : x) v = normal(rng);
    const int64_t ws[2] = {n, k};
    const llmkit_tensor src = host_tensor(wf.data(), ws, 2, LLMKIT_DTYPE_F32);
    for (const auto &t : k_kquants) {
        size_t row = 0;
        REQUIRE(llmkit_quant_row_bytes(&row, t.type, k) == LLMKIT_OK);
        std::vector<uint8_t> w(row * size_t(n));
        size_t written = 0;
        REQUIRE(llmkit_quantize(&written, t.type, &src, w.data(), w.size(), nullptr) == LLMKIT_OK);
        std::vector<float> scalar;
        {
            const isa_scope s(matmul_isa::scalar);
            REQUIRE(s.ok);
            scalar = quant_matmul(t.type, w, n, k, x, m, 1);
        }
        check_float64(t, w, n, k, x, m, scalar);
        for (const auto isa : llmkit_test::simd_isas()) {
            const isa_scope s(isa);
            for (int threads : {1, 2}) {
                INFO(t.name << ", " << llmkit_quant_matmul_isa() << ", " << threads << " threads");
                CHECK(std::memcmp(scalar.data(), quant_matmul(t.type, w, n, k, x, m, threads).data(),
                                  scalar.size() * 4) == 0);
            }
        }
    }
}
