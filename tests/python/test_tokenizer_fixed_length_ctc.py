"""tokenizer.json components for chunked and speech models, against Hugging Face tokenizers: the FixedLength
pre-tokenizer (pieces of n characters; ids and offsets) and the CTC decoder (wav2vec2: repeats collapse, the
blank disappears, the word delimiter becomes a space)."""

import random

import pytest

import llmkit
import test_tokenizer_json as tj  # same folder: its loaders
from test_tokenizer_offsets import byte_offsets, offset_texts  # noqa: F401  (helper and fixture)

hf_tokenizers = tj.tokenizers
pre_tokenizers, decoders = hf_tokenizers.pre_tokenizers, hf_tokenizers.decoders


def _bert_with(data_dir, tmp_path, pre_tokenizer=None, decoder=None):
    ref = hf_tokenizers.Tokenizer.from_file(str(tj.hf_path(data_dir, "bert-base-uncased")))
    if pre_tokenizer is not None:
        ref.pre_tokenizer = pre_tokenizer
    if decoder is not None:
        ref.decoder = decoder
    path = tmp_path / "bert-variant.json"
    ref.save(str(path))
    return llmkit.Tokenizer.from_file(path), hf_tokenizers.Tokenizer.from_file(str(path))


@pytest.mark.parametrize("make", [lambda: pre_tokenizers.FixedLength(length=1), lambda: pre_tokenizers.FixedLength(),
                                  lambda: pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                                   pre_tokenizers.FixedLength(length=3)])],
                         ids=["length-1", "length-5", "whitespace-then-3"])
def test_fixed_length_matches_tokenizers(data_dir, tmp_path, offset_texts, make):  # noqa: F811
    tok, ref = _bert_with(data_dir, tmp_path, pre_tokenizer=make())
    texts = offset_texts[::6] + ["", "a", "abcde", "abcdef", "中文字符串很长", "🦙🦙🦙🦙🦙🦙 x"]
    for text, enc in zip(texts, ref.encode_batch(texts)):
        ids, spans = tok.encode_with_offsets(text, allowed_special="all", add_special_tokens=True)
        assert ids == enc.ids, text[:60]
        assert [tuple(s) for s in spans.tolist()] == byte_offsets(text, enc.offsets), text[:60]


@pytest.mark.parametrize("kwargs", [dict(), dict(cleanup=False), dict(pad_token="[PAD]", word_delimiter_token="#"),
                                    dict(pad_token="[UNK]", word_delimiter_token="the")],
                         ids=["defaults", "no-cleanup", "bert-pad-hash", "word-delimiter-is-a-word"])
def test_ctc_decoder_matches_tokenizers(data_dir, tmp_path, kwargs):
    tok, ref = _bert_with(data_dir, tmp_path, decoder=decoders.CTC(**kwargs))
    # Ids with runs (CTC repeats), pads, delimiters and punctuation that cleanup touches.
    pool = [ref.token_to_id(t) for t in ["[PAD]", "[UNK]", "the", "cat", "#", "|", ".", ",", "'", "s", "n", "##t",
                                         "do", "not", "?", "a", "##b", "[CLS]", "[SEP]", "!"]]
    rng = random.Random(5)
    for _ in range(150):
        ids = []
        for _ in range(rng.randrange(0, 25)):
            ids += [rng.choice(pool)] * rng.choice([1, 1, 2, 3])
        assert tok.decode(ids) == ref.decode(ids, skip_special_tokens=False), ids


def test_bad_values_are_format_errors(data_dir, tmp_path):
    import json

    spec = json.loads(tj.hf_path(data_dir, "bert-base-uncased").read_text(encoding="utf-8"))
    spec["pre_tokenizer"] = {"type": "FixedLength", "length": 0}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(llmkit.LlmkitError, match="/pre_tokenizer/length: must be at least 1"):
        llmkit.Tokenizer.from_file(path)
    spec["pre_tokenizer"] = None
    spec["decoder"] = {"type": "CTC", "pad_token": 7}
    path.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(llmkit.LlmkitError, match="/decoder/pad_token"):
        llmkit.Tokenizer.from_file(path)
