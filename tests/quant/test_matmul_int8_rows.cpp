// llmkit_quant_matmul_int8 with options.x_rounding = LLMKIT_QUANT_X_ROWS: x
// rounded to 7-bit integers once per row, each output one exact int32 sum.
// Checked bit for bit against the documented formula computed here with
// 64-bit integers, against float64 within the row-rounding bound, the same
// bits through the AVX512-VNNI tiles, oneDNN and the portable loops, for
// any thread count and any m; and the errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "llmkit/llmkit.h"
#include "quant/matmul.hpp"
#include "matmul_test_support.hpp"
#include "support/test_support.hpp"

using llmkit_test::host_tensor;

namespace {

const llmkit_dtype k_f32 = LLMKIT_DTYPE_F32;
const llmkit_dtype k_i8 = {LLMKIT_DTYPE_INT, 8, 1};

struct problem {
    int64_t m, n, k;
    std::vector<float> x, scale;
    std::vector<int8_t> w;
};

// Random x (normal, one row all zeros when m > 2, one row with an outlier),
// int8 weights over the full range, positive scales.
problem make(int64_t m, int64_t n, int64_t k, uint32_t seed) {
    problem p{m, n, k, std::vector<float>(size_t(m * k)), std::vector<float>(size_t(n)), std::vector<int8_t>(size_t(n * k))};
    std::mt19937 rng(seed);
    std::normal_distribution<float> g;
    std::uniform_int_distribution<int> q(-127, 127);
    for (float &v : p.x) v = g(rng);
    if (m > 2) std::fill(p.x.begin() + k, p.x.begin() + 2 * k, 0.0f);
    p.x[size_t(k / 3)] = 40.0f;  // row 0's outlier sets its scale
    for (auto &v : p.w) v = int8_t(q(rng));
    for (float &s : p.scale) s = 0.002f + 0.01f * std::fabs(g(rng));
    return p;
}

std::vector<float> run(problem &p, int n_threads, int32_t rounding = LLMKIT_QUANT_X_ROWS,
                       llmkit_status expect = LLMKIT_OK) {
    std::vector<float> y(size_t(p.m * p.n), -12345.0f);
    const int64_t xs[2] = {p.m, p.k}, ys[2] = {p.m, p.n}, ws[2] = {p.n, p.k}, ss[1] = {p.n};
    const llmkit_tensor xt = host_tensor(p.x.data(), xs, 2, k_f32), yt = host_tensor(y.data(), ys, 2, k_f32);
    const llmkit_tensor wt = host_tensor(p.w.data(), ws, 2, k_i8), st = host_tensor(p.scale.data(), ss, 1, k_f32);
    llmkit_quant_matmul_options o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    o.n_threads = n_threads;
    o.x_rounding = rounding;
    INFO(llmkit_last_error_message());
    REQUIRE(llmkit_quant_matmul_int8(&xt, &wt, &st, &yt, &o) == expect);
    return y;
}

// The documented result: d = max |x row| / 63 (float), q = nearbyint(x * (63 / max))
// in double, in [-63, 63], y = (d * scale) * float(sum q w) with the sum in int64.
std::vector<float> formula(const problem &p) {
    std::vector<float> y(size_t(p.m * p.n));
    for (int64_t i = 0; i < p.m; ++i) {
        float amax = 0;
        for (int64_t j = 0; j < p.k; ++j) amax = std::fmax(amax, std::fabs(p.x[size_t(i * p.k + j)]));
        const double inv = amax > 0 ? 63.0 / double(amax) : 0.0;
        const float d = amax / 63.0f;
        std::vector<int64_t> q(size_t(p.k));
        for (int64_t j = 0; j < p.k; ++j)
            q[size_t(j)] = int64_t(std::fmin(63.0, std::fmax(-63.0, std::nearbyint(double(p.x[size_t(i * p.k + j)]) * inv))));
        for (int64_t r = 0; r < p.n; ++r) {
            int64_t s = 0;
            for (int64_t j = 0; j < p.k; ++j) s += q[size_t(j)] * p.w[size_t(r * p.k + j)];
            y[size_t(i * p.n + r)] = (d * p.scale[size_t(r)]) * float(s);
        }
    }
    return y;
}

bool same_bits(const std::vector<float> &a, const std::vector<float> &b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// oneDNN on (when built with it) or off while in scope.
struct onednn_scope {
    explicit onednn_scope(bool on) { ok = llmkit::quant::int8_x_rows_onednn(on); }
    ~onednn_scope() { llmkit::quant::int8_x_rows_onednn(true); }
    bool ok;
};

}  // namespace

TEST_CASE("int8 matmul, x rounded per row: the documented formula to the bit, and within the float64 bound",
          "[quant][matmul][x_rows]") {
    for (const auto &[m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 37, 64}, {3, 50, 96}, {8, 67, 256},
                                  {33, 40, 160}, {128, 24, 512}}) {
        problem p = make(m, n, k, uint32_t(m * 131 + k));
        const std::vector<float> y = run(p, 0), expected = formula(p);
        INFO("m " << m << " n " << n << " k " << k);
        CHECK(same_bits(y, expected));
        // Against the float64 product: half a step of x per element, plus float rounding.
        for (int64_t i = 0; i < m; ++i) {
            float amax = 0;
            for (int64_t j = 0; j < k; ++j) amax = std::fmax(amax, std::fabs(p.x[size_t(i * k + j)]));
            for (int64_t r = 0; r < n; ++r) {
                double ref = 0, absw = 0;
                for (int64_t j = 0; j < k; ++j) {
                    const double wv = double(p.scale[size_t(r)]) * p.w[size_t(r * k + j)];
                    ref += double(p.x[size_t(i * k + j)]) * wv;
                    absw += std::fabs(wv);
                }
                const double bound = absw * (double(amax) / 63.0) / 2 * (1 + 1e-6) + 1e-6 * std::fabs(ref);
                INFO("row " << i << " output " << r);
                CHECK(std::fabs(double(y[size_t(i * n + r)]) - ref) <= bound);
            }
        }
    }
}

TEST_CASE("int8 matmul, x rounded per row: the same bits through every path, for any threads and m",
          "[quant][matmul][x_rows]") {
    problem p = make(64, 72, 384, 7);
    // k = 416 (13 half-vectors) for the VNNI tiles' half step at the end.
    problem odd = make(37, 41, 416, 8);
    const std::vector<float> expected = formula(p), expected_odd = formula(odd);
    // Each SIMD set (AVX512-VNNI: llmkit's integer tiles; AVX2: oneDNN from
    // 24 rows of x when built with it, else llmkit's loop), then the loops alone.
    bool have_onednn = false;
    for (auto isa : llmkit_test::simd_isas()) {
        llmkit_test::matmul_isa_scope set(isa);
        REQUIRE(set.ok);
        INFO("kernel set " << int(isa));
        {
            onednn_scope on(true);
            have_onednn = on.ok;
            for (int threads : {1, 2, 3}) CHECK(same_bits(run(p, threads), expected));
            CHECK(same_bits(run(odd, 2), expected_odd));
        }
        onednn_scope off(false);
        REQUIRE(off.ok);
        for (int threads : {1, 2, 3}) CHECK(same_bits(run(p, threads), expected));
        CHECK(same_bits(run(odd, 2), expected_odd));
    }
    {
        llmkit_test::matmul_isa_scope scalar(llmkit::quant::matmul_isa::scalar);
        REQUIRE(scalar.ok);
        for (int threads : {1, 2}) CHECK(same_bits(run(p, threads), expected));
        CHECK(same_bits(run(odd, 1), expected_odd));
    }
    // x with a column stride of 2 (rounded by the scalar loop) gives the same bits.
    {
        std::vector<float> xs(p.x.size() * 2, 1e30f), y(size_t(p.m * p.n));
        for (size_t e = 0; e < p.x.size(); ++e) xs[2 * e] = p.x[e];
        const int64_t xshape[2] = {p.m, p.k}, xstride[2] = {2 * p.k, 2}, ys[2] = {p.m, p.n}, ws[2] = {p.n, p.k},
                      ss[1] = {p.n};
        const llmkit_tensor xt = host_tensor(xs.data(), xshape, 2, k_f32, xstride), yt = host_tensor(y.data(), ys, 2, k_f32);
        const llmkit_tensor wt = host_tensor(p.w.data(), ws, 2, k_i8), st = host_tensor(p.scale.data(), ss, 1, k_f32);
        llmkit_quant_matmul_options o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
        o.x_rounding = LLMKIT_QUANT_X_ROWS;
        INFO(llmkit_last_error_message());
        REQUIRE(llmkit_quant_matmul_int8(&xt, &wt, &st, &yt, &o) == LLMKIT_OK);
        CHECK(same_bits(y, expected));
    }
    // Fewer rows (below oneDNN's threshold) give those rows' bits.
    problem few = p;
    few.m = 5;
    few.x.resize(size_t(5 * p.k));
    const std::vector<float> y_few = run(few, 2);
    CHECK(std::memcmp(y_few.data(), expected.data(), y_few.size() * sizeof(float)) == 0);
    // The option is what changes the result: the default (blocks of 32) differs.
    CHECK(!same_bits(run(p, 0, LLMKIT_QUANT_X_BLOCKS), expected));
    if (!have_onednn) WARN("this llmkit is built without oneDNN: the AVX2 runs took llmkit's loops");
}

TEST_CASE("int8 matmul, x rounded per row: bad options and shapes give clear errors", "[quant][matmul][x_rows][errors]") {
    problem p = make(2, 4, 64, 3);
    run(p, 0, 2, LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(llmkit_last_error_message()).find("x_rounding") != std::string::npos);
    run(p, 0, -1, LLMKIT_ERROR_INVALID_ARGUMENT);

    // GGUF weights take only the block rounding.
    std::vector<float> x(64, 0.5f), y(4), w(4 * 64, 0.25f);
    size_t row = 0, written = 0;
    REQUIRE(llmkit_quant_row_bytes(&row, LLMKIT_QUANT_Q8_0, 64) == LLMKIT_OK);
    std::vector<uint8_t> blocks(4 * row);
    const int64_t ws[2] = {4, 64};
    const llmkit_tensor wt = host_tensor(w.data(), ws, 2, k_f32);
    REQUIRE(llmkit_quantize(&written, LLMKIT_QUANT_Q8_0, &wt, blocks.data(), blocks.size(), nullptr) == LLMKIT_OK);
    const int64_t xs[1] = {64}, ys[1] = {4};
    const llmkit_tensor xt = host_tensor(x.data(), xs, 1, k_f32), yt = host_tensor(y.data(), ys, 1, k_f32);
    llmkit_quant_matmul_options o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    o.x_rounding = LLMKIT_QUANT_X_ROWS;
    CHECK(llmkit_quant_matmul(&xt, LLMKIT_QUANT_Q8_0, blocks.data(), blocks.size(), 4, 64, &yt, &o) ==
          LLMKIT_ERROR_UNSUPPORTED);
    CHECK(std::string(llmkit_last_error_message()).find("int8 weights") != std::string::npos);

    // k past the int32 bound.
    problem big = make(1, 1, 133152, 5);
    run(big, 0, LLMKIT_QUANT_X_ROWS, LLMKIT_ERROR_SHAPE);
    CHECK(std::string(llmkit_last_error_message()).find("133144") != std::string::npos);
    run(big, 0, LLMKIT_QUANT_X_BLOCKS, LLMKIT_OK);  // the block rounding has no such bound

    // A row of subnormals and zeros (63 / max overflows a float): finite outputs, the formula's bits.
    problem tiny = make(3, 5, 64, 9);
    for (int64_t j = 0; j < 64; ++j) tiny.x[size_t(64 + j)] = j % 3 == 0 ? 0.0f : (j % 2 ? 1e-40f : -3e-41f);
    const std::vector<float> y_tiny = run(tiny, 0);
    for (float v : y_tiny) CHECK(std::isfinite(v));
    CHECK(same_bits(y_tiny, formula(tiny)));

    // A caller built before x_rounding existed passes the shorter struct: blocks.
    std::vector<float> y_old(size_t(p.m * p.n)), y_blocks = run(p, 0, LLMKIT_QUANT_X_BLOCKS);
    const int64_t pxs[2] = {p.m, p.k}, pys[2] = {p.m, p.n}, pws[2] = {p.n, p.k}, pss[1] = {p.n};
    const llmkit_tensor pxt = host_tensor(p.x.data(), pxs, 2, k_f32), pyt = host_tensor(y_old.data(), pys, 2, k_f32);
    const llmkit_tensor pwt = host_tensor(p.w.data(), pws, 2, k_i8), pst = host_tensor(p.scale.data(), pss, 1, k_f32);
    llmkit_quant_matmul_options old = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    old.x_rounding = LLMKIT_QUANT_X_ROWS;  // beyond struct_size: not read
    old.struct_size = uint32_t(offsetof(llmkit_quant_matmul_options, x_rounding));
    REQUIRE(llmkit_quant_matmul_int8(&pxt, &pwt, &pst, &pyt, &old) == LLMKIT_OK);
    CHECK(same_bits(y_old, y_blocks));

    // One weight row with a negative row stride (numpy's reversed view of a
    // single row): the stride says nothing and is not used, on either
    // rounding (it reached the prefetch address of a next row: pointer
    // arithmetic that wrapped, found by fuzz_quant_api under UBSan).
    problem one = make(3, 1, 64, 11);
    const std::vector<float> y_one_blocks = run(one, 0, LLMKIT_QUANT_X_BLOCKS), y_one_rows = run(one, 0, LLMKIT_QUANT_X_ROWS);
    for (int32_t rounding : {LLMKIT_QUANT_X_BLOCKS, LLMKIT_QUANT_X_ROWS}) {
        std::vector<float> y_neg(size_t(one.m));
        const int64_t oxs[2] = {one.m, one.k}, oys[2] = {one.m, 1}, ows[2] = {1, one.k}, oss[1] = {1};
        const int64_t neg_strides[2] = {-one.k, 1};
        const llmkit_tensor oxt = host_tensor(one.x.data(), oxs, 2, k_f32), oyt = host_tensor(y_neg.data(), oys, 2, k_f32);
        const llmkit_tensor owt = host_tensor(one.w.data(), ows, 2, k_i8, neg_strides);
        const llmkit_tensor ost = host_tensor(one.scale.data(), oss, 1, k_f32);
        llmkit_quant_matmul_options o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
        o.x_rounding = rounding;
        INFO("x_rounding " << rounding << ": " << llmkit_last_error_message());
        REQUIRE(llmkit_quant_matmul_int8(&oxt, &owt, &ost, &oyt, &o) == LLMKIT_OK);
        CHECK(same_bits(y_neg, rounding == LLMKIT_QUANT_X_BLOCKS ? y_one_blocks : y_one_rows));
    }
}
