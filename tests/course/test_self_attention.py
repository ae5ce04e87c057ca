"""The self_attention exercise: its planted bugs fail, naming the fault (its solution and starter: test_exercises.py)."""

from __future__ import annotations

from tests.course.helpers import (
    failure_text,
    grade_source,
    numpy_session,
    plant,
    planted_bugs_fail,
    solution,
)

NAME = "self_attention"
WHERE = "    return xp.where(cols <= rows, zeros, xp.full((t, t), -math.inf, dtype=b.float_dtype, device=b.device))\n"
EXP = "    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))\n"
NORMALISE = "    return e / xp.sum(e, axis=-1, keepdims=True)\n"
SCORES = "    scores = xp.matmul(q, xp.matrix_transpose(k)) / math.sqrt(q.shape[-1])  # (..., T, T)\n"
WEIGHTS = "    return softmax(scores + causal_mask(q.shape[-2]))\n"
PROJECT = "    q, k, v = xp.matmul(x, w_q), xp.matmul(x, w_k), xp.matmul(x, w_v)  # (B, T, D) each\n"
OUT = "    return xp.matmul(attention_weights(q, k), v)\n"

# (what the student got wrong, text in the solution, the wrong version, words the failure must contain)
BUGS = [
    # The mask.
    ("diagonal masked", WHERE, WHERE.replace("cols <= rows", "cols < rows"), "a query sees itself"),
    (
        "one future position let in",
        WHERE,
        WHERE.replace("cols <= rows", "cols <= rows + 1"),
        "lets one future position in",
    ),
    ("mask transposed", WHERE, WHERE.replace("cols <= rows", "cols >= rows"), "the mask is transposed"),
    (
        "a 0/1 mask",
        WHERE,
        "    return xp.where(cols <= rows, zeros + 1.0, zeros)\n",
        "a 0/1 mask multiplied into the scores does not mask",
    ),
    (
        "a large negative number instead of -inf",
        "-math.inf, dtype=b.float_dtype",
        "-1e9, dtype=b.float_dtype",
        "use -inf",
    ),
    (
        "a boolean mask",
        WHERE,
        "    return cols <= rows\n",
        "should have dtype float32, got bool",
    ),
    # The softmax.
    ("no max subtraction", EXP, "    e = xp.exp(z)\n", "subtract each row's maximum"),
    (
        "softmax over the first axis",
        EXP + NORMALISE,
        "    e = xp.exp(z - xp.max(z, axis=0, keepdims=True))\n    return e / xp.sum(e, axis=0, keepdims=True)\n",
        "normalise over the last axis",
    ),
    (
        "row sums without keepdims",
        NORMALISE,
        "    return e / xp.sum(e, axis=-1)\n",
        "keep the row sums as a column",
    ),
    # The attention weights.
    (
        "no 1/sqrt(d)",
        SCORES,
        "    scores = xp.matmul(q, xp.matrix_transpose(k))\n",
        "divide the scores by sqrt(D)",
    ),
    (
        "divided by d, not sqrt(d)",
        SCORES,
        "    scores = xp.matmul(q, xp.matrix_transpose(k)) / q.shape[-1]\n",
        "not by D",
    ),
    ("no mask", WEIGHTS, "    return softmax(scores)\n", "add the causal mask to the scores"),
    (
        "mask added after the softmax",
        WEIGHTS,
        "    return softmax(scores) + causal_mask(q.shape[-2])\n",
        "add the mask to the scores before the softmax",
    ),
    (
        "future weights zeroed after the softmax",
        WEIGHTS,
        "    return softmax(scores) * (causal_mask(q.shape[-2]) == 0)\n",
        "add the mask to the scores before the softmax",
    ),
    (
        "scores multiplied by a 0/1 mask",
        WEIGHTS,
        "    return softmax(scores * (causal_mask(q.shape[-2]) == 0))\n",
        "a masked score must be -inf, not 0",
    ),
    (
        "softmax over the queries",
        WEIGHTS,
        "    s = scores + causal_mask(q.shape[-2])\n"
        "    e = xp.exp(s - xp.max(s, axis=-2, keepdims=True))\n"
        "    return e / xp.sum(e, axis=-2, keepdims=True)\n",
        "the softmax runs over the keys",
    ),
    (
        "k q^T",
        SCORES,
        SCORES.replace("xp.matmul(q, xp.matrix_transpose(k))", "xp.matmul(k, xp.matrix_transpose(q))"),
        "not k @ q^T",
    ),
    (
        "a transpose that needs exactly three axes",
        SCORES,
        SCORES.replace("xp.matrix_transpose(k)", "xp.permute_dims(k, (0, 2, 1))"),
        "any leading axes work",
    ),
    # Self-attention.
    (
        "k made with w_q",
        PROJECT,
        "    q, k, v = xp.matmul(x, w_q), xp.matmul(x, w_q), xp.matmul(x, w_v)\n",
        "its own weight matrix",
    ),
    ("averaging x, not v", OUT, "    return xp.matmul(attention_weights(q, k), x)\n", "not the inputs x"),
    (
        "weights transposed",
        OUT,
        "    return xp.matmul(xp.matrix_transpose(attention_weights(q, k)), v)\n",
        "row t of the weights mixes the values for position t",
    ),
]


test_a_planted_bug_fails_naming_the_fault = planted_bugs_fail(NAME, BUGS)


@numpy_session
def test_attention_that_skips_its_own_mask_fails_naming_the_future(tmp_path):
    # A student whose attention_weights is right but whose self_attention builds its own, unmasked softmax.
    source = plant(
        solution(NAME),
        OUT,
        "    e = xp.exp(xp.matmul(q, xp.matrix_transpose(k)) / math.sqrt(q.shape[-1]))\n"
        "    return xp.matmul(e / xp.sum(e, axis=-1, keepdims=True), v)\n",
    )
    verdict = grade_source(NAME, source, tmp_path)
    assert not verdict.passed
    assert verdict.failed_check.startswith("self_attention matches"), verdict.report()
    assert "query i reads keys j > i (the future)" in failure_text(verdict), verdict.report()
