"""Attention, RoPE, KV-cache sizes and KV caches (llmkit_attention, llmkit_rope, llmkit_kv_cache_bytes,
llmkit_kv_cache_*, llmkit_paged_kv_cache_*).

Outputs are allocated here in the input's own array type (numpy arrays give
numpy arrays, torch tensors give torch tensors on the same device with the same
dtype, other array-API arrays use their namespace), then filled by the native
module with the GIL released.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Dict, Mapping, Optional

import numpy as np

from . import _llmkit
from ._args import as_int, count, int32, int_array, real


def _as_input(x: Any, name: str) -> Any:
    """numpy arrays and DLPack producers pass as they are; anything else becomes float32 numpy."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__dlpack__"):
        if getattr(x, "requires_grad", False) and hasattr(x, "detach"):
            x = x.detach()  # torch refuses to export tensors that require grad
        return x
    return np.asarray(x, dtype=np.float32)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "new_empty")


def _empty_like(x: Any, shape: Optional[tuple] = None) -> Any:
    """An uninitialised array of x's kind, dtype and device and x's shape (or ``shape``), compact row-major."""
    shape = tuple(int(n) for n in (x.shape if shape is None else shape))
    if isinstance(x, np.ndarray):
        return np.empty(shape, dtype=x.dtype.newbyteorder("="))
    if _is_torch(x):
        return x.new_empty(shape)
    if hasattr(x, "__array_namespace__"):
        xp = x.__array_namespace__()
        return xp.empty_like(x) if shape == tuple(x.shape) else xp.empty(shape, dtype=x.dtype, device=x.device)
    raise TypeError(f"cannot allocate an output like {type(x).__name__}: pass numpy arrays or torch tensors")


def _empty_out(q: Any, v: Any) -> Any:
    """Attention's output: q's kind, dtype, device and shape, but v's head_dim as its last axis (the two differ
    in DeepSeek's attention). Shapes the C library will refuse keep q's."""
    if len(q.shape) < 1 or len(v.shape) < 1:
        return _empty_like(q)
    return _empty_like(q, tuple(q.shape[:-1]) + (v.shape[-1],))


def _empty_lse(q: Any, rank: int = 4) -> Any:
    """An uninitialised float32 array for q's log-sum-exps, q's shape without D (``(B, Sq, Hq)``; ``(T, Hq)``
    for packed q of rank 3): a torch tensor on q's device for torch q, else a numpy array."""
    shape = tuple(int(n) for n in q.shape[:rank - 1])
    if _is_torch(q):
        return q.new_empty(shape, dtype=sys.modules["torch"].float32)
    return np.empty(shape, dtype=np.float32)


def _copy(x: Any) -> Any:
    """A compact copy of x, of its kind, dtype and device."""
    if isinstance(x, np.ndarray):
        return np.array(x, dtype=x.dtype.newbyteorder("="), order="C", copy=True)
    if _is_torch(x):
        return x.detach().clone(memory_format=sys.modules["torch"].contiguous_format)
    out = _empty_like(x)
    out[...] = x
    return out


def _mask_arg(mask: Any) -> Any:
    """The mask as llmkit reads it: boolean masks (True = may attend) as they are, float masks as float32."""
    if isinstance(mask, np.ndarray):
        if mask.dtype.kind == "f" and mask.dtype != np.float32:
            return mask.astype(np.float32)
        return mask
    if _is_torch(mask):
        torch = sys.modules["torch"]
        if mask.dtype.is_floating_point and mask.dtype != torch.float32:
            return mask.detach().to(torch.float32)
        return mask.detach()
    if hasattr(mask, "__dlpack__"):
        return mask
    m = np.asarray(mask)
    return m if m.dtype == np.bool_ else m.astype(np.float32)


def _positive(x: Any, name: str) -> float:
    """0.0 for None (the C default), else a finite float > 0."""
    if x is None:
        return 0.0
    v = real(x, name)
    if not (v > 0.0 and math.isfinite(v)):
        raise ValueError(f"{name} must be finite and > 0 (or None), got {v}")
    return v


def attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = True,
    window: Optional[int] = None,
    alibi_slopes: Optional[Any] = None,
    softcap: Optional[float] = None,
    scale: Optional[float] = None,
    mask: Optional[Any] = None,
    sinks: Optional[Any] = None,
    num_threads: int = 0,
    return_lse: bool = False,
) -> Any:
    """Scaled-dot-product attention, ``softmax(scale * q k^T + bias) v``, on the CPU (a tiled online softmax).

    Shapes follow FlashAttention and llama.cpp, (batch, seq, heads, head_dim):
    ``q`` is ``(B, Sq, Hq, D)``, ``k`` is ``(B, Skv, Hkv, D)`` and ``v`` is
    ``(B, Skv, Hkv, Dv)`` with ``Hq`` a multiple of ``Hkv`` (MHA, GQA, MQA:
    query head ``h`` reads kv head ``h // (Hq // Hkv)``, without copies) and
    ``D, Dv <= 576``. ``Dv`` is usually ``D``; DeepSeek's attention has
    ``D = 192, Dv = 128``, and its latent attention (MLA) in the absorbed form
    ``D = 576, Dv = 512`` on one kv head. All three share one dtype: float32
    or float16 (numpy or torch), or bfloat16 (torch, or numpy with
    ``ml_dtypes``). Any strides along B, S and H; the head_dim axis must be
    contiguous.

    The result is ``(B, Sq, Hq, Dv)`` of q's dtype and kind: a numpy array for
    numpy input, a torch tensor (same device) for torch input, so bfloat16
    stays bfloat16.
    Softmax and accumulation are float32; 16-bit results are rounded once.

    - ``causal`` (default True): query ``i`` sees keys ``j <= i + Skv - Sq``,
      i.e. the queries are the *last* Sq positions (bottom-right aligned, as in
      decoding with a KV cache). For Sq == Skv this is the usual lower triangle.
    - ``window``: sliding-window attention (Mistral): query ``i`` sees keys
      ``i' - window < j <= i'`` with ``i' = i + Skv - Sq``; needs ``causal``.
    - ``alibi_slopes``: ``Hq`` floats; adds ``-slope[h] * (i' - j)`` to the scores.
    - ``softcap``: Gemma 2 logit soft-capping, ``s = softcap * tanh(s / softcap)``
      on the scaled scores, before ALiBi and the mask.
    - ``scale``: the score scale; None means ``1 / sqrt(D)``.
    - ``mask``: an additive float32 mask (-inf hides a key), or a boolean one
      where True means "may attend", broadcast as torch's
      ``scaled_dot_product_attention`` takes ``attn_mask``: ``(Sq, Skv)``
      shared by every batch and head, or up to ``(B, Hq, Sq, Skv)`` in torch's
      axis order with any axis of size 1 (``(B, 1, 1, Skv)``: a padding mask
      per batch row, as Hugging Face builds for a padded batch). Either kind
      is read in place, never converted or expanded; a tile of 64 keys that it
      hides from every query row of a task is skipped.
    - ``sinks``: attention sinks (gpt-oss), ``Hq`` finite logits, one per query
      head: head ``h``'s softmax denominator gains ``exp(sinks[h])`` with no
      value row, so its weights become ``exp(s_j) / (sum exp(s) + exp(sinks[h]))``
      and the output shrinks by ``sum exp(s) / (sum exp(s) + exp(sinks[h]))``.

    - ``return_lse``: also return each query row's log-sum-exp, float32
      ``(B, Sq, Hq)`` (numpy, or torch on q's device), ``ln(sum_j exp(s_j))``
      over the final scores of its visible keys (plus ``exp(sinks[h])``),
      ``-inf`` for a row that sees no key: ``(out, lse)``, as flash-attn's
      ``softmax_lse`` (laid out ``(B, Sq, Hq)`` rather than ``(B, Hq, Sq)``).
      :func:`attention_merge` combines such results over disjoint keys.

    A query that sees no key at all gets a row of zeros. Runs on
    ``num_threads`` worker threads (0: the default) with the GIL released.
    A decode of few sequences splits its keys into parts (flash-decoding)
    chosen from the shapes alone, so the result is the same bits for any
    ``num_threads``, as the KV caches' attention.
    Raises :class:`ValueError` with the C library's message for mismatched
    shapes or dtypes, bad parameters, and a NaN or infinity in q, k or v (or
    a NaN or +inf in the mask), naming the first such element.
    """
    q = _as_input(q, "q")
    k = _as_input(k, "k")
    v = _as_input(v, "v")
    causal, win = _causal_window(causal, window)
    m = None if mask is None else _mask_arg(mask)
    out = _empty_out(q, v)
    lse = _empty_lse(q) if _flag(return_lse, "return_lse") else None
    _llmkit.attention(q, k, v, out, causal, win, _positive(softcap, "softcap"), _positive(scale, "scale"),
                      _heads(alibi_slopes), m, count(num_threads, "num_threads"), _heads(sinks), lse)
    return out if lse is None else (out, lse)


def _causal_window(causal: Any, window: Any) -> tuple:
    """(causal, the C options' window) for llmkit.attention and attention_varlen: a window needs causal."""
    causal = _flag(causal, "causal")
    if window is not None and not causal:
        raise ValueError("window needs causal=True (a sliding window looks back from each query)")
    return causal, _window(window)


def _heads(x: Any) -> Any:
    """A per-query-head array (ALiBi slopes, sinks) as contiguous float32, or None."""
    return None if x is None else np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def attention_varlen(
    q: Any,
    k: Any,
    v: Any,
    cu_seqlens_q: Any,
    cu_seqlens_k: Any,
    *,
    causal: bool = True,
    window: Optional[int] = None,
    alibi_slopes: Optional[Any] = None,
    softcap: Optional[float] = None,
    scale: Optional[float] = None,
    sinks: Optional[Any] = None,
    num_threads: int = 0,
    return_lse: bool = False,
) -> Any:
    """Attention over packed sequences of different lengths, without padding (flash-attn's
    ``flash_attn_varlen_func``).

    ``q`` is ``(Tq, Hq, D)``, ``k`` is ``(Tk, Hkv, D)`` and ``v`` ``(Tk, Hkv, Dv)``: the sequences' rows end
    to end (``Dv``, v's head_dim, as in :func:`attention`).
    ``cu_seqlens_q`` and ``cu_seqlens_k`` hold ``B + 1`` offsets (integers, lists or arrays):
    sequence ``b``'s queries are rows ``cu_seqlens_q[b]:cu_seqlens_q[b + 1]`` and its keys rows
    ``cu_seqlens_k[b]:cu_seqlens_k[b + 1]``, and it attends to its own keys only, with the options
    of :func:`attention` inside each sequence (causal and the window bottom-right aligned, so a
    sequence with more keys than queries is a chunk after its prefix). No ``mask``. Each
    sequence's result is :func:`attention` on its rows. Returns ``(Tq, Hq, Dv)`` of q's kind and
    dtype, or with ``return_lse`` ``(out, lse)``, lse float32 ``(Tq, Hq)``. Raises
    :class:`ValueError` for offsets that do not start at 0, decrease, or end elsewhere than the
    rows, and as :func:`attention` does (errors about a sequence's rows name it).
    """
    q, k, v = _as_input(q, "q"), _as_input(k, "k"), _as_input(v, "v")
    causal, win = _causal_window(causal, window)
    out = _empty_out(q, v)
    lse = _empty_lse(q, 3) if _flag(return_lse, "return_lse") else None
    _llmkit.attention_varlen(q, k, v, int_array(cu_seqlens_q, "cu_seqlens_q", wide=True),
                             int_array(cu_seqlens_k, "cu_seqlens_k", wide=True), out, causal, win,
                             _positive(softcap, "softcap"), _positive(scale, "scale"), _heads(alibi_slopes),
                             count(num_threads, "num_threads"), _heads(sinks), lse)
    return out if lse is None else (out, lse)


def attention_merge(out: Any, lse: Any, other_out: Any, other_lse: Any, *, in_place: bool = False) -> Any:
    """Merges attention over two disjoint sets of keys into attention over both: ``(out, lse)``.

    ``(out, lse)`` and ``(other_out, other_lse)`` are the results and
    log-sum-exps (``return_lse=True``) of the same queries over keys ``J1``
    and ``J2``; the merge is, row by row, ``lse' = logaddexp(lse, other_lse)``
    and ``out' = exp(lse - lse') * out + exp(other_lse - lse') * other_out``:
    attention over ``J1`` and ``J2`` together, up to float32 rounding. Uses:
    cascade attention (a prompt prefix shared by a batch attended once for all
    its sequences, then merged with each sequence's own keys from a cache),
    keys held in two caches, context split across devices. Masks, windows and
    ALiBi are placed by each call's own keys (the queries are its last Sq
    positions), so a prefix part is attended with ``causal=False``; sinks go
    to one part only.

    ``out`` and ``other_out``: ``(B, S, H, D)``, float32, float16 or bfloat16
    (any mix); ``lse`` and ``other_lse``: float32 ``(B, S, H)``. Returns new
    arrays of ``out``'s and ``lse``'s kinds and dtypes, or, with ``in_place``,
    writes into ``out`` and ``lse`` and returns them. Merging many parts:
    merge them one at a time into a float32 ``out`` (a 16-bit one is rounded
    at each merge). Raises :class:`ValueError` for mismatched shapes or
    dtypes, and for a NaN or infinity in the outputs or a NaN or +inf in an
    lse (``-inf`` means the row saw no key).
    """
    out, lse = _as_input(out, "out"), _as_input(lse, "lse")
    other_out, other_lse = _as_input(other_out, "other_out"), _as_input(other_lse, "other_lse")
    if not _flag(in_place, "in_place"):
        out, lse = _copy(out), _copy(lse)
    else:
        for x, name in ((out, "out"), (lse, "lse")):
            if isinstance(x, np.ndarray):
                _check_writable_numpy(x, name, "attention_merge(in_place=True)")
    _llmkit.attention_merge(out, lse, other_out, other_lse)
    return out, lse


def _flag(x: Any, name: str) -> bool:
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(x).__name__}")
    return bool(x)


_LAYOUTS = {"neox": 0, "interleaved": 1}
# "mrope": Qwen2-VL's older rope_scaling type, plain frequencies with mrope_section (below).
# "dynamic": Hugging Face's dynamic NTK, NTK-aware scaling with alpha from the call's positions (below).
# "proportional": Gemma 4's partial RoPE over the whole head (_rope_native_args).
_SCALINGS = {"none": 0, "default": 0, "mrope": 0, "linear": 1, "ntk": 2, "llama3": 3, "yarn": 4, "longrope": 5,
             "dynamic": 2, "proportional": 1}
# Keys every scaling takes besides its own: per-pair divisors, and M-RoPE's sections and layout.
_COMMON_KEYS = ("frequency_factors", "mrope_section", "mrope_interleaved")
_LONGROPE = 5
# Keys each scaling reads (llmkit's names); Hugging Face's names are accepted too.
# Every scaling takes "frequency_factors" (a GGUF model's rope_freqs).
_SCALING_KEYS = {
    0: (),
    1: ("factor",),
    2: ("alpha",),
    3: ("factor", "low_freq_factor", "high_freq_factor", "original_max_position"),
    4: ("factor", "original_max_position", "beta_fast", "beta_slow", "attention_factor"),
    # LongRoPE: frequency_factors, or Hugging Face's short_factor and long_factor (picked as it does);
    # factor, or the model's max_position_embeddings over original_max_position, sets the attention factor.
    5: ("factor", "original_max_position", "attention_factor", "short_factor", "long_factor",
        "max_position_embeddings"),
}
_REQUIRED_KEYS = {1: ("factor",), 2: ("alpha",), 3: ("factor", "original_max_position"),
                  4: ("factor", "original_max_position")}
_ALIASES = {"original_max_position_embeddings": "original_max_position"}


def _common_arg(name: str, value: Any, key: str) -> Any:
    """The native value of one of _COMMON_KEYS."""
    if name == "frequency_factors":
        return _factor_list(value, key)
    if name == "mrope_interleaved":
        if not isinstance(value, (bool, np.bool_, int, np.integer)) or int(value) not in (0, 1):
            raise ValueError(f"scaling[{key!r}] must be a bool, got {value!r}")
        return int(value)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 3:
        raise ValueError(f"scaling[{key!r}] must hold 3 pair counts (temporal, height, width), got {value!r}")
    return [int32(v, f"scaling[{key!r}]") for v in value]


def _factor_list(value: Any, name: str) -> np.ndarray:
    """A 1-D float32 array of frequency factors, each > 0 or +inf (named by index otherwise)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") and not hasattr(value, "__array__"):
        raise TypeError(f"scaling[{name!r}] must be a sequence of numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"scaling[{name!r}] must be a sequence of numbers") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"scaling[{name!r}] must be a non-empty 1-D sequence, got shape {arr.shape}")
    bad = np.flatnonzero(~(arr > 0))  # NaN too; +inf stops its pair
    if bad.size:
        raise ValueError(f"scaling[{name!r}][{bad[0]}] must be > 0 (or +inf), got {arr[bad[0]]}")
    return np.ascontiguousarray(arr, dtype=np.float32)


_FACTOR_LISTS = ("short_factor", "long_factor")


def _scaling_params(kind: str, params: Mapping[str, Any], allowed: tuple,
                    aliases: Mapping[str, str] = _ALIASES) -> Dict[str, Any]:
    """A scaling dict's parameters by llmkit's names: _COMMON_KEYS and factor lists converted, the rest as
    reals (an attention_factor of None dropped); a key outside ``allowed`` and _COMMON_KEYS is refused."""
    out: Dict[str, Any] = {}
    for key, value in params.items():
        name = aliases.get(key, key)
        if name in _COMMON_KEYS:
            out[name] = _common_arg(name, value, key)
        elif name not in allowed:
            raise ValueError(f"scaling type {kind!r} does not take {key!r} (it takes "
                             f"{', '.join(tuple(allowed) + _COMMON_KEYS)})")
        elif name in _FACTOR_LISTS:
            out[name] = _factor_list(value, key)
        elif not (name == "attention_factor" and value is None):
            out[name] = real(value, f"scaling[{key!r}]")
    return out


def _longrope_args(kind: str, params: Dict[str, Any], longest: Optional[int]) -> Dict[str, Any]:
    """LongRoPE's native keywords. Given Hugging Face's short_factor and long_factor, the long ones are
    used when the call's largest position + 1 (``longest``) exceeds original_max_position, as
    transformers' Phi-3 does; llmkit's own ``frequency_factors`` are used as they are."""
    out: Dict[str, Any] = {"scaling": _LONGROPE, **_scaling_params(kind, params, _SCALING_KEYS[_LONGROPE])}
    pair = [k for k in _FACTOR_LISTS if k in out]
    if "frequency_factors" in out and pair:
        raise ValueError(f"scaling type {kind!r} takes frequency_factors or short_factor and long_factor, not both")
    if "frequency_factors" not in out and len(pair) != 2:
        raise ValueError(f"scaling type {kind!r} needs 'frequency_factors', or both 'short_factor' and "
                         f"'long_factor' as in Hugging Face's config")
    max_pos = out.pop("max_position_embeddings", None)
    if pair:
        if "original_max_position" not in out:
            raise ValueError(f"scaling type {kind!r} with short_factor and long_factor needs "
                             "'original_max_position_embeddings' (Phi-3's config.json keeps it outside rope_scaling)")
        if "factor" not in out and "attention_factor" not in out:
            if max_pos is None:
                raise ValueError(f"scaling type {kind!r} needs 'factor', 'attention_factor' or "
                                 "'max_position_embeddings' (Phi-3's config.json keeps it outside rope_scaling)")
        short, long_ = out.pop("short_factor"), out.pop("long_factor")
        use_long = longest is not None and longest > out["original_max_position"]
        out["frequency_factors"] = long_ if use_long else short
    if max_pos is not None and "factor" not in out:
        if "original_max_position" not in out:
            raise ValueError(f"scaling type {kind!r} with 'max_position_embeddings' needs 'original_max_position'")
        out["factor"] = max_pos / out["original_max_position"]
    return out


def _dynamic_args(kind: str, params: Dict[str, Any], longest: Optional[int]) -> Dict[str, Any]:
    """Hugging Face's dynamic NTK as NTK-aware scaling: with the model's context L (max_position_embeddings),
    factor f and the call's largest position + 1 (``longest``), alpha = f * max(longest, L) / L - (f - 1),
    as transformers' _compute_dynamic_ntk_parameters (1 within the context). transformers keeps the largest
    length it has seen instead; the two agree while a generation's positions grow."""
    values = _scaling_params(kind, params, ("factor", "max_position_embeddings"),
                             {"original_max_position_embeddings": "max_position_embeddings",
                              "original_max_position": "max_position_embeddings"})
    out: Dict[str, Any] = {"scaling": _SCALINGS["ntk"], **{k: v for k, v in values.items() if k in _COMMON_KEYS}}
    missing = [k for k in ("factor", "max_position_embeddings") if k not in values]
    if missing:
        raise ValueError(f"scaling type {kind!r} needs {', '.join(repr(k) for k in missing)} (a model's config.json "
                         "keeps max_position_embeddings outside rope_scaling)")
    f, ctx = values["factor"], values["max_position_embeddings"]
    if not (f >= 1 and ctx > 0):
        raise ValueError(f"scaling type {kind!r} needs factor >= 1 and max_position_embeddings > 0, got {f} and {ctx}")
    out["alpha"] = f * max(longest or 0, ctx) / ctx - (f - 1)
    return out


def _scaling_args(scaling: Optional[Mapping[str, Any]], longest: Optional[int] = None) -> Dict[str, Any]:
    """The native scaling keywords of a ``scaling`` dict; ``longest`` is the call's largest position + 1
    (LongRoPE's choice between Hugging Face's short and long factors, dynamic NTK's alpha)."""
    if scaling is None:
        return {"scaling": 0}
    if not isinstance(scaling, Mapping):
        raise TypeError(f"scaling must be None or a dict such as {{'type': 'linear', 'factor': 4.0}}, "
                        f"got {type(scaling).__name__}")
    params = dict(scaling)
    kind = params.pop("type", None)
    hf_kind = params.pop("rope_type", None)
    kind = kind if kind is not None else hf_kind
    if not isinstance(kind, str) or kind.lower() not in _SCALINGS:
        raise ValueError(f"scaling['type'] must be one of {sorted(_SCALINGS)}, got {kind!r}")
    code = _SCALINGS[kind.lower()]
    if code == _LONGROPE:
        return _longrope_args(kind, params, longest)
    if kind.lower() == "dynamic":
        return _dynamic_args(kind, params, longest)
    out: Dict[str, Any] = {"scaling": code, **_scaling_params(kind, params, _SCALING_KEYS[code])}
    missing = [k for k in _REQUIRED_KEYS.get(code, ()) if k not in out]
    if missing:
        raise ValueError(f"scaling type {kind!r} needs {', '.join(repr(k) for k in missing)}")
    return out


def _check_writable_numpy(x: np.ndarray, name: str = "x", call: str = "rope(in_place=True)") -> None:
    """An array `call` writes where it lies: writable, native byte order, strides of whole items."""
    if not x.flags.writeable:
        raise ValueError(f"{name} is read-only; {call} needs a writable array")
    if not x.dtype.isnative:
        raise ValueError(f"{name} is not in native byte order; {call} cannot write it where it is")
    if any(s % x.itemsize for s in x.strides):
        raise ValueError(f"{name} has strides that are not a multiple of its item size; use in_place=False")


def rope(
    x: Any,
    positions: Any,
    *,
    theta: float = 10000.0,
    rotary_dim: Optional[int] = None,
    layout: str = "neox",
    scaling: Optional[Mapping[str, Any]] = None,
    in_place: bool = False,
    num_threads: int = 0,
) -> Any:
    """Rotary position embeddings on q or k, shape (batch, seq, heads, head_dim).

    ``x`` is float32, float16 or bfloat16 (numpy, or torch via DLPack) with a
    contiguous last axis; ``positions`` holds int32 or int64 positions, shape
    ``(B, S)`` or ``(S,)`` (shared by the batch). Pair ``k`` of the rotated
    dimensions at position ``p`` turns by ``p * inv_freq[k]``, with
    ``inv_freq[k] = theta ** (-2k / n)`` (then scaled), in double precision.

    - ``layout``: ``"neox"`` (default; GPT-NeoX and Hugging Face Llama rotate
      ``(x[k], x[k + n/2])``) or ``"interleaved"`` (GPT-J, Meta's original
      Llama, llama2.c rotate ``(x[2k], x[2k+1])``).
    - ``rotary_dim``: rotate only the first ``n`` dimensions (even; partial
      rotary as in GPT-NeoX, Phi); None rotates all of ``head_dim``.
    - ``scaling``: None, or a dict naming a context-extension scheme with its
      parameters (Hugging Face's ``rope_scaling`` dicts are accepted as they
      are, ``rope_type`` and ``original_max_position_embeddings`` included):
      ``{"type": "linear", "factor": f}``; ``{"type": "ntk", "alpha": a}``;
      ``{"type": "llama3", "factor": 8, "low_freq_factor": 1,
      "high_freq_factor": 4, "original_max_position": 8192}``;
      ``{"type": "yarn", "factor": f, "original_max_position": n,
      "beta_fast": 32, "beta_slow": 1, "attention_factor": None}``;
      ``{"type": "longrope", "frequency_factors": [...], "factor": f,
      "original_max_position": n}`` (Phi-3, Phi-3.5, Phi-4-mini: pair ``k``'s
      frequency divided by its factor, cos and sin times
      ``sqrt(1 + ln f / ln n)``). Given Hugging Face's ``short_factor`` and
      ``long_factor`` instead, the long ones rotate a call whose largest
      position + 1 exceeds ``original_max_position``, as transformers does
      (the caches: an append by its sequence's new length, attention and a
      decode step by the longest sequence); Phi-3's ``config.json`` keeps
      ``max_position_embeddings`` and ``original_max_position_embeddings``
      outside ``rope_scaling``, so add them to the dict.
      ``{"type": "dynamic", "factor": f, "max_position_embeddings": L}``
      (Hugging Face's dynamic NTK): NTK-aware scaling with
      ``alpha = f * max(n, L) / L - (f - 1)``, ``n`` the call's largest
      position + 1 (picked per call like LongRoPE's lists).
      ``{"type": "proportional", "partial_rotary_factor": p}`` (Gemma 4):
      pairs ``(k, k + D/2)`` of the whole head, the first
      ``int(p * D // 2)`` turning at ``theta ** (-2k / D)``, the others kept.
      transformers' ``rope_parameters`` work as they are: their
      ``rope_theta`` must agree with ``theta`` and their
      ``partial_rotary_factor`` sets ``rotary_dim``. Every scaling also
      takes ``"frequency_factors"``: per-pair divisors of its frequencies,
      ``rotary_dim / 2`` of them, ``inf`` to stop a pair (a GGUF model's
      ``rope_freqs`` tensor), and
      M-RoPE's ``"mrope_section"`` (pairs for the temporal, height and width
      positions, e.g. ``[16, 24, 24]`` for Qwen2-VL and Qwen2.5-VL) with
      ``"mrope_interleaved"`` (Qwen3-VL): ``positions`` are then
      ``(3, B, S)`` (transformers' ``position_ids`` for these models) or
      ``(3, S)``. Hugging Face's ``rope_parameters`` with those keys (and
      ``{"type": "mrope", ...}``) are taken as they are; the caches' ``rope=``
      refuses M-RoPE (its positions are not token indices).
    - ``in_place``: rotate ``x`` itself and return it (it must be writable);
      by default a rotated copy of the same kind and dtype is returned.

    Runs on ``num_threads`` worker threads (0: the default) with the GIL
    released. Raises :class:`ValueError` for bad shapes, dtypes or parameters, and
    for a NaN or infinity in x (named by its index; x is left unchanged).
    """
    args = _rope_native_args(theta, rotary_dim, layout, scaling, _longest(positions, scaling), _head_dim(x))
    threads = count(num_threads, "num_threads")
    if in_place:
        if isinstance(x, np.ndarray):
            _check_writable_numpy(x)
        elif not hasattr(x, "__dlpack__"):
            raise TypeError(f"rope(in_place=True) needs a numpy array or a DLPack tensor, got {type(x).__name__}")
        _llmkit.rope(x, positions, num_threads=threads, **args)
        return x
    # Rotated into a new array in one pass (llmkit_rope_into), x read where it is.
    src = _rope_source(x)
    y = _empty_like(src)
    _llmkit.rope(src, positions, num_threads=threads, out=y, **args)
    return y


def _rope_source(x: Any) -> Any:
    """x as llmkit_rope_into reads it: numpy in native byte order, torch without autograd or its negative
    bit (DLPack would drop the sign), anything array-like as float32 numpy."""
    if isinstance(x, np.ndarray):
        return x if x.dtype.isnative else x.astype(x.dtype.newbyteorder("="))
    if _is_torch(x):
        x = x.detach()
        return x.resolve_neg() if x.is_neg() else x
    if hasattr(x, "__dlpack__"):
        return x
    return np.asarray(x, dtype=np.float32)


def _head_dim(x: Any) -> Optional[int]:
    """x's last extent, or None for a scalar (the native call names the rank)."""
    shape = x.shape if hasattr(x, "shape") else np.shape(x)
    return int(shape[-1]) if len(shape) else None


def _needs_longest(scaling: Any) -> bool:
    """Whether a scaling dict depends on the call's positions (Hugging Face's LongRoPE pair, dynamic NTK)."""
    if not isinstance(scaling, Mapping):
        return False
    kind = scaling.get("type", scaling.get("rope_type"))
    return "long_factor" in scaling or (isinstance(kind, str) and kind.lower() == "dynamic")


def _longest(positions: Any, scaling: Any) -> Optional[int]:
    """The largest of ``positions`` + 1 (0 when empty) for a scaling that depends on it; None otherwise."""
    if not _needs_longest(scaling):
        return None
    if _is_torch(positions):
        return int(positions.max()) + 1 if positions.numel() else 0
    arr = np.asarray(positions)
    if arr.dtype.kind not in "iu":
        return None  # the native call names the dtype
    return int(arr.max()) + 1 if arr.size else 0


def _rope_native_args(theta: Any = 10000.0, rotary_dim: Any = None, layout: Any = "neox",
                      scaling: Optional[Mapping[str, Any]] = None, longest: Optional[int] = None,
                      head_dim: Optional[int] = None) -> Dict[str, Any]:
    """:func:`rope`'s rotation arguments as the native module's keywords (layout and scaling as codes);
    ``longest``: the call's largest position + 1 (LongRoPE's pair, dynamic NTK); ``head_dim``: x's
    (a ``partial_rotary_factor`` and proportional RoPE count their dims from it).

    Hugging Face's ``rope_parameters`` carry ``rope_theta`` and ``partial_rotary_factor``: the first must
    agree with ``theta``, the second sets ``rotary_dim`` (int(head_dim * factor), as transformers)."""
    key = layout.lower() if isinstance(layout, str) else layout
    if key not in _LAYOUTS:
        raise ValueError(f"layout must be 'neox' or 'interleaved', got {layout!r}")
    rd = 0
    if rotary_dim is not None:
        rd = int32(rotary_dim, "rotary_dim")
        if rd < 2:
            raise ValueError(f"rotary_dim must be an even number >= 2 (or None for all of head_dim), got {rd}")
    th = real(theta, "theta")
    partial = None
    if isinstance(scaling, Mapping) and ("rope_theta" in scaling or "partial_rotary_factor" in scaling):
        scaling = dict(scaling)
        if "rope_theta" in scaling:
            given = real(scaling.pop("rope_theta"), "scaling['rope_theta']")
            if given != th:
                raise ValueError(f"scaling['rope_theta'] = {given:g} differs from theta = {th:g}; pass theta={given:g}")
        if "partial_rotary_factor" in scaling:
            partial = real(scaling.pop("partial_rotary_factor"), "scaling['partial_rotary_factor']")
            if not 0 < partial <= 1:
                raise ValueError(f"scaling['partial_rotary_factor'] must be in (0, 1], got {partial}")
    kind = scaling.get("type", scaling.get("rope_type")) if isinstance(scaling, Mapping) else None
    proportional = isinstance(kind, str) and kind.lower() == "proportional"
    if proportional:
        if rotary_dim is not None:
            raise ValueError("proportional RoPE rotates pairs across the whole head; give partial_rotary_factor "
                             "in scaling, not rotary_dim")
        if head_dim is None:
            raise ValueError("proportional RoPE needs x's head_dim")
        # Gemma 4: pairs (k, k + D/2) of the whole head, the first int(factor * D // 2) turning at
        # theta^(-2k/D) (/ factor), the others kept: +inf frequency factors.
        params = _scaling_params(kind, {k: v for k, v in scaling.items() if k not in ("type", "rope_type")},
                                 ("factor",))
        if "frequency_factors" in params:
            raise ValueError(f"scaling type {kind!r} sets its own frequency_factors (from partial_rotary_factor)")
        turning = int((1.0 if partial is None else partial) * head_dim // 2)
        factors = np.full(head_dim // 2, np.inf, np.float32)
        factors[:turning] = 1.0
        native = {"factor": 1.0, **params, "scaling": _SCALINGS["linear"], "frequency_factors": factors}
        return dict(layout=_LAYOUTS[key], theta=th, rotary_dims=0, **native)
    if partial is not None and partial != 1.0:
        if head_dim is None:
            raise ValueError("scaling['partial_rotary_factor'] needs x's head_dim")
        n = int(head_dim * partial)
        if rotary_dim is not None and rd != n:
            raise ValueError(f"rotary_dim = {rd} differs from scaling['partial_rotary_factor'] = {partial} of "
                             f"head_dim {head_dim} ({n} dims)")
        rd = n
    return dict(layout=_LAYOUTS[key], theta=th, rotary_dims=rd, **_scaling_args(scaling, longest))


_ROPE_KEYS = ("theta", "rotary_dim", "layout", "scaling")


def _cache_rope(rope: Any, longest: Any = None, head_dim: Optional[int] = None) -> Optional[Dict[str, Any]]:
    """The caches' ``rope=``: None (no rotation), True (rope()'s defaults) or a dict of rope()'s keywords.
    ``longest``: a function giving the call's largest position + 1, asked only for Hugging Face's
    LongRoPE pair."""
    if rope is None or rope is False:
        return None
    if rope is True:
        return _rope_native_args(head_dim=head_dim)
    if not isinstance(rope, Mapping):
        raise TypeError(f"rope must be None, True or a dict of llmkit.rope's keywords ({', '.join(_ROPE_KEYS)}), "
                        f"got {type(rope).__name__}")
    unknown = [k for k in rope if k not in _ROPE_KEYS]
    if unknown:
        raise ValueError(f"rope does not take {', '.join(repr(k) for k in unknown)} (it takes {', '.join(_ROPE_KEYS)})")
    n = longest() if longest is not None and _needs_longest(rope.get("scaling")) else None
    return _rope_native_args(**rope, longest=n, head_dim=head_dim)


_DTYPE_BYTES = {
    "fp32": 4, "f32": 4, "float32": 4, "float": 4,
    "fp16": 2, "f16": 2, "float16": 2, "half": 2,
    "bf16": 2, "bfloat16": 2,
    "int8": 1, "i8": 1, "fp8": 1, "float8": 1,
    "fp8_e4m3": 1, "float8_e4m3fn": 1, "fp8_e5m2": 1, "float8_e5m2": 1,
}


def _dtype_bytes(dtype: Any) -> int:
    if isinstance(dtype, str):
        name = dtype.lower()
    elif type(dtype).__module__.startswith("torch"):
        name = str(dtype).lower().replace("torch.", "")
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            raise TypeError(f"dtype must be a name such as 'fp16', got {type(dtype).__name__}") from None
    b = _DTYPE_BYTES.get(name)
    if b is None:
        names = sorted(_DTYPE_BYTES)
        raise ValueError(f"dtype {dtype!r} is not a KV-cache element type ({', '.join(names)})")
    return b


def attention_isa() -> str:
    """The kernel set attention uses on this CPU: ``"avx512vnni"`` (AVX-512, with int8 KV caches decoded in
    integers: queries and weights rounded to int16), ``"avx512"``, ``"avx2"`` or ``"generic"``
    (``LLMKIT_MAX_CPU_ISA=avx2`` or ``generic`` caps it)."""
    return _llmkit.attention_isa()


def kv_cache_bytes(
    *,
    n_layers: int,
    n_kv_heads: int,
    head_dim: int,
    dtype: Any = "fp16",
    context: int,
    batch: int = 1,
    v_head_dim: Optional[int] = None,
    v_from_k: bool = False,
) -> int:
    """Bytes of a KV cache: ``2 * n_layers * n_kv_heads * head_dim * bytes(dtype) * context * batch``.

    With ``v_head_dim`` (None: ``head_dim``), V's rows are counted at their own
    width: ``n_layers * n_kv_heads * (head_dim + v_head_dim) * ...``; with
    ``v_from_k`` (MLA's latent cache, see :class:`KVCache`) there are none.
    DeepSeek-V3 in bf16: 4997120 bytes per token with its heads' keys (192) and
    values (128), 70272 with the latent (one head of 576, ``v_from_k``).

    ``dtype`` is ``"fp32"``, ``"fp16"``, ``"bf16"`` or ``"int8"`` (also
    ``"float16"``, ``"bfloat16"``, ``"fp8"``, numpy or torch dtypes). The 2 counts
    K and V. Llama 2 7B (32 layers, 32 kv heads of 128) in fp16 at 4096 tokens
    takes 2 GiB; Llama 3 8B (8 kv heads, GQA) 512 MiB::

        >>> llmkit.kv_cache_bytes(n_layers=32, n_kv_heads=8, head_dim=128, dtype="bf16", context=4096)
        536870912

    Raises :class:`ValueError` for a negative count or a product beyond 64 bits.
    """
    args = [as_int(a, n) for a, n in ((n_layers, "n_layers"), (n_kv_heads, "n_kv_heads"), (head_dim, "head_dim"))]
    dv = 0 if _flag(v_from_k, "v_from_k") else args[2] if v_head_dim is None else as_int(v_head_dim, "v_head_dim")
    ctx, b = as_int(context, "context"), as_int(batch, "batch")
    for val, n in zip(args + [dv, ctx, b], ("n_layers", "n_kv_heads", "head_dim", "v_head_dim", "context", "batch")):
        if not -(2**63) <= val < 2**63:
            raise ValueError(f"{n} = {val} does not fit a 64-bit integer")
    return int(_llmkit.kv_cache_bytes(args[0], args[1], args[2], dv, _dtype_bytes(dtype), ctx, b))


# ---------------------------------------------------------------------------
# KV caches.

_KV_DTYPES = {
    "fp32": "fp32", "f32": "fp32", "float32": "fp32", "float": "fp32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "f16": "fp16", "float16": "fp16", "half": "fp16",
    "int8": "int8", "i8": "int8",
    "fp8_e4m3": "fp8_e4m3", "float8_e4m3fn": "fp8_e4m3", "e4m3": "fp8_e4m3",
    "fp8_e5m2": "fp8_e5m2", "float8_e5m2": "fp8_e5m2", "e5m2": "fp8_e5m2",
}


def _kv_dtype(dtype: Any) -> str:
    if isinstance(dtype, str):
        name = dtype.lower()
    elif type(dtype).__module__.startswith("torch"):
        name = str(dtype).lower().replace("torch.", "")
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            raise TypeError(f"dtype must be a name such as 'bf16', got {type(dtype).__name__}") from None
    code = _KV_DTYPES.get(name)
    if code is None:
        raise ValueError(f"dtype {dtype!r} is not a KV-cache dtype (fp32, bf16, fp16, int8, fp8_e4m3 or fp8_e5m2)")
    return code


def _seq_list(seq_ids: Any, name: str = "seq_ids") -> list:
    if isinstance(seq_ids, (int, np.integer)):
        return [int32(seq_ids, name)]
    return [int32(s, f"{name}[{i}]") for i, s in enumerate(seq_ids)]


def _ndim(x: Any) -> int:
    return len(x.shape) if hasattr(x, "shape") else np.asarray(x).ndim


def _unsqueeze0(x: Any) -> Any:
    return x[None] if hasattr(x, "shape") else np.asarray(x, dtype=np.float32)[None]


class _CacheBase:
    """What both caches share: sequences, append, attention, prefill and decode."""

    _native: Any
    _head_dim: int
    _v_head_dim: int

    def _set_layout(self, head_dim: Any, v_head_dim: Any) -> None:
        """Keeps the head dims the calls need (RoPE's frequency factors, the output's last axis)."""
        self._head_dim = int32(head_dim, "head_dim")
        self._v_head_dim = self._head_dim if v_head_dim is None else int32(v_head_dim, "v_head_dim")
        if self._v_head_dim < 1:  # (the C API's 0 means head_dim: here that is None)
            raise ValueError(f"v_head_dim must be >= 1 (or None for head_dim), got {self._v_head_dim}")

    def _out_like(self, q: Any) -> Any:
        """The attention's output: q's kind, dtype and shape with the cache's v_head_dim as its last axis."""
        if len(q.shape) < 1:
            return _empty_like(q)
        return _empty_like(q, tuple(q.shape[:-1]) + (self._v_head_dim,))

    def new_sequence(self) -> int:
        """Starts an empty sequence and returns its id."""
        return int(self._native.seq_new())

    def fork(self, seq: int) -> int:
        """Starts a new sequence holding ``seq``'s tokens and returns its id (see the class docstring for sharing)."""
        return int(self._native.fork(int32(seq, "seq")))

    def free(self, seq: int) -> None:
        """Ends a sequence; its slot (and, for the paged cache, blocks no one else holds) can be reused."""
        self._native.free(int32(seq, "seq"))

    def truncate(self, seq: int, n: int) -> None:
        """Keeps ``seq``'s first ``n`` tokens in every layer and drops the rest: the draft tokens that
        speculative verification rejected, or a turn rolled back. The next append writes from
        position ``n``. The paged cache returns the blocks past them (unless a fork holds them)."""
        self._native.truncate(int32(seq, "seq"), as_int(n, "n"))

    def erase(self, seq: int, start: int, stop: int, *, rope: Any = None) -> None:
        """Removes tokens ``start`` to ``stop - 1`` of ``seq`` from every layer; the tokens after
        them move down by ``stop - start``. This is llama.cpp's context shift (``seq_rm`` then
        ``seq_add``) and StreamingLLM's rolling cache: when a sequence fills its context, drop a
        span, keeping the first tokens (the system prompt, the attention sinks) and the latest ones,
        and go on generating. ``0 <= start <= stop <=`` the tokens every layer holds.

        ``rope``: the rotation the appends used (as :meth:`append`'s: True or a dict of
        :func:`llmkit.rope`'s keywords). Each moved key is turned by ``-(stop - start)``
        positions, in float32 and rounded to the cache's dtype again: RoPE's angles grow linearly
        with the position, so the cache then holds what appending the kept tokens at their new
        positions stores (to the rounding; YaRN's attention factor is not applied twice). None
        (default) moves K as it is: a model without RoPE. V always moves as it is. On a ``v_from_k``
        cache (MLA's latent rows) the turn is the appends': the last ``rotary_dim`` of each row.

        The next append writes at the new length, and :meth:`attention`'s queries sit at the new
        positions. The paged cache copies a block it shares with a fork before writing into it
        and returns the blocks past the new length; a span before the tokens
        :meth:`PagedKVCache.release_before` released is refused.
        """
        self._native.erase(int32(seq, "seq"), as_int(start, "start"), as_int(stop, "stop"),
                           _cache_rope(rope, lambda: self.length(seq), self._head_dim))

    def save(self, seq: int) -> bytes:
        """``seq``'s cached K and V, every layer, as bytes: the cache's own rows (its dtype, int8 and
        FP8 row scales included) after a 40-byte header naming the format, dtype and shape. Write
        them to disk to keep a prefilled prompt across runs, or :meth:`load` them into another
        sequence, of this cache or another one (contiguous or paged, any capacity or block size)
        of the same dtype, layers, kv heads and head dims. A load gives back the same bits. A paged
        sequence whose first tokens :meth:`PagedKVCache.release_before` released saves the tokens
        it holds (format version 2), which load into a paged cache whose ``block_size`` divides
        the first one, and stay released there."""
        return bytes(self._native.save(int32(seq, "seq")))

    def load(self, seq: int, data: Any) -> None:
        """Replaces ``seq``'s tokens with those :meth:`save` gave (``bytes``, ``bytearray``,
        ``memoryview`` or a uint8 array). Every byte is checked first, so an error leaves ``seq``
        as it was: ValueError for bytes saved from a cache of another dtype or shape, or holding
        more tokens than a sequence here can; :class:`llmkit.LlmkitError` (``status``
        ``"LLMKIT_ERROR_FORMAT"``) naming the problem for truncated, corrupt or hostile bytes, and
        (``"LLMKIT_ERROR_UNSUPPORTED"``) for a released sequence's bytes that this cache cannot
        hold (a contiguous cache, or a block_size not dividing the tokens released);
        MemoryError where the paged pool lacks the blocks."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            view = memoryview(data).cast("B")  # a flat byte view (TypeError for a non-contiguous one)
        else:
            arr = np.asarray(data)
            if arr.dtype != np.uint8:
                raise TypeError(f"data must be bytes, bytearray, memoryview or a uint8 array, got {type(data).__name__}"
                                f" of {arr.dtype}")
            view = memoryview(np.ascontiguousarray(arr).reshape(-1))
        self._native.load(int32(seq, "seq"), view)

    def length(self, seq: int, layer: Optional[int] = None) -> int:
        """Tokens ``seq`` holds in ``layer`` (None: the largest over layers)."""
        return int(self._native.length(int32(seq, "seq"), -1 if layer is None else int32(layer, "layer")))

    @property
    def memory_bytes(self) -> int:
        """Bytes of K/V (and int8 scales) the cache holds: allocated (contiguous) or in use (paged)."""
        return int(self._native.memory_bytes)

    def append(self, layer: int, seq: int, k: Any, v: Any = None, *, rope: Any = None) -> None:
        """Appends the K and V rows of new tokens, shape ``(S, n_kv_heads, head_dim)`` (or ``(1, S, ...)``).

        float32, float16 or bfloat16 (numpy, torch); converted to the cache's dtype.
        ``v`` is ``(S, n_kv_heads, v_head_dim)``; a cache made with ``v_from_k``
        keeps no V and takes none (``v=None``).

        ``rope``: RoPE fused into the append. None (default) stores K as given;
        True or a dict of :func:`llmkit.rope`'s keywords (``theta``,
        ``rotary_dim``, ``layout``, ``scaling``) rotates each K row on its way
        in, token ``j`` of the sequence at position ``j``, in float32 before
        the cache's rounding: the same bits as ``llmkit.rope`` on a float32
        copy of K at those positions, then a plain append, without the copy.
        Pass the same ``rope`` to :meth:`attention` for the queries.
        """
        k = _as_input(k, "k")
        v = None if v is None else _as_input(v, "v")
        n_new = k.shape[-3] if _ndim(k) >= 3 else 0
        self._native.append(int32(layer, "layer"), int32(seq, "seq"), k, v,
                            _cache_rope(rope, lambda: self.length(seq, layer) + n_new, self._head_dim))

    def _append_rotated(self, layer: int, seq: int, k: Any, v: Any, rope_args: Optional[Dict[str, Any]]) -> None:
        """:meth:`append` with the rotation already resolved (:func:`_cache_rope`)."""
        self._native.append(int32(layer, "layer"), int32(seq, "seq"), k, v, rope_args)

    def attention(
        self,
        layer: int,
        q: Any,
        seq_ids: Any,
        *,
        causal: bool = True,
        window: Optional[int] = None,
        softcap: Optional[float] = None,
        scale: Optional[float] = None,
        alibi_slopes: Optional[Any] = None,
        sinks: Optional[Any] = None,
        split_keys: Optional[int] = None,
        num_threads: int = 0,
        rope: Any = None,
        return_lse: bool = False,
        cu_seqlens_q: Any = None,
    ) -> Any:
        """Attention of ``q`` ``(B, Sq, Hq, D)`` over the cached sequences ``seq_ids`` (B ids).

        ``q[b]`` are the queries of the *last* Sq tokens of ``seq_ids[b]`` (append
        their K and V first): a prefill chunk sees the cached prefix and itself
        (causal, bottom-right aligned), decode is ``Sq = 1`` with sequences of
        different lengths in one call. K and V are read from the cache in place.
        ``sinks``: ``Hq`` attention-sink logits (gpt-oss) joining each head's
        softmax denominator. ``split_keys``: keys per split-KV part (None: 1024).
        ``rope``: as :meth:`append`'s, for the queries: each is rotated at its
        position (query ``i`` of sequence ``b`` at ``length - Sq + i``) in a
        copy, ``q`` itself unchanged. The other options are those of
        :func:`llmkit.attention`. Returns an array of q's kind and dtype, shape
        ``(B, Sq, Hq, v_head_dim)``, or with ``return_lse`` ``(out, lse)``, lse float32 ``(B, Sq, Hq)`` (see
        :func:`llmkit.attention` and :func:`llmkit.attention_merge`).

        ``cu_seqlens_q``: ``B + 1`` offsets (flash-attn's varlen form) for a
        batch whose sequences bring different numbers of queries, packed end
        to end in ``q`` ``(Tq, Hq, D)``: sequence ``b``'s are rows
        ``cu_seqlens_q[b]:cu_seqlens_q[b + 1]``, its last tokens. One call then
        serves a serving step's decodes (one query each) and prefill chunks
        side by side; each sequence gets the bits of a call with its queries
        alone. The output is ``(Tq, Hq, D)``, the lse ``(Tq, Hq)``.
        """
        q = _as_input(q, "q")
        ids = _seq_list(seq_ids)
        out = self._out_like(q)
        cu = None if cu_seqlens_q is None else int_array(cu_seqlens_q, "cu_seqlens_q", wide=True)
        lse = _empty_lse(q, 4 if cu is None else 3) if _flag(return_lse, "return_lse") else None
        longest = lambda: max((self.length(s, layer) for s in ids), default=0)  # noqa: E731
        self._native.attention(int32(layer, "layer"), q, ids, out, **_kv_kwargs(causal, window, softcap, scale,
                                                                                alibi_slopes, sinks, split_keys,
                                                                                num_threads),
                               rope=_cache_rope(rope, longest, self._head_dim), lse=lse, cu_seqlens_q=cu)
        return out if lse is None else (out, lse)

    def prefill(self, layer: int, seq: int, q: Any, k: Any, v: Any = None, **options: Any) -> Any:
        """Appends a chunk's K, V ``(S, Hkv, D)`` to ``seq`` and returns its queries' attention ``(S, Hq, Dv)``.

        The first chunk is a prefill; later ones are chunked prefill (they attend to every earlier token).
        A ``rope`` option rotates both K and the queries (see :meth:`append`). With ``return_lse=True``
        it returns ``(out, lse)``, lse float32 ``(S, Hq)``.
        """
        self.append(layer, seq, k, v, rope=options.get("rope"))
        result = self.attention(layer, _unsqueeze0(_as_input(q, "q")), [seq], **options)
        return tuple(x[0] for x in result) if isinstance(result, tuple) else result[0]

    def decode(self, layer: int, seq_ids: Any, q: Any, k: Any, v: Any = None, **options: Any) -> Any:
        """One decode step for B sequences: appends ``k[b], v[b]`` ``(Hkv, D)`` to ``seq_ids[b]`` and
        returns the attention of ``q`` ``(B, Hq, D)`` over each whole sequence, ``(B, Hq, Dv)``. A ``rope``
        option rotates both K and the queries (see :meth:`append`); ``return_lse=True`` returns
        ``(out, lse)``, lse float32 ``(B, Hq)``. ``v`` is None for a ``v_from_k`` cache."""
        ids = _seq_list(seq_ids)
        q, k = _as_input(q, "q"), _as_input(k, "k")
        v = None if v is None else _as_input(v, "v")
        if _ndim(q) != 3 or _ndim(k) != 3 or (v is not None and _ndim(v) != 3):
            raise ValueError("decode takes q (B, Hq, D), k (B, Hkv, D) and v (B, Hkv, Dv): one token per sequence")
        v_rows = k.shape[0] if v is None else v.shape[0]
        if not (len(ids) == q.shape[0] == k.shape[0] == v_rows):
            raise ValueError(f"decode: {len(ids)} seq_ids but q, k, v hold {q.shape[0]}, {k.shape[0]}, {v_rows} tokens")
        # One rotation for the whole step, as Hugging Face picks LongRoPE's factors for the batch.
        rope_args = _cache_rope(options.get("rope"), lambda: max((self.length(s, layer) for s in ids), default=0) + 1,
                                self._head_dim)
        for b, s in enumerate(ids):
            self._append_rotated(layer, s, k[b:b + 1], None if v is None else v[b:b + 1], rope_args)
        result = self.attention(layer, q[:, None], ids, **options)
        return tuple(x[:, 0] for x in result) if isinstance(result, tuple) else result[:, 0]


def _window(window: Any) -> int:
    """The C options' window: 0 for None; a window past int64 sees every key, as int64's largest does."""
    if window is None:
        return 0
    win = as_int(window, "window")
    if win < 1:
        raise ValueError(f"window must be >= 1 (or None for no window), got {win}")
    return min(win, 2**63 - 1)


def _kv_kwargs(causal: Any, window: Any, softcap: Any, scale: Any, alibi_slopes: Any, sinks: Any, split_keys: Any,
               num_threads: Any) -> Dict[str, Any]:
    _flag(causal, "causal")
    win = _window(window)
    split = 0
    if split_keys is not None:
        split = as_int(split_keys, "split_keys")
        if not 1 <= split <= 2**40:
            raise ValueError(f"split_keys must be in 1..2**40 (or None for automatic), got {split}")

    return dict(causal=bool(causal), window=win, softcap=_positive(softcap, "softcap"), scale=_positive(scale, "scale"),
                alibi_slopes=_heads(alibi_slopes), sinks=_heads(sinks), num_threads=count(num_threads, "num_threads"),
                split_keys=split)


class KVCache(_CacheBase):
    """A contiguous KV cache: ``max_sequences`` slots of ``capacity`` tokens for every layer, in host memory.

    ``dtype`` is the storage type: ``"fp32"``, ``"bf16"``, ``"fp16"``,
    ``"int8"`` (symmetric, one float32 scale per token and kv head,
    ``scale = absmax / 127``, dequantized inside the attention kernel),
    ``"fp8_e4m3"`` or ``"fp8_e5m2"`` (``torch.float8_e4m3fn`` /
    ``float8_e5m2`` bytes of ``x / scale`` with one float32 scale per token
    and kv head, ``absmax / 448`` or ``/ 57344``, widened inside the kernel). All
    memory is allocated up front. :meth:`fork` copies the rows (use
    :class:`PagedKVCache` to share them). Threads may share a cache: every
    call releases the GIL, :meth:`attention` calls run together, and appends,
    new sequences, forks and frees each run alone (a lock, as the C API asks
    of its callers)::

        cache = llmkit.KVCache(n_layers=32, n_kv_heads=8, head_dim=128, capacity=4096, dtype="bf16")
        s = cache.new_sequence()
        out = cache.prefill(layer, s, q, k, v)           # q (S, Hq, D), k, v (S, Hkv, D)
        out = cache.decode(layer, [s], q1, k1, v1)       # q1 (1, Hq, D), k1, v1 (1, Hkv, D)

    ``v_head_dim`` (None: ``head_dim``) gives V, and so the output, a head_dim
    of its own: DeepSeek-V2/V3's heads have keys of 192 and values of 128.
    ``v_from_k=True`` keeps no V at all: a token's V is the first
    ``v_head_dim`` elements of its K row. That is multi-head latent attention's
    cache in its absorbed form (see the "Attention" concept page): one kv head
    of 576 = 512 latent + 64 rotary dimensions, ``v_head_dim=512``, 1152 bytes
    per token and layer in bf16; appends then take K alone (``v=None``). A
    fused ``rope`` there turns the *last* ``rotary_dim`` of each key and query,
    the rotary part after the latent (DeepSeek's k_pe and q_pe), on append,
    attention and :meth:`erase` alike; all of the row, or dims reaching into
    V, are refused (they would turn the values)::

        mla = llmkit.KVCache(n_layers=61, n_kv_heads=1, head_dim=576, v_head_dim=512, v_from_k=True,
                             capacity=32768, dtype="bf16")
        rope = {"rotary_dim": 64, "layout": "interleaved"}
        out = mla.decode(layer, [s], q_absorbed, latent_and_rope, rope=rope)  # (B, 128, 576), (B, 1, 576) -> (B, 128, 512)
    """

    def __init__(self, *, n_layers: int, n_kv_heads: int, head_dim: int, capacity: int, max_sequences: int = 1,
                 dtype: Any = "fp32", v_head_dim: Optional[int] = None, v_from_k: bool = False) -> None:
        self._set_layout(head_dim, v_head_dim)
        self._native = _llmkit.KVCache(int32(n_layers, "n_layers"), int32(n_kv_heads, "n_kv_heads"),
                                       self._head_dim, as_int(capacity, "capacity"),
                                       int32(max_sequences, "max_sequences"), _kv_dtype(dtype), self._v_head_dim,
                                       _flag(v_from_k, "v_from_k"))


class PagedKVCache(_CacheBase):
    """A paged KV cache: a pool of ``n_blocks`` blocks of ``block_size`` tokens (every layer's K and V)
    shared by the sequences through block tables, as in vLLM and FlashInfer.

    Blocks come from a free list as sequences grow, so memory follows the
    tokens actually held (``memory_bytes``), not the longest possible sequence.
    :meth:`fork` shares every block of the parent (reference counts, no copy);
    the first append of either sequence into a shared block copies that block
    first (copy-on-write), so the parent stays intact. Attention walks the
    block tables directly and gives the same bits as :class:`KVCache`.
    Under a sliding window, :meth:`release_before` gives back the blocks the
    window has left, so a sequence holds about ``window + block_size`` tokens.
    ``max_blocks_per_seq`` (None: ``n_blocks``) bounds one sequence. Threads
    may share it as they may a :class:`KVCache`. ``v_head_dim`` and
    ``v_from_k`` (MLA's latent cache, V read from K's rows) are as
    :class:`KVCache`'s.
    """

    def __init__(self, *, n_layers: int, n_kv_heads: int, head_dim: int, n_blocks: int, block_size: int = 16,
                 max_sequences: int = 64, max_blocks_per_seq: Optional[int] = None, dtype: Any = "fp32",
                 v_head_dim: Optional[int] = None, v_from_k: bool = False) -> None:
        per_seq = 0 if max_blocks_per_seq is None else as_int(max_blocks_per_seq, "max_blocks_per_seq")
        if max_blocks_per_seq is not None and per_seq < 1:
            raise ValueError(f"max_blocks_per_seq must be >= 1 (or None for n_blocks), got {per_seq}")
        self._set_layout(head_dim, v_head_dim)
        self._native = _llmkit.PagedKVCache(int32(n_layers, "n_layers"), int32(n_kv_heads, "n_kv_heads"),
                                            self._head_dim, int32(block_size, "block_size"),
                                            as_int(n_blocks, "n_blocks"), int32(max_sequences, "max_sequences"),
                                            per_seq, _kv_dtype(dtype), self._v_head_dim, _flag(v_from_k, "v_from_k"))

    @property
    def free_blocks(self) -> int:
        """Blocks on the free list."""
        return int(self._native.free_blocks)

    @property
    def pool_bytes(self) -> int:
        """Bytes of the whole pool."""
        return int(self._native.pool_bytes)

    def block_table(self, seq: int) -> list:
        """The block ids of ``seq``, in token order (-1 for blocks :meth:`release_before` released)."""
        return list(self._native.block_table(int32(seq, "seq")))

    def release_before(self, seq: int, n: int) -> int:
        """Says that ``seq`` no longer needs its first ``n`` tokens, in any layer, and returns the
        first token it still holds (a multiple of ``block_size``; ``n=0`` just asks).

        The blocks holding only such tokens return to the pool (unless a fork holds them) and
        show as -1 in :meth:`block_table`; the tokens keep their positions (length, the next
        append and RoPE are unchanged). For a model whose every layer attends through a sliding
        window of ``W`` keys (Mistral 7B v0.1: 4096), calling ``release_before(seq,
        max(0, length - W + 1))`` after each step keeps about ``W + block_size`` tokens per sequence
        however long it grows. Attention must then keep to the tokens held: a call whose
        ``window`` (or lack of one) would let a query see a released token raises ValueError
        naming the window that fits. :meth:`save` keeps the tokens held; :meth:`truncate`
        takes it to 0 tokens or to at least the first token held. ``n`` may be 0 up to the
        tokens ``seq`` holds in its shortest layer (ValueError otherwise). The block table still
        spans every position, so ``max_blocks_per_seq`` bounds the positions a sequence reaches,
        while ``n_blocks`` need only cover the tokens held. A model that mixes windowed and
        global layers (Gemma 2 and 3, gpt-oss) keeps them in two caches, one per kind of layer,
        and releases from the windowed layers' cache only (a block holds every layer's rows)."""
        return int(self._native.release_before(int32(seq, "seq"), as_int(n, "n")))

    def attention_tables(self, layer: int, q: Any, block_tables: Any, seq_lens: Any, *, causal: bool = True,
                         window: Optional[int] = None, softcap: Optional[float] = None, scale: Optional[float] = None,
                         alibi_slopes: Optional[Any] = None, sinks: Optional[Any] = None,
                         split_keys: Optional[int] = None, num_threads: int = 0, rope: Any = None,
                         return_lse: bool = False, cu_seqlens_q: Any = None) -> Any:
        """:meth:`attention` with caller-made block tables: ``block_tables`` ``(B, max_blocks)`` and
        ``seq_lens`` ``(B,)``, integer arrays, tensors or lists (int32 tables and int32/int64 lengths pass
        without a copy; other integer dtypes are converted). A block id outside the pool raises
        :class:`ValueError`, as do floats. ``cu_seqlens_q`` packs the queries as in :meth:`attention`."""
        q = _as_input(q, "q")
        out = self._out_like(q)
        cu = None if cu_seqlens_q is None else int_array(cu_seqlens_q, "cu_seqlens_q", wide=True)
        lse = _empty_lse(q, 4 if cu is None else 3) if _flag(return_lse, "return_lse") else None
        tables = int_array(block_tables, "block_tables")
        lens = int_array(seq_lens, "seq_lens", wide=True)
        self._native.attention_tables(int32(layer, "layer"), q, tables, lens, out,
                                      **_kv_kwargs(causal, window, softcap, scale, alibi_slopes, sinks, split_keys,
                                                   num_threads),
                                      rope=_cache_rope(rope, lambda: int(np.max(np.asarray(lens))) if len(lens) else 0,
                                                       self._head_dim), lse=lse, cu_seqlens_q=cu)
        return out if lse is None else (out, lse)
