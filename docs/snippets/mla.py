"""DeepSeek's multi-head latent attention (MLA) two ways with llmkit.attention: as transformers runs it
(keys of 128 + 64 rotary dimensions, values of 128: v's head_dim differs from q's and k's) and in the
absorbed form (one latent "kv head" of 512 + 64 dimensions read by every query head), also from a paged
cache that stores the latent rows once, and through a context shift on a cache of the latent rows; the same
result, and what each form caches. Run by the snippet_py_mla test; its output is checked against mla.expected."""
import numpy as np

import llmkit

rng = np.random.default_rng(0)
H, C, R, N = 16, 512, 64, 128  # query heads, latent, rotary dimensions, each head's other q/k dimensions and v's
T = 300                        # cached tokens
latent = rng.standard_normal((T, C), dtype=np.float32)  # c_t: what MLA caches, with k_rope
k_rope = rng.standard_normal((T, R), dtype=np.float32)  # one rotary key per token, shared by every head
W_uk, W_uv = (rng.standard_normal((H, N, C), dtype=np.float32) / np.float32(np.sqrt(C)) for _ in range(2))  # up-proj.
q_nope = rng.standard_normal((1, H, N), dtype=np.float32)  # one decode query (its rotary part already applied)
q_rope = rng.standard_normal((1, H, R), dtype=np.float32)
scale = 1 / np.sqrt(N + R)

# 1. As transformers runs it: each head's key [W_uk c_t; k_rope_t] (192) and value W_uv c_t (128).
k = np.concatenate([np.einsum("hnc,tc->thn", W_uk, latent), np.broadcast_to(k_rope[:, None], (T, H, R))], -1)
v = np.einsum("hnc,tc->thn", W_uv, latent)
q = np.concatenate([q_nope, q_rope], -1)
out1 = llmkit.attention(q[None], k[None], v[None], scale=scale, causal=False)[0]
print(f"per-head keys and values: q and k of {q.shape[-1]}, v of {v.shape[-1]} -> out {out1.shape}")

# 2. Absorbed: q . [W_uk c; k_rope] = [W_uk^T q_nope; q_rope] . [c; k_rope], so W_uk folds into the query, and
# sum_t p_t W_uv c_t = W_uv sum_t p_t c_t, so W_uv applies after. One kv head: the cache as it is; v a view of it.
q_abs = np.concatenate([np.einsum("hnc,ihn->ihc", W_uk, q_nope), q_rope], -1)
cache = np.concatenate([latent, k_rope], -1)[None, :, None]  # (1, T, 1, 576)
o_latent = llmkit.attention(q_abs[None], cache, cache[..., :C], scale=scale, causal=False)[0]
out2 = np.einsum("hnc,ihc->ihn", W_uv, o_latent)
print(f"absorbed: q and k of {q_abs.shape[-1]} on 1 kv head, v of {C} -> {o_latent.shape}, W_uv -> {out2.shape}")
print("the same attention (|diff| < 1e-4):", float(np.abs(out1 - out2).max()) < 1e-4)

# 3. Served from a paged cache that keeps the latent rows once: V is read from each K row's first 512 (v_from_k).
paged = llmkit.PagedKVCache(n_layers=1, n_kv_heads=1, head_dim=C + R, v_head_dim=C, v_from_k=True, n_blocks=32)
seq = paged.new_sequence()
paged.append(0, seq, cache[0])                      # K alone: (T, 1, 576)
o_paged = paged.attention(0, q_abs[None], [seq], scale=scale)[0]
print(f"paged latent cache: {paged.memory_bytes} bytes for {T} tokens (K's rows only), out {o_paged.shape},",
      "the same:", float(np.abs(o_paged - o_latent).max()) < 1e-5)

# 4. A context shift on the latent cache. A fused rope of rotary_dim 64 turns the LAST 64 of each row alone
# (k_pe after the latent; DeepSeek-V3's GPT-J pairs): on append, on the queries (q_pe) and on erase, which here
# keeps 4 sinks, drops the next 100 tokens, moves the rest down and turns their k_pe back by 100 positions.
rope = {"rotary_dim": R, "layout": "interleaved"}
shifting = llmkit.KVCache(n_layers=1, n_kv_heads=1, head_dim=C + R, v_head_dim=C, v_from_k=True, capacity=T)
s = shifting.new_sequence()
shifting.append(0, s, cache[0], rope=rope)       # k_pe rotated at positions 0..299
shifting.erase(s, 4, 104, rope=rope)
o_shift = shifting.attention(0, q_abs[None], [s], scale=scale, rope=rope)[0]
# The same from llmkit.attention over the kept rows, their k_pe rotated at 0..199 and q_pe at 199 by llmkit.rope.
kept = np.r_[0:4, 104:T]
kept_rows = cache[0, kept].copy()                 # (200, 1, 576)
kept_rows[:, :, C:] = llmkit.rope(kept_rows[None, :, :, C:], np.arange(len(kept)), layout="interleaved")[0]
q_turned = q_abs.copy()
q_turned[:, :, C:] = llmkit.rope(q_abs[None, :, :, C:], [len(kept) - 1], layout="interleaved")[0]
o_kept = llmkit.attention(q_turned[None], kept_rows[None], kept_rows[None, ..., :C], scale=scale, causal=False)[0]
print(f"after erasing 100 of {T} tokens: {shifting.length(s)} held, {shifting.memory_bytes} bytes;",
      "attention as over the kept rows (|diff| < 1e-5):", float(np.abs(o_shift - o_kept).max()) < 1e-5)

# What a token costs in the cache per layer in bf16, with DeepSeek-V3's 128 heads and 61 layers.
layers, heads = 61, 128
per_token = dict(n_layers=1, dtype="bf16", context=1)
mla = llmkit.kv_cache_bytes(**per_token, n_kv_heads=1, head_dim=C + R, v_head_dim=C, v_from_k=True)  # latent + rope
mha = llmkit.kv_cache_bytes(**per_token, n_kv_heads=heads, head_dim=N + R, v_head_dim=N)  # each head's k (192), v (128)
gqa = llmkit.kv_cache_bytes(**per_token, n_kv_heads=8, head_dim=128)
print(f"bytes per token and layer: MLA {mla}, its heads as MHA {mha} ({mha // mla}x), GQA with 8 kv heads of 128 {gqa}")
ctx = 128 * 1024
print(f"DeepSeek-V3 at {ctx} tokens: {layers * mla * ctx / 2**30:.2f} GiB (MLA) against "
      f"{layers * mha * ctx / 2**30:.0f} GiB (MHA)")
