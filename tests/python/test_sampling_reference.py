"""Each sampler step against an independent numpy implementation (tests/python/reference.py).

chain.apply() returns the logits the picker would see (-inf for removed
tokens), so masks and values can be compared row by row.
"""

import numpy as np
import pytest

import llmkit
import reference as ref


def make_logits(rng, rows=16, vocab=200, scale=2.0, ninf_fraction=0.05):
    x = (rng.standard_normal((rows, vocab)) * scale).astype(np.float32)
    mask = rng.random((rows, vocab)) < ninf_fraction
    mask[:, 0] = False  # every row keeps a finite logit
    x[mask] = -np.inf
    return x


def check_rows(got, logits, step):
    assert got.dtype == np.float32 and got.shape == logits.shape
    for b in range(logits.shape[0]):
        want = step(logits[b])
        np.testing.assert_array_equal(np.isfinite(got[b]), np.isfinite(want), err_msg=f"mask of row {b}")
        fin = np.isfinite(want)
        np.testing.assert_allclose(got[b][fin], want[fin], rtol=1e-6, err_msg=f"values of row {b}")


# ---------------------------------------------------------------------------
def test_greedy_is_argmax_lowest_id_on_ties(rng):
    x = make_logits(rng, rows=32)
    x[3, [5, 17, 40]] = 100.0  # a three-way tie: id 5 must win
    x[4, :] = 1.0  # everything tied: id 0
    x[4, 0] = -np.inf  # ... but 0 is removed: id 1
    want = np.array([ref.greedy(r) for r in x])
    assert want[3] == 5 and want[4] == 1
    np.testing.assert_array_equal(llmkit.SamplerChain().greedy().sample(x), want)
    np.testing.assert_array_equal(llmkit.sample(x, temperature=0.0), want)
    np.testing.assert_array_equal(llmkit.SamplerChain().temperature(0).dist().sample(x), want)


def test_empty_chain_apply_is_identity(rng):
    x = make_logits(rng)
    np.testing.assert_array_equal(llmkit.SamplerChain().apply(x), x)


@pytest.mark.parametrize("t", [0.25, 0.7, 1.0, 1.5, 3.0])
def test_temperature_exact(rng, t):
    x = make_logits(rng)
    got = llmkit.SamplerChain().temperature(t).apply(x)
    for b in range(len(x)):
        np.testing.assert_array_equal(got[b], ref.temperature(x[b], t))  # one float32 multiply: bit-exact


def test_temperature_zero_keeps_argmax(rng):
    x = make_logits(rng)
    check_rows(llmkit.SamplerChain().temperature(0).apply(x), x, lambda r: ref.temperature(r, 0))


@pytest.mark.parametrize("k", [1, 2, 7, 50, 199, 1000])
def test_top_k(rng, k):
    x = make_logits(rng)
    x[0, 10:20] = 50.0  # a ten-way tie for the lead: k < 10 cuts through it, lower ids win
    check_rows(llmkit.SamplerChain().top_k(k).apply(x), x, lambda r: ref.top_k(r, k))


def test_top_k_ties_prefer_lower_ids():
    x = np.array([[1.0, 2.0, 2.0, 2.0, 0.5]], np.float32)
    got = llmkit.SamplerChain().top_k(2).apply(x)
    np.testing.assert_array_equal(np.isfinite(got[0]), [False, True, True, False, False])


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.95, 0.999, 1.0])
@pytest.mark.parametrize("min_keep", [1, 5])
def test_top_p(rng, p, min_keep):
    x = make_logits(rng)
    check_rows(llmkit.SamplerChain().top_p(p, min_keep).apply(x), x, lambda r: ref.top_p(r, p, min_keep))


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    # probabilities 0.5, 0.3, 0.2: p = 0.8 needs two tokens, p = 0.81 three.
    x = np.log(np.array([[0.2, 0.5, 0.3]], np.float64)).astype(np.float32)
    two = llmkit.SamplerChain().top_p(0.79).apply(x)
    three = llmkit.SamplerChain().top_p(0.81).apply(x)
    np.testing.assert_array_equal(np.isfinite(two[0]), [False, True, True])
    np.testing.assert_array_equal(np.isfinite(three[0]), [True, True, True])


@pytest.mark.parametrize("p", [0.0, 0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("min_keep", [1, 20])
def test_min_p(rng, p, min_keep):
    x = make_logits(rng)
    check_rows(llmkit.SamplerChain().min_p(p, min_keep).apply(x), x, lambda r: ref.min_p(r, p, min_keep))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("min_keep", [1, 10])
def test_typical(rng, p, min_keep):
    x = make_logits(rng)
    check_rows(llmkit.SamplerChain().typical(p, min_keep).apply(x), x, lambda r: ref.typical(r, p, min_keep))


@pytest.mark.parametrize("n", [0.0, 0.5, 1.0, 2.0, 4.0])
def test_top_n_sigma(rng, n):
    x = make_logits(rng)
    check_rows(llmkit.SamplerChain().top_n_sigma(n).apply(x), x, lambda r: ref.top_n_sigma(r, n))


@pytest.mark.parametrize("threshold", [0.05, 0.1, 0.3, 0.6])
def test_xtc_when_it_fires(rng, threshold):
    # probability 1: the coin (in [0, 1)) always fires.
    x = make_logits(rng, vocab=12, scale=1.5)
    check_rows(llmkit.SamplerChain().xtc(1.0, threshold).apply(x), x, lambda r: ref.xtc_always(r, threshold))


def test_xtc_probability_zero_never_fires(rng):
    x = make_logits(rng, vocab=12)
    np.testing.assert_array_equal(llmkit.SamplerChain().xtc(0.0, 0.05).apply(x), x)


def test_composition_in_order(rng):
    x = make_logits(rng)
    chain = llmkit.SamplerChain().top_k(40).top_p(0.9).temperature(0.7).min_p(0.05).dist()
    assert len(chain) == 5
    assert str(chain) == "top_k(40) -> top_p(0.9) -> temperature(0.7) -> min_p(0.05) -> dist"

    def want(r):
        return ref.min_p(ref.temperature(ref.top_p(ref.top_k(r, 40), 0.9), 0.7), 0.05)

    check_rows(chain.apply(x), x, want)


def test_penalties(rng):
    x = make_logits(rng, rows=3, vocab=50, ninf_fraction=0.0)
    x[:, 3] = -1.5  # a negative logit among the penalised
    history = [3, 7, 7, 9, 3, 3, 11, 40, 7]
    chain = llmkit.SamplerChain().penalties(last_n=6, repeat=1.3, frequency=0.25, presence=0.5)
    for seq in range(3):
        chain.accept(history, seq_id=seq)
    check_rows(chain.apply(x), x, lambda r: ref.penalties(r, history, 6, 1.3, 0.25, 0.5))
    whole = llmkit.SamplerChain().penalties(last_n=-1, repeat=1.1, frequency=0.1, presence=0.0)
    whole.accept(history, seq_id=0)
    check_rows(whole.apply(x[:1]), x[:1], lambda r: ref.penalties(r, history, -1, 1.1, 0.1, 0.0))


def test_penalties_use_each_sequences_own_history(rng):
    x = np.zeros((2, 10), np.float32)
    chain = llmkit.SamplerChain().penalties(last_n=-1, presence=1.0)
    chain.accept([2], seq_id=0)
    chain.accept([5], seq_id=1)
    got = chain.apply(x)
    assert got[0, 2] == -1 and got[0, 5] == 0
    assert got[1, 5] == -1 and got[1, 2] == 0
    chain.reset(0)
    got = chain.apply(x)
    assert got[0, 2] == 0 and got[1, 5] == -1


def test_sampled_tokens_join_the_history():
    x = np.zeros((1, 4), np.float32)
    x[0, 2] = 5.0
    chain = llmkit.SamplerChain().penalties(last_n=-1, presence=10.0).greedy()
    assert chain.sample(x) == [2]
    assert chain.sample(x) != [2]  # 2 was penalised by its presence in the history


def test_dry_penalises_the_token_that_extends_a_repeat():
    # history 1 2 3 1 2: emitting 3 would repeat "1 2 3" (a match of length 2 so far).
    x = np.zeros((1, 8), np.float32)
    chain = llmkit.SamplerChain().dry(multiplier=0.8, base=1.75, allowed_length=2)
    chain.accept([1, 2, 3, 1, 2])
    got = chain.apply(x)[0]
    want = np.zeros(8, np.float32)
    want[3] = -0.8  # multiplier * base ** (2 - 2)
    np.testing.assert_allclose(got, want, atol=1e-6)
    # with 2 as a sequence breaker the repeat cannot extend across it: no penalty
    breaker = llmkit.SamplerChain().dry(multiplier=0.8, breakers=[2])
    breaker.accept([1, 2, 3, 1, 2])
    np.testing.assert_array_equal(breaker.apply(x)[0], np.zeros(8, np.float32))
    # a longer repeat: 1 2 3 1 2 3 1 2 -> match length 5 before 3
    longer = llmkit.SamplerChain().dry(multiplier=1.0, base=2.0, allowed_length=2)
    longer.accept([1, 2, 3, 1, 2, 3, 1, 2])
    assert longer.apply(x)[0, 3] == pytest.approx(-(2.0 ** (5 - 2)))


def test_logit_bias_and_ban(rng):
    x = make_logits(rng, rows=2, vocab=30, ninf_fraction=0.0)
    got = llmkit.SamplerChain().logit_bias({4: 1.5, 9: -2.0, 11: -np.inf}).apply(x)
    want = x.copy()
    want[:, 4] += np.float32(1.5)
    want[:, 9] += np.float32(-2.0)
    want[:, 11] = -np.inf
    np.testing.assert_array_equal(got, want)
    pair = llmkit.SamplerChain().logit_bias(([4, 9], [1.5, -2.0])).apply(x)
    np.testing.assert_array_equal(pair[:, [4, 9]], want[:, [4, 9]])
    banned = llmkit.SamplerChain().ban([0, 3, 29]).greedy()
    x2 = x.copy()
    x2[:, 3] = 1000.0
    tokens = banned.sample(x2)
    assert not set(tokens.tolist()) & {0, 3, 29}
    assert np.all(np.isneginf(banned.apply(x2)[:, [0, 3, 29]]))


def test_mirostat_runs_and_keeps_state():
    x = (np.random.default_rng(1).standard_normal((4, 300)) * 3).astype(np.float32)
    for make in (lambda: llmkit.SamplerChain(9).mirostat(5.0, 0.1, 100),
                 lambda: llmkit.SamplerChain(9).mirostat_v2(5.0, 0.1)):
        a, b = make(), make()
        run_a = [a.sample(x) for _ in range(5)]
        run_b = [b.sample(x) for _ in range(5)]
        for ta, tb in zip(run_a, run_b):
            np.testing.assert_array_equal(ta, tb)
            assert ta.dtype == np.int32 and np.all((0 <= ta) & (ta < 300))
        a.reset()
        np.testing.assert_array_equal(a.sample(x), run_a[0])  # reset: back to step 0, mu = 2 tau


def test_dynamic_temperature_with_zero_delta_is_plain_temperature(rng):
    x = make_logits(rng)
    np.testing.assert_array_equal(llmkit.SamplerChain().dynamic_temperature(0.8, 0.0).apply(x),
                                  llmkit.SamplerChain().temperature(0.8).apply(x))


def test_dynamic_temperature_formula():
    # uniform over n tokens: entropy ratio 1, so T = max(0, t - d) + 2d.
    x = np.zeros((1, 16), np.float32)
    x[0, 0] = 0.0
    got = llmkit.SamplerChain().dynamic_temperature(1.0, 0.5, 1.0).apply(x + 1.0)
    np.testing.assert_allclose(got, (x + 1.0) / 1.5, rtol=1e-6)


# ---------------------------------------------------------------------------
# Log-probabilities.
def test_raw_logprobs_and_top_logprobs(rng):
    x = make_logits(rng, rows=8, vocab=64)
    chain = llmkit.SamplerChain(5).top_k(10).dist()
    res = chain.sample(x, logprobs=True, top_logprobs=4)
    assert isinstance(res, llmkit.SampleResult)
    assert res.tokens.dtype == np.int32 and res.tokens.shape == (8,)
    assert res.logprobs.dtype == np.float32 and res.logprobs.shape == (8,)
    assert res.top_ids.shape == (8, 4) and res.top_logprobs.shape == (8, 4)
    for b in range(8):
        lsm = ref.log_softmax(x[b])
        assert res.logprobs[b] == pytest.approx(lsm[res.tokens[b]], abs=1e-5)
        want_ids = ref.rank_desc(x[b], ref.alive(x[b]))[:4]
        np.testing.assert_array_equal(res.top_ids[b], want_ids)
        np.testing.assert_allclose(res.top_logprobs[b], lsm[want_ids], atol=1e-5)


def test_processed_logprobs(rng):
    x = make_logits(rng, rows=8, vocab=64)
    res = llmkit.SamplerChain(5).top_k(3).temperature(0.5).dist().sample(
        x, logprobs=True, top_logprobs=5, logprob_source="processed")
    for b in range(8):
        lsm = ref.log_softmax(ref.temperature(ref.top_k(x[b], 3), 0.5))
        assert res.logprobs[b] == pytest.approx(lsm[res.tokens[b]], abs=1e-5)
        want_ids = ref.rank_desc(x[b], ref.alive(x[b]))[:3]
        np.testing.assert_array_equal(res.top_ids[b, :3], want_ids)
        np.testing.assert_array_equal(res.top_ids[b, 3:], [-1, -1])  # only 3 candidates left
        assert np.all(np.isneginf(res.top_logprobs[b, 3:]))


def test_logprobs_only_and_one_dimensional_logits(rng):
    x = make_logits(rng, rows=1, vocab=20)[0]
    res = llmkit.SamplerChain(1).sample(x, logprobs=True)
    assert isinstance(res.tokens, int) and isinstance(res.logprobs, float)
    assert res.top_ids is None and res.top_logprobs is None
    res = llmkit.SamplerChain(1).sample(x, top_logprobs=3)
    assert res.logprobs is None and res.top_ids.shape == (3,)
    with pytest.raises(ValueError, match="logprob_source"):
        llmkit.SamplerChain().sample(x, logprobs=True, logprob_source="bogus")
