"""Exercise: the causal mask, a stable softmax, and single-head causal self-attention.

The references are ``tinygpt.functional`` (``causal_mask``, ``softmax``,
``attention_weights``) and the ``tinygpt.layers.SelfAttention`` layer with the
student's weights (biases zero, the output projection the identity). Known
mistakes are recognised by computing what each would produce.
"""

from __future__ import annotations

import math
from typing import Any

from tinygpt import backend
from tinygpt import functional as F
from tinygpt.course import checks as C
from tinygpt.course.errors import CheckFailed
from tinygpt.course.exercise import Exercise
from tinygpt.course.student import Student
from tinygpt.layers import SelfAttention
from tinygpt.tensor import Tensor, no_grad

EXERCISE = Exercise(
    name="self_attention",
    title="The causal mask and single-head self-attention",
    teaches="queries, keys and values; why 1/sqrt(D); why the mask is -inf added before the softmax; why subtract the max",
    minutes=35,
)

Array = Any
ADDITIVE = (
    "the mask is added to the scores: 0.0 where query i may see key j (j <= i), -inf (-math.inf) above the "
    "diagonal, in the backend's float dtype"
)
MASK_DIAGONAL = "a query sees itself: key j is allowed for j <= i (the diagonal too), masked only for j > i"
MASK_ONE_FUTURE = "the mask lets one future position in: query i may see keys j <= i, not j <= i + 1"
MASK_TRANSPOSED = (
    "the mask is transposed: -inf goes above the diagonal (j > i, the future), 0 on and below it"
)
MASK_ZERO_ONE = (
    "a 0/1 mask multiplied into the scores does not mask: exp(0) = 1 still gives the future a weight; "
    "return 0 where allowed and -inf above the diagonal, to be added"
)
MASK_LARGE = (
    "use -inf (-math.inf), not a large negative number: exp(-inf) is exactly 0 in every dtype, and "
    "tinygpt's causal_mask uses it"
)
SOFTMAX_AXIS = "normalise over the last axis (axis=-1): each row, one query's weights, sums to 1"
KEEPDIMS = "keep the row sums as a column (keepdims=True): each row is divided by its own sum"
NO_MAX = (
    "subtract each row's maximum before exp: exp(1000) is inf, and inf / inf is nan; the result is unchanged "
    "because the factor exp(-max) cancels"
)
NO_SCALE = "divide the scores by sqrt(D), the size of q's last axis: q @ k^T / sqrt(D)"
SCALE_D = "divide the scores by sqrt(D), not by D: math.sqrt(q.shape[-1])"
NO_MASK = "add the causal mask to the scores: without it, query i reads keys j > i (the future)"
MASK_AFTER = (
    "add the mask to the scores before the softmax: after it, -inf (or zeroed weights) leaves rows that "
    "do not sum to 1"
)
SCORE_TIMES_MASK = (
    "a masked score must be -inf, not 0: exp(0) = 1 still gives the future a weight; add causal_mask(T) "
    "to the scores"
)
WEIGHTS_AXIS = "the softmax runs over the keys, the last axis of the scores (each query's row sums to 1)"
KQ = "the scores are q @ k^T (row i: query i against every key), not k @ q^T"
OWN_WEIGHTS = "each of q, k and v has its own weight matrix: q = x @ w_q, k = x @ w_k, v = x @ w_v"
NO_VALUES = "the output averages the values v = x @ w_v, not the inputs x"
WEIGHTS_TRANSPOSED = "out = weights @ v: row t of the weights mixes the values for position t"
HEAD_AXIS = (
    "use xp.matrix_transpose(k) (it swaps the last two axes) and q.shape[-2], q.shape[-1]: then any leading "
    "axes work, (B, T, D) and (B, H, T, D)"
)
CAUSAL = "the causal mask lets the future in: position t may only read positions <= t"


# The library's answers ------------------------------------------------------------------------------
def _weights(q: Array, k: Array) -> Array:
    """tinygpt's causal attention weights for q, k (..., T, D)."""
    xp = backend.current().xp
    shape = q.shape
    q4 = xp.reshape(q, (-1, 1, shape[-2], shape[-1]))  # attention_weights wants (B, H, T, D)
    k4 = xp.reshape(k, (-1, 1, shape[-2], shape[-1]))
    out = F.attention_weights(q4, k4, F.causal_mask(shape[-2]))
    return xp.reshape(out, (*shape[:-1], shape[-2]))


def _softmax(z: Array, axis: int = -1) -> Array:
    """The library's softmax over ``axis`` of a raw array (what a mistake would give)."""
    return F.softmax(Tensor.wrap(z), axis=axis).data


def _allowed(t: int) -> Array:
    """(T, T) booleans: True where query i may see key j (j <= i)."""
    return F.causal_mask(t) == 0


def _mask_mistakes(t: int) -> dict[str, Array]:
    b = backend.current()
    xp = b.xp
    ones = xp.ones((t, t), dtype=b.float_dtype, device=b.device)
    zeros = xp.zeros((t, t), dtype=b.float_dtype, device=b.device)
    below = _allowed(t)
    return {
        MASK_DIAGONAL: F.causal_mask(t, t, offset=-1),
        MASK_ONE_FUTURE: F.causal_mask(t, t, offset=1),
        MASK_TRANSPOSED: xp.matrix_transpose(F.causal_mask(t)),
        MASK_ZERO_ONE: xp.where(below, ones, zeros),
        MASK_ZERO_ONE + " (and the other way round)": xp.where(below, zeros, ones),
    }


def _weight_mistakes(q: Array, k: Array) -> dict[str, Array]:
    """What each known mistake in attention_weights would return."""
    b = backend.current()
    xp = b.xp
    t, d = q.shape[-2], q.shape[-1]
    raw = xp.matmul(q, xp.matrix_transpose(k))
    scores = raw / math.sqrt(d)
    mask = F.causal_mask(t)
    below = xp.astype(_allowed(t), b.float_dtype)
    return {
        NO_SCALE: _softmax(raw + mask),
        SCALE_D: _softmax(raw / d + mask),
        NO_MASK: _softmax(scores),
        MASK_DIAGONAL: _softmax(scores + F.causal_mask(t, t, offset=-1)),
        MASK_ONE_FUTURE: _softmax(scores + F.causal_mask(t, t, offset=1)),
        MASK_AFTER: _softmax(scores) + mask,
        MASK_AFTER + " (zeroing the weights of the future after the softmax)": _softmax(scores) * below,
        SCORE_TIMES_MASK: _softmax(scores * below),
        WEIGHTS_AXIS: _softmax(scores + mask, axis=-2),
        KQ: _softmax(xp.matmul(k, xp.matrix_transpose(q)) / math.sqrt(d) + mask),
    }


def _inputs(shape: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> tuple[Array, Array]:
    return C.random_array(shape, seed, scale=scale), C.random_array(shape, seed + 1, scale=scale)


def _weights_of(student: Student, q: Array, k: Array, what: str, crash_hint: str = "") -> Array:
    try:
        out = student.call("attention_weights", q, k)
    except CheckFailed as exc:
        if crash_hint and " raised " in exc.message:  # a crash on this shape: say what is special about it
            raise CheckFailed(f"{exc.message} (for q, k {tuple(q.shape)})", crash_hint) from None
        raise
    C.expect_array(out, what, shape=(*q.shape[:-1], q.shape[-2]), dtype=q.dtype)
    return out


# The mask ------------------------------------------------------------------------------------------
@EXERCISE.check("causal_mask returns (T, T) in the backend's float dtype", kind="shape")
def mask_shape(student: Student) -> None:
    b = backend.current()
    C.expect_array(
        student.call("causal_mask", 5), "causal_mask(5)", shape=(5, 5), dtype=b.float_dtype, hint=ADDITIVE
    )


@EXERCISE.check("causal_mask is 0 on and below the diagonal, -inf above it (as functional.causal_mask)")
def mask_values(student: Student) -> None:
    for t in (1, 2, 4, 7):
        got = student.call("causal_mask", t)
        C.expect_array(got, f"causal_mask({t})", shape=(t, t), hint=ADDITIVE)
        h = C.host(got).astype("float64")
        future = h[~C.host(_allowed(t))]
        if t > 1 and bool(
            (future > -math.inf).all() and (future < -100.0).all() and (h[C.host(_allowed(t))] == 0).all()
        ):
            raise CheckFailed(
                f"causal_mask({t}) has {future[0]:.3g} above the diagonal, expected -inf", MASK_LARGE
            )
        C.compare(
            got,
            F.causal_mask(t),
            f"causal_mask({t}) (entry [i, j]: may query i see key j?)",
            rtol=0,
            atol=0,
            hint=ADDITIVE,
            mistakes=lambda t=t: _mask_mistakes(t),
        )


# The softmax -----------------------------------------------------------------------------------------
def _softmax_mistakes(z: Array) -> dict[str, Array]:
    xp = backend.current().xp
    out = {SOFTMAX_AXIS: _softmax(z, axis=0)}
    if z.ndim > 2:
        out[SOFTMAX_AXIS + " (not axis=-2)"] = _softmax(z, axis=-2)
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    if z.shape[-1] == z.shape[-2]:
        out[KEEPDIMS] = e / xp.sum(e, axis=-1)
    return out


@EXERCISE.check("softmax matches functional.softmax over the last axis (float64)")
def softmax_values(student: Student) -> None:
    with C.float64():
        for shape in ((5, 5), (3, 4, 7)):
            z = C.random_array(shape, seed=len(shape), scale=2.0)
            C.compare(
                student.call("softmax", z),
                F.softmax(Tensor.wrap(z)).data,
                f"softmax(z {shape})",
                rtol=1e-9,
                atol=1e-12,
                hint="exp(z - row max) / row sum of the same, over the last axis",
                mistakes=lambda z=z: _softmax_mistakes(z),
            )


@EXERCISE.check("softmax edge cases: scores of 1000, masked (-inf) entries, float32", kind="edge")
def softmax_edges(student: Student) -> None:
    with C.float64():
        z = C.random_array((4, 6), seed=3) + 1000.0
        C.compare(
            student.call("softmax", z),
            F.softmax(Tensor.wrap(z)).data,
            "softmax(z + 1000) (z (4, 6), float64)",
            rtol=1e-9,
            atol=1e-12,
            hint=NO_MAX,
        )
        z = C.random_array((3, 3), seed=4) + F.causal_mask(3)
        C.compare(
            student.call("softmax", z),
            F.softmax(Tensor.wrap(z)).data,
            "softmax of masked scores (-inf above the diagonal): masked entries must be exactly 0",
            rtol=1e-9,
            atol=0,
            hint=NO_MAX,
        )
    z = C.random_array((2, 8), seed=5, scale=5.0) + 100.0  # exp(100) overflows float32 already
    got = student.call("softmax", z)
    C.compare(
        got, F.softmax(Tensor.wrap(z)).data, "softmax(z + 100) in float32", rtol=1e-5, atol=1e-7, hint=NO_MAX
    )


# The attention weights -----------------------------------------------------------------------------
@EXERCISE.check("attention_weights returns (B, T, T) for q, k (B, T, D)", kind="shape")
def weights_shape(student: Student) -> None:
    q, k = _inputs((2, 5, 4))
    _weights_of(student, q, k, "attention_weights(q, k (2, 5, 4) float32)")


@EXERCISE.check("attention_weights matches functional.attention_weights with the causal mask (float64)")
def weights_values(student: Student) -> None:
    with C.float64():
        for shape, seed in (((2, 6, 4), 1), ((3, 5, 9), 3)):
            q, k = _inputs(shape, seed)
            C.compare(
                _weights_of(student, q, k, f"attention_weights(q, k {shape})"),
                _weights(q, k),
                f"attention_weights(q, k {shape}) (entry [b, i, j]: the weight query i gives key j)",
                rtol=1e-9,
                atol=1e-12,
                hint="softmax(q @ k^T / sqrt(D) + causal_mask(T)), softmax over the last axis",
                mistakes=lambda q=q, k=k: _weight_mistakes(q, k),
            )


@EXERCISE.check(
    "attention_weights edge cases: T = 1, scores near 1000, a head axis (B, H, T, D)", kind="edge"
)
def weights_edges(student: Student) -> None:
    with C.float64():
        q, k = _inputs((3, 1, 4), seed=5)
        C.compare(
            _weights_of(student, q, k, "attention_weights for T = 1"),
            _weights(q, k),
            "attention_weights for T = 1 (one token attends only to itself: weight 1)",
            rtol=1e-12,
            atol=1e-12,
            mistakes=lambda: _weight_mistakes(q, k),
        )
        q, k = _inputs((2, 6, 4), seed=6, scale=25.0)  # scores of several hundred to a few thousand
        C.compare(
            _weights_of(student, q, k, "attention_weights with scores near 1000"),
            _weights(q, k),
            "attention_weights(25 q, 25 k) (scores near 1000: a softmax without the max subtraction gives nan)",
            rtol=1e-9,
            atol=1e-12,
            hint=NO_MAX,
            mistakes=lambda: _weight_mistakes(q, k),
        )
        q, k = _inputs((2, 3, 5, 4), seed=7)
        C.compare(
            _weights_of(student, q, k, "attention_weights(q, k (2, 3, 5, 4)) (a head axis)", HEAD_AXIS),
            _weights(q, k),
            "attention_weights(q, k (2, 3, 5, 4)) (B, H, T, D: a head axis)",
            rtol=1e-9,
            atol=1e-12,
            hint=HEAD_AXIS,
            mistakes=lambda: _weight_mistakes(q, k),
        )


@EXERCISE.check(
    "attention_weights: each row sums to 1, and every weight on a future key is exactly 0", kind="property"
)
def weights_properties(student: Student) -> None:
    with C.float64():
        q, k = _inputs((2, 8, 4), seed=8, scale=2.0)
        w = C.host(_weights_of(student, q, k, "attention_weights(q, k (2, 8, 4))")).astype("float64")
    sums = w.sum(axis=-1)
    worst = abs(sums - 1.0).reshape(-1).argmax()
    b, i = divmod(int(worst), w.shape[1])
    C.expect(
        abs(sums[b, i] - 1.0) < 1e-9,
        f"row {i} of the weights of sequence {b} sums to {sums[b, i]:.6g}, expected 1 (shape {w.shape})",
        MASK_AFTER,
    )
    future = abs(w) * ~C.host(_allowed(w.shape[-1]))  # the weights on keys j > i
    if (future != 0).any():
        flat = int(future.reshape(-1).argmax())
        b, rest = divmod(flat, w.shape[1] * w.shape[2])
        i, j = divmod(rest, w.shape[2])
        raise CheckFailed(
            f"weight[{b}, {i}, {j}] = {w[b, i, j]:.3g}: query {i} gives weight to key {j}, a future position; "
            "it must be exactly 0",
            "add -inf to the future scores before the softmax: exp(-inf) is exactly 0",
        )


# Self-attention --------------------------------------------------------------------------------------
def _projections(c: int, d: int, seed: int) -> tuple[Array, Array, Array]:
    scale = 1.0 / math.sqrt(c)
    return (
        C.random_array((c, d), seed, scale=scale),
        C.random_array((c, d), seed + 1, scale=scale),
        C.random_array((c, d), seed + 2, scale=scale),
    )


def _reference(x: Array, w_q: Array, w_k: Array, w_v: Array) -> Array:
    xp = backend.current().xp
    return xp.matmul(_weights(xp.matmul(x, w_q), xp.matmul(x, w_k)), xp.matmul(x, w_v))


def _layer(x: Array, w_q: Array, w_k: Array, w_v: Array) -> Array:
    """tinygpt's SelfAttention layer with these weights (zero biases, an identity output projection)."""
    b = backend.current()
    xp = b.xp
    c = x.shape[-1]
    layer = SelfAttention(c, rng=backend.Generator(0))
    zeros = xp.zeros((c,), dtype=x.dtype, device=b.device)
    for dense, w in (
        (layer.query, w_q),
        (layer.key, w_k),
        (layer.value, w_v),
        (layer.proj, xp.eye(c, dtype=x.dtype, device=b.device)),
    ):
        dense.weight.data = w
        assert dense.bias is not None  # Dense has a bias by default
        dense.bias.data = zeros
    with no_grad():
        return layer(Tensor.wrap(x)).data


def _attention_mistakes(x: Array, w_q: Array, w_k: Array, w_v: Array) -> dict[str, Array]:
    xp = backend.current().xp
    q, k, v = xp.matmul(x, w_q), xp.matmul(x, w_k), xp.matmul(x, w_v)
    weights = _weights(q, k)
    out = {
        OWN_WEIGHTS: xp.matmul(_weights(q, q), v),
        OWN_WEIGHTS + " (k = x @ w_k)": xp.matmul(_weights(q, xp.matmul(x, w_q)), v),
        WEIGHTS_TRANSPOSED: xp.matmul(xp.matrix_transpose(weights), v),
    }
    if w_v.shape[-1] == x.shape[-1]:
        out[NO_VALUES] = xp.matmul(weights, x)
    out.update(
        {hint: xp.matmul(w, v) for hint, w in _weight_mistakes(q, k).items() if hint not in (MASK_AFTER,)}
    )
    return out


def _attend(student: Student, x: Array, w: tuple[Array, Array, Array], what: str) -> Array:
    out = student.call("self_attention", x, *w)
    C.expect_array(
        out,
        what,
        shape=(*x.shape[:-1], w[2].shape[-1]),
        dtype=x.dtype,
        hint="out = attention_weights(q, k) @ v has the values' width D = w_v.shape[1]: " + NO_VALUES,
    )
    return out


@EXERCISE.check("self_attention returns (B, T, D) for x (B, T, C) and weights (C, D)", kind="shape")
def attention_shape(student: Student) -> None:
    _attend(
        student,
        C.random_array((2, 5, 8)),
        _projections(8, 4, 1),
        "self_attention(x (2, 5, 8), w (8, 4) each)",
    )


@EXERCISE.check("self_attention matches the SelfAttention layer with the same weights (float64)")
def attention_values(student: Student) -> None:
    with C.float64():
        x, w = C.random_array((2, 6, 8), seed=2), _projections(8, 8, 3)
        C.compare(
            _attend(student, x, w, "self_attention(x (2, 6, 8), w (8, 8) each)"),
            _layer(x, *w),
            "self_attention(x (2, 6, 8), w (8, 8) each) vs layers.SelfAttention with these weights",
            rtol=1e-9,
            atol=1e-12,
            hint="q, k, v = x @ w_q, x @ w_k, x @ w_v; out = attention_weights(q, k) @ v",
            mistakes=lambda: _attention_mistakes(x, *w),
        )
        x, w = C.random_array((3, 5, 12), seed=6), _projections(12, 4, 7)
        C.compare(
            _attend(student, x, w, "self_attention(x (3, 5, 12), w (12, 4) each)"),
            _reference(x, *w),
            "self_attention(x (3, 5, 12), w (12, 4) each) (head size D = 4, not C = 12)",
            rtol=1e-9,
            atol=1e-12,
            hint="scale by the head size: sqrt(D) = sqrt(q.shape[-1])",
            mistakes=lambda: _attention_mistakes(x, *w),
        )


@EXERCISE.check("self_attention edge cases: T = 1, large inputs", kind="edge")
def attention_edges(student: Student) -> None:
    xp = backend.current().xp
    with C.float64():
        x, w = C.random_array((2, 1, 8), seed=10), _projections(8, 4, 11)
        C.compare(
            _attend(student, x, w, "self_attention for T = 1"),
            xp.matmul(x, w[2]),
            "self_attention for T = 1 (a token alone reads only its own value: out = x @ w_v)",
            rtol=1e-9,
            atol=1e-12,
            mistakes=lambda: _attention_mistakes(x, *w),
        )
        x, w = C.random_array((2, 6, 8), seed=12, scale=40.0), _projections(8, 4, 13)
        C.compare(
            _attend(student, x, w, "self_attention for large x"),
            _reference(x, *w),
            "self_attention(40 x) (scores in the thousands)",
            rtol=1e-9,
            atol=1e-9,
            hint=NO_MAX,
        )


@EXERCISE.check("self_attention is causal: changing a token changes no output before it", kind="property")
def causality(student: Student) -> None:
    with C.float64():
        x, w = C.random_array((2, 7, 8), seed=14), _projections(8, 8, 15)
        C.check_causal(
            lambda x_: _attend(student, x_, w, "self_attention"),
            x,
            "self_attention(x (2, 7, 8))",
            hint=CAUSAL,
        )
