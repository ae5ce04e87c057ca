"""Character-level tokenizer: one Unicode code point per token.

A character tokenizer is the simplest thing that lets a language model read
text: the vocabulary is the sorted set of characters seen in the corpus, and a
token id is a character's position in that list. Sorting makes the mapping
depend only on *which* characters occur, so the same corpus always gives the
same ids.
"""

from __future__ import annotations

import collections
import os
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tinygpt import files
from tinygpt.backend.text import CharacterTable, UnknownCharacter, distinct_characters
from tinygpt.errors import TokenizerError
from tinygpt.files import write_json_atomic
from tinygpt.tokenizers.ids import checked_ids

UNKNOWN_CHOICES = ("error", "skip", "replace")
FORMAT = "tinygpt-char-tokenizer"
VERSION = 1
MAX_FILE_BYTES = 64 << 20  # a vocabulary of every Unicode code point is a few MB


def _describe(char: str) -> str:
    """Show a character unambiguously, e.g. ``'é' (U+00E9)``."""
    return f"{char!r} (U+{ord(char):04X})"


class CharTokenizer:
    """Maps each character of a fixed vocabulary to an integer id and back.

    By default a character outside the vocabulary is an error, because
    silently dropping or replacing text hides data problems. Pass
    ``unknown=c`` (``c`` must be in the vocabulary) to opt in to mapping every
    unseen character to ``c`` instead, e.g. when prompting a trained model
    with text that may contain characters it never saw.
    """

    def __init__(self, chars: Iterable[str], unknown: str | None = None) -> None:
        if isinstance(chars, str):
            chars = distinct_characters(chars)  # a whole text: found without a loop per character
        vocab = set()
        for char in chars:
            if not isinstance(char, str) or len(char) != 1:
                raise TokenizerError(
                    f"vocabulary entries must be single characters, got {char!r}; "
                    "build the tokenizer with CharTokenizer.from_text(text)"
                )
            vocab.add(char)
        if not vocab:
            raise TokenizerError("the vocabulary is empty; build it from non-empty text")
        self._chars: list[str] = sorted(vocab)
        self._ids: dict[str, int] = {c: i for i, c in enumerate(self._chars)}
        self._table = CharacterTable(self._chars)  # code point -> id for whole texts at once
        if unknown is not None and unknown not in self._ids:
            raise TokenizerError(
                f"unknown={unknown!r} is not in the vocabulary; "
                "choose a character that occurs in the training text, or None"
            )
        self._unknown = unknown

    @classmethod
    def from_text(cls, text: str, unknown: str | None = None) -> CharTokenizer:
        """Build the vocabulary from every distinct character in ``text`` (vectorized over its code points)."""
        return cls(distinct_characters(text), unknown=unknown)

    @property
    def table(self) -> CharacterTable:
        """The vectorized code point -> id lookup (``encode_utf8`` writes token files without Python ints)."""
        return self._table

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens; ids run from 0 to ``vocab_size - 1``."""
        return len(self._chars)

    @property
    def chars(self) -> list[str]:
        """The vocabulary in id order (a copy, so callers cannot corrupt it)."""
        return list(self._chars)

    @property
    def unknown(self) -> str | None:
        """The character unseen characters map to, or None to raise instead."""
        return self._unknown

    def __len__(self) -> int:
        return len(self._chars)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CharTokenizer):
            return NotImplemented
        return self._chars == other._chars and self._unknown == other._unknown

    def __hash__(self) -> int:
        return hash((tuple(self._chars), self._unknown))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, unknown={self._unknown!r})"

    def encode(self, text: str, on_unknown: str = "error") -> list[int]:
        """Turn text into token ids, one per character.

        A character outside the vocabulary is an error (``on_unknown="error"``), is
        dropped (``"skip"``), or becomes the tokenizer's ``unknown`` character, else a
        space (``"replace"``). ``tinygpt sample --unknown`` offers the same choice.
        """
        try:
            return self._table.encode(text)
        except UnknownCharacter as missing:
            first = missing
        if on_unknown not in UNKNOWN_CHOICES:
            raise TokenizerError(f"on_unknown must be one of {UNKNOWN_CHOICES}, got {on_unknown!r}")
        fallback = self._unknown
        if on_unknown == "replace" and fallback is None:
            fallback = " " if " " in self._ids else None
            if fallback is None:
                raise TokenizerError(
                    "on_unknown='replace' needs a character to replace with, and this vocabulary has no space; "
                    "use on_unknown='skip' (--unknown skip)"
                )
        if on_unknown == "skip":
            return self._table.encode(text, skip=True)
        if fallback is not None:
            return self._table.encode(text, replacement=self._ids[fallback])
        raise TokenizerError(
            f"character {_describe(first.char)} at position {first.position} is not in the tokenizer's vocabulary "
            f"of {self.vocab_size} characters; remove it, or drop or replace unseen characters "
            f"(on_unknown='skip' or 'replace'; tinygpt sample --unknown skip|replace){self._normalization_hint(text)}"
        )

    def _normalization_hint(self, text: str) -> str:
        """A hint when another Unicode normalization of ``text`` would fit the vocabulary (é vs e + ◌́)."""
        for form in ("NFC", "NFKC", "NFD"):
            try:
                self._table.encode(unicodedata.normalize(form, text))
            except UnknownCharacter:
                continue
            return (
                f". The text may differ from the training text only by its Unicode normalization: "
                f"unicodedata.normalize({form!r}, text) fits the vocabulary"
            )
        return ""

    def start_ids(self) -> list[int]:
        """A new line (the usual start of a speech) where the vocabulary has one, else its first character."""
        return [self._ids["\n"] if "\n" in self._ids else 0]

    def decode(self, ids: Iterable[int]) -> str:
        """Turn token ids (list, iterable, or array with ``.tolist()``) into text."""
        chars = self._chars
        return "".join(chars[token] for token in checked_ids(ids, len(chars)))

    def decode_stream(self, ids: Iterable[int]) -> Iterator[str]:
        """Text as ids arrive: every id is a whole character, so each is decoded at once."""
        for token in ids:
            yield self.decode([token])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description that ``from_dict`` turns back into a tokenizer."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "chars": list(self._chars),
            "unknown": self._unknown,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "tokenizer data") -> CharTokenizer:
        """Rebuild a tokenizer from ``to_dict`` output, checking every field."""

        def fail(problem: str) -> TokenizerError:
            return TokenizerError(f"{source}: {problem}")

        if not isinstance(data, dict):
            raise fail(f"expected a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise fail(
                f"format is {data.get('format')!r}, expected {FORMAT!r}; "
                "this is not a tinygpt character tokenizer file"
            )
        version = data.get("version")
        if type(version) is not int or version != VERSION:
            raise fail(
                f"version is {version!r}, this tinygpt reads version "
                f"{VERSION}; re-save the tokenizer with this version of tinygpt"
            )
        chars = data.get("chars")
        if not isinstance(chars, list):
            raise fail("'chars' must be a list of single characters")
        for index, char in enumerate(chars):
            if not isinstance(char, str) or len(char) != 1:
                raise fail(f"'chars' entry {index} is {char!r}, not a single character")
        if len(set(chars)) != len(chars):  # linear: a hostile file may hold a million entries
            dupes = sorted(c for c, n in collections.Counter(chars).items() if n > 1)
            shown = ", ".join(_describe(c) for c in dupes[:10]) + (" ..." if len(dupes) > 10 else "")
            raise fail(f"'chars' has {len(dupes)} duplicate entries: {shown}")
        if chars != sorted(chars):
            raise fail("'chars' is not sorted, so ids would not match training")
        unknown = data.get("unknown")
        if unknown is not None and not isinstance(unknown, str):
            raise fail(f"'unknown' must be a character or null, got {unknown!r}")
        try:
            return cls(chars, unknown=unknown)
        except TokenizerError as err:
            raise fail(str(err)) from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tokenizer as JSON, atomically so a crash never leaves half a file."""
        write_json_atomic(path, self.to_dict())  # ASCII JSON: any character round-trips

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CharTokenizer:
        """Read a tokenizer written by ``save``, explaining any problem with the file."""
        source, kind = f"tokenizer file {str(path)!r}", "a tokenizer file"
        raw = files.read_file(Path(path), MAX_FILE_BYTES, TokenizerError, kind)
        return cls.from_dict(files.parse_json(raw, source, TokenizerError, kind), source=source)
