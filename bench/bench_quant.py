#!/usr/bin/env python3
"""Quantize / dequantize throughput: llmkit vs the `gguf` package's numpy implementation.

Usage (see bench/README.md, "Quantization"):

    pip install gguf
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

ggml's C quantizer through llama-cpp-python is not timed: the run only reports whether `llama_cpp`
imports and exposes `ggml_quantize_chunk` (ggml's own output is covered by the reference vectors).
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

import llmkit

TYPES = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_K", "q5_K", "q6_K", "q2_K", "q3_K", "iq4_nl"]
REF_ROWS, REF_N = 136, 256

try:
    import gguf
    from gguf import GGMLQuantizationType as GT
    from gguf import quants as gq
except ImportError:  # pragma: no cover - the peer is optional
    gguf = None


def best_time(fn, reps):
    fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


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


def try_llama_cpp():
    try:
        import llama_cpp  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return None, f"llama_cpp not importable ({type(e).__name__}: {e})"
    for name in ("ggml_quantize_chunk",):
        if hasattr(llama_cpp, name):
            return getattr(llama_cpp, name), "ok"
    return None, "llama_cpp does not expose ggml_quantize_chunk"


def reference_check(ref_dir, types):
    """llmkit (and gguf) against ggml's own reference output on input.f32."""
    out = {}
    x = np.fromfile(os.path.join(ref_dir, "input.f32"), dtype="<f4").reshape(REF_ROWS, REF_N)
    for t in types:
        _, tsz = llmkit.quant_block_size(t)
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
    args = ap.parse_args()
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

    ggml_fn, ggml_why = try_llama_cpp()
    print(f"ggml C via llama-cpp-python: {'available, not timed' if ggml_fn else 'skipped: ' + ggml_why}", flush=True)

    # --- agreement against ggml's reference vectors -------------------------------------------
    ref = None
    if os.path.isfile(os.path.join(args.ref_dir, "input.f32")):
        ref = reference_check(args.ref_dir, types)
    else:
        print(f"reference vectors not found in {args.ref_dir}; skipping that check", flush=True)

    rows = []
    failures = []
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
        if ref is not None:
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


def _pkg_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001
        return "?"


if __name__ == "__main__":
    sys.exit(main())
