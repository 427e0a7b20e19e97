"""GGUF vocabularies (tokenizer.ggml.*) through llmkit.Tokenizer.from_file: every
llama.cpp vocab file with test vectors gives the expected ids (Hugging Face ground
truth, no BOS), the files without vectors round-trip, and the DBRX file with a
repeated key is refused with a message naming the key."""

from pathlib import Path

import pytest

import llmkit

SEPARATOR = b"\n__ggml_vocab_test__\n"
WITH_VECTORS = ["llama-spm", "phi-3", "gpt-2", "mpt", "falcon", "starcoder", "refact", "deepseek-llm",
                "deepseek-coder", "bert-bge"]


def vectors(base: Path):
    texts = base.with_name(base.name + ".inp").read_bytes().split(SEPARATOR)
    assert texts[-1] == b""
    lines = base.with_name(base.name + ".out").read_text(encoding="utf-8").split("\n")
    return [(t.decode("utf-8"), [int(x) for x in line.split()]) for t, line in zip(texts[:-1], lines)]


@pytest.mark.parametrize("name", WITH_VECTORS)
def test_vectors(data_dir, name):
    path = data_dir / "llama.cpp-vocab" / f"ggml-vocab-{name}.gguf"
    tok = llmkit.Tokenizer.from_file(path)
    cases = vectors(path)
    assert len(cases) == 46
    wrong = [(t, tok.encode(t, disallowed_special=()), ids) for t, ids in cases
             if tok.encode(t, disallowed_special=()) != ids]
    assert not wrong, wrong[:3]


@pytest.mark.parametrize("name", ["baichuan", "gpt-neox"])
def test_round_trip_without_vectors(data_dir, name):
    tok = llmkit.Tokenizer.from_file(data_dir / "llama.cpp-vocab" / f"ggml-vocab-{name}.gguf")
    text = (data_dir / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8")
    assert tok.decode(tok.encode(text, disallowed_special=())) == text


def test_duplicate_key_refused(data_dir):
    with pytest.raises(llmkit.LlmkitError, match="general.file_type"):
        llmkit.Tokenizer.from_file(data_dir / "llama.cpp-vocab" / "dbrx-pr" / "ggml-vocab-dbrx.gguf")


def test_bos_from_add_bos_token(data_dir):
    tok = llmkit.Tokenizer.from_file(data_dir / "llama.cpp-vocab" / "ggml-vocab-llama-spm.gguf")
    assert tok.encode("Hello", add_special_tokens=True)[0] == 1
    assert tok.encode("Hello")[0] != 1


def test_spm_offsets_equal_sentencepiece(data_dir):
    """A GGUF SentencePiece vocabulary gives sentencepiece's begin/end spans (its .model twin is the reference)."""
    spm = pytest.importorskip("sentencepiece")
    sp = spm.SentencePieceProcessor(model_file=str(data_dir / "sentencepiece" / "llama2" / "tokenizer.model"))
    tok = llmkit.Tokenizer.from_file(data_dir / "llama.cpp-vocab" / "ggml-vocab-llama-spm.gguf")
    lines = (data_dir / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8").split("\n")[:1500]
    for text in lines + ["  two  spaces 🦙\u3000x"]:
        ids, spans = tok.encode_with_offsets(text)
        pieces = sp.encode(text, return_type="proto").pieces
        assert ids == [p.id for p in pieces], text
        assert spans.tolist() == [[p.begin, p.end] for p in pieces], text
