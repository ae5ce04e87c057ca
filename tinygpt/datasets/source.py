"""A corpus read as a stream: whole-character chunks of bounded size, never the whole text in memory.

The text is what ``data.read_text`` would return, chunk by chunk: UTF-8, with
``\\r\\n`` read as ``\\n``. A chunk ends after a line break where there is one in
reach (so no character and no ``\\r\\n`` is ever split between two chunks), else
at the last character boundary. Offsets count bytes of the file, so an invalid
byte is reported where a hex editor would find it.

``scan`` reads the stream once for what must be known before anything is written:
the SHA-256 of the file (and of the text, which differs where ``\\r\\n`` was
normalized), the number of characters (the split point), and, for a char
tokenizer, the set of characters.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tinygpt.backend.text import CharacterSet
from tinygpt.data import load_corpus, open_corpus_file
from tinygpt.errors import ConfigError, CorpusError

# Read at a time: big enough for full speed, small enough to be a rounding error in memory.
CHUNK_BYTES = 16 << 20


@dataclass
class Chunk:
    """A stretch of the text: ``data`` is normalized UTF-8 ending on a character boundary."""

    offset: int  # where it starts in the file, in bytes
    raw_size: int  # its size in the file (before \r\n -> \n)
    data: bytes
    characters: int


@dataclass
class Scan:
    """What one pass over a source tells: sizes, digests, characters (and which, when asked)."""

    file_bytes: int
    sha256: str  # of the file's bytes
    text_sha256: str  # of the normalized text's UTF-8 (what ``tinygpt train --text`` records)
    text_bytes: int
    characters: int
    chunks: list[tuple[int, int, int]] = field(default_factory=list)  # (offset, raw size, characters) each
    character_set: CharacterSet | None = None


class Digest:
    """SHA-256 computed on a worker thread: hashlib lets go of the GIL, so hashing a chunk overlaps the
    work on it (the next update waits for the one before, so the bytes go in order)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="tinygpt-sha256")
        self._pending: Future[None] | None = None

    def update(self, data: bytes) -> None:
        self._wait()
        self._pending = self._pool.submit(self._hash.update, data)

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def copy(self) -> Any:
        """The hash so far, as a plain hashlib object."""
        self._wait()
        return self._hash.copy()

    def hexdigest(self) -> str:
        self._wait()
        self._pool.shutdown()
        return self._hash.hexdigest()


class TextSource:
    """A corpus to prepare: a text file (checked at once: see ``data.open_corpus_file``) or a named corpus."""

    def __init__(self, text_path: str | os.PathLike[str] | None = None, corpus: str | None = None) -> None:
        if (text_path is None) == (corpus is None):
            raise ConfigError(
                "give exactly one of a text file (--text PATH) and a corpus name (--corpus NAME)"
            )
        self.path = None if text_path is None else Path(text_path)
        self.corpus = corpus
        self._text: bytes | None = None
        if self.path is not None:
            file, self.size = open_corpus_file(self.path)  # refuses a FIFO, device, directory... now
            file.close()
            if self.size == 0:
                raise CorpusError(
                    f"text file {str(self.path)!r} is empty; give a text file with some text in it"
                )
        else:
            assert corpus is not None
            self._text = load_corpus(corpus).encode("utf-8")  # an installed corpus is small: a few MB
            self.size = len(self._text)

    def describe(self) -> str:
        return f"text file {str(self.path)!r}" if self.path is not None else f"the {self.corpus!r} corpus"

    def record(self) -> dict[str, Any]:
        """Where the text came from, for the manifest."""
        return {"path": str(self.path.resolve())} if self.path is not None else {"corpus": self.corpus}

    def _open(self) -> BinaryIO:
        if self._text is not None:
            return io.BytesIO(self._text)
        file, size = open_corpus_file(self.path)  # type: ignore[arg-type]
        if size != self.size:
            file.close()
            raise CorpusError(
                f"{self.describe()} changed size while being prepared ({self.size:,} -> {size:,} bytes)"
            )
        return file

    def raw_chunks(self) -> Iterator[tuple[int, bytes]]:
        """(offset, bytes) of the file, each ending after a line break or, failing one in a chunk,
        after a complete character (never between ``\\r`` and ``\\n``)."""
        with self._open() as file:
            offset, carry = 0, b""
            while True:
                block = file.read(CHUNK_BYTES)
                if not block:
                    break
                if b"\n" in block:  # the usual case: whole lines, one copy
                    end = _cut(block)
                    chunk, carry = b"".join((carry, memoryview(block)[:end])), block[end:]
                else:  # a line longer than a chunk: cut it where a character ends
                    data = carry + block
                    end = _cut(data)
                    chunk, carry = data[:end], data[end:]
                if chunk:
                    yield offset, chunk
                    offset += len(chunk)
            if offset + len(carry) != self.size:
                raise CorpusError(f"{self.describe()} changed size while being read; prepare it again")
            if carry:
                yield offset, carry

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes of the file from ``offset`` (a piece of a sample)."""
        with self._open() as file:
            file.seek(offset)
            return file.read(size)

    def chunks(
        self,
        on_bytes: Callable[[int], None] | None = None,
        digest: Any = None,
        scanned: list[tuple[int, int, int]] | None = None,
    ) -> Iterator[Chunk]:
        """The whole text as validated, normalized ``Chunk`` s. ``on_bytes`` hears each chunk's file size,
        ``digest`` (a hashlib-like object) its bytes. With ``scanned``, a ``Scan``'s chunk table, the text
        is not decoded again: each chunk must be where the scan found it, with its character count."""
        for index, (offset, raw) in enumerate(self.raw_chunks()):
            if digest is not None:
                digest.update(raw)
            if scanned is None:
                yield self._chunk(offset, raw)
            else:
                if index >= len(scanned) or scanned[index][:2] != (offset, len(raw)):
                    raise CorpusError(f"{self.describe()} changed while being prepared; prepare it again")
                data = raw.replace(b"\r\n", b"\n") if b"\r" in raw else raw
                yield Chunk(offset, len(raw), data, scanned[index][2])
            if on_bytes is not None:
                on_bytes(len(raw))

    def _chunk(self, offset: int, raw: bytes) -> Chunk:
        """The normalized, validated chunk of the file's bytes ``raw`` at ``offset``."""
        data = raw.replace(b"\r\n", b"\n") if b"\r" in raw else raw
        if data.isascii():
            return Chunk(offset, len(raw), data, len(data))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise CorpusError(
                f"{self.describe()} is not valid UTF-8: bad byte {raw[err.start]:#04x} at byte offset "
                f"{offset + err.start:,}; re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`) or pick "
                "another file"
            ) from None
        return Chunk(offset, len(raw), data, len(text) - (len(raw) - len(data)))  # each \r\n was 2 characters

    def scan(self, characters: bool, on_bytes: Callable[[int], None] | None = None) -> Scan:
        """Read the whole source once: digests, sizes, the character count and (``characters``) the characters."""
        raw_hash, text_hash = Digest(), None
        found = CharacterSet() if characters else None
        table: list[tuple[int, int, int]] = []
        text_bytes = count = 0
        for offset, raw in self.raw_chunks():
            chunk = self._chunk(offset, raw)
            if text_hash is None and len(chunk.data) != len(raw):
                text_hash = raw_hash.copy()  # the text and the file agree up to the first \r\n
            raw_hash.update(raw)
            if text_hash is not None:
                text_hash.update(chunk.data)
            if found is not None:
                found.add_utf8(chunk.data)
            table.append((offset, len(raw), chunk.characters))
            text_bytes += len(chunk.data)
            count += chunk.characters
            if on_bytes is not None:
                on_bytes(len(raw))
        return Scan(
            file_bytes=self.size,
            sha256=raw_hash.hexdigest(),
            text_sha256=(text_hash or raw_hash).hexdigest(),
            text_bytes=text_bytes,
            characters=count,
            chunks=table,
            character_set=found,
        )


def _cut(data: bytes) -> int:
    """Where to end a chunk of ``data``: after its last line break, else before an unfinished character
    (and before a final ``\\r``)."""
    newline = data.rfind(b"\n")
    if newline >= 0:
        return newline + 1
    end = len(data)
    for back in range(1, 5):  # a UTF-8 character is at most 4 bytes: find the start of the last one
        if end - back < 0:
            break
        byte = data[end - back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the last character starts here
            size = 1 if byte < 0x80 else 2 if byte >> 5 == 6 else 3 if byte >> 4 == 14 else 4
            end = end if back >= size else end - back
            break
    if end > 0 and data[end - 1 : end] == b"\r":
        end -= 1  # keep a \r with the \n that may follow
    return end  # 0: all of ``data`` waits for what follows
