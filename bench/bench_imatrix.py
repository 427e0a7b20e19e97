"""Importance-matrix (imatrix) quantization: llmkit against ggml's own C quantizer.

For each GGUF type that ggml quantizes with importance weights, one float32
weight matrix (rows x n, Laplace-distributed with a per-row scale) and one
imatrix (gamma-distributed, as llama-imatrix's sums of squared activations
are: a few columns carry most of the energy) are quantized

* by llmkit (``llmkit.quantize(w, type, imatrix=a)``) at 1 and 2 threads, and
* by ggml (``ggml_quantize_chunk(type, w, ..., imatrix=a)`` from the libggml-base
  that ``pip install llama-cpp-python`` builds) at 1 thread, and at 2 threads as
  llama-quantize runs it: each thread a ``ggml_quantize_chunk`` of half the rows.

The bytes must be identical (the run stops otherwise); the table prints MB/s of
float32 input and llmkit / ggml. It also prints how much the weights lower the
importance-weighted error sum_j a_j (w - dequant)^2 against the same type
without them, on this matrix. Without llama-cpp-python the ggml columns say
"skipped" and the rest still runs.

    PYTHONPATH=build/python python3 bench/bench_imatrix.py [--rows 4096] [--n 4096] [--reps 3]
"""

import argparse
import ctypes
import os
import platform
import sys
import threading

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llmkit  # noqa: E402
from benchlib import best_time  # noqa: E402
import ggml_peer  # noqa: E402

TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_nl", "iq4_xs"]
GGML_IDS = dict(ggml_peer.TYPE_IDS, iq4_xs=23)


def ggml_quantize(g, t, w, imatrix, dst, n_threads):
    """ggml_quantize_chunk over all rows of w with the imatrix, split in n_threads row ranges
    run at once (ctypes releases the GIL during the call)."""
    rows, n = w.shape
    tid = GGML_IDS[t]
    bounds = np.linspace(0, rows, n_threads + 1).astype(int)

    def part(r0, r1):
        g.quantize_chunk(tid, w.ctypes.data, dst.ctypes.data, int(r0) * n, int(r1 - r0), n, imatrix.ctypes.data)

    if n_threads == 1:
        part(0, rows)
        return
    threads = [threading.Thread(target=part, args=(bounds[i], bounds[i + 1])) for i in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--types", default=",".join(TYPES))
    a = p.parse_args()
    rng = np.random.default_rng(11)
    w = (rng.laplace(size=(a.rows, a.n)) * rng.uniform(0.005, 0.05, (a.rows, 1))).astype(np.float32)
    imatrix = (rng.gamma(0.3, 1.0, a.n) * 100).astype(np.float32)
    mb = w.nbytes / 1e6
    g, why = ggml_peer.load()
    print(f"# imatrix quantization, {a.rows} x {a.n} float32 ({mb:.0f} MB), best of {a.reps}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"# llmkit {llmkit.__version__}; ggml: {('llama-cpp-python ' + g.version) if g else 'skipped: ' + why}")
    print("| type | llmkit 1T MB/s | ggml 1T MB/s | 1T ratio | llmkit 2T MB/s | ggml 2T MB/s | 2T ratio "
          "| bytes identical | weighted error vs no imatrix |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for t in a.types.split(","):
        ours = np.asarray(llmkit.quantize(w, t, imatrix=imatrix, num_threads=1).data)
        cells = {}
        for nt in (1, 2):
            cells[f"l{nt}"] = mb / best_time(lambda: llmkit.quantize(w, t, imatrix=imatrix, num_threads=nt), a.reps)
        same = "-"
        if g:
            dst = np.empty_like(ours)
            ggml_quantize(g, t, w, imatrix, dst, 1)
            if not np.array_equal(dst, ours):
                bad = int(np.argmax(dst != ours))
                sys.exit(f"{t}: ggml's bytes differ from llmkit's (first at byte {bad})")
            dst2 = np.empty_like(ours)
            ggml_quantize(g, t, w, imatrix, dst2, 2)
            same = "yes" if np.array_equal(dst2, ours) else "NO"
            for nt in (1, 2):
                cells[f"g{nt}"] = mb / best_time(lambda: ggml_quantize(g, t, w, imatrix, dst, nt), a.reps)

        def err(q):
            d = llmkit.dequantize(q).astype(np.float64) - w
            return float(((d * d) * imatrix).sum())
        gain = err(llmkit.quantize(w, t, imatrix=imatrix)) / err(llmkit.quantize(w, t)) - 1

        def fmt(k):
            return f"{cells[k]:.1f}" if k in cells else "skipped"

        def ratio(nt):
            return f"{cells[f'l{nt}'] / cells[f'g{nt}']:.2f}x" if f"g{nt}" in cells else "-"
        print(f"| {t} | {fmt('l1')} | {fmt('g1')} | {ratio(1)} | {fmt('l2')} | {fmt('g2')} | {ratio(2)} | {same} "
              f"| {100 * gain:+.0f} % |", flush=True)


if __name__ == "__main__":
    main()
