// Sampler chains through the public C ABI (via the C++ face): statistics of the
// draws, reproducibility, log-probabilities, dtypes, errors, speculative
// verification and the real stories260K logits.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

#include "core/tensor.hpp"
#include "llmkit/llmkit.hpp"
#include "test_helpers.hpp"

namespace {

// Draws n tokens from one row of logits by sampling n identical rows as n
// different sequences (independent Philox streams), and counts them.
std::vector<int64_t> draw_counts(llmkit::sampler_chain &chain, const std::vector<float> &logits, int64_t n) {
    const int64_t v = int64_t(logits.size());
    std::vector<float> batch(static_cast<size_t>(n * v));
    for (int64_t i = 0; i < n; ++i) std::copy(logits.begin(), logits.end(), batch.begin() + i * v);
    const auto tokens = chain.sample(batch.data(), n, v);
    std::vector<int64_t> counts(static_cast<size_t>(v), 0);
    for (int32_t t : tokens) ++counts[size_t(t)];
    return counts;
}

// The distribution the chain should sample from, computed with the chain's
// own apply() (checked against the references in test_steps.cpp) or given.
void check_chi2(const std::vector<int64_t> &counts, const std::vector<double> &expected) {
    int df = 0;
    const double stat = test::chi2_statistic(counts, expected, df);
    const double crit = test::chi2_critical(df);
    INFO("chi2 = " << stat << ", df = " << df << ", critical (alpha 1e-3) = " << crit);
    CHECK(stat < crit);
    for (size_t i = 0; i < counts.size(); ++i)
        if (expected[i] == 0.0) CHECK(counts[i] == 0);
}

std::vector<double> masked_softmax(const std::vector<float> &logits, const std::set<int32_t> &keep, float temp = 1.0f) {
    std::vector<float> l(logits.size(), -INFINITY);
    for (int32_t i : keep) l[size_t(i)] = logits[size_t(i)] / temp;
    return test::softmax_ref(l);
}

const int64_t kDraws = 40000;

}  // namespace

TEST_CASE("Philox-4x32-10 matches the Random123 known-answer vectors", "[rng]") {
    struct kat {
        uint32_t ctr[4], key[2], out[4];
    };
    const kat kats[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (const kat &k : kats) {
        uint32_t out[4];
        REQUIRE(llmkit_philox4x32_10(out, k.ctr, k.key) == LLMKIT_OK);
        for (int i = 0; i < 4; ++i) CHECK(out[i] == k.out[i]);
    }
}

TEST_CASE("sampled frequencies match the intended distribution for each step", "[chain][stats]") {
    const std::vector<float> logits = test::random_logits(24, 42, 1.5f);
    SECTION("plain softmax") {
        llmkit::sampler_chain c(1);
        check_chi2(draw_counts(c, logits, kDraws), test::softmax_ref(logits));
    }
    SECTION("temperature 0.7") {
        llmkit::sampler_chain c(2);
        c.temperature(0.7f);
        std::set<int32_t> all;
        for (int i = 0; i < 24; ++i) all.insert(i);
        check_chi2(draw_counts(c, logits, kDraws), masked_softmax(logits, all, 0.7f));
    }
    SECTION("top-k 5") {
        llmkit::sampler_chain c(3);
        c.top_k(5);
        check_chi2(draw_counts(c, logits, kDraws), masked_softmax(logits, test::top_k_ref(logits, 5)));
    }
    SECTION("top-p 0.8") {
        llmkit::sampler_chain c(4);
        c.top_p(0.8f);
        check_chi2(draw_counts(c, logits, kDraws), masked_softmax(logits, test::top_p_ref(logits, 0.8)));
    }
    SECTION("min-p 0.1") {
        llmkit::sampler_chain c(5);
        c.min_p(0.1f);
        const auto p = test::softmax_ref(logits);
        const double pmax = *std::max_element(p.begin(), p.end());
        std::set<int32_t> keep;
        for (size_t i = 0; i < p.size(); ++i)
            if (p[i] >= 0.1 * pmax) keep.insert(int32_t(i));
        check_chi2(draw_counts(c, logits, kDraws), masked_softmax(logits, keep));
    }
    SECTION("typical 0.7") {
        llmkit::sampler_chain c(6);
        c.typical(0.7f);
        check_chi2(draw_counts(c, logits, kDraws), masked_softmax(logits, test::typical_ref(logits, 0.7)));
    }
    SECTION("the whole chain: temperature -> top-k -> top-p -> min-p") {
        llmkit::sampler_chain c(7);
        c.temperature(1.3f).top_k(12).top_p(0.9f).min_p(0.05f).dist();
        std::vector<float> t(logits.size());
        for (size_t i = 0; i < t.size(); ++i) t[i] = logits[i] / 1.3f;
        const auto k = test::top_k_ref(t, 12);
        std::vector<float> tk(t.size(), -INFINITY);
        for (int32_t i : k) tk[size_t(i)] = t[size_t(i)];
        const auto p = test::top_p_ref(tk, 0.9);
        std::vector<float> tp(t.size(), -INFINITY);
        for (int32_t i : p) tp[size_t(i)] = t[size_t(i)];
        const auto pp = test::softmax_ref(tp);
        const double pmax = *std::max_element(pp.begin(), pp.end());
        std::set<int32_t> keep;
        for (int32_t i : p)
            if (pp[size_t(i)] >= 0.05 * pmax) keep.insert(i);
        check_chi2(draw_counts(c, logits, kDraws), masked_softmax(t, keep));
    }
}

TEST_CASE("apply() returns the processed logits the picker draws from", "[chain]") {
    const std::vector<float> logits = test::random_logits(1000, 9, 2.0f);
    llmkit::sampler_chain c(0);
    c.temperature(0.5f).top_p(0.9f).dist();
    std::vector<float> out(logits.size());
    c.apply(llmkit::f32(logits.data(), {1000}), llmkit::f32(out.data(), {1000}));
    std::vector<float> t(logits.size());
    for (size_t i = 0; i < t.size(); ++i) t[i] = logits[i] * 2.0f;
    const auto keep = test::top_p_ref(t, 0.9);
    for (size_t i = 0; i < out.size(); ++i) {
        if (keep.count(int32_t(i)))
            CHECK(out[i] == t[i]);
        else
            CHECK(std::isinf(out[i]));
    }
}

TEST_CASE("the same seed gives the same tokens whatever the threads or batch", "[chain][repro]") {
    const int64_t b = 64, v = 5000;
    std::vector<float> logits(static_cast<size_t>(b * v));
    for (int64_t i = 0; i < b; ++i) {
        const auto row = test::random_logits(size_t(v), uint32_t(i), 2.0f);
        std::copy(row.begin(), row.end(), logits.begin() + i * v);
    }
    auto run = [&](int threads) {
        llmkit::sampler_chain c(1234);
        c.penalties(64, 1.2f, 0.1f, 0.1f).top_k(100).top_p(0.9f).temperature(0.8f).xtc(0.5f, 0.1f);
        std::vector<int32_t> out(static_cast<size_t>(b));
        std::vector<int32_t> all;
        llmkit_sample_options o = LLMKIT_SAMPLE_OPTIONS_INIT;
        o.n_threads = threads;
        for (int step = 0; step < 5; ++step) {
            c.sample(llmkit::f32(logits.data(), {b, v}), llmkit::i32(out.data(), {b}), &o);
            all.insert(all.end(), out.begin(), out.end());
        }
        return all;
    };
    const auto one = run(1), two = run(2), eight = run(8);
    CHECK(one == two);
    CHECK(one == eight);

    // Sequence 37 sampled alone gives what it got inside the batch.
    llmkit::sampler_chain alone(1234);
    alone.penalties(64, 1.2f, 0.1f, 0.1f).top_k(100).top_p(0.9f).temperature(0.8f).xtc(0.5f, 0.1f);
    int64_t seq = 37;
    llmkit_sample_options o = LLMKIT_SAMPLE_OPTIONS_INIT;
    o.seq_ids = &seq;
    o.n_seq_ids = 1;
    for (int step = 0; step < 5; ++step) {
        int32_t tok = -1;
        alone.sample(llmkit::f32(logits.data() + 37 * v, {1, v}), llmkit::i32(&tok, {1}), &o);
        CHECK(tok == one[size_t(step * b + 37)]);
    }
    // A different seed gives different tokens (with overwhelming probability).
    llmkit::sampler_chain other(999);
    other.penalties(64, 1.2f, 0.1f, 0.1f).top_k(100).top_p(0.9f).temperature(0.8f).xtc(0.5f, 0.1f);
    const auto o1 = other.sample(logits.data(), b, v);
    CHECK(!std::equal(o1.begin(), o1.end(), one.begin()));
}

TEST_CASE("penalties see the accepted history and the sampled tokens", "[chain]") {
    // Token 2 is the greedy choice until the repetition penalty has seen it.
    const std::vector<float> logits{1.0f, 0.0f, 1.5f, 1.2f};
    llmkit::sampler_chain c;
    c.penalties(-1, 2.0f, 0.0f, 0.0f).greedy();
    CHECK(c.sample(logits.data(), 1, 4)[0] == 2);  // history now [2]
    CHECK(c.sample(logits.data(), 1, 4)[0] == 3);  // 2 -> 0.75; history [2, 3]
    CHECK(c.sample(logits.data(), 1, 4)[0] == 0);  // 3 -> 0.6
    c.reset();
    CHECK(c.sample(logits.data(), 1, 4)[0] == 2);
    c.reset();
    c.accept(0, {2, 3, 0});
    CHECK(c.sample(logits.data(), 1, 4)[0] == 2);  // all three penalised: 0.5, 0, 0.75, 0.6
}

TEST_CASE("mirostat holds the observed surprise near tau", "[chain][stats]") {
    // Zipf-like logits: l_i = -1.1 ln(i + 1).
    const int64_t v = 2000;
    std::vector<float> logits(static_cast<size_t>(v));
    for (int64_t i = 0; i < v; ++i) logits[size_t(i)] = float(-1.1 * std::log(double(i + 1)));
    const auto p = test::softmax_ref(logits);
    for (int version = 1; version <= 2; ++version) {
        llmkit::sampler_chain c(77);
        if (version == 1)
            c.mirostat(4.0f, 0.1f, 100);
        else
            c.mirostat_v2(4.0f, 0.1f);
        double surprise = 0;
        const int steps = 3000;
        for (int s = 0; s < steps; ++s) {
            const int32_t t = c.sample(logits.data(), 1, v)[0];
            surprise += -std::log2(p[size_t(t)]);
        }
        // Surprise under the full distribution exceeds the truncated one; the
        // controller keeps it in the neighbourhood of tau = 4 bits.
        INFO("mirostat v" << version << ": mean surprise " << surprise / steps);
        CHECK(surprise / steps > 3.0);
        CHECK(surprise / steps < 5.0);
    }
}

TEST_CASE("fp16 and bf16 logits sample as their fp32 values do", "[chain][dtype]") {
    const int64_t b = 16, v = 3000;
    std::vector<float> f(static_cast<size_t>(b * v));
    for (int64_t i = 0; i < b; ++i) {
        const auto row = test::random_logits(size_t(v), uint32_t(50 + i), 2.0f);
        std::copy(row.begin(), row.end(), f.begin() + i * v);
    }
    std::vector<uint16_t> h(f.size()), bf(f.size());
    std::vector<float> fh(f.size()), fbf(f.size());
    for (size_t i = 0; i < f.size(); ++i) {
        h[i] = llmkit::core::f32_to_f16(f[i]);
        bf[i] = llmkit::core::f32_to_bf16(f[i]);
        fh[i] = llmkit::core::f16_to_f32(h[i]);
        fbf[i] = llmkit::core::bf16_to_f32(bf[i]);
    }
    auto run16 = [&](std::vector<uint16_t> &data, llmkit_dtype dt) {
        llmkit::sampler_chain c(5);
        c.top_p(0.9f);
        std::vector<int32_t> out(static_cast<size_t>(b));
        c.sample(llmkit::tensor_ref(data.data(), dt, {b, v}), llmkit::i32(out.data(), {b}));
        return out;
    };
    auto run32 = [&](std::vector<float> &data) {
        llmkit::sampler_chain c(5);
        c.top_p(0.9f);
        return c.sample(data.data(), b, v);
    };
    CHECK(run16(h, llmkit_dtype{LLMKIT_DTYPE_FLOAT, 16, 1}) == run32(fh));
    CHECK(run16(bf, llmkit_dtype{LLMKIT_DTYPE_BFLOAT, 16, 1}) == run32(fbf));
    // Known conversions.
    CHECK(llmkit::core::f16_to_f32(0x3c00) == 1.0f);
    CHECK(llmkit::core::f16_to_f32(0xc000) == -2.0f);
    CHECK(llmkit::core::f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
    CHECK(llmkit::core::f32_to_f16(65504.0f) == 0x7bff);
    CHECK(llmkit::core::f32_to_bf16(1.0f) == 0x3f80);
    CHECK(llmkit::core::f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);  // ties to even
}

TEST_CASE("strided logits: a column-strided view samples like its copy", "[chain][dtype]") {
    const int64_t b = 4, v = 1000;
    std::vector<float> wide(static_cast<size_t>(b * v * 2));
    for (size_t i = 0; i < wide.size(); ++i) wide[i] = float(std::sin(double(i) * 0.37) * 3);
    std::vector<float> compact(static_cast<size_t>(b * v));
    for (int64_t r = 0; r < b; ++r)
        for (int64_t c = 0; c < v; ++c) compact[size_t(r * v + c)] = wide[size_t(r * 2 * v + 2 * c)];
    llmkit::sampler_chain c1(3), c2(3);
    c1.top_k(50);
    c2.top_k(50);
    std::vector<int32_t> out(static_cast<size_t>(b));
    c1.sample(llmkit::tensor_ref(wide.data(), llmkit_dtype{LLMKIT_DTYPE_FLOAT, 32, 1}, {b, v},
                                 llmkit_device{LLMKIT_DEVICE_CPU, 0}, {2 * v, 2}),
              llmkit::i32(out.data(), {b}));
    CHECK(out == c2.sample(compact.data(), b, v));
}

TEST_CASE("log-probabilities: raw and processed", "[chain][logprobs]") {
    const std::vector<float> logits{0.1f, 2.0f, -1.0f, 1.5f, 0.3f};
    const auto p = test::softmax_ref(logits);
    llmkit::sampler_chain c(11);
    c.top_k(2);
    int32_t tok = -1;
    float chosen = 0;
    int32_t top_ids[3];
    float top_lp[3];
    llmkit::tensor_ref chosen_t = llmkit::f32(&chosen, {1});
    llmkit::tensor_ref ids_t = llmkit::i32(top_ids, {1, 3});
    llmkit::tensor_ref lp_t = llmkit::f32(top_lp, {1, 3});
    llmkit_sample_options o = LLMKIT_SAMPLE_OPTIONS_INIT;
    o.chosen_logprobs = chosen_t.get();
    o.top_ids = ids_t.get();
    o.top_logprobs = lp_t.get();
    c.sample(llmkit::f32(logits.data(), {1, 5}), llmkit::i32(&tok, {1}), &o);
    REQUIRE((tok == 1 || tok == 3));
    CHECK(chosen == Approx(std::log(p[size_t(tok)])).epsilon(1e-6));
    CHECK(top_ids[0] == 1);
    CHECK(top_ids[1] == 3);
    CHECK(top_ids[2] == 4);
    CHECK(top_lp[0] == Approx(std::log(p[1])).epsilon(1e-6));
    CHECK(top_lp[2] == Approx(std::log(p[4])).epsilon(1e-6));

    o.logprob_source = LLMKIT_LOGPROBS_PROCESSED;
    c.sample(llmkit::f32(logits.data(), {1, 5}), llmkit::i32(&tok, {1}), &o);
    const double z = std::exp(2.0) + std::exp(1.5);
    CHECK(chosen == Approx(logits[size_t(tok)] - std::log(z)).epsilon(1e-5));
    CHECK(top_ids[2] == -1);  // only two tokens survive top-k
    CHECK(std::isinf(top_lp[2]));
}

TEST_CASE("masked tokens (-inf logits) are never picked", "[chain]") {
    std::vector<float> logits(100, -INFINITY);
    logits[17] = 0.0f;
    logits[60] = 0.0f;
    llmkit::sampler_chain c(8);
    const auto counts = draw_counts(c, logits, 2000);
    CHECK(counts[17] + counts[60] == 2000);
    CHECK(counts[17] > 800);
    CHECK(counts[60] > 800);
}

TEST_CASE("one-call llmkit_sample", "[sample]") {
    const auto logits = test::random_logits(500, 3, 2.0f);
    llmkit_sample_params p = LLMKIT_SAMPLE_PARAMS_INIT;
    p.temperature = 0.0f;
    CHECK(llmkit::sample(logits.data(), 1, 500, p)[0] == test::order_desc(logits)[0]);
    p.temperature = 0.9f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.seed = 99;
    const auto a = llmkit::sample(logits.data(), 1, 500, p);
    const auto b = llmkit::sample(logits.data(), 1, 500, p);
    CHECK(a == b);
    llmkit::sampler_chain same(99);
    same.temperature(0.9f).top_k(40).top_p(0.95f).dist();
    CHECK(same.sample(logits.data(), 1, 500) == a);
}

TEST_CASE("speculative verification", "[speculative]") {
    const int64_t v = 6;
    SECTION("identical draft and target accept every draft and add a bonus token") {
        std::vector<float> q = {0.1f, 0.2f, 0.3f, 0.1f, 0.2f, 0.1f};
        std::vector<float> dp, tp;
        for (int i = 0; i < 3; ++i) dp.insert(dp.end(), q.begin(), q.end());
        for (int i = 0; i < 4; ++i) tp.insert(tp.end(), q.begin(), q.end());
        const auto r = llmkit::verify_speculative({2, 4, 1}, dp, tp, v, 7);
        CHECK(r.n_accepted == 3);
        REQUIRE(r.tokens.size() == 4);
        CHECK(r.tokens[0] == 2);
        CHECK(r.tokens[1] == 4);
        CHECK(r.tokens[2] == 1);
    }
    SECTION("a draft the target never emits is rejected and replaced from the residual") {
        std::vector<float> p = {0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f};  // draft is sure of token 1
        std::vector<float> q = {0.5f, 0.0f, 0.5f, 0.0f, 0.0f, 0.0f};  // target never says 1
        std::vector<float> tp = q;
        tp.insert(tp.end(), q.begin(), q.end());
        for (uint64_t seed = 0; seed < 50; ++seed) {
            const auto r = llmkit::verify_speculative({1}, p, tp, v, seed);
            CHECK(r.n_accepted == 0);
            REQUIRE(r.tokens.size() == 1);
            CHECK((r.tokens[0] == 0 || r.tokens[0] == 2));
        }
    }
    SECTION("the first emitted token is distributed as the target") {
        // Draft p and target q differ; draft tokens are drawn from p (as a
        // draft model would), then verified. The emitted first token must follow q.
        const std::vector<double> pd = {0.4, 0.1, 0.1, 0.2, 0.1, 0.1};
        const std::vector<double> qd = {0.1, 0.3, 0.05, 0.25, 0.2, 0.1};
        const int64_t n = 40000, k = 2;
        std::vector<int32_t> drafts(static_cast<size_t>(n * k));
        std::mt19937_64 rng(5);
        std::discrete_distribution<int> draft_dist(pd.begin(), pd.end());
        for (auto &d : drafts) d = draft_dist(rng);
        std::vector<float> dp, tp;
        for (int64_t i = 0; i < n * k; ++i)
            for (double x : pd) dp.push_back(float(x));
        for (int64_t i = 0; i < n * (k + 1); ++i)
            for (double x : qd) tp.push_back(float(x));
        std::vector<int32_t> out(static_cast<size_t>(n * (k + 1))), acc(static_cast<size_t>(n));
        llmkit_speculative_options o = LLMKIT_SPECULATIVE_OPTIONS_INIT;
        o.seed = 2024;
        llmkit::check(llmkit_verify_speculative(
            llmkit::i32(drafts.data(), {n, k}).get(), llmkit::f32(dp.data(), {n, k, v}).get(),
            llmkit::f32(tp.data(), {n, k + 1, v}).get(), llmkit::i32(out.data(), {n, k + 1}).get(),
            llmkit::i32(acc.data(), {n}).get(), &o));
        std::vector<int64_t> first(static_cast<size_t>(v), 0);
        for (int64_t i = 0; i < n; ++i) {
            ++first[size_t(out[size_t(i * (k + 1))])];
            // Row layout: n_accepted drafts, one final token, then -1 padding.
            const int32_t a = acc[size_t(i)];
            REQUIRE((a >= 0 && a <= k));
            for (int64_t j = 0; j <= k; ++j) CHECK((out[size_t(i * (k + 1) + j)] == -1) == (j > a));
        }
        check_chi2(first, qd);
        // Expected acceptance rate per draft: sum_x min(p, q) = 0.1+0.1+0.05+0.2+0.1+0.1 = 0.65.
        const double rate_first = double(std::count_if(acc.begin(), acc.end(), [](int32_t a) { return a >= 1; })) / n;
        CHECK(rate_first == Approx(0.65).margin(0.01));
    }
}

TEST_CASE("bad input gives a clear error and no crash", "[errors]") {
    std::vector<float> logits{0.0f, 1.0f, 2.0f};
    int32_t tok = 0;
    llmkit_sampler_chain *c = nullptr;
    REQUIRE(llmkit_sampler_chain_create(&c, nullptr) == LLMKIT_OK);
    auto msg = [] { return std::string(llmkit_last_error_message()); };
    auto sample = [&](const llmkit::tensor_ref &l, const llmkit::tensor_ref &t) {
        return llmkit_sampler_chain_sample(c, l.get(), t.get(), nullptr);
    };

    logits[1] = NAN;
    CHECK(sample(llmkit::f32(logits.data(), {1, 3}), llmkit::i32(&tok, {1})) == LLMKIT_ERROR_NON_FINITE);
    CHECK(msg().find("row 0, token 1") != std::string::npos);
    logits[1] = INFINITY;
    CHECK(sample(llmkit::f32(logits.data(), {1, 3}), llmkit::i32(&tok, {1})) == LLMKIT_ERROR_NON_FINITE);
    std::vector<float> masked(3, -INFINITY);
    CHECK(sample(llmkit::f32(masked.data(), {1, 3}), llmkit::i32(&tok, {1})) == LLMKIT_ERROR_NON_FINITE);
    CHECK(msg().find("no finite logit") != std::string::npos);
    logits[1] = 1.0f;

    CHECK(sample(llmkit::f32(logits.data(), {1, 0}), llmkit::i32(&tok, {1})) == LLMKIT_ERROR_SHAPE);
    CHECK(msg().find("V is 0") != std::string::npos);
    CHECK(sample(llmkit::f32(logits.data(), {1, 1, 3}), llmkit::i32(&tok, {1})) == LLMKIT_ERROR_SHAPE);
    CHECK(sample(llmkit::f32(logits.data(), {1, 3}), llmkit::i32(&tok, {2})) == LLMKIT_ERROR_SHAPE);
    CHECK(sample(llmkit::i32(reinterpret_cast<int32_t *>(logits.data()), {1, 3}), llmkit::i32(&tok, {1})) ==
          LLMKIT_ERROR_DTYPE);
    CHECK(msg().find("logits: dtype int32") != std::string::npos);
    CHECK(sample(llmkit::f32(logits.data(), {1, 3}), llmkit::f32(logits.data(), {1})) == LLMKIT_ERROR_DTYPE);
    CHECK(llmkit_sampler_chain_sample(c, nullptr, llmkit::i32(&tok, {1}).get(), nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(llmkit_sampler_chain_sample(nullptr, llmkit::f32(logits.data(), {1, 3}).get(), llmkit::i32(&tok, {1}).get(),
                                      nullptr) == LLMKIT_ERROR_NULL_POINTER);
    CHECK(sample(llmkit::f32(nullptr, {1, 3}), llmkit::i32(&tok, {1})) == LLMKIT_ERROR_NULL_POINTER);

    // Step parameters.
    CHECK(llmkit_sampler_chain_add_top_k(c, 0) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(msg().find("k must be >= 1") != std::string::npos);
    CHECK(llmkit_sampler_chain_add_top_k(c, -3) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_sampler_chain_add_top_p(c, 0.0f, 1) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_sampler_chain_add_top_p(c, 1.5f, 1) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_sampler_chain_add_top_p(c, NAN, 1) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_sampler_chain_add_min_p(c, -0.1f, 1) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_sampler_chain_add_temperature(c, -1.0f) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_sampler_chain_add_temperature(c, INFINITY) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_sampler_chain_add_mirostat(c, 5.0f, 0.1f, 1) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_sampler_chain_add_dry(c, 1.0f, 0.5f, 2, -1, nullptr, 0) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(llmkit_sampler_chain_add_dry(c, 1.0f, 1.75f, 2, -1, nullptr, 3) == LLMKIT_ERROR_NULL_POINTER);
    const int32_t neg = -4;
    const float bias = 1.0f, nan_bias = NAN;
    CHECK(llmkit_sampler_chain_add_logit_bias(c, &neg, &bias, 1) == LLMKIT_ERROR_INVALID_ARGUMENT);
    const int32_t zero = 0;
    CHECK(llmkit_sampler_chain_add_logit_bias(c, &zero, &nan_bias, 1) == LLMKIT_ERROR_INVALID_ARGUMENT);
    size_t len = 99;
    REQUIRE(llmkit_sampler_chain_length(c, &len) == LLMKIT_OK);
    CHECK(len == 0);  // failed adds leave the chain unchanged

    // Out-of-range ids only show at sampling time, when V is known.
    const int32_t big = 3;
    REQUIRE(llmkit_sampler_chain_add_logit_bias(c, &big, &bias, 1) == LLMKIT_OK);
    CHECK(sample(llmkit::f32(logits.data(), {1, 3}), llmkit::i32(&tok, {1})) == LLMKIT_ERROR_OUT_OF_RANGE);
    CHECK(msg().find("token id 3") != std::string::npos);

    // Nothing may follow a picker.
    llmkit_sampler_chain *g = nullptr;
    REQUIRE(llmkit_sampler_chain_create(&g, nullptr) == LLMKIT_OK);
    REQUIRE(llmkit_sampler_chain_add_greedy(g) == LLMKIT_OK);
    CHECK(llmkit_sampler_chain_add_top_k(g, 3) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(msg().find("picker must be the last step") != std::string::npos);

    // Banning everything leaves nothing to pick.
    llmkit_sampler_chain *b = nullptr;
    REQUIRE(llmkit_sampler_chain_create(&b, nullptr) == LLMKIT_OK);
    const int32_t all[3] = {0, 1, 2};
    REQUIRE(llmkit_sampler_chain_add_banned_tokens(b, all, 3) == LLMKIT_OK);
    CHECK(llmkit_sampler_chain_sample(b, llmkit::f32(logits.data(), {1, 3}).get(), llmkit::i32(&tok, {1}).get(),
                                      nullptr) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(msg().find("no token is left") != std::string::npos);

    // Overflow inside a step: an extreme temperature is greedy in the limit;
    // a penalty that overflows to +inf is an error, not garbage tokens.
    {
        std::vector<float> big{3e38f, -3e38f, 1e38f};
        llmkit::sampler_chain cold(1);
        cold.temperature(1e-30f);
        CHECK(cold.sample(big.data(), 1, 3)[0] == 0);
        llmkit::sampler_chain pen(1);
        pen.penalties(-1, 1.0f, -3e38f, 0.0f);  // negative frequency: boosts seen tokens
        pen.accept(0, {0, 0});
        try {
            pen.sample(big.data(), 1, 3);
            FAIL("overflow accepted");
        } catch (const llmkit::error &e) {
            CHECK(e.status() == LLMKIT_ERROR_NON_FINITE);
            CHECK(std::string(e.what()).find("penalties") != std::string::npos);
        }
    }

    // Options.
    llmkit_sample_options bad = LLMKIT_SAMPLE_OPTIONS_INIT;
    bad.struct_size = sizeof(bad) + 8;
    CHECK(llmkit_sampler_chain_sample(g, llmkit::f32(logits.data(), {1, 3}).get(), llmkit::i32(&tok, {1}).get(),
                                      &bad) == LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(msg().find("struct_size") != std::string::npos);
    // Outputs whose elements share memory (a stride of 0) are refused.
    {
        std::vector<float> rows = {0.5f, 1.0f, -1.0f, 2.0f, 0.0f, 1.5f};
        int32_t shared_token = 0;
        float shared_row[3] = {};
        const int64_t tshape[1] = {2}, tstride[1] = {0}, oshape[2] = {2, 3}, ostride[2] = {0, 1};
        llmkit_tensor tt{}, ot{};
        tt.data = &shared_token;
        tt.device = ot.device = llmkit_device LLMKIT_DEVICE_HOST;
        tt.ndim = 1;
        tt.dtype = llmkit_dtype LLMKIT_DTYPE_I32;
        tt.shape = tshape;
        tt.strides = tstride;
        ot.data = shared_row;
        ot.ndim = 2;
        ot.dtype = llmkit_dtype LLMKIT_DTYPE_F32;
        ot.shape = oshape;
        ot.strides = ostride;
        CHECK(llmkit_sampler_chain_sample(g, llmkit::f32(rows.data(), {2, 3}).get(), &tt, nullptr) ==
              LLMKIT_ERROR_UNSUPPORTED);
        CHECK(msg().find("tokens: dimension 0 (extent 2) has stride 0") != std::string::npos);
        CHECK(llmkit_sampler_chain_apply(g, llmkit::f32(rows.data(), {2, 3}).get(), &ot, nullptr) ==
              LLMKIT_ERROR_UNSUPPORTED);
        CHECK(msg().find("out_logits: dimension 0 (extent 2) has stride 0") != std::string::npos);
    }
    llmkit_sample_options dup = LLMKIT_SAMPLE_OPTIONS_INIT;
    const int64_t ids[2] = {4, 4};
    dup.seq_ids = ids;
    dup.n_seq_ids = 2;
    std::vector<float> two(6, 0.0f);
    int32_t toks[2];
    CHECK(llmkit_sampler_chain_sample(g, llmkit::f32(two.data(), {2, 3}).get(), llmkit::i32(toks, {2}).get(), &dup) ==
          LLMKIT_ERROR_INVALID_ARGUMENT);
    CHECK(msg().find("appears twice") != std::string::npos);
    dup.n_seq_ids = 1;
    CHECK(llmkit_sampler_chain_sample(g, llmkit::f32(two.data(), {2, 3}).get(), llmkit::i32(toks, {2}).get(), &dup) ==
          LLMKIT_ERROR_SHAPE);
    dup.seq_ids = nullptr;  // a count without ids is a caller bug, not "use the defaults"
    CHECK(llmkit_sampler_chain_sample(g, llmkit::f32(two.data(), {2, 3}).get(), llmkit::i32(toks, {2}).get(), &dup) ==
          LLMKIT_ERROR_NULL_POINTER);
    CHECK(msg().find("seq_ids is NULL") != std::string::npos);

    // A GPU tensor on a machine (or build) without CUDA.
    llmkit::tensor_ref gpu(logits.data(), llmkit_dtype{LLMKIT_DTYPE_FLOAT, 32, 1}, {1, 3},
                           llmkit_device{LLMKIT_DEVICE_CUDA, 0});
    int32_t n_gpu = 0;
    const llmkit_status cs = llmkit_device_count(&n_gpu, LLMKIT_DEVICE_CUDA);
    if (cs != LLMKIT_OK || n_gpu == 0) {
        CHECK(llmkit_sampler_chain_sample(g, gpu.get(), llmkit::i32(&tok, {1}).get(), nullptr) == LLMKIT_ERROR_NO_DEVICE);
        CHECK(msg().find("CUDA") != std::string::npos);
    }

    // Caller-owned buffers.
    size_t needed = 0;
    REQUIRE(llmkit_sampler_chain_describe(g, nullptr, 0, &needed) == LLMKIT_OK);
    CHECK(needed == std::strlen("greedy") + 1);
    char small[3];
    CHECK(llmkit_sampler_chain_describe(g, small, sizeof small, &needed) == LLMKIT_ERROR_BUFFER_TOO_SMALL);

    // Speculative shapes and ids.
    std::vector<float> probs(2 * 3, 0.5f);
    int32_t draft = 7, out[2], acc = 0;
    CHECK(llmkit_verify_speculative(llmkit::i32(&draft, {1, 1}).get(), llmkit::f32(probs.data(), {1, 1, 3}).get(),
                                    llmkit::f32(probs.data(), {1, 2, 3}).get(), llmkit::i32(out, {1, 2}).get(),
                                    llmkit::i32(&acc, {1}).get(), nullptr) == LLMKIT_ERROR_OUT_OF_RANGE);
    draft = 1;
    CHECK(llmkit_verify_speculative(llmkit::i32(&draft, {1, 1}).get(), llmkit::f32(probs.data(), {1, 1, 3}).get(),
                                    llmkit::f32(probs.data(), {1, 1, 3}).get(), llmkit::i32(out, {1, 2}).get(),
                                    llmkit::i32(&acc, {1}).get(), nullptr) == LLMKIT_ERROR_SHAPE);
    probs[4] = -1.0f;
    CHECK(llmkit_verify_speculative(llmkit::i32(&draft, {1, 1}).get(), llmkit::f32(probs.data(), {1, 1, 3}).get(),
                                    llmkit::f32(probs.data(), {1, 2, 3}).get(), llmkit::i32(out, {1, 2}).get(),
                                    llmkit::i32(&acc, {1}).get(), nullptr) == LLMKIT_ERROR_INVALID_ARGUMENT);

    // The C++ face turns statuses into exceptions with the message.
    try {
        llmkit::sampler_chain cc;
        cc.top_p(2.0f);
        FAIL("no exception");
    } catch (const llmkit::error &e) {
        CHECK(e.status() == LLMKIT_ERROR_INVALID_ARGUMENT);
        CHECK(std::string(e.what()).find("top_p") != std::string::npos);
    }

    llmkit_sampler_chain_free(c);
    llmkit_sampler_chain_free(g);
    llmkit_sampler_chain_free(b);
    llmkit_sampler_chain_free(nullptr);
}

TEST_CASE("errors are per thread", "[errors]") {
    CHECK(llmkit_sampler_chain_add_top_k(nullptr, 1) == LLMKIT_ERROR_NULL_POINTER);
    std::string other;
    std::thread t([&] {
        llmkit_sampler_chain *c = nullptr;
        llmkit_sampler_chain_create(&c, nullptr);
        llmkit_sampler_chain_add_top_p(c, 7.0f, 1);
        other = llmkit_last_error_message();
        llmkit_sampler_chain_free(c);
    });
    t.join();
    CHECK(std::string(llmkit_last_error_message()).find("chain is NULL") != std::string::npos);
    CHECK(other.find("top_p") != std::string::npos);
}

#ifdef LLMKIT_TEST_DATA_DIR
TEST_CASE("greedy over real stories260K logits reproduces llama2.c's tokens", "[data]") {
    const std::string dir = LLMKIT_TEST_DATA_DIR "/models/stories260K/";
    std::ifstream lf(dir + "logits_pos0-3.f32", std::ios::binary);
    REQUIRE(lf.good());
    std::vector<float> logits(4 * 512);
    lf.read(reinterpret_cast<char *>(logits.data()), std::streamsize(logits.size() * 4));
    REQUIRE(lf.gcount() == std::streamsize(logits.size() * 4));
    std::ifstream idf(dir + "greedy_ids_n200.txt");
    std::vector<int32_t> ids{std::istream_iterator<int32_t>(idf), std::istream_iterator<int32_t>()};
    REQUIRE(ids.size() == 200);
    llmkit::sampler_chain c;
    c.greedy();
    const auto got = c.sample(logits.data(), 4, 512);
    for (int pos = 0; pos < 4; ++pos) CHECK(got[size_t(pos)] == ids[size_t(pos + 1)]);
    // The one-call sampler at temperature 0 agrees.
    llmkit_sample_params p = LLMKIT_SAMPLE_PARAMS_INIT;
    p.temperature = 0.0f;
    CHECK(llmkit::sample(logits.data(), 4, 512, p) == got);
}
#endif
