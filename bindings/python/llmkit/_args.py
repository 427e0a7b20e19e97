"""Argument checks shared by the llmkit package (private).

They turn Python values into what the native module expects and raise
ValueError / TypeError with a message that names the argument, for the few
problems the C library cannot see (a value that does not fit its C type).
"""

from __future__ import annotations

import operator
import secrets
from typing import List, Optional, Sequence

import numpy as np

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def as_int(x: object, name: str) -> int:
    """``x`` as a Python int (anything with ``__index__``), else TypeError."""
    try:
        return operator.index(x)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(x).__name__}") from None


def real(x: object, name: str) -> float:
    """``x`` as a Python float (ints, floats, numpy and 0-d tensor scalars), else TypeError."""
    if isinstance(x, (str, bytes)) or not hasattr(x, "__float__"):
        raise TypeError(f"{name} must be a number, got {type(x).__name__}")
    return float(x)  # type: ignore[arg-type]


def int32(x: object, name: str) -> int:
    v = as_int(x, name)
    if not _INT32_MIN <= v <= _INT32_MAX:
        raise ValueError(f"{name} = {v} does not fit a 32-bit signed integer")
    return v


def count(x: object, name: str) -> int:
    """A non-negative size (min_keep, top_logprobs, num_threads)."""
    v = as_int(x, name)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    if v > _INT32_MAX:
        raise ValueError(f"{name} = {v} is too large")
    return v


def u64(x: object, name: str) -> int:
    v = as_int(x, name)
    if not 0 <= v < 2**64:
        raise ValueError(f"{name} must be in [0, 2**64), got {v}")
    return v


def seed(x: Optional[int], name: str = "seed") -> int:
    """A 64-bit seed; None draws a fresh one from the OS's entropy source."""
    if x is None:
        return secrets.randbits(64)
    return u64(x, name)


def u32_words(values: Sequence[int], n: int, name: str) -> List[int]:
    vals = [as_int(v, name) for v in values]
    if len(vals) != n:
        raise ValueError(f"{name} must have {n} words, got {len(vals)}")
    for v in vals:
        if not 0 <= v < 2**32:
            raise ValueError(f"{name}: {v} is not an unsigned 32-bit integer")
    return vals


def _integer_array(x: object, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.size == 0:
        return a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    return a


def _dtype_is(x: object, *names: str) -> bool:
    """Whether x (numpy or torch) has one of the dtypes named ("int32" matches numpy's and torch.int32)."""
    dt = str(getattr(x, "dtype", ""))
    return dt.split(".")[-1] in names


def int_array(x: object, name: str, *, wide: bool = False) -> object:
    """An integer array of any shape as int32, or int32/int64 when ``wide``: arrays and tensors of those
    dtypes pass as they are (no copy); other integer arrays and lists are converted when every value fits.
    Floats are refused, not truncated."""
    if hasattr(x, "__dlpack__") and _dtype_is(x, "int32", *(("int64",) if wide else ())):
        return x
    a = _integer_array(x, name)
    if wide:
        if a.dtype == np.uint64 and a.size and int(a.max()) > 2**63 - 1:
            raise ValueError(f"{name}: {int(a.max())} does not fit int64")
        return np.ascontiguousarray(a, dtype=np.int64)
    if a.size and (int(a.min()) < _INT32_MIN or int(a.max()) > _INT32_MAX):
        bad = int(a.min()) if int(a.min()) < _INT32_MIN else int(a.max())
        raise ValueError(f"{name}: {bad} does not fit int32")
    return np.ascontiguousarray(a, dtype=np.int32)


def token_ids(x: object, name: str) -> np.ndarray:
    """A 1-D int32 array of token ids (an int is a list of one)."""
    a = _integer_array(x, name)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size and (int(a.min()) < _INT32_MIN or int(a.max()) > _INT32_MAX):
        raise ValueError(f"{name}: token ids must fit int32")
    return a.astype(np.int32, copy=False)


def seq_ids(x: object, name: str = "seq_ids") -> Optional[np.ndarray]:
    """None, or a 1-D int64 array of sequence ids (an int is a list of one)."""
    if x is None:
        return None
    a = _integer_array(x, name)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype == np.uint64 and a.size and int(a.max()) > 2**63 - 1:
        raise ValueError(f"{name}: sequence ids must fit int64")
    return np.ascontiguousarray(a, dtype=np.int64)
