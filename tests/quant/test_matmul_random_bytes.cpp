// Weights made of random bytes (every bit of the packed 6-bit scales and
// mins, Q5_K's fifth bits, Q6_K's, Q3_K's and IQ4_XS's signed scales, Q3_K's
// hmask bits, every nibble and 2-bit level; random finite
// float16 block scales and mins), not only the patterns a quantizer writes:
// the AVX2 kernels must give the scalar kernels' bits for GEMV (m = 1) and
// GEMM tiles, at 1-3 threads, and the scalar result must agree with a float64
// product of llmkit_dequantize's weights and the int8-rounded x.
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

using llmkit::quant::matmul_isa;
using llmkit_test::dot_and_magnitude;
using llmkit_test::host_tensor;
using llmkit_test::int8_activation_row;
using isa_scope = llmkit_test::matmul_isa_scope;
using llmkit_test::quant_matmul;

const llmkit_dtype k_f32 = LLMKIT_DTYPE_F32;

// A random finite float16, 2^-10 <= |v| < 2^6, as bits.
uint16_t random_f16(std::mt19937 &rng) {
    const uint32_t sign = rng() & 1u, exponent = 5 + rng() % 16, mantissa = rng() & 0x3FFu;
    return uint16_t(sign << 15 | exponent << 10 | mantissa);
}

// n rows of k elements of `type` (blocks of `block_bytes`) in random bytes,
// with the blocks' float16 scales (at `f16_offsets` within each block) made finite.
std::vector<uint8_t> random_blocks(int32_t type, int64_t n, int64_t k, size_t block_bytes,
                                   const std::vector<size_t> &f16_offsets, std::mt19937 &rng) {
    size_t row = 0;
    REQUIRE(llmkit_quant_row_bytes(&row, type, k) == LLMKIT_OK);
    std::vector<uint8_t> w(row * size_t(n));
    for (auto &b : w) b = uint8_t(rng());
    for (size_t o = 0; o < w.size(); o += block_bytes)
        for (size_t f : f16_offsets) {
            const uint16_t h = random_f16(rng);
            std::memcpy(&w[o + f], &h, 2);
        }
    return w;
}

}  // namespace

TEST_CASE("quant matmul: blocks of random bytes, AVX2 and scalar bits, float64", "[quant][matmul]") {
    std::mt19937 rng(2026);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t n = 37;  // 9 four-row GEMV tiles and one row; partial 2-row GEMM tiles
    // k: 3 super-blocks; for the 32-element types 131 blocks, so that the Q4_0 /
    // Q4_1 GEMV loop sees a second chunk of scales (128 blocks each) and an odd last block.
    const struct {
        const char *name;
        int32_t type;
        int64_t block, k;
        size_t block_bytes;
        std::vector<size_t> f16_offsets;
    } types[] = {{"q4_K", LLMKIT_QUANT_Q4_K, 256, 768, 144, {0, 2}},  // d, dmin
                 {"q5_K", LLMKIT_QUANT_Q5_K, 256, 768, 176, {0, 2}},
                 {"q6_K", LLMKIT_QUANT_Q6_K, 256, 768, 210, {208}},
                 {"q2_K", LLMKIT_QUANT_Q2_K, 256, 768, 84, {80, 82}},  // d, dmin
                 {"q3_K", LLMKIT_QUANT_Q3_K, 256, 768, 110, {108}},
                 {"iq4_xs", LLMKIT_QUANT_IQ4_XS, 256, 768, 136, {0}},
                 {"q5_1", LLMKIT_QUANT_Q5_1, 32, 4192, 24, {0, 2}},  // d, m
                 {"q4_0", LLMKIT_QUANT_Q4_0, 32, 4192, 18, {0}},
                 {"q4_1", LLMKIT_QUANT_Q4_1, 32, 4192, 20, {0, 2}},  // d, m
                 {"q5_0", LLMKIT_QUANT_Q5_0, 32, 4192, 22, {0}},
                 {"q8_0", LLMKIT_QUANT_Q8_0, 32, 4192, 34, {0}},
                 {"iq4_nl", LLMKIT_QUANT_IQ4_NL, 32, 4192, 18, {0}},
                 {"mxfp4", LLMKIT_QUANT_MXFP4, 32, 4192, 17, {}}};  // E8M0 byte set below
    for (const auto &tc : types) {
        const int64_t k = tc.k, block = tc.block;
        std::vector<uint8_t> w = random_blocks(tc.type, n, k, tc.block_bytes, tc.f16_offsets, rng);
        if (tc.type == LLMKIT_QUANT_MXFP4)  // scales 2^-16..2^15, and now and then the subnormal 2^-128 / 2^-127
            for (size_t o = 0; o < w.size(); o += tc.block_bytes)
                w[o] = uint8_t(rng() % 8 == 0 ? rng() % 2 : 112 + rng() % 32);
        std::vector<float> wd(static_cast<size_t>(n * k));
        const int64_t ws[2] = {n, k};
        const llmkit_tensor wdt = host_tensor(wd.data(), ws, 2, k_f32);
        REQUIRE(llmkit_dequantize(tc.type, w.data(), w.size(), &wdt, nullptr) == LLMKIT_OK);
        for (int64_t m : {1, 2, 5}) {
            std::vector<float> x(static_cast<size_t>(m * k));
            for (auto &v : x) v = normal(rng);
            std::vector<float> scalar;
            {
                const isa_scope s(matmul_isa::scalar);
                REQUIRE(s.ok);
                scalar = quant_matmul(tc.type, w, n, k, x, m, 1);
            }
            // The scalar result against float64 with x rounded to int8 as the
            // kernels round it (blocks of 256 or 32, d = max |x| / 127): only
            // float32 rounding remains, 2^-16 of sum |w| |xq| (k / block block
            // results and the 8 lanes summed in float32).
            for (int64_t i = 0; i < m; ++i) {
                const std::vector<double> xq = int8_activation_row(x, i, k, block);
                for (int64_t r = 0; r < n; ++r) {
                    const auto [ref, mag] = dot_and_magnitude(wd, r, xq);
                    INFO(tc.name << " m=" << m << " x row " << i << " weight row " << r);
                    REQUIRE(std::fabs(double(scalar[size_t(i * n + r)]) - ref) <= std::ldexp(mag, -16));
                }
            }
            const auto simd = llmkit_test::simd_isas();
            if (simd.empty()) {
                WARN("this CPU has no AVX2: only the scalar kernels were checked");
                continue;
            }
            for (const auto isa : simd) {
                const isa_scope s(isa);
                for (int threads : {1, 2, 3}) {
                    INFO(tc.name << " m=" << m << ", " << llmkit_quant_matmul_isa() << ", " << threads << " threads");
                    const auto y = quant_matmul(tc.type, w, n, k, x, m, threads);
                    CHECK(std::memcmp(scalar.data(), y.data(), scalar.size() * 4) == 0);
                }
            }
        }
    }
}
