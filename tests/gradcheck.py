"""Finite-difference gradient checks, shared by the tests.

Central differences in float64 on a sample of elements of each input: the
independent reference every hand-written backward pass is compared against.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinygpt import Tensor, backend


def numeric_grad(
    f: Callable[..., Tensor], inputs: list[Tensor], which: int, index: tuple, eps: float = 1e-6
) -> float:
    host = inputs[which].numpy()

    def value_at(delta: float) -> float:
        moved = host.copy()
        moved[index] += delta
        args = list(inputs)
        args[which] = Tensor(moved, dtype=inputs[which].dtype)
        return float(f(*args).item())

    return (value_at(eps) - value_at(-eps)) / (2 * eps)


def check_gradients(
    f: Callable[..., Tensor],
    inputs: list[Tensor],
    samples: int = 12,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    seed: int = 0,
) -> None:
    """Assert analytic gradients of scalar ``f(*inputs)`` match finite differences (float64 inputs)."""
    for t in inputs:
        assert "float64" in str(t.dtype), f"gradient checks need float64 inputs, got {t.dtype}"
        t.requires_grad = True
        t.zero_grad()
    out = f(*inputs)
    assert out.size == 1, "check_gradients needs a scalar function"
    out.backward()
    rng = np.random.default_rng(seed)
    for which, t in enumerate(inputs):
        assert t.grad is not None, f"input {which} got no gradient"
        analytic = t.grad.numpy()
        assert analytic.shape == t.shape
        flat = rng.choice(t.size, size=min(samples, t.size), replace=False)
        for k in flat:
            index = np.unravel_index(int(k), t.shape)
            expected = numeric_grad(f, inputs, which, index)
            got = analytic[index]
            assert abs(got - expected) <= atol + rtol * abs(expected), (
                f"input {which} element {index}: analytic {got} vs numeric {expected}"
            )


def random_tensor(shape: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> Tensor:
    """A float tensor on the current backend from a fixed host seed."""
    data = np.random.default_rng(seed).standard_normal(shape) * scale
    return Tensor(data, dtype=backend.current().float_dtype)


def check_module_gradients(module, f: Callable[..., Tensor], inputs: list[Tensor], **options) -> None:
    """``check_gradients`` of scalar ``f(*inputs)`` w.r.t. the inputs and every parameter of ``module``.

    ``f`` calls the module; each parameter is swapped for the perturbed copy
    during the finite-difference evaluations and restored afterwards.
    """
    params = module.parameters()
    n = len(inputs)

    def with_params(*args: Tensor) -> Tensor:
        saved = [p.data for p in params]
        for p, value in zip(params, args[n:], strict=True):
            p.data = value.data
        try:
            return f(*args[:n])
        finally:
            for p, data in zip(params, saved, strict=True):
                p.data = data

    check_gradients(with_params, list(inputs) + list(params), **options)
