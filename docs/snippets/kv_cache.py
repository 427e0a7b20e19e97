"""KV caches from Python: a paged cache's decode equals the prefill, a fork
shares blocks until it writes, RoPE fused into the cache, a serving step of
decodes and a prefill chunk in one call, what int8 and paging save, where FP8
beats int8, saving a sequence, sliding windows, models that mix windowed and
global layers, and context shift. Run by the snippet_py_kv_cache test; its output is checked
against kv_cache.expected."""
import numpy as np

import llmkit

rng = np.random.default_rng(0)
Hq, Hkv, D, S = 8, 2, 64, 40  # GQA: 4 query heads per kv head
q, k, v = (rng.standard_normal((S, h, D), dtype=np.float32) for h in (Hq, Hkv, Hkv))

# 1. A paged cache of 16-token blocks. Prefill all 40 tokens in one sequence;
#    in another, prefill 24 and decode the last 16 one at a time.
cache = llmkit.PagedKVCache(n_layers=1, n_kv_heads=Hkv, head_dim=D, n_blocks=32, block_size=16, dtype="bf16")
full = cache.prefill(0, cache.new_sequence(), q, k, v)
s = cache.new_sequence()
steps = [cache.prefill(0, s, q[:24], k[:24], v[:24])]
for t in range(24, S):
    steps.append(cache.decode(0, [s], q[t:t + 1], k[t:t + 1], v[t:t + 1]))
stepwise = np.concatenate(steps)
print("decode == prefill rows (|diff| < 1e-5):", bool(np.abs(stepwise - full).max() < 1e-5))
print("block table of the stepwise sequence:", cache.block_table(s))

# 2. Fork: the child shares the parent's 3 blocks; its first token copies only
#    the shared, partly filled last block (copy-on-write).
block = cache.memory_bytes // 6
print("blocks in use:", cache.memory_bytes // block)
before = cache.attention(0, q[None, -1:], [s])  # the parent's last row, over its cache
child = cache.fork(s)
print("after fork:", cache.memory_bytes // block)
cache.decode(0, [child], q[:1], k[:1], v[:1])
print("after the child's first token:", cache.memory_bytes // block)
print("parent unchanged:", np.array_equal(cache.attention(0, q[None, -1:], [s]), before))

# 3. RoPE fused into the cache: K rotated on its way in (token j at position j), the queries
#    rotated by the attention call; the same bits as llmkit.rope on float32 K, then a plain append.
llama3 = {"theta": 500000.0, "scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
fused = llmkit.KVCache(n_layers=1, n_kv_heads=Hkv, head_dim=D, capacity=S, dtype="bf16")
plain = llmkit.KVCache(n_layers=1, n_kv_heads=Hkv, head_dim=D, capacity=S, dtype="bf16")
a, b = fused.new_sequence(), plain.new_sequence()
out_fused = fused.prefill(0, a, q, k, v, rope=llama3)
plain.append(0, b, llmkit.rope(k[None], np.arange(S), **llama3)[0], v)
out_plain = plain.attention(0, llmkit.rope(q[None], np.arange(S), **llama3), [b])[0]
print("fused RoPE == rope, then append:", np.array_equal(out_fused, out_plain))

# 4. One serving step in one call: two sequences decode their next token while a third
#    prefills a chunk of 8 after a 32-token prefix, the queries packed end to end
#    (cu_seqlens_q: sequence b's rows are cu[b]:cu[b + 1], its last tokens).
step = llmkit.PagedKVCache(n_layers=1, n_kv_heads=Hkv, head_dim=D, n_blocks=16, block_size=16, dtype="bf16")
a, b, c = (step.new_sequence() for _ in range(3))
for seq, n in ((a, 30), (b, 12), (c, S)):
    step.append(0, seq, k[:n], v[:n])
packed = np.concatenate([q[29:30], q[11:12], q[32:S]])
out = step.attention(0, packed, [a, b, c], cu_seqlens_q=[0, 1, 2, 10])
alone = [step.attention(0, packed[None, rows], [seq])[0] for seq, rows in ((a, slice(0, 1)), (b, slice(1, 2)),
                                                                            (c, slice(2, 10)))]
print("packed step == each sequence alone:", np.array_equal(out, np.concatenate(alone)))
print("the chunk == those rows of the prefill (|diff| < 1e-5):", bool(np.abs(out[2:] - full[32:]).max() < 1e-5))

# 5. The arithmetic of a real model: Llama 3 8B (32 layers, 8 kv heads of 128) at 8192 tokens.
for dtype in ("fp32", "bf16", "int8", "fp8_e4m3"):
    b = llmkit.kv_cache_bytes(n_layers=32, n_kv_heads=8, head_dim=128, dtype=dtype, context=8192)
    print(f"Llama 3 8B, 8192 tokens, {dtype}: {b / 2**30:.3f} GiB (+ 8-bit row scales: "
          f"{(32 * 8 * 8192 * 2 * 4 if dtype in ('int8', 'fp8_e4m3') else 0) / 2**20:.0f} MiB)")

# 6. The two 8-bit caches: int8 steps are the row's absmax / 127 for every element; FP8 E4M3 keeps 3
#    mantissa bits at every magnitude. On N(0, 1) rows int8 is closer; on keys with a few outlier
#    channels (as LLM keys have) its steps grow with the outliers and E4M3 is closer.
def rel_error(dtype, k, v, q):
    outs = []
    for t in (dtype, "fp32"):
        c = llmkit.KVCache(n_layers=1, n_kv_heads=Hkv, head_dim=D, capacity=len(k), dtype=t)
        s = c.new_sequence()
        c.append(0, s, k, v)
        outs.append(c.attention(0, q, [s]))
    return float(np.sqrt(np.mean((outs[0] - outs[1]) ** 2) / np.mean(outs[1] ** 2)))


k8, v8 = (rng.standard_normal((256, Hkv, D), dtype=np.float32) for _ in range(2))
q8 = rng.standard_normal((1, 1, Hq, D), dtype=np.float32)
print("N(0, 1) rows: int8 closer than fp8_e4m3:", rel_error("int8", k8, v8, q8) < rel_error("fp8_e4m3", k8, v8, q8))
k8[..., [3, 17, 40]] *= 20.0  # outlier channels; the queries' smaller, so the scores keep their scale
q8[..., [3, 17, 40]] /= 20.0
print("keys with outlier channels: fp8_e4m3 closer than int8:",
      rel_error("fp8_e4m3", k8, v8, q8) < rel_error("int8", k8, v8, q8))

# 7. A prefilled prompt saved to disk and loaded by another process's cache: here a contiguous int8
#    cache's sequence into a paged int8 cache of 8-token blocks. The bytes are the cache's own rows,
#    so attention over the loaded sequence gives the same bits.
src = llmkit.KVCache(n_layers=2, n_kv_heads=Hkv, head_dim=D, capacity=S, dtype="int8")
a = src.new_sequence()
for layer in range(2):
    src.append(layer, a, k, v)
saved = src.save(a)  # 40-byte header + 2 x 8-byte token counts + 2 layers x 40 tokens x 2 heads x (K, V) x (64 + 4)
print("saved bytes:", len(saved), "=", 40 + 2 * 8 + 2 * S * Hkv * 2 * (D + 4), "header:", saved[:8])
dst = llmkit.PagedKVCache(n_layers=2, n_kv_heads=Hkv, head_dim=D, n_blocks=8, block_size=8, dtype="int8")
b = dst.new_sequence()
dst.load(b, saved)
print("loaded:", dst.length(b), "tokens in", len(dst.block_table(b)), "blocks; same attention:",
      all(np.array_equal(dst.attention(layer, q[None], [b]), src.attention(layer, q[None], [a])) for layer in range(2)))
try:
    dst.load(b, saved[:-1])
except llmkit.LlmkitError as e:
    print("a truncated save:", e.status)

# 8. A sliding window (Mistral 7B v0.1 attends through 4096 keys in every layer): after each step
#    the sequence releases what the next query cannot see, so a pool of 5 blocks of 8 tokens serves
#    a 200-token sequence with a window of 24; the output is a cache's that kept every token. (Its
#    block table still spans every position: max_blocks_per_seq bounds the positions, 25 x 8 here.)
W = 24
win = llmkit.PagedKVCache(n_layers=1, n_kv_heads=Hkv, head_dim=D, n_blocks=5, block_size=8, max_blocks_per_seq=25,
                          dtype="bf16")
keep = llmkit.KVCache(n_layers=1, n_kv_heads=Hkv, head_dim=D, capacity=200, dtype="bf16")
w, kept = win.new_sequence(), keep.new_sequence()
same = True
for t in range(200):
    qt, kt, vt = (rng.standard_normal((1, h, D), dtype=np.float32) for h in (Hq, Hkv, Hkv))
    out = win.decode(0, [w], qt, kt, vt, window=W)
    same &= np.array_equal(out, keep.decode(0, [kept], qt, kt, vt, window=W))
    first = win.release_before(w, max(0, win.length(w) - W + 1))  # the next query sees keys from here on
print("200 tokens, window", W, "- same bits as keeping them all:", bool(same))
print("first token held:", first, "- blocks held:", sum(b >= 0 for b in win.block_table(w)), "of",
      len(win.block_table(w)), "in the table")
try:
    win.attention(0, qt[None], [w])  # no window: it would need the released tokens
except ValueError as e:
    print("no window after a release:", str(e).split(":")[0])

# 9. Windowed and global layers in one model (Gemma 3: five layers with a window of 1024, then one
#    global, RoPE bases 10k and 1M): a block holds all of a cache's layers, so each kind of layer
#    gets a cache of its own, and only the windowed layers' cache releases.
kinds = ["local", "local", "global"]
local = llmkit.PagedKVCache(n_layers=2, n_kv_heads=Hkv, head_dim=D, n_blocks=5, block_size=8, max_blocks_per_seq=25)
glob = llmkit.PagedKVCache(n_layers=1, n_kv_heads=Hkv, head_dim=D, n_blocks=25, block_size=8, max_blocks_per_seq=25)
keep = llmkit.KVCache(n_layers=3, n_kv_heads=Hkv, head_dim=D, capacity=200)
s_local, s_glob, s_keep = local.new_sequence(), glob.new_sequence(), keep.new_sequence()
same = True
for t in range(200):
    qt = rng.standard_normal((1, Hq, D), dtype=np.float32)
    for layer, kind in enumerate(kinds):
        kt, vt = (rng.standard_normal((1, Hkv, D), dtype=np.float32) for _ in range(2))
        if kind == "local":
            how = dict(window=W, rope={"theta": 10000.0})
            out = local.decode(layer, [s_local], qt, kt, vt, **how)
        else:
            how = dict(rope={"theta": 1000000.0})
            out = glob.decode(0, [s_glob], qt, kt, vt, **how)
        same &= np.array_equal(out, keep.decode(layer, [s_keep], qt, kt, vt, **how))
    local.release_before(s_local, max(0, local.length(s_local) - W + 1))
print("3 layers, 200 tokens - same bits as one cache keeping them all:", bool(same))
print("blocks held: windowed layers", len(local.block_table(s_local)) - local.block_table(s_local).count(-1),
      "- global layer", len(glob.block_table(s_glob)))
gib = lambda layers, context: llmkit.kv_cache_bytes(n_layers=layers, n_kv_heads=16, head_dim=128, dtype="bf16",
                                                     context=context) / 2**30
print(f"Gemma 3 27B at 131072 tokens, bf16: one cache {gib(62, 131072):.1f} GiB,"
      f" two caches {gib(10, 131072) + gib(52, 1024 + 15):.1f} GiB")

# 10. Context shift (llama.cpp's, and StreamingLLM's rolling cache): a sequence that fills its
#     context keeps its first 4 tokens (the attention sinks), erases the next half and goes on.
#     Each kept key is turned back by the erased count, so the cache holds what appending the kept
#     tokens at their new positions stores, and decoding continues at the new length.
ctx, n_keep = 48, 4
roll = llmkit.KVCache(n_layers=1, n_kv_heads=Hkv, head_dim=D, capacity=ctx)
r = roll.new_sequence()
tokens_k, tokens_v = (rng.standard_normal((200, Hkv, D), dtype=np.float32) for _ in range(2))
held = []  # which token each cache row holds
shifts = 0
for t in range(200):
    if roll.length(r) == ctx:
        n_discard = (ctx - n_keep) // 2
        roll.erase(r, n_keep, n_keep + n_discard, rope=True)
        held = held[:n_keep] + held[n_keep + n_discard:]
        shifts += 1
    qt = rng.standard_normal((1, Hq, D), dtype=np.float32)
    out = roll.decode(0, [r], qt, tokens_k[t:t + 1], tokens_v[t:t + 1], rope=True)
    held.append(t)
fresh = llmkit.KVCache(n_layers=1, n_kv_heads=Hkv, head_dim=D, capacity=ctx)
f = fresh.new_sequence()
fresh.append(0, f, tokens_k[held], tokens_v[held], rope=True)  # the held tokens, at positions 0..
same_as_fresh = np.abs(roll.attention(0, qt[None], [r], rope=True) - fresh.attention(0, qt[None], [f], rope=True))
print("200 tokens through a context of", ctx, "-", shifts, "shifts; held:", held[:n_keep], "+", len(held) - n_keep,
      "recent; == a cache of those tokens (|diff| < 1e-5):", bool(same_as_fresh.max() < 1e-5))
