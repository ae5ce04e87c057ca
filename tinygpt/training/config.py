"""``TrainConfig``: the settings of a language-model run (the model's shape is ``GPTConfig``).

Each field declares its default, allowed values and help once (``tinygpt.settings``);
the ``tinygpt train`` flags are made from these declarations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tinygpt.errors import ConfigError
from tinygpt.settings import (
    NONNEGATIVE_FLOAT,
    NONNEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    PROBABILITY,
    check_settings,
    from_dict,
    one_of,
    setting,
)


@dataclass
class TrainConfig:
    """How to train: batch, schedule, AdamW, clipping, evaluation, seed."""

    batch_size: int = setting(
        12,
        POSITIVE_INT,
        "sequences per micro-batch; a step sees batch-size x grad-accum, the global batch "
        "that ranks under mpiexec share",
    )
    max_iters: int = setting(2000, POSITIVE_INT, "optimizer steps to train for")
    lr: float = setting(1e-3, POSITIVE_FLOAT, "peak learning rate (after warm-up)")
    min_lr: float = setting(1e-4, NONNEGATIVE_FLOAT, "learning rate at the end of the cosine decay")
    warmup_iters: int = setting(100, NONNEGATIVE_INT, "steps of linear learning-rate warm-up")
    weight_decay: float = setting(0.1, NONNEGATIVE_FLOAT, "AdamW weight decay of 2-D weights")
    beta1: float = setting(0.9, PROBABILITY, "AdamW's first-moment decay")
    beta2: float = setting(0.99, PROBABILITY, "AdamW's second-moment decay")
    grad_clip: float = setting(1.0, POSITIVE_FLOAT, "clip the global gradient norm to this")
    grad_accum: int = setting(1, POSITIVE_INT, "micro-batches whose gradients are averaged per step")
    eval_interval: int = setting(250, POSITIVE_INT, "evaluate, log and checkpoint every this many steps")
    eval_iters: int = setting(50, POSITIVE_INT, "random batches per loss estimate")
    seed: int = setting(1337, NONNEGATIVE_INT, "seed of initialisation, batches and dropout")
    on_nonfinite: str = setting(
        "stop", one_of("stop", "skip"), "on a non-finite or diverged loss: stop, or skip the step", "on-nan"
    )

    def __post_init__(self) -> None:
        check_settings(self)
        if self.min_lr > self.lr:
            raise ConfigError(f"min_lr (--min-lr) must be in [0, lr={self.lr}], got {self.min_lr}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "train config") -> TrainConfig:
        """From ``to_dict`` output; unknown or missing keys are refused by name."""
        return from_dict(cls, data, source)
