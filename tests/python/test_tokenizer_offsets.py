"""Tokenizer.encode_with_offsets: the byte spans tile the input and each span's bytes are the token's bytes,
for every preset, on the mixed corpus slice and on text whose characters span several tokens; character
offsets; special tokens; errors."""

import numpy as np
import pytest

import llmkit
from budget import examples, thinned

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


# ---------------------------------------------------------------------------
# tokenizer.json: the spans are HF tokenizers' own Encoding.offsets. tokenizers gives character offsets into
# the Python str; they are converted to UTF-8 byte offsets here. The files: the four real ones of the data
# folder, and the tokenizer.json files test_tokenizer_json.py has `tokenizers` build and train to reach the
# other components (NFKC/NFKD/NFC, Precompiled, Nmt, Strip/Replace/Prepend, Whitespace, Split behaviours,
# Digits, Punctuation, Unigram with and without byte fallback, WordLevel, BPE suffixes, Roberta's trimming,
# added tokens with lstrip/rstrip/normalized/single_word).

import json  # noqa: E402

import test_tokenizer_json as tj  # noqa: E402  (same folder: its builders and corpora)

hf_tokenizers = tj.tokenizers


def byte_offsets(text, char_offsets):
    """Character offsets into text as UTF-8 byte offsets."""
    at = [0]
    for ch in text:
        at.append(at[-1] + len(ch.encode("utf-8")))
    return [(at[b], at[e]) for b, e in char_offsets]


def offsets_mismatch(tok, ref, texts, add_special_tokens):
    """The first text whose ids or spans differ from tokenizers', described; None if all agree."""
    for text, enc in zip(texts, ref.encode_batch(texts, add_special_tokens=add_special_tokens)):
        ids, spans = tok.encode_with_offsets(text, allowed_special="all", add_special_tokens=add_special_tokens)
        got = [tuple(s) for s in spans.tolist()]
        expected = byte_offsets(text, enc.offsets)
        if ids != enc.ids:
            return f"{text[:60]!r}: ids differ"
        if got != expected:
            k = next(i for i in range(len(got)) if got[i] != expected[i])
            return f"{text[:60]!r}: token {k} {enc.tokens[k]!r}: span {got[k]}, tokenizers {expected[k]}"
    return None


@pytest.fixture(scope="module")
def offset_texts(data_dir):
    """~450 texts: UDHR lines of every script, llama.cpp's 46 vocab-test texts (whitespace runs, empty),
    3000-character slices of the mixed corpus, and texts with added/special tokens, accents, CJK, emoji."""
    udhr = (data_dir / "corpus" / "udhr-60lang.txt").read_text(encoding="utf-8").split("\n")
    mixed = (data_dir / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8")
    texts = udhr[::40] + tj.vocab_texts(data_dir) + tj.EXTRA_TEXTS
    texts += [mixed[i:i + 3000] for i in range(0, len(mixed), 3000)]
    texts += ["[CLS] Hello [SEP] wor[MASK]ld [UNK]", "<s>x</s> <unk>y <|endoftext|>z", "  <|endoftext|>  a",
              "Ⅻ ǅ İstanbul ﬁ ½ ＡＢＣ ｶﾞ", "e\u0301 a\u0323\u0302 \u1e69\u0307", "中文字符 🦙🤖 naïve café ÉTÉ",
              "\t\t tabs\u3000ideographic\u00a0nbsp  \n\n", "\x00\x01 controls \ufffd\ufeff"]
    return thinned(texts, 3)


@pytest.mark.parametrize("add_special_tokens", [False, True])
@pytest.mark.parametrize("name", tj.HF_FILES)
def test_hf_file_offsets_match_tokenizers(data_dir, offset_texts, name, add_special_tokens):
    tok, ref = tj.load_pair(tj.hf_path(data_dir, name))
    assert offsets_mismatch(tok, ref, offset_texts, add_special_tokens) is None
    # The ids are encode()'s.
    for text in offset_texts[::7]:
        ids, _ = tok.encode_with_offsets(text, allowed_special="all", add_special_tokens=add_special_tokens)
        assert ids == tok.encode(text, allowed_special="all", add_special_tokens=add_special_tokens)


@pytest.mark.parametrize("name", tj.HF_FILES)
def test_hf_file_char_offsets_are_tokenizers_offsets(data_dir, offset_texts, name):
    """unit="chars" gives tokenizers' character offsets themselves."""
    tok, ref = tj.load_pair(tj.hf_path(data_dir, name))
    for text in offset_texts[::5]:
        _, chars = tok.encode_with_offsets(text, allowed_special="all", add_special_tokens=True, unit="chars")
        assert [tuple(c) for c in chars.tolist()] == ref.encode(text).offsets, text[:60]


def _gpt2_variant(data_dir, tmp_path, **post):
    spec = json.loads(tj.hf_path(data_dir, "gpt2").read_text(encoding="utf-8"))
    spec["pre_tokenizer"]["add_prefix_space"] = post.pop("pre_add_prefix_space", False)
    spec["post_processor"].update(post)
    path = tmp_path / "gpt2-variant.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return llmkit.Tokenizer.from_file(path), hf_tokenizers.Tokenizer.from_file(str(path))


@pytest.mark.parametrize("variant", [dict(trim_offsets=True),
                                     dict(trim_offsets=True, add_prefix_space=False, pre_add_prefix_space=True),
                                     dict(trim_offsets=True, add_prefix_space=True, pre_add_prefix_space=True)])
def test_byte_level_trim_offsets(data_dir, tmp_path, offset_texts, variant):
    """GPT-2's file with the ByteLevel post-processor's trim_offsets on: spans move past the spaces ("Ġ") at the
    ends of their token, counted in characters (a prefix space aligned to a multi-byte character moves past it)."""
    tok, ref = _gpt2_variant(data_dir, tmp_path, **variant)
    texts = offset_texts[::3] + ["½", "  x  ", " a", "\U0006e771 b", "a  \n b"]
    assert offsets_mismatch(tok, ref, texts, False) is None


@pytest.mark.parametrize("kind", list(tj.SYNTHETIC))
def test_component_offsets_match_tokenizers(tmp_path, data_dir, offset_texts, kind):
    path = tmp_path / f"{kind}.json"
    tj.SYNTHETIC[kind](tj._train_lines(data_dir)[::4]).save(str(path))  # a quarter of the lines: faster training
    tok, ref = llmkit.Tokenizer.from_file(path), hf_tokenizers.Tokenizer.from_file(str(path))
    texts = offset_texts[::2]
    for add in (False, True):
        assert offsets_mismatch(tok, ref, texts, add) is None


def test_bert_spans_map_back_to_the_original(data_dir):
    """BERT lowercases, strips accents and pads CJK characters; each span still covers the input it came from."""
    tok, _ = tj.load_pair(tj.hf_path(data_dir, "bert-base-uncased"))
    text = "Ünïcödé CAFÉ 中文 don't"
    ids, spans = tok.encode_with_offsets(text, add_special_tokens=True)
    data = text.encode()
    pieces = [data[b:e].decode() for b, e in spans.tolist()]
    assert pieces == ["", "Ünïcödé", "CAFÉ", "中", "文", "don", "'", "t", ""]
    assert [tok.id_to_token(i) for i in ids][:3] == ["[CLS]", "unicode", "cafe"]


def test_byte_fallback_tokens_span_their_character(data_dir):
    """Mistral: the <0xNN> tokens of a character missing from the vocab all span that whole character (as in HF);
    the "▁" that Metaspace prepends spans the first character; BOS is the empty span at 0."""
    tok, _ = tj.load_pair(tj.hf_path(data_dir, "mistral-7b-v0.1"))
    text = "\U0001FAE8 hi"
    ids, spans = tok.encode_with_offsets(text, add_special_tokens=True)
    names = [tok.id_to_token(i) for i in ids]
    fallback = [k for k, n in enumerate(names) if n.startswith("<0x")]
    assert ids[0] == 1 and spans[0].tolist() == [0, 0]
    assert len(fallback) == 4 and all(spans[k].tolist() == [0, 4] for k in fallback)
    assert spans[-1].tolist()[1] == len(text.encode())


# Random Unicode (and pieces that reach the special cases) on representative files: byte-level BPE, BERT
# WordPiece, Metaspace + byte-fallback BPE, and GPT-2 with trim_offsets.
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_OFFSET_TEXT = tj._TEXT | st.lists(st.sampled_from(
    ["a\u0302\u0300", "t\u0323\u0323", "\ufb01", "\u00bd", "\u3000", "\u1100\u1161", "\uff76\uff9e", "\u0130",
     " \u00bd", "  ", "\U0006e771", "\u2581\u2581", "[MASK]", "  <|endoftext|> "]), max_size=8).map("".join)


@pytest.mark.parametrize("name", ["gpt2", "bert-base-uncased", "mistral-7b-v0.1", "gpt2-trim"])
def test_random_text_offsets_match_tokenizers(data_dir, tmp_path, name):
    if name == "gpt2-trim":
        tok, ref = _gpt2_variant(data_dir, tmp_path, trim_offsets=True, add_prefix_space=False,
                                 pre_add_prefix_space=True)
    else:
        tok, ref = tj.load_pair(tj.hf_path(data_dir, name))

    @settings(max_examples=examples(200), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(text=_OFFSET_TEXT, add=st.booleans())
    def check(text, add):
        assert offsets_mismatch(tok, ref, [text], add) is None

    check()
