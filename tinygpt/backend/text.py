"""Text as code points on the host: the character tokenizer's vocabulary and lookups, vectorized with NumPy.

A character tokenizer maps each Unicode code point to an id. Done per character in
Python that costs about 0.1 s per MB; here a text becomes one array of code points
(its UTF-32 encoding read by ``np.frombuffer``) and a dense table code point -> id
looks all of them up at once. ASCII text, which most corpora are in long stretches,
takes a shorter path still: its bytes are its code points, and ``bytes.translate``
maps or deletes them at memory speed.

This lives in ``backend/`` because it is NumPy code; the tokenizer above it only
asks for ids. Everything here runs on the host, whatever backend trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_CODE_POINT = 0x10FFFF
UNKNOWN = 0xFFFFFFFF  # the table's entry for a character outside the vocabulary
_SAMPLE = 1 << 16  # bytes sampled to guess a chunk's distinct bytes before one exact pass


class UnknownCharacter(LookupError):
    """A character outside the table's vocabulary; ``position`` counts characters from 0."""

    def __init__(self, position: int, char: str) -> None:
        super().__init__(position, char)
        self.position = position
        self.char = char


def code_points(text: str) -> np.ndarray:
    """The code points of ``text``: (N,) uint32 (a lone surrogate keeps its value)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _new_bytes(data: bytes, known: bytes) -> bytes:
    """The byte values in ``data`` that are not in ``known``, sorted.

    ``translate`` deletes the known values at C speed; a strided sample usually
    names the rest, and one ``bincount`` settles what the sample missed.
    """
    rest = data.translate(None, known)
    if not rest:
        return b""
    found = set(rest[:: max(1, len(rest) // _SAMPLE)])
    rest = rest.translate(None, bytes(found))
    if rest:
        found.update(np.flatnonzero(np.bincount(np.frombuffer(rest, dtype=np.uint8), minlength=256)).tolist())
    return bytes(sorted(found))


class CharacterSet:
    """The distinct characters of a text that arrives in pieces (str or whole-character UTF-8 bytes)."""

    def __init__(self) -> None:
        self._ascii = b""  # the ASCII bytes seen so far
        self._present = np.zeros(0, dtype=bool)  # code point -> seen, for the rest (grown on demand)

    def add_utf8(self, data: bytes) -> None:
        """Add the characters of ``data``: UTF-8 that ends on a character boundary."""
        # Deleting ASCII bytes never splits a multi-byte character: what is left stays UTF-8.
        rest = data.translate(None, self._ascii)
        if not rest:
            return
        sampled = bytes(b for b in set(rest[:: max(1, len(rest) // _SAMPLE)]) if b < 128)
        if sampled:  # the ASCII a sample shows: gone from ``rest`` before any per-character work
            self._ascii = bytes(sorted(self._ascii + sampled))
            rest = rest.translate(None, sampled)
        if rest.isascii():
            self._ascii = bytes(sorted(self._ascii + _new_bytes(rest, self._ascii)))
        else:
            self._add_code_points(code_points(rest.decode("utf-8", "surrogatepass")))
            ascii_seen = np.flatnonzero(self._present[:128]).astype(np.uint8).tobytes()
            self._ascii = bytes(sorted(set(self._ascii + ascii_seen)))

    def add_text(self, text: str) -> None:
        """Add the characters of ``text``."""
        if text.isascii():
            self.add_utf8(text.encode("ascii"))
        else:
            self.add_utf8(text.encode("utf-8", "surrogatepass"))

    def _add_code_points(self, points: np.ndarray) -> None:
        top = int(points.max())
        if top >= self._present.shape[0]:
            grown = np.zeros(top + 1, dtype=bool)
            grown[: self._present.shape[0]] = self._present
            self._present = grown
        new = points[~self._present[points]]
        if new.size:
            self._present[np.unique(new)] = True

    def characters(self) -> list[str]:
        """Every character seen, sorted by code point."""
        points = set(self._ascii) | set(np.flatnonzero(self._present).tolist())
        return [chr(p) for p in sorted(points)]


def distinct_characters(text: str) -> list[str]:
    """The distinct characters of ``text``, sorted by code point."""
    found = CharacterSet()
    found.add_text(text)
    return found.characters()


class CharacterTable:
    """Code point -> id for a sorted vocabulary of characters (id = position in ``chars``).

    Text is looked up as UTF-8 bytes. Deleting the continuation bytes (0x80-0xBF)
    leaves exactly one byte per character, so one ``bytes.translate`` gives every
    ASCII character its id and marks the others; only those others, few in most
    corpora, go through the dense code point table.
    """

    def __init__(self, chars: Sequence[str]) -> None:
        # A loop per vocabulary entry, never per character of a text.
        points = np.array([ord(c) for c in chars], dtype=np.int64)
        self._table = np.full(int(points.max()) + 2 if points.size else 1, UNKNOWN, dtype=np.uint32)
        self._table[points] = np.arange(points.size, dtype=np.uint32)
        self._last = self._table.shape[0] - 1  # stays UNKNOWN: every larger code point is clipped onto it
        # The vocabulary is sorted, so ASCII characters have the smallest ids (< 128), which
        # leaves room for two marks: an ASCII character outside the vocabulary, and any other.
        ascii_ids = [_UNSEEN_ASCII] * 128 + [_OTHER] * 128
        for index, point in enumerate(points.tolist()):
            if point < 128:
                ascii_ids[point] = index
        self._ascii = bytes(ascii_ids)

    def _lookup(self, data: bytes) -> np.ndarray:
        """Ids of whole-character UTF-8 ``data``: (N,) uint32, UNKNOWN where a character is not in the vocabulary."""
        if data.isascii():
            mapped = np.frombuffer(data.translate(self._ascii), dtype=np.uint8)
            ids = mapped.astype(np.uint32)
        else:
            # Continuation bytes deleted: one byte per character.
            mapped = np.frombuffer(data.translate(self._ascii, _CONTINUATION), dtype=np.uint8)
            ids = mapped.astype(np.uint32)
            others = code_points(data.translate(None, _ASCII).decode("utf-8", "surrogatepass"))
            ids[mapped == _OTHER] = np.take(self._table, np.minimum(others, self._last))
        ids[mapped == _UNSEEN_ASCII] = UNKNOWN
        return ids

    def encode(self, text: str, replacement: int | None = None, skip: bool = False) -> list[int]:
        """Ids of ``text``. An unseen character raises ``UnknownCharacter``, is dropped (``skip``),
        or becomes ``replacement``."""
        data = text.encode("ascii") if text.isascii() else text.encode("utf-8", "surrogatepass")
        ids = self._lookup(data)
        unknown = ids == UNKNOWN
        if unknown.any():
            if skip:
                ids = ids[~unknown]
            elif replacement is not None:
                ids = np.where(unknown, np.uint32(replacement), ids)
            else:
                position = int(np.argmax(unknown))
                raise UnknownCharacter(position, text[position])
        result: list[int] = ids.tolist()
        return result

    def encode_utf8(self, data: bytes, dtype: str) -> np.ndarray:
        """Ids of whole-character UTF-8 ``data`` as a host array of ``dtype`` (for token files).

        Written in ``dtype`` directly, never through a uint32 array of the whole text: one
        byte per character for a vocabulary of up to 256.
        """
        ascii_only = data.isascii()
        mapped = data.translate(self._ascii) if ascii_only else data.translate(self._ascii, _CONTINUATION)
        unknown = [mapped.index(_UNSEEN_ASCII_BYTE)] if _UNSEEN_ASCII_BYTE in mapped else []
        ids = np.frombuffer(mapped, dtype=np.uint8)
        if not ascii_only:
            where = np.flatnonzero(ids == _OTHER)  # the characters beyond ASCII, in order
            others = code_points(data.translate(None, _ASCII).decode("utf-8", "surrogatepass"))
            found = np.take(self._table, np.minimum(others, self._last))
            if found.size and int(found.max()) == UNKNOWN:
                unknown.append(int(where[np.argmax(found == UNKNOWN)]))
        if unknown:
            position = min(unknown)
            raise UnknownCharacter(position, data.decode("utf-8", "surrogatepass")[position])
        if ascii_only:
            return ids.astype(dtype, copy=False)
        out = ids.astype(dtype)  # a copy: ``mapped`` is read-only
        out[where] = found
        return out


_UNSEEN_ASCII, _OTHER = 0xFE, 0xFF
_UNSEEN_ASCII_BYTE = bytes([_UNSEEN_ASCII])
_CONTINUATION = bytes(range(0x80, 0xC0))
_ASCII = bytes(range(128))
