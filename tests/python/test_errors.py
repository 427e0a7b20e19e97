"""Bad input raises ValueError (or LlmkitError) with a message that names the problem."""

import numpy as np
import pytest

import llmkit
from llmkit import _llmkit

X = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)


def raises_value_error(fn, pattern, status=None):
    with pytest.raises(ValueError, match=pattern) as e:
        fn()
    if status is not None:
        assert e.value.status == status
        # the exception carries exactly the C library's message for this thread
        assert str(e.value) == _llmkit.last_error_message()
    return e.value


@pytest.mark.parametrize("bad,word", [(np.nan, "nan"), (np.inf, "inf")])
def test_non_finite_logits(bad, word):
    x = X.copy()
    x[1, 7] = bad
    for call in (lambda: llmkit.sample(x, seed=0),
                 lambda: llmkit.SamplerChain().dist().sample(x),
                 lambda: llmkit.SamplerChain().apply(x)):
        err = raises_value_error(call, rf"row 1, token 7 is {word}", "LLMKIT_ERROR_NON_FINITE")
        assert "logits" in str(err)


def test_row_without_finite_logit():
    x = X.copy()
    x[2] = -np.inf
    raises_value_error(lambda: llmkit.sample(x), "row 2 has no finite logit", "LLMKIT_ERROR_NON_FINITE")


def test_everything_banned():
    raises_value_error(lambda: llmkit.SamplerChain().ban(range(16)).sample(X), "no token is left",
                       "LLMKIT_ERROR_INVALID_ARGUMENT")


@pytest.mark.parametrize("add,pattern", [
    (lambda c: c.top_k(0), r"top_k: k must be >= 1, got 0"),
    (lambda c: c.top_k(-3), r"top_k: k must be >= 1"),
    (lambda c: c.top_p(0.0), r"top_p: p must be in \(0, 1\], got 0"),
    (lambda c: c.top_p(1.5), r"top_p: p must be in \(0, 1\], got 1.5"),
    (lambda c: c.typical(0.0), r"typical: p must be in \(0, 1\]"),
    (lambda c: c.min_p(-0.1), r"min_p: p must be in \[0, 1\]"),
    (lambda c: c.min_p(1.1), r"min_p: p must be in \[0, 1\]"),
    (lambda c: c.temperature(-1.0), r"temperature: t must be finite and >= 0"),
    (lambda c: c.temperature(float("nan")), r"temperature: t must be finite"),
    (lambda c: c.top_n_sigma(-1.0), r"top_n_sigma: n must be finite and >= 0"),
    (lambda c: c.xtc(1.5, 0.1), r"xtc: probability must be in \[0, 1\]"),
    (lambda c: c.penalties(repeat=0.0), r"penalties: repeat must be finite and > 0"),
    (lambda c: c.penalties(last_n=-2), r"penalties: last_n must be >= -1"),
    (lambda c: c.dry(-1.0), r"dry: multiplier must be finite and >= 0"),
    (lambda c: c.dry(1.0, base=0.5), r"dry: base must be finite and >= 1"),
    (lambda c: c.mirostat(tau=0.0), r"mirostat: tau must be > 0"),
    (lambda c: c.mirostat(m=1), r"mirostat: m must be >= 2"),
    (lambda c: c.mirostat_v2(eta=-1.0), r"mirostat_v2: eta must be > 0"),
    (lambda c: c.logit_bias({-1: 1.0}), r"logit_bias: id 0 is negative"),
    (lambda c: c.logit_bias({3: float("inf")}), r"logit_bias: bias 0 is inf"),
    (lambda c: c.logit_bias(([1, 2], [1.0])), r"ids and biases differ in length"),
    (lambda c: c.ban([-5]), r"banned_tokens: id 0 is negative"),
    (lambda c: c.greedy().top_k(3), r"a picker must be the last step"),
])
def test_bad_step_parameters(add, pattern):
    chain = llmkit.SamplerChain()
    raises_value_error(lambda: add(chain), pattern)
    assert len(chain) <= 1  # a failed add leaves the chain as it was (the greedy case added one)


def test_min_keep_must_not_be_negative():
    with pytest.raises(ValueError, match="min_keep must be >= 0"):
        llmkit.SamplerChain().top_p(0.5, min_keep=-1)


def test_one_call_parameters():
    raises_value_error(lambda: llmkit.sample(X, top_p=0.0), r"top_p must be in \(0, 1\]")
    raises_value_error(lambda: llmkit.sample(X, top_p=1.01), r"top_p must be in \(0, 1\]")
    raises_value_error(lambda: llmkit.sample(X, top_k=-1), r"top_k must be >= 0")
    raises_value_error(lambda: llmkit.sample(X, min_p=2.0), r"min_p must be in \[0, 1\]")
    raises_value_error(lambda: llmkit.sample(X, temperature=-0.5), r"temperature must be finite and >= 0")
    with pytest.raises(ValueError, match="seed"):
        llmkit.sample(X, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        llmkit.sample(X, seed=2**64)


def test_empty_vocabulary():
    raises_value_error(lambda: llmkit.sample(np.zeros((2, 0), np.float32)), "vocabulary dimension V is 0",
                       "LLMKIT_ERROR_SHAPE")
    raises_value_error(lambda: llmkit.SamplerChain().apply(np.zeros(0, np.float32)), "V is 0")


def test_seq_ids_problems():
    chain = llmkit.SamplerChain()
    raises_value_error(lambda: chain.sample(X, seq_ids=[0, 1]), r"seq_ids: 2 ids given for 3 rows",
                       "LLMKIT_ERROR_SHAPE")
    raises_value_error(lambda: chain.sample(X, seq_ids=[0, 1, 1]), r"sequence 1 appears twice")
    raises_value_error(lambda: chain.sample(X, seq_ids=[0, -1, 2]), r"seq_ids: ids must be >= 0")
    raises_value_error(lambda: chain.apply(X, seq_ids=[4]), r"seq_ids: 1 ids given for 3 rows")
    with pytest.raises(ValueError, match="seq_ids must hold integers"):
        chain.sample(X, seq_ids=[0.5, 1, 2])
    with pytest.raises(ValueError, match="seq_ids must be 1-D"):
        chain.sample(X, seq_ids=[[0, 1, 2]])


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float64, np.bool_])
def test_wrong_dtype(dtype):
    x = (X * 10).astype(dtype)
    err = raises_value_error(lambda: llmkit.sample(x), r"logits: .*dtype", "LLMKIT_ERROR_DTYPE")
    if dtype is not np.bool_:  # bool is refused earlier, as a dtype llmkit has no name for
        assert "float32" in str(err)  # names what would be accepted


def test_numpy_types_llmkit_cannot_read():
    with pytest.raises(ValueError, match="numpy dtype complex64"):
        llmkit.sample(X.astype(np.complex64))
    with pytest.raises(ValueError, match="numpy dtype object"):
        llmkit.sample(np.array([[1.0, "a"]], dtype=object))


@pytest.mark.parametrize("shape", [(2, 3, 4), ()])
def test_wrong_ndim(shape):
    x = np.zeros(shape, np.float32)
    raises_value_error(lambda: llmkit.sample(x), r"logits: expected 1 to 2 dimensions", "LLMKIT_ERROR_SHAPE")
    raises_value_error(lambda: llmkit.SamplerChain().apply(x), r"expected 1 to 2 dimensions")


def test_token_outside_vocabulary():
    raises_value_error(lambda: llmkit.SamplerChain().logit_bias({16: 1.0}).sample(X),
                       r"logit_bias: token id 16 is outside the vocabulary \[0, 16\)", "LLMKIT_ERROR_OUT_OF_RANGE")


def test_accept_problems():
    chain = llmkit.SamplerChain()
    raises_value_error(lambda: chain.accept([1, -2]), r"accept: token 1 is negative", "LLMKIT_ERROR_OUT_OF_RANGE")
    raises_value_error(lambda: chain.accept([1], seq_id=-1), r"seq_id must be >= 0")
    with pytest.raises(ValueError, match="must fit int32"):
        chain.accept([2**40])
    with pytest.raises(ValueError, match="must hold integers"):
        chain.accept([1.5])


def test_failed_sample_does_not_advance_state():
    x = X.copy()
    bad = x.copy()
    bad[0, 0] = np.nan
    a, b = llmkit.SamplerChain(1).dist(), llmkit.SamplerChain(1).dist()
    with pytest.raises(ValueError):
        a.sample(bad)
    np.testing.assert_array_equal(a.sample(x), b.sample(x))


def test_verify_speculative_problems():
    p = np.full((1, 2, 5), 0.2, np.float32)
    q = np.full((1, 3, 5), 0.2, np.float32)
    d = np.array([[1, 2]], np.int32)
    raises_value_error(lambda: llmkit.verify_speculative(d, p, q[:, :2]),
                       r"target_probs: expected shape \[1, 3, V\]", "LLMKIT_ERROR_SHAPE")
    raises_value_error(lambda: llmkit.verify_speculative(d, p[:, :1], q), r"draft_probs: expected shape \[1, 2, 5\]")
    raises_value_error(lambda: llmkit.verify_speculative([[1, 5]], p, q),
                       r"draft_tokens: \[0, 1\] = 5 is outside the vocabulary", "LLMKIT_ERROR_OUT_OF_RANGE")
    neg = q.copy()
    neg[0, 1, 3] = -0.1
    raises_value_error(lambda: llmkit.verify_speculative(d, p, neg), r"probabilities must be finite and >= 0")
    nan = q.copy()
    nan[0, 2, 0] = np.nan
    raises_value_error(lambda: llmkit.verify_speculative(d, p, nan), r"target_probs: entry \[0, 2, 0\] is nan")
    raises_value_error(lambda: llmkit.verify_speculative(d, p, np.zeros_like(q)), r"sums to 0")
    raises_value_error(lambda: llmkit.verify_speculative(d, p, q, step=2**32), r"step must be < 2\^32")
    raises_value_error(lambda: llmkit.verify_speculative(d, p, q, seq_ids=[0, 1]), r"seq_ids: 2 ids given for 1 rows")
    raises_value_error(lambda: llmkit.verify_speculative(d.astype(np.float32), p, q), r"draft_tokens: dtype float32")


def test_type_errors_stay_type_errors():
    with pytest.raises(TypeError, match="k must be an integer"):
        llmkit.SamplerChain().top_k(2.5)
    with pytest.raises(TypeError, match="p must be a number"):
        llmkit.SamplerChain().top_p("0.5")
    with pytest.raises(TypeError, match="temperature must be a number"):
        llmkit.sample(X, temperature=None)
