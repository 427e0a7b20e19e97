"""QuantizedTensor.matmul and llmkit.quant_matmul_int8 against numpy float64 on the dequantized weights.

The references decode the weights with llmkit.dequantize and, independently, with
gguf.quants.dequantize (the gguf package's numpy decoder). The tolerance comes from the int8
rounding of x that the kernels do (see llmkit.h, "Quantization: matmul"): per output,
sum_j |W[r, j]| * d_j / 2 with d_j = max |x| over j's block / 127, plus 2^-16 of sum |W x|
for float32 rounding.
"""

import numpy as np
import pytest

import llmkit

GGUF_TYPES = {"q4_0": 32, "q4_1": 32, "q5_0": 32, "q5_1": 32, "q8_0": 32, "iq4_nl": 32, "mxfp4": 32, "q2_K": 256,
              "q3_K": 256, "q4_K": 256, "q5_K": 256, "q6_K": 256, "iq4_xs": 256}


def _random(rng, rows, cols):
    """Non-zero values whose scale varies over four decades by row, with ~1% outliers (x 25)."""
    scale = 10.0 ** rng.uniform(-2, 2, size=(rows, 1))
    v = rng.standard_normal((rows, cols)) * scale * (0.3 + rng.random((rows, cols)))
    v = np.where(rng.random((rows, cols)) < 0.01, v * 25, v)
    v = np.where(v == 0, scale * 1e-3, v)
    return v.astype(np.float32)


def _bound_check(y, wd, x, block):
    """Asserts |y - x wd^T| within the int8-activation bound; returns the worst fraction of it used."""
    x2 = np.atleast_2d(x).astype(np.float64)
    y2 = np.atleast_2d(y).astype(np.float64)
    m, k = x2.shape
    d = np.abs(x2).reshape(m, k // block, block).max(axis=2).astype(np.float32) / np.float32(127)
    step = np.repeat(d.astype(np.float64), block, axis=1)
    w64 = np.asarray(wd, dtype=np.float64)
    ref = x2 @ w64.T
    bound = (step / 2) @ np.abs(w64).T + np.ldexp(np.abs(x2) @ np.abs(w64).T, -16)
    err = np.abs(y2 - ref)
    assert np.all(err <= bound), f"worst error {np.max(err / bound):.3f} of the bound"
    return float(np.max(err / bound))


@pytest.mark.parametrize("qtype", sorted(GGUF_TYPES))
@pytest.mark.parametrize("m", [1, 3, 16, 37])
def test_matmul_matches_float64_on_dequantized_weights(rng, qtype, m):
    block = GGUF_TYPES[qtype]
    n, k = 67, 3 * block
    w = _random(rng, n, k)
    qt = llmkit.quantize(w, qtype)
    x = _random(rng, m, k)
    y = qt.matmul(x)
    assert y.shape == (m, n) and y.dtype == np.float32
    _bound_check(y, llmkit.dequantize(qt), x, block)
    # One row as a vector gives that row of the batch, bit for bit.
    yv = qt.matmul(x[m - 1])
    assert yv.shape == (n,)
    assert np.array_equal(yv.view(np.uint32), y[m - 1].view(np.uint32))


@pytest.mark.parametrize("qtype", sorted(GGUF_TYPES))
def test_matmul_against_gguf_package_decoder(rng, qtype):
    gq = pytest.importorskip("gguf.quants")
    from gguf import GGMLQuantizationType as GT

    block = GGUF_TYPES[qtype]
    n, k = 40, 2 * block
    w = _random(rng, n, k)
    qt = llmkit.quantize(w, qtype)
    wd = gq.dequantize(qt.data.reshape(n, -1), getattr(GT, qtype.upper()))
    assert wd.shape == (n, k)
    x = _random(rng, 5, k)
    _bound_check(qt.matmul(x), wd, x, block)


@pytest.mark.parametrize("qtype", ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0"])
@pytest.mark.parametrize("k", [32, 160, 288])
def test_matmul_odd_rows_and_blocks(rng, qtype, k):
    """Row counts that leave partial 4-row tiles, and k not a multiple of 256 (odd block counts)."""
    for n in (1, 5, 7, 9):
        w = _random(rng, n, k)
        qt = llmkit.quantize(w, qtype)
        wd = llmkit.dequantize(qt).reshape(n, k)
        x = _random(rng, 3, k)
        y = qt.matmul(x).reshape(3, n)
        _bound_check(y, wd, x, 32)
        for t in (1, 2, 3):
            yv = qt.matmul(x[1], num_threads=t).reshape(n)
            assert np.array_equal(yv.view(np.uint32), y[1].view(np.uint32)), (n, t)


def test_matmul_is_thread_count_invariant(rng):
    for qtype, block in GGUF_TYPES.items():
        w = _random(rng, 70, 2 * block)
        qt = llmkit.quantize(w, qtype)
        x = _random(rng, 9, 2 * block)
        ys = [qt.matmul(x, num_threads=t) for t in (1, 2, 3)]
        for y in ys[1:]:
            assert np.array_equal(ys[0].view(np.uint32), y.view(np.uint32)), qtype


def test_matmul_strided_and_torch_inputs(rng):
    w = _random(rng, 10, 64)
    qt = llmkit.quantize(w, "q8_0")
    x = _random(rng, 64, 4).T  # (4, 64) with column stride 4
    assert not x.flags.c_contiguous
    y = qt.matmul(x)
    assert np.array_equal(y, qt.matmul(np.ascontiguousarray(x)))
    torch = pytest.importorskip("torch")
    yt = qt.matmul(torch.from_numpy(np.ascontiguousarray(x)))
    assert np.array_equal(yt, y)


def test_one_row_tensor_drops_the_axis(rng):
    w = _random(rng, 1, 64)[0]
    qt = llmkit.quantize(w, "q4_0")  # shape (64,)
    x = _random(rng, 3, 64)
    y = qt.matmul(x)
    assert y.shape == (3,)
    assert qt.matmul(x[0]).shape == ()
    _bound_check(y[:, None], llmkit.dequantize(qt)[None, :], x, 32)


def test_int8_rows_against_float64(rng):
    n, k = 45, 160
    w = _random(rng, n, k)
    scales = (np.abs(w).max(axis=1) / 127).astype(np.float32)
    q = np.rint(w / scales[:, None]).astype(np.int8)
    for m in (1, 3, 16, 37):
        x = _random(rng, m, k)
        y = llmkit.quant_matmul_int8(x, q, scales)
        assert y.shape == (m, n)
        _bound_check(y, scales[:, None].astype(np.float64) * q, x, 32)
        y2 = llmkit.quant_matmul_int8(x, q, scales, num_threads=2)
        assert np.array_equal(y.view(np.uint32), y2.view(np.uint32))
    assert llmkit.quant_matmul_int8(x[0], q, scales).shape == (n,)


def _x_rows_formula(x, q, scales):
    """x_rounding="rows" as documented, in numpy: d = max|row| / 63 (float32), q_x = rint(x * (63 / max)) in
    float64, in [-63, 63], y = (d * scale) * float32(exact integer sum) in float32."""
    amax = np.abs(x).max(axis=1).astype(np.float32)
    inv = np.where(amax > 0, 63.0 / np.where(amax > 0, amax, 1).astype(np.float64), 0.0)
    qx = np.clip(np.rint(x.astype(np.float64) * inv[:, None]), -63, 63).astype(np.int64)
    sums = qx @ q.astype(np.int64).T
    d = (amax / np.float32(63)).astype(np.float32)
    return ((d[:, None] * scales[None, :]).astype(np.float32) * sums.astype(np.float32)).astype(np.float32)


@pytest.mark.parametrize("m", [1, 5, 8, 40])
def test_int8_x_rows_is_the_documented_formula(rng, m):
    """One exact int32 sum per output: the same bits as numpy's integer formula, with oneDNN (m >= 24) or not,
    at any thread count; within the row-rounding bound of float64."""
    n, k = 70, 288
    w = _random(rng, n, k)
    scales = (np.abs(w).max(axis=1) / 127).astype(np.float32)
    q = np.rint(w / scales[:, None]).astype(np.int8)
    x = _random(rng, m, k)
    x[0, 7] = 25.0  # an outlier sets row 0's scale
    expected = _x_rows_formula(x, q, scales)
    for threads in (1, 2, 3):
        y = llmkit.quant_matmul_int8(x, q, scales, num_threads=threads, x_rounding="rows")
        assert np.array_equal(y.view(np.uint32), expected.view(np.uint32))
    ref = x.astype(np.float64) @ (scales[:, None].astype(np.float64) * q).T
    bound = (np.abs(scales[:, None].astype(np.float64) * q).sum(axis=1)[None, :]
             * (np.abs(x).max(axis=1, keepdims=True) / 63.0) / 2) * (1 + 1e-6) + 1e-6 * np.abs(ref)
    assert np.all(np.abs(y - ref) <= bound)
    assert not np.array_equal(y, llmkit.quant_matmul_int8(x, q, scales))  # the default rounds by blocks


def test_int8_x_rows_errors(rng):
    q = np.ones((4, 64), dtype=np.int8)
    s = np.ones(4, dtype=np.float32)
    x = _random(rng, 2, 64)
    with pytest.raises(ValueError, match="x_rounding"):
        llmkit.quant_matmul_int8(x, q, s, x_rounding="tensor")
    with pytest.raises(ValueError, match="133144"):
        llmkit.quant_matmul_int8(np.ones(133152, np.float32), np.ones((1, 133152), np.int8), s[:1], x_rounding="rows")


def test_int8_format_quantized_tensor(rng):
    """QuantizedTensor.matmul on llmkit's "int8" format (int8 weight plane + a float32 scale per row)."""
    n, k = 20, 96
    w = _random(rng, n, k)
    qt = llmkit.quantize(w, "int8")
    x = _random(rng, 4, k)
    _bound_check(qt.matmul(x), llmkit.dequantize(qt), x, 32)


def test_matmul_errors(rng):
    w = _random(rng, 4, 64)
    qt = llmkit.quantize(w, "q4_0")
    with pytest.raises(ValueError, match="dtype"):
        qt.matmul(np.ones(64, dtype=np.float64))
    with pytest.raises(ValueError, match="k = 64"):
        qt.matmul(np.ones(96, dtype=np.float32))
    bad = np.ones((2, 64), dtype=np.float32)
    bad[1, 7] = np.nan
    with pytest.raises(ValueError, match=r"x\[1, 7\] is not finite"):
        qt.matmul(bad)
    with pytest.raises(ValueError, match="num_threads"):
        qt.matmul(np.ones(64, dtype=np.float32), num_threads=-1)
    with pytest.raises(llmkit.LlmkitError, match="tq2_0"):
        llmkit.quantize(_random(rng, 2, 256), "tq2_0").matmul(np.ones(256, dtype=np.float32))
    with pytest.raises(ValueError, match="multiple of 32"):
        llmkit.quant_matmul_int8(np.ones(48, np.float32), np.ones((2, 48), np.int8), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="scales"):
        llmkit.quant_matmul_int8(np.ones(64, np.float32), np.ones((2, 64), np.int8), np.ones(3, np.float32))


def test_isa_name():
    assert llmkit.quant_matmul_isa() in ("avx512vnni", "avx2", "scalar")
