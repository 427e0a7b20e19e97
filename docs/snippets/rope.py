"""RoPE's scalings on the Attention page: Llama 3.1 given as a GGUF file's
per-pair factors, LongRoPE's short and long factors, and LongRoPE's
attention factor. Output checked against docs/snippets/rope.expected."""
import math

import numpy as np

import llmkit

rng = np.random.default_rng(0)
D, theta = 128, 500000.0
x = rng.standard_normal((1, 6, 2, D)).astype(np.float32)
positions = np.array([0, 1, 100, 8191, 20000, 131071])

# 1. Llama 3.1's scaling, given as Hugging Face's dict ...
llama31 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 8192}
a = llmkit.rope(x, positions, theta=theta, scaling=llama31)
# ... or as a GGUF file carries it: rope_freqs, one divisor per pair, written by the converter
# (convert_hf_to_gguf.py computes the same ramp once, in float32).
inv = theta ** (-np.arange(0, D, 2) / D)
wavelen = 2 * math.pi / inv
smooth = (8192 / wavelen - 1.0) / (4.0 - 1.0)
rope_freqs = np.where(wavelen < 8192 / 4.0, 1.0,
                      np.where(wavelen > 8192 / 1.0, 8.0, 1.0 / ((1 - smooth) / 8.0 + smooth))).astype(np.float32)
b = llmkit.rope(x, positions, theta=theta, scaling={"type": "none", "frequency_factors": rope_freqs})
print(f"Llama 3.1 from its dict == from GGUF rope_freqs to float32 rounding (|diff| < 1e-5): {np.abs(a - b).max() < 1e-5}")
print(f"rope_freqs: {rope_freqs[0]:.0f} (highest frequency) ... {rope_freqs[-1]:.0f} (lowest)")

# 2. LongRoPE as Phi-3-mini-128k's config.json has it (factors made up here; the model's are 48 of
#    each). max_position_embeddings and the original context live outside rope_scaling there.
n = 32
short = [1.0 + 0.01 * k for k in range(n // 2)]
long_ = [1.0 + 3.5 * k for k in range(n // 2)]
phi3 = {"type": "longrope", "short_factor": short, "long_factor": long_,
        "max_position_embeddings": 131072, "original_max_position_embeddings": 4096}
y = rng.standard_normal((1, 1, 1, n)).astype(np.float32)
for p in (4095, 4096):  # position 4095 is token 4096, the last within the original context
    got = llmkit.rope(y, [p], scaling=phi3)
    for name, f in (("short", short), ("long", long_)):
        pinned = {"type": "longrope", "frequency_factors": f, "max_position_embeddings": 131072,
                  "original_max_position_embeddings": 4096}
        if np.array_equal(got, llmkit.rope(y, [p], scaling=pinned)):
            print(f"position {p}: the {name} factors")

# 3. LongRoPE's attention factor sqrt(1 + ln(131072 / 4096) / ln 4096) scales cos and sin:
z = np.zeros((1, 1, 1, n), np.float32)
z[..., 0] = 1.0  # pair 0 is (z[0], z[16])
r = llmkit.rope(z, [7], scaling=phi3)[0, 0, 0]
print(f"|rotated pair| = {math.hypot(r[0], r[n // 2]):.4f}, sqrt(1 + 5/12) = {math.sqrt(17 / 12):.4f}")
