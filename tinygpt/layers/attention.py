"""Attention: each position mixes in information from the positions it may see.

``SelfAttention`` is the single-head version composed from autograd primitives
so it reads line by line like the formula softmax(q k^T / sqrt(d) + mask) v.
``MultiHeadAttention`` is the one models use: one fused projection makes q, k
and v for all heads at once, heads are batched as an extra axis, and the whole
attention is one graph node with a hand-written backward pass.

The causal mask is what makes this a *language model*: position t may only look
at positions <= t, so the model cannot cheat by reading the token it must predict.
"""

from __future__ import annotations

import math

from tinygpt import backend
from tinygpt import functional as F
from tinygpt.backend import Generator, default_generator
from tinygpt.errors import ConfigError, ShapeError
from tinygpt.layers.dense import Dense, Dropout
from tinygpt.layers.module import Module
from tinygpt.tensor import Array, Tensor


class SelfAttention(Module):
    """Single-head attention, written with primitives: x (B, T, C) -> (B, T, C)."""

    def __init__(
        self, n_embd: int, causal: bool = True, dropout: float = 0.0, rng: Generator | None = None
    ) -> None:
        self.query = Dense(n_embd, n_embd, rng=rng)
        self.key = Dense(n_embd, n_embd, rng=rng)
        self.value = Dense(n_embd, n_embd, rng=rng)
        self.proj = Dense(n_embd, n_embd, rng=rng)
        self.attn_dropout = Dropout(dropout, rng)
        self.causal = causal

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.query(x), self.key(x), self.value(x)  # (B, T, C) each
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, T, T)
        if self.causal:
            scores = scores + Tensor.wrap(F.causal_mask(x.shape[-2]))  # -inf above the diagonal
        weights = self.attn_dropout(scores.softmax(axis=-1))  # each row sums to 1
        return self.proj(weights @ v)  # (B, T, C)


class KVCache:
    """Keys and values of the tokens seen so far, for one attention layer.

    Generating token t then costs O(t) (one query against t cached keys)
    instead of recomputing attention for the whole context, O(t^2).
    Preallocated to ``capacity`` positions: (B, H, capacity, D). With
    ``keep_weights`` the cache also keeps the attention weights of the last
    call, ``weights`` (B, H, t, length): a model run over a prompt with fresh
    caches then shows what every head looked at.
    """

    def __init__(
        self, batch: int, n_head: int, capacity: int, head_dim: int, keep_weights: bool = False
    ) -> None:
        b = backend.current()
        shape = (batch, n_head, capacity, head_dim)
        self.keys = b.xp.zeros(shape, dtype=b.float_dtype, device=b.device)
        self.values = b.xp.zeros(shape, dtype=b.float_dtype, device=b.device)
        self.length = 0
        self.capacity = capacity
        self.keep_weights = keep_weights
        self.weights: Array | None = None

    def append(self, k: Array, v: Array) -> tuple[Array, Array]:
        """Store new (B, H, t, D) keys/values; return all of them so far (B, H, length, D).

        On backends with ``fixed_shapes`` it returns the whole buffers (B, H, capacity, D) instead;
        positions past ``length`` hold zeros that the causal mask excludes.
        """
        t = k.shape[-2]
        if self.length + t > self.capacity:
            raise ShapeError(f"KV cache full: {self.length} + {t} > capacity {self.capacity}")
        new = (slice(None), slice(None), slice(self.length, self.length + t), slice(None))
        self.keys = backend.set_at(self.keys, new, k)  # in place where arrays are writable
        self.values = backend.set_at(self.values, new, v)
        self.length += t
        if backend.current().fixed_shapes:
            # The whole capacity (B, H, capacity, D): the causal mask hides the unfilled tail, and
            # every generated token then runs on the same shapes (JAX compiles each shape once).
            return self.keys, self.values
        return self.keys[:, :, : self.length, :], self.values[:, :, : self.length, :]


class MultiHeadAttention(Module):
    """Causal multi-head attention with a fused QKV projection: x (B, T, C) -> (B, T, C)."""

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        dropout: float = 0.0,
        causal: bool = True,
        rng: Generator | None = None,
    ) -> None:
        if n_embd % n_head:
            raise ConfigError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        self.n_head = n_head
        self.dropout = dropout
        self.causal = causal
        self.rng = rng
        self.qkv = Dense(n_embd, 3 * n_embd, rng=rng)  # q, k, v side by side
        self.proj = Dense(n_embd, n_embd, rng=rng)
        self.resid_dropout = Dropout(dropout, rng)

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        if cache is not None:
            return self.proj(Tensor.wrap(self._attend_cached(self.qkv(x).data, cache)))
        y = F.causal_self_attention(
            self.qkv(x),
            self.n_head,
            dropout_p=self.dropout,
            rng=self.rng or default_generator(),
            training=self.training,
            causal=self.causal,
        )
        return self.resid_dropout(self.proj(y))

    def _attend_cached(self, qkv: Array, cache: KVCache) -> Array:
        """Inference only: attend new queries to cached + new keys. qkv (B, t, 3C) -> (B, t, C)."""
        if not self.causal:
            raise ShapeError("a KV cache only makes sense for causal attention")
        xp = backend.current().xp
        q, k, v = F.split_heads(qkv, self.n_head, parts=3)  # (B, H, t, D) each
        keys, values = cache.append(k, v)  # (B, H, L, D)
        t = q.shape[2]
        # Query i sits at position length - t + i and sees keys up to it: (B, H, t, L). One new
        # token sees every key returned, unless they include the unfilled tail (fixed shapes).
        sees_all = t == 1 and keys.shape[2] == cache.length
        mask = None if sees_all else F.causal_mask(t, keys.shape[2], cache.length - t)
        probs = F.attention_weights(q, keys, mask)
        if cache.keep_weights:
            cache.weights = probs[..., : cache.length]
        return F.merge_heads(xp.matmul(probs, values))  # (B, H, t, D) -> (B, t, C)

    def __repr__(self) -> str:
        return f"MultiHeadAttention({self.proj.in_features}, heads={self.n_head}, dropout={self.dropout})"
