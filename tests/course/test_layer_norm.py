"""The layer_norm exercise: its planted bugs fail, naming the fault (its solution and starter: test_exercises.py)."""

from __future__ import annotations

from tests.course.helpers import (
    fails_only_the_milestone,
    numpy_session,
    plant,
    planted_bugs_fail,
    solution,
)

NAME = "layer_norm"
VAR = "    var = xp.mean(centered * centered, axis=-1, keepdims=True)\n"
RSTD = "    rstd = 1.0 / xp.sqrt(var + eps)\n"
DX = """    grad_x = rstd * (
        gxhat - xp.mean(gxhat, axis=-1, keepdims=True) - xhat * xp.mean(gxhat * xhat, axis=-1, keepdims=True)
    )
"""

# (what the student got wrong, text in the solution, the wrong version, words the failure must contain)
BUGS = [
    (
        "unbiased variance",
        VAR,
        "    var = xp.sum(centered * centered, axis=-1, keepdims=True) / (x.shape[-1] - 1)\n",
        "biased variance",
    ),
    (
        "eps outside the sqrt",
        RSTD + "    xhat = centered * rstd\n",
        "    rstd = 1.0 / (xp.sqrt(var) + eps)\n    xhat = centered * rstd\n",
        "eps goes inside the square root",
    ),
    ("no eps", RSTD, "    rstd = 1.0 / xp.sqrt(var)\n", "add eps to the variance"),
    (
        "normalised over the wrong axis",
        "    mean = xp.mean(x, axis=-1, keepdims=True)\n    centered = x - mean\n    var = xp.mean(centered * centered, axis=-1, keepdims=True)\n",
        "    mean = xp.mean(x, axis=0, keepdims=True)\n    centered = x - mean\n    var = xp.mean(centered * centered, axis=0, keepdims=True)\n",
        "over the last axis",
    ),
    (
        "weight and bias swapped",
        "return xhat * weight + bias, (xhat, rstd, weight)",
        "return xhat * bias + weight, (xhat, rstd, weight)",
        "scale by weight, then shift by bias",
    ),
    (
        "variance as mean(x**2) - mean**2",
        VAR,
        "    var = xp.mean(x * x, axis=-1, keepdims=True) - mean * mean\n",
        "loses float32's seven digits",
    ),
    ("hard-coded eps", RSTD, "    rstd = 1.0 / xp.sqrt(var + 1e-5)\n", "use the eps argument"),
    (
        "backward misses the mean term",
        DX,
        "    grad_x = rstd * (gxhat - xhat * xp.mean(gxhat * xhat, axis=-1, keepdims=True))\n",
        "misses the term from the mean",
    ),
    (
        "backward misses the variance term",
        DX,
        "    grad_x = rstd * (gxhat - xp.mean(gxhat, axis=-1, keepdims=True))\n",
        "misses the term from the variance",
    ),
    (
        "backward forgets the weight",
        "    gxhat = grad_out * weight\n",
        "    gxhat = grad_out\n",
        "gxhat = grad_out * weight",
    ),
    (
        "grad_weight summed over the first axis only",
        "    grad_weight = xp.sum(xp.reshape(grad_out * xhat, (-1, c)), axis=0)\n",
        "    grad_weight = xp.sum(grad_out * xhat, axis=0)\n",
        "sum over every leading axis",
    ),
    (
        "grad_weight without xhat",
        "    grad_weight = xp.sum(xp.reshape(grad_out * xhat, (-1, c)), axis=0)\n",
        "    grad_weight = xp.sum(xp.reshape(grad_out, (-1, c)), axis=0)\n",
        "grad_weight is the sum of grad_out * xhat",
    ),
]


test_a_planted_bug_fails_naming_the_fault = planted_bugs_fail(NAME, BUGS)


@numpy_session
def test_a_cache_kept_in_a_global_fails_only_the_milestone(tmp_path):
    # Right when backward follows its own forward at once (the unit checks), wrong inside a model,
    # where every layer norm runs forward before any runs backward.
    source = plant(
        solution(NAME),
        "    return xhat * weight + bias, (xhat, rstd, weight)",
        "    global LAST\n    LAST = (xhat, rstd, weight)\n    return xhat * weight + bias, None",
    )
    source = plant(source, "    xhat, rstd, weight = cache\n", "    xhat, rstd, weight = LAST\n")
    fails_only_the_milestone(
        NAME, source, tmp_path, "the gradient of blocks.1.ln2.weight", "state kept between calls"
    )
