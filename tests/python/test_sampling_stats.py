"""Statistical tests: sampled frequencies against the distributions they should follow.

Pearson chi-square with fixed seeds (so each run is deterministic), rejected
above the Wilson-Hilferty critical value for a one-sided alpha of 1e-4
(reference.chi2_critical). Each test also checks the test's power: the same
counts must reject a plausible wrong distribution.
"""

import numpy as np
import pytest

import llmkit
import reference as ref

LOGITS = np.array([2.0, 1.5, 1.2, 0.9, 0.3, 0.0, -0.4, -1.0, -2.5, -np.inf], np.float32)
N = 40000


def counts(tokens, vocab):
    return np.bincount(np.asarray(tokens).ravel(), minlength=vocab)


def assert_fits(observed, probs, wrong_probs=None):
    stat, df = ref.chi2_stat(observed, probs)
    crit = ref.chi2_critical(df)
    assert stat < crit, f"chi2 = {stat:.1f} >= {crit:.1f} (df {df}): sampled frequencies do not match"
    if wrong_probs is not None:
        wrong = np.asarray(wrong_probs, np.float64)
        obs = np.asarray(observed, np.float64)
        keep = wrong > 0
        # The power check: a distribution that differs must be rejected by the same counts.
        exp = obs.sum() * wrong[keep] / wrong[keep].sum()
        bad = float(np.sum((obs[keep] - exp) ** 2 / exp))
        assert bad > ref.chi2_critical(int(keep.sum()) - 1), "the test cannot tell the wrong distribution apart"


def target_probs(t, k, p):
    row = ref.top_p(ref.top_k(ref.temperature(LOGITS, t), k), p)
    return ref.softmax(row)


@pytest.mark.parametrize("t,k,p", [(1.0, 0, 1.0), (0.7, 0, 1.0), (1.3, 6, 1.0), (0.8, 0, 0.9), (1.0, 5, 0.8)])
def test_one_call_sample_matches_softmax(t, k, p):
    # N rows that are all the same logits (a zero-stride view): row i is sequence i.
    batch = np.broadcast_to(LOGITS, (N, LOGITS.size))
    tokens = llmkit.sample(batch, temperature=t, top_k=k, top_p=p, seed=1234)
    assert tokens.shape == (N,) and tokens.dtype == np.int32
    assert_fits(counts(tokens, LOGITS.size), target_probs(t, k if k else 100, p),
                wrong_probs=target_probs(t * 1.25, k if k else 100, 1.0))


def test_chain_over_steps_matches_softmax():
    # One chain, 200 sequences, 100 steps each: the step counter makes draws independent.
    chain = llmkit.SamplerChain(seed=77).top_k(7).temperature(0.9).dist()
    batch = np.broadcast_to(LOGITS, (200, LOGITS.size))
    tokens = np.concatenate([chain.sample(batch) for _ in range(100)])
    probs = ref.softmax(ref.temperature(ref.top_k(LOGITS, 7), 0.9))
    assert_fits(counts(tokens, LOGITS.size), probs, wrong_probs=ref.softmax(ref.top_k(LOGITS, 7)))


def test_min_p_sampling_matches_softmax():
    batch = np.broadcast_to(LOGITS, (N, LOGITS.size))
    tokens = llmkit.sample(batch, min_p=0.2, seed=99)
    assert_fits(counts(tokens, LOGITS.size), ref.softmax(ref.min_p(LOGITS, 0.2)),
                wrong_probs=ref.softmax(ref.min_p(LOGITS, 0.1)))


# ---------------------------------------------------------------------------
# Speculative decoding: the emitted tokens must follow the target distribution.
def spec_case():
    q = np.array([[0.05, 0.30, 0.25, 0.10, 0.20, 0.10],
                  [0.40, 0.05, 0.05, 0.20, 0.10, 0.20],
                  [0.10, 0.10, 0.30, 0.30, 0.10, 0.10]], np.float32)  # target, K+1 = 3 positions
    p = np.array([[0.30, 0.10, 0.05, 0.35, 0.10, 0.10],
                  [0.10, 0.30, 0.30, 0.10, 0.10, 0.10]], np.float32)  # draft, K = 2
    return p, q


def test_verify_speculative_preserves_the_target_distribution():
    p, q = spec_case()
    k, v = p.shape
    rows = N
    draws = np.random.default_rng(5)
    drafts = np.stack([draws.choice(v, size=rows, p=p[i] / p[i].sum()) for i in range(k)], axis=1).astype(np.int32)
    tokens, n_acc = llmkit.verify_speculative(drafts, np.broadcast_to(p, (rows, k, v)),
                                              np.broadcast_to(q, (rows, k + 1, v)), seed=2024, step=3)
    assert tokens.shape == (rows, k + 1) and n_acc.shape == (rows,)
    assert tokens.dtype == np.int32 and n_acc.dtype == np.int32
    assert np.all((0 <= n_acc) & (n_acc <= k))
    # First emitted token ~ q_0; the draft distribution itself must be rejected.
    assert_fits(counts(tokens[:, 0], v), q[0] / q[0].sum(), wrong_probs=p[0])
    # Second token, for rows that accepted the first draft, ~ q_1.
    second = tokens[n_acc >= 1, 1]
    assert_fits(counts(second, v), q[1] / q[1].sum(), wrong_probs=p[1])
    # Padding: exactly n_accepted + 1 tokens per row, then -1.
    lengths = (tokens >= 0).sum(axis=1)
    np.testing.assert_array_equal(lengths, n_acc + 1)
    for b in range(200):
        np.testing.assert_array_equal(tokens[b, :n_acc[b]], drafts[b, :n_acc[b]])
        assert np.all(tokens[b, n_acc[b] + 1:] == -1)


def test_verify_speculative_accepts_everything_when_draft_equals_target():
    _, q = spec_case()
    k, v = 2, q.shape[1]
    drafts = np.array([[1, 2], [4, 0], [5, 5]], np.int32)
    tokens, n_acc = llmkit.verify_speculative(drafts, np.broadcast_to(q[:k], (3, k, v)),
                                              np.broadcast_to(q, (3, k + 1, v)),
                                              seed=1)
    np.testing.assert_array_equal(n_acc, [2, 2, 2])
    np.testing.assert_array_equal(tokens[:, :2], drafts)


def test_verify_speculative_rejects_a_draft_the_target_never_picks():
    p, q = spec_case()
    q = q.copy()
    q[0, 3] = 0.0
    tokens, n_acc = llmkit.verify_speculative(np.array([3, 1], np.int32), p, q, seed=8)
    assert n_acc == 0 and tokens[0] != 3 and list(tokens[1:]) == [-1, -1]
