#include "sampling/chain.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "core/philox.hpp"
#include "core/threads.hpp"
#include "sampling/select.hpp"

namespace llmkit::sampling {

using core::dtype;
using core::fail;
using core::tensor_view;

void chain::add(step s) {
    if (!steps_.empty() && steps_.back().picks())
        fail(LLMKIT_ERROR_INVALID_ARGUMENT, "cannot add ", s.describe(), " after the picking step ",
             steps_.back().describe(), ": a picker must be the last step of a chain");
    steps_.push_back(std::move(s));
}

std::string chain::describe() const {
    std::string out;
    for (const step &s : steps_) {
        if (!out.empty()) out += " -> ";
        out += s.describe();
    }
    if (steps_.empty() || !steps_.back().picks()) out += out.empty() ? "dist" : " -> dist";
    return out;
}

sequence_state &chain::state_for(int64_t seq_id) {
    sequence_state &st = sequences_[seq_id];
    if (st.mu.size() != steps_.size()) st.mu.resize(steps_.size(), std::numeric_limits<float>::quiet_NaN());
    return st;
}

void chain::accept(int64_t seq_id, const int32_t *tokens, size_t n) {
    if (seq_id < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "accept: seq_id must be >= 0, got ", seq_id);
    for (size_t i = 0; i < n; ++i)
        if (tokens[i] < 0) fail(LLMKIT_ERROR_OUT_OF_RANGE, "accept: token ", i, " is negative (", tokens[i], ")");
    sequence_state &st = state_for(seq_id);
    st.history.insert(st.history.end(), tokens, tokens + n);
}

void chain::reset(int64_t seq_id) {
    if (seq_id < 0)
        sequences_.clear();
    else
        sequences_.erase(seq_id);
}

void logits_shape(const tensor_view &logits, int64_t &rows, int64_t &vocab) {
    logits.require_dtype({dtype::f32, dtype::f16, dtype::bf16});
    logits.require_ndim(1, 2);
    rows = logits.ndim == 2 ? logits.shape[0] : 1;
    vocab = logits.shape[logits.ndim - 1];
    if (vocab == 0) fail(LLMKIT_ERROR_SHAPE, logits.name, ": the vocabulary dimension V is 0");
    if (vocab > std::numeric_limits<int32_t>::max())
        fail(LLMKIT_ERROR_SHAPE, logits.name, ": V = ", vocab, " does not fit int32 token ids");
}

namespace {

const char *row_ptr(const tensor_view &t, int64_t row) {
    return t.ndim == 2 ? t.data + row * t.strides[0] * int64_t(t.elem_size) : t.data;
}
int64_t col_stride(const tensor_view &t) { return t.strides[t.ndim - 1]; }

// Per-thread buffers: one row of floats and the candidates built from it.
thread_local std::vector<float> tls_row;
thread_local candidates tls_cand;

// Loads row `b`, rejects NaN and +inf, and fills `c` with the finite tokens.
void load_row(const tensor_view &logits, int64_t b, int64_t vocab, std::vector<float> &row, candidates &c,
              bool build = true) {
    row.resize(size_t(vocab));
    core::load_floats(row.data(), row_ptr(logits, b), vocab, col_stride(logits), logits.type);
    // One branch-free pass (it vectorises): any NaN or +inf, and how many -inf.
    const float inf = std::numeric_limits<float>::infinity();
    int bad = 0;
    size_t masked = 0;
    for (size_t v = 0; v < row.size(); ++v) {
        const float l = row[v];
        bad |= int(!(l < inf));  // NaN or +inf
        masked += size_t(l == -inf);
    }
    if (bad) {
        for (size_t v = 0; v < row.size(); ++v)
            if (!(row[v] < inf))
                fail(LLMKIT_ERROR_NON_FINITE, logits.name, ": row ", b, ", token ", v, " is ", row[v],
                     " (logits must be finite; -inf marks a token that cannot be picked)");
    }
    if (masked == row.size()) fail(LLMKIT_ERROR_NON_FINITE, logits.name, ": row ", b, " has no finite logit");
    if (!build) return;
    c.vocab_size = int32_t(vocab);
    c.ids.resize(row.size() - masked);
    c.logits.resize(row.size() - masked);
    if (masked == 0) {
        for (size_t v = 0; v < row.size(); ++v) c.ids[v] = int32_t(v);
        std::memcpy(c.logits.data(), row.data(), row.size() * sizeof(float));
        return;
    }
    size_t w = 0;
    for (size_t v = 0; v < row.size(); ++v) {
        if (row[v] == -inf) continue;
        c.ids[w] = int32_t(v);
        c.logits[w] = row[v];
        ++w;
    }
}

// The first index of the largest value (-inf entries never win unless all are).
int32_t argmax_lowest(const std::vector<float> &row) {
    const float ninf = -std::numeric_limits<float>::infinity();
    float m[8] = {ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf};
    const size_t n = row.size();
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) m[j] = row[i + size_t(j)] > m[j] ? row[i + size_t(j)] : m[j];
    for (; i < n; ++i) m[0] = row[i] > m[0] ? row[i] : m[0];
    for (int j = 1; j < 8; ++j) m[0] = m[j] > m[0] ? m[j] : m[0];
    for (size_t v = 0; v < n; ++v)
        if (row[v] == m[0]) return int32_t(v);
    return 0;
}

// log-softmax denominators and the n best (id, logprob) of a set, descending.
struct logprob_table {
    double max = 0, log_sum = 0;
    double logprob(float l) const { return double(l) - max - log_sum; }
};

logprob_table make_table(const float *l, size_t n) {
    logprob_table t;
    t.max = -std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < n; ++i) t.max = std::max(t.max, double(l[i]));
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += std::exp(double(l[i]) - t.max);
    t.log_sum = std::log(s);
    return t;
}

void write_top(const sample_call &call, int64_t b, const int32_t *ids, const float *l, size_t n,
               const logprob_table &t) {
    const int64_t want = call.n_top;
    std::vector<std::pair<float, int32_t>> best;  // (-logit, id): ascending = most likely first
    best.reserve(n);
    for (size_t i = 0; i < n; ++i)
        if (!std::isinf(l[i])) best.push_back({-l[i], ids ? ids[i] : int32_t(i)});
    const size_t take = std::min<size_t>(size_t(want), best.size());
    std::partial_sort(best.begin(), best.begin() + take, best.end());
    for (int64_t j = 0; j < want; ++j) {
        const bool have = size_t(j) < take;
        if (call.top_ids) core::store_index(*call.top_ids, reinterpret_cast<char *>(call.top_ids->at<char>(b, j)), have ? best[size_t(j)].second : -1);
        if (call.top_logprobs)
            *call.top_logprobs->at<float>(b, j) =
                have ? float(t.logprob(-best[size_t(j)].first)) : -std::numeric_limits<float>::infinity();
    }
}

void check_sample_outputs(const tensor_view &logits, const tensor_view &tokens, sample_call &call, int64_t rows) {
    tokens.require_dtype({dtype::i32, dtype::i64});
    const bool shape_ok = tokens.ndim == 1 ? tokens.shape[0] == rows
                                           : (tokens.ndim == 0 && logits.ndim == 1);
    if (!shape_ok)
        fail(LLMKIT_ERROR_SHAPE, "tokens: expected shape [", rows, "] for logits of shape ", logits.shape_string(),
             ", got ", tokens.shape_string());
    if (call.chosen_logprobs) {
        const tensor_view &t = *call.chosen_logprobs;
        t.require_dtype({dtype::f32});
        if (!(t.ndim == 1 && t.shape[0] == rows) && !(t.ndim == 0 && logits.ndim == 1))
            fail(LLMKIT_ERROR_SHAPE, "chosen_logprobs: expected shape [", rows, "], got ", t.shape_string());
    }
    if (call.top_ids || call.top_logprobs) {
        if (call.top_ids) {
            call.top_ids->require_dtype({dtype::i32, dtype::i64});
            call.top_ids->require_ndim(2, 2);
            if (call.top_ids->shape[0] != rows)
                fail(LLMKIT_ERROR_SHAPE, "top_ids: expected ", rows, " rows, got shape ", call.top_ids->shape_string());
            call.n_top = call.top_ids->shape[1];
        }
        if (call.top_logprobs) {
            call.top_logprobs->require_dtype({dtype::f32});
            call.top_logprobs->require_ndim(2, 2);
            if (call.top_logprobs->shape[0] != rows)
                fail(LLMKIT_ERROR_SHAPE, "top_logprobs: expected ", rows, " rows, got shape ",
                     call.top_logprobs->shape_string());
            if (call.top_ids && call.top_logprobs->shape[1] != call.n_top)
                fail(LLMKIT_ERROR_SHAPE, "top_logprobs: shape ", call.top_logprobs->shape_string(),
                     " does not match top_ids ", call.top_ids->shape_string());
            call.n_top = call.top_logprobs->shape[1];
        }
    }
}

void check_seq_ids(sample_call &call, int64_t rows) {
    if (call.seq_ids.empty()) {
        call.seq_ids.resize(size_t(rows));
        for (int64_t i = 0; i < rows; ++i) call.seq_ids[size_t(i)] = i;
        return;
    }
    if (int64_t(call.seq_ids.size()) != rows)
        fail(LLMKIT_ERROR_SHAPE, "seq_ids: ", call.seq_ids.size(), " ids given for ", rows, " rows");
    std::set<int64_t> seen;
    for (int64_t s : call.seq_ids) {
        if (s < 0) fail(LLMKIT_ERROR_INVALID_ARGUMENT, "seq_ids: ids must be >= 0, got ", s);
        if (!seen.insert(s).second)
            fail(LLMKIT_ERROR_INVALID_ARGUMENT, "seq_ids: sequence ", s, " appears twice in one batch");
    }
}

}  // namespace

step_context chain::run_filters(candidates &c, const sequence_state &st, int64_t seq_id, size_t n_filters) const {
    step_context ctx;
    ctx.seed = seed_;
    ctx.seq_id = uint64_t(seq_id);
    ctx.step_number = st.step_number;
    ctx.history = &st.history;
    // Step j gets Philox draw index 1 + j; index 0 belongs to the picker.
    for (size_t j = 0; j < n_filters; ++j) {
        ctx.draw_index = uint32_t(1 + j);
        apply_step(steps_[j], c, ctx);
    }
    return ctx;
}

void chain::sample(const tensor_view &logits, const tensor_view &tokens, const sample_call &call_in) {
    sample_call call = call_in;
    int64_t rows = 0, vocab = 0;
    logits_shape(logits, rows, vocab);
    check_sample_outputs(logits, tokens, call, rows);
    check_seq_ids(call, rows);

    // States are looked up (and created) before the threads start.
    std::vector<sequence_state *> states(static_cast<size_t>(rows));
    for (int64_t b = 0; b < rows; ++b) states[size_t(b)] = &state_for(call.seq_ids[size_t(b)]);

    const bool has_picker = !steps_.empty() && steps_.back().picks();
    const size_t n_filters = has_picker ? steps_.size() - 1 : steps_.size();
    static const step implicit_dist{};  // kind = dist
    const step &picker = has_picker ? steps_.back() : implicit_dist;

    std::vector<int32_t> picked(static_cast<size_t>(rows));
    std::vector<float> new_mu(static_cast<size_t>(rows), std::numeric_limits<float>::quiet_NaN());

    core::parallel_for(rows, call.n_threads, [&](int64_t b) {
        sequence_state &st = *states[size_t(b)];
        std::vector<float> &row = tls_row;
        candidates &c = tls_cand;
        const bool want_logprobs = call.chosen_logprobs || call.n_top > 0;
        // Plain greedy needs no candidate set: argmax on the checked row.
        const bool greedy_only = n_filters == 0 && picker.kind == step_kind::greedy &&
                                 !(want_logprobs && call.processed_logprobs);
        load_row(logits, b, vocab, row, c, !greedy_only);
        logprob_table raw;
        if (want_logprobs && !call.processed_logprobs) {
            raw = make_table(row.data(), row.size());
            if (call.n_top > 0) write_top(call, b, nullptr, row.data(), row.size(), raw);
        }

        const step_context ctx = run_filters(c, st, call.seq_ids[size_t(b)], n_filters);
        float mu = 0;
        if (has_picker) {
            mu = st.mu[steps_.size() - 1];
            if (std::isnan(mu)) mu = 2.0f * picker.f0;  // mirostat starts at mu = 2 tau
        }
        pick_result r;
        if (greedy_only)
            r.token = argmax_lowest(row);
        else
            r = pick(picker, c, ctx, mu);
        picked[size_t(b)] = r.token;
        if (picker.kind == step_kind::mirostat || picker.kind == step_kind::mirostat_v2) new_mu[size_t(b)] = r.new_mu;

        char *tok = tokens.ndim == 0 ? tokens.data : reinterpret_cast<char *>(tokens.at<char>(b));
        core::store_index(tokens, tok, r.token);

        if (want_logprobs) {
            if (call.processed_logprobs) {
                const logprob_table t = make_table(c.logits.data(), c.size());
                if (call.n_top > 0) write_top(call, b, c.ids.data(), c.logits.data(), c.size(), t);
                if (call.chosen_logprobs) {
                    float *dst = call.chosen_logprobs->ndim == 0 ? reinterpret_cast<float *>(call.chosen_logprobs->data)
                                                                 : call.chosen_logprobs->at<float>(b);
                    *dst = float(t.logprob(c.logits[size_t(c.find(r.token))]));
                }
            } else if (call.chosen_logprobs) {
                float *dst = call.chosen_logprobs->ndim == 0 ? reinterpret_cast<float *>(call.chosen_logprobs->data)
                                                             : call.chosen_logprobs->at<float>(b);
                *dst = float(raw.logprob(row[size_t(r.token)]));
            }
        }
    });

    // Every row succeeded: advance the state of each sequence.
    for (int64_t b = 0; b < rows; ++b) {
        sequence_state &st = *states[size_t(b)];
        st.history.push_back(picked[size_t(b)]);
        ++st.step_number;
        if (!std::isnan(new_mu[size_t(b)])) st.mu[steps_.size() - 1] = new_mu[size_t(b)];
    }
}

void chain::apply(const tensor_view &logits, const tensor_view &out, const sample_call &call_in) {
    sample_call call = call_in;
    int64_t rows = 0, vocab = 0;
    logits_shape(logits, rows, vocab);
    out.require_dtype({dtype::f32});
    if (out.ndim != logits.ndim || out.shape[0] != logits.shape[0] || out.shape[out.ndim - 1] != vocab)
        fail(LLMKIT_ERROR_SHAPE, "out_logits: expected shape ", logits.shape_string(), ", got ", out.shape_string());
    check_seq_ids(call, rows);
    std::vector<sequence_state *> states(static_cast<size_t>(rows));
    for (int64_t b = 0; b < rows; ++b) states[size_t(b)] = &state_for(call.seq_ids[size_t(b)]);
    const size_t n_filters = (!steps_.empty() && steps_.back().picks()) ? steps_.size() - 1 : steps_.size();

    core::parallel_for(rows, call.n_threads, [&](int64_t b) {
        sequence_state &st = *states[size_t(b)];
        std::vector<float> &row = tls_row;
        candidates &c = tls_cand;
        load_row(logits, b, vocab, row, c);
        run_filters(c, st, call.seq_ids[size_t(b)], n_filters);
        char *dst = const_cast<char *>(row_ptr(out, b));
        const int64_t s = col_stride(out);
        const float ninf = -std::numeric_limits<float>::infinity();
        for (int64_t v = 0; v < vocab; ++v) std::memcpy(dst + v * s * 4, &ninf, 4);
        for (size_t i = 0; i < c.size(); ++i) std::memcpy(dst + int64_t(c.ids[i]) * s * 4, &c.logits[i], 4);
    });
}

void sample_dispatch(chain &c, const tensor_view &logits, const tensor_view &tokens, sample_call &call) {
    const core::dispatch d =
        core::select_backend({&logits, &tokens, call.chosen_logprobs, call.top_ids, call.top_logprobs});
    if (d.kind == core::backend_kind::cpu) {
        c.sample(logits, tokens, call);
        return;
    }
    // No device kernels yet: stage through the host, run the reference path.
    core::host_stage in(d, logits, true, call.stream);
    core::host_stage out(d, tokens, false, call.stream);
    std::vector<std::unique_ptr<core::host_stage>> extra;
    sample_call host_call = call;
    auto stage = [&](const tensor_view *&t) {
        if (!t) return;
        extra.push_back(std::make_unique<core::host_stage>(d, *t, false, call.stream));
        t = &extra.back()->view();
    };
    stage(host_call.chosen_logprobs);
    stage(host_call.top_ids);
    stage(host_call.top_logprobs);
    c.sample(in.view(), out.view(), host_call);
    out.write_back(call.stream);
    for (auto &e : extra) e->write_back(call.stream);
}

void apply_dispatch(chain &c, const tensor_view &logits, const tensor_view &out, sample_call &call) {
    const core::dispatch d = core::select_backend({&logits, &out});
    if (d.kind == core::backend_kind::cpu) {
        c.apply(logits, out, call);
        return;
    }
    core::host_stage in(d, logits, true, call.stream);
    core::host_stage o(d, out, false, call.stream);
    c.apply(in.view(), o.view(), call);
    o.write_back(call.stream);
}

// ---------------------------------------------------------------------------
// Speculative verification.

namespace {

// A probability row as floats (in place when it is contiguous float32, else
// converted into buf) and its sum; rejects negative, NaN, infinite entries
// and a zero sum.
double load_prob_row(const tensor_view &t, int64_t b, int64_t k, int64_t vocab, std::vector<float> &buf,
                     const float *&row) {
    const char *p = t.data + (b * t.strides[0] + k * t.strides[1]) * int64_t(t.elem_size);
    if (t.type == dtype::f32 && (t.strides[2] == 1 || vocab == 1)) {
        row = reinterpret_cast<const float *>(p);
    } else {
        buf.resize(size_t(vocab));
        core::load_floats(buf.data(), p, vocab, t.strides[2], t.type);
        row = buf.data();
    }
    bool bad = false;
    const double sum = sum_nonnegative(row, size_t(vocab), &bad);
    for (int64_t v = 0; bad && v < vocab; ++v) {  // name the first bad entry
        const float x = row[size_t(v)];
        if (!std::isfinite(x) || x < 0)
            fail(x < 0 ? LLMKIT_ERROR_INVALID_ARGUMENT : LLMKIT_ERROR_NON_FINITE, t.name, ": entry [", b, ", ", k,
                 ", ", v, "] is ", x, " (probabilities must be finite and >= 0)");
    }
    if (!(sum > 0)) fail(LLMKIT_ERROR_INVALID_ARGUMENT, t.name, ": row [", b, ", ", k, "] sums to 0");
    return sum;
}

int64_t read_index(const tensor_view &t, int64_t b, int64_t k) {
    return t.integer_at(b * t.strides[0] + k * t.strides[1]);
}

// Draws from the weights w (unnormalised, total `sum`) walking in id order.
int32_t draw(const std::vector<double> &w, double sum, double u) {
    const double target = u * sum;
    double cum = 0;
    size_t last = 0;
    for (size_t i = 0; i < w.size(); ++i) {
        if (w[i] <= 0) continue;
        cum += w[i];
        last = i;
        if (target < cum) return int32_t(i);
    }
    return int32_t(last);
}

}  // namespace

void verify_speculative(const tensor_view &draft_tokens, const tensor_view &draft_probs,
                        const tensor_view &target_probs, const tensor_view &out_tokens,
                        const tensor_view &out_n_accepted, const speculative_call &call_in) {
    draft_tokens.require_dtype({dtype::i32, dtype::i64});
    draft_tokens.require_ndim(2, 2);
    draft_probs.require_dtype({dtype::f32, dtype::f16, dtype::bf16, dtype::f64});
    draft_probs.require_ndim(3, 3);
    target_probs.require_dtype({dtype::f32, dtype::f16, dtype::bf16, dtype::f64});
    target_probs.require_ndim(3, 3);
    out_tokens.require_dtype({dtype::i32, dtype::i64});
    out_tokens.require_ndim(2, 2);
    out_n_accepted.require_dtype({dtype::i32, dtype::i64});
    out_n_accepted.require_ndim(1, 1);
    const int64_t rows = draft_tokens.shape[0], k = draft_tokens.shape[1], vocab = target_probs.shape[2];
    if (vocab == 0) fail(LLMKIT_ERROR_SHAPE, "target_probs: the vocabulary dimension V is 0");
    if (draft_probs.shape[0] != rows || draft_probs.shape[1] != k || draft_probs.shape[2] != vocab)
        fail(LLMKIT_ERROR_SHAPE, "draft_probs: expected shape [", rows, ", ", k, ", ", vocab, "], got ",
             draft_probs.shape_string());
    if (target_probs.shape[0] != rows || target_probs.shape[1] != k + 1)
        fail(LLMKIT_ERROR_SHAPE, "target_probs: expected shape [", rows, ", ", k + 1, ", V] (one more position than ",
             "the ", k, " drafts), got ", target_probs.shape_string());
    if (out_tokens.shape[0] != rows || out_tokens.shape[1] != k + 1)
        fail(LLMKIT_ERROR_SHAPE, "out_tokens: expected shape [", rows, ", ", k + 1, "], got ", out_tokens.shape_string());
    if (out_n_accepted.shape[0] != rows)
        fail(LLMKIT_ERROR_SHAPE, "out_n_accepted: expected shape [", rows, "], got ", out_n_accepted.shape_string());
    speculative_call call = call_in;
    sample_call ids;
    ids.seq_ids = call.seq_ids;
    check_seq_ids(ids, rows);
    for (int64_t b = 0; b < rows; ++b)
        for (int64_t i = 0; i < k; ++i) {
            const int64_t x = read_index(draft_tokens, b, i);
            if (x < 0 || x >= vocab)
                fail(LLMKIT_ERROR_OUT_OF_RANGE, "draft_tokens: [", b, ", ", i, "] = ", x,
                     " is outside the vocabulary [0, ", vocab, ")");
        }

    core::parallel_for(rows, call.n_threads, [&](int64_t b) {
        // Rows of V floats and doubles, kept per thread: allocated afresh, the
        // buffers' page faults and zero fill were half of a call at V = 128k.
        thread_local std::vector<float> q_buf, p_buf;
        thread_local std::vector<double> w;
        w.resize(static_cast<size_t>(vocab));
        const uint64_t seq = uint64_t(ids.seq_ids[size_t(b)]);
        int64_t accepted = 0;
        int32_t final_token = -1;
        // Draw k + 1 picks the final token (the correction or the bonus); 0..k-1 decide the drafts.
        const double u_final = core::philox_uniform(call.seed, seq, call.step_number, uint32_t(k + 1));
        for (int64_t i = 0; i <= k; ++i) {
            const float *q = nullptr, *p = nullptr;
            const double sq = load_prob_row(target_probs, b, i, vocab, q_buf, q);
            if (i == k) {  // every draft accepted: the bonus token comes from the target
                for (int64_t v = 0; v < vocab; ++v) w[size_t(v)] = q[size_t(v)];
                final_token = draw(w, sq, u_final);
                break;
            }
            const double sp = load_prob_row(draft_probs, b, i, vocab, p_buf, p);
            const int64_t x = read_index(draft_tokens, b, i);
            const double qx = q[size_t(x)] / sq, px = p[size_t(x)] / sp;
            const double u = core::philox_uniform(call.seed, seq, call.step_number, uint32_t(i));
            if (u * px < qx) {  // accept with probability min(1, qx / px)
                ++accepted;
                continue;
            }
            // Rejected: draw from the residual max(0, q - p), normalised.
            double sum = residual_weights(q, sq, p, sp, size_t(vocab), w.data());
            if (!(sum > 0)) {  // q == p up to rounding: the residual is q itself
                for (int64_t v = 0; v < vocab; ++v) w[size_t(v)] = q[size_t(v)];
                sum = sq;
            }
            final_token = draw(w, sum, u_final);
            break;
        }
        for (int64_t i = 0; i <= k; ++i) {
            const int64_t v = i < accepted ? read_index(draft_tokens, b, i) : i == accepted ? final_token : -1;
            core::store_index(out_tokens, out_tokens.data + (b * out_tokens.strides[0] + i * out_tokens.strides[1]) *
                                                                int64_t(out_tokens.elem_size),
                              v);
        }
        core::store_index(out_n_accepted, reinterpret_cast<char *>(out_n_accepted.at<char>(b)), accepted);
    });
}

void verify_speculative_dispatch(const tensor_view &draft_tokens, const tensor_view &draft_probs,
                                 const tensor_view &target_probs, const tensor_view &out_tokens,
                                 const tensor_view &out_n_accepted, const speculative_call &call) {
    const core::dispatch d =
        core::select_backend({&draft_tokens, &draft_probs, &target_probs, &out_tokens, &out_n_accepted});
    if (d.kind == core::backend_kind::cpu) {
        verify_speculative(draft_tokens, draft_probs, target_probs, out_tokens, out_n_accepted, call);
        return;
    }
    core::host_stage a(d, draft_tokens, true, call.stream), p(d, draft_probs, true, call.stream),
        q(d, target_probs, true, call.stream), o(d, out_tokens, false, call.stream),
        n(d, out_n_accepted, false, call.stream);
    verify_speculative(a.view(), p.view(), q.view(), o.view(), n.view(), call);
    o.write_back(call.stream);
    n.write_back(call.stream);
}

}  // namespace llmkit::sampling
