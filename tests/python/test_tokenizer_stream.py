"""Tokenizer.decoder(): streaming decode against Python's own bytes.decode("utf-8", "replace") and (when
installed) tiktoken's decode, for every split of the ids; property tests with hypothesis on random bytes."""

import random

import pytest

import llmkit
from budget import examples

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

_CACHE = {}


def load(data_dir, preset="cl100k_base", file="cl100k_base.tiktoken"):
    if preset not in _CACHE:
        _CACHE[preset] = llmkit.Tokenizer.from_tiktoken(data_dir / "tiktoken" / file, preset)
    return _CACHE[preset]


def stream(tok, ids, sizes):
    """Feeds ids in chunks of the given sizes (cycled), then flushes; returns the pieces."""
    dec = tok.decoder()
    pieces, i, k = [], 0, 0
    while i < len(ids):
        n = sizes[k % len(sizes)]
        pieces.append(dec.feed(ids[i:i + n]))
        i, k = i + n, k + 1
    pieces.append(dec.flush())
    return pieces


def test_emoji_split_over_tokens_is_held_back(data_dir):
    tok = load(data_dir)
    text = "naïve 🤖🦙 中文 ok"
    ids = tok.encode(text)
    assert len(ids) > len(text.split())  # some characters span several tokens
    dec = tok.decoder()
    out = [dec.feed(i) for i in ids]  # one int at a time
    out.append(dec.flush())
    assert "".join(out) == text
    assert all("\ufffd" not in p for p in out)  # never a broken character on the way
    assert dec.flush() == ""


def test_every_prefix_split_equals_one_shot_decode(data_dir):
    tok = load(data_dir)
    text = (data_dir / "corpus" / "udhr-60lang.txt").read_text(encoding="utf-8")[:3000]
    ids = tok.encode(text)
    assert "".join(stream(tok, ids, [1])) == text
    for cut in range(len(ids) + 1):  # every two-chunk split
        dec = tok.decoder()
        assert dec.feed(ids[:cut]) + dec.feed(ids[cut:]) + dec.flush() == text


def test_matches_tiktoken_on_arbitrary_id_sequences(data_dir):
    """Random ids (cutting characters anywhere) against tiktoken's decode, which uses errors="replace"."""
    tiktoken = pytest.importorskip("tiktoken")
    import tiktoken.load  # noqa: F401  (a submodule tiktoken does not import itself)
    tok = load(data_dir)
    ranks = tiktoken.load.load_tiktoken_bpe(str(data_dir / "tiktoken" / "cl100k_base.tiktoken"))
    ref = tiktoken.Encoding("cl100k_ref", pat_str=r"\s+", mergeable_ranks=ranks, special_tokens={})
    rng = random.Random(5)
    pool = [i for i in range(0, 100256) if not tok.id_to_token(i).isascii()]  # tokens with non-ASCII bytes
    for _ in range(300):
        ids = [rng.choice(pool) if rng.random() < 0.7 else rng.randrange(100256) for _ in range(rng.randrange(12))]
        expected = ref.decode(ids)
        assert expected == tok.decode(ids)
        sizes = [rng.randrange(1, 4) for _ in range(5)]
        assert "".join(stream(tok, ids, sizes)) == expected


@settings(max_examples=examples(300), deadline=None)
@given(data=st.binary(max_size=40), sizes=st.lists(st.integers(1, 5), min_size=1, max_size=6))
def test_random_bytes_property(data, sizes, byte_tokenizer):
    """Random bytes fed as single-byte tokens: pieces joined == bytes.decode("utf-8", "replace")."""
    ids = list(data)
    pieces = stream(byte_tokenizer, ids, sizes)
    assert "".join(pieces) == data.decode("utf-8", "replace")
    for p in pieces:  # each piece is valid text on its own
        p.encode("utf-8")


@pytest.fixture(scope="module")
def byte_tokenizer(data_dir):
    # r50k's ranks 0..255 are not the byte values, so look each byte's id up once.
    tok = load(data_dir, "r50k_base", "r50k_base.tiktoken")
    table = [tok.token_to_id(bytes([b])) for b in range(256)]

    class ByteIds:
        def decoder(self):
            inner = tok.decoder()

            class D:
                def feed(self, ids):
                    return inner.feed([table[b] for b in ids])

                def flush(self):
                    return inner.flush()

            return D()

    return ByteIds()


def test_errors_and_types(data_dir):
    tok = load(data_dir)
    dec = tok.decoder()
    assert dec.feed([]) == ""
    first = tok.encode("🦙")
    assert dec.feed(first[:1]) == ""
    with pytest.raises(ValueError, match="not a token id"):
        dec.feed([first[1], 100256])  # a gap in cl100k's ranks
    assert dec.feed(first[1:]) == "🦙"  # the failed call consumed nothing
    with pytest.raises(TypeError):
        dec.feed("abc")
    with pytest.raises(TypeError):
        llmkit.TokenizerDecoder()
    import numpy as np
    assert dec.feed(np.array(tok.encode("hi there"), dtype=np.int64)) == "hi there"
    assert tok.decode_bytes(first) == "🦙".encode()
