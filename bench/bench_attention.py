#!/usr/bin/env python3
"""Attention on the CPU: llmkit_attention against torch.nn.functional.scaled_dot_product_attention.

llmkit is called through its C ABI with ctypes (the Python binding has no
attention yet), on the same process, threads and inputs as torch; both results
are checked against each other before timing.

    cmake -S . -B build-attn -G Ninja -DLLMKIT_BUILD_PYTHON=OFF && ninja -C build-attn
    python3 bench/bench_attention.py --lib build-attn/libllmkit.so [--threads 2] [--quick]

Cells: causal prefill of 512 and 2048 tokens and decoding one token against a
1024-token cache (batch 1 and 16), 32 query heads, 8 key/value heads, head_dim
128, float32 and bfloat16. GFLOP/s counts the useful work only: 4 * D flops per
visible (query, key) pair (QK^T and PV), so a causal prefill of S tokens is
4 * B * Hq * D * S (S + 1) / 2.
"""

from __future__ import annotations

import argparse
import ctypes
import time

import torch
import torch.nn.functional as F


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


DTYPES = {torch.float32: (2, 32), torch.bfloat16: (4, 16), torch.float16: (2, 16)}


def as_llmkit(t: torch.Tensor):
    """A descriptor of t (kept alive with its shape/stride arrays)."""
    shape = (ctypes.c_int64 * t.dim())(*t.shape)
    strides = (ctypes.c_int64 * t.dim())(*t.stride())
    code, bits = DTYPES[t.dtype]
    d = Tensor(t.data_ptr(), Device(1, 0), t.dim(), DType(code, bits, 1), shape, strides, 0)
    return d, (shape, strides, t)


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build-attn/libllmkit.so")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--kv-layout", choices=["bshd", "bhsd"], default="bshd",
                    help="memory of llmkit's k and v: its own [B, S, H, D], or torch's [B, H, S, D] tensors viewed with strides")
    ap.add_argument("--only", default="", help="run only the cells whose name contains this text")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated torch dtype names")
    args = ap.parse_args()

    lib = ctypes.CDLL(args.lib)
    lib.llmkit_attention.restype = ctypes.c_int
    lib.llmkit_attention.argtypes = [ctypes.POINTER(Tensor)] * 4 + [ctypes.POINTER(AttentionOptions)]
    lib.llmkit_last_error_message.restype = ctypes.c_char_p
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    Hq, Hkv, D = 32, 8, 128
    cells = [("prefill", 1, 512, 512), ("prefill", 1, 2048, 2048), ("decode", 1, 1, 1024), ("decode", 16, 1, 1024)]
    if args.quick:
        cells = cells[:1] + cells[2:3]
    cells = [c for c in cells if args.only in f"{c[0]} B={c[1]} Sq={c[2]} Skv={c[3]}"]
    min_time = 0.5 if args.quick else 2.0
    print(f"torch {torch.__version__}, {args.threads} threads; Hq={Hq} Hkv={Hkv} D={D}; llmkit k/v in {args.kv_layout}; best of 5 alternating rounds, {min_time}s per contender")
    print(f"{'cell':<22}{'dtype':<10}{'llmkit ms':>11}{'GFLOP/s':>9}{'torch ms':>11}{'GFLOP/s':>9}{'speedup':>9}{'max|diff|':>11}")
    for dtype in [getattr(torch, n) for n in args.dtypes.split(",")]:
        for kind, B, Sq, Skv in cells:
            # llmkit reads [B, S, H, D]; torch gets its native [B, H, S, D], both contiguous.
            q = torch.randn(B, Sq, Hq, D).to(dtype)
            k = torch.randn(B, Skv, Hkv, D).to(dtype)
            v = torch.randn(B, Skv, Hkv, D).to(dtype)
            out = torch.empty_like(q)
            qt, kt, vt = (x.transpose(1, 2).contiguous() for x in (q, k, v))
            opts = AttentionOptions(ctypes.sizeof(AttentionOptions), 1, 0, 0.0, 0.0, None, None, args.threads, None)
            tq, kq = as_llmkit(q)
            if args.kv_layout == "bhsd":  # the very tensors torch reads, as strided [B, S, H, D] views
                k, v = kt.transpose(1, 2), vt.transpose(1, 2)
            tk, kk = as_llmkit(k)
            tv, kv = as_llmkit(v)
            to, ko = as_llmkit(out)

            def run_llmkit():
                st = lib.llmkit_attention(ctypes.byref(tq), ctypes.byref(tk), ctypes.byref(tv), ctypes.byref(to),
                                          ctypes.byref(opts))
                if st != 0:
                    raise RuntimeError(lib.llmkit_last_error_message().decode())

            # Sq == Skv: torch's top-left causal mask is llmkit's; Sq == 1: the one query sees every key.
            causal = Sq == Skv

            def run_torch():
                return F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal, enable_gqa=True)

            run_llmkit()
            ref = run_torch().transpose(1, 2)
            diff = (out.float() - ref.float()).abs().max().item()
            t_l, t_t = interleaved_best([run_llmkit, run_torch], min_time)
            pairs = B * Hq * (Sq * (Sq + 1) // 2 if causal else Sq * Skv)
            flops = 4.0 * D * pairs
            name = f"{kind} B={B} Sq={Sq} Skv={Skv}"
            print(f"{name:<22}{str(dtype).replace('torch.', ''):<10}{t_l * 1e3:>11.3f}{flops / t_l / 1e9:>9.1f}"
                  f"{t_t * 1e3:>11.3f}{flops / t_t / 1e9:>9.1f}{t_t / t_l:>8.2f}x{diff:>11.2e}")


if __name__ == "__main__":
    main()
