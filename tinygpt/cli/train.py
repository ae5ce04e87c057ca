"""``tinygpt train``: train a TinyGPT on a corpus into a run directory (``--resume`` continues it)."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from tinygpt import backend
from tinygpt.checkpoint import load_checkpoint, resolve_checkpoint
from tinygpt.classroom.profiler import Profiler
from tinygpt.cli.args import (
    add_backend_flags,
    add_data_flags,
    add_settings,
    load_text,
    nonnegative_int,
    select_backend,
    settings_from,
)
from tinygpt.data import split_for_training
from tinygpt.errors import ConfigError
from tinygpt.generation import TextGeneration
from tinygpt.models.gpt import GPTConfig, TinyGPT
from tinygpt.tokenizer import CharTokenizer
from tinygpt.training import LanguageModelTrainer, RunDirectory, TrainConfig, distributed
from tinygpt.training.data_parallel import DataParallel
from tinygpt.training.loop import print_line


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a TinyGPT on a corpus",
        description="Train a TinyGPT; writes DIR/metrics.jsonl and checkpoints.",
    )
    add_data_flags(p, "shakespeare")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<corpus>)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its latest checkpoint"
    )
    add_backend_flags(p)
    add_settings(p.add_argument_group("model"), GPTConfig, skip=("vocab_size",))
    add_settings(p.add_argument_group("training"), TrainConfig)
    out = p.add_argument_group("output")
    out.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal)",
    )
    out.add_argument(
        "--sample-chars", type=nonnegative_int, default=0, help="print a sample of this length at the end"
    )
    out.add_argument("--profile", action="store_true", help="print time per kind of operation at the end")
    p.set_defaults(run=run)


def check_memory(config: GPTConfig, batch_size: int, sharing: int = 1) -> None:
    """Refuse a model whose training step would not fit in the device's free memory (``sharing`` ranks share it)."""
    need = config.memory_bytes(batch_size)
    have = backend.available_memory()
    have = None if have is None else have // sharing
    if have is not None and need > have:
        raise ConfigError(
            f"this model would need about {need / 2**30:.1f} GiB for a training step (parameters, gradients, "
            f"AdamW state and activations) but only {have / 2**30:.1f} GiB is available; "
            "reduce --batch-size, --block-size, --n-embd or --n-layer"
        )


def run(args: argparse.Namespace) -> int:
    world = distributed.world()  # several processes only under mpiexec or srun
    select_backend(args)
    shared_gpu = world.use_local_gpu(explicit=args.device)
    backend.tune_allocator()
    say = print_line if world.is_main else distributed.silent  # rank 0 speaks for the run
    if world.size > 1:
        say(world.description)
    out = Path(args.out or f"runs/{Path(args.text).stem if args.text else args.corpus}")
    run_dir = RunDirectory(out)
    latest = None
    if args.resume:  # only rank 0 opens the run directory; the others read its latest checkpoint
        latest = run_dir.resume() if world.is_main else resolve_checkpoint(out, "latest")
    if latest is None:
        run_dir.check_new()
    train_config = settings_from(args, TrainConfig)
    text, data_info = load_text(args)
    if latest is not None:
        ckpt = load_checkpoint(latest)
        tokenizer, config = ckpt.tokenizer, ckpt.model.config
    else:
        tokenizer = CharTokenizer.from_text(text)
        config = settings_from(args, GPTConfig, vocab_size=tokenizer.vocab_size)
    windows = train_config.batch_size * train_config.grad_accum  # per step, shared by the ranks
    rows = min(train_config.batch_size, -(-windows // world.size))
    check_memory(config, rows, world.local_size if backend.current().name != "cupy" else 1)
    train_ids, val_ids = split_for_training(text, tokenizer, args.val_fraction, config.block_size)
    backend.manual_seed(train_config.seed)
    model = TinyGPT(config)
    trainer = LanguageModelTrainer(
        model,
        tokenizer,
        train_ids,
        val_ids,
        train_config,
        out_dir=out,
        show_progress=args.progress,
        data_info=data_info,
        parallel=DataParallel(world, shared_gpu) if world.size > 1 else None,
    )
    if latest is not None:
        trainer.resume()
        before = trainer.resumed_world_size or 1
        ranks = (
            ""
            if before == world.size
            else (
                f" with {world.size} rank(s) (it ran with {before}; the global batch stays {windows} windows a step)"
            )
        )
        say(f"resuming {out} from step {trainer.step}{ranks}")
    b = backend.current()
    say(
        f"training {model.num_parameters():,} parameters on {train_ids.shape[0]:,} tokens "
        f"({b.name}, {b.device}); run directory {out}"
    )
    profiler = Profiler() if args.profile else None
    with profiler or contextlib.nullcontext():
        summary = trainer.train()
    if profiler is not None:
        say(profiler.report())
    say(f"done: best val loss {summary['best_val_loss']:.4f}; sample with: tinygpt sample --checkpoint {out}")
    if args.sample_chars and world.is_main:
        say(TextGeneration(model, tokenizer).sample("\n", args.sample_chars, seed=train_config.seed)[0])
    return 0
