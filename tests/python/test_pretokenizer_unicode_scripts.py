"""The UnicodeScripts pre-tokenizer (a cut wherever the Unicode script changes) against Hugging Face tokenizers.

tokenizers classifies characters with a table generated from Unicode 9.0; llmkit asks ICU for the Script
property and treats code points assigned after 9.0 as tokenizers does ("any": no cut). The exhaustive cases
below run every code point through both, in orders that put each one next to characters of other scripts,
so a script that changed between Unicode versions (ICU's data is newer) shows up as a different cut. Every
code point runs in ascending order; the other orders take the assigned ones, where the scripts are. (The file
is not named test_tokenizer_* so that ctest runs it in the shorter "python_tests" group.)"""

import json
import os
import random

import pytest

import llmkit
import test_tokenizer_json as tj  # same folder: its loaders
from test_tokenizer_offsets import offset_texts  # noqa: F401  (fixture)

hf_tokenizers = tj.tokenizers
pre_tokenizers = hf_tokenizers.pre_tokenizers

import unicodedata

CODE_POINTS = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
# The assigned ones (Python's Unicode; private use left out): the orders other than ascending use these.
# Under the sanitizers (which check memory, not scripts) every 4th of them: the Release run takes all.
ASSIGNED = [c for c in CODE_POINTS if unicodedata.category(chr(c)) not in ("Cn", "Co")]
if os.environ.get("LLMKIT_TEST_SANITIZED"):
    ASSIGNED = ASSIGNED[::4]


def _word_level(tmp_path, pre_tokenizer, name="scripts.json"):
    """A tokenizer whose every piece is one [UNK] token, so its offsets are the pre-tokenizer's pieces."""
    ref = hf_tokenizers.Tokenizer(hf_tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    ref.pre_tokenizer = pre_tokenizer
    path = tmp_path / name
    ref.save(str(path))
    assert json.loads(path.read_text())["pre_tokenizer"]["type"] in ("UnicodeScripts", "Sequence")
    return llmkit.Tokenizer.from_file(path), ref


def _pieces(tok, text):
    return [tuple(s) for s in tok.encode_with_offsets(text, unit="chars")[1].tolist()]


def _reference_pieces(text):
    return [span for _, span in pre_tokenizers.UnicodeScripts().pre_tokenize_str(text)]


def _interleaved(probe, code_points):
    return "".join(probe + chr(c) for c in code_points)


@pytest.mark.parametrize("order", ["ascending", "descending", "shuffled", "after-a", "after-1", "after-han",
                                   "after-cyrillic"])
def test_every_code_point_cuts_as_tokenizers(tmp_path, order):
    tok, _ = _word_level(tmp_path, pre_tokenizers.UnicodeScripts())
    if order == "ascending":
        text = "".join(map(chr, CODE_POINTS))
    elif order == "descending":
        text = "".join(map(chr, reversed(ASSIGNED)))
    elif order == "shuffled":
        cps = ASSIGNED[:]
        random.Random(7).shuffle(cps)
        text = "".join(map(chr, cps))
    else:  # each code point after a probe character: it cuts unless it is "any" or of the probe's script
        probe = {"after-a": "a", "after-1": "1", "after-han": "漢", "after-cyrillic": "ж"}[order]
        text = _interleaved(probe, ASSIGNED)
    got, want = _pieces(tok, text), _reference_pieces(text)
    if got != want:
        cuts_got, cuts_want = {b for b, _ in got}, {b for b, _ in want}
        first = sorted(cuts_got ^ cuts_want)[:8]
        pytest.fail(f"{len(cuts_got ^ cuts_want)} cuts differ, first at characters "
                    + ", ".join(f"U+{ord(text[i]):04X} after U+{ord(text[i - 1]):04X}" for i in first))


def test_texts_match_tokenizers(tmp_path, offset_texts):  # noqa: F811
    tok, ref = _word_level(tmp_path, pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                              pre_tokenizers.UnicodeScripts()]))
    bare, _ = _word_level(tmp_path, pre_tokenizers.UnicodeScripts(), name="bare.json")
    texts = offset_texts + ["どこで生れ。Yes", "Apples are りんご 林檎", " leading spaces go", "   ", "", "a",
                            " \u0300x", "\u0300 a", "ab 漢字 cd", "x\u30fcy", "Ελληνικά and English",
                            "مرحبا hello שלום", "🦙 emoji 🥰 after"]
    for text, enc in zip(texts, ref.encode_batch(texts)):
        assert _pieces(tok, text) == [tuple(o) for o in enc.offsets], text[:60]
        assert _pieces(bare, text) == _reference_pieces(text), text[:60]
