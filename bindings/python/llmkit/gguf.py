"""GGUF files (llama.cpp's model format): read and write them.

::

    import llmkit
    f = llmkit.gguf.read("model.gguf")
    f.metadata["general.architecture"]          # 'llama'
    f.metadata_types["llama.block_count"]       # 'uint32'
    w = f.tensors["token_embd.weight"]          # numpy (F32, F16, ints) or llmkit.QuantizedTensor
    llmkit.gguf.write("copy.gguf", f.metadata, f.tensors, types=f.metadata_types)

Reading maps the file read-only and validates all of it first (truncation,
sizes, offsets, alignment, duplicate keys or tensor names...): a malformed file
raises :class:`llmkit.LlmkitError` (status ``LLMKIT_ERROR_FORMAT``) whose message
names the file, the byte offset and the problem. Tensor data is not copied:
numpy arrays and ``QuantizedTensor.data`` view the mapping (read-only) and keep
it alive.

Shapes follow numpy's order, as the ``gguf`` package's reader gives them:
ggml's ``ne`` reversed, so a GGUF tensor with ``ne = [n, rows]`` is a numpy
array of shape ``(rows, n)``.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _llmkit
from ._quant import QuantizedTensor

__all__ = ["GGUFFile", "RawTensor", "read", "write", "VALUE_TYPES", "ggml_type_info"]

# GGUF metadata value types by name, numbered as in the file.
VALUE_TYPES: Dict[str, int] = {
    "uint8": 0, "int8": 1, "uint16": 2, "int16": 3, "uint32": 4, "int32": 5, "float32": 6,
    "bool": 7, "string": 8, "array": 9, "uint64": 10, "int64": 11, "float64": 12,
}
_TYPE_NAMES = {v: k for k, v in VALUE_TYPES.items()}
_NUMPY_OF_TYPE = {
    "uint8": np.uint8, "int8": np.int8, "uint16": np.uint16, "int16": np.int16, "uint32": np.uint32,
    "int32": np.int32, "float32": np.float32, "bool": np.bool_, "uint64": np.uint64, "int64": np.int64,
    "float64": np.float64,
}
_TYPE_OF_NUMPY = {np.dtype(v): k for k, v in _NUMPY_OF_TYPE.items()}

# ggml tensor types that numpy holds natively (the rest are block formats).
_NUMPY_TENSOR_TYPES = {0: np.float32, 1: np.float16, 24: np.int8, 25: np.int16, 26: np.int32, 27: np.int64,
                       28: np.float64}
_GGML_OF_NUMPY = {np.dtype(v): k for k, v in _NUMPY_TENSOR_TYPES.items()}


def _check_fits(key: str, type_name: str, arr: np.ndarray) -> None:
    """Refuses values that would change on their way into `type_name`: a fraction or an out-of-range
    number into an integer type, a finite number past float32's range into float32."""
    want = np.dtype(_NUMPY_OF_TYPE[type_name])
    if arr.dtype.kind not in "iubf":
        return  # no numeric value: the writer's own conversion names the problem
    with np.errstate(over="ignore", invalid="ignore"):
        conv = arr.astype(want)
    if want.kind in "iub":
        ok = np.array_equal(conv.astype(np.float64) if arr.dtype.kind == "f" else conv, arr)
    else:
        ok = bool(np.all(np.isfinite(conv) | ~np.isfinite(arr.astype(np.float64))))
    if not ok:
        what = f"{arr.tolist()} does" if arr.ndim == 0 else "the values do"
        raise ValueError(f"metadata {key!r}: {what} not fit {type_name}")


def ggml_type_info(type: Union[int, str]) -> Tuple[str, int, int]:
    """``(name, block_elements, block_bytes)`` of any ggml tensor type GGUF defines, by id or name.

    Covers the types llmkit cannot quantize too (``"iq2_xxs"``...). Raises
    :class:`ValueError` for an unknown type.
    """
    if isinstance(type, str):
        for tid in range(64):
            try:
                info = _llmkit.ggml_type_info(tid)
            except ValueError:
                continue
            if info[0].lower() == type.lower():
                return info
        raise ValueError(f"unknown ggml type name {type!r}")
    return _llmkit.ggml_type_info(int(type))


class RawTensor:
    """A tensor in a ggml block type that :class:`llmkit.QuantizedTensor` cannot hold.

    That is a type llmkit does not implement (``iq2_xxs``, ``tq1_0``...), or
    one of more than two dimensions. ``data`` is the raw bytes (a read-only
    ``uint8`` view of the file), ``type`` ggml's name, ``type_id`` its number
    and ``shape`` numpy's order (ggml's ``ne`` reversed).
    """

    __slots__ = ("data", "type", "type_id", "shape")

    def __init__(self, data: np.ndarray, type_id: int, shape: Tuple[int, ...]) -> None:
        self.data = data
        self.type_id = int(type_id)
        self.type = ggml_type_info(self.type_id)[0]
        self.shape = tuple(shape)

    @property
    def nbytes(self) -> int:
        """Bytes of ``data``."""
        return int(self.data.nbytes)

    def __repr__(self) -> str:
        return f"RawTensor(type={self.type!r}, shape={self.shape}, nbytes={self.nbytes})"


Tensor = Union[np.ndarray, QuantizedTensor, RawTensor]


class GGUFFile:
    """A GGUF file read by :func:`read`.

    Attributes:
        path: the file name.
        version: 2 or 3.
        alignment: ``general.alignment`` or 32.
        data_offset: where the tensor data section starts.
        metadata: ``{key: value}`` in file order; values are ``int``, ``float``,
            ``bool``, ``str`` (``bytes`` if a string is not valid UTF-8), numpy
            arrays for numeric and bool arrays, lists of ``str`` for string
            arrays, and lists for nested arrays.
        metadata_types: ``{key: type}``: ``"uint32"``, ``"string"``..., and
            ``"array[int32]"`` for arrays (``"array[array]"`` when nested).
        tensors: ``{name: tensor}`` in file order: numpy arrays for F32, F16
            and the integer/F64 types, :class:`llmkit.QuantizedTensor` for the
            block formats llmkit implements (also BF16) in one or two
            dimensions, :class:`RawTensor` otherwise. None of them is copied.
        tensor_types: ``{name: ggml type name}``.
    """

    def __init__(self, path: str, handle: Any) -> None:
        self.path = path
        info = handle.info()
        self.version: int = info["version"]
        self.alignment: int = info["alignment"]
        self.data_offset: int = info["data_offset"]
        self.metadata: Dict[str, Any] = {}
        self.metadata_types: Dict[str, str] = {}
        for key, type_id, elem, value in handle.metadata():
            self.metadata[key] = value
            name = _TYPE_NAMES[type_id]
            self.metadata_types[key] = f"array[{_TYPE_NAMES[elem]}]" if name == "array" else name
        self.tensors: Dict[str, Tensor] = {}
        self.tensor_types: Dict[str, str] = {}
        for name, type_id, dims, data in handle.tensors():
            shape = tuple(reversed(dims))
            self.tensors[name] = _tensor(data, type_id, shape)
            self.tensor_types[name] = ggml_type_info(type_id)[0]

    def __repr__(self) -> str:
        return (f"GGUFFile({self.path!r}, version={self.version}, {len(self.metadata)} metadata, "
                f"{len(self.tensors)} tensors)")


def _tensor(data: np.ndarray, type_id: int, shape: Tuple[int, ...]) -> Tensor:
    if type_id in _NUMPY_TENSOR_TYPES:
        return data.view(_NUMPY_TENSOR_TYPES[type_id]).reshape(shape)
    if len(shape) <= 2 and _llmkit.quant_type_name(type_id) is not None:
        return QuantizedTensor(data, type_id, shape if shape else (1,))
    return RawTensor(data, type_id, shape)


def read(path: Union[str, os.PathLike], *, allow_duplicate_keys: bool = False) -> GGUFFile:
    """Opens, validates and maps a GGUF file (versions 2 and 3).

    A key repeated in the file makes it malformed (llama.cpp refuses such
    files too); ``allow_duplicate_keys=True`` keeps the first value instead.
    Raises :class:`llmkit.LlmkitError` with status ``LLMKIT_ERROR_FORMAT`` for
    a malformed file (the message names the file, the offset and the
    problem) or ``LLMKIT_ERROR_IO`` when it cannot be opened.
    """
    p = os.fspath(path)
    return GGUFFile(p, _llmkit.gguf_open(p, bool(allow_duplicate_keys)))


def _infer_type(key: str, value: Any) -> str:
    """gguf-py's choices for untyped values: int -> int32 (int64 if it does not fit), float -> float32."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (str, bytes)):
        return "string"
    if isinstance(value, np.generic):
        if value.dtype in _TYPE_OF_NUMPY:
            return _TYPE_OF_NUMPY[value.dtype]
        raise TypeError(f"metadata {key!r}: numpy {value.dtype} has no GGUF type")
    if isinstance(value, int):
        return "int32" if -2**31 <= value < 2**31 else "int64"
    if isinstance(value, float):
        return "float32"
    if isinstance(value, np.ndarray):
        if value.dtype in _TYPE_OF_NUMPY:
            return f"array[{_TYPE_OF_NUMPY[value.dtype]}]"
        raise TypeError(f"metadata {key!r}: numpy arrays of {value.dtype} have no GGUF type")
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (str, bytes)) for v in value):
            return "array[string]"
        if any(isinstance(v, (list, tuple, np.ndarray)) for v in value):
            return "array[array]"
        if all(isinstance(v, (bool, np.bool_)) for v in value):
            return "array[bool]"
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            return "array[int32]" if all(-2**31 <= int(v) < 2**31 for v in value) else "array[int64]"
        if all(isinstance(v, (int, float, np.integer, np.floating)) for v in value):
            return "array[float32]"
        raise TypeError(f"metadata {key!r}: a list mixing {sorted({type(v).__name__ for v in value})}")
    raise TypeError(f"metadata {key!r}: {type(value).__name__} has no GGUF type")


def _tensor_arg(name: str, t: Any) -> Tuple[int, List[int], np.ndarray]:
    """(ggml type, ggml dims, bytes) of a tensor to write."""
    if isinstance(t, (QuantizedTensor, RawTensor)):
        return t.type_id, list(reversed(t.shape)), np.ascontiguousarray(t.data).reshape(-1).view(np.uint8)
    a = np.asarray(t)
    if a.dtype not in _GGML_OF_NUMPY:
        raise TypeError(f"tensor {name!r}: numpy {a.dtype} has no ggml type (use float32, float16, int8/16/32/64, "
                        "float64, or an llmkit.QuantizedTensor)")
    if a.ndim > 4:
        raise ValueError(f"tensor {name!r}: {a.ndim} dimensions; GGUF allows at most 4")
    a = np.ascontiguousarray(a)
    return _GGML_OF_NUMPY[a.dtype], list(reversed(a.shape)), a.reshape(-1).view(np.uint8)


def write(path: Union[str, os.PathLike], metadata: Mapping[str, Any],
          tensors: Union[Mapping[str, Any], Sequence[Tuple[str, Any]]], *,
          types: Optional[Mapping[str, str]] = None, alignment: Optional[int] = None) -> None:
    """Writes a GGUF v3 file atomically (a temporary file beside ``path``, renamed over it when complete).

    ``metadata`` maps keys to values; the GGUF type of each comes from
    ``types[key]`` when given (``"uint32"``, ``"string"``, ``"array[int32]"``,
    or just the element type for an array value), else from the value:
    numpy scalars and arrays by dtype, ``bool``, ``str``/``bytes`` as string,
    ``int`` as int32 (int64 when it does not fit), ``float`` as float32, lists
    of strings, bools, ints or floats as arrays. Nested arrays cannot be
    written from Python. ``metadata_types`` of a :class:`GGUFFile` is a valid
    ``types``, so ``write(p, f.metadata, f.tensors, types=f.metadata_types)``
    copies a file.

    ``tensors`` maps names to numpy arrays (float32, float16, int8/16/32/64,
    float64; numpy shape order) or :class:`llmkit.QuantizedTensor` /
    :class:`RawTensor` (a mapping, or a sequence of ``(name, array)`` pairs);
    they are written in that order, each at a multiple of ``alignment``
    (default: ``general.alignment`` in metadata, else 32).

    Raises :class:`TypeError` or :class:`ValueError` for values or tensors
    that have no GGUF form, and :class:`llmkit.LlmkitError` (``LLMKIT_ERROR_IO``)
    when the file cannot be written; ``path`` is then left as it was.
    """
    w = _llmkit.GGUFWriterHandle()
    types = dict(types or {})
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"metadata keys must be str, got {type(key).__name__}")
        t = types.get(key) or _infer_type(key, value)
        is_array = isinstance(value, (list, tuple, np.ndarray))
        if is_array and not t.startswith("array"):
            t = f"array[{t}]"
        if t.startswith("array"):
            elem = t[6:-1] if t.startswith("array[") and t.endswith("]") else _infer_type(key, value)[6:-1]
            if elem == "string":
                w.set_string_array(key, list(value))
            elif elem == "array":
                raise ValueError(f"metadata {key!r}: nested arrays cannot be written from Python")
            elif elem in _NUMPY_OF_TYPE:
                arr = np.asarray(value)
                want = np.dtype(_NUMPY_OF_TYPE[elem])
                if arr.size and arr.dtype != want:
                    _check_fits(key, elem, arr)
                    arr = arr.astype(want)
                w.set_array(key, VALUE_TYPES[elem], np.ascontiguousarray(arr, dtype=want).reshape(-1))
            else:
                raise ValueError(f"metadata {key!r}: unknown array element type {elem!r}")
        elif t in VALUE_TYPES:
            if t != "string" and isinstance(value, (str, bytes)):
                raise TypeError(f"metadata {key!r}: a string cannot be written as {t}")
            if t in _NUMPY_OF_TYPE and t != "bool":
                _check_fits(key, t, np.asarray(value))
            w.set_scalar(key, VALUE_TYPES[t], value.item() if isinstance(value, np.generic) else value)
        else:
            raise ValueError(f"metadata {key!r}: unknown GGUF type {t!r} (one of {sorted(VALUE_TYPES)})")
    if alignment is not None:
        w.set_scalar("general.alignment", VALUE_TYPES["uint32"], int(alignment))
    if isinstance(tensors, Mapping):
        pairs = list(tensors.items())
    else:
        try:
            pairs = [(name, t) for name, t in tensors]
        except (TypeError, ValueError):
            raise TypeError("tensors must be a mapping of names to arrays, or a sequence of (name, array) pairs, "
                            f"got {type(tensors).__name__}") from None
    for name, t in pairs:
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {type(name).__name__}")
        type_id, dims, data = _tensor_arg(name, t)
        w.add_tensor(name, type_id, dims, data)
    w.write(os.fspath(path))
