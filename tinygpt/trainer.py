"""Training loops: a generic ``Trainer`` and the ``LanguageModelTrainer`` built on it.

``Trainer`` knows nothing about language: forward, loss, backward, clip, step,
with gradient accumulation and a check for non-finite values. The vision demo
and the language model use the very same class.

``LanguageModelTrainer`` adds what a real language-model run needs: random
windows from the training text, warm-up + cosine learning rate, periodic
evaluation, ``metrics.jsonl``, the latest and best checkpoints, exact resume,
and a clean stop on Ctrl-C.
"""

from __future__ import annotations

import math
import os
import signal
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tinygpt import backend
from tinygpt.checkpoint import load_checkpoint
from tinygpt.data import sample_windows, sequential_windows
from tinygpt.errors import CheckpointError, ConfigError, NumericalError, TinyGPTError
from tinygpt.layers.module import Module
from tinygpt.losses import LanguageModelLoss
from tinygpt.models.gpt import TinyGPT
from tinygpt.optim import AdamW, Optimizer, clip_scale, warmup_cosine_lr
from tinygpt.progress import Progress
from tinygpt.tensor import Tensor, no_grad
from tinygpt.tokenizer import CharTokenizer
from tinygpt.training.run_directory import RunDirectory

Batch = Any
Callback = Callable[[dict[str, Any]], None]


def print_line(message: str) -> None:
    """Print one log line now (not when a pipe's buffer fills)."""
    print(message, flush=True)


class TrainingInterrupted(TinyGPTError):
    """Training stopped on Ctrl-C after saving a checkpoint."""


class Trainer:
    """Forward, loss, backward, clip, step: the loop every model shares.

    ``compute_loss(batch)`` defaults to ``loss_fn(model(inputs), targets)`` for
    ``batch = (inputs, targets)``; subclasses override it for other layouts.
    ``on_nonfinite`` is "stop" (raise ``NumericalError``) or "skip" (drop the step)
    when the loss or gradient is not finite, or the loss exceeds ``max_loss``
    (a diverged run can stay finite for a long time while its loss is 1e12).
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
    ) -> None:
        if on_nonfinite not in ("stop", "skip"):
            raise ConfigError(f"on_nonfinite must be 'stop' or 'skip', got {on_nonfinite!r}")
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.grad_clip = grad_clip
        self.lr_schedule = lr_schedule
        self.on_nonfinite = on_nonfinite
        self.max_loss = max_loss
        self.callbacks = list(callbacks)
        self.step = 0
        self.skipped_steps = 0

    def compute_loss(self, batch: Batch) -> Tensor:
        inputs, targets = batch
        return self.loss_fn(self.model(inputs), targets)

    def emit(self, record: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback(record)

    def train_step(self, batches: Batch | list[Batch]) -> dict[str, float]:
        """One optimizer step; a list of batches accumulates their mean gradient."""
        parts = batches if isinstance(batches, list) else [batches]
        lr = self.lr_schedule(self.step) if self.lr_schedule else self.optimizer.param_groups[0]["lr"]
        self.optimizer.set_lr(lr)
        self.model.train()
        self.optimizer.zero_grad()
        total = 0.0
        for batch in parts:
            loss = self.compute_loss(batch)
            if len(parts) > 1:
                loss = loss * (1.0 / len(parts))
            loss.backward()
            total += loss.item()
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
        was_training = self.model.training
        self.model.eval()
        losses = []
        with no_grad():
            for batch in batches:
                losses.append(self.compute_loss(batch).item())
        self.model.train(was_training)
        if not losses:
            raise ConfigError("evaluate() got no batches")
        return sum(losses) / len(losses)

    def fit(
        self,
        batches: Callable[[], Iterable[Batch]],
        epochs: int = 1,
        eval_batches: Callable[[], Iterable[Batch]] | None = None,
    ) -> list[dict[str, float]]:
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


@dataclass
class TrainConfig:
    """Settings of a language-model run (the model's shape is ``GPTConfig``)."""

    batch_size: int = 12
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    grad_accum: int = 1
    eval_interval: int = 250
    eval_iters: int = 50
    seed: int = 1337
    on_nonfinite: str = "stop"

    def __post_init__(self) -> None:
        positive = ("batch_size", "max_iters", "grad_accum", "eval_interval", "eval_iters")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"{name} (--{name.replace('_', '-')}) must be a positive integer, got {value!r}"
                )
        if not self.lr > 0:
            raise ConfigError(f"lr (--lr) must be > 0, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"min_lr (--min-lr) must be in [0, lr={self.lr}], got {self.min_lr}")
        if self.warmup_iters < 0:
            raise ConfigError(f"warmup_iters (--warmup-iters) must be >= 0, got {self.warmup_iters}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay (--weight-decay) must be >= 0, got {self.weight_decay}")
        if not self.grad_clip > 0:
            raise ConfigError(f"grad_clip (--grad-clip) must be > 0, got {self.grad_clip}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.on_nonfinite not in ("stop", "skip"):
            raise ConfigError(f"on_nonfinite (--on-nan) must be 'stop' or 'skip', got {self.on_nonfinite!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class LanguageModelTrainer(Trainer):
    """Trains a TinyGPT on token ids, writing metrics and checkpoints into ``out_dir``.

    Batches are windows (B, T) of consecutive tokens; ``LanguageModelLoss``
    does the next-token shift. Evaluation every ``eval_interval`` steps
    estimates train and validation loss on ``eval_iters`` random windows each
    (their draws come from a separate generator keyed on the step, so changing
    evaluation settings never changes the training batches).
    """

    def __init__(
        self,
        model: TinyGPT,
        tokenizer: CharTokenizer,
        train_ids: Any,
        val_ids: Any,
        config: TrainConfig,
        out_dir: str | os.PathLike[str] | None = None,
        callbacks: Iterable[Callback] = (),
        log: Callable[[str], None] | None = print_line,
        show_progress: bool | None = None,
        data_info: dict[str, Any] | None = None,
    ) -> None:
        block = model.config.block_size
        for name, ids in (("training", train_ids), ("validation", val_ids)):
            if ids.shape[0] < block:
                raise ConfigError(
                    f"the {name} split has {ids.shape[0]} tokens, fewer than block_size={block}; "
                    f"use a longer text (at least {math.ceil(block / 0.1) + 1} characters with the default "
                    "10% validation split) or a smaller --block-size"
                )
        optimizer = AdamW(
            model.decay_groups(config.weight_decay),
            lr=config.lr,
            betas=(config.beta1, config.beta2),
        )
        schedule = warmup_cosine_lr(config.lr, config.min_lr, config.warmup_iters, config.max_iters)
        # Guessing uniformly costs ln(V) per token; 100 times that means training has diverged.
        max_loss = 100 * math.log(max(2, model.config.vocab_size))
        super().__init__(
            model,
            LanguageModelLoss(),
            optimizer,
            grad_clip=config.grad_clip,
            lr_schedule=schedule,
            on_nonfinite=config.on_nonfinite,
            callbacks=callbacks,
            max_loss=max_loss,
        )
        self.tokenizer = tokenizer
        self.train_ids = train_ids
        self.val_ids = val_ids
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run = RunDirectory(out_dir) if out_dir is not None else None
        self._run_open = False  # start() or resume() claims the run directory once
        self.log = log
        self.show_progress = show_progress
        self.data_info = data_info or {}
        self.data_rng = backend.Generator(config.seed)
        self.best_val_loss = math.inf
        self._stop_requested = False

    # Batches and losses -------------------------------------------------------
    def compute_loss(self, batch: Batch) -> Tensor:
        return self.loss_fn(self.model(batch), batch)

    def next_batches(self) -> list[Batch]:
        t, b = self.model.config.block_size, self.config.batch_size
        return [sample_windows(self.train_ids, t, b, self.data_rng) for _ in range(self.config.grad_accum)]

    def estimate_loss(self, ids: Any, salt: int) -> float:
        """Mean loss on ``eval_iters`` random windows (a generator of its own, keyed on step and split)."""
        rng = backend.Generator([self.config.seed, self.step, salt])
        t, b = self.model.config.block_size, self.config.batch_size
        return self.evaluate(sample_windows(ids, t, b, rng) for _ in range(self.config.eval_iters))

    def evaluate_split(self, ids: Any, batch_size: int = 64) -> float:
        """Exact mean loss over every non-overlapping window of ``ids``."""
        return evaluate_ids(self.model, ids, batch_size)

    # The loop -----------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Run until ``max_iters``; returns a summary. Ctrl-C saves and raises TrainingInterrupted."""
        cfg = self.config
        if self.run is not None:
            if not self._run_open:
                # restore() from this run's own checkpoint continues it; anything else starts one
                if self.step > 0 and self.run.holds_run():
                    self.run.resume()
                else:
                    self.run.start()
                self._run_open = True
            self.run.trim_metrics(self.step)
        step_times: list[float] = []
        start = time.perf_counter()
        last: dict[str, Any] = {}
        progress = Progress(total=cfg.max_iters, initial=self.step, enabled=self.show_progress, desc="train")
        previous_handler = self._catch_sigint()
        try:
            while True:
                if self.step % cfg.eval_interval == 0 or self.step == cfg.max_iters:
                    last = self._evaluate_and_save(step_times, time.perf_counter() - start)
                    if self.log is not None:
                        progress.write(self._describe(last), self.log)
                    step_times = []
                if self.step >= cfg.max_iters:
                    break
                if self._stop_requested:
                    self._interrupt()
                t0 = time.perf_counter()
                record = self.train_step(self.next_batches())
                step_times.append(time.perf_counter() - t0)
                progress.update(loss=record["loss"])
                if self._stop_requested:
                    self._interrupt()
        finally:
            progress.close()
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
        return {**last, "best_val_loss": self.best_val_loss, "skipped_steps": self.skipped_steps}

    def _describe(self, m: dict[str, Any]) -> str:
        timing = f", {m['ms_per_iter']:.1f} ms/iter" if m.get("ms_per_iter") else ""
        return (
            f"step {m['iter']:>5}/{self.config.max_iters}: train loss {m['train_loss']:.4f}, "
            f"val loss {m['val_loss']:.4f}, lr {m['lr']:.2e}{timing}"
        )

    def _evaluate_and_save(self, step_times: list[float], elapsed: float) -> dict[str, Any]:
        metrics = {
            "iter": self.step,
            "train_loss": self.estimate_loss(self.train_ids, 0),
            "val_loss": self.estimate_loss(self.val_ids, 1),
            "lr": self.lr_schedule(min(self.step, self.config.max_iters)) if self.lr_schedule else None,
            "elapsed_s": round(elapsed, 3),
            "ms_per_iter": round(1000 * statistics.median(step_times), 3) if step_times else None,
        }
        if self.run is not None:
            improved = metrics["val_loss"] < self.best_val_loss
            if improved:
                self.best_val_loss = metrics["val_loss"]
            path = self.save()
            if improved:
                self.run.publish("best", path)
            self.run.log(metrics)
        else:
            self.best_val_loss = min(self.best_val_loss, metrics["val_loss"])
        self.emit({"event": "eval", **metrics})
        return metrics

    # Checkpoints and resume -----------------------------------------------------
    def save(self) -> Path:
        """Write a full training checkpoint for the current step and make it the run's latest."""
        if self.run is None:
            raise ConfigError("this trainer has no out_dir to save checkpoints into")
        state = {
            "step": self.step,
            "best_val_loss": self.best_val_loss if math.isfinite(self.best_val_loss) else None,
            "skipped_steps": self.skipped_steps,
            "data_rng": self.data_rng.get_state(),
            "model_rng": backend.default_generator().get_state(),
            "train_config": asdict(self.config),
            "data": self.data_info,
        }
        return self.run.save(self.step, self.model, self.tokenizer, self.optimizer.state_dict(), state)

    def resume(self) -> None:
        """Continue the run in ``out_dir`` from its latest checkpoint."""
        if self.run is None:
            raise ConfigError("this trainer has no out_dir to resume from")
        self.restore(self.run.resume())
        self._run_open = True

    def restore(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        """Continue exactly where a checkpoint left off: weights, AdamW moments, step, RNG states."""
        ckpt = load_checkpoint(checkpoint_dir, with_training_state=True)
        if ckpt.tokenizer != self.tokenizer:
            raise CheckpointError(
                f"{ckpt.path} was trained on text with another vocabulary; resume with the same corpus"
            )
        if ckpt.model.config != self.model.config:
            raise CheckpointError(
                f"{ckpt.path} holds a model of another shape ({ckpt.model.config}); "
                "resume with the flags the run was started with"
            )
        self.model.load_state_dict(ckpt.model.state_dict(), source=str(ckpt.path))
        assert ckpt.optimizer_state is not None
        self.optimizer.load_state_dict(ckpt.optimizer_state)
        state = ckpt.trainer_state
        self.step = int(state["step"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        best = state.get("best_val_loss")
        self.best_val_loss = math.inf if best is None else float(best)
        self.data_rng.set_state(state["data_rng"])
        backend.default_generator().set_state(state["model_rng"])

    # Ctrl-C ----------------------------------------------------------------------
    def _catch_sigint(self) -> Any:
        """First Ctrl-C: finish the step, save, stop. A second one stops at once."""
        if self.out_dir is None or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return None

        def handler(signum: int, frame: Any) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True

        try:
            return signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            return None

    def _interrupt(self) -> None:
        path = self.save()
        raise TrainingInterrupted(
            f"interrupted at step {self.step}; saved {path}. Continue with the same command plus --resume"
        )


def evaluate_ids(model: TinyGPT, ids: Any, batch_size: int = 64, show_progress: bool | None = False) -> float:
    """Exact mean next-token loss over all non-overlapping block_size windows of ``ids``.

    ``show_progress=None`` shows a bar when stderr is a terminal (a whole split takes a while).
    """
    loss_fn = LanguageModelLoss()
    block = model.config.block_size
    total, count = 0.0, 0
    batches = math.ceil(ids.shape[0] // block / batch_size)
    progress = Progress(total=batches, enabled=show_progress, desc="eval")
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for windows in sequential_windows(ids, block, batch_size):
                n = windows.shape[0]
                total += loss_fn(model(windows), windows).item() * n
                count += n
                progress.update()
    finally:
        progress.close()
        model.train(was_training)
    if count == 0:
        raise ConfigError(f"{ids.shape[0]} tokens are fewer than one window of block_size={block}")
    return total / count
