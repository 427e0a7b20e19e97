// AWQ: activation-aware scale search and clipping search, errors on the
// calibration Hessian (linalg.hpp for the products: float32 to rank the scale
// candidates, float64 for the clipping search and the reported errors).
#include "quant/awq.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/threads.hpp"
#include "quant/gguf_blocks.hpp"
#include "quant/linalg.hpp"

namespace llmkit::quant {

namespace {

// RTN of a scaled weight W' = W * s into AWQ groups (float32 weights, as stored).
void round_groups(const std::vector<float> &ws, int64_t rows, int64_t n, int64_t group, bool symmetric,
                  int4_groups &g, int n_threads) {
    core::parallel_for(rows, n_threads, [&](int64_t r) {
        for (int64_t gi = 0; gi < g.n_groups; ++gi) {
            const float *x = &ws[size_t(r * n + gi * group)];
            float s;
            uint8_t z;
            fit_int4(x, group, 1, family::awq, symmetric, s, z);
            g.scale[size_t(r * g.n_groups + gi)] = s;
            g.zero[size_t(r * g.n_groups + gi)] = z;
            for (int64_t k = 0; k < group; ++k) g.q[size_t(r * n + gi * group + k)] = quantize_int4(x[k], s, z);
        }
    });
}

// The effective weight Q(W s) / s in float64.
std::vector<double> effective(const int4_groups &g, const std::vector<float> &s) {
    std::vector<double> out = dequantize_groups(g);
    for (int64_t r = 0; r < g.rows; ++r)
        for (int64_t i = 0; i < g.n; ++i) out[size_t(r * g.n + i)] /= double(s[size_t(i)]);
    return out;
}

// Q4_K of the scaled weight W' = W * s, each row fitted with importance
// diag(H) / s^2 (the scaled layer's inputs are x / s); nullptr importance for
// ggml's plain quantizer.
void round_q4_k(const std::vector<float> &ws, int64_t rows, int64_t n, const float *importance,
                std::vector<uint8_t> &blocks, int n_threads) {
    const type_traits &t = *find_type(t_q4_k);
    const size_t row_bytes = size_t(n / 256 * 144);
    blocks.resize(row_bytes * size_t(rows));
    core::parallel_for(rows, n_threads, [&](int64_t r) {
        if (importance)
            t.quantize_row_weighted(&ws[size_t(r * n)], blocks.data() + size_t(r) * row_bytes, n, importance);
        else
            t.quantize_row(&ws[size_t(r * n)], blocks.data() + size_t(r) * row_bytes, n);
    });
}

std::vector<double> divided(std::vector<double> w, int64_t rows, int64_t n, const std::vector<float> &s) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n; ++i) w[size_t(r * n + i)] /= double(s[size_t(i)]);
    return w;
}

}  // namespace

awq_result awq(const f32_rows &src, const hessian &hs, const awq_options &o) {
    const int64_t rows = src.rows, n = src.n, group = o.group > 0 ? o.group : n;
    if (hs.n() != n)
        core::fail(LLMKIT_ERROR_SHAPE, "awq: calibration inputs have ", hs.n(), " features, the weight has ", n,
                   " inputs");
    if (hs.samples() == 0) core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "awq: no calibration inputs (0 tokens)");
    if (n % group != 0) core::fail(LLMKIT_ERROR_SHAPE, "awq: ", n, " inputs are not a multiple of the group size ", group);
    if (o.q4_k && n % 256 != 0)
        core::fail(LLMKIT_ERROR_SHAPE, "awq to q4_K: ", n, " inputs are not a multiple of Q4_K's super-block of 256");
    if (o.n_grid < 1 || o.n_grid > 1000)
        core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "awq: n_grid must be in [1, 1000], got ", o.n_grid);
    if (!(o.max_shrink >= 0.0 && o.max_shrink < 1.0))
        core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "awq: max_shrink must be in [0, 1), got ", o.max_shrink);

    std::vector<double> w0(size_t(rows * n));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < n; ++j) {
            const float v = src.data[r * src.row_stride + j * src.col_stride];
            if (!std::isfinite(v))
                core::fail(LLMKIT_ERROR_NON_FINITE, "awq: weight[", r, ", ", j, "] = ", v, " is not finite");
            w0[size_t(r * n + j)] = v;
        }
    const std::vector<double> h = hs.matrix();
    const std::vector<double> x_mean = hs.mean_abs();

    awq_result res;
    int4_groups g;
    g.rows = rows;
    g.n = n;
    g.group = group;
    g.n_groups = n / group;
    g.q.assign(size_t(rows * n), 0);
    g.scale.assign(size_t(rows * g.n_groups), 0.0f);
    g.zero.assign(size_t(rows * g.n_groups), 0);
    g.g_idx.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) g.g_idx[size_t(i)] = int32_t(i / group);

    const bool clip = o.clip && !o.q4_k;
    const int64_t total_steps = o.n_grid + (clip ? 1 : 0);
    std::vector<float> importance(o.q4_k ? size_t(n) : 0);
    std::vector<uint8_t> blocks;
    std::vector<float> ws(size_t(rows * n)), s(static_cast<size_t>(n)), best_s(size_t(n), 1.0f);
    double best_err = INFINITY;
    const output_error_meter meter(w0, h, rows, n, o.n_threads);
    // The output error of the weight scaled by sc and rounded: float64
    // (exact) or float32 products (to rank the candidates).
    const auto evaluate = [&](const std::vector<float> &sc, bool exact) {
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < n; ++j) ws[size_t(r * n + j)] = float(w0[size_t(r * n + j)] * double(sc[size_t(j)]));
        std::vector<double> eff;
        if (o.q4_k) {
            for (int64_t j = 0; j < n; ++j)
                importance[size_t(j)] = float(h[size_t(j * n + j)] / (double(sc[size_t(j)]) * double(sc[size_t(j)])));
            round_q4_k(ws, rows, n, importance.data(), blocks, o.n_threads);
            eff = divided(dequantize_q4_k_rows(blocks, rows, n), rows, n, sc);
        } else {
            round_groups(ws, rows, n, group, o.symmetric, g, o.n_threads);
            eff = effective(g, sc);
        }
        return exact ? meter(eff) : meter.approx(eff);
    };
    // 1. Scale search: s = mean|x|^alpha, normalised so that max * min = 1.
    double zero_err = 0;  // alpha 0 (s = 1: no scaling), in float64
    int best_k = 0;
    for (int k = 0; k < o.n_grid; ++k) {
        const double alpha = double(k) / o.n_grid;
        double lo = INFINITY, hi = 0;
        std::vector<double> sd(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) {
            sd[size_t(j)] = std::max(std::pow(x_mean[size_t(j)], alpha), 1e-4);
            lo = std::min(lo, sd[size_t(j)]);
            hi = std::max(hi, sd[size_t(j)]);
        }
        const double norm = std::sqrt(lo * hi);
        for (int64_t j = 0; j < n; ++j) s[size_t(j)] = float(sd[size_t(j)] / norm);
        const double err = k == 0 ? (zero_err = evaluate(s, true)) : evaluate(s, false);
        // Plain round-to-nearest's error, reported (Q4_K: ggml's plain Q4_K, below).
        if (k == 0 && !o.q4_k) res.rtn_output_error = zero_err;
        if (err < best_err) {
            best_err = err;
            best_s = s;
            res.alpha = alpha;
            best_k = k;
        }
        if (o.progress) o.progress(k + 1, total_steps);
    }
    // The float32 ranking is good to ~1e-5: a winner that close to alpha 0 is
    // checked in float64, so the scaling never adds error to no scaling.
    if (best_k != 0 && best_err > zero_err * (1.0 - 1e-3) && !(evaluate(best_s, true) < zero_err)) {
        std::fill(best_s.begin(), best_s.end(), 1.0f);
        res.alpha = 0;
    }

    // 2. Clipping search per (row, group) on the scaled layer, whose inputs
    //    are x / s: H' = diag(1/s) H diag(1/s), and group blocks of it.
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < n; ++j) ws[size_t(r * n + j)] = float(w0[size_t(r * n + j)] * double(best_s[size_t(j)]));
    if (o.q4_k) {
        for (int64_t j = 0; j < n; ++j)
            importance[size_t(j)] =
                float(h[size_t(j * n + j)] / (double(best_s[size_t(j)]) * double(best_s[size_t(j)])));
        round_q4_k(ws, rows, n, importance.data(), res.q4_k, o.n_threads);
        res.output_error = meter(divided(dequantize_q4_k_rows(res.q4_k, rows, n), rows, n, best_s));
        // Round-to-nearest for comparison: ggml's plain Q4_K of W.
        std::vector<float> w32(w0.begin(), w0.end());
        round_q4_k(w32, rows, n, nullptr, blocks, o.n_threads);
        res.rtn_output_error = meter(dequantize_q4_k_rows(blocks, rows, n));
        res.scales = std::move(best_s);
        return res;
    }
    if (clip) {
        const int n_ratios = std::max(1, int(std::ceil(o.max_shrink * o.n_grid)));
        // The diagonal blocks of H' = diag(1/s) H diag(1/s), one [group, group] per group.
        std::vector<double> hg(size_t(g.n_groups * group * group));
        for (int64_t gi = 0; gi < g.n_groups; ++gi)
            for (int64_t a = 0; a < group; ++a)
                for (int64_t b = 0; b < group; ++b) {
                    const int64_t ja = gi * group + a, jb = gi * group + b;
                    hg[size_t((gi * group + a) * group + b)] =
                        h[size_t(ja * n + jb)] / (double(best_s[size_t(ja)]) * double(best_s[size_t(jb)]));
                }
        // Chunks of rows, so that one product covers every (row, ratio) of a group.
        constexpr int64_t chunk = 32;
        core::parallel_for((rows + chunk - 1) / chunk, o.n_threads, [&](int64_t c) {
            const int64_t r0 = c * chunk, rc = std::min(chunk, rows - r0);
            std::vector<float> clipped(static_cast<size_t>(group)), amax(static_cast<size_t>(rc));
            std::vector<double> d(size_t(rc * n_ratios * group)), e(size_t(rc * n_ratios));
            for (int64_t gi = 0; gi < g.n_groups; ++gi) {
                // Each (row, ratio)'s rounding error d, a row of d; then d^T H'_gg d for all of them.
                for (int64_t r = 0; r < rc; ++r) {
                    const float *w = &ws[size_t((r0 + r) * n + gi * group)];
                    float a = 0;
                    for (int64_t k = 0; k < group; ++k) a = std::max(a, std::fabs(w[k]));
                    amax[size_t(r)] = a;
                    for (int i = 0; i < n_ratios; ++i) {
                        const float lim = a * (1.0f - float(i) / float(o.n_grid));
                        for (int64_t k = 0; k < group; ++k) clipped[size_t(k)] = std::min(std::max(w[k], -lim), lim);
                        float sc;
                        uint8_t z;
                        fit_int4(clipped.data(), group, 1, family::awq, o.symmetric, sc, z);
                        int4_rounding_error(w, clipped.data(), group, sc, z, &d[size_t((r * n_ratios + i) * group)]);
                    }
                }
                linalg::quadratic_forms(d.data(), rc * n_ratios, group, hg.data() + gi * group * group, group,
                                        e.data());
                for (int64_t r = 0; r < rc; ++r) {
                    double best = INFINITY;
                    float best_ratio = 1.0f;
                    for (int i = 0; i < n_ratios; ++i)
                        if (e[size_t(r * n_ratios + i)] < best)
                            best = e[size_t(r * n_ratios + i)], best_ratio = 1.0f - float(i) / float(o.n_grid);
                    float *w = &ws[size_t((r0 + r) * n + gi * group)];
                    const float lim = amax[size_t(r)] * best_ratio;
                    for (int64_t k = 0; k < group; ++k) w[k] = std::min(std::max(w[k], -lim), lim);
                }
            }
        });
    }
    round_groups(ws, rows, n, group, o.symmetric, g, o.n_threads);
    res.output_error = meter(effective(g, best_s));
    if (o.progress && o.clip) o.progress(total_steps, total_steps);
    res.groups = std::move(g);
    res.scales = std::move(best_s);
    return res;
}

}  // namespace llmkit::quant
