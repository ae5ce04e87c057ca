"""The layer_norm exercise: its solution passes on every backend; its starter and planted bugs fail, naming the fault."""

from __future__ import annotations

import pytest

from tests.course.helpers import failure_text, grade_source, numpy_session, plant, solution, starter
from tinygpt.course import registry

NAME = "layer_norm"
MILESTONE = registry.get(NAME).checks[-1].title
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


@numpy_session
def test_the_milestone_reports_both_losses(tmp_path):
    verdict = grade_source(NAME, solution(NAME), tmp_path)
    assert verdict.passed, verdict.report()
    assert "after 150 steps on Shakespeare" in verdict.results[-1].note


@numpy_session
def test_the_starter_names_the_first_function_to_write(tmp_path):
    verdict = grade_source(NAME, starter(NAME), tmp_path)
    assert verdict.message == "not implemented yet: layer_norm_forward", verdict.report()


@numpy_session
@pytest.mark.parametrize(("what", "old", "new", "expected"), BUGS, ids=[b[0] for b in BUGS])
def test_a_planted_bug_fails_naming_the_fault(tmp_path, what, old, new, expected):
    verdict = grade_source(NAME, plant(solution(NAME), old, new), tmp_path)
    assert not verdict.passed, f"{what} passed"
    assert expected in failure_text(verdict), verdict.report()


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
    verdict = grade_source(NAME, source, tmp_path)
    assert not verdict.passed
    assert verdict.failed_check == MILESTONE, verdict.report()
    assert "the gradient of blocks.1.ln2.weight" in failure_text(verdict), verdict.report()
    assert "state kept between calls" in failure_text(verdict), verdict.report()
