"""Quantization into GGUF block formats (llmkit_quantize / llmkit_dequantize).

The native module does the work; this module names the types, checks the
arguments the C library cannot see, and keeps quantized bytes together with
their type and shape in :class:`QuantizedTensor`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _llmkit
from ._args import as_int, count
from ._quant_matmul import quantized_matmul as _quantized_matmul

# ggml numbers its types below 40 (GGML_TYPE_COUNT); llmkit implements a subset.
_MAX_GGML_TYPE = 64
# llmkit's own formats (int8, nf4, fp8, gptq/awq int4) are numbered from 1000.
_FORMAT_IDS = range(1000, 1100)
_ZERO_POINTS = {None: 0, "symmetric": 1, "asymmetric": 2}


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


def quant_types(include_formats: bool = False) -> List[str]:
    """The quantization types llmkit implements, as ggml spells them, in ggml's type order.

    ``['f32', 'f16', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q8_0', 'q8_1', 'q2_K', 'q3_K',
    'q4_K', 'q5_K', 'q6_K', 'q8_K', 'iq4_nl', 'iq4_xs', 'bf16', 'tq1_0', 'tq2_0', 'mxfp4']``. With
    ``include_formats=True`` these are followed by llmkit's formats with side
    arrays, numbered from 1000: ``'int8'``, ``'int8_g32'``,
    ``'int8_g64'``, ``'int8_g128'``, ``'int8_asym'`` (and ``_g32/_g64/_g128``),
    ``'nf4'``, ``'fp4'``, ``'fp8_e4m3'``, ``'fp8_e5m2'``, ``'fp8_e4m3_channel'``,
    ``'fp8_e5m2_channel'``, ``'gptq_int4'``, ``'gptq_int4_g32'`` (``_g64``,
    ``_g128``), ``'awq_int4_g32'`` (``_g64``, ``_g128``). Any of these (in any
    case) can be passed as ``type`` to :func:`quantize`.
    """
    names = []
    for tid in list(range(_MAX_GGML_TYPE)) + (list(_FORMAT_IDS) if include_formats else []):
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


def quant_nbytes(type: Union[str, int], shape: Sequence[int]) -> int:
    """Bytes a float array of ``shape`` (``(rows, n)`` or ``(n,)``) takes in ``type``, any type.

    ``quant_nbytes("q4_K", (4096, 4096)) == 4096 * 16 * 144``. Raises
    :class:`ValueError` for an unknown type or a shape the type cannot hold.
    """
    shp = tuple(as_int(d, "shape") for d in shape)
    if len(shp) not in (1, 2):
        raise ValueError(f"shape must be (rows, n) or (n,), got {shp}")
    rows = shp[0] if len(shp) == 2 else 1
    return int(_llmkit.quant_tensor_bytes(_type_id(type), rows, shp[-1]))


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
        need = int(_llmkit.quant_tensor_bytes(tid, rows, shp[-1]))
        if arr.size != need:
            raise ValueError(
                f"data holds {arr.size} bytes, but {shp} in {_llmkit.quant_type_name(tid)} takes {need}")
        self._data = arr
        self._type_id = tid
        self._shape = shp

    @classmethod
    def _wrap(cls, data: np.ndarray, type_id: int, shape: Sequence[int]) -> "QuantizedTensor":
        # Bytes the library has just written for this type and shape: nothing to check.
        qt = cls.__new__(cls)
        qt._data = data
        qt._type_id = type_id
        qt._shape = tuple(int(d) for d in shape)
        return qt

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
        """Bytes of ``data``: rows * (n / block elements) * block bytes for GGUF types."""
        return int(self._data.nbytes)

    def planes(self) -> Dict[str, np.ndarray]:
        """The planes of ``data`` as numpy views (no copy), by name.

        GGUF types have one plane, ``"blocks"``. The other formats keep their
        scales in side arrays, laid out as the checkpoints that use them:
        ``int8*``: ``weight`` (int8 [rows, n]), ``scales`` (float32 [rows,
        groups]) and for ``int8_asym*`` ``zeros`` (int8); ``nf4``/``fp4``:
        ``weight`` (uint8, two codes a byte, first in the high nibble) and
        ``absmax`` (float32, one per 64 elements), as bitsandbytes'
        ``quantize_4bit``; ``fp8*``: ``weight`` (uint8 bit patterns, view them
        with ``torch.float8_e4m3fn``) and ``scales``; ``gptq_int4*``:
        ``qweight``, ``qzeros``, ``scales`` (float16), ``g_idx``, as AutoGPTQ
        writes them; ``awq_int4*``: ``qweight``, ``qzeros``, ``scales``, as
        AutoAWQ writes them.
        """
        rows = self._shape[0] if len(self._shape) == 2 else 1
        out: Dict[str, np.ndarray] = {}
        for name, offset, nbytes, dtype, shape in _llmkit.quant_planes(self._type_id, rows, self._shape[-1]):
            out[name] = self._data[offset:offset + nbytes].view(np.dtype(dtype)).reshape(shape)
        return out

    def matmul(self, x: Any, *, num_threads: int = 0) -> np.ndarray:
        """Multiplies by the quantized weights without decoding them: ``W @ x`` for a vector, ``x @ W.T`` for rows.

        With ``W`` the float matrix this tensor encodes, shape ``(rows, k)``:
        ``x`` of shape ``(k,)`` gives ``(rows,)``, and ``x`` of shape
        ``(m, k)`` gives ``(m, rows)`` (a 1-D tensor ``(k,)`` acts as one row
        and that axis is dropped). ``x`` is float32, any strides (numpy or any
        ``__dlpack__`` host tensor); the result is a new float32 numpy array.

        Types: ``q4_0``, ``q4_1``, ``q5_0``, ``q5_1``, ``q8_0``, ``iq4_nl``,
        ``mxfp4``, ``q2_K``, ``q3_K``, ``q4_K``, ``q5_K``, ``q6_K``, ``iq4_xs``
        and ``int8`` (per-row scales). As llama.cpp does, each block
        of ``x`` is rounded to int8 on the fly (blocks of 32, or 256 for the
        K-quants and ``iq4_xs``), so the result differs from ``x @ dequantize(self).T`` by at
        most ``sum |W| * d / 2`` per output (``d`` = the block's max ``|x|`` /
        127) plus float32 rounding, and it is bit-identical for any
        ``num_threads``. Runs with the GIL released.

        Raises :class:`ValueError` for a dtype other than float32, a shape
        that does not fit, or a NaN or infinity in ``x``;
        :class:`LlmkitError` (``LLMKIT_ERROR_UNSUPPORTED``) for a type
        without a matmul kernel.
        """
        return _quantized_matmul(self, x, num_threads)

    def __repr__(self) -> str:
        return f"QuantizedTensor(type={self.type!r}, shape={self._shape}, nbytes={self.nbytes})"


def _zero_point(zero_point: Optional[str]) -> int:
    if zero_point not in _ZERO_POINTS:
        raise ValueError(f"zero_point must be None, 'symmetric' or 'asymmetric', got {zero_point!r}")
    return _ZERO_POINTS[zero_point]


def quantize(array: Any, type: Union[str, int], *, imatrix: Optional[Any] = None, num_threads: int = 0,
             zero_point: Optional[str] = None) -> QuantizedTensor:
    """Quantizes float32 rows into a GGUF block format, byte-exact with ggml's reference quantizer.

    ``array`` is float32 with shape ``(rows, n)`` or ``(n,)``, any strides (a
    numpy array, or any ``__dlpack__`` host tensor; nested lists are converted
    to float32); ``n`` must be a multiple of the type's block size (see
    :func:`quant_block_size`). ``type`` is ggml's name of the format, in any
    case: ``"q4_K"``, ``"Q8_0"``, ``"iq4_nl"``, ``"bf16"``... (see
    :func:`quant_types`). The bytes equal what ``ggml_quantize_chunk`` writes
    (with no importance matrix, or with ``imatrix``). Runs on ``num_threads`` worker threads (0: the
    default) with the GIL released.

    The non-GGUF formats (``"int8"``, ``"int8_g128"``, ``"nf4"``, ``"fp4"``,
    ``"fp8_e4m3"``, ``"fp8_e5m2"``, ``"gptq_int4_g128"``, ``"awq_int4_g128"``...)
    go through the same call; see :meth:`QuantizedTensor.planes` for their
    layout. ``zero_point`` applies to the int4 packings only: ``None`` (the
    format's default: symmetric for GPTQ, asymmetric for AWQ),
    ``"symmetric"`` or ``"asymmetric"``; for any other type it raises
    :class:`LlmkitError` (``LLMKIT_ERROR_UNSUPPORTED``) rather than be ignored.

    ``imatrix``: importance weights, one per column (``n`` float32 values,
    non-negative and finite; llama.cpp's ``llama-imatrix`` computes them as
    sums of squared activations). With one, the GGUF types that ggml quantizes
    with importance weights (Q4_0, Q4_1, Q5_0, Q5_1, Q2_K ... Q6_K, IQ4_NL,
    IQ4_XS) write what ``ggml_quantize_chunk`` writes when given the same
    weights; Q8_0 and the float types ignore it, as ggml does. The other
    formats raise :class:`LlmkitError` (``LLMKIT_ERROR_UNSUPPORTED``).

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
    blocks = _llmkit.quantize(array, tid, imat, threads, _zero_point(zero_point))
    shape = tuple(int(d) for d in array.shape) if hasattr(array, "shape") else np.shape(array)
    return QuantizedTensor._wrap(blocks, tid, shape)


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


def quant_convert(qt: QuantizedTensor, type: Union[str, int], *, zero_point: Optional[str] = None,
                  num_threads: int = 0) -> Tuple[QuantizedTensor, Dict[str, Any]]:
    """Converts a :class:`QuantizedTensor` to another type; returns ``(converted, stats)``.

    ``stats`` has ``lossless`` (every decoded value bit-identical),
    ``max_abs_error``, ``rms_error`` (of the decoded values, new against old)
    and ``max_abs_value`` (of the old). ``gptq_int4_g32`` -> ``q4_0`` is an
    exact repacking when the GPTQ tensor is symmetric (every zero point 8) and
    has no act-order (``g_idx[i] == i // 32``), and ``q4_0`` -> ``gptq_int4_g32``
    always is (rows a multiple of 8); everything else goes through float32
    and is lossy in general.
    """
    if not isinstance(qt, QuantizedTensor):
        raise TypeError(f"quant_convert expects a llmkit.QuantizedTensor, got {qt.__class__.__name__}")
    tid = _type_id(type)
    rows = qt._shape[0] if len(qt._shape) == 2 else 1
    data, stats = _llmkit.quant_convert(qt._type_id, qt._data, rows, qt._shape[-1], tid, _zero_point(zero_point),
                                        count(num_threads, "num_threads"))
    return QuantizedTensor._wrap(data, tid, qt._shape), dict(stats)


def _calib_list(calib_inputs: Any) -> List[Any]:
    """One array, or a list / tuple of arrays (batches), as a list of float32 arrays."""
    if isinstance(calib_inputs, (list, tuple)):
        batches = list(calib_inputs)
    else:
        batches = [calib_inputs]
    if not batches:
        raise ValueError("calib_inputs is empty: calibration needs at least one batch of activations")
    return [b if hasattr(b, "__dlpack__") or isinstance(b, np.ndarray) else np.asarray(b, np.float32) for b in batches]


class _Progress:
    """A tqdm bar when tqdm is installed and progress is wanted, else nothing."""

    def __init__(self, progress: Union[bool, Any], desc: str) -> None:
        self.bar = None
        self.fn = None
        if callable(progress):
            self.fn = progress
        elif progress:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover - tqdm is optional
                return
            self.bar = tqdm(total=None, desc=desc, unit="col", leave=False)

    def callback(self) -> Optional[Any]:
        if self.fn is None and self.bar is None:
            return None

        def cb(done: int, total: int) -> None:
            if self.fn is not None:
                self.fn(done, total)
            if self.bar is not None:
                self.bar.total = total
                self.bar.n = done
                self.bar.refresh()
        return cb

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def gptq(weight: Any, calib_inputs: Any, *, bits: int = 4, group_size: int = 128, act_order: bool = False,
         damp: float = 0.01, sym: bool = True, format: str = "gptq", block_size: int = 128,
         progress: Union[bool, Any] = True, num_threads: int = 0) -> Tuple[QuantizedTensor, Dict[str, Any]]:
    """Quantizes a linear layer's weight with GPTQ (Frantar et al. 2022); returns ``(qt, report)``.

    ``weight`` is float32 ``(rows, n)`` = (outputs, inputs), as ``torch.nn.Linear.weight``;
    ``calib_inputs`` are the activations that reach the layer: one float32 array ``(tokens, n)``
    or a list of them (batches; the Hessian is accumulated over all). ``group_size`` is 32, 64,
    128 or -1 (one group per row). ``format="gptq"`` gives a ``gptq_int4*`` tensor laid out as
    AutoGPTQ checkpoints (``qt.planes()``: ``qweight``, ``qzeros``, ``scales``, ``g_idx``);
    ``format="q4_0"`` (``group_size=32``, ``sym=True``, no ``act_order``) gives GGUF Q4_0 blocks;
    ``format="q4_K"`` (``group_size=256``, no ``act_order``; ``sym`` does not apply: Q4_K has a
    scale and a min per 32 weights) gives GGUF Q4_K blocks, each super-block's scales and mins
    fitted when GPTQ reaches it (ggml's importance-weighted fit with diag(H) as the imatrix) and
    its levels chosen by GPTQ; its ``rtn_output_error`` is that of ggml's plain Q4_K quantizer.
    ``act_order`` quantizes columns by decreasing activation energy (``g_idx`` records each
    column's group). ``damp`` is GPTQ's percdamp. ``progress``: True for a tqdm bar (when tqdm is
    installed), False for none, or a callable ``(done, total)``. Runs with the GIL released.

    ``report`` has ``output_error`` = ||(W - W^) X^T||^2 / ||W X^T||^2 on the calibration inputs,
    ``rtn_output_error`` (round-to-nearest with the same grid, for comparison) and
    ``dead_columns`` (inputs that were always 0).
    """
    if bits != 4:
        raise ValueError(f"bits must be 4 (the GPTQ int4 packing), got {bits}")
    if format == "gptq":
        names = {32: "gptq_int4_g32", 64: "gptq_int4_g64", 128: "gptq_int4_g128", -1: "gptq_int4"}
        if group_size not in names:
            raise ValueError(f"group_size must be 32, 64, 128 or -1, got {group_size}")
        tid = _type_id(names[group_size])
    elif format == "q4_0":
        if group_size != 32:
            raise ValueError(f"format='q4_0' needs group_size=32, got {group_size}")
        tid = _type_id("q4_0")
    elif format.lower() == "q4_k":
        if group_size != 256:
            raise ValueError(f"format='q4_K' needs group_size=256 (Q4_K's super-block), got {group_size}")
        tid = _type_id("q4_K")
    else:
        raise ValueError(f"format must be 'gptq', 'q4_0' or 'q4_K', got {format!r}")
    if getattr(weight, "requires_grad", False) and hasattr(weight, "detach"):
        weight = weight.detach()
    bar = _Progress(progress, "gptq")
    try:
        data, report = _llmkit.gptq_quantize(weight, _calib_list(calib_inputs), tid, float(damp),
                                             as_int(block_size, "block_size"), bool(act_order),
                                             0 if tid == _type_id("q4_K") else 1 if sym else 2,
                                             bar.callback(), count(num_threads, "num_threads"))
    finally:
        bar.close()
    return QuantizedTensor._wrap(data, tid, weight.shape), dict(report)


def awq(weight: Any, calib_inputs: Any, *, bits: int = 4, group_size: int = 128, zero_point: bool = True,
        n_grid: int = 20, max_shrink: float = 0.5, clip: bool = True, progress: Union[bool, Any] = True,
        num_threads: int = 0, format: str = "awq") -> Tuple[QuantizedTensor, np.ndarray, Dict[str, Any]]:
    """Quantizes a linear layer's weight with AWQ (Lin et al. 2023); returns ``(qt, scales, report)``.

    ``weight`` is float32 ``(rows, n)`` = (outputs, inputs); ``calib_inputs`` one float32 array
    ``(tokens, n)`` of the activations reaching the layer, or a list of them. A per-input-channel
    scale ``s = mean|x|^alpha`` (alpha from a grid of ``n_grid`` points, the one with the lowest
    output error on the calibration inputs) protects the channels that meet large activations;
    then each group's clipping range is searched (``clip``). ``qt`` is the int4 of the *scaled*
    weight ``W * s`` in the AWQ packing (``awq_int4_g<group_size>``, group 32, 64 or 128);
    ``scales`` (float32 ``(n,)``) must be folded into the operation before the layer (divide its
    output by ``scales``): the layer then computes ``dequantize(qt) @ (x / scales)``.
    ``zero_point=False`` uses a symmetric grid. ``report``: ``output_error`` and
    ``rtn_output_error`` (plain round-to-nearest) as for :func:`gptq`.

    ``format="q4_K"`` (``group_size=256``) makes ``qt`` GGUF Q4_K blocks of the scaled weight:
    each candidate scaling is rounded with ggml's importance-weighted Q4_K fit (the scaled
    layer's activation energy as the imatrix), whose own scale-and-min search takes the place
    of the clipping search (``clip``, ``max_shrink`` and ``zero_point`` do not apply);
    ``rtn_output_error`` is then that of ggml's plain Q4_K quantizer.
    """
    if bits != 4:
        raise ValueError(f"bits must be 4 (the AWQ int4 packing), got {bits}")
    names = {32: "awq_int4_g32", 64: "awq_int4_g64", 128: "awq_int4_g128"}
    if format.lower() == "q4_k":
        if group_size != 256:
            raise ValueError(f"format='q4_K' needs group_size=256 (Q4_K's super-block), got {group_size}")
        tid = _type_id("q4_K")
        zero_point = True
    elif format != "awq":
        raise ValueError(f"format must be 'awq' or 'q4_K', got {format!r}")
    elif group_size not in names:
        raise ValueError(f"group_size must be 32, 64 or 128, got {group_size}")
    else:
        tid = _type_id(names[group_size])
    if getattr(weight, "requires_grad", False) and hasattr(weight, "detach"):
        weight = weight.detach()
    bar = _Progress(progress, "awq")
    try:
        data, scales, report = _llmkit.awq_quantize(weight, _calib_list(calib_inputs), tid, as_int(n_grid, "n_grid"),
                                                    float(max_shrink), bool(clip), 2 if zero_point else 1,
                                                    bar.callback(), count(num_threads, "num_threads"))
    finally:
        bar.close()
    return QuantizedTensor._wrap(data, tid, weight.shape), scales, dict(report)
