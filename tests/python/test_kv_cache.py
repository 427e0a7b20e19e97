"""llmkit.KVCache and llmkit.PagedKVCache against a float64 numpy reference over the values each
cache dtype stores (bf16/fp16 rounding, int8 with its per-token-per-head scale, FP8 as torch's
float8 casts of x / scale), plus paging:
bit-identical to the contiguous cache, fork sharing blocks with copy-on-write, errors."""

import math

import numpy as np
import pytest

import llmkit
from budget import examples

DIMS = [64, 80, 96, 128, 256]
HEADS = [(4, 4), (8, 2), (6, 1)]
HEAD_IDS = ["mha", "gqa", "mqa"]
DTYPES = ["fp32", "bf16", "fp16", "int8", "fp8_e4m3", "fp8_e5m2"]
# Against the unquantised inputs on N(0, 1) rows (see tests/attention/test_kv_cache.cpp).
RAW_TOL = {"int8": 0.03, "fp8_e4m3": 0.2, "fp8_e5m2": 0.45}


def stored(x, dtype):
    """What a cache of `dtype` holds for rows x (..., D), as float64."""
    x = np.asarray(x, np.float32)
    if dtype == "fp32":
        return x.astype(np.float64)
    if dtype == "fp16":
        return x.astype(np.float16).astype(np.float64)
    if dtype == "bf16":  # round to nearest even on the top 16 bits
        u = x.view(np.uint32).astype(np.uint64)
        u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
        return u.astype(np.uint32).view(np.float32).astype(np.float64)
    if dtype.startswith("fp8"):  # torch's float8 cast of x / scale, scale = absmax / 448 (57344) per token and head
        torch = pytest.importorskip("torch")
        t = torch.from_numpy(x)
        amax = t.abs().amax(dim=-1, keepdim=True)
        e4m3 = dtype == "fp8_e4m3"
        scale = torch.where(amax > 0, amax / (448.0 if e4m3 else 57344.0), torch.ones_like(amax))
        q = (t / scale).to(torch.float8_e4m3fn if e4m3 else torch.float8_e5m2)
        return (q.to(torch.float64) * scale.to(torch.float64)).numpy()
    amax = np.abs(x).max(axis=-1, keepdims=True)  # int8: scale = absmax / 127 per token and head
    scale = (amax / np.float32(127)).astype(np.float32)
    inv = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, 1), 0).astype(np.float32)
    qv = np.clip(np.rint(x * inv), -127, 127)
    return qv.astype(np.float64) * scale.astype(np.float64)


def ref(q, ks, vs, *, causal=True, window=0, sinks=None, softcap=0.0):
    """float64 attention of q (B, Sq, Hq, D), the last Sq tokens of sequence b with keys ks[b] (L_b, Hkv, D)."""
    q = np.asarray(q, np.float64)
    B, Sq, Hq, D = q.shape
    out = np.zeros((B, Sq, Hq, np.shape(vs[0])[-1]))  # V's head_dim may differ from D
    for b in range(B):
        k, v = np.asarray(ks[b], np.float64), np.asarray(vs[b], np.float64)
        L, Hkv = k.shape[0], k.shape[1]
        kk, vv = np.repeat(k, Hq // Hkv, axis=1), np.repeat(v, Hq // Hkv, axis=1)
        s = np.einsum("ihd,jhd->hij", q[b], kk) / math.sqrt(D)
        if softcap:
            s = softcap * np.tanh(s / softcap)
        pos = np.arange(Sq)[:, None] + L - Sq
        j = np.arange(L)[None, :]
        vis = np.ones((Sq, L), bool)
        if causal or window:
            vis &= j <= pos
        if window:
            vis &= j > pos - window
        s = np.where(vis, s, -np.inf)
        m = s.max(axis=-1, keepdims=True)
        if sinks is not None:
            m = np.maximum(m, np.asarray(sinks, np.float64)[:, None, None])
        p = np.exp(s - m)
        den = p.sum(axis=-1, keepdims=True)
        if sinks is not None:
            den = den + np.exp(np.asarray(sinks, np.float64)[:, None, None] - m)
        out[b] = np.einsum("hij,jhd->ihd", p / den, vv)
    return out


def make_cache(kind, *, Hkv, D, dtype, layers=1, capacity=512, seqs=4, block_size=16):
    if kind == "contiguous":
        return llmkit.KVCache(n_layers=layers, n_kv_heads=Hkv, head_dim=D, capacity=capacity, max_sequences=seqs,
                              dtype=dtype)
    blocks = seqs * -(-capacity // block_size)
    return llmkit.PagedKVCache(n_layers=layers, n_kv_heads=Hkv, head_dim=D, n_blocks=blocks, block_size=block_size,
                               max_sequences=seqs, max_blocks_per_seq=-(-capacity // block_size), dtype=dtype)


def rows(rng, n, H, D):
    return rng.standard_normal((n, H, D)).astype(np.float32)


# Where attention decodes int8 caches in integers (llmkit.attention_isa() ==
# "avx512vnni": queries and weights rounded to int16), its query tiles of fewer
# than 16 rows per kv head (decode, a prefill's last tile) meet the float64
# reference over the stored values to 3e-4 (tests/attention/kv_helpers.hpp:
# at most 1.3e-4 measured on N(0, 1) inputs) instead of float32's 4e-6.
INT8_IN_INTEGERS = llmkit.attention_isa() == "avx512vnni"


def check(got, want, dtype, k_in=None):
    tol = (3e-4 if dtype == "int8" and INT8_IN_INTEGERS else 4e-6) + 1e-5 * np.abs(want)
    assert np.all(np.abs(np.asarray(got, np.float64) - want) <= tol), np.max(np.abs(got - want))


@pytest.mark.parametrize("kind", ["contiguous", "paged"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("Hq,Hkv", HEADS, ids=HEAD_IDS)
@pytest.mark.parametrize("phase", ["prefill", "chunked", "decode"])
def test_cache_attention_matches_reference(rng, kind, dtype, Hq, Hkv, phase):
    for D in DIMS:
        c = make_cache(kind, Hkv=Hkv, D=D, dtype=dtype)
        ks, vs, ids = [], [], []
        if phase == "decode":  # different lengths in one call; the new token appended first
            for L in (1, 60, 300):
                s = c.new_sequence()
                k, v = rows(rng, L, Hkv, D), rows(rng, L, Hkv, D)
                c.append(0, s, k[:-1], v[:-1])
                c.append(0, s, k[-1:], v[-1:])
                ids.append(s), ks.append(k), vs.append(v)
            Sq = 1
        else:
            s = c.new_sequence()
            k, v = rows(rng, 73, Hkv, D), rows(rng, 73, Hkv, D)
            if phase == "chunked":  # a cached prefix of 50, then a chunk of 23 attending to it and itself
                c.append(0, s, k[:50], v[:50])
                c.append(0, s, k[50:], v[50:])
                Sq = 23
            else:
                c.append(0, s, k, v)
                Sq = 73
            ids, ks, vs = [s], [k], [v]
        q = rng.standard_normal((len(ids), Sq, Hq, D)).astype(np.float32)
        out = c.attention(0, q, ids)
        assert out.shape == q.shape and out.dtype == np.float32
        want = ref(q, [stored(k, dtype) for k in ks], [stored(v, dtype) for v in vs])
        check(out, want, dtype)
        if dtype in RAW_TOL:  # against the unquantised inputs: the stated tolerances
            assert np.max(np.abs(out - ref(q, ks, vs))) < RAW_TOL[dtype]


@pytest.mark.parametrize("kind", ["contiguous", "paged"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_v_head_dim_and_v_read_from_k_match_reference(rng, kind, dtype):
    """DeepSeek's per-head form (K 192, V 128) and multi-head latent attention's cache (one kv head of
    576 whose first 512 elements are V: v_from_k), through prefill, decode steps and split-KV parts."""
    for Hq, Hkv, D, Dv, from_k in ((8, 2, 192, 128, False), (16, 1, 576, 512, True), (4, 4, 64, 96, False)):
        opts = dict(n_layers=1, n_kv_heads=Hkv, head_dim=D, v_head_dim=Dv, v_from_k=from_k, dtype=dtype)
        c = (llmkit.KVCache(capacity=128, max_sequences=2, **opts) if kind == "contiguous"
             else llmkit.PagedKVCache(n_blocks=16, block_size=16, **opts))
        s = c.new_sequence()
        k = rows(rng, 40, Hkv, D)
        v = k[..., :Dv] if from_k else rows(rng, 40, Hkv, Dv)
        q = rng.standard_normal((40, Hq, D)).astype(np.float32)
        out = c.prefill(0, s, q, k, None if from_k else v)
        assert out.shape == (40, Hq, Dv)
        ks, vs = stored(k, dtype), (stored(k, dtype)[..., :Dv] if from_k else stored(v, dtype))
        check(out[None], ref(q[None], [ks], [vs]), dtype)
        for step in range(3):  # decode, the last step in split-KV parts of 16 keys
            k1 = rows(rng, 1, Hkv, D)
            v1 = None if from_k else rows(rng, 1, Hkv, Dv)
            q1 = rng.standard_normal((1, Hq, D)).astype(np.float32)
            out1 = c.decode(0, [s], q1, k1, v1, split_keys=16 if step == 2 else None)
            assert out1.shape == (1, Hq, Dv)
            k = np.concatenate([k, k1])
            v = k[..., :Dv] if from_k else np.concatenate([v, v1])
            ks, vs = stored(k, dtype), (stored(k, dtype)[..., :Dv] if from_k else stored(v, dtype))
            check(out1[:, None], ref(q1[:, None], [ks], [vs]), dtype)
        if dtype == "int8":  # against the unquantised inputs (rows of 576: see test_kv_cache.cpp)
            assert np.max(np.abs(out1[:, None] - ref(q1[:, None], [k], [v]))) < (0.05 if D > 256 else 0.03)


def test_v_from_k_caches_hold_k_alone_and_refuse_a_v_or_a_rope_over_v(rng):
    c = llmkit.KVCache(n_layers=2, n_kv_heads=1, head_dim=576, v_head_dim=512, v_from_k=True, capacity=64,
                       dtype="bf16")
    assert c.memory_bytes == 2 * 64 * 576 * 2  # layers x tokens x K's row in bf16: no V
    s = c.new_sequence()
    k = rows(rng, 4, 1, 576)
    with pytest.raises(ValueError, match="keeps no V"):
        c.append(0, s, k, k[..., :512])
    # A fused rope turns the rotary part at the end of each row (see below): all of the row, or
    # dims reaching into V's 512, would turn the values too.
    with pytest.raises(ValueError, match=r"rotary_dims must be in 2\.\.64 \(head_dim 576 - v_head_dim 512\), got 0"):
        c.append(0, s, k, rope=True)
    with pytest.raises(ValueError, match="got 66"):
        c.append(0, s, k, rope={"rotary_dim": 66})
    assert c.length(s) == 0
    own = llmkit.PagedKVCache(n_layers=1, n_kv_heads=2, head_dim=192, v_head_dim=128, n_blocks=4)
    t = own.new_sequence()
    with pytest.raises(ValueError, match="v: tensor pointer is NULL"):
        own.append(0, t, rows(rng, 2, 2, 192))
    with pytest.raises(ValueError, match="v_head_dim"):
        own.append(0, t, rows(rng, 2, 2, 192), rows(rng, 2, 2, 192))
    with pytest.raises(ValueError, match="must not exceed head_dim"):
        llmkit.KVCache(n_layers=1, n_kv_heads=1, head_dim=64, v_head_dim=128, v_from_k=True, capacity=8)
    with pytest.raises(ValueError, match="v_head_dim"):
        llmkit.KVCache(n_layers=1, n_kv_heads=1, head_dim=64, v_head_dim=0, capacity=8)


def test_fp8_caches_take_torch_dtypes_and_count_int8_bytes(rng):
    """The FP8 dtypes by name, alias and torch dtype give the same cache (the same bits); a byte per element
    and a float32 scale per row, as int8; kv_cache_bytes counts a byte; an unknown name is refused."""
    torch = pytest.importorskip("torch")
    k, v = rows(rng, 20, 2, 64), rows(rng, 20, 2, 64)
    q = rng.standard_normal((1, 20, 8, 64)).astype(np.float32)
    for names in (("fp8_e4m3", "float8_e4m3fn", "e4m3", torch.float8_e4m3fn),
                  ("fp8_e5m2", "float8_e5m2", "E5M2", torch.float8_e5m2)):
        outs = []
        for name in names:
            c = llmkit.KVCache(n_layers=1, n_kv_heads=2, head_dim=64, capacity=32, dtype=name)
            assert c.memory_bytes == 2 * 32 * 2 * (64 + 4)
            s = c.new_sequence()
            c.append(0, s, k, v)
            outs.append(c.attention(0, q, [s]))
        assert all(np.array_equal(o, outs[0]) for o in outs)
        assert llmkit.kv_cache_bytes(n_layers=1, n_kv_heads=2, head_dim=64, dtype=names[-1], context=32) == 2 * 32 * 2 * 64
    with pytest.raises(ValueError, match="fp8_e4m3 or fp8_e5m2"):
        llmkit.KVCache(n_layers=1, n_kv_heads=2, head_dim=64, capacity=32, dtype="fp8_e3m4")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_size", [1, 16, 33])
def test_paged_is_bit_identical_to_contiguous(rng, dtype, block_size):
    flat = make_cache("contiguous", Hkv=2, D=128, dtype=dtype, capacity=700)
    paged = make_cache("paged", Hkv=2, D=128, dtype=dtype, capacity=700, block_size=block_size)
    ids = []
    for L in (600, 3, 129):
        k, v = rows(rng, L, 2, 128), rows(rng, L, 2, 128)
        a, b = flat.new_sequence(), paged.new_sequence()
        assert a == b
        for lo, hi in ((0, L // 3), (L // 3, L)):
            flat.append(0, a, k[lo:hi], v[lo:hi])
            paged.append(0, b, k[lo:hi], v[lo:hi])
        ids.append(a)
    q = rng.standard_normal((3, 1, 8, 128)).astype(np.float32)
    for split in (None, 64):
        assert np.array_equal(flat.attention(0, q, ids, split_keys=split), paged.attention(0, q, ids, split_keys=split))
    q = rng.standard_normal((1, 600, 8, 128)).astype(np.float32)
    assert np.array_equal(flat.attention(0, q, ids[:1]), paged.attention(0, q, ids[:1]))


def test_fork_shares_blocks_and_copy_on_write_keeps_the_parent(rng):
    c = make_cache("paged", Hkv=2, D=64, dtype="bf16", layers=2, capacity=256, block_size=16)
    k, v = rows(rng, 40, 2, 64), rows(rng, 40, 2, 64)
    s = c.new_sequence()
    for layer in (0, 1):
        c.append(layer, s, k, v)
    block = c.memory_bytes // 3
    assert c.memory_bytes == 3 * block
    q = rng.standard_normal((1, 1, 8, 64)).astype(np.float32)
    before = c.attention(0, q, [s])
    f = c.fork(s)
    assert c.memory_bytes == 3 * block and c.block_table(f) == c.block_table(s)
    k2, v2 = rows(rng, 1, 2, 64), rows(rng, 1, 2, 64)
    c.append(0, f, k2, v2)  # into the shared, partly filled third block: copied first
    assert c.memory_bytes == 4 * block
    assert c.block_table(f)[:2] == c.block_table(s)[:2] and c.block_table(f)[2] != c.block_table(s)[2]
    assert np.array_equal(c.attention(0, q, [s]), before)
    q2 = rng.standard_normal((1, 1, 8, 64)).astype(np.float32)
    want = ref(q2, [stored(np.concatenate([k, k2]), "bf16")], [stored(np.concatenate([v, v2]), "bf16")])
    check(c.attention(0, q2, [f]), want, "bf16")
    c.free(s)
    assert c.memory_bytes == 3 * block
    c.free(f)
    assert c.memory_bytes == 0 and c.free_blocks == 4 * 16  # 4 sequences of 256 tokens


def test_prefill_then_decode_equals_the_full_prefill(rng):
    # Within 2e-6, not bitwise: the prefill multiplies 64-row tiles (a gemm), decode takes dot products.
    c = llmkit.PagedKVCache(n_layers=1, n_kv_heads=2, head_dim=96, n_blocks=64, dtype="fp16")
    q, k, v = (rng.standard_normal((90, h, 96)).astype(np.float32) for h in (8, 2, 2))
    full = c.prefill(0, c.new_sequence(), q, k, v)
    s = c.new_sequence()
    part = c.prefill(0, s, q[:50], k[:50], v[:50])
    np.testing.assert_allclose(part, full[:50], atol=2e-6)
    for t in range(50, 90):
        out = c.decode(0, [s], q[t:t + 1], k[t:t + 1], v[t:t + 1])
        np.testing.assert_allclose(out[0], full[t], atol=2e-6)
    assert c.length(s) == 90


def test_options_sinks_window_softcap(rng):
    c = make_cache("paged", Hkv=2, D=64, dtype="fp32")
    ids, ks, vs = [], [], []
    for L in (5, 200):
        s = c.new_sequence()
        k, v = rows(rng, L, 2, 64), rows(rng, L, 2, 64)
        c.append(0, s, k, v)
        ids.append(s), ks.append(k), vs.append(v)
    q = rng.standard_normal((2, 3, 8, 64)).astype(np.float32)
    sinks = np.linspace(-2, 3, 8).astype(np.float32)
    check(c.attention(0, q, ids, sinks=sinks), ref(q, ks, vs, sinks=sinks), "fp32")
    check(c.attention(0, q, ids, window=16), ref(q, ks, vs, window=16), "fp32")
    np.testing.assert_array_equal(c.attention(0, q, ids, window=2**80), c.attention(0, q, ids))  # past int64: no window
    check(c.attention(0, q, ids, softcap=4.0), ref(q, ks, vs, softcap=4.0), "fp32")
    check(c.attention(0, q, ids, causal=False), ref(q, ks, vs, causal=False), "fp32")


def test_thread_count_does_not_change_the_bits(rng):
    c = make_cache("contiguous", Hkv=1, D=128, dtype="int8", capacity=5000, seqs=2)
    s = c.new_sequence()
    c.append(0, s, rows(rng, 4000, 1, 128), rows(rng, 4000, 1, 128))
    q = rng.standard_normal((1, 1, 4, 128)).astype(np.float32)
    one = c.attention(0, q, [s], num_threads=1)
    for n in (2, 3, 8):
        assert np.array_equal(c.attention(0, q, [s], num_threads=n), one)


def test_attention_tables_and_errors(rng):
    c = llmkit.PagedKVCache(n_layers=1, n_kv_heads=1, head_dim=64, n_blocks=6, block_size=16, max_sequences=3,
                            max_blocks_per_seq=4)
    s = c.new_sequence()
    k = rows(rng, 60, 1, 64)
    c.append(0, s, k, k)
    q = rng.standard_normal((1, 1, 4, 64)).astype(np.float32)
    table = np.array([c.block_table(s) + [0]], np.int32)
    assert np.array_equal(c.attention_tables(0, q, table, [60]), c.attention(0, q, [s]))
    # numpy's default int64, lists, and uint8 lengths give the same; floats are refused, not truncated
    same = c.attention(0, q, [s])
    assert np.array_equal(c.attention_tables(0, q, table.astype(np.int64), np.array([60], np.uint8)), same)
    assert np.array_equal(c.attention_tables(0, q, table.tolist(), [60]), same)
    with pytest.raises(ValueError, match="block_tables must hold integers"):
        c.attention_tables(0, q, table.astype(np.float32), [60])
    with pytest.raises(ValueError, match="seq_lens must hold integers"):
        c.attention_tables(0, q, table, [60.0])
    with pytest.raises(ValueError, match="block_tables: 4294967296 does not fit int32"):
        c.attention_tables(0, q, np.array([[0, 2**32]]), [60])
    table[0, 2] = 6
    with pytest.raises(ValueError, match=r"block_tables\[0, 2\] = 6 points outside the pool"):
        c.attention_tables(0, q, table, [60])
    with pytest.raises(ValueError, match="longest sequence"):
        c.append(0, s, k[:5], k[:5])
    t = c.new_sequence()
    with pytest.raises(MemoryError, match="pool is exhausted"):
        c.append(0, t, k[:40], k[:40])
    assert c.length(t) == 0 and c.free_blocks == 2
    with pytest.raises(ValueError, match="not a live sequence"):
        c.append(0, 2, k[:1], k[:1])
    with pytest.raises(ValueError, match="seq_ids\\[0\\] = 9"):
        c.attention(0, q, [9])
    with pytest.raises(ValueError, match="differs from k"):
        c.append(0, s, k[:1], k[:1].astype(np.float16))
    with pytest.raises(ValueError, match="kv heads"):
        c.append(0, s, rows(rng, 1, 2, 64), rows(rng, 1, 2, 64))
    with pytest.raises(ValueError, match="not finite"):
        c.append(0, t, np.full((1, 1, 64), np.nan, np.float32), k[:1])
    with pytest.raises(ValueError, match="append the new tokens"):
        c.attention(0, np.zeros((1, 61, 4, 64), np.float32), [s])
    with pytest.raises(ValueError, match="head_dim 32 differs"):
        c.attention(0, np.zeros((1, 1, 4, 32), np.float32), [s])
    two = llmkit.KVCache(n_layers=1, n_kv_heads=2, head_dim=64, capacity=8)
    two.append(0, two.new_sequence(), np.ones((1, 2, 64), np.float32), np.ones((1, 2, 64), np.float32))
    with pytest.raises(ValueError, match="multiple"):
        two.attention(0, np.zeros((1, 1, 3, 64), np.float32), [0])
    with pytest.raises(ValueError, match="KV-cache dtype"):
        llmkit.KVCache(n_layers=1, n_kv_heads=1, head_dim=64, capacity=8, dtype="fp8")
    kc = llmkit.KVCache(n_layers=1, n_kv_heads=1, head_dim=64, capacity=8)
    s = kc.new_sequence()
    with pytest.raises(ValueError, match="capacity of 8"):
        kc.append(0, s, k[:9], k[:9])


def test_torch_bf16_inputs_give_torch_outputs(rng):
    torch = pytest.importorskip("torch")
    c = llmkit.KVCache(n_layers=1, n_kv_heads=2, head_dim=64, capacity=64, dtype="bf16")
    s = c.new_sequence()
    k = torch.randn(20, 2, 64, dtype=torch.bfloat16)
    v = torch.randn(20, 2, 64, dtype=torch.bfloat16)
    q = torch.randn(1, 20, 8, 64, dtype=torch.bfloat16)
    c.append(0, s, k, v)
    out = c.attention(0, q, [s])
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16 and out.shape == q.shape
    # torch's SDPA on the same bf16 values, in float32, with the causal mask bottom-right aligned (Sq == Skv).
    want = torch.nn.functional.scaled_dot_product_attention(
        q.float().transpose(1, 2), k.float().repeat_interleave(4, dim=1)[None].transpose(1, 2),
        v.float().repeat_interleave(4, dim=1)[None].transpose(1, 2), is_causal=True).transpose(1, 2)
    assert torch.max(torch.abs(out.float() - want)).item() < 2e-2


def test_torch_block_tables_of_any_integer_dtype(rng):
    torch = pytest.importorskip("torch")
    c = llmkit.PagedKVCache(n_layers=1, n_kv_heads=1, head_dim=32, n_blocks=4, block_size=8)
    s = c.new_sequence()
    k = rows(rng, 20, 1, 32)
    c.append(0, s, k, k)
    q = rng.standard_normal((1, 1, 2, 32)).astype(np.float32)
    want = c.attention(0, q, [s])
    table = c.block_table(s)
    for dt in (torch.int32, torch.int64, torch.int16):  # torch.tensor's default is int64
        got = c.attention_tables(0, q, torch.tensor([table], dtype=dt), torch.tensor([20], dtype=dt))
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("paged", [True, False])
def test_threads_sharing_a_cache(paged):
    # Python threads release the GIL in every cache call; the C caches let
    # attention calls run together but not alongside an append, fork or free.
    # The bindings serialise those (a shared lock), so threads sharing a cache
    # see consistent lengths and the pool gets every block back. (Without the
    # lock, this test failed in each of 6 runs: blocks leaked from the free
    # list, lengths were off, live sequences were reported dead.)
    import threading

    if paged:
        c = llmkit.PagedKVCache(n_layers=1, n_kv_heads=2, head_dim=32, block_size=4, n_blocks=2000, max_sequences=64)
    else:
        c = llmkit.KVCache(n_layers=1, n_kv_heads=2, head_dim=32, capacity=64, max_sequences=64)
    rng = np.random.default_rng(5)
    kv = rows(rng, 3, 2, 32)
    q = rng.standard_normal((1, 1, 4, 32)).astype(np.float32)
    problems = []

    def worker(seed):
        r = np.random.default_rng(seed)
        try:
            # 5000 rounds per thread in the Release stage; a fifth under the
            # sanitizers (40 s of that stage's Python tests at 5000), whose
            # memory checks need the paths, not the count.
            for _ in range(examples(5000)):
                s = c.new_sequence()
                n = int(r.integers(1, 5))
                for _ in range(n):
                    c.append(0, s, kv, kv)
                f = c.fork(s)
                c.append(0, f, kv, kv)
                if c.length(s) != 3 * n or c.length(f) != 3 * n + 3:
                    problems.append(f"lengths {c.length(s)}, {c.length(f)} after {n} appends")
                out = c.attention(0, q, [f])
                if not np.isfinite(out).all():
                    problems.append("a non-finite result")
                c.free(s)
                c.free(f)
        except Exception as e:  # noqa: BLE001 - reported below, with the thread's first failure
            problems.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []
    if paged:
        assert c.free_blocks == 2000
    s = c.new_sequence()
    assert s < 64 and c.length(s) == 0


def rope64(x, positions, theta=10000.0):
    """float64 NeoX RoPE of x (..., S, H, D) at positions (S,): pairs (x[k], x[k + D/2]) turn by p * theta**(-2k/D)."""
    x = np.asarray(x, np.float64)
    D = x.shape[-1]
    inv = theta ** (-np.arange(0, D, 2, dtype=np.float64) / D)
    a = np.asarray(positions, np.float64)[:, None] * inv[None, :]  # (S, D/2)
    c, s = np.cos(a)[:, None, :], np.sin(a)[:, None, :]
    x0, x1 = x[..., : D // 2], x[..., D // 2:]
    return np.concatenate([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)


@pytest.mark.parametrize("kind", ["contiguous", "paged"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_fused_rope_matches_rope_then_append_and_a_float64_reference(rng, kind, dtype):
    Hkv, Hq, D = 2, 8, 64
    scaled = dict(theta=500000.0, layout="interleaved",
                  scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 64})
    for rope in (True, scaled):
        opts = {} if rope is True else rope
        fused = make_cache(kind, Hkv=Hkv, D=D, dtype=dtype)
        plain = make_cache(kind, Hkv=Hkv, D=D, dtype=dtype)
        s = fused.new_sequence()
        assert plain.new_sequence() == s
        ks, vs = [], []
        for n in (19, 1, 1):  # a prefill chunk across a paged block edge, then decode steps
            k, v = rows(rng, n, Hkv, D), rows(rng, n, Hkv, D)
            pos = np.arange(plain.length(s), plain.length(s) + n)
            fused.append(0, s, k, v, rope=rope)
            plain.append(0, s, llmkit.rope(k[None], pos, **opts)[0], v)
            ks.append(k)
            vs.append(v)
        L = plain.length(s)
        q = rng.standard_normal((1, 2, Hq, D)).astype(np.float32)
        q_before = q.copy()
        out = fused.attention(0, q, [s], rope=rope)
        np.testing.assert_array_equal(q, q_before)  # rotated in a copy
        np.testing.assert_array_equal(out, plain.attention(0, llmkit.rope(q, np.arange(L - 2, L), **opts), [s]))
        if rope is True and dtype == "fp32":  # against float64 RoPE and attention
            want = ref(rope64(q, np.arange(L - 2, L)), [rope64(np.concatenate(ks), np.arange(L))], [np.concatenate(vs)])
            check(out, want, "fp32")
            assert np.abs(out - fused.attention(0, q, [s])).max() > 0.01  # the rotation matters


def test_fused_rope_through_prefill_decode_and_tables(rng):
    Hkv, Hq, D = 2, 4, 32
    c = make_cache("paged", Hkv=Hkv, D=D, dtype="fp32")
    p = make_cache("paged", Hkv=Hkv, D=D, dtype="fp32")
    a, b = c.new_sequence(), c.new_sequence()
    assert (p.new_sequence(), p.new_sequence()) == (a, b)
    for s, n in ((a, 7), (b, 20)):
        q, k, v = (rng.standard_normal((n, H, D)).astype(np.float32) for H in (Hq, Hkv, Hkv))
        got = c.prefill(0, s, q, k, v, rope=True)
        p.append(0, s, llmkit.rope(k[None], np.arange(n))[0], v)
        np.testing.assert_array_equal(got, p.attention(0, llmkit.rope(q[None], np.arange(n)), [s])[0])
    q, k, v = (rng.standard_normal((2, H, D)).astype(np.float32) for H in (Hq, Hkv, Hkv))
    got = c.decode(0, [a, b], q, k, v, rope=True)
    for i, s in enumerate((a, b)):
        p.append(0, s, llmkit.rope(k[i][None, None], [c.length(s) - 1])[0], v[i][None])
    lens = [c.length(a), c.length(b)]
    qr = llmkit.rope(q[:, None], np.array([[lens[0] - 1], [lens[1] - 1]]))
    np.testing.assert_array_equal(got, p.attention(0, qr, [a, b])[:, 0])
    tables = [c.block_table(a) + [0] * 2, c.block_table(b)]
    width = max(len(t) for t in tables)
    tables = [t + [0] * (width - len(t)) for t in tables]
    np.testing.assert_array_equal(c.attention_tables(0, q[:, None], tables, lens, rope=True)[:, 0], got)
    with pytest.raises(ValueError, match="rope does not take 'base'"):
        c.attention(0, q[:, None], [a, b], rope={"base": 10000.0})
    with pytest.raises(TypeError, match="rope must be None, True or a dict"):
        c.append(0, a, k[:1], v[:1], rope="neox")
    with pytest.raises(ValueError, match="rotary_dims"):
        c.append(0, a, k[:1], v[:1], rope={"rotary_dim": 34})
    assert c.length(a) == lens[0]  # nothing appended


@pytest.mark.parametrize("kind", ["contiguous", "paged"])
def test_fused_longrope_picks_hugging_faces_factors_by_the_calls_positions(rng, kind):
    # Hugging Face's LongRoPE pair (Phi-3): a call whose largest position + 1 passes the original
    # context uses the long factors, keys and queries alike; a decode step picks for the whole batch.
    Hkv, Hq, D, orig = 2, 4, 32, 8
    short = (1.0 + 0.25 * np.arange(D // 2)).tolist()
    long_ = (1.0 + 4.0 * np.arange(D // 2)).tolist()
    hf = {"rope_type": "longrope", "short_factor": short, "long_factor": long_, "factor": 16.0,
          "original_max_position_embeddings": orig}
    rope = {"scaling": hf}
    pinned = {f: {"scaling": {"type": "longrope", "frequency_factors": fs, "factor": 16.0,
                              "original_max_position": orig}} for f, fs in (("short", short), ("long", long_))}
    c, p = make_cache(kind, Hkv=Hkv, D=D, dtype="fp32"), make_cache(kind, Hkv=Hkv, D=D, dtype="fp32")
    a, b = c.new_sequence(), c.new_sequence()
    assert (p.new_sequence(), p.new_sequence()) == (a, b)
    # Prefill chunks: a (6 then 4 tokens: short, then long past 8), b (3 tokens: short).
    for s, start, n, which in ((a, 0, 6, "short"), (a, 6, 4, "long"), (b, 0, 3, "short")):
        q, k, v = (rng.standard_normal((n, H, D)).astype(np.float32) for H in (Hq, Hkv, Hkv))
        got = c.prefill(0, s, q, k, v, rope=rope)
        pos = np.arange(start, start + n)
        p.append(0, s, llmkit.rope(k[None], pos, **pinned[which])[0], v)
        np.testing.assert_array_equal(got, p.attention(0, llmkit.rope(q[None], pos, **pinned[which]), [s])[0])
        # llmkit.rope itself picks the same way from its positions.
        np.testing.assert_array_equal(llmkit.rope(k[None], pos, **rope), llmkit.rope(k[None], pos, **pinned[which]))
    # A decode step of both: a's new length 11 passes 8, so b's token (position 3) is rotated long too.
    q, k, v = (rng.standard_normal((2, H, D)).astype(np.float32) for H in (Hq, Hkv, Hkv))
    got = c.decode(0, [a, b], q, k, v, rope=rope)
    for i, s in enumerate((a, b)):
        p.append(0, s, llmkit.rope(k[i][None, None], [p.length(s)], **pinned["long"])[0], v[i][None])
    qr = llmkit.rope(q[:, None], np.array([[10], [3]]), **pinned["long"])
    np.testing.assert_array_equal(got, p.attention(0, qr, [a, b])[:, 0])
    # The factors matter: short ones give other results.
    assert np.abs(got - p.attention(0, llmkit.rope(q[:, None], np.array([[10], [3]]), **pinned["short"]),
                                    [a, b])[:, 0]).max() > 1e-3
    if kind == "paged":
        tables = [c.block_table(a), c.block_table(b)]
        width = max(len(t) for t in tables)
        tables = [t + [0] * (width - len(t)) for t in tables]
        lens = [c.length(a), c.length(b)]
        np.testing.assert_array_equal(c.attention_tables(0, q[:, None], tables, lens, rope=rope)[:, 0], got)
    # A factor list of the wrong length is named before anything is appended.
    with pytest.raises(ValueError, match="frequency_factors holds 15 values; it needs one per rotated pair, 16"):
        c.append(0, a, k[:1], v[:1], rope={"scaling": dict(hf, long_factor=long_[:15])})
    assert c.length(a) == 11


@pytest.mark.parametrize("kind", ["contiguous", "paged"])
def test_truncate_drops_rejected_draft_tokens(rng, kind):
    # Speculative decoding: the target model appends K and V for 5 draft tokens in one chunk (over
    # 2 layers), verification keeps 2, truncate drops the other 3; the next step reads as if they never
    # were there, with fused RoPE rotating the next token at its true position.
    Hkv, Hq, D, layers = 2, 4, 32, 2
    c = make_cache(kind, Hkv=Hkv, D=D, dtype="bf16", layers=layers)
    ref = make_cache(kind, Hkv=Hkv, D=D, dtype="bf16", layers=layers)
    s, r = c.new_sequence(), ref.new_sequence()
    prompt = [(rows(rng, 30, Hkv, D), rows(rng, 30, Hkv, D)) for _ in range(layers)]
    drafts = [(rows(rng, 5, Hkv, D), rows(rng, 5, Hkv, D)) for _ in range(layers)]
    nxt = [(rows(rng, 1, Hkv, D), rows(rng, 1, Hkv, D)) for _ in range(layers)]
    for layer in range(layers):
        for cache, seq in ((c, s), (ref, r)):
            cache.append(layer, seq, *prompt[layer], rope=True)
        c.append(layer, s, *drafts[layer], rope=True)
        ref.append(layer, r, drafts[layer][0][:2], drafts[layer][1][:2], rope=True)
    assert c.length(s) == 35
    c.truncate(s, 32)
    assert [c.length(s, layer) for layer in range(layers)] == [32, 32]
    q = rng.standard_normal((1, Hq, D)).astype(np.float32)
    for layer in range(layers):
        got = c.decode(layer, [s], q, *nxt[layer], rope=True)
        want = ref.decode(layer, [r], q, *nxt[layer], rope=True)
        np.testing.assert_array_equal(got, want)
    if kind == "paged":
        assert c.block_table(s).__len__() == 3 and c.free_blocks == ref.free_blocks
    with pytest.raises(ValueError, match="n = 40 is outside 0..33"):
        c.truncate(s, 40)
    with pytest.raises(ValueError, match="seq"):
        c.truncate(3, 0)


@pytest.mark.parametrize("kind", ["contiguous", "paged"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_erase_shifts_the_context_as_llama_cpp_does(rng, kind, dtype):
    # llama.cpp's context shift over 2 layers: a sequence of 48 tokens fills its context of 48, so
    # it keeps the first n_keep = 4 (StreamingLLM's sinks), drops the next n_discard = 16 and goes
    # on decoding. Each decode then equals float64 attention over the kept keys rotated at their
    # new positions 0..L-1 (rope64), with the query at position L - 1.
    Hkv, Hq, D, layers, ctx, keep, discard = 2, 4, 32, 2, 48, 4, 16
    c = make_cache(kind, Hkv=Hkv, D=D, dtype=dtype, layers=layers, capacity=ctx)
    s = c.new_sequence()
    ks = [rows(rng, ctx, Hkv, D) for _ in range(layers)]
    vs = [rows(rng, ctx, Hkv, D) for _ in range(layers)]
    for layer in range(layers):
        c.append(layer, s, ks[layer], vs[layer], rope=True)
    with pytest.raises(ValueError, match="capacity|longest sequence"):
        c.append(0, s, ks[0][:1], vs[0][:1], rope=True)
    c.erase(s, keep, keep + discard, rope=True)
    assert [c.length(s, layer) for layer in range(layers)] == [ctx - discard] * layers
    tol = 1e-5 if dtype == "fp32" else 3e-2  # bf16: K rounded again after its turn (test_kv_erase.cpp)
    for step in range(3):
        L = c.length(s) + 1
        q = rng.standard_normal((1, Hq, D)).astype(np.float32)
        for layer in range(layers):
            k1, v1 = rows(rng, 1, Hkv, D), rows(rng, 1, Hkv, D)
            got = c.decode(layer, [s], q, k1, v1, rope=True)
            ks[layer], vs[layer] = np.concatenate([ks[layer], k1]), np.concatenate([vs[layer], v1])
            kept = np.r_[0:keep, keep + discard:len(ks[layer])]
            want = ref(rope64(q[:, None], [L - 1]), [rope64(ks[layer][kept], np.arange(L))],
                       [stored(vs[layer][kept], dtype)])[:, 0]
            np.testing.assert_allclose(got, want, atol=tol, rtol=0)
    if kind == "paged":  # 35 tokens: 3 blocks of 16, the rest back in the pool
        assert len(c.block_table(s)) == 3
    # Without a rotation K moves as it is: a model without RoPE (ALiBi's).
    a, b = c.new_sequence(), c.new_sequence()
    k, v = rows(rng, 20, Hkv, D), rows(rng, 20, Hkv, D)
    for layer in range(layers):
        c.append(layer, a, k, v)
        c.append(layer, b, np.concatenate([k[:3], k[9:]]), np.concatenate([v[:3], v[9:]]))
    c.erase(a, 3, 9)
    assert c.save(a) == c.save(b)
    # Bad spans name the problem and change nothing.
    before = c.save(a)
    with pytest.raises(ValueError, match=r"\[5, 20\) must satisfy 0 <= from <= to <= 14"):
        c.erase(a, 5, 20)
    with pytest.raises(ValueError, match=r"\[6, 2\)"):
        c.erase(a, 6, 2, rope=True)
    with pytest.raises(ValueError, match="seq"):
        c.erase(3, 0, 1)
    with pytest.raises(TypeError):
        c.erase(a, 0, 1, rope="neox")
    assert c.save(a) == before


def rope64_interleaved(x, positions, theta=10000.0):
    """float64 GPT-J/Llama-layout RoPE of x (..., S, H, D) at positions (S,): pairs (x[2k], x[2k + 1])."""
    x = np.asarray(x, np.float64)
    D = x.shape[-1]
    inv = theta ** (-np.arange(0, D, 2, dtype=np.float64) / D)
    a = np.asarray(positions, np.float64)[:, None] * inv[None, :]
    c, s = np.cos(a)[:, None, :], np.sin(a)[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2] = x[..., 0::2] * c - x[..., 1::2] * s
    out[..., 1::2] = x[..., 0::2] * s + x[..., 1::2] * c
    return out


@pytest.mark.parametrize("kind", ["contiguous", "paged"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_mla_latent_cache_turns_the_rotary_part_at_the_end_of_its_rows(rng, kind, dtype):
    # DeepSeek's absorbed MLA cache: rows of 512 latent dims (also V) and then 64 rotary ones (k_pe). A fused
    # rope of rotary_dim 64 turns the last 64 of each key and query alone, on append, on attention and on
    # erase (a context shift, as llama.cpp's for DeepSeek): each decode then equals float64 attention over
    # the kept rows, their latent as given and their tails rotated at their new positions (rope64_interleaved).
    C, R, Hq, ctx, keep, discard = 512, 64, 8, 40, 4, 16
    layout = dict(n_layers=1, n_kv_heads=1, head_dim=C + R, v_head_dim=C, v_from_k=True, dtype=dtype)
    if kind == "contiguous":
        c = llmkit.KVCache(capacity=ctx, **layout)
    else:
        c = llmkit.PagedKVCache(n_blocks=3, block_size=16, max_blocks_per_seq=3, **layout)
    rope = {"rotary_dim": R, "layout": "interleaved"}  # DeepSeek V3's k_pe and q_pe
    s = c.new_sequence()
    k = rows(rng, ctx, 1, C + R)
    c.append(0, s, k, rope=rope)
    c.erase(s, keep, keep + discard, rope=rope)
    assert c.length(s) == ctx - discard

    def turned(x, positions):
        x = np.asarray(x, np.float64)
        return np.concatenate([x[..., :C], rope64_interleaved(x[..., C:], positions)], -1)

    tol = 1e-5 if dtype == "fp32" else 3e-2  # bf16: K rounded again after its turn (test_kv_erase.cpp)
    for _ in range(3):
        q = rng.standard_normal((1, Hq, C + R)).astype(np.float32)
        k1 = rows(rng, 1, 1, C + R)
        got = c.decode(0, [s], q, k1, rope=rope)
        k = np.concatenate([k, k1])
        kept = np.r_[0:keep, keep + discard:len(k)]
        L = len(kept)
        keys = turned(stored(k[kept], dtype), np.arange(L))
        want = ref(turned(q[:, None], [L - 1]), [keys], [keys[..., :C]])[:, 0]
        np.testing.assert_allclose(got, want, atol=tol, rtol=0)


# Packed queries (cu_seqlens_q): one serving step of decodes and prefill chunks.
PACKED_LENGTHS = [300, 40, 9, 120, 5]
PACKED_COUNTS = [1, 16, 9, 0, 1]  # a decode, a chunk, a whole prompt, nothing, a decode


@pytest.mark.parametrize("kind", ["contiguous", "paged"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "int8", "fp8_e4m3"])
def test_packed_queries_match_reference_and_each_sequence_alone(rng, kind, dtype):
    Hq, Hkv, D = 8, 2, 64
    c = make_cache(kind, Hkv=Hkv, D=D, dtype=dtype, seqs=5)
    ids, ks, vs = [], [], []
    for L in PACKED_LENGTHS:
        s = c.new_sequence()
        k, v = rows(rng, L, Hkv, D), rows(rng, L, Hkv, D)
        c.append(0, s, k, v)
        ids.append(s), ks.append(stored(k, dtype)), vs.append(stored(v, dtype))
    cu = np.concatenate([[0], np.cumsum(PACKED_COUNTS)])
    q = rng.standard_normal((int(cu[-1]), Hq, D)).astype(np.float32)
    for options in ({}, {"window": 5, "softcap": 4.0}, {"sinks": rng.standard_normal(Hq).astype(np.float32)}):
        out, lse = c.attention(0, q, ids, cu_seqlens_q=cu, return_lse=True, **options)
        assert out.shape == q.shape and lse.shape == (q.shape[0], Hq)
        for b, s in enumerate(ids):
            rows_b = slice(cu[b], cu[b + 1])
            if cu[b] == cu[b + 1]:
                continue
            want = ref(q[None, rows_b], [ks[b]], [vs[b]], **options)[0]
            check(out[rows_b], want, dtype)
            alone, alone_lse = c.attention(0, q[None, rows_b], [s], return_lse=True, **options)
            assert np.array_equal(out[rows_b], alone[0]) and np.array_equal(lse[rows_b], alone_lse[0])
    if kind == "paged":
        width = max(len(c.block_table(s)) for s in ids)
        tables = np.array([c.block_table(s) + [0] * (width - len(c.block_table(s))) for s in ids], np.int32)
        got = c.attention_tables(0, q, tables, PACKED_LENGTHS, cu_seqlens_q=cu.tolist())
        assert np.array_equal(got, c.attention(0, q, ids, cu_seqlens_q=cu))


def test_packed_queries_of_torch_stay_torch(rng):
    torch = pytest.importorskip("torch")
    c = make_cache("paged", Hkv=2, D=64, dtype="bf16", seqs=3)
    ids = []
    for L in (30, 7, 50):
        ids.append(c.new_sequence())
        c.append(0, ids[-1], torch.randn(L, 2, 64, dtype=torch.bfloat16), torch.randn(L, 2, 64, dtype=torch.bfloat16))
    q = torch.randn(1 + 7 + 1, 8, 64, dtype=torch.bfloat16)
    cu = torch.tensor([0, 1, 8, 9], dtype=torch.int32)
    out, lse = c.attention(0, q, ids, cu_seqlens_q=cu, return_lse=True)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16 and out.shape == q.shape
    assert isinstance(lse, torch.Tensor) and lse.dtype == torch.float32 and lse.shape == (9, 8)
    assert torch.equal(out[1:8], c.attention(0, q[None, 1:8], [ids[1]])[0])


def test_packed_queries_errors(rng):
    c = make_cache("paged", Hkv=1, D=32, dtype="fp32", seqs=2)
    ids = [c.new_sequence(), c.new_sequence()]
    for s, L in zip(ids, (10, 3)):
        c.append(0, s, rows(rng, L, 1, 32), rows(rng, L, 1, 32))
    q = rng.standard_normal((5, 2, 32)).astype(np.float32)
    with pytest.raises(ValueError, match="must hold B \\+ 1 = 3"):
        c.attention(0, q, ids, cu_seqlens_q=[0, 5])
    with pytest.raises(ValueError, match="sequence 1 of the batch holds 3 tokens"):
        c.attention(0, q, ids, cu_seqlens_q=[0, 1, 5])
    with pytest.raises(ValueError, match="the 5 rows of q"):
        c.attention(0, q, ids, cu_seqlens_q=[0, 1, 4])
    with pytest.raises(ValueError, match="expected 3 dimensions"):
        c.attention(0, q[None], ids, cu_seqlens_q=[0, 2, 5])
    with pytest.raises(ValueError, match="cu_seqlens_q must hold integers"):
        c.attention(0, q, ids, cu_seqlens_q=[0.0, 2.0, 5.0])
    with pytest.raises(ValueError, match="sinks must be 1-D with one value per query head: q has 2 heads"):
        c.attention(0, q, ids, cu_seqlens_q=[0, 2, 5], sinks=np.zeros(3, np.float32))


# Saving and loading a sequence: the same bytes from both kinds of cache, loaded by either (any
# block size) with the same bits; bad bytes refused with the sequence unchanged.
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16", "int8", "fp8_e4m3", "fp8_e5m2"])
def test_save_load_moves_a_sequence_between_caches(rng, dtype):
    Hkv, Hq, D, layers = 2, 4, 32, 2
    src = make_cache("contiguous", Hkv=Hkv, D=D, dtype=dtype, layers=layers, capacity=64)
    s = src.new_sequence()
    for layer, n in enumerate((40, 23)):
        src.append(layer, s, rows(rng, n, Hkv, D), rows(rng, n, Hkv, D))
    data = src.save(s)
    assert isinstance(data, bytes) and data[:8] == b"LLMKITKV"
    q = rng.standard_normal((1, 3, Hq, D)).astype(np.float32)
    want = [src.attention(layer, q, [s]) for layer in range(layers)]
    for kind, block_size in (("paged", 1), ("paged", 7), ("paged", 16), ("contiguous", 16)):
        dst = make_cache(kind, Hkv=Hkv, D=D, dtype=dtype, layers=layers, capacity=64, block_size=block_size)
        t = dst.new_sequence()
        dst.append(0, t, rows(rng, 5, Hkv, D), rows(rng, 5, Hkv, D))  # replaced by the load
        for form in (data, bytearray(data), memoryview(data), np.frombuffer(data, dtype=np.uint8)):
            dst.load(t, form)
            assert [dst.length(t, layer) for layer in range(layers)] == [40, 23]
            assert dst.save(t) == data
            for layer in range(layers):
                np.testing.assert_array_equal(dst.attention(layer, q, [t]), want[layer])


def test_load_refuses_bad_bytes_and_keeps_the_sequence(rng):
    Hkv, D = 2, 32
    src = make_cache("paged", Hkv=Hkv, D=D, dtype="bf16", layers=2, capacity=64)
    s = src.new_sequence()
    src.append(0, s, rows(rng, 40, Hkv, D), rows(rng, 40, Hkv, D))
    data = src.save(s)
    dst = make_cache("contiguous", Hkv=Hkv, D=D, dtype="bf16", layers=2, capacity=32)
    t = dst.new_sequence()
    dst.append(1, t, rows(rng, 3, Hkv, D), rows(rng, 3, Hkv, D))
    before = dst.save(t)
    with pytest.raises(ValueError, match="layer 0 holds 40 tokens; a sequence of this cache holds at most 32"):
        dst.load(t, data)
    with pytest.raises(llmkit.LlmkitError, match=r"truncated") as e:
        dst.load(t, before[:-1])
    assert e.value.status == "LLMKIT_ERROR_FORMAT"
    with pytest.raises(llmkit.LlmkitError, match="LLMKITKV"):
        dst.load(t, b"GGUF" + before[4:])
    nan = bytearray(before)
    nan[56 + 2 * 5:56 + 2 * 6] = np.array([np.inf], dtype=np.float32).view(np.uint16)[1:].tobytes()  # bf16 +inf
    with pytest.raises(llmkit.LlmkitError, match="layer 1, K of kv head 0, token 0, element 5 is a NaN or an infinity"):
        dst.load(t, nan)
    other = make_cache("contiguous", Hkv=Hkv, D=D, dtype="fp16", layers=2, capacity=32)
    with pytest.raises(ValueError, match="saved from a bfloat16 cache; this cache stores float16"):
        other.load(other.new_sequence(), before)
    with pytest.raises(TypeError, match="uint8"):
        dst.load(t, np.zeros(8, dtype=np.float32))
    with pytest.raises(TypeError):
        dst.load(t, "LLMKITKV")
    assert dst.save(t) == before
    # A paged pool without the blocks: MemoryError, the sequence unchanged.
    pool = llmkit.PagedKVCache(n_layers=2, n_kv_heads=Hkv, head_dim=D, n_blocks=3, block_size=16, max_sequences=2,
                               max_blocks_per_seq=2, dtype="bf16")
    a = pool.new_sequence()
    pool.append(0, a, rows(rng, 32, Hkv, D), rows(rng, 32, Hkv, D))
    b = pool.fork(a)  # shares a's 2 blocks: it holds none of its own, and 1 block is free
    full = pool.save(a)
    with pytest.raises(MemoryError, match="need 2 blocks of 16; 1 are free and sequence 1 holds 0 of its own"):
        pool.load(b, full)
    assert pool.save(b) == full and pool.free_blocks == 1
    pool.free(b)  # a's 2 blocks are its own again
    pool.load(a, full)
    assert pool.save(a) == full and pool.free_blocks == 1


@pytest.mark.parametrize("dtype", ["int8", "fp8_e4m3", "fp8_e5m2"])
def test_saved_8bit_rows_are_torch_bytes_with_torch_scales(rng, dtype):
    # The saved K section of an FP8 cache is what torch holds for an FP8 cache: (x / scale).to(float8)'s bytes,
    # scale = absmax / 448 (E5M2: / 57344) per token and kv head, in float32; int8: round(x * 127 / absmax).
    torch = pytest.importorskip("torch")
    Hkv, D, n = 2, 32, 9
    c = make_cache("contiguous", Hkv=Hkv, D=D, dtype=dtype, layers=1, capacity=16)
    s = c.new_sequence()
    k, v = rows(rng, n, Hkv, D), rows(rng, n, Hkv, D)
    k[3, 1, 5] = 300.0  # an outlier row
    c.append(0, s, k, v)
    data = c.save(s)
    body = np.frombuffer(data, dtype=np.uint8, offset=40 + 8)
    rows_k = body[:Hkv * n * D].reshape(Hkv, n, D)
    scales_k = np.frombuffer(body[Hkv * n * D:Hkv * n * (D + 4)].tobytes(), dtype=np.float32).reshape(Hkv, n)
    x = torch.from_numpy(k).transpose(0, 1)  # [Hkv, n, D], as saved
    amax = x.abs().amax(-1)
    if dtype == "int8":
        np.testing.assert_array_equal(scales_k, (amax / 127.0).numpy())
        want = torch.round(x * (127.0 / amax)[..., None]).clamp(-127, 127).to(torch.int8)
    else:
        f8, top = (torch.float8_e4m3fn, 448.0) if dtype == "fp8_e4m3" else (torch.float8_e5m2, 57344.0)
        np.testing.assert_array_equal(scales_k, (amax / top).numpy())
        want = (x / (amax / top)[..., None]).to(f8)
    np.testing.assert_array_equal(rows_k, want.view(torch.uint8).numpy())


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "int8"])
def test_release_before_serves_a_sliding_window_in_window_plus_a_block(rng, dtype):
    # Mistral-style serving: every layer attends through a window of W keys. Three prompts of
    # different lengths are prefilled in chunks, then decoded together; after each step each
    # sequence releases what the next query cannot see. Every output has the bits of a
    # contiguous cache that keeps every token, the last step meets a float64 reference over
    # all the tokens with the window, and the paged pool holds about W + block_size tokens
    # per sequence however long they grow.
    Hkv, Hq, D, layers, W, bs = 2, 4, 32, 2, 48, 16
    paged = llmkit.PagedKVCache(n_layers=layers, n_kv_heads=Hkv, head_dim=D, n_blocks=3 * (W // bs + 2),
                                block_size=bs, max_sequences=3, max_blocks_per_seq=40, dtype=dtype)
    full = make_cache("contiguous", Hkv=Hkv, D=D, dtype=dtype, layers=layers, capacity=640, seqs=3)
    prompts = [200, 61, 130]
    seqs = [(paged.new_sequence(), full.new_sequence()) for _ in prompts]
    keys = [[np.zeros((0, Hkv, D), np.float32)] * 3 for _ in range(layers)]
    values = [[np.zeros((0, Hkv, D), np.float32)] * 3 for _ in range(layers)]
    for b, n in enumerate(prompts):
        for start in range(0, n, 64):  # chunked prefill
            m = min(64, n - start)
            q = rng.standard_normal((m, Hq, D)).astype(np.float32)
            for layer in range(layers):
                k, v = rows(rng, m, Hkv, D), rows(rng, m, Hkv, D)
                keys[layer][b] = np.concatenate([keys[layer][b], k])
                values[layer][b] = np.concatenate([values[layer][b], v])
                got = paged.prefill(layer, seqs[b][0], q, k, v, window=W, rope=True)
                want = full.prefill(layer, seqs[b][1], q, k, v, window=W, rope=True)
                np.testing.assert_array_equal(got, want)
            # The next chunk's first query, at position start + m, sees from start + m - W + 1.
            paged.release_before(seqs[b][0], max(0, start + m - W + 1))
    for step in range(40):
        q = rng.standard_normal((3, Hq, D)).astype(np.float32)
        for layer in range(layers):
            k, v = rows(rng, 3, Hkv, D), rows(rng, 3, Hkv, D)
            for b in range(3):
                keys[layer][b] = np.concatenate([keys[layer][b], k[b:b + 1]])
                values[layer][b] = np.concatenate([values[layer][b], v[b:b + 1]])
            got = paged.decode(layer, [s for s, _ in seqs], q, k, v, window=W, rope=True)
            want = full.decode(layer, [f for _, f in seqs], q, k, v, window=W, rope=True)
            np.testing.assert_array_equal(got, want)
        for s, _ in seqs:
            first = paged.release_before(s, paged.length(s) - W + 1)
            assert first == (paged.length(s) - W + 1) // bs * bs
            table = paged.block_table(s)
            assert table[:first // bs] == [-1] * (first // bs) and min(table[first // bs:]) >= 0
            # Held: tokens first..length - 1, at most W + bs - 2 of them.
            assert sum(blk >= 0 for blk in table) <= -(-(W + bs - 2) // bs)
    lengths = [paged.length(s) for s, _ in seqs]
    assert lengths == [n + 40 for n in prompts]
    if dtype == "fp32":  # the last step against float64 attention over every token, rotated as the cache did
        ks = [rope64(keys[layers - 1][b], np.arange(lengths[b])) for b in range(3)]
        qr = np.stack([rope64(q[b:b + 1], np.array([lengths[b] - 1])) for b in range(3)])
        check(got, ref(qr, ks, values[layers - 1], window=W)[:, 0], dtype)
    # A window past the tokens held, or none, is refused; so is a save.
    with pytest.raises(ValueError, match="a window of at most"):
        paged.attention(0, q[:, None], [s for s, _ in seqs], window=W + bs)
    with pytest.raises(ValueError, match="with no window"):
        paged.attention(0, q[:, None], [s for s, _ in seqs])
    # A save holds the tokens held (format version 2); it loads into a paged cache of blocks of 8
    # with the same bits and the same refusals, but not into blocks of 40 (192 released) or a contiguous cache.
    saved = paged.save(seqs[0][0])
    assert saved[8] == 2 and len(saved) < len(full.save(seqs[0][1])) * (W + bs) // lengths[0]
    moved = llmkit.PagedKVCache(n_layers=layers, n_kv_heads=Hkv, head_dim=D, n_blocks=W // 8 + 4, block_size=8,
                                max_blocks_per_seq=80, dtype=dtype)
    m = moved.new_sequence()
    moved.load(m, saved)
    assert moved.length(m) == lengths[0] and moved.save(m) == saved
    qm = q[:1, None]
    np.testing.assert_array_equal(moved.attention(0, qm, [m], window=W, rope=True),
                                  full.attention(0, qm, [seqs[0][1]], window=W, rope=True))
    with pytest.raises(ValueError, match="a window of at most"):
        moved.attention(0, qm, [m], window=W + bs)
    for other in (llmkit.PagedKVCache(n_layers=layers, n_kv_heads=Hkv, head_dim=D, n_blocks=40, block_size=40,
                                      max_blocks_per_seq=8, dtype=dtype), full):
        with pytest.raises(llmkit.LlmkitError, match="LLMKIT_ERROR_UNSUPPORTED"):
            other.load(seqs[1][1] if other is full else other.new_sequence(), saved)
    with pytest.raises(ValueError, match="outside 0.."):
        paged.release_before(seqs[0][0], lengths[0] + 1)
    for s, _ in seqs:
        paged.free(s)
    assert paged.memory_bytes == 0 and paged.free_blocks == 3 * (W // bs + 2)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_mixed_window_and_global_layers_split_into_two_caches(rng, dtype):
    # Gemma 3's pattern: local layers attend through a window of W keys (RoPE base 10k), every
    # fourth here is global (no window, base 1M). A block holds all of a cache's layers, so the
    # local layers go in a cache of their own that releases behind the window, while the global
    # layers' cache keeps every token. Every output has the bits of one contiguous cache that keeps
    # every layer's tokens, the last step meets float64 attention, and the local cache's blocks stay
    # within W + bs - 2 tokens per sequence.
    Hkv, Hq, D, W, bs = 2, 4, 32, 40, 8
    kinds = ["local", "local", "local", "global"]
    local = [i for i, kind in enumerate(kinds) if kind == "local"]
    glob = [i for i, kind in enumerate(kinds) if kind == "global"]
    per_seq, chunk = -(-(W + bs - 2) // bs), 48  # blocks held between steps; tokens per prefill chunk
    local_cache = llmkit.PagedKVCache(n_layers=len(local), n_kv_heads=Hkv, head_dim=D,
                                      n_blocks=3 * per_seq + chunk // bs,  # room for one chunk in flight
                                      block_size=bs, max_sequences=3, max_blocks_per_seq=40, dtype=dtype)
    global_cache = llmkit.PagedKVCache(n_layers=len(glob), n_kv_heads=Hkv, head_dim=D, n_blocks=3 * 40,
                                       block_size=bs, max_sequences=3, max_blocks_per_seq=40, dtype=dtype)
    full = make_cache("contiguous", Hkv=Hkv, D=D, dtype=dtype, layers=len(kinds), capacity=320, seqs=3)

    def where(layer):  # the cache, its layer and the call's window and RoPE for a model layer
        if kinds[layer] == "local":
            return local_cache, local.index(layer), dict(window=W, rope={"theta": 10000.0})
        return global_cache, glob.index(layer), dict(rope={"theta": 1000000.0})

    prompts = [150, 37, 96]
    seqs = [(local_cache.new_sequence(), global_cache.new_sequence(), full.new_sequence()) for _ in prompts]
    keys = [[None] * 3 for _ in kinds]
    values = [[None] * 3 for _ in kinds]

    def release(b):  # the next query, at position length, sees keys from length - W + 1 on
        s = seqs[b][0]
        return local_cache.release_before(s, max(0, local_cache.length(s) - W + 1))

    for b, n in enumerate(prompts):
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            q = rng.standard_normal((m, Hq, D)).astype(np.float32)
            for layer in range(len(kinds)):
                k, v = rows(rng, m, Hkv, D), rows(rng, m, Hkv, D)
                keys[layer][b] = k if start == 0 else np.concatenate([keys[layer][b], k])
                values[layer][b] = v if start == 0 else np.concatenate([values[layer][b], v])
                cache, at, how = where(layer)
                got = cache.prefill(at, seqs[b][kinds[layer] == "global"], q, k, v, **how)
                np.testing.assert_array_equal(got, full.prefill(layer, seqs[b][2], q, k, v, **how))
            release(b)
    for step in range(30):
        q = rng.standard_normal((3, Hq, D)).astype(np.float32)
        for layer in range(len(kinds)):
            k, v = rows(rng, 3, Hkv, D), rows(rng, 3, Hkv, D)
            for b in range(3):
                keys[layer][b] = np.concatenate([keys[layer][b], k[b:b + 1]])
                values[layer][b] = np.concatenate([values[layer][b], v[b:b + 1]])
            cache, at, how = where(layer)
            got = cache.decode(at, [s[kinds[layer] == "global"] for s in seqs], q, k, v, **how)
            want = full.decode(layer, [s[2] for s in seqs], q, k, v, **how)
            np.testing.assert_array_equal(got, want)
            if dtype == "fp32" and step == 29:  # against float64 over every token, rotated as the caches did
                lengths = [p + 30 for p in prompts]
                theta = how["rope"]["theta"]
                ks = [rope64(keys[layer][b], np.arange(lengths[b]), theta) for b in range(3)]
                qr = np.stack([rope64(q[b:b + 1], np.array([lengths[b] - 1]), theta) for b in range(3)])
                check(got, ref(qr, ks, values[layer], window=how.get("window", 0))[:, 0], dtype)
        for b in range(3):
            release(b)
            assert sum(blk >= 0 for blk in local_cache.block_table(seqs[b][0])) <= per_seq
            assert global_cache.length(seqs[b][1]) == prompts[b] + step + 1
            assert min(global_cache.block_table(seqs[b][1])) >= 0  # the global layers keep every token
    for s in seqs:
        local_cache.free(s[0])
        global_cache.free(s[1])
    assert local_cache.free_blocks == 3 * per_seq + chunk // bs and global_cache.free_blocks == 3 * 40
