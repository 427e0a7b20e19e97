"""llmkit.Tokenizer.from_file on Hugging Face tokenizer.json files, against the `tokenizers` package.

Every expected id and decoded string comes from `tokenizers.Tokenizer.from_file` on the same file,
computed here: the four real files of the data folder on the corpora (mixed slice, UDHR lines,
llama.cpp's 46 vocab-test texts), with and without special tokens; hypothesis on random Unicode;
tokenizer.json files that `tokenizers` itself builds and trains in the set-up, to reach the
components the real files do not use (Unigram, WordLevel, Split behaviours, Digits, Punctuation,
NFKC, Nmt, SentencePiece's Precompiled table as T5 has it, Strip/Replace/Prepend, BPE suffixes,
added-token flags, Bert/Roberta processors, decoders).
"""

import json
import threading
from pathlib import Path

import pytest

import llmkit
from budget import SANITIZED, examples, thinned

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import Tokenizer as HFTokenizer  # noqa: E402
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

HF_FILES = ["gpt2", "bert-base-uncased", "bge-large-zh-v1.5", "mistral-7b-v0.1"]
SEPARATOR = "\n__ggml_vocab_test__\n"
_CACHE = {}


def hf_path(data_dir: Path, name: str) -> Path:
    return data_dir / "hf-tokenizers" / name / "tokenizer.json"


def load_pair(path: Path):
    """(llmkit tokenizer, tokenizers tokenizer) for one file, cached."""
    key = str(path)
    if key not in _CACHE:
        _CACHE[key] = (llmkit.Tokenizer.from_file(path), HFTokenizer.from_file(key))
    return _CACHE[key]


def vocab_texts(data_dir: Path):
    raw = (data_dir / "llama.cpp-vocab" / "ggml-vocab-bert-bge.gguf.inp").read_text(encoding="utf-8")
    texts = raw.split(SEPARATOR)
    assert texts[-1] == "" and len(texts) == 47
    return texts[:-1]


@pytest.fixture(scope="module")
def corpus(data_dir):
    """The mixed slice (one text), every UDHR line, and the 46 llama.cpp vocab-test texts."""
    texts = [(data_dir / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8")]
    texts += thinned((data_dir / "corpus" / "udhr-60lang.txt").read_text(encoding="utf-8").split("\n"), 4)
    texts += vocab_texts(data_dir)
    return texts


def hf_ids(ref, texts, add_special_tokens):
    return [e.ids for e in ref.encode_batch(texts, add_special_tokens=add_special_tokens)]


def first_mismatch(texts, got, expected):
    for t, g, e in zip(texts, got, expected):
        if g != e:
            k = next((i for i in range(min(len(g), len(e))) if g[i] != e[i]), min(len(g), len(e)))
            return f"text {t[:60]!r}: first difference at id {k}: got {g[max(0, k - 2):k + 4]}, expected {e[max(0, k - 2):k + 4]}"
    return None


# ---------------------------------------------------------------------------
# The real files on the corpora.

@pytest.mark.parametrize("add_special_tokens", [False, True])
@pytest.mark.parametrize("name", HF_FILES)
def test_corpus_ids_match_tokenizers(data_dir, corpus, name, add_special_tokens):
    tok, ref = load_pair(hf_path(data_dir, name))
    expected = hf_ids(ref, corpus, add_special_tokens)
    got = tok.encode_batch(corpus, allowed_special="all", add_special_tokens=add_special_tokens)
    assert len(got) == len(corpus) > (3000 if SANITIZED else 13000)
    assert got == expected, first_mismatch(corpus, got, expected)
    # One text at a time gives the same as the batch.
    for text, ids in zip(corpus[:200], expected[:200]):
        assert tok.encode(text, allowed_special="all", add_special_tokens=add_special_tokens) == ids


def test_bert_matches_llama_cpp_bge_vectors(data_dir):
    """bert-base-uncased's tokenizer.json against ggml-vocab-bert-bge.gguf.out (MANIFEST: 46/46)."""
    texts = vocab_texts(data_dir)
    lines = (data_dir / "llama.cpp-vocab" / "ggml-vocab-bert-bge.gguf.out").read_text().split("\n")[:-1]
    expected = [[int(x) for x in line.split()] for line in lines]
    tok, _ = load_pair(hf_path(data_dir, "bert-base-uncased"))
    got = [tok.encode(t, disallowed_special=()) for t in texts]
    assert len(got) == 46
    assert sum(g == e for g, e in zip(got, expected)) == 46, first_mismatch(texts, got, expected)


@pytest.mark.parametrize("name", HF_FILES)
def test_decode_matches_tokenizers(data_dir, corpus, name):
    tok, ref = load_pair(hf_path(data_dir, name))
    texts = corpus[1:400] + corpus[-46:]
    for text in texts:
        ids = ref.encode(text, add_special_tokens=True).ids
        assert tok.decode(ids) == ref.decode(ids, skip_special_tokens=False), text
        assert tok.decode(ids, skip_special_tokens=True) == ref.decode(ids, skip_special_tokens=True), text


@pytest.mark.parametrize("name", HF_FILES)
def test_vocabulary_faces(data_dir, name):
    tok, ref = load_pair(hf_path(data_dir, name))
    assert tok.vocab_size == ref.get_vocab_size(with_added_tokens=True)
    vocab = ref.get_vocab(with_added_tokens=True)
    for token, i in list(vocab.items())[::97]:
        assert tok.token_to_id(token) == i
        assert tok.id_to_token(i) == token
    specials = {t.content: i for i, t in ref.get_added_tokens_decoder().items() if t.special}
    assert tok.special_tokens == specials
    assert tok.token_to_id("no such token \u2603\u2603") is None
    with pytest.raises(ValueError):
        tok.id_to_token(tok.vocab_size)


def test_special_token_rules(data_dir):
    tok, ref = load_pair(hf_path(data_dir, "bert-base-uncased"))
    text = "hello [SEP] world"
    with pytest.raises(ValueError, match=r"\[SEP\]"):
        tok.encode(text)  # not allowed: an error, as for tiktoken encodings
    assert tok.encode(text, allowed_special={"[SEP]"}) == ref.encode(text, add_special_tokens=False).ids
    # As text: the special token goes through the normalizer and model (tokenizers' split_special_tokens).
    ref_split = HFTokenizer.from_file(str(hf_path(data_dir, "bert-base-uncased")))
    ref_split.encode_special_tokens = True
    assert tok.encode(text, disallowed_special=()) == ref_split.encode(text, add_special_tokens=False).ids
    with pytest.raises(ValueError, match="not a special token"):
        tok.encode(text, allowed_special={"[NOPE]"})
    assert tok.encode("hi", add_special_tokens=True) == ref.encode("hi", add_special_tokens=True).ids


def test_threads_share_one_tokenizer(data_dir, corpus):
    tok, ref = load_pair(hf_path(data_dir, "mistral-7b-v0.1"))
    texts = corpus[1:600]
    expected = hf_ids(ref, texts, True)
    errors = []

    def work(offset):
        for i in range(offset, len(texts), 4):
            if tok.encode(texts[i], allowed_special="all", add_special_tokens=True) != expected[i]:
                errors.append(i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert tok.encode_batch(texts, num_threads=4, allowed_special="all", add_special_tokens=True) == expected


# ---------------------------------------------------------------------------
# Errors.

def test_file_errors(tmp_path, data_dir):
    def write(name, content):
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return p

    with pytest.raises(llmkit.LlmkitError, match="invalid JSON") as e:
        llmkit.Tokenizer.from_file(write("trunc.json", hf_path(data_dir, "gpt2").read_bytes()[:5000]))
    assert e.value.status == "LLMKIT_ERROR_FORMAT"
    with pytest.raises(llmkit.LlmkitError, match=r"/model/vocab/a") as e:
        llmkit.Tokenizer.from_file(write("type.json", '{"model": {"type": "WordPiece", "vocab": {"a": "x"}}}'))
    assert e.value.status == "LLMKIT_ERROR_FORMAT"
    with pytest.raises(llmkit.LlmkitError, match='"WordSegmenter"') as e:
        llmkit.Tokenizer.from_file(write("unk.json", json.dumps({
            "pre_tokenizer": {"type": "WordSegmenter"},
            "model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}})))
    assert e.value.status == "LLMKIT_ERROR_UNSUPPORTED"
    for charsmap in ("", "not base64!", "AAAA"):  # empty, not base64, a trie that does not fit
        with pytest.raises(llmkit.LlmkitError, match="/normalizer/precompiled_charsmap") as e:
            llmkit.Tokenizer.from_file(write("pc.json", json.dumps({
                "normalizer": {"type": "Precompiled", "precompiled_charsmap": charsmap},
                "model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}})))
        assert e.value.status == "LLMKIT_ERROR_FORMAT"
    with pytest.raises(llmkit.LlmkitError, match="outside") as e:
        llmkit.Tokenizer.from_file(write("range.json", '{"model": {"type": "WordPiece", "vocab": {"[UNK]": 99999999}}}'))
    with pytest.raises(llmkit.LlmkitError, match="/post_processor"):
        llmkit.Tokenizer.from_file(write("post.json", json.dumps({
            "model": {"type": "WordPiece", "vocab": {"[UNK]": 0}},
            "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 5], "cls": ["[CLS]", 0]}})))
    with pytest.raises(llmkit.LlmkitError, match="not a tokenizer file"):
        llmkit.Tokenizer.from_file(write("junk.bin", b"\x01\x02junk"))
    with pytest.raises(ValueError, match="tiktoken rank file"):
        llmkit.Tokenizer.from_file(data_dir / "tiktoken" / "r50k_base.tiktoken")
    with pytest.raises(llmkit.LlmkitError) as e:
        llmkit.Tokenizer.from_file(tmp_path / "missing.json")
    assert e.value.status == "LLMKIT_ERROR_IO"


def test_from_file_detects_tiktoken(data_dir):
    a = llmkit.Tokenizer.from_file(data_dir / "tiktoken" / "cl100k_base.tiktoken", "cl100k_base")
    b = llmkit.Tokenizer.from_tiktoken(data_dir / "tiktoken" / "cl100k_base.tiktoken", "cl100k_base")
    text = "Hello world, 12345 \u00e9\u00e9"
    assert a.encode(text) == b.encode(text)
    assert isinstance(a.id_to_token(9906), bytes)


# ---------------------------------------------------------------------------
# Components the real files do not use: tokenizer.json files that `tokenizers`
# builds and trains here, compared on corpus lines.

def _train_lines(data_dir):
    """Latin-script UDHR lines: a small alphabet, so every other script is unknown to the models."""
    lines = (data_dir / "corpus" / "udhr-60lang.txt").read_text(encoding="utf-8").split("\n")
    return thinned([line for line in lines[::2] if all(ord(c) < 0x250 for c in line)], 2)


def _unigram(lines):
    t = HFTokenizer(models.Unigram())
    t.normalizer = normalizers.NFKC()
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    t.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    t.train_from_iterator(lines, trainers.UnigramTrainer(vocab_size=700, unk_token="<unk>",
                                                         special_tokens=["<unk>", "<s>", "</s>"]))
    t.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    return t


def _unigram_byte_fallback(lines):
    t = HFTokenizer(models.Unigram())
    t.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=False)
    t.train_from_iterator(lines[:300], trainers.UnigramTrainer(vocab_size=400, unk_token="<unk>",
                                                               special_tokens=["<unk>"]))
    spec = json.loads(t.to_str())
    vocab = spec["model"]["vocab"]
    have = {p for p, _ in vocab}
    vocab += [[f"<0x{b:02X}>", -20.0] for b in range(256) if f"<0x{b:02X}>" not in have]
    spec["model"]["byte_fallback"] = True
    spec["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    return HFTokenizer.from_str(json.dumps(spec))


def _bpe_suffix(lines):
    t = HFTokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    t.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase(),
                                         normalizers.Replace(tokenizers.Regex(r"\s+"), " "), normalizers.Strip()])
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.decoder = decoders.BPEDecoder(suffix="</w>")
    t.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=900, special_tokens=["[UNK]", "[CLS]", "[SEP]"],
                                                     continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    t.post_processor = processors.BertProcessing(("[SEP]", 2), ("[CLS]", 1))
    return t


def _wordpiece(lines):
    t = HFTokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=12))
    t.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.Prepend("_"),
                                         normalizers.Replace("a", "A")])
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                               pre_tokenizers.Digits(individual_digits=True),
                                               pre_tokenizers.Punctuation(behavior="contiguous")])
    t.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    t.train_from_iterator(lines, trainers.WordPieceTrainer(vocab_size=800, special_tokens=["[UNK]", "<s>", "</s>"]))
    t.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 1))
    return t


def _byte_level_split(behavior, invert):
    def make(lines):
        t = HFTokenizer(models.BPE())
        t.normalizer = normalizers.NFC()
        t.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(pattern=tokenizers.Regex(r"\p{N}{1,3}|[.,;:!?]"), behavior=behavior, invert=invert),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
        t.decoder = decoders.ByteLevel()
        t.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                         special_tokens=["<|end|>"]))
        t.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False),
                                                processors.TemplateProcessing(single="$A <|end|>",
                                                                              special_tokens=[("<|end|>", 0)])])
        t.add_tokens([tokenizers.AddedToken(" the", lstrip=False, rstrip=True),
                      tokenizers.AddedToken("and", single_word=True),
                      tokenizers.AddedToken("RIGHTS", normalized=False, lstrip=True),
                      tokenizers.AddedToken("\u00e9t\u00e9", normalized=True)])
        t.add_special_tokens([tokenizers.AddedToken("<mask>", lstrip=True, rstrip=True)])
        return t
    return make


def _wordlevel(lines):
    t = HFTokenizer(models.WordLevel(unk_token="[UNK]"))
    t.normalizer = normalizers.Sequence([normalizers.Nmt(), normalizers.Lowercase()])
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.train_from_iterator(lines, trainers.WordLevelTrainer(vocab_size=1500, special_tokens=["[UNK]", "[CLS]"]))
    t.post_processor = processors.TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", 1)])
    return t


def _proto_fields(buf):
    """(field number, bytes or None) of one protobuf message, enough to walk a SentencePiece .model."""
    def varint(i):
        n = shift = 0
        while True:
            b = buf[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return n, i
    i = 0
    while i < len(buf):
        key, i = varint(i)
        wire = key & 7
        if wire == 0:
            _, i = varint(i)
            yield key >> 3, None
        elif wire == 2:
            n, i = varint(i)
            yield key >> 3, buf[i:i + n]
            i += n
        else:
            i += 4 if wire == 5 else 8
            yield key >> 3, None


_CHARSMAP = {}


def nmt_nfkc_charsmap(lines):
    """SentencePiece's compiled nmt_nfkc rules, from a model its trainer writes (ModelProto.normalizer_spec = 3,
    NormalizerSpec.precompiled_charsmap = 2): the table T5/ALBERT/XLM-R tokenizer.json files carry."""
    if not _CHARSMAP:
        spm = pytest.importorskip("sentencepiece")
        import io
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines[:400]), model_writer=model, vocab_size=300,
                                       normalization_rule_name="nmt_nfkc", minloglevel=2)
        spec = next(v for f, v in _proto_fields(model.getvalue()) if f == 3)
        _CHARSMAP["nmt_nfkc"] = next(v for f, v in _proto_fields(spec) if f == 2)
    return _CHARSMAP["nmt_nfkc"]


def _unigram_precompiled(lines):
    """The shape of T5's tokenizer.json: Precompiled + collapsed spaces, Metaspace, Unigram."""
    t = HFTokenizer(models.Unigram())
    t.normalizer = normalizers.Sequence([normalizers.Precompiled(nmt_nfkc_charsmap(lines)),
                                         normalizers.Replace(tokenizers.Regex(" {2,}"), " ")])
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    t.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    t.train_from_iterator(lines, trainers.UnigramTrainer(vocab_size=600, unk_token="<unk>",
                                                         special_tokens=["<pad>", "</s>", "<unk>"]))
    t.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return t


SYNTHETIC = {
    "wordlevel-nmt-whitespace": _wordlevel,
    "unigram-precompiled-t5": _unigram_precompiled,
    "unigram-nfkc-metaspace": _unigram,
    "unigram-byte-fallback": _unigram_byte_fallback,
    "bpe-suffix-whitespace": _bpe_suffix,
    "wordpiece-digits-punct": _wordpiece,
    **{f"bytelevel-split-{b}{'-inv' if inv else ''}": _byte_level_split(b, inv)
       for b, inv in [("removed", False), ("isolated", False), ("merged_with_previous", False),
                      ("merged_with_next", False), ("contiguous", False), ("removed", True),
                      ("merged_with_next", True)]},
}

EXTRA_TEXTS = ["", " ", "  the the  ", "and band and_x é été ÉTÉ", "RIGHTS  rights <mask> x<mask>y",
               "12345 a.b,,c!! ??", "\u00bd \ufb01 \u2460 \u3000x", "\U0001F600 smile", "ⅷ \u0130stanbul"]


@pytest.mark.parametrize("kind", list(SYNTHETIC))
def test_components_match_tokenizers(tmp_path, data_dir, kind):
    lines = _train_lines(data_dir)
    path = tmp_path / f"{kind}.json"
    SYNTHETIC[kind](lines).save(str(path))
    tok, ref = llmkit.Tokenizer.from_file(path), HFTokenizer.from_file(str(path))
    texts = thinned((data_dir / "corpus" / "udhr-60lang.txt").read_text(encoding="utf-8").split("\n")[1::7], 3)
    texts += EXTRA_TEXTS + vocab_texts(data_dir)
    for add in (False, True):
        expected = hf_ids(ref, texts, add)
        got = tok.encode_batch(texts, allowed_special="all", add_special_tokens=add)
        # Exact for the Unigram kinds too: HF's trainer makes near-tied segmentations, and llmkit reads the
        # scores with serde_json's rounding as tokenizers does (test_tokenizer_unigram_scores.py).
        assert got == expected, first_mismatch(texts, got, expected)
    for text, ids in zip(texts, expected):
        assert tok.decode(ids) == ref.decode(ids, skip_special_tokens=False), text


def _byte_identity(normalizer):
    """A tokenizer whose ids are the bytes of the normalized text (byte-level alphabet, no merges)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet(), key=lambda c: c.encode())
    t = HFTokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    t.normalizer = normalizer
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    return t


@pytest.mark.parametrize("kind", ["Nmt", "Precompiled"])
def test_normalizer_on_every_code_point(tmp_path, data_dir, kind):
    """Nmt and SentencePiece's nmt_nfkc table over every Unicode scalar value, in runs of 512, against tokenizers."""
    norm = normalizers.Nmt() if kind == "Nmt" else normalizers.Precompiled(nmt_nfkc_charsmap(_train_lines(data_dir)))
    path = tmp_path / "t.json"
    _byte_identity(norm).save(str(path))
    tok, ref = llmkit.Tokenizer.from_file(path), HFTokenizer.from_file(str(path))
    chars = [chr(c) for c in range(1, 0x110000) if not 0xD800 <= c < 0xE000]
    texts = thinned(["".join(chars[i:i + 512]) for i in range(0, len(chars), 512)], 4)
    texts += ["\x00a\u00a0", "\uff76\uff9e", "e\u0301\u0301", "\u1100\u1161\u11a8"]  # NUL, a 2-char rule, marks
    expected = hf_ids(ref, texts, False)
    got = tok.encode_batch(texts)
    assert all(g == e for g, e in zip(got, expected)), first_mismatch(texts, got, expected)


def test_wordlevel_without_unk_fails_on_unknown_words(tmp_path):
    path = tmp_path / "wl.json"
    t = HFTokenizer(models.WordLevel(vocab={"a": 0, "b": 1}, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    t.save(str(path))
    tok = llmkit.Tokenizer.from_file(path)
    assert tok.encode("a b a") == t.encode("a b a").ids == [0, 1, 0]
    with pytest.raises(Exception):
        t.encode("a c")
    with pytest.raises(ValueError, match=r'"c" is not in the vocab and the unk_token "\[UNK\]"'):
        tok.encode("a c")


def test_bpe_whose_unk_is_missing_fails_on_unknown_characters(tmp_path):
    """tokenizers loads a BPE file whose unk_token is not in its vocab and fails only on a text that needs it."""
    path = tmp_path / "bpe.json"
    t = HFTokenizer(models.BPE(vocab={"a": 0, "b": 1, "ab": 2}, merges=[("a", "b")], unk_token="<unk>"))
    t.save(str(path))
    tok = llmkit.Tokenizer.from_file(path)
    assert tok.encode("abab") == t.encode("abab").ids == [2, 2]
    with pytest.raises(Exception):
        t.encode("abc")
    with pytest.raises(ValueError, match=r'BPE: "c" is not in the vocab and the unk_token "<unk>"'):
        tok.encode("abc")


# ---------------------------------------------------------------------------
# Property tests: random Unicode text, random ids.

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.lists(
    st.sampled_from(["the", " ", "  ", "\n", "\t", "'s", "don't", "[CLS]", "<s>", "</s>", "<|endoftext|>", "<unk>",
                     "12", "3.14", "caf\u00e9", "\u00c9T\u00c9", "\u4e2d\u6587", "\U0001F600", "\u0301", "\u00a0",
                     "##", "\u2581", "<0x41>", "\ufffd"]), max_size=12).map("".join)


@pytest.mark.parametrize("name", HF_FILES)
def test_random_text_matches_tokenizers(data_dir, name):
    tok, ref = load_pair(hf_path(data_dir, name))

    @settings(max_examples=examples(250), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(text=_TEXT, add=st.booleans())
    def check(text, add):
        assert tok.encode(text, allowed_special="all", add_special_tokens=add) == \
            ref.encode(text, add_special_tokens=add).ids

    check()


@pytest.mark.parametrize("name", HF_FILES)
def test_random_ids_decode_like_tokenizers(data_dir, name):
    tok, ref = load_pair(hf_path(data_dir, name))
    n = tok.vocab_size

    @settings(max_examples=examples(200), deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(ids=st.lists(st.integers(0, n - 1) | st.integers(0, 300), max_size=16))
    def check(ids):
        assert tok.decode(ids) == ref.decode(ids, skip_special_tokens=False)

    check()
