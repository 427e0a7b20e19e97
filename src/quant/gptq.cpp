// GPTQ, Algorithm 1 of Frantar et al. with lazy batched updates, in float64:
// Eigen for the per-column work, linalg.hpp (Eigen per ISA, threaded) for the
// Hessian, the Cholesky factor and the block products.
#include "quant/gptq.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.hpp"
#include "core/threads.hpp"
#include "quant/gguf_blocks.hpp"
#include "quant/linalg.hpp"

namespace llmkit::quant {

namespace {

using mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr int64_t k_q4_k_elems = 256, k_q4_k_bytes = 144;

}  // namespace

std::vector<double> dequantize_q4_k_rows(const std::vector<uint8_t> &blocks, int64_t rows, int64_t n) {
    const type_traits &t = *find_type(t_q4_k);
    std::vector<float> row(static_cast<size_t>(n));
    std::vector<double> out(size_t(rows * n));
    const size_t row_bytes = size_t(n / k_q4_k_elems * k_q4_k_bytes);
    for (int64_t r = 0; r < rows; ++r) {
        t.dequantize_row(blocks.data() + size_t(r) * row_bytes, row.data(), n);
        std::copy(row.begin(), row.end(), out.begin() + r * n);
    }
    return out;
}

hessian::hessian(int64_t n) : n_(n) {
    if (n <= 0) core::fail(LLMKIT_ERROR_SHAPE, "the layer has ", n, " inputs");
    xtx_.assign(size_t(n) * size_t(n), 0.0);
    abs_sum_.assign(size_t(n), 0.0);
}

void hessian::add(const float *x, int64_t tokens, int64_t row_stride, int64_t col_stride, int n_threads) {
    if (tokens <= 0) return;
    mat xb(tokens, n_);
    for (int64_t t = 0; t < tokens; ++t)
        for (int64_t j = 0; j < n_; ++j) {
            const float v = x[t * row_stride + j * col_stride];
            if (!std::isfinite(v))
                core::fail(LLMKIT_ERROR_NON_FINITE, "calibration input [", t, ", ", j, "] = ", v, " is not finite");
            xb(t, j) = v;
            abs_sum_[size_t(j)] += std::fabs(double(v));
        }
    linalg::add_gram_lower(xtx_.data(), xb.data(), tokens, n_, n_threads);
    count_ += tokens;
}

std::vector<double> hessian::matrix() const {
    std::vector<double> h(xtx_.size());
    const double scale = count_ ? 2.0 / double(count_) : 0.0;
    for (int64_t i = 0; i < n_; ++i)
        for (int64_t j = 0; j <= i; ++j) {
            const double v = xtx_[size_t(i * n_ + j)] * scale;
            h[size_t(i * n_ + j)] = v;
            h[size_t(j * n_ + i)] = v;
        }
    return h;
}

std::vector<double> hessian::mean_abs() const {
    std::vector<double> m(abs_sum_);
    for (double &v : m) v = count_ ? v / double(count_) : 0.0;
    return m;
}

std::vector<double> dequantize_groups(const int4_groups &g) {
    std::vector<double> out(size_t(g.rows * g.n));
    for (int64_t r = 0; r < g.rows; ++r)
        for (int64_t i = 0; i < g.n; ++i) {
            const size_t gi = size_t(r * g.n_groups + g.g_idx[size_t(i)]);
            // The float32 product the dequantizer computes.
            out[size_t(r * g.n + i)] = double(g.scale[gi] * float(int(g.q[size_t(r * g.n + i)]) - int(g.zero[gi])));
        }
    return out;
}

output_error_meter::output_error_meter(const std::vector<double> &w, const std::vector<double> &h, int64_t rows,
                                       int64_t n, int n_threads)
    : w_(w), h_(h), rows_(rows), n_(n), n_threads_(n_threads) {
    energy_ = linalg::quadratic_form_sum(w.data(), rows, n, h.data(), n_threads);
}

double output_error_meter::operator()(const std::vector<double> &w_hat) const {
    std::vector<double> d(w_.size());
    for (size_t i = 0; i < d.size(); ++i) d[i] = w_[i] - w_hat[i];
    const double e = linalg::quadratic_form_sum(d.data(), rows_, n_, h_.data(), n_threads_);
    return energy_ > 0 ? e / energy_ : 0.0;
}

double output_error_meter::approx(const std::vector<double> &w_hat) const {
    if (h32_.empty()) h32_.assign(h_.begin(), h_.end());
    std::vector<float> d(w_.size());
    for (size_t i = 0; i < d.size(); ++i) d[i] = float(w_[i] - w_hat[i]);
    const double e = linalg::quadratic_form_sum_f32(d.data(), rows_, n_, h32_.data(), n_threads_);
    return energy_ > 0 ? e / energy_ : 0.0;
}

layer_result gptq(const f32_rows &src, const hessian &hs, const gptq_options &o) {
    const int64_t rows = src.rows, n = src.n;
    if (hs.n() != n)
        core::fail(LLMKIT_ERROR_SHAPE, "gptq: calibration inputs have ", hs.n(), " features, the weight has ", n,
                   " inputs");
    if (hs.samples() == 0) core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "gptq: no calibration inputs (0 tokens)");
    const int64_t group = o.group > 0 ? o.group : n;
    if (n % group != 0)
        core::fail(LLMKIT_ERROR_SHAPE, "gptq: ", n, " inputs are not a multiple of the group size ", group);
    if (!(o.damp > 0) || !std::isfinite(o.damp))
        core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "gptq: damp must be > 0, got ", o.damp);
    if (o.block <= 0) core::fail(LLMKIT_ERROR_INVALID_ARGUMENT, "gptq: block size must be > 0, got ", o.block);
    if (o.q4_k && (group != k_q4_k_elems || o.act_order))
        core::fail(LLMKIT_ERROR_UNSUPPORTED, "gptq to q4_K: the group is Q4_K's super-block of 256 and there is no "
                                             "column order (act_order off); got group ", group,
                   o.act_order ? " with act_order" : "");
    // Group parameters are fitted on a group's current (fully updated) weights,
    // so a group must not straddle a lazy-update block.
    const int64_t block = group >= n ? o.block : std::max<int64_t>(1, o.block / group) * group;

    layer_result res;
    std::vector<double> w0(size_t(rows * n));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < n; ++j) {
            const float v = src.data[r * src.row_stride + j * src.col_stride];
            if (!std::isfinite(v))
                core::fail(LLMKIT_ERROR_NON_FINITE, "gptq: weight[", r, ", ", j, "] = ", v, " is not finite");
            w0[size_t(r * n + j)] = v;
        }
    const std::vector<double> h0 = hs.matrix();
    // Q4_K's fit weighs each input by its activation energy, diag(H) (what
    // llama.cpp's imatrix holds, up to a constant factor).
    std::vector<float> importance;
    if (o.q4_k) {
        importance.resize(size_t(n));
        for (int64_t j = 0; j < n; ++j) importance[size_t(j)] = float(h0[size_t(j * n + j)]);
    }

    // Dead inputs (never non-zero in the calibration set): weight 0, H_jj = 1.
    mat H = Eigen::Map<const mat>(h0.data(), n, n);
    mat W = Eigen::Map<const mat>(w0.data(), rows, n);
    for (int64_t j = 0; j < n; ++j)
        if (H(j, j) == 0.0) {
            H(j, j) = 1.0;
            W.col(j).setZero();
            ++res.dead_columns;
        }

    // Act-order: the columns with the largest H_jj (most activation energy) first.
    std::vector<int64_t> perm(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), 0);
    if (o.act_order) {
        std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return H(a, a) > H(b, b); });
        mat Hp(n, n), Wp(rows, n);
        for (int64_t i = 0; i < n; ++i) {
            Wp.col(i) = W.col(perm[size_t(i)]);
            for (int64_t j = 0; j < n; ++j) Hp(i, j) = H(perm[size_t(i)], perm[size_t(j)]);
        }
        H.swap(Hp);
        W.swap(Wp);
    }

    // Dampening, then U = upper Cholesky factor of H^-1.
    H.diagonal().array() += o.damp * H.diagonal().mean();
    if (!linalg::inverse_upper_cholesky(H.data(), n, o.n_threads))
        core::fail(LLMKIT_ERROR_INVALID_ARGUMENT,
                   "gptq: the damped Hessian is not positive definite; increase damp (now ", o.damp, ")");
    mat U;
    U.swap(H);

    int4_groups &g = res.groups;
    g.rows = rows;
    g.n = n;
    g.group = group;
    g.n_groups = n / group;
    if (!o.q4_k) {
        g.q.assign(size_t(rows * n), 0);
        g.scale.assign(size_t(rows * g.n_groups), 0.0f);
        g.zero.assign(size_t(rows * g.n_groups), 0);
        g.g_idx.assign(size_t(n), 0);
    }
    std::vector<uint8_t> qp(size_t(rows * n));  // q in permuted column order
    const family fam = family::gptq;
    const int64_t n_super = n / k_q4_k_elems;
    if (o.q4_k) res.q4_k.assign(size_t(rows * n_super * k_q4_k_bytes), 0);
    auto q4_k_block = [&](int64_t r, int64_t j) { return res.q4_k.data() + size_t((r * n_super + j / k_q4_k_elems) * k_q4_k_bytes); };

    // Within a block every row is independent (U is shared, read-only): row
    // chunks go to the threads, each running the block's columns in order.
    constexpr int64_t k_rows_per_task = 64;
    const int64_t row_tasks = (rows + k_rows_per_task - 1) / k_rows_per_task;
    for (int64_t i1 = 0; i1 < n; i1 += block) {
        const int64_t i2 = std::min(i1 + block, n), cnt = i2 - i1;
        mat W1 = W.middleCols(i1, cnt);
        mat Err1(rows, cnt);
        if (!o.q4_k)
            for (int64_t j = i1; j < i2; ++j) g.g_idx[size_t(perm[size_t(j)])] = int32_t(j / group);
        core::parallel_for(row_tasks, o.n_threads, [&](int64_t task) {
            const int64_t r0 = task * k_rows_per_task, r1 = std::min(rows, r0 + k_rows_per_task);
            std::vector<float> tmp(size_t(o.q4_k ? k_q4_k_elems : group));
            for (int64_t i = 0; i < cnt; ++i) {
                const int64_t j = i1 + i;
                if (o.q4_k && j % k_q4_k_elems == 0) {
                    // Fit the super-block's scales and mins on its current weights.
                    const type_traits &t = *find_type(t_q4_k);
                    for (int64_t r = r0; r < r1; ++r) {
                        for (int64_t k = 0; k < k_q4_k_elems; ++k) tmp[size_t(k)] = float(W1(r, i + k));
                        t.quantize_row_weighted(tmp.data(), q4_k_block(r, j), k_q4_k_elems, importance.data() + j);
                    }
                } else if (!o.q4_k && j % group == 0) {
                    // Fit the group's scale and zero on its current weights
                    // (float32, as the weights are stored).
                    const int64_t gi = j / group;
                    for (int64_t r = r0; r < r1; ++r) {
                        for (int64_t k = 0; k < group; ++k)
                            tmp[size_t(k)] = float(group >= n ? W(r, k) : W1(r, i + k));
                        float s;
                        uint8_t z;
                        fit_int4(tmp.data(), group, 1, fam, o.symmetric, s, z);
                        g.scale[size_t(r * g.n_groups + gi)] = s;
                        g.zero[size_t(r * g.n_groups + gi)] = z;
                    }
                }
                const double d = U(j, j);
                if (o.q4_k) {
                    const int sub = int(j % k_q4_k_elems / 32);
                    for (int64_t r = r0; r < r1; ++r) {
                        float ds, ms;
                        q4_k_sub_block(q4_k_block(r, j), sub, ds, ms);
                        int q = 0;
                        if (ds != 0.0f) {
                            // Clamped before rounding: compensation may push a weight past the fitted range.
                            const float v = std::min(16.0f, std::max(-1.0f, (float(W1(r, i)) + ms) / ds));
                            q = std::min(15, std::max(0, nearest_int(v)));
                        }
                        qp[size_t(r * n + j)] = uint8_t(q);
                        Err1(r, i) = (W1(r, i) - double(ds * float(q) - ms)) / d;
                    }
                } else {
                    const int64_t gi = j / group;
                    for (int64_t r = r0; r < r1; ++r) {
                        const float s = g.scale[size_t(r * g.n_groups + gi)];
                        const uint8_t z = g.zero[size_t(r * g.n_groups + gi)];
                        const uint8_t q = quantize_int4(float(W1(r, i)), s, z);
                        qp[size_t(r * n + j)] = q;
                        const double deq = double(s * float(int(q) - int(z)));
                        Err1(r, i) = (W1(r, i) - deq) / d;
                    }
                }
                // Compensate the rest of the block (rank-1 update).
                const int64_t rest = cnt - i - 1;
                if (rest > 0)
                    W1.block(r0, i + 1, r1 - r0, rest).noalias() -=
                        Err1.block(r0, i, r1 - r0, 1) * U.row(j).segment(j + 1, rest);
            }
        });
        // Lazy update of every later column, by row chunks in parallel.
        if (i2 < n) linalg::sub_product(W.data() + i2, n, Err1.data(), cnt, U.data() + i1 * n + i2, n, rows, cnt, n - i2, o.n_threads);
        if (o.progress) o.progress(i2, n);
    }
    if (o.q4_k) {
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t s = 0; s < n_super; ++s)
                q4_k_put_levels(qp.data() + r * n + s * k_q4_k_elems, res.q4_k.data() + size_t((r * n_super + s) * k_q4_k_bytes));
        // Round-to-nearest here is ggml's own Q4_K quantizer (no importance weights).
        std::vector<float> w32(w0.begin(), w0.end());
        std::vector<uint8_t> rtn(res.q4_k.size());
        const type_traits &t = *find_type(t_q4_k);
        for (int64_t r = 0; r < rows; ++r)
            t.quantize_row(w32.data() + r * n, rtn.data() + size_t(r * n_super * k_q4_k_bytes), n);
        const output_error_meter meter(w0, h0, rows, n, o.n_threads);
        res.output_error = meter(dequantize_q4_k_rows(res.q4_k, rows, n));
        res.rtn_output_error = meter(dequantize_q4_k_rows(rtn, rows, n));
        return res;
    }
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < n; ++j) g.q[size_t(r * n + perm[size_t(j)])] = qp[size_t(r * n + j)];

    // Errors on the calibration inputs, GPTQ's and round-to-nearest's.
    const output_error_meter meter(w0, h0, rows, n, o.n_threads);
    res.output_error = meter(dequantize_groups(g));
    int4_groups rtn = g;
    for (int64_t i = 0; i < n; ++i) rtn.g_idx[size_t(i)] = int32_t(i / group);
    core::parallel_for(rows, o.n_threads, [&](int64_t r) {
        std::vector<float> tmp(static_cast<size_t>(group));
        for (int64_t gi = 0; gi < g.n_groups; ++gi) {
            for (int64_t k = 0; k < group; ++k) tmp[size_t(k)] = float(w0[size_t(r * n + gi * group + k)]);
            float s;
            uint8_t z;
            fit_int4(tmp.data(), group, 1, fam, o.symmetric, s, z);
            rtn.scale[size_t(r * g.n_groups + gi)] = s;
            rtn.zero[size_t(r * g.n_groups + gi)] = z;
            for (int64_t k = 0; k < group; ++k) rtn.q[size_t(r * n + gi * group + k)] = quantize_int4(tmp[size_t(k)], s, z);
        }
    });
    res.rtn_output_error = meter(dequantize_groups(rtn));
    return res;
}

}  // namespace llmkit::quant
