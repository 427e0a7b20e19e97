// Shared helpers for the unit tests: random logits, sort-based reference
// filters (deliberately the naive O(V log V) definitions, so they share no code
// with the selection-based implementation), and a chi-square check.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "sampling/candidates.hpp"

namespace test {

inline std::vector<float> random_logits(size_t n, uint32_t seed, float scale = 3.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (float &x : v) x = d(rng);
    return v;
}

inline llmkit::sampling::candidates make_candidates(const std::vector<float> &logits) {
    llmkit::sampling::candidates c;
    c.vocab_size = int32_t(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) {
        c.ids.push_back(int32_t(i));
        c.logits.push_back(logits[i]);
    }
    return c;
}

inline std::set<int32_t> id_set(const llmkit::sampling::candidates &c) { return {c.ids.begin(), c.ids.end()}; }

// Token ids ordered by descending logit, ties by ascending id.
inline std::vector<int32_t> order_desc(const std::vector<float> &l) {
    std::vector<int32_t> idx(l.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return l[size_t(a)] > l[size_t(b)]; });
    return idx;
}

inline std::vector<double> softmax_ref(const std::vector<float> &l) {
    double mx = -INFINITY;
    for (float x : l) mx = std::max(mx, double(x));
    std::vector<double> p(l.size());
    double s = 0;
    for (size_t i = 0; i < l.size(); ++i) s += p[i] = std::exp(double(l[i]) - mx);
    for (double &x : p) x /= s;
    return p;
}

// Sort, cumulate, cut where the cumulative probability first reaches p.
inline std::set<int32_t> top_p_ref(const std::vector<float> &l, double p, size_t min_keep = 1) {
    const auto prob = softmax_ref(l);
    const auto order = order_desc(l);
    std::set<int32_t> keep;
    double cum = 0;
    for (size_t i = 0; i < order.size(); ++i) {
        keep.insert(order[i]);
        cum += prob[size_t(order[i])];
        if (cum >= p && keep.size() >= min_keep) break;
    }
    return keep;
}

inline std::set<int32_t> top_k_ref(const std::vector<float> &l, size_t k) {
    const auto order = order_desc(l);
    return {order.begin(), order.begin() + std::min(k, order.size())};
}

// Locally typical: order by |-log p - H| ascending (ties by id), cut at mass p.
inline std::set<int32_t> typical_ref(const std::vector<float> &l, double p, size_t min_keep = 1) {
    const auto prob = softmax_ref(l);
    double h = 0;
    for (double q : prob)
        if (q > 0) h -= q * std::log(q);
    std::vector<int32_t> idx(l.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::vector<double> score(l.size());
    for (size_t i = 0; i < l.size(); ++i) score[i] = std::fabs(-std::log(prob[i]) - h);
    std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return score[size_t(a)] < score[size_t(b)]; });
    std::set<int32_t> keep;
    double cum = 0;
    for (int32_t i : idx) {
        keep.insert(i);
        cum += prob[size_t(i)];
        if (cum >= p && keep.size() >= min_keep) break;
    }
    return keep;
}

// Upper critical value of chi-square with `df` degrees of freedom at the
// given standard-normal quantile z (Wilson-Hilferty; z = 3.09 is alpha 1e-3).
inline double chi2_critical(int df, double z = 3.090232) {
    const double k = df;
    const double t = 1.0 - 2.0 / (9.0 * k) + z * std::sqrt(2.0 / (9.0 * k));
    return k * t * t * t;
}

// Pearson's statistic of observed counts against expected probabilities,
// pooling cells whose expected count is below 5 into one.
inline double chi2_statistic(const std::vector<int64_t> &observed, const std::vector<double> &expected_p, int &df) {
    int64_t n = 0;
    for (auto o : observed) n += o;
    double stat = 0, pooled_e = 0;
    int64_t pooled_o = 0;
    int cells = 0;
    for (size_t i = 0; i < observed.size(); ++i) {
        const double e = expected_p[i] * double(n);
        if (e < 5) {
            pooled_e += e;
            pooled_o += observed[i];
            continue;
        }
        stat += (double(observed[i]) - e) * (double(observed[i]) - e) / e;
        ++cells;
    }
    if (pooled_e > 0) {
        if (pooled_e >= 1) {
            stat += (double(pooled_o) - pooled_e) * (double(pooled_o) - pooled_e) / pooled_e;
            ++cells;
        } else {
            stat += pooled_o > 5 ? 1e9 : 0;  // essentially-impossible tokens drawn often
        }
    }
    df = std::max(cells - 1, 1);
    return stat;
}

}  // namespace test
