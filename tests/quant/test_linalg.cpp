// GPTQ's and AWQ's float64 linear algebra (src/quant/linalg.hpp) against
// plain loops in long double, on random inputs, for both kernel builds (the
// baseline one and, where the CPU has it, AVX2 + FMA). Sizes are not
// multiples of the 64-wide panels or 256-wide blocks, so every edge is run.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "quant/formats.hpp"
#include "quant/linalg.hpp"

namespace la = llmkit::quant::linalg;

namespace {

std::vector<double> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<double> nd;
    std::vector<double> m(size_t(rows * cols));
    for (auto &v : m) v = nd(gen);
    return m;
}

// H = A^T A / k + 0.05 I: symmetric positive definite, condition ~1e3.
std::vector<double> random_spd(int64_t n, uint32_t seed) {
    const int64_t k = n + 7;
    const std::vector<double> a = random_matrix(k, n, seed);
    std::vector<double> h(size_t(n * n));
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) {
            long double s = 0;
            for (int64_t t = 0; t < k; ++t) s += (long double)a[size_t(t * n + i)] * a[size_t(t * n + j)];
            h[size_t(i * n + j)] = double(s / k) + (i == j ? 0.05 : 0.0);
        }
    return h;
}

// Runs the body once per kernel build this CPU has; names the build in the section.
template <class Body>
void for_each_isa(Body body) {
    const bool has_avx2 = la::use_best_isa(true);
    la::use_best_isa(false);
    SECTION("baseline kernels") { body(); }
    if (has_avx2) {
        la::use_best_isa(true);
        SECTION("avx2 kernels") { body(); }
    }
    la::use_best_isa(true);
}

}  // namespace

TEST_CASE("linalg: upper Cholesky factor of the inverse", "[linalg][gptq]") {
    for_each_isa([] {
        for (int64_t n : {1, 5, 64, 131, 300}) {
            const std::vector<double> h = random_spd(n, uint32_t(n));
            std::vector<double> u = h;
            REQUIRE(la::inverse_upper_cholesky(u.data(), n, 2));
            // U upper with a positive diagonal, and U^T U h = I.
            double worst = 0;
            for (int64_t i = 0; i < n; ++i) {
                CHECK(u[size_t(i * n + i)] > 0);
                for (int64_t j = 0; j < i; ++j) CHECK(u[size_t(i * n + j)] == 0.0);
            }
            std::vector<long double> utu(size_t(n * n), 0.0L);
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j < n; ++j)
                    for (int64_t t = 0; t <= std::min(i, j); ++t)
                        utu[size_t(i * n + j)] += (long double)u[size_t(t * n + i)] * u[size_t(t * n + j)];
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j < n; ++j) {
                    long double s = 0;
                    for (int64_t t = 0; t < n; ++t) s += utu[size_t(i * n + t)] * h[size_t(t * n + j)];
                    worst = std::max(worst, double(std::fabs(s - (i == j ? 1.0L : 0.0L))));
                }
            INFO("n = " << n);
            CHECK(worst < 1e-9);
        }
    });
}

TEST_CASE("linalg: a matrix that is not positive definite is refused", "[linalg][gptq]") {
    for_each_isa([] {
        const int64_t n = 70;
        std::vector<double> h = random_spd(n, 3);
        h[size_t(40 * n + 40)] = -1.0;  // a negative diagonal entry: not positive definite
        CHECK_FALSE(la::inverse_upper_cholesky(h.data(), n, 2));
        std::vector<double> nan_h = random_spd(n, 4);
        nan_h[size_t(3 * n + 3)] = NAN;
        CHECK_FALSE(la::inverse_upper_cholesky(nan_h.data(), n, 2));
    });
}

TEST_CASE("linalg: Gram matrix, block product and quadratic forms", "[linalg][gptq][awq]") {
    for_each_isa([] {
        const int64_t tokens = 37, n = 300, rows = 75, k = 45, nn = 130, ld = 141;
        // add_gram_lower: acc += x^T x on and below the diagonal.
        const std::vector<double> x = random_matrix(tokens, n, 11), acc0 = random_matrix(n, n, 12);
        std::vector<double> acc = acc0;
        la::add_gram_lower(acc.data(), x.data(), tokens, n, 2);
        double worst = 0;
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j <= i; ++j) {
                long double s = acc0[size_t(i * n + j)];
                for (int64_t t = 0; t < tokens; ++t) s += (long double)x[size_t(t * n + i)] * x[size_t(t * n + j)];
                worst = std::max(worst, double(std::fabs(s - acc[size_t(i * n + j)])));
            }
        CHECK(worst < 1e-12 * tokens * 10);

        // sub_product with row strides larger than the rows.
        const std::vector<double> a = random_matrix(rows, ld, 13), b = random_matrix(k, ld, 14), c0 = random_matrix(rows, ld, 15);
        std::vector<double> c = c0;
        la::sub_product(c.data(), ld, a.data(), ld, b.data(), ld, rows, k, nn, 2);
        worst = 0;
        for (int64_t i = 0; i < rows; ++i)
            for (int64_t j = 0; j < ld; ++j) {
                long double s = c0[size_t(i * ld + j)];
                if (j < nn)
                    for (int64_t t = 0; t < k; ++t) s -= (long double)a[size_t(i * ld + t)] * b[size_t(t * ld + j)];
                worst = std::max(worst, double(std::fabs(s - c[size_t(i * ld + j)])));
            }
        CHECK(worst < 1e-12 * k);

        // Quadratic forms d_r h d_r^T, float64 and float32, and with a row stride for h.
        const std::vector<double> h = random_spd(n, 16), d = random_matrix(rows, n, 17);
        std::vector<long double> ref(static_cast<size_t>(rows));
        long double total = 0;
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j < n; ++j)
                    ref[size_t(r)] += (long double)d[size_t(r * n + i)] * h[size_t(i * n + j)] * d[size_t(r * n + j)];
            total += ref[size_t(r)];
        }
        CHECK(std::fabs(la::quadratic_form_sum(d.data(), rows, n, h.data(), 2) - total) < 1e-12 * double(total));
        const std::vector<float> d32(d.begin(), d.end()), h32(h.begin(), h.end());
        long double total32 = 0;  // the float32 inputs' exact value
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j < n; ++j)
                    total32 += (long double)d32[size_t(r * n + i)] * h32[size_t(i * n + j)] * d32[size_t(r * n + j)];
        CHECK(std::fabs(la::quadratic_form_sum_f32(d32.data(), rows, n, h32.data(), 2) - total32) < 1e-5 * double(total32));
        // h as the top-left n' x n' block of a wider matrix.
        const int64_t sub = 200;
        std::vector<double> per_row(static_cast<size_t>(rows)), d_sub(size_t(rows * sub));
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < sub; ++j) d_sub[size_t(r * sub + j)] = d[size_t(r * n + j)];
        la::quadratic_forms(d_sub.data(), rows, sub, h.data(), n, per_row.data());
        for (int64_t r = 0; r < rows; r += 7) {
            long double s = 0;
            for (int64_t i = 0; i < sub; ++i)
                for (int64_t j = 0; j < sub; ++j)
                    s += (long double)d_sub[size_t(r * sub + i)] * h[size_t(i * n + j)] * d_sub[size_t(r * sub + j)];
            INFO("row " << r);
            CHECK(std::fabs(per_row[size_t(r)] - double(s)) < 1e-12 * double(s));
        }
    });
}

TEST_CASE("awq: the vectorized rounding error equals quantize_int4's", "[awq][int4]") {
    // Quotients around every level, at the half-way points, far outside the
    // range (|v| near and past 2^22 and 2^23), and infinite.
    std::mt19937 gen(5);
    std::uniform_real_distribution<float> u(-20.0f, 20.0f);
    std::vector<float> w, c;
    for (int i = 0; i < 4000; ++i) c.push_back(u(gen));
    for (int v = -40; v <= 40; ++v) c.push_back(float(v) + 0.5f), c.push_back(float(v) - 0.5f), c.push_back(float(v));
    for (float big : {4194303.5f, 4194304.0f, 4194305.0f, 6291456.5f, 8388607.0f, 8388608.0f, 8388609.0f, 1e20f,
                      3.4e38f, INFINITY})
        c.push_back(big), c.push_back(-big);
    for (float x : c) w.push_back(x * 0.75f + 0.125f);
    for (float scale : {1.0f, 0.0625f, 3.0f, 1e-30f, 0.0f})
        for (int zero : {0, 1, 7, 8, 15}) {
            std::vector<double> d(c.size());
            llmkit::quant::int4_rounding_error(w.data(), c.data(), int64_t(c.size()), scale, uint8_t(zero), d.data());
            for (size_t k = 0; k < c.size(); ++k) {
                const int q = llmkit::quant::quantize_int4(c[k], scale, uint8_t(zero));
                const double want = double(w[k]) - double(scale * float(q - zero));
                INFO("c = " << c[k] << ", scale = " << scale << ", zero = " << zero);
                REQUIRE(d[k] == want);
            }
        }
}
