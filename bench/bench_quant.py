#!/usr/bin/env python3
"""Quantize / dequantize throughput: llmkit vs ggml's own C quantizer and the `gguf` package's numpy code.

Usage (see bench/README.md, "Quantization"):

    pip install gguf            # and, for the ggml peer, llama-cpp-python (an sdist that compiles ggml)
    PYTHONPATH=build-qbench/python python3 bench/bench_quant.py [--rows 4096] [--cols 4096]
        [--gguf-rows 1024] [--reps 3] [--ref-dir /work/shared/data/quant-ref/ggml] [--json out.json]

Before any timing is reported, agreement is checked in the same run:

* on the benchmark matrix, llmkit's bytes are compared block by block with gguf's
  `gguf.quants.quantize` bytes (for the types gguf can quantize), and llmkit's dequantized
  array is compared bit for bit with `gguf.quants.dequantize` of the same bytes (all types);
* on ggml's reference vectors (`<ref-dir>/input.f32`, 136 rows x 256, and `<t>.bin`,
  `<t>.dequant.f32` written by ggml's own C code), llmkit's and gguf's bytes and dequantized
  floats are compared with ggml's.

Throughput: quantize MB/s counts float32 input bytes (1e6 bytes per MB); dequantize GB/s counts
float32 output bytes (1e9). Each cell is the best of --reps runs after one warm-up. llmkit runs on
the whole matrix with num_threads=1 and 2. gguf's numpy code is timed on the first --gguf-rows
rows and normalised per byte (numpy is row-parallel-free and linear in the rows), because its
quantizers are slow on a 64 MB matrix; the agreement check still uses the whole matrix.

ggml's C quantizer, `ggml_quantize_chunk(type, src, dst, start, nrows, n_per_row, imatrix=NULL)` in
the libggml-base.so that llama-cpp-python installs (called through ctypes, see ggml_peer.py), is
timed on the whole matrix too: one call for 1 thread; for 2 threads, two Python threads each
quantizing half the rows (ctypes releases the GIL; this is how llama.cpp's quantize tool splits a
tensor over threads). Its bytes must equal llmkit's, block for block, for every type (llmkit is
byte-exact with ggml), or the run fails; the ratio llmkit / ggml is printed per thread count.
Without llama_cpp the run prints "skipped: llama_cpp not importable" and leaves those columns out.
"""

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
import os
import platform
import sys
import time

import numpy as np

import ggml_peer
import llmkit
from benchlib import best_time

TYPES = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_K", "q5_K", "q6_K", "q2_K", "q3_K", "iq4_nl", "iq4_xs", "tq1_0", "tq2_0", "mxfp4"]
REF_ROWS, REF_N = 136, 256

try:
    import gguf
    from gguf import GGMLQuantizationType as GT
    from gguf import quants as gq
except ImportError:  # pragma: no cover - the peer is optional
    gguf = None


def gguf_type(t):
    return getattr(GT, t.upper())


def gguf_can_quantize(t):
    try:
        gq.quantize(np.zeros((1, 256), np.float32), gguf_type(t))
        return True
    except NotImplementedError:
        return False


def bits_equal(a, b):
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def block_diff(a, b, type_size):
    """Number of differing blocks between two byte buffers (None if sizes differ)."""
    a = np.asarray(a, np.uint8).reshape(-1)
    b = np.asarray(b, np.uint8).reshape(-1)
    if a.size != b.size:
        return None
    return int(np.any(a.reshape(-1, type_size) != b.reshape(-1, type_size), axis=1).sum())


def ggml_quantize_threads(ggml, t, w, pool, n_threads):
    """ggml_quantize_chunk over w's rows split into n_threads consecutive parts, one pool thread each."""
    rows = w.shape[0]
    dst = np.empty(rows * ggml.row_size(ggml_peer.TYPE_IDS[t], w.shape[1]), np.uint8)
    if n_threads == 1:
        return ggml.quantize(t, w, dst=dst)
    cuts = [rows * i // n_threads for i in range(n_threads + 1)]
    parts = [pool.submit(ggml.quantize, t, w, cuts[i], cuts[i + 1] - cuts[i], dst) for i in range(n_threads)]
    for f in parts:
        f.result()
    return dst


def edge_matrix(rows=96, cols=512, seed=5):
    """Rows built to reach the quantizers' corner cases: ties for the largest magnitude, signed zeros (all-zero
    blocks of either sign), subnormal blocks (1 / d overflows), blocks near the float maximum, exact .5 products."""
    rng = np.random.default_rng(seed)
    vals = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1e-38, -1e-38, 3e38, -3e38, 1e-45, -1e-45, 2.0, -2.0, 7.0,
                     -7.0, 0.1, 1e-20], np.float32)
    w = np.empty((rows, cols), np.float32)
    for r in range(rows):
        mode = r % 6
        if mode == 0:
            w[r] = rng.choice(vals, cols)
        elif mode == 1:
            w[r] = rng.choice(vals[:4], cols)
        elif mode == 2:
            w[r] = np.where(rng.integers(0, 3, cols) == 0, np.float32(-0.0), np.float32(0.0))
        elif mode == 3:
            w[r] = rng.standard_normal(cols).astype(np.float32) * np.float32(1e-40)
        elif mode == 4:
            w[r] = rng.standard_normal(cols).astype(np.float32) * np.float32(3e37)
        else:
            w[r] = rng.integers(-2, 3, cols).astype(np.float32)
    return w


# The types whose quantizers have SIMD forms (the 32-element blocks, Q6_K's group fit). Only these: ggml's other
# K-quant references may abort the process (GGML_ASSERT in nearest_int) on inputs this far out.
EDGE_TYPES = ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q6_K")


def edge_check(ggml, types, failures):
    """llmkit's bytes against ggml_quantize_chunk's on edge_matrix(), with and without an imatrix."""
    w = edge_matrix()
    imatrix = np.random.default_rng(6).gamma(0.3, 1.0, w.shape[1]).astype(np.float32)
    checked, before = [], len(failures)
    for t in (t for t in types if t in EDGE_TYPES):
        _, tsz = llmkit.quant_block_size(t)
        for imx in (None, imatrix):  # Q8_0 ignores the imatrix, in both
            nbad = block_diff(ggml.quantize(t, w, imatrix=imx), llmkit.quantize(w, t, imatrix=imx).data, tsz)
            what = t + (" with an imatrix" if imx is not None else "")
            if nbad != 0:  # None: the sizes differ
                failures.append(f"edge rows, {what}: {nbad} blocks differ from ggml_quantize_chunk")
            checked.append(what)
    print(f"edge rows ({w.shape[0]}x{w.shape[1]}: ties, signed zeros, subnormal and 3e38 blocks): bytes against "
          f"ggml_quantize_chunk, {len(checked)} type/imatrix pairs, "
          + ("all identical" if len(failures) == before else f"{len(failures) - before} differ"), flush=True)


def reference_check(ref_dir, types):
    """llmkit (and gguf) against ggml's own reference output on input.f32."""
    out = {}
    x = np.fromfile(os.path.join(ref_dir, "input.f32"), dtype="<f4").reshape(REF_ROWS, REF_N)
    for t in types:
        _, tsz = llmkit.quant_block_size(t)
        if not os.path.isfile(os.path.join(ref_dir, f"{t}.bin")):
            continue  # no vector in the data (TQ1_0, TQ2_0, MXFP4): checked against ggml and gguf below
        ref_b = np.fromfile(os.path.join(ref_dir, f"{t}.bin"), dtype=np.uint8)
        ref_f = np.fromfile(os.path.join(ref_dir, f"{t}.dequant.f32"), dtype="<f4").reshape(REF_ROWS, REF_N)
        qt = llmkit.quantize(x, t)
        r = {
            "llmkit_bytes_bad_blocks": block_diff(qt.data, ref_b, tsz),
            "llmkit_dequant_bit_equal": bits_equal(llmkit.dequantize(qt), ref_f),
        }
        if gguf is not None:
            try:
                gb = gq.quantize(x, gguf_type(t))
                r["gguf_bytes_bad_blocks"] = block_diff(gb, ref_b, tsz)
            except NotImplementedError:
                r["gguf_bytes_bad_blocks"] = "n/a"
            r["gguf_dequant_bit_equal"] = bits_equal(gq.dequantize(ref_b.reshape(REF_ROWS, -1), gguf_type(t)), ref_f)
        out[t] = r
    return out


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--gguf-rows", type=int, default=1024, help="rows of the matrix gguf's numpy code is timed on")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--ref-dir", default=os.path.join(os.environ.get("LLMKIT_DATA_DIR", "/work/shared/data"),
                                                       "quant-ref", "ggml"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--formats", action="store_true",
                    help="benchmark the non-GGUF formats (int8, nf4, fp8, gptq int4) instead, see bench_formats()")
    ap.add_argument("--calibrated", action="store_true",
                    help="time GPTQ and AWQ on one --rows x --cols layer instead, see bench_calibrated()")
    ap.add_argument("--calib-tokens", type=int, default=4096, help="calibration tokens for --calibrated")
    ap.add_argument("--no-torch-gptq", action="store_true", help="--calibrated: skip the torch GPTQ peer")
    ap.add_argument("--gguf-file", action="store_true",
                    help="time opening a generated GGUF file against gguf.GGUFReader instead, see bench_gguf_file()")
    ap.add_argument("--gguf-file-mb", type=int, default=200, help="--gguf-file: MB of tensor data")
    ap.add_argument("--gguf-file-tensors", type=int, default=300, help="--gguf-file: number of tensors")
    args = ap.parse_args()
    if args.formats:
        return bench_formats(args)
    if args.calibrated:
        return bench_calibrated(args)
    if args.gguf_file:
        return bench_gguf_file(args)
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    t_start = time.perf_counter()

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((args.rows, args.cols), dtype=np.float32) * np.float32(0.02)).astype(np.float32)
    gr = min(args.gguf_rows, args.rows)
    w_g = np.ascontiguousarray(w[:gr])
    in_mb = w.nbytes / 1e6
    out_gb = w.nbytes / 1e9
    in_mb_g = w_g.nbytes / 1e6
    out_gb_g = w_g.nbytes / 1e9

    print(f"llmkit {llmkit.version()}  gguf {getattr(gguf, '__version__', None) or (gguf and _pkg_version('gguf'))}  "
          f"numpy {np.__version__}  python {platform.python_version()}  cpus {os.cpu_count()}  "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"matrix {args.rows}x{args.cols} float32 N(0,0.02^2) ({in_mb:.1f} MB); gguf timed on {gr} rows; "
          f"best of {args.reps}", flush=True)

    ggml, ggml_why = ggml_peer.load()
    print("ggml C via llama-cpp-python: " + (f"llama-cpp-python {ggml.version}, {ggml.lib_dir}" if ggml else
                                               "skipped: " + ggml_why), flush=True)
    pool = ThreadPoolExecutor(2) if ggml else None

    # --- agreement against ggml's reference vectors -------------------------------------------
    ref = None
    if os.path.isfile(os.path.join(args.ref_dir, "input.f32")):
        ref = reference_check(args.ref_dir, types)
    else:
        print(f"reference vectors not found in {args.ref_dir}; skipping that check", flush=True)

    rows = []
    failures = []
    if ggml is not None:
        edge_check(ggml, types, failures)
    for t in types:
        _, tsz = llmkit.quant_block_size(t)
        r = {"type": t}
        # llmkit
        qt = llmkit.quantize(w, t, num_threads=1)
        qt2 = llmkit.quantize(w, t, num_threads=2)
        if not np.array_equal(np.asarray(qt.data), np.asarray(qt2.data)):
            failures.append(f"{t}: llmkit 1-thread and 2-thread bytes differ")
        r["lk_q1"] = in_mb / best_time(lambda: llmkit.quantize(w, t, num_threads=1), args.reps)
        r["lk_q2"] = in_mb / best_time(lambda: llmkit.quantize(w, t, num_threads=2), args.reps)
        y = llmkit.dequantize(qt, num_threads=1)
        r["lk_d1"] = out_gb / best_time(lambda: llmkit.dequantize(qt, num_threads=1), args.reps)
        r["lk_d2"] = out_gb / best_time(lambda: llmkit.dequantize(qt, num_threads=2), args.reps)

        # ggml's C quantizer, the same matrix: bytes first, then time at 1 and 2 threads
        r["ggml_q1"] = r["ggml_q2"] = None
        if ggml is not None:
            nbad = block_diff(ggml_quantize_threads(ggml, t, w, pool, 1), qt.data, tsz)
            nbad2 = block_diff(ggml_quantize_threads(ggml, t, w, pool, 2), qt.data, tsz)
            r["agree_ggml"] = "identical" if nbad == 0 and nbad2 == 0 else f"differs ({nbad}, {nbad2} blocks)"
            if r["agree_ggml"] != "identical":
                failures.append(f"{t}: bytes differ from ggml_quantize_chunk ({r['agree_ggml']})")
            for nt in (1, 2):
                r[f"ggml_q{nt}"] = in_mb / best_time(lambda: ggml_quantize_threads(ggml, t, w, pool, nt), args.reps)

        # gguf numpy
        r["gg_q"] = r["gg_d"] = None
        r["agree_bytes"] = "n/a (no gguf)"
        r["agree_deq"] = None
        if gguf is not None:
            gt = gguf_type(t)
            if gguf_can_quantize(t):
                gb = gq.quantize(w, gt)
                nbad = block_diff(gb, qt.data, tsz)
                r["bad_blocks"] = nbad
                r["agree_bytes"] = ("identical" if nbad == 0 else
                                    "size differs" if nbad is None else f"differs ({nbad} of {qt.data.size // tsz} blocks)")
                if nbad != 0:
                    failures.append(f"{t}: bytes differ from gguf ({r['agree_bytes']})")
                r["gg_q"] = in_mb_g / best_time(lambda: gq.quantize(w_g, gt), args.reps)
            else:
                r["agree_bytes"] = "n/a (gguf has no quantizer)"
            qbytes = np.asarray(qt.data).reshape(args.rows, -1)
            yg = gq.dequantize(qbytes, gt)
            r["agree_deq"] = bits_equal(yg, y)
            if not r["agree_deq"]:
                failures.append(f"{t}: dequantized arrays differ from gguf")
            qb_g = np.ascontiguousarray(qbytes[:gr])
            r["gg_d"] = out_gb_g / best_time(lambda: gq.dequantize(qb_g, gt), args.reps)
        if ref is not None and t in ref:
            rr = ref[t]
            r["ref"] = rr
            ok = rr["llmkit_bytes_bad_blocks"] == 0 and rr["llmkit_dequant_bit_equal"]
            r["agree_ref"] = "identical" if ok else (
                f"differs ({rr['llmkit_bytes_bad_blocks']} blocks, dequant equal={rr['llmkit_dequant_bit_equal']})")
            if not ok:
                failures.append(f"{t}: llmkit differs from ggml reference ({r['agree_ref']})")
        rows.append(r)
        print(f"  {t}: done ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr, flush=True)

    # --- table ----------------------------------------------------------------------------------
    if ggml is not None:
        print()
        print("Quantize, llmkit vs ggml_quantize_chunk (MB/s of float32 input; ratio = llmkit / ggml):")
        print("| type | llmkit 1t | ggml 1t | ratio 1t | llmkit 2t | ggml 2t | ratio 2t | bytes llmkit = ggml |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for r in rows:
            print(f"| {r['type']} | {r['lk_q1']:.0f} | {r['ggml_q1']:.0f} | {r['lk_q1'] / r['ggml_q1']:.2f}x | "
                  f"{r['lk_q2']:.0f} | {r['ggml_q2']:.0f} | {r['lk_q2'] / r['ggml_q2']:.2f}x | {r['agree_ggml']} |")
    print()
    print("| type | llmkit quant 1t MB/s | llmkit quant 2t MB/s | gguf quant MB/s | ratio 1t | "
          "llmkit dequant 1t GB/s | llmkit dequant 2t GB/s | gguf dequant GB/s | ratio 1t | "
          "bytes llmkit = gguf | dequant bit-equal | llmkit = ggml ref |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
    for r in rows:
        rq = f"{r['lk_q1'] / r['gg_q']:.1f}x" if r["gg_q"] else "-"
        rd = f"{r['lk_d1'] / r['gg_d']:.1f}x" if r["gg_d"] else "-"
        deq = "-" if r["agree_deq"] is None else ("identical" if r["agree_deq"] else "DIFFERS")
        print(f"| {r['type']} | {r['lk_q1']:.0f} | {r['lk_q2']:.0f} | {fmt(r['gg_q'], '.1f')} | {rq} | "
              f"{r['lk_d1']:.2f} | {r['lk_d2']:.2f} | {fmt(r['gg_d'], '.3f')} | {rd} | "
              f"{r['agree_bytes']} | {deq} | {r.get('agree_ref', '-')} |")
    if ref is not None and gguf is not None:
        print()
        print("gguf against ggml's reference vectors (136x256): "
              + ", ".join(f"{t} bytes {'=' if v['gguf_bytes_bad_blocks'] == 0 else v['gguf_bytes_bad_blocks']}"
                          f"/deq {'=' if v['gguf_dequant_bit_equal'] else '!='}" for t, v in ref.items()))
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "failures": failures, "ggml_c": ggml_why}, f, indent=1)
    if failures:
        print("AGREEMENT FAILURES:\n  " + "\n  ".join(failures))
        return 1
    print("agreement: all checks passed")
    return 0


# --- Non-GGUF formats (int8, NF4/FP4, FP8, GPTQ/AWQ int4) ----------------------------------------
# Peers: torch's float8 casts for FP8 (the bytes must be identical), numpy implementations of
# the other formats written here from their definitions (the bytes must be identical too).

def _np_int8(w, group, asym):
    rows, n = w.shape
    g = n if group == 0 else group
    x = w.reshape(rows, n // g, g)
    if not asym:
        s = (np.abs(x).max(axis=2) / np.float32(127)).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(s[..., None] > 0, np.clip(np.rint(x / s[..., None]), -127, 127), 0).astype(np.int8)
        return q.reshape(rows, n), s
    lo = np.minimum(x.min(axis=2), 0).astype(np.float64)
    hi = np.maximum(x.max(axis=2), 0).astype(np.float64)
    s = ((hi - lo) / 255).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > 0, np.clip(np.rint(np.float32(-128) - lo.astype(np.float32) / s), -128, 127), 0)
        q = np.where(s[..., None] > 0, np.clip(np.rint(x / s[..., None]) + z[..., None], -128, 127), 0)
    return q.astype(np.int8).reshape(rows, n), s


_NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                 -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                 0.24611230850219727, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                 0.7229568362236023, 1.0], dtype=np.float32)


def _np_nf4(w):
    b = w.reshape(-1, 64)
    absmax = np.abs(b).max(axis=1)
    y = b * (np.float32(1) / absmax)[:, None]
    mids = ((_NF4[:-1].astype(np.float64) + _NF4[1:]) / 2).astype(np.float32)
    idx = np.searchsorted(mids, y, side="left").astype(np.uint8).reshape(-1)  # count of mids < y
    return ((idx[0::2] << 4) | idx[1::2]).astype(np.uint8), absmax


def _np_gptq_g128(w):
    rows, n = w.shape
    x = w.reshape(rows, n // 128, 128)
    m = np.maximum(-np.minimum(x.min(axis=2), 0), np.maximum(x.max(axis=2), 0))
    m = np.where(m == 0, 1, m)
    s = (2 * m.astype(np.float64) / 15).astype(np.float32).astype(np.float16).astype(np.float32)
    q = np.clip(np.rint(x / s[..., None]) + 8, 0, 15).astype(np.uint32).reshape(rows, n)
    qw = np.zeros((n // 8, rows), np.uint32)
    for j in range(8):
        qw |= q[:, j::8].T << np.uint32(4 * j)
    return qw, s


def bench_formats(args):
    """Quantize / dequantize MB/s of llmkit's non-GGUF formats next to torch's FP8 casts and numpy
    references (same bytes checked first)."""
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((args.rows, args.cols), dtype=np.float32) * np.float32(0.02)).astype(np.float32)
    mb = w.nbytes / 1e6
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - the peer is optional
        torch = None
    print(f"non-GGUF formats: matrix {args.rows}x{args.cols} float32 ({mb:.1f} MB), best of {args.reps}; "
          f"torch {getattr(torch, '__version__', 'absent')} (1 thread), numpy {np.__version__}", flush=True)
    failures, rows = [], []

    def row(name, peer_name, lk_q, lk_q2, peer_q, lk_d, peer_d, agree):
        rows.append((name, peer_name, lk_q, lk_q2, peer_q, lk_d, peer_d, agree))

    def lk(tname):
        qt = llmkit.quantize(w, tname, num_threads=1)
        tq = best_time(lambda: llmkit.quantize(w, tname, num_threads=1), args.reps)
        tq2 = best_time(lambda: llmkit.quantize(w, tname, num_threads=2), args.reps)
        td = best_time(lambda: llmkit.dequantize(qt, num_threads=1), args.reps)
        return qt, mb / tq, mb / tq2, mb / td

    # The GGUF float types: f16 against numpy's cast, bf16 against torch's (both round to nearest even).
    qt, q1, q2, d1 = lk("f16")
    same = np.array_equal(qt.data.view(np.float16).reshape(w.shape), w.astype(np.float16))
    if not same:
        failures.append("f16: bytes differ from numpy's astype(float16)")
    h = w.astype(np.float16)
    row("f16", "numpy", q1, q2, mb / best_time(lambda: w.astype(np.float16), args.reps), d1,
        mb / best_time(lambda: h.astype(np.float32), args.reps), "identical" if same else "DIFFERS")
    qt, q1, q2, d1 = lk("bf16")
    pq = pd = None
    agree = "n/a (no torch)"
    if torch is not None:
        tw = torch.from_numpy(w)
        tb = tw.to(torch.bfloat16)
        same = np.array_equal(tb.view(torch.int16).numpy().view(np.uint8).reshape(-1), qt.data)
        agree = "identical" if same else "DIFFERS"
        if not same:
            failures.append("bf16: bytes differ from torch's .to(bfloat16)")
        pq = mb / best_time(lambda: tw.to(torch.bfloat16), args.reps)
        pd = mb / best_time(lambda: tb.float(), args.reps)
    row("bf16", "torch", q1, q2, pq, d1, pd, agree)

    for kind in ("e4m3", "e5m2"):
        for suffix in ("", "_channel"):
            tname = f"fp8_{kind}{suffix}"
            qt, q1, q2, d1 = lk(tname)
            pq = pd = None
            agree = "n/a (no torch)"
            if torch is not None:
                tdt = torch.float8_e4m3fn if kind == "e4m3" else torch.float8_e5m2
                top = 448.0 if kind == "e4m3" else 57344.0
                tw = torch.from_numpy(w)

                def tq():
                    amax = tw.abs().amax(dim=1, keepdim=True) if suffix else tw.abs().amax()
                    s = amax / top
                    return (tw / s).to(tdt), s
                q, s = tq()
                same = np.array_equal(q.view(torch.uint8).numpy(), qt.planes()["weight"])
                same = same and np.array_equal(s.reshape(-1).numpy(), qt.planes()["scales"])
                agree = "identical" if same else "DIFFERS"
                if not same:
                    failures.append(f"{tname}: bytes differ from torch")
                pq = mb / best_time(tq, args.reps)
                pd = mb / best_time(lambda: q.float() * s, args.reps)
            row(tname, "torch", q1, q2, pq, d1, pd, agree)

    for tname, group, asym in (("int8", 0, False), ("int8_g128", 128, False), ("int8_asym_g128", 128, True)):
        qt, q1, q2, d1 = lk(tname)
        q, s = _np_int8(w, group, asym)
        same = np.array_equal(q, qt.planes()["weight"]) and np.array_equal(s, qt.planes()["scales"])
        if not same:
            failures.append(f"{tname}: bytes differ from the numpy reference")
        pq = mb / best_time(lambda: _np_int8(w, group, asym), args.reps)
        sr = np.repeat(s, group or args.cols, axis=1)
        pd = mb / best_time(lambda: q.astype(np.float32) * sr, args.reps) if not asym else None
        row(tname, "numpy", q1, q2, pq, d1, pd, "identical" if same else "DIFFERS")

    qt, q1, q2, d1 = lk("nf4")
    packed, absmax = _np_nf4(w)
    same = np.array_equal(packed, qt.planes()["weight"]) and np.array_equal(absmax, qt.planes()["absmax"])
    if not same:
        failures.append("nf4: bytes differ from the numpy reference")
    pq = mb / best_time(lambda: _np_nf4(w), args.reps)

    def np_nf4_deq():
        idx = np.stack([packed >> 4, packed & 15], axis=1).reshape(-1, 64)
        return _NF4[idx] * absmax[:, None]
    pd = mb / best_time(np_nf4_deq, args.reps)
    row("nf4", "numpy", q1, q2, pq, d1, pd, "identical" if same else "DIFFERS")

    qt, q1, q2, d1 = lk("gptq_int4_g128")
    qw, s = _np_gptq_g128(w)
    same = np.array_equal(qw.view(np.int32), qt.planes()["qweight"])
    if not same:
        failures.append("gptq_int4_g128: qweight differs from the numpy reference")
    pq = mb / best_time(lambda: _np_gptq_g128(w), args.reps)
    row("gptq_int4_g128", "numpy", q1, q2, pq, d1, None, "identical" if same else "DIFFERS")

    print()
    print("| format | peer | llmkit quant 1t MB/s | llmkit quant 2t MB/s | peer quant MB/s | ratio 1t | "
          "llmkit dequant 1t MB/s | peer dequant MB/s | ratio | bytes llmkit = peer |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, peer, q1, q2, pq, d1, pd, agree in rows:
        rq = f"{q1 / pq:.1f}x" if pq else "-"
        rd = f"{d1 / pd:.1f}x" if pd else "-"
        print(f"| {name} | {peer} | {q1:.0f} | {q2:.0f} | {fmt(pq, '.0f')} | {rq} | {d1:.0f} | {fmt(pd, '.0f')} | "
              f"{rd} | {agree} |")
    if failures:
        print("AGREEMENT FAILURES:\n  " + "\n  ".join(failures))
        return 1
    print("agreement: all checks passed")
    return 0


# --- GPTQ / AWQ on one layer ---------------------------------------------------------------------
# Peer for GPTQ: the paper's algorithm in torch (float32, lazy batches of 128, as the GPTQ
# reference code runs it on a CPU), written here; its output error is printed next to llmkit's.

def _torch_gptq(torch, w, x, group, damp=0.01, block=128):
    W = torch.from_numpy(w).clone()
    X = torch.from_numpy(x)
    n = W.shape[1]
    H = 2.0 / X.shape[0] * (X.T @ X)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * torch.mean(torch.diag(H)) * torch.eye(n)
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(W)
    for i1 in range(0, n, block):
        i2 = min(i1 + block, n)
        W1 = W[:, i1:i2].clone()
        E1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            if (i1 + i) % group == 0:
                g = W1[:, i:i + group]
                m = torch.maximum(-g.min(dim=1).values.clamp(max=0), g.max(dim=1).values.clamp(min=0))
                s = (2 * torch.where(m == 0, torch.ones_like(m), m) / 15).half().float()
            q = torch.clamp(torch.round(W1[:, i] / s) + 8, 0, 15)
            Q[:, i1 + i] = s * (q - 8)
            e = (W1[:, i] - Q[:, i1 + i]) / U[i1 + i, i1 + i]
            W1[:, i:] -= e.unsqueeze(1) @ U[i1 + i, i1 + i:i2].unsqueeze(0)
            E1[:, i] = e
        W[:, i2:] -= E1 @ U[i1:i2, i2:]
    return Q.numpy()


def bench_calibrated(args):
    """GPTQ and AWQ time for one layer, and their output error against round-to-nearest."""
    rng = np.random.default_rng(3)
    rows, n, tokens = args.rows, args.cols, args.calib_tokens
    u = rng.standard_normal((rows, 64)).astype(np.float32)
    v = rng.standard_normal((64, n)).astype(np.float32)
    w = (0.02 * rng.standard_normal((rows, n)) + 0.002 * (u @ v)).astype(np.float32)
    mix = (np.eye(n) + 0.3 * rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    x = rng.standard_normal((tokens, n)).astype(np.float32) @ mix
    x[:, rng.choice(n, max(1, n // 100), replace=False)] *= 20.0
    x = x.astype(np.float32)
    try:
        import torch
        torch.set_num_threads(2)
    except ImportError:  # pragma: no cover
        torch = None

    def out_err(w_hat):
        d = (w.astype(np.float64) - w_hat) @ x.T.astype(np.float64)
        return float(np.sum(d * d) / np.sum((w.astype(np.float64) @ x.T.astype(np.float64)) ** 2))

    print(f"calibrated int4: layer {rows}x{n}, {tokens} calibration tokens, group 128, 2 threads, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    t0 = time.perf_counter()
    qt, rep = llmkit.gptq(w, x, group_size=128, progress=False, num_threads=2)
    t_gptq = time.perf_counter() - t0
    e_gptq = out_err(llmkit.dequantize(qt).astype(np.float64))
    t0 = time.perf_counter()
    qa, sa, rep_a = llmkit.awq(w, x, group_size=128, progress=False, num_threads=2)
    t_awq = time.perf_counter() - t0
    e_awq = out_err(llmkit.dequantize(qa).astype(np.float64) / sa[None, :])
    e_rtn = out_err(llmkit.dequantize(llmkit.quantize(w, "gptq_int4_g128")).astype(np.float64))
    e_rtn_awq = out_err(llmkit.dequantize(llmkit.quantize(w, "awq_int4_g128")).astype(np.float64))
    failures = []
    if abs(e_gptq - rep["output_error"]) > 1e-6 * e_gptq or abs(e_awq - rep_a["output_error"]) > 1e-6 * e_awq:
        failures.append("reported output errors differ from the measured ones")
    rows_out = [("llmkit gptq (float64)", t_gptq, e_gptq, e_rtn), ("llmkit awq", t_awq, e_awq, e_rtn_awq)]
    if torch is not None and not args.no_torch_gptq:
        t0 = time.perf_counter()
        q_t = _torch_gptq(torch, w, x, 128)
        t_t = time.perf_counter() - t0
        rows_out.append(("torch gptq (float32, peer)", t_t, out_err(q_t.astype(np.float64)), e_rtn))
        if out_err(q_t.astype(np.float64)) > 1.05 * e_gptq + 1e-12:
            failures.append("llmkit's GPTQ error is more than 5 % above the torch peer's")
        # llmkit's call also reports its output error and round-to-nearest's in
        # float64; the peer computes none. The same report in torch (float64,
        # round-to-nearest from llmkit's quantizer, not timed) makes the work equal.
        rtn_w = torch.from_numpy(llmkit.dequantize(llmkit.quantize(w, "gptq_int4_g128")).astype(np.float64))
        t0 = time.perf_counter()
        X64, W64 = torch.from_numpy(x).double(), torch.from_numpy(w).double()
        energy = float(((W64 @ X64.T) ** 2).sum())
        rep_t = [float((((W64 - torch.from_numpy(q).double()) @ X64.T) ** 2).sum()) / energy
                 for q in (q_t, rtn_w.numpy())]
        t_report = time.perf_counter() - t0
        rows_out.append(("torch gptq + the same float64 error report", t_t + t_report, rep_t[0], rep_t[1]))
    print()
    print("| method | time s | output error | RTN output error (same grid) | error / RTN |")
    print("|---|---:|---:|---:|---:|")
    for name, t, e, r in rows_out:
        print(f"| {name} | {t:.1f} | {e:.3e} | {r:.3e} | {e / r:.3f} |")
    if torch is not None and not args.no_torch_gptq:
        print(f"\nllmkit gptq time / torch gptq time: {t_gptq / rows_out[-2][1]:.2f} "
              f"(with the peer computing the same report: {t_gptq / rows_out[-1][1]:.2f})")
    if failures:
        print("AGREEMENT FAILURES:\n  " + "\n  ".join(failures))
        return 1
    print("agreement: all checks passed")
    return 0


def _pkg_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001
        return "?"


def bench_gguf_file(args):
    """GGUF open/parse time: llmkit.gguf.read vs gguf.GGUFReader on a generated file.

    The file (--gguf-file-mb MB of tensor data in --gguf-file-tensors tensors: F32, F16, Q8_0
    and Q4_K, plus a 32000-token vocabulary in the metadata, as a Llama GGUF has) is written
    once by llmkit into a temporary folder. Agreement first: every key, value type and value,
    every tensor's name, type, shape and bytes must be the same through both readers. Then each
    reader opens the warm (page-cached) file --reps times and the best time is reported: the
    whole Python-level read (metadata as Python values, tensors as views of the mapping) and,
    for llmkit, the native parse alone (llmkit_gguf_open + validation).
    """
    import tempfile

    if gguf is None:
        print("gguf is not installed: pip install gguf")
        return 1
    from llmkit import _llmkit

    rng = np.random.default_rng(0)
    n_tensors, target = args.gguf_file_tensors, args.gguf_file_mb * 1e6
    per = int(target / n_tensors)
    kinds = ["f32", "f16", "q8_0", "q4_K"]
    tensors = {}
    for i in range(n_tensors):
        kind = kinds[i % len(kinds)]
        if kind == "f32":
            cols = 256
            rows = max(1, per // (4 * cols))
            tensors[f"blk.{i}.f32.weight"] = rng.standard_normal((rows, cols), dtype=np.float32)
        elif kind == "f16":
            cols = 256
            rows = max(1, per // (2 * cols))
            tensors[f"blk.{i}.f16.weight"] = rng.standard_normal((rows, cols), dtype=np.float32).astype(np.float16)
        else:
            block_elems, block_bytes = llmkit.quant_block_size(kind)
            cols = 256
            rows = max(1, per // (cols // block_elems * block_bytes))
            raw = rng.integers(0, 256, size=rows * (cols // block_elems) * block_bytes, dtype=np.uint8)
            tensors[f"blk.{i}.{kind}.weight"] = llmkit.QuantizedTensor(raw, kind, (rows, cols))
    vocab = [f"tok{i}" for i in range(32000)]
    metadata = {
        "general.architecture": "llama", "general.name": "bench", "llama.block_count": np.uint32(n_tensors),
        "tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": vocab,
        "tokenizer.ggml.scores": rng.standard_normal(32000).astype(np.float32),
        "tokenizer.ggml.token_type": np.ones(32000, dtype=np.int32),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.gguf")
        t0 = time.perf_counter()
        llmkit.gguf.write(path, metadata, tensors)
        t_write = time.perf_counter() - t0
        size_mb = os.path.getsize(path) / 1e6
        print(f"GGUF file: {size_mb:.1f} MB, {n_tensors} tensors ({', '.join(kinds)}), {len(metadata)} keys "
              f"incl. a 32000-token vocabulary; written by llmkit in {t_write:.2f} s")

        # Agreement: both readers see the same file.
        ours, theirs = llmkit.gguf.read(path), gguf.GGUFReader(path)
        fields = {k: f for k, f in theirs.fields.items() if not k.startswith("GGUF.")}
        assert list(fields) == list(ours.metadata), "metadata keys differ"
        assert fields["tokenizer.ggml.tokens"].contents() == ours.metadata["tokenizer.ggml.tokens"]
        np.testing.assert_array_equal(fields["tokenizer.ggml.scores"].contents(),
                                      ours.metadata["tokenizer.ggml.scores"])
        assert [t.name for t in theirs.tensors] == list(ours.tensors), "tensor names differ"
        for t in theirs.tensors:
            mine = ours.tensors[t.name]
            raw = mine.data if hasattr(mine, "type_id") else mine
            assert np.asarray(raw).view(np.uint8).tobytes() == np.asarray(t.data).view(np.uint8).tobytes(), t.name
            assert ours.tensor_types[t.name].lower() == t.tensor_type.name.lower(), t.name
        print("agreement: every key, value and tensor byte equal through llmkit.gguf.read and gguf.GGUFReader")
        del ours, theirs

        rows = [("llmkit.gguf.read (Python objects)", lambda: llmkit.gguf.read(path)),
                ("llmkit native parse (llmkit_gguf_open)", lambda: _llmkit.gguf_open(path, False)),
                (f"gguf.GGUFReader (gguf {_pkg_version('gguf')})", lambda: gguf.GGUFReader(path))]
        times = {name: best_time(fn, args.reps) for name, fn in rows}
        peer = times[rows[2][0]]
        print(f"\n{'reader':44s} {'open+parse ms':>14s} {'vs gguf-py':>11s}")
        for name, _ in rows:
            print(f"{name:44s} {times[name] * 1e3:14.2f} {peer / times[name]:10.1f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"gguf_file": {"size_mb": size_mb, "tensors": n_tensors,
                                     "times_s": times}}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
