// GPTQ and AWQ through the C API: both beat round-to-nearest on a layer fed
// correlated activations, the reported error is the measured one, and bad
// arguments give statuses. (The float64 numpy reference of Algorithm 1 is in
// tests/python/test_gptq_awq.py.)
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "llmkit/llmkit.h"
#include "support/test_support.hpp"

namespace {

using llmkit_test::f32_tensor;

// W [rows, n] ~ N(0, 0.02^2); X [tokens, n] mostly in a rank-16 subspace, with outlier channels.
struct layer {
    int64_t rows = 64, n = 128, tokens = 512;
    std::vector<float> w, x;
    layer() { fill(); }
    layer(int64_t rows_, int64_t n_) : rows(rows_), n(n_) { fill(); }
    void fill() {
        std::mt19937 gen(42);
        std::normal_distribution<float> nd;
        w.resize(size_t(rows * n));
        for (auto &v : w) v = 0.02f * nd(gen);
        std::vector<float> z(size_t(tokens * 16)), b(size_t(16 * n));
        for (auto &v : z) v = nd(gen);
        for (auto &v : b) v = nd(gen) / 4.0f;
        x.assign(size_t(tokens * n), 0.0f);
        for (int64_t t = 0; t < tokens; ++t)
            for (int64_t j = 0; j < n; ++j) {
                float s = 0.3f * nd(gen);
                for (int k = 0; k < 16; ++k) s += z[size_t(t * 16 + k)] * b[size_t(k * n + j)];
                x[size_t(t * n + j)] = (j % 41 == 3) ? 12.0f * s : s;
            }
    }
    // ||(W - W^) X^T||^2 / ||W X^T||^2 in float64.
    double output_error(const std::vector<float> &w_hat) const {
        double num = 0, den = 0;
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t t = 0; t < tokens; ++t) {
                double a = 0, b = 0;
                for (int64_t j = 0; j < n; ++j) {
                    a += double(w[size_t(r * n + j)]) * x[size_t(t * n + j)];
                    b += double(w_hat[size_t(r * n + j)]) * x[size_t(t * n + j)];
                }
                num += (a - b) * (a - b);
                den += a * a;
            }
        return num / den;
    }
};

}  // namespace

TEST_CASE("gptq and awq beat round-to-nearest; reports match", "[gptq][awq]") {
    layer L;
    const int64_t ws[2] = {L.rows, L.n}, xs[2] = {L.tokens, L.n};
    llmkit_tensor w = f32_tensor(L.w.data(), ws, 2), x = f32_tensor(L.x.data(), xs, 2);
    std::vector<float> y(L.w.size());
    llmkit_tensor yt = f32_tensor(y.data(), ws, 2);

    size_t need = 0;
    REQUIRE(llmkit_gptq_quantize(&need, LLMKIT_QUANT_GPTQ_INT4_G32, &w, &x, 1, nullptr, 0, nullptr, nullptr) ==
            LLMKIT_ERROR_BUFFER_TOO_SMALL);
    std::vector<uint8_t> q(need);
    llmkit_quant_layer_report rep = LLMKIT_QUANT_LAYER_REPORT_INIT;
    int calls = 0;
    llmkit_gptq_options o = LLMKIT_GPTQ_OPTIONS_INIT;
    o.act_order = 1;
    o.progress = [](int64_t, int64_t, void *ud) { ++*static_cast<int *>(ud); };
    o.user_data = &calls;
    REQUIRE(llmkit_gptq_quantize(&need, LLMKIT_QUANT_GPTQ_INT4_G32, &w, &x, 1, q.data(), q.size(), &o, &rep) ==
            LLMKIT_OK);
    CHECK(calls == 1);  // one block of 128 columns
    REQUIRE(llmkit_dequantize(LLMKIT_QUANT_GPTQ_INT4_G32, q.data(), q.size(), &yt, nullptr) == LLMKIT_OK);
    CHECK(rep.output_error == Approx(L.output_error(y)).epsilon(1e-6));
    CHECK(rep.output_error < 0.8 * rep.rtn_output_error);

    REQUIRE(llmkit_awq_quantize(&need, LLMKIT_QUANT_AWQ_INT4_G32, &w, &x, 1, nullptr, 0, nullptr, nullptr, nullptr) ==
            LLMKIT_ERROR_BUFFER_TOO_SMALL);
    std::vector<uint8_t> a(need);
    std::vector<float> scales(size_t(L.n));
    REQUIRE(llmkit_awq_quantize(&need, LLMKIT_QUANT_AWQ_INT4_G32, &w, &x, 1, a.data(), a.size(), scales.data(), nullptr,
                                &rep) == LLMKIT_OK);
    REQUIRE(llmkit_dequantize(LLMKIT_QUANT_AWQ_INT4_G32, a.data(), a.size(), &yt, nullptr) == LLMKIT_OK);
    for (int64_t r = 0; r < L.rows; ++r)
        for (int64_t j = 0; j < L.n; ++j) y[size_t(r * L.n + j)] /= scales[size_t(j)];
    CHECK(rep.output_error == Approx(L.output_error(y)).epsilon(1e-5));
    CHECK(rep.output_error < rep.rtn_output_error);
}

TEST_CASE("gptq and awq: errors", "[gptq][awq]") {
    layer L;
    const int64_t ws[2] = {L.rows, L.n}, xs[2] = {L.tokens, L.n}, bad_xs[2] = {L.tokens, 64};
    llmkit_tensor w = f32_tensor(L.w.data(), ws, 2), x = f32_tensor(L.x.data(), xs, 2),
                  xb = f32_tensor(L.x.data(), bad_xs, 2);
    std::vector<uint8_t> q(1 << 16);
    size_t need = 0;
    CHECK(llmkit_gptq_quantize(&need, LLMKIT_QUANT_AWQ_INT4_G32, &w, &x, 1, q.data(), q.size(), nullptr, nullptr) ==
          LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_gptq_quantize(&need, LLMKIT_QUANT_GPTQ_INT4_G32, &w, nullptr, 1, q.data(), q.size(), nullptr,
                               nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_gptq_quantize(&need, LLMKIT_QUANT_GPTQ_INT4_G32, &w, &x, 0, q.data(), q.size(), nullptr, nullptr) ==
          LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_gptq_quantize(&need, LLMKIT_QUANT_GPTQ_INT4_G32, &w, &xb, 1, q.data(), q.size(), nullptr, nullptr) ==
          LLMKIT_ERROR_SHAPE);
    llmkit_gptq_options o = LLMKIT_GPTQ_OPTIONS_INIT;
    o.damp = -1;
    CHECK(llmkit_gptq_quantize(&need, LLMKIT_QUANT_GPTQ_INT4_G32, &w, &x, 1, q.data(), q.size(), &o, nullptr) ==
          LLMKIT_ERROR_INVALID_ARGUMENT);
    o = LLMKIT_GPTQ_OPTIONS_INIT;
    o.act_order = 1;
    CHECK(llmkit_gptq_quantize(&need, LLMKIT_QUANT_Q4_0, &w, &x, 1, q.data(), q.size(), &o, nullptr) ==
          LLMKIT_ERROR_UNSUPPORTED);
    L.x[7] = NAN;
    CHECK(llmkit_gptq_quantize(&need, LLMKIT_QUANT_GPTQ_INT4_G32, &w, &x, 1, q.data(), q.size(), nullptr, nullptr) ==
          LLMKIT_ERROR_NON_FINITE);
    CHECK(llmkit_awq_quantize(&need, LLMKIT_QUANT_AWQ_INT4_G32, &w, &x, 1, q.data(), q.size(), nullptr, nullptr,
                              nullptr) == LLMKIT_ERROR_NON_FINITE);
    L.x[7] = 0.0f;
    llmkit_awq_options ao = LLMKIT_AWQ_OPTIONS_INIT;
    ao.n_grid = 0;
    CHECK(llmkit_awq_quantize(&need, LLMKIT_QUANT_AWQ_INT4_G32, &w, &x, 1, q.data(), q.size(), nullptr, &ao, nullptr) ==
          LLMKIT_ERROR_INVALID_ARGUMENT);
    llmkit_quant_layer_report rep = LLMKIT_QUANT_LAYER_REPORT_INIT;
    rep.struct_size = 1;
    CHECK(llmkit_awq_quantize(&need, LLMKIT_QUANT_AWQ_INT4_G32, &w, &x, 1, q.data(), q.size(), nullptr, nullptr,
                              &rep) == LLMKIT_ERROR_INVALID_ARGUMENT);
}

TEST_CASE("gptq and awq to q4_K: GGUF Q4_K blocks that beat ggml's Q4_K quantizer", "[gptq][awq]") {
    layer L(32, 512);
    const int64_t ws[2] = {L.rows, L.n}, xs[2] = {L.tokens, L.n};
    llmkit_tensor w = f32_tensor(L.w.data(), ws, 2), x = f32_tensor(L.x.data(), xs, 2);
    size_t need = 0;
    REQUIRE(llmkit_gptq_quantize(&need, LLMKIT_QUANT_Q4_K, &w, &x, 1, nullptr, 0, nullptr, nullptr) ==
            LLMKIT_ERROR_BUFFER_TOO_SMALL);
    CHECK(need == size_t(L.rows * 2 * 144));
    std::vector<uint8_t> q(need);
    llmkit_quant_layer_report rep = LLMKIT_QUANT_LAYER_REPORT_INIT;
    INFO(llmkit_last_error_message());
    REQUIRE(llmkit_gptq_quantize(&need, LLMKIT_QUANT_Q4_K, &w, &x, 1, q.data(), q.size(), nullptr, &rep) == LLMKIT_OK);
    std::vector<float> y(L.w.size());
    llmkit_tensor yt = f32_tensor(y.data(), ws, 2);
    REQUIRE(llmkit_dequantize(LLMKIT_QUANT_Q4_K, q.data(), q.size(), &yt, nullptr) == LLMKIT_OK);
    CHECK(rep.output_error == Approx(L.output_error(y)).epsilon(1e-6));
    // Round-to-nearest here is ggml's Q4_K quantizer on the same weights.
    std::vector<uint8_t> rtn(need);
    REQUIRE(llmkit_quantize(&need, LLMKIT_QUANT_Q4_K, &w, rtn.data(), rtn.size(), nullptr) == LLMKIT_OK);
    REQUIRE(llmkit_dequantize(LLMKIT_QUANT_Q4_K, rtn.data(), rtn.size(), &yt, nullptr) == LLMKIT_OK);
    CHECK(rep.rtn_output_error == Approx(L.output_error(y)).epsilon(1e-6));
    CHECK(rep.output_error < 0.5 * rep.rtn_output_error);

    llmkit_gptq_options o = LLMKIT_GPTQ_OPTIONS_INIT;
    o.act_order = 1;
    CHECK(llmkit_gptq_quantize(&need, LLMKIT_QUANT_Q4_K, &w, &x, 1, q.data(), q.size(), &o, nullptr) ==
          LLMKIT_ERROR_UNSUPPORTED);
    o = LLMKIT_GPTQ_OPTIONS_INIT;
    o.zero_point = LLMKIT_QUANT_ZERO_POINT_SYMMETRIC;
    CHECK(llmkit_gptq_quantize(&need, LLMKIT_QUANT_Q4_K, &w, &x, 1, q.data(), q.size(), &o, nullptr) ==
          LLMKIT_ERROR_UNSUPPORTED);
    // AWQ to Q4_K: blocks of the scaled weight, and the scales to divide by.
    std::vector<float> scales(size_t(L.n));
    REQUIRE(llmkit_awq_quantize(&need, LLMKIT_QUANT_Q4_K, &w, &x, 1, q.data(), q.size(), scales.data(), nullptr, &rep) ==
            LLMKIT_OK);
    REQUIRE(llmkit_dequantize(LLMKIT_QUANT_Q4_K, q.data(), q.size(), &yt, nullptr) == LLMKIT_OK);
    for (int64_t r = 0; r < L.rows; ++r)
        for (int64_t j = 0; j < L.n; ++j) y[size_t(r * L.n + j)] /= scales[size_t(j)];
    CHECK(rep.output_error == Approx(L.output_error(y)).epsilon(1e-5));
    CHECK(rep.output_error < rep.rtn_output_error);
    llmkit_awq_options ao = LLMKIT_AWQ_OPTIONS_INIT;
    ao.zero_point = LLMKIT_QUANT_ZERO_POINT_SYMMETRIC;
    CHECK(llmkit_awq_quantize(&need, LLMKIT_QUANT_Q4_K, &w, &x, 1, q.data(), q.size(), nullptr, &ao, nullptr) ==
          LLMKIT_ERROR_UNSUPPORTED);

    layer narrow;  // 128 inputs: not a whole super-block
    const int64_t nws[2] = {narrow.rows, narrow.n}, nxs[2] = {narrow.tokens, narrow.n};
    llmkit_tensor nw = f32_tensor(narrow.w.data(), nws, 2), nx = f32_tensor(narrow.x.data(), nxs, 2);
    CHECK(llmkit_gptq_quantize(&need, LLMKIT_QUANT_Q4_K, &nw, &nx, 1, q.data(), q.size(), nullptr, nullptr) ==
          LLMKIT_ERROR_SHAPE);
    CHECK(llmkit_awq_quantize(&need, LLMKIT_QUANT_Q4_K, &nw, &nx, 1, q.data(), q.size(), nullptr, nullptr, nullptr) ==
          LLMKIT_ERROR_SHAPE);
}
