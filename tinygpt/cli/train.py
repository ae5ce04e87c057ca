"""``tinygpt train``: train a TinyGPT on a corpus into a run directory (``--resume`` continues it)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shlex
import sys
from pathlib import Path
from typing import Any, cast

from tinygpt import backend
from tinygpt.checkpoint import Checkpoint, Unfilled, load_checkpoint, resolve_checkpoint
from tinygpt.classroom.profiler import Profiler
from tinygpt.cli.args import (
    Given,
    add_backend_flags,
    add_data_flags,
    add_settings,
    for_terminal,
    given,
    nonnegative_int,
    positive_int,
    settings_from,
)
from tinygpt.cli.corpus import TrainingData, fixed_tokenizer_data, new_run_data, recorded_run_data
from tinygpt.data import split_text
from tinygpt.errors import CheckpointError, ConfigError
from tinygpt.generation import TextGeneration
from tinygpt.models import GPTConfig, TinyGPT
from tinygpt.settings import flag_of
from tinygpt.tokenizers import BPETokenizer, CharTokenizer, Tokenizer
from tinygpt.training import LanguageModelTrainer, RunDirectory, TrainConfig, distributed
from tinygpt.training.data_parallel import DataParallel


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
    p.add_argument(
        "--init-from",
        metavar="PATH",
        help="fine-tune: start from a Hugging Face GPT-2 directory or a tinygpt run, with its tokenizer "
        "and model settings (--block-size may crop the context)",
    )
    add_backend_flags(p)
    tok = p.add_argument_group("tokenizer")
    tok.add_argument(
        "--tokenizer",
        choices=TOKENIZERS,
        default="char",
        action=Given,
        help="char: one token per character; bpe: byte-level BPE trained on the training split (default: char)",
    )
    tok.add_argument(
        "--vocab-size",
        type=positive_int,
        action=Given,
        help=f"BPE vocabulary size, bytes and <|endoftext|> included (default: {DEFAULT_BPE_VOCAB})",
    )
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


TOKENIZERS = ("char", "bpe")
DEFAULT_BPE_VOCAB = 2048


def make_tokenizer(args: argparse.Namespace, text: str, val_fraction: float) -> Tokenizer:
    """The ``--tokenizer`` of a fresh run: characters of the whole text, or BPE learned from the training split."""
    if args.tokenizer == "char":
        if args.vocab_size is not None:
            raise ConfigError(
                "--vocab-size applies to --tokenizer bpe; a char vocabulary is the text's characters: "
                "drop --vocab-size or add --tokenizer bpe"
            )
        return CharTokenizer.from_text(text)
    train_text, _ = split_text(text, val_fraction)  # validation text stays unseen, by the tokenizer too
    tokenizer = BPETokenizer.train(train_text, args.vocab_size or DEFAULT_BPE_VOCAB)
    print(f"trained a byte-level BPE tokenizer of {tokenizer.vocab_size} tokens on the training split")
    return tokenizer


def check_resumed_tokenizer(args: argparse.Namespace, tokenizer: Tokenizer) -> None:
    """Refuse a --tokenizer flag that disagrees with the run's (``resumed_settings`` checks --vocab-size)."""
    kind = "bpe" if isinstance(tokenizer, BPETokenizer) else "char"
    if "tokenizer" in given(args) and args.tokenizer != kind:
        raise ConfigError(
            f"--tokenizer {args.tokenizer} conflicts with the run, which uses --tokenizer {kind}; "
            "drop --tokenizer to resume, or start a new run with --out elsewhere"
        )


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


def resumed_settings(args: argparse.Namespace, ckpt: Checkpoint) -> TrainConfig:
    """The run's recorded TrainConfig with the flags typed now applied, each change said aloud.

    The model's shape cannot change on resume: a typed model flag that disagrees is refused.
    """
    typed = given(args)
    for field in dataclasses.fields(GPTConfig):
        recorded = getattr(ckpt.model.config, field.name)
        if field.name in typed and getattr(args, field.name) != recorded:
            raise ConfigError(
                f"{flag_of(field)} {getattr(args, field.name)} conflicts with the run's model "
                f"({field.name}={recorded}); drop the flag to resume, or start a new run with --out elsewhere"
            )
    data = ckpt.trainer_state.get("train_config")
    if data is None:  # a run from before tinygpt recorded its settings: the flags are the settings
        return cast(TrainConfig, settings_from(args, TrainConfig))
    try:
        recorded_config = TrainConfig.from_dict(data, source=str(ckpt.path / "trainer.json"))
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    changes = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if f.name in typed and getattr(args, f.name) != getattr(recorded_config, f.name)
    }
    for name, value in changes.items():
        print(f"resuming with {name} {getattr(recorded_config, name)} -> {value} (as typed)", flush=True)
    return dataclasses.replace(recorded_config, **changes)


def run(args: argparse.Namespace) -> int:
    world = distributed.world()  # several processes only under mpiexec or srun
    shared_gpu = world.use_local_gpu(args.backend, args.device)  # loads the backend: each rank on its GPU
    backend.tune_allocator()
    with contextlib.ExitStack() as stack:
        if not world.is_main:  # rank 0 speaks for the run; the others compute
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        return _run(args, world, shared_gpu)


def _run(args: argparse.Namespace, world: distributed.World, shared_gpu: bool) -> int:
    if world.size > 1:
        print(world.description, flush=True)
    name = Path(args.text).stem if args.text else Path(args.data).name if args.data else args.corpus
    out = Path(args.out or f"runs/{name}")
    run_dir = RunDirectory(out)
    # One process per run directory (a second one is refused at once): in a data-parallel run, rank 0.
    with run_dir.locked() if world.is_main else contextlib.nullcontext():
        make = resumed_trainer if args.resume else new_trainer
        trainer = make(args, run_dir, world, shared_gpu)
        b = backend.current()
        print(
            f"training {trainer.model.num_parameters():,} parameters on {trainer.train_ids.shape[0]:,} tokens "
            f"({b.name}, {b.device}); run directory {out}",
            flush=True,
        )
        profiler = Profiler() if args.profile else None
        with profiler or contextlib.nullcontext():
            summary = trainer.train()
    if profiler is not None:
        print(profiler.report(), flush=True)
    print(
        f"done: best val loss {summary['best_val_loss']:.4f}; sample with: tinygpt sample --checkpoint {shlex.quote(str(out))}"
    )
    if args.sample_chars and world.is_main:
        generator = TextGeneration(trainer.model, trainer.tokenizer)
        print(
            for_terminal(generator.sample("\n", args.sample_chars, seed=trainer.config.seed)[0], sys.stdout)
        )
    return 0


def new_trainer(
    args: argparse.Namespace, run_dir: RunDirectory, world: distributed.World, shared_gpu: bool = False
) -> LanguageModelTrainer:
    """A fresh run: model and settings from the flags, a tokenizer from the text (or the dataset's)."""
    run_dir.check_new()
    train_config = settings_from(args, TrainConfig)
    if args.init_from:
        model, tokenizer = pretrained(args)
        data = fixed_tokenizer_data(args, tokenizer, model.config.block_size)
        return _trainer(args, run_dir, model, train_config, data, world, shared_gpu)
    data = new_run_data(args, lambda text, fraction: make_tokenizer(args, text, fraction), args.block_size)
    config = settings_from(args, GPTConfig, vocab_size=data.tokenizer.vocab_size)
    return _trainer(args, run_dir, config, train_config, data, world, shared_gpu)


def pretrained(args: argparse.Namespace) -> tuple[TinyGPT, Tokenizer]:
    """The model ``--init-from`` names (block size cropped, dropout as typed) and its tokenizer.

    Its shape comes from the pretrained model: a model flag typed that disagrees is refused.
    """
    typed = given(args)
    if typed & {"tokenizer", "vocab_size"}:
        flag = "--tokenizer" if "tokenizer" in typed else "--vocab-size"
        raise ConfigError(
            f"{flag} conflicts with --init-from {args.init_from}: a fine-tune keeps the pretrained "
            f"model's tokenizer (its ids are what the model learned); drop {flag}"
        )
    ckpt = load_checkpoint(args.init_from)
    config = ckpt.model.config
    if ckpt.tokenizer.vocab_size != config.vocab_size:
        raise ConfigError(
            f"--init-from {args.init_from}: the model has {config.vocab_size} token embeddings but its "
            f"tokenizer {ckpt.tokenizer.vocab_size} tokens; a tinygpt run keeps the two equal, so this "
            "directory cannot be fine-tuned (it still loads for sample, eval and info)"
        )
    for field in dataclasses.fields(GPTConfig):
        value, theirs = getattr(args, field.name, None), getattr(config, field.name)
        if field.name in typed and field.name not in ("block_size", "dropout") and value != theirs:
            raise ConfigError(
                f"{flag_of(field)} {value} conflicts with the model of --init-from {args.init_from} "
                f"({field.name}={theirs}); drop the flag: a fine-tune keeps the pretrained model's shape"
            )
    block = args.block_size if "block_size" in typed else config.block_size
    if block > config.block_size:
        raise ConfigError(
            f"--block-size {block} is larger than the context of --init-from {args.init_from} "
            f"({config.block_size} positions, all it learned); use --block-size {config.block_size} or less"
        )
    state = ckpt.model.state_dict()
    if "wpe.weight" in state:  # crop the position table (nanoGPT's crop_block_size)
        state["wpe.weight"] = state["wpe.weight"][:block]
    model = TinyGPT(dataclasses.replace(config, block_size=block, dropout=args.dropout), rng=Unfilled())
    model.load_state_dict(state, source=str(ckpt.path))  # every weight: nothing drawn at random above
    print(f"fine-tuning {ckpt.path} ({config.num_parameters():,} parameters, context {block})", flush=True)
    return model, ckpt.tokenizer


def resumed_trainer(
    args: argparse.Namespace, run_dir: RunDirectory, world: distributed.World, shared_gpu: bool = False
) -> LanguageModelTrainer:
    """The run in ``--out`` from its latest checkpoint: its own text, split, model and settings.

    The checkpoint is loaded once, with its training state; its model is the one that trains on.
    """
    # Rank 0 reopens the run directory; the other ranks of a data-parallel run only read it.
    latest = run_dir.resume() if world.is_main else resolve_checkpoint(run_dir.path, "latest")
    ckpt = load_checkpoint(latest, with_training_state=True)
    train_config = resumed_settings(args, ckpt)
    check_resumed_tokenizer(args, ckpt.tokenizer)
    data = recorded_run_data(
        args, ckpt.trainer_state.get("data", {}), ckpt.tokenizer, ckpt.model.config.block_size, strict=True
    )
    info = data.info
    what = "data" if "data" in info and "text" not in info else "text"
    where = info.get("text") or info.get("data") or f"the {info.get('corpus')!r} corpus"
    print(f"resuming on the {what} the run recorded: {where} (validation fraction {info['val_fraction']})")
    trainer = _trainer(args, run_dir, ckpt.model, train_config, data, world, shared_gpu)
    trainer.restore(ckpt)
    ranks, before = world.size, trainer.resumed_world_size or 1
    windows = train_config.batch_size * train_config.grad_accum
    change = (
        f" with {ranks} rank(s) (it ran with {before}; the global batch stays {windows} windows a step)"
        if ranks != before
        else ""
    )
    print(f"resuming {run_dir.path} from step {trainer.step}{change}", flush=True)
    return trainer


def _trainer(
    args: argparse.Namespace,
    run_dir: RunDirectory,
    model: GPTConfig | TinyGPT,
    train_config: TrainConfig,
    data: TrainingData,
    world: distributed.World,
    shared_gpu: bool = False,
) -> LanguageModelTrainer:
    """A trainer for ``model`` (a pretrained one, or a fresh one of this config) on ``data``, as one rank of ``world``."""
    config = model.config if isinstance(model, TinyGPT) else model
    windows = train_config.batch_size * train_config.grad_accum  # per step, shared by the ranks
    rows = min(train_config.batch_size, -(-windows // world.size))  # the most one rank runs at once
    check_memory(config, rows, world.local_size if backend.current().on_host else 1)  # ranks share host RAM
    backend.manual_seed(train_config.seed)
    return LanguageModelTrainer(
        model if isinstance(model, TinyGPT) else TinyGPT(config),
        data.tokenizer,
        data.train_ids,
        data.val_ids,
        train_config,
        out_dir=run_dir,
        show_progress=args.progress,
        data_info=data.info,
        parallel=DataParallel(world, seed=train_config.seed, shared_device=shared_gpu),
        val_bytes=data.val_bytes,
    )
