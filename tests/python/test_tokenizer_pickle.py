"""Pickling llmkit.Tokenizer: every file format round-trips to a tokenizer that
gives the same ids, also in a spawned worker process (what multiprocessing and
DataLoader workers do), and the cases that cannot be pickled say why."""

import copy
import multiprocessing
import os
import pickle
import shutil

import pytest

import llmkit

TEXT = ("Hello world! The quick brown fox, 1234567 times. Ünïcödé ünd 中文字符 и русский текст.\n"
        "    def f(x):  return x**2  # code\n")


def _sources(data_dir):
    d = data_dir
    return [
        ("tiktoken", d / "tiktoken" / "cl100k_base.tiktoken", "cl100k_base"),
        ("tokenizer.json gpt2", d / "hf-tokenizers" / "gpt2" / "tokenizer.json", None),
        ("tokenizer.json bert", d / "hf-tokenizers" / "bert-base-uncased" / "tokenizer.json", None),
        ("sentencepiece", d / "sentencepiece" / "llama2" / "tokenizer.model", None),
        ("gguf", d / "llama.cpp-vocab" / "ggml-vocab-phi-3.gguf", None),
    ]


def _load(path, encoding):
    return llmkit.Tokenizer.from_tiktoken(path, encoding) if encoding else llmkit.Tokenizer.from_file(path)


def _encode_in_worker(tok):
    return tok.encode(TEXT), tok.name, tok.vocab_size, tok.id_to_token(5)


@pytest.mark.parametrize("which", range(5))
def test_pickle_round_trip_gives_the_same_ids(data_dir, which):
    label, path, encoding = _sources(data_dir)[which]
    assert path.is_file(), f"{label}: {path} is missing from the test data"
    tok = _load(path, encoding)
    want = tok.encode(TEXT)
    assert len(want) > 10
    blob = pickle.dumps(tok)
    if label == "gguf":
        assert len(blob) < 4096, "a GGUF tokenizer pickles by path, not by content"
    else:
        assert len(blob) > path.stat().st_size // 2, "the file's bytes travel with the pickle"
    back = pickle.loads(blob)
    assert back.encode(TEXT) == want
    assert back.decode(want) == tok.decode(want)
    assert (back.name, back.vocab_size, back.id_to_token(5)) == (tok.name, tok.vocab_size, tok.id_to_token(5))
    # A restored tokenizer pickles again (nested workers), and copy works.
    assert pickle.loads(pickle.dumps(back)).encode(TEXT) == want
    assert copy.deepcopy(tok).encode(TEXT) == want


def test_pickled_tokenizer_encodes_in_a_spawned_process(data_dir):
    tok = llmkit.Tokenizer.from_tiktoken(data_dir / "tiktoken" / "o200k_base.tiktoken", "o200k_base")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_encode_in_worker, [tok, tok])
    for got in results:
        assert got == (tok.encode(TEXT), tok.name, tok.vocab_size, tok.id_to_token(5))


def test_pickling_refuses_a_changed_file(data_dir, tmp_path):
    path = tmp_path / "gpt2.json"
    shutil.copy(data_dir / "hf-tokenizers" / "gpt2" / "tokenizer.json", path)
    tok = llmkit.Tokenizer.from_file(path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(RuntimeError, match="changed since it was loaded"):
        pickle.dumps(tok)


@pytest.mark.parametrize("which", range(5))
def test_from_bytes_equals_from_file(data_dir, which):
    label, path, encoding = _sources(data_dir)[which]
    tok = _load(path, encoding)
    data = bytearray(path.read_bytes())
    mem = llmkit.Tokenizer.from_bytes(data, encoding)
    data[:] = b"\0" * len(data)  # nothing of the buffer is kept
    ids = tok.encode(TEXT)
    assert mem.encode(TEXT) == ids
    assert mem.decode(ids) == tok.decode(ids)
    assert (mem.vocab_size, mem.id_to_token(5)) == (tok.vocab_size, tok.id_to_token(5))
    assert pickle.loads(pickle.dumps(mem)).encode(TEXT) == ids


def test_from_bytes_errors(data_dir):
    with pytest.raises(llmkit.LlmkitError, match=r"\(memory\): not a tokenizer file"):
        llmkit.Tokenizer.from_bytes(b"not a tokenizer")
    with pytest.raises(ValueError, match="give the encoding preset"):
        llmkit.Tokenizer.from_bytes((data_dir / "tiktoken" / "r50k_base.tiktoken").read_bytes())
    with pytest.raises(TypeError):
        llmkit.Tokenizer.from_bytes("a str")


def test_a_gguf_tokenizer_loaded_by_a_relative_path_unpickles_elsewhere(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(data_dir / "llama.cpp-vocab")
    tok = llmkit.Tokenizer.from_file("ggml-vocab-phi-3.gguf")
    blob = pickle.dumps(tok)
    monkeypatch.chdir(tmp_path)
    assert pickle.loads(blob).encode(TEXT) == tok.encode(TEXT)
