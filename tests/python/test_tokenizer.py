"""llmkit.Tokenizer: byte-level BPE against llama.cpp's vectors, the mixed-slice ids and (when it is
installed) tiktoken itself; special-token rules; batch encoding; decoding; errors; stubs."""

import ast
import inspect
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import llmkit
from llmkit import _llmkit
from budget import examples, thinned

# preset -> (rank file under tiktoken/, llama.cpp vector file, expected count, mixed-slice ids name)
PRESETS = {
    "r50k_base": ("r50k_base.tiktoken", "ggml-vocab-gpt-2.gguf", 46, "gpt2"),
    "p50k_base": ("p50k_base.tiktoken", None, 0, None),
    "cl100k_base": ("cl100k_base.tiktoken", "dbrx-pr/ggml-vocab-dbrx.gguf", 43, "cl100k"),
    "o200k_base": ("o200k_base.tiktoken", None, 0, "o200k"),
    "llama3": ("llama3/tokenizer.model", "ggml-vocab-llama-bpe.gguf", 46, "llama3"),
    "qwen2": ("qwen/qwen.tiktoken", "ggml-vocab-qwen2.gguf", 46, "qwen2"),
}
SEPARATOR = b"\n__ggml_vocab_test__\n"
_CACHE = {}


def load(data_dir, preset):
    if preset not in _CACHE:
        _CACHE[preset] = llmkit.Tokenizer.from_tiktoken(data_dir / "tiktoken" / PRESETS[preset][0], preset)
    return _CACHE[preset]


def read_vectors(base: Path):
    """llama.cpp's .inp/.out pair: texts split on the separator, one line of ids per text."""
    raw = base.with_name(base.name + ".inp").read_bytes()
    texts = raw.split(SEPARATOR)
    assert texts[-1] == b""  # the file ends with a separator
    texts = [t.decode("utf-8") for t in texts[:-1]]
    lines = base.with_name(base.name + ".out").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    ids = [[int(x) for x in line.strip().split(" ")] if line.strip() else [] for line in lines[:-1]]
    assert len(ids) == len(texts)
    return texts, ids


def read_ids(path: Path):
    return [int(x) for x in path.read_text().split()]


# ---------------------------------------------------------------------------
# Reference vectors.

@pytest.mark.parametrize("preset", [p for p, v in PRESETS.items() if v[1]])
def test_llama_cpp_vectors(data_dir, preset):
    _, vectors, count, _ = PRESETS[preset]
    texts, expected = read_vectors(data_dir / "llama.cpp-vocab" / vectors)
    assert len(texts) == count
    tok = load(data_dir, preset)
    got = [tok.encode(t, disallowed_special=()) for t in texts]  # llama.cpp: parse_special = false
    failures = [(t, g, e) for t, g, e in zip(texts, got, expected) if g != e]
    assert not failures, f"{len(failures)}/{count} differ, first: {failures[0]}"
    assert tok.encode_batch(texts, disallowed_special=()) == expected
    assert [tok.decode(e) for e in expected] == texts


@pytest.mark.parametrize("preset", [p for p, v in PRESETS.items() if v[3]])
def test_mixed_slice_ids(data_dir, preset):
    text = (data_dir / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8")
    expected = read_ids(data_dir / "corpus" / "mixed-slice-ids" / f"mixed-slice.{PRESETS[preset][3]}.ids")
    tok = load(data_dir, preset)
    ids = tok.encode(text, disallowed_special=())
    assert len(ids) == len(expected)
    assert ids == expected
    assert tok.decode(ids, errors="strict") == text


def test_tiktoken_repo_vectors(data_dir):
    r50k, p50k, cl100k = (load(data_dir, p) for p in ("r50k_base", "p50k_base", "cl100k_base"))
    assert r50k.encode("hello world") == [31373, 995]
    assert p50k.encode("hello world") == [31373, 995]
    assert cl100k.encode("hello world") == [15339, 1917]
    assert cl100k.encode(" \x850") == [220, 126, 227, 15]
    assert r50k.encode("hello <|endoftext|>", allowed_special="all") == [31373, 220, 50256]
    assert cl100k.encode("👍") == [9468, 239, 235]
    assert cl100k.decode([9468]) == "\ufffd"  # a cut inside a character: errors="replace"


@pytest.mark.parametrize("preset,size,specials", [
    ("r50k_base", 50257, {"<|endoftext|>": 50256}),
    ("p50k_base", 50281, {"<|endoftext|>": 50256}),
    ("cl100k_base", 100277, {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                             "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}),
    ("o200k_base", 200019, {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}),
])
def test_vocab_and_special_tokens(data_dir, preset, size, specials):
    tok = load(data_dir, preset)
    assert tok.vocab_size == tok.n_vocab == size
    assert tok.special_tokens == specials
    assert tok.special_tokens_set == frozenset(specials)
    assert tok.name == preset
    assert preset in repr(tok)
    for text, i in specials.items():
        assert tok.token_to_id(text) == i
        assert tok.token_to_id(text.encode()) == i
        assert tok.id_to_token(i) == text.encode()


def test_llama3_specials(data_dir):
    tok = load(data_dir, "llama3")
    sp = tok.special_tokens
    assert len(sp) == 256 and sp["<|begin_of_text|>"] == 128000 and sp["<|eot_id|>"] == 128009
    assert tok.encode("<|begin_of_text|>hi", allowed_special={"<|begin_of_text|>"})[0] == 128000


# ---------------------------------------------------------------------------
# Lookups and decoding.

def test_token_lookups(data_dir):
    tok = load(data_dir, "cl100k_base")
    assert tok.token_to_id(b" world") == 1917
    assert tok.token_to_id(" world") == 1917
    assert tok.token_to_id(bytearray(b"hello")) == 15339
    assert tok.token_to_id("no such token ~~~~~~~~") is None
    assert tok.token_to_id(b"") is None
    assert tok.id_to_token(1917) == b" world"
    assert tok.id_to_token(np.int64(15339)) == b"hello"
    assert tok.id_to_token(126) == bytes([0xC2])  # a lone lead byte (" \x850" -> 220, 126, 227, 15)
    for i in range(256):  # every single byte is a token
        assert tok.id_to_token(tok.token_to_id(bytes([i]))) == bytes([i])
    with pytest.raises(TypeError):
        tok.token_to_id(17)


def test_decode_forms(data_dir):
    tok = load(data_dir, "cl100k_base")
    ids = tok.encode("héllo wörld ✓")
    assert tok.decode(ids) == "héllo wörld ✓"
    assert tok.decode(tuple(ids)) == tok.decode(np.array(ids, dtype=np.int64)) == tok.decode(np.array(ids, np.int32))
    assert tok.decode_bytes(ids) == "héllo wörld ✓".encode()
    assert tok.decode([]) == "" and tok.decode_bytes([]) == b""
    # a cut inside a multi-byte character: replace (default, as tiktoken), strict, or the raw bytes
    emoji = tok.encode("👍")
    assert tok.decode(emoji[:1]) == "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        tok.decode(emoji[:1], errors="strict")
    assert tok.decode_bytes(emoji[:1]) + tok.decode_bytes(emoji[1:]) == "👍".encode()
    assert tok.decode(emoji[:1], errors="surrogateescape").encode("utf-8", "surrogateescape") == \
        tok.decode_bytes(emoji[:1])


def test_round_trip_udhr(data_dir):
    """Every one of the 60 languages (scripts from Latin to Tibetan) decodes back to itself."""
    text = (data_dir / "corpus" / "udhr-60lang.txt").read_text(encoding="utf-8")
    parts = text.split("=== udhr2/")[1:]
    assert len(parts) == 60
    for preset in ("r50k_base", "cl100k_base", "o200k_base"):
        tok = load(data_dir, preset)
        batch = tok.encode_batch(parts, num_threads=2)
        assert [tok.decode(ids, errors="strict") for ids in batch] == parts, preset
        assert sum(batch, []) != [] and batch[0] == tok.encode(parts[0])


def test_surrogates_become_replacement_characters(data_dir):
    tok = load(data_dir, "cl100k_base")
    assert tok.encode("a\ud800b") == tok.encode("a\ufffdb")
    assert tok.encode_batch(["ok", "a\udc00"]) == [tok.encode("ok"), tok.encode("a\ufffd")]


# ---------------------------------------------------------------------------
# Special tokens: tiktoken's allowed_special / disallowed_special.

def test_special_token_rules(data_dir):
    tok = load(data_dir, "cl100k_base")
    text = "a<|endoftext|>b<|fim_prefix|>"
    with pytest.raises(ValueError, match=r"<\|endoftext\|>") as e:
        tok.encode(text)  # disallowed_special="all" by default
    assert e.value.status == "LLMKIT_ERROR_INVALID_ARGUMENT"
    assert str(e.value) == _llmkit.last_error_message()
    # allowed: the id; the other one is still disallowed
    with pytest.raises(ValueError, match=r"<\|fim_prefix\|>"):
        tok.encode(text, allowed_special={"<|endoftext|>"})
    assert tok.encode(text, allowed_special="all") == [64, 100257, 65, 100258]
    assert tok.encode(text, allowed_special={"<|endoftext|>", "<|fim_prefix|>"}) == [64, 100257, 65, 100258]
    # disallowed_special=(): everything not allowed is text
    as_text = tok.encode(text, disallowed_special=())
    assert 100257 not in as_text and tok.decode(as_text) == text
    assert tok.encode_ordinary(text) == as_text
    mixed = tok.encode(text, allowed_special={"<|endoftext|>"}, disallowed_special=())
    assert mixed[:2] == [64, 100257] and 100258 not in mixed and tok.decode(mixed) == text
    # an explicit disallowed list: those raise, the rest are text
    with pytest.raises(ValueError, match=r"<\|fim_prefix\|>"):
        tok.encode(text, disallowed_special={"<|fim_prefix|>"})
    assert tok.encode("x<|endoftext|>", disallowed_special=["<|fim_prefix|>"]) == \
        tok.encode("x<|endoftext|>", disallowed_special=())
    # frozenset/list/tuple forms all work
    assert tok.encode(text, allowed_special=frozenset(tok.special_tokens_set)) == \
        tok.encode(text, allowed_special=list(tok.special_tokens))


def test_special_argument_errors(data_dir):
    tok = load(data_dir, "cl100k_base")
    with pytest.raises(ValueError, match="not a special token"):
        tok.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match='allowed_special must be "all"'):
        tok.encode("x", allowed_special="everything")
    with pytest.raises(ValueError, match='disallowed_special must be "all"'):
        tok.encode("x", disallowed_special="none")
    with pytest.raises(TypeError):
        tok.encode("x", allowed_special={1})
    with pytest.raises(TypeError):
        tok.encode(b"bytes")
    with pytest.raises(TypeError):
        tok.encode("x", {"<|endoftext|>"})  # keyword-only, as in tiktoken


# ---------------------------------------------------------------------------
# Batches and threads.

def test_encode_batch(data_dir):
    tok = load(data_dir, "o200k_base")
    text = (data_dir / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    expected = [tok.encode(t, disallowed_special=()) for t in lines]
    for threads in (0, 1, 2, 7):
        assert tok.encode_batch(lines, num_threads=threads, disallowed_special=()) == expected
    assert tok.encode_batch([]) == []
    assert tok.encode_batch(["", "a"]) == [[], tok.encode("a")]
    assert tok.encode_batch(iter(["a", "b"])) == [tok.encode("a"), tok.encode("b")]
    assert tok.encode_batch(("x<|endoftext|>",), allowed_special="all") == [tok.encode("x<|endoftext|>",
                                                                                        allowed_special="all")]


def test_encode_batch_errors(data_dir):
    tok = load(data_dir, "cl100k_base")
    texts = ["fine", "also fine", "bad <|endoftext|>", "worse <|endofprompt|>"] + ["ok"] * 100
    for threads in (1, 2, 4):
        with pytest.raises(ValueError, match=r"^LLMKIT_ERROR_INVALID_ARGUMENT: texts\[2\]: .*<\|endoftext\|>"):
            tok.encode_batch(texts, num_threads=threads)
    with pytest.raises(ValueError, match="num_threads must be >= 0"):
        tok.encode_batch(["a"], num_threads=-1)
    with pytest.raises(TypeError, match="not a str"):
        tok.encode_batch("abc")
    with pytest.raises(TypeError, match=r"texts\[1\] must be str"):
        tok.encode_batch(["a", 5])


def test_python_threads_share_one_tokenizer(data_dir):
    tok = load(data_dir, "cl100k_base")
    text = (data_dir / "corpus" / "tinyshakespeare.txt").read_text(encoding="utf-8")[:200_000]
    expected = tok.encode(text)
    results = [None] * 4

    def work(k):
        results[k] = tok.encode(text)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results)


def test_id_ints_are_shared_and_counted(data_dir):
    """The lists of ids hold the tokenizer's own int for each id (made on first
    use, kept while the tokenizer lives): every list holds the same object for
    the same id, each element is one reference, and dropping a list gives them back."""
    tok = llmkit.Tokenizer.from_tiktoken(data_dir / "tiktoken" / "o200k_base.tiktoken", "o200k_base")
    text = "Tout être humain a droit à la vie, à la liberté et à la sûreté de sa personne.\n" * 20
    a = tok.encode(text)
    assert a == load(data_dir, "o200k_base").encode(text)
    x = next(i for i in a if i > 256)  # CPython shares the ints up to 256 anyway
    b = tok.encode(text)
    assert b == a and b[b.index(x)] is a[a.index(x)]
    before = sys.getrefcount(x)
    c = tok.encode_batch([text, text], num_threads=2)
    assert sys.getrefcount(x) == before + c[0].count(x) + c[1].count(x)
    del c
    assert sys.getrefcount(x) == before
    ids, _ = tok.encode_with_offsets(text)
    assert ids == a and ids[ids.index(x)] is x


def test_id_ints_first_use_from_threads(data_dir):
    """Threads that encode on a fresh tokenizer at once (the first use makes
    its table of ints) get the right ids and the same int object per id."""
    tok = llmkit.Tokenizer.from_tiktoken(data_dir / "tiktoken" / "o200k_base.tiktoken", "o200k_base")
    lines = (data_dir / "corpus" / "udhr-60lang.txt").read_text(encoding="utf-8").splitlines()[:3000]
    texts = ["\n".join(lines[k::8]) for k in range(8)]
    reference = load(data_dir, "o200k_base")
    expected = [reference.encode(t, disallowed_special=()) for t in texts]
    results = [None] * len(texts)
    barrier = threading.Barrier(len(texts))

    def work(k):
        barrier.wait()
        results[k] = tok.encode(texts[k], disallowed_special=())

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected
    objects = {}
    for ids in results:
        for v in ids:
            assert objects.setdefault(v, v) is v


# ---------------------------------------------------------------------------
# Errors.

def test_missing_file(tmp_path):
    path = tmp_path / "missing.tiktoken"
    with pytest.raises(llmkit.LlmkitError) as e:
        llmkit.Tokenizer.from_tiktoken(path, "cl100k_base")
    assert e.value.status == "LLMKIT_ERROR_IO"
    assert str(e.value) == _llmkit.last_error_message()
    assert str(path) in str(e.value) and "No such file" in str(e.value)


def test_unknown_preset(data_dir):
    with pytest.raises(ValueError, match=r'unknown tiktoken encoding "cl200k"; known: r50k_base') as e:
        llmkit.Tokenizer.from_tiktoken(data_dir / "tiktoken" / "cl100k_base.tiktoken", "cl200k")
    assert e.value.status == "LLMKIT_ERROR_INVALID_ARGUMENT"
    with pytest.raises(TypeError):
        llmkit.Tokenizer.from_tiktoken(data_dir / "tiktoken" / "cl100k_base.tiktoken", None)


def test_malformed_file(tmp_path):
    path = tmp_path / "bad.tiktoken"
    path.write_text("aGVsbG8= 0\nnot base64!! 1\n")
    with pytest.raises(llmkit.LlmkitError, match=r"bad\.tiktoken:2") as e:
        llmkit.Tokenizer.from_tiktoken(str(path), "r50k_base")
    assert e.value.status == "LLMKIT_ERROR_FORMAT"


def test_bad_ids(data_dir):
    tok = load(data_dir, "cl100k_base")
    with pytest.raises(ValueError, match=r"ids\[1\] = 100270 is not a token id") as e:
        tok.decode([15339, 100270])
    assert e.value.status == "LLMKIT_ERROR_OUT_OF_RANGE"
    with pytest.raises(ValueError, match=r"ids\[0\] = -1 is not a token id"):
        tok.decode([-1])
    with pytest.raises(ValueError, match=r"does not fit int32"):
        tok.decode([2**40])
    with pytest.raises(TypeError, match=r"ids\[0\] must be an int"):
        tok.decode(["a"])
    with pytest.raises(ValueError, match="must hold integers"):
        tok.decode(np.array([1.5]))
    with pytest.raises(ValueError, match="id 999999 is not a token id"):
        tok.id_to_token(999999)
    with pytest.raises(TypeError):
        llmkit.Tokenizer()


# ---------------------------------------------------------------------------
# tiktoken itself, when installed (CI does not install it): same rank files,
# same ids on the corpus texts.

def tiktoken_encoding(data_dir, preset):
    """A tiktoken Encoding built from the local rank file with tiktoken's own pattern and specials (no network)."""
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe
    openai_public = pytest.importorskip("tiktoken_ext.openai_public")
    ranks = load_tiktoken_bpe(str(data_dir / "tiktoken" / PRESETS[preset][0]))
    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *a, **k: ranks  # the constructor's only download
    try:
        spec = getattr(openai_public, preset)()
    finally:
        openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(spec["name"], pat_str=spec["pat_str"], mergeable_ranks=ranks,
                             special_tokens=spec["special_tokens"])


@pytest.mark.parametrize("preset", ["r50k_base", "p50k_base", "cl100k_base", "o200k_base"])
def test_against_tiktoken(data_dir, preset):
    enc = tiktoken_encoding(data_dir, preset)
    tok = load(data_dir, preset)
    assert tok.n_vocab == enc.n_vocab
    assert tok.special_tokens_set == enc.special_tokens_set
    corpus = data_dir / "corpus"
    texts = [(corpus / f).read_text(encoding="utf-8")
             for f in ("mixed-slice.txt", "tinyshakespeare.txt", "sotu.txt", "udhr-60lang.txt")]
    for text in texts:
        assert tok.encode(text) == enc.encode(text)
    lines = texts[0].splitlines(keepends=True)
    assert tok.encode_batch(lines, num_threads=2) == enc.encode_batch(lines, num_threads=2)
    vectors, _ = read_vectors(data_dir / "llama.cpp-vocab" / "ggml-vocab-gpt-2.gguf")
    for t in vectors:
        assert tok.encode(t) == enc.encode(t), repr(t)
    special = "x<|endoftext|>y <|endoftext|>"
    assert tok.encode(special, allowed_special="all") == enc.encode(special, allowed_special="all")
    assert tok.encode(special, disallowed_special=()) == enc.encode(special, disallowed_special=())
    with pytest.raises(ValueError):
        enc.encode(special)
    with pytest.raises(ValueError):
        tok.encode(special)
    ids = enc.encode(texts[3][:5000])
    assert tok.decode(ids) == enc.decode(ids)
    for i in ids[:200] + [enc.eot_token]:
        assert tok.id_to_token(i) == enc.decode_single_token_bytes(i)
    for cut in (1, 2, 3, 7):  # partial characters: both replace the same way
        assert tok.decode(ids[:cut]) == enc.decode(ids[:cut])
    assert tok.encode("a\ud800b") == enc.encode("a\ud800b")


def test_every_code_point_against_tiktoken(data_dir):
    """Each code point of planes 0-3 and 14 (the others hold no letters, digits or
    spaces in any Unicode version yet; surrogates aside) before "Ab" (in o200k's upper
    class or not), after it (in its lower class or not), after a space and after a
    digit (letter, number, space): the scanners' Unicode classes must be the ones
    tiktoken's regex engine uses (Unicode 16.0). 1,000 code points per text."""
    cps = [cp for cp in list(range(0x40000)) + list(range(0xE0000, 0xE1000)) if not 0xD800 <= cp <= 0xDFFF]
    chunks = []
    for k in range(0, len(cps), 1000):
        chunks.append((cps[k], "".join(f"{c}Ab{c} {c}1{c}\n" for c in map(chr, cps[k:k + 1000]))))
    for preset in ("r50k_base", "cl100k_base", "o200k_base"):
        enc = tiktoken_encoding(data_dir, preset)
        tok = load(data_dir, preset)
        bad = [f"U+{first:04X}" for first, text in thinned(chunks, 4)
               if tok.encode(text, disallowed_special=()) != enc.encode(text, disallowed_special=())]
        assert not bad, f"{preset}: the 1,000 code points from each of these differ: {bad[:20]}"


@pytest.mark.parametrize("preset", ["r50k_base", "cl100k_base", "o200k_base"])
def test_random_unicode_against_tiktoken(data_dir, preset):
    """Property test: random text over all of Unicode but surrogates, mixed with the
    characters the patterns single out, gives tiktoken's ids."""
    pytest.importorskip("hypothesis")
    from hypothesis import given, settings, strategies as st
    enc = tiktoken_encoding(data_dir, preset)
    tok = load(data_dir, preset)
    stress = list("aAsStTlLdDmMrReEvV09' '  \t\r\n\n/.,!-") + [
        "\u00a0", "\u3000", "\u2028", "\u0085", "\u0301", "\u02b0", "\u01c5", "\u4e00", "\u00e9", "\u00c9",
        "\u017f", "\u0660", "\u00b2", "\u2160", "\U0001f600", "\u200d"]
    chars = st.one_of(st.characters(blacklist_categories=("Cs",)), st.sampled_from(stress))

    @settings(max_examples=examples(2000), deadline=None, database=None)
    @given(st.text(alphabet=chars, max_size=40))
    def check(text):
        assert tok.encode(text, disallowed_special=()) == enc.encode(text, disallowed_special=())

    check()


# ---------------------------------------------------------------------------
# Stubs and docstrings.

def test_tokenizer_stub_and_docstrings():
    stub = ast.parse(Path(llmkit.__file__).with_name("__init__.pyi").read_text())
    cls = next(n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "Tokenizer")
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    assert inspect.getdoc(llmkit.Tokenizer)
    for name, attr in vars(llmkit.Tokenizer).items():
        if name.startswith("_") and name != "__init__":
            continue
        assert name in methods, f"Tokenizer.{name} missing from the stub"
        assert ast.get_docstring(methods[name]), f"Tokenizer.{name} has no docstring in the stub"
        if isinstance(attr, property):
            assert inspect.getdoc(attr), f"Tokenizer.{name} has no docstring"
            continue
        fn = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
        assert inspect.getdoc(fn), f"Tokenizer.{name} has no docstring"
        a = methods[name].args
        stub_params = [p.arg for p in a.posonlyargs + a.args] + [p.arg for p in a.kwonlyargs]
        runtime = [p.name for p in inspect.signature(fn).parameters.values()
                   if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
        assert stub_params == runtime, f"Tokenizer.{name}: stub {stub_params} != runtime {runtime}"


@pytest.mark.parametrize("preset", ["p50k_base", "cl100k_base"])
def test_tiktoken_compatible_methods(data_dir, preset):
    """The rest of tiktoken's Encoding API gives tiktoken's answers (drop-in use)."""
    enc = tiktoken_encoding(data_dir, preset)
    tok = load(data_dir, preset)
    text = (data_dir / "corpus" / "mixed-slice.txt").read_text(encoding="utf-8")
    lines = [line + " <|endoftext|>" for line in text.splitlines()[:200]]
    assert tok.encode_ordinary_batch(lines, num_threads=2) == enc.encode_ordinary_batch(lines, num_threads=2)
    batch = enc.encode_ordinary_batch(lines)
    assert tok.decode_batch(batch) == enc.decode_batch(batch)
    assert tok.decode_bytes_batch(batch) == enc.decode_bytes_batch(batch)
    ids = batch[3] + [enc.eot_token]
    assert tok.decode_tokens_bytes(ids) == enc.decode_tokens_bytes(ids)
    for t in (b" world", b"<|endoftext|>", "hello", b"\xe4\xb8"):
        try:
            want = enc.encode_single_token(t)
        except KeyError:
            with pytest.raises(KeyError):
                tok.encode_single_token(t)
        else:
            assert tok.encode_single_token(t) == want
    assert tok.eot_token == enc.eot_token
    assert tok.max_token_value == enc.max_token_value
    assert [tok.is_special_token(i) for i in (0, enc.eot_token, 1000)] == \
        [enc.is_special_token(i) for i in (0, enc.eot_token, 1000)]
    assert tok.token_byte_values() == enc.token_byte_values()
    # An id past the vocabulary, and (cl100k_base) one in a gap of the ranks.
    bad = [enc.max_token_value + 1] + [i for i in range(100256, 100277) if _names_no_token(tok, i)][:1]
    for i in bad:
        with pytest.raises(KeyError):
            tok.decode_single_token_bytes(i)
        with pytest.raises(KeyError):
            enc.decode_single_token_bytes(i)


def _names_no_token(tok, i):
    try:
        tok.id_to_token(i)
    except ValueError:
        return True
    return False
