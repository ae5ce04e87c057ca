"""Exact evaluation: the mean next-token loss over every window of a split, and bits per byte."""

from __future__ import annotations

import math
from typing import Any

from tinygpt.data import sequential_windows
from tinygpt.errors import ConfigError
from tinygpt.losses import LanguageModelLoss
from tinygpt.models.gpt import TinyGPT
from tinygpt.progress import Progress
from tinygpt.training.distributed import World


def evaluate_ids(
    model: TinyGPT,
    ids: Any,
    batch_size: int = 64,
    show_progress: bool | None = False,
    world: World | None = None,
) -> float:
    """Mean next-token loss over all non-overlapping block_size windows of ``ids`` (N,).

    ``show_progress=None`` shows a bar when stderr is a terminal (a whole split takes a while).
    With a ``world`` of several ranks, each evaluates a contiguous share of the
    batches and the sums are added up over the ranks.
    """
    world = world or World()
    loss_fn = LanguageModelLoss()
    block = model.config.block_size
    total, count = 0.0, 0
    batches = math.ceil(ids.shape[0] // block / batch_size)
    mine = range(world.rank * batches // world.size, (world.rank + 1) * batches // world.size)
    with model.evaluating(), Progress(total=len(mine), enabled=show_progress, desc="eval") as progress:
        for i, windows in enumerate(sequential_windows(ids, block, batch_size)):  # (B, T)
            if i not in mine:
                continue
            n = windows.shape[0]
            total += float(loss_fn(model(windows), windows).item()) * n
            count += n
            progress.update()
    world.agree()  # every rank got here (a rank that failed agrees from its error handler)
    total, count_sum = world.sum_floats([total, float(count)])
    if count_sum == 0:
        raise ConfigError(f"{ids.shape[0]} tokens are fewer than one window of block_size={block}")
    return total / count_sum


def bits_per_byte(loss: float, tokens: int, text_bytes: int) -> float:
    """Loss in bits per UTF-8 byte of the text: comparable across tokenizers, unlike loss per token.

    ``loss`` is the mean loss per token in nats over a text that is ``tokens`` tokens
    and ``text_bytes`` bytes long: the text costs ``loss * tokens`` nats in all.
    """
    if tokens < 1 or text_bytes < 1:
        raise ConfigError(f"bits per byte needs tokens and bytes, got {tokens} tokens and {text_bytes} bytes")
    return loss * tokens / text_bytes / math.log(2)
