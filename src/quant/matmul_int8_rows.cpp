// int8 weights times x rounded to integers once per row (LLMKIT_QUANT_X_ROWS):
// every output is one exact int32 sum, so the whole product is an integer
// matmul. With AVX512-VNNI llmkit runs it with its own tiles (matmul_vnni:
// vpdpbusd on the weights where they lie, 4 x rows by 4 weight rows);
// elsewhere oneDNN runs it faster than llmkit's block kernels for prefill
// from about 24 rows of x (bench/onednn_matmul_driver.cpp: 1.5-1.9x at M = 128,
// 4096 x 4096, AVX2), and llmkit's loops below that or without oneDNN.
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
// the VNNI tiles, oneDNN and the portable loop give the same bits, for any
// thread count and m.
#include "quant/matmul.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LLMKIT_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
// GCC 12 reports its own intrinsics' deliberately undefined registers.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// The product with AVX512-VNNI, MR rows of x against NR weight rows (up to
// 4 each) a tile: one vpdpbusd per 64 bytes of a (weight row, x row) pair,
// on the weights where they lie, unpacked, in one of two ways:
//  * u = q + 64 (1..127, unsigned, as oneDNN takes x below) times w: sum u w
//    = sum q w + 64 * sum w, so 64 times each weight row's sum (wsum) comes
//    off at the end. The first tile of a group of weight rows sums them
//    (Mode sums: one more vpdpbusd per weight vector, of ones), while they
//    arrive from memory; the others reuse the sums (plain).
//  * w + 128 (w ^ 0x80, unsigned) times q: sum = sum q w + 128 sum q, and
//    128 * each x row's sum (qsum) comes off (flip): one vpxord per weight
//    vector and no sums, for m <= 4, where a group of weight rows meets a
//    single tile. (For all m, flip ran 1.45x slower at m = 128: the vpxords
//    take turns with the vpdpbusds.)
// No sum can overflow: |sum| <= k * 127 * 127 (or k * 255 * 63) < 2^31 for
// the k the caller allows. The 16 lanes of each pair are added at the end,
// four weight rows together, and the tile writes its outputs,
// y = (dx[i] * scale[r]) * float(sum) as matmul_int8_x_rows does.
enum class vnni_mode { plain, sums, flip };

// acc += the dot products of u (unsigned bytes) and s (signed bytes), 4 per
// lane: vpdpbusd in place. GCC 12 compiles _mm512_dpbusd_epi32 on a tile of
// accumulators into copies of the accumulators at every step, and spills
// some; the asm keeps each in its register.
LLMKIT_VNNI_TARGET inline void dpbusd_into(__m512i &acc, __m512i u, __m512i s) {
    __asm__("vpdpbusd %[s], %[u], %[acc]" : [acc] "+v"(acc) : [u] "v"(u), [s] "v"(s));
}

// One step of a tile: the 64 bytes at j of each row (mk: which of them; the
// rest load as zeros, which add nothing; flip's w + 128 of a zero is 128,
// times a zero of x).
template <int MR, int NR, vnni_mode Mode>
LLMKIT_VNNI_TARGET inline __attribute__((always_inline)) void tile_step(__m512i (&s)[MR][NR], __m512i (&t)[NR],
                                                                        const int8_t *const *x, const int8_t *const *w,
                                                                        int64_t j, __mmask64 mk) {
    __m512i wv[NR];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
        wv[r] = _mm512_maskz_loadu_epi8(mk, w[r] + j);
        if (Mode == vnni_mode::sums) dpbusd_into(t[r], _mm512_set1_epi8(1), wv[r]);
        if (Mode == vnni_mode::flip) wv[r] = _mm512_xor_si512(wv[r], _mm512_set1_epi8(char(0x80)));
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
        const __m512i xv = _mm512_maskz_loadu_epi8(mk, x[i] + j);
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) {
            if (Mode == vnni_mode::flip) dpbusd_into(s[i][r], wv[r], xv);
            else dpbusd_into(s[i][r], xv, wv[r]);
        }
    }
}

// Where the tiles' outputs go, and their factors.
struct vnni_out {
    float *y;
    int64_t y_row_stride, y_col_stride;
    const float *dx;     // per x row
    const float *scale;  // per weight row, scale_stride apart
    int64_t scale_stride;
    const int32_t *qsum;  // per x row: the sum of its q (flip)
};

// Rows i0.. of x (x: u rows, or q rows for flip) against weight rows r0..;
// wsum: the weight rows' sums (written by sums, read by plain). pf,
// pf_bytes: memory to ask for (into L2) along the way, a line every few
// steps: the next weight rows, so that they are not waited for.
template <int MR, int NR, vnni_mode Mode>
LLMKIT_VNNI_TARGET void tile_vnni(const int8_t *const *x, const int8_t *const *w, int64_t k, int32_t *wsum,
                                  const vnni_out &o, int64_t i0, int64_t r0, const char *pf, int64_t pf_bytes) {
    __m512i s[MR][NR], t[NR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) s[i][r] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) t[r] = _mm512_setzero_si512();
    // Whole steps of 64 bytes, with a prefetch every `every` steps (the lines
    // spread over them), then half a step where k is an odd multiple of 32.
    const int64_t lines = (pf_bytes + 63) / 64, full = k / 64;
    const int64_t every = lines > 0 ? std::max<int64_t>(1, (full + lines - 1) / lines) : full + 1;
    int64_t j = 0, asked = 0, wait = 0;  // (a countdown, not st % every: no division per step)
    for (int64_t st = 0; st < full; ++st, j += 64) {
        if (wait-- == 0) {
            wait = every - 1;
            if (asked < lines) _mm_prefetch(pf + 64 * asked++, _MM_HINT_T1);
        }
        tile_step<MR, NR, Mode>(s, t, x, w, j, ~__mmask64(0));
    }
    for (; asked < lines; ++asked) _mm_prefetch(pf + 64 * asked, _MM_HINT_T1);
    if (j < k) tile_step<MR, NR, Mode>(s, t, x, w, j, __mmask64(0xFFFFFFFFull));
    if (Mode == vnni_mode::sums)
        for (int r = 0; r < NR; ++r) wsum[r] = _mm512_reduce_add_epi32(t[r]);
    alignas(16) int32_t o4[4] = {0, 0, 0, 0};  // 64 * each weight row's sum (not flip)
    if (Mode != vnni_mode::flip)
        for (int r = 0; r < NR; ++r) o4[r] = 64 * wsum[r];
    const __m128i off = _mm_load_si128(reinterpret_cast<const __m128i *>(o4));
    const __m512i z = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
        // [sum of s[i][0], ..., sum of s[i][3]]: pairs of rows interleaved and
        // added, then pairs of pairs, then the four 128-bit quarters.
        const __m512i s0 = s[i][0], s1 = NR > 1 ? s[i][NR > 1 ? 1 : 0] : z;
        const __m512i s2 = NR > 2 ? s[i][NR > 2 ? 2 : 0] : z, s3 = NR > 3 ? s[i][NR > 3 ? 3 : 0] : z;
        const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(s0, s1), _mm512_unpackhi_epi32(s0, s1));
        const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(s2, s3), _mm512_unpackhi_epi32(s2, s3));
        const __m512i v4 = _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
        const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v4), _mm512_extracti64x4_epi64(v4, 1));
        __m128i v = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        v = _mm_sub_epi32(v, Mode == vnni_mode::flip ? _mm_set1_epi32(128 * o.qsum[i0 + i]) : off);
        alignas(16) int32_t out[4];
        _mm_store_si128(reinterpret_cast<__m128i *>(out), v);
        for (int r = 0; r < NR; ++r)
            o.y[(i0 + i) * o.y_row_stride + (r0 + r) * o.y_col_stride] =
                (o.dx[i0 + i] * o.scale[(r0 + r) * o.scale_stride]) * float(out[r]);
    }
}

// Tile of MR = mr rows (1..4) in mode Mode.
template <int NR, vnni_mode Mode>
LLMKIT_VNNI_TARGET void tile_rows_vnni(int mr, const int8_t *const *x, const int8_t *const *w, int64_t k, int32_t *wsum,
                                       const vnni_out &o, int64_t i0, int64_t r0, const char *pf, int64_t pf_bytes) {
    switch (mr) {
    case 4: tile_vnni<4, NR, Mode>(x, w, k, wsum, o, i0, r0, pf, pf_bytes); break;
    case 3: tile_vnni<3, NR, Mode>(x, w, k, wsum, o, i0, r0, pf, pf_bytes); break;
    case 2: tile_vnni<2, NR, Mode>(x, w, k, wsum, o, i0, r0, pf, pf_bytes); break;
    default: tile_vnni<1, NR, Mode>(x, w, k, wsum, o, i0, r0, pf, pf_bytes); break;
    }
}

// NR weight rows from r0 against all m rows of x, 4 at a time (xb: the x
// rows as the tiles take them, k bytes each: q for flip, else u = q + 64).
// pf, pf_bytes (the next weight rows) are asked for a share per tile.
template <int NR>
LLMKIT_VNNI_TARGET void group_vnni(const int8_t *xb, bool flip, int64_t m, int64_t k, const int8_t *const *w,
                                   const vnni_out &o, int64_t r0, const char *pf, int64_t pf_bytes) {
    int32_t wsum[4] = {0, 0, 0, 0};
    const int64_t tiles = (m + 3) / 4;
    for (int64_t i = 0, tile = 0; i < m; i += 4, ++tile) {
        const int8_t *x[4];
        const int mr = int(std::min<int64_t>(4, m - i));
        for (int v = 0; v < 4; ++v) x[v] = xb + std::min<int64_t>(i + v, m - 1) * k;
        const int64_t from = pf_bytes * tile / tiles, to = pf_bytes * (tile + 1) / tiles;
        if (flip) tile_rows_vnni<NR, vnni_mode::flip>(mr, x, w, k, wsum, o, i, r0, pf + from, to - from);
        else if (i == 0) tile_rows_vnni<NR, vnni_mode::sums>(mr, x, w, k, wsum, o, i, r0, pf + from, to - from);
        else tile_rows_vnni<NR, vnni_mode::plain>(mr, x, w, k, wsum, o, i, r0, pf + from, to - from);
    }
}

// What the tiles add to each q: 64 for u = q + 64, none for flip (m <= 4).
inline int8_t vnni_x_bias(int64_t m) { return m <= 4 ? 0 : 64; }

// One contiguous row of x rounded as matmul_int8_x_rows does (the same
// bits: the float max, then each x * (63 / max) in double, rounded by the
// current mode as nearbyint does, clamped), 16 at a time, writing q + bias
// (0 or 64) and the sum of q; returns the max |x|. (The scalar loop calls
// nearbyint per element: a tenth of a 128-row prefill's time.)
LLMKIT_VNNI_TARGET float round_row_vnni(const float *x, int64_t k, int8_t bias, int8_t *q, int32_t *qsum) {
    __m512 mx = _mm512_setzero_ps();
    for (int64_t j = 0; j < k; j += 16) mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
    const float amax = _mm512_reduce_max_ps(mx);
    const __m512d inv = _mm512_set1_pd(amax > 0 ? 63.0 / double(amax) : 0.0);
    const __m512d lo = _mm512_set1_pd(-63.0), hi = _mm512_set1_pd(63.0);
    __m128i usum = _mm_setzero_si128();  // of q + 64 (vpsadbw adds unsigned bytes)
    for (int64_t j = 0; j < k; j += 16) {
        const __m512 v = _mm512_loadu_ps(x + j);
        __m256i r[2];
        for (int h = 0; h < 2; ++h) {
            const __m512d d = _mm512_cvtps_pd(h == 0 ? _mm512_castps512_ps256(v) : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
            const __m512d t = _mm512_roundscale_pd(_mm512_mul_pd(d, inv), _MM_FROUND_CUR_DIRECTION);
            r[h] = _mm512_cvtpd_epi32(_mm512_min_pd(_mm512_max_pd(t, lo), hi));  // exact: integers in [-63, 63]
        }
        const __m128i b = _mm512_cvtepi32_epi8(_mm512_inserti64x4(_mm512_castsi256_si512(r[0]), r[1], 1));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(q + j), _mm_add_epi8(b, _mm_set1_epi8(bias)));
        usum = _mm_add_epi64(usum, _mm_sad_epu8(_mm_add_epi8(b, _mm_set1_epi8(64)), _mm_setzero_si128()));
    }
    *qsum = int32_t(_mm_cvtsi128_si64(usum) + _mm_extract_epi64(usum, 1) - 64 * k);
    return amax;
}

// The whole product through the tiles: weight rows split over the threads,
// 4 at a time, each group against every x row (its 4 rows' bytes stay in L1
// while the x rows stream from L2). xb: q + vnni_x_bias(m) per x row.
void matmul_vnni(const matmul_problem &p, const int8_t *xb, const vnni_out &o, int threads) {
    const int64_t m = p.m, n = p.n, k = p.k;
    const int64_t per_task = 32;
    const int64_t tasks = (n + per_task - 1) / per_task;
    const bool flip = vnni_x_bias(m) == 0;
    core::parallel_for(tasks, threads, [&](int64_t t) {
        const int64_t r1 = std::min(n, (t + 1) * per_task);
        for (int64_t r = t * per_task; r < r1; r += 4) {
            const int nr = int(std::min<int64_t>(4, r1 - r));
            const int8_t *w[4];
            for (int v = 0; v < 4; ++v)
                w[v] = static_cast<const int8_t *>(p.w) + size_t(std::min<int64_t>(r + v, r1 - 1)) * p.w_row_bytes;
            // The next group's rows (within this task), k bytes each.
            const int64_t next = std::min<int64_t>(4, r1 - (r + 4));
            const char *pf = next > 0 ? static_cast<const char *>(p.w) + size_t(r + 4) * p.w_row_bytes : nullptr;
            const int64_t pf_bytes = next > 0 ? (next - 1) * int64_t(p.w_row_bytes) + k : 0;
            switch (nr) {
            case 4: group_vnni<4>(xb, flip, m, k, w, o, r, pf, pf_bytes); break;
            case 3: group_vnni<3>(xb, flip, m, k, w, o, r, pf, pf_bytes); break;
            case 2: group_vnni<2>(xb, flip, m, k, w, o, r, pf, pf_bytes); break;
            default: group_vnni<1>(xb, flip, m, k, w, o, r, pf, pf_bytes); break;
            }
        }
    });
}
#endif

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
    // The rounded rows, 64-byte aligned: the VNNI tiles read them 64 bytes at
    // a time, and from malloc's 16-byte alignment every load straddled two
    // cache lines (the M = 128 product ran 1.6x slower).
    std::vector<int8_t> qx_buf(static_cast<size_t>(m * k) + 63);
    int8_t *const qx = reinterpret_cast<int8_t *>((reinterpret_cast<uintptr_t>(qx_buf.data()) + 63) & ~uintptr_t(63));
    std::vector<float> dx(static_cast<size_t>(m));
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    const bool vnni = is_vnni(matmul_active_isa());
#else
    const bool vnni = false;
#endif
    // The VNNI tiles take q + bias (matmul_vnni); the other ways q itself.
    const int8_t bias = vnni ? vnni_x_bias(m) : 0;
    std::vector<int32_t> qsum(vnni ? static_cast<size_t>(m) : 0);  // the sum of each row's q (flip)
    core::parallel_for(m, threads, [&](int64_t i) {
        const float *x = p.x + i * p.x_row_stride;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        if (vnni && p.x_col_stride == 1) {
            dx[size_t(i)] = round_row_vnni(x, k, bias, qx + i * k, &qsum[size_t(i)]) / 63.0f;
            return;
        }
#endif
        float amax = 0;
        for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(x[j * p.x_col_stride]));
        // In double: 63 / max is finite for every positive float max (a float's
        // 63 / 1e-40 is not), and x * (63 / max) is then within [-63, 63].
        const double inv = amax > 0 ? 63.0 / double(amax) : 0.0;
        dx[size_t(i)] = amax / 63.0f;
        int8_t *q = qx + i * k;
        for (int64_t j = 0; j < k; ++j)  // nearbyint: half to even, the FPU's default mode
            q[j] = int8_t(std::clamp(std::nearbyint(double(x[j * p.x_col_stride]) * inv), -63.0, 63.0));
        if (vnni) {
            int32_t sum = 0;
            for (int64_t j = 0; j < k; ++j) {
                sum += q[j];
                q[j] = int8_t(q[j] + bias);  // <= 127
            }
            qsum[size_t(i)] = sum;
        }
    });

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (vnni) {  // the tiles write y themselves
        const vnni_out o{p.y, p.y_row_stride, p.y_col_stride, dx.data(), p.w_scales, p.w_scale_stride, qsum.data()};
        matmul_vnni(p, qx, o, threads);
        return;
    }
#endif
    std::vector<int32_t> acc(static_cast<size_t>(m * n));
    bool done = false;
#ifdef LLMKIT_ONEDNN_INT8
    // oneDNN for enough rows of x and weight rows that do not overlap; should it
    // refuse the problem (a dnnl::error), llmkit's loops give the same result.
    if (m >= k_onednn_min_m && p.w_row_bytes >= size_t(k) && !g_no_onednn.load()) {
        try {
            sums_onednn(p, qx, acc.data(), threads);
            done = true;
        } catch (const dnnl::error &) {
        }
    }
#endif
    if (!done) sums_portable(p, qx, acc.data(), threads);

    for (int64_t i = 0; i < m; ++i)
        for (int64_t r = 0; r < n; ++r)
            p.y[i * p.y_row_stride + r * p.y_col_stride] =
                (dx[size_t(i)] * p.w_scales[r * p.w_scale_stride]) * float(acc[size_t(i * n + r)]);
}

}  // namespace llmkit::quant
