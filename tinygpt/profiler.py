"""Where does a training step spend its time? A profiler by kind of operation.

``Profiler`` is a context manager. While it is active, the functions in
``tinygpt.functional``, the arithmetic methods of ``Tensor`` and the
optimizer's ``step`` and gradient clipping are temporarily replaced by timed
wrappers (the way ``unittest.mock.patch`` works); on exit the originals are
put back. The backward closure an operation creates while profiling is
wrapped too, so each category counts its forward and its backward time::

    with Profiler() as prof:
        trainer.train_step(batch)
    print(prof.report())

Only the outermost timed call is counted: ``Tensor.mean`` calls ``sum`` and
``*`` inside, and all of it is charged to ``mean``'s category once. Whatever
no wrapper covers (Python overhead, reshapes and slicing, the graph sort in
``backward()``, data loading, checkpoints) is reported as "other".

On a GPU (CuPy) operations only queue work; the profiler then synchronises
the device around every timed call so the times are real, which itself
slows the run down a little.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import Any

from tinygpt import backend, optim
from tinygpt import functional as F
from tinygpt.tensor import Tensor

CATEGORIES = ("matmul", "attention", "normalisation", "elementwise", "loss", "optimizer")

# function name in tinygpt.functional -> category
FUNCTIONAL_OPS = {
    "linear": "matmul",
    "causal_self_attention": "attention",
    "attention_weights": "attention",
    "causal_mask": "attention",
    "layer_norm": "normalisation",
    "embedding": "elementwise",
    "dropout": "elementwise",
    "gelu": "elementwise",
    "relu": "elementwise",
    "tanh": "elementwise",
    "sigmoid": "elementwise",
    "softmax": "elementwise",
    "log_softmax": "elementwise",
    "exp": "elementwise",
    "log": "elementwise",
    "sqrt": "elementwise",
    "cross_entropy": "loss",
    "mse_loss": "loss",
}

# Tensor method -> category (reductions count as elementwise: both are memory-bound passes)
TENSOR_OPS = {
    "__matmul__": "matmul",
    "__rmatmul__": "matmul",
    **dict.fromkeys(
        (
            "__add__",
            "__radd__",
            "__sub__",
            "__rsub__",
            "__mul__",
            "__rmul__",
            "__truediv__",
            "__rtruediv__",
            "__neg__",
            "__pow__",
            "exp",
            "log",
            "sqrt",
            "tanh",
            "sigmoid",
            "relu",
            "gelu",
            "softmax",
            "log_softmax",
            "sum",
            "mean",
            "max",
        ),
        "elementwise",
    ),
}

OPTIMIZER_FUNCTIONS = {"clip_grad_norm": "optimizer", "clip_scale": "optimizer", "grad_norm": "optimizer"}


class Profiler:
    """Times tinygpt operations by category (forward and backward) while active."""

    _active: Profiler | None = None  # one at a time: the patches are global

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)
        self.backward_seconds: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)  # part of seconds
        self.calls: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
        self.total = 0.0
        self._depth = 0
        self._category: str | None = None  # category of the op running now (outermost)
        self._undo: list[tuple[Any, str, Any]] = []
        self._start: float | None = None
        self._sync: Callable[[], None] | None = None

    # Entering and leaving --------------------------------------------------------------
    def __enter__(self) -> Profiler:
        if Profiler._active is not None:
            raise RuntimeError("a Profiler is already active; profilers do not nest")
        Profiler._active = self
        self._sync = getattr(backend.current().device, "synchronize", None)  # CuPy devices have one
        try:
            self._install()
        except BaseException:
            self._uninstall()
            Profiler._active = None
            raise
        self._wait()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._wait()
        if self._start is not None:
            self.total += time.perf_counter() - self._start
            self._start = None
        self._uninstall()
        Profiler._active = None

    @property
    def active(self) -> bool:
        return Profiler._active is self

    def _wait(self) -> None:
        if self._sync is not None:
            self._sync()

    # Patching ------------------------------------------------------------------------------
    def _set(self, owner: Any, name: str, value: Any) -> None:
        """Replace ``owner.name``, remembering the original (in the owner's own dict) for exit."""
        original = vars(owner).get(name, _MISSING) if isinstance(owner, type) else getattr(owner, name)
        self._undo.append((owner, name, original))
        setattr(owner, name, value)

    def _patch_function(self, module: Any, name: str, category: str) -> None:
        """Wrap ``module.name`` and every ``from module import name`` copy in loaded tinygpt modules."""
        original = getattr(module, name, None)
        if original is None:
            return
        wrapped = self._timed(original, category)
        for mod in list(sys.modules.values()):
            if getattr(mod, "__name__", "").startswith("tinygpt") and vars(mod).get(name) is original:
                self._set(mod, name, wrapped)

    def _install(self) -> None:
        for name, category in FUNCTIONAL_OPS.items():
            self._patch_function(F, name, category)
        for name, category in OPTIMIZER_FUNCTIONS.items():
            self._patch_function(optim, name, category)
        for name, category in TENSOR_OPS.items():
            if name in vars(Tensor):
                self._set(Tensor, name, self._timed(vars(Tensor)[name], category))
        for cls in _subclasses(optim.Optimizer):
            if "step" in vars(cls):
                self._set(cls, "step", self._timed(vars(cls)["step"], "optimizer"))
        from_op = vars(Tensor)["_from_op"].__func__
        self._set(Tensor, "_from_op", classmethod(self._recording(from_op)))

    def _uninstall(self) -> None:
        while self._undo:
            owner, name, original = self._undo.pop()
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)

    # Timing ----------------------------------------------------------------------------------
    def _timed(self, fn: Callable[..., Any], category: str, backward: bool = False) -> Callable[..., Any]:
        """``fn`` wrapped so that an outermost call adds its time to ``category``."""
        profiler = self

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if profiler._depth or not profiler.active:
                return fn(*args, **kwargs)
            return profiler._measure(category, backward, fn, args, kwargs)

        return wrapper

    def _measure(self, category: str, backward: bool, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        self._depth += 1
        self._category = category
        self._wait()
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self._wait()
            seconds = time.perf_counter() - t0
            self.seconds[category] += seconds
            if backward:
                self.backward_seconds[category] += seconds
            self.calls[category] += 1
            self._depth -= 1
            self._category = None

    def _recording(self, from_op: Callable[..., Tensor]) -> Callable[..., Tensor]:
        """``Tensor._from_op`` that wraps the backward closure of a timed op in a timer of its category."""
        profiler = self

        def _from_op(cls: type, data: Any, parents: Any, backward: Any) -> Tensor:
            category = profiler._category
            if category is not None and profiler.active:
                backward = profiler._timed(backward, category, backward=True)
            return from_op(cls, data, parents, backward)

        return _from_op

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


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _subclasses(cls: type) -> list[type]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found
