"""Tokenizers: byte-level BPE with tiktoken's rank files and rules.

Implementation module; import :class:`Tokenizer` from :mod:`llmkit`.
"""

from __future__ import annotations

import base64
import os
from typing import (AbstractSet, Any, Collection, Dict, FrozenSet, Iterable, List, Literal, Mapping, NamedTuple,
                    Optional, Sequence, Tuple, Union)

from . import _args, _llmkit

__all__ = ["PairEncoding", "Tokenizer", "TokenizerDecoder", "train_bpe"]

_SpecialSet = Union[Literal["all"], AbstractSet[str], Collection[str]]


def _repair_surrogates(text: str) -> str:
    """``text`` with lone surrogates (not encodable as UTF-8) replaced by U+FFFD, as tiktoken does."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class Tokenizer:
    """A byte-level BPE tokenizer: OpenAI's tiktoken algorithm over llmkit's C core.

    Load one with :meth:`from_tiktoken`::

        tok = llmkit.Tokenizer.from_tiktoken("cl100k_base.tiktoken", "cl100k_base")
        ids = tok.encode("hello world")            # [15339, 1917]
        tok.decode(ids)                            # 'hello world'
        tok.encode_batch(["a", "b c"], num_threads=4)

    Encoding follows tiktoken exactly, special tokens included: a special token
    such as ``<|endoftext|>`` found in the text raises :class:`ValueError`
    unless it is allowed (``allowed_special``), in which case it becomes its
    id, or unless ``disallowed_special=()`` asks for it to be encoded as
    ordinary text. No BOS or EOS is added.

    A tokenizer never changes once loaded: any number of Python threads may
    use one at once, and encoding and decoding release the GIL. It pickles
    (multiprocessing, DataLoader workers) with its file's bytes, so worker
    processes need no access to the file; see :meth:`__reduce__`.
    """

    __slots__ = ("_native", "_name", "_specials", "_text_tokens", "_source")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("use llmkit.Tokenizer.from_tiktoken(path, encoding) to load a tokenizer")

    @classmethod
    def from_tiktoken(cls, path: Union[str, "os.PathLike[str]"], encoding: str) -> "Tokenizer":
        """Loads a tiktoken rank file (``base64(token) rank`` per line) with a named preset.

        Args:
            path: The rank file, e.g. ``cl100k_base.tiktoken`` or Llama 3's ``tokenizer.model``.
            encoding: The preset that supplies the pre-tokenizer regex and the
                special tokens: ``"r50k_base"`` (or ``"gpt2"``), ``"p50k_base"``,
                ``"cl100k_base"``, ``"o200k_base"``, ``"llama3"`` or ``"qwen2"``.

        Raises:
            LlmkitError: The file cannot be read (status ``LLMKIT_ERROR_IO``) or is
                malformed (``LLMKIT_ERROR_FORMAT``, the message gives ``path:line``).
            ValueError: ``encoding`` is not a known preset (the message lists them).
        """
        if not isinstance(encoding, str):
            raise TypeError(f"encoding must be str, got {type(encoding).__name__}")
        path_str = os.fsdecode(os.fspath(path))
        self = object.__new__(cls)
        self._native = _llmkit.Tokenizer.from_tiktoken(path_str, encoding)
        self._name = encoding
        self._specials = None
        self._text_tokens = False
        self._source = _FileSource.of_file(path_str, encoding)
        return self

    @classmethod
    def from_file(cls, path: Union[str, "os.PathLike[str]"], encoding: Optional[str] = None) -> "Tokenizer":
        """Loads a tokenizer file, its format detected from the content.

        A Hugging Face ``tokenizer.json`` gives the ids of the ``tokenizers``
        package (normalizer, pre-tokenizer, BPE/WordPiece/WordLevel/Unigram model,
        post-processor, decoder and added tokens); a tiktoken rank file needs
        its preset in ``encoding`` (see :meth:`from_tiktoken`)::

            tok = llmkit.Tokenizer.from_file("bert-base-uncased/tokenizer.json")
            tok.encode("Hello world", add_special_tokens=True)  # [101, 7592, 2088, 102]

        Tokens of every format but tiktoken are strings: :meth:`id_to_token`
        returns ``str`` (e.g. ``"Ġthe"`` for GPT-2) and :meth:`decode` runs the
        file's decoder.

        Raises:
            LlmkitError: The file cannot be read (``LLMKIT_ERROR_IO``), is
                malformed (``LLMKIT_ERROR_FORMAT``, the message names the JSON
                path) or uses a component llmkit lacks (``LLMKIT_ERROR_UNSUPPORTED``).
            ValueError: A rank file without ``encoding``, or ``encoding`` given for another format.
        """
        if encoding is not None and not isinstance(encoding, str):
            raise TypeError(f"encoding must be str or None, got {type(encoding).__name__}")
        path_str = os.fsdecode(os.fspath(path))
        self = object.__new__(cls)
        self._native = _llmkit.Tokenizer.from_file(path_str, encoding or "")
        self._name = encoding or os.path.basename(path_str)
        self._specials = None
        self._text_tokens = not encoding
        self._source = _FileSource.of_file(path_str, encoding)
        return self

    @classmethod
    def from_bytes(cls, data: Union[bytes, bytearray, memoryview], encoding: Optional[str] = None) -> "Tokenizer":
        """Loads a tokenizer from the bytes of a tokenizer file, as :meth:`from_file` loads the file.

        For a vocabulary embedded in a program or fetched over the network; the
        format is detected from the content (a tiktoken rank file needs its
        preset in ``encoding``). Nothing of ``data`` is kept.

        Raises:
            LlmkitError: Malformed bytes (``LLMKIT_ERROR_FORMAT``; messages call them ``(memory)``)
                or a component llmkit lacks (``LLMKIT_ERROR_UNSUPPORTED``).
            ValueError: A rank file without ``encoding``, or ``encoding`` given for another format.
        """
        if encoding is not None and not isinstance(encoding, str):
            raise TypeError(f"encoding must be str or None, got {type(encoding).__name__}")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        blob = bytes(data)
        self = object.__new__(cls)
        self._native = _llmkit.Tokenizer.from_memory(blob, encoding or "")
        self._name = encoding or "(memory)"
        self._specials = None
        self._text_tokens = not encoding
        self._source = _FileSource(None, encoding, blob)
        return self

    @classmethod
    def from_ranks(
        cls,
        mergeable_ranks: Union[Mapping[bytes, int], bytes, bytearray, memoryview, str, "os.PathLike[str]"],
        pat_str: str,
        special_tokens: Optional[Mapping[str, int]] = None,
        *,
        name: str = "custom",
    ) -> "Tokenizer":
        """A tiktoken encoding given in full, as ``tiktoken.Encoding(name, pat_str=,
        mergeable_ranks=, special_tokens=)`` makes one.

        For rank files whose regex or special tokens are not a preset's, and
        for a preset extended with tokens of its own (tiktoken's README example)::

            base = llmkit.Tokenizer.from_tiktoken("cl100k_base.tiktoken", "cl100k_base")
            tok = llmkit.Tokenizer.from_ranks(
                "cl100k_base.tiktoken", "cl100k_base",
                {**base.special_tokens, "<|im_start|>": 100264, "<|im_end|>": 100265},
                name="cl100k_im")

        A live ``tiktoken.Encoding`` converts with
        ``Tokenizer.from_ranks(enc._mergeable_ranks, enc._pat_str, enc._special_tokens, name=enc.name)``.
        The ids are tiktoken's for the same three arguments. The tokenizer
        pickles (its ranks, pattern and special tokens travel).

        Args:
            mergeable_ranks: ``{token bytes: rank}`` (what ``tiktoken.load.load_tiktoken_bpe``
                returns), the bytes of a ``.tiktoken`` file, or its path.
            pat_str: The pre-tokenizer regex, meaning what it means to tiktoken's
                regex engine (Rust's ``regex``: its ``\\w``, ``\\b``, POSIX classes,
                script names, ``&&``/``--`` class operations and ``$``; llmkit
                translates it for PCRE2), or a preset name whose regex to use
                (``"cl100k_base"``, ``"o200k_base"``, ...).
            special_tokens: ``{text: id}``; no id may be a rank.
            name: What :attr:`name` gives.

        Raises:
            ValueError: An invalid regex, an empty or repeated special token, a negative id.
            LlmkitError: Malformed ranks or a special id that is a rank (``LLMKIT_ERROR_FORMAT``).
        """
        if isinstance(mergeable_ranks, (bytes, bytearray, memoryview)):
            data = bytes(mergeable_ranks)
        elif isinstance(mergeable_ranks, (str, os.PathLike)):
            with open(mergeable_ranks, "rb") as f:
                data = f.read()
        elif isinstance(mergeable_ranks, Mapping):
            data = _ranks_text(mergeable_ranks)
        else:
            raise TypeError(f"mergeable_ranks must be a dict of bytes to int, bytes or a path, got "
                            f"{type(mergeable_ranks).__name__}")
        if not isinstance(pat_str, str):
            raise TypeError(f"pat_str must be str, got {type(pat_str).__name__}")
        if not isinstance(name, str):
            raise TypeError(f"name must be str, got {type(name).__name__}")
        specials = [(_special_name(k, "special_tokens"), _args.int32(v, f"special_tokens[{k!r}]"))
                    for k, v in (special_tokens or {}).items()]
        return cls._wrap_byte_level(_llmkit.Tokenizer.from_ranks(data, pat_str, specials), name)

    @classmethod
    def _wrap_byte_level(cls, native: Any, name: str) -> "Tokenizer":
        """A Tokenizer around a native byte-level BPE tokenizer that no file stands for (pickled by its ranks)."""
        self = object.__new__(cls)
        self._native = native
        self._name = name
        self._specials = None
        self._text_tokens = False  # byte-level BPE: tokens are bytes
        self._source = None
        return self

    # ------------------------------------------------------------------ info

    @property
    def name(self) -> str:
        """The preset name the tokenizer was loaded with (e.g. ``"cl100k_base"``)."""
        return self._name

    @property
    def vocab_size(self) -> int:
        """The number of token ids: the largest id, special tokens included, plus one.

        Where a rank file has gaps (p50k_base, cl100k_base, o200k_base) some ids
        below it name no token; :meth:`id_to_token` raises for those.
        """
        return self._native.vocab_size

    @property
    def n_vocab(self) -> int:
        """Alias of :attr:`vocab_size` (tiktoken's name)."""
        return self._native.vocab_size

    @property
    def special_tokens(self) -> Dict[str, int]:
        """The special tokens and their ids, e.g. ``{"<|endoftext|>": 100257, ...}`` (a new dict)."""
        if self._specials is None:
            self._specials = self._native.special_tokens()
        return dict(self._specials)

    @property
    def special_tokens_set(self) -> FrozenSet[str]:
        """The special tokens' texts (tiktoken's name)."""
        if self._specials is None:
            self._specials = self._native.special_tokens()
        return frozenset(self._specials)

    def token_to_id(self, token: Union[str, bytes]) -> Optional[int]:
        """The id of a token given its exact text (UTF-8) or bytes, regular or special; None if no token has them.

        ``token_to_id(b" world")`` gives 1917 in cl100k_base; ``token_to_id("<|endoftext|>")`` 100257.
        """
        if isinstance(token, str):
            data = token.encode("utf-8", "surrogateescape")
        elif isinstance(token, (bytes, bytearray, memoryview)):
            data = bytes(token)
        else:
            raise TypeError(f"token must be str or bytes, got {type(token).__name__}")
        i = self._native.token_to_id(data)
        return None if i < 0 else i

    def id_to_token(self, id: int) -> Union[str, bytes]:
        """One token: its bytes for a tiktoken encoding (a special token's text in
        UTF-8), its string for other formats (loaded by :meth:`from_file`).

        Raises :class:`ValueError` for an id that names no token.
        """
        raw = self._native.id_to_token(_args.int32(id, "id"))
        return raw.decode("utf-8", "surrogateescape") if self._text_tokens else raw

    # -------------------------------------------------------------- encoding

    def _special_args(
        self, allowed_special: _SpecialSet, disallowed_special: _SpecialSet
    ) -> Tuple[List[str], bool, bool, Optional[List[str]]]:
        """(allowed names, allow all, special as text, names to refuse in Python) for the native calls."""
        if isinstance(allowed_special, str):
            if allowed_special != "all":
                raise ValueError(f'allowed_special must be "all" or a set of special tokens, got {allowed_special!r}')
            allow_all, allowed = True, []
        else:
            allow_all = False
            allowed = [_special_name(s, "allowed_special") for s in allowed_special]
        if isinstance(disallowed_special, str):
            if disallowed_special != "all":
                raise ValueError(
                    f'disallowed_special must be "all" or a collection of special tokens, got {disallowed_special!r}')
            return allowed, allow_all, False, None
        # The C library knows "every special token not allowed is an error" and
        # "every one is text"; an explicit list (tiktoken allows one) is checked
        # here, as tiktoken does: any occurrence of a listed text is an error.
        refuse = [_special_name(s, "disallowed_special") for s in disallowed_special]
        return allowed, allow_all, True, refuse or None

    @staticmethod
    def _refuse(texts: Iterable[str], refuse: Optional[List[str]]) -> None:
        if not refuse:
            return
        for text in texts:
            hits = [(text.find(s), s) for s in refuse]
            hits = [h for h in hits if h[0] >= 0]
            if hits:
                pos, token = min(hits, key=lambda h: (h[0], -len(h[1])))
                raise ValueError(
                    f"text contains the special token {token} at character {pos}, which is disallowed: "
                    "allow it to encode it as its id, or leave it out of disallowed_special to encode it as text")

    def encode(
        self,
        text: str,
        *,
        allowed_special: _SpecialSet = frozenset(),
        disallowed_special: _SpecialSet = "all",
        add_special_tokens: bool = False,
    ) -> List[int]:
        """Encodes text into token ids, with tiktoken's rules for special tokens.

        Args:
            text: The text. Lone surrogates (which UTF-8 cannot hold) become
                U+FFFD first, as in tiktoken.
            allowed_special: Special tokens that become their id where they occur:
                a set of their texts, or ``"all"``.
            disallowed_special: Special tokens whose presence is an error:
                ``"all"`` (default: every special token not allowed), or a
                collection of their texts; special tokens neither allowed nor
                disallowed (with ``()``: all that are not allowed) are encoded as
                ordinary text.
            add_special_tokens: Add the special tokens the tokenizer's
                post-processor puts around a text (BERT's ``[CLS]``/``[SEP]``,
                a BOS), like ``tokenizers``' ``encode(add_special_tokens=True)``.
                tiktoken encodings have none.

        Returns:
            The ids (no BOS/EOS unless ``add_special_tokens``).

        Raises:
            ValueError: The text contains a disallowed special token (the message
                names it and its position), or ``allowed_special`` names a text
                that is not a special token of this tokenizer (tiktoken would
                ignore it; llmkit refuses it to catch typos).
        """
        allowed, allow_all, as_text, refuse = self._special_args(allowed_special, disallowed_special)
        self._refuse((text,), refuse)
        try:
            return self._native.encode(text, allowed, allow_all, as_text, bool(add_special_tokens))
        except UnicodeEncodeError:
            return self._native.encode(_repair_surrogates(text), allowed, allow_all, as_text, bool(add_special_tokens))

    def encode_ordinary(self, text: str) -> List[int]:
        """Encodes text with special tokens treated as ordinary text (tiktoken's ``encode_ordinary``)."""
        return self.encode(text, disallowed_special=())

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        num_threads: int = 0,
        allowed_special: _SpecialSet = frozenset(),
        disallowed_special: _SpecialSet = "all",
        add_special_tokens: bool = False,
    ) -> List[List[int]]:
        """Encodes many texts at once, in parallel in C++ with the GIL released.

        Each result equals ``encode(text, ...)`` with the same special-token
        arguments. Texts are shared out whole among ``num_threads`` worker
        threads (0: llmkit's default, :func:`llmkit.get_num_threads`).

        Raises:
            ValueError: As :meth:`encode`; the message begins ``texts[i]:`` for
                the first text that fails.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of str, not a str (use encode for one text)")
        texts = list(texts)
        threads = _args.count(num_threads, "num_threads")
        allowed, allow_all, as_text, refuse = self._special_args(allowed_special, disallowed_special)
        self._refuse(texts, refuse)
        try:
            return self._native.encode_batch(texts, allowed, allow_all, as_text, threads, bool(add_special_tokens))
        except UnicodeEncodeError:
            fixed = [_repair_surrogates(t) if isinstance(t, str) else t for t in texts]
            return self._native.encode_batch(fixed, allowed, allow_all, as_text, threads, bool(add_special_tokens))

    def encode_ordinary_batch(self, texts: Sequence[str], *, num_threads: int = 0) -> List[List[int]]:
        """:meth:`encode_batch` with special tokens treated as ordinary text (tiktoken's ``encode_ordinary_batch``)."""
        return self.encode_batch(texts, num_threads=num_threads, disallowed_special=())

    def encode_single_token(self, text_or_bytes: Union[str, bytes]) -> int:
        """The id of exactly one token, regular or special, given its text or bytes (tiktoken's name).

        Raises :class:`KeyError` when no token has exactly these bytes, as tiktoken does;
        :meth:`token_to_id` returns None instead.
        """
        i = self.token_to_id(text_or_bytes)
        if i is None:
            raise KeyError(text_or_bytes)
        return i

    # -------------------------------------------------------------- decoding

    def decode_bytes(self, ids: Any) -> bytes:
        """The tokens' bytes back to back: a list/tuple of ints or an integer array in, bytes out.

        Raises :class:`ValueError` for an id that names no token.
        """
        if not isinstance(ids, (list, tuple)):
            ids = _args.token_ids(ids, "ids")
        return self._native.decode_bytes(ids)

    def decode(self, ids: Any, errors: str = "replace", skip_special_tokens: bool = False) -> str:
        """Decodes ids into text.

        Bytes that are not valid UTF-8 (a multi-byte character cut between
        tokens) are handled by ``errors`` as in :meth:`bytes.decode`: the
        default ``"replace"`` puts U+FFFD there, like tiktoken's ``decode``;
        ``"strict"`` raises :class:`UnicodeDecodeError`. For a tokenizer.json
        the file's decoder runs (its output is always valid UTF-8), and
        ``skip_special_tokens=True`` leaves special tokens out, as
        ``tokenizers``' ``decode`` does by default.
        """
        if skip_special_tokens:
            special = set(self.special_tokens.values())
            if not isinstance(ids, (list, tuple)):
                ids = _args.token_ids(ids, "ids").tolist()
            ids = [i for i in ids if i not in special]
        return self.decode_bytes(ids).decode("utf-8", errors)

    def decode_batch(self, batch: Sequence[Any], *, errors: str = "replace") -> List[str]:
        """:meth:`decode` of each list of ids (tiktoken's ``decode_batch``)."""
        return [self.decode(ids, errors=errors) for ids in batch]

    def decode_bytes_batch(self, batch: Sequence[Any]) -> List[bytes]:
        """:meth:`decode_bytes` of each list of ids (tiktoken's ``decode_bytes_batch``)."""
        return [self.decode_bytes(ids) for ids in batch]

    def decode_single_token_bytes(self, token: int) -> bytes:
        """The bytes one token stands for (a special token's UTF-8 text), as tiktoken gives them.

        For a byte-level BPE loaded from a tokenizer.json these are the decoded
        bytes (``b" the"``), where :meth:`id_to_token` gives the vocabulary
        string (``"Ġthe"``). Raises :class:`KeyError` for an id that names no token.
        """
        try:
            return self._native.decode_bytes([_args.int32(token, "token")])
        except ValueError as e:
            raise KeyError(token) from e

    def decode_tokens_bytes(self, tokens: Sequence[int]) -> List[bytes]:
        """:meth:`decode_single_token_bytes` of each id (tiktoken's ``decode_tokens_bytes``)."""
        return [self.decode_single_token_bytes(t) for t in tokens]

    @property
    def eot_token(self) -> int:
        """The id of ``<|endoftext|>`` (tiktoken's name); :class:`KeyError` if the tokenizer has none."""
        return self.special_tokens["<|endoftext|>"]

    @property
    def max_token_value(self) -> int:
        """The largest id, special tokens included (tiktoken's name): :attr:`vocab_size` - 1."""
        return self._native.vocab_size - 1

    def is_special_token(self, token: int) -> bool:
        """Whether the id is one of :attr:`special_tokens`' (tiktoken's name)."""
        if self._specials is None:
            self._specials = self._native.special_tokens()
        return _args.as_int(token, "token") in self._specials.values()

    def token_byte_values(self) -> List[bytes]:
        """The bytes of every regular (not special) token, sorted (tiktoken's ``token_byte_values``)."""
        if self._specials is None:
            self._specials = self._native.special_tokens()
        special = set(self._specials.values())
        out = []
        for i in range(self._native.vocab_size):
            if i in special:
                continue
            try:
                out.append(self._native.decode_bytes([i]))
            except ValueError:  # a gap in the ranks (p50k_base, cl100k_base, o200k_base)
                pass
        return sorted(out)

    def encode_with_offsets(
        self,
        text: str,
        *,
        allowed_special: _SpecialSet = frozenset(),
        disallowed_special: _SpecialSet = "all",
        unit: str = "bytes",
        add_special_tokens: bool = False,
    ) -> Tuple[List[int], Any]:
        """Encodes text and gives each token its span in the text.

        Returns ``(ids, offsets)``: the ids of :meth:`encode` with the same
        arguments, and an int64 array of shape ``(len(ids), 2)`` whose row ``i``
        is ``[start, end)`` of token ``i``. With ``unit="bytes"`` (default) the
        offsets count bytes of the text's UTF-8. For byte-level BPE the spans
        tile it and ``text.encode()[start:end] == tok.id_to_token(id)``; a
        token holding part of a multi-byte character covers just those bytes.
        For SentencePiece they are sentencepiece's own ``begin``/``end``: a
        piece covers the input its normalized text came from, the byte-fallback
        pieces of one character are empty spans at its start but the last,
        which covers the character, and BOS/EOS are empty spans at the start /
        end. For tokenizer.json files they are Hugging Face ``tokenizers``'
        ``Encoding.offsets`` (with ``unit="chars"`` exactly; in bytes
        otherwise): a token covers the input its normalized text came from,
        tokens sharing one character (byte-level, byte fallback) each cover it,
        and post-processor tokens are empty spans at 0.
        With ``unit="chars"`` they count characters (``text[start:end]``):
        a span cut inside a character is widened to the whole character, so
        neighbouring tokens that share a character both cover it.

        Raises:
            ValueError: As :meth:`encode`, or an unknown ``unit``.
            LlmkitError: The tokenizer kind cannot give offsets (status ``LLMKIT_ERROR_UNSUPPORTED``).
        """
        if unit not in ("bytes", "chars"):
            raise ValueError(f'unit must be "bytes" or "chars", got {unit!r}')
        allowed, allow_all, as_text, refuse = self._special_args(allowed_special, disallowed_special)
        self._refuse((text,), refuse)
        args = (allowed, allow_all, as_text, bool(add_special_tokens), unit == "chars")
        try:
            return self._native.encode_with_offsets(text, *args)
        except UnicodeEncodeError:
            return self._native.encode_with_offsets(_repair_surrogates(text), *args)

    def encode_pair(
        self,
        text_a: str,
        text_b: str,
        *,
        allowed_special: _SpecialSet = frozenset(),
        disallowed_special: _SpecialSet = "all",
        add_special_tokens: bool = False,
        return_offsets: bool = False,
        unit: str = "bytes",
    ) -> "PairEncoding":
        """Encodes a pair of texts into one sequence: a sentence pair, a reranker's query and document.

        As ``tokenizers``' ``encode(text_a, text_b)``: each text is encoded as
        :meth:`encode` does (same special-token arguments), the ids of
        ``text_a`` typed 0 and those of ``text_b`` typed 1. With
        ``add_special_tokens`` a tokenizer.json's post-processor lays them out
        with its pair template (BERT: ``[CLS] a [SEP] b [SEP]`` typed
        ``0 ... 0 1 ... 1``; RoBERTa: ``<s> a </s></s> b </s>`` all typed 0);
        other kinds put each text's own special tokens (a SentencePiece BOS)
        around it.

        Returns:
            A :class:`PairEncoding`: ``ids``, ``type_ids`` (BERT's
            token_type_ids), ``sequence_ids`` (0 or 1 per id, ``None`` for an
            added special token, as ``tokenizers`` gives them) and, with
            ``return_offsets=True``, ``offsets``: an int64 array ``(len(ids), 2)``
            of each id's span in ITS OWN text, in ``unit`` as
            :meth:`encode_with_offsets` gives them (added tokens: empty spans
            at 0); else ``None``.

        Raises:
            ValueError: As :meth:`encode`, the message naming the text
                (``text_a:`` or ``text_b:``); an unknown ``unit``.
            LlmkitError: The post-processor's template has no pair template, or
                offsets were asked of a kind that has none (status
                ``LLMKIT_ERROR_UNSUPPORTED``).
        """
        if unit not in ("bytes", "chars"):
            raise ValueError(f'unit must be "bytes" or "chars", got {unit!r}')
        allowed, allow_all, as_text, refuse = self._special_args(allowed_special, disallowed_special)
        self._refuse((text_a, text_b), refuse)
        args = (allowed, allow_all, as_text, bool(add_special_tokens), bool(return_offsets), unit == "chars")
        try:
            ids, type_ids, sequence_ids, spans = self._native.encode_pair(text_a, text_b, *args)
        except UnicodeEncodeError:
            text_a, text_b = _repair_surrogates(text_a), _repair_surrogates(text_b)
            ids, type_ids, sequence_ids, spans = self._native.encode_pair(text_a, text_b, *args)
        return PairEncoding(ids, type_ids, sequence_ids, spans)

    @property
    def pattern(self) -> str:
        """The pre-tokenizer regex of a byte-level BPE tokenizer (tiktoken's ``pat_str``), as llmkit runs it.

        ``\\s`` and ``\\S`` appear spelled out as Unicode White_Space (what
        tiktoken's regex engine means by them). Raises :class:`LlmkitError`
        (``LLMKIT_ERROR_UNSUPPORTED``) for other formats.
        """
        return self._native.pattern()

    def to_tiktoken(self) -> bytes:
        """The ranks as the bytes of a ``.tiktoken`` file (what :meth:`save_tiktoken` writes).

        With :attr:`pattern` and :attr:`special_tokens` it rebuilds the tokenizer
        through :meth:`from_ranks`. Byte-level BPE only (``LLMKIT_ERROR_UNSUPPORTED`` otherwise).
        """
        return self._native.to_tiktoken()

    def save_tiktoken(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes the ranks as a tiktoken ``.tiktoken`` file (``base64(token) rank`` per line).

        Special tokens and the pattern are not stored, as in tiktoken's files:
        load it back with :meth:`from_tiktoken` and a preset of the same pattern.
        """
        self._native.save_tiktoken(os.fsdecode(os.fspath(path)))

    def save_tokenizer_json(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes a Hugging Face ``tokenizer.json`` that ``tokenizers.Tokenizer.from_file`` loads with the same ids."""
        self._native.save_tokenizer_json(os.fsdecode(os.fspath(path)))

    def decoder(self) -> "TokenizerDecoder":
        """A streaming decoder for one stream of ids: see :class:`TokenizerDecoder`."""
        d = object.__new__(TokenizerDecoder)
        d._native = self._native.decoder()
        return d

    def __repr__(self) -> str:
        return f"<llmkit.Tokenizer {self._name!r} vocab_size={self.vocab_size}>"

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        """Pickling (multiprocessing, DataLoader workers, copy): the loaded file's bytes travel with it.

        The file is read again when pickling and must be the one loaded (same
        size and modification time), so the copy encodes exactly as this one.
        A GGUF file holds a whole model, so a tokenizer loaded from one pickles
        its path instead, and the other process must be able to read it. A
        tokenizer that no file stands for (from :func:`train_bpe` or
        :meth:`from_ranks`) pickles its ranks, pattern and special tokens.
        """
        src = self._source
        if src is None:
            return (_restore_from_ranks, (self.to_tiktoken(), self.pattern, self.special_tokens, self._name))
        return (_restore_tokenizer, (src.content(), src.path, src.encoding, self._name))


class PairEncoding(NamedTuple):
    """What :meth:`Tokenizer.encode_pair` gives: ids with their types, texts and spans."""

    ids: List[int]
    """The token ids."""
    type_ids: List[int]
    """BERT's token_type_ids (the post-processor's template types), one per id."""
    sequence_ids: List[Optional[int]]
    """0 or 1: the text each id came from; ``None`` for a special token the post-processor added."""
    offsets: Any
    """int64 array ``(len(ids), 2)`` of spans in each id's own text, or ``None`` unless asked for."""


class _FileSource:
    """Where a tokenizer came from, for pickling: a file (path, size and time
    when loaded) or the bytes it was loaded from (``data``)."""

    __slots__ = ("path", "encoding", "data", "stamp")

    def __init__(self, path: Optional[str], encoding: Optional[str], data: Optional[bytes]) -> None:
        self.path, self.encoding, self.data = path, encoding, data
        self.stamp: Optional[Tuple[int, int]] = None

    @classmethod
    def of_file(cls, path: str, encoding: Optional[str]) -> "_FileSource":
        # Absolute: a GGUF tokenizer is unpickled by path, maybe in another working directory.
        src = cls(os.path.abspath(path), encoding, None)
        st = os.stat(src.path)
        src.stamp = (st.st_size, st.st_mtime_ns)
        return src

    def content(self) -> Optional[bytes]:
        """The bytes (None for a GGUF file, pickled by path); raises if the file changed since loading."""
        if self.data is not None or self.path is None:
            return self.data
        with open(self.path, "rb") as f:
            st = os.fstat(f.fileno())
            if (st.st_size, st.st_mtime_ns) != self.stamp:
                raise RuntimeError(f"cannot pickle the tokenizer: {self.path} changed since it was loaded")
            if f.read(4) == b"GGUF":
                return None
            f.seek(0)
            return f.read()


def _restore_tokenizer(data: Optional[bytes], path: Optional[str], encoding: Optional[str], name: str) -> Tokenizer:
    """Unpickles a :class:`Tokenizer` (see :meth:`Tokenizer.__reduce__`): from its bytes, or a GGUF file by path."""
    tok = Tokenizer.from_bytes(data, encoding) if data is not None else Tokenizer.from_file(str(path), encoding)
    tok._name = name
    return tok


def _restore_from_ranks(ranks: bytes, pattern: str, special_tokens: Dict[str, int], name: str) -> Tokenizer:
    """Unpickles a byte-level BPE :class:`Tokenizer` that no file stands for (see :meth:`Tokenizer.__reduce__`)."""
    return Tokenizer.from_ranks(ranks, pattern, special_tokens, name=name)


def _ranks_text(ranks: Mapping[bytes, int]) -> bytes:
    """The ``.tiktoken`` text of ``{token bytes: rank}``."""
    lines = []
    for token, rank in ranks.items():
        if not isinstance(token, (bytes, bytearray)):
            raise TypeError(f"mergeable_ranks keys must be bytes, got {type(token).__name__}")
        r = _args.as_int(rank, "mergeable_ranks value")
        lines.append(base64.b64encode(token) + b" " + str(r).encode())
    lines.append(b"")
    return b"\n".join(lines)


def _special_name(s: object, what: str) -> str:
    if not isinstance(s, str):
        raise TypeError(f"{what} must hold str, got {type(s).__name__}")
    return s


class TokenizerDecoder:
    """Streaming decoder: feed ids as they are sampled, get back only complete characters.

    A byte-level BPE token can hold part of a UTF-8 character (an emoji is
    often two or three tokens), so ``tok.decode([id])`` one id at a time would
    print broken characters. The decoder holds back the bytes of a character
    until its last byte arrives::

        dec = tok.decoder()
        for id in ids:
            print(dec.feed([id]), end="")
        print(dec.flush())

    Bytes that can never become valid UTF-8 become U+FFFD as in
    ``bytes.decode("utf-8", "replace")`` (one per maximal invalid subpart); an
    incomplete character left at :meth:`flush` is one U+FFFD. So the pieces
    joined always equal ``tok.decode(ids)`` (tiktoken's ``decode``), however
    the ids are split. Make one with :meth:`Tokenizer.decoder`; one decoder
    serves one stream (threads may share the tokenizer, each with its own decoder).
    """

    __slots__ = ("_native",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("use Tokenizer.decoder() to make a streaming decoder")

    def feed(self, ids: Any) -> str:
        """Feeds one id or a sequence of ids; returns the text they complete (may be "").

        Raises :class:`ValueError` for an id that names no token; the decoder is then unchanged.
        """
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"ids must be an int or a sequence of ints, got {type(ids).__name__}")
        if isinstance(ids, int):
            ids = [_args.int32(ids, "ids")]
        elif not isinstance(ids, (list, tuple)):
            ids = _args.token_ids(ids, "ids")
        return self._native.feed(ids)

    def flush(self) -> str:
        """Ends the stream: returns the held-back bytes ("" or U+FFFD) and resets the decoder."""
        return self._native.flush()


def train_bpe(
    texts_or_path: Union[str, "os.PathLike[str]", Sequence[Union[str, bytes]]],
    vocab_size: int,
    pattern: str = "cl100k_base",
    special_tokens: Optional[Sequence[str]] = None,
    progress: Union[bool, Any] = False,
    num_threads: int = 0,
) -> Tokenizer:
    """Trains a byte-level BPE tokenizer with minbpe's semantics (see llmkit_bpe_train in llmkit.h).

    Args:
        texts_or_path: A path (``str`` or path-like) of a UTF-8 text file,
            trained on as one text; or a sequence of texts (``str`` or UTF-8
            ``bytes``), each split on its own.
        vocab_size: Tokens to learn, the 256 single bytes included (>= 256).
        pattern: The pre-tokenizer regex, or a preset name whose regex to use
            (``"cl100k_base"``, ``"o200k_base"``, ``"r50k_base"``, ``"llama3"``, ``"qwen2"``).
        special_tokens: Texts given ids ``vocab_size``, ``vocab_size + 1``, ... in order.
        progress: ``True`` for a tqdm bar; a callable ``progress(done, total)``
            called after each merge (returning ``False`` cancels; an exception
            it raises cancels and propagates); ``False`` for none.
        num_threads: Threads that split a list of texts (0: llmkit's default).

    Returns:
        The tokenizer (its :attr:`Tokenizer.name` is ``"trained"``); save it with
        :meth:`Tokenizer.save_tiktoken` or :meth:`Tokenizer.save_tokenizer_json`.

    Raises:
        ValueError: ``vocab_size`` < 256, a bad pattern, invalid UTF-8, a repeated special token.
        LlmkitError: The callback cancelled (status ``LLMKIT_ERROR_CANCELLED``).
    """
    if isinstance(texts_or_path, (str, os.PathLike)):
        with open(texts_or_path, "rb") as f:
            texts: List[Union[str, bytes]] = [f.read()]
    elif isinstance(texts_or_path, (bytes, bytearray)):
        raise TypeError("pass a list of texts or a path, not bytes")
    else:
        texts = list(texts_or_path)
    size = _args.as_int(vocab_size, "vocab_size")
    if size < 0:
        raise ValueError(f"vocab_size must be at least 256, got {size}")
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be str, got {type(pattern).__name__}")
    specials = [_special_name(s, "special_tokens") for s in (special_tokens or [])]
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=max(size - 256, 0), desc="BPE merges", unit="merge")

        def callback(done: int, total: int) -> None:
            bar.update(done - bar.n)
    elif progress is False or progress is None:
        callback = None
    elif callable(progress):
        callback = progress
    else:
        raise TypeError("progress must be True, False or a callable(done, total)")
    try:
        native = _llmkit.train_bpe(texts, size, pattern, specials, callback, _args.count(num_threads, "num_threads"))
    finally:
        if bar is not None:
            bar.close()
    return Tokenizer._wrap_byte_level(native, "trained")
