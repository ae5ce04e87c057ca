"""Fused ops: finite-difference gradient checks and agreement with composed primitives.

Each fused op (one graph node with a hand-written backward) must give the same
value and gradients as the same formula written with Tensor primitives, whose
backward passes are checked separately in test_tensor.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.gradcheck import check_gradients, random_tensor
from tinygpt import Tensor, backend
from tinygpt import functional as F
from tinygpt.backend import Generator
from tinygpt.errors import ShapeError


def assert_same_value_and_grads(fused, composed, inputs: list[Tensor], rtol: float = 1e-10) -> None:
    """fused(*inputs) and composed(*inputs) agree in value and in every input's gradient."""
    results = []
    for fn in (fused, composed):
        for t in inputs:
            t.requires_grad = True
            t.zero_grad()
        out = fn(*inputs)
        seed = np.random.default_rng(0).standard_normal(out.shape)
        out.backward(Tensor(seed, dtype=out.dtype))
        results.append((out.numpy(), [t.grad.numpy() for t in inputs]))
    (value_a, grads_a), (value_b, grads_b) = results
    np.testing.assert_allclose(value_a, value_b, rtol=rtol, atol=1e-12)
    for i, (ga, gb) in enumerate(zip(grads_a, grads_b, strict=True)):
        np.testing.assert_allclose(ga, gb, rtol=rtol, atol=1e-12, err_msg=f"input {i}")


def int_tensor(values) -> Tensor:
    return Tensor(np.asarray(values, dtype=np.int64))


def one_hot(ids: Tensor, n: int) -> Tensor:
    """(...) integer ids -> (..., n) float one-hot rows, as a constant tensor."""
    xp = backend.current().xp
    flat = backend.one_hot(xp.reshape(ids.data, (-1,)), n)
    return Tensor.wrap(xp.reshape(flat, ids.shape + (n,)))


# linear ---------------------------------------------------------------------------------
def composed_linear(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return x @ w + b


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)])
def test_linear_matches_finite_differences_and_composed_form(xp_backend, float64, shape) -> None:
    x, w, b = random_tensor(shape, 1), random_tensor((4, 3), 2), random_tensor((3,), 3)
    check_gradients(lambda x, w, b: (F.linear(x, w, b) ** 2).sum(), [x, w, b])
    assert_same_value_and_grads(F.linear, composed_linear, [x, w, b])
    assert_same_value_and_grads(lambda x, w: F.linear(x, w), lambda x, w: x @ w, [x, w])


def test_linear_rejects_mismatched_features(xp_backend) -> None:
    with pytest.raises(ShapeError, match="features"):
        F.linear(Tensor(np.zeros((2, 5))), Tensor(np.zeros((4, 3))))


# layer_norm -----------------------------------------------------------------------------
def composed_layer_norm(x: Tensor, w: Tensor, b: Tensor, eps: float = 1e-5) -> Tensor:
    centered = x - x.mean(axis=-1, keepdims=True)
    var = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / (var + eps).sqrt() * w + b


@pytest.mark.parametrize("shape", [(3, 6), (2, 3, 6)])
def test_layer_norm_matches_finite_differences_and_composed_form(xp_backend, float64, shape) -> None:
    x, w, b = random_tensor(shape, 4, scale=2.0), random_tensor((6,), 5), random_tensor((6,), 6)
    check_gradients(lambda x, w, b: (F.layer_norm(x, w, b) * x).sum(), [x, w, b])
    assert_same_value_and_grads(F.layer_norm, composed_layer_norm, [x, w, b])


def test_layer_norm_output_has_zero_mean_unit_variance(xp_backend, float64) -> None:
    x = random_tensor((4, 16), 7, scale=5.0) + 3.0
    ones, zeros = Tensor(np.ones(16)), Tensor(np.zeros(16))
    out = F.layer_norm(x, ones, zeros).numpy()
    np.testing.assert_allclose(out.mean(-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(-1), 1.0, rtol=1e-4)


# cross_entropy --------------------------------------------------------------------------
def composed_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    return -(logits.log_softmax(axis=-1) * one_hot(targets, logits.shape[-1])).sum(axis=-1).mean()


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7)])
def test_cross_entropy_matches_finite_differences_and_composed_form(xp_backend, float64, shape) -> None:
    logits = random_tensor(shape, 8, scale=3.0)
    targets = int_tensor(np.random.default_rng(9).integers(0, 7, shape[:-1]))
    check_gradients(lambda z: F.cross_entropy(z, targets), [logits])
    assert_same_value_and_grads(
        lambda z: F.cross_entropy(z, targets), lambda z: composed_cross_entropy(z, targets), [logits]
    )


def test_cross_entropy_of_uniform_logits_is_log_vocab(xp_backend) -> None:
    loss = F.cross_entropy(Tensor(np.zeros((4, 10))), int_tensor([0, 3, 9, 1]))
    assert loss.item() == pytest.approx(math.log(10), rel=1e-6)
    assert loss.dtype == xp_backend.xp.float32


def test_cross_entropy_accepts_raw_array_targets(xp_backend) -> None:
    targets = int_tensor([1, 2])
    a = F.cross_entropy(Tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]), targets)
    b = F.cross_entropy(Tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]), targets.data)
    assert a.item() == b.item()


def test_cross_entropy_rejects_bad_targets(xp_backend) -> None:
    logits = Tensor(np.zeros((4, 10)))
    with pytest.raises(ShapeError, match="targets have shape"):
        F.cross_entropy(logits, int_tensor([0, 1, 2]))
    with pytest.raises(ShapeError, match="integer"):
        F.cross_entropy(logits, Tensor([0.0, 1.0, 2.0, 3.0]))


# embedding ------------------------------------------------------------------------------
def test_embedding_matches_finite_differences_and_composed_form(xp_backend, float64) -> None:
    ids = int_tensor([[0, 3, 3], [4, 0, 3]])  # repeated ids
    weight = random_tensor((5, 4), 10)
    check_gradients(lambda w: (F.embedding(ids, w) ** 2).sum(), [weight], samples=20)
    assert_same_value_and_grads(lambda w: F.embedding(ids, w), lambda w: one_hot(ids, 5) @ w, [weight])


def test_embedding_repeated_ids_accumulate_gradient(xp_backend) -> None:
    weight = Tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
    out = F.embedding(int_tensor([2, 2, 0, 2]), weight)
    np.testing.assert_array_equal(out.numpy()[0], [6.0, 7.0, 8.0])
    out.sum().backward()
    np.testing.assert_array_equal(weight.grad.numpy()[:, 0], [1.0, 0.0, 3.0, 0.0])


def test_embedding_rejects_float_ids(xp_backend) -> None:
    with pytest.raises(ShapeError, match="integer"):
        F.embedding(Tensor([0.0, 1.0]), Tensor(np.zeros((3, 2))))


# causal_self_attention ------------------------------------------------------------------
def composed_attention(qkv: Tensor, n_head: int, causal: bool = True, keep=None) -> Tensor:
    """The attention formula written with primitives, heads as an axis."""
    bsz, t, c3 = qkv.shape
    c = c3 // 3
    d = c // n_head
    heads = qkv.reshape(bsz, t, 3, n_head, d).permute(2, 0, 3, 1, 4)  # (3, B, H, T, D)
    q, k, v = heads[0], heads[1], heads[2]
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
    if causal:
        scores = scores + Tensor.wrap(F.causal_mask(t))
    weights = scores.softmax(axis=-1)
    if keep is not None:
        weights = weights * Tensor.wrap(keep)
    return (weights @ v).permute(0, 2, 1, 3).reshape(bsz, t, c)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_head", [1, 2])
def test_attention_matches_finite_differences_and_composed_form(
    xp_backend, float64, causal: bool, n_head: int
) -> None:
    qkv = random_tensor((2, 5, 12), 11)

    def fused(x):
        return F.causal_self_attention(x, n_head, causal=causal)

    check_gradients(lambda x: (fused(x) ** 2).sum(), [qkv], samples=16)
    assert_same_value_and_grads(fused, lambda x: composed_attention(x, n_head, causal), [qkv])


def test_attention_with_dropout_matches_composed_form_with_same_mask(xp_backend, float64) -> None:
    qkv = random_tensor((2, 4, 12), 12)

    def fused(x):
        return F.causal_self_attention(x, 2, dropout_p=0.3, rng=Generator(5), training=True)

    keep = Generator(5).keep_mask((2, 2, 4, 4), 0.7, dtype=qkv.dtype)
    check_gradients(lambda x: (fused(x) ** 2).sum(), [qkv], samples=16)
    assert_same_value_and_grads(fused, lambda x: composed_attention(x, 2, True, keep), [qkv])


def test_attention_rejects_bad_widths(xp_backend) -> None:
    with pytest.raises(ShapeError):
        F.causal_self_attention(Tensor(np.zeros((1, 2, 10))), 2)  # not 3C
    with pytest.raises(ShapeError):
        F.causal_self_attention(Tensor(np.zeros((1, 2, 9))), 2)  # C=3 not divisible by 2


def test_causal_attention_output_ignores_future_tokens(xp_backend, float64) -> None:
    qkv = random_tensor((1, 6, 12), 13)
    changed = qkv.numpy()
    changed[:, 4:] += 1.0
    a = F.causal_self_attention(qkv, 2).numpy()
    b = F.causal_self_attention(Tensor(changed), 2).numpy()
    np.testing.assert_array_equal(a[:, :4], b[:, :4])
    assert not np.allclose(a[:, 4:], b[:, 4:])


# causal_mask ----------------------------------------------------------------------------
def test_causal_mask_blocks_future_tokens(xp_backend) -> None:
    mask = backend.to_numpy(F.causal_mask(4))
    assert mask.shape == (4, 4)
    for i in range(4):
        for j in range(4):
            assert mask[i, j] == (0.0 if j <= i else -np.inf)
    assert mask.dtype == np.float32


def test_causal_mask_with_offset_lets_queries_see_the_cache(xp_backend) -> None:
    mask = backend.to_numpy(F.causal_mask(2, offset=3))  # 3 cached tokens, 2 new queries
    assert mask.shape == (2, 5)
    expected = np.array([[0, 0, 0, 0, -np.inf], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(backend.to_numpy(F.causal_mask(1, 6, offset=5)), np.zeros((1, 6)))


# dropout --------------------------------------------------------------------------------
def test_dropout_in_eval_or_with_p_zero_is_identity(xp_backend) -> None:
    x = Tensor(np.ones((3, 3)))
    assert F.dropout(x, 0.5, Generator(0), training=False) is x
    assert F.dropout(x, 0.0, Generator(0), training=True) is x


def test_dropout_keeps_expected_fraction_and_scales(xp_backend) -> None:
    x = Tensor(np.ones((200, 100)))
    out = F.dropout(x, 0.25, Generator(1), training=True).numpy()
    kept = out != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(out[kept], 1.0 / 0.75, rtol=1e-6)
    assert abs(out.mean() - 1.0) < 0.02


def test_dropout_matches_finite_differences_and_mask_product(xp_backend, float64) -> None:
    x = random_tensor((4, 5), 14)
    check_gradients(lambda x: (F.dropout(x, 0.4, Generator(3)) * x).sum(), [x], samples=20)
    keep = Generator(3).keep_mask((4, 5), 0.6, dtype=x.dtype)
    assert_same_value_and_grads(
        lambda x: F.dropout(x, 0.4, Generator(3)), lambda x: x * Tensor.wrap(keep), [x]
    )


def test_dropout_rejects_bad_probability_and_missing_rng(xp_backend) -> None:
    x = Tensor(np.ones(3))
    with pytest.raises(ValueError):
        F.dropout(x, 1.0, Generator(0))
    with pytest.raises(ValueError, match="Generator"):
        F.dropout(x, 0.5, None)


def test_mse_loss_value_and_gradient(xp_backend, float64) -> None:
    pred, target = random_tensor((3, 2), 15), random_tensor((3, 2), 16)
    expected = ((pred.numpy() - target.numpy()) ** 2).mean()
    assert F.mse_loss(pred, target).item() == pytest.approx(expected)
    assert F.mse_loss(pred, target.numpy()).item() == pytest.approx(expected)
    check_gradients(lambda p: F.mse_loss(p, target), [pred])
