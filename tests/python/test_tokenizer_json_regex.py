"""tokenizer.json regexes mean what they mean to Hugging Face tokenizers
(Oniguruma, Ruby syntax), which PCRE2 reads differently unless llmkit
translates them (oniguruma_to_pcre2): a Split pre-tokenizer's pieces against
tokenizers' own on every code point assigned in Unicode 14 below U+20000 (and
every 16th CJK ideograph of plane 2)."""

import json
import unicodedata

import pytest

import llmkit

tokenizers = pytest.importorskip("tokenizers")

# Each row differs between Oniguruma and PCRE2 without the translation (\w with
# Alphabetic and Latin-1's superscripts, \b on it, \h hex digits, POSIX classes
# as Unicode properties, [[:punct:]] with symbols, bare script names as Script,
# && classes and nesting, ^ and $ per line, (?m) as dot-all, \u escapes), or is
# a real model's pattern (BLOOM's nested class) or one of that shape (long
# explicit script ranges, full-width punctuation and `\s+$`, as DeepSeek's).
PATTERNS = [
    r"\w+",
    r"\b\w|\B.",
    r"\h+|\H",
    r"[[:word:]]+|[[:space:]]+|[[:punct:]]+",
    r"[[:graph:]]+|[[:print:]]+|[[:cntrl:]]+|[[:^space:]x]+",
    r"[[:upper:]]+|[[:digit:]]+|[[:blank:]]+|[[:xdigit:]]+",
    r"\p{Han}+|\p{Greek}+|\p{^Latin}",
    r"[\w&&[^a-z]]+|[^\W\d]+|\W+",
    r"\w+$|^\w|\n",
    r"(?m)x.+|\u0041|\u00e9",
    r" ?[^(\s|[.,!?…。，、।۔،])]+",
    r"""[\r\n]|\s?[A-Za-zµÀ-ÖØ-öø-ƺͰ-ͳΆ-ΊΌΎ-ΡΣ-ϵА-ӿ]+|\s?[!-/:-~！-／：-～‘-‟　-。]+|\s+$|[一-龥぀-ゟ゠-ヿ가-힣]+|\p{N}{1,3}""",
]


def _texts():
    # Plane 2 holds CJK ideographs only, which every pattern treats alike: every 16th of them.
    cps = [cp for cp in range(0x30000) if not 0xD800 <= cp <= 0xDFFF and unicodedata.category(chr(cp)) != "Cn"
           and (cp < 0x20000 or cp % 16 == 0)]
    if int(unicodedata.unidata_version.split(".")[0]) > 14:  # PCRE2 10.42 has Unicode 14 tables
        cps = [cp for cp in cps if unicodedata.ucd_3_2_0.category(chr(cp)) != "Cn"]
    texts = ["".join(f"b{chr(c)}x{chr(c)}\u0301 1{chr(c)}\n" for c in cps[k:k + 4000])
             for k in range(0, len(cps), 4000)]
    return texts + ["naïve cafe\u0301 a\u203fb ab\n", "ab\n\ncd\n", "deadbeefxyz 0x1F", "Straße ǅemal ﬁle。\n"]


def _split_tokenizer(pattern):
    """A tokenizer.json whose Split (isolated) pieces each become one [UNK] token, so the offsets are the pieces."""
    return {"version": "1.0", "added_tokens": [], "normalizer": None,
            "pre_tokenizer": {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
            "post_processor": None, "decoder": None,
            "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}


@pytest.mark.reference_sweep
@pytest.mark.parametrize("which", range(len(PATTERNS)))
def test_split_pieces_equal_tokenizers_on_every_code_point(which):
    pattern = PATTERNS[which]
    ref = tokenizers.pre_tokenizers.Split(tokenizers.Regex(pattern), behavior="isolated")
    tok = llmkit.Tokenizer.from_bytes(json.dumps(_split_tokenizer(pattern)).encode())
    for text in _texts():
        want = [span for _, span in ref.pre_tokenize_str(text)]
        _, offsets = tok.encode_with_offsets(text, unit="chars")
        got = [(int(a), int(b)) for a, b in offsets]
        if got != want:
            k = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
            pytest.fail(f"{pattern!r}: piece {k}: tokenizers {[text[a:b] for a, b in want[k:k + 3]]}, "
                        f"llmkit {[text[a:b] for a, b in got[k:k + 3]]}")
