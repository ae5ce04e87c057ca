"""Exact evaluation: the mean next-token loss over every window of a split."""

from __future__ import annotations

import math
from typing import Any

from tinygpt.data import sequential_windows
from tinygpt.errors import ConfigError
from tinygpt.losses import LanguageModelLoss
from tinygpt.models.gpt import TinyGPT
from tinygpt.progress import Progress
from tinygpt.tensor import no_grad


def evaluate_ids(model: TinyGPT, ids: Any, batch_size: int = 64, show_progress: bool | None = False) -> float:
    """Mean next-token loss over all non-overlapping block_size windows of ``ids`` (N,).

    ``show_progress=None`` shows a bar when stderr is a terminal (a whole split takes a while).
    """
    loss_fn = LanguageModelLoss()
    block = model.config.block_size
    total, count = 0.0, 0
    batches = math.ceil(ids.shape[0] // block / batch_size)
    was_training = model.training
    model.eval()
    try:
        with no_grad(), Progress(total=batches, enabled=show_progress, desc="eval") as progress:
            for windows in sequential_windows(ids, block, batch_size):  # (B, T)
                n = windows.shape[0]
                total += float(loss_fn(model(windows), windows).item()) * n
                count += n
                progress.update()
    finally:
        model.train(was_training)
    if count == 0:
        raise ConfigError(f"{ids.shape[0]} tokens are fewer than one window of block_size={block}")
    return total / count
