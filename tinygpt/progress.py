"""Progress output for long work: a bar on a terminal, plain log lines otherwise.

Logs stay readable in CI and files (no carriage returns); a person at a
terminal sees a live bar (tqdm, if installed) with the loss.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


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
                self._bar = None

    def update(self, n: int = 1, **values: float) -> None:
        if self._bar is not None:
            self._bar.update(n)
            if values:
                self._bar.set_postfix({k: f"{v:.4f}" for k, v in values.items()}, refresh=False)

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
