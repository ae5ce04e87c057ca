"""Dense layers, activations, Dropout and Sequential."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.gradcheck import check_module_gradients, random_tensor
from tinygpt import GELU, Dense, Dropout, Linear, ReLU, Sequential, Sigmoid, Softmax, Tanh, Tensor
from tinygpt.backend import Generator


def test_dense_computes_x_at_w_plus_b(xp_backend) -> None:
    layer = Dense(4, 3)
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    out = layer(Tensor(x))
    assert out.shape == (2, 5, 3) and out.dtype == xp_backend.xp.float32
    expected = x @ layer.weight.numpy() + layer.bias.numpy()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_dense_initialisation_is_uniform_within_fan_in_bound(xp_backend) -> None:
    layer = Dense(16, 32)
    bound = 1.0 / math.sqrt(16)
    assert layer.weight.shape == (16, 32) and layer.bias.shape == (32,)
    w = layer.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert layer.weight.requires_grad and layer.bias.requires_grad


def test_dense_same_generator_seed_same_weights(xp_backend) -> None:
    a, b = Dense(3, 2, rng=Generator(4)), Dense(3, 2, rng=Generator(4))
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())


def test_dense_without_bias(xp_backend) -> None:
    layer = Dense(3, 2, bias=False)
    assert layer.bias is None and len(layer.parameters()) == 1
    x = np.ones((1, 3), dtype=np.float32)
    np.testing.assert_allclose(layer(Tensor(x)).numpy(), x @ layer.weight.numpy(), rtol=1e-6)
    assert Linear is Dense


def test_dense_gradients_match_finite_differences(xp_backend, float64) -> None:
    layer = Dense(4, 3)
    check_module_gradients(layer, lambda x: (layer(x).tanh() ** 2).sum(), [random_tensor((2, 3, 4), 1)])


def test_activation_modules_apply_their_functions(xp_backend) -> None:
    x = Tensor([[-1.0, 0.5, 2.0]])
    h = x.numpy()
    np.testing.assert_allclose(ReLU()(x).numpy(), np.maximum(h, 0))
    np.testing.assert_allclose(Tanh()(x).numpy(), np.tanh(h), rtol=1e-6)
    np.testing.assert_allclose(Sigmoid()(x).numpy(), 1 / (1 + np.exp(-h)), rtol=1e-6)
    np.testing.assert_allclose(GELU()(x).numpy(), x.gelu().numpy())
    np.testing.assert_allclose(Softmax()(x).numpy().sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(Softmax(axis=0)(x).numpy(), np.ones((1, 3)))


def test_sequential_applies_layers_in_order(xp_backend, float64) -> None:
    first, second = Dense(2, 3), Dense(3, 1)
    model = Sequential(first, Tanh(), second)
    x = random_tensor((4, 2), 2)
    expected = second(first(x).tanh())
    np.testing.assert_allclose(model(x).numpy(), expected.numpy())
    assert len(model) == 3 and model[0] is first
    assert [n for n, _ in model.named_parameters()] == [
        "layers.0.weight",
        "layers.0.bias",
        "layers.2.weight",
        "layers.2.bias",
    ]
    check_module_gradients(model, lambda x: (model(x) ** 2).sum(), [x])


def test_dropout_module_is_active_only_in_training(xp_backend) -> None:
    layer = Dropout(0.5, Generator(0))
    x = Tensor(np.ones((50, 40)))
    out = layer(x).numpy()
    assert 0.4 < (out == 0).mean() < 0.6
    layer.eval()
    assert layer(x) is x
    layer.train()
    assert (layer(x).numpy() == 0).any()


def test_dropout_module_rejects_bad_probability() -> None:
    with pytest.raises(ValueError):
        Dropout(1.0)
    with pytest.raises(ValueError):
        Dropout(-0.1)
