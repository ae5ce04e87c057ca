"""Tensor operations and the autograd engine, on every backend.

Each differentiable op is checked against central finite differences in
float64; float32 inputs must give float32 outputs and gradients.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.gradcheck import check_gradients, random_tensor
from tinygpt import Tensor, backend, concat, no_grad, split, stack
from tinygpt.errors import ShapeError


def positive_tensor(shape: tuple[int, ...], seed: int = 0) -> Tensor:
    """Values in [0.5, 2): safe for log, sqrt and division."""
    data = np.random.default_rng(seed).uniform(0.5, 2.0, shape)
    return Tensor(data, dtype=backend.current().float_dtype)


# Each case: (name, function of the inputs to a scalar, input factories).
UNARY_CASES = {
    "neg": lambda x: (-x).sum(),
    "exp": lambda x: (x.exp() * x).sum(),
    "tanh": lambda x: (x.tanh() * x).sum(),
    "relu": lambda x: (x.relu() * x).sum(),
    "sigmoid": lambda x: (x.sigmoid() * x).sum(),
    "gelu": lambda x: (x.gelu() * x).sum(),
    "softmax": lambda x: (x.softmax(axis=-1) * x).sum(),
    "softmax_axis0": lambda x: (x.softmax(axis=0) * x).sum(),
    "log_softmax": lambda x: (x.log_softmax(axis=-1) * x).sum(),
    "pow_int": lambda x: (x**3).sum(),
    "sum_all": lambda x: (x * x).sum(),
    "sum_axis": lambda x: (x.sum(axis=0) * x[0]).sum(),
    "sum_keepdims": lambda x: (x.sum(axis=-1, keepdims=True) * x).sum(),
    "sum_tuple_axis": lambda x: (x.sum(axis=(0, 2)) ** 2).sum(),
    "mean_all": lambda x: x.mean() * x.mean(),
    "mean_axis_keepdims": lambda x: (x.mean(axis=1, keepdims=True) * x).sum(),
    "max_all": lambda x: x.max() * 2.0,
    "max_axis": lambda x: (x.max(axis=-1) * x[..., 0]).sum(),
    "max_keepdims": lambda x: (x.max(axis=0, keepdims=True) * x).sum(),
    "reshape": lambda x: (x.reshape(6, -1) * x.reshape((6, 4)).exp()).sum(),
    "permute": lambda x: (x.permute(2, 0, 1) * x.permute((2, 0, 1)).tanh()).sum(),
    "transpose": lambda x: (x.transpose(0, 2) ** 2).sum() + x.transpose()[0, 0, 0],
    "T": lambda x: (x[0].T @ x[1]).sum(),
    "slice": lambda x: (x[1:, ::2] ** 2).sum(),
    "int_index": lambda x: (x[0] * x[-1]).sum() + x[1, 2, 3],
    "ellipsis_none": lambda x: (x[..., 1][None] ** 2).sum(),
    "split": lambda x: sum(((i + 1.0) * p * p).sum() for i, p in enumerate(split(x, 2, axis=-1))),
    "split_sizes": lambda x: (split(x, [1, 3], axis=-1)[1].exp()).sum(),
}


@pytest.mark.parametrize("name", sorted(UNARY_CASES))
def test_unary_op_gradient_matches_finite_differences(xp_backend, float64, name: str) -> None:
    x = random_tensor((2, 3, 4), seed=1)
    check_gradients(UNARY_CASES[name], [x])


@pytest.mark.parametrize("name", ["log", "sqrt", "pow_fraction", "rtruediv"])
def test_positive_domain_op_gradient_matches_finite_differences(xp_backend, float64, name: str) -> None:
    fn = {
        "log": lambda x: (x.log() * x).sum(),
        "sqrt": lambda x: (x.sqrt() * x).sum(),
        "pow_fraction": lambda x: (x**1.5).sum(),
        "rtruediv": lambda x: (2.0 / x).sum(),
    }[name]
    check_gradients(fn, [positive_tensor((3, 4), seed=2)])


BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 1), (4,)), ((2, 3, 4), (3, 1)), ((1,), (2, 3))]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize(("shape_a", "shape_b"), BINARY_SHAPES)
def test_broadcast_binary_op_gradient_sums_over_broadcast_axes(
    xp_backend, float64, op: str, shape_a, shape_b
) -> None:
    fn = {
        "add": lambda a, b: ((a + b) ** 2).sum(),
        "sub": lambda a, b: ((a - b) ** 2).sum(),
        "mul": lambda a, b: ((a * b) ** 2).sum(),
        "div": lambda a, b: ((a / b) ** 2).sum(),
    }[op]
    a = random_tensor(shape_a, seed=3)
    b = positive_tensor(shape_b, seed=4) if op == "div" else random_tensor(shape_b, seed=4)
    check_gradients(fn, [a, b])
    assert a.grad.shape == shape_a and b.grad.shape == shape_b


def test_broadcast_add_gradient_is_count_of_broadcast_copies(xp_backend) -> None:
    a = Tensor(np.zeros((3, 1)), requires_grad=True)
    b = Tensor(np.zeros(4), requires_grad=True)
    (a + b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full((3, 1), 4.0))
    np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 3.0))


@pytest.mark.parametrize(
    ("shape_a", "shape_b"),
    [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,))],
)
def test_matmul_gradient_matches_finite_differences(xp_backend, float64, shape_a, shape_b) -> None:
    a, b = random_tensor(shape_a, seed=5), random_tensor(shape_b, seed=6)
    expected = np.matmul(a.numpy(), b.numpy())
    np.testing.assert_allclose((a @ b).numpy(), expected, rtol=1e-12)
    check_gradients(lambda a, b: ((a @ b) ** 2).sum(), [a, b])


def test_scalar_constants_on_both_sides(xp_backend, float64) -> None:
    def fn(x: Tensor) -> Tensor:
        return ((1.0 + x - 2.0 + 3.0 * x * 0.5 - (1.0 - x) + x / 4.0) * x).sum()

    check_gradients(fn, [random_tensor((3, 4), seed=7)])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_and_stack_gradients(xp_backend, float64, axis: int) -> None:
    a, b = random_tensor((2, 3), seed=8), random_tensor((2, 3), seed=9)
    check_gradients(lambda a, b: (concat([a, b * b], axis=axis).exp()).sum(), [a, b])
    check_gradients(lambda a, b: (stack([a, b * 2.0], axis=axis) ** 3).sum(), [a, b])


def test_forward_values_match_numpy(xp_backend, float64) -> None:
    x = random_tensor((3, 5), seed=10)
    h = x.numpy()
    checks = {
        "exp": (x.exp(), np.exp(h)),
        "tanh": (x.tanh(), np.tanh(h)),
        "relu": (x.relu(), np.maximum(h, 0)),
        "sigmoid": (x.sigmoid(), 1 / (1 + np.exp(-h))),
        "gelu": (x.gelu(), 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))),
        "softmax": (x.softmax(), np.exp(h) / np.exp(h).sum(-1, keepdims=True)),
        "log_softmax": (x.log_softmax(), h - np.log(np.exp(h).sum(-1, keepdims=True))),
        "max": (x.max(axis=0), h.max(0)),
        "mean": (x.mean(axis=-1, keepdims=True), h.mean(-1, keepdims=True)),
        "T": (x.T, h.T),
        "concat": (concat([x, x], axis=1), np.concatenate([h, h], 1)),
        "stack": (stack([x, x], axis=1), np.stack([h, h], 1)),
    }
    for name, (got, want) in checks.items():
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-14, err_msg=name)


def test_max_shares_gradient_between_ties(xp_backend) -> None:
    x = Tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    x.max(axis=-1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [1, 0, 0]])


def test_sigmoid_does_not_overflow(xp_backend) -> None:
    out = Tensor([-1000.0, 0.0, 1000.0]).sigmoid().numpy()
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])


def test_softmax_is_stable_for_large_logits(xp_backend) -> None:
    out = Tensor([[1000.0, 1000.0, -1000.0]])
    np.testing.assert_allclose(out.softmax().numpy(), [[0.5, 0.5, 0.0]])
    assert np.isfinite(out.log_softmax().numpy()[0, :2]).all()


def test_split_rejects_uneven_parts(xp_backend) -> None:
    x = Tensor(np.zeros((2, 5)))
    with pytest.raises(ShapeError):
        split(x, 2)
    with pytest.raises(ShapeError):
        split(x, [2, 2])


# dtype policy -------------------------------------------------------------------------
FLOAT32_OPS = {
    "add_scalar": lambda x, w: (x + 1.5).sum(),
    "radd_scalar": lambda x, w: (2.5 - x).sum(),
    "mul_scalar": lambda x, w: (x * 0.1).sum(),
    "div_scalar": lambda x, w: (3.0 / (x * x + 1.0)).sum(),
    "pow": lambda x, w: (x**2.0).sum() + (x**3).sum(),
    "matmul": lambda x, w: (x @ w).sum(),
    "mean": lambda x, w: x.mean() * 0.5,
    "max": lambda x, w: x.max(axis=0).sum(),
    "exp_log": lambda x, w: ((x * x + 1.0).log() + (x * 0.1).exp()).sum(),
    "sqrt": lambda x, w: (x * x + 1.0).sqrt().sum(),
    "activations": lambda x, w: (x.tanh() + x.relu() + x.sigmoid() + x.gelu()).sum(),
    "softmaxes": lambda x, w: (x.softmax() + x.log_softmax(axis=0)).sum(),
    "shape": lambda x, w: concat([x.T, stack([x[0], x[1]])], axis=0).reshape(-1).sum(),
    "numpy_scalar": lambda x, w: (np.float64(2.0) * x + np.float64(1.0)).sum(),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_OPS))
def test_float32_in_gives_float32_out_and_grads(xp_backend, name: str) -> None:
    xp = xp_backend.xp
    x = Tensor(np.random.default_rng(0).standard_normal((2, 2)), requires_grad=True)
    w = Tensor(np.random.default_rng(1).standard_normal((2, 3)), requires_grad=True)
    assert x.dtype == xp.float32
    out = FLOAT32_OPS[name](x, w)
    assert out.dtype == xp.float32, f"{name} gave {out.dtype}"
    out.backward()
    for t in (x, w):
        if t.grad is not None:
            assert t.grad.dtype == xp.float32, f"{name} gradient is {t.grad.dtype}"
    assert x.grad is not None


# Autograd engine ------------------------------------------------------------------
def test_tensor_used_twice_accumulates_gradient(xp_backend) -> None:
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -4.0, 6.0])
    x.zero_grad()
    (x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_backward_twice_accumulates_into_leaf(xp_backend) -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


def test_backward_on_non_scalar_needs_a_seed(xp_backend) -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    with pytest.raises(ShapeError, match="scalar"):
        y.backward()
    y.backward(Tensor([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 40.0])


def test_backward_with_wrong_seed_shape_raises(xp_backend) -> None:
    y = Tensor([1.0, 2.0], requires_grad=True) * 2.0
    with pytest.raises(ShapeError):
        y.backward(Tensor([1.0, 2.0, 3.0]))


def test_backward_without_requires_grad_raises(xp_backend) -> None:
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()


def test_no_grad_records_no_graph(xp_backend) -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        y = (x * x).sum()
    assert not y.requires_grad and y._parents == () and y._backward is None
    z = (x * x).sum()  # recording resumes after the block
    assert z.requires_grad


def test_detach_cuts_the_graph(xp_backend) -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2.0).detach()
    assert not d.requires_grad
    np.testing.assert_allclose(d.numpy(), [2.0, 4.0])
    (x * d).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])  # d treated as a constant


def test_zero_grad_clears_and_grad_is_a_tensor_of_same_shape(xp_backend) -> None:
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    assert x.grad is None
    (x * 2.0).sum().backward()
    assert isinstance(x.grad, Tensor) and x.grad.shape == (2, 3)
    x.zero_grad()
    assert x.grad is None


def test_intermediate_gradients_are_freed(xp_backend) -> None:
    x = Tensor([1.0], requires_grad=True)
    y = x * 2.0
    (y * 3.0).sum().backward()
    assert y.grad is None and y._parents == ()


def test_item_and_numpy(xp_backend) -> None:
    x = Tensor([[1.5, 2.0], [3.0, 4.0]])
    assert x.sum().item() == pytest.approx(10.5)
    assert isinstance(x.sum().item(), float)
    host = x.numpy()
    assert type(host) is np.ndarray and host.dtype == np.float32
    np.testing.assert_array_equal(host, [[1.5, 2.0], [3.0, 4.0]])
    with pytest.raises(ShapeError):
        x.item()


def test_comparisons_give_boolean_tensors_without_grad(xp_backend) -> None:
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result, expected in [
        (x < 2.0, [True, False, False]),
        (x <= 2.0, [True, True, False]),
        (x > 2.0, [False, False, True]),
        (x >= 2.0, [False, True, True]),
        (x.eq(Tensor([1.0, 0.0, 3.0])), [True, False, True]),
    ]:
        assert not result.requires_grad and result._backward is None
        np.testing.assert_array_equal(result.numpy(), expected)


def test_deep_chain_backprops_without_recursion_error(xp_backend) -> None:
    x = Tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.sum().backward()
    assert y.item() == pytest.approx(5001.0)
    np.testing.assert_allclose(x.grad.numpy(), [1.0])


def test_diamond_graph_counts_each_path_once(xp_backend) -> None:
    x = Tensor([2.0], requires_grad=True)
    a = x * 3.0
    b = a.exp()
    c = a * a
    (b + c).sum().backward()  # d/dx = 3 e^{3x} + 2 (3x) 3
    np.testing.assert_allclose(x.grad.numpy(), [3 * np.exp(6.0) + 36.0], rtol=1e-6)


# Construction ---------------------------------------------------------------------
def test_nested_lists_and_float64_numpy_become_float32(xp_backend) -> None:
    xp = xp_backend.xp
    assert Tensor([[1.0, 2.0], [3.0, 4.0]]).dtype == xp.float32
    assert Tensor(np.ones((2, 2), dtype=np.float64)).dtype == xp.float32
    assert Tensor(1.5).dtype == xp.float32


def test_integer_data_gets_the_index_dtype(xp_backend) -> None:
    index = xp_backend.int_dtype  # int64; int32 on JAX without x64
    assert Tensor(np.array([1, 2, 3], dtype=np.int64)).dtype == index
    assert Tensor(np.array([1, 2, 3], dtype=np.int32)).dtype == index
    assert Tensor([1, 2, 3]).dtype == index


def test_float64_scope_makes_float64_tensors(xp_backend, float64) -> None:
    assert Tensor([1.0, 2.0]).dtype == xp_backend.xp.float64


def test_tensor_lives_on_the_backend_device(xp_backend) -> None:
    x = Tensor([1.0, 2.0])
    assert x.data.device == xp_backend.device
    y = (x * 2.0 + 1.0).exp()
    assert y.data.device == xp_backend.device
