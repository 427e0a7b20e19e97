"""llmkit.attention / rope / kv_cache_bytes against float64 numpy references (and torch where installed)."""

import math

import numpy as np
import pytest

import llmkit


# ---------------------------------------------------------------------------
# References.
def ref_attention(q, k, v, *, causal=True, window=0, alibi_slopes=None, softcap=0.0, scale=None, mask=None,
                  sinks=None, return_lse=False):
    """Naive float64 attention with llmkit's documented semantics (llmkit.h, ATTENTION); sinks[h] adds
    exp(sinks[h]) to head h's softmax denominator (gpt-oss). return_lse: also each row's log-sum-exp
    (B, Sq, Hq), -inf for a row that sees no key and no sink."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    B, Sq, Hq, D = q.shape
    Skv, Hkv = k.shape[1], k.shape[2]
    group = Hq // Hkv
    kk = np.repeat(k, group, axis=2)  # query head h reads kv head h // group
    vv = np.repeat(v, group, axis=2)
    s = np.einsum("bihd,bjhd->bhij", q, kk) * (1.0 / math.sqrt(D) if scale is None else scale)
    if softcap:
        s = softcap * np.tanh(s / softcap)
    ip = np.arange(Sq)[:, None] + (Skv - Sq)  # query i sits at position i + Skv - Sq
    j = np.arange(Skv)[None, :]
    if alibi_slopes is not None:
        s = s - np.asarray(alibi_slopes, np.float64)[None, :, None, None] * (ip - j)[None, None]
    if mask is not None:
        s = s + np.asarray(mask, np.float64)
    visible = np.ones((Sq, Skv), bool)
    if causal or window:
        visible &= j <= ip
    if window:
        visible &= j > ip - window
    s = np.where(visible, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    if sinks is not None:
        sink = np.asarray(sinks, np.float64)[None, :, None, None]
        m = np.maximum(m, sink)
    p = np.where(np.isfinite(s), np.exp(s - np.where(np.isfinite(m), m, 0.0)), 0.0)
    denom = p.sum(axis=-1, keepdims=True)
    if sinks is not None:
        denom = denom + np.exp(sink - m)
    p = np.divide(p, denom, out=np.zeros_like(p), where=denom > 0)  # a row seeing no key is zeros
    out = np.einsum("bhij,bjhd->bihd", p, vv)
    if not return_lse:
        return out
    with np.errstate(divide="ignore"):
        lse = np.where(denom > 0, np.where(np.isfinite(m), m, 0.0) + np.log(denom), -np.inf)
    return out, lse[..., 0].transpose(0, 2, 1)


def qkv(rng, B, Sq, Skv, Hq, Hkv, D, dtype=np.float32):
    return tuple(rng.standard_normal(shape).astype(dtype)
                 for shape in ((B, Sq, Hq, D), (B, Skv, Hkv, D), (B, Skv, Hkv, D)))


def assert_close(got, want, tol):
    got = np.asarray(got, np.float64)
    err = np.max(np.abs(got - want)) if got.size else 0.0
    assert got.shape == want.shape
    assert err <= tol, f"max abs error {err} > {tol}"


# ---------------------------------------------------------------------------
# Attention against the float64 reference.
@pytest.mark.parametrize("Hq,Hkv", [(4, 4), (8, 2), (6, 1)], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("Sq,Skv", [(37, 37), (5, 70), (1, 129)], ids=["prefill", "chunk", "decode"])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_matches_reference(rng, Hq, Hkv, Sq, Skv, causal):
    q, k, v = qkv(rng, 2, Sq, Skv, Hq, Hkv, 64)
    out = llmkit.attention(q, k, v, causal=causal)
    assert out.dtype == np.float32 and out.shape == q.shape and isinstance(out, np.ndarray)
    assert_close(out, ref_attention(q, k, v, causal=causal), 2e-5)


def test_causal_is_the_default_and_bottom_right_aligned(rng):
    q, k, v = qkv(rng, 1, 3, 5, 2, 2, 8)
    out = llmkit.attention(q, k, v)
    assert_close(out, ref_attention(q, k, v, causal=True), 2e-5)
    # The last query sees every key: the same as bidirectional attention for that row.
    full = llmkit.attention(q, k, v, causal=False)
    np.testing.assert_allclose(out[:, -1], full[:, -1], rtol=1e-6, atol=1e-6)
    # More queries than keys: the first Sq - Skv queries see nothing and are zeros.
    q2, k2, v2 = qkv(rng, 1, 6, 4, 2, 2, 8)
    out2 = llmkit.attention(q2, k2, v2)
    assert np.all(out2[:, :2] == 0.0)
    assert_close(out2, ref_attention(q2, k2, v2), 2e-5)


@pytest.mark.parametrize("window", [1, 7, 64])
def test_sliding_window(rng, window):
    q, k, v = qkv(rng, 2, 40, 90, 4, 2, 32)
    assert_close(llmkit.attention(q, k, v, window=window), ref_attention(q, k, v, window=window), 2e-5)


def test_alibi_softcap_scale_and_mask(rng):
    q, k, v = qkv(rng, 2, 24, 48, 8, 4, 32)
    q *= 3.0  # large scores, so that softcap matters
    slopes = 2.0 ** (-8.0 * np.arange(1, 9) / 8)  # the ALiBi paper's slopes for 8 heads
    mask = rng.standard_normal((24, 48)).astype(np.float32)
    mask[3, :] = -np.inf  # a query that sees nothing
    mask[:, 5] = -np.inf
    for kw in (dict(alibi_slopes=slopes), dict(softcap=2.5), dict(scale=0.05), dict(mask=mask),
               dict(alibi_slopes=slopes, softcap=5.0, scale=0.3, mask=mask, window=10),
               dict(causal=False, alibi_slopes=list(slopes), mask=mask)):
        out = llmkit.attention(q, k, v, **kw)
        assert_close(out, ref_attention(q, k, v, **{"causal": True, **kw}), 3e-5)
    assert np.all(llmkit.attention(q, k, v, mask=mask)[:, 3] == 0.0)


def test_boolean_mask_means_may_attend(rng):
    q, k, v = qkv(rng, 1, 10, 12, 2, 1, 16)
    allowed = rng.random((10, 12)) < 0.6
    out = llmkit.attention(q, k, v, causal=False, mask=allowed)
    additive = np.where(allowed, 0.0, -np.inf)
    assert_close(out, ref_attention(q, k, v, causal=False, mask=additive), 2e-5)
    # float64 masks are converted to float32; the boolean mask is read as it is, with the bits of 0 / -inf.
    out64 = llmkit.attention(q, k, v, causal=False, mask=additive)
    np.testing.assert_array_equal(out, out64)
    with pytest.raises(ValueError, match="mask: dtype uint8 is not float32 or bool"):
        llmkit.attention(q, k, v, causal=False, mask=allowed.astype(np.uint8))


def test_boolean_masks_are_read_in_place_with_the_bits_of_additive_ones(rng):
    # Padding ([B, 1, 1, Skv], whole tiles of 64 keys hidden) and per-head rows ([1, Hq, Sq, Skv]) as
    # bool, numpy and torch, strided (a column slice), prefill and decode (the token-walking kernel).
    cases = []
    for Sq in (150, 1):
        q, k, v = qkv(rng, 3, Sq, 150, 4, 2, 32)
        keep = np.ones((3, 1, 1, 300), bool)[..., ::2]  # strided: every other column of a wider mask
        keep[1, ..., :70] = False
        keep[2, ..., :140] = False
        heads = rng.random((1, 4, Sq, 150)) < 0.7
        heads[..., -1] = True
        for m in (keep, heads):
            want = llmkit.attention(q, k, v, causal=Sq > 1, mask=np.where(m, np.float32(0), np.float32(-np.inf)))
            assert_close(want, ref_attention(q, k, v, causal=Sq > 1, mask=np.where(m, 0.0, -np.inf)), 2e-5)
            np.testing.assert_array_equal(llmkit.attention(q, k, v, causal=Sq > 1, mask=m), want)
            cases.append((q, k, v, Sq, m, want))
    torch = pytest.importorskip("torch")
    for q, k, v, Sq, m, want in cases:
        got = llmkit.attention(*(torch.from_numpy(x) for x in (q, k, v)), causal=Sq > 1, mask=torch.from_numpy(m))
        np.testing.assert_array_equal(got.numpy(), want)


def test_masks_broadcast_as_torch_attn_mask(rng):
    B, Sq, Skv, Hq, Hkv, D = 3, 9, 40, 8, 2, 32
    q, k, v = qkv(rng, B, Sq, Skv, Hq, Hkv, D)
    padding = np.ones((B, 1, 1, Skv), bool)
    for b in range(B):
        padding[b, ..., :3 * b] = False  # row b left-padded by 3b keys
    head_bias = rng.standard_normal((Hq, Sq, Skv)).astype(np.float32)
    head_bias[:, :, 7] = -np.inf
    for mask in (padding, rng.standard_normal((B, Hq, Sq, Skv)).astype(np.float32), head_bias,
                 rng.standard_normal((1, Hq, 1, Skv)).astype(np.float32), rng.standard_normal((Sq, 1)).astype(np.float32)):
        additive = np.where(mask, 0.0, -np.inf) if mask.dtype == np.bool_ else mask
        for causal in (True, False):
            out, lse = llmkit.attention(q, k, v, causal=causal, mask=mask, return_lse=True)
            want, want_lse = ref_attention(q, k, v, causal=causal, mask=additive, return_lse=True)
            assert_close(out, want, 3e-5)
            assert_close(lse, want_lse, 5e-5)
    with pytest.raises(ValueError, match=r"options.mask: shape \[3, 2, 9, 40\] must be"):
        llmkit.attention(q, k, v, mask=np.zeros((B, 2, Sq, Skv), np.float32))


def test_padded_batch_matches_torch_sdpa(rng):
    torch = pytest.importorskip("torch")
    B, S, Hq, Hkv, D = 4, 24, 8, 2, 64
    pad = [0, 5, 11, 2]  # left padding per prompt, as Hugging Face pads for generation
    keep = torch.ones(B, 1, 1, S, dtype=torch.bool)
    for b, n in enumerate(pad):
        keep[b, ..., :n] = False
    for dtype, tol in ((torch.float32, 2e-5), (torch.bfloat16, 2e-2)):
        q, k, v = (torch.randn(B, S, h, D).to(dtype) for h in (Hq, Hkv, Hkv))
        out = llmkit.attention(q, k, v, causal=True, mask=keep)
        both = keep & torch.ones(S, S, dtype=torch.bool).tril()
        want = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2).float(), k.transpose(1, 2).float(), v.transpose(1, 2).float(), attn_mask=both,
            enable_gqa=True).transpose(1, 2)
        for b, n in enumerate(pad):  # the padding's own queries are not compared (torch gives NaN rows)
            assert torch.max(torch.abs(out[b, n:].float() - want[b, n:])).item() < tol


def test_strided_inputs_without_copies(rng):
    B, S, H, D = 2, 33, 4, 64
    fused = rng.standard_normal((B, S, 3 * H, D)).astype(np.float32)  # a fused QKV projection
    q, k, v = fused[:, :, :H], fused[:, :, H:2 * H], fused[:, :, 2 * H:]
    assert not q.flags.c_contiguous
    want = ref_attention(q, k, v)
    assert_close(llmkit.attention(q, k, v), want, 2e-5)
    # (B, H, S, D) storage seen as (B, S, H, D).
    bhsd = [np.ascontiguousarray(a.transpose(0, 2, 1, 3)) for a in (q, k, v)]
    assert_close(llmkit.attention(*(a.transpose(0, 2, 1, 3) for a in bhsd)), want, 2e-5)


def test_float16_in_float16_out_and_threads(rng):
    q, k, v = qkv(rng, 1, 50, 50, 4, 2, 128, np.float16)
    out = llmkit.attention(q, k, v)
    assert out.dtype == np.float16
    want = ref_attention(q, k, v)
    assert_close(out, want, 2e-3)
    for threads in (1, 3):
        np.testing.assert_array_equal(llmkit.attention(q, k, v, num_threads=threads), out)


def test_list_inputs(rng):
    q, k, v = qkv(rng, 1, 2, 3, 1, 1, 4)
    out = llmkit.attention(q.tolist(), k.tolist(), v.tolist())
    assert out.dtype == np.float32
    assert_close(out, ref_attention(q, k, v), 2e-5)


# ---------------------------------------------------------------------------
# Attention sinks (gpt-oss): torch's SDPA has none, so the reference is ref_attention's float64 formula.
@pytest.mark.parametrize("Sq,Skv,Hq,Hkv", [(150, 150, 8, 2), (17, 100, 4, 4), (1, 700, 8, 1), (20, 8, 2, 1)],
                         ids=["prefill", "chunk", "decode-split", "rows-see-nothing"])
def test_sinks_match_reference(rng, Sq, Skv, Hq, Hkv):
    q, k, v = qkv(rng, 2, Sq, Skv, Hq, Hkv, 64)
    # Around the log of the keys' summed weight (~Skv e^0.5), so each sink takes a real share of its head.
    sinks = (rng.uniform(-1.5, 2.5, Hq) + math.log(Skv) - 2.0).astype(np.float32)
    got = llmkit.attention(q, k, v, sinks=sinks)
    assert_close(got, ref_attention(q, k, v, sinks=sinks), 2e-5)
    # The sinks change the result (they are not ignored), and lists are accepted.
    assert np.max(np.abs(got - llmkit.attention(q, k, v))) > 1e-2
    np.testing.assert_array_equal(llmkit.attention(q, k, v, sinks=list(sinks)), got)
    kw = dict(window=30, alibi_slopes=2.0 ** (-np.arange(1, Hq + 1)), softcap=4.0)
    assert_close(llmkit.attention(q, k, v, sinks=sinks, **kw), ref_attention(q, k, v, sinks=sinks, **kw), 2e-5)
    for threads in (1, 3):
        again = llmkit.attention(q, k, v, sinks=sinks, num_threads=threads)
        if Sq * (Hq // Hkv) > 64:  # prefill's tiles
            np.testing.assert_array_equal(again, got)
        else:  # decode's kernels (up to 64 query rows per kv head) split the keys by the thread count
            assert_close(again, ref_attention(q, k, v, sinks=sinks), 2e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_sinks_half_precision(rng, dtype):
    torch = pytest.importorskip("torch")
    tdtype = getattr(torch, dtype)
    q, k, v = (torch.from_numpy(a).to(tdtype) for a in qkv(rng, 1, 40, 90, 8, 2, 64))
    sinks = torch.linspace(-1.0, 3.0, 8)
    got = llmkit.attention(q, k, v, sinks=sinks)
    assert got.dtype == tdtype
    want = ref_attention(*(t.double().numpy() for t in (q, k, v)), sinks=sinks.numpy())
    assert_close(got.double().numpy(), want, {"float16": 2e-3, "bfloat16": 2e-2}[dtype])


def test_sinks_shrink_rows_by_the_formula(rng):
    """A sink s leaves the keys' relative weights alone and scales the row by L / (L + e^s), L = sum_j e^{s_j}."""
    q, k, v = qkv(rng, 1, 30, 30, 4, 2, 32)
    plain = llmkit.attention(q, k, v)
    lowest = np.full(4, np.finfo(np.float32).min, np.float32)  # e^sink underflows to 0: the no-sink bits
    np.testing.assert_array_equal(llmkit.attention(q, k, v, sinks=lowest), plain)
    big = np.array([2.0, 4.0, 6.0, 8.0], np.float32)
    got = llmkit.attention(q, k, v, sinks=big)
    kk = np.repeat(k.astype(np.float64), 2, axis=2)
    s = np.einsum("bihd,bjhd->bhij", q.astype(np.float64), kk) / math.sqrt(32)
    s = np.where(np.tril(np.ones((30, 30), bool)), s, -np.inf)
    L = np.exp(s).sum(axis=-1)  # (1, H, Sq)
    ratio = (L / (L + np.exp(big.astype(np.float64))[None, :, None])).transpose(0, 2, 1)[..., None]
    assert ratio.min() < 0.01  # the largest sink takes nearly all the weight
    assert_close(got, ratio * plain.astype(np.float64), 2e-6)


def test_sinks_errors(rng):
    q, k, v = qkv(rng, 1, 4, 4, 6, 2, 8)
    with pytest.raises(ValueError, match="sinks must be 1-D with one value per query head: q has 6 heads"):
        llmkit.attention(q, k, v, sinks=np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="sinks"):
        llmkit.attention(q, k, v, sinks=np.zeros((6, 1), np.float32))
    for bad in (float("nan"), float("inf"), float("-inf")):
        sinks = np.zeros(6, np.float32)
        sinks[4] = bad
        with pytest.raises(ValueError, match=r"options.sinks\[4\] is not finite") as e:
            llmkit.attention(q, k, v, sinks=sinks)
        assert e.value.status == "LLMKIT_ERROR_INVALID_ARGUMENT"


# ---------------------------------------------------------------------------
# Log-sum-exps and attention_merge.
@pytest.mark.parametrize("Sq,Skv,Hq,Hkv", [(37, 37, 4, 4), (5, 300, 8, 2), (1, 2500, 8, 2), (20, 8, 2, 1)],
                         ids=["prefill", "chunk", "decode-split", "rows-see-nothing"])
def test_return_lse_matches_reference(rng, Sq, Skv, Hq, Hkv):
    q, k, v = qkv(rng, 2, Sq, Skv, Hq, Hkv, 64)
    sinks = rng.uniform(-1.0, 2.0, Hq).astype(np.float32)
    slopes = (2.0 ** -np.arange(1, Hq + 1)).astype(np.float32)
    cases = [dict(), dict(causal=False), dict(window=7), dict(sinks=sinks), dict(alibi_slopes=slopes, softcap=4.0)]
    for opts in cases:
        out, lse = llmkit.attention(q, k, v, return_lse=True, **opts)
        want, want_lse = ref_attention(q, k, v, return_lse=True, **opts)
        assert lse.dtype == np.float32 and lse.shape == (2, Sq, Hq)
        assert_close(out, want, 2e-5)
        hidden = np.isinf(want_lse)
        assert np.array_equal(np.isinf(lse), hidden) and np.all(lse[hidden] == -np.inf), opts
        assert_close(np.where(hidden, 0.0, lse), np.where(hidden, 0.0, want_lse), 2e-5 + 2e-6 * np.abs(want_lse).max())


def test_return_lse_matches_torch_flash_attention_for_cpu(rng):
    # torch's own flash attention for the CPU returns (out, logsumexp (B, H, L)).
    torch = pytest.importorskip("torch")
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    for dtype, tol in ((torch.float32, 2e-5), (torch.bfloat16, 2e-3)):
        q, k, v = (torch.from_numpy(a).to(dtype) for a in qkv(rng, 2, 40, 40, 8, 2, 64))
        out, lse = llmkit.attention(q, k, v, return_lse=True)
        assert isinstance(lse, torch.Tensor) and lse.dtype == torch.float32 and lse.shape == (2, 40, 8)
        t_out, t_lse = flash(*(t.transpose(1, 2) for t in (q, k.repeat_interleave(4, 2), v.repeat_interleave(4, 2))),
                             0.0, True)[:2]
        assert_close(lse.transpose(1, 2).numpy(), t_lse.double().numpy(), tol)
        assert_close(out.float().numpy(), t_out.transpose(1, 2).float().numpy(), 2e-5 if dtype == torch.float32 else 2e-2)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_attention_merge_of_two_key_ranges_equals_the_whole(rng, dtype):
    torch = pytest.importorskip("torch") if dtype == "bfloat16" else None
    q, k, v = qkv(rng, 2, 6, 400, 8, 2, 64)
    if torch is not None:
        q, k, v = (torch.from_numpy(a).to(torch.bfloat16) for a in (q, k, v))
        want, want_lse = ref_attention(*(t.float().numpy() for t in (q, k, v)), return_lse=True)
    else:
        q, k, v = (a.astype(dtype) for a in (q, k, v))
        want, want_lse = ref_attention(q, k, v, return_lse=True)  # on the rounded inputs
    # The prefix lies before every query: attended whole; the rest causal. Sinks on one side only.
    pre = llmkit.attention(q, k[:, :150], v[:, :150], causal=False, return_lse=True)
    rest = llmkit.attention(q, k[:, 150:], v[:, 150:], return_lse=True)
    out, lse = llmkit.attention_merge(*pre, *rest)
    assert type(out) is type(pre[0]) and out.dtype == pre[0].dtype and out is not pre[0]
    got = out.float().numpy() if torch is not None else out.astype(np.float64)
    tol = {"float32": 2e-5, "float16": 3e-3, "bfloat16": 3e-2}[dtype]
    assert_close(got, want, tol)
    assert_close(np.asarray(lse), want_lse, 2e-5 * max(1.0, np.abs(want_lse).max()))
    # In place into float32 results: the arrays given are the ones returned.
    if torch is None:
        a, la = (np.array(x, dtype=np.float32) for x in pre)
        out2, lse2 = llmkit.attention_merge(a, la, *rest, in_place=True)
        assert out2 is a and lse2 is la
        assert_close(a, want, tol)


def test_attention_merge_cascade_over_a_shared_prefix(rng):
    # Four sequences share a 500-token prompt and continue with their own tokens in a paged cache:
    # the prefix is attended once for the whole batch (the batch's queries as one sequence),
    # each sequence's own keys through the cache, and the merge gives attention over both.
    Hq, Hkv, D, P = 8, 2, 64, 500
    own = [1, 9, 33, 120]
    kp, vp = (rng.standard_normal((1, P, Hkv, D)).astype(np.float32) for _ in range(2))
    cache = llmkit.PagedKVCache(n_layers=1, n_kv_heads=Hkv, head_dim=D, n_blocks=64, block_size=16, max_sequences=4)
    ids, whole_k, whole_v = [], [], []
    for n in own:
        s = cache.new_sequence()
        k, v = (rng.standard_normal((n, Hkv, D)).astype(np.float32) for _ in range(2))
        cache.append(0, s, k, v)
        ids.append(s)
        whole_k.append(np.concatenate([kp[0], k]))
        whole_v.append(np.concatenate([vp[0], v]))
    q = rng.standard_normal((4, 1, Hq, D)).astype(np.float32)
    shared, shared_lse = llmkit.attention(q.reshape(1, 4, Hq, D), kp, vp, causal=False, return_lse=True)
    mine, mine_lse = cache.attention(0, q, ids, return_lse=True)
    out, lse = llmkit.attention_merge(shared.reshape(4, 1, Hq, D), shared_lse.reshape(4, 1, Hq), mine, mine_lse)
    for b in range(4):
        want, want_lse = ref_attention(q[b:b + 1], whole_k[b][None], whole_v[b][None], return_lse=True)
        assert_close(out[b:b + 1], want, 2e-5)
        assert_close(lse[b:b + 1], want_lse, 2e-5 * max(1.0, np.abs(want_lse).max()))


def test_cache_return_lse_through_prefill_decode_and_tables(rng):
    Hq, Hkv, D = 4, 2, 32
    cache = llmkit.PagedKVCache(n_layers=1, n_kv_heads=Hkv, head_dim=D, n_blocks=16, max_sequences=2)
    s = cache.new_sequence()
    q, k, v = (rng.standard_normal((20, h, D)).astype(np.float32) for h in (Hq, Hkv, Hkv))
    out, lse = cache.prefill(0, s, q, k, v, return_lse=True)
    want, want_lse = ref_attention(q[None], k[None], v[None], return_lse=True)
    assert out.shape == (20, Hq, D) and lse.shape == (20, Hq)
    assert_close(out, want[0], 2e-5)
    assert_close(lse, want_lse[0], 5e-5)
    q1, k1, v1 = (rng.standard_normal((1, h, D)).astype(np.float32) for h in (Hq, Hkv, Hkv))
    out1, lse1 = cache.decode(0, [s], q1, k1, v1, return_lse=True)
    kk, vv = np.concatenate([k, k1])[None], np.concatenate([v, v1])[None]
    want1, want_lse1 = ref_attention(q1[None], kk, vv, return_lse=True)
    assert out1.shape == (1, Hq, D) and lse1.shape == (1, Hq)
    assert_close(lse1, want_lse1[0], 5e-5)
    tables = np.array([cache.block_table(s)], np.int32)
    out2, lse2 = cache.attention_tables(0, q1[None], tables, [21], return_lse=True)
    assert np.array_equal(out2[:, 0], out1) and np.array_equal(lse2[:, 0], lse1)
    assert np.array_equal(cache.decode(0, [s], q1, k1, v1).shape, (1, Hq, D))  # no lse: the array alone


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_attention_varlen_matches_each_sequence(rng, dtype):
    # Packed: an empty sequence, a decode over 200 keys, a chunk after a prefix, a prefill, more queries than keys.
    lq, lk = [0, 1, 12, 40, 6], [0, 200, 50, 40, 3]
    Hq, Hkv, D = 8, 2, 32
    q = rng.standard_normal((sum(lq), Hq, D)).astype(dtype)
    k, v = (rng.standard_normal((sum(lk), Hkv, D)).astype(dtype) for _ in range(2))
    cq, ck = np.cumsum([0] + lq), np.cumsum([0] + lk)
    sinks = rng.uniform(-1.0, 1.0, Hq).astype(np.float32)
    for opts in (dict(), dict(causal=False), dict(window=5), dict(sinks=sinks, softcap=3.0)):
        out, lse = llmkit.attention_varlen(q, k, v, cq, ck, return_lse=True, **opts)
        assert out.shape == q.shape and out.dtype == q.dtype and lse.shape == (sum(lq), Hq)
        for b in range(len(lq)):
            rows, keys = slice(cq[b], cq[b + 1]), slice(ck[b], ck[b + 1])
            want, want_lse = llmkit.attention(q[None, rows], k[None, keys], v[None, keys], return_lse=True, **opts)
            assert np.array_equal(out[rows], want[0]) and np.array_equal(lse[rows], want_lse[0]), (b, opts)
            if lq[b] == 0:
                continue
            ref, ref_lse = ref_attention(q[None, rows].astype(np.float64), k[None, keys], v[None, keys],
                                         return_lse=True, **opts)
            assert_close(out[rows].astype(np.float64), ref[0], 2e-5 if dtype == "float32" else 2e-3)


def test_attention_varlen_matches_padded_torch_sdpa(rng):
    # What torch users do for a batch of different lengths: pad, and mask the padding out.
    torch = pytest.importorskip("torch")
    lens, Hq, Hkv, D = [5, 33, 17, 64], 8, 2, 64
    q, k, v = (torch.randn(sum(lens), h, D) for h in (Hq, Hkv, Hkv))
    cu = np.cumsum([0] + lens)
    got = llmkit.attention_varlen(q, k, v, cu, cu)
    assert isinstance(got, torch.Tensor)
    L = max(lens)
    pad = [torch.zeros(len(lens), L, h, D) for h in (Hq, Hkv, Hkv)]
    for b, n in enumerate(lens):
        for t, src in zip(pad, (q, k, v)):
            t[b, :n] = src[cu[b]:cu[b + 1]]
    mask = torch.ones(len(lens), 1, L, L, dtype=torch.bool).tril()
    for b, n in enumerate(lens):
        mask[b, :, :, n:] = False
    want = torch.nn.functional.scaled_dot_product_attention(*(t.transpose(1, 2) for t in pad), attn_mask=mask,
                                                            enable_gqa=True).transpose(1, 2)
    for b, n in enumerate(lens):
        assert_close(got[cu[b]:cu[b + 1]].numpy(), want[b, :n].double().numpy(), 2e-5)


def test_attention_varlen_errors(rng):
    q, k, v = (rng.standard_normal((10, h, 16)).astype(np.float32) for h in (4, 2, 2))
    with pytest.raises(ValueError, match=r"cu_seqlens_q\[0\] must be 0"):
        llmkit.attention_varlen(q, k, v, [1, 10], [0, 10])
    with pytest.raises(ValueError, match="must not decrease"):
        llmkit.attention_varlen(q, k, v, [0, 6, 4, 10], [0, 3, 5, 10])
    with pytest.raises(ValueError, match="the 10 rows of k"):
        llmkit.attention_varlen(q, k, v, [0, 10], [0, 9])
    with pytest.raises(ValueError, match="B \\+ 1"):
        llmkit.attention_varlen(q, k, v, [0, 4, 10], [0, 10])
    with pytest.raises(ValueError, match="float"):
        llmkit.attention_varlen(q, k, v, [0.0, 10.0], [0, 10])
    with pytest.raises(ValueError, match="sinks"):
        llmkit.attention_varlen(q, k, v, [0, 10], [0, 10], sinks=[0.0, 1.0])
    bad = k.copy()
    bad[7, 1, 3] = np.nan
    with pytest.raises(ValueError, match="k of sequence 1"):
        llmkit.attention_varlen(q, bad, v, [0, 4, 10], [0, 5, 10])


def test_attention_merge_errors(rng):
    out = rng.standard_normal((1, 2, 4, 16)).astype(np.float32)
    lse = rng.standard_normal((1, 2, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="other_lse"):
        llmkit.attention_merge(out, lse, out, lse[:, :1])
    with pytest.raises(ValueError, match="other_out"):
        llmkit.attention_merge(out, lse, out[..., :8], lse)
    bad = lse.copy()
    bad[0, 1, 2] = np.nan
    with pytest.raises(ValueError, match="lse"):
        llmkit.attention_merge(out, bad, out, lse)
    bad[0, 1, 2] = np.inf
    with pytest.raises(ValueError, match="other_lse"):
        llmkit.attention_merge(out, lse, out, bad)
    with pytest.raises(ValueError, match="dtype"):
        llmkit.attention_merge(out, lse.astype(np.float64), out, lse)
    frozen = out.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only; attention_merge"):
        llmkit.attention_merge(frozen, lse.copy(), out, lse, in_place=True)
    with pytest.raises(TypeError, match="return_lse"):
        llmkit.attention(out, out, out, return_lse=1)
    # -inf on both sides: the row saw no key anywhere; zeros and -inf.
    none = np.full_like(lse, -np.inf)
    merged, merged_lse = llmkit.attention_merge(out, none, out, none)
    assert np.all(merged == 0.0) and np.all(merged_lse == -np.inf)


# ---------------------------------------------------------------------------
# Against torch's scaled_dot_product_attention, where torch is installed.
def _torch_sdpa(torch, q, k, v, causal):
    """torch SDPA on (B, S, H, D) tensors; causal bottom-right aligned through an explicit mask."""
    Sq, Skv = q.shape[1], k.shape[1]
    group = q.shape[2] // k.shape[2]
    qt, kt, vt = (t.transpose(1, 2).double() for t in (q, k, v))
    kt, vt = kt.repeat_interleave(group, dim=1), vt.repeat_interleave(group, dim=1)
    mask = None
    if causal:
        mask = torch.ones(Sq, Skv, dtype=torch.bool).tril(diagonal=Skv - Sq)
    out = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask)
    return out.transpose(1, 2)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_matches_torch_sdpa(rng, dtype):
    torch = pytest.importorskip("torch")
    tdtype = getattr(torch, dtype)
    q, k, v = (torch.from_numpy(a).to(tdtype) for a in qkv(rng, 2, 17, 40, 8, 2, 64))
    for causal in (True, False):
        got = llmkit.attention(q, k, v, causal=causal)
        assert isinstance(got, torch.Tensor) and got.dtype == tdtype and got.shape == q.shape
        want = _torch_sdpa(torch, q, k, v, causal)
        tol = {"float32": 2e-5, "float16": 2e-3, "bfloat16": 2e-2}[dtype]
        assert_close(got.double().numpy(), want.numpy(), tol)
    # Square causal: torch's is_causal agrees (top-left equals bottom-right when Sq == Skv).
    q2, k2, v2 = (torch.from_numpy(a) for a in qkv(rng, 1, 20, 20, 4, 4, 32))
    want = torch.nn.functional.scaled_dot_product_attention(
        *(t.transpose(1, 2) for t in (q2, k2, v2)), is_causal=True).transpose(1, 2)
    assert_close(llmkit.attention(q2, k2, v2).numpy(), want.double().numpy(), 2e-5)


@pytest.mark.parametrize("Hq,Hkv", [(2, 2), (8, 2), (16, 2)], ids=["g1", "g4", "g8"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_long_prefill_matches_torch_sdpa(rng, Hq, Hkv, dtype):
    """Several 128-row query tiles per kv head (K/V packed once per group, groups in waves), lengths off the
    tile edges, a window ending inside a key tile: against torch's SDPA in float64, the same bits for 1-3 threads."""
    torch = pytest.importorskip("torch")
    tdtype = getattr(torch, dtype)
    tol = {"float32": 2e-5, "bfloat16": 2e-2}[dtype]
    for Sq, Skv in ((261, 261), (150, 333)):
        q, k, v = (torch.from_numpy(a).to(tdtype) for a in qkv(rng, 2, Sq, Skv, Hq, Hkv, 64))
        got = llmkit.attention(q, k, v)
        assert_close(got.double().numpy(), _torch_sdpa(torch, q, k, v, True).numpy(), tol)
        for threads in (1, 3):
            assert torch.equal(llmkit.attention(q, k, v, num_threads=threads), got)
    q, k, v = qkv(rng, 1, 200, 200, Hq, Hkv, 64)
    assert_close(llmkit.attention(q, k, v, window=77), ref_attention(q, k, v, window=77), 2e-5)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_decode_bits_do_not_depend_on_num_threads(rng, dtype):
    """A decode of few sequences splits its keys into parts (flash-decoding) chosen from the shapes alone: the
    same bits for 1, 2, 3, 8 and 16 threads, over K/V as [B, S, H, D] (the caches' token walk) and as a
    [B, H, S, D] view (a task per kv head), against torch's SDPA in float64. (Parts chosen from the thread count
    gave other bits at 16 threads, and at 2 over [B, S, H, D].)"""
    torch = pytest.importorskip("torch")
    tdtype = getattr(torch, dtype)
    tol = {"float32": 2e-5, "bfloat16": 2e-2}[dtype]
    for B, Skv in ((1, 600), (1, 3000), (2, 1500), (3, 700)):
        q, k, v = (torch.from_numpy(a).to(tdtype) for a in qkv(rng, B, 1, Skv, 32, 8, 128))
        want = _torch_sdpa(torch, q, k, v, True).numpy()
        bhsd = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in (k, v)]  # [B, H, S, D] storage
        for kk, vv in ((k, v), bhsd):
            one = llmkit.attention(q, kk, vv, num_threads=1)
            assert_close(one.double().numpy(), want, tol)
            for threads in (2, 3, 8, 16):
                assert torch.equal(llmkit.attention(q, kk, vv, num_threads=threads), one), (B, Skv, threads)


def test_v_head_dim_may_differ_from_q_and_k(rng):
    """v's head_dim Dv may differ from q's and k's D: DeepSeek's attention (192 / 128), its latent attention in
    the absorbed form (576 / 512 on one kv head, v a view of the latent that k holds), V wider than K; prefill,
    chunk and decode, packed sequences, against the float64 reference and torch's SDPA."""
    for Hq, Hkv, D, Dv, Sq, Skv in ((4, 4, 192, 128, 150, 150), (8, 2, 192, 128, 1, 300), (8, 2, 64, 96, 40, 40),
                                    (16, 1, 576, 512, 3, 150)):
        q, k, _ = qkv(rng, 2, Sq, Skv, Hq, Hkv, D)
        v = rng.standard_normal((2, Skv, Hkv, Dv)).astype(np.float32)
        out, lse = llmkit.attention(q, k, v, return_lse=True)
        assert out.shape == (2, Sq, Hq, Dv) and lse.shape == (2, Sq, Hq)
        want, want_lse = ref_attention(q, k, v, return_lse=True)
        assert_close(out, want, 2e-5)
        assert_close(lse, want_lse, 2e-5)
    # MLA: k is the cached latent (512) and its rotary part (64); v is the latent, a strided view of k.
    q, latent, _ = qkv(rng, 2, 1, 200, 16, 1, 576)
    v = latent[..., :512]
    out = llmkit.attention(q, latent, v, scale=0.07)
    assert_close(out, ref_attention(q, latent, v, scale=0.07), 2e-5)
    # Packed sequences.
    lens = [5, 40, 17]
    cu = np.cumsum([0] + lens)
    q, k = (rng.standard_normal((sum(lens), h, 192)).astype(np.float32) for h in (8, 2))
    v = rng.standard_normal((sum(lens), 2, 128)).astype(np.float32)
    got = llmkit.attention_varlen(q, k, v, cu, cu)
    assert got.shape == (sum(lens), 8, 128)
    for b in range(len(lens)):
        rows = slice(cu[b], cu[b + 1])
        assert_close(got[rows], ref_attention(q[None, rows], k[None, rows], v[None, rows])[0], 2e-5)
    # torch tensors, bf16 too, against torch's SDPA (which takes a v of its own head_dim).
    torch = pytest.importorskip("torch")
    q, k, _ = qkv(rng, 2, 70, 70, 8, 8, 192)
    v = rng.standard_normal((2, 70, 8, 128)).astype(np.float32)
    for dtype, tol in ((torch.float32, 2e-5), (torch.bfloat16, 2e-2)):
        tq, tk, tv = (torch.from_numpy(a).to(dtype) for a in (q, k, v))
        got = llmkit.attention(tq, tk, tv)
        assert got.dtype == dtype and got.shape == (2, 70, 8, 128)
        assert_close(got.double().numpy(), _torch_sdpa(torch, tq, tk, tv, True).numpy(), tol)
        # A decode step over [B, S, H, D] tensors (the token-walking decode, V's token rows H * Dv wide).
        got = llmkit.attention(tq[:, -1:], tk, tv, causal=False)
        assert got.shape == (2, 1, 8, 128)
        assert_close(got.double().numpy(), _torch_sdpa(torch, tq[:, -1:], tk, tv, False).numpy(), tol)
    with pytest.raises(ValueError, match="head_dim differs"):
        llmkit.attention(q, k[..., :64], v)
    with pytest.raises(ValueError, match="v's head_dim Dv = 600 exceeds the supported maximum of 576"):
        llmkit.attention(q, k, np.zeros((2, 70, 8, 600), np.float32))


def test_torch_tensors_that_require_grad_and_are_strided(rng):
    torch = pytest.importorskip("torch")
    q, k, v = (torch.from_numpy(a).transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
               for a in qkv(rng, 1, 9, 9, 2, 2, 16))
    out = llmkit.attention(q, k, v)
    assert not out.requires_grad
    want = ref_attention(*(t.detach().numpy() for t in (q, k, v)))
    assert_close(out.numpy(), want, 2e-5)
    # A boolean torch mask (True = may attend), as scaled_dot_product_attention takes it.
    allowed = torch.from_numpy(rng.random((9, 9)) < 0.5)
    additive = np.where(allowed.numpy(), 0.0, -np.inf)
    want = ref_attention(*(t.detach().numpy() for t in (q, k, v)), causal=False, mask=additive)
    assert_close(llmkit.attention(q, k, v, causal=False, mask=allowed).numpy(), want, 2e-5)


# ---------------------------------------------------------------------------
# Attention errors.
def test_attention_errors(rng):
    q, k, v = qkv(rng, 1, 4, 4, 6, 4, 8)  # 6 query heads over 4 kv heads
    with pytest.raises(ValueError, match="multiple") as e:
        llmkit.attention(q, k, v)
    assert e.value.status == "LLMKIT_ERROR_SHAPE"
    q, k, v = qkv(rng, 1, 4, 4, 2, 2, 8)
    with pytest.raises(ValueError) as e:
        llmkit.attention(q, k.astype(np.float16), v)
    assert e.value.status == "LLMKIT_ERROR_DTYPE"
    with pytest.raises(ValueError) as e:
        llmkit.attention(q[0], k[0], v[0])
    assert e.value.status == "LLMKIT_ERROR_SHAPE"
    with pytest.raises(ValueError) as e:
        llmkit.attention(q, k[:, :3], v)
    assert e.value.status == "LLMKIT_ERROR_SHAPE"
    big = np.zeros((1, 2, 1, 640), np.float32)
    with pytest.raises(ValueError, match="576"):
        llmkit.attention(big, big, big)
    with pytest.raises(ValueError, match="mask") as e:
        llmkit.attention(q, k, v, mask=np.zeros((4, 5), np.float32))
    assert e.value.status == "LLMKIT_ERROR_SHAPE"
    with pytest.raises(ValueError, match="2 heads"):
        llmkit.attention(q, k, v, alibi_slopes=[0.5, 0.25, 0.125])
    with pytest.raises(ValueError, match="causal"):
        llmkit.attention(q, k, v, causal=False, window=4)
    with pytest.raises(ValueError, match="window"):
        llmkit.attention(q, k, v, window=0)
    # a window past int64 sees every key, as a plain causal call does
    np.testing.assert_array_equal(llmkit.attention(q, k, v, window=2**70), llmkit.attention(q, k, v))
    for name in ("scale", "softcap"):
        for bad in (0.0, -1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match=name):
                llmkit.attention(q, k, v, **{name: bad})
    with pytest.raises(ValueError, match="num_threads"):
        llmkit.attention(q, k, v, num_threads=-1)
    strided_d = np.zeros((1, 4, 2, 16), np.float32)[..., ::2]
    with pytest.raises(llmkit.LlmkitError) as e:
        llmkit.attention(strided_d, k, v)
    assert e.value.status == "LLMKIT_ERROR_UNSUPPORTED"


# ---------------------------------------------------------------------------
# RoPE.
def ref_inv_freq(n, theta=10000.0):
    return 1.0 / theta ** (np.arange(0, n, 2, dtype=np.float64) / n)


def ref_rope_neox(x, pos, inv_freq, mscale=1.0):
    """Hugging Face's form: x * cos + rotate_half(x) * sin on the first len(2 * inv_freq) dims."""
    x = np.asarray(x, np.float64)
    n = 2 * inv_freq.size
    ang = np.asarray(pos, np.float64)[..., None] * inv_freq  # [.., S, n/2]
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(emb) * mscale, np.sin(emb) * mscale
    if cos.ndim == 2:
        cos, sin = cos[None], sin[None]
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    r = x[..., :n]
    half = n // 2
    rot = np.concatenate([-r[..., half:], r[..., :half]], axis=-1)
    out = x.copy()
    out[..., :n] = r * cos + rot * sin
    return out


def ref_rope_interleaved(x, pos, inv_freq):
    """Meta's Llama form: adjacent pairs as complex numbers times e^{i angle}."""
    x = np.asarray(x, np.float64)
    n = 2 * inv_freq.size
    ang = np.asarray(pos, np.float64)[..., None] * inv_freq
    rot = np.exp(1j * ang)
    if rot.ndim == 2:
        rot = rot[None]
    z = x[..., 0:n:2] + 1j * x[..., 1:n:2]
    z = z * rot[:, :, None, :]
    out = x.copy()
    out[..., 0:n:2], out[..., 1:n:2] = z.real, z.imag
    return out


def test_rope_neox_and_interleaved(rng):
    x = rng.standard_normal((2, 11, 3, 64)).astype(np.float32)
    pos = np.arange(100, 111)
    inv = ref_inv_freq(64, 500000.0)
    assert_close(llmkit.rope(x, pos, theta=500000.0), ref_rope_neox(x, pos, inv), 1e-5)
    assert_close(llmkit.rope(x, pos, theta=500000.0, layout="interleaved"), ref_rope_interleaved(x, pos, inv), 1e-5)
    # Per-sequence positions [B, S] (int32), and a list.
    pos2 = np.stack([pos, pos[::-1] * 7]).astype(np.int32)
    assert_close(llmkit.rope(x, pos2, theta=500000.0), ref_rope_neox(x, pos2, inv), 2e-5)
    np.testing.assert_array_equal(llmkit.rope(x, pos.tolist(), theta=500000.0), llmkit.rope(x, pos, theta=500000.0))
    # Position 0 is the identity.
    np.testing.assert_array_equal(llmkit.rope(x, np.zeros(11, np.int64)), x)


def test_rope_partial_rotary(rng):
    x = rng.standard_normal((1, 5, 2, 80)).astype(np.float32)
    pos = np.arange(5) * 13
    out = llmkit.rope(x, pos, rotary_dim=32)
    np.testing.assert_array_equal(out[..., 32:], x[..., 32:])
    assert_close(out, ref_rope_neox(x, pos, ref_inv_freq(32)), 1e-5)
    out_i = llmkit.rope(x, pos, rotary_dim=32, layout="INTERLEAVED")
    assert_close(out_i, ref_rope_interleaved(x, pos, ref_inv_freq(32)), 1e-5)


def test_rope_copy_and_in_place(rng):
    x = rng.standard_normal((1, 4, 2, 16)).astype(np.float32)
    keep = x.copy()
    y = llmkit.rope(x, np.arange(4))
    np.testing.assert_array_equal(x, keep)  # a copy by default
    z = llmkit.rope(x, np.arange(4), in_place=True)
    assert z is x
    np.testing.assert_array_equal(x, y)
    # The copy is written in one pass (llmkit_rope_into) from x where it lies: strided views, the other
    # byte order, and lists give the bits of rotating a compact copy in place.
    wide = rng.standard_normal((1, 4, 5, 16)).astype(np.float32)
    view = wide[:, :, 1::2]
    want = llmkit.rope(np.ascontiguousarray(view), np.arange(4) + 9)
    want_inplace = np.ascontiguousarray(view)
    llmkit.rope(want_inplace, np.arange(4) + 9, in_place=True)
    np.testing.assert_array_equal(want, want_inplace)
    np.testing.assert_array_equal(llmkit.rope(view, np.arange(4) + 9), want)
    np.testing.assert_array_equal(llmkit.rope(view.astype(">f4"), np.arange(4) + 9), want)
    np.testing.assert_array_equal(llmkit.rope(view.tolist(), np.arange(4) + 9), want)
    assert llmkit.rope(view, np.arange(4) + 9).flags.c_contiguous
    # In place through a strided view rotates the parent's memory.
    parent = rng.standard_normal((1, 4, 6, 16)).astype(np.float32)
    before = parent.copy()
    llmkit.rope(parent[:, :, ::3], np.arange(4), in_place=True)
    np.testing.assert_array_equal(parent[:, :, 1::3], before[:, :, 1::3])
    np.testing.assert_array_equal(parent[:, :, ::3], llmkit.rope(before[:, :, ::3], np.arange(4)))


def test_rope_scalings(rng):
    n = 64
    x = rng.standard_normal((1, 6, 2, n)).astype(np.float32)
    pos = np.array([0, 1, 5, 1000, 9000, 30000])
    # Linear: the same angles as plain RoPE at positions / factor.
    lin = llmkit.rope(x, 2 * pos, scaling={"type": "linear", "factor": 2.0})
    np.testing.assert_array_equal(lin, llmkit.rope(x, pos))
    # NTK-aware: plain RoPE with theta * alpha^(n / (n - 2)).
    ntk = llmkit.rope(x, pos, scaling={"type": "ntk", "alpha": 8.0})
    assert_close(ntk, ref_rope_neox(x, pos, ref_inv_freq(n, 10000.0 * 8.0 ** (n / (n - 2)))), 2e-5)

    # Llama 3.1, as transformers' _compute_llama3_parameters (given as Hugging Face's dict).
    inv = ref_inv_freq(n, 500000.0)
    factor, low, high, orig = 8.0, 1.0, 4.0, 8192.0
    wavelen = 2 * math.pi / inv
    smooth = (orig / wavelen - low) / (high - low)
    want = np.where(wavelen > orig / low, inv / factor, inv)
    mid = (wavelen <= orig / low) & (wavelen >= orig / high)
    want = np.where(mid, (1 - smooth) * want / factor + smooth * want, want)
    hf = {"rope_type": "llama3", "factor": factor, "low_freq_factor": low, "high_freq_factor": high,
          "original_max_position_embeddings": 8192}
    assert_close(llmkit.rope(x, pos, theta=500000.0, scaling=hf), ref_rope_neox(x, pos, want), 2e-5)

    # YaRN, as transformers' _compute_yarn_parameters.
    factor, orig, beta_fast, beta_slow = 4.0, 4096, 32.0, 1.0
    inv = ref_inv_freq(n)

    def corr(rot):
        return (n * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(10000.0))

    lo, hi = max(math.floor(corr(beta_fast)), 0), min(math.ceil(corr(beta_slow)), n - 1)
    ramp = np.clip((np.arange(n // 2) - lo) / (hi - lo), 0, 1)
    extrap = 1 - ramp
    want = inv / factor * (1 - extrap) + inv * extrap
    mscale = 0.1 * math.log(factor) + 1.0
    yarn = {"type": "yarn", "factor": factor, "original_max_position": orig}
    assert_close(llmkit.rope(x, pos, scaling=yarn), ref_rope_neox(x, pos, want, mscale), 2e-5)
    yarn2 = dict(yarn, beta_fast=beta_fast, beta_slow=beta_slow, attention_factor=1.0)
    assert_close(llmkit.rope(x, pos, scaling=yarn2), ref_rope_neox(x, pos, want), 2e-5)


def test_rope_longrope_and_frequency_factors(rng):
    n = 32
    x = rng.standard_normal((2, 6, 3, n)).astype(np.float32)
    pos = np.array([[0, 1, 7, 100, 3000, 4000], [9, 8, 7, 6, 5, 4]])
    # The C API takes float32 factors: the reference divides by those values.
    short = (1.0 + 0.05 * np.arange(n // 2)).astype(np.float32).astype(np.float64)
    long_ = 1.0 + 3.0 * np.arange(n // 2)
    inv = ref_inv_freq(n, 10000.0)
    # LongRoPE as transformers' _compute_longrope_parameters: inv_freq / factors, cos and sin times
    # sqrt(1 + ln(factor) / ln(original)) (factor 32 over 4096: sqrt(1 + 5/12)).
    lr = {"type": "longrope", "frequency_factors": long_, "factor": 32.0, "original_max_position": 4096}
    assert_close(llmkit.rope(x, pos, scaling=lr), ref_rope_neox(x, pos, inv / long_, np.sqrt(17 / 12)), 2e-5)
    # Hugging Face's pair (Phi-3's config: max_position_embeddings and the original outside rope_scaling):
    # short factors while the call's largest position + 1 is within the original context, long past it.
    hf = {"rope_type": "longrope", "short_factor": short.tolist(), "long_factor": long_.tolist(),
          "max_position_embeddings": 131072, "original_max_position_embeddings": 4096}
    assert_close(llmkit.rope(x, pos, scaling=hf), ref_rope_neox(x, pos, inv / short, np.sqrt(17 / 12)), 2e-5)
    near = np.array([4095])  # position 4095 is token 4096: still short
    assert_close(llmkit.rope(x[:, :1], near, scaling=hf), ref_rope_neox(x[:, :1], near, inv / short, np.sqrt(17 / 12)),
                 2e-4)
    past = np.array([4096])
    assert_close(llmkit.rope(x[:, :1], past, scaling=hf), ref_rope_neox(x[:, :1], past, inv / long_, np.sqrt(17 / 12)),
                 2e-4)
    # attention_factor given wins; factor 1 keeps cos and sin.
    assert_close(llmkit.rope(x, pos, scaling=dict(lr, attention_factor=1.5)),
                 ref_rope_neox(x, pos, inv / long_, 1.5), 3e-5)
    assert_close(llmkit.rope(x, pos, scaling=dict(lr, factor=1.0)), ref_rope_neox(x, pos, inv / long_), 2e-5)
    # Frequency factors with another scaling (a GGUF model's rope_freqs): its frequencies divided by them.
    lin = {"type": "linear", "factor": 4.0, "frequency_factors": long_}
    assert_close(llmkit.rope(x, pos, scaling=lin), ref_rope_neox(x, pos, inv / 4.0 / long_), 2e-5)
    plain = {"type": "none", "frequency_factors": long_}
    assert_close(llmkit.rope(x, pos, scaling=plain, layout="interleaved"),
                 ref_rope_interleaved(x, pos, inv / long_), 2e-5)
    # Partial rotary: one factor per rotated pair.
    part = {"type": "longrope", "frequency_factors": long_[:8], "factor": 32.0, "original_max_position": 4096}
    out = llmkit.rope(x, pos, rotary_dim=16, scaling=part)
    np.testing.assert_array_equal(out[..., 16:], x[..., 16:])
    assert_close(out, ref_rope_neox(x, pos, ref_inv_freq(16) / long_[:8], np.sqrt(17 / 12)), 2e-5)


def test_rope_parameters_keys_and_proportional(rng):
    x = rng.standard_normal((1, 3, 2, 32)).astype(np.float32)
    pos = np.array([1, 50, 700])
    # rope_theta must agree with theta; partial_rotary_factor sets rotary_dim (int(head_dim * factor)).
    with pytest.raises(ValueError, match=r"rope_theta'\] = 500000 differs from theta = 10000; pass theta=500000"):
        llmkit.rope(x, pos, scaling={"rope_type": "default", "rope_theta": 500000.0})
    np.testing.assert_array_equal(llmkit.rope(x, pos, theta=5e5, scaling={"rope_type": "default", "rope_theta": 5e5}),
                                  llmkit.rope(x, pos, theta=5e5))
    half = {"rope_type": "default", "partial_rotary_factor": 0.5}
    np.testing.assert_array_equal(llmkit.rope(x, pos, scaling=half), llmkit.rope(x, pos, rotary_dim=16))
    with pytest.raises(ValueError, match="rotary_dim = 8 differs"):
        llmkit.rope(x, pos, rotary_dim=8, scaling=half)
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        llmkit.rope(x, pos, scaling={"rope_type": "default", "partial_rotary_factor": 1.5})
    # Proportional: the first int(0.25 * 32 // 2) = 4 of 16 pairs (k, k + 16) turn at theta^(-2k/32), the rest stay.
    prop = llmkit.rope(x, pos, scaling={"rope_type": "proportional", "partial_rotary_factor": 0.25})
    inv = ref_inv_freq(32)
    inv[4:] = 0.0
    assert_close(prop, ref_rope_neox(x, pos, inv), 2e-5)
    np.testing.assert_array_equal(prop[..., 4:16], x[..., 4:16])
    np.testing.assert_array_equal(prop[..., 20:], x[..., 20:])
    with pytest.raises(ValueError, match="not rotary_dim"):
        llmkit.rope(x, pos, rotary_dim=8, scaling={"rope_type": "proportional", "partial_rotary_factor": 0.25})
    with pytest.raises(ValueError, match="does not take 'alpha'"):
        llmkit.rope(x, pos, scaling={"rope_type": "proportional", "alpha": 2.0})
    # The caches rotate the same way (their head_dim).
    cache = llmkit.KVCache(n_layers=1, n_kv_heads=2, head_dim=32, capacity=8)
    plain = llmkit.KVCache(n_layers=1, n_kv_heads=2, head_dim=32, capacity=8)
    s, t = cache.new_sequence(), plain.new_sequence()
    rope = {"theta": 1e6, "scaling": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1e6}}
    cache.append(0, s, x[0], x[0], rope=rope)
    plain.append(0, t, llmkit.rope(x, np.arange(3), **rope)[0], x[0])
    q = rng.standard_normal((1, 1, 2, 32)).astype(np.float32)
    np.testing.assert_array_equal(cache.attention(0, q, [s], rope=rope),
                                  plain.attention(0, llmkit.rope(q, [2], **rope), [t]))


def test_rope_dynamic_ntk(rng):
    # alpha = f * max(n, L) / L - (f - 1), n the call's largest position + 1: plain RoPE within L.
    x = rng.standard_normal((1, 4, 2, 32)).astype(np.float32)
    dyn = {"rope_type": "dynamic", "factor": 2.0, "max_position_embeddings": 64}
    inside = np.array([0, 5, 40, 63])
    np.testing.assert_array_equal(llmkit.rope(x, inside, scaling=dyn), llmkit.rope(x, inside))
    past = np.array([0, 5, 40, 99])  # n = 100: alpha = 2 * 100 / 64 - 1
    want = llmkit.rope(x, past, scaling={"type": "ntk", "alpha": 2 * 100 / 64 - 1})
    np.testing.assert_array_equal(llmkit.rope(x, past, scaling=dyn), want)
    assert_close(want, ref_rope_neox(x, past, ref_inv_freq(32, 10000.0 * (2 * 100 / 64 - 1) ** (32 / 30))), 2e-5)
    with pytest.raises(ValueError, match="needs 'max_position_embeddings'"):
        llmkit.rope(x, past, scaling={"rope_type": "dynamic", "factor": 2.0})
    with pytest.raises(ValueError, match="factor >= 1"):
        llmkit.rope(x, past, scaling=dict(dyn, factor=0.5))
    with pytest.raises(ValueError, match="does not take 'alpha'"):
        llmkit.rope(x, past, scaling=dict(dyn, alpha=2.0))
    # The caches pick alpha per call as they pick LongRoPE's lists: an append by the sequence's new length.
    cache = llmkit.KVCache(n_layers=1, n_kv_heads=2, head_dim=32, capacity=128)
    plain = llmkit.KVCache(n_layers=1, n_kv_heads=2, head_dim=32, capacity=128)
    s, t = cache.new_sequence(), plain.new_sequence()
    for n in (60, 40):  # lengths 60 (within 64: plain), then 100
        k = rng.standard_normal((n, 2, 32)).astype(np.float32)
        pos = np.arange(plain.length(t), plain.length(t) + n)
        cache.append(0, s, k, k, rope={"scaling": dyn})
        plain.append(0, t, llmkit.rope(k[None], pos, scaling=dyn)[0], k)
    q = rng.standard_normal((1, 1, 2, 32)).astype(np.float32)
    np.testing.assert_array_equal(cache.attention(0, q, [s], rope={"scaling": dyn}),
                                  plain.attention(0, llmkit.rope(q, [99], scaling=dyn), [t]))


def test_rope_longrope_errors(rng):
    x = rng.standard_normal((1, 4, 2, 16)).astype(np.float32)
    pos = np.arange(4)
    f = [1.0] * 8
    with pytest.raises(ValueError, match="needs 'frequency_factors', or both"):
        llmkit.rope(x, pos, scaling={"type": "longrope", "factor": 4.0})
    with pytest.raises(ValueError, match="needs 'frequency_factors', or both"):
        llmkit.rope(x, pos, scaling={"type": "longrope", "long_factor": f, "original_max_position": 4})
    with pytest.raises(ValueError, match="not both"):
        llmkit.rope(x, pos, scaling={"type": "longrope", "frequency_factors": f, "short_factor": f, "long_factor": f})
    with pytest.raises(ValueError, match="original_max_position_embeddings"):
        llmkit.rope(x, pos, scaling={"type": "longrope", "short_factor": f, "long_factor": f, "factor": 2.0})
    with pytest.raises(ValueError, match="max_position_embeddings"):
        llmkit.rope(x, pos, scaling={"type": "longrope", "short_factor": f, "long_factor": f,
                                     "original_max_position_embeddings": 4})
    with pytest.raises(ValueError, match="holds 7 values; it needs one per rotated pair, 8"):
        llmkit.rope(x, pos, scaling={"type": "longrope", "frequency_factors": f[:7]})
    with pytest.raises(ValueError, match="holds 8 values; it needs one per rotated pair, 4"):
        llmkit.rope(x, pos, rotary_dim=8, scaling={"type": "none", "frequency_factors": f})
    for bad in (0.0, -2.0, float("nan"), float("-inf")):
        with pytest.raises(ValueError, match=r"scaling\['frequency_factors'\]\[3\] must be > 0 \(or \+inf\)"):
            llmkit.rope(x, pos, scaling={"type": "longrope", "frequency_factors": f[:3] + [bad] + f[4:]})
    with pytest.raises(TypeError, match="sequence of numbers"):
        llmkit.rope(x, pos, scaling={"type": "linear", "factor": 2.0, "frequency_factors": "1,2"})
    with pytest.raises(ValueError, match="1-D"):
        llmkit.rope(x, pos, scaling={"type": "longrope", "frequency_factors": [[1.0] * 8]})
    with pytest.raises(ValueError, match="does not take 'alpha'"):
        llmkit.rope(x, pos, scaling={"type": "longrope", "frequency_factors": f, "alpha": 2.0})
    with pytest.raises(ValueError, match="original_max_position"):  # ln(1) = 0 under the default attention factor
        llmkit.rope(x, pos, scaling={"type": "longrope", "frequency_factors": f, "factor": 8.0,
                                     "original_max_position": 1})


def test_rope_scalings_match_transformers(rng):
    """The rotary embeddings of transformers itself (its models' RotaryEmbedding classes and
    apply_rotary_pos_emb), for each scaling it shares with llmkit, LongRoPE's short and long
    factors included. transformers computes its angles in float32, so the tolerance follows
    the largest position (a float32 angle of p radians is off by up to p * 2^-24)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
    from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding

    head_dim, heads = 64, 2
    short = (1.0 + 0.02 * np.arange(head_dim // 2)).tolist()
    long_ = (1.0 + 1.7 * np.arange(head_dim // 2)).tolist()
    phi3 = {"type": "longrope", "short_factor": short, "long_factor": long_}
    cases = [
        ("llama", {"rope_type": "linear", "factor": 4.0}, 10000.0, 8192),
        ("llama", {"rope_type": "dynamic", "factor": 4.0}, 10000.0, 4096),
        ("llama", {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192}, 500000.0, 131072),
        ("llama", {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}, 10000.0, 16384),
        ("llama", {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096, "beta_fast": 16.0,
                   "beta_slow": 2.0, "attention_factor": 1.2}, 10000.0, 16384),
        ("phi3", phi3, 10000.0, 131072),
        # Gemma 4's full-attention layers: a quarter of the head's pairs turning, over the whole head.
        ("llama", {"rope_type": "proportional", "partial_rotary_factor": 0.25}, 1000000.0, 8192),
        ("llama", {"rope_type": "proportional", "partial_rotary_factor": 0.5, "factor": 2.0}, 10000.0, 8192),
    ]
    for family, scaling, theta, max_pos in cases:
        dynamic = scaling.get("rope_type") == "dynamic"
        common = dict(hidden_size=head_dim * heads, num_attention_heads=heads, num_key_value_heads=heads,
                      max_position_embeddings=max_pos)
        if family == "phi3":
            config = transformers.Phi3Config(original_max_position_embeddings=4096, rope_scaling=dict(scaling),
                                             **common)
            rotary = Phi3RotaryEmbedding(config)
            ours = dict(scaling, max_position_embeddings=max_pos, original_max_position_embeddings=4096)
        elif scaling["rope_type"] == "proportional":
            config = transformers.LlamaConfig(rope_parameters=dict(scaling, rope_theta=theta), head_dim=head_dim,
                                              **common)
            rotary = LlamaRotaryEmbedding(config)
            ours = dict(scaling)
        else:
            config = transformers.LlamaConfig(rope_theta=theta, rope_scaling=dict(scaling), **common)
            rotary = LlamaRotaryEmbedding(config)
            # Dynamic NTK reads the model's context, which config.json keeps outside rope_scaling.
            ours = dict(scaling, max_position_embeddings=max_pos) if dynamic else dict(scaling)
        # A short call (LongRoPE: short factors) and one past the original context (long factors).
        for positions in (np.array([0, 1, 2, 77, 1000, 4000]), np.array([3, 900, 4096, 6000, 9000])):
            x = rng.standard_normal((1, positions.size, heads, head_dim)).astype(np.float32)
            xt = torch.from_numpy(x).transpose(1, 2)  # transformers' [B, H, S, D]
            cos, sin = rotary(xt, torch.from_numpy(positions)[None])
            want, _ = apply_rotary_pos_emb(xt.double(), xt.double(), cos.double(), sin.double())
            want = want.transpose(1, 2).numpy()
            got = llmkit.rope(x, positions, theta=theta, scaling=ours)
            tol = 4 * 2.0**-24 * positions.max() * np.abs(x).max() * 2 + 1e-5
            assert_close(got, want, tol)
            # transformers' own standardized rope_parameters (with rope_theta and partial_rotary_factor) as
            # they are, plus the context keys config.json keeps outside them.
            extra = {k: v for k, v in ours.items() if k in ("max_position_embeddings", "original_max_position_embeddings")}
            np.testing.assert_array_equal(
                llmkit.rope(x, positions, theta=theta, scaling=dict(config.rope_parameters, **extra)), got)
            # And the scaling matters: plain RoPE differs from it (dynamic NTK only past the context).
            plain = llmkit.rope(x, positions, theta=theta)
            if dynamic and positions.max() < max_pos:
                np.testing.assert_array_equal(got, plain)
            else:
                assert np.max(np.abs(plain - want)) > 100 * tol, scaling


def test_mrope_matches_transformers_qwen2_vl_and_qwen3_vl(rng):
    """M-RoPE against transformers' own text rotary embeddings: Qwen2-VL's sections (Qwen2.5-VL's too)
    and Qwen3-VL's interleaved layout, with positions (3, B, S) whose components differ (an image's
    temporal, height and width indices) and (3, S) shared by the batch."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLRotaryEmbedding
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextRotaryEmbedding

    head_dim, heads, B, S = 128, 2, 2, 9
    cases = [
        (transformers.Qwen2VLTextConfig, Qwen2VLRotaryEmbedding, [16, 24, 24], False, 1000000.0),
        (transformers.Qwen3VLTextConfig, Qwen3VLTextRotaryEmbedding, [24, 20, 20], True, 5000000.0),
    ]
    for config_cls, rotary_cls, sections, interleaved, theta in cases:
        params = {"rope_type": "default", "mrope_section": sections, "rope_theta": theta}
        if interleaved:
            params["mrope_interleaved"] = True
        config = config_cls(hidden_size=head_dim * heads, num_attention_heads=heads, num_key_value_heads=heads,
                            head_dim=head_dim, rope_parameters=params)
        rotary = rotary_cls(config)
        x = rng.standard_normal((B, S, heads, head_dim)).astype(np.float32)
        positions = rng.integers(0, 2000, size=(3, B, S))
        xt = torch.from_numpy(x).transpose(1, 2)
        cos, sin = rotary(xt, torch.from_numpy(positions))
        want, _ = apply_rotary_pos_emb(xt.double(), xt.double(), cos.double(), sin.double())
        want = want.transpose(1, 2).numpy()
        scaling = {"type": "default", "mrope_section": sections, "mrope_interleaved": interleaved}
        got = llmkit.rope(x, positions, theta=theta, scaling=scaling)
        assert_close(got, want, 4 * 2.0**-24 * 2000 * np.abs(x).max() * 2 + 1e-5)
        # Against llmkit's own float64 reference, pair by pair, to llmkit's tolerance.
        comp = np.zeros(head_dim // 2, np.int64)
        if interleaved:
            for dim in (1, 2):
                comp[dim:3 * sections[dim]:3] = dim
        else:
            comp = np.repeat([0, 1, 2], sections)
        inv = ref_inv_freq(head_dim, theta)
        ang = positions[comp].transpose(1, 2, 0) * inv  # [B, S, pairs]: pair k at its component's position
        ref = ref_rope_neox(x, np.zeros((B, S), np.int64), inv)  # identity, to build on
        c, s_ = np.cos(ang)[:, :, None, :], np.sin(ang)[:, :, None, :]
        lo, hi = x[..., :head_dim // 2].astype(np.float64), x[..., head_dim // 2:].astype(np.float64)
        ref = np.concatenate([lo * c - hi * s_, lo * s_ + hi * c], axis=-1)
        assert_close(got, ref, 2e-5)
        # (3, S) positions are shared by the batch; the scaling dict's "mrope" type is Qwen2-VL's older name.
        shared = positions[:, 0]
        got2 = llmkit.rope(x, shared, theta=theta, scaling=dict(scaling, type="mrope"))
        np.testing.assert_array_equal(got2, llmkit.rope(x, np.repeat(shared[:, None], B, axis=1), theta=theta,
                                                        scaling=scaling))
        # Text tokens (every component equal) rotate as plain RoPE.
        text = np.repeat(np.arange(S)[None, None] + 40, 3, axis=0)
        np.testing.assert_array_equal(llmkit.rope(x, text[:, 0], theta=theta, scaling=scaling),
                                      llmkit.rope(x, np.arange(S) + 40, theta=theta))


def test_mrope_errors(rng):
    x = rng.standard_normal((1, 4, 2, 16)).astype(np.float32)
    pos3 = np.ones((3, 4), np.int64)
    ok = {"type": "default", "mrope_section": [2, 3, 3]}
    llmkit.rope(x, pos3, scaling=ok)
    with pytest.raises(ValueError, match=r"M-RoPE's \[3, B, S\]"):
        llmkit.rope(x, np.arange(4), scaling=ok)
    with pytest.raises(ValueError, match="sums to 9 pairs"):
        llmkit.rope(x, pos3, scaling={"type": "default", "mrope_section": [2, 3, 4]})
    with pytest.raises(ValueError, match="must hold 3 pair counts"):
        llmkit.rope(x, pos3, scaling={"type": "default", "mrope_section": [4, 4]})
    with pytest.raises(ValueError, match="must be a bool"):
        llmkit.rope(x, pos3, scaling=dict(ok, mrope_interleaved=2))
    cache = llmkit.KVCache(n_layers=1, n_kv_heads=2, head_dim=16, capacity=8)
    s = cache.new_sequence()
    with pytest.raises(llmkit.LlmkitError, match="M-RoPE"):
        cache.append(0, s, x[0], x[0], rope={"scaling": ok})
    assert cache.length(s) == 0


def test_rope_half_precision(rng):
    x = rng.standard_normal((2, 8, 2, 32)).astype(np.float16)
    pos = np.arange(8) + 40
    out = llmkit.rope(x, pos)
    assert out.dtype == np.float16
    assert_close(out, ref_rope_neox(x, pos, ref_inv_freq(32)), 4e-3)


def test_rope_torch_bfloat16(rng):
    torch = pytest.importorskip("torch")
    pos = np.arange(8) + 40
    t = torch.from_numpy(rng.standard_normal((2, 8, 2, 32)).astype(np.float32)).bfloat16()
    got = llmkit.rope(t, pos)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.bfloat16
    assert_close(got.double().numpy(), ref_rope_neox(t.double().numpy(), pos, ref_inv_freq(32)), 3e-2)
    before = t.clone()
    assert llmkit.rope(t, torch.from_numpy(pos), in_place=True) is t
    assert torch.equal(t, got) and not torch.equal(t, before)


def test_rope_errors(rng):
    x = rng.standard_normal((1, 4, 2, 16)).astype(np.float32)
    pos = np.arange(4)
    with pytest.raises(ValueError, match="layout"):
        llmkit.rope(x, pos, layout="gptj")
    with pytest.raises(ValueError, match="type"):
        llmkit.rope(x, pos, scaling={"type": "dynamic", "factor": 2.0})
    with pytest.raises(ValueError, match="mscale"):
        llmkit.rope(x, pos, scaling={"type": "yarn", "factor": 2.0, "original_max_position": 4096, "mscale": 1})
    with pytest.raises(ValueError, match="factor"):
        llmkit.rope(x, pos, scaling={"type": "linear"})
    with pytest.raises(ValueError, match="original_max_position"):
        llmkit.rope(x, pos, scaling={"type": "llama3", "factor": 8.0})
    with pytest.raises(ValueError, match="factor"):
        llmkit.rope(x, pos, scaling={"type": "linear", "factor": -1.0})
    with pytest.raises(TypeError):
        llmkit.rope(x, pos, scaling="linear")
    with pytest.raises(ValueError) as e:
        llmkit.rope(x, pos, rotary_dim=5)
    assert e.value.status == "LLMKIT_ERROR_SHAPE"
    with pytest.raises(ValueError):
        llmkit.rope(x, pos, rotary_dim=32)
    with pytest.raises(ValueError, match="rotary_dim"):
        llmkit.rope(x, pos, rotary_dim=0)
    with pytest.raises(ValueError) as e:
        llmkit.rope(x, np.arange(5))
    assert e.value.status == "LLMKIT_ERROR_SHAPE"
    with pytest.raises(ValueError) as e:
        llmkit.rope(x, pos.astype(np.float32))
    assert e.value.status == "LLMKIT_ERROR_DTYPE"
    with pytest.raises(ValueError, match="theta"):
        llmkit.rope(x, pos, theta=0.0)
    ro = x.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        llmkit.rope(ro, pos, in_place=True)
    llmkit.rope(ro, pos)  # a copy is fine
    with pytest.raises(TypeError):
        llmkit.rope(x.tolist(), pos, in_place=True)


# ---------------------------------------------------------------------------
# KV-cache sizes.
def test_kv_cache_bytes_for_known_models():
    # Llama 2 7B: 32 layers, 32 kv heads (MHA) of 128, fp16, 4096 tokens = 2 GiB.
    assert llmkit.kv_cache_bytes(n_layers=32, n_kv_heads=32, head_dim=128, dtype="fp16", context=4096) == 2 * 2**30
    # Llama 3 8B: GQA with 8 kv heads, a quarter of that.
    assert llmkit.kv_cache_bytes(n_layers=32, n_kv_heads=8, head_dim=128, dtype="bf16", context=4096) == 512 * 2**20
    kw = dict(n_layers=32, n_kv_heads=8, head_dim=128, context=4096)
    base = llmkit.kv_cache_bytes(**kw)  # fp16 by default
    assert base == 512 * 2**20
    assert llmkit.kv_cache_bytes(**kw, dtype="fp32") == 2 * base
    assert llmkit.kv_cache_bytes(**kw, dtype="int8") == base // 2
    assert llmkit.kv_cache_bytes(**kw, dtype="BFloat16", batch=3) == 3 * base
    assert llmkit.kv_cache_bytes(**kw, dtype=np.float32) == 2 * base
    assert llmkit.kv_cache_bytes(**kw, batch=0) == 0
    # V of its own head_dim: DeepSeek-V3's heads (K 192, V 128) and its latent cache (576, no V), bf16, per token.
    ds = dict(n_layers=61, dtype="bf16", context=1)
    assert llmkit.kv_cache_bytes(**ds, n_kv_heads=128, head_dim=192, v_head_dim=128) == 61 * 128 * 320 * 2
    assert llmkit.kv_cache_bytes(**ds, n_kv_heads=1, head_dim=576, v_head_dim=512, v_from_k=True) == 61 * 1152
    assert llmkit.kv_cache_bytes(**kw, v_head_dim=128) == base


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("v_head_dim,v_from_k", [(None, False), (96, False), (48, True)])
def test_kv_cache_bytes_is_what_a_cache_allocates(dtype, v_head_dim, v_from_k):
    """The arithmetic and the caches agree (16-bit and float32: no int8 scales)."""
    kw = dict(n_layers=3, n_kv_heads=2, head_dim=64, dtype=dtype, v_head_dim=v_head_dim, v_from_k=v_from_k)
    cache = llmkit.KVCache(capacity=100, max_sequences=4, **kw)
    assert cache.memory_bytes == llmkit.kv_cache_bytes(context=100, batch=4, **kw)
    paged = llmkit.PagedKVCache(n_blocks=10, block_size=16, **kw)
    assert paged.pool_bytes == llmkit.kv_cache_bytes(context=160, **kw)


def test_kv_cache_bytes_errors():
    kw = dict(n_layers=32, n_kv_heads=8, head_dim=128, context=4096)
    with pytest.raises(ValueError) as e:
        llmkit.kv_cache_bytes(**{**kw, "context": -1})
    assert e.value.status == "LLMKIT_ERROR_INVALID_ARGUMENT"
    with pytest.raises(ValueError) as e:
        llmkit.kv_cache_bytes(**{**kw, "context": 2**62})
    assert e.value.status == "LLMKIT_ERROR_OUT_OF_RANGE"
    with pytest.raises(ValueError, match="does not fit"):
        llmkit.kv_cache_bytes(**{**kw, "batch": 2**70})
    with pytest.raises(ValueError, match="fp16"):
        llmkit.kv_cache_bytes(**kw, dtype="q4")
    with pytest.raises(TypeError):
        llmkit.kv_cache_bytes(32, 8, 128, "fp16", 4096)  # keyword-only
    with pytest.raises(TypeError):
        llmkit.kv_cache_bytes(**{**kw, "head_dim": 128.0})


def test_attention_isa_names_a_kernel_set():
    isa = llmkit.attention_isa()
    assert isa in ("avx512vnni", "avx512", "avx2", "generic")
    # the int8 tolerance of test_kv_cache.py follows it; capped sets never work in integers
    import os
    if os.environ.get("LLMKIT_MAX_CPU_ISA") in ("generic", "avx2"):
        assert isa == os.environ["LLMKIT_MAX_CPU_ISA"] or isa == "generic"

