"""Layer normalisation.

Each token's vector is rescaled to zero mean and unit variance before the
sublayers of a transformer block, which keeps activations in a range where
gradients flow at any depth; a learned scale and shift restore expressiveness.
"""

from __future__ import annotations

from tinygpt import backend
from tinygpt import functional as F
from tinygpt.layers.module import Module, Parameter
from tinygpt.tensor import Tensor


class LayerNorm(Module):
    """Normalises the last axis of x (..., C); weight starts at 1, bias at 0."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        b = backend.current()
        self.eps = eps
        self.weight = Parameter(b.xp.ones((dim,), dtype=b.float_dtype, device=b.device))
        self.bias = Parameter(b.xp.zeros((dim,), dtype=b.float_dtype, device=b.device))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.weight, self.bias, self.eps)

    def __repr__(self) -> str:
        return f"LayerNorm({self.weight.shape[0]})"
