// Helpers shared by the quantized-matmul tests (test_matmul.cpp,
// test_matmul_kquant_bytes.cpp): one call of the C API and a scoped choice
// of kernels. Header-only, internal to the tests.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
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

}  // namespace llmkit_test
