"""``Trainer``: one training step, the same for every model and every number of processes.

It knows nothing about language: the vision demo and the language model use
the very same ``train_step``. ``LanguageModelTrainer`` (``tinygpt.training.loop``)
adds batches of text windows, evaluation, checkpoints and resume on top.
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
from tinygpt.training.interrupts import StopSignals

Batch = Any
Callback = Callable[[dict[str, Any]], None]


class Trainer:
    """One optimizer step at a time, with gradient accumulation and a guard against divergence.

    ``compute_loss(batch)`` defaults to ``loss_fn(model(inputs), targets)`` for
    ``batch = (inputs, targets)``; subclasses override it for other layouts.
    ``on_nonfinite`` is "stop" (raise ``NumericalError``) or "skip" (drop the step)
    when the loss or gradient is not finite, or the loss exceeds ``max_loss``
    (a diverged run can stay finite for a long time while its loss is 1e12).
    ``parallel`` is this process's place in a data-parallel run (one rank of
    ``mpiexec -n N``); by default a world of one. Constructing a Trainer tunes
    the host allocator for training (``backend.tune_allocator``).
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
        parallel: DataParallel | None = None,
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
        self.parallel = parallel or DataParallel()
        self.signals = StopSignals(enabled=False)  # a stop asked for is voted on with each step's gradients
        self.step = 0
        self.skipped_steps = 0

    def compute_loss(self, batch: Batch) -> Tensor:
        inputs, targets = batch
        return self.loss_fn(self.model(inputs), targets)

    def emit(self, record: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback(record)

    def train_step(self, batches: Batch | list[Batch]) -> dict[str, Any]:
        """One optimizer step on the global batch; a list of micro-batches accumulates their mean gradient.

        batches -> this rank's share -> forward and backward, one micro-batch at a time ->
        gradients summed over the ranks -> clip -> AdamW (or skip a bad step) -> count, record.
        """
        lr = self.lr_schedule(self.step) if self.lr_schedule else self.optimizer.param_groups[0]["lr"]
        self.optimizer.set_lr(lr)
        self.model.train()
        self.optimizer.zero_grad()
        self.parallel.seed_dropout(self.step)  # each rank its own masks; one process: the generator runs on
        # This rank's chunks of the global batch. Each chunk's loss is weighted by its share of all the
        # windows (1 / micro-batches in one process), so the summed gradient is the mean gradient.
        chunks, weights = self.parallel.share(batches if isinstance(batches, list) else [batches])
        loss = 0.0
        for chunk, weight in zip(chunks, weights, strict=True):  # chunk: ids (B, T), or (inputs, targets)
            chunk_loss = self.compute_loss(chunk) * weight  # forward: logits (B, T, V) -> mean loss (scalar)
            chunk_loss.backward()  # adds d chunk_loss / d p into every Parameter.grad_data
            loss += float(chunk_loss.item())
        # The global batch's gradient and loss on every rank (one process: they already are).
        loss = self.parallel.all_reduce_gradients(self.optimizer.parameters, loss, self.signals.requested)
        # Clipping is folded into the update: AdamW scales each gradient by `scale` as it reads it.
        norm, scale = (
            clip_scale(self.optimizer.parameters, self.grad_clip) if self.grad_clip else (math.nan, 1.0)
        )
        diverged = math.isfinite(loss) and loss > self.max_loss
        skipped = not math.isfinite(loss) or diverged or bool(self.grad_clip and not math.isfinite(norm))
        if skipped:
            self.optimizer.zero_grad()
            if self.on_nonfinite == "stop":
                what = (
                    f"the loss diverged (loss={loss:.4g} > {self.max_loss:.4g})"
                    if diverged
                    else f"the loss or gradient is not finite (loss={loss}, grad norm={norm})"
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
            "loss": loss,
            "grad_norm": norm,
            "lr": lr,
            "skipped": skipped,
        }
        self.emit(record)
        return record

    def evaluate(self, batches: Iterable[Batch]) -> float:
        """Mean loss over ``batches`` with dropout off and no graph (each rank its share of them)."""
        chunks, weights = self.parallel.share(list(batches))
        with self.model.evaluating():
            losses = [float(self.compute_loss(chunk).item()) for chunk in chunks]
        return self.parallel.mean(losses, weights)

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
