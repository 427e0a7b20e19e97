"""The non-GGUF formats (int8, NF4/FP4, FP8, GPTQ/AWQ int4) against references
written here from each format's definition (float64 / numpy), against torch's
float8 casts where torch is installed, their documented layouts (planes),
edge cases, error bounds and conversions."""

import numpy as np
import pytest

import llmkit

# ---------------------------------------------------------------------------
# References, written from the format specifications (not from llmkit's code).


def fp8_values(fmt):
    """Every finite non-negative FP8 value with its code, in float64, from the bit layout
    (E4M3: codes 0..0x7e, 0x7f is NaN; E5M2: codes 0..0x7b, 0x7c is infinity)."""
    ebits, mbits, bias = (4, 3, 7) if fmt == "e4m3" else (5, 2, 15)
    top = 0x7e if fmt == "e4m3" else 0x7b
    vals, codes = [], []
    for code in range(top + 1):
        e, m = code >> mbits, code & ((1 << mbits) - 1)
        if e == 0:
            v = m * 2.0 ** (1 - bias - mbits)
        else:
            v = (1 + m / 2 ** mbits) * 2.0 ** (e - bias)
        vals.append(v)
        codes.append(code)
    return np.array(vals), np.array(codes)


def fp8_reference(y, fmt):
    """float32 -> FP8 codes: nearest representable value, ties to the even code (round half to
    even). Out of range, as torch's casts: E4M3 saturates at 448 (infinities too), E5M2 rounds
    into infinity (a virtual level at 65536 with the even code 0x7c). NaN keeps its sign."""
    vals, codes = fp8_values(fmt)
    if fmt == "e5m2":
        vals, codes = np.append(vals, 65536.0), np.append(codes, 0x7c)
    a = np.abs(y.astype(np.float64))
    hi = np.clip(np.searchsorted(vals, a), 1, len(vals) - 1)
    lo = hi - 1
    dlo, dhi = a - vals[lo], vals[hi] - a
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (codes[hi] % 2 == 0))
    out = np.where(pick_hi, codes[hi], codes[lo])
    out = np.where(a >= vals[-1], codes[-1], out)  # saturate (E4M3) / infinity (E5M2)
    out = np.where(np.isnan(y), 0x7f, out)
    sign = np.signbit(y).astype(np.int64) << 7
    return (out | sign).astype(np.uint8)


def fp8_decode(codes, fmt):
    vals, cs = fp8_values(fmt)
    table = np.full(128, np.nan)
    table[cs] = vals
    if fmt == "e5m2":
        table[0x7c] = np.inf
    v = table[codes & 0x7f]
    return np.where(codes & 0x80, -v, v)


NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                0.24611230850219727, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                0.7229568362236023, 1.0], dtype=np.float32)
# bitsandbytes' FP4: sign bit 3; magnitudes e2m1 {0, 0.0625, 8, 12, 4, 6, 2, 3} / 12 by index 0..7.
FP4 = np.array([0, 0.0625, 8, 12, 4, 6, 2, 3], dtype=np.float64) / 12
FP4 = np.concatenate([FP4, -FP4]).astype(np.float32)


def bnb4_reference(x, fmt):
    """bitsandbytes' quantize_4bit (blocksize 64) from its definition: flatten, absmax per block,
    y = x * (1 / absmax) in float32, the nearest level (bitsandbytes compares y with float32
    midpoints, the upper level only when y is strictly above), two indices a byte, high first."""
    flat = x.reshape(-1).astype(np.float32)
    nblk = (flat.size + 63) // 64
    pad = np.zeros(nblk * 64, np.float32)
    pad[:flat.size] = flat
    blocks = pad.reshape(nblk, 64)
    absmax = np.abs(blocks).max(axis=1).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(absmax > 0, np.float32(1) / absmax, np.float32(0)).astype(np.float32)
    y = (blocks * inv[:, None]).astype(np.float32)
    if fmt == "nf4":
        mids = ((NF4[:-1].astype(np.float64) + NF4[1:].astype(np.float64)) / 2).astype(np.float32)
        idx = (y[..., None] > mids).sum(axis=-1)
        idx = np.where(absmax[:, None] > 0, idx, 7)
    else:
        order = np.argsort(FP4[:8], kind="stable")  # indices by magnitude
        mags = FP4[:8][order].astype(np.float64)
        mids = ((mags[:-1] + mags[1:]) / 2).astype(np.float32)
        k = (np.abs(y)[..., None] > mids).sum(axis=-1)
        idx = order[k] | np.where(y < 0, 8, 0)
        idx = np.where(absmax[:, None] > 0, idx, 0)
    idx = idx.reshape(-1)[:flat.size].astype(np.uint8)
    if idx.size % 2:
        idx = np.concatenate([idx, np.zeros(1, np.uint8)])
    packed = ((idx[0::2] << 4) | idx[1::2]).astype(np.uint8)
    return packed, absmax


def int8_reference(x, group, asym):
    rows, n = x.shape
    g = n if group == 0 else group
    xs = x.reshape(rows, n // g, g).astype(np.float32)
    if not asym:
        s = (np.abs(xs).max(axis=2) / np.float32(127)).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(s[..., None] > 0, np.clip(np.rint(xs / s[..., None]), -127, 127), 0)
        return q.astype(np.int8).reshape(rows, n), s, None
    lo = np.minimum(xs.min(axis=2), 0).astype(np.float64)
    hi = np.maximum(xs.max(axis=2), 0).astype(np.float64)
    s = ((hi - lo) / 255).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > 0, np.clip(np.rint(np.float32(-128) - lo.astype(np.float32) / s), -128, 127), 0)
        q = np.where(s[..., None] > 0,
                     np.clip(np.rint(xs / s[..., None]) + z[..., None], -128, 127), 0)
    return q.astype(np.int8).reshape(rows, n), s, z.astype(np.int8)


def int4_reference(x, group, fam, symmetric):
    """GPTQ's find_params / AWQ's pseudo_quantize_tensor per group: (q [rows, n], scale f32 [rows, G],
    zero [rows, G]), scales rounded to float16 before q is computed (llmkit's documented choice)."""
    rows, n = x.shape
    g = n if group == 0 else group
    xs = x.reshape(rows, n // g, g).astype(np.float32)
    lo, hi = xs.min(axis=2), xs.max(axis=2)
    if fam == "gptq":
        lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
        if symmetric:
            m = np.maximum(-lo, hi)
            lo, hi = -m, m
        both0 = (lo == 0) & (hi == 0)
        lo, hi = np.where(both0, -1, lo), np.where(both0, 1, hi)
        s = ((hi.astype(np.float64) - lo.astype(np.float64)) / 15).astype(np.float32).astype(np.float16)
        s = s.astype(np.float32)
        if symmetric:
            z = np.full(s.shape, 8.0, np.float32)
        else:
            z = np.clip(np.rint(-lo / s), 0, 15)
            low = z < 1
            s = np.where(low, (hi / np.float32(14)).astype(np.float16).astype(np.float32), s)
            z = np.where(low, 1, z)
    else:
        if symmetric:
            m = np.maximum(np.maximum(-lo, hi), np.float32(1e-5))
            s = (m / np.float32(7)).astype(np.float16).astype(np.float32)
            z = np.full(s.shape, 8.0, np.float32)
        else:
            rng_ = np.maximum((hi.astype(np.float64) - lo.astype(np.float64)).astype(np.float32), np.float32(1e-5))
            s = (rng_ / np.float32(15)).astype(np.float16).astype(np.float32)
            z = np.clip(-np.rint(lo / s), 0, 15)
    q = np.clip(np.rint(xs / s[..., None]) + z[..., None], 0, 15)
    return q.astype(np.uint8).reshape(rows, n), s, z.astype(np.uint8)


def gptq_unpack(p, rows, n):
    """Reads the planes as AutoGPTQ's layout defines them (see llmkit.h)."""
    qw = p["qweight"].view(np.uint32)  # [n / 8, rows]
    q = np.zeros((rows, n), np.uint8)
    for j in range(8):
        q[:, j::8] = ((qw >> (4 * j)) & 0xF).T
    qz = p["qzeros"].view(np.uint32)  # [G, rows / 8]
    z = np.zeros((qz.shape[0], rows), np.uint8)
    for j in range(8):
        z[:, j::8] = (qz >> (4 * j)) & 0xF
    return q, (z + 1).T, p["scales"].astype(np.float32).T, p["g_idx"]


AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def awq_unpack(p, rows, n):
    qw = p["qweight"].view(np.uint32)  # [n, rows / 8]
    qt = np.zeros((n, rows), np.uint8)
    for k in range(8):
        qt[:, AWQ_ORDER[k]::8] = (qw >> (4 * k)) & 0xF
    qz = p["qzeros"].view(np.uint32)
    z = np.zeros((qz.shape[0], rows), np.uint8)
    for k in range(8):
        z[:, AWQ_ORDER[k]::8] = (qz >> (4 * k)) & 0xF
    return qt.T, z.T, p["scales"].astype(np.float32).T


def weights(rng, rows, n):
    """Weight-like data: Gaussian rows with a few outlier columns."""
    w = rng.standard_normal((rows, n)).astype(np.float32) * 0.02
    w[:, rng.integers(0, n, 3)] *= 20
    return w


# ---------------------------------------------------------------------------
# Names and sizes


def test_format_names_and_ids():
    assert "nf4" not in llmkit.quant_types()  # GGUF types only, unless asked
    names = llmkit.quant_types(include_formats=True)
    for name in ("int8", "int8_g32", "int8_g64", "int8_g128", "int8_asym", "int8_asym_g128", "nf4", "fp4",
                 "fp8_e4m3", "fp8_e5m2", "fp8_e4m3_channel", "fp8_e5m2_channel", "gptq_int4", "gptq_int4_g32",
                 "gptq_int4_g128", "awq_int4_g32", "awq_int4_g128"):
        assert name in names
    assert names.index("q4_0") < names.index("int8")  # GGUF ids first, then ours from 1000
    x = np.ones((8, 128), np.float32)
    assert llmkit.quantize(x, "NF4").type == "nf4"  # any case
    assert llmkit.quantize(x, "Int8_G128").type_id == 1003
    with pytest.raises(llmkit.LlmkitError, match="no fixed block"):
        llmkit.quant_block_size("nf4")


@pytest.mark.parametrize("fmt,rows,n,expect", [
    ("int8", 3, 10, {"weight": ((3, 10), np.int8), "scales": ((3, 1), np.float32)}),
    ("int8_asym_g32", 2, 64, {"weight": ((2, 64), np.int8), "scales": ((2, 2), np.float32),
                              "zeros": ((2, 2), np.int8)}),
    ("nf4", 3, 50, {"weight": ((75,), np.uint8), "absmax": ((3,), np.float32)}),
    ("fp8_e5m2", 4, 8, {"weight": ((4, 8), np.uint8), "scales": ((1,), np.float32)}),
    ("fp8_e4m3_channel", 4, 8, {"weight": ((4, 8), np.uint8), "scales": ((4,), np.float32)}),
    ("gptq_int4_g32", 16, 64, {"qweight": ((8, 16), np.int32), "qzeros": ((2, 2), np.int32),
                               "scales": ((2, 16), np.float16), "g_idx": ((64,), np.int32)}),
    ("awq_int4_g64", 16, 128, {"qweight": ((128, 2), np.int32), "qzeros": ((2, 2), np.int32),
                               "scales": ((2, 16), np.float16)}),
])
def test_planes_layout(rng, fmt, rows, n, expect):
    qt = llmkit.quantize(rng.standard_normal((rows, n)).astype(np.float32), fmt)
    p = qt.planes()
    assert list(p) == list(expect)
    for name, (shape, dtype) in expect.items():
        assert p[name].shape == shape and p[name].dtype == dtype, name
    offsets = [a.ctypes.data - qt.data.ctypes.data for a in p.values()]
    assert all(o % 16 == 0 for o in offsets)
    # Round trip through raw bytes.
    again = llmkit.QuantizedTensor(bytes(qt.data), fmt, (rows, n))
    np.testing.assert_array_equal(llmkit.dequantize(again), llmkit.dequantize(qt))


def test_shape_errors():
    with pytest.raises(ValueError, match="multiple of the group size 128"):
        llmkit.quantize(np.ones((2, 96), np.float32), "int8_g128")
    with pytest.raises(ValueError, match="multiples of 8"):
        llmkit.quantize(np.ones((4, 128), np.float32), "gptq_int4_g128")
    with pytest.raises(ValueError, match="zero_point"):
        llmkit.quantize(np.ones((8, 128), np.float32), "gptq_int4_g128", zero_point="maybe")
    for fmt in ("q4_K", "int8", "nf4"):  # no zero points to choose: refused, not ignored
        with pytest.raises(llmkit.LlmkitError, match="zero_point applies to the int4 packings") as e:
            llmkit.quantize(np.ones((8, 256), np.float32), fmt, zero_point="asymmetric")
        assert e.value.status == "LLMKIT_ERROR_UNSUPPORTED"
    with pytest.raises(ValueError, match="bytes"):
        llmkit.QuantizedTensor(np.zeros(10, np.uint8), "nf4", (2, 64))


@pytest.mark.parametrize("fmt", ["int8", "int8_asym_g64", "nf4", "fp4", "fp8_e4m3", "fp8_e5m2_channel",
                                 "gptq_int4_g128", "awq_int4_g128"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_refused(fmt, bad):
    x = np.ones((8, 128), np.float32)
    x[5, 77] = bad
    with pytest.raises(ValueError, match=r"src\[5, 77\].*not finite"):
        llmkit.quantize(x, fmt)


# ---------------------------------------------------------------------------
# FP8


def test_fp8_reference_itself():
    """The reference's own landmarks, from the OCP FP8 spec."""
    vals, codes = fp8_values("e4m3")
    assert vals[codes == 0x7e][0] == 448 and vals[codes == 0x01][0] == 2.0 ** -9
    vals, codes = fp8_values("e5m2")
    assert vals[codes == 0x7b][0] == 57344 and vals[codes == 0x01][0] == 2.0 ** -16


def fp8_edge_inputs():
    """Every FP8 value, every midpoint between neighbours (ties), just above and below each midpoint,
    subnormals, the overflow region, random values."""
    out = []
    for fmt in ("e4m3", "e5m2"):
        vals, _ = fp8_values(fmt)
        vals = np.append(vals, 480.0 if fmt == "e4m3" else 65536.0)  # the first value past the top
        mids = (vals[:-1] + vals[1:]) / 2
        out += [vals, mids, np.nextafter(mids.astype(np.float32), 0), np.nextafter(mids.astype(np.float32), 1e9)]
    out.append(np.array([0.0, 1e-45, 1e-40, 2.0 ** -10, 3 * 2.0 ** -11, 464, 464.0001, 479, 480, 500, 1e4, 61439,
                         61440, 65535, 65536, 1e5, 3e38]))
    x = np.concatenate([np.asarray(a, np.float64).astype(np.float32) for a in out])
    return np.concatenate([x, -x])


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_fp8_rounding_matches_the_spec_reference(rng, fmt):
    """With 448 (E4M3) / 57344 (E5M2) in the tensor the per-tensor scale is exactly 1, so the
    stored bytes are the plain float32 -> fp8 casts of the inputs."""
    top = 448.0 if fmt == "e4m3" else 57344.0
    x = fp8_edge_inputs()
    x = x[np.abs(x) <= top]  # larger values would change the scale
    x = np.concatenate([x, rng.standard_normal(20000).astype(np.float32) * top / 8, [top]]).astype(np.float32)
    qt = llmkit.quantize(x, "fp8_" + fmt)
    p = qt.planes()
    assert p["scales"][0] == 1.0
    np.testing.assert_array_equal(p["weight"][0], fp8_reference(x, fmt))
    np.testing.assert_array_equal(llmkit.dequantize(qt), fp8_decode(p["weight"][0], fmt).astype(np.float32))


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_fp8_reference_overflow_rules(fmt):
    """The reference's out-of-range behaviour (what torch's casts do): E4M3 saturates at 448,
    infinities included; E5M2 -> infinity from 61440; NaN stays NaN."""
    y = np.array([464, 464.01, 1e6, np.inf, np.nan, 61439.99, 61440], np.float32)
    got = fp8_reference(y, fmt)
    if fmt == "e4m3":
        assert list(got[:5]) == [0x7e, 0x7e, 0x7e, 0x7e, 0x7f]
    else:
        assert list(got[:5]) == [0x5f, 0x5f, 0x7c, 0x7c, 0x7f] and list(got[5:]) == [0x7b, 0x7c]


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e5m2", "fp8_e4m3_channel", "fp8_e5m2_channel"])
def test_fp8_scaled_matches_reference_and_bound(rng, fmt):
    x = weights(rng, 64, 256)
    x[3] = 0  # an all-zero row: per-row scale 1
    x[5, :8] = [1e-40, -1e-41, 3e-39, 0, 0, 0, 0, 0]  # subnormals next to normal values
    qt = llmkit.quantize(x, fmt)
    p = qt.planes()
    kind = fmt.split("_")[1]
    top = 448.0 if kind == "e4m3" else 57344.0
    amax = np.abs(x).max(axis=1) if fmt.endswith("channel") else np.array([np.abs(x).max()])
    scale = np.where(amax > 0, (amax / np.float32(top)).astype(np.float32), 1).astype(np.float32)
    np.testing.assert_array_equal(p["scales"], scale)
    y = (x / (scale[:, None] if fmt.endswith("channel") else scale[0])).astype(np.float32)
    np.testing.assert_array_equal(p["weight"], fp8_reference(y, kind))
    back = llmkit.dequantize(qt)
    # Relative error at most half an ulp of the format (2^-4 for E4M3, 2^-3 for E5M2) for normal
    # values; absolute at most half the subnormal step below.
    rel = 2.0 ** -4 if kind == "e4m3" else 2.0 ** -3
    sub = (2.0 ** -10 if kind == "e4m3" else 2.0 ** -17) * (scale[:, None] if fmt.endswith("channel") else scale[0])
    assert np.all(np.abs(back - x) <= np.maximum(rel * np.abs(x), sub) * (1 + 1e-6))


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_fp8_matches_torch_casts(rng, fmt):
    torch = pytest.importorskip("torch")
    tdt = torch.float8_e4m3fn if fmt == "e4m3" else torch.float8_e5m2
    top = 448.0 if fmt == "e4m3" else 57344.0
    x = fp8_edge_inputs()
    x = x[np.abs(x) <= top]
    x = np.concatenate([x, np.clip(rng.standard_normal(50000) * top / 4, -top, top), [top]]).astype(np.float32)
    got = llmkit.quantize(x, "fp8_" + fmt).planes()["weight"][0]  # scale 1: top is the largest magnitude
    want = torch.from_numpy(x).to(tdt).view(torch.uint8).numpy()
    np.testing.assert_array_equal(got, want)
    # The reference agrees with torch also where llmkit's scaling never goes: overflow, NaN, inf.
    wild = fp8_edge_inputs()
    wild = np.concatenate([wild, [np.inf, -np.inf, np.nan]]).astype(np.float32)
    np.testing.assert_array_equal(fp8_reference(wild, fmt), torch.from_numpy(wild).to(tdt).view(torch.uint8).numpy())
    # Scaled per channel, as torch users write it.
    w = weights(rng, 32, 128)
    qt = llmkit.quantize(w, f"fp8_{fmt}_channel")
    s = torch.from_numpy(qt.planes()["scales"])
    want = (torch.from_numpy(w) / s[:, None]).to(tdt).view(torch.uint8).numpy()
    np.testing.assert_array_equal(qt.planes()["weight"], want)
    np.testing.assert_array_equal(llmkit.dequantize(qt), (torch.from_numpy(want).view(tdt).float() * s[:, None]).numpy())


# ---------------------------------------------------------------------------
# NF4 / FP4


@pytest.mark.parametrize("fmt", ["nf4", "fp4"])
@pytest.mark.parametrize("shape", [(32, 256), (3, 50), (1, 7)])
def test_bnb4_matches_reference(rng, fmt, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    if flat.size >= 128:
        flat[64:128] = 0  # an all-zero block
        flat[3] = 1e4  # one huge outlier: its block collapses to 0 and +-1
        flat[130:134] = [1e-40, -2e-41, 5e-39, 0]  # subnormals in a normal block
    x = flat.reshape(shape)
    qt = llmkit.quantize(x, fmt)
    packed, absmax = bnb4_reference(x, fmt)
    p = qt.planes()
    np.testing.assert_array_equal(p["absmax"], absmax)
    np.testing.assert_array_equal(p["weight"], packed)
    # Decoding: level * absmax of the block.
    table = NF4 if fmt == "nf4" else FP4
    idx = np.stack([packed >> 4, packed & 15], axis=1).reshape(-1)[:flat.size]
    want = (table[idx] * np.repeat(absmax, 64)[:flat.size]).astype(np.float32).reshape(shape)
    np.testing.assert_array_equal(llmkit.dequantize(qt), want)
    # Error bound: half the widest gap between neighbouring levels, times absmax.
    gap = np.max(np.diff(np.sort(table.astype(np.float64)))) / 2
    assert np.all(np.abs(llmkit.dequantize(qt) - x) <= gap * np.repeat(absmax, 64)[:flat.size].reshape(shape) + 1e-30)


def test_nf4_levels_are_normal_quantiles():
    """The NF4 table is QLoRA's: an asymmetric set of N(0,1) quantiles normalised to [-1, 1]
    (create_normal_map with offset 0.9677083): 8 positive from 9 points, 7 negative from 8."""
    from statistics import NormalDist
    nd = NormalDist()
    off = 0.9677083
    pos = [nd.inv_cdf(p) for p in np.linspace(off, 0.5, 9)[:-1]]
    neg = [-nd.inv_cdf(p) for p in np.linspace(off, 0.5, 8)[:-1]]
    v = np.sort(np.array(pos + [0.0] + neg))
    v /= v.max()
    np.testing.assert_allclose(v, NF4, atol=1e-6)


# ---------------------------------------------------------------------------
# int8


@pytest.mark.parametrize("fmt,group,asym", [("int8", 0, False), ("int8_g32", 32, False), ("int8_g128", 128, False),
                                            ("int8_asym", 0, True), ("int8_asym_g64", 64, True)])
def test_int8_matches_reference_and_bound(rng, fmt, group, asym):
    x = weights(rng, 16, 256)
    x[2] = 0  # all-zero row / groups
    x[4, 5] = 1e30  # one huge outlier
    x[6, :3] = [1e-40, -1e-39, 0.5]  # subnormals
    x[7] = np.abs(x[7])  # all positive: the asymmetric range starts at 0
    qt = llmkit.quantize(x, fmt)
    p = qt.planes()
    q, s, z = int8_reference(x, group, asym)
    np.testing.assert_array_equal(p["weight"], q)
    np.testing.assert_array_equal(p["scales"], s)
    if asym:
        np.testing.assert_array_equal(p["zeros"], z)
    back = llmkit.dequantize(qt)
    g = 256 if group == 0 else group
    srep = np.repeat(s, g, axis=1)
    # Symmetric: half a step; asymmetric: the zero point's rounding can add half a step at the ends.
    bound = srep * (0.5 if not asym else 1.0) * (1 + 1e-5)
    assert np.all(np.abs(back - x) <= bound + 1e-37)
    zrep = np.repeat(z, g, axis=1).astype(np.int32) if asym else 0
    np.testing.assert_array_equal(back, ((q.astype(np.int32) - zrep).astype(np.float32) * srep).astype(np.float32))


# ---------------------------------------------------------------------------
# GPTQ / AWQ int4 packings


@pytest.mark.parametrize("fmt,group", [("gptq_int4", 0), ("gptq_int4_g32", 32), ("gptq_int4_g128", 128)])
@pytest.mark.parametrize("zp", [None, "asymmetric"])
def test_gptq_packing(rng, fmt, group, zp):
    rows, n = 24, 256
    x = weights(rng, rows, n)
    x[1] = 0
    x[2] = np.abs(x[2])  # asymmetric zero point would be 0: llmkit moves it to 1 (AutoGPTQ stores zero - 1)
    qt = llmkit.quantize(x, fmt, zero_point=zp)
    q, z, s, g_idx = gptq_unpack(qt.planes(), rows, n)
    rq, rs, rz = int4_reference(x, group, "gptq", zp is None)
    gsize = n if group == 0 else group
    np.testing.assert_array_equal(g_idx, np.arange(n) // gsize)
    np.testing.assert_array_equal(q, rq)
    np.testing.assert_array_equal(s, rs)
    np.testing.assert_array_equal(z, rz)
    want = (s[:, g_idx] * (q.astype(np.float32) - z[:, g_idx].astype(np.float32))).astype(np.float32)
    back = llmkit.dequantize(qt)
    np.testing.assert_array_equal(back, want)
    nz = np.abs(x).max(axis=1) > 0
    assert np.all(np.abs(back - x)[nz] <= 0.51 * s[:, g_idx][nz] + 1e-7)


@pytest.mark.parametrize("fmt,group", [("awq_int4_g32", 32), ("awq_int4_g128", 128)])
@pytest.mark.parametrize("zp", [None, "symmetric"])
def test_awq_packing(rng, fmt, group, zp):
    rows, n = 16, 256
    x = weights(rng, rows, n)
    x[3] = 0
    qt = llmkit.quantize(x, fmt, zero_point=zp)
    q, z, s = awq_unpack(qt.planes(), rows, n)
    rq, rs, rz = int4_reference(x, group, "awq", zp == "symmetric")
    np.testing.assert_array_equal(q, rq)
    np.testing.assert_array_equal(s, rs)
    np.testing.assert_array_equal(z, rz)
    gi = np.arange(n) // group
    np.testing.assert_array_equal(llmkit.dequantize(qt),
                                  (s[:, gi] * (q.astype(np.float32) - z[:, gi].astype(np.float32))).astype(np.float32))


def test_awq_nibble_order_by_hand():
    """One word written out: output columns 0..7 hold q = 1..8 in input row 0; AWQ puts columns
    0, 2, 4, 6, 1, 3, 5, 7 into nibbles 0..7."""
    rows, n = 8, 32
    x = np.zeros((rows, n), np.float32)
    x[:, 1] = 15  # a group's max -> scale 1 and q = value (min 0 -> zero 0)
    x[:, 0] = np.arange(1, 9)
    qt = llmkit.quantize(x, "awq_int4_g32")
    word = int(qt.planes()["qweight"].view(np.uint32)[0, 0])
    nibbles = [(word >> (4 * k)) & 15 for k in range(8)]
    assert nibbles == [1, 3, 5, 7, 2, 4, 6, 8]


def test_int4_scale_overflow_is_an_error():
    x = np.zeros((8, 32), np.float32)
    x[0, 0] = 1e6
    with pytest.raises(ValueError, match="overflows the f16 scales"):
        llmkit.quantize(x, "gptq_int4_g32")


# ---------------------------------------------------------------------------
# Conversions


def test_gptq_g32_symmetric_to_q4_0_is_lossless(rng):
    x = weights(rng, 16, 256)
    g = llmkit.quantize(x, "gptq_int4_g32")
    q4, stats = llmkit.quant_convert(g, "q4_0")
    assert stats["lossless"] and stats["max_abs_error"] == 0.0
    np.testing.assert_array_equal(llmkit.dequantize(q4), llmkit.dequantize(g))
    # And back, exactly the same bytes.
    g2, stats2 = llmkit.quant_convert(q4, "gptq_int4_g32")
    assert stats2["lossless"]
    np.testing.assert_array_equal(g2.data, g.data)


def test_q4_0_to_gptq_is_lossless(rng):
    x = weights(rng, 8, 128)
    q4 = llmkit.quantize(x, "q4_0")
    g, stats = llmkit.quant_convert(q4, "gptq_int4_g32")
    assert stats["lossless"]
    np.testing.assert_array_equal(llmkit.dequantize(g), llmkit.dequantize(q4))


def test_lossy_conversions_report_their_error(rng):
    x = weights(rng, 16, 256)
    for src, dst in [("gptq_int4_g32", "q4_0"), ("gptq_int4_g128", "q4_0"), ("nf4", "q4_0"), ("int8", "fp8_e4m3")]:
        a = llmkit.quantize(x, src, zero_point="asymmetric" if src == "gptq_int4_g32" else None)
        b, stats = llmkit.quant_convert(a, dst)
        da, db = llmkit.dequantize(a).astype(np.float64), llmkit.dequantize(b).astype(np.float64)
        assert not stats["lossless"], (src, dst)
        assert stats["max_abs_error"] == np.abs(da - db).max()
        assert stats["rms_error"] == pytest.approx(np.sqrt(np.mean((da - db) ** 2)), rel=1e-9)
        assert stats["max_abs_value"] == np.abs(da).max()
        # Re-quantizing to Q4_0 from the decoded values costs at most a Q4_0 step (absmax / 8) per block.
        if dst == "q4_0":
            step = np.repeat(np.abs(da).reshape(16, -1, 32).max(axis=2) / 8, 32, axis=1)
            assert np.all(np.abs(da - db) <= step * 1.01 + 1e-6)
