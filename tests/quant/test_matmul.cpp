// Quantized matmul (llmkit_quant_matmul, llmkit_quant_matmul_int8) against a
// float64 matmul of the dequantized weights, with a tolerance derived from the
// int8 rounding of the activations; the scalar and AVX2 kernels, thread counts
// and tilings against each other (bit-identical); the C API's error cases.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "llmkit/llmkit.h"
#include "llmkit/llmkit.hpp"
#include "matmul_test_support.hpp"
#include "quant/matmul.hpp"
#include "support/test_support.hpp"

namespace {

using llmkit::quant::matmul_isa;
using llmkit_test::host_tensor;
using isa_scope = llmkit_test::matmul_isa_scope;
using llmkit_test::quant_matmul;

const llmkit_dtype k_f32 = LLMKIT_DTYPE_F32;
const llmkit_dtype k_i8 = {LLMKIT_DTYPE_INT, 8, 1};

// Random non-zero data with a scale that varies over four decades from row to
// row (and over one within a row) and about one outlier (x 25) per 100 values.
std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    std::vector<float> v(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        const float row_scale = std::pow(10.0f, -2.0f + 4.0f * unit(rng));
        for (int64_t j = 0; j < cols; ++j) {
            float e = normal(rng) * row_scale * (0.3f + unit(rng));
            if (unit(rng) < 0.01f) e *= 25.0f;
            if (e == 0.0f) e = row_scale * 1e-3f;
            v[size_t(r * cols + j)] = e;
        }
    }
    return v;
}

std::vector<uint8_t> quantize(int32_t type, std::vector<float> &w, int64_t rows, int64_t k) {
    const int64_t shape[2] = {rows, k};
    const llmkit_tensor src = host_tensor(w.data(), shape, 2, k_f32);
    size_t row = 0;
    REQUIRE(llmkit_quant_row_bytes(&row, type, k) == LLMKIT_OK);
    std::vector<uint8_t> q(row * size_t(rows));
    size_t written = 0;
    INFO(llmkit_last_error_message());
    REQUIRE(llmkit_quantize(&written, type, &src, q.data(), q.size(), nullptr) == LLMKIT_OK);
    return q;
}

std::vector<float> dequantize(int32_t type, const std::vector<uint8_t> &q, int64_t rows, int64_t k) {
    std::vector<float> w(size_t(rows * k));
    const int64_t shape[2] = {rows, k};
    const llmkit_tensor dst = host_tensor(w.data(), shape, 2, k_f32);
    INFO(llmkit_last_error_message());
    REQUIRE(llmkit_dequantize(type, q.data(), q.size(), &dst, nullptr) == LLMKIT_OK);
    return w;
}

// Checks y against float64 references of the dequantized weights wd [n, k]:
//  - x itself: |y - x wdᵀ| <= sum_j |wd[r, j]| * d_j / 2 (each x_j moves by at
//    most half a step of its int8 block, d = max |x| / 127 over the block),
//    plus float32 rounding;
//  - x rounded to int8 as the spec says (q = round-half-even(x / d) * d):
//    only float32 rounding remains, 2^-16 of sum |wd| |xq| (the kernels sum
//    k / block block results in float32, each with relative error 2^-24).
void check_against_reference(const std::vector<float> &y, const std::vector<float> &wd, const std::vector<float> &x,
                             int64_t m, int64_t n, int64_t k, int64_t act_block) {
    for (int64_t i = 0; i < m; ++i) {
        const float *xi = x.data() + i * k;
        std::vector<double> step(static_cast<size_t>(k)), xq(static_cast<size_t>(k));
        for (int64_t b = 0; b < k / act_block; ++b) {
            float amax = 0.0f;
            for (int64_t j = b * act_block; j < (b + 1) * act_block; ++j) amax = std::max(amax, std::fabs(xi[j]));
            const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            for (int64_t j = b * act_block; j < (b + 1) * act_block; ++j) {
                step[size_t(j)] = d;
                xq[size_t(j)] = double(std::nearbyint(xi[j] * id)) * double(d);
            }
        }
        for (int64_t r = 0; r < n; ++r) {
            const float *wr = wd.data() + r * k;
            double ref = 0, ref_q = 0, bound = 0, mag = 0, mag_q = 0;
            for (int64_t j = 0; j < k; ++j) {
                ref += double(wr[j]) * double(xi[j]);
                ref_q += double(wr[j]) * xq[size_t(j)];
                bound += std::fabs(double(wr[j])) * step[size_t(j)] / 2;
                mag += std::fabs(double(wr[j]) * double(xi[j]));
                mag_q += std::fabs(double(wr[j]) * xq[size_t(j)]);
            }
            const double got = y[size_t(i * n + r)];
            const double float_tol = std::ldexp(mag_q + mag, -16) + 1e-30;
            INFO("row " << i << ", output " << r << ": got " << got << ", float64 " << ref << ", with int8 x "
                        << ref_q);
            REQUIRE(std::fabs(got - ref_q) <= float_tol);
            REQUIRE(std::fabs(got - ref) <= bound + float_tol);
        }
    }
}

struct type_case {
    const char *name;
    int32_t type;
    int64_t block;
};
const type_case k_types[] = {{"q4_0", LLMKIT_QUANT_Q4_0, 32},     {"q4_1", LLMKIT_QUANT_Q4_1, 32},
                             {"q5_0", LLMKIT_QUANT_Q5_0, 32},     {"q5_1", LLMKIT_QUANT_Q5_1, 32},
                             {"q8_0", LLMKIT_QUANT_Q8_0, 32},     {"q2_K", LLMKIT_QUANT_Q2_K, 256},
                             {"q3_K", LLMKIT_QUANT_Q3_K, 256},    {"q4_K", LLMKIT_QUANT_Q4_K, 256},
                             {"q5_K", LLMKIT_QUANT_Q5_K, 256},    {"q6_K", LLMKIT_QUANT_Q6_K, 256},
                             {"iq4_nl", LLMKIT_QUANT_IQ4_NL, 32}, {"iq4_xs", LLMKIT_QUANT_IQ4_XS, 256},
                             {"mxfp4", LLMKIT_QUANT_MXFP4, 32}};


// int8 weights [n, k] with per-row scales, as PyTorch's per-channel quantization makes them.
void int8_rows(const std::vector<float> &w, int64_t n, int64_t k, std::vector<int8_t> &q, std::vector<float> &scale) {
    q.assign(size_t(n * k), 0);
    scale.assign(size_t(n), 0.0f);
    for (int64_t r = 0; r < n; ++r) {
        float amax = 0;
        for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(w[size_t(r * k + j)]));
        scale[size_t(r)] = amax / 127.0f;
        for (int64_t j = 0; j < k; ++j)
            q[size_t(r * k + j)] = int8_t(std::lround(w[size_t(r * k + j)] / scale[size_t(r)]));
    }
}

std::vector<float> matmul_int8(std::vector<int8_t> &q, std::vector<float> &scale, int64_t n, int64_t k,
                               std::vector<float> &x, int64_t m, int n_threads = 0) {
    std::vector<float> y(size_t(m * n), -12345.0f);
    const int64_t xs[2] = {m, k}, ys[2] = {m, n}, ws[2] = {n, k}, ss[1] = {n};
    const llmkit_tensor xt = host_tensor(x.data(), xs, 2, k_f32), yt = host_tensor(y.data(), ys, 2, k_f32);
    const llmkit_tensor wt = host_tensor(q.data(), ws, 2, k_i8), st = host_tensor(scale.data(), ss, 1, k_f32);
    llmkit_quant_matmul_options o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    o.n_threads = n_threads;
    INFO(llmkit_last_error_message());
    REQUIRE(llmkit_quant_matmul_int8(&xt, &wt, &st, &yt, &o) == LLMKIT_OK);
    return y;
}

}  // namespace

TEST_CASE("quant matmul: every type against float64 on the dequantized weights", "[quant][matmul]") {
    const int64_t ms[] = {1, 3, 16, 37};
    const int64_t ns[] = {1, 6, 67};
    const isa_scope automatic(matmul_isa::automatic);
    uint32_t seed = 1;
    for (const auto &tc : k_types) {
        const int64_t ks[] = {tc.block, 3 * tc.block};
        for (int64_t k : ks) {
            for (int64_t n : ns) {
                std::vector<float> w = random_matrix(n, k, seed++);
                const auto q = quantize(tc.type, w, n, k);
                const auto wd = dequantize(tc.type, q, n, k);
                for (int64_t m : ms) {
                    INFO(tc.name << " m=" << m << " n=" << n << " k=" << k << " isa="
                                 << llmkit_quant_matmul_isa());
                    std::vector<float> x = random_matrix(m, k, seed++);
                    const auto y = quant_matmul(tc.type, q, n, k, x, m);
                    check_against_reference(y, wd, x, m, n, k, tc.block);
                }
            }
        }
    }
}

TEST_CASE("quant matmul: int8 weights with per-row scales against float64", "[quant][matmul]") {
    const int64_t ms[] = {1, 3, 16, 37};
    for (int64_t k : {32, 96, 544}) {
        for (int64_t n : {1, 6, 67}) {
            std::vector<float> w = random_matrix(n, k, uint32_t(100 + k + n));
            std::vector<int8_t> q;
            std::vector<float> scale;
            int8_rows(w, n, k, q, scale);
            std::vector<float> wd(size_t(n * k));
            for (int64_t r = 0; r < n; ++r)
                for (int64_t j = 0; j < k; ++j)
                    wd[size_t(r * k + j)] = float(double(scale[size_t(r)]) * q[size_t(r * k + j)]);
            for (int64_t m : ms) {
                INFO("int8 m=" << m << " n=" << n << " k=" << k);
                std::vector<float> x = random_matrix(m, k, uint32_t(7 * m + k));
                const auto y = matmul_int8(q, scale, n, k, x, m);
                check_against_reference(y, wd, x, m, n, k, 32);
            }
        }
    }
}

TEST_CASE("quant matmul: scalar, AVX2 and AVX512-VNNI kernels, thread counts and m give identical bits",
          "[quant][matmul]") {
    const auto simd = llmkit_test::simd_isas();
    if (simd.empty()) WARN("this CPU has no AVX2: only the scalar kernels are compared across threads");
    const int64_t m = 37, n = 70;
    uint32_t seed = 500;
    for (const auto &tc : k_types) {
        const int64_t k = tc.block == 256 ? 512 : 224;
        std::vector<float> w = random_matrix(n, k, seed++);
        const auto q = quantize(tc.type, w, n, k);
        std::vector<float> x = random_matrix(m, k, seed++);
        std::vector<float> scalar;
        {
            const isa_scope s(matmul_isa::scalar);
            REQUIRE(s.ok);
            REQUIRE(std::string(llmkit_quant_matmul_isa()) == "scalar");
            scalar = quant_matmul(tc.type, q, n, k, x, m, 1);
            INFO(tc.name << " scalar, 3 threads");
            CHECK(std::memcmp(scalar.data(), quant_matmul(tc.type, q, n, k, x, m, 3).data(), scalar.size() * 4) == 0);
        }
        for (const auto isa : simd) {
            const isa_scope s(isa);
            REQUIRE(std::string(llmkit_quant_matmul_isa()) == llmkit::quant::matmul_isa_name(isa));
            for (int threads : {1, 2, 5}) {
                INFO(tc.name << " " << llmkit_quant_matmul_isa() << ", " << threads << " threads");
                const auto y = quant_matmul(tc.type, q, n, k, x, m, threads);
                CHECK(std::memcmp(scalar.data(), y.data(), scalar.size() * 4) == 0);
            }
        }
        // One x row alone (the GEMV path) gives that row's bits of the GEMM.
        for (int64_t i : {0, 17, 36}) {
            INFO(tc.name << " row " << i << " alone");
            std::vector<float> xi(x.begin() + i * k, x.begin() + (i + 1) * k);
            const auto yi = quant_matmul(tc.type, q, n, k, xi, 1, 2);
            CHECK(std::memcmp(yi.data(), scalar.data() + i * n, size_t(n) * 4) == 0);
        }
    }
    // int8 rows too.
    const int64_t k = 160;
    std::vector<float> w = random_matrix(n, k, 9);
    std::vector<int8_t> q;
    std::vector<float> scale;
    int8_rows(w, n, k, q, scale);
    std::vector<float> x = random_matrix(m, k, 10);
    std::vector<float> scalar;
    {
        const isa_scope s(matmul_isa::scalar);
        scalar = matmul_int8(q, scale, n, k, x, m, 1);
    }
    for (const auto isa : simd) {
        const isa_scope s(isa);
        for (int threads : {1, 2, 5}) {
            INFO("int8 " << llmkit_quant_matmul_isa() << ", " << threads << " threads");
            const auto y = matmul_int8(q, scale, n, k, x, m, threads);
            CHECK(std::memcmp(scalar.data(), y.data(), scalar.size() * 4) == 0);
        }
    }
}

// The GEMV (fewer than 8 x rows) gives each thread a contiguous span of row
// tiles, and a thread that finishes early takes tiles from the back of the
// others' spans. Every tile must be computed once: a skipped one leaves
// quant_matmul's -12345 in y. More threads than this machine has cores make
// threads fall behind, so the taking from the back happens too.
TEST_CASE("quant matmul: the GEMV's spans of row tiles cover every row at any thread count", "[quant][matmul]") {
    const int64_t n = 4 * 61 + 3;  // tasks of whole tiles, the last one partial
    uint32_t seed = 700;
    for (const auto &tc : k_types) {
        const int64_t k = tc.block == 256 ? 256 : 96;
        std::vector<float> w = random_matrix(n, k, seed++);
        const auto q = quantize(tc.type, w, n, k);
        for (int64_t m : {1, 4}) {
            std::vector<float> x = random_matrix(m, k, seed++);
            const auto one = quant_matmul(tc.type, q, n, k, x, m, 1);
            for (int threads : {2, 3, 5, 8, 13})
                for (int rep = 0; rep < 4; ++rep) {
                    INFO(tc.name << " m = " << m << ", " << threads << " threads, repetition " << rep);
                    CHECK(std::memcmp(one.data(), quant_matmul(tc.type, q, n, k, x, m, threads).data(), one.size() * 4) == 0);
                }
        }
    }
}

// The AVX2 kernels walk the weights in tiles (4 rows for one x row, 2 rows x 4
// x rows otherwise) and the 32-element formats two blocks a step; every edge
// of that walk (a partial tile, an odd block count, a lone block) must give
// the scalar bits, at any thread count.
TEST_CASE("quant matmul: tile and block-pair edges give the scalar bits", "[quant][matmul]") {
    const auto simd = llmkit_test::simd_isas();
    const int64_t ns[] = {1, 2, 3, 5, 7, 9, 13};
    const int64_t ms[] = {1, 2, 3, 5};  // 3: a pair of activation rows and an odd one (Q4_0 / Q4_1 fold_tile)
    uint32_t seed = 900;
    auto compare = [&](const std::string &what, const std::function<std::vector<float>(int)> &run) {
        std::vector<float> scalar;
        {
            const isa_scope s(matmul_isa::scalar);
            REQUIRE(s.ok);
            scalar = run(1);
            INFO(what << ", scalar, 2 threads");
            CHECK(std::memcmp(scalar.data(), run(2).data(), scalar.size() * 4) == 0);
        }
        for (const auto isa : simd) {
            const isa_scope s(isa);
            for (int threads : {1, 2, 3}) {
                INFO(what << ", " << llmkit_quant_matmul_isa() << ", " << threads << " threads");
                const auto y = run(threads);
                CHECK(std::memcmp(scalar.data(), y.data(), scalar.size() * 4) == 0);
            }
        }
    };
    for (const auto &tc : k_types) {
        const std::vector<int64_t> ks =
            // 2464 = 77 blocks: Q8_0's GEMM scale chunks of 64, then 13 (8 at a time, then 5 one by one);
            // Q4_0's GEMV scales 8 blocks at a time, then a pair and a lone block. 4384 = 137 blocks:
            // past the GEMV's chunk of 128 blocks, then 8 + 1.
            tc.block == 32 ? std::vector<int64_t>{32, 64, 160, 288, 2464, 4384} : std::vector<int64_t>{256, 768};
        for (int64_t k : ks)
            for (int64_t n : ns) {
                std::vector<float> w = random_matrix(n, k, seed++);
                const auto q = quantize(tc.type, w, n, k);
                for (int64_t m : ms) {
                    std::vector<float> x = random_matrix(m, k, seed++);
                    compare(std::string(tc.name) + " m=" + std::to_string(m) + " n=" + std::to_string(n) +
                                " k=" + std::to_string(k),
                            [&](int threads) { return quant_matmul(tc.type, q, n, k, x, m, threads); });
                }
            }
    }
    for (int64_t k : {32, 64, 160})
        for (int64_t n : ns) {
            std::vector<float> w = random_matrix(n, k, seed++);
            std::vector<int8_t> q;
            std::vector<float> scale;
            int8_rows(w, n, k, q, scale);
            for (int64_t m : ms) {
                std::vector<float> x = random_matrix(m, k, seed++);
                compare("int8 m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k),
                        [&](int threads) { return matmul_int8(q, scale, n, k, x, m, threads); });
            }
        }
}

// The prefill sizes bench_qmatmul.py times (M = 16, 32, 128: many full
// activation-row tiles, none partial) and one just past them (M = 129, a lone
// last row), with a row count that leaves a partial weight tile and an odd
// block count: float64 agreement, the scalar bits at 1 and 2 threads, and
// the GEMV bits of the first and last rows.
TEST_CASE("quant matmul: prefill sizes M = 16, 32, 128, 129 against float64 and the scalar bits", "[quant][matmul]") {
    std::vector<matmul_isa> isas = llmkit_test::simd_isas();
    if (isas.empty()) isas.push_back(matmul_isa::scalar);
    const int64_t n = 11;
    uint32_t seed = 1300;
    for (const auto &tc : k_types) {
        const int64_t k = tc.block == 32 ? 5 * 32 : 2 * 256;
        std::vector<float> w = random_matrix(n, k, seed++);
        const auto q = quantize(tc.type, w, n, k);
        const auto wd = dequantize(tc.type, q, n, k);
        for (int64_t m : {16, 32, 128, 129}) {
            INFO(tc.name << " m=" << m << " n=" << n << " k=" << k);
            std::vector<float> x = random_matrix(m, k, seed++);
            std::vector<float> scalar;
            {
                const isa_scope s(matmul_isa::scalar);
                REQUIRE(s.ok);
                scalar = quant_matmul(tc.type, q, n, k, x, m, 1);
            }
            check_against_reference(scalar, wd, x, m, n, k, tc.block);
            for (const auto isa : isas) {
                const isa_scope s(isa);
                for (int threads : {1, 2}) {
                    INFO(llmkit_quant_matmul_isa() << ", " << threads << " threads");
                    CHECK(std::memcmp(scalar.data(), quant_matmul(tc.type, q, n, k, x, m, threads).data(),
                                      scalar.size() * 4) == 0);
                }
                for (int64_t i : {int64_t(0), m - 1}) {
                    INFO(llmkit_quant_matmul_isa() << ", row " << i << " alone");
                    std::vector<float> xi(x.begin() + i * k, x.begin() + (i + 1) * k);
                    CHECK(std::memcmp(quant_matmul(tc.type, q, n, k, xi, 1, 1).data(), scalar.data() + i * n,
                                      size_t(n) * 4) == 0);
                }
            }
        }
    }
}

TEST_CASE("quant matmul: strided x and y, 1-D x, empty shapes", "[quant][matmul]") {
    const int64_t m = 5, n = 9, k = 64;
    std::vector<float> w = random_matrix(n, k, 77);
    const auto q = quantize(LLMKIT_QUANT_Q8_0, w, n, k);
    std::vector<float> x = random_matrix(m, k, 78);
    const auto expect = quant_matmul(LLMKIT_QUANT_Q8_0, q, n, k, x, m);

    // x transposed in memory (column stride m), y written transposed (row stride 1).
    std::vector<float> xt(size_t(m * k));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < k; ++j) xt[size_t(j * m + i)] = x[size_t(i * k + j)];
    std::vector<float> yt(size_t(m * n), 0.0f);
    const int64_t xs[2] = {m, k}, xst[2] = {1, m}, ys[2] = {m, n}, yst[2] = {1, m};
    const llmkit_tensor xv = host_tensor(xt.data(), xs, 2, k_f32, xst), yv = host_tensor(yt.data(), ys, 2, k_f32, yst);
    REQUIRE(llmkit_quant_matmul(&xv, LLMKIT_QUANT_Q8_0, q.data(), q.size(), n, k, &yv, nullptr) == LLMKIT_OK);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t r = 0; r < n; ++r) CHECK(yt[size_t(r * m + i)] == expect[size_t(i * n + r)]);

    // A 1-D x gives a 1-D y equal to that row of the 2-D result.
    std::vector<float> y1(static_cast<size_t>(n));
    const int64_t x1s[1] = {k}, y1s[1] = {n};
    const llmkit_tensor x1 = host_tensor(x.data() + 2 * k, x1s, 1, k_f32), y1t = host_tensor(y1.data(), y1s, 1, k_f32);
    REQUIRE(llmkit_quant_matmul(&x1, LLMKIT_QUANT_Q8_0, q.data(), q.size(), n, k, &y1t, nullptr) == LLMKIT_OK);
    CHECK(std::memcmp(y1.data(), expect.data() + 2 * n, size_t(n) * 4) == 0);

    // y may be x's own memory: x is read completely before y is written.
    std::vector<float> xy(x.begin(), x.begin() + k);
    const int64_t xys[1] = {n};
    const llmkit_tensor xa = host_tensor(xy.data(), x1s, 1, k_f32), ya = host_tensor(xy.data(), xys, 1, k_f32);
    REQUIRE(llmkit_quant_matmul(&xa, LLMKIT_QUANT_Q8_0, q.data(), q.size(), n, k, &ya, nullptr) == LLMKIT_OK);
    CHECK(std::memcmp(xy.data(), expect.data(), size_t(n) * 4) == 0);

    // No rows, no x rows, k = 0 (y is then all zeros).
    const int64_t x0s[2] = {0, k}, y0s[2] = {0, n};
    const llmkit_tensor x0 = host_tensor(x.data(), x0s, 2, k_f32), y0 = host_tensor(yt.data(), y0s, 2, k_f32);
    CHECK(llmkit_quant_matmul(&x0, LLMKIT_QUANT_Q8_0, q.data(), q.size(), n, k, &y0, nullptr) == LLMKIT_OK);
    const int64_t yns[2] = {m, 0};
    const llmkit_tensor yn = host_tensor(yt.data(), yns, 2, k_f32), xfull = host_tensor(x.data(), xs, 2, k_f32);
    CHECK(llmkit_quant_matmul(&xfull, LLMKIT_QUANT_Q8_0, nullptr, 0, 0, k, &yn, nullptr) == LLMKIT_OK);
    const int64_t xks[2] = {m, 0};
    std::fill(yt.begin(), yt.end(), 1.0f);
    const llmkit_tensor xk = host_tensor(x.data(), xks, 2, k_f32), yk = host_tensor(yt.data(), ys, 2, k_f32);
    CHECK(llmkit_quant_matmul(&xk, LLMKIT_QUANT_Q8_0, q.data(), 0, n, 0, &yk, nullptr) == LLMKIT_OK);
    for (float v : yt) CHECK(v == 0.0f);
}

TEST_CASE("quant matmul: bad arguments are errors that name the problem", "[quant][matmul]") {
    const int64_t m = 2, n = 3, k = 64;
    std::vector<float> w = random_matrix(n, k, 3);
    auto q = quantize(LLMKIT_QUANT_Q4_0, w, n, k);
    std::vector<float> x = random_matrix(m, k, 4), y(size_t(m * n), 7.0f);
    const int64_t xs[2] = {m, k}, ys[2] = {m, n};
    const llmkit_tensor xt = host_tensor(x.data(), xs, 2, k_f32), yt = host_tensor(y.data(), ys, 2, k_f32);
    auto call = [&](const llmkit_tensor *xp, int32_t type, const void *wp, size_t wb, int64_t rows, int64_t kk,
                    const llmkit_tensor *yp, const llmkit_quant_matmul_options *o = nullptr) {
        return llmkit_quant_matmul(xp, type, wp, wb, rows, kk, yp, o);
    };
    auto message = [] { return std::string(llmkit_last_error_message()); };

    CHECK(call(nullptr, LLMKIT_QUANT_Q4_0, q.data(), q.size(), n, k, &yt) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, q.data(), q.size(), n, k, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, nullptr, q.size(), n, k, &yt) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(call(&xt, 4, q.data(), q.size(), n, k, &yt) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(call(&xt, LLMKIT_QUANT_TQ2_0, q.data(), q.size(), n, k, &yt) == LLMKIT_ERROR_UNSUPPORTED);
    CHECK(message().find("tq2_0") != std::string::npos);
    CHECK(message().find("iq4_xs") != std::string::npos);  // the list of supported types
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, q.data(), q.size() - 1, n, k, &yt) == LLMKIT_ERROR_SHAPE);
    CHECK(message().find("w_bytes") != std::string::npos);
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, q.data(), q.size(), n, 48, &yt) == LLMKIT_ERROR_SHAPE);
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, q.data(), q.size(), -1, k, &yt) == LLMKIT_ERROR_SHAPE);
    // k must match x.
    const auto q96 = quantize(LLMKIT_QUANT_Q4_0, w, 1, 96);
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, q96.data(), q96.size(), 1, 96, &yt) == LLMKIT_ERROR_SHAPE);
    // A huge n_rows whose byte count overflows.
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, q.data(), q.size(), INT64_MAX / 2, k, &yt) == LLMKIT_ERROR_SHAPE);
    // y of the wrong shape; y rank different from x's.
    const int64_t bad_ys[2] = {m, n + 1};
    const llmkit_tensor ybad = host_tensor(y.data(), bad_ys, 2, k_f32);
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, q.data(), q.size(), n, k, &ybad) == LLMKIT_ERROR_SHAPE);
    const int64_t y1s[1] = {n};
    const llmkit_tensor y1 = host_tensor(y.data(), y1s, 1, k_f32);
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, q.data(), q.size(), n, k, &y1) == LLMKIT_ERROR_SHAPE);
    // dtypes.
    std::vector<double> xd(size_t(m * k), 1.0);
    const llmkit_tensor xdt = host_tensor(xd.data(), xs, 2, llmkit_dtype{LLMKIT_DTYPE_FLOAT, 64, 1});
    CHECK(call(&xdt, LLMKIT_QUANT_Q4_0, q.data(), q.size(), n, k, &yt) == LLMKIT_ERROR_DTYPE);
    // Device memory.
    llmkit_tensor xgpu = xt;
    xgpu.device.device_type = LLMKIT_DEVICE_CUDA;
    CHECK(call(&xgpu, LLMKIT_QUANT_Q4_0, q.data(), q.size(), n, k, &yt) == LLMKIT_ERROR_NO_DEVICE);
    // Non-finite x: refused, y untouched.
    for (float bad : {NAN, INFINITY, -INFINITY}) {
        x[size_t(1 * k + 5)] = bad;
        CHECK(call(&xt, LLMKIT_QUANT_Q4_0, q.data(), q.size(), n, k, &yt) == LLMKIT_ERROR_NON_FINITE);
        CHECK(message().find("x[1, 5]") != std::string::npos);
        for (float v : y) CHECK(v == 7.0f);
    }
    x[size_t(1 * k + 5)] = 0.5f;
    // y overlapping the weights, or itself.
    std::vector<float> wy(q.size());  // a float buffer holding the blocks, with y inside it
    std::memcpy(wy.data(), q.data(), q.size());
    const llmkit_tensor yw = host_tensor(wy.data(), ys, 2, k_f32);
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, wy.data(), q.size(), n, k, &yw) == LLMKIT_ERROR_INVALID_ARGUMENT);
    const int64_t zero_strides[2] = {0, 1};
    const llmkit_tensor yz = host_tensor(y.data(), ys, 2, k_f32, zero_strides);
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, q.data(), q.size(), n, k, &yz) == LLMKIT_ERROR_INVALID_ARGUMENT);
    // Options.
    llmkit_quant_matmul_options o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    o.n_threads = -1;
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, q.data(), q.size(), n, k, &yt, &o) == LLMKIT_ERROR_INVALID_ARGUMENT);
    o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    o.struct_size = sizeof(o) + 4;
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, q.data(), q.size(), n, k, &yt, &o) == LLMKIT_ERROR_INVALID_ARGUMENT);
    o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    CHECK(call(&xt, LLMKIT_QUANT_Q4_0, q.data(), q.size(), n, k, &yt, &o) == LLMKIT_OK);

    CHECK(llmkit_quant_matmul_supported(LLMKIT_QUANT_Q4_K) == 1);
    CHECK(llmkit_quant_matmul_supported(LLMKIT_QUANT_Q8_0) == 1);
    CHECK(llmkit_quant_matmul_supported(LLMKIT_QUANT_MXFP4) == 1);
    CHECK(llmkit_quant_matmul_supported(LLMKIT_QUANT_TQ2_0) == 0);
    CHECK(llmkit_quant_matmul_supported(LLMKIT_QUANT_Q2_K) == 1);
    CHECK(llmkit_quant_matmul_supported(LLMKIT_QUANT_Q3_K) == 1);
    CHECK(llmkit_quant_matmul_supported(LLMKIT_QUANT_Q5_1) == 1);
    CHECK(llmkit_quant_matmul_supported(LLMKIT_QUANT_IQ4_XS) == 1);
    CHECK(llmkit_quant_matmul_supported(LLMKIT_QUANT_Q8_1) == 0);
    CHECK(llmkit_quant_matmul_supported(LLMKIT_QUANT_Q8_K) == 0);
    CHECK(llmkit_quant_matmul_supported(-1) == 0);
}

TEST_CASE("quant matmul int8: bad arguments", "[quant][matmul]") {
    const int64_t m = 2, n = 3, k = 64;
    std::vector<int8_t> q(size_t(n * k), 1);
    std::vector<float> scale(size_t(n), 0.5f), x(size_t(m * k), 1.0f), y(size_t(m * n));
    const int64_t xs[2] = {m, k}, ys[2] = {m, n}, ws[2] = {n, k}, ss[1] = {n};
    const llmkit_tensor xt = host_tensor(x.data(), xs, 2, k_f32), yt = host_tensor(y.data(), ys, 2, k_f32);
    const llmkit_tensor wt = host_tensor(q.data(), ws, 2, k_i8), st = host_tensor(scale.data(), ss, 1, k_f32);
    REQUIRE(llmkit_quant_matmul_int8(&xt, &wt, &st, &yt, nullptr) == LLMKIT_OK);
    for (float v : y) CHECK(v == 32.0f);  // 64 * 1 * 1 * 0.5, exact

    CHECK(llmkit_quant_matmul_int8(&xt, nullptr, &st, &yt, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_quant_matmul_int8(&xt, &wt, nullptr, &yt, nullptr) == LLMKIT_ERROR_NULL_POINTER);
    const llmkit_tensor wf = host_tensor(x.data(), ws, 2, k_f32);
    CHECK(llmkit_quant_matmul_int8(&xt, &wf, &st, &yt, nullptr) == LLMKIT_ERROR_DTYPE);
    const int64_t ws48[2] = {n, 48}, xs48[2] = {m, 48};
    const llmkit_tensor w48 = host_tensor(q.data(), ws48, 2, k_i8), x48 = host_tensor(x.data(), xs48, 2, k_f32);
    CHECK(llmkit_quant_matmul_int8(&x48, &w48, &st, &yt, nullptr) == LLMKIT_ERROR_SHAPE);
    CHECK(std::string(llmkit_last_error_message()).find("multiple of 32") != std::string::npos);
    const int64_t ss2[1] = {n - 1};
    const llmkit_tensor s2 = host_tensor(scale.data(), ss2, 1, k_f32);
    CHECK(llmkit_quant_matmul_int8(&xt, &wt, &s2, &yt, nullptr) == LLMKIT_ERROR_SHAPE);
    const int64_t col2[2] = {2 * k, 2};  // refused before anything is read
    const llmkit_tensor wcol = host_tensor(q.data(), ws, 2, k_i8, col2);
    CHECK(llmkit_quant_matmul_int8(&xt, &wcol, &st, &yt, nullptr) == LLMKIT_ERROR_SHAPE);
    x[3] = NAN;
    CHECK(llmkit_quant_matmul_int8(&xt, &wt, &st, &yt, nullptr) == LLMKIT_ERROR_NON_FINITE);
}

TEST_CASE("quant matmul: the C++ face", "[quant][matmul]") {
    const int64_t m = 3, n = 7, k = 256;
    std::vector<float> w = random_matrix(n, k, 21);
    const auto q = quantize(LLMKIT_QUANT_Q4_K, w, n, k);
    std::vector<float> x = random_matrix(m, k, 22);
    const std::vector<float> y = llmkit::quant_matmul(LLMKIT_QUANT_Q4_K, q, n, k, x.data(), m, 2);
    const auto expect = quant_matmul(LLMKIT_QUANT_Q4_K, q, n, k, x, m);
    REQUIRE(y.size() == expect.size());
    CHECK(std::memcmp(y.data(), expect.data(), y.size() * 4) == 0);
    try {
        llmkit::quant_matmul(LLMKIT_QUANT_Q4_K, q, n, 512, x.data(), m);
        FAIL("no exception");
    } catch (const llmkit::error &e) {
        CHECK(e.status() == LLMKIT_ERROR_SHAPE);
    }
}

// The thread pool hands jobs over by spinning workers and closes a job to
// workers that arrive after the last task (src/core/threads.cpp): many
// back-to-back GEMVs, from two caller threads at once, with the thread count
// changing from call to call (so workers are asked, skipped, or arrive late),
// must each give the 1-thread bits.
TEST_CASE("quant matmul: back-to-back calls from two threads at changing thread counts", "[quant][matmul]") {
    const int64_t n = 64, k = 256;
    std::vector<float> w = random_matrix(n, k, 31);
    const auto q = quantize(LLMKIT_QUANT_Q4_0, w, n, k);
    std::vector<float> x = random_matrix(1, k, 32);
    const auto expect = quant_matmul(LLMKIT_QUANT_Q4_0, q, n, k, x, 1, 1);
    // Catch2's assertions are not thread-safe: the callers only count mismatches.
    auto caller = [&](int first, int *bad) {
        std::vector<float> y(static_cast<size_t>(n));
        const int64_t xs[1] = {k}, ys[1] = {n};
        const llmkit_tensor xt = host_tensor(x.data(), xs, 1, k_f32), yt = host_tensor(y.data(), ys, 1, k_f32);
        for (int i = 0; i < 400; ++i) {
            llmkit_quant_matmul_options o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
            o.n_threads = 1 + (first + i) % 4;
            std::fill(y.begin(), y.end(), -1.0f);
            if (llmkit_quant_matmul(&xt, LLMKIT_QUANT_Q4_0, q.data(), q.size(), n, k, &yt, &o) != LLMKIT_OK ||
                std::memcmp(y.data(), expect.data(), y.size() * 4) != 0)
                ++*bad;
        }
    };
    int bad0 = 0, bad1 = 0;
    std::thread other(caller, 1, &bad1);
    caller(0, &bad0);
    other.join();
    CHECK(bad0 == 0);
    CHECK(bad1 == 0);
}
