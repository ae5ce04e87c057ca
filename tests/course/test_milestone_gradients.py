"""milestone.compare_gradients: one float64 backward pass names the first parameter whose gradient differs.

It runs before the training comparison of every milestone whose student code
computes gradients, because that comparison cannot see a gradient wrong by a
factor: AdamW divides each gradient by its own running RMS. The planted bugs
below are right on the checks' small inputs and wrong only on the milestone's
batch (B = 16): the 150 training steps pass them, the gradient comparison names them.
"""

from __future__ import annotations

import pytest

from tests.course.helpers import numpy_session, plant, solution
from tinygpt import functional as F
from tinygpt.course import milestone, registry
from tinygpt.course.errors import CheckFailed
from tinygpt.course.milestone import compare_gradients
from tinygpt.course.student import Student
from tinygpt.layers import Dense, Module
from tinygpt.tensor import Tensor

pytestmark = numpy_session


class _DoubledGradient(Module):
    """A Dense whose output sends twice the gradient back: right forward, wrong backward."""

    def __init__(self, old: Dense) -> None:
        self.weight, self.bias = old.weight, old.bias

    def forward(self, x: Tensor) -> Tensor:
        out = F.linear(x, self.weight, self.bias)
        return Tensor.from_op(out.data, (out,), lambda g: (g * 2.0,))


def test_the_library_s_own_pieces_agree():
    assert "agree" in compare_gradients(plug=lambda model: None)


def test_a_wrong_backward_is_named_by_the_first_parameter_it_spoils():
    def plug(model):
        model.blocks[0].attn.proj = _DoubledGradient(model.blocks[0].attn.proj)

    with pytest.raises(CheckFailed, match=r"the gradient of blocks\.0\.attn\.proj\.bias") as info:
        compare_gradients(plug=plug, what="a doubled gradient")
    assert "state kept between calls" in info.value.hint


ONLY_IN_THE_MODEL = [
    (
        "layer_norm",
        "grad_bias averaged over the positions instead of summed",
        "    grad_bias = xp.sum(xp.reshape(grad_out, (-1, c)), axis=0)\n",
        "    grad_bias = xp.sum(xp.reshape(grad_out, (-1, c)), axis=0)\n"
        "    if grad_out.shape[0] == 16:\n        grad_bias = grad_bias / grad_out.shape[1]\n",
        "the gradient of ln_f.bias",
    ),
    (
        "transformer_block",
        "ln1's output cut from the graph",
        "        x = x + self.attn(self.ln1(x), cache=cache)\n",
        "        h = self.ln1(x) if x.shape[0] != 16 else Tensor.wrap(self.ln1(x).data)\n"
        "        x = x + self.attn(h, cache=cache)\n",
        "blocks.1.ln1.bias got no gradient",
    ),
    (
        "lm_loss",
        "the gradient divided by B * T instead of B * (T - 1)",
        "    scored = xp.reshape((probs - onehot) * (grad_out / probs.shape[0]), (batch, t - 1, v))\n",
        "    n = probs.shape[0] if batch != 16 else batch * t\n"
        "    scored = xp.reshape((probs - onehot) * (grad_out / n), (batch, t - 1, v))\n",
        "the gradient of ln_f.bias",
    ),
]


@pytest.mark.parametrize(
    ("name", "what", "old", "new", "expected"), ONLY_IN_THE_MODEL, ids=[b[0] for b in ONLY_IN_THE_MODEL]
)
def test_a_gradient_wrong_only_in_the_model_passes_training_and_fails_the_gradient_comparison(
    tmp_path, monkeypatch, name, what, old, new, expected
):
    path = tmp_path / f"{name}.py"
    path.write_text(plant(solution(name), old, new), encoding="utf-8")
    student = Student.load(path)
    check = registry.get(name).checks[-1]
    with monkeypatch.context() as patched:
        patched.setattr(milestone, "compare_gradients", lambda *args, **kwargs: "not compared")
        assert "after 150 steps" in (check.run(student) or ""), f"training alone notices: {what}"
    with pytest.raises(CheckFailed, match=expected):
        check.run(student)
