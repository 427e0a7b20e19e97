"""llmkit.Tokenizer.from_ranks: a tiktoken encoding given in full (pattern,
ranks, special tokens), against tiktoken.Encoding built from the same three;
to_tiktoken / pattern give them back, and tokenizers no file stands for
(from_ranks, train_bpe) pickle through them."""

import multiprocessing
import pickle

import pytest

import llmkit

tiktoken = pytest.importorskip("tiktoken")
from tiktoken.load import load_tiktoken_bpe  # noqa: E402

# Patterns no preset has: one with a lookahead and possessive-free classes,
# one that splits digits singly and keeps punctuation runs with letters.
CUSTOM_PATTERNS = [
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,4}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    r"""\p{N}|[\p{L}\p{M}']+|[^\s\p{L}\p{N}]+|\s+""",
]


def _texts(data_dir):
    corpus = data_dir / "corpus"
    mixed = (corpus / "mixed-slice.txt").read_text(encoding="utf-8")
    udhr = (corpus / "udhr-60lang.txt").read_text(encoding="utf-8")
    return [mixed, udhr[:200_000], "x<|im_start|>user\nhi<|im_end|><|endoftext|> 12345 don't"]


@pytest.fixture(scope="module")
def cl100k(data_dir):
    path = data_dir / "tiktoken" / "cl100k_base.tiktoken"
    return path, load_tiktoken_bpe(str(path))


def _cl100k_spec(ranks):
    """tiktoken's own cl100k_base arguments (its pat_str, not llmkit's), with the local ranks (no network)."""
    from tiktoken_ext import openai_public

    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *a, **k: ranks  # the constructor's only download
    try:
        return openai_public.cl100k_base()
    finally:
        openai_public.load_tiktoken_bpe = original


def test_tiktokens_readme_example_extending_cl100k(data_dir, cl100k):
    """cl100k_base plus two chat tokens, as tiktoken's README extends it; the
    pattern given as tiktoken spells it, as a preset name, and with a branch
    that never matches (so that PCRE2 runs it, not the preset's scanner)."""
    path, ranks = cl100k
    spec = _cl100k_spec(ranks)
    specials = {**spec["special_tokens"], "<|im_start|>": 100264, "<|im_end|>": 100265}
    ref = tiktoken.Encoding("cl100k_im", pat_str=spec["pat_str"], mergeable_ranks=ranks, special_tokens=specials)
    tok = llmkit.Tokenizer.from_ranks(path, spec["pat_str"], specials, name="cl100k_im")
    by_name = llmkit.Tokenizer.from_ranks(path, "cl100k_base", specials)
    pcre = llmkit.Tokenizer.from_ranks(path, spec["pat_str"] + "|(?!)", specials)
    assert tok.name == "cl100k_im" and tok.n_vocab == ref.n_vocab == 100277
    assert tok.special_tokens == specials
    texts = _texts(data_dir) + ["trailing spaces   \n", "ends in a newline\n\n", " \n \n\t", "   "]
    for text in texts:
        want = ref.encode(text, allowed_special="all")
        assert tok.encode(text, allowed_special="all") == want
        assert by_name.encode(text, allowed_special="all") == want
        assert pcre.encode(text, allowed_special="all") == want
        assert tok.encode(text, disallowed_special=()) == ref.encode(text, disallowed_special=())
    chat = "<|im_start|>user\nhi<|im_end|>"
    with pytest.raises(ValueError):
        ref.encode(chat)
    with pytest.raises(ValueError, match="im_start"):
        tok.encode(chat)
    assert tok.encode(chat, allowed_special={"<|im_start|>", "<|im_end|>"})[:1] == [100264]


@pytest.mark.parametrize("which", range(len(CUSTOM_PATTERNS)))
def test_a_pattern_no_preset_has_matches_tiktoken(data_dir, cl100k, which):
    path, ranks = cl100k
    pat = CUSTOM_PATTERNS[which]
    specials = {"<|endoftext|>": 100257, "<|im_start|>": 100300}
    ref = tiktoken.Encoding("custom", pat_str=pat, mergeable_ranks=ranks, special_tokens=specials)
    # The ranks as a dict (tiktoken's load_tiktoken_bpe) and as the file's bytes.
    for tok in (llmkit.Tokenizer.from_ranks(ranks, pat, specials),
                llmkit.Tokenizer.from_ranks(path.read_bytes(), pat, specials)):
        assert tok.n_vocab == ref.n_vocab
        for text in _texts(data_dir):
            assert tok.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
        lines = _texts(data_dir)[0].splitlines(keepends=True)[:300]
        assert tok.encode_batch(lines, num_threads=2) == ref.encode_batch(lines, num_threads=2)
        ids = ref.encode(_texts(data_dir)[1][:3000])
        assert tok.decode(ids) == ref.decode(ids)


def test_to_tiktoken_and_pattern_give_the_encoding_back(data_dir, cl100k):
    path, ranks = cl100k
    tok = llmkit.Tokenizer.from_tiktoken(path, "cl100k_base")
    # OpenAI's file is one "base64 rank" line per rank, in rank order: the same bytes come back.
    assert tok.to_tiktoken() == path.read_bytes()
    again = llmkit.Tokenizer.from_ranks(tok.to_tiktoken(), tok.pattern, tok.special_tokens)
    text = _texts(data_dir)[0]
    assert again.encode(text) == tok.encode(text)
    assert again.pattern == tok.pattern
    gpt2 = llmkit.Tokenizer.from_file(data_dir / "hf-tokenizers" / "gpt2" / "tokenizer.json")
    with pytest.raises(Exception, match="byte-level BPE"):
        gpt2.to_tiktoken()
    with pytest.raises(Exception, match="byte-level BPE"):
        gpt2.pattern


def _encode_in_worker(tok):
    return tok.encode("hello <|im_start|> lower lowest 12345", allowed_special="all"), tok.name, tok.special_tokens


def test_tokenizers_no_file_stands_for_pickle(data_dir, cl100k):
    path, ranks = cl100k
    custom = llmkit.Tokenizer.from_ranks(ranks, CUSTOM_PATTERNS[1], {"<|im_start|>": 100300}, name="mine")
    trained = llmkit.train_bpe([_texts(data_dir)[0]], 400, pattern=CUSTOM_PATTERNS[0],
                               special_tokens=["<|im_start|>"])
    text = _texts(data_dir)[0]
    for tok in (custom, trained):
        back = pickle.loads(pickle.dumps(tok))
        assert back.name == tok.name and back.special_tokens == tok.special_tokens
        assert back.pattern == tok.pattern and back.to_tiktoken() == tok.to_tiktoken()
        assert back.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_encode_in_worker, [custom, trained])
    assert results == [_encode_in_worker(custom), _encode_in_worker(trained)]


def test_bad_arguments_give_named_errors(cl100k):
    path, ranks = cl100k
    data = path.read_bytes()
    with pytest.raises(ValueError, match="pattern is empty"):
        llmkit.Tokenizer.from_ranks(data, "")
    with pytest.raises(ValueError, match="missing closing parenthesis|regex|pattern"):
        llmkit.Tokenizer.from_ranks(data, r"(\p{L}+")
    with pytest.raises(Exception, match="already a regular token's rank") as e:
        llmkit.Tokenizer.from_ranks(data, "cl100k_base", {"<|x|>": 100})
    assert e.value.status == "LLMKIT_ERROR_FORMAT"
    with pytest.raises(ValueError, match="negative id"):
        llmkit.Tokenizer.from_ranks(data, "cl100k_base", {"<|x|>": -3})
    with pytest.raises(ValueError, match="is empty"):
        llmkit.Tokenizer.from_ranks(data, "cl100k_base", {"": 100300})
    with pytest.raises(ValueError, match="given twice"):
        llmkit.Tokenizer.from_ranks(data, "cl100k_base", {"<|a|>": 100300, "<|b|>": 100300})
    with pytest.raises(Exception, match=r"\(memory\):2: invalid base64") as e:
        llmkit.Tokenizer.from_ranks(b"IQ== 0\n!!! 1\n", r"\S+")
    assert e.value.status == "LLMKIT_ERROR_FORMAT"
    with pytest.raises(Exception, match="byte 0x00 is not a token"):
        llmkit.Tokenizer.from_ranks({b"a": 0}, r"\S+")
    with pytest.raises(TypeError, match="keys must be bytes"):
        llmkit.Tokenizer.from_ranks({"a": 0}, r"\S+")
    with pytest.raises(TypeError, match="mergeable_ranks"):
        llmkit.Tokenizer.from_ranks(12, r"\S+")
    with pytest.raises(TypeError, match="pat_str"):
        llmkit.Tokenizer.from_ranks(data, None)
    with pytest.raises(ValueError, match="does not fit"):
        llmkit.Tokenizer.from_ranks(data, "cl100k_base", {"<|x|>": 2**40})


def test_a_pattern_that_backtracks_exponentially_gives_an_error():
    """(a+)+$ on a run of a's that does not end the text: PCRE2 stops at its match limit."""
    tok = llmkit.Tokenizer.from_ranks({bytes([i]): i for i in range(256)}, r"(a+)+$|\S|\s")
    assert tok.encode("aaa") == [97, 97, 97]
    with pytest.raises(ValueError, match=r"backtracks too much on this text \(match limit exceeded at byte 0\)") as e:
        tok.encode("a" * 40 + "b")
    assert e.value.status == "LLMKIT_ERROR_INVALID_ARGUMENT"


# Patterns whose meaning differs between Rust's regex crate (tiktoken) and
# PCRE2 unless llmkit translates them: \w (marks, connector punctuation), \b,
# \h (hex digit), ASCII POSIX classes, class set operations and nesting, bare
# script names (Script, not Script_Extensions), long category names, `$` at the
# very end only; and Kimi K2's pattern (intersections with [^\p{Han}]).
DIALECT_PATTERNS = [
    r"\w+|\W",
    r"\b\w|\B.",
    r"\h+|\S+|\s",
    r"[[:alpha:]]+|[[:^alpha:][:digit:]]+|.",
    r"[\w--\d]+|[\p{L}~~\p{Ll}]+|[a-z[0-9]]+|.",
    r"[^\w\s]+|[\W\d]+|.",
    r"\p{Han}+|\p{Greek}+|\p{Is_Cyrillic}+|\p{^Latin}|.",
    r"[\p{Letter}--\p{Uppercase_Letter}]+|\p{gc=Nd}+|\pN|.",
    r"\w+$|(?m:\w+$)|.|\n",
    r"\u0041\U00000062|\x{3002}|.",
    (r"[\p{Han}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+"
     r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+"
     r"[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
     r"|\s*[\r\n]+|\s+(?!\S)|\s+"),
]


def _every_code_point_texts():
    """Each code point of planes 0-2 assigned in Unicode 14 (PCRE2 10.42's tables; tiktoken's are newer,
    so later additions may differ) among letters, digits, marks and newlines."""
    import unicodedata

    # This Python's tables where they are Unicode 14 or older, else the Unicode 3.2 ones it also carries.
    major = int(unicodedata.unidata_version.split(".")[0])
    ucd = unicodedata if major <= 14 else unicodedata.ucd_3_2_0
    cps = [cp for cp in range(0x30000) if not 0xD800 <= cp <= 0xDFFF and ucd.category(chr(cp)) != "Cn"]
    texts = []
    for k in range(0, len(cps), 2000):
        texts.append("".join(f"Ab{chr(c)}x {chr(c)}1{chr(c)}\u0301{chr(c)}\n" for c in cps[k:k + 2000]))
    return texts + ["naïve cafe\u0301 a\u203fb ab\n", "ab\n\n", "deadbeefxyz 0x1F", "Straße İstanbul ǅemal ﬁle。\n"]


@pytest.mark.reference_sweep
@pytest.mark.parametrize("which", range(len(DIALECT_PATTERNS)))
def test_tiktokens_regex_dialect_on_every_code_point(cl100k, which):
    path, ranks = cl100k
    pat = DIALECT_PATTERNS[which]
    ref = tiktoken.Encoding("dialect", pat_str=pat, mergeable_ranks=ranks, special_tokens={})
    tok = llmkit.Tokenizer.from_ranks(ranks, pat)
    for text in _every_code_point_texts():
        assert tok.encode_ordinary(text) == ref.encode_ordinary(text)
    # What llmkit runs translates to itself: the tokenizer rebuilt from its pattern is the same.
    again = llmkit.Tokenizer.from_ranks(ranks, tok.pattern)
    assert again.pattern == tok.pattern
    text = _every_code_point_texts()[3]
    assert again.encode_ordinary(text) == tok.encode_ordinary(text)
