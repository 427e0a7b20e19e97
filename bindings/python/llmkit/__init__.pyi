"""Type stubs for the llmkit package (the public Python face of llmkit)."""

from typing import (
    AbstractSet,
    Any,
    Callable,
    Collection,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Literal,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)
import os

import numpy as np
import numpy.typing as npt

from . import gguf as gguf  # GGUF files: llmkit.gguf.read / llmkit.gguf.write (typed in gguf.py)

__version__: str

_SeqIds = Optional[Union[int, Sequence[int], npt.NDArray[np.integer]]]
_SpecialSet = Union[Literal["all"], AbstractSet[str], Collection[str]]
_TokenIds = Union[Sequence[int], npt.NDArray[np.integer]]

class LlmkitError(RuntimeError):
    """An llmkit failure that is not a bad argument (no device, device, unsupported, I/O, format, internal)."""

    status: str
    """The C status name, e.g. ``"LLMKIT_ERROR_NO_DEVICE"``."""
    status_code: int
    """The C status value (negative)."""

def version() -> str:
    """The C library's version, ``"MAJOR.MINOR.PATCH"``."""

def build_info() -> str:
    """``"cuda=on|off onednn=on|off sanitizers=on|off"``."""

def set_num_threads(n: int) -> None:
    """Sets the default number of CPU worker threads (0 restores the default)."""

def get_num_threads() -> int:
    """The current default number of CPU worker threads (>= 1)."""

def cuda_compiled() -> bool:
    """Whether llmkit was built with its CUDA backend."""

def cuda_device_count() -> int:
    """Number of usable CUDA devices; 0 without a GPU or a CUDA build."""

def philox4x32_10(counter: Sequence[int], key: Sequence[int]) -> Tuple[int, int, int, int]:
    """One block of Philox-4x32-10: four counter words and two key words in, four words out."""

class SampleResult(NamedTuple):
    """Tokens plus the requested log-probabilities; unrequested fields are None."""

    tokens: Any
    """int32 (B,), or an int for 1-D logits."""
    logprobs: Any
    """float32 (B,) log-probability of each chosen token (a float for 1-D logits), or None."""
    top_ids: Any
    """int32 (B, n) most likely token ids, descending, or None."""
    top_logprobs: Any
    """float32 (B, n) their log-probabilities, or None."""

class SamplerChain:
    """An ordered chain of sampling steps with per-sequence state; add methods return the chain."""

    def __init__(self, seed: Optional[int] = 0) -> None: ...
    @property
    def seed(self) -> int:
        """The key of the chain's random draws."""
    def greedy(self) -> SamplerChain:
        """Appends the greedy picker."""
    def dist(self) -> SamplerChain:
        """Appends the random picker."""
    def temperature(self, t: float) -> SamplerChain:
        """Appends temperature scaling."""
    def dynamic_temperature(self, t: float, delta: float, exponent: float = 1.0) -> SamplerChain:
        """Appends entropy-based temperature."""
    def top_k(self, k: int) -> SamplerChain:
        """Appends top-k."""
    def top_p(self, p: float, min_keep: int = 1) -> SamplerChain:
        """Appends top-p (nucleus)."""
    def min_p(self, p: float, min_keep: int = 1) -> SamplerChain:
        """Appends min-p."""
    def typical(self, p: float, min_keep: int = 1) -> SamplerChain:
        """Appends locally typical sampling."""
    def top_n_sigma(self, n: float) -> SamplerChain:
        """Appends top-n-sigma."""
    def xtc(self, probability: float, threshold: float, min_keep: int = 1) -> SamplerChain:
        """Appends XTC (exclude top choices)."""
    def penalties(
        self, last_n: int = 64, repeat: float = 1.0, frequency: float = 0.0, presence: float = 0.0
    ) -> SamplerChain:
        """Appends repetition, frequency and presence penalties."""
    def dry(
        self,
        multiplier: float,
        base: float = 1.75,
        allowed_length: int = 2,
        last_n: int = -1,
        breakers: Iterable[int] = (),
    ) -> SamplerChain:
        """Appends DRY (don't repeat yourself)."""
    def logit_bias(
        self, bias: Union[Mapping[int, float], Tuple[Sequence[int], Sequence[float]]]
    ) -> SamplerChain:
        """Appends a logit bias ({id: bias} or (ids, biases)); -inf bans."""
    def ban(self, ids: Iterable[int]) -> SamplerChain:
        """Appends a ban on the given token ids."""
    def mirostat(self, tau: float = 5.0, eta: float = 0.1, m: int = 100) -> SamplerChain:
        """Appends the mirostat v1 picker."""
    def mirostat_v2(self, tau: float = 5.0, eta: float = 0.1) -> SamplerChain:
        """Appends the mirostat v2 picker."""
    def accept(self, tokens: Union[int, Sequence[int], npt.NDArray[np.integer]], seq_id: int = 0) -> None:
        """Appends tokens to a sequence's history."""
    def reset(self, seq_id: int = -1) -> None:
        """Forgets one sequence's state, or all with -1."""
    def describe(self) -> str:
        """The chain as one line of text."""
    def __len__(self) -> int: ...
    def sample(
        self,
        logits: Any,
        *,
        seq_ids: _SeqIds = None,
        num_threads: int = 0,
        logprobs: bool = False,
        top_logprobs: int = 0,
        logprob_source: str = "raw",
    ) -> Any:
        """int32 (B,) tokens (an int for 1-D logits), or a SampleResult when log-probabilities are asked for."""
    def apply(self, logits: Any, *, seq_ids: _SeqIds = None, num_threads: int = 0) -> npt.NDArray[np.float32]:
        """The processed logits (removed tokens are -inf); no state advances."""

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
    """int32 (B,) tokens, or an int for 1-D logits."""

def verify_speculative(
    draft_tokens: Any,
    draft_probs: Any,
    target_probs: Any,
    *,
    seed: int = 0,
    step: int = 0,
    seq_ids: _SeqIds = None,
    num_threads: int = 0,
) -> Tuple[Any, Any]:
    """(tokens int32 (B, K+1) padded with -1, n_accepted int32 (B,)); (K+1,) and an int for one sequence."""

class PairEncoding(NamedTuple):
    """Tokenizer.encode_pair's result: ids with their types, texts (None: added special token) and spans."""

    ids: List[int]
    type_ids: List[int]
    sequence_ids: List[Optional[int]]
    offsets: Optional[npt.NDArray[np.int64]]

class Tokenizer:
    """Byte-level BPE (tiktoken's algorithm and rules); load with Tokenizer.from_tiktoken. Thread-safe."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Not callable: raises TypeError (use from_tiktoken)."""
    @classmethod
    def from_tiktoken(cls, path: Union[str, os.PathLike[str]], encoding: str) -> Tokenizer:
        """Loads a tiktoken rank file with a preset: r50k_base (gpt2), p50k_base, cl100k_base, o200k_base, llama3, qwen2."""
    @classmethod
    def from_file(cls, path: Union[str, os.PathLike[str]], encoding: Optional[str] = None) -> Tokenizer:
        """Loads a tokenizer file, format detected from content (HF tokenizer.json; a tiktoken rank file with encoding)."""
    @classmethod
    def from_bytes(cls, data: Union[bytes, bytearray, memoryview], encoding: Optional[str] = None) -> Tokenizer:
        """Loads a tokenizer from a tokenizer file's bytes (formats as from_file); nothing of data is kept."""
    @classmethod
    def from_ranks(
        cls,
        mergeable_ranks: Union[Mapping[bytes, int], bytes, bytearray, memoryview, str, os.PathLike[str]],
        pat_str: str,
        special_tokens: Optional[Mapping[str, int]] = None,
        *,
        name: str = "custom",
    ) -> Tokenizer:
        """A tiktoken encoding given in full (tiktoken.Encoding's pat_str, mergeable_ranks, special_tokens)."""
    @property
    def pattern(self) -> str:
        """The pre-tokenizer regex of a byte-level BPE tokenizer (tiktoken's pat_str), as llmkit runs it."""
    def to_tiktoken(self) -> bytes:
        """The ranks as the bytes of a .tiktoken file (byte-level BPE only)."""
    @property
    def name(self) -> str:
        """The preset name it was loaded with."""
    @property
    def vocab_size(self) -> int:
        """Largest id (special tokens included) plus one."""
    @property
    def n_vocab(self) -> int:
        """Alias of vocab_size."""
    @property
    def special_tokens(self) -> Dict[str, int]:
        """The special tokens' texts and ids."""
    @property
    def special_tokens_set(self) -> FrozenSet[str]:
        """The special tokens' texts."""
    def token_to_id(self, token: Union[str, bytes]) -> Optional[int]:
        """The id of a token's exact text or bytes (regular or special), or None."""
    def id_to_token(self, id: int) -> Union[str, bytes]:
        """One token: bytes for tiktoken encodings, str for other formats; ValueError for an id that names no token."""
    def encode(
        self,
        text: str,
        *,
        allowed_special: _SpecialSet = ...,
        disallowed_special: _SpecialSet = "all",
        add_special_tokens: bool = False,
    ) -> List[int]:
        """Token ids of text, tiktoken's special-token rules; ValueError for a disallowed special token."""
    def encode_ordinary(self, text: str) -> List[int]:
        """Token ids with special tokens encoded as ordinary text."""
    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        num_threads: int = 0,
        allowed_special: _SpecialSet = ...,
        disallowed_special: _SpecialSet = "all",
        add_special_tokens: bool = False,
    ) -> List[List[int]]:
        """encode() of each text, on num_threads C++ threads (0: default) with the GIL released."""
    def encode_ordinary_batch(self, texts: Sequence[str], *, num_threads: int = 0) -> List[List[int]]:
        """encode_batch() with special tokens encoded as ordinary text."""
    def encode_single_token(self, text_or_bytes: Union[str, bytes]) -> int:
        """The id of exactly one token's text or bytes; KeyError if none (as tiktoken)."""
    def decode_bytes(self, ids: _TokenIds) -> bytes:
        """The tokens' bytes back to back."""
    def decode(self, ids: _TokenIds, errors: str = "replace", skip_special_tokens: bool = False) -> str:
        """The tokens' text (a tokenizer.json's decoder runs); invalid UTF-8 handled by errors (default U+FFFD)."""
    def decode_batch(self, batch: Sequence[_TokenIds], *, errors: str = "replace") -> List[str]:
        """decode() of each list of ids."""
    def decode_bytes_batch(self, batch: Sequence[_TokenIds]) -> List[bytes]:
        """decode_bytes() of each list of ids."""
    def decode_single_token_bytes(self, token: int) -> bytes:
        """The bytes one token stands for; KeyError for an id that names no token (as tiktoken)."""
    def decode_tokens_bytes(self, tokens: Sequence[int]) -> List[bytes]:
        """decode_single_token_bytes() of each id."""
    @property
    def eot_token(self) -> int:
        """The id of <|endoftext|>; KeyError if there is none."""
    @property
    def max_token_value(self) -> int:
        """The largest id, special tokens included (vocab_size - 1)."""
    def is_special_token(self, token: int) -> bool:
        """Whether the id is a special token's."""
    def token_byte_values(self) -> List[bytes]:
        """The bytes of every regular token, sorted."""
    def encode_with_offsets(
        self,
        text: str,
        *,
        allowed_special: _SpecialSet = ...,
        disallowed_special: _SpecialSet = "all",
        unit: str = "bytes",
        add_special_tokens: bool = False,
    ) -> Tuple[List[int], npt.NDArray[np.int64]]:
        """(ids, (n, 2) int64 [start, end) spans in bytes, or in characters with unit="chars")."""
    def encode_pair(
        self,
        text_a: str,
        text_b: str,
        *,
        allowed_special: _SpecialSet = ...,
        disallowed_special: _SpecialSet = "all",
        add_special_tokens: bool = False,
        return_offsets: bool = False,
        unit: str = "bytes",
    ) -> PairEncoding:
        """A pair of texts as one sequence (the post-processor's pair template): ids, type_ids, sequence_ids, offsets."""
    def save_tiktoken(self, path: Union[str, os.PathLike[str]]) -> None:
        """Writes the ranks as a .tiktoken file (no special tokens, as tiktoken's files)."""
    def save_tokenizer_json(self, path: Union[str, os.PathLike[str]]) -> None:
        """Writes an HF tokenizer.json that tokenizers loads with the same ids."""
    def decoder(self) -> TokenizerDecoder:
        """A streaming decoder for one stream of ids."""

def train_bpe(
    texts_or_path: Union[str, os.PathLike[str], Sequence[Union[str, bytes]]],
    vocab_size: int,
    pattern: str = "cl100k_base",
    special_tokens: Optional[Sequence[str]] = None,
    progress: Union[bool, Callable[[int, int], Optional[bool]]] = False,
    num_threads: int = 0,
) -> Tokenizer:
    """Trains byte-level BPE with minbpe's semantics (a file path or a list of texts); progress=True shows tqdm."""

class TokenizerDecoder:
    """Streaming decoder: ids in, only complete UTF-8 characters out; pieces joined == Tokenizer.decode(ids)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Not callable: raises TypeError (use Tokenizer.decoder())."""
    def feed(self, ids: Union[int, _TokenIds]) -> str:
        """The text the ids complete (may be ""); ValueError for an id that names no token."""
    def flush(self) -> str:
        """Ends the stream: "" or U+FFFD for an incomplete character; resets the decoder."""

# Quantization (GGUF block formats) -------------------------------------------

_QuantType = Union[str, int]

def quant_types(include_formats: bool = False) -> List[str]:
    """The GGUF types as ggml spells them ('f32', ..., 'q4_K', ..., 'bf16'); then 'int8', 'nf4', 'fp8_e4m3', ... if include_formats."""

def quant_nbytes(type: _QuantType, shape: Sequence[int]) -> int:
    """Bytes a float array of shape (rows, n) or (n,) takes in type (any type, GGUF or not)."""

def quant_block_size(type: _QuantType) -> Tuple[int, int]:
    """(elements, bytes) of one block, e.g. (256, 144) for 'q4_K'."""

class QuantizedTensor:
    """GGUF block bytes (rows back to back) with their type and the shape they encode."""

    def __init__(self, data: Any, type: _QuantType, shape: Sequence[int]) -> None:
        """Wraps existing bytes; ValueError when the byte count does not match type and shape."""
    @property
    def data(self) -> npt.NDArray[np.uint8]:
        """The blocks, 1-D uint8, rows back to back (GGUF layout)."""
    @property
    def type(self) -> str:
        """ggml's name of the format, e.g. 'q4_K'."""
    @property
    def type_id(self) -> int:
        """ggml's type number (the GGUF tensor type)."""
    @property
    def shape(self) -> Tuple[int, ...]:
        """(rows, n), or (n,) for a single row."""
    @property
    def nbytes(self) -> int:
        """Bytes of data."""
    def matmul(self, x: Any, *, num_threads: int = 0) -> npt.NDArray[np.float32]:
        """W @ x for x (k,), x @ W.T for x (m, k), without decoding W; x rounded to int8 per block on the fly."""
    def planes(self) -> Dict[str, npt.NDArray[Any]]:
        """Views of data by plane name: 'blocks' (GGUF), or 'weight'/'scales'/'zeros'/'absmax'/'qweight'/'qzeros'/'g_idx'."""

def quantize(
    array: Any,
    type: _QuantType,
    *,
    imatrix: Optional[Any] = None,
    num_threads: int = 0,
    zero_point: Optional[str] = None,
) -> QuantizedTensor:
    """float32 (rows, n) or (n,) into GGUF blocks, byte-exact with ggml; imatrix: n importance weights (one per column) or None."""

def dequantize(qt: QuantizedTensor, *, num_threads: int = 0) -> npt.NDArray[np.float32]:
    """float32 array of qt.shape, bit-exact with ggml's to_float."""

def quant_convert(
    qt: QuantizedTensor, type: _QuantType, *, zero_point: Optional[str] = None, num_threads: int = 0
) -> Tuple[QuantizedTensor, Dict[str, Any]]:
    """(converted, stats): exact for gptq_int4_g32 (symmetric, no act-order) <-> q4_0, else via float32."""

def gptq(
    weight: Any,
    calib_inputs: Any,
    *,
    bits: int = 4,
    group_size: int = 128,
    act_order: bool = False,
    damp: float = 0.01,
    sym: bool = True,
    format: str = "gptq",
    block_size: int = 128,
    progress: Union[bool, Any] = True,
    num_threads: int = 0,
) -> Tuple[QuantizedTensor, Dict[str, Any]]:
    """GPTQ of a linear layer (weight (out, in), activations (tokens, in)); (qt, {'output_error', 'rtn_output_error', 'dead_columns'})."""

def awq(
    weight: Any,
    calib_inputs: Any,
    *,
    bits: int = 4,
    group_size: int = 128,
    zero_point: bool = True,
    n_grid: int = 20,
    max_shrink: float = 0.5,
    clip: bool = True,
    progress: Union[bool, Any] = True,
    num_threads: int = 0,
    format: str = "awq",
) -> Tuple[QuantizedTensor, npt.NDArray[np.float32], Dict[str, Any]]:
    """AWQ of a linear layer: (qt of W * scales, scales to fold into the previous op, report)."""

def quant_matmul_int8(
    x: Any, weight: Any, scales: Any, *, num_threads: int = 0, x_rounding: str = "blocks"
) -> npt.NDArray[np.float32]:
    """x @ (scales[:, None] * weight).T for int8 weight (rows, k) and float32 scales (rows,)."""

def quant_matmul_isa() -> str:
    """'avx512vnni', 'avx2' or 'scalar': the instruction set of the quantized matmul kernels on this CPU."""

# Attention, RoPE, KV cache -----------------------------------------------------

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
    """softmax(scale q k^T + bias) v on (B, S, H, D) arrays (``sinks``: Hq logits joining each head's softmax
    denominator); result of q's kind, shape and dtype; with return_lse, (out, lse float32 (B, Sq, Hq))."""

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
    """Attention over packed sequences (Tq, Hq, D) / (Tk, Hkv, D) with B + 1 offsets each (flash-attn's varlen);
    with return_lse, (out, lse float32 (Tq, Hq))."""

def attention_merge(out: Any, lse: Any, other_out: Any, other_lse: Any, *, in_place: bool = False) -> Tuple[Any, Any]:
    """Attention over two disjoint key sets merged through their log-sum-exps: (out, lse) over both."""

def rope(
    x: Any,
    positions: Any,
    *,
    theta: float = 10000.0,
    rotary_dim: Optional[int] = None,
    layout: Literal["neox", "interleaved"] = "neox",
    scaling: Optional[Mapping[str, Any]] = None,
    in_place: bool = False,
    num_threads: int = 0,
) -> Any:
    """Rotary position embeddings on (B, S, H, D); a rotated copy, or x itself with in_place=True."""

def attention_isa() -> str:
    """The kernel set attention uses on this CPU: "avx512vnni" (int8 KV caches decoded in integers),
    "avx512", "avx2" or "generic"."""

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
    """2 * n_layers * n_kv_heads * head_dim * bytes(dtype) * context * batch; with v_head_dim, V's rows at their own
    width (n_layers * n_kv_heads * (head_dim + v_head_dim) * ...); with v_from_k (MLA's latent cache), no V."""

class _KVCacheBase:
    def new_sequence(self) -> int:
        """Starts an empty sequence; returns its id."""
    def fork(self, seq: int) -> int:
        """A new sequence holding seq's tokens (paged: shared blocks, copy-on-write)."""
    def free(self, seq: int) -> None:
        """Ends a sequence."""
    def truncate(self, seq: int, n: int) -> None:
        """Keeps seq's first n tokens in every layer (speculative decoding's rejected drafts)."""
    def erase(self, seq: int, start: int, stop: int, *, rope: Any = None) -> None:
        """Removes tokens start..stop-1 of seq from every layer, the later ones moving down, their K turned
        back by stop - start positions with the appends' rope (context shift; None: K moves as it is)."""
    def save(self, seq: int) -> bytes:
        """seq's cached K and V as bytes (a 40-byte header, then the cache's own rows), loadable by load()
        of any cache, contiguous or paged, of the same dtype and shape."""
    def load(self, seq: int, data: Any) -> None:
        """Replaces seq's tokens with saved ones (bytes, bytearray, memoryview or a uint8 array); checked
        first, so an error leaves seq unchanged."""
    def length(self, seq: int, layer: Optional[int] = None) -> int:
        """Tokens held in layer (None: the largest over layers)."""
    @property
    def memory_bytes(self) -> int:
        """Bytes allocated (contiguous) or in use (paged)."""
    def append(
        self, layer: int, seq: int, k: Any, v: Any = None, *, rope: Union[None, bool, Mapping[str, Any]] = None
    ) -> None:
        """Appends K rows (S, n_kv_heads, head_dim) and V rows (S, n_kv_heads, v_head_dim), v None for a v_from_k
        cache; rope rotates K on its way in (token j at position j)."""
    def attention(
        self,
        layer: int,
        q: Any,
        seq_ids: Union[int, Sequence[int]],
        *,
        causal: bool = True,
        window: Optional[int] = None,
        softcap: Optional[float] = None,
        scale: Optional[float] = None,
        alibi_slopes: Optional[Any] = None,
        sinks: Optional[Any] = None,
        split_keys: Optional[int] = None,
        num_threads: int = 0,
        rope: Union[None, bool, Mapping[str, Any]] = None,
        return_lse: bool = False,
        cu_seqlens_q: Optional[Any] = None,
    ) -> Any:
        """Attention of q (B, Sq, Hq, D), the last Sq tokens of each sequence, over the cache: out
        (B, Sq, Hq, v_head_dim); rope rotates q; with return_lse, (out, lse float32 (B, Sq, Hq)). cu_seqlens_q
        (B + 1 offsets): q packed (Tq, Hq, D), each sequence its own number of queries; out (Tq, Hq, Dv), lse (Tq, Hq)."""
    def prefill(self, layer: int, seq: int, q: Any, k: Any, v: Any = None, **options: Any) -> Any:
        """Appends k (S, Hkv, D), v (S, Hkv, Dv) and returns the chunk's attention (S, Hq, Dv)."""
    def decode(self, layer: int, seq_ids: Sequence[int], q: Any, k: Any, v: Any = None, **options: Any) -> Any:
        """One token per sequence: appends k[b], v[b] and returns (B, Hq, Dv)."""

class KVCache(_KVCacheBase):
    """A contiguous KV cache: max_sequences slots of capacity tokens; dtype fp32, bf16, fp16 or int8.
    v_head_dim: V's own head_dim (None: head_dim); v_from_k: no V stored, V = each K row's first v_head_dim (MLA)."""
    def __init__(
        self,
        *,
        n_layers: int,
        n_kv_heads: int,
        head_dim: int,
        capacity: int,
        max_sequences: int = 1,
        dtype: Any = "fp32",
        v_head_dim: Optional[int] = None,
        v_from_k: bool = False,
    ) -> None: ...

class PagedKVCache(_KVCacheBase):
    """A paged KV cache: a pool of blocks, block tables, fork with copy-on-write."""
    def __init__(
        self,
        *,
        n_layers: int,
        n_kv_heads: int,
        head_dim: int,
        n_blocks: int,
        block_size: int = 16,
        max_sequences: int = 64,
        max_blocks_per_seq: Optional[int] = None,
        dtype: Any = "fp32",
        v_head_dim: Optional[int] = None,
        v_from_k: bool = False,
    ) -> None: ...
    @property
    def free_blocks(self) -> int:
        """Blocks on the free list."""
    @property
    def pool_bytes(self) -> int:
        """Bytes of the whole pool."""
    def block_table(self, seq: int) -> List[int]:
        """The block ids of seq in token order (-1: released by release_before)."""
    def release_before(self, seq: int, n: int) -> int:
        """Releases the blocks of seq's first n tokens (sliding windows); returns the first token held."""
    def attention_tables(
        self,
        layer: int,
        q: Any,
        block_tables: Any,
        seq_lens: Any,
        *,
        causal: bool = True,
        window: Optional[int] = None,
        softcap: Optional[float] = None,
        scale: Optional[float] = None,
        alibi_slopes: Optional[Any] = None,
        sinks: Optional[Any] = None,
        split_keys: Optional[int] = None,
        num_threads: int = 0,
        rope: Union[None, bool, Mapping[str, Any]] = None,
        return_lse: bool = False,
        cu_seqlens_q: Optional[Any] = None,
    ) -> Any:
        """attention() with caller-made block tables (B, max_blocks) and seq_lens (B,), any integer dtype;
        cu_seqlens_q packs q as in attention()."""
