"""GPTQ (and AWQ) on realistic layers: they must beat round-to-nearest on the layer's output
error, and GPTQ must give the same integers as a plain float64 numpy GPTQ written here from the
paper's Algorithm 1 (no lazy batching)."""

import numpy as np
import pytest

import llmkit


def correlated_inputs(rng, tokens, n, rank=64, noise=0.3):
    """Activations that live mostly in a low-dimensional subspace (as LLM hidden states do),
    plus isotropic noise and a few outlier channels."""
    x = rng.standard_normal((tokens, rank)) @ rng.standard_normal((rank, n)) / np.sqrt(rank)
    x += noise * rng.standard_normal((tokens, n))
    x[:, rng.choice(n, 6, replace=False)] *= 12.0  # outlier channels
    return x.astype(np.float32)


def realistic_layer(rng, rows=128, n=256, tokens=1024):
    """A weight with a decaying spectrum, fed correlated activations."""
    u, _ = np.linalg.qr(rng.standard_normal((rows, rows)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    spectrum = 1.0 / (1.0 + np.arange(rows)) ** 0.7
    w = (u * spectrum) @ v[:rows] * 0.5 + rng.standard_normal((rows, n)) * 0.01
    return w.astype(np.float32), correlated_inputs(rng, tokens, n)


def output_error(w, w_hat, x):
    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    return float(np.sum(((w64 - w_hat) @ x64.T) ** 2) / np.sum((w64 @ x64.T) ** 2))


def find_params(x, sym):
    """GPTQ's Quantizer.find_params per row of a group (float32 in), scale rounded to f16."""
    lo = np.minimum(x.min(axis=1), 0)
    hi = np.maximum(x.max(axis=1), 0)
    if sym:
        m = np.maximum(-lo, hi)
        lo, hi = -m, m
    both0 = (lo == 0) & (hi == 0)
    lo, hi = np.where(both0, -1, lo), np.where(both0, 1, hi)
    s = ((hi.astype(np.float64) - lo) / 15).astype(np.float32).astype(np.float16).astype(np.float32)
    if sym:
        return s, np.full(s.shape, 8.0, np.float32)
    z = np.clip(np.rint(-lo / s), 0, 15)
    low = z < 1
    s = np.where(low, (hi / np.float32(14)).astype(np.float16).astype(np.float32), s)
    return s, np.where(low, 1, z).astype(np.float32)


def gptq_reference(w, x, group, act_order=False, damp=0.01, sym=True):
    """Algorithm 1 of Frantar et al. (2022), column by column in float64, with GPTQ's dead-column
    handling, act-order and dampening. Returns q [rows, n] (original order), scales and zeros per
    (row, group) and g_idx."""
    rows, n = w.shape
    W = w.astype(np.float64).copy()
    X = x.astype(np.float64)
    H = 2.0 / X.shape[0] * X.T @ X
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    perm = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(n)
    W = W[:, perm]
    H = H[perm][:, perm]
    H += damp * np.mean(np.diag(H)) * np.eye(n)
    U = np.linalg.cholesky(np.linalg.inv(H)).T  # H^-1 = U^T U, U upper
    g = n if group == -1 else group
    q = np.zeros((rows, n), np.uint8)
    scales = np.zeros((rows, n // g), np.float32)
    zeros = np.zeros((rows, n // g), np.float32)
    for j in range(n):
        if j % g == 0:
            s, z = find_params(W[:, j:j + g].astype(np.float32), sym)
            scales[:, j // g], zeros[:, j // g] = s, z
        s, z = scales[:, j // g], zeros[:, j // g]
        qj = np.clip(np.rint(W[:, j].astype(np.float32) / s) + z, 0, 15)
        deq = (s * (qj - z).astype(np.float32)).astype(np.float64)
        err = (W[:, j] - deq) / U[j, j]
        W[:, j + 1:] -= np.outer(err, U[j, j + 1:])
        q[:, j] = qj
    g_idx = np.zeros(n, np.int32)
    g_idx[perm] = np.arange(n) // g
    q_orig = np.zeros_like(q)
    q_orig[:, perm] = q
    return q_orig, scales, zeros, g_idx


def gptq_unpack(p, rows, n):
    qw = p["qweight"].view(np.uint32)
    q = np.zeros((rows, n), np.uint8)
    for j in range(8):
        q[:, j::8] = ((qw >> (4 * j)) & 0xF).T
    qz = p["qzeros"].view(np.uint32)
    z = np.zeros((qz.shape[0], rows), np.uint8)
    for j in range(8):
        z[:, j::8] = (qz >> (4 * j)) & 0xF
    return q, (z + 1).T, p["scales"].astype(np.float32).T, p["g_idx"]


@pytest.mark.parametrize("group,act_order,sym", [(128, False, True), (32, False, True), (64, True, True),
                                                 (-1, False, True), (128, True, False)])
def test_gptq_matches_float64_reference(rng, group, act_order, sym):
    rows, n = 64, 256
    w, x = realistic_layer(rng, rows, n, 512)
    qt, report = llmkit.gptq(w, [x[:200], x[200:]], group_size=group, act_order=act_order, sym=sym,
                             progress=False)
    q, z, s, g_idx = gptq_unpack(qt.planes(), rows, n)
    rq, rs, rz, rg = gptq_reference(w, x, group, act_order, sym=sym)
    np.testing.assert_array_equal(g_idx, rg)
    # Float64 updates summed in a different order (lazy blocks vs rank-1) can move a value across a
    # rounding boundary; the integers must agree everywhere but a handful of places.
    agree = np.mean(q == rq)
    assert agree >= 0.999, f"only {agree:.4%} of the integers agree with the reference"
    np.testing.assert_allclose(s, rs, rtol=2e-3)
    assert np.mean(z == rz.astype(np.uint8)) >= 0.99
    # The reported error is the real one.
    back = llmkit.dequantize(qt).astype(np.float64)
    assert report["output_error"] == pytest.approx(output_error(w, back, x), rel=1e-6)
    ref_back = (rs[:, rg] * (rq.astype(np.float32) - rz[:, rg])).astype(np.float64)
    assert report["output_error"] == pytest.approx(output_error(w, ref_back, x), rel=0.02)


@pytest.mark.parametrize("group", [128, 32])
def test_gptq_beats_round_to_nearest(rng, group):
    w, x = realistic_layer(rng)
    qt, report = llmkit.gptq(w, x, group_size=group, progress=False)
    rtn = llmkit.dequantize(llmkit.quantize(w, f"gptq_int4_g{group}")).astype(np.float64)
    e_rtn = output_error(w, rtn, x)
    e_gptq = output_error(w, llmkit.dequantize(qt).astype(np.float64), x)
    assert report["rtn_output_error"] == pytest.approx(e_rtn, rel=1e-6)
    assert e_gptq < 0.8 * e_rtn, (e_gptq, e_rtn)
    # act-order helps further on outlier channels (or at least does not hurt much).
    _, rep_ao = llmkit.gptq(w, x, group_size=group, act_order=True, progress=False)
    assert rep_ao["output_error"] < 0.8 * e_rtn


def test_gptq_on_real_weights(rng, data_dir):
    """The stories260K embedding rows as a 128 x 256 layer, fed random correlated inputs."""
    w = np.fromfile(data_dir / "quant-ref" / "ggml" / "input.f32", dtype="<f4").reshape(136, 256)[:128].copy()
    x = correlated_inputs(rng, 1024, 256)
    _, report = llmkit.gptq(w, x, group_size=128, progress=False)
    assert report["output_error"] < 0.8 * report["rtn_output_error"]


def test_gptq_q4_0_output_and_dead_columns(rng):
    w, x = realistic_layer(rng, 64, 128, 256)
    x[:, 5] = 0  # a dead input
    qt, rep = llmkit.gptq(w, x, group_size=32, format="q4_0", progress=False)
    assert qt.type == "q4_0" and rep["dead_columns"] == 1
    g, rep_g = llmkit.gptq(w, x, group_size=32, progress=False)
    np.testing.assert_array_equal(llmkit.dequantize(qt), llmkit.dequantize(g))
    assert np.all(llmkit.dequantize(g)[:, 5] == 0)
    assert rep["output_error"] == rep_g["output_error"]


def q4_k_grid(block):
    """(d, m) float32 of the 8 sub-blocks of one 144-byte Q4_K block (x = d * level - m), unpacked
    from the 12 scale bytes as ggml-common.h lays them out."""
    d, dmin = block[0:4].view(np.float16).astype(np.float32)
    s = block[4:16].astype(np.int32)
    sc = np.array([s[j] & 63 if j < 4 else (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4) for j in range(8)], np.float32)
    mn = np.array([s[j + 4] & 63 if j < 4 else (s[j + 4] >> 4) | ((s[j] >> 6) << 4) for j in range(8)], np.float32)
    return d * sc, dmin * mn


def gptq_q4_k_reference(w, x, damp=0.01):
    """GPTQ column by column in float64 with Q4_K's grid: at each super-block of 256 columns its
    scales and mins come from Q4_K's importance-weighted fit of the current weights (llmkit.quantize
    with imatrix=diag(H), itself byte-exact with ggml), then each column takes the nearest level."""
    rows, n = w.shape
    W = w.astype(np.float64).copy()
    X = x.astype(np.float64)
    H = 2.0 / X.shape[0] * X.T @ X
    importance = np.diag(H).astype(np.float32)
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * np.mean(np.diag(H)) * np.eye(n)
    U = np.linalg.cholesky(np.linalg.inv(H)).T
    w_hat = np.zeros((rows, n))
    for j in range(n):
        if j % 256 == 0:
            qt = llmkit.quantize(W[:, j:j + 256].astype(np.float32), "q4_K", imatrix=importance[j:j + 256])
            grids = [q4_k_grid(b) for b in np.asarray(qt.data).reshape(rows, 144)]
        sub = (j % 256) // 32
        d = np.array([g[0][sub] for g in grids], np.float32)
        m = np.array([g[1][sub] for g in grids], np.float32)
        v = np.clip((W[:, j].astype(np.float32) + m) / np.where(d == 0, 1, d), -1, 16)
        q = np.where(d == 0, 0, np.clip(np.rint(v), 0, 15)).astype(np.float32)
        w_hat[:, j] = (d * q - m).astype(np.float64)
        W[:, j + 1:] -= np.outer((W[:, j] - w_hat[:, j]) / U[j, j], U[j, j + 1:])
    return w_hat


def test_gptq_q4_k_matches_the_reference_and_beats_ggml_q4_k(rng):
    w, x = realistic_layer(rng, 64, 512, 512)
    x[:, 5] = 0  # a dead input
    qt, rep = llmkit.gptq(w, x, group_size=256, format="q4_K", progress=False)
    assert qt.type == "q4_K" and qt.nbytes == 64 * 2 * 144 and rep["dead_columns"] == 1
    got = llmkit.dequantize(qt).astype(np.float64)
    np.testing.assert_array_equal(got, gptq_q4_k_reference(w, x))
    # gguf-py decodes the same floats: the blocks are plain Q4_K.
    gguf = pytest.importorskip("gguf")
    np.testing.assert_array_equal(gguf.quants.dequantize(np.asarray(qt.data), gguf.GGMLQuantizationType.Q4_K)
                                  .reshape(64, 512), got)
    assert rep["output_error"] == pytest.approx(output_error(w, got, x), rel=1e-9)
    rtn = llmkit.dequantize(llmkit.quantize(w, "q4_K")).astype(np.float64)
    assert rep["rtn_output_error"] == pytest.approx(output_error(w, rtn, x), rel=1e-9)
    imatrix = (x.astype(np.float64) ** 2).sum(axis=0).astype(np.float32)
    with_imatrix = llmkit.dequantize(llmkit.quantize(w, "q4_K", imatrix=imatrix)).astype(np.float64)
    # GPTQ beats ggml's Q4_K by far, and also its importance-weighted Q4_K (same size).
    assert rep["output_error"] < 0.5 * rep["rtn_output_error"]
    assert rep["output_error"] < 0.9 * output_error(w, with_imatrix, x)
    with pytest.raises(ValueError, match="group_size=256"):
        llmkit.gptq(w, x, group_size=128, format="q4_K", progress=False)
    with pytest.raises(llmkit.LlmkitError, match="act_order"):
        llmkit.gptq(w, x, group_size=256, format="q4_K", act_order=True, progress=False)
    with pytest.raises(ValueError, match="multiple of 256|256"):
        llmkit.gptq(w[:, :384], x[:, :384], group_size=256, format="q4_K", progress=False)


def test_gptq_progress_and_errors(rng):
    w, x = realistic_layer(rng, 16, 512, 64)
    seen = []
    llmkit.gptq(w, x, group_size=128, block_size=128, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(128, 512), (256, 512), (384, 512), (512, 512)]
    with pytest.raises(ValueError, match="features"):
        llmkit.gptq(w, x[:, :256], progress=False)
    bad = x.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"\[3, 4\].*not finite"):
        llmkit.gptq(w, bad, progress=False)
    with pytest.raises(ValueError, match="group_size"):
        llmkit.gptq(w, x, group_size=48, progress=False)
    with pytest.raises(ValueError, match="calib"):
        llmkit.gptq(w, [], progress=False)
    with pytest.raises(llmkit.LlmkitError, match="act_order"):
        llmkit.gptq(w, x, group_size=32, format="q4_0", act_order=True, progress=False)
    with pytest.raises(ValueError, match="damp"):
        llmkit.gptq(w, x, damp=0, progress=False)


# ---------------------------------------------------------------------------
# AWQ


def salient_layer(rng, rows=128, n=256, tokens=1024):
    """Ordinary weights; activations where 1 % of the channels are 30x larger (AWQ's salient channels)."""
    w = (rng.standard_normal((rows, n)) * 0.02).astype(np.float32)
    x = rng.standard_normal((tokens, n))
    x[:, rng.choice(n, max(1, n // 100), replace=False)] *= 30.0
    return w, x.astype(np.float32)


@pytest.mark.parametrize("group", [128, 32])
def test_awq_beats_round_to_nearest(rng, group):
    w, x = salient_layer(rng)
    qt, scales, report = llmkit.awq(w, [x[:500], x[500:]], group_size=group, progress=False)
    assert qt.type == f"awq_int4_g{group}" and scales.shape == (256,) and scales.dtype == np.float32
    eff = llmkit.dequantize(qt).astype(np.float64) / scales[None, :].astype(np.float64)
    e_awq = output_error(w, eff, x)
    e_rtn = output_error(w, llmkit.dequantize(llmkit.quantize(w, f"awq_int4_g{group}")).astype(np.float64), x)
    assert report["output_error"] == pytest.approx(e_awq, rel=1e-6)
    assert report["rtn_output_error"] == pytest.approx(e_rtn, rel=1e-6)
    assert e_awq < 0.8 * e_rtn, (e_awq, e_rtn)
    # The salient channels got the largest scales.
    big = np.argsort(-np.abs(x).mean(axis=0))[:2]
    assert np.all(scales[big] >= np.median(scales))


def test_awq_scale_search_alone_and_symmetric(rng):
    w, x = salient_layer(rng, 64, 128, 512)
    _, _, no_clip = llmkit.awq(w, x, group_size=64, clip=False, progress=False)
    _, _, clipped = llmkit.awq(w, x, group_size=64, progress=False)
    assert no_clip["output_error"] <= no_clip["rtn_output_error"]  # alpha = 0 is on the grid
    assert clipped["output_error"] <= no_clip["output_error"] * 1.05
    qt, s, rep = llmkit.awq(w, x, group_size=64, zero_point=False, progress=False)
    z = qt.planes()["qzeros"].view(np.uint32)
    assert np.all(z == 0x88888888)  # symmetric: every zero point 8
    assert rep["output_error"] < rep["rtn_output_error"]


def test_awq_errors(rng):
    w, x = salient_layer(rng, 16, 64, 32)
    with pytest.raises(ValueError, match="group_size"):
        llmkit.awq(w, x, group_size=-1, progress=False)
    with pytest.raises(ValueError, match="features"):
        llmkit.awq(w, x[:, :32], group_size=32, progress=False)
    with pytest.raises(ValueError, match="n_grid"):
        llmkit.awq(w, x, group_size=32, n_grid=0, progress=False)
    with pytest.raises(ValueError, match="max_shrink"):
        llmkit.awq(w, x, group_size=32, max_shrink=1.0, progress=False)
    steps = []
    llmkit.awq(w, x, group_size=32, n_grid=4, progress=lambda d, t: steps.append((d, t)))
    assert steps == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_awq_q4_k_blocks_and_report(rng):
    w, x = realistic_layer(rng, 64, 512, 512)
    qt, scales, rep = llmkit.awq(w, x, group_size=256, format="q4_K", progress=False)
    assert qt.type == "q4_K" and qt.nbytes == 64 * 2 * 144 and scales.shape == (512,)
    effective = llmkit.dequantize(qt).astype(np.float64) / scales.astype(np.float64)
    assert rep["output_error"] == pytest.approx(output_error(w, effective, x), rel=1e-9)
    rtn = llmkit.dequantize(llmkit.quantize(w, "q4_K")).astype(np.float64)
    assert rep["rtn_output_error"] == pytest.approx(output_error(w, rtn, x), rel=1e-9)
    assert rep["output_error"] < 0.6 * rep["rtn_output_error"]
    # The search includes alpha = 0 (no scaling), i.e. Q4_K with the activations as imatrix.
    imatrix = (x.astype(np.float64) ** 2).sum(axis=0).astype(np.float32)
    assert rep["output_error"] <= output_error(w, llmkit.dequantize(llmkit.quantize(w, "q4_K", imatrix=imatrix))
                                               .astype(np.float64), x) * (1 + 1e-6)
    with pytest.raises(ValueError, match="group_size=256"):
        llmkit.awq(w, x, format="q4_K", progress=False)
    with pytest.raises(ValueError, match="format"):
        llmkit.awq(w, x, format="q4_0", progress=False)

