"""Tokenizer.encode_pair: a pair of texts as one sequence, against Hugging Face tokenizers' encode(a, b): the
ids, type_ids, sequence_ids and offsets, for every tokenizer.json of the data folder and for the post-processors
tokenizers builds (BertProcessing, RobertaProcessing, TemplateProcessing, ByteLevel, Sequence); the other kinds'
pairs (tiktoken, SentencePiece, GGUF vocabularies); errors."""

import json

import numpy as np
import pytest

import llmkit
from budget import examples
import test_tokenizer_json as tj  # same folder: its loaders and texts
from test_tokenizer_offsets import offset_texts  # noqa: F401  (the fixture: ~450 varied texts)

hf_tokenizers = tj.tokenizers
processors = hf_tokenizers.processors


def pair_mismatch(tok, ref, pairs, add_special_tokens, compare_sequence_ids=True):
    """The first pair whose encoding differs from tokenizers', described; None if all agree."""
    for (a, b), enc in zip(pairs, ref.encode_batch(pairs, add_special_tokens=add_special_tokens)):
        got = tok.encode_pair(a, b, allowed_special="all", add_special_tokens=add_special_tokens,
                              return_offsets=True, unit="chars")
        fields = [("ids", got.ids, enc.ids), ("type_ids", got.type_ids, enc.type_ids),
                  ("offsets", [tuple(s) for s in got.offsets.tolist()], enc.offsets)]
        if compare_sequence_ids:
            fields.append(("sequence_ids", got.sequence_ids, enc.sequence_ids))
        for name, mine, theirs in fields:
            if mine != theirs:
                k = next((i for i in range(min(len(mine), len(theirs))) if mine[i] != theirs[i]), None)
                return f"({a[:40]!r}, {b[:40]!r}): {name} differ at {k}: {mine[k:k + 3] if k is not None else mine}" \
                       f" vs {theirs[k:k + 3] if k is not None else theirs}"
        assert got.offsets.dtype == np.int64 and got.offsets.shape == (len(got.ids), 2)
    return None


@pytest.fixture(scope="module")
def pairs(offset_texts):  # noqa: F811
    """About 80 pairs of varied texts (every third text with its neighbour: each script, llama.cpp's whitespace
    texts, corpus slices, special tokens), and some with an empty side."""
    texts = offset_texts
    out = [(texts[i], texts[i + 1]) for i in range(0, len(texts) - 1, 6)]
    return out + [("", "x y"), ("x y", ""), ("", ""), (" lead", "trail "), ("[SEP]", "[CLS] [MASK]")]


@pytest.mark.parametrize("add_special_tokens", [True, False])
@pytest.mark.parametrize("name", tj.HF_FILES)
def test_data_files_match_tokenizers(data_dir, pairs, name, add_special_tokens):
    """BERT and bge (TemplateProcessing [CLS] A [SEP] B:1 [SEP]:1), Mistral (<s> A <s>:1 B:1), GPT-2 (ByteLevel:
    the encodings back to back): every field equals tokenizers'."""
    tok, ref = tj.load_pair(tj.hf_path(data_dir, name))
    assert pair_mismatch(tok, ref, pairs, add_special_tokens) is None


def _with_post_processor(data_dir, tmp_path, post, pre_add_prefix_space=False):
    """GPT-2's file with another post-processor, as tokenizers serializes it; loaded by both."""
    ref = hf_tokenizers.Tokenizer.from_file(str(tj.hf_path(data_dir, "gpt2")))
    ref.pre_tokenizer = hf_tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=pre_add_prefix_space)
    ref.post_processor = post
    path = tmp_path / "gpt2-post.json"
    ref.save(str(path))
    return llmkit.Tokenizer.from_file(path), hf_tokenizers.Tokenizer.from_file(str(path))


POST_PROCESSORS = {
    "bert": lambda: processors.BertProcessing(("[SEP]", 3), ("[CLS]", 4)),
    "roberta": lambda: processors.RobertaProcessing(("</s>", 2), ("<s>", 0)),
    "roberta-no-trim": lambda: processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=False),
    "roberta-no-prefix": lambda: processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=False),
    "byte-level-trim": lambda: processors.ByteLevel(trim_offsets=True),
    "template-multi": lambda: processors.TemplateProcessing(
        single="[A] $A [B]", pair="[A] $A:0 [B]:1 [AB]:2 $B:3 [B]:1",
        special_tokens=[("[A]", 10), ("[B]", 11), {"id": "[AB]", "ids": [12, 13], "tokens": ["-", "."]}]),
    "llama3-style": lambda: processors.Sequence([
        processors.ByteLevel(trim_offsets=True),
        processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", 1)])]),
}


@pytest.mark.parametrize("kind", list(POST_PROCESSORS))
def test_post_processors_match_tokenizers(data_dir, tmp_path, pairs, kind):
    """BertProcessing types B 1; RobertaProcessing adds </s></s> between the texts, types every id 0 (with or
    without special tokens) and trims offsets; a template may give several ids per special token and any types;
    a Sequence trims each text's offsets before its template merges them."""
    tok, ref = _with_post_processor(data_dir, tmp_path, POST_PROCESSORS[kind](),
                                    pre_add_prefix_space=kind == "roberta")
    for add in (True, False):  # one load for both: loading GPT-2's file is most of the time
        assert pair_mismatch(tok, ref, pairs[::2], add) is None, f"add_special_tokens={add}"


def test_unusual_templates_match_tokenizers_ids_types_and_offsets(data_dir, tmp_path, pairs):
    """A template that repeats $B and puts it first: ids, types and offsets as tokenizers (whose sequence_ids
    for such a template follow its own bookkeeping, not the text an id came from: llmkit's say the text)."""
    post = processors.TemplateProcessing(single="$A", pair="$B:1 [X]:0 $A:0 $B", special_tokens=[("[X]", 7)])
    tok, ref = _with_post_processor(data_dir, tmp_path, post)
    assert pair_mismatch(tok, ref, pairs[::2], True, compare_sequence_ids=False) is None
    got = tok.encode_pair("a b", "c d", add_special_tokens=True)
    n_a, n_b = len(tok.encode("a b")), len(tok.encode("c d"))
    assert got.sequence_ids == [1] * n_b + [None] + [0] * n_a + [1] * n_b


def test_offsets_index_each_text(data_dir):
    """Each id's span is in its own text: slicing that text with it gives the id's input."""
    tok, _ = tj.load_pair(tj.hf_path(data_dir, "bert-base-uncased"))
    a, b = "Ünïcödé CAFÉ", "中文 don't"
    got = tok.encode_pair(a, b, add_special_tokens=True, return_offsets=True, unit="chars")
    texts = {0: a, 1: b}
    pieces = [texts[s][x:y] if s is not None else None for s, (x, y) in zip(got.sequence_ids, got.offsets.tolist())]
    assert pieces == [None, "Ünïcödé", "CAFÉ", None, "中", "文", "don", "'", "t", None]
    in_bytes = tok.encode_pair(a, b, add_special_tokens=True, return_offsets=True)
    assert in_bytes.offsets[1].tolist() == [0, len("Ünïcödé".encode())]
    assert tok.encode_pair(a, b).offsets is None


@pytest.mark.parametrize("preset,file", [("cl100k_base", "cl100k_base.tiktoken"), ("r50k_base", "r50k_base.tiktoken")])
def test_tiktoken_pairs_are_the_two_encodings(data_dir, preset, file):
    """tiktoken encodings have no post-processor: the pair is the two encodings back to back, typed 0 and 1
    (as tokenizers does without a post-processor), with each text's spans."""
    tok = llmkit.Tokenizer.from_tiktoken(data_dir / "tiktoken" / file, preset)
    a, b = "Hello world 🦙", "<|endoftext|> and more"
    got = tok.encode_pair(a, b, allowed_special="all", add_special_tokens=True, return_offsets=True)
    ids_a, spans_a = tok.encode_with_offsets(a, allowed_special="all")
    ids_b, spans_b = tok.encode_with_offsets(b, allowed_special="all")
    assert got.ids == ids_a + ids_b
    assert got.type_ids == [0] * len(ids_a) + [1] * len(ids_b) == got.sequence_ids
    assert got.offsets.tolist() == spans_a.tolist() + spans_b.tolist()
    with pytest.raises(ValueError, match="text_b: .*endoftext"):
        tok.encode_pair(a, b)


def test_sentencepiece_pairs_equal_the_tokenizer_json_template(data_dir):
    """Mistral's SentencePiece model puts its BOS before each text ("<s> a <s> b", as transformers' Llama
    tokenizers do); the result equals the tokenizer.json's pair template on the same vocabulary, spans included."""
    spm = llmkit.Tokenizer.from_file(data_dir / "sentencepiece" / "mistral" / "tokenizer.model.v1")
    ref = hf_tokenizers.Tokenizer.from_file(str(tj.hf_path(data_dir, "mistral-7b-v0.1")))
    for a, b in [("Hello world", "How are you?"), ("", "x"), ("naïve café 中文", "numbers 12345, done.")]:
        enc = ref.encode(a, b)
        got = spm.encode_pair(a, b, add_special_tokens=True, return_offsets=True, unit="chars")
        assert (got.ids, got.type_ids, got.sequence_ids) == (enc.ids, enc.type_ids, enc.sequence_ids)
        spans = [tuple(s) for s, q in zip(got.offsets.tolist(), got.sequence_ids) if q is not None]
        assert spans == [o for o, q in zip(enc.offsets, enc.sequence_ids) if q is not None]
        plain = spm.encode_pair(a, b)
        assert plain.ids == spm.encode(a) + spm.encode(b) and None not in plain.sequence_ids


def test_gguf_vocabularies_have_pair_templates(data_dir):
    """GGUF vocabularies: BERT's [CLS] a [SEP] b [SEP] (b typed 1); Llama's BOS before each text."""
    vocab = data_dir / "llama.cpp-vocab"
    bert = llmkit.Tokenizer.from_file(vocab / "ggml-vocab-bert-bge.gguf")
    a, b = bert.encode("hi there"), bert.encode("yo")
    cls, sep = bert.token_to_id("[CLS]"), bert.token_to_id("[SEP]")
    got = bert.encode_pair("hi there", "yo", add_special_tokens=True)
    assert got.ids == [cls] + a + [sep] + b + [sep]
    assert got.type_ids == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    llama = llmkit.Tokenizer.from_file(vocab / "ggml-vocab-llama-spm.gguf")
    single_a, single_b = llama.encode("hi there", add_special_tokens=True), llama.encode("yo", add_special_tokens=True)
    got = llama.encode_pair("hi there", "yo", add_special_tokens=True)
    assert got.ids == single_a + single_b and got.ids[0] == got.ids[len(single_a)]
    assert got.type_ids == [0] * len(single_a) + [1] * len(single_b)


def test_errors(data_dir, tmp_path):
    tok, _ = tj.load_pair(tj.hf_path(data_dir, "bert-base-uncased"))
    with pytest.raises(ValueError, match="unit"):
        tok.encode_pair("a", "b", unit="words")
    with pytest.raises(TypeError):
        tok.encode_pair("a", None)
    # A template without a pair entry cannot lay out a pair with special tokens; without them it can.
    spec = json.loads(tj.hf_path(data_dir, "bert-base-uncased").read_text(encoding="utf-8"))
    del spec["post_processor"]["pair"]
    path = tmp_path / "no-pair.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    single_only = llmkit.Tokenizer.from_file(path)
    with pytest.raises(llmkit.LlmkitError, match="no \"pair\""):
        single_only.encode_pair("a", "b", add_special_tokens=True)
    assert single_only.encode_pair("a", "b").ids == tok.encode_pair("a", "b").ids
    # A pair template naming a sequence other than A and B is a format error naming the path.
    spec = json.loads(tj.hf_path(data_dir, "bert-base-uncased").read_text(encoding="utf-8"))
    spec["post_processor"]["pair"][1]["Sequence"]["id"] = "C"
    path.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(llmkit.LlmkitError, match="/post_processor/pair/1/Sequence/id"):
        llmkit.Tokenizer.from_file(path)
    # Lone surrogates become U+FFFD, as in encode.
    assert tok.encode_pair("\ud800", "x").ids == tok.encode_pair("\ufffd", "x").ids


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.mark.parametrize("name", ["bert-base-uncased", "mistral-7b-v0.1", "roberta"])
def test_random_pairs_match_tokenizers(data_dir, tmp_path, name):
    if name == "roberta":
        tok, ref = _with_post_processor(data_dir, tmp_path, POST_PROCESSORS["roberta"](), pre_add_prefix_space=True)
    else:
        tok, ref = tj.load_pair(tj.hf_path(data_dir, name))

    @settings(max_examples=examples(60), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(a=tj._TEXT, b=tj._TEXT, add=st.booleans())
    def check(a, b, add):
        assert pair_mismatch(tok, ref, [(a, b)], add) is None

    check()
