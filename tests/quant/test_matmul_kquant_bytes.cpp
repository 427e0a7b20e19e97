// K-quant weights made of random bytes (every bit of the packed 6-bit scales
// and mins, Q5_K's fifth bits, Q6_K's signed scales; random finite float16
// block scales), not only the patterns a quantizer writes: the AVX2 kernels
// must give the scalar kernels' bits for GEMV (m = 1, one weight row per
// tile) and GEMM tiles, at 1-3 threads, and the scalar result must agree with
// a float64 product of llmkit_dequantize's weights and the int8-rounded x.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "llmkit/llmkit.h"
#include "quant/matmul.hpp"
#include "support/test_support.hpp"

namespace {

using llmkit::quant::matmul_isa;
using llmkit_test::host_tensor;

const llmkit_dtype k_f32 = LLMKIT_DTYPE_F32;

// A random finite float16, 2^-10 <= |v| < 2^6, as bits.
uint16_t random_f16(std::mt19937 &rng) {
    const uint32_t sign = rng() & 1u, exponent = 5 + rng() % 16, mantissa = rng() & 0x3FFu;
    return uint16_t(sign << 15 | exponent << 10 | mantissa);
}

// n rows of k elements of `type` in random bytes, with the block's float16
// scales (at `f16_offsets` within each block) made finite.
std::vector<uint8_t> random_blocks(int32_t type, int64_t n, int64_t k, std::mt19937 &rng) {
    size_t row = 0;
    REQUIRE(llmkit_quant_row_bytes(&row, type, k) == LLMKIT_OK);
    std::vector<uint8_t> w(row * size_t(n));
    for (auto &b : w) b = uint8_t(rng());
    const size_t block = row / size_t(k / 256);
    const std::vector<size_t> f16_offsets = type == LLMKIT_QUANT_Q6_K ? std::vector<size_t>{208}
                                                                      : std::vector<size_t>{0, 2};  // d, dmin
    for (size_t o = 0; o < w.size(); o += block)
        for (size_t f : f16_offsets) {
            const uint16_t h = random_f16(rng);
            std::memcpy(&w[o + f], &h, 2);
        }
    return w;
}

std::vector<float> matmul(int32_t type, const std::vector<uint8_t> &w, int64_t n, int64_t k, std::vector<float> &x,
                          int64_t m, int n_threads) {
    std::vector<float> y(size_t(m * n), -12345.0f);
    const int64_t xs[2] = {m, k}, ys[2] = {m, n};
    const llmkit_tensor xt = host_tensor(x.data(), xs, 2, k_f32), yt = host_tensor(y.data(), ys, 2, k_f32);
    llmkit_quant_matmul_options o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    o.n_threads = n_threads;
    INFO(llmkit_last_error_message());
    REQUIRE(llmkit_quant_matmul(&xt, type, w.data(), w.size(), n, k, &yt, &o) == LLMKIT_OK);
    return y;
}

struct isa_scope {
    explicit isa_scope(matmul_isa isa) { ok = llmkit::quant::matmul_force_isa(isa); }
    ~isa_scope() { llmkit::quant::matmul_force_isa(matmul_isa::automatic); }
    bool ok = false;
};

}  // namespace

TEST_CASE("quant matmul: K-quant blocks of random bytes, AVX2 and scalar bits, float64", "[quant][matmul]") {
    std::mt19937 rng(2026);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t n = 37, k = 768;  // 37 rows: partial 2-row GEMM tiles; 3 blocks a row
    const struct {
        const char *name;
        int32_t type;
    } types[] = {{"q4_K", LLMKIT_QUANT_Q4_K}, {"q5_K", LLMKIT_QUANT_Q5_K}, {"q6_K", LLMKIT_QUANT_Q6_K}};
    for (const auto &tc : types) {
        const std::vector<uint8_t> w = random_blocks(tc.type, n, k, rng);
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
                scalar = matmul(tc.type, w, n, k, x, m, 1);
            }
            // The scalar result against float64 with x rounded to int8 as the
            // kernels round it (blocks of 256, d = max |x| / 127): only float32
            // rounding remains, 2^-16 of sum |w| |xq| (k / 256 block results
            // and the 8 lanes summed in float32).
            for (int64_t i = 0; i < m; ++i) {
                std::vector<double> xq(static_cast<size_t>(k));
                for (int64_t b = 0; b < k / 256; ++b) {
                    float amax = 0.0f;
                    for (int64_t j = 256 * b; j < 256 * (b + 1); ++j)
                        amax = std::fmax(amax, std::fabs(x[size_t(i * k + j)]));
                    const float d = amax / 127.0f, id = 1.0f / d;
                    for (int64_t j = 256 * b; j < 256 * (b + 1); ++j)
                        xq[size_t(j)] = double(std::nearbyint(x[size_t(i * k + j)] * id)) * double(d);
                }
                for (int64_t r = 0; r < n; ++r) {
                    double ref = 0, mag = 0;
                    for (int64_t j = 0; j < k; ++j) {
                        ref += double(wd[size_t(r * k + j)]) * xq[size_t(j)];
                        mag += std::fabs(double(wd[size_t(r * k + j)]) * xq[size_t(j)]);
                    }
                    INFO(tc.name << " m=" << m << " x row " << i << " weight row " << r);
                    REQUIRE(std::fabs(double(scalar[size_t(i * n + r)]) - ref) <= std::ldexp(mag, -16));
                }
            }
            const isa_scope s(matmul_isa::avx2);
            if (!s.ok) {
                WARN("this CPU has no AVX2: only the scalar kernels were checked");
                continue;
            }
            for (int threads : {1, 2, 3}) {
                INFO(tc.name << " m=" << m << ", avx2, " << threads << " threads");
                const auto y = matmul(tc.type, w, n, k, x, m, threads);
                CHECK(std::memcmp(scalar.data(), y.data(), scalar.size() * 4) == 0);
            }
        }
    }
}
