// int8 weights times x rounded to integers once per row (LLMKIT_QUANT_X_ROWS):
// every output is one exact int32 sum, so the whole product is an integer
// matmul, which oneDNN runs faster than llmkit's block kernels for prefill
// from about 24 rows of x (bench/onednn_matmul_driver.cpp: 1.5-1.9x at M = 128,
// 4096 x 4096, AVX2).
//
//   y[i, r] = (d_x[i] * scale[r]) * float(sum_j q_x[i, j] * w[r, j])
//
// with d_x[i] = max_j |x[i, j]| / 63 (float) and q_x = round-half-even(x * (63 / max))
// computed in double, clamped to [-63, 63]: 7 bits, as PyTorch's dynamic int8 linear uses on x86
// (reduce_range). Why 7: without VNNI, oneDNN's int8 matmul (like fbgemm's)
// multiplies u8 by s8 with vpmaddubsw, which saturates a pair of products at
// 2^15 - 1: with u8 = q + 64 <= 127 no pair can reach it, with a full 8-bit x
// it does, and oneDNN's sums came out wrong by up to 2 * 10^5 (measured). The
// int32 sum is exact (|sum| <= k * 127^2 < 2^31, as the caller checks), so
// oneDNN and the portable loop give the same bits, for any thread count and m.
#include "quant/matmul.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

#include "core/error.hpp"
#include "core/threads.hpp"

#ifdef LLMKIT_ONEDNN_INT8
#include <dnnl.hpp>
// oneDNN's OpenMP runtime takes its thread count from the calling thread's
// OpenMP setting; only these two functions are needed (libgomp, which
// oneDNN links, provides them).
extern "C" int omp_get_max_threads(void);
extern "C" void omp_set_num_threads(int);

namespace {
// The calling thread's OpenMP thread count set for one oneDNN call, then
// restored (also when the call throws).
struct omp_threads_scope {
    explicit omp_threads_scope(int n) : saved(omp_get_max_threads()) { omp_set_num_threads(n); }
    ~omp_threads_scope() { omp_set_num_threads(saved); }
    omp_threads_scope(const omp_threads_scope &) = delete;
    omp_threads_scope &operator=(const omp_threads_scope &) = delete;
    int saved;
};
}  // namespace
#endif

namespace llmkit::quant {
namespace {

// Below this many rows of x llmkit's own loop (one pass over W, each weight
// row against every x row) beats oneDNN's primitive overhead and packing:
// 4096 x 4096, AVX2, 1 / 2 threads, own vs oneDNN GOP/s: 43 / 78 vs 27 / 44 at
// 8 rows, 45 / 82 vs 44 / 65 at 16, 47 / 75 vs 57 / 95 at 24, 64 / 97 vs 88 / 132 at 32.
constexpr int64_t k_onednn_min_m = 24;

std::atomic<bool> g_no_onednn{false};

// sum_j q[j] * w[j] over k (a multiple of 32), scalar.
int32_t dot_scalar(const int8_t *q, const int8_t *w, int64_t k) {
    int32_t s = 0;
    for (int64_t j = 0; j < k; ++j) s += int32_t(q[j]) * int32_t(w[j]);
    return s;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The same sum with AVX2: vpmaddubsw of |w| (unsigned, <= 128) and q carrying
// w's sign (|q| <= 63), so a pair of products is at most 2 * 128 * 63 = 16128
// and never saturates; vpmaddwd then adds pairs into int32. Exact, like the
// scalar loop.
__attribute__((target("avx2"))) int32_t dot_avx2(const int8_t *q, const int8_t *w, int64_t k) {
    __m256i acc = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t j = 0; j < k; j += 32) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(w + j));
        const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(q + j));
        const __m256i p16 = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(qv, wv));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p16, ones));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}
#endif

// The exact int32 sums acc[i * n + r] by llmkit's own loops (AVX2 when the
// matmul kernels use it, scalar otherwise), weight rows split over the
// threads. Each sum is exact, so the order does not matter.
void sums_portable(const matmul_problem &p, const int8_t *qx, int32_t *acc, int threads) {
    const int64_t m = p.m, n = p.n, k = p.k;
    auto dot = &dot_scalar;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (matmul_active_isa() != matmul_isa::scalar) dot = &dot_avx2;  // the AVX2 and VNNI sets
#endif
    const int64_t per_task = 16;
    const int64_t tasks = (n + per_task - 1) / per_task;
    core::parallel_for(tasks, threads, [&](int64_t t) {
        const int64_t r1 = std::min(n, (t + 1) * per_task);
        for (int64_t r = t * per_task; r < r1; ++r) {
            const auto *w = static_cast<const int8_t *>(p.w) + size_t(r) * p.w_row_bytes;
            for (int64_t i = 0; i < m; ++i) acc[i * n + r] = dot(qx + i * k, w, k);
        }
    });
}

#ifdef LLMKIT_ONEDNN_INT8
// The same sums by oneDNN's u8 x s8 -> s32 matmul on u = q + 64 (1..127),
// less 64 * (the sum of each weight row); W is read in place ([k, n] with
// strides (1, row bytes)). oneDNN keeps created primitives in its own cache,
// so a repeated shape pays for creation once.
void sums_onednn(const matmul_problem &p, const int8_t *qx, int32_t *acc, int threads) {
    using dt = dnnl::memory::data_type;
    static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    const dnnl::memory::dim m = p.m, n = p.n, k = p.k;
    std::vector<uint8_t> ux(static_cast<size_t>(m * k));
    for (size_t i = 0; i < ux.size(); ++i) ux[i] = uint8_t(qx[i] + 64);
    std::vector<int32_t> row_sum(static_cast<size_t>(n));
    core::parallel_for(n, threads, [&](int64_t r) {
        const auto *w = static_cast<const int8_t *>(p.w) + size_t(r) * p.w_row_bytes;
        int32_t sum = 0;
        for (int64_t j = 0; j < k; ++j) sum += w[j];
        row_sum[size_t(r)] = sum;
    });
    const dnnl::memory::desc a({m, k}, dt::u8, dnnl::memory::dims{k, 1});
    const dnnl::memory::desc b({k, n}, dt::s8, dnnl::memory::dims{1, dnnl::memory::dim(p.w_row_bytes)});
    const dnnl::memory::desc c({m, n}, dt::s32, dnnl::memory::dims{n, 1});
    const dnnl::matmul prim(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), engine));
    dnnl::memory am(a, engine, ux.data()), bm(b, engine, const_cast<void *>(p.w)), cm(c, engine, acc);
    dnnl::stream stream(engine);
    {
        const omp_threads_scope omp(threads);
        prim.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
        stream.wait();
    }
    for (int64_t i = 0; i < m; ++i)
        for (int64_t r = 0; r < n; ++r) acc[i * n + r] -= 64 * row_sum[size_t(r)];
}
#endif

}  // namespace

bool int8_x_rows_onednn(bool enable) noexcept {
#ifdef LLMKIT_ONEDNN_INT8
    g_no_onednn.store(!enable);
    return true;
#else
    return !enable;
#endif
}

void matmul_int8_x_rows(const matmul_problem &p, int n_threads) {
    if (p.m <= 0 || p.n <= 0) return;
    const int threads = std::max(1, n_threads > 0 ? n_threads : core::default_num_threads());
    const int64_t m = p.m, n = p.n, k = p.k;
    std::vector<int8_t> qx(static_cast<size_t>(m * k));
    std::vector<float> dx(static_cast<size_t>(m));
    core::parallel_for(m, threads, [&](int64_t i) {
        const float *x = p.x + i * p.x_row_stride;
        float amax = 0;
        for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(x[j * p.x_col_stride]));
        // In double: 63 / max is finite for every positive float max (a float's
        // 63 / 1e-40 is not), and x * (63 / max) is then within [-63, 63].
        const double inv = amax > 0 ? 63.0 / double(amax) : 0.0;
        dx[size_t(i)] = amax / 63.0f;
        int8_t *q = qx.data() + i * k;
        for (int64_t j = 0; j < k; ++j)  // nearbyint: half to even, the FPU's default mode
            q[j] = int8_t(std::clamp(std::nearbyint(double(x[j * p.x_col_stride]) * inv), -63.0, 63.0));
    });

    std::vector<int32_t> acc(static_cast<size_t>(m * n));
#ifdef LLMKIT_ONEDNN_INT8
    bool done = false;
    // oneDNN for enough rows of x and weight rows that do not overlap; should it
    // refuse the problem (a dnnl::error), llmkit's loops give the same result.
    if (m >= k_onednn_min_m && p.w_row_bytes >= size_t(k) && !g_no_onednn.load()) {
        try {
            sums_onednn(p, qx.data(), acc.data(), threads);
            done = true;
        } catch (const dnnl::error &) {
        }
    }
    if (!done)
#endif
        sums_portable(p, qx.data(), acc.data(), threads);

    for (int64_t i = 0; i < m; ++i)
        for (int64_t r = 0; r < n; ++r)
            p.y[i * p.y_row_stride + r * p.y_col_stride] =
                (dx[size_t(i)] * p.w_scales[r * p.w_scale_stride]) * float(acc[size_t(i * n + r)]);
}

}  // namespace llmkit::quant
