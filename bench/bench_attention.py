#!/usr/bin/env python3
"""Attention on the CPU: llmkit against torch.nn.functional.scaled_dot_product_attention,
with the machine's measured matmul peak and memory bandwidth in the same run.

llmkit is called through its C ABI with ctypes, on the same process, threads and
inputs as torch; every llmkit result is checked against torch's before timing.

    cmake -S . -B build-attn -G Ninja -DLLMKIT_BUILD_PYTHON=OFF && ninja -C build-attn llmkit
    python3 bench/bench_attention.py --lib build-attn/libllmkit.so [--threads 2] [--quick]
        [--prefill-sizes 512,2048] [--contexts 1024,8192]

Peaks (measured first, same threads): a torch matmul, 2048^3 in float32 and
1024^3 in bfloat16 (GFLOP/s; float32 the faster of torch's matmul and oneDNN's
dnnl_sgemm from Debian's libdnnl, both printed: torch's float32 matmul runs at
half the FMA rate on AMD Zen 5), and memory bandwidth as the sum of a 1 GiB float32 tensor
(bytes read per second; the copy of 1 GiB, read + write, is printed too).

Prefill cells: causal self-attention of 512, 2048 and 8192 tokens, 32 query
heads, 8 key/value heads, head_dim 128 (dense tensors, llmkit_attention).
GFLOP/s counts the useful work only: 4 * D flops per visible (query, key) pair,
so a causal prefill of S tokens is 4 * B * Hq * D * S (S + 1) / 2; "%peak" is
against the float32 matmul peak (16-bit cells: the larger of the float32 and
bfloat16 peaks, since without AVX512-BF16 or AMX bf16 matmul is the slower). The 8192 cells run once after a
warm-up (each takes seconds on 2 cores).

Cascade decode: 16 sequences sharing a 2048- or 8192-token prompt prefix, 256 tokens of their own
each: llmkit's cascade (the prefix attended once for the batch with llmkit_attention's lse, each
sequence's own tokens from a paged cache, llmkit_attention_merge) against the same algorithm in
torch (its CPU flash attention, which returns the log-sum-exp, and a logaddexp merge), llmkit's
paged cache sharing the prefix by fork, and torch SDPA over each sequence's whole K/V.

Varlen prefill: a batch of 8 prompts of 33-1500 tokens packed end to end (llmkit_attention_varlen)
against torch SDPA on the batch padded to the longest prompt with a mask, and a loop of SDPA calls.

Mixed serving step: 16 decodes over 1k-8k cached tokens and 2 prefill chunks of 512 queries in a
paged cache, the queries packed (options.cu_seqlens_q) in one call, against the batched API called
per group (the decodes, each chunk) and a loop of torch SDPA calls over each sequence's dense K/V.

Padded batch: 4 prompts left-padded to the longest with a [B, 1, 1, S] padding mask (torch's attn_mask
broadcast) against torch SDPA with the padding folded into a [B, 1, S, S] boolean mask, and varlen on
the prompts packed without padding. Padded decode: one decode step of 16 sequences of 1k-8k tokens
left-padded to 8k with the same kind of mask, against torch SDPA with it and llmkit without a mask.

Decode with many query rows per kv head: one token with 8 and 16 query heads per kv
head (Llama 3 70B, Llama 3.1 405B) and MQA (32 over one), and a step of 4 tokens
(speculative verification) with 4, batch 4 over 4096 cached tokens: their arithmetic
(2 * G * tokens flops per K/V element) outgrows the memory, so GFLOP/s as for prefill.

Decode cells: one new token per sequence against 1024 and 8192 cached tokens,
batch 1 and 16: dense K/V tensors (llmkit_attention) in torch's layout viewed
with strides ("dense": each head's keys contiguous) and as compact [B, S, H, D]
arrays ("dense bshd": the heads of a token side by side), the contiguous cache, the paged cache (blocks of 16; --block-sizes
16,256 gives a paged cell per size) and int8 contiguous and paged caches (blocks of
the first size); the cache dtype is the cell's dtype, except int8. --variants runs
only the named ones (e.g. "contig int8,paged int8"). GB/s counts the
K/V bytes a decode must read (int8: 1 byte per element plus a 4-byte scale per
row); "%bw" is against the read bandwidth probed around the cell (a 256 MiB
float32 sum, same threads, before and after, the larger of the two; "bw"
column), since on a shared machine the bandwidth left to one process moves by
2-5x within a run; --fixed-bandwidth uses the start-of-run figure instead.
"%mm" is the cell's arithmetic (4 * D flops per query head and cached key:
q.k and p*v, the same for every cache dtype) as a share of the float32 matmul
peak: a cell near it is bound by compute, not memory (int8 reads half the bytes
of bf16 for the same flops, converted to float32 in registers; on CPUs with
AVX512-VNNI int8 decode runs on int16 integer products instead, which can pass
100 %).
"""

from __future__ import annotations

import argparse
import ctypes
import math
import time

import torch
import torch.nn.functional as F

from benchlib import best_time


class Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", Device), ("ndim", ctypes.c_int32), ("dtype", DType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


class AttentionOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("causal", ctypes.c_int32), ("window", ctypes.c_int64),
                ("softcap", ctypes.c_float), ("scale", ctypes.c_float), ("alibi_slopes", ctypes.c_void_p),
                ("mask", ctypes.c_void_p), ("n_threads", ctypes.c_int32), ("stream", ctypes.c_void_p)]


class AttentionOptionsLse(ctypes.Structure):
    """llmkit_attention_options through its lse field (sinks left NULL)."""
    _fields_ = AttentionOptions._fields_ + [("sinks", ctypes.c_void_p), ("lse", ctypes.POINTER(Tensor))]


class KVCacheOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("n_layers", ctypes.c_int32), ("n_kv_heads", ctypes.c_int32),
                ("head_dim", ctypes.c_int32), ("capacity", ctypes.c_int64), ("max_sequences", ctypes.c_int32),
                ("dtype", ctypes.c_int32), ("v_head_dim", ctypes.c_int32), ("v_from_k", ctypes.c_int32)]


class PagedKVCacheOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("n_layers", ctypes.c_int32), ("n_kv_heads", ctypes.c_int32),
                ("head_dim", ctypes.c_int32), ("block_size", ctypes.c_int32), ("n_blocks", ctypes.c_int64),
                ("max_sequences", ctypes.c_int32), ("max_blocks_per_seq", ctypes.c_int64), ("dtype", ctypes.c_int32),
                ("v_head_dim", ctypes.c_int32), ("v_from_k", ctypes.c_int32)]


class KVAttentionOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("causal", ctypes.c_int32), ("window", ctypes.c_int64),
                ("softcap", ctypes.c_float), ("scale", ctypes.c_float), ("alibi_slopes", ctypes.c_void_p),
                ("sinks", ctypes.c_void_p), ("n_threads", ctypes.c_int32), ("split_keys", ctypes.c_int64),
                ("rope", ctypes.c_void_p)]


class KVAttentionOptionsLse(ctypes.Structure):
    """llmkit_kv_attention_options through its lse field."""
    _fields_ = KVAttentionOptions._fields_ + [("lse", ctypes.POINTER(Tensor))]


class KVAttentionOptionsPacked(ctypes.Structure):
    """llmkit_kv_attention_options through its cu_seqlens_q field."""
    _fields_ = KVAttentionOptionsLse._fields_ + [("cu_seqlens_q", ctypes.POINTER(Tensor))]


class RopeOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("layout", ctypes.c_int32), ("theta", ctypes.c_double),
                ("rotary_dims", ctypes.c_int32), ("scaling", ctypes.c_int32), ("factor", ctypes.c_double),
                ("alpha", ctypes.c_double), ("low_freq_factor", ctypes.c_double),
                ("high_freq_factor", ctypes.c_double), ("original_max_position", ctypes.c_double),
                ("beta_fast", ctypes.c_double), ("beta_slow", ctypes.c_double),
                ("attention_factor", ctypes.c_double), ("n_threads", ctypes.c_int32), ("stream", ctypes.c_void_p),
                ("frequency_factors", ctypes.POINTER(ctypes.c_float)), ("mrope_section", ctypes.c_int32 * 3),
                ("mrope_interleaved", ctypes.c_int32)]

    @staticmethod
    def neox(theta: float, threads: int) -> "RopeOptions":
        """llmkit's defaults (LLMKIT_ROPE_OPTIONS_INIT) with theta and threads set."""
        return RopeOptions(ctypes.sizeof(RopeOptions), 0, theta, 0, 0, 1.0, 1.0, 1.0, 4.0, 8192.0, 32.0, 1.0, 0.0,
                           threads, None, None, (ctypes.c_int32 * 3)(0, 0, 0), 0)


DTYPES = {torch.float32: (2, 32), torch.bfloat16: (4, 16), torch.float16: (2, 16)}
KV_F32, KV_BF16, KV_F16, KV_INT8, KV_FP8_E4M3, KV_FP8_E5M2 = 0, 1, 2, 3, 4, 5
KV_CODE = {torch.float32: KV_F32, torch.bfloat16: KV_BF16, torch.float16: KV_F16}


def as_llmkit(t: torch.Tensor):
    """A descriptor of t (kept alive with its shape/stride arrays)."""
    shape = (ctypes.c_int64 * t.dim())(*t.shape)
    strides = (ctypes.c_int64 * t.dim())(*t.stride())
    code, bits = DTYPES[t.dtype]
    d = Tensor(t.data_ptr(), Device(1, 0), t.dim(), DType(code, bits, 1), shape, strides, 0)
    return d, (shape, strides, t)


def new_paged_cache(lib, Hkv: int, D: int, bs: int, n_blocks: int, B: int, per_seq: int, kv_code: int):
    """A one-layer llmkit paged cache with B empty sequences: (handle, ctypes int32 array of their ids)."""
    handle = ctypes.c_void_p()
    o = PagedKVCacheOptions(ctypes.sizeof(PagedKVCacheOptions), 1, Hkv, D, bs, n_blocks, B, per_seq, kv_code, 0, 0)
    lib.check(lib.lib.llmkit_paged_kv_cache_create(ctypes.byref(handle), ctypes.byref(o)))
    ids = (ctypes.c_int32 * B)()
    for b in range(B):
        s = ctypes.c_int32()
        lib.check(lib.lib.llmkit_paged_kv_cache_seq_new(handle, ctypes.byref(s)))
        ids[b] = s.value
    return handle, ids


def interleaved_best(fns, min_time: float, rounds: int = 5):
    """Best time of each function, measured in alternating rounds so that load
    from other processes on a shared machine hits every contender alike."""
    for fn in fns:
        fn()  # warm up (thread pools, page faults)
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            reps = 0
            while reps < 2 or time.perf_counter() - start < min_time / rounds:
                t0 = time.perf_counter()
                fn()
                best[i] = min(best[i], time.perf_counter() - t0)
                reps += 1
    return best


def once_each(fns):
    """One warm-up and one timed call of each (for cells that take seconds)."""
    for fn in fns:
        fn()
    best = []
    for fn in fns:
        t0 = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t0)
    return best


def onednn_sgemm_rate(n: int, threads: int, reps: int):
    """GFLOP/s of oneDNN's dnnl_sgemm on an n^3 float32 product, or None where
    Debian's libdnnl is missing. torch's own float32 matmul is no peak on every
    CPU: on AMD Zen 5 it ran at 43 % of oneDNN's (217.7 against 470-510 GFLOP/s
    on 2 threads), so "%peak" takes the faster of the two."""
    try:
        dnnl = ctypes.CDLL("libdnnl.so.2")
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(threads)  # the runtime Debian's oneDNN links
    except OSError:
        return None
    sgemm = dnnl.dnnl_sgemm
    i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    sgemm.argtypes = [ctypes.c_char, ctypes.c_char, i64, i64, i64, f32, ptr, i64, ptr, i64, f32, ptr, i64]
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)

    def run():
        if sgemm(b"N", b"N", n, n, n, 1.0, a.data_ptr(), n, b.data_ptr(), n, 0.0, c.data_ptr(), n) != 0:
            raise RuntimeError("dnnl_sgemm failed")

    t = best_time(run, reps)
    err = (c - a @ b).abs().max().item()
    if err > 1e-3 * n ** 0.5:
        raise RuntimeError(f"dnnl_sgemm disagrees with torch.matmul by {err}")
    return 2.0 * n ** 3 / t / 1e9


def measure_peaks(quick: bool, threads: int):
    """Matmul GFLOP/s (float32, bfloat16) and memory GB/s (read, copy) of this machine, now.
    The float32 peak is the faster of torch's matmul and oneDNN's sgemm (both printed)."""
    peaks, sources = {}, {}
    for dt in (torch.float32, torch.bfloat16):
        n = 2048 if dt == torch.float32 else 1024  # bf16 matmul is far slower without AVX512-BF16/AMX
        a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
        c = torch.empty(n, n, dtype=dt)
        t = best_time(lambda: torch.matmul(a, b, out=c), 2 if quick else 3)
        peaks[dt] = 2.0 * n ** 3 / t / 1e9
        sources[dt] = f"torch {peaks[dt]:.1f}"
    dnnl = onednn_sgemm_rate(2048, threads, 2 if quick else 3)
    if dnnl is not None:
        sources[torch.float32] += f", oneDNN sgemm {dnnl:.1f}"
        peaks[torch.float32] = max(peaks[torch.float32], dnnl)
    x = torch.ones(256 * 1024 * 1024, dtype=torch.float32)  # 1 GiB
    y = torch.empty_like(x)
    t_sum = best_time(lambda: x.sum(), 2 if quick else 3)
    t_copy = best_time(lambda: y.copy_(x), 2 if quick else 3)
    read_bw = x.numel() * 4 / t_sum / 1e9
    copy_bw = 2 * x.numel() * 4 / t_copy / 1e9
    del x, y
    return peaks, sources, read_bw, copy_bw


_PROBE = None


def local_read_bw() -> float:
    """GB/s of the best of two sums of a 256 MiB float32 tensor (the bandwidth left to this process now)."""
    global _PROBE
    if _PROBE is None:
        _PROBE = torch.ones(64 * 1024 * 1024, dtype=torch.float32)
    t = min(best_time(lambda: _PROBE.sum(), 1) for _ in range(2))
    return _PROBE.numel() * 4 / t / 1e9


class Lib:
    """The C functions the benchmark calls, with their signatures."""

    def __init__(self, path: str):
        lib = ctypes.CDLL(path)
        P, c_int32, c_int64 = ctypes.POINTER, ctypes.c_int32, ctypes.c_int64
        sig = {
            "llmkit_attention": [P(Tensor)] * 4 + [P(AttentionOptions)],
            "llmkit_kv_cache_create": [P(ctypes.c_void_p), P(KVCacheOptions)],
            "llmkit_kv_cache_seq_new": [ctypes.c_void_p, P(c_int32)],
            "llmkit_kv_cache_append": [ctypes.c_void_p, c_int32, c_int32, P(Tensor), P(Tensor)],
            "llmkit_kv_cache_attention": [ctypes.c_void_p, c_int32, P(Tensor), P(c_int32), c_int64, P(Tensor),
                                          P(KVAttentionOptions)],
            "llmkit_paged_kv_cache_create": [P(ctypes.c_void_p), P(PagedKVCacheOptions)],
            "llmkit_paged_kv_cache_seq_new": [ctypes.c_void_p, P(c_int32)],
            "llmkit_paged_kv_cache_append": [ctypes.c_void_p, c_int32, c_int32, P(Tensor), P(Tensor)],
            "llmkit_paged_kv_cache_attention": [ctypes.c_void_p, c_int32, P(Tensor), P(c_int32), c_int64, P(Tensor),
                                                P(KVAttentionOptions)],
            "llmkit_kv_cache_seq_free": [ctypes.c_void_p, c_int32],
            "llmkit_kv_cache_append_rope": [ctypes.c_void_p, c_int32, c_int32, P(Tensor), P(Tensor), P(RopeOptions)],
            "llmkit_paged_kv_cache_append_rope": [ctypes.c_void_p, c_int32, c_int32, P(Tensor), P(Tensor),
                                                  P(RopeOptions)],
            "llmkit_rope": [P(Tensor), P(Tensor), P(RopeOptions)],
            "llmkit_rope_into": [P(Tensor), P(Tensor), P(Tensor), P(RopeOptions)],
            "llmkit_attention_merge": [P(Tensor)] * 4,
            "llmkit_attention_varlen": [P(Tensor)] * 6 + [P(AttentionOptions)],
            "llmkit_paged_kv_cache_seq_fork": [ctypes.c_void_p, c_int32, P(c_int32)],
        }
        for name, args in sig.items():
            getattr(lib, name).argtypes = args
            getattr(lib, name).restype = ctypes.c_int
        # Newer calls, absent from older builds (a --lib of an older commit still runs the other cells).
        optional = {
            "llmkit_kv_cache_seq_save": [ctypes.c_void_p, c_int32, ctypes.c_void_p, ctypes.c_size_t,
                                         P(ctypes.c_size_t)],
            "llmkit_kv_cache_seq_load": [ctypes.c_void_p, c_int32, ctypes.c_void_p, ctypes.c_size_t],
            "llmkit_paged_kv_cache_seq_save": [ctypes.c_void_p, c_int32, ctypes.c_void_p, ctypes.c_size_t,
                                               P(ctypes.c_size_t)],
            "llmkit_paged_kv_cache_seq_load": [ctypes.c_void_p, c_int32, ctypes.c_void_p, ctypes.c_size_t],
            "llmkit_paged_kv_cache_seq_release_before": [ctypes.c_void_p, c_int32, c_int64, P(c_int64)],
            "llmkit_paged_kv_cache_memory_bytes": [ctypes.c_void_p, P(ctypes.c_uint64), P(ctypes.c_uint64)],
            "llmkit_kv_cache_seq_erase": [ctypes.c_void_p, c_int32, c_int64, c_int64, P(RopeOptions)],
            "llmkit_paged_kv_cache_seq_erase": [ctypes.c_void_p, c_int32, c_int64, c_int64, P(RopeOptions)],
        }
        for name, args in optional.items():
            if hasattr(lib, name):
                getattr(lib, name).argtypes = args
                getattr(lib, name).restype = ctypes.c_int
        for name in ("llmkit_kv_cache_free", "llmkit_paged_kv_cache_free"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = None
        lib.llmkit_last_error_message.restype = ctypes.c_char_p
        self.lib = lib

    def check(self, status: int) -> None:
        if status != 0:
            raise RuntimeError(self.lib.llmkit_last_error_message().decode())

    def attention_call(self, q: Tensor, k: Tensor, v: Tensor, out: Tensor, opts: AttentionOptions):
        """A call of llmkit_attention on these tensors and options, to time."""
        args = [ctypes.byref(x) for x in (q, k, v, out, opts)]
        return lambda: self.check(self.lib.llmkit_attention(*args))


class Cache:
    """A contiguous or paged llmkit cache holding B sequences of the given K/V rows ([B, S, Hkv, D] tensors).
    v_from_k: the cache keeps K alone and reads V as the first v.shape[-1] elements of each K row (MLA's latent
    cache; v must be that view of k)."""

    def __init__(self, lib: Lib, paged: bool, kv_dtype: int, k: torch.Tensor, v: torch.Tensor, threads: int,
                 bs: int = 16, v_from_k: bool = False, empty: bool = False):
        """empty: the sequences are made but the rows not appended (room for k.shape[1] tokens each)."""
        self.lib, self.paged = lib, paged
        B, S, Hkv, D = k.shape
        Dv = v.shape[-1]
        self.handle = ctypes.c_void_p()
        prefix = "llmkit_paged_kv_cache_" if paged else "llmkit_kv_cache_"
        self.fn = {n: getattr(lib.lib, prefix + n) for n in ("seq_new", "append", "attention", "free")}
        if paged:
            per_seq = (S + bs - 1) // bs
            o = PagedKVCacheOptions(ctypes.sizeof(PagedKVCacheOptions), 1, Hkv, D, bs, B * per_seq, B, per_seq,
                                    kv_dtype, Dv, int(v_from_k))
            lib.check(lib.lib.llmkit_paged_kv_cache_create(ctypes.byref(self.handle), ctypes.byref(o)))
        else:
            o = KVCacheOptions(ctypes.sizeof(KVCacheOptions), 1, Hkv, D, S, B, kv_dtype, Dv, int(v_from_k))
            lib.check(lib.lib.llmkit_kv_cache_create(ctypes.byref(self.handle), ctypes.byref(o)))
        self.ids = (ctypes.c_int32 * B)()
        for b in range(B):
            s = ctypes.c_int32()
            lib.check(self.fn["seq_new"](self.handle, ctypes.byref(s)))
            self.ids[b] = s.value
            if empty:
                continue
            tk, keep_k = as_llmkit(k[b])
            tv, keep_v = as_llmkit(v[b])
            lib.check(self.fn["append"](self.handle, 0, s, ctypes.byref(tk), None if v_from_k else ctypes.byref(tv)))
        self.opts = KVAttentionOptions(ctypes.sizeof(KVAttentionOptions), 1, 0, 0.0, 0.0, None, None, threads, 0)

    def attention(self, tq, to) -> None:
        self.lib.check(self.fn["attention"](self.handle, 0, ctypes.byref(tq), self.ids, len(self.ids),
                                            ctypes.byref(to), ctypes.byref(self.opts)))

    def close(self) -> None:
        self.fn["free"](self.handle)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build-attn/libllmkit.so")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="512-token prefill and 1k decodes only, shorter timing")
    ap.add_argument("--only", default="", help="run only the cells whose name contains this text")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated torch dtype names")
    ap.add_argument("--prefill-sizes", default="", help="comma-separated prefill lengths (default 512,2048,8192)")
    ap.add_argument("--contexts", default="", help="comma-separated decode contexts (default 1024,8192)")
    ap.add_argument("--batches", default="1,16", help="comma-separated decode batch sizes")
    ap.add_argument("--block-sizes", default="16", help="comma-separated paged-cache block sizes (a paged cell each)")
    ap.add_argument("--variants", default="",
                    help="comma-separated decode variants to run (e.g. 'contig int8,paged int8'; default all)")
    ap.add_argument("--fixed-bandwidth", action="store_true",
                    help="decode %%bw against the start-of-run bandwidth, not probes around each cell")
    args = ap.parse_args()

    lib = Lib(args.lib)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    peaks, sources, read_bw, copy_bw = measure_peaks(args.quick, args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    print(f"measured peaks: matmul float32 {peaks[torch.float32]:.1f} GFLOP/s (2048^3: {sources[torch.float32]}), "
          f"bfloat16 {peaks[torch.bfloat16]:.1f} GFLOP/s (1024^3: {sources[torch.bfloat16]}); "
          f"memory read {read_bw:.1f} GB/s (sum of 1 GiB), copy {copy_bw:.1f} GB/s")

    Hq, Hkv, D = 32, 8, 128
    min_time = 0.5 if args.quick else 2.0
    prefills = [512] if args.quick else [512, 2048, 8192]
    contexts = [1024] if args.quick else [1024, 8192]
    if args.prefill_sizes:
        prefills = [int(x) for x in args.prefill_sizes.split(",")]
    if args.contexts:
        contexts = [int(x) for x in args.contexts.split(",")]
    dtypes = [getattr(torch, n) for n in args.dtypes.split(",")]
    block_sizes = [int(x) for x in args.block_sizes.split(",")]
    variant_names = [x.strip() for x in args.variants.split(",") if x.strip()]

    def wanted(label: str) -> bool:
        return not variant_names or label in variant_names

    print(f"\nprefill (causal, Hq={Hq} Hkv={Hkv} D={D}; llmkit [B, S, H, D], torch [B, H, S, D])")
    print(f"{'cell':<16}{'dtype':<10}{'llmkit ms':>11}{'GFLOP/s':>9}{'%peak':>7}{'torch ms':>11}{'GFLOP/s':>9}"
          f"{'%peak':>7}{'speedup':>9}{'max|diff|':>11}")
    for dtype in dtypes:
        for S in prefills:
            name = f"prefill S={S}"
            if args.only not in name:
                continue
            q, k, v = (torch.randn(1, S, h, D).to(dtype) for h in (Hq, Hkv, Hkv))
            out = torch.empty_like(q)
            qt, kt, vt = (x.transpose(1, 2).contiguous() for x in (q, k, v))
            opts = AttentionOptions(ctypes.sizeof(AttentionOptions), 1, 0, 0.0, 0.0, None, None, args.threads, None)
            (tq, a), (tk, b), (tv, c), (to, d) = (as_llmkit(x) for x in (q, k, v, out))

            def run_llmkit():
                lib.check(lib.lib.llmkit_attention(ctypes.byref(tq), ctypes.byref(tk), ctypes.byref(tv),
                                                   ctypes.byref(to), ctypes.byref(opts)))

            def run_torch():
                return F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, enable_gqa=True)

            run_llmkit()
            diff = (out.float() - run_torch().transpose(1, 2).float()).abs().max().item()
            t_l, t_t = once_each([run_llmkit, run_torch]) if S >= 8192 else interleaved_best([run_llmkit, run_torch],
                                                                                               min_time)
            flops = 4.0 * D * Hq * S * (S + 1) / 2
            # On CPUs without AVX512-BF16 or AMX torch multiplies bf16 slower than fp32, and llmkit computes
            # in fp32 anyway: 16-bit cells are measured against the larger of the two peaks.
            pk = peaks[torch.float32] if dtype == torch.float32 else max(peaks.values())
            gl, gt = flops / t_l / 1e9, flops / t_t / 1e9
            print(f"{name:<16}{str(dtype).replace('torch.', ''):<10}{t_l * 1e3:>11.2f}{gl:>9.1f}{100 * gl / pk:>6.0f}%"
                  f"{t_t * 1e3:>11.2f}{gt:>9.1f}{100 * gt / pk:>6.0f}%{t_t / t_l:>8.2f}x{diff:>11.2e}", flush=True)

    print(f"\ndecode (one query per sequence; GB/s = K/V bytes read per second; %bw against the read bandwidth "
          + ("at the start" if args.fixed_bandwidth else "probed around the cell (bw)") + ")")
    print(f"{'cell':<20}{'dtype':<10}{'variant':<16}{'ms':>9}{'GB/s':>8}{'bw':>6}{'%bw':>6}{'%mm':>6}{'torch ms':>10}"
          f"{'GB/s':>8}{'vs torch':>9}{'max|diff|':>11}")
    for dtype in dtypes:
        for B in (int(x) for x in args.batches.split(",")):
            for ctx in contexts:
                name = f"decode B={B} ctx={ctx}"
                if args.only not in name:
                    continue
                q = torch.randn(B, 1, Hq, D).to(dtype)
                # The cache's rows: torch reads [B, H, S, D]; llmkit's dense call views the same memory.
                kt = torch.randn(B, Hkv, ctx, D).to(dtype)
                vt = torch.randn(B, Hkv, ctx, D).to(dtype)
                k, v = kt.transpose(1, 2), vt.transpose(1, 2)
                qt = q.transpose(1, 2)
                ref = F.scaled_dot_product_attention(qt, kt, vt, enable_gqa=True).transpose(1, 2).float()

                def run_torch():
                    return F.scaled_dot_product_attention(qt, kt, vt, enable_gqa=True)

                out = torch.empty_like(q)
                (tq, a), (to, b) = as_llmkit(q), as_llmkit(out)
                (tk, c), (tv, d) = as_llmkit(k), as_llmkit(v)
                opts = AttentionOptions(ctypes.sizeof(AttentionOptions), 0, 0, 0.0, 0.0, None, None, args.threads,
                                        None)

                def run_dense():
                    lib.check(lib.lib.llmkit_attention(ctypes.byref(tq), ctypes.byref(tk), ctypes.byref(tv),
                                                       ctypes.byref(to), ctypes.byref(opts)))

                es = torch.tensor([], dtype=dtype).element_size()
                full_bytes = 2.0 * B * ctx * Hkv * D * es
                variants = [("dense", run_dense, None, full_bytes)] if wanted("dense") else []
                if wanted("dense bshd"):
                    k_bshd, v_bshd = k.contiguous(), v.contiguous()  # [B, S, Hkv, D]
                    (tk2, c2), (tv2, d2) = as_llmkit(k_bshd), as_llmkit(v_bshd)

                    def run_bshd():
                        lib.check(lib.lib.llmkit_attention(ctypes.byref(tq), ctypes.byref(tk2), ctypes.byref(tv2),
                                                           ctypes.byref(to), ctypes.byref(opts)))

                    variants.append(("dense bshd", run_bshd, None, full_bytes))
                caches = []
                k_rows, v_rows = k.contiguous(), v.contiguous()  # [B, S, Hkv, D] for appends
                kinds = [("contiguous", False, KV_CODE[dtype], 0)]
                kinds += [("paged" if len(block_sizes) == 1 else f"paged bs={bs}", True, KV_CODE[dtype], bs)
                          for bs in block_sizes]
                kinds += [("contig int8", False, KV_INT8, 0), ("paged int8", True, KV_INT8, block_sizes[0])]
                kinds += [("contig fp8", False, KV_FP8_E4M3, 0), ("paged fp8", True, KV_FP8_E4M3, block_sizes[0])]
                for label, paged, code, bs in kinds:
                    if not wanted(label):
                        continue
                    cache = Cache(lib, paged, code, k_rows, v_rows, args.threads, bs)
                    caches.append(cache)
                    nbytes = 2.0 * B * ctx * Hkv * (D + 4) if code in (KV_INT8, KV_FP8_E4M3) else full_bytes
                    variants.append((label, (lambda c=cache: c.attention(tq, to)), cache, nbytes))
                del k_rows, v_rows
                t_t = None
                for label, fn, cache, nbytes in variants:
                    fn()
                    diff = (out.float() - ref).abs().max().item()
                    bw_before = read_bw if args.fixed_bandwidth else local_read_bw()
                    t_l, t_tt = interleaved_best([fn, run_torch], min_time, rounds=3)
                    bw = bw_before if args.fixed_bandwidth else max(bw_before, local_read_bw())
                    t_t = t_tt if t_t is None else min(t_t, t_tt)
                    gb = nbytes / t_l / 1e9
                    gbt = full_bytes / t_t / 1e9
                    mm = 100 * 4.0 * D * Hq * ctx * B / t_l / 1e9 / peaks[torch.float32]
                    print(f"{name:<20}{str(dtype).replace('torch.', ''):<10}{label:<16}{t_l * 1e3:>9.3f}{gb:>8.1f}"
                          f"{bw:>6.1f}{100 * gb / bw:>5.0f}%{mm:>5.0f}%{t_t * 1e3:>10.3f}{gbt:>8.1f}{t_t / t_l:>8.2f}x"
                          f"{diff:>11.2e}", flush=True)
                for cache in caches:
                    cache.close()

    # Decode steps whose arithmetic outgrows the memory's pace: many query heads per kv head, or a few
    # tokens per step (speculative verification). 2 * R flops per K/V element read, R = G x tokens.
    print(f"\ndecode with many query rows per kv head (B=4, ctx=4096, D={D}; dense K/V in torch's [B, H, S, D]; "
          f"GFLOP/s as the prefill's, %peak against the float32 matmul peak)")
    print(f"{'cell':<28}{'dtype':<10}{'llmkit ms':>11}{'GFLOP/s':>9}{'%peak':>7}{'torch ms':>11}{'GFLOP/s':>9}"
          f"{'speedup':>9}{'max|diff|':>11}")
    many = [("G=8 Hq=64 Hkv=8", 64, 8, 1), ("G=16 Hq=128 Hkv=8", 128, 8, 1), ("MQA Hq=32 Hkv=1", 32, 1, 1),
            ("verify 4 tokens Hq=32 Hkv=8", 32, 8, 4)]
    for dtype in dtypes:
        for name, hq, hkv, sq in many:
            if args.only not in name:
                continue
            B, ctx = 4, 4096
            q = torch.randn(B, sq, hq, D).to(dtype)
            kt, vt = (torch.randn(B, hkv, ctx, D).to(dtype) for _ in range(2))
            qt = q.transpose(1, 2)
            # The last sq positions of each sequence: causal among themselves.
            mask = torch.ones(sq, ctx, dtype=torch.bool).tril(ctx - sq)

            def run_torch():
                return F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, enable_gqa=True)

            out = torch.empty_like(q)
            (tq, a), (to, b) = as_llmkit(q), as_llmkit(out)
            (tk, c), (tv, d) = as_llmkit(kt.transpose(1, 2)), as_llmkit(vt.transpose(1, 2))
            opts = AttentionOptions(ctypes.sizeof(AttentionOptions), 1, 0, 0.0, 0.0, None, None, args.threads, None)

            def run_dense():
                lib.check(lib.lib.llmkit_attention(ctypes.byref(tq), ctypes.byref(tk), ctypes.byref(tv),
                                                   ctypes.byref(to), ctypes.byref(opts)))

            run_dense()
            diff = (out.float() - run_torch().transpose(1, 2).float()).abs().max().item()
            t_l, t_t = interleaved_best([run_dense, run_torch], min_time, rounds=3)
            flops = 4.0 * D * hq * ctx * sq * B
            gl, gt = flops / t_l / 1e9, flops / t_t / 1e9
            print(f"{name:<28}{str(dtype).replace('torch.', ''):<10}{t_l * 1e3:>11.3f}{gl:>9.1f}"
                  f"{100 * gl / peaks[torch.float32]:>6.0f}%{t_t * 1e3:>11.3f}{gt:>9.1f}{t_t / t_l:>8.2f}x"
                  f"{diff:>11.2e}", flush=True)

    cascade_cells(lib, dtypes, args, min_time)
    varlen_cells(lib, dtypes, args, min_time)
    mixed_step_cells(lib, dtypes, args, min_time)
    padded_batch_cells(lib, dtypes, args, min_time)
    padded_decode_cells(lib, dtypes, args, min_time)
    deepseek_cells(lib, dtypes, args, min_time, peaks[torch.float32])
    fp8_cache_cells(lib, dtypes, args, min_time)
    save_load_cells(lib, args, min_time)
    sliding_window_cells(lib, dtypes, args)
    context_shift_cells(lib, dtypes, args, min_time)
    mla_shift_cells(lib, dtypes, args, min_time)
    hf_model_cells(dtypes, args)
    rope_append_cells(lib, dtypes, args, min_time)
    longrope_cells(lib, dtypes, args, min_time)
    mrope_cells(lib, dtypes, args, min_time)


def longrope_cells(lib: Lib, dtypes, args, min_time: float) -> None:
    """RoPE with LongRoPE on a prefill's q and k of Phi-3-mini-128k's shape (32 heads of 96, factor 32
    over 4096): llmkit_rope_into (new tensors, as transformers returns) against transformers' own
    Phi3RotaryEmbedding (its cos/sin for the positions, with its pick of short or long factors) and
    apply_rotary_pos_emb."""
    try:
        import transformers
        from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding, apply_rotary_pos_emb
    except ImportError as e:
        print(f"\nLongRoPE: skipped, transformers is not installed ({e}); pip install transformers")
        return
    H, D, orig, max_pos = 32, 96, 4096, 131072
    g = torch.Generator().manual_seed(3)
    # Factors in the range of Phi-3-mini-128k's (short near 1, long from 1 to about 60); not its own values.
    short = (1.0 + 0.05 * torch.rand(D // 2, generator=g)).tolist()
    long_ = torch.linspace(1.0, 60.0, D // 2).tolist()
    config = transformers.Phi3Config(hidden_size=H * D, num_attention_heads=H, num_key_value_heads=H,
                                     max_position_embeddings=max_pos, original_max_position_embeddings=orig,
                                     rope_scaling={"type": "longrope", "short_factor": short, "long_factor": long_})
    rotary = Phi3RotaryEmbedding(config)
    print(f"\nLongRoPE on a prefill's q and k (Phi-3-mini-128k's shape: {H} heads of {D}, factor {max_pos // orig} "
          f"over {orig}; transformers {transformers.__version__}: Phi3RotaryEmbedding + apply_rotary_pos_emb)")
    print(f"{'cell':<22}{'dtype':<10}{'factors':>8}{'llmkit ms':>11}{'torch ms':>10}{'vs torch':>9}{'max|diff|':>11}")
    for dtype in dtypes:
        for S in ([2048] if args.quick else [2048, 8192]):
            name = f"longrope S={S}"
            if args.only not in name:
                continue
            which = "long" if S > orig else "short"
            factors = (ctypes.c_float * (D // 2))(*(long_ if which == "long" else short))
            ro = RopeOptions.neox(10000.0, args.threads)
            ro.scaling, ro.factor, ro.original_max_position = 5, max_pos / orig, float(orig)
            ro.frequency_factors = factors
            q, k = (torch.randn(1, S, H, D, generator=g).to(dtype) for _ in range(2))
            pos = torch.arange(S, dtype=torch.int64)
            t_l, t_t, diff = rope_against_transformers(lib, ro, q, k, pos, rotary, apply_rotary_pos_emb, pos[None],
                                                        min_time)
            print(f"{name:<22}{str(dtype).replace('torch.', ''):<10}{which:>8}{t_l * 1e3:>11.3f}{t_t * 1e3:>10.3f}"
                  f"{t_t / t_l:>8.2f}x{diff:>11.2e}", flush=True)


def rope_against_transformers(lib: Lib, ro, q, k, positions, rotary, apply_rotary_pos_emb, position_ids,
                              min_time: float):
    """Times llmkit_rope_into (q and k [B, S, H, D] rotated into new tensors, with options ro at
    positions) against transformers' rotary module (at position_ids) and apply_rotary_pos_emb on the
    [B, H, S, D] views its attention passes, which return new tensors too, after checking they agree.
    Returns (llmkit s, transformers s, max |diff|)."""
    qw, kw = torch.empty_like(q), torch.empty_like(k)
    (tq, a), (tk, b), (tqw, c), (tkw, d) = as_llmkit(q), as_llmkit(k), as_llmkit(qw), as_llmkit(kw)
    (tp, e) = as_llmkit_index(positions)

    def run_llmkit():
        lib.check(lib.lib.llmkit_rope_into(ctypes.byref(tq), ctypes.byref(tp), ctypes.byref(tqw), ctypes.byref(ro)))
        lib.check(lib.lib.llmkit_rope_into(ctypes.byref(tk), ctypes.byref(tp), ctypes.byref(tkw), ctypes.byref(ro)))

    qt, kt = q.transpose(1, 2), k.transpose(1, 2)  # views of the same data

    def run_torch():
        cos, sin = rotary(qt, position_ids)
        return apply_rotary_pos_emb(qt, kt, cos, sin)

    run_llmkit()
    q_hf, k_hf = run_torch()
    diff = max((qw.float() - q_hf.transpose(1, 2).float()).abs().max().item(),
               (kw.float() - k_hf.transpose(1, 2).float()).abs().max().item())
    # transformers' angles are float32 (off by up to 2 * position * 2^-24 radians); bf16 rounds twice more.
    amax = max(q.float().abs().max().item(), k.float().abs().max().item())
    tol = 4 * int(positions.max()) * 2.0**-24 * amax + 1e-5 + (2.0**-6 * amax if q.dtype == torch.bfloat16 else 0.0)
    if not diff <= tol:
        raise RuntimeError(f"llmkit_rope_into and transformers disagree: max |diff| {diff:.3g} > {tol:.3g}")
    t_l, t_t = interleaved_best([run_llmkit, run_torch], min_time, rounds=3)
    return t_l, t_t, diff


def mrope_cells(lib: Lib, dtypes, args, min_time: float) -> None:
    """M-RoPE on a prefill's q (28 heads) and k (4 heads) of Qwen2.5-VL-7B's shape (head_dim 128, sections
    16/24/24, theta 1e6), a prompt of text, a 32x32-patch image and text again (positions as its
    get_rope_index gives them): llmkit_rope_into against transformers' Qwen2VLRotaryEmbedding and
    apply_rotary_pos_emb."""
    try:
        import transformers
        from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLRotaryEmbedding, apply_rotary_pos_emb
    except ImportError as e:
        print(f"\nM-RoPE: skipped, transformers is not installed ({e}); pip install transformers")
        return
    Hq, Hkv, D, theta, sections = 28, 4, 128, 1000000.0, [16, 24, 24]
    config = transformers.Qwen2VLTextConfig(hidden_size=Hq * D, num_attention_heads=Hq, num_key_value_heads=Hkv,
                                            head_dim=D, rope_parameters={"rope_type": "default", "rope_theta": theta,
                                                                         "mrope_section": sections})
    rotary = Qwen2VLRotaryEmbedding(config)
    print(f"\nM-RoPE on a prefill's q and k (Qwen2.5-VL-7B's shape: {Hq} and {Hkv} heads of {D}, sections "
          f"{sections}; text, a 32x32-patch image, text; transformers {transformers.__version__}: "
          f"Qwen2VLRotaryEmbedding + apply_rotary_pos_emb)")
    print(f"{'cell':<22}{'dtype':<10}{'llmkit ms':>11}{'torch ms':>10}{'vs torch':>9}{'max|diff|':>11}")
    g = torch.Generator().manual_seed(4)
    for dtype in dtypes:
        for S in ([2048] if args.quick else [2048, 8192]):
            name = f"mrope S={S}"
            if args.only not in name:
                continue
            # Positions as Qwen2-VL numbers them: text (t = h = w), then the image's (0, row, col) grid from
            # the text's next position, then text from one past the image's largest.
            side, before = 32, 100
            t = torch.arange(before).repeat(3, 1)
            rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
            img = torch.stack([torch.zeros(side * side, dtype=torch.int64), rows.flatten(), cols.flatten()]) + before
            after = S - before - side * side
            start = int(img.max()) + 1
            pos = torch.cat([t, img, torch.arange(start, start + after).repeat(3, 1)], dim=1)  # [3, S]
            ro = RopeOptions.neox(theta, args.threads)
            ro.mrope_section[:] = sections
            q = torch.randn(1, S, Hq, D, generator=g).to(dtype)
            k = torch.randn(1, S, Hkv, D, generator=g).to(dtype)
            # llmkit takes [3, S]; transformers' position_ids for these models are [3, B, S].
            t_l, t_t, diff = rope_against_transformers(lib, ro, q, k, pos.contiguous(), rotary, apply_rotary_pos_emb,
                                                        pos[:, None, :], min_time)
            print(f"{name:<22}{str(dtype).replace('torch.', ''):<10}{t_l * 1e3:>11.3f}{t_t * 1e3:>10.3f}"
                  f"{t_t / t_l:>8.2f}x{diff:>11.2e}", flush=True)


def view(t: torch.Tensor, shape, strides):
    """A descriptor of t's memory under another shape and strides (kept alive like as_llmkit's)."""
    d, keep = as_llmkit(t)
    sh, st = (ctypes.c_int64 * len(shape))(*shape), (ctypes.c_int64 * len(strides))(*strides)
    d.ndim, d.shape, d.strides = len(shape), sh, st
    return d, (sh, st, keep)


def cascade_cells(lib: Lib, dtypes, args, min_time: float) -> None:
    """Decode of B = 16 sequences that share a P-token prompt prefix and hold 256 tokens of their own.

    llmkit cascade: llmkit_attention of the batch's 16 queries as one sequence over the prefix (read
    once), each sequence's own tokens from a paged cache, both with their log-sum-exps
    (options.lse), then llmkit_attention_merge. torch cascade, the same algorithm in torch: its CPU
    flash attention (torch.ops.aten._scaled_dot_product_flash_attention_for_cpu, which returns the
    log-sum-exp) with each kv head's queries folded into one sequence, then logaddexp and the
    weighted sum. The usual ways: llmkit's paged cache with the prefix shared by fork (every
    sequence's decode reads the shared blocks), and torch SDPA over each sequence's whole K/V.
    Every result is checked against torch SDPA's before timing."""
    B, Hq, Hkv, D, own, bs = 16, 32, 8, 128, 256, 16
    G = Hq // Hkv
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    prefixes = [1024] if args.quick else [2048, 8192]
    print(f"\ncascade decode: B={B} sequences sharing a P-token prefix, {own} tokens of their own each "
          f"(Hq={Hq} Hkv={Hkv} D={D}); ms per decode step; ratios: the other's ms over llmkit cascade's")
    print(f"{'cell':<24}{'dtype':<10}{'cascade':>9}{'torch casc.':>12}{'paged fork':>11}{'torch SDPA':>11}"
          f"{'vs torch casc.':>15}{'vs fork':>8}{'vs SDPA':>8}{'max|diff|':>11}")
    for dtype in dtypes:
        for P in prefixes:
            name = f"cascade P={P}"
            if args.only not in name:
                continue
            # The prefix in torch's layout, [1, Hkv, P, D] (each head's keys contiguous); llmkit reads it
            # as [1, P, Hkv, D] through strides.
            kpt, vpt = (torch.randn(1, Hkv, P, D).to(dtype) for _ in range(2))
            kp, vp = kpt.transpose(1, 2), vpt.transpose(1, 2)
            ko, vo = (torch.randn(B, own, Hkv, D).to(dtype) for _ in range(2))
            q = torch.randn(B, 1, Hq, D).to(dtype)
            # The reference and torch's usual way: each sequence's whole K/V, [B, Hkv, P + own, D].
            k_all = torch.cat([kp.expand(B, -1, -1, -1), ko], dim=1).transpose(1, 2).contiguous()
            v_all = torch.cat([vp.expand(B, -1, -1, -1), vo], dim=1).transpose(1, 2).contiguous()
            qt = q.transpose(1, 2)

            def run_sdpa():
                return F.scaled_dot_product_attention(qt, k_all, v_all, enable_gqa=True)

            ref = run_sdpa().transpose(1, 2).float()

            # llmkit cascade.
            out_pre, out_own = torch.empty_like(q), torch.empty_like(q)
            lse_pre, lse_own = torch.empty(B, 1, Hq), torch.empty(B, 1, Hq)
            tq1, k1 = view(q, (1, B, Hq, D), (B * Hq * D, Hq * D, D, 1))
            to1, k2 = view(out_pre, (1, B, Hq, D), (B * Hq * D, Hq * D, D, 1))
            tl1, k3 = view(lse_pre, (1, B, Hq), (B * Hq, Hq, 1))
            (tkp, k4), (tvp, k5) = as_llmkit(kp), as_llmkit(vp)
            (tq, k6), (too, k7), (tlo, k8), (tlp, k9) = (as_llmkit(x) for x in (q, out_own, lse_own, lse_pre))
            (topre, k10) = as_llmkit(out_pre)
            pre_opts = AttentionOptionsLse(ctypes.sizeof(AttentionOptionsLse), 0, 0, 0.0, 0.0, None, None,
                                           args.threads, None, None, ctypes.pointer(tl1))
            own_cache = Cache(lib, True, KV_CODE[dtype], ko, vo, args.threads, bs)
            own_opts = KVAttentionOptionsLse(ctypes.sizeof(KVAttentionOptionsLse), 1, 0, 0.0, 0.0, None, None,
                                             args.threads, 0, None, ctypes.pointer(tlo))

            def run_cascade():
                lib.check(lib.lib.llmkit_attention(ctypes.byref(tq1), ctypes.byref(tkp), ctypes.byref(tvp),
                                                   ctypes.byref(to1), ctypes.cast(ctypes.byref(pre_opts),
                                                                                  ctypes.POINTER(AttentionOptions))))
                lib.check(lib.lib.llmkit_paged_kv_cache_attention(
                    own_cache.handle, 0, ctypes.byref(tq), own_cache.ids, B, ctypes.byref(too),
                    ctypes.cast(ctypes.byref(own_opts), ctypes.POINTER(KVAttentionOptions))))
                lib.check(lib.lib.llmkit_attention_merge(ctypes.byref(topre), ctypes.byref(tlp), ctypes.byref(too),
                                                         ctypes.byref(tlo)))

            # llmkit's paged cache, the prefix appended once and shared by 16 forks.
            fork_cache = ctypes.c_void_p()
            n_blocks = (P + bs - 1) // bs + B * ((own + bs - 1) // bs + 1)
            o = PagedKVCacheOptions(ctypes.sizeof(PagedKVCacheOptions), 1, Hkv, D, bs, n_blocks, B + 1,
                                    (P + own + bs - 1) // bs + 1, KV_CODE[dtype])
            lib.check(lib.lib.llmkit_paged_kv_cache_create(ctypes.byref(fork_cache), ctypes.byref(o)))
            root = ctypes.c_int32()
            lib.check(lib.lib.llmkit_paged_kv_cache_seq_new(fork_cache, ctypes.byref(root)))
            (tk0, k11), (tv0, k12) = as_llmkit(kp[0]), as_llmkit(vp[0])
            lib.check(lib.lib.llmkit_paged_kv_cache_append(fork_cache, 0, root, ctypes.byref(tk0), ctypes.byref(tv0)))
            fork_ids = (ctypes.c_int32 * B)()
            for b in range(B):
                s = ctypes.c_int32()
                lib.check(lib.lib.llmkit_paged_kv_cache_seq_fork(fork_cache, root, ctypes.byref(s)))
                fork_ids[b] = s.value
                (tkb, kk), (tvb, kv) = as_llmkit(ko[b]), as_llmkit(vo[b])
                lib.check(lib.lib.llmkit_paged_kv_cache_append(fork_cache, 0, s, ctypes.byref(tkb), ctypes.byref(tvb)))
            out_fork = torch.empty_like(q)
            (tof, k13) = as_llmkit(out_fork)
            fork_opts = KVAttentionOptions(ctypes.sizeof(KVAttentionOptions), 1, 0, 0.0, 0.0, None, None,
                                           args.threads, 0)

            def run_fork():
                lib.check(lib.lib.llmkit_paged_kv_cache_attention(fork_cache, 0, ctypes.byref(tq), fork_ids, B,
                                                                  ctypes.byref(tof), ctypes.byref(fork_opts)))

            # torch cascade: the prefix for kv head g takes the B * G queries of its heads as one sequence.
            kot, vot = ko.transpose(1, 2).contiguous(), vo.transpose(1, 2).contiguous()  # [B, Hkv, own, D]

            def run_torch_cascade():
                qf = q.view(B, Hkv, G, D).transpose(0, 1).reshape(1, Hkv, B * G, D)
                o1, l1 = flash(qf, kpt, vpt, 0.0, False)[:2]
                o2, l2 = flash(q.view(B, Hkv, G, D), kot, vot, 0.0, False)[:2]
                o1 = o1.view(Hkv, B, G, D).transpose(0, 1)  # [B, Hkv, G, D]
                l1 = l1.view(Hkv, B, G).transpose(0, 1)
                lse = torch.logaddexp(l1, l2)
                w1, w2 = torch.exp(l1 - lse)[..., None], torch.exp(l2 - lse)[..., None]
                return (w1 * o1.float() + w2 * o2.float()).to(dtype).reshape(B, 1, Hq, D), lse.reshape(B, 1, Hq)

            run_cascade()
            run_fork()
            t_out, t_lse = run_torch_cascade()
            diffs = [(x.float() - ref).abs().max().item() for x in (out_pre, out_fork, t_out)]
            lse_diff = (lse_pre - t_lse).abs().max().item()
            tol = 1e-4 if dtype == torch.float32 else 3e-2
            if max(diffs) > tol or lse_diff > 1e-3:
                raise RuntimeError(f"{name} {dtype}: results differ from torch SDPA's by {diffs} (lse by "
                                   f"{lse_diff}), beyond {tol}")
            t_c, t_tc, t_f, t_s = interleaved_best([run_cascade, run_torch_cascade, run_fork, run_sdpa], min_time,
                                                   rounds=3)
            print(f"{name:<24}{str(dtype).replace('torch.', ''):<10}{t_c * 1e3:>9.2f}{t_tc * 1e3:>12.2f}"
                  f"{t_f * 1e3:>11.2f}{t_s * 1e3:>11.2f}{t_tc / t_c:>14.2f}x{t_f / t_c:>7.2f}x{t_s / t_c:>7.2f}x"
                  f"{max(diffs):>11.2e}", flush=True)
            own_cache.close()
            lib.lib.llmkit_paged_kv_cache_free(fork_cache)


def varlen_cells(lib: Lib, dtypes, args, min_time: float) -> None:
    """Causal prefill of a batch of prompts of different lengths: llmkit_attention_varlen on the rows packed
    end to end, against torch SDPA on the batch padded to its longest prompt (a boolean mask hides the
    padding's keys, as Hugging Face's attention does) and a loop of torch SDPA calls, one per prompt."""
    Hq, Hkv, D = 32, 8, 128
    lens = [97, 512, 33, 700, 256] if args.quick else [97, 512, 1024, 33, 700, 256, 1500, 64]
    print(f"\nvarlen prefill: {len(lens)} prompts of {min(lens)}-{max(lens)} tokens ({sum(lens)} in all), causal, "
          f"Hq={Hq} Hkv={Hkv} D={D}; GFLOP/s of the useful work; ratios: torch's ms over llmkit's")
    print(f"{'cell':<16}{'dtype':<10}{'llmkit ms':>10}{'GFLOP/s':>9}{'padded ms':>11}{'loop ms':>9}{'vs padded':>10}"
          f"{'vs loop':>9}{'max|diff|':>11}")
    name = "varlen prefill"
    if args.only not in name:
        return
    cu = [0]
    for n in lens:
        cu.append(cu[-1] + n)
    T, B, L = cu[-1], len(lens), max(lens)
    for dtype in dtypes:
        q, k, v = (torch.randn(T, h, D).to(dtype) for h in (Hq, Hkv, Hkv))
        out = torch.empty_like(q)
        cu_t = torch.tensor(cu, dtype=torch.int64)
        (tq, a), (tk, b), (tv, c), (to, d) = (as_llmkit(x) for x in (q, k, v, out))
        tc, e = as_llmkit_index(cu_t)
        opts = AttentionOptions(ctypes.sizeof(AttentionOptions), 1, 0, 0.0, 0.0, None, None, args.threads, None)

        def run_llmkit():
            lib.check(lib.lib.llmkit_attention_varlen(ctypes.byref(tq), ctypes.byref(tk), ctypes.byref(tv),
                                                      ctypes.byref(tc), ctypes.byref(tc), ctypes.byref(to),
                                                      ctypes.byref(opts)))

        pads = [torch.zeros(B, h, L, D, dtype=dtype) for h in (Hq, Hkv, Hkv)]
        for i, n in enumerate(lens):
            for t, src in zip(pads, (q, k, v)):
                t[i, :, :n] = src[cu[i]:cu[i + 1]].transpose(0, 1)
        mask = torch.ones(B, 1, L, L, dtype=torch.bool).tril()
        for i, n in enumerate(lens):
            mask[i, :, :, n:] = False
            mask[i, :, n:, :] = True  # padding queries: any finite row (their output is dropped)

        def run_padded():
            return F.scaled_dot_product_attention(*pads, attn_mask=mask, enable_gqa=True)

        seqs = [tuple(x[cu[i]:cu[i + 1]].transpose(0, 1).unsqueeze(0) for x in (q, k, v)) for i in range(B)]

        def run_loop():
            return [F.scaled_dot_product_attention(*s, is_causal=True, enable_gqa=True) for s in seqs]

        run_llmkit()
        loop = run_loop()
        padded = run_padded()
        diff = max((out[cu[i]:cu[i + 1]].float() - loop[i][0].transpose(0, 1).float()).abs().max().item()
                   for i in range(B))
        diff_pad = max((padded[i, :, :n].transpose(0, 1).float() - loop[i][0].transpose(0, 1).float()).abs().max().item()
                       for i, n in enumerate(lens))
        tol = 1e-4 if dtype == torch.float32 else 3e-2
        if diff > tol or diff_pad > tol:
            raise RuntimeError(f"{name} {dtype}: llmkit and torch's loop differ by {diff}, the padded batch by "
                               f"{diff_pad}, beyond {tol}")
        t_l, t_p, t_o = interleaved_best([run_llmkit, run_padded, run_loop], min_time, rounds=3)
        flops = sum(4.0 * D * Hq * n * (n + 1) / 2 for n in lens)
        print(f"{name:<16}{str(dtype).replace('torch.', ''):<10}{t_l * 1e3:>10.2f}{flops / t_l / 1e9:>9.1f}"
              f"{t_p * 1e3:>11.2f}{t_o * 1e3:>9.2f}{t_p / t_l:>9.2f}x{t_o / t_l:>8.2f}x{diff:>11.2e}", flush=True)


def mixed_step_cells(lib: Lib, dtypes, args, min_time: float) -> None:
    """One serving step over a paged cache: 16 decodes over 1k-8k cached tokens and 2 prefill chunks of 512
    queries after 1536- and 3584-token prefixes (chunked prefill), as a continuous-batching server mixes them.
    llmkit packed: one llmkit_paged_kv_cache_attention call with options.cu_seqlens_q, the queries packed end to
    end. llmkit separate: the same rows through the batched API, one call for the decodes and one per chunk.
    torch: a loop of SDPA calls, one per sequence, over its K/V held dense ([1, Hkv, L, D], torch's best
    case: nothing gathered), the chunks with a bottom-right causal mask. The packed results must equal the
    separate calls' bits and torch's within the dtype's tolerance before timing."""
    Hq, Hkv, D, bs, chunk = 32, 8, 128, 16, 512
    dec_lens = [1024, 2048] * 2 if args.quick else [1024 * (1 + i % 8) for i in range(16)]
    chunk_lens = [1024] if args.quick else [2048, 4096]  # tokens cached, the chunk's own included
    lens = dec_lens + chunk_lens
    counts = [1] * len(dec_lens) + [chunk] * len(chunk_lens)
    name = "mixed step"
    print(f"\nmixed serving step: {len(dec_lens)} decodes over {min(dec_lens)}-{max(dec_lens)} cached tokens and "
          f"{len(chunk_lens)} prefill chunks of {chunk} queries ({'/'.join(str(n - chunk) for n in chunk_lens)}-token "
          f"prefixes), paged cache (blocks of {bs}), Hq={Hq} Hkv={Hkv} D={D}; ratios: the other's ms over packed's")
    print(f"{'cell':<16}{'dtype':<10}{'packed ms':>10}{'GFLOP/s':>9}{'separate':>10}{'torch loop':>11}"
          f"{'vs separate':>12}{'vs torch':>9}{'max|diff|':>11}")
    if args.only not in name:
        return
    cu = [0]
    for n in counts:
        cu.append(cu[-1] + n)
    T, B = cu[-1], len(lens)
    for dtype in dtypes:
        ks = [torch.randn(1, Hkv, L, D).to(dtype) for L in lens]  # torch's layout; llmkit appends [L, Hkv, D]
        vs = [torch.randn(1, Hkv, L, D).to(dtype) for L in lens]
        blocks = sum((L + bs - 1) // bs for L in lens)
        handle, ids = new_paged_cache(lib, Hkv, D, bs, blocks, B, (max(lens) + bs - 1) // bs, KV_CODE[dtype])
        for b in range(B):
            sid = ids[b]
            (tk, kk), (tv, kv) = as_llmkit(ks[b][0].transpose(0, 1)), as_llmkit(vs[b][0].transpose(0, 1))
            lib.check(lib.lib.llmkit_paged_kv_cache_append(handle, 0, sid, ctypes.byref(tk), ctypes.byref(tv)))
        q = torch.randn(T, Hq, D).to(dtype)
        out, out_sep = torch.empty_like(q), torch.empty_like(q)
        cu_t = torch.tensor(cu, dtype=torch.int64)
        (tq, k1), (to, k2) = as_llmkit(q), as_llmkit(out)
        tc, k3 = as_llmkit_index(cu_t)
        packed_opts = KVAttentionOptionsPacked(ctypes.sizeof(KVAttentionOptionsPacked), 1, 0, 0.0, 0.0, None, None,
                                               args.threads, 0, None, None, ctypes.pointer(tc))
        packed_fn = lib.lib.llmkit_paged_kv_cache_attention

        def run_packed():
            lib.check(packed_fn(handle, 0, ctypes.byref(tq), ids, B, ctypes.byref(to),
                                ctypes.cast(ctypes.byref(packed_opts), ctypes.POINTER(KVAttentionOptions))))

        # The batched API: the decodes as [n, 1, Hq, D], each chunk as [1, 512, Hq, D].
        nd = len(dec_lens)
        sep_opts = KVAttentionOptions(ctypes.sizeof(KVAttentionOptions), 1, 0, 0.0, 0.0, None, None, args.threads, 0)
        calls = [(view(q, (nd, 1, Hq, D), (Hq * D, Hq * D, D, 1)), view(out_sep, (nd, 1, Hq, D), (Hq * D, Hq * D, D, 1)),
                  ids, nd)]
        for i in range(len(chunk_lens)):
            row = cu[nd + i]
            calls.append((view(q[row:], (1, chunk, Hq, D), (chunk * Hq * D, Hq * D, D, 1)),
                          view(out_sep[row:], (1, chunk, Hq, D), (chunk * Hq * D, Hq * D, D, 1)),
                          ctypes.cast(ctypes.byref(ids, (nd + i) * 4), ctypes.POINTER(ctypes.c_int32)), 1))

        def run_separate():
            for (tqs, _), (tos, _), sids, n in calls:
                lib.check(packed_fn(handle, 0, ctypes.byref(tqs), sids, n, ctypes.byref(tos), ctypes.byref(sep_opts)))

        qs = [q[cu[b]:cu[b + 1]].transpose(0, 1).unsqueeze(0) for b in range(B)]  # [1, Hq, n, D]
        masks = [None if n == 1 else torch.ones(n, L, dtype=torch.bool).tril(L - n) for n, L in zip(counts, lens)]

        def run_torch():
            return [F.scaled_dot_product_attention(qs[b], ks[b], vs[b], attn_mask=masks[b], enable_gqa=True)
                    for b in range(B)]

        run_packed()
        run_separate()
        ref = run_torch()
        same = torch.equal(out, out_sep)
        diff = max((out[cu[b]:cu[b + 1]].float() - ref[b][0].transpose(0, 1).float()).abs().max().item()
                   for b in range(B))
        tol = 1e-4 if dtype == torch.float32 else 3e-2
        if not same or diff > tol:
            raise RuntimeError(f"{name} {dtype}: packed and separate calls give the same bits: {same}; "
                               f"packed and torch differ by {diff} (tolerance {tol})")
        t_p, t_s, t_t = interleaved_best([run_packed, run_separate, run_torch], min_time, rounds=3)
        flops = sum(4.0 * D * Hq * (L if n == 1 else n * (L - n) + n * (n + 1) / 2) for n, L in zip(counts, lens))
        print(f"{name:<16}{str(dtype).replace('torch.', ''):<10}{t_p * 1e3:>10.2f}{flops / t_p / 1e9:>9.1f}"
              f"{t_s * 1e3:>10.2f}{t_t * 1e3:>11.2f}{t_s / t_p:>11.2f}x{t_t / t_p:>8.2f}x{diff:>11.2e}", flush=True)
        lib.lib.llmkit_paged_kv_cache_free(handle)


def left_padding_masks(lens):
    """The [B, 1, 1, S] padding masks of prompts of these lengths left-padded to the longest: boolean (True =
    a real token) and additive float32 (0 / -inf)."""
    B, S = len(lens), max(lens)
    keep = torch.zeros(B, 1, 1, S, dtype=torch.bool)
    for b, n in enumerate(lens):
        keep[b, ..., S - n:] = True
    return keep, torch.zeros(B, 1, 1, S).masked_fill(~keep, float("-inf"))


def padded_batch_cells(lib: Lib, dtypes, args, min_time: float) -> None:
    """A causal prefill of 4 prompts left-padded to the longest, as Hugging Face batches generation: llmkit_attention
    with the padding as a [B, 1, 1, S] mask (torch's attn_mask broadcast, read in place) and causal on, against torch
    SDPA with the same padding folded into a [B, 1, S, S] boolean mask (SDPA takes a mask or is_causal, not both).
    Only the prompts' own rows are compared (a padding query sees no key: zeros in llmkit). llmkit_attention_varlen
    on the prompts packed without padding is printed alongside: the work the padding costs."""
    Hq, Hkv, D = 32, 8, 128
    lens = [256, 512, 77, 300] if args.quick else [512, 1024, 77, 300]
    B, S = len(lens), max(lens)
    name = "padded batch"
    print(f"\npadded batch: {B} prompts of {'/'.join(map(str, lens))} tokens left-padded to {S}, causal, Hq={Hq} "
          f"Hkv={Hkv} D={D}; ratios: the other's ms over llmkit's (masked)")
    print(f"{'cell':<16}{'dtype':<10}{'masked ms':>10}{'torch ms':>10}{'varlen ms':>10}{'vs torch':>9}{'max|diff|':>11}")
    if args.only not in name:
        return
    keep, additive = left_padding_masks(lens)
    both = keep & torch.ones(S, S, dtype=torch.bool).tril()
    cu = [0]
    for n in lens:
        cu.append(cu[-1] + n)
    for dtype in dtypes:
        q, k, v = (torch.randn(B, S, h, D).to(dtype) for h in (Hq, Hkv, Hkv))
        out = torch.empty_like(q)
        (tq, a), (tk, b2), (tv, c), (to, d) = (as_llmkit(x) for x in (q, k, v, out))
        tm, e = as_llmkit(additive)
        opts = AttentionOptions(ctypes.sizeof(AttentionOptions), 1, 0, 0.0, 0.0, None, ctypes.addressof(tm),
                                args.threads, None)

        run_masked = lib.attention_call(tq, tk, tv, to, opts)
        qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))

        def run_torch():
            return F.scaled_dot_product_attention(qt, kt, vt, attn_mask=both, enable_gqa=True)

        pq, pk, pv = (torch.cat([x[b, S - n:] for b, n in enumerate(lens)]) for x in (q, k, v))
        pout = torch.empty_like(pq)
        (tpq, f), (tpk, g), (tpv, h), (tpo, i) = (as_llmkit(x) for x in (pq, pk, pv, pout))
        tc, j = as_llmkit_index(torch.tensor(cu, dtype=torch.int64))
        vopts = AttentionOptions(ctypes.sizeof(AttentionOptions), 1, 0, 0.0, 0.0, None, None, args.threads, None)

        def run_varlen():
            lib.check(lib.lib.llmkit_attention_varlen(ctypes.byref(tpq), ctypes.byref(tpk), ctypes.byref(tpv),
                                                      ctypes.byref(tc), ctypes.byref(tc), ctypes.byref(tpo),
                                                      ctypes.byref(vopts)))

        run_masked()
        run_varlen()
        ref = run_torch().transpose(1, 2)
        diff = max((out[b, S - n:].float() - ref[b, S - n:].float()).abs().max().item() for b, n in enumerate(lens))
        diff_v = max((pout[cu[b]:cu[b + 1]].float() - out[b, S - n:].float()).abs().max().item()
                     for b, n in enumerate(lens))
        tol = 1e-4 if dtype == torch.float32 else 3e-2
        if diff > tol or diff_v > tol:
            raise RuntimeError(f"{name} {dtype}: llmkit and torch differ by {diff}, varlen by {diff_v} (tolerance {tol})")
        t_m, t_t, t_v = interleaved_best([run_masked, run_torch, run_varlen], min_time, rounds=3)
        print(f"{name:<16}{str(dtype).replace('torch.', ''):<10}{t_m * 1e3:>10.2f}{t_t * 1e3:>10.2f}{t_v * 1e3:>10.2f}"
              f"{t_t / t_m:>8.2f}x{diff:>11.2e}", flush=True)


def fp8_cache_cells(lib: Lib, dtypes, args, min_time: float) -> None:
    """FP8 KV caches (E4M3, E5M2: a float32 scale per token and kv head) against the int8 cache and against
    torch holding its K/V as float8 tensors with the same scales, widened and scaled for each decode step before
    SDPA (what a torch program with an FP8 cache runs). Also how far each 8-bit cache moves the outputs: the
    relative RMS error against float64 attention over the unquantised rows, on N(0, 1) rows and on rows whose
    keys have 4 outlier channels 20x the rest (as LLM keys have; the queries' are 20x smaller, so the scores
    keep their scale). B=4, ctx=4096, Hq=32, Hkv=8, D=128, float32 queries."""
    if args.only not in "fp8 caches":
        return
    B, ctx, Hq, Hkv, D = 4, 4096, 32, 8, 128
    g = torch.Generator().manual_seed(8)
    print(f"\nFP8 KV caches (B={B}, ctx={ctx}, Hq={Hq}, Hkv={Hkv}, D={D}; torch: float8 tensors widened and scaled "
          f"each step, then SDPA; rel err: RMS error / RMS of the float64 output)")
    print(f"{'rows':<22}{'cache':<10}{'llmkit ms':>11}{'torch ms':>10}{'speedup':>9}{'max|diff|':>11}{'rel err':>10}")
    outlier = [3, 17, 64, 100]
    for rows_name in ("N(0,1)", "K outliers x20"):
        k = torch.randn(B, ctx, Hkv, D, generator=g)
        v = torch.randn(B, ctx, Hkv, D, generator=g)
        q = torch.randn(B, 1, Hq, D, generator=g)
        if rows_name != "N(0,1)":
            k[..., outlier] *= 20.0
            q[..., outlier] /= 20.0
        # float64 reference over the unquantised rows
        kt, vt, qt = (x.transpose(1, 2).double() for x in (k, v, q))
        want = F.scaled_dot_product_attention(qt, kt, vt, enable_gqa=True).transpose(1, 2)
        for cache_name, code, f8 in (("int8", KV_INT8, None), ("fp8_e4m3", KV_FP8_E4M3, torch.float8_e4m3fn),
                                     ("fp8_e5m2", KV_FP8_E5M2, torch.float8_e5m2)):
            cache = Cache(lib, False, code, k, v, args.threads)
            out = torch.empty(B, 1, Hq, D)
            (tq, a), (to, b) = as_llmkit(q), as_llmkit(out)
            run_llmkit = lambda: cache.attention(tq, to)  # noqa: E731
            run_llmkit()
            err = ((out.double() - want).pow(2).mean().sqrt() / want.pow(2).mean().sqrt()).item()
            fns = [run_llmkit]
            diff = float("nan")
            if f8 is not None:  # torch's FP8 cache: [B, H, S, D] float8 and a scale per row, as llmkit stores them
                top = 448.0 if f8 == torch.float8_e4m3fn else 57344.0
                scales = []
                rows8 = []
                for x in (k, v):
                    xt = x.transpose(1, 2).contiguous()
                    amax = xt.abs().amax(-1, keepdim=True)
                    sc = torch.where(amax > 0, amax / top, torch.ones_like(amax))
                    rows8.append((xt / sc).to(f8))
                    scales.append(sc)
                qh = q.transpose(1, 2)

                def run_torch():
                    kd = rows8[0].to(torch.float32) * scales[0]
                    vd = rows8[1].to(torch.float32) * scales[1]
                    return F.scaled_dot_product_attention(qh, kd, vd, enable_gqa=True)

                diff = (out - run_torch().transpose(1, 2)).abs().max().item()
                if diff > 1e-5:  # the same stored values on both sides: only float32 sums apart
                    raise RuntimeError(f"FP8 caches: llmkit's {cache_name} and torch's differ by {diff}")
                fns.append(run_torch)
            t_l, t_t = (interleaved_best(fns, min_time, rounds=3) + [float("nan")])[:2]
            speed = f"{t_t / t_l:>8.2f}x" if f8 is not None else f"{'':>9}"
            print(f"{rows_name:<22}{cache_name:<10}{t_l * 1e3:>11.3f}{t_t * 1e3:>10.3f}{speed}{diff:>11.2e}"
                  f"{err:>10.4f}", flush=True)
            cache.close()


def save_load_cells(lib: Lib, args, min_time: float) -> None:
    """Saving a sequence's cached K/V to bytes and loading them into another cache (a prompt cached across runs,
    a sequence moved between caches): llmkit_kv_cache_seq_save from a contiguous cache into a buffer, then
    llmkit_paged_kv_cache_seq_load into a paged cache (blocks of 16), against the same K/V (and 8-bit row scales)
    as torch tensors through torch.save / torch.load on an in-memory file and through safetensors' save / load of
    bytes. One layer of Llama 3 8B (Hkv=8, D=128) at 16384 tokens: 64 MiB of bf16, 32 MiB + 1 MiB of int8 and
    scales. GB/s: the bytes of K/V (and scales) per second, save and load each; the loaded llmkit sequence must
    give the source's attention bits, and the peers' loaded tensors must equal theirs. The "bf16 W" row saves a
    paged sequence (blocks of 16) whose window of 4096 released its first 12288 tokens (llmkit_paged_kv_cache_
    seq_release_before): llmkit's save holds the 4096 tokens left (format version 2), the peers the same
    4096 tokens' tensors, as transformers' sliding-window cache layers keep them."""
    if args.only not in "save load" or not hasattr(lib.lib, "llmkit_kv_cache_seq_save"):
        return
    import io

    try:
        import safetensors.torch as st
    except ImportError:
        st = None
    S, Hkv, D, Hq = 16384, 8, 128, 32
    g = torch.Generator().manual_seed(11)
    k = torch.randn(1, S, Hkv, D, generator=g)
    v = torch.randn(1, S, Hkv, D, generator=g)
    q = torch.randn(1, 1, Hq, D, generator=g)
    print(f"\nsave and load a sequence (one layer of {S} tokens, Hkv={Hkv}, D={D}; llmkit: contiguous cache -> bytes "
          f"-> paged cache (bf16 W: a paged sequence whose window of 4096 released the rest); torch.save/load on "
          f"BytesIO and safetensors save/load of the same tensors; GB/s of the cache's bytes; ratios: the peer's "
          f"ms over llmkit's)")
    print(f"{'cache':<8}{'MiB':>7}{'save ms':>9}{'GB/s':>7}{'load ms':>9}{'GB/s':>7}{'torch save':>11}{'load':>8}"
          f"{'vs torch':>9}{'st save':>9}{'load':>8}{'vs st':>8}  same bits")
    rows = [("bf16", KV_BF16, 0), ("int8", KV_INT8, 0)]
    if hasattr(lib.lib, "llmkit_paged_kv_cache_seq_release_before"):
        rows.append(("bf16 W", KV_BF16, 4096))
    for name, code, window in rows:
        # A windowed row saves from a paged cache that released what its window left.
        src = Cache(lib, window > 0, code, k, v, args.threads, bs=16)
        dst = Cache(lib, True, code, k, v, args.threads, bs=16, empty=True)
        first = 0
        if window:
            held = ctypes.c_int64()
            lib.check(lib.lib.llmkit_paged_kv_cache_seq_release_before(src.handle, src.ids[0], S - window + 1,
                                                                       ctypes.byref(held)))
            first = held.value
            src.opts.window = dst.opts.window = window
        save_fn = lib.lib.llmkit_paged_kv_cache_seq_save if window else lib.lib.llmkit_kv_cache_seq_save
        seq = dst.ids[0]
        need = ctypes.c_size_t()
        save_fn(src.handle, src.ids[0], None, 0, ctypes.byref(need))
        buf = (ctypes.c_char * need.value)()

        def save():
            lib.check(save_fn(src.handle, src.ids[0], buf, need.value, None))

        def load():
            lib.check(lib.lib.llmkit_paged_kv_cache_seq_load(dst.handle, seq, buf, need.value))

        save()
        load()
        outs = [torch.empty(1, 1, Hq, D) for _ in range(2)]
        for cache, out in zip((src, dst), outs):
            tq, a = as_llmkit(q)
            to, b = as_llmkit(out)
            cache.attention(tq, to)
        same = torch.equal(outs[0], outs[1])
        if not same:
            raise RuntimeError(f"save/load: the loaded {name} sequence attends to other bits")
        # The peers get the same bytes as tensors: [Hkv, S, D] rows in the cache's dtype (+ float32 scales),
        # of the tokens held.
        kt, vt = (x[0, first:].transpose(0, 1).contiguous() for x in (k, v))
        if code == KV_BF16:
            tensors = {"k": kt.to(torch.bfloat16), "v": vt.to(torch.bfloat16)}
        else:
            tensors = {}
            for n_, x in (("k", kt), ("v", vt)):
                sc = x.abs().amax(-1, keepdim=True) / 127.0
                tensors[n_] = torch.round(x / sc).to(torch.int8)
                tensors[n_ + "_scale"] = sc
        stored = sum(t.numel() * t.element_size() for t in tensors.values())
        blob = {}

        def torch_save():
            f = io.BytesIO()
            torch.save(tensors, f)
            blob["torch"] = f.getbuffer()

        def torch_load():
            return torch.load(io.BytesIO(blob["torch"]), weights_only=True)

        def st_save():
            blob["st"] = st.save(tensors)

        def st_load():
            return st.load(blob["st"])

        fns = [save, load, torch_save, torch_load]
        if st is not None:
            fns += [st_save, st_load]
        for f in fns:
            f()
        for f in (torch_load,) + ((st_load,) if st is not None else ()):
            back = f()
            if any(not torch.equal(back[n_], tensors[n_]) for n_ in tensors):
                raise RuntimeError("save/load: a peer's loaded tensors differ")
        best = interleaved_best(fns, min_time, rounds=3) + [float("nan")] * 2
        gb = lambda t: stored / t / 1e9  # noqa: E731
        ls, ll, ts, tl, ss, sl = best[:6]
        print(f"{name:<8}{need.value / 2**20:>7.1f}{ls * 1e3:>9.2f}{gb(ls):>7.1f}{ll * 1e3:>9.2f}{gb(ll):>7.1f}"
              f"{ts * 1e3:>11.2f}{tl * 1e3:>8.2f}{(ts + tl) / (ls + ll):>8.2f}x{ss * 1e3:>9.2f}{sl * 1e3:>8.2f}"
              f"{(ss + sl) / (ls + ll):>7.2f}x  {same}", flush=True)
        src.close()
        dst.close()


def best_time(fn, min_time: float, before=None) -> float:
    """The best of at least 10 timed calls of fn over min_time seconds; before(), untimed, ahead of each."""
    fn()
    best = float("inf")
    t_end = time.perf_counter() + min_time
    reps = 0
    while reps < 10 or time.perf_counter() < t_end:
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return best


def time_erase(lib: Lib, cache: "Cache", paged: bool, start: int, stop: int, rope, min_time: float):
    """The best time of erasing [start, stop) with rope from the cache's first sequence, each erase on the full
    sequence restored from saved bytes (untimed). The cache is left erased once."""
    seq = cache.ids[0]
    prefix = "llmkit_paged_kv_cache_" if paged else "llmkit_kv_cache_"
    save_fn, load_fn, erase_fn = (getattr(lib.lib, prefix + n) for n in ("seq_save", "seq_load", "seq_erase"))
    need = ctypes.c_size_t()
    save_fn(cache.handle, seq, None, 0, ctypes.byref(need))
    saved = (ctypes.c_char * need.value)()
    lib.check(save_fn(cache.handle, seq, saved, need.value, None))

    def restore():
        lib.check(load_fn(cache.handle, seq, saved, need.value))

    def erase():
        lib.check(erase_fn(cache.handle, seq, start, stop, ctypes.byref(rope)))

    best = best_time(erase, min_time, before=restore)
    restore()
    erase()
    return best


# The context-shift cells' span at 8192 tokens: keep 4 (StreamingLLM's sinks), erase half the rest, move the others.
SHIFT_SPAN = (4, (8192 - 4) // 2, 8192 - 4 - (8192 - 4) // 2)


def shift_table(lib: Lib, args, names, title: str):
    """The context-shift cells of `names` that run (--only picks them, and the library has the erase and save
    calls), the others as None; when any runs, the title and column headings are printed."""
    have = hasattr(lib.lib, "llmkit_kv_cache_seq_erase") and hasattr(lib.lib, "llmkit_kv_cache_seq_save")
    picked = [n if have and (not args.only or args.only in n or args.only in "context shift") else None for n in names]
    if any(picked):
        print("\n" + title)
        shift_row()
    return picked if any(picked) else []


def shift_row(name: str = "", dtype=None, best_l: float = 0.0, best_t: float = 0.0, moved: int = 0,
              diff: float = 0.0) -> None:
    """A context-shift cell's line (no arguments: the column headings): times, GB/s of the `moved` bytes, the
    ratio, and the agreement, which must hold (float32 1e-4, 16-bit 5e-2)."""
    if not name:
        print(f"{'cell':<22}{'dtype':<10}{'llmkit ms':>10}{'GB/s':>7}{'torch ms':>10}{'GB/s':>7}{'vs torch':>9}"
              f"{'max|diff|':>11}")
        return
    print(f"{name:<22}{str(dtype).replace('torch.', ''):<10}{best_l * 1e3:>10.3f}{moved / best_l / 1e9:>7.1f}"
          f"{best_t * 1e3:>10.3f}{moved / best_t / 1e9:>7.1f}{best_t / best_l:>8.2f}x{diff:>11.2e}", flush=True)
    if diff > (1e-4 if dtype == torch.float32 else 5e-2):
        raise RuntimeError(f"{name}: llmkit and torch differ by {diff:.3g}")


def context_shift_cells(lib: Lib, dtypes, args, min_time: float) -> None:
    """llama.cpp's context shift at 8192 tokens of context (one layer of Llama 3 8B: Hkv=8, D=128, NeoX RoPE,
    theta 500000): keep the first 4 tokens, erase the next (8192 - 4) / 2 and turn the later keys back by as many
    positions. llmkit: llmkit_kv_cache_seq_erase / llmkit_paged_kv_cache_seq_erase on a full sequence (restored
    from saved bytes between calls, untimed). torch: the same on [1, Hkv, S, D] tensors as Hugging Face's
    SinkCache did it: K's kept tail rotated by cos/sin of -n_discard (rotate_half) and copied down into a static
    cache, V copied down, timed once per dtype (it is the same for both llmkit caches). GB/s: the moved rows of K
    and V read and written. Agreement: attention of a query over the shifted llmkit cache against torch SDPA over
    the shifted tensors."""
    S, Hkv, Hq, D, theta = 8192, 8, 32, 128, 500000.0
    keep, discard, n_move = SHIFT_SPAN
    names = shift_table(lib, args, ["contig shift 8192", "paged shift 8192"],
                        f"context shift: one layer of {S} tokens (Hkv={Hkv}, D={D}, NeoX, theta {theta:g}); keep "
                        f"{keep}, erase {discard}, turn the {n_move} later keys back; torch: rotate_half on [1, Hkv, S, "
                        f"D] and a copy down (Hugging Face's SinkCache); GB/s of the moved K and V rows read and "
                        f"written; ratio: torch's ms over llmkit's")
    if not names:
        return
    g = torch.Generator().manual_seed(21)
    rope = RopeOptions.neox(theta, args.threads)
    inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    for dtype in dtypes:
        k = torch.randn(S, Hkv, D, generator=g).to(dtype)
        v = torch.randn(S, Hkv, D, generator=g).to(dtype)
        q = torch.randn(1, 1, Hq, D, generator=g).to(dtype)
        # torch's cache: the keys rotated at their positions, [1, Hkv, S, D].
        ang = torch.outer(torch.arange(S, dtype=torch.float64), inv)
        emb = torch.cat([ang, ang], dim=-1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]

        def rotate_half(x):
            return torch.cat([-x[..., D // 2:], x[..., : D // 2]], dim=-1)

        k_rot = (k.double() * cos + rotate_half(k.double()) * sin).to(dtype)
        k0, v0 = k_rot.transpose(0, 1)[None].contiguous(), v.transpose(0, 1)[None].contiguous()
        back = torch.cat([inv, inv]) * -discard
        c_back, s_back = back.cos().to(dtype), back.sin().to(dtype)
        k_t, v_t = k0.clone(), v0.clone()

        def run_torch():
            tail = k_t[:, :, keep + discard:]
            k_t[:, :, keep:keep + n_move].copy_(tail * c_back + rotate_half(tail) * s_back)
            v_t[:, :, keep:keep + n_move].copy_(v_t[:, :, keep + discard:].clone())

        # torch's shift is the same for both llmkit caches: timed once, best of its rounds.
        best_t = best_time(run_torch, min_time)
        k_t.copy_(k0)
        v_t.copy_(v0)
        run_torch()
        want_out = F.scaled_dot_product_attention(q.transpose(1, 2), k_t[:, :, :keep + n_move].repeat_interleave(
            Hq // Hkv, dim=1), v_t[:, :, :keep + n_move].repeat_interleave(Hq // Hkv, dim=1)).transpose(1, 2)
        for paged, name in zip((False, True), names):
            if not name:
                continue
            # The cache holds the same rotated keys: appended through the fused RoPE.
            cache = Cache(lib, paged, KV_CODE[dtype], k[None], v[None], args.threads, bs=16, empty=True)
            seq = cache.ids[0]
            tk, a = as_llmkit(k)
            tv, b = as_llmkit(v)
            append = lib.lib.llmkit_paged_kv_cache_append_rope if paged else lib.lib.llmkit_kv_cache_append_rope
            lib.check(append(cache.handle, 0, seq, ctypes.byref(tk), ctypes.byref(tv), ctypes.byref(rope)))
            best_l = time_erase(lib, cache, paged, keep, keep + discard, rope, min_time)
            out = torch.empty_like(q)
            tq, c = as_llmkit(q)
            to, d = as_llmkit(out)
            cache.attention(tq, to)
            diff = (out.float() - want_out.float()).abs().max().item()
            shift_row(name, dtype, best_l, best_t, 2 * 2 * n_move * Hkv * D * k.element_size(), diff)
            cache.close()


def mla_shift_cells(lib: Lib, dtypes, args, min_time: float) -> None:
    """The context shift of one DeepSeek-V3 layer's latent cache at 8192 tokens (v_from_k: one kv head of 576 =
    the 512-wide latent, also V, then 64 rotary dims, GPT-J pairs): keep 4, erase 4094, move the rest down and
    turn their last 64 dims back. llmkit: seq_erase with rotary_dims 64 (the last 64 of a v_from_k row). torch:
    the same on the [S, 576] rows vLLM and SGLang keep for MLA, as the SinkCache cell does it (the rotary tail
    turned by cos/sin of -n_discard, both parts copied down). GB/s: the moved rows read and written. Agreement:
    128 query heads of one absorbed decode query (q_pe turned by the attention's fused RoPE) over the shifted
    llmkit cache against torch SDPA over the shifted rows."""
    S, C, R, Hq, theta = 8192, 512, 64, 128, 10000.0
    keep, discard, n_move = SHIFT_SPAN
    names = shift_table(lib, args, ["contig mla shift 8192", "paged mla shift 8192"],
                        f"MLA context shift: one DeepSeek-V3 layer's latent cache of {S} tokens (rows of {C} + {R}, "
                        f"GPT-J pairs); keep {keep}, erase {discard}, turn the last {R} of the {n_move} later rows "
                        f"back; torch: the same on [S, {C + R}] rows; GB/s of the moved rows read and written; ratio: "
                        f"torch's ms over llmkit's")
    if not names:
        return
    g = torch.Generator().manual_seed(22)
    rope = RopeOptions.neox(theta, args.threads)
    rope.layout, rope.rotary_dims = 1, R  # interleaved pairs; on a v_from_k cache the last R dims
    inv = 1.0 / (theta ** (torch.arange(0, R, 2, dtype=torch.float64) / R))

    def turn(x, angles):
        """Interleaved pairs of x [..., R] turned by angles [..., R / 2] (float64)."""
        c, s = angles.cos(), angles.sin()
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).flatten(-2)

    for dtype in dtypes:
        rows = torch.randn(S, C + R, generator=g)
        q = torch.randn(1, 1, Hq, C + R, generator=g).to(dtype)
        rows0 = rows.double()
        rows0[:, C:] = turn(rows0[:, C:], torch.outer(torch.arange(S, dtype=torch.float64), inv))
        rows0 = rows0.to(dtype)
        rows = rows.to(dtype)
        c_back, s_back = (inv * -discard).cos().to(dtype), (inv * -discard).sin().to(dtype)
        kv_t = rows0.clone()

        def run_torch():
            tail = kv_t[keep + discard:]
            x0, x1 = tail[:, C::2], tail[:, C + 1::2]
            kv_t[keep:keep + n_move, C:] = torch.stack([x0 * c_back - x1 * s_back, x0 * s_back + x1 * c_back],
                                                       dim=-1).flatten(-2)
            kv_t[keep:keep + n_move, :C].copy_(tail[:, :C].clone())

        best_t = best_time(run_torch, min_time)
        kv_t.copy_(rows0)
        run_torch()
        L = keep + n_move
        q_t = q.double()
        q_t[..., C:] = turn(q_t[..., C:], float(L - 1) * inv)
        k_ref = kv_t[:L].double()[None, None].expand(1, Hq, L, C + R)
        want = F.scaled_dot_product_attention(q_t.transpose(1, 2), k_ref, k_ref[..., :C]).transpose(1, 2)
        for paged, name in zip((False, True), names):
            if not name:
                continue
            cache = Cache(lib, paged, KV_CODE[dtype], rows[None, :, None], rows[None, :, None, :C], args.threads,
                          bs=16, v_from_k=True, empty=True)
            tk, a = as_llmkit(rows[:, None])
            append = lib.lib.llmkit_paged_kv_cache_append_rope if paged else lib.lib.llmkit_kv_cache_append_rope
            lib.check(append(cache.handle, 0, cache.ids[0], ctypes.byref(tk), None, ctypes.byref(rope)))
            best_l = time_erase(lib, cache, paged, keep, keep + discard, rope, min_time)
            out = torch.empty(1, 1, Hq, C, dtype=dtype)
            tq, b = as_llmkit(q)
            to, d = as_llmkit(out)
            cache.opts.rope = ctypes.cast(ctypes.pointer(rope), ctypes.c_void_p)
            cache.attention(tq, to)
            diff = (out.double() - want).abs().max().item()
            shift_row(name, dtype, best_l, best_t, 2 * n_move * (C + R) * rows.element_size(), diff)
            cache.close()


def sliding_window_cells(lib: Lib, dtypes, args) -> None:
    """Decode under a sliding window (Mistral 7B v0.1: every layer sees the last 4096 keys) at 8192 tokens of
    context and on: 4 sequences, one layer of 32 query and 8 kv heads of 128. llmkit's paged cache (blocks of 16)
    releases after each step the blocks the window has left (llmkit_paged_kv_cache_seq_release_before), and, for
    the cost of that, the same cache keeping every token. The peers are transformers' two sliding-window cache
    layers with torch SDPA over the keys they return (as a transformers model's sdpa attention runs):
    DynamicSlidingWindowLayer (keeps the last W - 1 tokens, torch.cat per step) and StaticSlidingWindowLayer
    (W tokens, rolled per step). A step: each sequence's new token's K/V in, its query's attention out (llmkit:
    then the release). Memory: the K/V bytes each holds after the run. Every contender decodes the same tokens;
    their outputs are compared at the end of each round."""
    if args.only not in "sliding window" or not hasattr(lib.lib, "llmkit_paged_kv_cache_seq_release_before"):
        return
    try:
        from transformers.cache_utils import DynamicSlidingWindowLayer, StaticSlidingWindowLayer
    except ImportError:
        print("\nsliding window: transformers is not installed (pip install transformers); cell skipped")
        return
    B, Hq, Hkv, D, W, P, bs, chunk = 4, 32, 8, 128, 4096, 8192, 16, 1024
    steps, rounds = (8, 2) if args.quick else (16, 3)
    T = P + steps * rounds
    print(f"\nsliding-window decode ({B} sequences from {P} tokens on, window {W}, Hq={Hq} Hkv={Hkv} D={D}; llmkit paged "
          f"cache, blocks of {bs}, releasing what the window left / keeping every token; transformers' "
          f"DynamicSlidingWindowLayer and StaticSlidingWindowLayer + torch SDPA); ms per step (best of {rounds} rounds "
          f"of {steps}), MiB of K/V held; ratios: the peer's ms over llmkit's (releasing)")
    print(f"{'dtype':<10}{'llmkit ms':>10}{'MiB':>7}{'keep ms':>9}{'MiB':>7}{'hf dyn ms':>10}{'MiB':>7}{'hf static':>10}"
          f"{'MiB':>7}{'vs dyn':>8}{'vs static':>10}{'max|diff|':>11}")
    for dtype in dtypes:
        if dtype not in KV_CODE:
            continue
        g = torch.Generator().manual_seed(21)
        k = torch.randn(B, T, Hkv, D, generator=g).to(dtype)
        v = torch.randn(B, T, Hkv, D, generator=g).to(dtype)
        q = torch.randn(T - P, B, 1, Hq, D, generator=g).to(dtype)
        caches = []
        for release in (True, False):
            per_seq = (T + bs - 1) // bs
            n_blocks = B * ((W + chunk) // bs + 2) if release else B * per_seq
            handle, ids = new_paged_cache(lib, Hkv, D, bs, n_blocks, B, per_seq, KV_CODE[dtype])
            for b in range(B):
                s = ids[b]
                for c in range(0, P, chunk):  # the prompt in chunks, released as it goes
                    tk, keep_k = as_llmkit(k[b, c:c + chunk])
                    tv, keep_v = as_llmkit(v[b, c:c + chunk])
                    lib.check(lib.lib.llmkit_paged_kv_cache_append(handle, 0, s, ctypes.byref(tk), ctypes.byref(tv)))
                    if release:
                        lib.check(lib.lib.llmkit_paged_kv_cache_seq_release_before(handle, s, max(0, c + chunk - W + 1),
                                                                                    None))
            opts = KVAttentionOptions(ctypes.sizeof(KVAttentionOptions), 1, W, 0.0, 0.0, None, None, args.threads, 0)
            caches.append({"handle": handle, "ids": ids, "release": release, "opts": opts, "t": P,
                           "out": torch.empty(B, 1, Hq, D, dtype=dtype)})
        layers = [DynamicSlidingWindowLayer(sliding_window=W), StaticSlidingWindowLayer(max_cache_len=W, sliding_window=W)]
        peers = []
        for layer in layers:
            layer.update(k[:, :P].transpose(1, 2).contiguous(), v[:, :P].transpose(1, 2).contiguous())
            peers.append({"layer": layer, "t": P, "out": None})

        def llmkit_steps(c):
            def run():
                for _ in range(steps):
                    t = c["t"]
                    for b in range(B):
                        tk, keep_k = as_llmkit(k[b, t:t + 1])
                        tv, keep_v = as_llmkit(v[b, t:t + 1])
                        lib.check(lib.lib.llmkit_paged_kv_cache_append(c["handle"], 0, c["ids"][b], ctypes.byref(tk),
                                                                       ctypes.byref(tv)))
                    tq, keep_q = as_llmkit(q[t - P])
                    to, keep_o = as_llmkit(c["out"])
                    lib.check(lib.lib.llmkit_paged_kv_cache_attention(c["handle"], 0, ctypes.byref(tq), c["ids"], B,
                                                                      ctypes.byref(to), ctypes.byref(c["opts"])))
                    if c["release"]:  # the next query, at t + 1, sees keys from t + 2 - W on
                        for b in range(B):
                            lib.check(lib.lib.llmkit_paged_kv_cache_seq_release_before(c["handle"], c["ids"][b],
                                                                                        max(0, t + 2 - W), None))
                    c["t"] = t + 1
            return run

        def hf_steps(p):
            def run():
                for _ in range(steps):
                    t = p["t"]
                    fk, fv = p["layer"].update(k[:, t:t + 1].transpose(1, 2), v[:, t:t + 1].transpose(1, 2))
                    p["out"] = F.scaled_dot_product_attention(q[t - P].transpose(1, 2), fk, fv, enable_gqa=True)
                    p["t"] = t + 1
            return run

        fns = [llmkit_steps(c) for c in caches] + [hf_steps(p) for p in peers]
        best = [float("inf")] * len(fns)
        diff = 0.0
        for _ in range(rounds):
            for i, fn in enumerate(fns):
                t0 = time.perf_counter()
                fn()
                best[i] = min(best[i], (time.perf_counter() - t0) / steps)
            if not torch.equal(caches[0]["out"], caches[1]["out"]):
                raise RuntimeError("sliding window: releasing the left blocks changed the bits")
            for p in peers:
                diff = max(diff, (caches[0]["out"].float() - p["out"].transpose(1, 2).float()).abs().max().item())
        tol = 2e-2 if dtype != torch.float32 else 1e-4
        if diff > tol:
            raise RuntimeError(f"sliding window: llmkit and transformers' layers differ by {diff:.3g}")
        held = []
        for c in caches:
            used = ctypes.c_uint64()
            lib.check(lib.lib.llmkit_paged_kv_cache_memory_bytes(c["handle"], ctypes.byref(used), None))
            held.append(used.value / 2**20)
            lib.lib.llmkit_paged_kv_cache_free(c["handle"])
        for p in peers:
            held.append((p["layer"].keys.nbytes + p["layer"].values.nbytes) / 2**20)
        print(f"{str(dtype).replace('torch.', ''):<10}{best[0] * 1e3:>10.3f}{held[0]:>7.0f}{best[1] * 1e3:>9.3f}"
              f"{held[1]:>7.0f}{best[2] * 1e3:>10.3f}{held[2]:>7.0f}{best[3] * 1e3:>10.3f}{held[3]:>7.0f}"
              f"{best[2] / best[0]:>7.2f}x{best[3] / best[0]:>9.2f}x{diff:>11.2e}", flush=True)


def padded_decode_cells(lib: Lib, dtypes, args, min_time: float) -> None:
    """One decode step of a left-padded batch, as Hugging Face's generate runs it: 16 sequences of 1k-8k tokens
    left-padded to the longest, K/V [B, S, H, D] with the heads side by side, a [B, 1, 1, S] padding mask.
    llmkit_attention with the mask, against torch SDPA with the same mask as a boolean, and llmkit without a mask
    (the same bytes read: the bound). GB/s: every K/V byte of the padded tensors over the time."""
    Hq, Hkv, D = 32, 8, 128
    lens = [1024 * (1 + b % 8) for b in range(16)]
    if args.quick:
        lens = [n // 4 for n in lens]
    B, S = len(lens), max(lens)
    name = "padded decode"
    print(f"\npadded decode: one step of {B} sequences of {min(lens)}-{S} tokens left-padded to {S}, K/V [B, S, H, D], "
          f"Hq={Hq} Hkv={Hkv} D={D}; ratios: the other's ms over llmkit's (masked)")
    print(f"{'cell':<16}{'dtype':<10}{'masked ms':>10}{'GB/s':>7}{'unmasked':>10}{'torch ms':>10}{'vs torch':>9}"
          f"{'max|diff|':>11}")
    if args.only not in name:
        return
    keep, additive = left_padding_masks(lens)
    for dtype in dtypes:
        q = torch.randn(B, 1, Hq, D).to(dtype)
        k, v = (torch.randn(B, S, Hkv, D).to(dtype) for _ in range(2))
        out, out_plain = torch.empty_like(q), torch.empty_like(q)
        (tq, a), (tk, b2), (tv, c), (to, d), (tp, e) = (as_llmkit(x) for x in (q, k, v, out, out_plain))
        tm, f = as_llmkit(additive)
        opts = AttentionOptions(ctypes.sizeof(AttentionOptions), 1, 0, 0.0, 0.0, None, ctypes.addressof(tm),
                                args.threads, None)
        plain = AttentionOptions(ctypes.sizeof(AttentionOptions), 1, 0, 0.0, 0.0, None, None, args.threads, None)

        run_masked = lib.attention_call(tq, tk, tv, to, opts)
        run_plain = lib.attention_call(tq, tk, tv, tp, plain)
        qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))

        def run_torch():
            return F.scaled_dot_product_attention(qt, kt, vt, attn_mask=keep, enable_gqa=True)

        run_masked()
        diff = (out.float() - run_torch().transpose(1, 2).float()).abs().max().item()
        tol = 1e-4 if dtype == torch.float32 else 3e-2
        if diff > tol:
            raise RuntimeError(f"{name} {dtype}: llmkit and torch differ by {diff} (tolerance {tol})")
        t_m, t_p, t_t = interleaved_best([run_masked, run_plain, run_torch], min_time, rounds=3)
        gbs = 2 * k.numel() * k.element_size() / t_m / 1e9
        print(f"{name:<16}{str(dtype).replace('torch.', ''):<10}{t_m * 1e3:>10.2f}{gbs:>7.1f}{t_p * 1e3:>10.2f}"
              f"{t_t * 1e3:>10.2f}{t_t / t_m:>8.2f}x{diff:>11.2e}", flush=True)


def deepseek_cells(lib: Lib, dtypes, args, min_time: float, peak: float) -> None:
    """DeepSeek's attention, whose v has a head_dim of its own. Prefill as DeepSeek-V2-Lite's layers run it
    (16 heads, q and k 128 + 64 rotary dimensions = 192, v 128): llmkit_attention on v as it is, against torch SDPA
    (which takes such a v too) and against the route kernels with one head_dim take (flash-attn 2: v zero-padded to
    192, the output sliced back), here llmkit's own on the padded v, the pad included.
    Decode in the absorbed form of multi-head latent attention (DeepSeek-V3's 128 query heads on one latent "kv head":
    k the cached latent of 512 plus its 64 rotary dimensions, v a view of the latent's first 512): llmkit_attention
    against the two matmuls of DeepSeek's own inference code in torch (scores q . latent, softmax, p . latent).
    float32: torch's bfloat16 matmul crawls on CPUs without AVX512-BF16 or AMX."""
    name_p, name_d = "deepseek prefill", "mla decode"
    H, D, Dv = 16, 192, 128
    S = 512 if args.quick else 2048
    print(f"\nDeepSeek attention, v's head_dim apart: prefill of {S} tokens, causal, {H} heads, D={D} Dv={Dv} "
          f"(DeepSeek-V2-Lite); GFLOP/s of the causal work, %peak against the float32 matmul peak; "
          f"ratios: the other's ms over llmkit's")
    print(f"{'cell':<18}{'dtype':<10}{'llmkit ms':>10}{'GFLOP/s':>9}{'%peak':>7}{'torch ms':>10}{'v padded':>10}"
          f"{'vs torch':>9}{'vs padded':>10}{'max|diff|':>11}")
    if args.only in name_p:
        for dtype in dtypes:
            q, k = (torch.randn(1, S, H, D).to(dtype) for _ in range(2))
            v = torch.randn(1, S, H, Dv).to(dtype)
            out = torch.empty(1, S, H, Dv, dtype=dtype)
            vp = torch.zeros(1, S, H, D, dtype=dtype)
            outp = torch.empty(1, S, H, D, dtype=dtype)
            (tq, a), (tk, b), (tv, c), (to, d), (tvp, e), (top, f) = (as_llmkit(x) for x in (q, k, v, out, vp, outp))
            opts = AttentionOptions(ctypes.sizeof(AttentionOptions), 1, 0, 0.0, 0.0, None, None, args.threads, None)
            run = lib.attention_call(tq, tk, tv, to, opts)
            run_in_padded = lib.attention_call(tq, tk, tvp, top, opts)

            def run_padded():  # the pad and the slice, as flash-attn 2 users do
                vp[..., :Dv].copy_(v)
                run_in_padded()
                return outp[..., :Dv].contiguous()

            qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))

            def run_torch():
                return F.scaled_dot_product_attention(qt, kt, vt, is_causal=True)

            run()
            ref = run_torch().transpose(1, 2)
            diff = (out.float() - ref.float()).abs().max().item()
            diff_p = (run_padded().float() - out.float()).abs().max().item()
            tol = 1e-4 if dtype == torch.float32 else 3e-2
            if diff > tol or diff_p > tol:
                raise RuntimeError(f"{name_p} {dtype}: llmkit and torch differ by {diff}, padded by {diff_p}")
            t_l, t_t, t_p = interleaved_best([run, run_torch, run_padded], min_time, rounds=3)
            flops = H * S * (S + 1) * (D + Dv)  # 2 * (S^2 / 2) * (D + Dv) per head, causal
            gf = flops / t_l / 1e9
            print(f"{name_p:<18}{str(dtype).replace('torch.', ''):<10}{t_l * 1e3:>10.2f}{gf:>9.1f}"
                  f"{100 * gf / peak:>6.0f}%{t_t * 1e3:>10.2f}{t_p * 1e3:>10.2f}{t_t / t_l:>8.2f}x{t_p / t_l:>9.2f}x"
                  f"{diff:>11.2e}", flush=True)

    name_c = "deepseek decode"
    B, T = (2, 1024) if args.quick else (4, 4096)
    print(f"\nDeepSeek decode from a paged cache (blocks of 16) of {B} sequences of {T} tokens, {H} heads, D={D} Dv={Dv}, "
          f"float32: llmkit's cache with V in rows of {Dv} (v_head_dim), against the same cache with V zero-padded to "
          f"{D} (the route of kernels with one head_dim) and torch SDPA on [B, H, S, D] tensors; GB/s of K and V. "
          f"Then the same decode on plain [B, S, H, D] tensors (llmkit_attention; V padded: a V tensor of {D})")
    print(f"{'decode from':<18}{'dtype':<10}{'llmkit ms':>10}{'GB/s':>7}{'v padded':>10}{'torch ms':>10}{'vs padded':>10}"
          f"{'vs torch':>9}{'max|diff|':>11}")
    if args.only in name_c:
        k = torch.randn(B, T, H, D)
        v = torch.randn(B, T, H, Dv)
        vp = torch.zeros(B, T, H, D)
        vp[..., :Dv] = v
        q = torch.randn(B, 1, H, D)
        own = Cache(lib, True, KV_F32, k, v, args.threads, 16)
        padded = Cache(lib, True, KV_F32, k, vp, args.threads, 16)
        out, outp = torch.empty(B, 1, H, Dv), torch.empty(B, 1, H, D)
        (tq, a), (to, b), (top, c) = (as_llmkit(x) for x in (q, out, outp))
        qt, kt, vt = (x.transpose(1, 2).contiguous() for x in (q, k, v))  # a cache as transformers keeps it

        def run_torch():
            return F.scaled_dot_product_attention(qt, kt, vt)

        run_own = lambda: own.attention(tq, to)  # noqa: E731
        run_padded = lambda: padded.attention(tq, top)  # noqa: E731
        run_own()
        run_padded()
        want = run_torch().transpose(1, 2)
        diff = (out - want).abs().max().item()
        diff_p = (outp[..., :Dv] - out).abs().max().item()
        if diff > 1e-4 or diff_p > 1e-5:
            raise RuntimeError(f"{name_c}: llmkit and torch differ by {diff}, the padded cache by {diff_p}")
        # The same decode on the tensors themselves, [B, S, H, D] with the heads side by side.
        (tk, d), (tv, e), (tvp, f) = (as_llmkit(x) for x in (k, v, vp))
        opts = AttentionOptions(ctypes.sizeof(AttentionOptions), 1, 0, 0.0, 0.0, None, None, args.threads, None)
        out_t, outp_t = torch.empty(B, 1, H, Dv), torch.empty(B, 1, H, D)
        (to_t, g), (top_t, h) = (as_llmkit(x) for x in (out_t, outp_t))
        run_tensors = lib.attention_call(tq, tk, tv, to_t, opts)
        run_tensors_padded = lib.attention_call(tq, tk, tvp, top_t, opts)
        run_tensors()
        run_tensors_padded()
        diff_t = (out_t - want).abs().max().item()
        diff_tp = (outp_t[..., :Dv] - out_t).abs().max().item()
        if diff_t > 1e-4 or diff_tp > 1e-5:
            raise RuntimeError(f"{name_c}: plain tensors differ from torch by {diff_t}, V padded by {diff_tp}")
        t_l, t_p, t_t, t_lt, t_pt = interleaved_best([run_own, run_padded, run_torch, run_tensors, run_tensors_padded],
                                                      min_time, rounds=3)
        own.close()
        padded.close()
        nbytes = B * T * H * (D + Dv) * 4
        for label, tl, tp, dd in (("paged cache", t_l, t_p, diff), ("plain tensors", t_lt, t_pt, diff_t)):
            print(f"{label:<18}{'float32':<10}{tl * 1e3:>10.2f}{nbytes / tl / 1e9:>7.1f}{tp * 1e3:>10.2f}"
                  f"{t_t * 1e3:>10.2f}{tp / tl:>9.2f}x{t_t / tl:>8.2f}x{dd:>11.2e}", flush=True)

    Hq, L, R = 128, 512, 64
    print(f"\nMLA decode, absorbed: one step of {B} sequences of {T} cached tokens, {Hq} query heads on one latent of "
          f"{L} + {R} rotary dimensions (DeepSeek-V3), v the latent's first {L}; torch: DeepSeek's inference code's "
          f"matmuls; GFLOP/s, %peak against the float32 matmul peak; GB/s of the latent read")
    print("  paged: llmkit's paged cache of the latent rows alone (v_from_k, blocks of 16), float32 and bf16 rows; "
          "its ratio against torch's float32 matmuls")
    print(f"{'cell':<18}{'dtype':<10}{'llmkit ms':>10}{'GFLOP/s':>9}{'%peak':>7}{'GB/s':>7}{'torch ms':>10}"
          f"{'vs torch':>9}{'paged ms':>9}{'bf16 ms':>8}{'vs torch':>9}{'max|diff|':>11}")
    if args.only not in name_d:
        return
    q = torch.randn(B, 1, Hq, L + R)
    latent = torch.randn(B, T, 1, L + R)
    v = latent[..., :L]
    out = torch.empty(B, 1, Hq, L)
    scale = 1.0 / math.sqrt(128 + R)  # DeepSeek's softmax scale: the unabsorbed head's q.k dimensions
    (tq, a), (tk, b), (tv, c), (to, d) = (as_llmkit(x) for x in (q, latent, v, out))
    opts = AttentionOptions(ctypes.sizeof(AttentionOptions), 0, 0, 0.0, scale, None, None, args.threads, None)
    run = lib.attention_call(tq, tk, tv, to, opts)
    qb, kb = q[:, 0], latent[:, :, 0]  # [B, Hq, L + R], [B, T, L + R]

    def run_torch():
        s = torch.matmul(qb, kb.transpose(1, 2)) * scale  # [B, Hq, T]
        return torch.matmul(s.softmax(dim=-1), kb[..., :L])  # [B, Hq, L]

    caches = [Cache(lib, True, kv, latent, v, args.threads, 16, v_from_k=True) for kv in (KV_F32, KV_BF16)]
    outs = [torch.empty(B, 1, Hq, L) for _ in caches]
    for c in caches:
        c.opts.scale = scale
    paged_calls = []
    for c, o in zip(caches, outs):
        to_c, keep = as_llmkit(o)
        paged_calls.append(lambda c=c, to_c=to_c, keep=keep: c.attention(tq, to_c))

    run()
    want = run_torch()
    diff = (out[:, 0] - want).abs().max().item()
    for call in paged_calls:
        call()
    diff_p = (outs[0][:, 0] - want).abs().max().item()
    diff_b = (outs[1][:, 0] - want).abs().max().item()  # bf16 rows: the latent rounded
    if diff > 1e-4 or diff_p > 1e-4 or diff_b > 5e-2:
        raise RuntimeError(f"{name_d}: llmkit and torch differ by {diff}, the paged caches by {diff_p} and {diff_b}")
    t_l, t_t, t_p, t_b = interleaved_best([run, run_torch] + paged_calls, min_time, rounds=3)
    for c in caches:
        c.close()
    flops = 2 * B * Hq * T * (L + R + L)
    gf = flops / t_l / 1e9
    gbs = latent.numel() * 4 / t_l / 1e9
    print(f"{name_d:<18}{'float32':<10}{t_l * 1e3:>10.2f}{gf:>9.1f}{100 * gf / peak:>6.0f}%{gbs:>7.1f}"
          f"{t_t * 1e3:>10.2f}{t_t / t_l:>8.2f}x{t_p * 1e3:>9.2f}{t_b * 1e3:>8.2f}{t_t / t_p:>8.2f}x"
          f"{max(diff, diff_p):>11.2e}", flush=True)


def hf_model_cells(dtypes, args) -> None:
    """Transformers models run with attn_implementation="llmkit" (llmkit.hf) against the same models with "sdpa":
    random 2-layer models around a small hidden size (512; MLP 1024), so that attention is most of the work, as in
    a long-context model: a Llama with Llama 3 8B's attention (32 query and 8 kv heads of 128), and a DeepSeek-V3
    with DeepSeek-V2-Lite's latent attention (16 heads, q and k of 128 + 64 rotary dimensions, v of 128, a latent
    of 512; dense MLPs). A forward pass over 4 prompts of 512-2048 tokens left-padded to 2048, and generate() of
    32 greedy tokens from them (transformers' dynamic cache). The real tokens' logits must agree and the tokens be
    equal before timing. float32 only: the models' matmuls are torch's either way, and its bf16 matmul crawls on
    some CPUs (1 GFLOP/s on Zen 3)."""
    lens = [256, 512, 77, 300] if args.quick else [1024, 2048, 512, 1500]
    B, S, new = len(lens), max(lens), 32
    wanted = [n for n in ("hf llama", "hf deepseek") if args.only in n]
    print(f"\ntransformers models: random 2-layer Llama (hidden 512, Hq=32 Hkv=8 D=128) and DeepSeek-V3 (hidden 512, "
          f"16 heads, D=192 Dv=128, latent 512), {B} prompts of {'/'.join(map(str, lens))} tokens left-padded to {S}; "
          f"attn_implementation llmkit against sdpa; ratios: sdpa's s over llmkit's")
    print(f"{'cell':<16}{'dtype':<10}{'step':<14}{'llmkit s':>9}{'sdpa s':>9}{'ratio':>7}{'max|diff|':>11}")
    if not wanted:
        return
    import copy

    import transformers

    import llmkit.hf
    impl = llmkit.hf.register()
    models = {
        "hf llama": (transformers.LlamaForCausalLM, transformers.LlamaConfig(
            vocab_size=1024, hidden_size=512, intermediate_size=1024, num_hidden_layers=2, num_attention_heads=32,
            num_key_value_heads=8, head_dim=128, max_position_embeddings=4096)),
        "hf deepseek": (transformers.DeepseekV3ForCausalLM, transformers.DeepseekV3Config(
            vocab_size=1024, hidden_size=512, intermediate_size=1024, num_hidden_layers=2, num_attention_heads=16,
            num_key_value_heads=16, q_lora_rank=None, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
            v_head_dim=128, first_k_dense_replace=2, n_routed_experts=4, num_experts_per_tok=2, n_group=1,
            topk_group=1, moe_intermediate_size=256, max_position_embeddings=4096)),
    }
    ids = torch.randint(0, 1024, (B, S), generator=torch.Generator().manual_seed(0))
    am = torch.zeros(B, S, dtype=torch.long)
    for b, n in enumerate(lens):
        am[b, S - n:] = 1
    for name in wanted:
        model_cls, cfg = models[name]
        for dtype in [d for d in dtypes if d == torch.float32]:
            torch.manual_seed(0)
            ref = model_cls._from_config(copy.deepcopy(cfg), attn_implementation="sdpa").to(dtype).eval()
            mine = model_cls._from_config(copy.deepcopy(cfg), attn_implementation=impl).to(dtype).eval()
            mine.load_state_dict(ref.state_dict())

            def forward(model):
                with torch.no_grad():
                    return model(input_ids=ids, attention_mask=am).logits

            def generate(model):
                return model.generate(input_ids=ids, attention_mask=am, max_new_tokens=new, do_sample=False,
                                      min_new_tokens=new)

            a, b = forward(ref), forward(mine)
            diff = max((a[i, S - n:].float() - b[i, S - n:].float()).abs().max().item() for i, n in enumerate(lens))
            if diff > 1e-4:
                raise RuntimeError(f"{name} {dtype}: llmkit's and sdpa's logits differ by {diff} (tolerance 1e-4)")
            if not torch.equal(generate(ref), generate(mine)):
                raise RuntimeError(f"{name} {dtype}: the greedy tokens differ")
            for step, fn in (("forward", forward), (f"generate {new}", generate)):
                t_m, t_r = once_each([lambda: fn(mine), lambda: fn(ref)])
                print(f"{name:<16}{str(dtype).replace('torch.', ''):<10}{step:<14}{t_m:>9.2f}{t_r:>9.2f}"
                      f"{t_r / t_m:>6.2f}x{diff:>11.2e}", flush=True)


def rope_append_cells(lib: Lib, dtypes, args, min_time: float) -> None:
    """A prefill chunk's K rotated and stored in a cache, three ways: llmkit's fused append
    (llmkit_kv_cache_append_rope), llmkit_rope on K then a plain append, and Hugging Face's
    apply_rotary_pos_emb in torch then a copy into a preallocated cache (as its StaticCache)."""
    Hkv, D, theta = 8, 128, 500000.0
    print(f"\nRoPE fused into the cache append (one sequence, Hkv={Hkv}, D={D}, NeoX, theta {theta:g}; "
          f"cache of the inputs' dtype; GB/s = K and V read plus the cache rows written)")
    print(f"{'cell':<22}{'dtype':<10}{'fused ms':>10}{'GB/s':>7}{'rope+append':>12}{'torch ms':>10}{'vs unfused':>11}"
          f"{'vs torch':>9}{'max|diff|':>11}{'same bits':>10}")
    for dtype in dtypes:
        for S in ([512] if args.quick else [512, 2048]):
            name = f"append rope S={S}"
            if args.only not in name:
                continue
            k, v = (torch.randn(S, Hkv, D).to(dtype) for _ in range(2))
            k_work = k.clone()  # llmkit_rope rotates it in place, call after call
            rope = RopeOptions.neox(theta, args.threads)
            (tk, a), (tv, b), (tw, c) = as_llmkit(k), as_llmkit(v), as_llmkit(k_work)
            pos = torch.arange(S, dtype=torch.int64)
            (tp, d) = as_llmkit_index(pos)
            caches = []
            for _ in range(2):
                h = ctypes.c_void_p()
                o = KVCacheOptions(ctypes.sizeof(KVCacheOptions), 1, Hkv, D, S, 1, KV_CODE[dtype])
                lib.check(lib.lib.llmkit_kv_cache_create(ctypes.byref(h), ctypes.byref(o)))
                caches.append(h)
            seq = ctypes.c_int32()

            def fresh(h):
                lib.check(lib.lib.llmkit_kv_cache_seq_new(h, ctypes.byref(seq)))

            def run_fused():
                fresh(caches[0])
                lib.check(lib.lib.llmkit_kv_cache_append_rope(caches[0], 0, seq, ctypes.byref(tk), ctypes.byref(tv),
                                                              ctypes.byref(rope)))
                lib.lib.llmkit_kv_cache_seq_free(caches[0], seq)

            def run_unfused():
                fresh(caches[1])
                kt4 = Tensor(tw.data, tw.device, 4, tw.dtype, (ctypes.c_int64 * 4)(1, S, Hkv, D), None, 0)
                lib.check(lib.lib.llmkit_rope(ctypes.byref(kt4), ctypes.byref(tp), ctypes.byref(rope)))
                lib.check(lib.lib.llmkit_kv_cache_append(caches[1], 0, seq, ctypes.byref(tw), ctypes.byref(tv)))
                lib.lib.llmkit_kv_cache_seq_free(caches[1], seq)

            # Hugging Face Llama: rotate_half, cos/sin of [S, D] (computed once here, in float32, then cast).
            inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
            ang = torch.outer(pos.float(), inv)
            emb = torch.cat([ang, ang], dim=-1)
            cos, sin = emb.cos().to(dtype)[:, None, :], emb.sin().to(dtype)[:, None, :]
            k_cache = torch.zeros(1, Hkv, S, D, dtype=dtype)
            v_cache = torch.zeros_like(k_cache)

            def rotate_half(x):
                return torch.cat([-x[..., D // 2:], x[..., : D // 2]], dim=-1)

            def run_torch():
                kr = k * cos + rotate_half(k) * sin
                k_cache[0].copy_(kr.transpose(0, 1))
                v_cache[0].copy_(v.transpose(0, 1))

            # Agreement: the fused cache attends with exactly the unfused one's bits, and llmkit_rope's K
            # is torch's within the dtype's rounding.
            k_work.copy_(k)
            fresh(caches[0])
            lib.check(lib.lib.llmkit_kv_cache_append_rope(caches[0], 0, seq, ctypes.byref(tk), ctypes.byref(tv),
                                                          ctypes.byref(rope)))
            fresh(caches[1])
            kt4 = Tensor(tw.data, tw.device, 4, tw.dtype, (ctypes.c_int64 * 4)(1, S, Hkv, D), None, 0)
            lib.check(lib.lib.llmkit_rope(ctypes.byref(kt4), ctypes.byref(tp), ctypes.byref(rope)))
            lib.check(lib.lib.llmkit_kv_cache_append(caches[1], 0, seq, ctypes.byref(tw), ctypes.byref(tv)))
            run_torch()
            diff = (k_work.float() - k_cache[0].transpose(0, 1).float()).abs().max().item()
            q = torch.randn(1, 1, 4 * Hkv, D).to(dtype)
            outs = [torch.empty_like(q) for _ in range(2)]
            (tq, e) = as_llmkit(q)
            kvo = KVAttentionOptions(ctypes.sizeof(KVAttentionOptions), 1, 0, 0.0, 0.0, None, None, args.threads, 0,
                                     None)
            for h, out in zip(caches, outs):
                (to, f) = as_llmkit(out)
                lib.check(lib.lib.llmkit_kv_cache_attention(h, 0, ctypes.byref(tq), ctypes.byref(seq), 1,
                                                            ctypes.byref(to), ctypes.byref(kvo)))
            same = torch.equal(outs[0], outs[1])
            for h in caches:
                lib.lib.llmkit_kv_cache_seq_free(h, seq)

            t_f, t_u, t_t = interleaved_best([run_fused, run_unfused, run_torch], min_time, rounds=3)
            moved = 4 * S * Hkv * D * k.element_size()  # read K and V, write both rows
            print(f"{name:<22}{str(dtype).replace('torch.', ''):<10}{t_f * 1e3:>10.3f}{moved / t_f / 1e9:>7.1f}"
                  f"{t_u * 1e3:>12.3f}{t_t * 1e3:>10.3f}{t_u / t_f:>10.2f}x{t_t / t_f:>8.2f}x{diff:>11.2e}"
                  f"{'yes' if same else 'NO':>10}", flush=True)
            for h in caches:
                lib.lib.llmkit_kv_cache_free(h)


def as_llmkit_index(t: torch.Tensor):
    """A descriptor of an int64 tensor (positions)."""
    shape = (ctypes.c_int64 * t.dim())(*t.shape)
    strides = (ctypes.c_int64 * t.dim())(*t.stride())
    d = Tensor(t.data_ptr(), Device(1, 0), t.dim(), DType(0, 64, 1), shape, strides, 0)
    return d, (shape, strides, t)


if __name__ == "__main__":
    main()
