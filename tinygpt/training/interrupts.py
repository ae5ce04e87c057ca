"""Stopping cleanly: Ctrl-C and SIGTERM save a checkpoint instead of losing the work.

Terminals send SIGINT on Ctrl-C; ``docker stop``, Slurm (preemption, time
limits), systemd and MPI launchers send SIGTERM. Both only *ask* training to
stop: the current step finishes, a checkpoint is written, and
``TrainingInterrupted`` says how to resume. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

from tinygpt.errors import TinyGPTError

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, as shells report


class TrainingInterrupted(TinyGPTError):
    """Training stopped on a signal after saving a checkpoint; ``exit_code`` is 130 or 143."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class StopSignals:
    """``requested``: the stop asked for (SIGINT, SIGTERM or ``LanguageModelTrainer.request_stop``), if any.

    Inside ``deferred()`` the two signals set it instead of killing the process.
    Handlers are installed only where the process still has Python's defaults
    (a host application's own handlers are left alone) and only in the main thread.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.requested: signal.Signals | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.requested = signal.Signals(signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """For the block, Ctrl-C and SIGTERM only ask to stop (when enabled); the handlers before come back."""
        previous: dict[signal.Signals, Any] = {}
        defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
        with contextlib.suppress(ValueError):  # not the main thread: no handlers
            for signum, default in defaults.items():
                if self.enabled and signal.getsignal(signum) is default:
                    previous[signum] = signal.signal(signum, self._handle)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
