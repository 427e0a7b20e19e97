"""A whole Llama forward pass built from llmkit's blocks, on a real trained model.

stories260K (a 260K-parameter Llama trained on TinyStories: dim 64, 5 layers,
8 query heads sharing 4 KV heads, vocabulary 512) is read from its GGUF file
with llmkit.gguf; its SentencePiece vocabulary comes out of the same file as an
llmkit.Tokenizer; each layer uses llmkit.rope (interleaved pairs, as llama.cpp
runs Llama), llmkit.KVCache (prefill of the prompt, then one decode step per
token) and, in the quantized run, Q8_0 weights multiplied by
QuantizedTensor.matmul; llmkit.sample picks the tokens. RMSNorm and SwiGLU are
numpy one-liners.

Checks against llama2.c's reference outputs in the data folder: the logits at
the first 4 positions (within 1e-4), the 200 greedy ids, and the greedy text.
Then the same with Q8_0 weights (how many of the 200 greedy tokens agree), and
a sampled story. Usage: python generate_stories260k.py <shared/data dir>
"""
import pathlib
import sys
import time

import numpy as np

import llmkit


class Llama:
    """The llama.cpp reading of a GGUF Llama: weights (out, in), y = W x."""

    def __init__(self, path, quant=None):
        f = llmkit.gguf.read(path)
        meta, t = f.metadata, f.tensors
        self.n_layers = int(meta["llama.block_count"])
        self.n_heads = int(meta["llama.attention.head_count"])
        self.n_kv_heads = int(meta["llama.attention.head_count_kv"])
        self.dim = int(meta["llama.embedding_length"])
        self.head_dim = self.dim // self.n_heads
        self.eps = float(meta["llama.attention.layer_norm_rms_epsilon"])
        self.theta = float(meta.get("llama.rope.freq_base", 10000.0))
        self.embed = np.asarray(t["token_embd.weight"], np.float32)
        self.quantized, self.kept = 0, []

        def weight(name):
            w = np.asarray(t[name], np.float32)
            if quant and w.shape[1] % llmkit.quant_block_size(quant)[0] == 0:
                self.quantized += 1
                return llmkit.quantize(w, quant)
            self.kept.append(name)  # rows that are no whole number of blocks stay float32
            return w

        names = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
        self.layers = [{n: weight(f"blk.{i}.{n}.weight") for n in names} |
                       {n: np.asarray(t[f"blk.{i}.{n}.weight"], np.float32) for n in ("attn_norm", "ffn_norm")}
                       for i in range(self.n_layers)]
        self.norm = np.asarray(t["output_norm.weight"], np.float32)
        self.output = weight("output.weight" if "output.weight" in t else "token_embd.weight")

    @staticmethod
    def matmul(w, x):
        """x (S, in) by w (out, in): (S, out)."""
        return w.matmul(x) if isinstance(w, llmkit.QuantizedTensor) else x @ w.T

    def rmsnorm(self, x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * g

    def forward(self, cache, seq, tokens, start):
        """Logits (S, vocab) of tokens at positions start.., appending their K/V to the cache."""
        S, H, Hkv, D = len(tokens), self.n_heads, self.n_kv_heads, self.head_dim
        x = self.embed[tokens]
        pos = np.arange(start, start + S, dtype=np.int64)
        for i, L in enumerate(self.layers):
            h = self.rmsnorm(x, L["attn_norm"])
            q = self.matmul(L["attn_q"], h).reshape(1, S, H, D)
            k = self.matmul(L["attn_k"], h).reshape(1, S, Hkv, D)
            v = self.matmul(L["attn_v"], h).reshape(S, Hkv, D)
            q = llmkit.rope(q, pos[None], theta=self.theta, layout="interleaved")
            k = llmkit.rope(k, pos[None], theta=self.theta, layout="interleaved")[0]
            if S == 1:
                att = cache.decode(i, [seq], q[0], k, v)           # (1, H, D)
            else:
                att = cache.prefill(i, seq, q[0], k, v)            # (S, H, D), causal over the cache
            x = x + self.matmul(L["attn_output"], att.reshape(S, H * D))
            h = self.rmsnorm(x, L["ffn_norm"])
            g, u = self.matmul(L["ffn_gate"], h), self.matmul(L["ffn_up"], h)
            x = x + self.matmul(L["ffn_down"], g / (1.0 + np.exp(-g)) * u)
        return self.matmul(self.output, self.rmsnorm(x, self.norm))

    def forward_packed(self, cache, seqs, chunks, starts):
        """One serving step: chunk b (token ids) of sequence seqs[b] at positions starts[b].., every chunk's rows
        packed into each matmul and into one attention call per layer (cu_seqlens_q); the logits of each
        chunk's last token (B, vocab)."""
        H, Hkv, D = self.n_heads, self.n_kv_heads, self.head_dim
        counts = [len(c) for c in chunks]
        cu = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        T = int(cu[-1])
        x = self.embed[np.concatenate(chunks)]
        pos = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, counts)]).astype(np.int64)
        for i, L in enumerate(self.layers):
            h = self.rmsnorm(x, L["attn_norm"])
            q = self.matmul(L["attn_q"], h).reshape(1, T, H, D)
            k = self.matmul(L["attn_k"], h).reshape(1, T, Hkv, D)
            v = self.matmul(L["attn_v"], h).reshape(T, Hkv, D)
            q = llmkit.rope(q, pos[None], theta=self.theta, layout="interleaved")[0]
            k = llmkit.rope(k, pos[None], theta=self.theta, layout="interleaved")[0]
            for b, seq in enumerate(seqs):
                cache.append(i, seq, k[cu[b]:cu[b + 1]], v[cu[b]:cu[b + 1]])
            att = cache.attention(i, q, seqs, cu_seqlens_q=cu)  # (T, H, D): decodes and chunks in one call
            x = x + self.matmul(L["attn_output"], att.reshape(T, H * D))
            h = self.rmsnorm(x, L["ffn_norm"])
            g, u = self.matmul(L["ffn_gate"], h), self.matmul(L["ffn_up"], h)
            x = x + self.matmul(L["ffn_down"], g / (1.0 + np.exp(-g)) * u)
        return self.matmul(self.output, self.rmsnorm(x[cu[1:] - 1], self.norm))

    def serve(self, prompts, arrivals, n_new, chunk=8):
        """Greedy continuous batching over a paged cache: prompt p joins at step arrivals[p]; each step feeds
        every live sequence either its next prompt chunk (at most `chunk` tokens) or its last token.
        Returns each sequence's ids and the number of steps."""
        cache = llmkit.PagedKVCache(n_layers=self.n_layers, n_kv_heads=self.n_kv_heads, head_dim=self.head_dim,
                                    n_blocks=64, block_size=16, max_sequences=len(prompts))
        seqs = [cache.new_sequence() for _ in prompts]
        ids, fed = [list(p) for p in prompts], [0] * len(prompts)
        step = 0
        while any(len(t) < len(p) + n_new for t, p in zip(ids, prompts)):
            live = [b for b in range(len(prompts)) if arrivals[b] <= step and len(ids[b]) < len(prompts[b]) + n_new]
            chunks = [ids[b][fed[b]:fed[b] + chunk] for b in live]
            logits = self.forward_packed(cache, [seqs[b] for b in live], chunks, [fed[b] for b in live])
            for row, b in enumerate(live):
                fed[b] += len(chunks[row])
                if fed[b] == len(ids[b]):  # the prompt is all in: its last logits give the next token
                    ids[b].append(int(llmkit.sample(logits[row:row + 1], temperature=0.0)[0]))
            step += 1
        return ids, step

    def generate(self, prompt, n, **sampling):
        """prompt ids, then n - len(prompt) sampled ids; returns (ids, logits of the prompt)."""
        cache = llmkit.KVCache(n_layers=self.n_layers, n_kv_heads=self.n_kv_heads, head_dim=self.head_dim,
                               capacity=n + 1)
        seq = cache.new_sequence()
        ids = list(prompt)
        logits = self.forward(cache, seq, np.array(ids), 0)
        first = logits
        while len(ids) < n:
            token = int(llmkit.sample(logits[-1:], **sampling)[0])
            ids.append(token)
            logits = self.forward(cache, seq, np.array([token]), len(ids) - 1)
        return ids, first


def main(data_dir):
    root = pathlib.Path(data_dir) / "models" / "stories260K"
    gguf_path = root / "stories260K.gguf"
    tok = llmkit.Tokenizer.from_file(gguf_path)
    expected_ids = [int(x) for x in (root / "greedy_ids_n200.txt").read_text().split()]
    expected_text = (root / "expected_temp0_n200.txt").read_text()
    ref_logits = np.fromfile(root / "logits_pos0-3.f32", dtype=np.float32).reshape(4, 512)
    print(f"llmkit {llmkit.__version__} ({llmkit.build_info()})")

    model = Llama(gguf_path)
    print(f"stories260K: {model.n_layers} layers, {model.n_heads} query heads over {model.n_kv_heads} KV heads "
          f"of {model.head_dim}, vocab {tok.vocab_size}; KV cache for 200 tokens: "
          f"{llmkit.kv_cache_bytes(n_layers=model.n_layers, n_kv_heads=model.n_kv_heads, head_dim=model.head_dim, dtype='fp32', context=200)} bytes")

    # The first 4 positions as one prefill, against llama2.c's logits.
    cache = llmkit.KVCache(n_layers=model.n_layers, n_kv_heads=model.n_kv_heads, head_dim=model.head_dim, capacity=8)
    logits = model.forward(cache, cache.new_sequence(), np.array(expected_ids[:4]), 0)
    err = float(np.max(np.abs(logits - ref_logits)))
    print(f"logits at positions 0-3 vs llama2.c: max |difference| {err:.2e}")
    assert err < 1e-4, err

    # Greedy: BOS, then 200 tokens, one decode step each (llama2.c's -n 200 prints the tokens
    # chosen at positions 0..199; the ids file holds the 200 fed in, BOS first).
    t0 = time.perf_counter()
    ids, _ = model.generate([expected_ids[0]], 201, temperature=0.0)
    dt = time.perf_counter() - t0
    text = tok.decode(ids[1:])
    matching = next((i for i, (a, b) in enumerate(zip(ids, expected_ids)) if a != b), 200)
    print(f"greedy, 200 tokens in {dt:.2f} s: {matching}/200 ids equal llama2.c's; text equal: {text == expected_text}")
    print("  " + text[:160].replace("\n", " ") + "...")
    assert ids[:200] == expected_ids, f"first difference at position {matching}"
    assert text == expected_text

    # The same with Q8_0 weights (int8 activations inside the matmul).
    q8 = Llama(gguf_path, quant="q8_0")
    ids_q8, _ = q8.generate([expected_ids[0]], 200, temperature=0.0)
    agree = next((i for i, (a, b) in enumerate(zip(ids_q8, expected_ids)) if a != b), 200)
    print(f"Q8_0: {q8.quantized} weight matrices quantized, {len(q8.kept)} kept in float32 ({', '.join(q8.kept[:2])}...: "
          f"rows of {model.layers[0]['ffn_down'].shape[1]} are no whole number of 32-blocks); greedy ids equal "
          f"the float32 run for the first {agree} of 200 tokens")
    assert agree >= 50, agree  # int8 rounding may flip a near-tie late in the story, not early

    # Continuous batching: three prompts arrive at steps 0, 0 and 3 and are read 8 tokens per step
    # (chunked prefill) while the others decode, every step one packed forward pass over a paged cache.
    # Each story equals generating its prompt alone.
    prompts = [[expected_ids[0]] + tok.encode(t) for t in
               ("Once upon a time, a little fox found a shiny stone in the forest.", "Lily had a red ball.",
                "The sun was hot, so Tom went to the lake with his mom and his little dog")]
    served, steps = model.serve(prompts, [0, 0, 3], n_new=40)
    alone = [model.generate(p, len(p) + 40, temperature=0.0)[0] for p in prompts]
    print(f"continuous batching: prompts of {', '.join(str(len(p)) for p in prompts)} tokens, 40 new each, "
          f"{steps} packed steps; each equals its prompt generated alone: {served == alone}")
    assert served == alone

    # A sampled story, reproducible from its seed, prompted with text.
    prompt = [expected_ids[0]] + tok.encode("Once upon a time, a little fox")
    story, _ = model.generate(prompt, 120, temperature=0.9, top_p=0.95, seed=7)
    again, _ = model.generate(prompt, 120, temperature=0.9, top_p=0.95, seed=7)
    assert story == again
    print("sampled (temperature 0.9, top-p 0.95, seed 7):\n  " + tok.decode(story[1:]).replace("\n", " "))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
