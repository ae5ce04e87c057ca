"""``Tensor``: an array from the current backend plus reverse-mode autograd.

Every operation builds its output and, right beside it, a ``backward`` closure
that maps the output's gradient to its inputs' gradients; ``Tensor.from_op``
joins the two into a graph node. ``Tensor.backward`` sorts the graph
topologically (iteratively, so deep graphs never hit Python's recursion limit)
and runs the closures in reverse. Gradients are plain backend arrays
(``grad_data``); ``t.grad`` shows them as a Tensor, as in PyTorch.

Operations are marked with ``@op("name")``. That costs nothing until an
``OpObserver`` is installed with ``observe_ops`` (the classroom profiler is
one): then each outermost op's forward time, and the time of the backward
closure it created, are reported under its name.

Fused operations with hand-written backward passes (linear, layer norm,
attention, cross-entropy) live in ``tinygpt.functional``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from tinygpt import backend
from tinygpt.errors import ShapeError

Array = Any
Backward = Callable[[Array], Sequence[Array | None]]
Fn = TypeVar("Fn", bound=Callable[..., Any])


class _GradMode:
    enabled = True


# Observing operations ------------------------------------------------------------
class OpObserver:
    """Told how long each operation takes; subclass it and install it with ``observe_ops``."""

    def wait(self) -> None:
        """Called around every timed call: a GPU observer synchronises the device here."""

    def record(self, name: str, seconds: float, backward: bool) -> None:
        """One outermost op ``name`` ran for ``seconds`` (its backward closure if ``backward``)."""


class _Observing:
    observer: OpObserver | None = None
    current: str | None = None  # the outermost op running now, while observed


@contextlib.contextmanager
def observe_ops(observer: OpObserver) -> Iterator[OpObserver]:
    """Report every op's time to ``observer`` inside the block (one observer at a time)."""
    if _Observing.observer is not None:
        raise RuntimeError("an OpObserver is already installed; observers do not nest")
    _Observing.observer = observer
    try:
        yield observer
    finally:
        _Observing.observer = None
        _Observing.current = None


def _timed(name: str, fn: Callable[..., Any], backward: bool, args: Any, kwargs: Any) -> Any:
    observer = _Observing.observer
    assert observer is not None
    _Observing.current = name
    observer.wait()
    start = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        observer.wait()
        _Observing.current = None
        observer.record(name, time.perf_counter() - start, backward)


def op(name: str) -> Callable[[Fn], Fn]:
    """Mark a function as the operation ``name`` so an ``OpObserver`` can time it."""

    def decorate(fn: Fn) -> Fn:
        @functools.wraps(fn)
        def observed(*args: Any, **kwargs: Any) -> Any:
            if _Observing.observer is None or _Observing.current is not None:
                return fn(*args, **kwargs)  # not observed, or inside an op already being timed
            return _timed(name, fn, False, args, kwargs)

        return observed  # type: ignore[return-value]

    return decorate


def _observed_backward(name: str, backward: Backward) -> Backward:
    def timed_backward(g: Array) -> Sequence[Array | None]:
        if _Observing.observer is None or _Observing.current is not None:
            return backward(g)
        grads: Sequence[Array | None] = _timed(name, backward, True, (g,), {})
        return grads

    return timed_backward


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Run a block without recording the graph (evaluation, sampling, optimizer steps)."""
    previous = _GradMode.enabled
    _GradMode.enabled = False
    try:
        yield
    finally:
        _GradMode.enabled = previous


def _xp() -> Any:
    return backend.current().xp


def _unbroadcast(grad: Array, shape: tuple[int, ...]) -> Array:
    """Sum ``grad`` over the axes that broadcasting added or stretched, back to ``shape``."""
    if tuple(grad.shape) == tuple(shape):
        return grad
    xp = _xp()
    extra = grad.ndim - len(shape)
    if extra:
        grad = xp.sum(grad, axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = xp.sum(grad, axis=stretched, keepdims=True)
    return grad


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``data`` may be a backend array, a NumPy array, nested lists or a scalar;
    it is placed on the current backend and device. Floating data gets the
    default float dtype (float32 unless inside ``backend.default_float("float64")``),
    integer data gets the backend's index dtype (token ids: int64; int32 on JAX without x64).
    """

    __slots__ = ("_backward", "_parents", "data", "grad_data", "name", "requires_grad")
    __array_ufunc__ = None  # make NumPy scalars defer to Tensor's operators

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        self.data: Array = backend.asarray(data, dtype=dtype)
        self.requires_grad = bool(requires_grad)
        self.grad_data: Array | None = None  # d(loss)/d(self) as a raw backend array, after backward()
        self._parents: tuple[Tensor, ...] = ()
        self._backward: Backward | None = None
        self.name: str | None = None

    @classmethod
    def wrap(cls, data: Array, requires_grad: bool = False) -> Tensor:
        """A Tensor around backend array ``data`` as it is (no copy, no dtype change)."""
        out = cls.__new__(cls)
        out.data = data
        out.requires_grad = requires_grad
        out.grad_data = None
        out._parents = ()
        out._backward = None
        out.name = None
        return out

    @classmethod
    def from_op(cls, data: Array, parents: tuple[Tensor, ...], backward: Backward) -> Tensor:
        """The output of a differentiable operation: a graph node.

        ``data`` is the result computed from ``parents``; ``backward(g)`` takes the
        gradient of the loss with respect to ``data`` and returns one gradient (or
        None) per parent, each of that parent's shape. The graph is recorded only
        when grad mode is on and some parent requires grad.
        """
        out = cls.wrap(data)
        if _GradMode.enabled and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents = parents
            name = _Observing.current
            out._backward = backward if name is None else _observed_backward(name, backward)
        return out

    # Basic facts ------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.numpy()!r}{grad})"

    def numpy(self) -> Any:
        """A host NumPy copy of the data."""
        return backend.to_numpy(self.data)

    def item(self) -> float | int:
        """The single value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ShapeError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    # Gradients ----------------------------------------------------------------
    @property
    def grad(self) -> Tensor | None:
        """d(loss)/d(self) after ``backward()``, same shape as self (None before)."""
        return None if self.grad_data is None else Tensor.wrap(self.grad_data)

    @grad.setter
    def grad(self, value: Tensor | Array | None) -> None:
        self.grad_data = value.data if isinstance(value, Tensor) else value

    def zero_grad(self) -> None:
        self.grad_data = None

    def detach(self) -> Tensor:
        """The same data, cut off from the graph."""
        return Tensor.wrap(self.data)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        self.requires_grad = flag
        return self

    def backward(self, grad: Tensor | Array | None = None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``grad``.

        ``self`` must be a scalar unless a seed gradient of its shape is given.
        The graph is freed afterwards (intermediate gradients are not kept).
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no parameter "
                "with requires_grad=True was used to compute it (or it ran under no_grad())"
            )
        xp = _xp()
        if grad is None:
            if self.size != 1:
                raise ShapeError(
                    f"backward() without a gradient needs a scalar, got shape {self.shape}; "
                    "reduce it first (e.g. .mean()) or pass grad="
                )
            seed = xp.ones(self.data.shape, dtype=self.data.dtype, device=self.data.device)
        else:
            seed = grad.data if isinstance(grad, Tensor) else grad
            if tuple(seed.shape) != self.shape:
                raise ShapeError(f"seed gradient has shape {tuple(seed.shape)}, expected {self.shape}")

        order = self._topological_order()
        self.grad_data = seed if self.grad_data is None else self.grad_data + seed
        for node in reversed(order):
            g = node.grad_data
            if node._backward is None or g is None:
                continue
            for parent, pg in zip(node._parents, node._backward(g), strict=True):
                if pg is None or not parent.requires_grad:
                    continue
                parent.grad_data = pg if parent.grad_data is None else parent.grad_data + pg
            # Free the graph as we go: intermediate results and closures.
            node.grad_data = None
            node._backward = None
            node._parents = ()

    def _topological_order(self) -> list[Tensor]:
        """Nodes that need gradients, each after all its inputs (iterative DFS)."""
        order: list[Tensor] = []
        seen: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for parent in node._parents:
                if parent.requires_grad and id(parent) not in seen:
                    stack.append((parent, False))
        return order

    # Arithmetic ---------------------------------------------------------------
    @op("add")
    def __add__(self, other: Any) -> Tensor:
        other = _lift(other, self)
        a, b = self, other

        def backward(g: Array) -> tuple[Array, Array]:
            return _unbroadcast(g, a.shape), _unbroadcast(g, b.shape)

        return Tensor.from_op(a.data + b.data, (a, b), backward)

    @op("add")
    def __radd__(self, other: Any) -> Tensor:
        return _lift(other, self) + self

    @op("sub")
    def __sub__(self, other: Any) -> Tensor:
        other = _lift(other, self)
        a, b = self, other

        def backward(g: Array) -> tuple[Array, Array]:
            return _unbroadcast(g, a.shape), _unbroadcast(-g, b.shape)

        return Tensor.from_op(a.data - b.data, (a, b), backward)

    @op("sub")
    def __rsub__(self, other: Any) -> Tensor:
        return _lift(other, self) - self

    @op("mul")
    def __mul__(self, other: Any) -> Tensor:
        other = _lift(other, self)
        a, b = self, other

        def backward(g: Array) -> tuple[Array | None, Array | None]:
            ga = _unbroadcast(g * b.data, a.shape) if a.requires_grad else None
            gb = _unbroadcast(g * a.data, b.shape) if b.requires_grad else None
            return ga, gb

        return Tensor.from_op(a.data * b.data, (a, b), backward)

    @op("mul")
    def __rmul__(self, other: Any) -> Tensor:
        return _lift(other, self) * self

    @op("div")
    def __truediv__(self, other: Any) -> Tensor:
        other = _lift(other, self)
        a, b = self, other
        out = a.data / b.data

        def backward(g: Array) -> tuple[Array | None, Array | None]:
            ga = _unbroadcast(g / b.data, a.shape) if a.requires_grad else None
            gb = _unbroadcast(-g * out / b.data, b.shape) if b.requires_grad else None
            return ga, gb

        return Tensor.from_op(out, (a, b), backward)

    @op("div")
    def __rtruediv__(self, other: Any) -> Tensor:
        return _lift(other, self) / self

    @op("neg")
    def __neg__(self) -> Tensor:
        def backward(g: Array) -> tuple[Array]:
            return (-g,)

        return Tensor.from_op(-self.data, (self,), backward)

    @op("pow")
    def __pow__(self, exponent: float | int) -> Tensor:
        if isinstance(exponent, Tensor):
            raise TypeError("tensor ** tensor is not supported; use exp(b * log(a))")
        x = self.data
        p = float(exponent)

        def backward(g: Array) -> tuple[Array]:
            return (g * (p * x ** (p - 1.0)),)

        return Tensor.from_op(x**p, (self,), backward)

    @op("matmul")
    def __matmul__(self, other: Any) -> Tensor:
        other = _lift(other, self)
        if self.ndim == 1 or other.ndim == 1:
            a = self.reshape(1, -1) if self.ndim == 1 else self
            b = other.reshape(-1, 1) if other.ndim == 1 else other
            out = a @ b
            shape = out.shape[:-2] + (() if self.ndim == 1 else out.shape[-2:-1])
            return out.reshape(*(shape + (() if other.ndim == 1 else out.shape[-1:])))
        a, b = self, other
        xp = _xp()

        def backward(g: Array) -> tuple[Array | None, Array | None]:
            ga = gb = None
            if a.requires_grad:
                ga = _unbroadcast(xp.matmul(g, xp.matrix_transpose(b.data)), a.shape)
            if b.requires_grad:
                gb = _unbroadcast(xp.matmul(xp.matrix_transpose(a.data), g), b.shape)
            return ga, gb

        return Tensor.from_op(xp.matmul(a.data, b.data), (a, b), backward)

    @op("matmul")
    def __rmatmul__(self, other: Any) -> Tensor:
        return _lift(other, self) @ self

    # Comparisons give plain boolean tensors and carry no gradient.
    def __lt__(self, other: Any) -> Tensor:
        return Tensor.wrap(self.data < _raw(other))

    def __le__(self, other: Any) -> Tensor:
        return Tensor.wrap(self.data <= _raw(other))

    def __gt__(self, other: Any) -> Tensor:
        return Tensor.wrap(self.data > _raw(other))

    def __ge__(self, other: Any) -> Tensor:
        return Tensor.wrap(self.data >= _raw(other))

    def eq(self, other: Any) -> Tensor:
        """Elementwise equality (``==`` keeps Python's identity semantics)."""
        return Tensor.wrap(self.data == _raw(other))

    __hash__ = object.__hash__

    # Reductions ---------------------------------------------------------------
    @op("sum")
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        xp = _xp()
        shape = self.shape

        def backward(g: Array) -> tuple[Array]:
            return (xp.broadcast_to(_keepdims(g, shape, axis, keepdims), shape),)

        return Tensor.from_op(xp.sum(self.data, axis=axis, keepdims=keepdims), (self,), backward)

    @op("mean")
    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        count = _count(self.shape, axis)
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    @op("max")
    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum; the gradient is shared equally between tied maxima."""
        xp = _xp()
        x = self.data
        out = xp.max(x, axis=axis, keepdims=keepdims)

        def backward(g: Array) -> tuple[Array]:
            full = _keepdims(out, x.shape, axis, keepdims)
            hit = xp.astype(x == full, x.dtype)
            ties = xp.sum(hit, axis=axis, keepdims=True)
            return (hit * (_keepdims(g, x.shape, axis, keepdims) / ties),)

        return Tensor.from_op(out, (self,), backward)

    # Shape --------------------------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        """The same data in another shape: ``t.reshape(2, -1)`` or ``t.reshape((2, -1))``."""
        new = _ints(shape)
        xp = _xp()
        original = self.shape

        def backward(g: Array) -> tuple[Array]:
            return (xp.reshape(g, original),)

        return Tensor.from_op(xp.reshape(self.data, new), (self,), backward)

    def permute(self, *axes: int | Sequence[int]) -> Tensor:
        """Reorder the axes: ``t.permute(0, 2, 1)`` or ``t.permute((0, 2, 1))``."""
        order = tuple(a % self.ndim for a in _ints(axes))
        inverse = tuple(sorted(range(len(order)), key=lambda i: order[i]))
        xp = _xp()

        def backward(g: Array) -> tuple[Array]:
            return (xp.permute_dims(g, inverse),)

        return Tensor.from_op(xp.permute_dims(self.data, order), (self,), backward)

    def transpose(self, axis0: int = -2, axis1: int = -1) -> Tensor:
        """Swap two axes (default: the last two)."""
        axes = list(range(self.ndim))
        axes[axis0], axes[axis1] = axes[axis1], axes[axis0]
        return self.permute(axes)

    @property
    def T(self) -> Tensor:  # noqa: N802 - the usual name for a matrix transpose
        return self.transpose(-2, -1)

    def __getitem__(self, index: Any) -> Tensor:
        """Basic indexing (integers, slices, ``None``, ``...``)."""
        if isinstance(index, Tensor):
            raise TypeError("index with integer tensors through tinygpt.functional.embedding / take")
        xp = _xp()
        x = self.data
        index = _complete_index(index, x.ndim)
        out = x[index]
        # Setting items does not accept ``None`` (array_api_strict): write through
        # the index without the new axes, which only drops size-1 axes of g.
        parts = index if isinstance(index, tuple) else (index,)
        target = tuple(p for p in parts if p is not None)

        def backward(g: Array) -> tuple[Array]:
            full = xp.zeros(x.shape, dtype=g.dtype, device=g.device)
            part = xp.reshape(g, tuple(x[target].shape)) if len(target) < len(parts) else g
            return (backend.set_at(full, target, part),)

        return Tensor.from_op(out, (self,), backward)

    # Elementwise functions ----------------------------------------------------
    @op("exp")
    def exp(self) -> Tensor:
        out = _xp().exp(self.data)
        return Tensor.from_op(out, (self,), lambda g: (g * out,))

    @op("log")
    def log(self) -> Tensor:
        x = self.data
        return Tensor.from_op(_xp().log(x), (self,), lambda g: (g / x,))

    @op("sqrt")
    def sqrt(self) -> Tensor:
        out = _xp().sqrt(self.data)
        return Tensor.from_op(out, (self,), lambda g: (g * 0.5 / out,))

    @op("tanh")
    def tanh(self) -> Tensor:
        out = _xp().tanh(self.data)
        return Tensor.from_op(out, (self,), lambda g: (g * (1.0 - out * out),))

    @op("sigmoid")
    def sigmoid(self) -> Tensor:
        # 0.5 * (1 + tanh(x/2)) never overflows, unlike 1 / (1 + exp(-x)).
        out = 0.5 * (_xp().tanh(0.5 * self.data) + 1.0)
        return Tensor.from_op(out, (self,), lambda g: (g * out * (1.0 - out),))

    @op("relu")
    def relu(self) -> Tensor:
        xp = _xp()
        mask = xp.astype(self.data > 0, self.data.dtype)
        return Tensor.from_op(self.data * mask, (self,), lambda g: (g * mask,))

    @op("gelu")
    def gelu(self) -> Tensor:
        """GELU, tanh approximation (GPT-2's): 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))).

        The derivative is computed in the forward pass while x and tanh are hot
        in cache, so the backward pass is a single multiply.
        """
        out, slope = backend.gelu_and_slope(self.data)
        return Tensor.from_op(out, (self,), lambda g: (g * slope,))

    @op("softmax")
    def softmax(self, axis: int = -1) -> Tensor:
        """exp(x) / sum(exp(x)) along ``axis``; the max is subtracted first so exp never overflows."""
        xp = _xp()
        e = xp.exp(self.data - xp.max(self.data, axis=axis, keepdims=True))
        out = e / xp.sum(e, axis=axis, keepdims=True)

        def backward(g: Array) -> tuple[Array]:
            return (out * (g - xp.sum(g * out, axis=axis, keepdims=True)),)

        return Tensor.from_op(out, (self,), backward)

    @op("log_softmax")
    def log_softmax(self, axis: int = -1) -> Tensor:
        """x - logsumexp(x) along ``axis``, computed stably."""
        xp = _xp()
        shifted = self.data - xp.max(self.data, axis=axis, keepdims=True)
        out = shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))

        def backward(g: Array) -> tuple[Array]:
            return (g - xp.exp(out) * xp.sum(g, axis=axis, keepdims=True),)

        return Tensor.from_op(out, (self,), backward)


def _ints(values: tuple[int | Sequence[int], ...]) -> tuple[int, ...]:
    """``(2, 3)`` or ``((2, 3),)`` -> ``(2, 3)``: the two ways shapes and axes are passed."""
    if len(values) == 1 and not isinstance(values[0], int):
        return tuple(int(v) for v in values[0])
    return tuple(int(v) for v in values)  # type: ignore[arg-type]


def _complete_index(index: Any, ndim: int) -> Any:
    """Add the trailing ``...`` NumPy implies (the Array API requires it spelled out)."""
    parts = index if isinstance(index, tuple) else (index,)
    # ``None`` adds an axis without consuming one, so it does not count.
    if any(p is Ellipsis for p in parts) or sum(p is not None for p in parts) >= ndim:
        return index
    return (*parts, Ellipsis)


def _raw(value: Any) -> Any:
    return value.data if isinstance(value, Tensor) else value


def _lift(value: Any, like: Tensor) -> Tensor:
    """Python numbers become 0-d tensors of ``like``'s dtype (no float64 promotion)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, bool | int | float):
        xp = _xp()
        return Tensor.wrap(xp.asarray(value, dtype=like.dtype, device=like.data.device))
    return Tensor(value)


def _count(shape: tuple[int, ...], axis: int | tuple[int, ...] | None) -> int:
    if axis is None:
        return math.prod(shape)
    axes = (axis,) if isinstance(axis, int) else axis
    return math.prod(shape[a] for a in axes)


def _keepdims(g: Array, shape: tuple[int, ...], axis: Any, keepdims: bool) -> Array:
    """Reshape a reduced result so it broadcasts against the original ``shape``."""
    if keepdims or (axis is None and g.ndim == len(shape)):
        return g
    xp = _xp()
    if axis is None:
        return xp.reshape(g, (1,) * len(shape))
    axes = (axis,) if isinstance(axis, int) else axis
    axes = tuple(a % len(shape) for a in axes)
    kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
    return xp.reshape(g, kept)


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a ``Tensor`` (same as the constructor; reads like ``torch.tensor``)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def concat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    xp = _xp()
    parts = tuple(tensors)
    sizes = [t.shape[axis] for t in parts]

    def backward(g: Array) -> list[Array]:
        return [g[index] for index in _pieces(g.ndim, axis, sizes)]

    return Tensor.from_op(xp.concat([t.data for t in parts], axis=axis), parts, backward)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    xp = _xp()
    parts = tuple(tensors)

    def backward(g: Array) -> list[Array]:
        return [_select(g, axis, i) for i in range(len(parts))]

    return Tensor.from_op(xp.stack([t.data for t in parts], axis=axis), parts, backward)


def _select(g: Array, axis: int, i: int) -> Array:
    index: list[Any] = [slice(None)] * g.ndim
    index[axis] = i
    return g[tuple(index)]


def split(x: Tensor, sections: int | Sequence[int], axis: int = -1) -> list[Tensor]:
    """Split into ``sections`` equal parts, or parts of the given sizes."""
    n = x.shape[axis]
    if isinstance(sections, int):
        if n % sections:
            raise ShapeError(f"cannot split axis of size {n} into {sections} equal parts")
        sizes = [n // sections] * sections
    else:
        sizes = list(sections)
        if sum(sizes) != n:
            raise ShapeError(f"split sizes {sizes} do not add up to the axis size {n}")
    return [x[index] for index in _pieces(x.ndim, axis, sizes)]


def _pieces(ndim: int, axis: int, sizes: Sequence[int]) -> Iterator[tuple[Any, ...]]:
    """Index tuples cutting an axis into consecutive pieces of ``sizes``."""
    start = 0
    for size in sizes:
        index: list[Any] = [slice(None)] * ndim
        index[axis] = slice(start, start + size)
        yield tuple(index)
        start += size
