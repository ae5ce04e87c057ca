"""``Trainer``: forward, loss, backward, clip, step — the loop every model shares.

It knows nothing about language: the vision demo and the language model use
the very same class. ``LanguageModelTrainer`` (``tinygpt.training.loop``) adds
batches of text windows, evaluation, checkpoints and resume on top.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from typing import Any

from tinygpt import backend
from tinygpt.errors import ConfigError, NumericalError
from tinygpt.layers.module import Module
from tinygpt.optim import Optimizer, clip_scale
from tinygpt.tensor import Tensor
from tinygpt.training.data_parallel import DataParallel

Batch = Any
Callback = Callable[[dict[str, Any]], None]


class Trainer:
    """One optimizer step at a time, with gradient accumulation and a guard against divergence.

    ``compute_loss(batch)`` defaults to ``loss_fn(model(inputs), targets)`` for
    ``batch = (inputs, targets)``; subclasses override it for other layouts.
    ``on_nonfinite`` is "stop" (raise ``NumericalError``) or "skip" (drop the step)
    when the loss or gradient is not finite, or the loss exceeds ``max_loss``
    (a diverged run can stay finite for a long time while its loss is 1e12).
    Constructing a Trainer tunes the host allocator for training
    (``backend.tune_allocator``). With ``data_parallel`` (one rank of an MPI
    run), each step's gradients are summed over the ranks before clipping.
    """

    def __init__(
        self,
        model: Module,
        loss_fn: Callable[..., Tensor],
        optimizer: Optimizer,
        *,
        grad_clip: float | None = None,
        lr_schedule: Callable[[int], float] | None = None,
        on_nonfinite: str = "stop",
        callbacks: Iterable[Callback] = (),
        max_loss: float = math.inf,
        data_parallel: DataParallel | None = None,
    ) -> None:
        if on_nonfinite not in ("stop", "skip"):
            raise ConfigError(f"on_nonfinite must be 'stop' or 'skip', got {on_nonfinite!r}")
        backend.tune_allocator()
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.grad_clip = grad_clip
        self.lr_schedule = lr_schedule
        self.on_nonfinite = on_nonfinite
        self.max_loss = max_loss
        self.callbacks = list(callbacks)
        self.data_parallel = data_parallel
        self.step = 0
        self.skipped_steps = 0

    def compute_loss(self, batch: Batch) -> Tensor:
        inputs, targets = batch
        return self.loss_fn(self.model(inputs), targets)

    def emit(self, record: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback(record)

    def train_step(self, batches: Batch | list[Batch], weights: list[float] | None = None) -> dict[str, Any]:
        """One optimizer step; a list of batches accumulates their mean gradient.

        ``weights`` (one per batch) replace the plain mean: data-parallel ranks
        weight their chunks by their share of the global batch, and
        ``data_parallel`` then sums the gradients over the ranks.
        """
        parts = batches if isinstance(batches, list) else [batches]
        if weights is None:
            weights = [1.0 / len(parts) if len(parts) > 1 else 1.0] * len(parts)
        lr = self.lr_schedule(self.step) if self.lr_schedule else self.optimizer.param_groups[0]["lr"]
        self.optimizer.set_lr(lr)
        self.model.train()
        self.optimizer.zero_grad()
        total = 0.0
        # forward and backward, one micro-batch at a time
        for batch, weight in zip(parts, weights, strict=True):
            loss = self.compute_loss(batch)
            if weight != 1.0:
                loss = loss * weight
            loss.backward()
            total += float(loss.item())
        if self.data_parallel is not None:  # the mean gradient over every rank's windows
            total = self.data_parallel.all_reduce_gradients(self.optimizer.parameters, total)
        # Clipping is folded into the update: the optimizer scales gradients as it reads them.
        norm, scale = (
            clip_scale(self.optimizer.parameters, self.grad_clip) if self.grad_clip else (math.nan, 1.0)
        )
        diverged = math.isfinite(total) and total > self.max_loss
        bad = not math.isfinite(total) or diverged or bool(self.grad_clip and not math.isfinite(norm))
        if bad:
            self.optimizer.zero_grad()
            if self.on_nonfinite == "stop":
                what = (
                    f"the loss diverged (loss={total:.4g} > {self.max_loss:.4g})"
                    if diverged
                    else f"the loss or gradient is not finite (loss={total}, grad norm={norm})"
                )
                raise NumericalError(
                    f"step {self.step}: {what}; "
                    f"the learning rate ({lr:g}) is probably too high: lower --lr (or raise --warmup-iters)"
                )
            self.skipped_steps += 1
        else:
            self.optimizer.step(grad_scale=scale)
        self.step += 1
        record = {
            "event": "step",
            "step": self.step,
            "loss": total,
            "grad_norm": norm,
            "lr": lr,
            "skipped": bad,
        }
        self.emit(record)
        return record

    def evaluate(self, batches: Iterable[Batch]) -> float:
        """Mean loss over ``batches`` with dropout off and no graph."""
        with self.model.evaluating():
            losses = [float(self.compute_loss(batch).item()) for batch in batches]
        if not losses:
            raise ConfigError("evaluate() got no batches")
        return sum(losses) / len(losses)

    def fit(
        self,
        batches: Callable[[], Iterable[Batch]],
        epochs: int = 1,
        eval_batches: Callable[[], Iterable[Batch]] | None = None,
    ) -> list[dict[str, Any]]:
        """Train for ``epochs`` passes over ``batches()``; evaluate after each epoch if given."""
        history = []
        for epoch in range(epochs):
            losses = [self.train_step(batch)["loss"] for batch in batches()]
            record: dict[str, Any] = {
                "event": "epoch",
                "epoch": epoch + 1,
                "train_loss": statistics.fmean(losses),
            }
            if eval_batches is not None:
                record["eval_loss"] = self.evaluate(eval_batches())
            self.emit(record)
            history.append(record)
        return history
