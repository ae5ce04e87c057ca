"""Writing files so that a crash or ``kill -9`` never leaves half of one.

Every file tinygpt writes for later (checkpoint pointers, tokenizers, the
corpus cache) goes through here: the bytes go to a temporary file in the same
directory, are fsync'ed, and one ``os.replace`` swaps them in. A reader sees
the old file or the new one, never a mixture.
"""

from __future__ import annotations

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
    """Swap the complete directory ``tmp`` in at ``path`` (replacing one there) with renames.

    Between the two renames ``path`` is absent and the previous version waits at
    ``.<name>.old`` (readers of checkpoints look there); a failure puts it back.
    """
    old = path.with_name(f".{path.name}.old")
    try:
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if old.exists() and not path.exists():  # failed between the renames: put the old one back
            os.replace(old, path)
        raise
    fsync_dir(path.parent)


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
