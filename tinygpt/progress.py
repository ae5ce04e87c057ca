"""Progress output for long work: a tqdm bar on a terminal, plain log lines otherwise.

Logs stay readable in CI and files (no carriage returns); a person at a
terminal sees a live bar with the loss.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

from tqdm import tqdm


class Progress:
    """Counts steps towards ``total``; ``write`` prints a line without breaking the bar.

    ``enabled=None`` shows the bar when stderr is a terminal. Use it as a
    context manager (or call ``close``) so the bar is cleared at the end.
    """

    def __init__(
        self, total: int, initial: int = 0, enabled: bool | None = None, desc: str = "", unit: str = "it"
    ) -> None:
        """``unit="B"`` counts bytes: the bar shows MB done, MB/s and the time left."""
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar: Any = (
            tqdm(
                total=total,
                initial=initial,
                desc=desc,
                dynamic_ncols=True,
                leave=False,
                unit=unit,
                unit_scale=unit == "B",
            )
            if enabled
            else None
        )

    def update(self, n: int = 1, **values: float) -> None:
        if self._bar is not None:
            if values:
                self._bar.set_postfix({k: f"{v:.4f}" for k, v in values.items()}, refresh=False)
            self._bar.update(n)

    def write(self, message: str, log: Callable[[str], None] | None = print) -> None:
        """Print a line above the bar on a terminal, else hand it to ``log`` (None: drop it)."""
        if self._bar is not None:
            self._bar.write(message)
        elif log is not None:
            log(message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
