"""Writing files so that a crash or ``kill -9`` never leaves half of one.

Every file tinygpt writes for later (checkpoint pointers, tokenizers, the
corpus cache) goes through here: the bytes go to a temporary file in the same
directory, are fsync'ed, and one ``os.replace`` swaps them in. A reader sees
the old file or the new one, never a mixture.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

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


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; the file gets the usual permissions (umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it private; these files need not be
        fsync_write(Path(tmp), data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
