"""A tour of llmkit's sampler on a real model's logits, in Python.

Loads the logits that the tiny stories260K Llama produced at its first four
positions and its vocabulary, then shows for each position: the model's top-5
tokens with log-probabilities, how many tokens each filter keeps, and what a
seeded chain draws.  Usage: python sampling_tour.py <shared/data dir>
"""
import pathlib
import struct
import sys

import numpy as np

import llmkit


def load_vocab(path):
    data = pathlib.Path(path).read_bytes()
    (max_len,) = struct.unpack_from("<i", data, 0)
    off, pieces = 4, []
    while off < len(data):
        _score, n = struct.unpack_from("<fi", data, off)
        off += 8
        pieces.append(data[off:off + n].decode("utf-8", "replace"))
        off += n
    return pieces


def main(data_dir):
    root = pathlib.Path(data_dir) / "models" / "stories260K"
    vocab = load_vocab(root / "tok512.bin")
    logits = np.fromfile(root / "logits_pos0-3.f32", dtype=np.float32).reshape(4, 512)
    expected = [int(x) for x in (root / "greedy_ids_n200.txt").read_text().split()]

    print(f"llmkit {llmkit.__version__} ({llmkit.build_info()})")
    greedy = llmkit.sample(logits, temperature=0.0)
    assert list(greedy) == expected[1:5], "greedy differs from llama2.c"
    print("greedy:", " ".join(f"[{vocab[t]}]" for t in greedy), "(matches llama2.c)")

    filters = {
        "top_k(40)": llmkit.SamplerChain().top_k(40),
        "top_p(0.9)": llmkit.SamplerChain().top_p(0.9),
        "min_p(0.05)": llmkit.SamplerChain().min_p(0.05),
        "typical(0.9)": llmkit.SamplerChain().typical(0.9),
        "top_n_sigma(1)": llmkit.SamplerChain().top_n_sigma(1.0),
    }
    chain = llmkit.SamplerChain(seed=7).temperature(1.5).top_p(0.95).dist()
    for pos in range(4):
        row = logits[pos]
        res = llmkit.SamplerChain(seed=1).greedy().sample(row[None, :], top_logprobs=5)
        top = ", ".join(f"[{vocab[i]}] {lp:.2f}" for i, lp in zip(res.top_ids[0], res.top_logprobs[0]))
        kept = ", ".join(f"{name}: {int(np.isfinite(f.apply(row)).sum())}" for name, f in filters.items())
        draws = chain.sample(np.repeat(row[None, :], 6, axis=0))
        print(f"position {pos}: top-5 {top}")
        print(f"  tokens kept by {kept}")
        print(f"  {chain} draws:", " ".join(f"[{vocab[t]}]" for t in draws))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
