"""llmkit.train_bpe: merges identical to a plain reimplementation of minbpe's RegexTokenizer.train written
here; the saved .tiktoken (llmkit and tiktoken) and tokenizer.json (HF tokenizers) reproduce the ids;
cancellation; progress; bad options."""

import pytest

import llmkit

regex = pytest.importorskip("regex")  # what minbpe splits with (a dependency of tiktoken)

CL100K = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def minbpe_train(texts, vocab_size, pattern):
    """minbpe's RegexTokenizer.train, written out plainly (dict order decides ties, as there)."""
    ids = [list(ch.encode("utf-8")) for text in texts for ch in regex.findall(pattern, text)]
    vocab = {i: bytes([i]) for i in range(256)}
    merges = []
    for i in range(vocab_size - 256):
        stats = {}
        for chunk in ids:
            for pair in zip(chunk, chunk[1:]):
                stats[pair] = stats.get(pair, 0) + 1
        if not stats:
            break
        pair = max(stats, key=stats.get)
        idx = 256 + i
        new_ids = []
        for chunk in ids:
            out, j = [], 0
            while j < len(chunk):
                if j + 1 < len(chunk) and (chunk[j], chunk[j + 1]) == pair:
                    out.append(idx)
                    j += 2
                else:
                    out.append(chunk[j])
                    j += 1
            new_ids.append(out)
        ids = new_ids
        merges.append(pair)
        vocab[idx] = vocab[pair[0]] + vocab[pair[1]]
    return merges, vocab


def corpus(data_dir, n=12000):
    shakespeare = (data_dir / "corpus" / "tinyshakespeare.txt").read_text(encoding="utf-8")[:n]
    udhr = (data_dir / "corpus" / "udhr-60lang.txt").read_text(encoding="utf-8")[:n // 2]
    return shakespeare, udhr


@pytest.mark.parametrize("pattern_name,pattern", [("cl100k_base", CL100K), ("r50k_base", GPT2)])
def test_merges_identical_to_minbpe(data_dir, pattern_name, pattern):
    texts = list(corpus(data_dir))
    vocab_size = 256 + 300
    merges, vocab = minbpe_train(texts, vocab_size, pattern)
    assert len(set(vocab.values())) == len(vocab), "the reference gave two ids the same bytes; pick another corpus"
    tok = llmkit.train_bpe(texts, vocab_size, pattern=pattern_name)
    assert tok.vocab_size == vocab_size
    got = [tok.id_to_token(i) for i in range(vocab_size)]
    expected = [vocab[i] for i in range(vocab_size)]
    first_difference = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), None)
    assert first_difference is None, f"merge {first_difference - 256}: llmkit {got[first_difference]!r}, minbpe {expected[first_difference]!r}"
    # The same with the pattern given as a regex instead of a preset name.
    tok2 = llmkit.train_bpe(texts, vocab_size, pattern=pattern)
    assert [tok2.id_to_token(i) for i in range(vocab_size)] == expected


def test_ties_follow_dict_order():
    # Every pair occurs equally often; minbpe (dict order) takes the first one met.
    texts = ["abcd dcba", "bcda"]
    merges, vocab = minbpe_train(texts, 262, CL100K)
    tok = llmkit.train_bpe(texts, 262, pattern="cl100k_base")
    assert [tok.id_to_token(i) for i in range(256, 262)] == [vocab[i] for i in range(256, 262)]


def test_saved_files_reproduce_the_encodings(data_dir, tmp_path):
    shakespeare, udhr = corpus(data_dir, 200000)
    tok = llmkit.train_bpe([shakespeare, udhr], 1024, special_tokens=["<|endoftext|>", "<|pad|>"])
    assert tok.special_tokens == {"<|endoftext|>": 1024, "<|pad|>": 1025}
    held_out = (data_dir / "corpus" / "sotu.txt").read_text(encoding="utf-8")[:50000] + udhr[-3000:]
    ids = tok.encode(held_out)
    assert tok.decode(ids) == held_out
    assert len(ids) < len(held_out.encode()) / 2  # it learned something that carries to new text

    tok.save_tiktoken(tmp_path / "trained.tiktoken")
    again = llmkit.Tokenizer.from_tiktoken(tmp_path / "trained.tiktoken", "cl100k_base")
    assert again.encode(held_out) == ids

    tiktoken = pytest.importorskip("tiktoken")
    import tiktoken.load  # noqa: F401  (a submodule tiktoken does not import itself)
    ranks = tiktoken.load.load_tiktoken_bpe(str(tmp_path / "trained.tiktoken"))
    ref = tiktoken.Encoding("trained", pat_str=CL100K, mergeable_ranks=ranks, special_tokens={})
    assert ref.encode_ordinary(held_out) == ids

    tokenizers = pytest.importorskip("tokenizers")
    tok.save_tokenizer_json(tmp_path / "tokenizer.json")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert hf.encode(held_out, add_special_tokens=False).ids == ids
    assert hf.decode(ids) == held_out
    assert hf.token_to_id("<|pad|>") == 1025
    assert hf.encode("a<|endoftext|>b").ids == tok.encode("a<|endoftext|>b", allowed_special="all")


def test_a_path_trains_on_the_whole_file(tmp_path):
    text = "low lower lowest newer newest wider " * 50
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    a = llmkit.train_bpe(tmp_path / "c.txt", 270)
    b = llmkit.train_bpe([text], 270)
    assert [a.id_to_token(i) for i in range(270)] == [b.id_to_token(i) for i in range(270)]


def test_progress_and_cancellation(capsys):
    text = ["the quick brown fox jumps over the lazy dog " * 20 + "pack my box with five dozen liquor jugs"]
    seen = []
    llmkit.train_bpe(text, 300, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (1, 44) and seen[-1][0] == len(seen) <= 44

    def stop(done, total):
        return done < 3

    with pytest.raises(llmkit.LlmkitError, match="cancelled") as e:
        llmkit.train_bpe(text, 300, progress=stop)
    assert e.value.status == "LLMKIT_ERROR_CANCELLED"

    def boom(done, total):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        llmkit.train_bpe(text, 300, progress=boom)

    pytest.importorskip("tqdm")
    llmkit.train_bpe(text, 300, progress=True)
    assert "BPE merges" in capsys.readouterr().err


def test_bad_options():
    with pytest.raises(ValueError, match="vocab_size"):
        llmkit.train_bpe(["abc"], 255)
    with pytest.raises(ValueError, match="pattern"):
        llmkit.train_bpe(["abc"], 300, pattern="(unclosed")
    with pytest.raises(ValueError, match="twice"):
        llmkit.train_bpe(["abc"], 300, special_tokens=["<a>", "<a>"])
    with pytest.raises(ValueError, match="UTF-8"):
        llmkit.train_bpe([b"ok\xff"], 300)
    with pytest.raises(TypeError):
        llmkit.train_bpe(["abc"], 300, progress="yes")
    with pytest.raises(TypeError):
        llmkit.train_bpe(["abc"], "300")
    with pytest.raises(TypeError):
        llmkit.train_bpe(b"abc", 300)


def test_special_tokens_with_different_first_bytes_match_tiktoken(tmp_path):
    # Special tokens are found by their first byte: one candidate byte and several take different scans.
    tiktoken = pytest.importorskip("tiktoken")
    import tiktoken.load  # noqa: F401

    specials = ["<|endoftext|>", "[SEP]", "§end", "<pad>"]
    tok = llmkit.train_bpe(["the cat sat on the mat <not special> [SE P] §en", "a [b] <c> § d"], 300,
                           special_tokens=specials)
    tok.save_tiktoken(tmp_path / "t.tiktoken")
    ranks = tiktoken.load.load_tiktoken_bpe(str(tmp_path / "t.tiktoken"))
    assert list(tok.special_tokens) == specials  # ids after the merges learned (fewer than asked: a tiny corpus)
    ref = tiktoken.Encoding("t", pat_str=CL100K, mergeable_ranks=ranks, special_tokens=tok.special_tokens)
    for text in ["the cat[SEP]sat<|endoftext|> on §end§en <pad><pa [SEP", "[SEP][SEP]§end<|endoftext|>",
                 "no special here < [ §", "§§end<<pad>>[[SEP]]", ""]:
        assert tok.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all"), text
        assert tok.encode(text, allowed_special={"[SEP]"}, disallowed_special=()) == \
            ref.encode(text, allowed_special={"[SEP]"}, disallowed_special=()), text
