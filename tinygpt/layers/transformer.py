"""The transformer block: attention to mix positions, an MLP to think per position.

Pre-norm (GPT-2): x + attn(ln1(x)), then x + mlp(ln2(x)). Normalising the
input of each sublayer, not the residual stream, leaves an identity path from
the loss to the embeddings, so deep stacks train without warm-up tricks.
"""

from __future__ import annotations

from tinygpt.backend import Generator
from tinygpt.layers.attention import KVCache, MultiHeadAttention
from tinygpt.layers.dense import GELU, Dense, Dropout
from tinygpt.layers.module import Module
from tinygpt.layers.norm import LayerNorm
from tinygpt.tensor import Tensor


class MLP(Module):
    """Position-wise feed-forward: C -> 4C -> GELU -> C. x (B, T, C) -> (B, T, C)."""

    def __init__(self, n_embd: int, dropout: float = 0.0, rng: Generator | None = None) -> None:
        self.fc = Dense(n_embd, 4 * n_embd, rng=rng)
        self.act = GELU()
        self.proj = Dense(4 * n_embd, n_embd, rng=rng)
        self.dropout = Dropout(dropout, rng)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(self.act(self.fc(x))))


class TransformerBlock(Module):
    """One pre-norm block: x (B, T, C) -> (B, T, C)."""

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        dropout: float = 0.0,
        eps: float = 1e-5,
        rng: Generator | None = None,
    ) -> None:
        self.ln1 = LayerNorm(n_embd, eps=eps)
        self.attn = MultiHeadAttention(n_embd, n_head, dropout=dropout, rng=rng)
        self.ln2 = LayerNorm(n_embd, eps=eps)
        self.mlp = MLP(n_embd, dropout=dropout, rng=rng)

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        x = x + self.attn(self.ln1(x), cache=cache)
        return x + self.mlp(self.ln2(x))
