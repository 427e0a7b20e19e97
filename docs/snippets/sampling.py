"""Sampling from Python: the same calls as the C snippet give the same tokens,
a batch is many independent draws, and speculative verification keeps the
target distribution. Run by the snippet_py test; its output is checked against
sampling.expected."""
import numpy as np

import llmkit


def fmt(xs):
    return " ".join(f"{x:.4f}" for x in xs)


logits = np.array([[1.0, 3.0, 0.5, 2.5, -1.0, 0.0, 2.0, -np.inf],
                   [0.2, 0.1, 4.0, 0.3, 3.9, -2.0, 1.0, 0.0]], dtype=np.float32)

# 1. One call. Same seed, same tokens as the C snippet: every face runs the same code.
print("greedy:", llmkit.sample(logits, temperature=0).tolist())
print("seed 7:", llmkit.sample(logits, temperature=0.8, top_k=3, seed=7).tolist())

# 2. The C snippet's chain, with the same prompts: the same six steps.
chain = llmkit.SamplerChain(seed=42).penalties(64, 1.0, 0.0, 1.5).top_k(4).temperature(0.7).dist()
chain.accept([1, 1, 3], seq_id=0)
chain.accept([2], seq_id=1)
print("chain: ", [chain.sample(logits).tolist() for _ in range(6)])

# 3. Each row of a batch is its own sequence, so one call with 100000 copies of
#    a row makes 100000 independent draws. Their frequencies match the
#    distribution the chain leaves (apply), which matches numpy's top-p.
row, n = logits[0], 100_000
draws = llmkit.sample(np.tile(row, (n, 1)), top_p=0.9, seed=5)
processed = llmkit.SamplerChain().top_p(0.9).apply(row)
p = np.exp(processed - processed.max())
p /= p.sum()
q = np.exp(row - row.max())
q /= q.sum()
order = np.argsort(-q, kind="stable")
nucleus = order[: np.searchsorted(np.cumsum(q[order]), 0.9) + 1]
ref = np.zeros_like(q)
ref[nucleus] = q[nucleus] / q[nucleus].sum()
print("top-p 0.9 keeps:", sorted(np.flatnonzero(np.isfinite(processed)).tolist()))
print("  llmkit apply: ", fmt(p))
print("  numpy:        ", fmt(ref))
print("  frequencies:  ", fmt(np.bincount(draws, minlength=row.size) / n))

# 4. Speculative verification, batched: draft p proposes, target q verifies.
p = np.array([0.5, 0.3, 0.1, 0.1], dtype=np.float32)
q = np.array([0.3, 0.3, 0.2, 0.2], dtype=np.float32)
b = 100_000
drafts = llmkit.sample(np.log(np.tile(p, (b, 1))), seed=1)[:, None]  # x ~ p, shape (b, K=1)
tokens, n_accepted = llmkit.verify_speculative(drafts, np.tile(p, (b, 1, 1)), np.tile(q, (b, 2, 1)), seed=2)
print("row 0: draft", drafts[0].tolist(), "-> tokens", tokens[0].tolist(), "accepted", int(n_accepted[0]))
print(f"acceptance {n_accepted.mean():.4f}, theory sum min(p, q) = {np.minimum(p, q).sum():.4f}")
print("first token emitted:", fmt(np.bincount(tokens[:, 0], minlength=4) / b))
print("target q:           ", fmt(q))
