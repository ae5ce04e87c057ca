"""Training a language model: the loop, read top to bottom in ``LanguageModelTrainer.train``.

    every step:                 batch of windows -> forward -> loss -> backward -> clip -> AdamW
    every eval_interval steps:  estimate train/val loss -> log metrics.jsonl -> checkpoint (latest, best)
    on Ctrl-C or SIGTERM:       finish the step, checkpoint, stop (resume continues exactly)
    under mpiexec -n N:         each rank its share of the windows; gradients summed over ranks before clip

Batches are random windows (B, T) of consecutive tokens; ``LanguageModelLoss``
does the next-token shift. Loss estimates use ``eval_iters`` random windows
drawn from a generator keyed on the step, so changing evaluation settings never
changes the training batches. Where the files go is ``RunDirectory``'s business.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tinygpt import backend
from tinygpt.checkpoint import Checkpoint, load_checkpoint, resolve_checkpoint
from tinygpt.data import RandomWindows, require_window, sample_windows
from tinygpt.errors import CheckpointError, ConfigError, DistributedError, NumericalError
from tinygpt.losses import LanguageModelLoss
from tinygpt.models.gpt import TinyGPT
from tinygpt.optim import AdamW, warmup_cosine_lr
from tinygpt.progress import Progress
from tinygpt.tensor import Tensor
from tinygpt.tokenizers import Tokenizer
from tinygpt.training.config import TrainConfig
from tinygpt.training.data_parallel import DataParallel
from tinygpt.training.evaluation import bits_per_byte
from tinygpt.training.interrupts import EXIT_CODES, StopSignals, TrainingInterrupted
from tinygpt.training.run_directory import RunDirectory
from tinygpt.training.trainer import Batch, Callback, Trainer

# Errors that depend only on all-reduced values, so every rank raises them at once: they end a
# data-parallel run normally; any other error on one rank stops every rank (World.stop_all_on_error).
COLLECTIVE_ERRORS = (TrainingInterrupted, NumericalError, DistributedError)


def print_line(message: str) -> None:
    """Print one log line now (not when a pipe's buffer fills)."""
    print(message, flush=True)


class LanguageModelTrainer(Trainer):
    """Trains a TinyGPT on token ids (N,), writing metrics and checkpoints into ``out_dir``."""

    def __init__(
        self,
        model: TinyGPT,
        tokenizer: Tokenizer,
        train_ids: Any,
        val_ids: Any,
        config: TrainConfig,
        out_dir: str | os.PathLike[str] | RunDirectory | None = None,
        callbacks: Iterable[Callback] = (),
        log: Callable[[str], None] | None = print_line,
        show_progress: bool | None = None,
        data_info: dict[str, Any] | None = None,
        parallel: DataParallel | None = None,
        val_bytes: int | None = None,
    ) -> None:
        require_window(train_ids, model.config.block_size, "the training split")
        require_window(val_ids, model.config.block_size, "the validation split")
        optimizer = AdamW(
            model.decay_groups(config.weight_decay), lr=config.lr, betas=(config.beta1, config.beta2)
        )
        super().__init__(
            model,
            LanguageModelLoss(),
            optimizer,
            grad_clip=config.grad_clip,
            lr_schedule=warmup_cosine_lr(config.lr, config.min_lr, config.warmup_iters, config.max_iters),
            on_nonfinite=config.on_nonfinite,
            callbacks=callbacks,
            # Guessing uniformly costs ln(V) per token; 100 times that means training has diverged.
            max_loss=100 * math.log(max(2, model.config.vocab_size)),
            parallel=parallel or DataParallel(seed=config.seed),
        )
        self.model: TinyGPT = model
        self.tokenizer = tokenizer
        self.train_ids = train_ids
        self.val_ids = val_ids
        self.config = config
        self.data_rng = backend.Generator(config.seed)
        # Where every step's batches come from: grad_accum batches of batch_size random windows.
        self.train_batches = RandomWindows(
            train_ids, model.config.block_size, config.batch_size, config.grad_accum, self.data_rng
        )
        main = self.parallel.world.is_main  # only rank 0 prints and writes files
        run = out_dir if isinstance(out_dir, RunDirectory) or out_dir is None else RunDirectory(out_dir)
        self._out_path = None if run is None else run.path
        self.run = run if main else None
        self.log = log if main else None
        self.show_progress = show_progress if main else False
        self.data_info = data_info or {}
        self.val_bytes = val_bytes  # UTF-8 bytes of the validation text: metrics then give bits per byte
        self.best_val_loss = math.inf
        self.signals = StopSignals(enabled=out_dir is not None)  # Ctrl-C and SIGTERM save, then stop
        self._step_seconds: list[float] = []
        self._started = time.perf_counter()
        self.resumed_world_size: int | None = None  # the world size a resumed run had before
        self.parallel.check_global_batch(config.batch_size * config.grad_accum, "--batch-size x --grad-accum")

    # The loop ----------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Run until ``max_iters``; returns the last metrics. A stop signal saves and raises TrainingInterrupted."""
        cfg = self.config
        metrics: dict[str, Any] = {}
        bar = Progress(total=cfg.max_iters, initial=self.step, enabled=self.show_progress, desc="train")
        with (
            self.parallel.world.stop_all_on_error(COLLECTIVE_ERRORS),
            self.signals.deferred(),
            bar as progress,
        ):
            self.parallel.start(self.optimizer.parameters)  # every rank is set up: rank 0's weights on all
            if self.parallel.warning:
                progress.write(f"warning: {self.parallel.warning}", self.log)
            with self.run_directory_locked():
                self._started = time.perf_counter()
                while True:
                    if self.step % cfg.eval_interval == 0 or self.step == cfg.max_iters:
                        metrics = self.evaluate_and_checkpoint()  # estimate losses, log, save
                        progress.write(self.describe(metrics), self.log)
                    if self.step >= cfg.max_iters:
                        break
                    requested = self.parallel.agreed_stop(self.signals.requested)  # Ctrl-C, SIGTERM: any rank
                    if requested:
                        raise self.stop(EXIT_CODES[requested])
                    started = time.perf_counter()
                    record = self.train_step(self.train_batches.draw())  # grad_accum batches of ids (B, T)
                    self._step_seconds.append(time.perf_counter() - started)
                    progress.update(loss=record["loss"])
                self.parallel.world.barrier()  # rank 0 has written the last checkpoint
        return {**metrics, "best_val_loss": self.best_val_loss, "skipped_steps": self.skipped_steps}

    def compute_loss(self, batch: Batch) -> Tensor:
        """ids (B, T) -> logits (B, T, V) -> the mean loss of predicting each next token."""
        return self.loss_fn(self.model(batch), batch)

    # Evaluation and checkpoints -------------------------------------------------------
    def estimate_loss(self, ids: Any, salt: int) -> float:
        """Mean loss on ``eval_iters`` random windows (a generator of its own, keyed on step and split)."""
        rng = backend.Generator([self.config.seed, self.step, salt])
        t, b = self.model.config.block_size, self.config.batch_size
        return self.evaluate([sample_windows(ids, t, b, rng) for _ in range(self.config.eval_iters)])

    def evaluate_and_checkpoint(self) -> dict[str, Any]:
        """Estimate both losses; with a run directory, save the latest (and best) checkpoint and log."""
        self.parallel.check_in_sync(self.model.named_parameters(), self.step)
        train_loss, val_loss = self.estimate_loss(self.train_ids, 0), self.estimate_loss(self.val_ids, 1)
        metrics: dict[str, Any] = {
            "iter": self.step,
            "train_loss": train_loss,
            "val_loss": val_loss,
            **(
                {"val_bpb": bits_per_byte(val_loss, self.val_ids.shape[0], self.val_bytes)}
                if self.val_bytes is not None
                else {}
            ),
            "lr": self.lr_schedule(min(self.step, self.config.max_iters)) if self.lr_schedule else None,
            "elapsed_s": round(time.perf_counter() - self._started, 3),
            "ms_per_iter": round(1000 * statistics.median(self._step_seconds), 3)
            if self._step_seconds
            else None,
        }
        self._step_seconds = []
        improved = metrics["val_loss"] < self.best_val_loss
        if improved:
            self.best_val_loss = metrics["val_loss"]
        if self.run is not None:
            path = self.save()
            if improved:
                self.run.publish("best", path)
            self.run.log(metrics)
        self.emit({"event": "eval", **metrics})
        return metrics

    def describe(self, m: dict[str, Any]) -> str:
        """One log line for an evaluation record."""
        timing = f", {m['ms_per_iter']:.1f} ms/iter" if m.get("ms_per_iter") else ""
        bpb = f" ({m['val_bpb']:.4f} bits/byte)" if m.get("val_bpb") is not None else ""
        return (
            f"step {m['iter']:>5}/{self.config.max_iters}: train loss {m['train_loss']:.4f}, "
            f"val loss {m['val_loss']:.4f}{bpb}, lr {m['lr']:.2e}{timing}"
        )

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
            "world_size": self.parallel.size,
        }
        return self.run.save(self.step, self.model, self.tokenizer, self.optimizer.state_dict(), state)

    def request_stop(self, signum: signal.Signals = signal.SIGINT) -> None:
        """Ask the loop to save and stop after the current step, as Ctrl-C (or ``signum``) does."""
        self.signals.requested = signum

    def stop(self, exit_code: int = 130) -> TrainingInterrupted:
        """Save now (rank 0 does, in a data-parallel run); the exception to raise says how to continue."""
        saved = f"saved {self.save()}" if self.parallel.world.is_main else "rank 0 saved a checkpoint"
        self.parallel.world.barrier()  # no rank exits while rank 0 writes
        return TrainingInterrupted(
            f"interrupted at step {self.step}; {saved}. Continue with the same command plus --resume",
            exit_code,
        )

    # Resume ------------------------------------------------------------------------------
    def resume(self) -> None:
        """Continue the run in ``out_dir`` from its latest checkpoint, loaded into this trainer's model."""
        if self._out_path is None:
            raise ConfigError("this trainer has no out_dir to resume from")
        # Rank 0 reopens the run directory; other ranks of a data-parallel run only read it.
        latest = self.run.resume() if self.run is not None else resolve_checkpoint(self._out_path, "latest")
        self.restore(load_checkpoint(latest, with_training_state=True))

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue exactly where ``ckpt`` (loaded with its training state) left off: AdamW moments,
        step, RNG states, and its weights unless ``ckpt.model`` is this trainer's model already."""
        if ckpt.optimizer_state is None:
            raise ConfigError(
                f"{ckpt.path} was loaded without its training state: load_checkpoint(..., True)"
            )
        if ckpt.tokenizer != self.tokenizer:
            raise CheckpointError(
                f"{ckpt.path} was trained on text with another vocabulary; resume with the same corpus"
            )
        if ckpt.model is not self.model:
            if ckpt.model.config != self.model.config:
                raise CheckpointError(
                    f"{ckpt.path} holds a model of another shape ({ckpt.model.config}); "
                    "resume with the flags the run was started with"
                )
            self.model.load_state_dict(ckpt.model.state_dict(), source=str(ckpt.path))
        try:
            self.optimizer.load_state_dict(ckpt.optimizer_state)
        except ConfigError as exc:
            raise CheckpointError(f"{ckpt.path / 'optimizer.safetensors'}: {exc}") from None
        state = ckpt.trainer_state
        self.step = int(state["step"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        best = state.get("best_val_loss")
        self.best_val_loss = math.inf if best is None else float(best)
        self.data_rng.set_state(state["data_rng"])
        backend.default_generator().set_state(state["model_rng"])
        ranks = state.get("world_size", 1)  # a run from before data parallelism: one process
        self.resumed_world_size = ranks if type(ranks) is int and ranks > 0 else 1

    @contextlib.contextmanager
    def run_directory_locked(self) -> Iterator[None]:
        """No other process writes the run directory during the block; it is opened once (started, or
        continued after restore() from its own checkpoint) and holds no metrics past this step."""
        if self.run is None:
            yield
            return
        with self.run.locked():
            if not self.run.opened:
                if self.step > 0 and self.run.holds_run():
                    self.run.resume()
                else:
                    self.run.start()
            self.run.trim_metrics(self.step)  # records after the checkpoint will be logged again
            yield
