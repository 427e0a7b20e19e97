"""llmkit: building blocks of large language models.

A thin Python face over llmkit's stable C ABI (the native module
``llmkit._llmkit`` is private). Arrays go in without copies: numpy arrays
(float32, float16; any strides) and any object with ``__dlpack__`` (PyTorch
tensors, including bfloat16 and CUDA tensors, CuPy arrays, ...). Results come
back as new numpy arrays on the host. A torch tensor with its negative bit set
(``x.conj().imag``, ``x._neg_view()``) is refused: DLPack exports it without
its sign, so pass ``x.resolve_neg()``.

Errors raise exceptions carrying the C library's message: :class:`ValueError`
for bad arguments (shape, dtype, range, NaN/inf, ...), :class:`MemoryError`
when an allocation fails and :class:`LlmkitError` (a :class:`RuntimeError`)
for the rest (no device, device failure, unsupported, I/O, format, internal).
Each carries ``.status``, the C status name such as ``"LLMKIT_ERROR_SHAPE"``.

Sampling::

    import numpy as np, llmkit
    logits = np.random.default_rng(0).standard_normal((4, 32000), dtype=np.float32)
    ids = llmkit.sample(logits, temperature=0.8, top_p=0.95, seed=1)   # int32, shape (4,)

    chain = llmkit.SamplerChain(seed=42).penalties(64, 1.1).top_k(40).top_p(0.95).temperature(0.8).dist()
    ids = chain.sample(logits)                                           # advances each sequence

Tokenizing (byte-level BPE, tiktoken's algorithm and rank files)::

    tok = llmkit.Tokenizer.from_tiktoken("cl100k_base.tiktoken", "cl100k_base")
    ids = tok.encode("hello world")                                      # [15339, 1917]
    text = tok.decode(ids)
    batch = tok.encode_batch(texts, num_threads=8)                       # GIL released, threads in C++

Quantizing into GGUF block formats (byte-exact with ggml)::

    qt = llmkit.quantize(w, "q4_K")          # w: float32 (rows, n); qt.data: uint8 GGUF bytes
    w2 = llmkit.dequantize(qt)               # float32 (rows, n), bit-exact with ggml's to_float

Attention and RoPE on (batch, seq, heads, head_dim) arrays::

    q = llmkit.rope(q, positions, theta=500000.0, scaling={"type": "llama3", "factor": 8.0,
                    "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position": 8192})
    out = llmkit.attention(q, k, v, causal=True)                         # GQA when k, v have fewer heads
    llmkit.kv_cache_bytes(n_layers=32, n_kv_heads=8, head_dim=128, dtype="bf16", context=8192)

Inside a Hugging Face transformers model (see :mod:`llmkit.hf`)::

    import llmkit.hf
    llmkit.hf.register()
    model = AutoModelForCausalLM.from_pretrained(name, attn_implementation="llmkit")
"""

from __future__ import annotations

from typing import Sequence, Tuple

from . import _llmkit
from ._llmkit import LlmkitError
from ._args import int32 as _int32, u32_words as _u32_tuple
from ._attention import KVCache, PagedKVCache, attention, attention_isa, attention_merge, attention_varlen, kv_cache_bytes, rope
from ._quant import (QuantizedTensor, awq, dequantize, gptq, quant_block_size, quant_convert, quant_nbytes,
                     quant_types, quantize)
from ._quant_matmul import quant_matmul_int8, quant_matmul_isa
from ._sampling import SampleResult, SamplerChain, sample, verify_speculative
from ._tokenizer import PairEncoding, Tokenizer, TokenizerDecoder, train_bpe
from . import gguf

__all__ = [
    "__version__",
    "KVCache",
    "LlmkitError",
    "PagedKVCache",
    "PairEncoding",
    "QuantizedTensor",
    "SampleResult",
    "SamplerChain",
    "Tokenizer",
    "TokenizerDecoder",
    "attention",
    "attention_merge",
    "attention_varlen",
    "awq",
    "build_info",
    "cuda_compiled",
    "cuda_device_count",
    "dequantize",
    "get_num_threads",
    "gptq",
    "attention_isa",
    "kv_cache_bytes",
    "philox4x32_10",
    "quant_block_size",
    "quant_convert",
    "quant_nbytes",
    "quant_matmul_int8",
    "quant_matmul_isa",
    "quant_types",
    "quantize",
    "rope",
    "sample",
    "set_num_threads",
    "train_bpe",
    "verify_speculative",
    "version",
]


def version() -> str:
    """The C library's version, ``"MAJOR.MINOR.PATCH"`` (``llmkit_version()``)."""
    return _llmkit.version()


__version__: str = version()


def build_info() -> str:
    """How the native library was built: ``"cuda=on|off onednn=on|off sanitizers=on|off"``."""
    return _llmkit.build_info()


def set_num_threads(n: int) -> None:
    """Sets the default number of CPU worker threads for llmkit's kernels.

    ``n >= 1`` sets it; ``0`` restores the default (all hardware threads).
    Affects calls that start afterwards, from any Python thread. Raises
    :class:`ValueError` for a negative ``n``.
    """
    _llmkit.set_num_threads(_int32(n, "n"))


def get_num_threads() -> int:
    """The current default number of CPU worker threads (always >= 1)."""
    return _llmkit.get_num_threads()


def cuda_compiled() -> bool:
    """Whether this llmkit was built with its CUDA backend."""
    return _llmkit.cuda_compiled()


def cuda_device_count() -> int:
    """Number of usable CUDA devices; 0 without a GPU, a driver, or a CUDA build."""
    return _llmkit.cuda_device_count()


def philox4x32_10(counter: Sequence[int], key: Sequence[int]) -> Tuple[int, int, int, int]:
    """One block of Philox-4x32-10, the generator behind every random draw in llmkit.

    ``counter`` is four and ``key`` two unsigned 32-bit integers; returns the four
    output words. llmkit's draw for (seed, sequence, step, draw index) uses
    ``key = (seed & 0xffffffff, seed >> 32)`` and
    ``counter = (draw, step, seq & 0xffffffff, seq >> 32)``; the uniform in [0, 1)
    is ``((out[0] >> 5) * 2**26 + (out[1] >> 6)) * 2**-53``.
    """
    c = _u32_tuple(counter, 4, "counter")
    k = _u32_tuple(key, 2, "key")
    return tuple(_llmkit.philox4x32_10(c, k))  # type: ignore[return-value]
