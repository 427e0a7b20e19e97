"""llmkit.quantize / dequantize: byte-exact with ggml, gguf-py where installed, and errors."""

import numpy as np
import pytest

import llmkit

ROWS, N = 136, 256
ALL_TYPES = llmkit.quant_types()
# Bytes per block as ggml-common.h lays them out.
BLOCKS = {
    "f32": (1, 4), "f16": (1, 2), "bf16": (1, 2),
    "q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24), "q8_0": (32, 34), "q8_1": (32, 36),
    "q2_K": (256, 84), "q3_K": (256, 110), "q4_K": (256, 144), "q5_K": (256, 176), "q6_K": (256, 210),
    "q8_K": (256, 292), "iq4_nl": (32, 18), "iq4_xs": (256, 136),
    "tq1_0": (256, 54), "tq2_0": (256, 66), "mxfp4": (32, 17),
}


@pytest.fixture(scope="module")
def ref_dir(data_dir):
    d = data_dir / "quant-ref" / "ggml"
    if not (d / "input.f32").is_file():
        pytest.fail(f"{d}/input.f32 is missing")
    return d


@pytest.fixture(scope="module")
def ref_input(ref_dir):
    return np.fromfile(ref_dir / "input.f32", dtype="<f4").reshape(ROWS, N)


def _ref_types(ref_dir):
    return sorted(p.name[: -len(".bin")] for p in ref_dir.glob("*.bin"))


# ---------------------------------------------------------------------------
# Names and block sizes.
def test_quant_types_and_block_sizes():
    assert ALL_TYPES[0] == "f32" and "q4_K" in ALL_TYPES and "iq4_xs" in ALL_TYPES
    assert set(ALL_TYPES) == set(BLOCKS)
    for t in ALL_TYPES:
        assert llmkit.quant_block_size(t) == BLOCKS[t]
        assert llmkit.quant_block_size(t.upper()) == BLOCKS[t]
    assert llmkit.quant_block_size(12) == (256, 144)  # ggml's type number works too


def test_type_names_are_case_insensitive_and_normalised():
    x = np.ones((2, 256), np.float32)
    for spelled in ("q4_k", "Q4_K", "q4_K"):
        qt = llmkit.quantize(x, spelled)
        assert qt.type == "q4_K" and qt.type_id == 12


# ---------------------------------------------------------------------------
# Against ggml's reference quantizer, every type in the reference folder.
def test_every_reference_type_is_implemented(ref_dir):
    types = _ref_types(ref_dir)
    assert len(types) >= 14, types
    assert set(types) <= set(ALL_TYPES)


def test_byte_exact_and_bit_exact_with_ggml(ref_dir, ref_input):
    for t in _ref_types(ref_dir):
        want = np.fromfile(ref_dir / f"{t}.bin", dtype=np.uint8)
        qt = llmkit.quantize(ref_input, t)
        assert isinstance(qt, llmkit.QuantizedTensor)
        assert qt.type == t and qt.shape == (ROWS, N)
        assert qt.data.dtype == np.uint8 and qt.data.ndim == 1
        assert qt.nbytes == want.size == ROWS * N // BLOCKS[t][0] * BLOCKS[t][1]
        diff = np.flatnonzero(qt.data != want)
        assert diff.size == 0, f"{t}: {diff.size} bytes differ, first at byte {diff[:1]}"

        deq = llmkit.dequantize(qt)
        want_f = np.fromfile(ref_dir / f"{t}.dequant.f32", dtype="<f4").reshape(ROWS, N)
        assert deq.dtype == np.float32 and deq.shape == (ROWS, N)
        np.testing.assert_array_equal(deq.view(np.uint32), want_f.view(np.uint32), err_msg=t)

        # The reference bytes wrapped by hand decode the same way.
        again = llmkit.dequantize(llmkit.QuantizedTensor(want.tobytes(), t, (ROWS, N)))
        np.testing.assert_array_equal(again.view(np.uint32), want_f.view(np.uint32), err_msg=t)


def test_strided_threads_and_1d_inputs_agree(ref_dir, ref_input):
    want = np.fromfile(ref_dir / "q6_K.bin", dtype=np.uint8)
    row_bytes = want.size // ROWS
    wide = np.zeros((ROWS, 2 * N), np.float32)
    wide[:, ::2] = ref_input  # a non-unit stride along n
    assert np.array_equal(llmkit.quantize(wide[:, ::2], "q6_K").data, want)
    assert np.array_equal(llmkit.quantize(ref_input[::-1], "q6_K").data,
                          want.reshape(ROWS, row_bytes)[::-1].reshape(-1))
    for threads in (1, 3):
        assert np.array_equal(llmkit.quantize(ref_input, "q6_K", num_threads=threads).data, want)
    one = llmkit.quantize(ref_input[5], "q6_K")
    assert one.shape == (N,)
    assert np.array_equal(one.data, want[5 * row_bytes:6 * row_bytes])
    back = llmkit.dequantize(one)
    assert back.shape == (N,)
    np.testing.assert_array_equal(back, llmkit.dequantize(llmkit.quantize(ref_input, "q6_K"))[5])


def test_list_input(ref_input):
    want = llmkit.quantize(ref_input[:4], "q8_0").data
    assert np.array_equal(llmkit.quantize(ref_input[:4].tolist(), "q8_0").data, want)


def test_torch_input(ref_input):
    torch = pytest.importorskip("torch")
    want = llmkit.quantize(ref_input[:4], "q8_0").data
    t = torch.from_numpy(ref_input[:4].copy()).requires_grad_()
    assert np.array_equal(llmkit.quantize(t, "q8_0").data, want)
    assert np.array_equal(llmkit.quantize(t.detach().T.contiguous().T, "q8_0").data, want)


def test_roundtrip_error_shrinks_with_bits(rng):
    x = rng.standard_normal((16, 512)).astype(np.float32)
    rms = {t: float(np.sqrt(np.mean((llmkit.dequantize(llmkit.quantize(x, t)) - x) ** 2)))
           for t in ("q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0", "bf16", "f16", "f32")}
    assert rms["q2_K"] > rms["q3_K"] > rms["q4_K"] > rms["q5_K"] > rms["q6_K"] > rms["q8_0"] > rms["f16"]
    assert rms["f32"] == 0.0
    assert rms["q4_K"] < 0.1


def test_empty_rows():
    qt = llmkit.quantize(np.zeros((0, 256), np.float32), "q4_0")
    assert qt.nbytes == 0 and qt.shape == (0, 256)
    assert llmkit.dequantize(qt).shape == (0, 256)


# ---------------------------------------------------------------------------
# Against gguf-py (llama.cpp's Python package), where it is installed.
def test_matches_gguf_py(rng):
    gguf = pytest.importorskip("gguf")
    from gguf import quants

    # Rows of 1792: compact rows are quantized in pieces of 512 (src/quant/quantize.cpp), here 3.5 of them.
    x = (rng.standard_normal((8, 1792)) * rng.uniform(0.01, 10.0, (8, 1))).astype(np.float32)
    checked_q, checked_dq = [], []
    for t in ALL_TYPES:
        qtype = getattr(gguf.GGMLQuantizationType, t.upper(), None)
        if qtype is None:
            continue
        ours = llmkit.quantize(x, t)
        try:
            theirs = quants.quantize(x, qtype)
        except NotImplementedError:
            theirs = None
        if theirs is not None:
            assert np.array_equal(ours.data, np.ascontiguousarray(theirs).view(np.uint8).reshape(-1)), t
            checked_q.append(t)
        try:
            deq = quants.dequantize(ours.data.reshape(8, -1), qtype)
        except NotImplementedError:
            continue
        np.testing.assert_array_equal(llmkit.dequantize(ours), np.asarray(deq, np.float32).reshape(8, 1792),
                                      err_msg=t)
        checked_dq.append(t)
    assert "q8_0" in checked_q and "q4_K" in checked_dq, (checked_q, checked_dq)


def test_q4_blocks_with_ties_and_zeros_match_gguf_py(rng):
    """Q4_0 takes the sign of the FIRST element of largest magnitude (the AVX2 quantizer finds it
    without branches): blocks where +a and -a tie in either order, all-zero blocks, single spikes,
    against gguf-py's numpy quantizer (argmax keeps the first)."""
    gguf = pytest.importorskip("gguf")
    from gguf import quants

    blocks = []
    for i in range(62):
        b = (rng.standard_normal(32) * 0.1).astype(np.float32)
        a = np.float32(rng.uniform(0.5, 2.0))
        p, q = rng.choice(32, 2, replace=False)
        b[p], b[q] = (a, -a) if i % 2 else (-a, a)  # a tie of magnitudes, either sign first
        blocks.append(b)
    blocks.append(np.zeros(32, np.float32))
    spike = np.zeros(32, np.float32)
    spike[31] = -3.0
    blocks.append(spike)
    x = np.stack(blocks).reshape(-1, 256)
    for t in ("q4_0", "q4_1"):
        qtype = getattr(gguf.GGMLQuantizationType, t.upper())
        theirs = np.ascontiguousarray(quants.quantize(x, qtype)).view(np.uint8).reshape(-1)
        assert np.array_equal(llmkit.quantize(x, t).data, theirs), t


# ---------------------------------------------------------------------------
# Errors.
def test_unknown_type():
    x = np.zeros((1, 256), np.float32)
    with pytest.raises(ValueError, match="q9_K") as e:
        llmkit.quantize(x, "q9_K")
    assert e.value.status == "LLMKIT_ERROR_INVALID_ARGUMENT"
    with pytest.raises(ValueError):
        llmkit.quant_block_size("nope")
    with pytest.raises(ValueError, match="quant_types"):
        llmkit.quantize(x, 4)  # ggml's retired Q4_2 slot
    with pytest.raises(TypeError):
        llmkit.quantize(x, 2.5)


def test_row_not_a_multiple_of_the_block():
    with pytest.raises(ValueError, match="multiple of the block size 256") as e:
        llmkit.quantize(np.zeros((2, 100), np.float32), "q4_K")
    assert e.value.status == "LLMKIT_ERROR_SHAPE"
    with pytest.raises(ValueError, match="block size 32"):
        llmkit.quantize(np.zeros(48, np.float32), "q8_0")


def test_non_finite_input():
    for bad in (np.nan, np.inf, -np.inf):
        x = np.ones((3, 64), np.float32)
        x[2, 17] = bad
        with pytest.raises(ValueError) as e:
            llmkit.quantize(x, "q4_0")
        assert e.value.status == "LLMKIT_ERROR_NON_FINITE"


def test_wrong_dtype_and_rank():
    with pytest.raises(ValueError) as e:
        llmkit.quantize(np.zeros((2, 256), np.float64), "q4_K")
    assert e.value.status == "LLMKIT_ERROR_DTYPE"
    with pytest.raises(ValueError) as e:
        llmkit.quantize(np.zeros((2, 256), np.float16), "q8_0")
    assert e.value.status == "LLMKIT_ERROR_DTYPE"
    with pytest.raises(ValueError) as e:
        llmkit.quantize(np.zeros((2, 2, 256), np.float32), "q8_0")
    assert e.value.status == "LLMKIT_ERROR_SHAPE"


# quant-ref/ggml-imatrix's files for these types are ggml_quantize_chunk's bytes
# (its K-quant files differ from ggml 0.25.3 and are checked by property in the
# C++ tests; see test_gguf_blocks.cpp).
IMATRIX_EXACT = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl", "iq4_xs"]


@pytest.mark.parametrize("name", IMATRIX_EXACT)
def test_imatrix_quantization_matches_ggml(data_dir, name):
    d = data_dir / "quant-ref" / "ggml-imatrix"
    x = np.fromfile(d / "input.f32", np.float32).reshape(32, 256)
    imatrix = np.fromfile(d / "imatrix.f32", np.float32)
    got = llmkit.quantize(x, name, imatrix=imatrix)
    assert bytes(got.data) == (d / f"{name}.imatrix.bin").read_bytes()
    assert bytes(llmkit.quantize(x, name).data) == (d / f"{name}.bin").read_bytes()
    # Any float sequence is accepted as the weights (a list, float64) and any strides for x.
    xt = np.asfortranarray(x)
    assert bytes(llmkit.quantize(xt, name, imatrix=imatrix.astype(np.float64).tolist()).data) == bytes(got.data)


def test_imatrix_errors():
    x = np.random.default_rng(3).standard_normal((2, 256)).astype(np.float32)
    assert llmkit.quantize(x, "q4_K", imatrix=None).nbytes == 2 * 144
    with pytest.raises(ValueError, match="imatrix has 255 weights; the rows have 256 columns"):
        llmkit.quantize(x, "q4_K", imatrix=np.ones(255, np.float32))
    bad = np.ones(256, np.float32)
    bad[7] = np.nan
    with pytest.raises(ValueError, match=r"imatrix\[7\]") as e:
        llmkit.quantize(x, "q4_K", imatrix=bad)
    assert e.value.status == "LLMKIT_ERROR_NON_FINITE"
    bad[7] = -1.0
    with pytest.raises(ValueError, match=r"imatrix\[7\].*negative") as e:
        llmkit.quantize(x, "q6_K", imatrix=bad)
    assert e.value.status == "LLMKIT_ERROR_INVALID_ARGUMENT"
    with pytest.raises(llmkit.LlmkitError, match="imatrix") as e:
        llmkit.quantize(x, "nf4", imatrix=np.ones(256, np.float32))
    assert e.value.status == "LLMKIT_ERROR_UNSUPPORTED"
    # Q8_0 ignores the weights, as ggml does.
    assert bytes(llmkit.quantize(x, "q8_0", imatrix=np.ones(256, np.float32)).data) == bytes(llmkit.quantize(x, "q8_0").data)


def test_quantized_tensor_checks_its_bytes():
    with pytest.raises(ValueError, match="144"):
        llmkit.QuantizedTensor(bytes(143), "q4_K", (1, 256))
    with pytest.raises(ValueError, match="uint8"):
        llmkit.QuantizedTensor(np.zeros(36, np.int32), "q4_K", (1, 256))
    with pytest.raises(ValueError, match="shape"):
        llmkit.QuantizedTensor(bytes(144), "q4_K", (1, 1, 256))
    with pytest.raises(ValueError, match="multiple"):
        llmkit.QuantizedTensor(bytes(144), "q4_K", (1, 100))
    with pytest.raises(TypeError):
        llmkit.dequantize(bytes(144))
    qt = llmkit.QuantizedTensor(bytearray(144), "Q4_K", [1, 256])
    assert repr(qt) == "QuantizedTensor(type='q4_K', shape=(1, 256), nbytes=144)"
    np.testing.assert_array_equal(llmkit.dequantize(qt), np.zeros((1, 256), np.float32))
