"""The lm_loss exercise: its planted bugs fail, naming the fault (its solution and starter: test_exercises.py)."""

from __future__ import annotations

from tests.course.helpers import (
    fails_only_the_milestone,
    numpy_session,
    plant,
    planted_bugs_fail,
    solution,
)

NAME = "lm_loss"
Z = "    z = xp.reshape(logits[:, :-1, :], (-1, v))  # (N, V): the predictions made at positions 0 .. T-2\n"
TARGETS = "    targets = xp.reshape(tokens[:, 1:], (-1,))  # (N,): the tokens at positions 1 .. T-1\n"
SHIFTED = "    shifted = z - xp.max(z, axis=-1, keepdims=True)\n"
LOGP = "    logp = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))  # log softmax, (N, V)\n"
MEAN = "    return -xp.mean(picked), (xp.exp(logp), targets, (batch, t, v))"
SCORED = "    scored = xp.reshape((probs - onehot) * (grad_out / probs.shape[0]), (batch, t - 1, v))\n"
REFUSAL = """    if t < 2:
        raise ValueError(
            f"a window of {t} token has nothing to predict: the loss needs T >= 2 tokens per row"
        )
"""

# (what the student got wrong, text in the solution, the wrong version, words the failure must contain)
BUGS = [
    (
        "loss without the shift",
        Z + TARGETS,
        "    z = xp.reshape(logits, (-1, v))\n    targets = xp.reshape(tokens, (-1,))\n",
        "without the shift the model only has to copy",
    ),
    (
        "shift the wrong way",
        Z + TARGETS,
        "    z = xp.reshape(logits[:, 1:, :], (-1, v))\n    targets = xp.reshape(tokens[:, :-1], (-1,))\n",
        "shift the other way",
    ),
    (
        "only the logits shifted",
        TARGETS,
        "    targets = xp.reshape(tokens[:, :-1], (-1,))\n",
        "the targets are the next tokens",
    ),
    (
        "mean over B * T",
        MEAN,
        "    return -xp.sum(picked) / (batch * t), (xp.exp(logp), targets, (batch, t, v))",
        "not B * T",
    ),
    (
        "sum instead of mean",
        MEAN,
        "    return -xp.sum(picked), (xp.exp(logp), targets, (batch, t, v))",
        "not their sum",
    ),
    (
        "sign of the loss",
        MEAN,
        "    return xp.mean(picked), (xp.exp(logp), targets, (batch, t, v))",
        "minus the mean log-probability",
    ),
    ("no max subtraction", SHIFTED, "    shifted = z\n", "subtract each row's maximum before exp"),
    (
        "log of softmax, max subtracted",
        LOGP,
        "    e = xp.exp(shifted)\n    logp = xp.log(e / xp.sum(e, axis=-1, keepdims=True))\n",
        "not log(softmax(z))",
    ),
    (
        "log of softmax without stability",
        LOGP,
        "    logp = xp.log(xp.exp(z) / xp.sum(xp.exp(z), axis=-1, keepdims=True))\n",
        "exp(1000) overflows to inf",
    ),
    (
        "logsumexp without the max added back",
        LOGP,
        "    logp = z - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))\n",
        "add the maximum back",
    ),
    ("T = 1 not refused", REFUSAL, "", "refuse it with a ValueError"),
    (
        "gradient not divided by N",
        SCORED,
        "    scored = xp.reshape((probs - onehot) * grad_out, (batch, t - 1, v))\n",
        "divide the gradient by N = B * (T - 1)",
    ),
    (
        "gradient divided by B * T",
        SCORED,
        "    scored = xp.reshape((probs - onehot) * (grad_out / (batch * t)), (batch, t - 1, v))\n",
        "not by B * T",
    ),
    (
        "gradient missing the -onehot term",
        SCORED,
        "    scored = xp.reshape(probs * (grad_out / probs.shape[0]), (batch, t - 1, v))\n",
        "subtract 1 at each row's target",
    ),
    (
        "gradient with the wrong sign",
        SCORED,
        "    scored = xp.reshape((onehot - probs) * (grad_out / probs.shape[0]), (batch, t - 1, v))\n",
        "not onehot - softmax",
    ),
    (
        "incoming gradient ignored",
        SCORED,
        "    scored = xp.reshape((probs - onehot) / probs.shape[0], (batch, t - 1, v))\n",
        "multiply by grad_out",
    ),
    (
        "zero slice first",
        "    return (xp.concat([scored, last], axis=1),)",
        "    return (xp.concat([last, scored], axis=1),)",
        "grad_logits[:, -1] should be 0",
    ),
    (
        "a bare array instead of a tuple",
        "    return (xp.concat([scored, last], axis=1),)",
        "    return xp.concat([scored, last], axis=1)",
        "(mind the comma)",
    ),
]


test_a_planted_bug_fails_naming_the_fault = planted_bugs_fail(NAME, BUGS)


@numpy_session
def test_the_milestone_trains_with_the_students_backward(tmp_path):
    # Right on the checks' small batches, no gradient on the milestone's batch of 16: only the
    # milestone, which runs the student's own loss and backward (not the library's), notices.
    source = plant(solution(NAME), SCORED, SCORED + "    scored = scored * 0.0 if batch == 16 else scored\n")
    fails_only_the_milestone(NAME, source, tmp_path, "the gradient of ln_f.bias")
