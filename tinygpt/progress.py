"""Progress output for long work: a bar on a terminal, plain log lines otherwise.

Logs stay readable in CI and files (no carriage returns); a person at a
terminal sees a live bar with the loss: tqdm's if it is installed (the
``[progress]`` extra), else a one-line counter redrawn in place.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


class _LineBar:
    """A minimal stand-in for tqdm: ``desc  n/total  rate  key=value`` redrawn with ``\\r``."""

    def __init__(self, total: int, initial: int, desc: str, stream: TextIO, every_s: float = 0.25) -> None:
        self.total, self.n, self.desc, self.stream = total, initial, desc, stream
        self.every_s = every_s
        self.start_n, self.start_t, self.last_draw = initial, time.perf_counter(), 0.0
        self.postfix = ""

    def update(self, n: int) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last_draw >= self.every_s or self.n >= self.total:
            self.last_draw = now
            self._draw(now)

    def set_postfix(self, values: dict[str, str], refresh: bool = False) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def _draw(self, now: float) -> None:
        rate = (self.n - self.start_n) / max(now - self.start_t, 1e-9)
        text = f"{self.desc} {self.n}/{self.total} [{rate:.1f} it/s] {self.postfix}"
        self.stream.write("\r" + text[:119].ljust(119))
        self.stream.flush()

    def write(self, message: str) -> None:
        self.stream.write("\r" + " " * 119 + "\r")  # clear the bar, then log like tqdm.write
        self.stream.flush()
        print(message, flush=True)

    def close(self) -> None:
        self.stream.write("\r" + " " * 119 + "\r")
        self.stream.flush()


class Progress:
    """Counts steps towards ``total``; ``write`` prints a line without breaking the bar."""

    def __init__(self, total: int, initial: int = 0, enabled: bool | None = None, desc: str = "") -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar: Any = None
        if enabled:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=False)
            except ImportError:
                self._bar = _LineBar(total, initial, desc, sys.stderr)

    def update(self, n: int = 1, **values: float) -> None:
        if self._bar is not None:
            if values:
                self._bar.set_postfix({k: f"{v:.4f}" for k, v in values.items()}, refresh=False)
            self._bar.update(n)

    def write(self, message: str, log: Callable[[str], None] = print) -> None:
        """Print a line above the bar on a terminal, else hand it to ``log``."""
        if self._bar is not None:
            self._bar.write(message)
        else:
            log(message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
