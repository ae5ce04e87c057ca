"""GPTConfig: the shape of a TinyGPT, one place for its defaults, ranges and help.

Saved as ``config.json`` in every checkpoint; the command-line flags of ``tinygpt train``
are generated from these fields (``tinygpt.cli.args.add_settings``).
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass
from typing import Any

from tinygpt.errors import ConfigError
from tinygpt.layers.embedding import POSITIONAL_KINDS
from tinygpt.settings import (
    POSITIVE_FLOAT,
    POSITIVE_INT,
    PROBABILITY,
    check_settings,
    from_dict,
    one_of,
    setting,
)


@dataclass
class GPTConfig:
    """The shape of a TinyGPT; saved as ``config.json`` in every checkpoint."""

    vocab_size: int = setting(MISSING, POSITIVE_INT, "tokens in the vocabulary (set by the tokenizer)")
    block_size: int = setting(64, POSITIVE_INT, "context length: tokens the model sees at once")
    n_layer: int = setting(4, POSITIVE_INT, "transformer blocks")
    n_head: int = setting(4, POSITIVE_INT, "attention heads per block")
    n_embd: int = setting(128, POSITIVE_INT, "width of the residual stream (divisible by --n-head)")
    dropout: float = setting(0.0, PROBABILITY, "dropout rate while training")
    positional: str = setting(
        "learned", one_of(*POSITIONAL_KINDS), "position vectors: learned (GPT-2) or fixed sinusoids"
    )
    layer_norm_eps: float = setting(
        1e-5, POSITIVE_FLOAT, "added to the variance in every LayerNorm (GPT-2's layer_norm_epsilon)"
    )

    def __post_init__(self) -> None:
        check_settings(self)
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"n_embd={self.n_embd} must be divisible by n_head={self.n_head} "
                "(--n-embd / --n-head): each head gets n_embd // n_head dimensions"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "model config") -> GPTConfig:
        """From ``to_dict`` output; unknown or missing keys are refused by name."""
        return from_dict(cls, data, source)

    def num_parameters(self) -> int:
        """Parameter count (tied head counted once)."""
        c, v, n = self.n_embd, self.vocab_size, self.n_layer
        per_block = 2 * 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + (c * 4 * c + 4 * c) + (4 * c * c + c)
        pos = self.block_size * c if self.positional == "learned" else 0
        return v * c + pos + n * per_block + 2 * c

    def flops_per_token(self, seq_len: int | None = None) -> dict[str, int]:
        """Multiply-adds counted as 2 FLOPs; the training step is forward + 2x for backward."""
        t = seq_len or self.block_size
        c, n, v = self.n_embd, self.n_layer, self.vocab_size
        matmul = 2 * n * (3 * c * c + c * c + 8 * c * c) + 2 * c * v
        attention = 2 * n * 2 * t * c  # q k^T and p v as dense T x T matmuls (masked entries included)
        forward = matmul + attention
        return {"forward": forward, "train_step": 3 * forward}

    def memory_bytes(self, batch_size: int) -> int:
        """A rough upper estimate of a training step's memory (float32).

        Parameters, gradients and two AdamW moments, plus the activations the
        backward pass keeps (per block about 20 (B, T, C) arrays and 3 (B, H, T, T)).
        """
        b, t, c, h = batch_size, self.block_size, self.n_embd, self.n_head
        weights = 4 * self.num_parameters()
        activations = self.n_layer * (20 * b * t * c + 3 * b * h * t * t) + 4 * b * t * self.vocab_size
        return 4 * weights + 4 * activations
