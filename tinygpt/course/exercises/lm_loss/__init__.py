"""Exercise: the language-model loss (the next-token shift, a stable cross-entropy) and its gradient.

The reference is ``tinygpt.losses.LanguageModelLoss``, whose shift defines what
is right: ``cross_entropy(logits[:, :-1, :], tokens[:, 1:])``, the mean over
B * (T - 1) predictions. Known mistakes (no shift, the shift the wrong way, the
mean over B * T, a gradient missing the one-hot or the 1/N ...) are computed
with the library's cross-entropy and named when the student's result matches.
"""

from __future__ import annotations

import math
from typing import Any

from tinygpt import backend
from tinygpt import functional as F
from tinygpt.course import checks as C
from tinygpt.course.exercise import Exercise
from tinygpt.course.milestone import graph_op, train_and_compare
from tinygpt.course.student import Student
from tinygpt.losses import LanguageModelLoss
from tinygpt.tensor import Tensor

EXERCISE = Exercise(
    name="lm_loss",
    title="The language-model loss and its gradient",
    teaches="the next-token shift; cross-entropy with logsumexp; softmax - onehot, divided by N",
    minutes=30,
)

Array = Any
B, T, V = 2, 6, 11  # the checks' shapes (JAX compiles each new shape: most checks share these)

NO_SHIFT = (
    "score the prediction at position t against the token at t + 1: logits[:, :-1] against tokens[:, 1:] "
    "(without the shift the model only has to copy the token it already sees)"
)
WRONG_SHIFT = (
    "shift the other way: logits[:, :-1] (positions 0 .. T-2) against tokens[:, 1:] (positions 1 .. T-1)"
)
SHIFT_LOGITS_ONLY = "the targets are the next tokens, tokens[:, 1:], not tokens[:, :-1]"
SHIFT_TOKENS_ONLY = "the predictions are logits[:, :-1]: the last position has no next token to be scored on"
COUNT_BT = "average over the B * (T - 1) scored predictions, not B * T: the last position is not scored"
SUM = "the loss is the mean over the B * (T - 1) predictions, not their sum"
BATCH_MEAN = "average over every prediction (B * (T - 1)), not over the batch only"
NEGATIVE = (
    "the loss is minus the mean log-probability of the targets: -mean(log p[target]), a positive number"
)
NO_MAX_BACK = "add the maximum back: logsumexp(z) = m + log(sum(exp(z - m)))"
OVERFLOW = (
    "subtract each row's maximum before exp: exp(1000) overflows to inf, and inf / inf is nan "
    "(z - m has largest value 0, and the log-softmax is unchanged)"
)
UNDERFLOW = (
    "compute log p as (z - m) - log(sum(exp(z - m))), not log(softmax(z)): the target's probability "
    "underflows to 0 when it is far below the maximum, and log(0) = -inf"
)
GRAD_NOT_DIVIDED = "divide the gradient by N = B * (T - 1), the number of predictions the mean is over"
GRAD_COUNT_BT = "divide the gradient by N = B * (T - 1) (the scored predictions), not by B * T"
GRAD_NO_ONEHOT = "the gradient is softmax - onehot(target): subtract 1 at each row's target"
GRAD_SIGN = "the gradient is softmax - onehot (not onehot - softmax): raising a wrong logit raises the loss"
GRAD_NO_SCALE = "multiply by grad_out, the incoming dL/dloss (1 in training, but not always)"
GRAD_FIRST_ZERO = "the scored positions are 0 .. T-2: their gradients come first and the zero slice goes last"
GRAD_LAST = "the last position's logits are never scored: its gradient is 0 (join a zero slice (B, 1, V) after the rest)"


# The library's loss, and what each mistake would give -----------------------------------------------
def _library(logits: Array, tokens: Array, grad: Array | None = None) -> Any:
    """LanguageModelLoss's value, or (value, grad_logits) when ``grad`` is given."""
    return C.library_call(lambda z: LanguageModelLoss()(z, tokens), logits, grad=grad)


def _ce(logits: Array, targets: Array) -> Array:
    return F.cross_entropy(Tensor.wrap(logits), targets).data


def _loss_mistakes(logits: Array, tokens: Array) -> dict[str, Array]:
    xp = backend.current().xp
    batch, t, _ = logits.shape
    right = _ce(logits[:, :-1, :], tokens[:, 1:])
    z = logits[:, :-1, :]
    wrong = {
        NO_SHIFT: _ce(logits, tokens),
        WRONG_SHIFT: _ce(logits[:, 1:, :], tokens[:, :-1]),
        SHIFT_LOGITS_ONLY: _ce(logits[:, :-1, :], tokens[:, :-1]),
        SHIFT_TOKENS_ONLY: _ce(logits[:, 1:, :], tokens[:, 1:]),
        COUNT_BT: right * ((t - 1) / t),
        SUM: right * (batch * (t - 1)),
        BATCH_MEAN: right * (t - 1),
        NEGATIVE: -right,
        NO_MAX_BACK: right - xp.mean(xp.max(z, axis=-1)),
    }
    return wrong


def _grad_mistakes(logits: Array, tokens: Array, grad: float) -> dict[str, Array]:
    b = backend.current()
    xp = b.xp
    batch, t, v = logits.shape
    n = batch * (t - 1)
    z = logits[:, :-1, :]
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    probs = e / xp.sum(e, axis=-1, keepdims=True)
    onehot = xp.astype(tokens[:, 1:, None] == xp.arange(v, dtype=tokens.dtype, device=b.device), z.dtype)
    zero = xp.zeros((batch, 1, v), dtype=z.dtype, device=b.device)

    def full(scored: Array) -> Array:
        return xp.concat([scored, zero], axis=1)

    return {
        GRAD_NOT_DIVIDED: full((probs - onehot) * grad),
        GRAD_COUNT_BT: full((probs - onehot) * (grad / (batch * t))),
        GRAD_NO_ONEHOT: full(probs * (grad / n)),
        GRAD_SIGN: full((onehot - probs) * (grad / n)),
        GRAD_NO_SCALE: full((probs - onehot) / n),
        GRAD_FIRST_ZERO: xp.concat([zero, (probs - onehot) * (grad / n)], axis=1),
    }


# Inputs and calls ---------------------------------------------------------------------------------------
def _inputs(shape: tuple[int, int, int], seed: int, scale: float = 2.0) -> tuple[Array, Array]:
    logits = C.random_array(shape, seed, scale=scale)
    tokens = backend.Generator(seed + 1).integers(0, shape[2], shape[:2])
    return logits, tokens


def _scalar(value: float) -> Array:
    b = backend.current()
    return b.xp.asarray(value, dtype=b.float_dtype, device=b.device)


def _forward(student: Student, logits: Array, tokens: Array) -> tuple[Array, Any]:
    loss, cache = C.expect_tuple(
        student.call("lm_loss_forward", logits, tokens),
        2,
        "lm_loss_forward",
        "a pair (loss, cache)",
        "return loss, cache  (cache: what the backward pass needs, e.g. the softmax and the targets)",
    )
    C.expect_array(
        loss,
        f"the loss of lm_loss_forward(logits {tuple(logits.shape)}, tokens)",
        shape=(),
        dtype=logits.dtype,
        hint="the mean over every prediction is one number: xp.mean(...) gives a 0-d array of logits' dtype",
    )
    return loss, cache


def _backward(student: Student, grad_out: Array, cache: Any, logits: Array) -> Array:
    (grad_logits,) = C.expect_tuple(
        student.call("lm_loss_backward", grad_out, cache),
        1,
        "lm_loss_backward",
        "a tuple (grad_logits,)",
        "return (grad_logits,): one gradient per float input of lm_loss_forward (mind the comma)",
    )
    C.expect_array(
        grad_logits,
        f"grad_logits of lm_loss_backward (logits {tuple(logits.shape)} {C.dtype_name(logits.dtype)})",
        shape=tuple(logits.shape),
        dtype=logits.dtype,
        hint="one gradient per logit: (B, T, V), zeros at the last position " + GRAD_LAST,
    )
    return grad_logits


def _compare_loss(got: Array, logits: Array, tokens: Array, what: str, hint: str) -> None:
    """The loss equals the library's; a value that matches a known mistake's is told that mistake."""
    C.compare(
        got,
        _library(logits, tokens),
        what,
        rtol=1e-9,
        atol=1e-12,
        hint=hint,
        mistakes=lambda: _loss_mistakes(logits, tokens),
    )


# The checks ------------------------------------------------------------------------------------------------
@EXERCISE.check("lm_loss_forward returns (loss, cache): the loss a 0-d array of logits' dtype", kind="shape")
def shapes(student: Student) -> None:
    logits, tokens = _inputs((B, T, V), seed=0)
    _forward(student, logits, tokens)


@EXERCISE.check("lm_loss_forward matches LanguageModelLoss on random float64 logits")
def values(student: Student) -> None:
    with C.float64():
        logits, tokens = _inputs((B, T, V), seed=1)
        loss, _ = _forward(student, logits, tokens)
        _compare_loss(
            loss,
            logits,
            tokens,
            f"the loss for logits ({B}, {T}, {V})",
            "loss = -mean(log_softmax(logits[:, :-1])[target]) with targets tokens[:, 1:]",
        )


@EXERCISE.check("lm_loss_forward edge cases: T = 2, V = 1, one sequence; T = 1 is refused", kind="edge")
def edge_cases(student: Student) -> None:
    with C.float64():
        for shape, what in (((3, 2, V), "T = 2 (one prediction per row)"), ((1, T, V), "one sequence")):
            logits, tokens = _inputs(shape, seed=2)
            loss, _ = _forward(student, logits, tokens)
            _compare_loss(loss, logits, tokens, f"the loss for {what}, logits {shape}", NO_SHIFT)
        logits, tokens = _inputs((B, T, 1), seed=3)
        loss, _ = _forward(student, logits, tokens)
        C.compare_number(
            loss,
            float(C.host(_library(logits, tokens))),
            "the loss for V = 1 (the only token is certain: log p = 0)",
            rtol=0,
            atol=1e-12,
            hint="log p = z - logsumexp(z) is exactly 0 for one entry; no division by zero on the way",
        )
    logits, tokens = _inputs((B, 1, V), seed=4)
    C.expect_raises(
        student,
        "lm_loss_forward(logits (2, 1, 11), tokens (2, 1))",
        student.get("lm_loss_forward"),
        logits,
        tokens,
        why="a window of one token (T = 1) has no next token to predict",
        hint="if T < 2: raise ValueError(...) naming the problem (the mean of no predictions would be nan)",
    )


@EXERCISE.check(
    "lm_loss_forward edge cases: logits of 1000 (exp overflows) and 1000 apart (log of 0)", kind="edge"
)
def large_logits(student: Student) -> None:
    with C.float64():
        logits, tokens = _inputs((B, T, V), seed=5)
        for z, what, hint in (
            (logits + 1000.0, "logits + 1000", OVERFLOW),
            (logits * 1000.0, "logits * 1000 (targets often 1000s below the maximum)", UNDERFLOW),
        ):
            loss, _ = _forward(student, z, tokens)
            _compare_loss(loss, z, tokens, f"the loss for {what}", hint)
    logits, tokens = _inputs((B, T, V), seed=6, scale=30.0)  # float32: exp(89) is already inf
    loss, _ = _forward(student, logits, tokens)
    with C.float64():
        exact = float(C.host(_library(backend.asarray(C.host(logits), dtype="float64"), tokens)))
    C.compare_number(loss, exact, "the loss for float32 logits of about +-100", rtol=1e-5, hint=OVERFLOW)


@EXERCISE.check(
    "lm_loss_forward: uniform logits cost ln V; the last position's logits and the first token do not count",
    kind="property",
)
def properties(student: Student) -> None:
    b = backend.current()
    xp = b.xp
    with C.float64():
        logits, tokens = _inputs((B, T, V), seed=7)
        zeros = xp.zeros(logits.shape, dtype=logits.dtype, device=b.device)
        loss, _ = _forward(student, zeros, tokens)
        C.compare_number(
            loss,
            math.log(V),
            f"the loss for all-zero logits (every token 1/{V})",
            rtol=1e-12,
            hint=f"a uniform guess gives every target log p = -ln {V}, whatever the count you average over",
        )
        base = float(C.host(_forward(student, logits, tokens)[0]))
        last = xp.concat([logits[:, :-1, :], logits[:, -1:, :] + 5.0], axis=1)
        moved = float(C.host(_forward(student, last, tokens)[0]))
        C.expect(
            abs(moved - base) <= 1e-12 * abs(base),
            f"changing only the last position's logits changed the loss from {base:.6g} to {moved:.6g}",
            SHIFT_TOKENS_ONLY,
        )
        first = xp.concat([(tokens[:, :1] + 1) % V, tokens[:, 1:]], axis=1)
        moved = float(C.host(_forward(student, logits, first)[0]))
        C.expect(
            abs(moved - base) <= 1e-12 * abs(base),
            f"changing only the first token (tokens[:, 0]) changed the loss from {base:.6g} to {moved:.6g}",
            "the first token is never a target: the targets are tokens[:, 1:]",
        )


@EXERCISE.check(
    "lm_loss_backward returns (grad_logits,) of logits' shape and dtype, 0 at the last position", kind="shape"
)
def gradient_shapes(student: Student) -> None:
    logits, tokens = _inputs((B, T, V), seed=8)
    _, cache = _forward(student, logits, tokens)
    grad = _backward(student, _scalar(1.0), cache, logits)
    last = abs(C.host(grad)[:, -1, :]).max()
    C.expect(
        last == 0,
        f"grad_logits[:, -1] should be 0 (the last position is not scored), got values up to {last:.3g}",
        GRAD_LAST,
    )


@EXERCISE.check(
    "lm_loss_backward matches finite differences and the library's backward (float64)", kind="gradient"
)
def finite_differences(student: Student) -> None:
    with C.float64():
        logits, tokens = _inputs((B, T, V), seed=9)
        _, cache = _forward(student, logits, tokens)
        grad = _backward(student, _scalar(1.0), cache, logits)
        C.check_gradient(
            lambda z: _library(z, tokens),
            [logits],
            [grad],
            ["grad_logits"],
            samples=16,
            hint="grad_logits = (softmax(z) - onehot(target)) / N at positions 0 .. T-2, 0 at T-1",
            mistakes={h: [g] for h, g in _grad_mistakes(logits, tokens, 1.0).items()},
        )
        C.compare(
            grad,
            _library(logits, tokens, _scalar(1.0))[1],
            "grad_logits (all elements, vs the library's backward)",
            1e-9,
            1e-12,
        )
        _, cache = _forward(student, logits, tokens)
        scaled = _backward(student, _scalar(2.5), cache, logits)
        C.compare(
            scaled,
            _library(logits, tokens, _scalar(2.5))[1],
            "grad_logits for grad_out = 2.5 (dL/dloss: the loss scaled by 2.5 upstream)",
            1e-9,
            1e-12,
            hint=GRAD_NO_SCALE,
            mistakes=_grad_mistakes(logits, tokens, 2.5),
        )


@EXERCISE.check(
    "lm_loss_backward at logits of 1000 and 1000 apart: finite, and the library's", kind="gradient"
)
def large_logit_gradients(student: Student) -> None:
    with C.float64():
        logits, tokens = _inputs((B, T, V), seed=10)
        for z, what in ((logits + 1000.0, "logits + 1000"), (logits * 1000.0, "logits * 1000")):
            _, cache = _forward(student, z, tokens)
            C.compare(
                _backward(student, _scalar(1.0), cache, z),
                _library(z, tokens, _scalar(1.0))[1],
                f"grad_logits for {what}",
                rtol=1e-7,
                atol=1e-12,
                hint=OVERFLOW + "; the backward's softmax too",
                mistakes=_grad_mistakes(z, tokens, 1.0),
            )


@EXERCISE.check(
    "milestone: a TinyGPT with your loss trains on Shakespeare like the library's", kind="milestone"
)
def milestone(student: Student) -> str:
    op = graph_op(student, "lm_loss_forward", "lm_loss_backward")
    return train_and_compare(loss_fn=op, what="your loss")
