"""Loss functions as modules: what training minimises.

``LanguageModelLoss`` is where the next-token shift happens, and the only place:
the model reads tokens (B, T) and predicts at every position; the prediction
made at position t is scored against the token at t + 1. The last position has
no next token in the window, so it is not scored (T - 1 predictions per row).
"""

from __future__ import annotations

from tinygpt import functional as F
from tinygpt.errors import ShapeError
from tinygpt.layers.module import Module
from tinygpt.tensor import Array, Tensor


class MSELoss(Module):
    """Mean squared error between predictions and targets of the same shape."""

    def forward(self, prediction: Tensor, target: Tensor | Array) -> Tensor:
        return F.mse_loss(prediction, target)


class CrossEntropyLoss(Module):
    """Mean cross-entropy of logits (..., classes) against integer labels (...)."""

    def forward(self, logits: Tensor, targets: Tensor | Array) -> Tensor:
        return F.cross_entropy(logits, targets)


class LanguageModelLoss(Module):
    """Mean next-token cross-entropy: logits (B, T, V) from tokens (B, T) vs tokens shifted by one."""

    def forward(self, logits: Tensor, tokens: Tensor | Array) -> Tensor:
        ids = F.index_array(tokens, "LanguageModelLoss tokens")
        if logits.shape[:2] != tuple(ids.shape):
            raise ShapeError(
                f"LanguageModelLoss: logits {logits.shape} must be the model's output for tokens "
                f"{tuple(ids.shape)} (same B and T)"
            )
        if ids.shape[1] < 2:
            raise ShapeError("LanguageModelLoss needs windows of at least 2 tokens")
        # The one shift: prediction at t (logits[:, t]) is scored against tokens[:, t + 1].
        return F.cross_entropy(logits[:, :-1, :], ids[:, 1:])
