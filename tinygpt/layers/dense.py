"""Dense (fully connected) layers, activations, dropout and ``Sequential``.

These are the parts a vision model and the language model share.
"""

from __future__ import annotations

import math
from typing import Any

from tinygpt import functional as F
from tinygpt.backend import Generator, default_generator
from tinygpt.layers.module import Module, Parameter
from tinygpt.tensor import Tensor


class Dense(Module):
    """y = x @ W + b. x (..., in_features) -> (..., out_features); W is (in, out).

    W is stored input-major so the forward pass is a plain matmul with no
    transpose. Initialised like PyTorch: uniform in +-1/sqrt(in_features).
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, rng: Generator | None = None
    ) -> None:
        rng = rng or default_generator()
        bound = 1.0 / math.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(rng.uniform((in_features, out_features), -bound, bound))
        self.bias = Parameter(rng.uniform((out_features,), -bound, bound)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def __repr__(self) -> str:
        return f"Dense({self.in_features}, {self.out_features}, bias={self.bias is not None})"


Linear = Dense


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class GELU(Module):
    """GELU (tanh approximation), the activation of GPT-2's MLP."""

    def forward(self, x: Tensor) -> Tensor:
        return x.gelu()


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Softmax(Module):
    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return x.softmax(axis=self.axis)


class Dropout(Module):
    """Zeroes a fraction ``p`` of activations in training, scaling the rest by 1/(1-p)."""

    def __init__(self, p: float = 0.0, rng: Generator | None = None) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p
        self.rng = rng

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.rng or default_generator(), self.training)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


class Sequential(Module):
    """Layers applied one after another."""

    def __init__(self, *layers: Module) -> None:
        self.layers = list(layers)

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)
