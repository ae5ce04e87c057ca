"""Loss modules; in particular that the language-model shift happens exactly once."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.gradcheck import check_gradients, random_tensor
from tinygpt import CrossEntropyLoss, LanguageModelLoss, MSELoss, Tensor
from tinygpt import functional as F
from tinygpt.errors import ShapeError

V = 6
TOKENS = np.array([[0, 1, 2, 3, 4], [5, 3, 1, 0, 2]], dtype=np.int64)  # no token repeats its neighbour


def peaked_logits(ids: np.ndarray, value: float = 50.0) -> np.ndarray:
    """(B, T, V) logits with all the mass on ``ids[b, t]``."""
    logits = np.zeros(ids.shape + (V,))
    np.put_along_axis(logits, ids[..., None], value, axis=-1)
    return logits


def test_mse_loss(xp_backend) -> None:
    loss = MSELoss()(Tensor([[1.0, 2.0], [3.0, 4.0]]), Tensor([[1.0, 0.0], [0.0, 4.0]]))
    assert loss.item() == pytest.approx((4.0 + 9.0) / 4)
    assert loss.dtype == xp_backend.xp.float32


def test_cross_entropy_loss_matches_numpy(xp_backend) -> None:
    logits = np.random.default_rng(0).standard_normal((4, V)).astype(np.float32)
    labels = np.array([0, 5, 2, 2])
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -log_probs[np.arange(4), labels].mean()
    assert CrossEntropyLoss()(Tensor(logits), Tensor(labels)).item() == pytest.approx(expected, rel=1e-5)


def test_language_model_loss_scores_the_next_token(xp_backend) -> None:
    tokens = Tensor(TOKENS)
    next_ids = np.concatenate([TOKENS[:, 1:], TOKENS[:, :1]], axis=1)  # last position: anything
    assert LanguageModelLoss()(Tensor(peaked_logits(next_ids)), tokens).item() < 1e-6


def test_language_model_loss_does_not_reward_copying_the_current_token(xp_backend) -> None:
    loss = LanguageModelLoss()(Tensor(peaked_logits(TOKENS)), Tensor(TOKENS)).item()
    assert loss > 40.0  # every prediction puts ~0 probability on the right token


def test_language_model_loss_does_not_shift_twice(xp_backend) -> None:
    two_ahead = np.concatenate([TOKENS[:, 2:], TOKENS[:, :2]], axis=1)
    assert LanguageModelLoss()(Tensor(peaked_logits(two_ahead)), Tensor(TOKENS)).item() > 10.0


def test_language_model_loss_equals_cross_entropy_of_shifted_pairs(xp_backend, float64) -> None:
    logits = random_tensor((2, 5, V), 1)
    tokens = Tensor(TOKENS)
    expected = F.cross_entropy(
        Tensor(logits.numpy()[:, :-1].reshape(-1, V)), Tensor(TOKENS[:, 1:].reshape(-1))
    ).item()
    assert LanguageModelLoss()(logits, tokens).item() == pytest.approx(expected, rel=1e-12)
    assert LanguageModelLoss()(logits, tokens.data).item() == pytest.approx(expected, rel=1e-12)
    check_gradients(lambda z: LanguageModelLoss()(z, tokens), [logits], samples=20)
    np.testing.assert_array_equal(logits.grad.numpy()[:, -1], 0.0)  # last position is not scored


def test_language_model_loss_of_uniform_logits_is_log_vocab(xp_backend) -> None:
    loss = LanguageModelLoss()(Tensor(np.zeros((2, 5, V))), Tensor(TOKENS))
    assert loss.item() == pytest.approx(math.log(V), rel=1e-6)


def test_language_model_loss_rejects_bad_shapes(xp_backend) -> None:
    loss = LanguageModelLoss()
    with pytest.raises(ShapeError, match="same B and T"):
        loss(Tensor(np.zeros((2, 4, V))), Tensor(TOKENS))
    with pytest.raises(ShapeError, match="at least 2"):
        loss(Tensor(np.zeros((2, 1, V))), Tensor(TOKENS[:, :1]))


def test_losses_take_plain_lists_of_ids_and_explain_a_wrong_shape(xp_backend) -> None:
    logits = Tensor(np.zeros((2, 5, V)))
    assert LanguageModelLoss()(logits, TOKENS.tolist()).item() == pytest.approx(math.log(V), rel=1e-6)
    with pytest.raises(ShapeError, match=r"must be the model's output for tokens \(2,\) \(same B and T\)"):
        LanguageModelLoss()(logits, [1, 2])
    with pytest.raises(ShapeError, match=r"targets have shape \(2,\), expected \(2, 5\)"):
        CrossEntropyLoss()(logits, [1, 2])
    with pytest.raises(ShapeError, match="LanguageModelLoss tokens must be integers in .*, got NoneType"):
        LanguageModelLoss()(logits, None)


def test_cross_entropy_loss_rejects_bad_shapes(xp_backend) -> None:
    with pytest.raises(ShapeError):
        CrossEntropyLoss()(Tensor(np.zeros((3, V))), Tensor(np.array([1, 2])))
