#!/usr/bin/env python3
"""Quantized matmul throughput: llmkit's GEMV / GEMM on quantized weights vs ggml, PyTorch, NumPy and memory bandwidth.

Usage (see bench/README.md, "Quantized matmul"):

    pip install torch numpy     # and, for the ggml peer, llama-cpp-python (an sdist that compiles ggml)
    PYTHONPATH=build-qmatmul/python python3 bench/bench_qmatmul.py [--reps 3] [--quick] [--json out.json]

What is measured, in one run:

* Memory bandwidth of this machine: the best of a few full reads of a 1 GiB float32 array
  (numpy ``max``, torch ``sum`` at 1 and 2 threads; GB/s = 1e9 bytes read per second). On a shared
  machine the bandwidth left to this process changes from minute to minute, so each GEMV cell also
  reads a 256 MiB array the same way (same thread count) just before and just after it, and its
  ratio is taken against the larger of those two ("bw" column); ``--fixed-bandwidth`` uses the
  start-of-run figure for every cell instead.
* GEMV (one activation row, a decode step), for 4096x4096 and 14336x4096 weights, at 1 and 2 threads:
  llmkit ``qt.matmul(x)`` for every type with a kernel (q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl, mxfp4, q2_K, q3_K,
  q4_K, q5_K, q6_K, iq4_xs, and int8 with per-row scales through ``llmkit.quant_matmul_int8``), PyTorch fp32 ``torch.mv``,
  PyTorch int8 ``torch.ops.quantized.linear_dynamic`` (per-channel qint8 weights, the kernel behind
  ``torch.ao.nn.quantized.dynamic.Linear``), NumPy float32 ``W @ x``. GB/s counts the bytes of
  weights read per second (the quantized bytes, scales included). "DRAM" cells cycle through
  enough copies of the weights (>= --cold-bytes; by default 4x the largest CPU cache sysfs reports,
  at least 128 MB: 1.1 GB on a 260 MB L3) that every call reads them from memory; "warm" cells repeat one matrix (the 4096x4096 quantized
  ones then sit in L3, so they show the kernels' compute speed, not memory).
* GEMM (prefill), 4096x4096 weights, M = 16, 32 and 128 activation rows: GFLOP/s = 2*M*N*K / time,
  llmkit against torch fp32 ``x @ W.T``, torch int8 dynamic linear, NumPy float32, and the
  alternative llmkit could use instead, "dequantize the whole matrix, then a float32 GEMM"
  (``llmkit.dequantize`` + torch ``mm``) -- the measurement behind the kernel choice. Torch's int8
  dynamic linear is timed first at each M, and every row prints its speed as a ratio to it
  ("vs int8" columns).

Agreement is checked before timing: llmkit's output against a float64 matmul of the dequantized
weights, with the bound the int8 rounding of x allows (sum |W| * d / 2 per output, d = the
block's max |x| / 127, plus 2^-16 of sum |W x| for float32 rounding); 1-thread and 2-thread
outputs must be bit-identical. PyTorch's int8 output is compared with its own dequantized weights
(relative error printed). The script exits 1 if any check fails.

ggml (llama.cpp's tensor library) is measured when llama-cpp-python is installed (or GGML_LIB_DIR
names a folder with libggml-base.so and libggml-cpu.so; see ggml_peer.py): for every GGUF type, a
ggml context holds the same weight bytes as llmkit's (the formats are identical) as a tensor of
ne0 = K, ne1 = N, and an F32 activation tensor of ne0 = K, ne1 = M; ``ggml_mul_mat``, a graph, and
``ggml_graph_compute`` at 1 and 2 threads (plan and work buffer made once; ggml quantizes the
activations to Q8_0 / Q8_K inside each call, as llmkit does). The "ggml" rows follow each llmkit
row, timed the same way (DRAM cells cycle copies in separate contexts), and print llmkit / ggml.
ggml's output must lie within the same int8-rounding bound of the float64 reference, plus
2^-10 * sum |W x| for the float16 rounding of its Q8_0 activation scales (2^-11 relative each;
llmkit keeps them in float32), or the run fails.
Without llama_cpp the run prints "ggml: skipped: llama_cpp not importable" and has no ggml rows.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import ggml_peer
import llmkit
from benchlib import best_time

TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl", "mxfp4", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_xs",
         "int8"]
SHAPES = [(4096, 4096), (14336, 4096)]
THREADS = [1, 2]

try:
    import torch
except ImportError:  # pragma: no cover - the peer is optional
    torch = None


def cycle_time(fns, reps):
    """Best time per call over `reps` sweeps of all fns (each on its own copy of the data)."""
    for f in fns:
        f()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for f in fns:
            f()
        best = min(best, (time.perf_counter() - t0) / len(fns))
    return best


def measure_bandwidth(reps):
    """GB/s of a full read of a 1 GiB float32 array, per thread count (best of the readers)."""
    a = np.ones((1 << 30) // 4, dtype=np.float32)
    out = {}
    np_gbs = a.nbytes / best_time(lambda: a.max(), reps) / 1e9
    for nt in THREADS:
        cands = {"numpy max": np_gbs} if nt == 1 else {}
        if torch is not None:
            t = torch.from_numpy(a)
            torch.set_num_threads(nt)
            cands["torch sum"] = a.nbytes / best_time(lambda: t.sum(), reps) / 1e9
        name = max(cands, key=cands.get)
        out[nt] = (cands[name], name, cands)
    del a
    return out


_PROBE = None


def local_bandwidth(nt, reps=2):
    """GB/s of a full read of a 256 MiB float32 array at nt threads (numpy max at 1 thread, torch sum)."""
    global _PROBE
    if _PROBE is None:
        _PROBE = np.ones((1 << 28) // 4, dtype=np.float32)
    a = _PROBE
    cands = [a.nbytes / best_time(lambda: a.max(), reps) / 1e9] if nt == 1 else []
    if torch is not None:
        t = torch.from_numpy(a)
        torch.set_num_threads(nt)
        cands.append(a.nbytes / best_time(lambda: t.sum(), reps) / 1e9)
    return max(cands) if cands else float("nan")


def int8_rows(w):
    """Symmetric per-row int8: (q int8 [N, K], scales float32 [N])."""
    amax = np.abs(w).max(axis=1)
    scales = (amax / np.float32(127)).astype(np.float32)
    scales[scales == 0] = 1
    q = np.clip(np.rint(w / scales[:, None]), -127, 127).astype(np.int8)
    return q, scales


class LlmkitWeights:
    """One weight matrix in one type, as llmkit multiplies it."""

    def __init__(self, w, t):
        self.t = t
        if t == "int8":
            self.q, self.s = int8_rows(w)
            self.nbytes = self.q.nbytes + self.s.nbytes
            self.wd = self.s[:, None].astype(np.float32) * self.q.astype(np.float32)
        else:
            self.qt = llmkit.quantize(w, t)
            self.nbytes = self.qt.nbytes
            self.wd = llmkit.dequantize(self.qt)

    def copy(self):
        c = LlmkitWeights.__new__(LlmkitWeights)
        c.t, c.nbytes, c.wd = self.t, self.nbytes, None
        if self.t == "int8":
            c.q, c.s = self.q.copy(), self.s.copy()
        else:
            c.qt = llmkit.QuantizedTensor(self.qt.data.copy(), self.t, self.qt.shape)
        return c

    def matmul(self, x, nt):
        if self.t == "int8":
            return llmkit.quant_matmul_int8(x, self.q, self.s, num_threads=nt)
        return self.qt.matmul(x, num_threads=nt)


def act_block(t):
    return 256 if t.endswith("_K") or t == "iq4_xs" else 32


def check_bound(y, wd, x, block, rel_exp=-15):
    """Largest |y - ref| / allowed over all outputs (<= 1 passes); see the module docstring.
    rel_exp: the float-rounding allowance is 2^rel_exp * sum |W x| (-10 for ggml's float16 scales)."""
    x2 = np.atleast_2d(x).astype(np.float64)
    y2 = np.atleast_2d(y).astype(np.float64)
    m, k = x2.shape
    xb = np.abs(x2).reshape(m, k // block, block).max(axis=2)
    d = xb.astype(np.float32) / np.float32(127)
    step = np.repeat(d.astype(np.float64), block, axis=1)  # [m, k]
    w64 = wd.astype(np.float64)
    ref = x2 @ w64.T
    bound = (step / 2) @ np.abs(w64).T + np.ldexp(np.abs(x2) @ np.abs(w64).T, rel_exp)
    return float(np.max(np.abs(y2 - ref) / bound))


def ggml_checked(ggml, lw, x, failures, label):
    """A ggml Matmul of lw's weight bytes and activations x, its 1- and 2-thread outputs checked
    against the float64 reference of lw's dequantized weights; returns (Matmul, share of the bound
    used, max |y_ggml - y_llmkit| / max |y_llmkit|)."""
    x2 = np.atleast_2d(x)
    n, k = lw.qt.shape
    g = ggml_peer.Matmul(ggml, lw.t, lw.qt.data, n, k, x2.shape[0])
    g.set_x(x2)
    worst = 0.0
    for nt in THREADS:
        g.compute(nt)
        yg = g.result()
        worst = max(worst, check_bound(yg, lw.wd, x2, act_block(lw.t), rel_exp=-10))
    if not worst <= 1.0:
        failures.append(f"{label} ggml {lw.t}: error {worst:.3f} of the bound")
    yl = np.atleast_2d(lw.matmul(x2, 1))
    return g, worst, float(np.abs(yg - yl).max() / np.abs(yl).max())


def default_cold_bytes() -> float:
    """4x the largest CPU cache that sysfs reports (at least 128 MB): cycling fewer bytes of weight copies
    than the last-level cache holds would time the cache, not DRAM (a 260 MB L3 holds 128 MB whole)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    largest = 0
    for size in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = size.read_text().strip()
        try:
            largest = max(largest, int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text))
        except ValueError:
            continue
    return float(max(128e6, 4 * largest))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--cold-bytes", type=float, default=default_cold_bytes(),
                    help="bytes of weight copies cycled for DRAM cells (default: 4x the largest cache, >= 128 MB)")
    ap.add_argument("--quick", action="store_true", help="4096x4096 only, GEMM at M=32 only")
    ap.add_argument("--json", default=None)
    ap.add_argument("--fixed-bandwidth", action="store_true",
                    help="ratios against the start-of-run bandwidth, not probes around each cell")
    ap.add_argument("--gemm-only", action="store_true",
                    help="only the GEMM table (no bandwidth probe, no GEMV): to re-run GEMM cells")
    ap.add_argument("--gemm-m", default=None, help="GEMM row counts, e.g. 128 or 16,32,128 (default: 16,32,128)")
    args = ap.parse_args()
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    shapes = [] if args.gemm_only else SHAPES[:1] if args.quick else SHAPES
    gemm_ms = [32] if args.quick else [16, 32, 128]
    if args.gemm_m:
        gemm_ms = [int(v) for v in args.gemm_m.split(",")]
    failures = []
    t_start = time.perf_counter()

    print(f"llmkit {llmkit.version()} (kernels: {llmkit.quant_matmul_isa()})  "
          f"torch {getattr(torch, '__version__', None)}  numpy {np.__version__}  python {platform.python_version()}  "
          f"cpus {os.cpu_count()}  load {os.getloadavg()[0]:.2f}", flush=True)
    ggml, ggml_why = ggml_peer.load()
    print("ggml: " + (f"llama-cpp-python {ggml.version}, {ggml.lib_dir}" if ggml else "skipped: " + ggml_why),
          flush=True)

    bw = {} if args.gemm_only else measure_bandwidth(args.reps)
    for nt in bw:
        gbs, name, cands = bw[nt]
        print(f"memory bandwidth, {nt} thread(s): {gbs:.2f} GB/s ({name}; "
              + ", ".join(f"{k} {v:.2f}" for k, v in cands.items()) + ")", flush=True)

    rng = np.random.default_rng(0)
    gemv_rows = []
    for (n, k) in shapes:
        w = (rng.standard_normal((n, k), dtype=np.float32) * np.float32(0.02)).astype(np.float32)
        x = rng.standard_normal(k, dtype=np.float32)
        print(f"\nGEMV {n}x{k}: weights GB/s (DRAM: cycling copies >= {args.cold_bytes / 1e6:.0f} MB; warm: one "
              "matrix repeated); ratio = DRAM GB/s / bw, the memory bandwidth "
              + ("at the start" if args.fixed_bandwidth else "probed around the cell"), flush=True)
        print(f"{'impl':<22} {'MB':>7} | " + " | ".join(f"{nt}t DRAM   ratio    warm      bw" for nt in THREADS),
              flush=True)

        def timed_cell(row, nt, nbytes, cold_fns, warm_fn):
            bw_before = bw[nt][0] if args.fixed_bandwidth else local_bandwidth(nt)
            if torch is not None:
                torch.set_num_threads(nt)
            cold = cycle_time(cold_fns, args.reps)
            warm = best_time(warm_fn, args.reps)
            local = bw_before if args.fixed_bandwidth else max(bw_before, local_bandwidth(nt))
            row[f"dram{nt}"] = nbytes / cold / 1e9
            row[f"warm{nt}"] = nbytes / warm / 1e9
            row[f"bw{nt}"] = local
            row[f"ratio{nt}"] = row[f"dram{nt}"] / local

        def cells(row):
            return " | ".join(f"{row[f'dram{nt}']:7.2f} {row[f'ratio{nt}']:6.2f}x {row[f'warm{nt}']:7.2f} "
                              f"{row[f'bw{nt}']:7.2f}" for nt in THREADS)
        for t in types:
            lw = LlmkitWeights(w, t)
            y1 = lw.matmul(x, 1)
            y2 = lw.matmul(x, 2)
            if not np.array_equal(y1.view(np.uint32), y2.view(np.uint32)):
                failures.append(f"GEMV {t} {n}x{k}: 1- and 2-thread outputs differ")
            worst = check_bound(y1, lw.wd, x, act_block(t))
            if not worst <= 1.0:
                failures.append(f"GEMV {t} {n}x{k}: error {worst:.3f} of the bound")
            g0 = None
            if ggml is not None and t in ggml_peer.TYPE_IDS:
                g0, g_worst, g_diff = ggml_checked(ggml, lw, x, failures, f"GEMV {n}x{k}")
            lw.wd = None
            n_copies = max(1, int(np.ceil(args.cold_bytes / lw.nbytes)))
            copies = [lw] + [lw.copy() for _ in range(n_copies - 1)]
            row = {"shape": [n, k], "impl": f"llmkit {t}", "mb": lw.nbytes / 1e6, "bound_use": worst}
            for nt in THREADS:
                timed_cell(row, nt, lw.nbytes, [lambda c=c, nt=nt: c.matmul(x, nt) for c in copies],
                           lambda nt=nt: lw.matmul(x, nt))
            del copies
            gemv_rows.append(row)
            print(f"{row['impl']:<22} {row['mb']:7.1f} | " + cells(row) + f"   (error <= {worst:.2f} of bound)",
                  flush=True)
            if g0 is not None:  # ggml on the same bytes, timed the same way, right after llmkit
                g_copies = [g0] + [ggml_peer.Matmul(ggml, t, lw.qt.data, n, k, 1) for _ in range(n_copies - 1)]
                for c in g_copies[1:]:
                    c.set_x(x)
                g_row = {"shape": [n, k], "impl": f"ggml {t}", "mb": lw.nbytes / 1e6, "bound_use": g_worst,
                         "diff_vs_llmkit": g_diff}
                for nt in THREADS:
                    timed_cell(g_row, nt, lw.nbytes, [lambda c=c, nt=nt: c.compute(nt) for c in g_copies],
                               lambda nt=nt: g0.compute(nt))
                    for cell in ("dram", "warm"):
                        g_row[f"llmkit_vs_ggml_{cell}{nt}"] = row[f"{cell}{nt}"] / g_row[f"{cell}{nt}"]
                for c in g_copies:
                    c.close()
                del g_copies
                gemv_rows.append(g_row)
                print(f"{g_row['impl']:<22} {g_row['mb']:7.1f} | " + cells(g_row) +
                      f"   (error <= {g_worst:.2f} of bound; max|y - llmkit| = {g_diff:.1e} max|y|)", flush=True)
                print(f"{'  llmkit / ggml':<22} {'':>7} | " +
                      " | ".join(f"{g_row[f'llmkit_vs_ggml_dram{nt}']:6.2f}x {'':>7} "
                                 f"{g_row[f'llmkit_vs_ggml_warm{nt}']:6.2f}x {'':>7}" for nt in THREADS), flush=True)

        # Peers on the same shape.
        peers = []
        if torch is not None:
            wt = torch.from_numpy(w)
            xt = torch.from_numpy(x)
            n_copies = max(1, int(np.ceil(args.cold_bytes / w.nbytes)))
            wts = [wt] + [wt.clone() for _ in range(n_copies - 1)]
            peers.append(("torch fp32 mv", w.nbytes, [lambda a=a: torch.mv(a, xt) for a in wts],
                          lambda: torch.mv(wt, xt)))
            q, s = int8_rows(w)
            wq = torch.quantize_per_channel(torch.from_numpy(q.astype(np.float32) * s[:, None]),
                                            torch.from_numpy(s.astype(np.float64)), torch.zeros(n, dtype=torch.int64),
                                            0, torch.qint8)
            packed = torch.ops.quantized.linear_prepack(wq, None)
            x2 = xt[None, :]
            yq = torch.ops.quantized.linear_dynamic(x2, packed)[0].numpy()
            ref = (s[:, None].astype(np.float64) * q) @ x.astype(np.float64)
            print(f"  (torch int8 dynamic: max |y - ref| / max |ref| = {np.abs(yq - ref).max() / np.abs(ref).max():.2e})")
            ib = q.nbytes + s.nbytes
            n_copies = max(1, int(np.ceil(args.cold_bytes / ib)))
            packs = [packed] + [torch.ops.quantized.linear_prepack(wq.clone(), None) for _ in range(n_copies - 1)]
            peers.append(("torch int8 dynamic", ib, [lambda p=p: torch.ops.quantized.linear_dynamic(x2, p)
                                                    for p in packs],
                          lambda: torch.ops.quantized.linear_dynamic(x2, packed)))
        n_copies = max(1, int(np.ceil(args.cold_bytes / w.nbytes)))
        ws = [w] + [w.copy() for _ in range(n_copies - 1)]
        peers.append(("numpy fp32 W@x", w.nbytes, [lambda a=a: a @ x for a in ws], lambda: w @ x))
        for name, nbytes, cold_fns, warm_fn in peers:
            row = {"shape": [n, k], "impl": name, "mb": nbytes / 1e6}
            for nt in THREADS:
                os.environ["OMP_NUM_THREADS"] = str(nt)  # numpy's BLAS reads it only at start; noted in README
                timed_cell(row, nt, nbytes, cold_fns, warm_fn)
            gemv_rows.append(row)
            print(f"{name:<22} {row['mb']:7.1f} | " + cells(row), flush=True)
        del peers

    # GEMM
    n, k = SHAPES[0]
    w = (rng.standard_normal((n, k), dtype=np.float32) * np.float32(0.02)).astype(np.float32)
    gemm_rows = []
    print(f"\nGEMM {n}x{k} weights, GFLOP/s (2*M*N*K per call), warm", flush=True)
    print(f"{'impl':<30} {'M':>4} | " + " | ".join(f"{nt}t GFLOP/s  vs int8" for nt in THREADS), flush=True)
    for m in gemm_ms:
        x = rng.standard_normal((m, k), dtype=np.float32)
        flop = 2.0 * m * n * k
        impls = []
        if torch is not None:  # first, so every later row can print its ratio to it
            wt, xt = torch.from_numpy(w), torch.from_numpy(x)
            q, s = int8_rows(w)
            wq = torch.quantize_per_channel(torch.from_numpy(q.astype(np.float32) * s[:, None]),
                                            torch.from_numpy(s.astype(np.float64)), torch.zeros(n, dtype=torch.int64),
                                            0, torch.qint8)
            packed = torch.ops.quantized.linear_prepack(wq, None)
            impls.append(("torch int8 dynamic", lambda nt: torch.ops.quantized.linear_dynamic(xt, packed)))
        for t in types:
            lw = LlmkitWeights(w, t)
            y1, y2 = lw.matmul(x, 1), lw.matmul(x, 2)
            if not np.array_equal(y1.view(np.uint32), y2.view(np.uint32)):
                failures.append(f"GEMM {t} M={m}: 1- and 2-thread outputs differ")
            worst = check_bound(y1, lw.wd, x, act_block(t))
            if not worst <= 1.0:
                failures.append(f"GEMM {t} M={m}: error {worst:.3f} of the bound")
            impls.append((f"llmkit {t}", lambda nt, lw=lw: lw.matmul(x, nt)))
            if t == "int8":  # x rounded to 7 bits per row: one exact integer matmul (oneDNN's when built with it)
                def rows(nt, lw=lw):
                    return llmkit.quant_matmul_int8(x, lw.q, lw.s, num_threads=nt, x_rounding="rows")
                r1, r2 = rows(1), rows(2)
                if not np.array_equal(r1.view(np.uint32), r2.view(np.uint32)):
                    failures.append(f"GEMM int8 x_rounding=rows M={m}: 1- and 2-thread outputs differ")
                ref = x.astype(np.float64) @ lw.wd.astype(np.float64).T
                bound = np.abs(lw.wd).astype(np.float64).sum(axis=1)[None, :] * \
                    (np.abs(x).max(axis=1, keepdims=True) / 63.0) / 2 * (1 + 1e-6) + 1e-6 * np.abs(ref)
                r_worst = float((np.abs(r1 - ref) / bound).max())
                if not r_worst <= 1.0:
                    failures.append(f"GEMM int8 x_rounding=rows M={m}: error {r_worst:.3f} of the row bound")
                print(f"  (llmkit int8 x_rounding=rows M={m}: error <= {r_worst:.2f} of its bound; max|y - ref| / "
                      f"max|ref| = {np.abs(r1 - ref).max() / np.abs(ref).max():.2e}, blocks: "
                      f"{np.abs(y1 - ref).max() / np.abs(ref).max():.2e})", flush=True)
                impls.append(("llmkit int8, x_rounding=rows", rows))
            if ggml is not None and t in ggml_peer.TYPE_IDS:
                g, g_worst, g_diff = ggml_checked(ggml, lw, x, failures, f"GEMM M={m}")
                print(f"  (ggml {t} M={m}: error <= {g_worst:.2f} of bound; max|y - llmkit| = {g_diff:.1e} max|y|)",
                      flush=True)
                impls.append((f"ggml {t}", lambda nt, g=g: g.compute(nt)))
            if t in ("q4_0", "q4_K", "q8_0") and torch is not None:
                xt = torch.from_numpy(x)

                def deq_mm(nt, lw=lw, xt=xt):
                    wdq = torch.from_numpy(llmkit.dequantize(lw.qt, num_threads=nt))
                    return xt @ wdq.T
                impls.append((f"  dequantize {t} + torch mm", deq_mm))
        if torch is not None:
            impls.append(("torch fp32 mm", lambda nt: xt @ wt.T))
        impls.append(("numpy fp32", lambda nt: x @ w.T))
        int8_gflops = {}
        llmkit_gflops = {}  # "llmkit q4_0" -> {nt: GFLOP/s}, for the ggml rows' ratio
        for name, fn in impls:
            row = {"impl": name.strip(), "m": m}
            for nt in THREADS:
                if torch is not None:
                    torch.set_num_threads(nt)
                # Calls of a few ms repeat for 0.25 s: a 2-thread cell of three
                # 2.5 ms calls came out at 1-thread speed in some runs (the other
                # core busy for those 10 ms), which a longer window rides out.
                row[f"gflops{nt}"] = flop / best_time(lambda: fn(nt), args.reps, min_seconds=0.25) / 1e9
                if name == "torch int8 dynamic":
                    int8_gflops[nt] = row[f"gflops{nt}"]
                row[f"vs_int8_{nt}"] = row[f"gflops{nt}"] / int8_gflops[nt] if nt in int8_gflops else float("nan")
            if name.startswith("llmkit "):
                llmkit_gflops[name] = {nt: row[f"gflops{nt}"] for nt in THREADS}
            vs_ggml = ""
            if name.startswith("ggml "):
                lk = llmkit_gflops["llmkit " + name[5:]]
                for nt in THREADS:
                    row[f"llmkit_vs_ggml_{nt}"] = lk[nt] / row[f"gflops{nt}"]
                vs_ggml = "   llmkit / ggml: " + ", ".join(f"{row[f'llmkit_vs_ggml_{nt}']:.2f}x {nt}t"
                                                         for nt in THREADS)
            gemm_rows.append(row)
            print(f"{name:<30} {m:4d} | " + " | ".join(f"{row[f'gflops{nt}']:11.1f} {row[f'vs_int8_{nt}']:7.2f}x"
                                                     for nt in THREADS) + vs_ggml, flush=True)

    print(f"\ntotal {time.perf_counter() - t_start:.0f} s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bandwidth": {str(k): v[0] for k, v in bw.items()}, "gemv": gemv_rows, "gemm": gemm_rows,
                       "failures": failures, "isa": llmkit.quant_matmul_isa()}, f, indent=1)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), flush=True)
        return 1
    print("all agreement checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
