"""Reproducibility: seeds, thread counts, batch composition, and the exact Philox draw."""

import threading

import numpy as np
import pytest

import llmkit
import reference as ref


def logits(rows=64, vocab=500, seed=0):
    return (np.random.default_rng(seed).standard_normal((rows, vocab)) * 2).astype(np.float32)


def make_chain(seed=11):
    return llmkit.SamplerChain(seed).penalties(32, 1.1, 0.1, 0.1).top_k(50).top_p(0.95).temperature(0.9).dist()


def test_same_seed_same_tokens_whatever_the_thread_count():
    x = logits()
    runs = []
    for threads in (1, 2, 5):
        chain = make_chain()
        runs.append([chain.sample(x, num_threads=threads) for _ in range(4)])
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)
    one = [llmkit.sample(x, temperature=0.8, top_p=0.9, seed=5, num_threads=n) for n in (1, 2)]
    np.testing.assert_array_equal(one[0], one[1])


def test_default_thread_count_gives_the_same_tokens():
    x = logits()
    old = llmkit.get_num_threads()
    try:
        llmkit.set_num_threads(1)
        a = llmkit.sample(x, seed=3)
        llmkit.set_num_threads(2)
        b = llmkit.sample(x, seed=3)
    finally:
        llmkit.set_num_threads(old)
    np.testing.assert_array_equal(a, b)


def test_different_seeds_differ():
    x = logits()
    a = llmkit.sample(x, seed=1)
    b = llmkit.sample(x, seed=2)
    assert np.mean(a != b) > 0.5


def test_seed_none_draws_fresh_seeds():
    x = logits(rows=256)
    assert not np.array_equal(llmkit.sample(x), llmkit.sample(x))


def test_batch_composition_independence():
    x = logits(rows=3)
    batched, alone = make_chain(), make_chain()
    for step in range(4):
        together = batched.sample(x, seq_ids=[3, 5, 9])
        single = alone.sample(x[1:2], seq_ids=[5])
        assert together[1] == single[0], f"step {step}"
    # 1-D logits with an int seq_id is the same sequence again
    assert batched.sample(x[1], seq_ids=5) == alone.sample(x[1], seq_ids=5)


def test_apply_does_not_advance_state():
    x = logits(rows=4)
    a, b = make_chain(), make_chain()
    a.apply(x)
    a.apply(x)
    np.testing.assert_array_equal(a.sample(x), b.sample(x))


def test_reset_replays_a_sequence():
    x = logits(rows=4)
    chain = make_chain()
    first = [chain.sample(x) for _ in range(3)]
    chain.reset()
    again = [chain.sample(x) for _ in range(3)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_one_call_sample_is_the_documented_philox_draw():
    # Row i is sequence i at step 0; the draw is Philox(seed; draw 0, step 0, seq i),
    # walked over the remaining tokens in id order.
    x = logits(rows=300, vocab=40, seed=4)
    for seed, t, k, p in [(0, 1.0, 0, 1.0), (2**63 + 12345, 0.7, 10, 0.9)]:
        tokens = llmkit.sample(x, temperature=t, top_k=k, top_p=p, seed=seed)
        for i in range(len(x)):
            row = x[i]
            if t != 1.0:
                row = ref.temperature(row, t)
            if k:
                row = ref.top_k(row, k)
            row = ref.top_p(row, p)
            assert tokens[i] == ref.pick_dist(row, ref.uniform(seed, i, 0, 0)), f"row {i}, seed {seed}"


def test_chain_draws_follow_sequence_and_step():
    x = logits(rows=5, vocab=30, seed=6)
    seqs = [7, 2**40 + 3, 0, 123456789, 99]
    seed = 0xDEADBEEF12345678
    chain = llmkit.SamplerChain(seed).top_k(12).dist()
    for step in range(3):
        tokens = chain.sample(x, seq_ids=seqs)
        for i, s in enumerate(seqs):
            want = ref.pick_dist(ref.top_k(x[i], 12), ref.uniform(seed, s, step, 0))
            assert tokens[i] == want, f"step {step}, sequence {s}"


def test_verify_speculative_is_the_documented_philox_draw():
    rng = np.random.default_rng(8)
    rows, k, v = 200, 3, 7
    p = rng.random((rows, k, v)).astype(np.float32)
    q = rng.random((rows, k + 1, v)).astype(np.float32)
    drafts = rng.integers(0, v, (rows, k)).astype(np.int32)
    seqs = np.arange(rows, dtype=np.int64) * 3 + 1
    seed, step = 42, 17
    tokens, n_acc = llmkit.verify_speculative(drafts, p, q, seed=seed, step=step, seq_ids=seqs)
    for b in range(rows):
        s = int(seqs[b])
        u_final = ref.uniform(seed, s, step, k + 1)
        out = []
        for i in range(k + 1):
            qi = q[b, i].astype(np.float64) / q[b, i].astype(np.float64).sum()
            if i == k:
                out.append(int(np.flatnonzero(u_final * 1.0 < np.cumsum(qi))[0]))
                break
            pi = p[b, i].astype(np.float64) / p[b, i].astype(np.float64).sum()
            x = drafts[b, i]
            if ref.uniform(seed, s, step, i) * pi[x] < qi[x]:
                out.append(int(x))
                continue
            w = np.maximum(qi - pi, 0)
            out.append(int(np.flatnonzero(u_final * w.sum() < np.cumsum(w))[0]))
            break
        assert n_acc[b] == len(out) - 1, f"row {b}"
        np.testing.assert_array_equal(tokens[b, :len(out)], out, err_msg=f"row {b}")


def test_threads_calling_one_chain_are_serialised():
    # Python threads sharing one chain must not corrupt its state: the chain
    # holds a lock while the GIL is released. Every sequence gets the tokens it
    # would get alone, in some interleaving of steps.
    x = logits(rows=8, vocab=2000)
    chain = llmkit.SamplerChain(3).top_k(100).dist()
    results = {}

    def worker(seq):
        results[seq] = [int(chain.sample(x[seq], seq_ids=seq)) for _ in range(50)]

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seq in range(8):
        solo = llmkit.SamplerChain(3).top_k(100).dist()
        assert results[seq] == [int(solo.sample(x[seq], seq_ids=seq)) for _ in range(50)]
