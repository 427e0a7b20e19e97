"""Tokenizer.encode_with_offsets: the byte spans tile the input and each span's bytes are the token's bytes,
for every preset, on the mixed corpus slice and on text whose characters span several tokens; character
offsets; special tokens; errors."""

import numpy as np
import pytest

import llmkit

PRESETS = {
    "r50k_base": "r50k_base.tiktoken",
    "cl100k_base": "cl100k_base.tiktoken",
    "o200k_base": "o200k_base.tiktoken",
    "llama3": "llama3/tokenizer.model",
    "qwen2": "qwen/qwen.tiktoken",
}


@pytest.fixture(scope="module", params=sorted(PRESETS))
def tok(request, data_dir):
    return llmkit.Tokenizer.from_tiktoken(data_dir / "tiktoken" / PRESETS[request.param], request.param)


def check_tiling(tok, text, ids, spans):
    data = text.encode("utf-8")
    assert spans.shape == (len(ids), 2) and spans.dtype == np.int64
    assert ids == tok.encode(text, disallowed_special=())
    if ids:
        assert spans[0, 0] == 0 and spans[-1, 1] == len(data)
        assert (spans[1:, 0] == spans[:-1, 1]).all()  # each starts where the last ended
    for i, (b, e) in zip(ids, spans.tolist()):
        assert data[b:e] == tok.id_to_token(i)


def test_spans_tile_the_corpus(tok, data_dir):
    text = (data_dir / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8")
    ids, spans = tok.encode_with_offsets(text, disallowed_special=())
    check_tiling(tok, text, ids, spans)


def test_tokens_that_split_a_character(tok):
    text = "🦙🤖 naïve 中文字符 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ok"
    ids, spans = tok.encode_with_offsets(text)
    check_tiling(tok, text, ids, spans)
    data = text.encode()
    assert any((data[b] & 0xC0) == 0x80 for b, _ in spans.tolist()), "expected a token starting inside a character"
    # Character offsets: each span widened to whole characters.
    _, chars = tok.encode_with_offsets(text, unit="chars")
    for (cb, ce), (b, e) in zip(chars.tolist(), spans.tolist()):
        assert text[cb:ce].encode().find(data[b:e]) >= 0
        assert len(text[:cb].encode()) <= b and e <= len(text[:ce].encode())
    assert chars[0, 0] == 0 and chars[-1, 1] == len(text)


def test_special_tokens_and_empty(data_dir):
    tok = llmkit.Tokenizer.from_tiktoken(data_dir / "tiktoken" / "cl100k_base.tiktoken", "cl100k_base")
    text = "a<|endoftext|>b"
    ids, spans = tok.encode_with_offsets(text, allowed_special="all")
    assert ids == [64, 100257, 65] and spans.tolist() == [[0, 1], [1, 14], [14, 15]]
    with pytest.raises(ValueError, match="endoftext"):
        tok.encode_with_offsets(text)
    ids, spans = tok.encode_with_offsets("")
    assert ids == [] and spans.shape == (0, 2)
    with pytest.raises(ValueError, match="unit"):
        tok.encode_with_offsets("x", unit="words")


def test_matches_hf_tokenizers_offsets(data_dir):
    """HF tokenizers gives character offsets for GPT-2; llmkit's unit="chars" agrees (HF may trim a leading space)."""
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.Tokenizer.from_file(str(data_dir / "hf-tokenizers" / "gpt2" / "tokenizer.json"))
    tok = llmkit.Tokenizer.from_tiktoken(data_dir / "tiktoken" / "r50k_base.tiktoken", "r50k_base")
    text = "Hello world, this is a test of offsets. Numbers 12345 and punctuation!? naïve café"
    enc = hf.encode(text, add_special_tokens=False)
    ids, chars = tok.encode_with_offsets(text, unit="chars")
    assert ids == enc.ids
    for (b, e), (s, t) in zip(chars.tolist(), enc.offsets):
        assert e == t and b <= s and text[b:s].strip() == ""
