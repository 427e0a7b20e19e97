// Is oneDNN's matmul worth routing llmkit's matmul-shaped work through? This
// driver answers it with numbers, for the two places the issues name:
//
//   int8:  y[M, N] = x[M, K] * W^T with int8 weights and per-row scales at
//          M = 1 (decode) and M = 128 (prefill), K = N = 4096. oneDNN runs its
//          integer matmul (s8 x s8 and u8 x s8 -> s32) on x quantized per row
//          to 7 bits (one scale per row: the whole sum is one exact int32; why
//          7 bits: see below), and so does llmkit's LLMKIT_QUANT_X_ROWS; llmkit runs
//          llmkit_quant_matmul_int8 (x quantized per block of 32, a float
//          scale per block: as accurate or more, so not one integer matmul).
//          Both get the same weights.
//   fp32:  the tile products of attention prefill, S x d times d x S with
//          d = 128: one head's whole Q K^T (2048 x 128 x 2048) and the flash
//          tiles (64 x 128 x 64, 128 x 128 x 128) that llmkit's own
//          micro-kernels multiply, as GFLOP/s per call.
//
// Threads: oneDNN's (OpenMP) follow OMP_NUM_THREADS; llmkit's its option; the
// driver runs 1 and 2 threads for both. Each figure is the best of `reps`
// timed runs after a warm-up. The outputs are checked against float64: each
// within the bound its rounding of x allows; oneDNN's two ways bit-identical.
//
//   llmkit_onednn_matmul_driver [reps]
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include <dnnl.hpp>

#include "llmkit/llmkit.h"

// oneDNN's OpenMP runtime (libgomp, linked through llmkit_static) takes its
// thread count from this.
extern "C" void omp_set_num_threads(int);

namespace {

double now() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

template <typename F>
double best_seconds(int reps, F &&f) {
    f();  // warm-up: primitive creation, page faults, caches
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
        const double t0 = now();
        f();
        best = std::min(best, now() - t0);
    }
    return best;
}

void check(llmkit_status s) {
    if (s != LLMKIT_OK) {
        std::fprintf(stderr, "llmkit: %s\n", llmkit_last_error_message());
        std::exit(1);
    }
}

// A compact row-major host tensor over `data` (shape kept by the caller).
llmkit_tensor host_tensor(void *data, llmkit_dtype dtype, int ndim, const int64_t *shape) {
    llmkit_tensor t{};
    t.data = data;
    t.device = LLMKIT_DEVICE_HOST;
    t.ndim = ndim;
    t.dtype = dtype;
    t.shape = shape;
    t.strides = nullptr;
    return t;
}

const llmkit_dtype k_f32 = LLMKIT_DTYPE_F32;
const llmkit_dtype k_i8 = {LLMKIT_DTYPE_INT, 8, 1};

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

// The int8 comparison at one M and one thread count; prints one row.
void int8_row(dnnl::engine &eng, dnnl::stream &strm, int64_t M, int64_t K, int64_t N, int threads, int reps,
              const std::vector<float> &x, const std::vector<int8_t> &w, const std::vector<float> &w_scale) {
    // llmkit
    std::vector<float> y_llmkit(static_cast<size_t>(M * N));
    const int64_t xs[2] = {M, K}, ws[2] = {N, K}, ss[1] = {N}, ys[2] = {M, N};
    llmkit_tensor tx = host_tensor(const_cast<float *>(x.data()), k_f32, 2, xs);
    llmkit_tensor tw = host_tensor(const_cast<int8_t *>(w.data()), k_i8, 2, ws);
    llmkit_tensor ts = host_tensor(const_cast<float *>(w_scale.data()), k_f32, 1, ss);
    llmkit_tensor ty = host_tensor(y_llmkit.data(), k_f32, 2, ys);
    llmkit_quant_matmul_options opt = LLMKIT_QUANT_MATMUL_OPTIONS_INIT;
    opt.n_threads = threads;
    const double t_llmkit = best_seconds(reps, [&] { check(llmkit_quant_matmul_int8(&tx, &tw, &ts, &ty, &opt)); });

    // oneDNN: x quantized per row to 7 bits (d = max |x| / 63, the rounding
    // PyTorch's dynamic int8 linear does on x86, per tensor), one exact int32
    // sum per output, scaled back to float by the loop after it (timed too: it
    // is part of the operation). W is s8 [K, N] read from the [N, K] rows
    // (format "ba": no copy). Two ways: s8 x s8 as is, and u8 x s8 with x + 64
    // and 64 * (row sums of W) taken off again. Without VNNI, oneDNN multiplies
    // with vpmaddubsw, which saturates pairs of products: with full 8-bit x
    // its sums were wrong by up to 2e5 here; with 7 bits both ways are exact,
    // so both must give the same bits.
    std::vector<int8_t> xs8(x.size());
    std::vector<uint8_t> xu8(x.size());
    std::vector<float> dx(static_cast<size_t>(M));
    std::vector<int32_t> acc(static_cast<size_t>(M * N)), col_sum(static_cast<size_t>(N));
    std::vector<float> y_s8(static_cast<size_t>(M * N)), y_u8(size_t(M * N));
    for (int64_t n = 0; n < N; ++n) {
        int32_t sum = 0;
        for (int64_t k = 0; k < K; ++k) sum += w[size_t(n * K + k)];
        col_sum[size_t(n)] = sum;
    }
    const auto quantize_rows = [&](bool to_u8) {
        for (int64_t m = 0; m < M; ++m) {
            float amax = 0;
            for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(x[size_t(m * K + k)]));
            const float d = amax / 63.0f;  // as llmkit's X_ROWS: d in float, 63 / max in double
            const double inv = amax > 0 ? 63.0 / double(amax) : 0.0;
            dx[size_t(m)] = d;
            for (int64_t k = 0; k < K; ++k) {
                const int v = int(std::clamp(std::nearbyint(double(x[size_t(m * K + k)]) * inv), -63.0, 63.0));
                if (to_u8) xu8[size_t(m * K + k)] = uint8_t(v + 64);
                else xs8[size_t(m * K + k)] = int8_t(v);
            }
        }
    };
    const auto scale_back = [&](std::vector<float> &y, int32_t offset) {
        for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n)
                y[size_t(m * N + n)] = dx[size_t(m)] * w_scale[size_t(n)] *
                                       float(acc[size_t(m * N + n)] - offset * col_sum[size_t(n)]);
    };
    omp_set_num_threads(threads);
    double t_dnnl[2];
    for (int variant = 0; variant < 2; ++variant) {
        const bool u8 = variant == 1;
        dnnl::memory::desc a_md({M, K}, u8 ? dt::u8 : dt::s8, tag::ab), b_md({K, N}, dt::s8, tag::ba),
            c_md({M, N}, dt::s32, tag::ab);
        dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), eng);
        dnnl::matmul prim(pd);
        dnnl::memory a_mem(a_md, eng, u8 ? static_cast<void *>(xu8.data()) : static_cast<void *>(xs8.data()));
        dnnl::memory b_mem(b_md, eng, const_cast<int8_t *>(w.data())), c_mem(c_md, eng, acc.data());
        t_dnnl[variant] = best_seconds(reps, [&] {
            quantize_rows(u8);
            prim.execute(strm, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
            strm.wait();
            scale_back(u8 ? y_u8 : y_s8, u8 ? 64 : 0);
        });
    }
    // s8 x s8 adds 128 to x inside oneDNN, which brings the saturation back:
    // reported, not used.
    const bool s8_exact = std::memcmp(y_s8.data(), y_u8.data(), y_s8.size() * sizeof(float)) == 0;
    const std::vector<float> &y_dnnl = y_u8;

    // llmkit with x rounded per row (LLMKIT_QUANT_X_ROWS): the same rounding and
    // the same exact sums, so the same bits as oneDNN's above.
    std::vector<float> y_rows(static_cast<size_t>(M * N));
    llmkit_tensor ty_rows = host_tensor(y_rows.data(), k_f32, 2, ys);
    llmkit_quant_matmul_options opt_rows = opt;
    opt_rows.x_rounding = LLMKIT_QUANT_X_ROWS;
    const double t_rows =
        best_seconds(reps, [&] { check(llmkit_quant_matmul_int8(&tx, &tw, &ts, &ty_rows, &opt_rows)); });
    if (std::memcmp(y_rows.data(), y_u8.data(), y_u8.size() * sizeof(float)) != 0) {
        std::fprintf(stderr, "llmkit's LLMKIT_QUANT_X_ROWS result differs from oneDNN's integer matmul\n");
        std::exit(1);
    }

    // Agreement: both against the float product, within each one's x rounding bound.
    double worst_llmkit = 0, worst_dnnl = 0;
    for (int64_t m = 0; m < std::min<int64_t>(M, 4); ++m)
        for (int64_t n = 0; n < N; ++n) {
            double ref = 0, absw = 0;
            for (int64_t k = 0; k < K; ++k) {
                const double wv = double(w_scale[size_t(n)]) * w[size_t(n * K + k)];
                ref += double(x[size_t(m * K + k)]) * wv;
                absw += std::fabs(wv);
            }
            // Half a step of x per element: a block's max |x| / 127 for llmkit (at most
            // the row's), the row's max |x| / 63 for oneDNN.
            const double bound_dnnl = absw * dx[size_t(m)] / 2 * 1.0001 + 1e-4;
            const double bound_llmkit = absw * dx[size_t(m)] * (63.0 / 127.0) / 2 * 1.0001 + 1e-4;
            worst_llmkit = std::max(worst_llmkit, std::fabs(y_llmkit[size_t(m * N + n)] - ref) / bound_llmkit);
            worst_dnnl = std::max(worst_dnnl, std::fabs(y_dnnl[size_t(m * N + n)] - ref) / bound_dnnl);
        }
    const double gops = 2.0 * double(M) * double(K) * double(N) * 1e-9;
    std::printf("int8  M=%-4lld K=%lld N=%lld  %d thr  GOP/s: llmkit blocks %6.1f, llmkit rows %6.1f, oneDNN u8s8 %6.1f "
                "(s8s8 %6.1f, %s)  rows / blocks %.2fx  (error / bound: blocks %.2f, rows %.2f)\n",
                (long long)M, (long long)K, (long long)N, threads, gops / t_llmkit, gops / t_rows, gops / t_dnnl[1],
                gops / t_dnnl[0], s8_exact ? "exact" : "saturates", t_llmkit / t_rows, worst_llmkit, worst_dnnl);
    if (worst_llmkit > 1 || worst_dnnl > 1) {
        std::fprintf(stderr, "int8 outputs outside their bounds\n");
        std::exit(1);
    }
}

void f32_row(dnnl::engine &eng, dnnl::stream &strm, int64_t M, int64_t K, int64_t N, int threads, int reps,
             std::mt19937 &rng) {
    std::normal_distribution<float> g;
    std::vector<float> a(static_cast<size_t>(M * K)), b(size_t(N * K)), c(size_t(M * N));
    for (float &v : a) v = g(rng);
    for (float &v : b) v = g(rng);
    dnnl::memory::desc a_md({M, K}, dt::f32, tag::ab), b_md({K, N}, dt::f32, tag::ba), c_md({M, N}, dt::f32, tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), eng);
    dnnl::matmul prim(pd);
    dnnl::memory am(a_md, eng, a.data()), bm(b_md, eng, b.data()), cm(c_md, eng, c.data());
    omp_set_num_threads(threads);
    // Small tiles: many calls per timing, as a tiled kernel would make them.
    const int calls = M * N * K < (int64_t(1) << 24) ? 200 : 1;
    const double t = best_seconds(reps, [&] {
        for (int i = 0; i < calls; ++i)
            prim.execute(strm, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
        strm.wait();
    }) / calls;
    double worst = 0;
    for (int64_t m = 0; m < std::min<int64_t>(M, 3); ++m)
        for (int64_t n = 0; n < N; ++n) {
            double ref = 0, mag = 0;
            for (int64_t k = 0; k < K; ++k) {
                ref += double(a[size_t(m * K + k)]) * b[size_t(n * K + k)];
                mag += std::fabs(double(a[size_t(m * K + k)]) * b[size_t(n * K + k)]);
            }
            worst = std::max(worst, std::fabs(c[size_t(m * N + n)] - ref) / mag);
        }
    std::printf("fp32  %4lld x %lld x %-4lld %d thr  oneDNN %7.1f GFLOP/s  (%.1f us per call; max error / sum|ab| %.1e)\n",
                (long long)M, (long long)K, (long long)N, threads, 2.0 * double(M * N * K) * 1e-9 / t, t * 1e6, worst);
    if (worst > 1e-5) {
        std::fprintf(stderr, "fp32 output off the float64 reference\n");
        std::exit(1);
    }
}

}  // namespace

int main(int argc, char **argv) {
    const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    dnnl::stream strm(eng);
    std::printf("oneDNN %d.%d.%d (%s), llmkit quant matmul isa %s\n", dnnl_version()->major, dnnl_version()->minor,
                dnnl_version()->patch, dnnl_version()->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime",
                llmkit_quant_matmul_isa());

    std::mt19937 rng(20261201);
    std::normal_distribution<float> g;
    const int64_t K = 4096, N = 4096;
    std::vector<int8_t> w(static_cast<size_t>(N * K));
    std::vector<float> w_scale(static_cast<size_t>(N));
    std::uniform_int_distribution<int> q(-127, 127);
    for (auto &v : w) v = int8_t(q(rng));
    for (auto &s : w_scale) s = 0.01f * (1.0f + 0.1f * g(rng) * g(rng));
    for (int64_t M : {int64_t(1), int64_t(128)}) {
        std::vector<float> x(static_cast<size_t>(M * K));
        for (float &v : x) v = g(rng);
        for (int threads : {1, 2}) int8_row(eng, strm, M, K, N, threads, reps, x, w, w_scale);
    }
    for (int threads : {1, 2}) {
        f32_row(eng, strm, 64, 128, 64, threads, reps, rng);
        f32_row(eng, strm, 128, 128, 128, threads, reps, rng);
        f32_row(eng, strm, 2048, 128, 2048, threads, reps, rng);
    }
    return 0;
}
