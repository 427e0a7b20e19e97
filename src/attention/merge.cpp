// Merging attention over disjoint sets of keys through their log-sum-exps.
//
// Attention of a query over keys J = J1 + J2 (disjoint) is the weighted mean
// of its attention over J1 and over J2, each weighted by its share of the
// softmax denominator: with lse_i = ln(sum over J_i of exp(s_j)),
//   out = (exp(lse_1) out_1 + exp(lse_2) out_2) / (exp(lse_1) + exp(lse_2)),
//   lse = ln(exp(lse_1) + exp(lse_2)).
// Both are taken relative to max(lse_1, lse_2) so no exponent overflows. This
// is the merge of split-KV decode's parts (online_softmax.hpp), offered to
// callers: cascade attention over a prefix shared by many sequences, a
// sequence whose keys live in two caches, context split across machines.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention/attention.hpp"
#include "attention/kernels.hpp"
#include "attention/online_softmax.hpp"
#include "core/backend.hpp"
#include "core/finite.hpp"
#include "core/threads.hpp"

namespace llmkit::attention {

using core::dtype;
using core::fail;
using core::tensor_view;

namespace {

void validate_merge(const tensor_view &out, const tensor_view &lse, const tensor_view &other_out,
                    const tensor_view &other_lse) {
    for (const tensor_view *t : {&out, &other_out}) {
        if (t->ndim != 4)
            fail(LLMKIT_ERROR_SHAPE, t->name, ": expected 4 dimensions [batch, seq, heads, head_dim], got ", t->ndim,
                 " (shape ", t->shape_string(), ")");
        if (t->type != dtype::f32 && t->type != dtype::bf16 && t->type != dtype::f16)
            fail(LLMKIT_ERROR_DTYPE, t->name, ": dtype ", core::dtype_name(t->type),
                 " is not float32, bfloat16 or float16");
        if (t->shape[3] > 1 && t->strides[3] != 1)
            fail(LLMKIT_ERROR_UNSUPPORTED, t->name, ": the head_dim axis (3) must have stride 1, got stride ",
                 t->strides[3]);
    }
    for (int i = 0; i < 4; ++i)
        if (other_out.shape[i] != out.shape[i])
            fail(LLMKIT_ERROR_SHAPE, other_out.name, ": shape ", other_out.shape_string(), " must equal ", out.name,
                 "'s ", out.shape_string());
    for (const tensor_view *t : {&lse, &other_lse}) {
        if (t->type != dtype::f32)
            fail(LLMKIT_ERROR_DTYPE, t->name, ": dtype ", core::dtype_name(t->type), " is not float32");
        if (t->ndim != 3 || t->shape[0] != out.shape[0] || t->shape[1] != out.shape[1] || t->shape[2] != out.shape[2])
            fail(LLMKIT_ERROR_SHAPE, t->name, ": shape ", t->shape_string(), " must be [B, S, H] = [", out.shape[0],
                 ", ", out.shape[1], ", ", out.shape[2], "]");
    }
    out.require_own_elements();
    lse.require_own_elements();
}

void merge_cpu(const tensor_view &out, const tensor_view &lse, const tensor_view &other_out,
               const tensor_view &other_lse) {
    const int64_t B = out.shape[0], S = out.shape[1], H = out.shape[2], D = out.shape[3];
    if (B == 0 || S == 0 || H == 0) return;
    // Every check before the first write: an error leaves out and lse as they were.
    // A log-sum-exp of -inf is a row that saw no key; NaN and +inf are errors.
    for (const tensor_view *t : {&lse, &other_lse}) core::require_finite(*t, 0, true);
    for (const tensor_view *t : {&out, &other_out}) core::require_finite(*t, 0);
    const kernels &kn = best_kernels();
    const float ninf = -std::numeric_limits<float>::infinity();
    core::parallel_for(B * S, core::default_num_threads(), [&](int64_t x) {
        const int64_t b = x / S, s = x % S;
        std::vector<float> a(static_cast<size_t>(D)), c(static_cast<size_t>(D));
        for (int64_t h = 0; h < H; ++h) {
            const float la = *lse.at<float>(b, s, h), lc = *other_lse.at<float>(b, s, h);
            const float top = std::max(la, lc);
            if (top == ninf) {  // neither part saw a key: zeros, as attention writes them
                std::fill(a.begin(), a.end(), 0.0f);
            } else {
                const float wa = std::exp(la - top), wc = std::exp(lc - top), sum = wa + wc;
                *lse.at<float>(b, s, h) = top + std::log(sum);
                if (D == 0) continue;  // (rows of no elements: the lse alone)
                load_row(out, b, s, h, kn, a.data());
                load_row(other_out, b, s, h, kn, c.data());
                const float fa = wa / sum, fc = wc / sum;
                for (int64_t d = 0; d < D; ++d) a[size_t(d)] = fa * a[size_t(d)] + fc * c[size_t(d)];
            }
            if (D > 0) store_row(out, b, s, h, kn, a.data());
        }
    });
}

}  // namespace

void merge(const tensor_view &out, const tensor_view &lse, const tensor_view &other_out,
           const tensor_view &other_lse) {
    validate_merge(out, lse, other_out, other_lse);
    const core::dispatch d = core::select_backend({&out, &lse, &other_out, &other_lse});
    if (d.kind == core::backend_kind::cpu) {
        merge_cpu(out, lse, other_out, other_lse);
        return;
    }
    // No device kernel yet: stage through host memory.
    core::host_stage so(d, out, true, nullptr), sl(d, lse, true, nullptr), soo(d, other_out, true, nullptr),
        sol(d, other_lse, true, nullptr);
    merge_cpu(so.view(), sl.view(), soo.view(), sol.view());
    so.write_back(nullptr);
    sl.write_back(nullptr);
}

}  // namespace llmkit::attention
