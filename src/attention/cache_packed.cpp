// Attention over a KV cache for a batch whose sequences bring different
// numbers of queries (a serving step that mixes decodes with prefill chunks),
// the queries packed end to end as flash-attn's varlen calls take them.
//
// The tiles, split-KV parts and kernels of cache_attention() depend on a
// sequence's query count, so the batch is cut into groups of one count each:
// typically every decode in one group, each prefill chunk in its own. A group
// is one cache_attention() call over views of its rows when they are evenly
// spaced in the packed tensors (a chunk alone, decodes packed side by side),
// else over a compact copy of them (gathered, then scattered back). Either
// way a sequence's results are the bits cache_attention() gives it alone.
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "attention/attention.hpp"
#include "attention/kv_cache.hpp"
#include "core/finite.hpp"

namespace llmkit::attention {

using core::fail;
using core::tensor_view;

namespace {

// Whether packed rows starts[0], starts[1], ... are evenly spaced; *step gets the spacing (0 for one row).
bool evenly_spaced(const std::vector<int64_t> &starts, int64_t *step) {
    *step = starts.size() > 1 ? starts[1] - starts[0] : 0;
    for (size_t i = 2; i < starts.size(); ++i)
        if (starts[i] - starts[i - 1] != *step) return false;
    return true;
}

// The group's rows of a packed tensor t ([T, H, D] or [T, H]) as a batch
// [n, count, H(, D)]: sequence i's rows start at row `first + i * step`.
tensor_view group_view(const tensor_view &t, int64_t first, int64_t step, int64_t n, int64_t count) {
    tensor_view g = sequence_view(t, -1, first, count);
    g.shape[0] = n;
    g.strides[0] = step * t.strides[0];
    return g;
}

// A compact host tensor of t's dtype and a group view's shape, over `bytes`.
tensor_view compact_like(const tensor_view &g, std::vector<char> &bytes) {
    tensor_view c = g;
    bytes.assign(size_t(g.numel()) * g.elem_size, 0);
    c.data = bytes.data();
    c.device_type = LLMKIT_DEVICE_CPU;
    int64_t stride = 1;
    for (int d = c.ndim - 1; d >= 0; --d) {
        c.strides[d] = stride;
        stride *= c.shape[d];
    }
    return c;
}

// Copies the rows of packed t at `starts` (count rows each, [H(, D)] per row;
// the last axis has stride 1 where it has more than one element) to or from a
// compact [n, count, H(, D)] buffer.
void copy_rows(const tensor_view &t, const std::vector<int64_t> &starts, int64_t count, char *compact,
               bool to_compact) {
    const int64_t H = t.shape[1], inner = t.ndim == 3 ? t.shape[2] : 1;
    const size_t row_bytes = size_t(inner) * t.elem_size;
    if (row_bytes == 0) return;
    char *c = compact;
    for (const int64_t s : starts)
        for (int64_t i = 0; i < count; ++i)
            for (int64_t h = 0; h < H; ++h, c += row_bytes) {
                char *p = t.data + ((s + i) * t.strides[0] + h * t.strides[1]) * int64_t(t.elem_size);
                if (to_compact)
                    std::memcpy(c, p, row_bytes);
                else
                    std::memcpy(p, c, row_bytes);
            }
}

}  // namespace

void cache_attention_packed(const cache_layer_view &L, const cache_seq *seqs, int64_t n_seqs, const tensor_view &q,
                            const tensor_view &out, const cache_attention_params &p) {
    const tensor_view &cu = *p.cu_seqlens_q;
    for (const tensor_view *t : {&q, &out})
        if (t->ndim != 3)
            fail(LLMKIT_ERROR_SHAPE, t->name, ": expected 3 dimensions [total queries, heads, head_dim] (",
                 cu.name, " packs the batch's queries), got ", t->ndim, " (shape ", t->shape_string(), ")");
    const int64_t Dv = value_dim(L);
    for (int i = 0; i < 3; ++i)
        if (out.shape[i] != (i < 2 ? q.shape[i] : Dv))
            fail(LLMKIT_ERROR_SHAPE, "out: shape ", out.shape_string(), " must be [Tq, Hq, Dv] = [", q.shape[0], ", ",
                 q.shape[1], ", ", Dv, "] (q's first two axes, the cache's v_head_dim)");
    // The whole tensors as one sequence [1, Tq, Hq, D]: every check of a
    // group call that does not depend on the batch, once, before any copy.
    validate_queries(L, sequence_view(q, -1, 0, q.shape[0]), sequence_view(out, -1, 0, out.shape[0]));
    if (!cu.on_host()) fail(LLMKIT_ERROR_UNSUPPORTED, cu.name, ": the KV caches take host tensors only");
    if (p.lse) {
        const tensor_view &l = *p.lse;
        if (l.ndim != 2 || l.shape[0] != q.shape[0] || l.shape[1] != q.shape[1])
            fail(LLMKIT_ERROR_SHAPE, l.name, ": shape ", l.shape_string(), " must be [Tq, Hq] = [", q.shape[0], ", ",
                 q.shape[1], "]");
        check_lse(sequence_view(l, -1, 0, l.shape[0]), sequence_view(q, -1, 0, q.shape[0]));
        if (!l.on_host()) fail(LLMKIT_ERROR_UNSUPPORTED, l.name, ": the KV caches take host tensors only");
    }
    const std::vector<int64_t> o = read_offsets(cu, q.shape[0], "q");
    if (int64_t(o.size()) != n_seqs + 1)
        fail(LLMKIT_ERROR_SHAPE, cu.name, " holds ", o.size(), " offsets for a batch of ", n_seqs,
             " sequences: it must hold B + 1 = ", n_seqs + 1);
    for (int64_t b = 0; b < n_seqs; ++b) {
        const int64_t count = o[size_t(b + 1)] - o[size_t(b)];
        if (seqs[b].length < count)
            fail(LLMKIT_ERROR_SHAPE, "sequence ", b, " of the batch holds ", seqs[b].length, " tokens but ", cu.name,
                 " gives it ", count,
                 " queries: append the new tokens' K and V before attending (queries are a sequence's last tokens)");
        check_released_keys(seqs[b], b, count, p);  // here, before any group writes
    }

    // Every query is checked once, before the first group writes: an error leaves out as it was.
    core::require_finite(q, p.n_threads);
    cache_attention_params gp = p;
    gp.cu_seqlens_q = nullptr;
    gp.q_checked = true;

    // The groups, by query count; each group's sequences in batch order.
    std::map<int64_t, std::vector<int64_t>> groups;
    for (int64_t b = 0; b < n_seqs; ++b) groups[o[size_t(b + 1)] - o[size_t(b)]].push_back(b);
    for (const auto &[count, members] : groups) {
        if (count == 0) continue;
        const int64_t n = int64_t(members.size());
        std::vector<cache_seq> group_seqs;
        std::vector<int64_t> starts;
        for (const int64_t b : members) {
            group_seqs.push_back(seqs[b]);
            starts.push_back(o[size_t(b)]);
        }
        std::optional<tensor_view> gl;
        int64_t step;
        if (evenly_spaced(starts, &step)) {
            gp.lse = p.lse ? &gl.emplace(group_view(*p.lse, starts[0], step, n, count)) : nullptr;
            cache_attention(L, group_seqs.data(), n, group_view(q, starts[0], step, n, count),
                            group_view(out, starts[0], step, n, count), gp);
            continue;
        }
        // Rows scattered over the packing: a compact copy of the group's
        // queries attends, and its outputs go back to their rows.
        std::vector<char> qb, ob, lb;
        const tensor_view cq = compact_like(group_view(q, starts[0], 0, n, count), qb);
        const tensor_view co = compact_like(group_view(out, starts[0], 0, n, count), ob);
        copy_rows(q, starts, count, qb.data(), true);
        gp.lse = p.lse ? &gl.emplace(compact_like(group_view(*p.lse, starts[0], 0, n, count), lb)) : nullptr;
        cache_attention(L, group_seqs.data(), n, cq, co, gp);
        copy_rows(out, starts, count, ob.data(), false);
        if (p.lse) copy_rows(*p.lse, starts, count, lb.data(), false);
    }
}

}  // namespace llmkit::attention
