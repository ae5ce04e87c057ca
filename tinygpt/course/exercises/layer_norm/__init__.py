"""Exercise: layer normalization, forward and hand-written backward.

The reference is ``tinygpt.functional.layer_norm`` (its forward and its
hand-written backward). Known mistakes are recognised by computing what each
would produce and matching the student's result against it.
"""

from __future__ import annotations

import functools
from typing import Any

from tinygpt import backend
from tinygpt import functional as F
from tinygpt.course import checks as C
from tinygpt.course.errors import CheckFailed
from tinygpt.course.exercise import Exercise
from tinygpt.course.milestone import graph_op, replace_modules, train_and_compare
from tinygpt.course.student import Student
from tinygpt.layers import LayerNorm, Module
from tinygpt.tensor import Tensor

EXERCISE = Exercise(
    name="layer_norm",
    title="Layer normalization, forward and backward",
    teaches="normalising each token; the biased variance; eps inside the sqrt; a backward pass by hand",
    minutes=40,
)

Array = Any
EPS = 1e-5
UNBIASED = "divide by C, not C - 1: layer norm uses the biased variance of the row's C values"
EPS_OUTSIDE = "eps goes inside the square root: (x - mean) / sqrt(var + eps)"
NO_EPS = "add eps to the variance before the square root: (x - mean) / sqrt(var + eps)"
WRONG_AXIS = "normalise over the last axis (the C features of one token): axis=-1, keepdims=True"
SWAPPED = "scale by weight, then shift by bias: xhat * weight + bias"
NO_AFFINE = "finish with the learned scale and shift: out = xhat * weight + bias"
LEADING_AXES = "grad_weight and grad_bias sum over every leading axis: the same weight serves every position"


def _library(x: Array, weight: Array, bias: Array, eps: float = EPS, grad: Array | None = None) -> Any:
    """tinygpt's layer norm: the output, or (output, dx, dweight, dbias) when ``grad`` is given."""
    return C.library_call(functools.partial(F.layer_norm, eps=eps), x, weight, bias, grad=grad)


def _mistakes(x: Array, weight: Array, bias: Array, eps: float = EPS) -> dict[str, Array]:
    """What each known mistake in the forward pass would output for these inputs."""
    xp = backend.current().xp
    c = x.shape[-1]
    mean = xp.mean(x, axis=-1, keepdims=True)
    var = xp.mean((x - mean) ** 2, axis=-1, keepdims=True)
    xhat = (x - mean) / xp.sqrt(var + eps)
    out: dict[str, Array] = {}
    if c > 1:
        out[UNBIASED] = (x - mean) / xp.sqrt(var * (c / (c - 1)) + eps) * weight + bias
    out[EPS_OUTSIDE] = (x - mean) / (xp.sqrt(var) + eps) * weight + bias
    out[NO_EPS] = (x - mean) / xp.sqrt(var) * weight + bias
    if x.ndim > 1 and x.shape[0] > 1:
        mean0 = xp.mean(x, axis=0, keepdims=True)
        var0 = xp.mean((x - mean0) ** 2, axis=0, keepdims=True)
        out[WRONG_AXIS] = (x - mean0) / xp.sqrt(var0 + eps) * weight + bias
    out[SWAPPED] = xhat * bias + weight
    out[NO_AFFINE] = xhat
    return out


def _inputs(shape: tuple[int, ...], seed: int = 0) -> tuple[Array, Array, Array]:
    """x with rows of very different scales (1e-3 to 10: eps matters on the small ones), weight, bias."""
    rows = backend.Generator(seed + 7).uniform((*shape[:-1], 1), -3.0, 1.0)
    x = C.random_array(shape, seed) * (10.0**rows) + C.random_array((*shape[:-1], 1), seed + 1)
    weight = C.random_array(shape[-1:], seed + 2, scale=0.5, shift=1.0)
    bias = C.random_array(shape[-1:], seed + 3, scale=0.5)
    return x, weight, bias


def _forward(
    student: Student, x: Array, weight: Array, bias: Array, eps: float | None = None
) -> tuple[Array, Any]:
    args = (x, weight, bias) if eps is None else (x, weight, bias, eps)
    out, cache = C.expect_tuple(
        student.call("layer_norm_forward", *args),
        2,
        "layer_norm_forward",
        "a pair (out, cache)",
        "return out, cache  (cache: what the backward pass needs, e.g. a tuple of arrays)",
    )
    return out, cache


def _backward(student: Student, grad: Array, cache: Any) -> tuple[Array, Array, Array]:
    grad_x, grad_weight, grad_bias = C.expect_tuple(
        student.call("layer_norm_backward", grad, cache),
        3,
        "layer_norm_backward",
        "(grad_x, grad_weight, grad_bias), one gradient per input",
    )
    return grad_x, grad_weight, grad_bias


@EXERCISE.check("layer_norm_forward returns (out, cache), out of x's shape and dtype", kind="shape")
def shapes(student: Student) -> None:
    x, weight, bias = _inputs((2, 3, 8))
    out, _ = _forward(student, x, weight, bias)
    C.expect_array(out, "out of layer_norm_forward(x (2, 3, 8) float32, ...)", shape=x.shape, dtype=x.dtype)


@EXERCISE.check("layer_norm_forward matches functional.layer_norm (float64)")
def values(student: Student) -> None:
    with C.float64():
        x, weight, bias = _inputs((2, 5, 16), seed=1)
        out, _ = _forward(student, x, weight, bias)
        C.compare(
            out,
            _library(x, weight, bias),
            "out of layer_norm_forward(x (2, 5, 16), weight, bias)",
            rtol=1e-7,
            atol=1e-9,
            hint="mean and variance over the last axis; xhat = (x - mean) / sqrt(var + eps); xhat * weight + bias",
            mistakes=lambda: _mistakes(x, weight, bias),
        )


@EXERCISE.check(
    "layer_norm_forward edge cases: 2-D and 4-D input, C = 1, constant rows, the eps argument", kind="edge"
)
def edge_cases(student: Student) -> None:
    xp = backend.current().xp
    with C.float64():
        for shape in ((6, 8), (2, 2, 3, 4)):
            x, weight, bias = _inputs(shape, seed=2)
            out, _ = _forward(student, x, weight, bias)
            C.compare(
                out,
                _library(x, weight, bias),
                f"out for x of shape {shape}",
                1e-7,
                1e-9,
                mistakes=lambda x=x, weight=weight, bias=bias: _mistakes(x, weight, bias),
            )
        x, weight, bias = _inputs((3, 1), seed=3)
        out, _ = _forward(student, x, weight, bias)
        C.compare(
            out,
            _library(x, weight, bias),
            "out for C = 1 (each row one value: xhat = 0, out = bias)",
            1e-7,
            1e-9,
            hint=NO_EPS,
        )
        x, weight, bias = _inputs((2, 4, 8), seed=4)
        x = xp.concat([x[:, :2, :], xp.full((2, 2, 8), 5.0, dtype=x.dtype, device=x.device)], axis=1)
        out, _ = _forward(student, x, weight, bias)
        C.compare(
            out,
            _library(x, weight, bias),
            "out where x[:, 2:] are rows of equal values (variance 0)",
            1e-7,
            1e-9,
            hint=NO_EPS,
        )
        x, weight, bias = _inputs((2, 3, 8), seed=5)
        out, _ = _forward(student, x, weight, bias, eps=0.1)
        C.compare(
            out,
            _library(x, weight, bias, eps=0.1),
            "out of layer_norm_forward(x, weight, bias, eps=0.1)",
            1e-7,
            1e-9,
            mistakes=lambda: {"use the eps argument, not a fixed number": _library(x, weight, bias)},
        )
    x = C.random_array((4, 16), seed=6) + 1000.0  # float32: a large mean, a variance of about 1
    weight, bias = C.random_array((16,), 7, 0.5, 1.0), C.random_array((16,), 8, 0.5)
    out, _ = _forward(student, x, weight, bias)
    with C.float64():
        exact = _library(*(backend.asarray(C.host(a), dtype="float64") for a in (x, weight, bias)))
    C.compare(
        out,
        C.to_backend(C.host(exact), x),
        "out for float32 x with mean 1000 and variance 1 (compared with the float64 result)",
        rtol=0,
        atol=2e-3,
        hint="compute the variance as mean((x - mean)**2); mean(x**2) - mean**2 subtracts two numbers near 1e6 "
        "and loses float32's seven digits",
    )


@EXERCISE.check(
    "layer_norm_forward: each row has mean 0 and variance 1; shifting or scaling x changes nothing",
    kind="property",
)
def properties(student: Student) -> None:
    b = backend.current()
    xp = b.xp
    with C.float64():
        x = C.random_array((4, 32), seed=9, scale=10.0)
        ones = xp.ones((32,), dtype=b.float_dtype, device=b.device)
        zeros = xp.zeros((32,), dtype=b.float_dtype, device=b.device)
        out, _ = _forward(student, x, ones, zeros)
        C.expect_array(out, "out", shape=x.shape, dtype=x.dtype)
        h = C.host(out)
        means, variances = h.mean(axis=-1), h.var(axis=-1)
        row = int(abs(means).argmax())
        C.expect(
            abs(means[row]) < 1e-9,
            f"with weight 1 and bias 0, row {row} has mean {means[row]:.3g}, expected 0",
            WRONG_AXIS,
        )
        row = int(abs(variances - 1.0).argmax())
        if abs(variances[row] - 1.0) > 1e-6:
            ratio = 32 / 31
            hint = UNBIASED if abs(variances[row] - 1.0 / ratio) < 1e-4 else WRONG_AXIS
            raise CheckFailed(
                f"with weight 1 and bias 0, row {row} has variance {variances[row]:.6f} (biased), expected 1",
                hint,
            )
        moved, _ = _forward(student, x * 3.0 + 7.0, ones, zeros)
        C.compare(moved, out, "out for 3 * x + 7 (should equal out for x)", 1e-6, 1e-8, hint=WRONG_AXIS)


@EXERCISE.check(
    "layer_norm_backward returns (grad_x, grad_weight, grad_bias) of the inputs' shapes and dtypes",
    kind="shape",
)
def gradient_shapes(student: Student) -> None:
    x, weight, bias = _inputs((2, 3, 8), seed=10)
    _, cache = _forward(student, x, weight, bias)
    grads = _backward(student, C.random_array(x.shape, seed=11), cache)
    for grad, like, name in zip(
        grads, (x, weight, bias), ("grad_x", "grad_weight", "grad_bias"), strict=True
    ):
        C.expect_array(
            grad, f"{name} (x is (2, 3, 8) float32)", shape=like.shape, dtype=like.dtype, hint=LEADING_AXES
        )


def _gradient_mistakes(x: Array, weight: Array, grad: Array, dw: Array, db: Array) -> dict[str, list[Any]]:
    """What each known mistake in the backward pass would return (one entry per input; None: not affected)."""
    xp = backend.current().xp

    def mean(a: Array) -> Array:
        return xp.mean(a, axis=-1, keepdims=True)

    rstd = 1.0 / xp.sqrt(mean((x - mean(x)) ** 2) + EPS)
    xhat = (x - mean(x)) * rstd
    gxhat = grad * weight
    return {
        "dx misses the term from the mean: subtract mean(gxhat)": [
            (gxhat - xhat * mean(gxhat * xhat)) * rstd,
            None,
            None,
        ],
        "dx misses the term from the variance: subtract xhat * mean(gxhat * xhat)": [
            (gxhat - mean(gxhat)) * rstd,
            None,
            None,
        ],
        "multiply grad_out by weight first: gxhat = grad_out * weight": [
            (grad - mean(grad) - xhat * mean(grad * xhat)) * rstd,
            None,
            None,
        ],
        "dx ends with a division by sqrt(var + eps) (a multiplication by rstd)": [
            gxhat - mean(gxhat) - xhat * mean(gxhat * xhat),
            None,
            None,
        ],
        "grad_weight is the sum of grad_out * xhat (the weight multiplies xhat)": [None, db, None],
        "grad_bias is the sum of grad_out (the bias is added as it is)": [None, None, dw],
    }


@EXERCISE.check(
    "layer_norm_backward matches finite differences and the library's backward (float64)", kind="gradient"
)
def finite_differences(student: Student) -> None:
    xp = backend.current().xp
    with C.float64():
        x, weight, bias = _inputs((2, 3, 8), seed=12)
        grad = C.random_array(x.shape, seed=13)
        _, cache = _forward(student, x, weight, bias)
        grads = _backward(student, grad, cache)
        _, dx, dw, db = _library(x, weight, bias, grad=grad)
        C.check_gradient(
            lambda x_, w_, b_: xp.sum(_library(x_, w_, b_) * grad),
            [x, weight, bias],
            grads,
            ["grad_x", "grad_weight", "grad_bias"],
            hint="dx = (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)) / sqrt(var + eps), gxhat = grad_out * weight",
            mistakes=lambda: _gradient_mistakes(x, weight, grad, dw, db),
        )
        for got, want, name in zip(grads, (dx, dw, db), ("grad_x", "grad_weight", "grad_bias"), strict=True):
            C.compare(got, want, f"{name} (all elements, vs functional.layer_norm's backward)", 1e-7, 1e-9)


@EXERCISE.check(
    "milestone: a TinyGPT with your layer norm trains on Shakespeare like the library's", kind="milestone"
)
def milestone(student: Student) -> str:
    op = graph_op(student, "layer_norm_forward", "layer_norm_backward")
    return train_and_compare(
        plug=lambda model: replace_modules(model, LayerNorm, lambda old: _StudentLayerNorm(old, op)),
        what="your layer norm",
    )


class _StudentLayerNorm(Module):
    """A LayerNorm whose forward and backward are the student's (the same Parameters as the one it replaces)."""

    def __init__(self, old: LayerNorm, op: Any) -> None:
        self.weight, self.bias, self.eps, self.op = old.weight, old.bias, old.eps, op

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x, self.weight, self.bias, eps=self.eps)
