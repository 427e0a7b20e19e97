"""Unigram scores are read as Hugging Face tokenizers reads them. tokenizers parses tokenizer.json with serde_json's
default float parsing, which is not correctly rounded (all the digits as one integer, then one division by a power
of ten): about one trained score in eleven lands 1 ulp away from the correctly rounded value. On a near tie that
decides the segmentation, so llmkit reads the scores the same way (hf_json.cpp, as_serde_json_reads). The
vocabularies here are built so that the two readings segment "ab" differently; llmkit must agree with tokenizers."""

import json

import pytest

import llmkit

tokenizers = pytest.importorskip("tokenizers")

# (score of "ab", of "a", of "b"): Python's shortest reprs, where "ab" wins (its score at least the sum of the
# others': on a tie the piece found first, the longer one from the earlier start, stays) under serde's reading of
# the digits and loses under the correctly rounded one (found by a random search).
NEAR_TIES = [("-6.774870326902383", "-3.1136842580555886", "-3.6611860688467943"),
             ("-5.692160418041568", "-2.0163744135402557", "-3.6757860045013118"),
             ("-5.570517024490442", "-3.3602146089293736", "-2.2103024155610678"),
             ("-10.768320086599253", "-5.639108550206892", "-5.12921153639236")]


def _serde_reads(digits: str) -> float:
    """float(all digits) / 10**k, as serde_json's f64_from_parts."""
    mantissa, _, exp = digits.lower().partition("e")
    negative, mantissa = mantissa.startswith("-"), mantissa.lstrip("-")
    whole, _, frac = mantissa.partition(".")
    k = int(exp or 0) - len(frac)
    f = float(int(whole + frac))
    f = f * float(f"1e{k}") if k >= 0 else f / float(f"1e{-k}")
    return -f if negative else f


@pytest.mark.parametrize("ab,a,b", NEAR_TIES)
def test_near_tie_segmentation_matches_tokenizers(tmp_path, ab, a, b):
    # The two readings disagree on which segmentation wins, so the test can tell them apart.
    correct_whole = float(ab) >= float(a) + float(b)
    serde_whole = _serde_reads(ab) >= _serde_reads(a) + _serde_reads(b)
    assert correct_whole != serde_whole
    vocab = f'[["<unk>", 0.0], ["a", {a}], ["b", {b}], ["ab", {ab}]]'
    text = ('{"version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": null, '
            '"post_processor": null, "decoder": null, '
            '"model": {"type": "Unigram", "unk_id": 0, "vocab": ' + vocab + '}}')
    json.loads(text)  # valid JSON, scores written as the digits above
    path = tmp_path / "near-tie.json"
    path.write_text(text, encoding="utf-8")
    ref = tokenizers.Tokenizer.from_file(str(path))
    expected = ref.encode("ab").ids
    assert expected == ([3] if serde_whole else [1, 2])  # tokenizers reads the digits serde's way
    assert llmkit.Tokenizer.from_file(path).encode("ab") == expected
