"""milestone.compare_gradients: one float64 backward pass names the first parameter whose gradient differs."""

from __future__ import annotations

import pytest

from tests.course.helpers import numpy_session
from tinygpt import functional as F
from tinygpt.course.errors import CheckFailed
from tinygpt.course.milestone import compare_gradients
from tinygpt.layers import Dense, Module
from tinygpt.tensor import Tensor


class _DoubledGradient(Module):
    """A Dense whose output sends twice the gradient back: right forward, wrong backward."""

    def __init__(self, old: Dense) -> None:
        self.weight, self.bias = old.weight, old.bias

    def forward(self, x: Tensor) -> Tensor:
        out = F.linear(x, self.weight, self.bias)
        return Tensor.from_op(out.data, (out,), lambda g: (g * 2.0,))


@numpy_session
def test_the_library_s_own_pieces_agree():
    assert "agree" in compare_gradients(plug=lambda model: None)


@numpy_session
def test_a_wrong_backward_is_named_by_the_first_parameter_it_spoils():
    def plug(model):
        model.blocks[0].attn.proj = _DoubledGradient(model.blocks[0].attn.proj)

    with pytest.raises(CheckFailed, match=r"the gradient of blocks\.0\.attn\.proj\.bias") as info:
        compare_gradients(plug=plug, what="a doubled gradient")
    assert "state kept between calls" in info.value.hint
