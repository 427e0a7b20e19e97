"""SentencePiece `.model` files through llmkit.Tokenizer.from_file, against the
`sentencepiece` package itself: ids on the corpus slice, the UDHR lines and
llama.cpp's test texts, with and without BOS; Unigram and BPE models trained
here (identity and nmt_nfkc normalization, byte fallback, user-defined
symbols); random Unicode (hypothesis); decode of arbitrary ids; each token's
byte span against sentencepiece's own begin/end (its proto output)."""

import random
from pathlib import Path

import pytest

import llmkit
from budget import examples

spm = pytest.importorskip("sentencepiece")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, HealthCheck, strategies as st  # noqa: E402

MODELS = [
    "sentencepiece/llama2/tokenizer.model",
    "sentencepiece/mistral/tokenizer.model.v1",
    "sentencepiece/mistral/mistral_instruct_tokenizer_240323.model.v3",
    "models/stories260K/tok512.model",
]
SEPARATOR = b"\n__ggml_vocab_test__\n"
_CACHE = {}


def load_pair(path: Path):
    """(llmkit tokenizer, sentencepiece processor) for one model file, cached."""
    key = str(path)
    if key not in _CACHE:
        _CACHE[key] = (llmkit.Tokenizer.from_file(path), spm.SentencePieceProcessor(model_file=str(path)))
    return _CACHE[key]


def ours(tok, text, bos=False):
    return tok.encode(text, disallowed_special=(), add_special_tokens=bos)


def texts_of(data_dir: Path):
    """The mixed slice (whole and by line), every UDHR line, and llama.cpp's test inputs."""
    mixed = (data_dir / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8")
    udhr = (data_dir / "corpus" / "udhr-60lang.txt").read_text(encoding="utf-8").split("\n")
    inp = (data_dir / "llama.cpp-vocab" / "ggml-vocab-llama-spm.gguf.inp").read_bytes().split(SEPARATOR)[:-1]
    return [mixed] + mixed.split("\n") + udhr + [t.decode("utf-8") for t in inp]


@pytest.mark.parametrize("model", MODELS)
def test_ids_equal_sentencepiece(data_dir, model):
    tok, sp = load_pair(data_dir / model)
    assert tok.vocab_size == sp.get_piece_size()
    texts = texts_of(data_dir)
    assert len(texts) > 10000
    mismatches = [t for t in texts if ours(tok, t) != sp.encode(t)]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} texts differ, first: {mismatches[0]!r}"
    # With BOS (add_special_tokens) and with BOS and EOS.
    for t in texts[:2000]:
        with_bos = ours(tok, t, bos=True)
        assert with_bos == sp.encode(t, add_bos=True)
        assert with_bos + [sp.eos_id()] == sp.encode(t, add_bos=True, add_eos=True)


@pytest.mark.parametrize("model", MODELS)
def test_decode_equals_sentencepiece(data_dir, model):
    tok, sp = load_pair(data_dir / model)
    for t in texts_of(data_dir)[:3000]:
        ids = sp.encode(t)
        assert tok.decode(ids) == sp.decode(ids)
    # Arbitrary id sequences: control, unknown and byte pieces (invalid UTF-8 runs) included.
    rnd = random.Random(1234)
    n = sp.get_piece_size()
    low = list(range(min(n, 300)))  # specials and the byte pieces live at the start
    for _ in range(3000):
        ids = [rnd.choice(low) if rnd.random() < 0.6 else rnd.randrange(n) for _ in range(rnd.randrange(0, 12))]
        assert tok.decode(ids) == sp.decode(ids), ids


def test_mixed_slice_llama2_ids_exact(data_dir):
    tok, _ = load_pair(data_dir / MODELS[0])
    text = (data_dir / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8")
    expected = [int(x) for x in (data_dir / "corpus" / "mixed-slice-ids" / "mixed-slice.llama2-spm.ids").read_text().split()]
    assert len(expected) == 52879
    assert ours(tok, text) == expected


def test_pieces_and_specials(data_dir):
    tok, sp = load_pair(data_dir / MODELS[2])  # Mistral v3: control tokens [INST] ...
    for i in list(range(0, 1100)) + list(range(sp.get_piece_size() - 50, sp.get_piece_size())):
        assert tok.id_to_token(i) == sp.id_to_piece(i).encode("utf-8") or tok.id_to_token(i) == sp.id_to_piece(i)
        assert tok.token_to_id(sp.id_to_piece(i)) == i
    assert tok.token_to_id("[INST]") == 3
    # Control pieces are text unless allowed; allowed, they are their id.
    assert ours(tok, "[INST] hi") == sp.encode("[INST] hi")
    assert tok.encode("[INST] hi", allowed_special="all")[0] == 3


TRAIN_CONFIGS = {
    "unigram-identity": dict(model_type="unigram", normalization_rule_name="identity"),
    "unigram-nfkc": dict(model_type="unigram"),  # nmt_nfkc: a precompiled charsmap
    "unigram-nfkc-bytes": dict(model_type="unigram", byte_fallback=True, user_defined_symbols=["<tool>", "@@"]),
    "bpe-nfkc-user": dict(model_type="bpe", user_defined_symbols=["<tool>", "@@"], remove_extra_whitespaces=True),
    "bpe-nodummy": dict(model_type="bpe", add_dummy_prefix=False, normalization_rule_name="identity"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, request):
    """Models trained here on the corpus slice (sentencepiece's trainer), by config name."""
    data = Path(request.getfixturevalue("data_dir"))
    out = tmp_path_factory.mktemp("spm")
    corpus = out / "corpus.txt"
    corpus.write_text((data / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8"), encoding="utf-8")
    models = {}
    for name, cfg in TRAIN_CONFIGS.items():
        prefix = out / name
        spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(prefix), vocab_size=2000,
                                       character_coverage=0.98, num_threads=2, minloglevel=2, **cfg)
        models[name] = prefix.with_suffix(".model")
    return models


@pytest.mark.parametrize("name", list(TRAIN_CONFIGS))
def test_trained_models_equal_sentencepiece(data_dir, trained, name):
    tok, sp = load_pair(trained[name])
    texts = texts_of(data_dir)
    mismatches = [t for t in texts if ours(tok, t) != sp.encode(t)]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} texts differ, first: {mismatches[0]!r}"
    extra = ["a<tool>b @@c", "  two  spaces  ", "\u3000ｆｕｌｌ\u3000width\u2003", "ﬁ ligature ①②", "\t\n\r\x00\x7f"]
    for t in extra:
        assert ours(tok, t) == sp.encode(t), t
    for t in texts[:2000] + extra:
        ids = sp.encode(t)
        assert tok.decode(ids) == sp.decode(ids)


# The 127 KB slice as ONE Unigram text: its path scores pass -100000, where
# sentencepiece's Viterbi subtracts them from every score ahead (and so rounds
# the near-ties after it, e.g. 'im'+'a' against 'i'+'ma', its own way).
@pytest.mark.parametrize("name", ["unigram-identity", "unigram-nfkc", "unigram-nfkc-bytes"])
def test_unigram_whole_slice(data_dir, trained, name):
    tok, sp = load_pair(trained[name])
    text = (data_dir / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8")
    assert ours(tok, text) == sp.encode(text)


# Normalization copies runs of ASCII bytes that begin no rule able to match
# before ASCII; a letter before a combining mark is not such a byte (NFKC
# composes the pair): ids and offsets as sentencepiece's on such mixes.
def test_nfkc_compositions_after_ascii(data_dir, trained):
    texts = ["cafe\u0301 ok", "A\u030angstro\u0308m", "x\u0300y\u0301", "ﬁne ½ and 1\u20442",
             "e\u0301\u0301\u0301", "plain ascii only, then e\u0301", "\u0301leading mark", "ab\u0327c\u0327"]
    for path in (trained["unigram-nfkc"], trained["unigram-identity"], data_dir / MODELS[0]):
        tok, sp = load_pair(path)
        for t in texts:
            assert ours(tok, t) == sp.encode(t), (str(path), t)
            assert ours_spans(tok, t) == reference_spans(sp, t), (str(path), t)


# Exact ties in real arithmetic that float sums break one way or the other:
# a user-defined piece next to an unknown character ("@@" + "@" against
# "@" + "@@", where "@@" scores 0.1 * (2 - 1) since sentencepiece 0.2.2) and
# normal pieces ("b" + "bb" against "bb" + "b") after one; found by the random
# tests below. 3000 short strings of those characters, and two long ones
# that pass the score reset.
def test_unigram_exact_ties(trained):
    import random
    rng = random.Random(5)
    alphabet = "06@xab.,é世"
    texts = ["000000666@@@", "6@@@", "00@@@", ",@@b xébbbébxa", "@0a世.@b66bbb", "é x@@@世 x"]
    texts += ["".join(rng.choice(alphabet + " ") for _ in range(rng.randint(1, 14))) for _ in range(3000)]
    texts += ["".join(rng.choice(alphabet + "bbbb") for _ in range(n)) for n in (20000, 150000)]
    for name in ("unigram-nfkc-bytes", "unigram-nfkc"):
        tok, sp = load_pair(trained[name])
        mismatches = [t for t in texts if ours(tok, t) != sp.encode(t)]
        assert not mismatches, f"{name}: {len(mismatches)} of {len(texts)} differ, first: {mismatches[0][:80]!r}"


# Random Unicode of every category but surrogates (which UTF-8 cannot hold),
# control characters included, and ASCII-heavy mixes that form real pieces.
_text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=60),
    st.text(st.sampled_from(list(" \t\n\u00a0abcdeé世界ﬁ①<>@\x00\u3000")), max_size=60),
)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          derandomize=True)
@given(text=_text)
def test_random_unicode_llama2_and_mistral_v3(data_dir, text):
    for model in (MODELS[0], MODELS[2]):
        tok, sp = load_pair(data_dir / model)
        ids = sp.encode(text)
        assert ours(tok, text) == ids
        assert tok.decode(ids) == sp.decode(ids)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          derandomize=True)
@given(text=_text)
def test_random_unicode_trained(trained, text):
    for name in ("unigram-nfkc", "bpe-nfkc-user", "unigram-nfkc-bytes"):
        tok, sp = load_pair(trained[name])
        ids = sp.encode(text)
        assert ours(tok, text) == ids, name
        assert tok.decode(ids) == sp.decode(ids), name


def test_corrupt_model_file(tmp_path, data_dir):
    raw = (data_dir / MODELS[3]).read_bytes()
    bad = tmp_path / "truncated.model"
    bad.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(llmkit.LlmkitError, match="truncated.model"):
        llmkit.Tokenizer.from_file(bad)


# ---------------------------------------------------------------------------
# Offsets: sentencepiece's SentencePieceText gives each piece's begin/end in
# the input's bytes (return_type="proto", which needs the protobuf package).

def reference_spans(sp, text):
    pieces = sp.encode(text, return_type="proto").pieces
    return [p.id for p in pieces], [[p.begin, p.end] for p in pieces]


def ours_spans(tok, text):
    ids, spans = tok.encode_with_offsets(text, disallowed_special=(), add_special_tokens=False)
    return ids, spans.tolist()


OFFSET_EXTRA = ["  Hello   wörld 🦙 ok\u3000ｶﾞ x", "   ", "", " a  b ", "\u0300x", "ﬁ ½ ㌀ Ⅻ", "a\tb\nc\r\n d  ",
                "a<tool>b @@c", "\x00\x7f\ufffd", "𝔘𝔫𝔦 中文字符 🤖🦙"]


@pytest.mark.parametrize("model", MODELS)
def test_offsets_equal_sentencepiece(data_dir, model):
    tok, sp = load_pair(data_dir / model)
    texts = texts_of(data_dir)[1:4000] + OFFSET_EXTRA
    bad = [t for t in texts if ours_spans(tok, t) != reference_spans(sp, t)]
    assert not bad, f"{len(bad)} of {len(texts)} texts differ, first: {bad[0]!r}"


@pytest.mark.parametrize("name", list(TRAIN_CONFIGS))
def test_offsets_trained_models(data_dir, trained, name):
    tok, sp = load_pair(trained[name])
    texts = texts_of(data_dir)[1:3000] + OFFSET_EXTRA
    bad = [t for t in texts if ours_spans(tok, t) != reference_spans(sp, t)]
    assert not bad, f"{len(bad)} of {len(texts)} texts differ, first: {bad[0]!r}"


def test_offsets_bos_eos_and_specials(data_dir):
    tok, sp = load_pair(data_dir / MODELS[0])  # llama2: add_bos
    text = "Hi <s> there"
    ids, spans = tok.encode_with_offsets(text, add_special_tokens=True)
    assert ids[0] == sp.bos_id() and spans[0].tolist() == [0, 0]
    assert ids[1:] == sp.encode(text) and spans[1:].tolist() == reference_spans(sp, text)[1]
    assert ids == tok.encode(text, add_special_tokens=True)
    ids, spans = tok.encode_with_offsets(text, allowed_special="all", add_special_tokens=False)
    i = ids.index(sp.bos_id())
    assert spans[i].tolist() == [3, 6], "an allowed special token covers its own text"
    # In characters: the byte pieces of 🦙 are empty spans at 0 but the last, which covers the emoji.
    ids, chars = tok.encode_with_offsets("🦙x", unit="chars")
    ref_ids, ref_bytes = reference_spans(sp, "🦙x")
    to_char = {0: 0, 4: 1, 5: 2}  # byte offset -> character offset in "🦙x"
    assert ids == ref_ids and chars.tolist() == [[to_char[b], to_char[e]] for b, e in ref_bytes]
    assert [tok.id_to_token(i) for i, (b, e) in zip(ids, chars.tolist()) if b == e][-3:] == ["<0xF0>", "<0x9F>",
                                                                                              "<0xA6>"]


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          derandomize=True)
@given(text=_text)
def test_random_unicode_offsets(data_dir, trained, text):
    for tok, sp in (load_pair(data_dir / MODELS[0]), load_pair(trained["unigram-nfkc"]),
                    load_pair(trained["bpe-nfkc-user"]), load_pair(trained["unigram-nfkc-bytes"])):
        assert ours_spans(tok, text) == reference_spans(sp, text)
