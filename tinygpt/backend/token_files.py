"""Token files: a corpus's token ids on disk, written in pieces and read window by window with ``np.memmap``.

A prepared dataset keeps each split as one flat file of little-endian unsigned
integers (nanoGPT's ``train.bin``), in the smallest dtype that holds the
vocabulary. Training never loads such a file: it maps it and copies out the
few windows (B, T) each batch needs, which go to the device. Memory therefore
stays flat however large the corpus, and every process on a machine shares the
same pages of the operating system's cache.

A mapping keeps the pages it touched resident (they count in the process's
resident memory, though the kernel may reclaim them), and a page fault maps up
to 64 KB around it from the page cache: 3,000 random windows of 64 tokens left
170 MB resident. So the map is renewed once reads have touched about
``REMAP_BYTES``: random windows over a 40 GB file then never pile up. Where the
address space is limited below the file's size (``ulimit -v``), each window is
mapped on its own instead.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from tinygpt.backend.host import asarray
from tinygpt.backend.random import Generator
from tinygpt.backend.selection import current
from tinygpt.errors import CorpusError

TOKEN_DTYPES = ("uint8", "uint16", "uint32")
"""The dtypes a token file may have, smallest first."""

REMAP_BYTES = 32 << 20  # resident pages a map may gather before it is renewed (unmapping drops them)
FAULT_AROUND = 64 << 10  # what one page fault may map: Linux's fault_around_bytes


def token_dtype(vocab_size: int) -> str:
    """The smallest unsigned dtype that holds every id of a vocabulary: uint8, uint16 or uint32."""
    for name in TOKEN_DTYPES:
        if vocab_size <= 1 << (8 * np.dtype(name).itemsize):
            return name
    raise CorpusError(f"a vocabulary of {vocab_size:,} tokens does not fit in uint32 token files")


def itemsize(dtype: str) -> int:
    """Bytes per token of a token-file dtype."""
    return int(np.dtype(dtype).itemsize)


class TokenWriter:
    """Appends token ids to an open binary file as little-endian ``dtype``, counting them."""

    def __init__(self, file: BinaryIO, dtype: str) -> None:
        if dtype not in TOKEN_DTYPES:
            raise ValueError(f"token dtype must be one of {TOKEN_DTYPES}, got {dtype!r}")
        self._file = file
        self._dtype = np.dtype(dtype).newbyteorder("<")
        self.count = 0

    def write(self, ids: Any) -> None:
        """Append ``ids``: a host array, or a list of ints, or a list of such lists (one per encoded piece)."""
        if isinstance(ids, list) and ids and isinstance(ids[0], list):
            ids = np.concatenate([np.asarray(piece, dtype=self._dtype) for piece in ids])
        array = np.ascontiguousarray(ids, dtype=self._dtype)
        self._file.write(array.data.cast("B"))
        self.count += int(array.shape[0])

    def flush(self) -> None:
        """Write what is buffered through to the disk (before the file is published)."""
        self._file.flush()
        os.fsync(self._file.fileno())


class TokenFile:
    """The token ids (N,) of one split, read from a file of one unsigned dtype (``TOKEN_DTYPES``).

    ``shape`` makes it stand in for an id array where only the length is asked;
    ``random_windows`` and ``consecutive_windows`` give (B, T) batches on the
    current backend. Every id read is checked against ``vocab_size``: a corrupt
    or foreign file is refused where it is read, never fed to the embedding.
    """

    def __init__(self, path: str | os.PathLike[str], dtype: str, tokens: int, vocab_size: int) -> None:
        self.path = Path(path)
        if dtype not in TOKEN_DTYPES:
            raise CorpusError(f"{self.path}: token dtype {dtype!r} is not one of {', '.join(TOKEN_DTYPES)}")
        self.dtype = dtype
        self.vocab_size = vocab_size
        self._dtype = np.dtype(dtype).newbyteorder("<")
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            why = "a symbolic link" if os.path.islink(self.path) else exc.strerror
            raise CorpusError(
                f"cannot open token file {self.path}: {why}; prepare the dataset again"
            ) from None
        self._file = os.fdopen(fd, "rb")
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            self.close()
            raise CorpusError(f"token file {self.path} is not a regular file; prepare the dataset again")
        expected = tokens * self._dtype.itemsize
        if info.st_size != expected:
            self.close()
            raise CorpusError(
                f"token file {self.path} has {info.st_size:,} bytes, but the manifest promises {tokens:,} "
                f"{dtype} tokens ({expected:,} bytes): it is truncated or not this dataset's; prepare it again"
            )
        self._tokens = tokens
        self._map: np.ndarray | None = None
        self._touched = 0
        self._whole_map_fails = False

    @property
    def shape(self) -> tuple[int]:
        return (self._tokens,)

    def __len__(self) -> int:
        return self._tokens

    def close(self) -> None:
        self._map = None
        self._file.close()

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r}, {self.dtype}, {self._tokens:,} tokens)"

    # Reading ------------------------------------------------------------------------
    def _mapped(self, windows: int, tokens: int) -> np.ndarray | None:
        """The whole file mapped read-only, renewed after about REMAP_BYTES of reads (``windows`` stretches of
        ``tokens`` ids in all, now); None where it cannot be mapped."""
        self._touched += windows * FAULT_AROUND + tokens * self._dtype.itemsize
        if self._map is None or self._touched > REMAP_BYTES:
            self._touched = windows * FAULT_AROUND + tokens * self._dtype.itemsize
            self._map = None  # unmaps: the pages touched so far leave this process's resident set
            if not self._whole_map_fails:
                try:
                    self._map = np.memmap(self._file, dtype=self._dtype, mode="r", shape=(self._tokens,))
                except (OSError, ValueError):  # ENOMEM: the address space is limited below the file's size
                    self._whole_map_fails = True
        return self._map

    def _window(self, start: int, length: int) -> np.ndarray:
        """``length`` ids from ``start``, mapping just that stretch (when the whole file cannot be)."""
        return np.array(
            np.memmap(
                self._file, dtype=self._dtype, mode="r", offset=start * self._dtype.itemsize, shape=(length,)
            )
        )

    def read(self, start: int, stop: int) -> np.ndarray:
        """Ids ``start:stop`` as a host array of int64, checked against the vocabulary."""
        start, stop = max(0, start), min(stop, self._tokens)
        mapped = self._mapped(1, stop - start)
        ids = np.array(mapped[start:stop]) if mapped is not None else self._window(start, stop - start)
        return self._checked(ids.astype(np.int64), start)

    def gather(self, starts: np.ndarray, block_size: int) -> np.ndarray:
        """The windows ``ids[s : s + block_size]`` for each of ``starts`` (B,): a host (B, T) int64 array."""
        mapped = self._mapped(len(starts), len(starts) * block_size)
        if mapped is not None:
            # (B, T), copied out of the map
            windows = mapped[starts[:, None] + np.arange(block_size)[None, :]]
        else:
            windows = np.stack([self._window(int(s), block_size) for s in starts])
        return self._checked(windows.astype(np.int64), None, starts)

    def _checked(self, ids: np.ndarray, start: int | None, starts: np.ndarray | None = None) -> np.ndarray:
        if ids.size and int(ids.max()) >= self.vocab_size:
            flat = int(np.argmax(ids.reshape(-1) >= self.vocab_size))
            if start is None:
                assert starts is not None
                row, column = divmod(flat, ids.shape[1])
                position = int(starts[row]) + column
            else:
                position = start + flat
            raise CorpusError(
                f"token file {self.path}: id {int(ids.reshape(-1)[flat])} at token {position:,} is outside the "
                f"vocabulary of {self.vocab_size:,}; the file is corrupt or from another dataset: prepare it again"
            )
        return ids

    # Batches on the device ---------------------------------------------------------
    def random_windows(self, rng: Generator, block_size: int, batch_size: int) -> Any:
        """``batch_size`` random windows (B, T) on the current backend, index dtype.

        The starts are the very draws ``data.sample_windows`` makes for ids in memory, so
        a run gets the same batches from a token file as from the same ids on the device.
        """
        starts = rng.host_integers(0, self._tokens - block_size + 1, (batch_size,))
        return asarray(self.gather(starts, block_size), dtype=current().int_dtype, copy=False)

    def consecutive_windows(self, first: int, rows: int, block_size: int) -> Any:
        """Windows ``first .. first + rows - 1`` of the non-overlapping ones: (rows, T) on the current backend."""
        ids = self.read(first * block_size, (first + rows) * block_size)
        return asarray(ids.reshape(rows, block_size), dtype=current().int_dtype, copy=False)
