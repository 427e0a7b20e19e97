"""Bits per weight and reconstruction error of every quantization type llmkit
implements, measured by llmkit on three matrices:

  real     the stories260K token-embedding weights (rows 0..127 of ggml's
           reference input, 128 x 256; the data folder comes from the
           LLMKIT_DATA_DIR environment variable or the first argument),
  gauss    a Gaussian N(0, 1) matrix, 256 x 256,
  laplace  a Laplace matrix (heavier tails, like real weights), 256 x 256.

The error is the relative RMSE, sqrt(mean((w - dequantize(quantize(w)))^2)) /
sqrt(mean(w^2)). Run by the snippet_py_quantization test; its output is checked
against quantization.expected, so the numbers are rounded to 4 decimals.
"""
import os
import sys

import numpy as np

import llmkit

data_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LLMKIT_DATA_DIR", "")
path = os.path.join(data_dir, "quant-ref", "ggml", "input.f32")
if not os.path.isfile(path):
    sys.exit(f"quantization.py: {path} not found (set LLMKIT_DATA_DIR to the shared data folder)")
real = np.fromfile(path, dtype="<f4").reshape(136, 256)[:128].copy()
rng = np.random.default_rng(2024)
gauss = rng.standard_normal((256, 256)).astype(np.float32)
laplace = rng.laplace(size=(256, 256)).astype(np.float32)
matrices = {"real": real, "gauss": gauss, "laplace": laplace}

TYPES = ["f16", "bf16", "q8_0", "int8", "int8_g128", "fp8_e4m3_channel", "fp8_e5m2_channel",
         "q6_K", "q5_K", "q5_0", "q5_1", "q4_K", "q4_0", "q4_1", "iq4_nl", "iq4_xs", "nf4", "fp4",
         "mxfp4", "gptq_int4_g128", "awq_int4_g128", "q3_K", "q2_K", "tq2_0", "tq1_0"]


def rel_rmse(w, t):
    back = llmkit.dequantize(llmkit.quantize(w, t))
    return float(np.sqrt(np.mean((back.astype(np.float64) - w) ** 2) / np.mean(w.astype(np.float64) ** 2)))


def bits_per_weight(t):
    # Measured on a 4096 x 4096 weight, where the per-tensor planes (GPTQ's
    # g_idx, one FP8 scale) and alignment padding are negligible.
    return llmkit.quant_nbytes(t, (4096, 4096)) * 8 / 4096 ** 2


print(f"{'type':<18}{'bits/weight':>12}{'real':>9}{'gauss':>9}{'laplace':>9}")
for t in TYPES:
    errs = [rel_rmse(w, t) for w in matrices.values()]
    print(f"{t:<18}{bits_per_weight(t):>12.3f}" + "".join(f"{e:>9.4f}" for e in errs))
