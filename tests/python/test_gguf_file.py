"""GGUF files: llmkit.gguf against the `gguf` package (gguf-py, llama.cpp's own
Python reader and writer), both directions, and on the data folder's files."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest

import llmkit

gguf = pytest.importorskip("gguf")
from gguf import GGUFReader, GGUFValueType, GGUFWriter  # noqa: E402
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType  # noqa: E402


def _gguf_py_value(field):
    """A gguf-py ReaderField as the Python value llmkit gives (numpy for numeric arrays)."""
    types = field.types
    if types[0] == GGUFValueType.ARRAY:
        if types[1] == GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        if types[1] == GGUFValueType.ARRAY:
            raise NotImplementedError
        return np.concatenate([field.parts[i] for i in field.data]) if field.data else None
    if types[0] == GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    v = field.parts[field.data[0]][0]
    if types[0] == GGUFValueType.BOOL:
        return bool(v)
    return v.item()


def _type_name(field) -> str:
    """gguf-py's field types as llmkit names them ("uint32", "array[string]")."""
    t = [GGUFValueType(int(x)).name.lower() for x in field.types]
    if t[0] != "array":
        return t[0]
    # gguf-py records no element type for an empty array.
    return f"array[{t[1]}]" if len(t) > 1 else "array[?]"


def _assert_same_as_gguf_py(path: Path, f: "llmkit.gguf.GGUFFile") -> None:
    r = GGUFReader(path)
    fields = {k: v for k, v in r.fields.items() if not k.startswith("GGUF.")}
    assert list(f.metadata) == list(fields)
    for key, field in fields.items():
        ours = f.metadata[key]
        expected_type = _type_name(field)
        if expected_type == "array[?]":
            assert f.metadata_types[key].startswith("array[") and len(ours) == 0, key
            continue
        assert f.metadata_types[key] == expected_type, key
        theirs = _gguf_py_value(field)
        if isinstance(ours, np.ndarray):
            if theirs is None:
                assert ours.size == 0
            else:
                assert ours.dtype == theirs.dtype.newbyteorder("=") or ours.dtype == theirs.dtype, key
                np.testing.assert_array_equal(ours, theirs, err_msg=key)
        elif isinstance(ours, float):
            assert ours == pytest.approx(float(theirs), rel=0, abs=0) or (np.isnan(ours) and np.isnan(theirs))
        else:
            assert ours == theirs, key
    assert [t.name for t in r.tensors] == list(f.tensors)
    for t in r.tensors:
        ours = f.tensors[t.name]
        assert f.tensor_types[t.name] == llmkit.gguf.ggml_type_info(int(t.tensor_type))[0]
        raw = ours.data if hasattr(ours, "type_id") else ours
        assert np.asarray(raw).view(np.uint8).tobytes() == np.asarray(t.data).view(np.uint8).tobytes(), t.name
        # gguf-py reports shapes in ggml order (ne) and data in numpy order.
        assert tuple(int(d) for d in reversed(t.shape)) == tuple(ours.shape) or ours.ndim == 0, t.name
    assert f.data_offset == r.data_offset
    assert f.alignment == r.alignment


def _all_value_types_metadata():
    md = {
        "general.architecture": "llama",
        "general.name": "tiny ünïcode ✓",
        "u8": np.uint8(250), "i8": np.int8(-100), "u16": np.uint16(65000), "i16": np.int16(-30000),
        "u32": np.uint32(4_000_000_000), "i32": np.int32(-2_000_000_000),
        "u64": np.uint64(2**63 + 5), "i64": np.int64(-2**62),
        "f32": np.float32(0.1), "f64": np.float64(0.1), "flag": True, "off": False,
        "tokenizer.ggml.tokens": ["<unk>", "", "a b", "▁the", "日本"],
        "tokenizer.ggml.scores": np.array([0.0, -1.5, 2.25, -3.0, 1e-7], dtype=np.float32),
        "tokenizer.ggml.token_type": np.array([2, 1, 1, 1, 6], dtype=np.int32),
        "bools": np.array([True, False, True]),
        "u64s": np.array([1, 2**64 - 1], dtype=np.uint64),
        "f64s": np.array([np.pi, -0.0], dtype=np.float64),
        "empty": np.array([], dtype=np.int16),
    }
    return md


def test_llmkit_writes_what_gguf_py_reads(tmp_path, rng):
    md = _all_value_types_metadata()
    w = rng.standard_normal((8, 64)).astype(np.float32)
    tensors = {
        "a.f32": w,
        "b.f16": rng.standard_normal((3, 5)).astype(np.float16),
        "c.q8_0": llmkit.quantize(w, "q8_0"),
        "d.q4_0": llmkit.quantize(w, "q4_0"),
        "e.q4_K": llmkit.quantize(rng.standard_normal((2, 256)).astype(np.float32), "q4_K"),
        "f.bias": rng.standard_normal(7).astype(np.float32),
        "g.i32": np.arange(12, dtype=np.int32).reshape(3, 4),
        "h.3d": rng.standard_normal((2, 3, 4)).astype(np.float32),
    }
    path = tmp_path / "ours.gguf"
    llmkit.gguf.write(path, md, tensors)
    f = llmkit.gguf.read(path)
    _assert_same_as_gguf_py(path, f)
    r = GGUFReader(path)
    assert int(r.fields["u32"].parts[-1][0]) == 4_000_000_000
    assert r.fields["tokenizer.ggml.tokens"].contents() == md["tokenizer.ggml.tokens"]
    assert r.fields["general.name"].contents() == "tiny ünïcode ✓"
    by_name = {t.name: t for t in r.tensors}
    np.testing.assert_array_equal(np.asarray(by_name["a.f32"].data), w)
    assert by_name["c.q8_0"].tensor_type == GGMLQuantizationType.Q8_0
    assert np.asarray(by_name["c.q8_0"].data).tobytes() == tensors["c.q8_0"].data.tobytes()
    np.testing.assert_array_equal(gguf.quants.dequantize(np.asarray(by_name["d.q4_0"].data), GGMLQuantizationType.Q4_0),
                                  llmkit.dequantize(tensors["d.q4_0"]))
    # Every tensor starts at a multiple of the alignment.
    assert all(int(t.data_offset) % 32 == 0 for t in r.tensors)
    # And llmkit reads back its own values exactly.
    assert f.metadata["u64"] == 2**63 + 5
    assert f.metadata_types["u64"] == "uint64"
    assert f.metadata["f32"] == float(np.float32(0.1))
    assert f.metadata["flag"] is True and f.metadata["off"] is False
    np.testing.assert_array_equal(f.metadata["u64s"], md["u64s"])
    assert f.metadata["empty"].dtype == np.int16 and f.metadata["empty"].size == 0
    np.testing.assert_array_equal(f.tensors["h.3d"], tensors["h.3d"])
    np.testing.assert_array_equal(f.tensors["g.i32"], tensors["g.i32"])
    assert f.tensors["e.q4_K"].data.tobytes() == tensors["e.q4_K"].data.tobytes()


def test_gguf_py_writes_what_llmkit_reads(tmp_path, rng):
    path = tmp_path / "theirs.gguf"
    gw = GGUFWriter(path, "llama")
    gw.add_block_count(3)
    gw.add_context_length(2048)
    gw.add_layer_norm_rms_eps(1e-6)
    gw.add_tokenizer_model("llama")
    gw.add_token_list(["<unk>", "<s>", "</s>", "hello"])
    gw.add_token_scores([0.0, -1.0, -2.0, -3.5])
    gw.add_token_types([2, 3, 3, 1])
    gw.add_bool("test.flag", True)
    gw.add_uint64("test.u64", 2**40)
    gw.add_int8("test.i8", -5)
    gw.add_float64("test.f64", 2.5)
    gw.add_array("test.ints", [1, -2, 3])
    x = rng.standard_normal((4, 64)).astype(np.float32)
    quantized = {}
    gw.add_tensor("f32", x)
    gw.add_tensor("f16", x.astype(np.float16))
    for t in (GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_1,
              GGMLQuantizationType.Q5_0, GGMLQuantizationType.BF16):
        q = gguf.quants.quantize(x, t)
        quantized[t.name.lower()] = q
        gw.add_tensor(t.name.lower(), q, raw_shape=q.shape, raw_dtype=t)
    gw.add_tensor("vec", x[0].copy())
    gw.write_header_to_file()
    gw.write_kv_data_to_file()
    gw.write_tensors_to_file()
    gw.close()

    f = llmkit.gguf.read(path)
    _assert_same_as_gguf_py(path, f)
    assert f.version == 3
    assert f.metadata["llama.block_count"] == 3
    assert f.metadata_types["llama.block_count"] == "uint32"
    assert f.metadata["tokenizer.ggml.tokens"] == ["<unk>", "<s>", "</s>", "hello"]
    np.testing.assert_array_equal(f.metadata["tokenizer.ggml.scores"], [0.0, -1.0, -2.0, -3.5])
    assert f.metadata["test.u64"] == 2**40 and f.metadata["test.i8"] == -5
    np.testing.assert_array_equal(f.tensors["f32"], x)
    assert not f.tensors["f32"].flags.writeable  # a view of the read-only mapping
    np.testing.assert_array_equal(f.tensors["f16"], x.astype(np.float16))
    np.testing.assert_array_equal(f.tensors["vec"], x[0])
    for name, q in quantized.items():
        qt = f.tensors[name]
        assert isinstance(qt, llmkit.QuantizedTensor)
        assert qt.type.lower() == name and qt.shape == (4, 64)
        assert qt.data.tobytes() == q.tobytes()
        # gguf-py's decoder and llmkit's agree on the bytes gguf-py wrote.
        np.testing.assert_array_equal(llmkit.dequantize(qt),
                                      gguf.quants.dequantize(q, GGMLQuantizationType[name.upper()]))


def test_copy_round_trip_is_byte_identical_in_content(tmp_path, data_dir):
    src = data_dir / "models/stories260K/stories260K.gguf"
    f = llmkit.gguf.read(src)
    out = tmp_path / "copy.gguf"
    llmkit.gguf.write(out, f.metadata, f.tensors, types=f.metadata_types)
    g = llmkit.gguf.read(out)
    _assert_same_as_gguf_py(out, g)
    assert g.metadata_types == f.metadata_types
    for k in f.metadata:
        a, b = f.metadata[k], g.metadata[k]
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b
    for name in f.tensors:
        np.testing.assert_array_equal(f.tensors[name], g.tensors[name])
    # llama.cpp's converter also writes tensors at 32-byte alignment, so the
    # copy is the same file byte for byte.
    assert out.read_bytes() == src.read_bytes()


def test_every_data_file_parses_and_matches_gguf_py(data_dir):
    files = sorted(data_dir.glob("**/*.gguf"))
    assert len(files) == 14
    # gguf-py takes many seconds per vocab file, so it checks one of them (the
    # others are compared in the benchmark's agreement check and the copy test);
    # llmkit reads all, and each must be internally consistent.
    cross_check = {"ggml-vocab-llama-spm.gguf"}
    for path in files:
        if path.name == "ggml-vocab-dbrx.gguf":
            continue
        f = llmkit.gguf.read(path)
        tokens = f.metadata["tokenizer.ggml.tokens"]
        assert f.metadata_types["tokenizer.ggml.tokens"] == "array[string]" and len(tokens) >= 512
        if "tokenizer.ggml.token_type" in f.metadata:
            assert len(f.metadata["tokenizer.ggml.token_type"]) == len(tokens)
        if path.name in cross_check:
            _assert_same_as_gguf_py(path, f)


def test_dbrx_duplicate_key_is_refused_clearly(data_dir):
    path = data_dir / "llama.cpp-vocab/dbrx-pr/ggml-vocab-dbrx.gguf"
    with pytest.raises(llmkit.LlmkitError) as e:
        llmkit.gguf.read(path)
    assert e.value.status == "LLMKIT_ERROR_FORMAT"
    assert str(e.value).endswith(f"{path}: offset 561: duplicate key \"general.file_type\" (first at offset 408); "
                            "open with allow_duplicate_keys to keep the first value")
    # gguf-py refuses it too, at the same offset.
    with pytest.raises(KeyError, match="offset 561"):
        GGUFReader(path)
    f = llmkit.gguf.read(path, allow_duplicate_keys=True)
    assert len(f.metadata["tokenizer.ggml.tokens"]) == 100352
    assert f.metadata["tokenizer.ggml.pre"] == "dbrx"


def _llama2c_weights(path: Path):
    """stories260K.bin (llama2.c): 7 int32 config values, then float32 weights in a fixed order."""
    raw = path.read_bytes()
    dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    w = np.frombuffer(raw, dtype=np.float32, offset=28)
    head = dim // n_heads
    kv_dim = n_kv_heads * head
    shapes = [("tok_embeddings", (vocab, dim)), ("rms_att", (n_layers, dim)), ("wq", (n_layers, dim, dim)),
              ("wk", (n_layers, kv_dim, dim)), ("wv", (n_layers, kv_dim, dim)), ("wo", (n_layers, dim, dim)),
              ("rms_ffn", (n_layers, dim)), ("w1", (n_layers, hidden, dim)), ("w2", (n_layers, dim, hidden)),
              ("w3", (n_layers, hidden, dim)), ("rms_final", (dim,)),
              ("freq_cis", (seq_len * head // 2 * 2,))]
    out, pos = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        out[name] = w[pos:pos + n].reshape(shape)
        pos += n
    out["wcls"] = out["tok_embeddings"] if shared else w[pos:pos + vocab * dim].reshape(vocab, dim)
    return (dim, hidden, n_layers, n_heads, n_kv_heads, vocab), out


def test_stories260k_gguf_tensors_equal_the_llama2c_weights(data_dir):
    d = data_dir / "models/stories260K"
    (dim, hidden, n_layers, n_heads, n_kv_heads, vocab), w = _llama2c_weights(d / "stories260K.bin")
    f = llmkit.gguf.read(d / "stories260K.gguf")
    t = f.tensors
    assert len(t) == 48
    assert f.metadata["llama.embedding_length"] == dim
    assert f.metadata["llama.feed_forward_length"] == hidden
    assert f.metadata["llama.block_count"] == n_layers
    np.testing.assert_array_equal(t["token_embd.weight"], w["tok_embeddings"])
    np.testing.assert_array_equal(t["output.weight"], w["wcls"])
    np.testing.assert_array_equal(t["output_norm.weight"], w["rms_final"])

    head = dim // n_heads

    def unpermute(x, heads):
        # llama.cpp's converter reorders q/k rows from llama2.c's interleaved
        # rotary pairs to the NeoX half split, per head; undo that.
        return x.reshape(heads, head // 2, 2, -1).swapaxes(1, 2).reshape(x.shape)

    for i in range(n_layers):
        p = f"blk.{i}."
        np.testing.assert_array_equal(t[p + "attn_norm.weight"], w["rms_att"][i])
        np.testing.assert_array_equal(t[p + "ffn_norm.weight"], w["rms_ffn"][i])
        np.testing.assert_array_equal(t[p + "attn_v.weight"], w["wv"][i])
        np.testing.assert_array_equal(t[p + "attn_output.weight"], w["wo"][i])
        np.testing.assert_array_equal(t[p + "ffn_gate.weight"], w["w1"][i])
        np.testing.assert_array_equal(t[p + "ffn_down.weight"], w["w2"][i])
        np.testing.assert_array_equal(t[p + "ffn_up.weight"], w["w3"][i])
        q, k = t[p + "attn_q.weight"], t[p + "attn_k.weight"]
        assert q.shape == w["wq"][i].shape and k.shape == w["wk"][i].shape
        if not np.array_equal(q, w["wq"][i]):
            np.testing.assert_array_equal(q, unpermute(w["wq"][i], n_heads))
            np.testing.assert_array_equal(k, unpermute(w["wk"][i], n_kv_heads))
        else:
            np.testing.assert_array_equal(k, w["wk"][i])


def test_ggml_type_table_matches_gguf_py():
    for t, (block, size) in GGML_QUANT_SIZES.items():
        name, b, s = llmkit.gguf.ggml_type_info(int(t))
        assert name.lower() == t.name.lower()
        assert b == block
        # gguf-py lists Q8_1 as 40 bytes (f32 d and s); ggml's block_q8_1 has
        # f16 d and s: 36, which is what llmkit's quantizer and reader use.
        assert s == (36 if t == GGMLQuantizationType.Q8_1 else size), t.name
    with pytest.raises(ValueError):
        llmkit.gguf.ggml_type_info(4)


def test_hostile_files_give_clear_errors(tmp_path):
    good = tmp_path / "good.gguf"
    llmkit.gguf.write(good, {"k": np.uint32(1)}, {"w": np.ones((2, 4), dtype=np.float32)})
    data = good.read_bytes()
    assert llmkit.gguf.read(good).tensors["w"].shape == (2, 4)
    for n in (0, 3, 10, 23, 40, len(data) - 1):
        bad = tmp_path / f"cut{n}.gguf"
        bad.write_bytes(data[:n])
        with pytest.raises(llmkit.LlmkitError, match=rf"{re.escape(str(bad))}: offset \d+: ") as e:
            llmkit.gguf.read(bad)
        assert e.value.status == "LLMKIT_ERROR_FORMAT"
    v1 = tmp_path / "v1.gguf"
    v1.write_bytes(b"GGUF" + struct.pack("<IQQ", 1, 0, 0))
    with pytest.raises(llmkit.LlmkitError, match="version 1 is not supported"):
        llmkit.gguf.read(v1)
    huge = tmp_path / "huge.gguf"
    huge.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 2**64 - 1) + bytes(64))
    with pytest.raises(llmkit.LlmkitError, match="metadata count 18446744073709551615 cannot fit"):
        llmkit.gguf.read(huge)
    with pytest.raises(llmkit.LlmkitError) as e:
        llmkit.gguf.read(tmp_path / "missing.gguf")
    assert e.value.status == "LLMKIT_ERROR_IO"


def test_write_refuses_what_gguf_cannot_hold(tmp_path):
    p = tmp_path / "x.gguf"
    with pytest.raises(TypeError):
        llmkit.gguf.write(p, {"k": object()}, {})
    with pytest.raises(ValueError):
        llmkit.gguf.write(p, {"k": 300}, {}, types={"k": "uint8"})
    # values that would change on the way in are refused, not truncated or overflowed
    with pytest.raises(ValueError, match="1.5 does not fit int32"):
        llmkit.gguf.write(p, {"k": 1.5}, {}, types={"k": "int32"})
    with pytest.raises(ValueError, match="the values do not fit int32"):
        llmkit.gguf.write(p, {"k": [1.0, 2.5]}, {}, types={"k": "array[int32]"})
    with pytest.raises(ValueError, match="does not fit float32"):
        llmkit.gguf.write(p, {"k": 1e40}, {}, types={"k": "float32"})
    with pytest.raises(ValueError):
        llmkit.gguf.write(p, {"k": [[1, 2], [3]]}, {})
    with pytest.raises(TypeError):
        llmkit.gguf.write(p, {}, {"t": np.ones(3, dtype=np.complex64)})
    with pytest.raises(ValueError):
        llmkit.gguf.write(p, {}, {"t": np.ones((1, 1, 1, 1, 2), dtype=np.float32)})
    with pytest.raises(ValueError):
        llmkit.gguf.write(p, {"general.alignment": np.uint32(48)}, {})
    with pytest.raises(TypeError, match="a mapping of names to arrays, or a sequence of"):
        llmkit.gguf.write(p, {}, 5)
    with pytest.raises(TypeError, match="tensor names must be str"):
        llmkit.gguf.write(p, {}, [(3, np.ones(4, np.float32))])
    with pytest.raises(ValueError, match='tensor "w" was already added'):
        llmkit.gguf.write(p, {}, [("w", np.ones(4, np.float32)), ("w", np.zeros(4, np.float32))])
    with pytest.raises(llmkit.LlmkitError) as e:
        llmkit.gguf.write(tmp_path / "no-such-dir" / "x.gguf", {"k": 1}, {})
    assert e.value.status == "LLMKIT_ERROR_IO"
    assert not p.exists()
    llmkit.gguf.write(p, {"k": 1, "f": 0.5, "big": 2**40, "s": "x", "ints": [1, 2], "fl": [1.5, 2]}, {},
                      alignment=64)
    f = llmkit.gguf.read(p)
    assert f.metadata_types == {"k": "int32", "f": "float32", "big": "int64", "s": "string",
                                "ints": "array[int32]", "fl": "array[float32]", "general.alignment": "uint32"}
    assert f.alignment == 64
    assert list(tmp_path.glob("*.tmp.*")) == []
    # (name, array) pairs keep their order, as a mapping does
    llmkit.gguf.write(p, {}, [("b", np.ones(4, np.float32)), ("a", np.zeros(2, np.float16))])
    assert list(llmkit.gguf.read(p).tensors) == ["b", "a"]
