"""Importance matrices: what quantizing with an imatrix buys on one layer.

A linear layer y = x W^T (W: 512 outputs x 1024 inputs, Laplace weights) sees
inputs whose channels differ in energy, as in real LLMs (a few channels carry
most of it). The importance of input column j is sum over tokens of x_j^2,
which is what llama.cpp's llama-imatrix accumulates. Quantizing W with it
lowers the error of the layer's OUTPUT, the one the next layer sees, at the
same size. Run by the snippet_py_quantization_imatrix test; its output is
checked against quantization_imatrix.expected.
"""
import numpy as np

import llmkit

rng = np.random.default_rng(7)
n_in, n_out, tokens = 1024, 512, 2048
W = rng.laplace(scale=0.02, size=(n_out, n_in)).astype(np.float32)
channel_scale = np.exp(rng.normal(0.0, 1.0, n_in))   # log-normal channel energies
channel_scale[rng.choice(n_in, 8, replace=False)] *= 20  # a few outlier channels
X = (rng.standard_normal((tokens, n_in)) * channel_scale).astype(np.float32)
imatrix = (X.astype(np.float64) ** 2).sum(axis=0).astype(np.float32)

Y = X.astype(np.float64) @ W.astype(np.float64).T
print("type     bpw    output error (relative RMSE)")
print("                no imatrix   with imatrix   change")
for name in ["q2_K", "q3_K", "q4_0", "q4_K", "iq4_xs", "q5_K", "q6_K"]:
    errs = []
    for imat in (None, imatrix):
        Wq = llmkit.dequantize(llmkit.quantize(W, name, imatrix=imat)).astype(np.float64)
        errs.append(np.sqrt(((X.astype(np.float64) @ Wq.T - Y) ** 2).mean() / (Y ** 2).mean()))
    bpw = 8 * llmkit.quantize(W, name).nbytes / W.size
    print(f"{name:7s} {bpw:5.3f}   {errs[0]:.4f}       {errs[1]:.4f}         {100 * (errs[1] / errs[0] - 1):+.0f} %")
