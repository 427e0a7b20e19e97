// Sampling with the header-only C++ face: why the order of a chain matters,
// raw and processed log-probabilities, and speculative verification.
// Built and run by the snippet_cpp test; its output is checked against
// sampling_chain.expected.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <llmkit/llmkit.hpp>

namespace {

// Probabilities of processed logits (softmax; a removed token, -inf, gets 0).
std::vector<double> softmax(const std::vector<float> &logits) {
    double mx = -INFINITY, sum = 0;
    for (float l : logits) mx = std::fmax(mx, l);
    std::vector<double> p;
    for (float l : logits) p.push_back(std::exp(double(l) - mx));
    for (double x : p) sum += x;
    for (double &x : p) x /= sum;
    return p;
}

void show(llmkit::sampler_chain &chain, const std::vector<float> &logits) {
    std::vector<float> out(logits.size());
    const int64_t v = int64_t(logits.size());
    chain.apply(llmkit::f32(logits.data(), {v}), llmkit::f32(out.data(), {v}));
    std::printf("  %-40s", chain.describe().c_str());
    for (double p : softmax(out)) std::printf(" %.4f", p);
    std::printf("\n");
}

}  // namespace

int main() {
    // 1. Order matters. p = softmax(logits) = 0.5793 0.2131 0.1292 0.0784.
    const std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.0f};
    for (float t : {0.5f, 2.0f}) {
        std::printf("temperature %.1f, top-p 0.9: probabilities of tokens 0..3\n", double(t));
        llmkit::sampler_chain hf_order, llama_order;
        hf_order.temperature(t).top_p(0.9f);     // HF transformers / vLLM / llmkit_sample()
        llama_order.top_p(0.9f).temperature(t);  // llama.cpp's default: temperature last
        show(hf_order, logits);
        show(llama_order, logits);
    }

    // 2. Log-probabilities of the chosen token: of the logits as given ("raw",
    //    what OpenAI's API reports) or of the distribution actually drawn from.
    for (int32_t source : {LLMKIT_LOGPROBS_RAW, LLMKIT_LOGPROBS_PROCESSED}) {
        llmkit::sampler_chain chain(3);
        chain.top_k(2).temperature(0.5f).dist();
        int32_t token = -1;
        float chosen = 0;
        std::vector<int32_t> top_ids(3);
        std::vector<float> top_lp(3);
        llmkit::tensor_ref chosen_t = llmkit::f32(&chosen, {1});
        llmkit::tensor_ref top_ids_t = llmkit::i32(top_ids.data(), {1, 3});
        llmkit::tensor_ref top_lp_t = llmkit::f32(top_lp.data(), {1, 3});
        llmkit_sample_options options = LLMKIT_SAMPLE_OPTIONS_INIT;
        options.chosen_logprobs = chosen_t.get();
        options.top_ids = top_ids_t.get();
        options.top_logprobs = top_lp_t.get();
        options.logprob_source = source;
        chain.sample(llmkit::f32(logits.data(), {1, 4}), llmkit::i32(&token, {1}), &options);
        std::printf("%-9s token %d logprob %.4f; top-3:", source == LLMKIT_LOGPROBS_RAW ? "raw" : "processed",
                    token, double(chosen));
        for (int j = 0; j < 3; ++j) std::printf(" %d:%.4f", top_ids[j], double(top_lp[j]));
        std::printf("\n");
    }

    // 3. Speculative verification keeps the target distribution. Draft p, target q.
    const int64_t vocab = 4, trials = 20000;
    const std::vector<float> p = {0.5f, 0.3f, 0.1f, 0.1f};
    const std::vector<float> q = {0.3f, 0.3f, 0.2f, 0.2f};
    std::vector<float> target = q;
    target.insert(target.end(), q.begin(), q.end());  // [K+1, V] with K = 1
    // The draft model proposes x ~ p: one row per trial, each row its own sequence.
    std::vector<float> log_p;
    for (int64_t i = 0; i < trials; ++i)
        for (float x : p) log_p.push_back(std::log(x));
    llmkit_sample_params draft_params = LLMKIT_SAMPLE_PARAMS_INIT;
    draft_params.seed = 1;
    const std::vector<int32_t> drafts = llmkit::sample(log_p.data(), trials, vocab, draft_params);
    int64_t accepted = 0;
    std::vector<int64_t> count(size_t(vocab), 0);
    for (int64_t i = 0; i < trials; ++i) {
        // Keyed by a different seed than the draft: the two draws must be independent.
        const llmkit::speculative_result r =
            llmkit::verify_speculative({drafts[size_t(i)]}, p, target, vocab, /*seed=*/2, /*step=*/0, /*seq_id=*/i);
        accepted += r.n_accepted;
        ++count[size_t(r.tokens[0])];
    }
    double sum_min = 0;
    for (int64_t v = 0; v < vocab; ++v) sum_min += std::fmin(p[size_t(v)], q[size_t(v)]);
    std::printf("speculative, %lld trials: acceptance %.4f (theory sum min(p,q) = %.4f)\n", (long long)trials,
                double(accepted) / double(trials), sum_min);
    std::printf("  first token emitted:");
    for (int64_t v = 0; v < vocab; ++v) std::printf(" %.4f", double(count[size_t(v)]) / double(trials));
    std::printf("\n  target q:           ");
    for (float x : q) std::printf(" %.4f", double(x));
    std::printf("\n");
    return 0;
}
