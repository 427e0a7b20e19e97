// linalg's baseline kernels (Eigen as the build targets it), the dispatch
// between them and the AVX2 ones, and the threading around both.
#include "quant/linalg.hpp"

#define LLMKIT_LINALG_NS generic
#define LLMKIT_LINALG_NAME "generic"
#include "quant/linalg_kernels_impl.inc"

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/threads.hpp"

namespace llmkit::quant::linalg {

const kernel_table &generic_kernels() { return generic::table; }

namespace {

std::atomic<bool> g_best{true};

const kernel_table &kernels() {
    static const bool cpu_ok = avx2_table && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return cpu_ok && g_best.load() ? *avx2_table : generic::table;
}

int clamp_threads(int n_threads, int64_t tasks) {
    const int t = n_threads > 0 ? n_threads : core::default_num_threads();
    return int(std::max<int64_t>(1, std::min<int64_t>(t, tasks)));
}

// Row (or column) panels of this many: big enough for Eigen's blocking.
constexpr int64_t k_panel = 64;

}  // namespace

bool use_best_isa(bool best) {
    g_best.store(best);
    return &kernels() != &generic::table;
}

void add_gram_lower(double *acc, const double *x, int64_t tokens, int64_t n, int n_threads) {
    // Panel p covers rows [p * 64, p * 64 + 64) up to the diagonal: later
    // panels are longer, so many panels keep the threads evenly loaded.
    const kernel_table &k = kernels();
    const int64_t panels = (n + k_panel - 1) / k_panel;
    core::parallel_for(panels, clamp_threads(n_threads, panels), [&](int64_t p) {
        const int64_t r0 = (panels - 1 - p) * k_panel;  // longest first
        k.gram_rows(acc, x, tokens, n, r0, std::min(n, r0 + k_panel));
    });
}

bool inverse_upper_cholesky(double *h, int64_t n, int n_threads) {
    const kernel_table &k = kernels();
    std::vector<double> l(size_t(n * n));  // J h J
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) l[size_t(i * n + j)] = h[(n - 1 - i) * n + (n - 1 - j)];
    if (!k.cholesky_lower(l.data(), n)) return false;
    std::vector<double> inv(size_t(n * n), 0.0);
    const int64_t panels = (n + k_panel - 1) / k_panel;
    core::parallel_for(panels, clamp_threads(n_threads, panels), [&](int64_t p) {
        const int64_t c0 = p * k_panel;  // the first panels are the largest
        k.lower_inverse_cols(l.data(), n, inv.data(), c0, std::min(n, c0 + k_panel));
    });
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) h[i * n + j] = j >= i ? inv[size_t((n - 1 - i) * n + (n - 1 - j))] : 0.0;
    return true;
}

void sub_product(double *c, int64_t ldc, const double *a, int64_t lda, const double *b, int64_t ldb, int64_t m,
                 int64_t k, int64_t nn, int n_threads) {
    const kernel_table &t = kernels();
    const int64_t panels = (m + k_panel - 1) / k_panel;
    core::parallel_for(panels, clamp_threads(n_threads, panels), [&](int64_t p) {
        const int64_t r0 = p * k_panel, rc = std::min(k_panel, m - r0);
        t.sub_product(c + r0 * ldc, ldc, a + r0 * lda, lda, b, ldb, rc, k, nn);
    });
}

double quadratic_form_sum(const double *d, int64_t rows, int64_t n, const double *h, int n_threads) {
    const kernel_table &k = kernels();
    std::vector<double> per_row(static_cast<size_t>(rows));
    const int64_t panels = (rows + k_panel - 1) / k_panel;
    core::parallel_for(panels, clamp_threads(n_threads, panels), [&](int64_t p) {
        const int64_t r0 = p * k_panel;
        k.quadratic_forms(d + r0 * n, std::min(k_panel, rows - r0), n, h, n, per_row.data() + r0);
    });
    double s = 0;  // in row order: the same sum for any thread count
    for (double v : per_row) s += v;
    return s;
}

double quadratic_form_sum_f32(const float *d, int64_t rows, int64_t n, const float *h, int n_threads) {
    const kernel_table &k = kernels();
    const int64_t panels = (rows + k_panel - 1) / k_panel;
    std::vector<double> per_panel(static_cast<size_t>(panels));
    core::parallel_for(panels, clamp_threads(n_threads, panels), [&](int64_t p) {
        const int64_t r0 = p * k_panel;
        per_panel[size_t(p)] = k.quadratic_sum_f32(d + r0 * n, std::min(k_panel, rows - r0), n, h);
    });
    double s = 0;
    for (double v : per_panel) s += v;
    return s;
}

void quadratic_forms(const double *d, int64_t rows, int64_t n, const double *h, int64_t ldh, double *out) {
    kernels().quadratic_forms(d, rows, n, h, ldh, out);
}

}  // namespace llmkit::quant::linalg
