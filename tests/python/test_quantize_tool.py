"""llmkit-quantize end to end: stories260K.gguf and a synthetic safetensors
file, checked with the `gguf` package's reader and against llmkit.dequantize."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import llmkit
from llmkit.tools import quantize as tool

gguf = pytest.importorskip("gguf")
from gguf import GGUFReader, GGMLQuantizationType, LlamaFileType  # noqa: E402


def _reader_tensors(path):
    return {t.name: t for t in GGUFReader(path).tensors}


def test_stories260k_to_q8_0_keeps_the_172_wide_rows_in_f32(tmp_path, data_dir):
    src = data_dir / "models/stories260K/stories260K.gguf"
    dst = tmp_path / "q8_0.gguf"
    out = io.StringIO()
    summary = tool.quantize_model(str(src), str(dst), "Q8_0", quiet=True, out=out)
    text = out.getvalue()

    f_in = llmkit.gguf.read(src)
    r = GGUFReader(dst)
    theirs = {t.name: t for t in r.tensors}
    assert list(theirs) == list(f_in.tensors)
    # ffn_down has rows of 172 (hidden size): not whole 32-element blocks.
    for i in range(5):
        name = f"blk.{i}.ffn_down.weight"
        assert summary["kept"][name].startswith("rows of 172 are not a multiple of q8_0's block of 32")
        assert theirs[name].tensor_type == GGMLQuantizationType.F32
        np.testing.assert_array_equal(np.asarray(theirs[name].data), f_in.tensors[name])
        assert name in text
    assert "rows are not whole q8_0 blocks" in text
    for name, t in f_in.tensors.items():
        got = theirs[name]
        if t.ndim == 1:
            assert summary["kept"][name].startswith("1-D")
            assert got.tensor_type == GGMLQuantizationType.F32
            np.testing.assert_array_equal(np.asarray(got.data), t)
        elif name not in summary["kept"]:
            assert got.tensor_type == GGMLQuantizationType.Q8_0
            q = np.asarray(got.data)
            # The bytes are llmkit.quantize's (checked byte-exact against ggml elsewhere) and
            # gguf-py's decoder of them equals llmkit's.
            expected = llmkit.quantize(t, "q8_0")
            assert q.tobytes() == expected.data.tobytes(), name
            deq = gguf.quants.dequantize(q, GGMLQuantizationType.Q8_0)
            np.testing.assert_array_equal(deq, llmkit.dequantize(expected))
            assert np.max(np.abs(deq - t)) <= np.max(np.abs(t)) / 127 + 1e-7
    assert len(summary["quantized"]) == 48 - 11 - 5  # 11 norms (1-D), 5 ffn_down
    # Metadata copied, file type set as llama.cpp numbers it.
    fields = r.fields
    assert fields["general.file_type"].contents() == LlamaFileType.MOSTLY_Q8_0
    assert fields["general.quantization_version"].contents() == 2
    assert fields["tokenizer.ggml.tokens"].contents() == f_in.metadata["tokenizer.ggml.tokens"]
    assert fields["llama.context_length"].contents() == 128
    assert summary["dst_bytes"] < summary["src_bytes"]
    assert "quant size" in text and "x smaller" in text


def test_cli_runs_as_a_module_and_reports_errors(tmp_path, data_dir):
    src = data_dir / "models/stories260K/stories260K.gguf"
    dst = tmp_path / "q4_0.gguf"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, "-m", "llmkit.tools.quantize", str(src), str(dst), "q4_0", "--quiet",
                        "--keep", "token_embd.*"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert "kept as f32 (matches --keep)" in p.stdout
    t = _reader_tensors(dst)
    assert t["token_embd.weight"].tensor_type == GGMLQuantizationType.F32
    assert t["output.weight"].tensor_type == GGMLQuantizationType.Q4_0
    assert GGUFReader(dst).fields["general.file_type"].contents() == LlamaFileType.MOSTLY_Q4_0
    # Requantizing needs the flag.
    p = subprocess.run([sys.executable, "-m", "llmkit.tools.quantize", str(dst), str(tmp_path / "again.gguf"), "q8_0",
                        "--quiet"], capture_output=True, text=True, env=env)
    assert p.returncode == 1
    assert "--allow-requantize" in p.stderr
    p = subprocess.run([sys.executable, "-m", "llmkit.tools.quantize", str(src), str(tmp_path / "x.gguf"), "q9_9"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 1 and "q9_9" in p.stderr


def _write_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name, (dtype, arr) in tensors.items():
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def test_safetensors_to_q4_k(tmp_path, rng):
    w1 = rng.standard_normal((64, 512)).astype(np.float32)
    w2 = rng.standard_normal((32, 256)).astype(np.float16)
    w3 = rng.standard_normal((16, 256)).astype(np.float32)
    bf16 = (w3.view(np.uint32) >> 16).astype(np.uint16)  # truncated to bfloat16
    w3_bf16 = (bf16.astype(np.uint32) << 16).view(np.float32)
    norm = rng.standard_normal(512).astype(np.float32)
    odd = rng.standard_normal((8, 100)).astype(np.float32)
    src = tmp_path / "model.safetensors"
    _write_safetensors(src, {"layers.0.mlp.weight": ("F32", w1), "layers.0.attn.weight": ("F16", w2),
                             "layers.0.bf.weight": ("BF16", bf16), "layers.0.norm.weight": ("F32", norm),
                             "odd.weight": ("F32", odd)}, {"format": "pt"})
    dst = tmp_path / "model-q4_K.gguf"
    summary = tool.quantize_model(str(src), str(dst), "q4_K", quiet=True, out=io.StringIO())
    assert sorted(summary["quantized"]) == ["layers.0.attn.weight", "layers.0.bf.weight", "layers.0.mlp.weight"]
    assert set(summary["kept"]) == {"layers.0.norm.weight", "odd.weight"}
    r = GGUFReader(dst)
    t = {x.name: x for x in r.tensors}
    for name, ref in (("layers.0.mlp.weight", w1), ("layers.0.attn.weight", w2.astype(np.float32)),
                      ("layers.0.bf.weight", w3_bf16)):
        assert t[name].tensor_type == GGMLQuantizationType.Q4_K
        q = np.asarray(t[name].data)
        qt = llmkit.QuantizedTensor(q.reshape(-1), "q4_K", ref.shape)
        assert q.tobytes() == llmkit.quantize(ref, "q4_K").data.tobytes()
        deq = llmkit.dequantize(qt)
        np.testing.assert_array_equal(deq, gguf.quants.dequantize(q, GGMLQuantizationType.Q4_K).reshape(ref.shape))
        # q4_K's error on Gaussian rows: well under a tenth of the row's range.
        assert np.sqrt(np.mean((deq - ref) ** 2)) < 0.1 * np.std(ref)
    np.testing.assert_array_equal(np.asarray(t["layers.0.norm.weight"].data), norm)
    np.testing.assert_array_equal(np.asarray(t["odd.weight"].data), odd)
    assert r.fields["general.file_type"].contents() == LlamaFileType.MOSTLY_Q4_K_S
    assert r.fields["safetensors.format"].contents() == "pt"


def test_bad_safetensors_is_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes((10**9).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="header length 1000000000 runs past the end"):
        tool.quantize_model(str(bad), str(tmp_path / "o.gguf"), "q8_0", quiet=True, out=io.StringIO())
    lying = tmp_path / "lying.safetensors"
    h = json.dumps({"w": {"dtype": "F32", "shape": [4, 32], "data_offsets": [0, 1000]}}).encode()
    lying.write_bytes(len(h).to_bytes(8, "little") + h + bytes(512))
    with pytest.raises(ValueError, match="data_offsets"):
        tool.quantize_model(str(lying), str(tmp_path / "o.gguf"), "q8_0", quiet=True, out=io.StringIO())
    assert not (tmp_path / "o.gguf").exists()


def _imatrix_fixture(rng):
    """A model with a dense tensor that has an imatrix entry, one that has none and
    a 3-D expert tensor with one entry per expert; the sums and counts as llama-imatrix keeps them."""
    model = {"blk.0.ffn_up.weight": rng.standard_normal((64, 512)).astype(np.float32),
             "blk.0.attn_q.weight": rng.standard_normal((32, 256)).astype(np.float32),
             "blk.0.ffn_down_exps.weight": rng.standard_normal((4, 16, 256)).astype(np.float32)}
    sums = {"blk.0.ffn_up.weight": (rng.gamma(0.5, 3.0, (1, 512)) * 40).astype(np.float32),
            "blk.0.ffn_down_exps.weight": (rng.gamma(0.5, 3.0, (4, 256)) * 40).astype(np.float32)}
    counts = {"blk.0.ffn_up.weight": np.array([[40.0]], np.float32),
              "blk.0.ffn_down_exps.weight": np.array([[40.0], [0.0], [12.0], [7.0]], np.float32)}
    return model, sums, counts


def test_imatrix_gguf_and_legacy_files(tmp_path, rng):
    model, sums, counts = _imatrix_fixture(rng)
    src = tmp_path / "model.safetensors"
    _write_safetensors(src, {n: ("F32", a) for n, a in model.items()})
    # The GGUF imatrix format, written by gguf-py (the writer llama.cpp's own scripts use).
    w = gguf.GGUFWriter(str(tmp_path / "imatrix.gguf"), arch="")
    w.add_string("general.type", "imatrix")
    for name in sums:
        w.add_tensor(name + ".in_sum2", sums[name])
        w.add_tensor(name + ".counts", counts[name])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    # The expected weights: sums / counts, and 1 for an expert that saw no token.
    expected = {n: np.where(counts[n] > 0, sums[n] / np.maximum(counts[n], 1), 1).astype(np.float32) for n in sums}
    for name, weights in tool.load_imatrix(str(tmp_path / "imatrix.gguf")).items():
        np.testing.assert_allclose(weights, expected[name], rtol=1e-6)

    log = io.StringIO()
    dst = tmp_path / "model-q4_K.gguf"
    summary = tool.quantize_model(str(src), str(dst), "q4_K", quiet=True, out=log,
                                  imatrix=str(tmp_path / "imatrix.gguf"))
    assert sorted(summary["with_imatrix"]) == ["blk.0.ffn_down_exps.weight", "blk.0.ffn_up.weight"]
    assert "2 tensors quantized with importance weights" in log.getvalue()
    t = {x.name: np.asarray(x.data).tobytes() for x in GGUFReader(dst).tensors}
    up, im_up = model["blk.0.ffn_up.weight"], expected["blk.0.ffn_up.weight"][0]
    assert t["blk.0.ffn_up.weight"] == bytes(llmkit.quantize(up, "q4_K", imatrix=im_up).data)
    assert t["blk.0.ffn_up.weight"] != bytes(llmkit.quantize(up, "q4_K").data)
    assert t["blk.0.attn_q.weight"] == bytes(llmkit.quantize(model["blk.0.attn_q.weight"], "q4_K").data)
    exps = model["blk.0.ffn_down_exps.weight"]
    assert t["blk.0.ffn_down_exps.weight"] == b"".join(
        bytes(llmkit.quantize(exps[e], "q4_K", imatrix=expected["blk.0.ffn_down_exps.weight"][e]).data) for e in range(4))

    # The legacy .dat format: entries of (name, ncall, values = mean * ncall), for a dense tensor.
    ncall = 5
    dat = bytearray(struct.pack("<i", 1))
    name = b"blk.0.ffn_up.weight"
    dat += struct.pack("<i", len(name)) + name + struct.pack("<ii", ncall, 512)
    dat += (im_up * ncall).astype("<f4").tobytes()
    (tmp_path / "imatrix.dat").write_bytes(bytes(dat))
    legacy = tool.load_imatrix(str(tmp_path / "imatrix.dat"))
    np.testing.assert_allclose(legacy["blk.0.ffn_up.weight"][0], im_up, rtol=1e-6)
    (tmp_path / "short.dat").write_bytes(bytes(dat[:-10]))
    with pytest.raises(ValueError, match="bad value count|truncated"):
        tool.load_imatrix(str(tmp_path / "short.dat"))


def test_imatrix_of_the_wrong_width_is_refused(tmp_path, rng):
    model, _, _ = _imatrix_fixture(rng)
    src = tmp_path / "model.safetensors"
    _write_safetensors(src, {"blk.0.attn_q.weight": ("F32", model["blk.0.attn_q.weight"])})
    dat = bytearray(struct.pack("<i", 1))
    name = b"blk.0.attn_q.weight"
    dat += struct.pack("<i", len(name)) + name + struct.pack("<ii", 1, 128) + np.ones(128, "<f4").tobytes()
    (tmp_path / "imatrix.dat").write_bytes(bytes(dat))
    with pytest.raises(ValueError, match="has 128 weights per row; the tensor's rows have 256"):
        tool.quantize_model(str(src), str(tmp_path / "out.gguf"), "q4_K", quiet=True, out=io.StringIO(),
                            imatrix=str(tmp_path / "imatrix.dat"))
