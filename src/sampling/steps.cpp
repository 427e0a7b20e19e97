#include "sampling/steps.hpp"

#include <algorithm>
#include <functional>
#include <cmath>
#include <limits>
#include <sstream>
#include <unordered_map>

#include "core/error.hpp"
#include "core/philox.hpp"
#include "sampling/select.hpp"

namespace llmkit::sampling {

using core::fail;

int64_t candidates::find(int32_t id) const {
    auto it = std::lower_bound(ids.begin(), ids.end(), id);
    if (it == ids.end() || *it != id) return -1;
    return it - ids.begin();
}

float candidates::max_logit() const {
    // Eight independent maxima so the loop vectorises (NaN was rejected on load,
    // so the order of comparisons cannot change the result).
    const float ninf = -std::numeric_limits<float>::infinity();
    float m[8] = {ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf};
    const float *l = logits.data();
    const size_t n = logits.size();
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) m[j] = l[i + size_t(j)] > m[j] ? l[i + size_t(j)] : m[j];
    for (; i < n; ++i) m[0] = l[i] > m[0] ? l[i] : m[0];
    for (int j = 1; j < 8; ++j) m[0] = m[j] > m[0] ? m[j] : m[0];
    return m[0];
}

namespace {

// Scratch space reused across calls on the same thread.
thread_local std::vector<float> tls_exps;
thread_local std::vector<uint32_t> tls_keys;
thread_local std::vector<double> tls_probs;

// Unnormalised probabilities exp(l - max) (see select.hpp) and their sum.
double exps(const candidates &c, std::vector<float> &e) {
    e.resize(c.size());
    return exp_shifted(c.logits.data(), c.size(), c.max_logit(), e.data());
}

// Keeps the candidates inside `cut` (keys[i] belongs to candidate i). Stable.
void keep_cut(candidates &c, const std::vector<uint32_t> &keys, const prefix_cut &cut) {
    if (cut.all || cut.count >= c.size()) return;
    c.compact([&](size_t i) { return cut.contains(keys[i], uint32_t(i)); });
}

// Keeps the shortest prefix (descending key) with mass >= target, and at least min_keep.
void keep_prefix_by_mass(candidates &c, const std::vector<uint32_t> &keys, const std::vector<float> &mass,
                         double target, size_t min_keep) {
    prefix_cut cut = select_prefix_by_mass(keys.data(), mass.data(), c.size(), target);
    if (!cut.all && cut.count < min_keep) cut = select_prefix_by_count(keys.data(), c.size(), min_keep);
    keep_cut(c, keys, cut);
}

void keep_only_argmax(candidates &c) {
    const int32_t best = pick_greedy(c);
    c.compact([&](size_t i) { return c.ids[i] == best; });
}

// Descending-logit keys: larger logit first, ties by position (= token id).
const std::vector<uint32_t> &logit_keys(const candidates &c) {
    std::vector<uint32_t> &k = tls_keys;
    k.resize(c.size());
    for (size_t i = 0; i < c.size(); ++i) k[i] = order_key(c.logits[i]);
    return k;
}

}  // namespace

void softmax(const candidates &c, std::vector<double> &probs) {
    std::vector<float> &e = tls_exps;
    const double sum = exps(c, e);
    probs.resize(c.size());
    for (size_t i = 0; i < c.size(); ++i) probs[i] = double(e[i]) / sum;
}

void step_temperature(candidates &c, float t) {
    if (t == 0.0f) {
        keep_only_argmax(c);
        return;
    }
    const float inv = 1.0f / t;
    // A temperature so small that the scaled logits overflow is greedy in the limit.
    float max_abs = 0;
    for (float l : c.logits) max_abs = std::max(max_abs, std::fabs(l));
    if (!(max_abs * inv <= std::numeric_limits<float>::max())) {
        keep_only_argmax(c);
        return;
    }
    for (float &l : c.logits) l *= inv;
}

void step_dynamic_temperature(candidates &c, float t, float delta, float exponent) {
    if (delta <= 0) {
        step_temperature(c, t);
        return;
    }
    if (c.size() <= 1) return;
    const double min_t = std::max(0.0f, t - delta), max_t = double(t) + delta;
    std::vector<double> &p = tls_probs;
    softmax(c, p);
    double entropy = 0;
    for (double q : p)
        if (q > 0) entropy -= q * std::log(q);
    const double normalized = entropy / std::log(double(c.size()));
    const double dyn_t = min_t + (max_t - min_t) * std::pow(normalized, double(exponent));
    if (!(dyn_t > 0)) {
        keep_only_argmax(c);
        return;
    }
    for (float &l : c.logits) l = float(double(l) / dyn_t);
}

void step_top_k(candidates &c, int64_t k) {
    if (k >= int64_t(c.size())) return;
    const auto &keys = logit_keys(c);
    keep_cut(c, keys, select_prefix_by_count(keys.data(), c.size(), size_t(k)));
}

void step_top_p(candidates &c, float p, size_t min_keep) {
    if (p >= 1.0f || c.size() <= 1) return;
    std::vector<float> &e = tls_exps;
    const double total = exps(c, e);
    keep_prefix_by_mass(c, logit_keys(c), e, double(p) * total, min_keep);
}

void step_min_p(candidates &c, float p, size_t min_keep) {
    if (p <= 0.0f || c.size() <= 1) return;
    // p_i >= p * p_max  <=>  l_i >= l_max + log p (the softmax normaliser cancels).
    const double cut = double(c.max_logit()) + std::log(double(p));
    size_t kept = 0;
    for (float l : c.logits) kept += double(l) >= cut;
    if (kept >= min_keep) {
        c.compact([&](size_t i) { return double(c.logits[i]) >= cut; });
    } else {
        step_top_k(c, int64_t(min_keep));
    }
}

void step_typical(candidates &c, float p, size_t min_keep) {
    if (p >= 1.0f || c.size() <= 1) return;
    std::vector<float> &e = tls_exps;
    const double total = exps(c, e);
    const double log_total = std::log(total);
    const float mx = c.max_logit();
    // Entropy H = -sum p log p, with log p = (l - max) - log(total).
    double entropy = 0;
    for (size_t i = 0; i < c.size(); ++i) {
        const double q = double(e[i]) / total;
        if (q > 0) entropy -= q * (double(c.logits[i]) - mx - log_total);
    }
    // Order by |-log p - H| ascending: invert the key so that smaller comes first.
    std::vector<uint32_t> &keys = tls_keys;
    keys.resize(c.size());
    for (size_t i = 0; i < c.size(); ++i) {
        const double neg_log_p = log_total - (double(c.logits[i]) - mx);
        keys[i] = ~order_key(float(std::fabs(neg_log_p - entropy)));
    }
    keep_prefix_by_mass(c, keys, e, double(p) * total, min_keep);
}

void step_top_n_sigma(candidates &c, float n) {
    if (c.size() <= 1) return;
    double mean = 0;
    for (float l : c.logits) mean += l;
    mean /= double(c.size());
    double var = 0;
    for (float l : c.logits) var += (l - mean) * (l - mean);
    const double sigma = std::sqrt(var / double(c.size()));
    const double cut = double(c.max_logit()) - double(n) * sigma;
    c.compact([&](size_t i) { return double(c.logits[i]) >= cut; });
}

void step_xtc(candidates &c, float probability, float threshold, size_t min_keep, double coin) {
    if (probability <= 0.0f || threshold > 0.5f || c.size() < 2) return;
    if (coin > double(probability)) return;
    std::vector<float> &e = tls_exps;
    const double total = exps(c, e);
    const double cut = double(threshold) * total;
    // Tokens at or above the threshold, most likely first (ties: lower id first).
    std::vector<std::pair<uint32_t, uint32_t>> above;  // (~key, position): ascending = most likely first
    for (size_t i = 0; i < c.size(); ++i)
        if (double(e[i]) >= cut) above.push_back({~order_key(c.logits[i]), uint32_t(i)});
    if (above.size() < 2) return;
    const size_t removed = above.size() - 1;  // all but the least likely of them
    if (c.size() - removed < std::max<size_t>(min_keep, 1)) return;
    std::sort(above.begin(), above.end());
    std::vector<char> drop(c.size(), 0);
    for (size_t i = 0; i < removed; ++i) drop[above[i].second] = 1;
    c.compact([&](size_t i) { return drop[i] == 0; });
}

namespace {
// The last `last_n` tokens of the history (-1: all of it).
std::pair<const int32_t *, size_t> window(const std::vector<int32_t> &history, int32_t last_n) {
    size_t n = last_n < 0 ? history.size() : std::min(history.size(), size_t(last_n));
    return {history.data() + (history.size() - n), n};
}
}  // namespace

void step_penalties(candidates &c, const std::vector<int32_t> &history, int32_t last_n, float repeat,
                    float frequency, float presence) {
    if (last_n == 0 || (repeat == 1.0f && frequency == 0.0f && presence == 0.0f)) return;
    auto [w, n] = window(history, last_n);
    if (n == 0) return;
    std::unordered_map<int32_t, int32_t> counts;
    counts.reserve(n);
    for (size_t i = 0; i < n; ++i) ++counts[w[i]];
    for (const auto &[token, count] : counts) {
        const int64_t pos = c.find(token);
        if (pos < 0) continue;
        float &l = c.logits[size_t(pos)];
        // CTRL's repetition penalty: push the logit towards "less likely" whatever its sign.
        l = l <= 0 ? l * repeat : l / repeat;
        l -= float(count) * frequency + (count > 0 ? presence : 0.0f);
    }
}

void step_dry(candidates &c, const std::vector<int32_t> &history, float multiplier, float base,
              int32_t allowed_length, int32_t last_n, const std::vector<int32_t> &breakers) {
    if (multiplier == 0.0f || base < 1.0f || last_n == 0) return;
    auto [w, n] = window(history, last_n);
    if (n < 2) return;
    auto is_breaker = [&](int32_t t) { return std::find(breakers.begin(), breakers.end(), t) != breakers.end(); };
    // A repeat cannot extend past the most recent breaker.
    size_t rep_limit = n;
    for (size_t i = 0; i < n; ++i) {
        if (is_breaker(w[n - 1 - i])) {
            rep_limit = i;
            break;
        }
    }
    if (rep_limit < size_t(allowed_length)) return;
    // Z-function of the reversed window r (r[j] = w[n-1-j]): z[k] is the length of
    // the longest common suffix of w[0 .. n-1-k] and the whole window.
    std::vector<size_t> z(n, 0);
    // Init-captures: C++17 lambdas may not capture structured bindings themselves.
    auto r = [ws = w, ns = n](size_t j) { return ws[ns - 1 - j]; };
    size_t left = 0, right = 0;
    for (size_t k = 1; k < n; ++k) {
        size_t len = 0;
        if (k < right) len = std::min(right - k, z[k - left]);
        while (k + len < n && r(len) == r(k + len)) ++len;
        z[k] = len;
        if (k + len > right) {
            left = k;
            right = k + len;
        }
    }
    // Emitting w[i+1] after a match ending at w[i] of length L continues a repeat of length L.
    std::unordered_map<int32_t, size_t> max_repeat;
    for (size_t i = 0; i + 1 < n; ++i) {
        const size_t len = std::min(z[n - 1 - i], rep_limit);
        if (len < size_t(allowed_length)) continue;
        size_t &m = max_repeat[w[i + 1]];
        m = std::max(m, len);
    }
    // Cap the exponent so that the penalty stays finite, as llama.cpp does.
    const int max_exponent = base > 1.000001f ? int(88.7228391f / std::log(base)) : 0;
    for (const auto &[token, len] : max_repeat) {
        const int64_t pos = c.find(token);
        if (pos < 0) continue;
        int e = int(len) - allowed_length;
        if (max_exponent > 0 && e > max_exponent) e = max_exponent;
        c.logits[size_t(pos)] -= multiplier * std::pow(base, float(e));
    }
}

void step_logit_bias(candidates &c, const std::vector<int32_t> &ids, const std::vector<float> &biases) {
    bool any_removed = false;
    for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] >= c.vocab_size)
            fail(LLMKIT_ERROR_OUT_OF_RANGE, "logit_bias: token id ", ids[i], " is outside the vocabulary [0, ",
                 c.vocab_size, ")");
        const int64_t pos = c.find(ids[i]);
        if (pos < 0) continue;
        c.logits[size_t(pos)] += biases[i];
        any_removed |= std::isinf(biases[i]);
    }
    if (any_removed) c.compact([&](size_t i) { return !std::isinf(c.logits[i]); });
}

int32_t pick_greedy(const candidates &c) {
    size_t best = 0;
    for (size_t i = 1; i < c.size(); ++i)
        if (c.logits[i] > c.logits[best]) best = i;  // strict: lowest id wins ties
    return c.ids[best];
}

int32_t pick_dist(const candidates &c, double u) {
    std::vector<float> &e = tls_exps;
    const double total = exps(c, e);
    const double target = u * total;
    double cum = 0;
    size_t last_nonzero = 0;
    for (size_t i = 0; i < c.size(); ++i) {
        if (e[i] <= 0) continue;
        cum += e[i];
        last_nonzero = i;
        if (target < cum) return c.ids[i];
    }
    return c.ids[last_nonzero];  // u*total rounded up to total
}

namespace {

// Mirostat v1: estimate the Zipf exponent s from the m most likely tokens, then
// pick k so that the expected surprise of top-k sampling is mu.
int64_t mirostat_k(const candidates &c, int32_t m, float mu) {
    const size_t take = std::min<size_t>(size_t(m), c.size());
    // Only the m largest logits matter: select them, then sort those few.
    std::vector<float> &top = tls_exps;  // free here: mirostat computes its exps afterwards
    top.assign(c.logits.begin(), c.logits.end());
    std::nth_element(top.begin(), top.begin() + (take - 1), top.end(), std::greater<float>());
    std::sort(top.begin(), top.begin() + take, std::greater<float>());
    // log(p_i / p_{i+1}) = l_i - l_{i+1}: the softmax normaliser cancels.
    double sum_ti_bi = 0, sum_ti_sq = 0;
    for (size_t i = 0; i + 1 < take; ++i) {
        const double t_i = std::log(double(i + 2) / double(i + 1));
        const double b_i = double(top[i]) - double(top[i + 1]);
        sum_ti_bi += t_i * b_i;
        sum_ti_sq += t_i * t_i;
    }
    const double s_hat = sum_ti_bi / sum_ti_sq;
    const double eps_hat = s_hat - 1;
    const double k = std::pow((eps_hat * std::pow(2.0, double(mu))) / (1 - std::pow(double(c.vocab_size), -eps_hat)),
                              1 / s_hat);
    if (!std::isfinite(k) || k < 1) return 1;
    if (k > double(c.size())) return int64_t(c.size());
    return int64_t(k);
}

float surprise_bits(const candidates &c, int32_t token) {
    std::vector<double> &p = tls_probs;
    softmax(c, p);
    const int64_t pos = c.find(token);
    return float(-std::log2(p[size_t(pos)]));
}

}  // namespace

pick_result pick(const step &s, candidates &c, const step_context &ctx, float mu) {
    pick_result out;
    // Every random picker uses draw index 0; greedy draws nothing.
    const auto u = [&] { return core::philox_uniform(ctx.seed, ctx.seq_id, ctx.step_number, 0); };
    switch (s.kind) {
    case step_kind::greedy: out.token = pick_greedy(c); break;
    case step_kind::dist: out.token = pick_dist(c, u()); break;
    case step_kind::mirostat: {
        if (c.size() > 1) step_top_k(c, mirostat_k(c, s.i0, mu));
        out.token = pick_dist(c, u());
        out.new_mu = mu - s.f1 * (surprise_bits(c, out.token) - s.f0);
        break;
    }
    case step_kind::mirostat_v2: {
        // Keep tokens whose surprise -log2 p is at most mu, i.e. p >= 2^-mu.
        std::vector<double> &p = tls_probs;
        softmax(c, p);
        const double cut = std::exp2(-double(mu));
        size_t kept = 0;
        for (double q : p) kept += q >= cut;
        if (kept == 0) {
            keep_only_argmax(c);
        } else {
            std::vector<char> keep(c.size());
            for (size_t i = 0; i < c.size(); ++i) keep[i] = p[i] >= cut;
            c.compact([&](size_t i) { return keep[i] != 0; });
        }
        out.token = pick_dist(c, u());
        out.new_mu = mu - s.f1 * (surprise_bits(c, out.token) - s.f0);
        break;
    }
    default: fail(LLMKIT_ERROR_INTERNAL, "pick() called with a non-picking step");
    }
    return out;
}

void apply_step(const step &s, candidates &c, const step_context &ctx) {
    switch (s.kind) {
    case step_kind::temperature: step_temperature(c, s.f0); break;
    case step_kind::dynamic_temperature: step_dynamic_temperature(c, s.f0, s.f1, s.f2); break;
    case step_kind::top_k: step_top_k(c, s.i0); break;
    case step_kind::top_p: step_top_p(c, s.f0, s.min_keep); break;
    case step_kind::min_p: step_min_p(c, s.f0, s.min_keep); break;
    case step_kind::typical: step_typical(c, s.f0, s.min_keep); break;
    case step_kind::top_n_sigma: step_top_n_sigma(c, s.f0); break;
    case step_kind::xtc:
        step_xtc(c, s.f0, s.f1, s.min_keep,
                 core::philox_uniform(ctx.seed, ctx.seq_id, ctx.step_number, ctx.draw_index));
        break;
    case step_kind::penalties: step_penalties(c, *ctx.history, s.i0, s.f0, s.f1, s.f2); break;
    case step_kind::dry: step_dry(c, *ctx.history, s.f0, s.f1, s.i0, s.i1, s.ids); break;
    case step_kind::logit_bias: step_logit_bias(c, s.ids, s.values); break;
    default: fail(LLMKIT_ERROR_INTERNAL, "apply_step() called with a picking step");
    }
    // Steps can overflow (huge penalties or biases): -inf means removed, while
    // +inf or NaN would poison every later step, so they are errors.
    const float inf = std::numeric_limits<float>::infinity();
    int bad = 0, removed = 0;
    for (float l : c.logits) {
        bad |= int(!(l < inf));
        removed |= int(l == -inf);
    }
    if (bad)
        fail(LLMKIT_ERROR_NON_FINITE, "step ", s.describe(),
             " produced a non-finite logit (float overflow); use smaller parameters");
    if (removed) c.compact([&](size_t i) { return c.logits[i] != -inf; });
    if (c.size() == 0)
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "no token is left after step ", s.describe(),
             " (every candidate was banned or biased to -inf)");
}

std::string step::describe() const {
    std::ostringstream os;
    switch (kind) {
    case step_kind::greedy: os << "greedy"; break;
    case step_kind::dist: os << "dist"; break;
    case step_kind::temperature: os << "temperature(" << f0 << ")"; break;
    case step_kind::dynamic_temperature:
        os << "dynamic_temperature(" << f0 << ", delta=" << f1 << ", exponent=" << f2 << ")";
        break;
    case step_kind::top_k: os << "top_k(" << i0 << ")"; break;
    case step_kind::top_p: os << "top_p(" << f0 << ")"; break;
    case step_kind::min_p: os << "min_p(" << f0 << ")"; break;
    case step_kind::typical: os << "typical(" << f0 << ")"; break;
    case step_kind::top_n_sigma: os << "top_n_sigma(" << f0 << ")"; break;
    case step_kind::xtc: os << "xtc(p=" << f0 << ", threshold=" << f1 << ")"; break;
    case step_kind::penalties:
        os << "penalties(last_n=" << i0 << ", repeat=" << f0 << ", frequency=" << f1 << ", presence=" << f2 << ")";
        break;
    case step_kind::dry:
        os << "dry(multiplier=" << f0 << ", base=" << f1 << ", allowed_length=" << i0 << ", last_n=" << i1 << ")";
        break;
    case step_kind::logit_bias: os << "logit_bias(" << ids.size() << " tokens)"; break;
    case step_kind::mirostat: os << "mirostat(tau=" << f0 << ", eta=" << f1 << ", m=" << i0 << ")"; break;
    case step_kind::mirostat_v2: os << "mirostat_v2(tau=" << f0 << ", eta=" << f1 << ")"; break;
    }
    return os.str();
}

}  // namespace llmkit::sampling
