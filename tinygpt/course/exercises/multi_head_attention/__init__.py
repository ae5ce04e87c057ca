"""Exercise: multi-head causal attention on a fused qkv, forward and hand-written backward.

The reference is ``tinygpt.functional.causal_self_attention`` (its forward and
its hand-written backward), with ``functional.split_heads`` / ``merge_heads``
for the head layout; the milestone puts the student's pair into every
``MultiHeadAttention`` of a TinyGPT (the Dense projections stay the library's).
Known mistakes are recognised by computing what each would produce.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from tinygpt import backend
from tinygpt import functional as F
from tinygpt.course import checks as C
from tinygpt.course.exercise import Exercise
from tinygpt.course.milestone import graph_op, replace_modules, train_and_compare
from tinygpt.course.student import Student
from tinygpt.layers import KVCache, Module, MultiHeadAttention
from tinygpt.tensor import Tensor

EXERCISE = Exercise(
    name="multi_head_attention",
    title="Multi-head attention, forward and backward",
    teaches="heads as a batch axis (B, H, T, D); the fused [q | k | v] layout; attention's backward pass by hand",
    minutes=45,
)

Array = Any
SPLIT_NO_TRANSPOSE = (
    "reshape to (B, T, H, D) first (each token's C features cut into H blocks of D), then move the head axis "
    "forward with xp.permute_dims(..., (0, 2, 1, 3)): a reshape straight to (B, H, T, D) cuts the sequence, "
    "not the features, and mixes tokens into one head"
)
SPLIT_INTERLEAVED = (
    "head h holds the block of features h*D .. (h+1)*D - 1, not every H-th feature: reshape to (B, T, H, D), "
    "not (B, T, D, H)"
)
MERGE_NO_TRANSPOSE = (
    "move the head axis back first (xp.permute_dims(y, (0, 2, 1, 3)) gives (B, T, H, D)), then reshape to "
    "(B, T, C): a reshape straight from (B, H, T, D) mixes heads and tokens"
)
NO_SCALE = "divide the scores by sqrt(D), D the size of one head: q @ k^T / sqrt(D)"
SCALE_C = "divide by sqrt(D), the size of one head (D = C / n_head, q.shape[-1] after the split), not sqrt(C)"
NO_MASK = (
    "add the causal mask to the scores before the softmax: without it, query i reads keys j > i (the future)"
)
MASK_DIAGONAL = "a query sees itself: the mask allows keys j <= i (the diagonal too), masks only j > i"
MASK_ONE_FUTURE = "the causal mask lets one future position in: query i may see keys j <= i, not j <= i + 1"
SOFTMAX_AXIS = "the softmax runs over the keys, the last axis of the scores (each query's row sums to 1)"
KQ = "the scores are q @ k^T (row i: query i against every key), not k @ q^T"
LAYOUT = (
    "qkv is laid out [q | k | v] on the last axis: q = qkv[:, :, :C], k = qkv[:, :, C:2C], v = qkv[:, :, 2C:]"
)
CAUSAL = "the causal mask lets the future in: position t may only read positions <= t"
INDEPENDENT = (
    "each head attends on its own: split q, k and v into heads the same way, and merge back in the same order"
)
TUPLE = (
    "return a tuple with one gradient per array input of mha_forward: return (grad_qkv,)  (mind the comma)"
)
BACK_NO_SCALE = "gq and gk are multiplied by 1/sqrt(D) too: the scores were q @ k^T / sqrt(D)"
BACK_SOFTMAX = (
    "the softmax backward misses its second term: gs = probs * (gp - sum(gp * probs, last axis)); raising one "
    "score lowers every other weight of its row"
)
BACK_MASK = (
    "use the forward's masked probabilities in the backward pass: weights recomputed without the mask let "
    "gradient flow to future positions"
)
BACK_DV_DK = (
    "grad_qkv has the layout of qkv: [merge_heads(gq) | merge_heads(gk) | merge_heads(gv)], dk before dv"
)
BACK_DQ_DK = "grad_qkv has the layout of qkv: [merge_heads(gq) | merge_heads(gk) | merge_heads(gv)], dq first"
BACK_GK = "gk = gs^T @ q / sqrt(D): key j collects from every query that looked at it, so transpose gs"
BACK_GV = "gv = probs^T @ gy: value j collects from every query that weighted it, so transpose probs"
GRADIENT = "gv = probs^T gy; gp = gy v^T; gs = probs * (gp - sum(gp * probs)); gq = gs k / sqrt(D); gk = gs^T q / sqrt(D)"


# The library's answers ------------------------------------------------------------------------------
def _library(qkv: Array, n_head: int, grad: Array | None = None) -> Any:
    """tinygpt's attention: the output, or (output, grad_qkv) when ``grad`` is given."""
    return C.library_call(lambda t: F.causal_self_attention(t, n_head), qkv, grad=grad)


def _softmax(z: Array, axis: int = -1) -> Array:
    """The library's softmax over ``axis`` of a raw array (what a mistake would give)."""
    return F.softmax(Tensor.wrap(z), axis=axis).data


def _heads(qkv: Array, n_head: int) -> tuple[Array, Array, Array]:
    q, k, v = F.split_heads(qkv, n_head, parts=3)
    return q, k, v


def _attend(q: Array, k: Array, v: Array, scale: float, mask: Array | None, axis: int = -1) -> Array:
    xp = backend.current().xp
    scores = xp.matmul(q, xp.matrix_transpose(k)) * scale
    return F.merge_heads(xp.matmul(_softmax(scores if mask is None else scores + mask, axis), v))


def _forward_mistakes(qkv: Array, n_head: int) -> dict[str, Array]:
    """What each known mistake in mha_forward would output."""
    xp = backend.current().xp
    bsz, t, width = qkv.shape
    c = width // 3
    d = c // n_head
    q, k, v = _heads(qkv, n_head)
    mask = F.causal_mask(t)
    scale = 1.0 / math.sqrt(d)
    out = {
        NO_SCALE: _attend(q, k, v, 1.0, mask),
        NO_MASK: _attend(q, k, v, scale, None),
        MASK_DIAGONAL: _attend(q, k, v, scale, F.causal_mask(t, t, offset=-1)),
        MASK_ONE_FUTURE: _attend(q, k, v, scale, F.causal_mask(t, t, offset=1)),
        SOFTMAX_AXIS: _attend(q, k, v, scale, mask, axis=-2),
        KQ: _attend(k, q, v, scale, mask),
    }
    if n_head > 1:
        out[SCALE_C] = _attend(q, k, v, 1.0 / math.sqrt(c), mask)

        def wrong_split(a: Array) -> Array:
            return xp.reshape(a, (bsz, n_head, t, d))

        parts = [qkv[:, :, i * c : (i + 1) * c] for i in range(3)]
        qw, kw, vw = (wrong_split(p) for p in parts)
        out[SPLIT_NO_TRANSPOSE] = _attend(qw, kw, vw, scale, mask)
        y = xp.matmul(_softmax(xp.matmul(qw, xp.matrix_transpose(kw)) * scale + mask), vw)
        out[SPLIT_NO_TRANSPOSE + " (and merge heads the same way back)"] = xp.reshape(y, (bsz, t, c))
        y = xp.matmul(_softmax(xp.matmul(q, xp.matrix_transpose(k)) * scale + mask), v)
        out[MERGE_NO_TRANSPOSE] = xp.reshape(y, (bsz, t, c))
        inter = [xp.permute_dims(xp.reshape(p, (bsz, t, d, n_head)), (0, 3, 1, 2)) for p in parts]
        out[SPLIT_INTERLEAVED] = _attend(inter[0], inter[1], inter[2], scale, mask)
    heads = (q, k, v)
    for order in ((0, 2, 1), (2, 1, 0), (1, 2, 0), (2, 0, 1)):  # (1, 0, 2) is KQ above
        used = ", ".join(f"{name} = {'qkv'[i]}" for name, i in zip("qkv", order, strict=True))
        out[f"{LAYOUT} (yours attends as if {used})"] = _attend(
            heads[order[0]], heads[order[1]], heads[order[2]], scale, mask
        )
    return out


def _inputs(shape: tuple[int, int, int], seed: int = 0, scale: float = 1.0) -> Array:
    return C.random_array(shape, seed, scale=scale)


def _forward(student: Student, qkv: Array, n_head: int) -> tuple[Array, Any]:
    out, cache = C.expect_tuple(
        student.call("mha_forward", qkv, n_head=n_head),
        2,
        "mha_forward",
        "a pair (out, cache)",
        "return out, cache  (cache: what the backward pass needs, e.g. (q, k, v, probs))",
    )
    bsz, t, width = qkv.shape
    C.expect_array(
        out,
        f"out of mha_forward(qkv ({bsz}, {t}, {width}), n_head={n_head})",
        shape=(bsz, t, width // 3),
        dtype=qkv.dtype,
        hint="out is (B, T, C) with C = qkv.shape[-1] // 3: the heads merged back",
    )
    return out, cache


def _backward(student: Student, grad: Array, cache: Any) -> Array:
    (grad_qkv,) = C.expect_tuple(
        student.call("mha_backward", grad, cache), 1, "mha_backward", "a tuple (grad_qkv,)", TUPLE
    )
    return grad_qkv


# Splitting and merging heads ---------------------------------------------------------------------
@EXERCISE.check("split_heads gives (B, H, T, D) and merge_heads (B, T, C)", kind="shape")
def heads_shape(student: Student) -> None:
    x = C.random_array((2, 5, 12))
    heads = student.call("split_heads", x, 3)
    C.expect_array(heads, "split_heads(x (2, 5, 12), 3)", shape=(2, 3, 5, 4), dtype=x.dtype)
    y = C.random_array((2, 3, 5, 4), seed=1)
    C.expect_array(
        student.call("merge_heads", y), "merge_heads(y (2, 3, 5, 4))", shape=(2, 5, 12), dtype=y.dtype
    )


def _split_mistakes(x: Array, n_head: int) -> dict[str, Array]:
    xp = backend.current().xp
    bsz, t, c = x.shape
    d = c // n_head
    return {
        SPLIT_NO_TRANSPOSE: xp.reshape(x, (bsz, n_head, t, d)),
        SPLIT_INTERLEAVED: xp.permute_dims(xp.reshape(x, (bsz, t, d, n_head)), (0, 3, 1, 2)),
    }


@EXERCISE.check("split_heads and merge_heads match functional.split_heads / merge_heads")
def heads_values(student: Student) -> None:
    xp = backend.current().xp
    with C.float64():
        x = C.random_array((2, 5, 12), seed=2)
        for n_head in (3, 2):
            (want,) = F.split_heads(x, n_head)
            C.compare(
                student.call("split_heads", x, n_head),
                want,
                f"split_heads(x (2, 5, 12), {n_head}) (entry [b, h, t, i] = x[b, t, h*D + i])",
                rtol=0,
                atol=0,
                hint=SPLIT_NO_TRANSPOSE,
                mistakes=lambda n_head=n_head: _split_mistakes(x, n_head),
            )
        y = C.random_array((2, 3, 5, 4), seed=3)
        C.compare(
            student.call("merge_heads", y),
            F.merge_heads(y),
            "merge_heads(y (2, 3, 5, 4)) (entry [b, t, h*D + i] = y[b, h, t, i])",
            rtol=0,
            atol=0,
            hint=MERGE_NO_TRANSPOSE,
            mistakes=lambda: {MERGE_NO_TRANSPOSE: xp.reshape(y, (2, 5, 12))},
        )


@EXERCISE.check("merge_heads(split_heads(x)) gives x back; one head is x itself", kind="property")
def heads_round_trip(student: Student) -> None:
    xp = backend.current().xp
    with C.float64():
        x = C.random_array((3, 4, 8), seed=4)
        for n_head in (1, 2, 8):
            heads = student.call("split_heads", x, n_head)
            C.expect_array(heads, f"split_heads(x (3, 4, 8), {n_head})", shape=(3, n_head, 4, 8 // n_head))
            C.compare(
                student.call("merge_heads", heads),
                x,
                f"merge_heads(split_heads(x (3, 4, 8), {n_head}))",
                rtol=0,
                atol=0,
                hint="merge_heads undoes split_heads: the same two steps in reverse order",
            )
        C.compare(
            student.call("split_heads", x, 1),
            xp.reshape(x, (3, 1, 4, 8)),
            "split_heads(x, 1) (one head: x with an axis of length 1)",
            rtol=0,
            atol=0,
        )


# The forward pass ------------------------------------------------------------------------------------
@EXERCISE.check("mha_forward returns (out (B, T, C), cache)", kind="shape")
def forward_shape(student: Student) -> None:
    _forward(student, _inputs((2, 5, 36)), 3)


@EXERCISE.check("mha_forward matches functional.causal_self_attention (float64)")
def forward_values(student: Student) -> None:
    with C.float64():
        for shape, n_head, seed in (((2, 6, 36), 3, 5), ((1, 7, 24), 2, 6)):
            qkv = _inputs(shape, seed)
            out, _ = _forward(student, qkv, n_head)
            C.compare(
                out,
                _library(qkv, n_head),
                f"out of mha_forward(qkv {shape}, n_head={n_head})",
                rtol=1e-9,
                atol=1e-12,
                hint="per head: softmax(q @ k^T / sqrt(D) + causal_mask(T)) @ v, then the heads merged",
                mistakes=lambda qkv=qkv, n_head=n_head: _forward_mistakes(qkv, n_head),
            )


@EXERCISE.check("mha_forward edge cases: one head, D = 1, T = 1, scores near 1000", kind="edge")
def forward_edges(student: Student) -> None:
    with C.float64():
        for shape, n_head, what in (
            ((2, 5, 24), 1, "one head: single-head attention"),
            ((2, 5, 12), 4, "n_head = C = 4: heads of size D = 1"),
            ((3, 1, 24), 2, "T = 1: a token alone reads only its own value"),
        ):
            qkv = _inputs(shape, seed=shape[1])
            out, _ = _forward(student, qkv, n_head)
            C.compare(
                out,
                _library(qkv, n_head),
                f"out of mha_forward(qkv {shape}, n_head={n_head}) ({what})",
                rtol=1e-9,
                atol=1e-12,
                mistakes=lambda qkv=qkv, n_head=n_head: _forward_mistakes(qkv, n_head),
            )
        qkv = _inputs((2, 6, 24), seed=9, scale=20.0)
        out, _ = _forward(student, qkv, 2)
        C.compare(
            out,
            _library(qkv, 2),
            "out of mha_forward(20 qkv, n_head=2) (scores near 1000: a softmax without the max subtraction gives nan)",
            rtol=1e-9,
            atol=1e-9,
            hint="subtract each row's maximum before exp (the softmax helper does)",
        )


@EXERCISE.check(
    "mha_forward is causal, and its heads do not mix: head h's output reads only head h's q, k, v",
    kind="property",
)
def forward_properties(student: Student) -> None:
    with C.float64():
        qkv = _inputs((2, 7, 24), seed=10)
        C.check_causal(
            lambda a: _forward(student, a, 2)[0], qkv, "mha_forward(qkv (2, 7, 24), n_head=2)", hint=CAUSAL
        )
        base = C.host(_forward(student, qkv, 2)[0])
        moved = C.host(qkv).copy()
        for start in (0, 8, 16):  # head 0's features of q, k and v (C = 8, D = 4)
            moved[:, :, start : start + 4] += 1.0
        out = C.host(_forward(student, C.to_backend(moved, qkv), 2)[0])
        changed = abs(out - base) > 1e-9
        C.expect(
            not changed[:, :, 4:].any(),
            "changing only head 0's q, k and v (features 0..3, 8..11, 16..19 of qkv) changed output features "
            f"{sorted({int(i) + 4 for i in changed[:, :, 4:].any(axis=(0, 1)).nonzero()[0]})} (head 1's)",
            INDEPENDENT,
        )
        C.expect(
            changed[:, :, :4].any(),
            "changing head 0's q, k and v left head 0's output (features 0..3) unchanged",
            INDEPENDENT,
        )


# The backward pass ---------------------------------------------------------------------------------------
@EXERCISE.check("mha_backward returns (grad_qkv,) of qkv's shape and dtype", kind="shape")
def backward_shape(student: Student) -> None:
    qkv = _inputs((2, 5, 24), seed=11)
    _, cache = _forward(student, qkv, 2)
    grad = _backward(student, C.random_array((2, 5, 8), seed=12), cache)
    C.expect_array(
        grad, "grad_qkv (qkv is (2, 5, 24) float32)", shape=qkv.shape, dtype=qkv.dtype, hint=BACK_DV_DK
    )


def _gradient_mistakes(qkv: Array, n_head: int, grad: Array) -> dict[str, list[Any]]:
    """What each known mistake in mha_backward would return for grad_qkv."""
    xp = backend.current().xp
    q, k, v = _heads(qkv, n_head)
    t = q.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1])
    probs = _softmax(xp.matmul(q, xp.matrix_transpose(k)) * scale + F.causal_mask(t))
    unmasked = _softmax(xp.matmul(q, xp.matrix_transpose(k)) * scale)
    (gy,) = F.split_heads(grad, n_head)
    tr = xp.matrix_transpose

    def grads(p: Array, second_term: bool = True, factor: float = scale) -> tuple[Array, Array, Array]:
        gv = xp.matmul(tr(p), gy)
        gp = xp.matmul(gy, tr(v))
        gs = p * (gp - xp.sum(gp * p, axis=-1, keepdims=True)) if second_term else p * gp
        return xp.matmul(gs, k) * factor, xp.matmul(tr(gs), q) * factor, gv

    def layout(gq: Array, gk: Array, gv: Array) -> list[Any]:
        return [xp.concat([F.merge_heads(gq), F.merge_heads(gk), F.merge_heads(gv)], axis=-1)]

    gq, gk, gv = grads(probs)
    gp = xp.matmul(gy, tr(v))
    gs = probs * (gp - xp.sum(gp * probs, axis=-1, keepdims=True))
    return {
        BACK_NO_SCALE: layout(*grads(probs, factor=1.0)),
        BACK_SOFTMAX: layout(*grads(probs, second_term=False)),
        BACK_MASK: layout(*grads(unmasked)),
        BACK_DV_DK: layout(gq, gv, gk),
        BACK_DQ_DK: layout(gk, gq, gv),
        BACK_GK: layout(gq, xp.matmul(gs, q) * scale, gv),
        BACK_GV: layout(gq, gk, xp.matmul(probs, gy)),
    }


@EXERCISE.check(
    "mha_backward matches finite differences and the library's backward (float64)", kind="gradient"
)
def backward_values(student: Student) -> None:
    xp = backend.current().xp
    with C.float64():
        for shape, n_head, seed in (((2, 5, 24), 2, 13), ((1, 4, 36), 3, 15)):
            qkv = _inputs(shape, seed)
            grad = C.random_array((shape[0], shape[1], shape[2] // 3), seed=seed + 1)
            _, cache = _forward(student, qkv, n_head)
            got = _backward(student, grad, cache)
            _, want = _library(qkv, n_head, grad)

            def loss(a: Array, grad: Array = grad, n_head: int = n_head) -> Array:
                return xp.sum(_library(a, n_head) * grad)

            C.check_gradient(
                loss,
                [qkv],
                [got],
                ["grad_qkv"],
                samples=24,
                seed=seed,
                hint=GRADIENT,
                mistakes=functools.partial(_gradient_mistakes, qkv, n_head, grad),
            )
            C.compare(
                got,
                want,
                f"grad_qkv for qkv {shape}, n_head={n_head} (all elements, vs causal_self_attention's backward)",
                rtol=1e-9,
                atol=1e-12,
                hint=GRADIENT,
                mistakes=lambda qkv=qkv, n_head=n_head, grad=grad: {
                    h: g[0] for h, g in _gradient_mistakes(qkv, n_head, grad).items()
                },
            )


@EXERCISE.check("mha_backward edge cases: T = 1, one head, scores near 1000", kind="gradient")
def backward_edges(student: Student) -> None:
    with C.float64():
        for shape, n_head, scale, what in (
            ((2, 1, 24), 2, 1.0, "T = 1"),
            ((2, 5, 24), 1, 1.0, "one head"),
            ((2, 6, 24), 2, 20.0, "20 qkv: scores near 1000"),
        ):
            qkv = _inputs(shape, seed=20 + shape[1], scale=scale)
            grad = C.random_array((shape[0], shape[1], shape[2] // 3), seed=21)
            _, cache = _forward(student, qkv, n_head)
            _, want = _library(qkv, n_head, grad)
            C.compare(
                _backward(student, grad, cache),
                want,
                f"grad_qkv for qkv {shape}, n_head={n_head} ({what})",
                rtol=1e-8,
                atol=1e-10,
                hint=GRADIENT,
                mistakes=lambda qkv=qkv, n_head=n_head, grad=grad: {
                    h: g[0] for h, g in _gradient_mistakes(qkv, n_head, grad).items()
                },
            )


# The milestone ----------------------------------------------------------------------------------------------
@EXERCISE.check(
    "milestone: a TinyGPT with your multi-head attention trains on Shakespeare like the library's",
    kind="milestone",
)
def milestone(student: Student) -> str:
    op = graph_op(student, "mha_forward", "mha_backward")

    def plug(model: Any) -> None:
        replace_modules(model, MultiHeadAttention, lambda old: _StudentAttention(old, op))

    return train_and_compare(plug=plug, what="your multi-head attention")


class _StudentAttention(Module):
    """A MultiHeadAttention whose attention core (forward and backward) is the student's.

    The same Dense projections (qkv, proj) as the layer it replaces, so the
    optimizer trains the same Parameters. Training only: no KV cache, no dropout.
    """

    def __init__(self, old: MultiHeadAttention, op: Any) -> None:
        self.qkv, self.proj, self.n_head, self.op = old.qkv, old.proj, old.n_head, op

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        if cache is not None:
            raise RuntimeError("the milestone trains; it never generates with a KV cache")
        return self.proj(self.op(self.qkv(x), n_head=self.n_head))
