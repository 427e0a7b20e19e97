// The quantized matmul driver: picks the kernels for the CPU, quantizes the
// activations once, then splits the weight rows over the thread pool.
#include "quant/matmul.hpp"

#include <algorithm>
#include <cstring>
#include <atomic>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/cpu_features.hpp"
#include "core/error.hpp"
#include "core/threads.hpp"
#include "quant/gguf_blocks.hpp"
#include "quant/matmul_kernels.hpp"

namespace llmkit::quant {
namespace {

std::atomic<int> g_forced{int(matmul_isa::automatic)};

// The sum of 16 int8 (a group's, act_rows::sum16). With SSE2, psadbw sums the
// bytes biased by 128 (x ^ 0x80) as unsigned, 8 to each 64-bit half; the bias,
// 16 x 128, comes off.
inline int sum_of_16(const int8_t *q) {
#if defined(__SSE2__)
    const __m128i u = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i *>(q)), _mm_set1_epi8(char(0x80)));
    const __m128i s = _mm_sad_epu8(u, _mm_setzero_si128());
    return _mm_cvtsi128_si32(s) + _mm_extract_epi16(s, 4) - 16 * 128;
#else
    int s = 0;
    for (int j = 0; j < 16; ++j) s += q[j];
    return s;
#endif
}

// A contiguous range of task indices [front, back) that its owner takes from
// the front and other threads from the back, both in one atomic word (front
// in the low 32 bits, back in the high 32), so every task is taken once.
class task_span {
public:
    void set(int64_t front, int64_t back) { fb_.store(uint64_t(front) | uint64_t(back) << 32); }
    // The next task from the front, or -1 when none is left.
    int64_t take_front() { return take(false); }
    // The last task, or -1 when none is left.
    int64_t take_back() { return take(true); }

private:
    int64_t take(bool back) {
        uint64_t v = fb_.load(std::memory_order_relaxed);
        for (;;) {
            const uint64_t f = v & 0xFFFFFFFFu, b = v >> 32;
            if (f >= b) return -1;
            const uint64_t next = back ? (f | (b - 1) << 32) : ((f + 1) | b << 32);
            if (fb_.compare_exchange_weak(v, next, std::memory_order_relaxed)) return int64_t(back ? b - 1 : f);
        }
    }
    std::atomic<uint64_t> fb_{0};
};

const mm::kernel_table *table_for(matmul_isa isa) {
    if (isa == matmul_isa::avx512vnni) return mm::avx512vnni_kernels();
    if (isa == matmul_isa::avx512vnni_no_gfni) return mm::avx512vnni_gfni_kernels() ? mm::avx512vnni_plain_kernels() : nullptr;
    if (isa == matmul_isa::avx2) return mm::avx2_kernels();
    return &mm::scalar_kernels();
}

mm::kernel_kind kind_of(int32_t type) {
    switch (type) {
    case t_q4_0: return mm::k_q4_0;
    case t_q4_1: return mm::k_q4_1;
    case t_q5_0: return mm::k_q5_0;
    case t_q5_1: return mm::k_q5_1;
    case t_q8_0: return mm::k_q8_0;
    case t_iq4_nl: return mm::k_iq4_nl;
    case t_mxfp4: return mm::k_mxfp4;
    case t_q4_k: return mm::k_q4_k;
    case t_q5_k: return mm::k_q5_k;
    case t_q6_k: return mm::k_q6_k;
    case t_q2_k: return mm::k_q2_k;
    case t_q3_k: return mm::k_q3_k;
    case t_iq4_xs: return mm::k_iq4_xs;
    case int8_rows: return mm::k_i8_rows;
    default: return mm::k_count;
    }
}

}  // namespace

namespace mm {
const kernel_table *avx2_kernels() {
    static const bool cpu_ok =
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && core::cpu_has_f16c();
    return cpu_ok ? avx2_table : nullptr;
}
const kernel_table *avx512vnni_plain_kernels() {
    static const bool cpu_ok = avx2_kernels() && __builtin_cpu_supports("avx512vnni") &&
                               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
    return cpu_ok ? avx512vnni_table : nullptr;
}
const kernel_table *avx512vnni_gfni_kernels() {
    static const bool cpu_ok = avx512vnni_plain_kernels() && __builtin_cpu_supports("gfni");
    return cpu_ok ? avx512vnni_gfni_table : nullptr;
}
const kernel_table *avx512vnni_kernels() {
    const kernel_table *gfni = avx512vnni_gfni_kernels();
    return gfni ? gfni : avx512vnni_plain_kernels();
}
}  // namespace mm

matmul_isa matmul_active_isa() noexcept {
    const auto forced = matmul_isa(g_forced.load());
    if (forced != matmul_isa::automatic) return forced;
    const core::isa_level cap = core::max_cpu_isa();
    if (mm::avx512vnni_kernels() && cap >= core::isa_level::avx512) return matmul_isa::avx512vnni;
    if (mm::avx2_kernels() && cap >= core::isa_level::avx2) return matmul_isa::avx2;
    return matmul_isa::scalar;
}

bool matmul_force_isa(matmul_isa isa) noexcept {
    if (isa != matmul_isa::automatic && isa != matmul_isa::scalar && !table_for(isa)) return false;
    g_forced.store(int(isa));
    return true;
}

const char *matmul_isa_name(matmul_isa isa) noexcept {
    switch (isa) {
    case matmul_isa::automatic: return "automatic";
    case matmul_isa::scalar: return "scalar";
    case matmul_isa::avx2: return "avx2";
    case matmul_isa::avx512vnni: return "avx512vnni";
    case matmul_isa::avx512vnni_no_gfni: return "avx512vnni-no-gfni";
    }
    return "unknown";
}

bool matmul_supports(int32_t type) noexcept { return type != int8_rows && kind_of(type) != mm::k_count; }

int64_t matmul_block_elems(int32_t type) noexcept { return kind_of(type) >= mm::k_q4_k ? 256 : 32; }

void matmul(const matmul_problem &p, int n_threads) {
    const mm::kernel_kind kind = kind_of(p.type);
    if (kind == mm::k_count) core::fail(LLMKIT_ERROR_INTERNAL, "quant matmul: no kernel for type ", p.type);
    if (p.m <= 0 || p.n <= 0) return;
    const int threads = std::max(1, n_threads > 0 ? n_threads : core::default_num_threads());
    const matmul_isa isa = matmul_active_isa();  // read once: a forced set may change meanwhile
    const mm::kernel_table &best = *table_for(isa);
    const mm::kernel_fn kernel = best.kernels[kind] ? best.kernels[kind] : mm::scalar_kernels().kernels[kind];
    const int64_t m = p.m, k = p.k, block = kind >= mm::k_q4_k ? 256 : 32;

    // Quantize every activation row once (each row's bytes depend only on that row).
    std::vector<int8_t> q(size_t(m * k));
    std::vector<float> d(size_t(m * (k / block)));
    std::vector<int16_t> sum16(size_t(m * (k / 16))), sum32(size_t(m * (k / 32)));
    // The folded lanes' offsets (act_rows::fold8, fold32; IQ4_NL's and MXFP4's
    // VNNI kernels start from 16 * fold32).
    std::vector<int16_t> fold8(mm::has_fold_offsets(kind) ? size_t(m * (k / 32) * 8) : 0);
    std::vector<int32_t> fold32(fold8.size() / 2);
    // IQ4_XS on the VNNI set: x also in q_pairs' order (act_rows::q_pairs),
    // which only that set's tiles read.
    std::vector<int8_t> q_pairs(kind == mm::k_iq4_xs && is_vnni(isa) ? size_t(m * k) : 0);
    core::parallel_for(m, int(std::min<int64_t>(threads, m)), [&](int64_t i) {
        const float *src = p.x + i * p.x_row_stride;
        std::vector<float> packed;
        if (p.x_col_stride != 1) {  // the quantizers read contiguous rows
            packed.resize(size_t(k));
            for (int64_t j = 0; j < k; ++j) packed[size_t(j)] = src[j * p.x_col_stride];
            src = packed.data();
        }
        int8_t *qi = q.data() + i * k;
        best.quantize_act(src, k, block, qi, d.data() + i * (k / block));
        for (int64_t g = 0; g < k / 16; ++g) sum16[size_t(i * (k / 16) + g)] = int16_t(sum_of_16(qi + 16 * g));
        for (int64_t g = 0; g < k / 32; ++g)
            sum32[size_t(i * (k / 32) + g)] =
                int16_t(sum16[size_t(i * (k / 16) + 2 * g)] + sum16[size_t(i * (k / 16) + 2 * g + 1)]);
        if (!q_pairs.empty())  // [0..15, 32..47, 16..31, 48..63] of each 64 (act_rows::q_pairs)
            for (int64_t g = 0; g < k / 64; ++g) {
                const int8_t *e = qi + 64 * g;
                int8_t *o = q_pairs.data() + i * k + 64 * g;
                for (int h = 0; h < 4; ++h) std::memcpy(o + 16 * h, e + 16 * ((h & 1) * 2 + (h >> 1)), 16);
            }
        if (!fold8.empty())  // |8 * (4 values)| <= 4064 fits int16
            for (int64_t g = 0; g < k / 32; ++g) {
                const int8_t *e = qi + 32 * g;
                int16_t *f8 = fold8.data() + (i * (k / 32) + g) * 8;
                for (int j = 0; j < 8; ++j) f8[j] = int16_t(8 * (e[2 * j] + e[2 * j + 1] + e[16 + 2 * j] + e[17 + 2 * j]));
                for (int l = 0; l < 4; ++l) fold32[size_t((i * (k / 32) + g) * 4 + l)] = -(f8[2 * l] + f8[2 * l + 1]);
            }
    });

    mm::kernel_args base;
    base.w_row_bytes = p.w_row_bytes;
    base.row_scale_stride = p.w_scale_stride;
    base.act.q = q.data();
    base.act.d = d.data();
    base.act.sum16 = sum16.data();
    base.act.sum32 = sum32.data();
    base.act.fold8 = fold8.empty() ? nullptr : fold8.data();
    base.act.fold32 = fold32.empty() ? nullptr : fold32.data();
    base.act.q_pairs = q_pairs.empty() ? nullptr : q_pairs.data();
    base.act.m = m;
    base.act.k = k;
    base.act.block = block;
    base.y_row_stride = p.y_row_stride;
    base.y_col_stride = p.y_col_stride;

    auto run_task = [&](int64_t r0, int64_t rows) {
        mm::kernel_args a = base;
        a.rows = rows;
        a.w = static_cast<const uint8_t *>(p.w) + size_t(r0) * p.w_row_bytes;
        a.row_scale = p.w_scales ? p.w_scales + r0 * p.w_scale_stride : nullptr;
        a.y = p.y + r0 * p.y_col_stride;
        kernel(a);
    };
    // Tasks of whole row tiles (multiples of 4 rows), about 8 per thread so a
    // slow thread does not hold the others up; 2 from 8 activation rows on,
    // where the VNNI GEMMs repack all the activation rows once per task (8
    // tasks a thread ran 5-10 % slower than 1 or 2 at M = 128, 4096^2, 1
    // thread, Emerald Rapids). The split never changes a result.
    const int64_t tasks_per_thread = m >= 8 ? 2 : 8;
    const int64_t per_task =
        std::max<int64_t>(4, (p.n + tasks_per_thread * threads - 1) / (tasks_per_thread * threads) + 3) / 4 * 4;
    const int64_t n_tasks = (p.n + per_task - 1) / per_task;
    const int workers = int(std::min<int64_t>(threads, n_tasks));
    if (m < 8 && workers > 1 && n_tasks < (int64_t(1) << 31)) {
        // GEMV: the weights stream from memory once, each kernel call reading
        // its rows as a few long streams, prefetched a little ahead
        // (k_gemv_ahead_bytes in matmul_avx_impl.inc). Tasks handed out in
        // turn would leave each thread a row range every `threads` tasks:
        // every task would start with nothing in flight, and its last
        // prefetches would fetch the next thread's rows. So each thread takes
        // a contiguous span of tasks, front to back, and one that finishes
        // early takes tasks from the back of the others' spans (2 threads,
        // 4096 x 4096 from DRAM: Q2_K 1.09x, Q3_K 1.03-1.06x, the rest
        // 1.00-1.03x; bench/README.md, 33rd session).
        const int64_t spans = workers;
        std::vector<task_span> span(static_cast<size_t>(spans));
        for (int64_t s = 0; s < spans; ++s) span[size_t(s)].set(n_tasks * s / spans, n_tasks * (s + 1) / spans);
        core::parallel_for(spans, workers, [&](int64_t s) {
            const auto run = [&](int64_t t) { run_task(t * per_task, std::min(per_task, p.n - t * per_task)); };
            for (int64_t t; (t = span[size_t(s)].take_front()) >= 0;) run(t);
            for (int64_t o = 1; o < spans; ++o)
                for (int64_t t; (t = span[size_t((s + o) % spans)].take_back()) >= 0;) run(t);
        });
        return;
    }
    core::parallel_for(n_tasks, workers, [&](int64_t t) {
        const int64_t r0 = t * per_task;
        run_task(r0, std::min(per_task, p.n - r0));
    });
}

}  // namespace llmkit::quant
