"""Token embeddings and positional encodings.

Attention is blind to order: without positions, "to be or not" and "not be or
to" would look the same. A positional encoding adds a different vector to each
position: either the fixed sinusoids of "Attention Is All You Need" or a learned
table (GPT-2).
"""

from __future__ import annotations

import math

from tinygpt import backend
from tinygpt import functional as F
from tinygpt.backend import Generator, default_generator
from tinygpt.errors import ConfigError, ShapeError
from tinygpt.layers.module import Module, Parameter
from tinygpt.tensor import Array, Tensor

POSITIONAL_KINDS = ("learned", "sinusoidal")


class Embedding(Module):
    """A table of ``num_embeddings`` vectors: integer ids (...) -> (..., dim)."""

    def __init__(
        self, num_embeddings: int, dim: int, std: float = 0.02, rng: Generator | None = None
    ) -> None:
        rng = rng or default_generator()
        self.weight = Parameter(rng.normal((num_embeddings, dim), std))

    def forward(self, ids: Tensor | Array) -> Tensor:
        return F.embedding(ids, self.weight)

    def __repr__(self) -> str:
        return f"Embedding{self.weight.shape}"


def sinusoidal_table(length: int, dim: int) -> Array:
    """pe[pos, 2i] = sin(pos / 10000^(2i/dim)), pe[pos, 2i+1] = cos(same): (length, dim)."""
    b = backend.current()
    xp = b.xp
    pos = xp.arange(length, dtype=b.float_dtype, device=b.device)[:, None]
    two_i = xp.arange(0, dim, 2, dtype=b.float_dtype, device=b.device)[None, :]
    angle = pos * xp.exp(two_i * (-math.log(10000.0) / dim))  # (length, ceil(dim/2))
    table = xp.stack([xp.sin(angle), xp.cos(angle)], axis=-1)  # interleave sin, cos
    return xp.reshape(table, (length, -1))[:, :dim]


class PositionalEncoding(Module):
    """Adds a position vector to each step of x (B, T, C): ``kind`` "sinusoidal" or "learned".

    ``offset`` is the position of the first step (used when generating with a
    KV cache, where only the new tokens pass through the model).
    """

    def __init__(
        self, block_size: int, dim: int, kind: str = "sinusoidal", rng: Generator | None = None
    ) -> None:
        if kind not in POSITIONAL_KINDS:
            raise ConfigError(f"positional must be one of {POSITIONAL_KINDS}, got {kind!r}")
        self.block_size, self.dim, self.kind = block_size, dim, kind
        if kind == "learned":
            self.weight = Parameter((rng or default_generator()).normal((block_size, dim), 0.02))
        else:
            self._table: Array | None = None

    def table(self) -> Tensor:
        """The (block_size, dim) position vectors."""
        if self.kind == "learned":
            return self.weight
        if self._table is None or self._table.dtype != backend.current().float_dtype:
            self._table = sinusoidal_table(self.block_size, self.dim)
        return Tensor.wrap(self._table)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        t = x.shape[-2]
        if offset + t > self.block_size:
            raise ShapeError(
                f"sequence of {offset + t} positions is longer than block_size={self.block_size}; "
                "crop the input to the last block_size tokens"
            )
        return x + self.table()[offset : offset + t]

    def __repr__(self) -> str:
        return f"PositionalEncoding({self.block_size}, {self.dim}, kind={self.kind!r})"
