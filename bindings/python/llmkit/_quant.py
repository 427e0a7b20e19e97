"""Quantization into GGUF block formats (llmkit_quantize / llmkit_dequantize).

The native module does the work; this module names the types, checks the
arguments the C library cannot see, and keeps quantized bytes together with
their type and shape in :class:`QuantizedTensor`.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _llmkit
from ._args import as_int, count

# ggml numbers its types below 40 (GGML_TYPE_COUNT); llmkit implements a subset.
_MAX_GGML_TYPE = 64


def _type_id(t: Union[str, int], name: str = "type") -> int:
    """A ggml type id from a ggml name ("q4_K", any case) or the id itself."""
    if isinstance(t, str):
        return _llmkit.quant_type_from_name(t)
    if isinstance(t, (bool, np.bool_)):
        raise TypeError(f"{name} must be a ggml type name such as 'q4_K', got {t!r}")
    try:
        tid = as_int(t, name)
    except TypeError:
        raise TypeError(f"{name} must be a ggml type name such as 'q4_K', got {type(t).__name__}") from None
    if not 0 <= tid < 2**31 or _llmkit.quant_type_name(tid) is None:
        raise ValueError(f"{name} = {tid} is not a ggml type llmkit implements (see llmkit.quant_types())")
    return tid


def quant_types() -> List[str]:
    """The quantization types llmkit implements, as ggml spells them, in ggml's type order.

    ``['f32', 'f16', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q8_0', 'q8_1', 'q2_K', 'q3_K',
    'q4_K', 'q5_K', 'q6_K', 'q8_K', 'iq4_nl', 'iq4_xs', 'bf16']``. Any of these
    (in any case) can be passed as ``type`` to :func:`quantize`.
    """
    names = []
    for tid in range(_MAX_GGML_TYPE):
        n = _llmkit.quant_type_name(tid)
        if n is not None:
            names.append(n)
    return names


def quant_block_size(type: Union[str, int]) -> Tuple[int, int]:
    """The block of a type as ``(elements, bytes)``: ``quant_block_size("q4_K") == (256, 144)``.

    A row's length must be a multiple of ``elements``; a row of ``n`` elements
    takes ``n // elements * bytes`` bytes. ``type`` is a ggml name (any case) or
    a ggml type id. Raises :class:`ValueError` for an unknown type.
    """
    e, b = _llmkit.quant_block_size(_type_id(type))
    return int(e), int(b)


class QuantizedTensor:
    """Quantized rows in a GGUF block format: the raw bytes plus their type and shape.

    ``data`` is a 1-D ``uint8`` numpy array holding the rows back to back with
    no padding, exactly as GGUF files and ggml lay out tensor data, so it can
    be written into a GGUF file (or come from one). Made by :func:`quantize`;
    build one yourself from bytes read elsewhere with
    ``QuantizedTensor(data, type, shape)``, and decode it with
    :func:`dequantize`.

    ``shape`` is the shape of the float array it encodes: ``(rows, n)``, or
    ``(n,)`` for a single row; ``n`` is a multiple of the type's block size.
    """

    __slots__ = ("_data", "_type_id", "_shape")

    def __init__(self, data: Any, type: Union[str, int], shape: Sequence[int]) -> None:
        """Wraps existing bytes (bytes, bytearray, memoryview or a uint8 array); no copy for a contiguous uint8 array.

        Raises :class:`ValueError` when the shape is not 1-D or 2-D, ``n`` is
        not a multiple of the block size, or the byte count does not match.
        """
        tid = _type_id(type)
        shp = tuple(as_int(d, "shape") for d in shape)
        if len(shp) not in (1, 2):
            raise ValueError(f"shape must be (rows, n) or (n,), got {shp}")
        if any(d < 0 for d in shp):
            raise ValueError(f"shape must not be negative, got {shp}")
        if isinstance(data, np.ndarray):
            if data.dtype != np.uint8:
                raise ValueError(f"data must be uint8 bytes, got dtype {data.dtype}")
            arr = np.ascontiguousarray(data).reshape(-1)
        else:
            arr = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
        rows = shp[0] if len(shp) == 2 else 1
        need = rows * int(_llmkit.quant_row_bytes(tid, shp[-1]))
        if arr.size != need:
            raise ValueError(
                f"data holds {arr.size} bytes, but {shp} in {_llmkit.quant_type_name(tid)} takes {need}")
        self._data = arr
        self._type_id = tid
        self._shape = shp

    @property
    def data(self) -> np.ndarray:
        """The blocks as a 1-D ``uint8`` numpy array, rows back to back (GGUF layout)."""
        return self._data

    @property
    def type(self) -> str:
        """The block format as ggml spells it, e.g. ``"q4_K"``."""
        return _llmkit.quant_type_name(self._type_id)  # type: ignore[return-value]

    @property
    def type_id(self) -> int:
        """The block format as ggml's ``ggml_type`` number (the GGUF tensor type)."""
        return self._type_id

    @property
    def shape(self) -> Tuple[int, ...]:
        """The shape of the float array it encodes: ``(rows, n)``, or ``(n,)`` for one row."""
        return self._shape

    @property
    def nbytes(self) -> int:
        """Bytes of ``data``: rows * (n / block elements) * block bytes."""
        return int(self._data.nbytes)

    def __repr__(self) -> str:
        return f"QuantizedTensor(type={self.type!r}, shape={self._shape}, nbytes={self.nbytes})"


def quantize(array: Any, type: Union[str, int], *, imatrix: Optional[Any] = None, num_threads: int = 0) -> QuantizedTensor:
    """Quantizes float32 rows into a GGUF block format, byte-exact with ggml's reference quantizer.

    ``array`` is float32 with shape ``(rows, n)`` or ``(n,)``, any strides (a
    numpy array, or any ``__dlpack__`` host tensor; nested lists are converted
    to float32); ``n`` must be a multiple of the type's block size (see
    :func:`quant_block_size`). ``type`` is ggml's name of the format, in any
    case: ``"q4_K"``, ``"Q8_0"``, ``"iq4_nl"``, ``"bf16"``... (see
    :func:`quant_types`). The bytes equal what ``ggml_quantize_chunk`` writes
    with no importance matrix. Runs on ``num_threads`` worker threads (0: the
    default) with the GIL released.

    ``imatrix`` must be None: importance matrices are not supported yet, and
    passing one raises :class:`LlmkitError` (``LLMKIT_ERROR_UNSUPPORTED``).

    Raises :class:`ValueError` for an unknown type, a dtype other than float32
    (convert with ``.astype(np.float32)``), a rank other than 1 or 2, ``n`` not
    a multiple of the block size, or a NaN or infinity anywhere in the input.

    >>> qt = llmkit.quantize(w, "q4_K")          # w: float32 (rows, 4096)
    >>> qt.nbytes == w.shape[0] * 4096 // 256 * 144
    True
    """
    tid = _type_id(type)
    threads = count(num_threads, "num_threads")
    imat = None
    if imatrix is not None:
        imat = np.ascontiguousarray(np.asarray(imatrix, dtype=np.float32).reshape(-1))
    if getattr(array, "requires_grad", False) and hasattr(array, "detach"):
        array = array.detach()  # torch refuses to export tensors that require grad
    blocks = _llmkit.quantize(array, tid, imat, threads)
    shape = tuple(int(d) for d in array.shape) if hasattr(array, "shape") else np.shape(array)
    qt = QuantizedTensor.__new__(QuantizedTensor)
    qt._data = blocks
    qt._type_id = tid
    qt._shape = tuple(int(d) for d in shape)
    return qt


def dequantize(qt: QuantizedTensor, *, num_threads: int = 0) -> np.ndarray:
    """Decodes a :class:`QuantizedTensor` into a new float32 numpy array, bit-exact with ggml's ``to_float``.

    The result has ``qt.shape``: ``(rows, n)``, or ``(n,)`` when it was made
    from a 1-D array. Runs on ``num_threads`` worker threads (0: the default)
    with the GIL released.
    """
    if not isinstance(qt, QuantizedTensor):
        raise TypeError(f"dequantize expects a llmkit.QuantizedTensor, got {type(qt).__name__} "
                        "(wrap raw bytes with llmkit.QuantizedTensor(data, type, shape))")
    return _llmkit.dequantize(qt._type_id, qt._data, list(qt._shape), count(num_threads, "num_threads"))
