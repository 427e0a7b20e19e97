// llmkit._llmkit: the sampler chain, one-call sampling and speculative verification.
#include "py_common.hpp"

namespace llmkit_py {
namespace {

// ---------------------------------------------------------------------------
// Sampler chain.

// The chain plus a mutex: a chain's calls must not overlap (llmkit.h), and with
// the GIL released two Python threads could otherwise enter it at once. The
// mutex is always taken after the GIL is released and let go before it is
// taken back, so the two locks never deadlock.
struct py_chain {
    explicit py_chain(uint64_t s) : chain(s), seed(s) {}
    llmkit::sampler_chain chain;
    uint64_t seed;
    std::mutex mutex;

    template <typename F>
    auto locked(F &&f) {
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(mutex);
        return f();
    }
};

int64_t rows_of(const tensor_arg &logits) { return logits.ndim() >= 2 ? logits.shape[0] : 1; }

py::object first_or_all(const py::array &a, bool single) {
    if (!single) return a;
    return a[py::int_(0)];
}

py::tuple chain_sample(py_chain &c, py::handle logits_obj, const seq_ids_arg &seq_ids, int32_t num_threads,
                       bool want_logprobs, int64_t n_top, int32_t source) {
    if (n_top < 0) throw py::value_error("top_logprobs must be >= 0, got " + std::to_string(n_top));
    const tensor_arg logits = to_tensor(logits_obj, "logits", fallback::floating);
    const bool single = logits.ndim() == 1;
    const int64_t rows = rows_of(logits);
    py::array_t<int32_t> tokens(static_cast<py::ssize_t>(rows));
    std::optional<py::array_t<float>> chosen;
    std::optional<py::array_t<int32_t>> top_ids;
    std::optional<py::array_t<float>> top_lp;
    if (want_logprobs) chosen.emplace(std::vector<py::ssize_t>{py::ssize_t(rows)});
    if (n_top > 0) {
        top_ids.emplace(std::vector<py::ssize_t>{py::ssize_t(rows), py::ssize_t(n_top)});
        top_lp.emplace(std::vector<py::ssize_t>{py::ssize_t(rows), py::ssize_t(n_top)});
    }
    llmkit::tensor_ref lt = logits.ref();
    llmkit::tensor_ref tt = llmkit::i32(tokens.mutable_data(), {rows});
    std::optional<llmkit::tensor_ref> ct, it, lpt;
    llmkit_sample_options o = LLMKIT_SAMPLE_OPTIONS_INIT;
    o.n_threads = num_threads;
    o.logprob_source = source;
    if (seq_ids) {
        o.seq_ids = seq_ids->data();
        o.n_seq_ids = size_t(seq_ids->size());
    }
    if (chosen) o.chosen_logprobs = ct.emplace(llmkit::f32(chosen->mutable_data(), {rows})).get();
    if (top_ids) {
        o.top_ids = it.emplace(llmkit::i32(top_ids->mutable_data(), {rows, n_top})).get();
        o.top_logprobs = lpt.emplace(llmkit::f32(top_lp->mutable_data(), {rows, n_top})).get();
    }
    c.locked([&] { c.chain.sample(lt, tt, &o); });
    py::object none = py::none();
    return py::make_tuple(first_or_all(tokens, single), chosen ? first_or_all(*chosen, single) : none,
                          top_ids ? first_or_all(*top_ids, single) : none,
                          top_lp ? first_or_all(*top_lp, single) : none);
}

py::array_t<float> chain_apply(py_chain &c, py::handle logits_obj, const seq_ids_arg &seq_ids, int32_t num_threads) {
    const tensor_arg logits = to_tensor(logits_obj, "logits", fallback::floating);
    std::vector<py::ssize_t> shape(logits.shape.begin(), logits.shape.end());
    py::array_t<float> out(shape);
    llmkit::tensor_ref lt = logits.ref();
    llmkit::tensor_ref ot = llmkit::f32(out.mutable_data(), logits.shape);
    llmkit_sample_options o = LLMKIT_SAMPLE_OPTIONS_INIT;
    o.n_threads = num_threads;
    if (seq_ids) {
        o.seq_ids = seq_ids->data();
        o.n_seq_ids = size_t(seq_ids->size());
    }
    c.locked([&] { c.chain.apply(lt, ot, &o); });
    return out;
}

void bind_chain(py::module_ &m) {
    py::class_<py_chain> cls(m, "SamplerChain",
                  "Native sampler chain (private; use llmkit.SamplerChain). Methods mirror "
                  "llmkit_sampler_chain_* in llmkit.h; add_* methods return self.");
    cls.def(py::init<uint64_t>(), py::arg("seed") = 0);
    cls.def_readonly("seed", &py_chain::seed);
    auto ret = py::return_value_policy::reference_internal;
    cls.def("greedy", [](py_chain &c) -> py_chain & { c.locked([&] { c.chain.greedy(); }); return c; }, ret);
    cls.def("dist", [](py_chain &c) -> py_chain & { c.locked([&] { c.chain.dist(); }); return c; }, ret);
    cls.def(
        "temperature", [](py_chain &c, float t) -> py_chain & { c.locked([&] { c.chain.temperature(t); }); return c; },
        ret, py::arg("t"));
    cls.def(
        "dynamic_temperature",
        [](py_chain &c, float t, float delta, float exponent) -> py_chain & {
            c.locked([&] { c.chain.dynamic_temperature(t, delta, exponent); });
            return c;
        },
        ret, py::arg("t"), py::arg("delta"), py::arg("exponent") = 1.0f);
    cls.def(
        "top_k", [](py_chain &c, int32_t k) -> py_chain & { c.locked([&] { c.chain.top_k(k); }); return c; }, ret,
        py::arg("k"));
    cls.def(
        "top_p",
        [](py_chain &c, float p, size_t min_keep) -> py_chain & {
            c.locked([&] { c.chain.top_p(p, min_keep); });
            return c;
        },
        ret, py::arg("p"), py::arg("min_keep") = 1);
    cls.def(
        "min_p",
        [](py_chain &c, float p, size_t min_keep) -> py_chain & {
            c.locked([&] { c.chain.min_p(p, min_keep); });
            return c;
        },
        ret, py::arg("p"), py::arg("min_keep") = 1);
    cls.def(
        "typical",
        [](py_chain &c, float p, size_t min_keep) -> py_chain & {
            c.locked([&] { c.chain.typical(p, min_keep); });
            return c;
        },
        ret, py::arg("p"), py::arg("min_keep") = 1);
    cls.def(
        "top_n_sigma", [](py_chain &c, float n) -> py_chain & { c.locked([&] { c.chain.top_n_sigma(n); }); return c; },
        ret, py::arg("n"));
    cls.def(
        "xtc",
        [](py_chain &c, float probability, float threshold, size_t min_keep) -> py_chain & {
            c.locked([&] { c.chain.xtc(probability, threshold, min_keep); });
            return c;
        },
        ret, py::arg("probability"), py::arg("threshold"), py::arg("min_keep") = 1);
    cls.def(
        "penalties",
        [](py_chain &c, int32_t last_n, float repeat, float frequency, float presence) -> py_chain & {
            c.locked([&] { c.chain.penalties(last_n, repeat, frequency, presence); });
            return c;
        },
        ret, py::arg("last_n") = 64, py::arg("repeat") = 1.0f, py::arg("frequency") = 0.0f,
        py::arg("presence") = 0.0f);
    cls.def(
        "dry",
        [](py_chain &c, float multiplier, float base, int32_t allowed_length, int32_t last_n,
           const std::vector<int32_t> &breakers) -> py_chain & {
            c.locked([&] { c.chain.dry(multiplier, base, allowed_length, last_n, breakers); });
            return c;
        },
        ret, py::arg("multiplier"), py::arg("base") = 1.75f, py::arg("allowed_length") = 2, py::arg("last_n") = -1,
        py::arg("breakers") = std::vector<int32_t>{});
    cls.def(
        "logit_bias",
        [](py_chain &c, const std::vector<int32_t> &ids, const std::vector<float> &biases) -> py_chain & {
            c.locked([&] { c.chain.logit_bias(ids, biases); });
            return c;
        },
        ret, py::arg("ids"), py::arg("biases"));
    cls.def(
        "banned_tokens",
        [](py_chain &c, const std::vector<int32_t> &ids) -> py_chain & {
            c.locked([&] { c.chain.banned_tokens(ids); });
            return c;
        },
        ret, py::arg("ids"));
    cls.def(
        "mirostat",
        [](py_chain &c, float tau, float eta, int32_t m) -> py_chain & {
            c.locked([&] { c.chain.mirostat(tau, eta, m); });
            return c;
        },
        ret, py::arg("tau") = 5.0f, py::arg("eta") = 0.1f, py::arg("m") = 100);
    cls.def(
        "mirostat_v2",
        [](py_chain &c, float tau, float eta) -> py_chain & {
            c.locked([&] { c.chain.mirostat_v2(tau, eta); });
            return c;
        },
        ret, py::arg("tau") = 5.0f, py::arg("eta") = 0.1f);
    cls.def("__len__", [](py_chain &c) { return c.locked([&] { return c.chain.size(); }); });
    cls.def("describe", [](py_chain &c) { return c.locked([&] { return c.chain.describe(); }); });
    cls.def(
        "accept",
        [](py_chain &c, py::array_t<int32_t, py::array::c_style | py::array::forcecast> tokens, int64_t seq_id) {
            std::vector<int32_t> v(tokens.data(), tokens.data() + tokens.size());
            c.locked([&] { c.chain.accept(seq_id, v); });
        },
        py::arg("tokens"), py::arg("seq_id") = 0);
    cls.def(
        "reset", [](py_chain &c, int64_t seq_id) { c.locked([&] { c.chain.reset(seq_id); }); },
        py::arg("seq_id") = -1);
    cls.def("sample", &chain_sample, py::arg("logits"), py::arg("seq_ids") = py::none(), py::arg("num_threads") = 0,
            py::arg("logprobs") = false, py::arg("top_logprobs") = 0, py::arg("logprob_source") = 0,
            "Returns (tokens, logprobs, top_ids, top_logprobs); unrequested parts are None. "
            "For 1-D logits each part is a scalar (or 1-D) instead of having a batch axis.");
    cls.def("apply", &chain_apply, py::arg("logits"), py::arg("seq_ids") = py::none(), py::arg("num_threads") = 0);
}

// ---------------------------------------------------------------------------
// One-call sampling and speculative verification.

py::object sample(py::handle logits_obj, float temperature, int32_t top_k, float top_p, float min_p, uint64_t seed,
                  int32_t num_threads) {
    const tensor_arg logits = to_tensor(logits_obj, "logits", fallback::floating);
    const bool single = logits.ndim() == 1;
    const int64_t rows = rows_of(logits);
    py::array_t<int32_t> tokens(static_cast<py::ssize_t>(rows));
    llmkit::tensor_ref lt = logits.ref();
    llmkit::tensor_ref tt = llmkit::i32(tokens.mutable_data(), {rows});
    llmkit_sample_params p = LLMKIT_SAMPLE_PARAMS_INIT;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = seed;
    p.n_threads = num_threads;
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_sample(lt.get(), tt.get(), &p));
    }
    return first_or_all(tokens, single);
}

py::tuple verify_speculative(py::handle draft_tokens_obj, py::handle draft_probs_obj, py::handle target_probs_obj,
                             uint64_t seed, uint64_t step, const seq_ids_arg &seq_ids, int32_t num_threads) {
    tensor_arg a = to_tensor(draft_tokens_obj, "draft_tokens", fallback::index);
    tensor_arg p = to_tensor(draft_probs_obj, "draft_probs", fallback::floating);
    tensor_arg q = to_tensor(target_probs_obj, "target_probs", fallback::floating);
    // One sequence: draft_tokens [K], draft_probs [K, V], target_probs [K+1, V].
    const bool single = a.ndim() == 1;
    if (single) {
        a.unsqueeze0();
        if (p.ndim() == 2) p.unsqueeze0();
        if (q.ndim() == 2) q.unsqueeze0();
    }
    const int64_t rows = a.dim(0), k = a.ndim() >= 2 ? a.shape[1] : 0;
    py::array_t<int32_t> tokens({py::ssize_t(rows), py::ssize_t(k + 1)});
    py::array_t<int32_t> n_accepted(static_cast<py::ssize_t>(rows));
    llmkit::tensor_ref at = a.ref(), pt = p.ref(), qt = q.ref();
    llmkit::tensor_ref tt = llmkit::i32(tokens.mutable_data(), {rows, k + 1});
    llmkit::tensor_ref nt = llmkit::i32(n_accepted.mutable_data(), {rows});
    llmkit_speculative_options o = LLMKIT_SPECULATIVE_OPTIONS_INIT;
    o.seed = seed;
    o.step = step;
    o.n_threads = num_threads;
    if (seq_ids) {
        o.seq_ids = seq_ids->data();
        o.n_seq_ids = size_t(seq_ids->size());
    }
    {
        py::gil_scoped_release nogil;
        llmkit::check(llmkit_verify_speculative(at.get(), pt.get(), qt.get(), tt.get(), nt.get(), &o));
    }
    return py::make_tuple(first_or_all(tokens, single), first_or_all(n_accepted, single));
}


}  // namespace

void bind_sampling(py::module_ &m) {
    bind_chain(m);
    m.def("sample", &sample, py::arg("logits"), py::arg("temperature") = 1.0f, py::arg("top_k") = 0,
          py::arg("top_p") = 1.0f, py::arg("min_p") = 0.0f, py::arg("seed") = 0, py::arg("num_threads") = 0);
    m.def("verify_speculative", &verify_speculative, py::arg("draft_tokens"), py::arg("draft_probs"),
          py::arg("target_probs"), py::arg("seed") = 0, py::arg("step") = 0, py::arg("seq_ids") = py::none(),
          py::arg("num_threads") = 0);
}

}  // namespace llmkit_py
