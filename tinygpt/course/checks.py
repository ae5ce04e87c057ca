"""Helpers that let an exercise state a check in a line or two, and fail with one precise message.

Every helper raises ``CheckFailed`` naming what was expected, what came out,
and where (the index and the shape); authors add the hint in the student's
terms. ``compare`` and ``check_gradient`` can also recognise a known mistake:
give them the result the mistake would produce (``mistakes={"hint": array}``)
and a student who made it is told exactly that.

Arrays are the current backend's (``backend.current()``); comparisons are done
on host copies (``backend.to_numpy``), so the same check runs on NumPy,
array_api_strict, torch, JAX and CuPy, and on NumPy a student's plain NumPy
arrays are accepted as they are.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tinygpt import backend
from tinygpt.course.errors import CheckFailed
from tinygpt.layers import Module, Parameter
from tinygpt.tensor import Tensor

if TYPE_CHECKING:
    from tinygpt.course.student import Student

Array = Any
Mistakes = Mapping[str, Array] | Callable[[], Mapping[str, Array]]
MISTAKE_RTOL, MISTAKE_ATOL = 1e-5, 1e-7  # the tolerance a known mistake's result is recognised with


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """NumPy's floating-point warnings off inside the block (what ``numpy.errstate(all="ignore")`` does).

    The grader's own arithmetic on host copies (inf - inf in a comparison, a
    known mistake's NaN) must not print under "your code printed". The course
    package imports no array library, and NumPy sends these warnings through
    ``warnings`` as RuntimeWarning, so they are filtered there.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# Inputs ------------------------------------------------------------------------------
def float64() -> contextlib.AbstractContextManager[None]:
    """Create floating arrays as float64 inside the block (values and gradients are checked there)."""
    return backend.default_float("float64")


def random_array(shape: Sequence[int], seed: int = 0, scale: float = 1.0, shift: float = 0.0) -> Array:
    """Normal(shift, scale) samples on the current backend in its float dtype (float64 under ``float64()``)."""
    data = backend.Generator(seed).normal(tuple(shape), std=scale)
    return data + shift if shift else data


def host(x: Any) -> Any:
    """A host NumPy copy of a backend array (or scalar, or list): what comparisons run on."""
    return backend.to_numpy(x)


def to_backend(host_array: Any, like: Array) -> Array:
    """A host array back on the current backend with ``like``'s dtype."""
    return backend.asarray(host_array, dtype=like.dtype)


def dtype_name(dtype: Any) -> str:
    """``float32``, whichever library's dtype object (numpy.float32, torch.float32, ...)."""
    text = str(dtype)
    if text.startswith("<class"):
        text = getattr(dtype, "__name__", text)
    return text.rsplit(".", 1)[-1].strip("'>")


# Plain facts --------------------------------------------------------------------------
def expect(condition: bool, message: str, hint: str = "") -> None:
    """Fail with ``message`` (and ``hint``) unless ``condition``."""
    if not condition:
        raise CheckFailed(message, hint)


def expect_array(
    got: Any, what: str, shape: Sequence[int] | None = None, dtype: Any = None, hint: str = ""
) -> None:
    """``got`` is an array of the current backend, on its device, of ``shape`` and ``dtype`` when given.

    On the NumPy backend a plain NumPy array is the backend's array, so plain
    NumPy solutions pass; on another backend it is refused with the fix.
    """
    b = backend.current()
    if not (hasattr(got, "shape") and hasattr(got, "dtype")):
        raise CheckFailed(
            f"{what} should be an array, got {type(got).__name__}"
            + (f" {got!r:.80}" if got is not None else ""),
            hint
            or "make it with the backend's namespace: xp = backend.current().xp; xp.asarray(values, dtype=..., "
            "device=backend.current().device)",
        )
    if not b.library.owns(got):
        raise CheckFailed(
            f"{what} is a {type(got).__module__}.{type(got).__name__}, but the backend is {b.name}: "
            f"its arrays are what the model can use",
            "create arrays with xp = backend.current().xp (xp.asarray, xp.zeros, ...) rather than "
            "importing an array library yourself",
        )
    device = getattr(got, "device", None)
    if device is not None and not _same_device(device, b.device):
        raise CheckFailed(
            f"{what} lives on device {device}, but the backend's device is {b.device}",
            "pass device=backend.current().device to every array you create (xp.asarray, xp.zeros, xp.arange)",
        )
    if shape is not None and tuple(got.shape) != tuple(shape):
        raise CheckFailed(f"{what} should have shape {tuple(shape)}, got {tuple(got.shape)}", hint)
    if dtype is not None and got.dtype != dtype:
        raise CheckFailed(f"{what} should have dtype {dtype_name(dtype)}, got {dtype_name(got.dtype)}", hint)


def _same_device(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) or str(a) == str(b)
    except Exception:
        return str(a) == str(b)


def expect_tuple(got: Any, length: int, what: str, form: str, hint: str = "") -> tuple[Any, ...]:
    """``got`` (what the student's ``what`` returned) is a tuple or list of ``length`` items.

    ``form`` says what it should be, for the message: ``"a pair (out, cache)"``, ``"(grad_qkv,)"``.
    """
    if hasattr(got, "shape") and hasattr(got, "dtype"):
        raise CheckFailed(f"{what} returned one array; it should return {form}", hint)
    if not (isinstance(got, tuple | list) and len(got) == length):
        kind = type(got).__name__ + (f" of length {len(got)}" if isinstance(got, tuple | list) else "")
        raise CheckFailed(f"{what} should return {form}, got {kind}", hint)
    return tuple(got)


def expect_raises(
    student: Student,
    label: str,
    fn: Callable[..., Any],
    *args: Any,
    why: str,
    error: type[Exception] = ValueError,
    hint: str = "",
) -> Exception:
    """Student code ``fn(*args)`` (``label`` in messages) must raise ``error``; returns the exception.

    ``why`` says why the input is refused ("'z' is not in the vocabulary"), for both messages:
    a result returned, or another exception raised.
    """
    exc = student.raises(label, fn, *args)
    if exc is None:
        raise CheckFailed(f"{label} returned a result, but {why}, so refuse it with a {error.__name__}", hint)
    if not isinstance(exc, error):
        raise CheckFailed(
            f"{label} raised {type(exc).__name__}: {str(exc)[:160]}; {why}, so refuse it with a {error.__name__}",
            hint,
        )
    return exc


# Values ---------------------------------------------------------------------------------
def compare(
    got: Any,
    want: Array,
    what: str,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    hint: str = "",
    mistakes: Mistakes | None = None,
) -> None:
    """``got`` equals ``want`` elementwise within ``atol + rtol * |want|``; else the worst element is reported.

    ``want`` is the reference (the library's result). The array checks of
    ``expect_array`` come first (an array of the backend, of ``want``'s shape and dtype). When
    ``got`` matches one of ``mistakes`` (hint -> the result that mistake gives),
    that mistake's hint is the one shown; a mistake whose result equals ``want``
    on these inputs is passed over. ``mistakes`` may be a function returning that
    mapping, called only when the values differ (computing mistakes costs time),
    with NumPy's floating-point warnings off. 0-d arrays (a loss) compare like any other.
    """
    expect_array(got, what, shape=tuple(want.shape), dtype=want.dtype, hint=hint)
    g, w = host(got).astype("float64"), host(want).astype("float64")
    worst = _worst(g, w, rtol, atol)
    if worst is None:
        return
    index, count = worst
    shown = f" at index {index}" if g.ndim else ""
    where = f" (shape {tuple(w.shape)}; {count} of {w.size} values differ)" if g.ndim else ""
    raise CheckFailed(
        f"{what}: expected {w[index]:.6g}{shown}, got {g[index]:.6g}{where}",
        _diagnose(g, mistakes, rtol, atol, right=w) or hint,
    )


def matches(got: Any, want: Any, rtol: float = MISTAKE_RTOL, atol: float = MISTAKE_ATOL) -> bool:
    """Whether two arrays (any backend, or host) agree as ``compare`` sees it: same shape, every element
    within tolerance, an infinity only with the same infinity, NaN only with NaN.

    The default tolerance is the one a known mistake's result is recognised with.
    """
    g, w = host(got).astype("float64"), host(want).astype("float64")
    return tuple(g.shape) == tuple(w.shape) and _worst(g, w, rtol, atol) is None


def number(got: Any, what: str, hint: str = "") -> float:
    """``got`` as a Python float: a number, or a one-element array (not a Tensor, not a bool)."""
    if isinstance(got, Tensor):
        raise CheckFailed(f"{what} should be a number, got a Tensor", hint or "return float(t.item())")
    if isinstance(got, bool) or not (
        isinstance(got, int | float) or (hasattr(got, "shape") and math.prod(got.shape) == 1)
    ):
        raise CheckFailed(f"{what} should be a number, got {type(got).__name__} {got!r:.80}", hint)
    return float(host(got).reshape(()).item()) if hasattr(got, "shape") else float(got)


def compare_number(
    got: Any, want: float, what: str, rtol: float = 1e-6, atol: float = 1e-8, hint: str = ""
) -> float:
    """``got`` is a number (or a one-element array) within tolerance of ``want``; returns it as a float."""
    value = number(got, what, hint)
    if not (math.isfinite(value) or not math.isfinite(want)) or abs(value - want) > atol + rtol * abs(want):
        raise CheckFailed(f"{what}: expected {want:.6g}, got {value:.6g}", hint)
    return value


def _worst(g: Any, w: Any, rtol: float, atol: float) -> tuple[tuple[int, ...], int] | None:
    """(index of the worst element, how many differ), or None when all agree; host float64 arrays of one shape.

    An infinity agrees only with the same infinity, and NaN only with NaN, on
    either side: a finite value where -inf is expected (a mask) differs,
    although inf - inf is NaN. Works on 0-d arrays (a loss) as on any other.
    """
    shape = tuple(g.shape)
    g, w = g.reshape(-1), w.reshape(-1)  # 1-d: arithmetic on 0-d arrays gives NumPy scalars
    with quiet():
        special = (abs(g) == math.inf) | (abs(w) == math.inf) | (g != g) | (w != w)
        finite_g, finite_w = g.copy(), w.copy()
        finite_g[special], finite_w[special] = 0.0, 0.0  # keep inf - inf (NaN) out of the arithmetic
        excess = abs(finite_g - finite_w) - (atol + rtol * abs(finite_w))
        excess[special & ~((g == w) | ((g != g) & (w != w)))] = math.inf
        bad = excess > 0
    count = int(bad.sum())
    if not count:
        return None
    return _unravel(int(excess.argmax()), shape), count


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for n in reversed(shape):
        index.append(flat % n)
        flat //= n
    return tuple(reversed(index))


def _diagnose(g: Any, mistakes: Mistakes | None, rtol: float, atol: float, right: Any = None) -> str:
    """The hint of the first known mistake whose result ``g`` matches.

    A mistake whose result equals the ``right`` one (host array) on these inputs
    cannot be told apart from it and is passed over. ``mistakes`` may be a
    function: it is called here, only on a failure, with NumPy's floating-point
    warnings off (a mistake's result may hold inf - inf).
    """
    with quiet():
        known = mistakes() if callable(mistakes) else mistakes
    rtol, atol = max(rtol, MISTAKE_RTOL), max(atol, MISTAKE_ATOL)
    for hint, wrong in (known or {}).items():
        m = host(wrong).astype("float64")
        if tuple(m.shape) != tuple(g.shape) or _worst(g, m, rtol, atol) is not None:
            continue
        if right is None or _worst(right, m, rtol, atol) is not None:
            return hint
    return ""


# Gradients ---------------------------------------------------------------------------------
def numeric_gradient(
    f: Callable[..., Any], inputs: Sequence[Array], which: int, index: tuple[int, ...], eps: float = 1e-6
) -> float:
    """d f / d inputs[which][index] by central differences (f returns a number; use float64 inputs)."""
    moved = host(inputs[which])

    def value(delta: float) -> float:
        shifted = moved.copy()
        shifted[index] += delta
        args = list(inputs)
        args[which] = to_backend(shifted, inputs[which])
        return float(host(f(*args)).reshape(()).item())

    return (value(eps) - value(-eps)) / (2 * eps)


def check_gradient(
    f: Callable[..., Any],
    inputs: Sequence[Array],
    analytic: Sequence[Any],
    names: Sequence[str],
    samples: int = 12,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    seed: int = 0,
    hint: str = "",
    mistakes: Mapping[str, Sequence[Array | None]]
    | Callable[[], Mapping[str, Sequence[Array | None]]]
    | None = None,
) -> None:
    """Each ``analytic[i]`` (the student's gradient of scalar ``f`` w.r.t. ``inputs[i]``) agrees with
    finite differences at ``samples`` random elements. float64 inputs: call inside ``float64()``.

    ``names`` label the gradients in messages (``"grad_x"``). ``mistakes`` maps a
    hint to the gradients that mistake gives (one per input, None to skip one), or
    is a function returning that mapping, called only on a failure.
    """
    for i, (x, grad, name) in enumerate(zip(inputs, analytic, names, strict=True)):
        expect_array(grad, name, shape=tuple(x.shape), dtype=x.dtype, hint=hint)
        g = host(grad).astype("float64")
        picks = backend.Generator(seed + i).integers(
            0, math.prod(x.shape), (min(samples, math.prod(x.shape)),)
        )
        for flat in host(picks).tolist():
            index = _unravel(int(flat), tuple(x.shape))
            expected = numeric_gradient(f, inputs, i, index)
            value = float(g[index])
            if not abs(value - expected) <= atol + rtol * abs(expected):
                with quiet():
                    table = mistakes() if callable(mistakes) else mistakes
                known = {h: grads[i] for h, grads in (table or {}).items() if grads[i] is not None}
                raise CheckFailed(
                    f"{name} at index {index} (shape {tuple(x.shape)}): finite differences give {expected:.6g}, "
                    f"your backward gives {value:.6g}",
                    _diagnose(g, known, rtol, atol) or hint,
                )


# The library's answer, and modules the student builds --------------------------------------------
def library_call(fn: Callable[..., Tensor], *inputs: Array, grad: Array | None = None) -> Any:
    """The library's ``fn`` applied to Tensors wrapping the arrays ``inputs``: its output array, or,
    given ``grad`` (dL/d output), ``(output, one gradient per input)`` from the library's backward."""
    tensors = [Tensor.wrap(x, requires_grad=grad is not None) for x in inputs]
    out = fn(*tensors)
    if grad is None:
        return out.data
    out.backward(grad)
    return (out.data, *(t.grad_data for t in tensors))


def make_module(student: Student, name: str, *args: Any) -> Module:
    """The student's class ``name`` called with ``args`` and an rng; it must make a ``Module``."""
    obj = student.call(name, *args, rng=backend.Generator(3))
    expect(
        isinstance(obj, Module),
        f"{name}(...) should make a Module, got {type(obj).__name__}",
        f"declare it as the starter does: class {name}(Module)",
    )
    return obj


def parameters(student: Student, module: Module, what: str) -> dict[str, Parameter]:
    """The student's module's parameters by dotted name (``blocks.0.ln1.weight``), asked of its own code."""
    return dict(student.invoke(f"{what}.named_parameters", lambda: list(module.named_parameters())))


def expect_parameters(
    student: Student,
    module: Module,
    reference: Module,
    what: str,
    hint: Callable[[list[str], list[str]], str],
    shape_hint: Callable[[str], str],
) -> None:
    """The student's ``module`` has exactly ``reference``'s parameter names and shapes.

    ``hint(missing, unexpected)`` and ``shape_hint(name)`` say how to fix a difference.
    """
    mine = {name: tuple(p.shape) for name, p in parameters(student, module, what).items()}
    want = {name: tuple(p.shape) for name, p in reference.named_parameters()}
    missing = [n for n in want if n not in mine]
    unexpected = [n for n in mine if n not in want]
    if missing or unexpected:
        raise CheckFailed(
            f"your {what}'s parameters are not the library's: missing {missing[:6] or 'none'}, "
            f"unexpected {unexpected[:6] or 'none'}",
            hint(missing, unexpected),
        )
    for name, shape in want.items():
        if mine[name] != shape:
            raise CheckFailed(f"{what}.{name} should have shape {shape}, got {mine[name]}", shape_hint(name))


def random_state(module: Module, seed: int) -> dict[str, Any]:
    """Random host values for each of ``module``'s parameters, by name: matrices scaled by 1/sqrt(fan-in),
    LayerNorm scales near 1 and shifts near 0 (far enough from 1 and 0 that a mix-up shows)."""
    state = {}
    for i, (name, p) in enumerate(module.named_parameters()):
        if p.ndim == 2:
            value = random_array(p.shape, seed + i, scale=1.0 / math.sqrt(p.shape[0]))
        elif name.endswith("weight"):  # a LayerNorm's scale
            value = random_array(p.shape, seed + i, scale=0.3, shift=1.0)
        else:
            value = random_array(p.shape, seed + i, scale=0.2)
        state[name] = host(value)
    return state


def load_state(module: Module, state: Mapping[str, Any]) -> None:
    """Copy ``state`` (name -> host array) into the module's parameters, each in its own dtype."""
    for name, p in module.named_parameters():
        p.data = backend.asarray(state[name], dtype=p.dtype)


# Properties -----------------------------------------------------------------------------------
def check_causal(
    f: Callable[[Array], Any],
    x: Array,
    what: str,
    positions: Sequence[int] | None = None,
    atol: float = 1e-6,
    hint: str = "the causal mask lets the future in: position t may only read positions <= t",
) -> None:
    """Changing ``x[:, t]`` (x is (B, T, ...)) must leave ``f(x)[:, :t]`` unchanged, for each t in ``positions``.

    The failure names the first output position that moved and the input
    position that moved it.
    """
    base = host(f(x)).astype("float64")
    steps = x.shape[1]
    for t in positions if positions is not None else range(1, steps):
        changed = host(x).copy()
        changed[:, t] = changed[:, t] + 1.0 if changed.dtype.kind == "f" else (changed[:, t] + 1) % 2
        out = host(f(to_backend(changed, x))).astype("float64")
        moved = abs(out[:, :t] - base[:, :t]) > atol
        if moved.any():
            position = int(moved.reshape(moved.shape[0], t, -1).any(axis=(0, 2)).argmax())
            raise CheckFailed(
                f"{what}: the output at position {position} changed when only the input at position {t} changed",
                hint,
            )
