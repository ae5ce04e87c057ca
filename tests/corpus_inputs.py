"""Paths that cannot be a corpus, one of each kind, for the tests of every command that reads text."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# kind: what the one-line error must say
REFUSED = {
    "fifo": "FIFO",
    "dev-zero": "character device",
    "dev-urandom": "character device",
    "directory": "directory",
    "socket": "socket",
    "unreadable": "ermission denied",
    "not-utf8": "byte offset 7",
    "missing": "does not exist",
}


@contextlib.contextmanager
def refused_input(kind: str, folder: Path) -> Iterator[Path]:
    """A path of ``kind`` (see REFUSED) inside ``folder``; a FIFO gets a writer after 5 s, so a reader that
    wrongly blocks on it fails the test instead of hanging it."""
    if kind == "fifo":
        path = folder / "pipe"
        os.mkfifo(path)
        unblock = threading.Timer(5.0, lambda: os.close(os.open(path, os.O_WRONLY)))
        unblock.daemon = True
        unblock.start()
        try:
            yield path
        finally:
            unblock.cancel()
    elif kind in ("dev-zero", "dev-urandom"):
        yield Path("/dev/" + kind.removeprefix("dev-"))
    elif kind == "directory":
        yield folder
    elif kind == "socket":
        path = folder / "sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(path))
            yield path
    elif kind == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads every file: no unreadable file can be made")
        path = folder / "secret.txt"
        path.write_text("hidden\n")
        path.chmod(0)
        yield path
    elif kind == "not-utf8":
        path = folder / "latin1.txt"
        path.write_bytes(b"abc caf\xe9 ok\n" * 3)
        yield path
    else:
        yield folder / "missing.txt"
