"""Matmul with quantized weights (llmkit_quant_matmul / llmkit_quant_matmul_int8).

:meth:`QuantizedTensor.matmul` lands here; :func:`quant_matmul_int8` takes
int8 weights and per-row scales as two arrays (PyTorch's per-channel layout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import _llmkit
from ._args import count

if TYPE_CHECKING:
    from ._quant import QuantizedTensor


def _detached(x: Any) -> Any:
    if getattr(x, "requires_grad", False) and hasattr(x, "detach"):
        return x.detach()  # torch refuses to export tensors that require grad
    return x


_INT8_ID = _llmkit.quant_type_from_name("int8")


def quantized_matmul(qt: "QuantizedTensor", x: Any, num_threads: int) -> np.ndarray:
    """The body of :meth:`QuantizedTensor.matmul`.

    The tensor's fields are read directly (no property that calls into the
    native module): a decode step calls this once per weight matrix, and a
    GEMV of a few rows takes a few microseconds.
    """
    threads = count(num_threads, "num_threads")
    x = _detached(x)
    shape = qt._shape
    rows, k = (shape[0], shape[1]) if len(shape) == 2 else (1, shape[0])
    if qt._type_id == _INT8_ID:  # llmkit's per-row int8 format: weight [rows, k] int8, scales [rows, 1] float32
        planes = qt.planes()
        y = _llmkit.quant_matmul_int8(x, planes["weight"].reshape(rows, k), planes["scales"].reshape(-1), threads)
    else:
        y = _llmkit.quant_matmul(x, qt._type_id, qt._data, rows, k, threads)
    if len(shape) == 1:  # a single weight row: drop its axis, as x @ w does
        y = y.reshape(y.shape[:-1])
    return y


_X_ROUNDINGS = {"blocks": 0, "rows": 1}


def quant_matmul_int8(x: Any, weight: Any, scales: Any, *, num_threads: int = 0, x_rounding: str = "blocks") -> np.ndarray:
    """``x @ (scales[:, None] * weight).T`` with int8 weights and one float32 scale per row, without decoding them.

    ``weight`` is int8 with shape ``(rows, k)`` and contiguous rows, ``k`` a
    multiple of 32; ``scales`` is float32 ``(rows,)`` (symmetric per-channel
    int8, as ``torch.quantize_per_channel(w, scales, zeros=0, axis=0,
    dtype=torch.qint8)`` stores it). ``x`` is float32 ``(k,)`` or ``(m, k)``;
    the result is a new float32 array ``(rows,)`` or ``(m, rows)``. Each
    32-element block of ``x`` is rounded to int8 on the fly, as in
    :meth:`QuantizedTensor.matmul`. Runs with the GIL released.

    ``x_rounding="rows"`` rounds each row of ``x`` to 7-bit integers with one
    scale (``max |row| / 63``, as PyTorch's dynamic int8 linear does on x86,
    there per tensor), so each output is one exact int32 sum: an integer
    matmul, run by llmkit's own VNNI tiles on AVX512-VNNI CPUs (3-5x the
    default's speed for prefill, about PyTorch's fbgemm) and elsewhere by
    oneDNN when llmkit is built with it and ``x`` has 24 rows or more, with
    the same bits every way. Coarser than the default's 32-element blocks:
    about twice the error bound, more where one element dominates a row.
    ``k`` at most 133144.

    Raises :class:`ValueError` for wrong dtypes or shapes, an unknown
    ``x_rounding``, or a NaN or infinity in ``x``.
    """
    if x_rounding not in _X_ROUNDINGS:
        raise ValueError(f"x_rounding must be 'blocks' or 'rows', got {x_rounding!r}")
    return _llmkit.quant_matmul_int8(_detached(x), _detached(weight), _detached(scales),
                                     count(num_threads, "num_threads"), _X_ROUNDINGS[x_rounding])


def quant_matmul_isa() -> str:
    """The instruction set the quantized matmul kernels use on this CPU: ``"avx512vnni"``, ``"avx2"`` or
    ``"scalar"`` (the same bits from each; ``LLMKIT_MAX_CPU_ISA=avx2`` or ``generic`` caps it)."""
    return _llmkit.quant_matmul_isa()
