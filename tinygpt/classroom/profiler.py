"""Where does a training step spend its time? A profiler by kind of operation.

``Profiler`` is a context manager and an ``OpObserver`` (``tinygpt.tensor``):
while it is active, every operation marked with ``@op`` reports the time of
its outermost call, and the backward closure it created reports its own, and
the profiler adds them up by category::

    with Profiler() as prof:
        trainer.train_step(batch)
    print(prof.report())

Only the outermost op is counted: ``Tensor.mean`` calls ``sum`` and ``*``
inside, and all of it is charged to ``mean`` once. Whatever no op covers
(Python overhead, reshapes and slicing, the graph sort in ``backward()``,
data loading, checkpoints) is reported as "other".

On a GPU operations only queue work; the profiler then synchronises the
device around every timed call so the times are real, which itself slows the
run down a little.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from tinygpt import backend
from tinygpt.tensor import OpObserver, observe_ops

CATEGORIES = ("matmul", "attention", "normalisation", "elementwise", "loss", "optimizer")

# op name (see the @op marks in tensor.py, functional.py and optim.py) -> category.
# Reductions count as elementwise: both are memory-bound passes.
OP_CATEGORIES = {
    "linear": "matmul",
    "matmul": "matmul",
    "causal_self_attention": "attention",
    "attention_weights": "attention",
    "causal_mask": "attention",
    "layer_norm": "normalisation",
    "cross_entropy": "loss",
    "mse_loss": "loss",
    "optimizer_step": "optimizer",
    "clip_grad_norm": "optimizer",
    "grad_norm": "optimizer",
}


def category_of(op_name: str) -> str:
    """The category an op's time is charged to (everything unlisted is elementwise)."""
    return OP_CATEGORIES.get(op_name, "elementwise")


class Profiler(OpObserver):
    """Times tinygpt operations by category (forward and backward) while active."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)
        self.backward_seconds: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)  # part of seconds
        self.calls: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
        self.total = 0.0
        self._start: float | None = None
        self._sync: Callable[[], None] | None = None
        self._observing: contextlib.ExitStack | None = None

    # Entering and leaving --------------------------------------------------------------
    def __enter__(self) -> Profiler:
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(observe_ops(self))
        except RuntimeError:
            raise RuntimeError("a Profiler is already active; profilers do not nest") from None
        self._observing = stack
        active = backend.current()
        self._sync = lambda: backend.synchronize(active)  # GPUs run asynchronously: time finished work
        self.wait()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wait()
        if self._start is not None:
            self.total += time.perf_counter() - self._start
            self._start = None
        if self._observing is not None:
            self._observing.close()
            self._observing = None

    @property
    def active(self) -> bool:
        return self._observing is not None

    # What the ops report ----------------------------------------------------------------
    def wait(self) -> None:
        if self._sync is not None:
            self._sync()

    def record(self, name: str, seconds: float, backward: bool) -> None:
        category = category_of(name)
        self.seconds[category] += seconds
        if backward:
            self.backward_seconds[category] += seconds
        self.calls[category] += 1

    # Reporting ---------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds profiled so far (up to now while still active)."""
        running = time.perf_counter() - self._start if self._start is not None else 0.0
        return self.total + running

    def breakdown(self) -> dict[str, float]:
        """Seconds per category, plus "other" (the rest of the wall time) and "total"."""
        total = self.elapsed()
        timed = dict(self.seconds)
        timed["other"] = max(0.0, total - sum(self.seconds.values()))
        timed["total"] = total
        return timed

    def report(self) -> str:
        """A table per category: forward, backward and total seconds, share of the wall time, calls."""
        parts = self.breakdown()
        total = parts["total"] or 1e-12
        lines = [f"{'category':<14}{'forward s':>10}{'backward s':>11}{'total s':>9}{'%':>8}{'calls':>9}"]
        for name in (*CATEGORIES, "other"):
            if name in self.calls:
                back = self.backward_seconds[name]
                split = f"{parts[name] - back:>10.3f}{back:>11.3f}"
                calls = f"{self.calls[name]:>9,}"
            else:
                split, calls = f"{'':>10}{'':>11}", ""
            lines.append(f"{name:<14}{split}{parts[name]:>9.3f}{100 * parts[name] / total:>7.1f}%{calls}")
        lines.append(f"{'total':<14}{'':>21}{parts['total']:>9.3f}{100.0:>7.1f}%")
        return "\n".join(lines)
