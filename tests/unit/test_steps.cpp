// The individual sampler steps on hand-built cases and against sort-based
// reference definitions on random logits.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "core/error.hpp"
#include "sampling/select.hpp"
#include "sampling/steps.hpp"
#include "test_helpers.hpp"

using namespace llmkit::sampling;
using test::make_candidates;

namespace {
std::vector<float> logs(std::initializer_list<double> probs) {
    std::vector<float> l;
    for (double p : probs) l.push_back(float(std::log(p)));
    return l;
}
}  // namespace

TEST_CASE("greedy picks the largest logit, lowest id on ties", "[steps]") {
    auto c = make_candidates({0.5f, 2.0f, -1.0f, 2.0f});
    CHECK(pick_greedy(c) == 1);
    auto d = make_candidates({-3.0f, -2.5f, -9.0f});
    CHECK(pick_greedy(d) == 1);
}

TEST_CASE("temperature divides logits; zero keeps only the argmax", "[steps]") {
    auto c = make_candidates({1.0f, -2.0f, 4.0f});
    step_temperature(c, 2.0f);
    CHECK(c.logits == std::vector<float>{0.5f, -1.0f, 2.0f});
    auto z = make_candidates({1.0f, 7.0f, 7.0f, 3.0f});
    step_temperature(z, 0.0f);
    CHECK(z.ids == std::vector<int32_t>{1});
}

TEST_CASE("top-k keeps the k largest with lower ids winning ties", "[steps]") {
    auto c = make_candidates({1.0f, 5.0f, 3.0f, 5.0f, 3.0f, -1.0f});
    step_top_k(c, 3);
    CHECK(c.ids == std::vector<int32_t>{1, 2, 3});  // 5, 5 and the first 3
    auto all = make_candidates({1.0f, 2.0f});
    step_top_k(all, 10);
    CHECK(all.size() == 2);
    for (uint32_t seed = 0; seed < 20; ++seed) {
        const auto l = test::random_logits(5000, seed);
        auto r = make_candidates(l);
        const size_t k = 1 + seed * 37;
        step_top_k(r, int64_t(k));
        CHECK(test::id_set(r) == test::top_k_ref(l, k));
        CHECK(std::is_sorted(r.ids.begin(), r.ids.end()));
    }
}

TEST_CASE("top-p keeps the smallest most-likely set reaching p", "[steps]") {
    // probabilities 0.5 0.2 0.15 0.1 0.05 placed at ids 3 0 4 1 2
    const auto l = logs({0.2, 0.1, 0.05, 0.5, 0.15});
    auto a = make_candidates(l);
    step_top_p(a, 0.45f, 1);
    CHECK(a.ids == std::vector<int32_t>{3});
    auto b = make_candidates(l);
    step_top_p(b, 0.6f, 1);
    CHECK(b.ids == std::vector<int32_t>{0, 3});
    auto c = make_candidates(l);
    step_top_p(c, 0.8f, 1);
    CHECK(c.ids == std::vector<int32_t>{0, 3, 4});
    auto d = make_candidates(l);
    step_top_p(d, 0.45f, 3);  // min_keep wins
    CHECK(d.ids == std::vector<int32_t>{0, 3, 4});
    auto e = make_candidates(l);
    step_top_p(e, 1.0f, 1);
    CHECK(e.size() == 5);
}

TEST_CASE("top-p equals the sort-and-cumsum reference on random logits", "[steps]") {
    const float ps[] = {0.05f, 0.3f, 0.5f, 0.9f, 0.95f, 0.999f};
    for (uint32_t seed = 0; seed < 30; ++seed) {
        const size_t v = seed % 3 == 0 ? 50 : seed % 3 == 1 ? 4000 : 60000;
        const auto l = test::random_logits(v, 100 + seed, seed % 2 ? 1.0f : 4.0f);
        for (float p : ps) {
            auto c = make_candidates(l);
            step_top_p(c, p, 1);
            INFO("seed " << seed << " V " << v << " p " << p);
            CHECK(test::id_set(c) == test::top_p_ref(l, p));
        }
    }
}

TEST_CASE("top-p breaks ties in favour of lower ids", "[steps]") {
    std::vector<float> l(10, 0.0f);  // uniform: each 0.1
    auto c = make_candidates(l);
    step_top_p(c, 0.25f, 1);
    CHECK(c.ids == std::vector<int32_t>{0, 1, 2});
}

TEST_CASE("min-p keeps tokens with p >= min_p * p_max", "[steps]") {
    const auto l = logs({0.4, 0.3, 0.2, 0.06, 0.04});
    auto c = make_candidates(l);
    step_min_p(c, 0.45f, 1);  // cut at 0.18
    CHECK(c.ids == std::vector<int32_t>{0, 1, 2});
    auto d = make_candidates(l);
    step_min_p(d, 0.9f, 2);  // only 1 passes, min_keep 2
    CHECK(d.ids == std::vector<int32_t>{0, 1});
}

TEST_CASE("typical sampling equals its sort-based reference", "[steps]") {
    for (uint32_t seed = 0; seed < 20; ++seed) {
        const auto l = test::random_logits(seed % 2 ? 300 : 20000, 500 + seed, 2.0f);
        for (float p : {0.2f, 0.5f, 0.9f}) {
            auto c = make_candidates(l);
            step_typical(c, p, 1);
            INFO("seed " << seed << " p " << p);
            CHECK(test::id_set(c) == test::typical_ref(l, p));
        }
    }
    // Hand case: one dominant token and a flat tail; the typical set skips the head.
    const auto l = logs({0.7, 0.1, 0.1, 0.1});
    // H = -(0.7 ln 0.7 + 0.3 ln 0.1) = 0.9404; scores: |0.3567-0.9404| = 0.584, |2.3026-0.9404| = 1.362
    auto c = make_candidates(l);
    step_typical(c, 0.5f, 1);
    CHECK(c.ids == std::vector<int32_t>{0});
    auto d = make_candidates(l);
    step_typical(d, 0.75f, 1);
    CHECK(d.ids == std::vector<int32_t>{0, 1});
}

TEST_CASE("top-n-sigma keeps logits within n standard deviations of the max", "[steps]") {
    // mean 2, population stddev 2 -> with n = 1 the cut is 6 - 2 = 4
    auto c = make_candidates({0.0f, 4.0f, 6.0f, 0.0f, 0.0f, 2.0f});
    // mean = 2, var = (4+4+16+4+4+0)/6 = 5.333, sigma = 2.309; cut = 6 - 2.309 = 3.69
    step_top_n_sigma(c, 1.0f);
    CHECK(c.ids == std::vector<int32_t>{1, 2});
    auto d = make_candidates({0.0f, 4.0f, 6.0f, 0.0f, 0.0f, 2.0f});
    step_top_n_sigma(d, 0.0f);
    CHECK(d.ids == std::vector<int32_t>{2});
}

TEST_CASE("xtc removes all above-threshold tokens but the least likely", "[steps]") {
    const auto l = logs({0.3, 0.05, 0.4, 0.15, 0.1});
    auto c = make_candidates(l);
    step_xtc(c, 1.0f, 0.12f, 1, 0.5);  // above 0.12: 0.4, 0.3, 0.15 -> drop 0.4 and 0.3
    CHECK(c.ids == std::vector<int32_t>{1, 3, 4});
    auto miss = make_candidates(l);
    step_xtc(miss, 0.3f, 0.12f, 1, 0.5);  // coin 0.5 > probability 0.3: no-op
    CHECK(miss.size() == 5);
    auto one = make_candidates(l);
    step_xtc(one, 1.0f, 0.35f, 1, 0.0);  // only one above threshold: no-op
    CHECK(one.size() == 5);
    auto keep = make_candidates(l);
    step_xtc(keep, 1.0f, 0.12f, 4, 0.0);  // would leave 3 < min_keep 4
    CHECK(keep.size() == 5);
}

TEST_CASE("penalties: repetition (CTRL), frequency and presence (OpenAI)", "[steps]") {
    auto c = make_candidates({2.0f, -2.0f, 1.0f, 0.5f});
    const std::vector<int32_t> history{9, 0, 1, 0, 7};  // token 0 twice, 1 once; 7, 9 not candidates
    step_penalties(c, history, -1, 2.0f, 0.5f, 0.25f);
    CHECK(c.logits[0] == Approx(2.0f / 2 - 2 * 0.5f - 0.25f));
    CHECK(c.logits[1] == Approx(-2.0f * 2 - 0.5f - 0.25f));
    CHECK(c.logits[2] == 1.0f);
    CHECK(c.logits[3] == 0.5f);
    // A window of the last 2 tokens sees only 0 and 7.
    auto w = make_candidates({2.0f, -2.0f, 1.0f, 0.5f});
    step_penalties(w, history, 2, 2.0f, 0.0f, 0.0f);
    CHECK(w.logits[0] == 1.0f);
    CHECK(w.logits[1] == -2.0f);
}

namespace {
// O(n^2) DRY reference straight from the definition.
std::map<int32_t, size_t> dry_ref(const std::vector<int32_t> &h, size_t allowed, const std::vector<int32_t> &breakers) {
    auto brk = [&](int32_t t) { return std::find(breakers.begin(), breakers.end(), t) != breakers.end(); };
    std::map<int32_t, size_t> best;
    const size_t n = h.size();
    for (size_t i = 0; i + 1 < n; ++i) {  // a match of the suffix ending at h[i]; next token h[i+1]
        size_t len = 0;
        while (len <= i && h[i - len] == h[n - 1 - len] && !brk(h[n - 1 - len])) ++len;
        if (len >= allowed) best[h[i + 1]] = std::max(best[h[i + 1]], len);
    }
    return best;
}
}  // namespace

TEST_CASE("DRY penalises tokens that would extend a repeat", "[steps]") {
    // "1 2 3 4 ... 1 2 3": emitting 4 would repeat "1 2 3 4" (match length 3).
    const std::vector<int32_t> h{1, 2, 3, 4, 5, 1, 2, 3};
    auto c = make_candidates(std::vector<float>(8, 0.0f));
    step_dry(c, h, 1.0f, 2.0f, 2, -1, {});
    CHECK(c.logits[4] == Approx(-2.0f));  // 1 * 2^(3-2)
    for (int t : {0, 1, 2, 3, 5, 6, 7}) CHECK(c.logits[size_t(t)] == 0.0f);
    // A breaker inside the suffix shortens the repeat: "... 1 9 3" only matches "3" (length 1 < 2).
    auto b = make_candidates(std::vector<float>(10, 0.0f));
    step_dry(b, {1, 9, 3, 4, 1, 9, 3}, 1.0f, 2.0f, 2, -1, {9});
    for (float x : b.logits) CHECK(x == 0.0f);

    // Random histories against the O(n^2) reference.
    std::mt19937 rng(7);
    for (int trial = 0; trial < 200; ++trial) {
        std::vector<int32_t> hist(5 + rng() % 60);
        for (auto &t : hist) t = int32_t(rng() % 4);
        const std::vector<int32_t> breakers = trial % 3 ? std::vector<int32_t>{} : std::vector<int32_t>{3};
        const size_t allowed = 1 + trial % 3;
        auto r = make_candidates(std::vector<float>(4, 0.0f));
        step_dry(r, hist, 0.5f, 1.5f, int32_t(allowed), -1, breakers);
        const auto ref = dry_ref(hist, allowed, breakers);
        for (int32_t t = 0; t < 4; ++t) {
            const auto it = ref.find(t);
            const float want =
                it == ref.end() ? 0.0f : -0.5f * std::pow(1.5f, float(int(it->second) - int(allowed)));
            INFO("trial " << trial << " token " << t);
            CHECK(r.logits[size_t(t)] == Approx(want));
        }
    }
}

TEST_CASE("logit bias adds, -inf bans, out-of-range ids are errors", "[steps]") {
    auto c = make_candidates({0.0f, 1.0f, 2.0f});
    step_logit_bias(c, {0, 2}, {5.0f, -INFINITY});
    CHECK(c.ids == std::vector<int32_t>{0, 1});
    CHECK(c.logits[0] == 5.0f);
    auto d = make_candidates({0.0f, 1.0f});
    CHECK_THROWS_AS(step_logit_bias(d, {2}, {1.0f}), llmkit::core::error);
}

TEST_CASE("dynamic temperature interpolates by normalised entropy", "[steps]") {
    // Uniform distribution: normalised entropy 1 -> temperature t + delta.
    auto u = make_candidates({1.0f, 1.0f, 1.0f, 1.0f});
    step_dynamic_temperature(u, 1.0f, 0.5f, 1.0f);
    CHECK(u.logits[0] == Approx(1.0f / 1.5f));
    // Two tokens with p = (0.8, 0.2): H / ln 2 = 0.7219; T = 0.5 + 1.0 * 0.7219^2
    auto c = make_candidates(logs({0.8, 0.2}));
    const float l0 = c.logits[0];
    step_dynamic_temperature(c, 1.0f, 0.5f, 2.0f);
    const double h = -(0.8 * std::log(0.8) + 0.2 * std::log(0.2)) / std::log(2.0);
    CHECK(c.logits[0] == Approx(l0 / (0.5 + 1.0 * h * h)).epsilon(1e-5));
}

TEST_CASE("dist walks token-id order with the given uniform", "[steps]") {
    const auto c = make_candidates(logs({0.25, 0.5, 0.25}));
    CHECK(pick_dist(c, 0.0) == 0);
    CHECK(pick_dist(c, 0.2499) == 0);
    CHECK(pick_dist(c, 0.2501) == 1);
    CHECK(pick_dist(c, 0.7499) == 1);
    CHECK(pick_dist(c, 0.7501) == 2);
    CHECK(pick_dist(c, 0.9999999) == 2);
}

// exp_shifted runs the loaded CPU's clone of its loop (AVX-512, AVX2 or
// baseline, each vectorised); every one must give exp_nonpositive's bits,
// computed here one value at a time, and cut off below -87.3 and at NaN.
TEST_CASE("exp_shifted equals exp_nonpositive element by element and std::exp within 2e-7", "[steps]") {
    std::vector<float> in;
    uint32_t s = 12345;
    for (int i = 0; i < 4099; ++i) {  // not a multiple of any vector width
        s = s * 1664525u + 1013904223u;
        in.push_back(-100.0f * float(s >> 8) / 16777216.0f);  // [-100, 0]
    }
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    for (float x : {0.0f, -0.0f, -87.3f, std::nextafter(-87.3f, -inf), std::nextafter(-87.3f, 0.0f), -1e-30f, nan, -inf})
        in.push_back(x);
    const float shift = 0.25f;  // values are in[i] - shift
    std::vector<float> out(in.size(), -1.0f);
    const double sum = exp_shifted(in.data(), in.size(), shift, out.data());
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < in.size(); ++i) {
        const float x = in[i] - shift;
        const float want = exp_nonpositive(x);
        INFO("i = " << i << ", x = " << x);
        uint32_t a, b;
        std::memcpy(&a, &out[i], 4);
        std::memcpy(&b, &want, 4);
        CHECK(a == b);
        if (x >= -87.3f) {
            CHECK(std::fabs(double(out[i]) - std::exp(double(x))) <= 2e-7 * std::exp(double(x)));
        } else {
            CHECK(out[i] == 0.0f);  // below the cut-off, -inf and NaN
        }
        acc[i % 8] += double(out[i]);
    }
    CHECK(sum == ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
}

// The speculative verifier's row pass: whichever clone runs, -0 and FLT_MAX
// pass, and one negative (even the smallest subnormal), infinity or NaN
// anywhere in the row (body or tail of the vector loop) is caught.
TEST_CASE("sum_nonnegative sums in its fixed order and flags every bad entry", "[steps]") {
    const size_t n = 1003;  // not a multiple of any vector width
    std::vector<float> x(n);
    uint32_t s = 99;
    for (float &v : x) {
        s = s * 1664525u + 1013904223u;
        v = float(s >> 8) / 16777216.0f;
    }
    x[5] = -0.0f;
    x[6] = std::numeric_limits<float>::max();
    bool bad = true;
    const double sum = sum_nonnegative(x.data(), n, &bad);
    CHECK_FALSE(bad);
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < n; ++i) acc[i % 8] += double(x[i]);
    CHECK(sum == ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    for (size_t at : {size_t(0), size_t(500), n - 1})
        for (float v : {-1.0f, -std::numeric_limits<float>::denorm_min(), inf, -inf, nan}) {
            std::vector<float> y = x;
            y[at] = v;
            bool b = false;
            sum_nonnegative(y.data(), n, &b);
            INFO("entry " << at << " = " << v);
            CHECK(b);
        }
}
