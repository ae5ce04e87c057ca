"""LayerNorm."""

from __future__ import annotations

import numpy as np

from tests.gradcheck import check_module_gradients, random_tensor
from tinygpt import LayerNorm


def test_layer_norm_starts_as_pure_normalisation(xp_backend) -> None:
    norm = LayerNorm(8)
    np.testing.assert_array_equal(norm.weight.numpy(), np.ones(8))
    np.testing.assert_array_equal(norm.bias.numpy(), np.zeros(8))
    assert norm.weight.dtype == xp_backend.xp.float32


def test_layer_norm_matches_numpy_formula(xp_backend, float64) -> None:
    norm = LayerNorm(6, eps=1e-3)
    norm.weight.data = random_tensor((6,), 1).data
    norm.bias.data = random_tensor((6,), 2).data
    x = random_tensor((2, 3, 6), 3, scale=4.0)
    h = x.numpy()
    expected = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-3)
    expected = expected * norm.weight.numpy() + norm.bias.numpy()
    np.testing.assert_allclose(norm(x).numpy(), expected, rtol=1e-12)


def test_layer_norm_gradients_match_finite_differences(xp_backend, float64) -> None:
    norm = LayerNorm(5)
    norm.weight.data = random_tensor((5,), 4).data
    x = random_tensor((3, 5), 5)
    check_module_gradients(norm, lambda x: (norm(x) * x).sum(), [x])


def test_layer_norm_is_invariant_to_shift_and_scale_of_input(xp_backend, float64) -> None:
    norm = LayerNorm(7)
    x = random_tensor((2, 7), 6)
    np.testing.assert_allclose(norm(x * 3.0 + 5.0).numpy(), norm(x).numpy(), rtol=1e-5, atol=1e-6)
