// qmatmul_isa_driver [reps] [m] [threads] [n] [k] [types]: the quantized
// matmul's SIMD kernel sets (AVX2, AVX512-VNNI without and with its GFNI
// kernels: those this CPU runs) side by
// side in one process, the forced set alternating call by call, best of `reps`
// each, for every type with a kernel (or those named in `types`, a
// comma-separated list such as q4_K,iq4_xs: to profile one kernel alone).
// Python cannot force a set, and two processes on a shared machine see
// different neighbours; this A/B does not. Every
// set's output must have the bits of the scalar kernels, run once (untimed
// unless the CPU has no SIMD set); exit status 1 if not.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "llmkit/llmkit.h"
#include "quant/matmul.hpp"

namespace {

llmkit_tensor f32_tensor(float *p, const int64_t *shape) {
    llmkit_tensor t{};
    t.data = p;
    t.ndim = 2;
    t.shape = shape;
    t.dtype = LLMKIT_DTYPE_F32;
    t.device.device_type = LLMKIT_DEVICE_CPU;
    return t;
}

}  // namespace

int main(int argc, char **argv) {
    using llmkit::quant::matmul_isa;
    const int reps = argc > 1 ? std::atoi(argv[1]) : 5;
    const int64_t m = argc > 2 ? std::atoll(argv[2]) : 1;
    const int threads = argc > 3 ? std::atoi(argv[3]) : 1;
    const int64_t n = argc > 4 ? std::atoll(argv[4]) : 4096, k = argc > 5 ? std::atoll(argv[5]) : 4096;
    const std::string only = argc > 6 ? "," + std::string(argv[6]) + "," : "";
    if (reps < 1 || m < 1 || threads < 1 || n < 1 || k < 256 || k % 256 != 0) {
        std::fprintf(stderr, "usage: qmatmul_isa_driver [reps] [m] [threads] [n] [k, a multiple of 256] [types]\n");
        return 2;
    }
    struct type_case {
        const char *name;
        int32_t type;
    };
    const type_case types[] = {{"q4_0", LLMKIT_QUANT_Q4_0}, {"q4_1", LLMKIT_QUANT_Q4_1},     {"q5_0", LLMKIT_QUANT_Q5_0},
                               {"q5_1", LLMKIT_QUANT_Q5_1}, {"q8_0", LLMKIT_QUANT_Q8_0},     {"iq4_nl", LLMKIT_QUANT_IQ4_NL},
                               {"mxfp4", LLMKIT_QUANT_MXFP4}, {"q2_K", LLMKIT_QUANT_Q2_K},   {"q3_K", LLMKIT_QUANT_Q3_K},
                               {"q4_K", LLMKIT_QUANT_Q4_K}, {"q5_K", LLMKIT_QUANT_Q5_K},     {"q6_K", LLMKIT_QUANT_Q6_K},
                               {"iq4_xs", LLMKIT_QUANT_IQ4_XS}};
    std::vector<matmul_isa> sets;
    for (matmul_isa isa : {matmul_isa::avx2, matmul_isa::avx512vnni_no_gfni, matmul_isa::avx512vnni})
        if (llmkit::quant::matmul_force_isa(isa)) sets.push_back(isa);
    if (sets.empty()) sets.push_back(matmul_isa::scalar);
    llmkit::quant::matmul_force_isa(matmul_isa::automatic);

    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> w(size_t(n * k)), x(size_t(m * k));
    for (float &v : w) v = normal(rng);
    for (float &v : x) v = normal(rng);
    const int64_t ws[2] = {n, k}, xs[2] = {m, k}, ys[2] = {m, n};
    const llmkit_tensor wt = f32_tensor(w.data(), ws), xt = f32_tensor(x.data(), xs);
    llmkit_quant_matmul_options o = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    o.n_threads = threads;
    std::printf("n=%lld k=%lld m=%lld threads=%d, best of %d; GFLOP/s (2*m*n*k per call) per kernel set\n",
                (long long)n, (long long)k, (long long)m, threads, reps);
    int status = 0, ran = 0;
    for (const type_case &tc : types) {
        if (!only.empty() && only.find("," + std::string(tc.name) + ",") == std::string::npos) continue;
        ++ran;
        size_t row = 0, written = 0;
        if (llmkit_quant_row_bytes(&row, tc.type, k) != LLMKIT_OK) continue;
        std::vector<uint8_t> q(row * size_t(n));
        if (llmkit_quantize(&written, tc.type, &wt, q.data(), q.size(), nullptr) != LLMKIT_OK) {
            std::fprintf(stderr, "%s: %s\n", tc.name, llmkit_last_error_message());
            return 1;
        }
        std::vector<std::vector<float>> y(sets.size(), std::vector<float>(size_t(m * n)));
        std::vector<double> best(sets.size(), 1e30);
        std::vector<float> ref(size_t(m * n));
        {
            llmkit::quant::matmul_force_isa(matmul_isa::scalar);
            llmkit_tensor yt = f32_tensor(ref.data(), ys);
            if (llmkit_quant_matmul(&xt, tc.type, q.data(), q.size(), n, k, &yt, &o) != LLMKIT_OK) {
                std::fprintf(stderr, "%s: %s\n", tc.name, llmkit_last_error_message());
                return 1;
            }
        }
        for (int r = 0; r < reps; ++r)
            for (size_t s = 0; s < sets.size(); ++s) {
                llmkit::quant::matmul_force_isa(sets[s]);
                llmkit_tensor yt = f32_tensor(y[s].data(), ys);
                const auto t0 = std::chrono::steady_clock::now();
                if (llmkit_quant_matmul(&xt, tc.type, q.data(), q.size(), n, k, &yt, &o) != LLMKIT_OK) {
                    std::fprintf(stderr, "%s: %s\n", tc.name, llmkit_last_error_message());
                    return 1;
                }
                const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                if (dt < best[s]) best[s] = dt;
            }
        llmkit::quant::matmul_force_isa(matmul_isa::automatic);
        std::printf("%-7s", tc.name);
        for (size_t s = 0; s < sets.size(); ++s) {
            std::printf("  %s %8.1f", llmkit::quant::matmul_isa_name(sets[s]), 2.0 * m * n * k / best[s] / 1e9);
            if (std::memcmp(y[s].data(), ref.data(), ref.size() * 4) != 0) {
                std::printf(" (BITS DIFFER from scalar)");
                status = 1;
            }
        }
        if (sets.size() > 1) std::printf("  last/previous %.2fx", best[sets.size() - 2] / best.back());
        std::printf("\n");
    }
    if (ran == 0) {  // a misspelt name (the K-quants are spelt q4_K) must not pass as a clean run
        std::fprintf(stderr, "no type named in '%s'; the names: q4_0 q4_1 q5_0 q5_1 q8_0 iq4_nl mxfp4 q2_K q3_K q4_K q5_K q6_K iq4_xs\n",
                     argv[6]);
        return 2;
    }
    std::printf(status ? "kernel sets disagree\n" : "every kernel set gave the same bits\n");
    return status;
}
