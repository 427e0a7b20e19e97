"""Sampling: sampler chains, one-call sampling, speculative verification.

Implementation module; import these names from :mod:`llmkit`.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _args, _llmkit

__all__ = ["SampleResult", "SamplerChain", "sample", "verify_speculative"]

_LOGPROB_SOURCES = {"raw": 0, "processed": 1}


class SampleResult(NamedTuple):
    """What :meth:`SamplerChain.sample` returns when log-probabilities are asked for.

    For logits of shape (B, V): ``tokens`` is int32 (B,); ``logprobs`` float32 (B,),
    the log-probability of each chosen token, or None unless ``logprobs=True``;
    ``top_ids`` int32 (B, n) and ``top_logprobs`` float32 (B, n), the n most likely
    tokens in descending order (id -1 and -inf pad rows with fewer than n
    candidates), or None unless ``top_logprobs=n > 0``. For 1-D logits the batch
    axis is dropped: ``tokens`` is an int and ``logprobs`` a float.
    """

    tokens: Any
    logprobs: Any
    top_ids: Any
    top_logprobs: Any


class SamplerChain:
    """An ordered chain of sampling steps with per-sequence state, like llama.cpp's.

    Steps run in the order they are added; every ``add`` method returns the
    chain, so they compose fluently::

        chain = llmkit.SamplerChain(seed=42).penalties(64, 1.1).top_k(40).top_p(0.95).temperature(0.8).dist()

    The last step picks the token (:meth:`greedy`, :meth:`dist`, :meth:`mirostat`,
    :meth:`mirostat_v2`); a chain without a picker draws from the distribution
    its steps leave. Nothing may follow a picker.

    Each row of a batch is a sequence (by default row i is sequence i; pass
    ``seq_ids`` to say otherwise) whose state, the accepted-token history,
    mirostat's mu and a step counter, advances with every :meth:`sample`. Random
    draws come from Philox-4x32-10 keyed by ``seed`` and counted by (sequence,
    step, draw), so the tokens do not depend on the thread count or on which
    other sequences share the batch.

    Calls on one chain are serialised (a lock is held while the GIL is
    released); use one chain per thread for parallelism.

    Args:
        seed: Key of every random draw, 0 <= seed < 2**64. None draws a random one.
    """

    __slots__ = ("_c",)

    def __init__(self, seed: Optional[int] = 0) -> None:
        self._c = _llmkit.SamplerChain(_args.seed(seed))

    @property
    def seed(self) -> int:
        """The key of the chain's random draws."""
        return self._c.seed

    # -- steps --------------------------------------------------------------
    def greedy(self) -> "SamplerChain":
        """Appends the greedy picker: the largest logit wins (the lowest id on ties)."""
        self._c.greedy()
        return self

    def dist(self) -> "SamplerChain":
        """Appends the random picker: one Philox draw from softmax of the remaining logits."""
        self._c.dist()
        return self

    def temperature(self, t: float) -> "SamplerChain":
        """Appends temperature scaling, ``logit / t``; ``t = 0`` keeps only the most likely token."""
        self._c.temperature(_args.real(t, "t"))
        return self

    def dynamic_temperature(self, t: float, delta: float, exponent: float = 1.0) -> "SamplerChain":
        """Appends entropy-based temperature (llama.cpp's ``temp_ext``).

        With H the entropy of the current distribution over n candidates the
        temperature is ``max(0, t - delta) + 2 * delta * (H / log n) ** exponent``;
        ``delta <= 0`` makes it plain temperature ``t``.
        """
        self._c.dynamic_temperature(_args.real(t, "t"), _args.real(delta, "delta"),
                                    _args.real(exponent, "exponent"))
        return self

    def top_k(self, k: int) -> "SamplerChain":
        """Appends top-k: keeps the k largest logits (lower ids win ties); ``k >= 1``."""
        self._c.top_k(_args.int32(k, "k"))
        return self

    def top_p(self, p: float, min_keep: int = 1) -> "SamplerChain":
        """Appends top-p (nucleus): keeps the smallest most-likely set with probability >= p.

        ``p`` is in (0, 1]; at least ``min_keep`` tokens are kept.
        """
        self._c.top_p(_args.real(p, "p"), _args.count(min_keep, "min_keep"))
        return self

    def min_p(self, p: float, min_keep: int = 1) -> "SamplerChain":
        """Appends min-p: keeps tokens with probability >= p times the largest; ``p`` in [0, 1]."""
        self._c.min_p(_args.real(p, "p"), _args.count(min_keep, "min_keep"))
        return self

    def typical(self, p: float, min_keep: int = 1) -> "SamplerChain":
        """Appends locally typical sampling (Meister et al. 2022).

        Orders tokens by ``|-log p - H|`` (H the entropy) and keeps the smallest
        prefix of that order with probability >= p; ``p`` in (0, 1].
        """
        self._c.typical(_args.real(p, "p"), _args.count(min_keep, "min_keep"))
        return self

    def top_n_sigma(self, n: float) -> "SamplerChain":
        """Appends top-n-sigma (Tang et al. 2024): keeps logits >= max - n * std(logits); ``n >= 0``."""
        self._c.top_n_sigma(_args.real(n, "n"))
        return self

    def xtc(self, probability: float, threshold: float, min_keep: int = 1) -> "SamplerChain":
        """Appends XTC ("exclude top choices", as llama.cpp defines it).

        With chance ``probability``, when two or more tokens have probability
        >= ``threshold``, removes all of them but the least likely, unless fewer
        than ``min_keep`` tokens would remain. A threshold above 0.5 never fires.
        """
        self._c.xtc(_args.real(probability, "probability"), _args.real(threshold, "threshold"),
                    _args.count(min_keep, "min_keep"))
        return self

    def penalties(
        self, last_n: int = 64, repeat: float = 1.0, frequency: float = 0.0, presence: float = 0.0
    ) -> "SamplerChain":
        """Appends repetition, frequency and presence penalties over the last ``last_n`` tokens.

        For a token seen c > 0 times, a positive logit is divided by ``repeat``
        and a negative one multiplied by it (CTRL / llama.cpp), then
        ``c * frequency + presence`` is subtracted (OpenAI). ``last_n = -1``
        means the whole history, 0 disables.
        """
        self._c.penalties(_args.int32(last_n, "last_n"), _args.real(repeat, "repeat"),
                          _args.real(frequency, "frequency"), _args.real(presence, "presence"))
        return self

    def dry(
        self,
        multiplier: float,
        base: float = 1.75,
        allowed_length: int = 2,
        last_n: int = -1,
        breakers: Iterable[int] = (),
    ) -> "SamplerChain":
        """Appends DRY ("don't repeat yourself", as llama.cpp defines it).

        A token that would extend a repeat of length L >= ``allowed_length``
        of earlier history loses ``multiplier * base ** (L - allowed_length)``
        from its logit. ``breakers`` are token ids (e.g. of "\\n") that a repeat
        never extends across.
        """
        ids = _args.token_ids(list(breakers), "breakers")
        self._c.dry(_args.real(multiplier, "multiplier"), _args.real(base, "base"),
                    _args.int32(allowed_length, "allowed_length"), _args.int32(last_n, "last_n"), ids.tolist())
        return self

    def logit_bias(
        self, bias: Union[Mapping[int, float], Tuple[Sequence[int], Sequence[float]]]
    ) -> "SamplerChain":
        """Appends a logit bias, ``logit[id] += bias``; a bias of ``-inf`` bans the token.

        ``bias`` is a mapping ``{token_id: bias}`` or a pair ``(ids, biases)``.
        Ids are checked against the vocabulary when sampling.
        """
        if isinstance(bias, Mapping):
            ids_obj, values_obj = list(bias.keys()), list(bias.values())
        else:
            try:
                ids_obj, values_obj = bias
            except (TypeError, ValueError):
                raise TypeError("logit_bias takes a mapping {id: bias} or a pair (ids, biases)") from None
        ids = _args.token_ids(ids_obj, "logit_bias ids")
        values = np.asarray(values_obj, dtype=np.float32).reshape(-1)
        self._c.logit_bias(ids.tolist(), values.tolist())
        return self

    def ban(self, ids: Iterable[int]) -> "SamplerChain":
        """Appends a ban: the listed token ids can never be picked."""
        self._c.banned_tokens(_args.token_ids(list(ids), "ids").tolist())
        return self

    def mirostat(self, tau: float = 5.0, eta: float = 0.1, m: int = 100) -> "SamplerChain":
        """Appends the mirostat v1 picker (Basu et al. 2021), as llama.cpp implements it.

        ``tau`` is the target surprise in bits, ``eta`` the learning rate, ``m``
        the number of tokens used to estimate the Zipf exponent.
        """
        self._c.mirostat(_args.real(tau, "tau"), _args.real(eta, "eta"), _args.int32(m, "m"))
        return self

    def mirostat_v2(self, tau: float = 5.0, eta: float = 0.1) -> "SamplerChain":
        """Appends the mirostat v2 picker: drops tokens with surprise above mu, samples, updates mu."""
        self._c.mirostat_v2(_args.real(tau, "tau"), _args.real(eta, "eta"))
        return self

    # -- state --------------------------------------------------------------
    def accept(self, tokens: Union[int, Sequence[int], np.ndarray], seq_id: int = 0) -> None:
        """Appends tokens (e.g. the prompt) to a sequence's history, for penalties and DRY."""
        self._c.accept(_args.token_ids(tokens, "tokens"), _args.as_int(seq_id, "seq_id"))

    def reset(self, seq_id: int = -1) -> None:
        """Forgets one sequence's state (history, mu, step counter), or every sequence's with -1."""
        self._c.reset(_args.as_int(seq_id, "seq_id"))

    def describe(self) -> str:
        """The chain as one line of text, e.g. ``"top_k(40) -> top_p(0.95) -> dist"``."""
        return self._c.describe()

    def __len__(self) -> int:
        """Number of steps added (an implicit final ``dist`` is not counted)."""
        return len(self._c)

    def __str__(self) -> str:
        return self.describe()

    def __repr__(self) -> str:
        return f"SamplerChain(seed={self.seed}) <{self.describe()}>"

    # -- running ------------------------------------------------------------
    def sample(
        self,
        logits: Any,
        *,
        seq_ids: Optional[Union[int, Sequence[int], np.ndarray]] = None,
        num_threads: int = 0,
        logprobs: bool = False,
        top_logprobs: int = 0,
        logprob_source: str = "raw",
    ) -> Any:
        """Samples one token per row and advances each row's sequence by one step.

        Args:
            logits: (B, V) or (V,) float32, float16 or bfloat16; a numpy array (any
                strides), an object with ``__dlpack__`` (torch / cupy, CPU or CUDA), or
                a nested list. ``-inf`` marks a token that cannot be picked; NaN and
                ``+inf`` raise ValueError.
            seq_ids: The sequence id of each row (B distinct ids >= 0); default row i is
                sequence i.
            num_threads: CPU worker threads; 0 uses :func:`llmkit.get_num_threads`.
            logprobs: Also return the log-probability of each chosen token.
            top_logprobs: Also return the n most likely tokens and their log-probabilities.
            logprob_source: ``"raw"`` (log-softmax of the logits as given, OpenAI's
                ``logprobs``) or ``"processed"`` (the distribution the picker drew from).

        Returns:
            int32 array (B,), or an int for 1-D logits; a :class:`SampleResult` when
            ``logprobs`` or ``top_logprobs > 0``.
        """
        if logprob_source not in _LOGPROB_SOURCES:
            raise ValueError(f"logprob_source must be 'raw' or 'processed', got {logprob_source!r}")
        n_top = _args.count(top_logprobs, "top_logprobs")
        tokens, lp, top_ids, top_lp = self._c.sample(
            logits,
            _args.seq_ids(seq_ids),
            _args.count(num_threads, "num_threads"),
            bool(logprobs),
            n_top,
            _LOGPROB_SOURCES[logprob_source],
        )
        if isinstance(tokens, np.integer):
            tokens = int(tokens)
            lp = float(lp) if lp is not None else None
        if not logprobs and n_top == 0:
            return tokens
        return SampleResult(tokens, lp, top_ids, top_lp)

    def apply(
        self,
        logits: Any,
        *,
        seq_ids: Optional[Union[int, Sequence[int], np.ndarray]] = None,
        num_threads: int = 0,
    ) -> np.ndarray:
        """Runs every step except the picker and returns the processed logits as float32.

        Tokens a step removed are ``-inf``; softmax of the result is the
        distribution the picker would draw from. No state advances.
        """
        return self._c.apply(logits, _args.seq_ids(seq_ids), _args.count(num_threads, "num_threads"))


def sample(
    logits: Any,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    seed: Optional[int] = None,
    num_threads: int = 0,
) -> Any:
    """Samples one token per row with the common settings, without a chain.

    The steps run as Hugging Face transformers and vLLM order them: temperature,
    top-k, top-p, min-p, then a random draw (``temperature=0`` is greedy). Row i
    is sequence i at step 0 of a fresh chain keyed by ``seed``.

    Args:
        logits: (B, V) or (V,) float32, float16 or bfloat16 (numpy, ``__dlpack__``, or list).
        temperature: >= 0; 0 means greedy.
        top_k: 0 disables; otherwise >= 1.
        top_p: In (0, 1]; 1 disables.
        min_p: In [0, 1]; 0 disables.
        seed: 64-bit key of the random draw; None draws a fresh seed from the OS.
        num_threads: CPU worker threads; 0 uses :func:`llmkit.get_num_threads`.

    Returns:
        int32 array (B,), or an int for 1-D logits.
    """
    out = _llmkit.sample(
        logits,
        _args.real(temperature, "temperature"),
        _args.int32(top_k, "top_k"),
        _args.real(top_p, "top_p"),
        _args.real(min_p, "min_p"),
        _args.seed(seed),
        _args.count(num_threads, "num_threads"),
    )
    return int(out) if isinstance(out, np.integer) else out


def verify_speculative(
    draft_tokens: Any,
    draft_probs: Any,
    target_probs: Any,
    *,
    seed: int = 0,
    step: int = 0,
    seq_ids: Optional[Union[int, Sequence[int], np.ndarray]] = None,
    num_threads: int = 0,
) -> Tuple[Any, Any]:
    """Verifies draft tokens by speculative rejection sampling (Leviathan et al. 2023).

    Draft token x_i is accepted with probability min(1, q_i(x_i) / p_i(x_i)),
    q the target and p the draft distribution; at the first rejection a token is
    drawn from normalize(max(0, q_i - p_i)), and if all K drafts are accepted a
    bonus token is drawn from q_K. The emitted tokens are distributed exactly as
    sampling from the target would be.

    Args:
        draft_tokens: int32/int64 (B, K), ids in [0, V); or (K,) for one sequence.
        draft_probs: (B, K, V) float (need not be normalised); or (K, V).
        target_probs: (B, K+1, V) float; or (K+1, V).
        seed: Philox key. step: Decoding step (< 2**32), part of the Philox counter.
        seq_ids: Sequence id of each row; default row i is sequence i.
        num_threads: CPU worker threads; 0 uses :func:`llmkit.get_num_threads`.

    Returns:
        ``(tokens, n_accepted)``: int32 (B, K+1), the accepted drafts, then the
        corrected or bonus token, then -1 padding; and int32 (B,), the accepted
        drafts per row (each row emits ``n_accepted + 1`` tokens). For a single
        sequence: tokens (K+1,) and an int.
    """
    tokens, n_accepted = _llmkit.verify_speculative(
        draft_tokens,
        draft_probs,
        target_probs,
        _args.u64(seed, "seed"),
        _args.u64(step, "step"),
        _args.seq_ids(seq_ids),
        _args.count(num_threads, "num_threads"),
    )
    if isinstance(n_accepted, np.integer):
        n_accepted = int(n_accepted)
    return tokens, n_accepted
