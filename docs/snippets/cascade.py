"""Attention over keys in two places, merged through log-sum-exps: a prompt prefix shared by a
batch is attended once for every sequence (cascade attention), each sequence's own tokens come
from a paged cache, and llmkit.attention_merge gives attention over both; and packed sequences
of different lengths (llmkit.attention_varlen). Run by the snippet_py_cascade test; its output
is checked against cascade.expected."""
import numpy as np

import llmkit

rng = np.random.default_rng(0)
B, Hq, Hkv, D, P = 4, 8, 2, 64, 1000  # 4 sequences share a 1000-token prefix
k_prefix, v_prefix = (rng.standard_normal((1, P, Hkv, D), dtype=np.float32) for _ in range(2))
cache = llmkit.PagedKVCache(n_layers=1, n_kv_heads=Hkv, head_dim=D, n_blocks=64, max_sequences=B)
seqs, own = [], []
for n in (3, 10, 40, 100):  # each sequence's own tokens, after the prefix
    k, v = (rng.standard_normal((n, Hkv, D), dtype=np.float32) for _ in range(2))
    seqs.append(cache.new_sequence())
    cache.append(0, seqs[-1], k, v)
    own.append((k, v))
q = rng.standard_normal((B, 1, Hq, D), dtype=np.float32)  # one decode query per sequence

# 1. The prefix, once for the whole batch: the 4 queries as one sequence of 4, all keys visible.
pre, pre_lse = llmkit.attention(q.reshape(1, B, Hq, D), k_prefix, v_prefix, causal=False, return_lse=True)
# 2. Each sequence's own tokens, from the cache (causal: the query is each sequence's last token).
mine, mine_lse = cache.attention(0, q, seqs, return_lse=True)
# 3. The merge: out = exp(lse_a - lse) out_a + exp(lse_b - lse) out_b, lse = logaddexp(lse_a, lse_b).
out, lse = llmkit.attention_merge(pre.reshape(B, 1, Hq, D), pre_lse.reshape(B, 1, Hq), mine, mine_lse)

# The same as attention over each sequence's whole keys, prefix and own tokens together.
worst = worst_lse = 0.0
for b, (k, v) in enumerate(own):
    kk = np.concatenate([k_prefix[0], k])[None]
    vv = np.concatenate([v_prefix[0], v])[None]
    whole, whole_lse = llmkit.attention(q[b:b + 1], kk, vv, return_lse=True)
    worst = max(worst, float(np.abs(out[b] - whole[0]).max()))
    worst_lse = max(worst_lse, float(np.abs(lse[b] - whole_lse[0]).max()))
print("merged == attention over prefix + own tokens (|diff| < 1e-5):", worst < 1e-5 and worst_lse < 1e-5)

# The log-sum-exp is the log of the softmax denominator: for one key, the key's score itself.
one, one_lse = llmkit.attention(q[:1], k_prefix[:, :1], v_prefix[:, :1], return_lse=True)
score = float(q[0, 0, 0] @ k_prefix[0, 0, 0]) / np.sqrt(D)
print("lse of a single key == its score:", abs(float(one_lse[0, 0, 0]) - score) < 1e-5)

# What the prefix costs to read: once per step with the cascade, once per sequence without it.
per_read = 2 * P * Hkv * D * 4  # K and V, float32
print(f"prefix bytes read per decode step: {per_read // 1024} KiB (cascade) against "
      f"{B * per_read // 1024} KiB (each sequence its own)")

# Packed sequences: prompts of different lengths end to end, described by offsets (no padding);
# each sequence's result is llmkit.attention on its own rows.
lens = [5, 17, 2]
cu = np.cumsum([0] + lens)
qp, kp, vp = (rng.standard_normal((sum(lens), h, D), dtype=np.float32) for h in (Hq, Hkv, Hkv))
packed = llmkit.attention_varlen(qp, kp, vp, cu, cu)
rows = [slice(cu[b], cu[b + 1]) for b in range(len(lens))]
alone = [llmkit.attention(qp[None, r], kp[None, r], vp[None, r])[0] for r in rows]
print("packed == each sequence alone:", all(np.array_equal(packed[r], a) for r, a in zip(rows, alone)))
