"""TinyGPT: a GPT (decoder-only transformer) over the ids of any tokenizer: characters, BPE, GPT-2's.

tokens (B, T) -> token embedding + position -> n_layer pre-norm blocks ->
final LayerNorm -> logits (B, T, vocab) through the token embedding itself
(weight tying: the same table reads tokens in and writes predictions out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tinygpt import backend
from tinygpt import functional as F
from tinygpt.backend import Generator, default_generator
from tinygpt.errors import ConfigError, ShapeError
from tinygpt.layers import Embedding, KVCache, LayerNorm, Module, PositionalEncoding, TransformerBlock
from tinygpt.models.config import GPTConfig
from tinygpt.tensor import Array, Tensor


def token_ids(ids: Tensor | Array | Sequence[Sequence[int]]) -> Array:
    """Ids as a (B, T) integer backend array with T >= 1; nested lists are converted, anything else explained."""
    data = F.index_array(ids)
    if data.ndim == 1:
        raise ShapeError(
            f"TinyGPT expects token ids of shape (B, T), got a 1-D sequence of {data.shape[0]} ids; "
            "for one sequence pass [ids]"
        )
    if data.ndim != 2:
        raise ShapeError(f"TinyGPT expects token ids of shape (B, T), got {tuple(data.shape)}")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise ShapeError(
            f"TinyGPT needs at least one sequence of at least one token, got shape {tuple(data.shape)}"
        )
    return data


class TinyGPT(Module):
    """GPT with tied input/output embeddings: ids (B, T) -> logits (B, T, vocab_size).

    Weight files are one layer up (``tinygpt.checkpoint``), where run directories, tokenizers
    and Hugging Face's layout are known: ``tinygpt.load_model(path)`` reads a checkpoint, a run
    or a GPT-2 directory; ``tinygpt.save_gpt2(path, model, tokenizer)`` writes one transformers loads.
    """

    def __init__(self, config: GPTConfig, rng: Generator | None = None) -> None:
        if not isinstance(config, GPTConfig):
            hint = "; build one with GPTConfig.from_dict(...)" if isinstance(config, dict) else ""
            raise ConfigError(
                f"TinyGPT needs a GPTConfig, e.g. TinyGPT(GPTConfig(vocab_size=65)); got {type(config).__name__}{hint}"
            )
        rng = rng or default_generator()
        self.config = config
        c = config
        self.wte = Embedding(c.vocab_size, c.n_embd, rng=rng)
        self.wpe = PositionalEncoding(c.block_size, c.n_embd, kind=c.positional, rng=rng)
        self.blocks = [
            TransformerBlock(c.n_embd, c.n_head, c.dropout, c.layer_norm_eps, rng=rng)
            for _ in range(c.n_layer)
        ]
        self.ln_f = LayerNorm(c.n_embd, eps=c.layer_norm_eps)
        self._init_gpt2(rng)

    def _init_gpt2(self, rng: Generator) -> None:
        """GPT-2 init: N(0, 0.02) weights, zero biases, residual projections scaled by 1/sqrt(2 n_layer).

        Each block adds two outputs to the residual stream; scaling their
        projections keeps its variance from growing with depth.
        """
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.startswith("blocks.") and name.endswith(("qkv.weight", "fc.weight")):
                p.data = rng.normal(p.shape, 0.02)
            elif name.endswith("proj.weight"):
                p.data = rng.normal(p.shape, residual_std)
            elif name.startswith("blocks.") and name.endswith("bias") and ".ln" not in name:
                b = backend.current()
                p.data = b.xp.zeros(p.shape, dtype=p.dtype, device=b.device)

    def forward(
        self, ids: Tensor | Array | Sequence[Sequence[int]], caches: list[KVCache] | None = None
    ) -> Tensor:
        """Token ids (B, T) -> logits (B, T, vocab_size); ``caches`` holds earlier positions (KV cache)."""
        return self.head(self.ln_f(self.residual_stream(ids, caches)))

    def next_token_logits(
        self, ids: Tensor | Array | Sequence[Sequence[int]], caches: list[KVCache] | None = None
    ) -> Tensor:
        """Logits of the token after the last position only: ids (B, T) -> (B, vocab_size).

        What sampling needs: the final LayerNorm and the vocabulary head run on one
        position, so a 1024-token prompt never builds (B, 1024, vocab) logits.
        Equal to ``forward(ids, caches)[:, -1, :]``.
        """
        x = self.residual_stream(ids, caches)  # (B, T, C)
        return self.head(self.ln_f(x[:, -1, :]))  # (B, C) -> (B, vocab)

    def head(self, x: Tensor) -> Tensor:
        """Final hidden states (..., C) -> logits (..., vocab) through the token table (tied head)."""
        return F.linear(x, self.wte.weight.T)  # a transposed view: no copy of the (vocab, C) table

    def residual_stream(
        self, ids: Tensor | Array | Sequence[Sequence[int]], caches: list[KVCache] | None = None
    ) -> Tensor:
        """Token ids (B, T) -> the residual stream after the last block, before ``ln_f``: (B, T, C)."""
        data = token_ids(ids)
        offset = 0 if caches is None else caches[0].length
        if offset + data.shape[1] > self.config.block_size:
            raise ShapeError(
                f"{offset + data.shape[1]} tokens exceed block_size={self.config.block_size}; "
                "crop the context to the last block_size tokens"
            )
        x = self.wpe(self.wte(data), offset=offset)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, cache=None if caches is None else caches[i])
        return x

    def new_caches(self, batch: int, keep_weights: bool = False) -> list[KVCache]:
        """Empty KV caches (one per block) for up to block_size positions; see ``KVCache``."""
        c = self.config
        return [
            KVCache(batch, c.n_head, c.block_size, c.n_embd // c.n_head, keep_weights)
            for _ in range(c.n_layer)
        ]

    def attention_maps(self, ids: Tensor | Array) -> list[Array]:
        """What every head looks at: for ids (B, T), one (B, H, T, T) array per block, rows summing to 1.

        Runs the model once with fresh KV caches, which keep each layer's attention weights.
        """
        data = ids.data if isinstance(ids, Tensor) else ids
        caches = self.new_caches(data.shape[0], keep_weights=True)
        with self.evaluating():
            self(data, caches)
        return [cache.weights for cache in caches if cache.weights is not None]

    def decay_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW parameter groups: decay 2-D weights (matmuls, embeddings), not biases or norms."""
        decay = [p for p in self.parameters() if p.ndim >= 2]
        no_decay = [p for p in self.parameters() if p.ndim < 2]
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def summary(self, batch_size: int = 12) -> str:
        """A table of parameters per layer, FLOPs per token and a training-memory estimate."""
        groups: dict[str, int] = {}
        for name, p in self.named_parameters():
            parts = name.split(".")
            key = ".".join(parts[:2]) if parts[0] == "blocks" else parts[0]
            groups[key] = groups.get(key, 0) + p.size
        c = self.config
        flops = c.flops_per_token()
        lines = [f"TinyGPT({c})", f"{'layer':<12}{'parameters':>14}"]
        lines += [f"{name:<12}{count:>14,}" for name, count in groups.items()]
        lines.append(f"{'total':<12}{self.num_parameters():>14,}  (head tied to wte)")
        lines.append(f"FLOPs per token: forward {flops['forward']:,}, training step {flops['train_step']:,}")
        lines.append(
            f"training memory at batch {batch_size}: about {c.memory_bytes(batch_size) / 2**20:,.0f} MiB"
        )
        return "\n".join(lines)
