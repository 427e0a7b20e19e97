"""TQ1_0, TQ2_0 (ternary, BitNet b1.58) and MXFP4 (OCP microscaling FP4): byte-exact with gguf-py's
quantizers, which write what ggml's reference quantizers write, on random rows of every magnitude and on
the edge cases (all-zero, subnormal and huge blocks, exact ties between two levels); decoding bit-exact
with gguf-py's; and each format's own definition checked without any peer."""

import warnings

import numpy as np
import pytest

import llmkit

TYPES = ("tq1_0", "tq2_0", "mxfp4")


def _rows(rng, n):
    """Rows of n floats: random at magnitudes from 1e-30 to 1e30, plus the edge cases."""
    rows = [rng.standard_normal(n) * np.exp(rng.uniform(-70, 70)) for _ in range(24)]
    rows.append(np.zeros(n))
    rows.append(np.full(n, -0.0))
    rows.append(rng.standard_normal(n) * 1e-40)  # subnormal: 1 / absmax overflows, MXFP4's exponent wraps
    rows.append(rng.standard_normal(n) * 3e-39)
    rows.append(rng.standard_normal(n) * 2e5)  # TQ's f16 absmax overflows to inf
    spike = rng.standard_normal(n) * 0.01
    spike[3] = -1e38
    rows.append(spike)
    huge = np.full(n, 3.4028235e38)
    huge[::2] *= -1
    rows.append(huge)
    # Values exactly halfway between two levels: MXFP4 (levels k * 2^(e-128)) and the ternary rounding
    # at +-d/2 (half away from zero).
    rows.append(rng.integers(-24, 25, n) * 0.125)
    rows.append(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], n) * 2.0)
    return np.stack(rows).astype(np.float32)


def _gguf_bytes(quants, qtype, x):
    with warnings.catch_warnings():  # gguf-py's casts of the wrapped exponent and of 0 * inf warn
        warnings.simplefilter("ignore")
        return np.ascontiguousarray(quants.quantize(x, qtype)).view(np.uint8).reshape(-1)


@pytest.mark.parametrize("name", TYPES)
def test_bytes_and_decoding_match_gguf_py(name, rng):
    gguf = pytest.importorskip("gguf")
    from gguf import quants

    qtype = getattr(gguf.GGMLQuantizationType, name.upper())
    x = _rows(rng, 512)
    qt = llmkit.quantize(x, name)
    assert qt.type == name and qt.nbytes == x.shape[0] * 512 // llmkit.quant_block_size(name)[0] * \
        llmkit.quant_block_size(name)[1]
    theirs = _gguf_bytes(quants, qtype, x)
    row = qt.nbytes // x.shape[0]
    for r in range(x.shape[0]):
        assert np.array_equal(qt.data[r * row:(r + 1) * row], theirs[r * row:(r + 1) * row]), (name, r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        deq = np.asarray(quants.dequantize(qt.data.reshape(x.shape[0], -1), qtype), np.float32)
    # Bit patterns, so that the NaN of 0 * inf (a TQ block whose f16 absmax overflowed) compares too.
    assert np.array_equal(llmkit.dequantize(qt).view(np.uint32), deq.reshape(x.shape).view(np.uint32)), name
    # Threads and a strided source change nothing.
    assert np.array_equal(llmkit.quantize(x, name, num_threads=3).data, qt.data)
    xt = np.asfortranarray(x)
    assert np.array_equal(llmkit.quantize(xt, name).data, qt.data)


def test_ternary_definition(rng):
    """TQ1_0 and TQ2_0 store d = the block's absmax (in f16) and round x / d to -1, 0 or +1 (half away
    from zero): a row already ternary with an f16-exact scale comes back exactly, any row comes back
    as d times -1, 0, +1."""
    d = np.float32(0.375)
    x = (rng.integers(-1, 2, (6, 512)) * d).astype(np.float32)
    x[:, 0] = d  # every block holds its maximum
    x[:, 256] = -d
    for name in ("tq1_0", "tq2_0"):
        assert np.array_equal(llmkit.dequantize(llmkit.quantize(x, name)), x), name
    y = rng.standard_normal((4, 512)).astype(np.float32)
    for name in ("tq1_0", "tq2_0"):
        back = llmkit.dequantize(llmkit.quantize(y, name)).reshape(-1, 256)
        blocks = y.reshape(-1, 256)
        amax = np.abs(blocks).max(axis=1, keepdims=True).astype(np.float16).astype(np.float32)
        want = np.where(np.abs(blocks) >= amax / 2, np.sign(blocks), 0.0) * amax
        # The rounding is done on x * (1 / d) with the float32 absmax; a value within 1e-6 of d/2 may go
        # either way, none in this draw.
        assert np.min(np.abs(np.abs(blocks) / np.abs(blocks).max(axis=1, keepdims=True) - 0.5)) > 1e-6
        assert np.array_equal(back, want.astype(np.float32)), name
    # 1.6875 and 2.0625 bits per weight.
    assert llmkit.quant_block_size("tq1_0") == (256, 54) and llmkit.quant_block_size("TQ2_0") == (256, 66)


def test_mxfp4_definition(rng):
    """MXFP4: a power-of-two scale 2^(e - 127) with e = floor(log2(absmax)) - 2 + 127 and each value the
    nearest E2M1 number (0, 0.5, 1, 1.5, 2, 3, 4, 6) times it, sign kept: E2M1 values come back exactly."""
    e2m1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], np.float32)
    scale = np.float32(2.0 ** -3)
    x = (rng.choice(e2m1, (4, 64)) * rng.choice([-1, 1], (4, 64)) * scale).astype(np.float32)
    x[:, 0] = 6 * scale  # absmax 0.75 in every block: floor(log2 0.75) - 2 = -3
    x[:, 32] = -6 * scale
    qt = llmkit.quantize(x, "mxfp4")
    assert np.array_equal(llmkit.dequantize(qt), x)
    assert qt.data[0] == 127 - 3  # the E8M0 byte of the first block
    y = rng.standard_normal((4, 256)).astype(np.float32)
    back = llmkit.dequantize(llmkit.quantize(y, "mxfp4")).reshape(-1, 32)
    blocks = y.reshape(-1, 32)
    s = 2.0 ** (np.floor(np.log2(np.abs(blocks).max(axis=1, keepdims=True))) - 2)
    levels = np.concatenate([-e2m1[::-1], e2m1])[None, None, :] * s[:, :, None]
    want = levels[np.arange(len(blocks))[:, None], 0, np.abs(levels - blocks[:, :, None]).argmin(axis=2)]
    assert np.array_equal(back, want), "nearest level"


def test_no_imatrix_fit_and_errors(rng):
    """ggml ignores an importance matrix for these types; llmkit too (the bytes do not change), while
    still checking it, and refuses non-finite input and rows that are not whole blocks."""
    x = rng.standard_normal((2, 256)).astype(np.float32)
    for name in TYPES:
        assert np.array_equal(llmkit.quantize(x, name, imatrix=np.ones(256, np.float32) * 3).data,
                              llmkit.quantize(x, name).data)
        with pytest.raises(ValueError, match="imatrix"):
            llmkit.quantize(x, name, imatrix=np.full(256, -1.0, np.float32))
        bad = x.copy()
        bad[1, 7] = np.nan
        with pytest.raises(ValueError, match=r"\[1, 7\]"):
            llmkit.quantize(bad, name)
    with pytest.raises(ValueError, match="multiple of the block size 256"):
        llmkit.quantize(np.ones((1, 96), np.float32), "tq2_0")
    with pytest.raises(ValueError, match="multiple of the block size 32"):
        llmkit.quantize(np.ones((1, 40), np.float32), "mxfp4")


def test_gguf_files_carry_them(tmp_path, rng):
    """A GGUF file written by llmkit with these tensor types reads back in gguf-py's reader (type, shape,
    bytes) and in llmkit's, and decodes to what the tensors decode to."""
    gguf = pytest.importorskip("gguf")
    import llmkit.gguf as lg

    x = rng.standard_normal((4, 512)).astype(np.float32)
    tensors = {name: llmkit.quantize(x, name) for name in TYPES}
    path = tmp_path / "tq_mxfp4.gguf"
    lg.write(path, {"general.architecture": "test"}, tensors)
    theirs = {t.name: t for t in gguf.GGUFReader(path).tensors}
    ours = lg.read(path)
    for name, qt in tensors.items():
        assert theirs[name].tensor_type.name.lower() == name
        assert np.array_equal(np.asarray(theirs[name].data).view(np.uint8).reshape(-1), qt.data), name
        assert ours.tensor_types[name] == name
        assert np.array_equal(llmkit.dequantize(ours.tensors[name]), llmkit.dequantize(qt)), name
