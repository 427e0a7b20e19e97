"""llmkit-quantize: convert a GGUF or safetensors model to a GGUF block type, like llama.cpp's llama-quantize.

::

    llmkit-quantize model-f16.gguf model-q4_K.gguf q4_K
    llmkit-quantize model.safetensors model-q8_0.gguf q8_0 --keep '*.embed_tokens.*'
    llmkit-quantize model-f16.gguf model-q4_K.gguf q4_K --imatrix imatrix.gguf
    python -m llmkit.tools.quantize ...

Which tensors are quantized: those with two or more dimensions whose row length
(the last numpy dimension, ggml's ne[0]) is a multiple of the type's block
size, whose name does not match a ``--keep`` pattern. Everything else (norms,
biases, 1-D tensors, rows that are not whole blocks) is written as F32, and
the tool says which and why. Input tensors must be F32, F16 or BF16 (or, with
``--allow-requantize``, a block type llmkit can decode). Metadata is copied
from a GGUF input; ``general.file_type`` and ``general.quantization_version``
are set.

``--imatrix`` reads an importance matrix as llama.cpp's ``llama-imatrix``
writes it: the GGUF format (``<tensor>.in_sum2`` and ``<tensor>.counts``; the
weights are the sums divided by the counts) or the legacy ``.dat`` format
(the weights are the stored values divided by the call count), as
``llama-quantize`` reads them. Tensors with an entry are quantized with their
weights (per expert for 3-D expert tensors), the others without.

The bytes equal what ggml's quantizer writes (llmkit.quantize), with or
without the importance weights.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import struct
import sys
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

import llmkit
from llmkit import gguf as _gguf

# llama.cpp's llama_ftype for a model quantized to one type ("mostly" that
# type); the K-quants map to their _S variants, which use the type throughout.
# MXFP4's only ftype is MXFP4_MOE (llama.cpp puts MXFP4 in the expert tensors
# only); here it labels a file whose 2-D weights are all MXFP4.
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q2_K": 10,
              "q3_K": 11, "q4_K": 14, "q5_K": 16, "q6_K": 18, "iq4_nl": 25, "iq4_xs": 30, "bf16": 32,
              "tq1_0": 36, "tq2_0": 37, "mxfp4": 38}
_MIB = 1024.0 * 1024.0


def _progress(total: int, quiet: bool):
    """A tqdm bar when tqdm is installed (and not quiet); a no-op otherwise."""
    if not quiet:
        try:
            from tqdm import tqdm  # type: ignore

            return tqdm(total=total, unit="tensor", desc="quantizing", file=sys.stderr, leave=False)
        except ImportError:
            pass

    class _NoBar:
        def update(self, n: int = 1) -> None:
            pass

        def close(self) -> None:
            pass

        @staticmethod
        def write(s: str, file=None) -> None:
            print(s, file=file or sys.stdout)

    return _NoBar()


# ---------------------------------------------------------------------------
# Inputs: (name, float32-convertible array or llmkit tensor, source type name)

def _read_safetensors(path: str) -> Tuple[Dict[str, Any], List[Tuple[str, Any, str]]]:
    """Parses a .safetensors file: u64 header length, JSON header, raw little-endian data (memory-mapped)."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        n = int.from_bytes(head, "little")
        if n > size - 8:
            raise ValueError(f"{path}: header length {n} runs past the end of the file ({size} bytes)")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: the header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    data_start = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=0) if size > data_start else np.zeros(0, np.uint8)
    dtypes = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}
    tensors = []
    for name, info in header.items():
        try:
            dt, shape, (begin, end) = info["dtype"], [int(d) for d in info["shape"]], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor {name!r} has a malformed header entry {info!r}") from None
        if dt not in dtypes:
            raise ValueError(f"{path}: tensor {name!r} has dtype {dt}; llmkit-quantize reads F32, F16, BF16 and F64")
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtypes[dt]).itemsize
        if not (0 <= begin <= end <= size - data_start) or end - begin != nbytes:
            raise ValueError(f"{path}: tensor {name!r} data_offsets [{begin}, {end}] do not hold {shape} {dt}")
        raw = mm[data_start + begin:data_start + end].view(dtypes[dt]).reshape(shape)
        if dt == "BF16":  # bfloat16 is the top half of a float32
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        tensors.append((name, raw, dt.lower()))
    tensors.sort(key=lambda t: t[0])
    return {f"safetensors.{k}": str(v) for k, v in meta.items()}, tensors


def _read_gguf(path: str) -> Tuple[_gguf.GGUFFile, List[Tuple[str, Any, str]]]:
    f = _gguf.read(path)
    return f, [(name, t, f.tensor_types[name]) for name, t in f.tensors.items()]


def _as_f32(name: str, t: Any, src_type: str, allow_requantize: bool) -> np.ndarray:
    if isinstance(t, np.ndarray):
        if t.dtype.kind != "f":
            raise ValueError(f"tensor {name!r} is {t.dtype}; only float tensors can be quantized")
        return np.ascontiguousarray(t, dtype=np.float32)
    if src_type == "bf16" or allow_requantize:
        if isinstance(t, llmkit.QuantizedTensor):
            return llmkit.dequantize(t)
        raise ValueError(f"tensor {name!r} ({src_type}, shape {t.shape}): llmkit cannot decode it")
    raise ValueError(f"tensor {name!r} is already {src_type}; pass --allow-requantize to requantize it "
                     "(quality suffers: quantize from F32/F16/BF16 instead)")


def _shape(t: Any) -> Tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


def _src_nbytes(t: Any, src_type: str) -> int:
    if src_type == "bf16" and isinstance(t, np.ndarray):  # safetensors BF16, widened on read
        return t.size * 2
    return int(t.nbytes)


def _imatrix_from_gguf(path: str) -> Dict[str, np.ndarray]:
    f = _gguf.read(path)
    out: Dict[str, np.ndarray] = {}
    for name, t in f.tensors.items():
        if not name.endswith(".in_sum2"):
            continue
        base = name[: -len(".in_sum2")]
        counts = f.tensors.get(base + ".counts")
        if counts is None:
            raise ValueError(f"imatrix {path}: {name} has no {base}.counts tensor")
        sums = np.asarray(t, dtype=np.float32)
        counts = np.asarray(counts, dtype=np.float32).reshape(-1)
        sums = sums.reshape(len(counts), -1) if sums.size % max(len(counts), 1) == 0 else None
        if sums is None or len(counts) == 0:
            raise ValueError(f"imatrix {path}: {name} does not split into {len(counts)} rows of weights")
        # As llama-quantize: the mean over the tokens seen; 1 where none were.
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(counts[:, None] > 0, sums / counts[:, None], np.float32(1))
        out[base] = w.astype(np.float32)
    if not out:
        raise ValueError(f"imatrix {path}: no <tensor>.in_sum2 entries (is it an imatrix file?)")
    return out


def _imatrix_from_dat(path: str) -> Dict[str, np.ndarray]:
    data = open(path, "rb").read()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            raise ValueError(f"imatrix {path}: truncated at byte {pos}")
        vals = struct.unpack_from(fmt, data, pos)
        pos += size
        return vals

    (n_entries,) = take("<i")
    if n_entries < 1 or n_entries > len(data) // 12:
        raise ValueError(f"imatrix {path}: {n_entries} entries is not a legacy imatrix file")
    out: Dict[str, np.ndarray] = {}
    for _ in range(n_entries):
        (name_len,) = take("<i")
        if name_len < 1 or pos + name_len > len(data):
            raise ValueError(f"imatrix {path}: bad name length {name_len} at byte {pos - 4}")
        name = data[pos:pos + name_len].decode("utf-8", "replace")
        pos += name_len
        ncall, nval = take("<ii")
        if nval < 1 or pos + 4 * nval > len(data):
            raise ValueError(f"imatrix {path}: {name}: bad value count {nval}")
        vals = np.frombuffer(data, dtype="<f4", count=nval, offset=pos).astype(np.float32)
        pos += 4 * nval
        # Legacy files store (sum / count) * ncall; llama-quantize divides by ncall.
        out[name] = (vals / np.float32(ncall) if ncall > 0 else vals).reshape(1, -1)
    return out


def load_imatrix(path: str) -> Dict[str, np.ndarray]:
    """llama.cpp's importance matrix file (GGUF or legacy .dat) as ``{tensor name: weights}``.

    Each value is float32 ``(n_experts, n_per_row)`` (one row for dense tensors), the
    weights ``llama-quantize`` would pass to ggml's quantizer.
    """
    with open(path, "rb") as fh:
        magic = fh.read(4)
    return _imatrix_from_gguf(path) if magic == b"GGUF" else _imatrix_from_dat(path)


def _quantize_weighted(name: str, x: np.ndarray, shape: Tuple[int, ...], qname: str, weights: np.ndarray,
                       num_threads: int) -> bytes:
    """x (rows of shape[-1]) quantized with its imatrix entry: one row of weights, or one per expert."""
    if weights.shape[1] != shape[-1]:
        raise ValueError(f"imatrix entry for {name} has {weights.shape[1]} weights per row; the tensor's rows "
                         f"have {shape[-1]}")
    if weights.shape[0] == 1:
        return bytes(llmkit.quantize(x.reshape(-1, shape[-1]), qname, imatrix=weights[0], num_threads=num_threads).data)
    if len(shape) != 3 or shape[0] != weights.shape[0]:
        raise ValueError(f"imatrix entry for {name} has {weights.shape[0]} experts; the tensor's shape is {shape}")
    return b"".join(bytes(llmkit.quantize(x[e].reshape(-1, shape[-1]), qname, imatrix=weights[e],
                                          num_threads=num_threads).data) for e in range(shape[0]))


def quantize_model(src: str, dst: str, type: str, *, keep: Sequence[str] = (), allow_requantize: bool = False,
                   num_threads: int = 0, quiet: bool = False, out=None,
                   imatrix: Optional[str] = None) -> Dict[str, Any]:
    """Converts ``src`` (.gguf or .safetensors) to a GGUF file ``dst`` with 2-D+ weights in ``type``.

    ``imatrix``: a llama.cpp importance-matrix file (see :func:`load_imatrix`).
    Returns a summary: ``{"quantized": [names], "kept": {name: reason},
    "with_imatrix": [names], "src_bytes": n, "dst_bytes": n}``.
    """
    out = out or sys.stdout
    qtype = type
    elems, _ = llmkit.quant_block_size(qtype)
    qname = next(n for n in llmkit.quant_types() if n.lower() == qtype.lower())
    if qname.lower() in ("q8_1", "q8_k"):
        raise ValueError(f"{qname} is an intermediate format of ggml's matmuls, not a storage type")

    metadata: Dict[str, Any] = {}
    types: Dict[str, str] = {}
    if src.endswith(".safetensors"):
        metadata, inputs = _read_safetensors(src)
        metadata = {"general.name": os.path.splitext(os.path.basename(src))[0], **metadata}
    else:
        f, inputs = _read_gguf(src)
        metadata, types = dict(f.metadata), dict(f.metadata_types)
    metadata["general.quantization_version"] = 2
    types["general.quantization_version"] = "uint32"
    metadata["general.file_type"] = FILE_TYPES.get(qname, FILE_TYPES["f32"])
    types["general.file_type"] = "uint32"

    weights_of = load_imatrix(imatrix) if imatrix else {}
    tensors: Dict[str, Any] = {}
    summary: Dict[str, Any] = {"quantized": [], "kept": {}, "with_imatrix": [], "src_bytes": 0, "dst_bytes": 0}
    bar = _progress(len(inputs), quiet)
    t0 = time.perf_counter()
    width = len(str(len(inputs)))
    for i, (name, t, src_type) in enumerate(inputs):
        shape = _shape(t)
        ne = list(reversed(shape)) + [1] * (4 - len(shape))
        reason = None
        if any(fnmatch.fnmatchcase(name, p) for p in keep):
            reason = "matches --keep"
        elif len(shape) < 2:
            reason = "1-D (norms and biases stay F32)"
        elif shape[-1] % elems != 0:
            reason = f"rows of {shape[-1]} are not a multiple of {qname}'s block of {elems}"
        x = _as_f32(name, t, src_type, allow_requantize or reason is not None)
        if reason is None and name in weights_of:
            data = _quantize_weighted(name, x, shape, qname, weights_of[name], num_threads)
            q = llmkit.QuantizedTensor(np.frombuffer(data, np.uint8), qname, (int(np.prod(shape[:-1])), shape[-1]))
            res: Any = q if len(shape) == 2 else _gguf.RawTensor(q.data, q.type_id, shape)
            summary["quantized"].append(name)
            summary["with_imatrix"].append(name)
            new_type = qname + " with imatrix"
        elif reason is None:
            q = llmkit.quantize(x.reshape(-1, shape[-1]), qname, num_threads=num_threads)
            res = q if len(shape) == 2 else _gguf.RawTensor(q.data, q.type_id, shape)
            summary["quantized"].append(name)
            new_type = qname
        else:
            res = x
            summary["kept"][name] = reason
            new_type = "f32"
        tensors[name] = res
        before, after = _src_nbytes(t, src_type), int(res.nbytes)
        summary["src_bytes"] += before
        summary["dst_bytes"] += after
        line = (f"[{i + 1:{width}d}/{len(inputs)}] {name:>32s} - [{', '.join(f'{d:5d}' for d in ne)}], "
                f"type = {src_type:>6s}, ")
        if reason is None:
            line += f"converting to {new_type} .. size = {before / _MIB:8.2f} MiB -> {after / _MIB:8.2f} MiB"
        else:
            line += f"kept as f32 ({reason}) .. size = {before / _MIB:8.2f} MiB -> {after / _MIB:8.2f} MiB"
        bar.write(line, file=out)
        bar.update(1)
    bar.close()
    _gguf.write(dst, metadata, tensors, types=types)
    elapsed = time.perf_counter() - t0
    src_mb, dst_mb = summary["src_bytes"] / _MIB, summary["dst_bytes"] / _MIB
    print(f"model size  = {src_mb:8.2f} MiB", file=out)
    print(f"quant size  = {dst_mb:8.2f} MiB ({dst_mb / src_mb if src_mb else 0:.3f} of the input, "
          f"{src_mb / dst_mb if dst_mb else 0:.2f}x smaller)", file=out)
    print(f"{len(summary['quantized'])} tensors quantized to {qname}, {len(summary['kept'])} kept as f32; "
          f"{elapsed:.2f} s", file=out)
    if imatrix:
        unused = sorted(set(weights_of) - set(summary["with_imatrix"]))
        print(f"imatrix: {len(summary['with_imatrix'])} tensors quantized with importance weights"
              + (f"; {len(unused)} entries match no quantized tensor: {', '.join(unused[:8])}"
                 f"{' ...' if len(unused) > 8 else ''}" if unused else ""), file=out)
    if summary["kept"] and len(summary["kept"]) > 0:
        not_blocks = [n for n, r in summary["kept"].items() if "multiple" in r]
        if not_blocks:
            print(f"note: {len(not_blocks)} 2-D tensors kept as f32 because their rows are not whole "
                  f"{qname} blocks: {', '.join(not_blocks[:8])}{' ...' if len(not_blocks) > 8 else ''}", file=out)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="llmkit-quantize",
        description="Convert a GGUF or .safetensors model to a GGUF block type (byte-exact with ggml's quantizer).")
    p.add_argument("input", help="a .gguf (F32/F16/BF16 tensors) or .safetensors file")
    p.add_argument("output", help="the GGUF file to write (atomically)")
    p.add_argument("type", help="ggml type name: " + ", ".join(n for n in FILE_TYPES if n not in ("f32",)))
    p.add_argument("--keep", action="append", default=[], metavar="PATTERN",
                   help="keep tensors whose name matches this glob in F32 (repeatable)")
    p.add_argument("--allow-requantize", action="store_true", help="decode already-quantized tensors and requantize")
    p.add_argument("--threads", type=int, default=0, help="worker threads (0: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--imatrix", metavar="FILE", help="importance matrix from llama-imatrix (.gguf or legacy .dat)")
    a = p.parse_args(argv)
    try:
        quantize_model(a.input, a.output, a.type, keep=a.keep, allow_requantize=a.allow_requantize,
                       num_threads=a.threads, quiet=a.quiet, imatrix=a.imatrix)
    except (ValueError, TypeError, OSError, llmkit.LlmkitError) as e:
        print(f"llmkit-quantize: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
