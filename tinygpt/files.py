"""Files: written so that a crash or ``kill -9`` never leaves half of one, read without trusting them.

Every file tinygpt writes for later (checkpoint pointers, tokenizers, the
corpus cache) goes through here: the bytes go to a temporary file in the same
directory, are fsync'ed, and one ``os.replace`` swaps them in. A reader sees
the old file or the new one, never a mixture.

Every file tinygpt reads that may come from anywhere (a checkpoint, a run's
pointers, a Hugging Face model directory, a tokenizer, a dataset's manifest) is
opened through ``open_regular``, under one rule: only a regular file is read (a
FIFO would block, a device may never end), and a file named inside a directory
(``member``) is read from inside it: a symbolic link is followed only when its
target stays in the directory. The caller names the error its layer raises.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from tinygpt.errors import TinyGPTError


def umask() -> int:
    """The process's file-creation mask (read without changing it for good)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and flush it to the disk before returning."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside directory ``path`` durable (best effort: not every OS allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block ends: for short steps that must not be cut in two.

    Python acts on a signal between any two bytecodes, so without this an interrupt can land just
    after ``mkdtemp`` made a directory and before the cleanup that knows its name (a prepare test
    caught that gap). Held signals are delivered, in order, as the block exits.
    """
    held: list[int] = []
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():  # only it runs Python's handlers
        for name in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(name) is not None:  # None: set outside Python, cannot be put back
                previous[name] = signal.signal(name, lambda number, _frame: held.append(number))
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)
        for number in held:
            signal.raise_signal(number)


@contextlib.contextmanager
def scratch(path: Path, suffix: str, *, directory: bool) -> Iterator[Path]:
    """A new private file or directory ``.<name>.<random><suffix>`` beside ``path``, deleted if the block raises.

    What the block renames away (publishes) is not touched; an interrupt never leaves one behind.
    """
    made: Path | None = None
    try:
        with interrupts_held():  # one that comes meanwhile is raised as this ends, ``made`` known
            if directory:
                made = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent))
            else:
                fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
                os.close(fd)
                made = Path(name)
        yield made
    except BaseException:
        if made is not None and directory:
            shutil.rmtree(made, ignore_errors=True)  # only ever what mkdtemp made just now
        elif made is not None:
            made.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; the file gets the usual permissions (umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with scratch(path, ".tmp", directory=False) as tmp:
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it private; these files need not be
        fsync_write(tmp, data)
        os.replace(tmp, path)
    fsync_dir(path.parent)


def publish_directory(tmp: Path, path: Path) -> None:
    """Swap the complete directory ``tmp`` in at ``path`` with renames, deleting only what this call made.

    The caller has checked that a directory already at ``path`` may be replaced. It is first
    renamed onto an empty directory ``.<name>.<random>.old`` that ``mkdtemp`` creates here, a name
    no one else can hold, then ``tmp`` is renamed to ``path`` and the old version deleted. Between
    the two renames ``path`` is absent and ``moved_aside(path)`` finds the previous version (readers
    of checkpoints look there); a failure puts it back.
    """
    if not (path.exists() or path.is_symlink()):
        os.replace(tmp, path)  # one that appeared meanwhile and holds anything makes this fail: nothing lost
        fsync_dir(path.parent)
        return
    swapped = False
    try:
        with interrupts_held():  # the two renames are never cut apart by a Ctrl-C
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            try:
                os.replace(path, old)  # onto our own empty directory (POSIX rename replaces an empty one)
            except BaseException:
                old.rmdir()
                raise
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)  # failed between the renames: put the old one back
                raise
            swapped = True
    finally:
        if swapped:  # even when a Ctrl-C held during the swap is raised now
            fsync_dir(path.parent)
            shutil.rmtree(old, ignore_errors=True)


def moved_aside(path: Path) -> list[Path]:
    """Where ``publish_directory`` may have left earlier versions of ``path`` (a kill between its renames), newest first.

    ``.<name>.old`` is where tinygpt 0.1 left them; it is read, never deleted, here.
    """
    found = [*path.parent.glob(f".{glob.escape(path.name)}.*.old"), path.with_name(f".{path.name}.old")]
    candidates = []
    for folder in found:
        with contextlib.suppress(OSError):
            if folder.is_dir() and not folder.is_symlink():
                candidates.append((folder.stat().st_mtime_ns, folder))
    return [folder for _, folder in sorted(candidates, reverse=True)]


def listing(names: list[str], shown: int = 5) -> str:
    """A few names for an error message: ``a, b, c, d, e and 3 more``."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def json_bytes(data: Any) -> bytes:
    """``data`` as stable, ASCII-only JSON text (sorted keys, one trailing newline)."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Replace ``path`` with JSON ``data`` so readers see the old file or the new one, never half."""
    write_bytes_atomic(path, json_bytes(data))


def parse_json(data: bytes, source: str | Path, error: type[TinyGPTError], kind: str) -> Any:
    """JSON from bytes; bad UTF-8, bad syntax or absurd nesting raises ``error`` naming ``source``.

    ``kind`` completes "... to be {kind}" in the messages, e.g. "a tinygpt file".
    """
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{source} is not UTF-8 text ({exc}); the file is corrupt") from None
    except RecursionError:
        raise error(f"{source} nests JSON too deeply to be {kind}") from None
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        raise error(f"{source} is not valid JSON ({exc}); it may be truncated or corrupt") from None


# Reading files that may come from anywhere --------------------------------------------------
def member(folder: Path, name: str, error: type[TinyGPTError], where: str = "the directory") -> Path | None:
    """``folder/name``, or None if it is absent; a symbolic link out of ``folder`` (``where``) raises ``error``."""
    file = folder / name
    try:
        info = file.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(f"cannot read {file}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        target = file.resolve()
        if not target.is_relative_to(folder.resolve()):
            raise error(
                f"{file} is a symbolic link out of {where} (to {target}); refusing it: "
                f"copy the real file into {where}"
            )
    return file


def open_regular(file: Path, error: type[TinyGPTError]) -> BinaryIO:
    """``file`` open for reading if it is a regular file (a link is followed); anything else raises ``error``.

    The open itself cannot block: it is non-blocking until the opened file is known to be
    regular, so a FIFO swapped in after a check is refused too.
    """
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{file} does not exist; check the path") from None
    except OSError as exc:
        raise error(f"cannot read {file}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise error(f"{file} is not a regular file (a FIFO, device or directory); refusing it")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_file(
    file: Path, limit: int | None, error: type[TinyGPTError], kind: str = "a tinygpt file"
) -> bytes:
    """The bytes of the regular file ``file``, refusing one of more than ``limit`` bytes before reading it.

    ``kind`` completes "it is not {kind}" in the message about the size, e.g. "a tokenizer file".
    """
    with open_regular(file, error) as f:
        size = os.fstat(f.fileno()).st_size
        if limit is not None and size > limit:
            raise error(
                f"{file} is {size:,} bytes, larger than the {limit:,} {kind} may have; it is not {kind}"
            )
        try:
            data = f.read() if limit is None else f.read(limit + 1)
        except OSError as exc:
            raise error(f"cannot read {file}: {exc.strerror}") from None
    if limit is not None and len(data) > limit:
        raise error(f"{file} grew past {limit:,} bytes while being read; it is not {kind}")
    return data
