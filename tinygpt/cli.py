"""The ``tinygpt`` command line: train, sample, eval, info.

Bad input never shows a traceback: every flag checks its range, and errors
from the library (``TinyGPTError``) print as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

from tinygpt import backend
from tinygpt.cli_classroom import add_attention_parser, add_plot_parser, add_vision_parser
from tinygpt.errors import ConfigError, TinyGPTError

# Flag types: each names the allowed range in its error --------------------------


def _number(cast: Callable[[str], Any], check: Callable[[Any], bool], rule: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {rule}, got {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    parse.__name__ = rule
    return parse


positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
nonnegative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0 and v < float("inf"), "a number > 0")
nonnegative_float = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0")
dropout_rate = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
val_fraction = _number(float, lambda v: 0 < v < 1, "a number in (0, 1)")
top_p_value = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``tinygpt train: error: argument --lr: ...``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# train ---------------------------------------------------------------------------


def _add_data_flags(p: argparse.ArgumentParser, default_corpus: str | None) -> None:
    from tinygpt.data import CORPORA

    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--corpus", choices=CORPORA, default=default_corpus, help="built-in corpus (default: %(default)s)"
    )
    group.add_argument("--text", metavar="PATH", help="train on any UTF-8 text file instead")
    p.add_argument(
        "--val-fraction", type=val_fraction, default=0.1, help="last fraction of the text held out"
    )


def _add_train_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a TinyGPT on a corpus",
        description="Train a TinyGPT; writes DIR/metrics.jsonl and checkpoints.",
    )
    _add_data_flags(p, "shakespeare")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<corpus>)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its latest checkpoint"
    )
    p.add_argument(
        "--backend", choices=backend.BACKENDS, help="array library (default: $TINYGPT_BACKEND or numpy)"
    )
    p.add_argument("--device", help="device, e.g. cuda:1 (default: $TINYGPT_DEVICE)")
    model = p.add_argument_group("model")
    model.add_argument("--n-layer", type=positive_int, default=4)
    model.add_argument("--n-head", type=positive_int, default=4)
    model.add_argument("--n-embd", type=positive_int, default=128)
    model.add_argument("--block-size", type=positive_int, default=64)
    model.add_argument("--dropout", type=dropout_rate, default=0.0)
    model.add_argument("--positional", choices=("learned", "sinusoidal"), default="learned")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=positive_int, default=12)
    opt.add_argument("--max-iters", type=positive_int, default=2000)
    opt.add_argument("--lr", type=positive_float, default=1e-3)
    opt.add_argument("--min-lr", type=nonnegative_float, default=1e-4)
    opt.add_argument("--warmup-iters", type=nonnegative_int, default=100)
    opt.add_argument("--weight-decay", type=nonnegative_float, default=0.1)
    opt.add_argument("--beta1", type=_number(float, lambda v: 0 <= v < 1, "a number in [0, 1)"), default=0.9)
    opt.add_argument("--beta2", type=_number(float, lambda v: 0 <= v < 1, "a number in [0, 1)"), default=0.99)
    opt.add_argument("--grad-clip", type=positive_float, default=1.0)
    opt.add_argument("--grad-accum", type=positive_int, default=1)
    opt.add_argument(
        "--on-nan",
        choices=("stop", "skip"),
        default="stop",
        help="on a non-finite loss: stop, or skip the step",
    )
    ev = p.add_argument_group("evaluation and logging")
    ev.add_argument("--eval-interval", type=positive_int, default=250)
    ev.add_argument("--eval-iters", type=positive_int, default=50)
    ev.add_argument("--seed", type=nonnegative_int, default=1337)
    ev.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal)",
    )
    ev.add_argument(
        "--sample-chars", type=nonnegative_int, default=0, help="print a sample of this length at the end"
    )
    ev.add_argument("--profile", action="store_true", help="print time per kind of operation at the end")
    p.set_defaults(run=cmd_train)


def _select_backend(args: argparse.Namespace) -> None:
    if getattr(args, "backend", None):
        backend.use(args.backend, getattr(args, "device", None))
    else:
        backend.current()


def _load_text(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from tinygpt.data import load_corpus

    text = load_corpus(args.corpus, args.text)
    source = {"text": str(Path(args.text).resolve())} if args.text else {"corpus": args.corpus}
    return text, {**source, "val_fraction": args.val_fraction}


def _min_text_length(block_size: int, fraction: float) -> int:
    """Fewest characters whose training and validation parts both hold block_size + 1 characters."""
    need = block_size + 1
    # Both parts only grow with n; start just below the bounds n >= need/f and n > (need-1)/(1-f).
    n = max(1, int(need / fraction) - 2, int((need - 1) / (1 - fraction)) - 1)
    while int(n * fraction) < need or n - int(n * fraction) < need:  # the split_text arithmetic
        n += 1
    return n


def _splits(text: str, tokenizer: Any, fraction: float, block_size: int) -> tuple[Any, Any]:
    from tinygpt.data import split_text, token_array

    minimum = _min_text_length(block_size, fraction)
    if len(text) < minimum:
        raise ConfigError(
            f"the text has {len(text)} characters; with block_size={block_size} and a validation fraction of "
            f"{fraction} it needs at least {minimum} characters, so that both the training and the "
            f"validation part hold block_size + 1; use a longer text or a smaller --block-size"
        )
    train_text, val_text = split_text(text, fraction)
    return token_array(tokenizer.encode(train_text)), token_array(tokenizer.encode(val_text))


def _check_memory(config: Any, batch_size: int) -> None:
    need = config.memory_bytes(batch_size)
    have = backend.available_memory()
    if have is not None and need > have:
        raise ConfigError(
            f"this model would need about {need / 2**30:.1f} GiB for a training step (parameters, gradients, "
            f"AdamW state and activations) but only {have / 2**30:.1f} GiB is available; "
            "reduce --batch-size, --block-size, --n-embd or --n-layer"
        )


def cmd_train(args: argparse.Namespace) -> int:
    from tinygpt.checkpoint import load_checkpoint
    from tinygpt.models.gpt import GPTConfig, TinyGPT
    from tinygpt.tokenizer import CharTokenizer
    from tinygpt.trainer import LanguageModelTrainer, TrainConfig
    from tinygpt.training.run_directory import RunDirectory

    _select_backend(args)
    out = Path(args.out or f"runs/{Path(args.text).stem if args.text else args.corpus}")
    run = RunDirectory(out)
    if args.resume:
        latest = run.resume()
    else:
        run.check_new()
    # Every TrainConfig field has a flag of the same name (--on-nan is on_nonfinite).
    settings = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    train_config = TrainConfig(**settings, on_nonfinite=args.on_nan)
    text, data_info = _load_text(args)
    if args.resume:
        ckpt = load_checkpoint(latest)
        tokenizer, config = ckpt.tokenizer, ckpt.model.config
    else:
        tokenizer = CharTokenizer.from_text(text)
        config = GPTConfig(
            vocab_size=tokenizer.vocab_size,
            block_size=args.block_size,
            n_layer=args.n_layer,
            n_head=args.n_head,
            n_embd=args.n_embd,
            dropout=args.dropout,
            positional=args.positional,
        )
    _check_memory(config, args.batch_size * 1)
    train_ids, val_ids = _splits(text, tokenizer, args.val_fraction, config.block_size)
    backend.manual_seed(args.seed)
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
    )
    if args.resume:
        trainer.resume()
        print(f"resuming {out} from step {trainer.step}", flush=True)
    b = backend.current()
    print(
        f"training {model.num_parameters():,} parameters on {train_ids.shape[0]:,} tokens "
        f"({b.name}, {b.device}); run directory {out}",
        flush=True,
    )
    from tinygpt.profiler import Profiler

    with Profiler() if args.profile else contextlib.nullcontext() as profiler:
        summary = trainer.train()
    if profiler is not None:
        print(profiler.report(), flush=True)
    print(
        f"done: best val loss {summary['best_val_loss']:.4f}; sample with: tinygpt sample --checkpoint {out}",
        flush=True,
    )
    if args.sample_chars:
        from tinygpt.generation import TextGeneration

        print(TextGeneration(model, tokenizer).sample("\n", args.sample_chars, seed=args.seed)[0])
    return 0


# sample / eval / info ---------------------------------------------------------------


def _add_checkpoint_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        metavar="DIR",
        required=True,
        help="run directory (its best checkpoint) or a checkpoint",
    )
    p.add_argument(
        "--which", choices=("best", "latest"), default="best", help="which checkpoint of a run directory"
    )
    p.add_argument(
        "--backend", choices=backend.BACKENDS, help="array library (default: $TINYGPT_BACKEND or numpy)"
    )
    p.add_argument("--device", help="device, e.g. cuda:1")


def _load(args: argparse.Namespace) -> Any:
    from tinygpt.checkpoint import load_checkpoint, resolve_checkpoint

    _select_backend(args)
    return load_checkpoint(resolve_checkpoint(args.checkpoint, args.which))


def _add_sample_parser(sub: Any) -> None:
    p = sub.add_parser("sample", help="generate text from a trained model")
    _add_checkpoint_flags(p)
    p.add_argument("--prompt", default="", help="text to continue (default: start of a line)")
    p.add_argument("--max-new-tokens", type=nonnegative_int, default=500)
    p.add_argument("--temperature", type=positive_float, default=0.8)
    p.add_argument("--top-k", type=positive_int, default=None)
    p.add_argument("--top-p", type=top_p_value, default=None)
    p.add_argument("--num-samples", type=positive_int, default=1)
    p.add_argument("--seed", type=nonnegative_int, default=None)
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context for every token")
    p.set_defaults(run=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    from tinygpt.generation import TextGeneration

    ckpt = _load(args)
    gen = TextGeneration(ckpt.model, ckpt.tokenizer)
    options = {
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "seed": args.seed,
        "use_cache": not args.no_cache,
    }
    if args.num_samples == 1:
        pieces = gen.stream(args.prompt, args.max_new_tokens, **options)  # checks the prompt first
        sys.stdout.write(args.prompt)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    samples = gen.sample(args.prompt, args.max_new_tokens, args.num_samples, show_progress=None, **options)
    for i, text in enumerate(samples):
        print(f"--- sample {i + 1} ---\n{text}")
    return 0


def _add_eval_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="mean loss over a whole validation split")
    _add_checkpoint_flags(p)
    _add_data_flags(p, None)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.set_defaults(run=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from tinygpt.trainer import evaluate_ids

    ckpt = _load(args)
    recorded = ckpt.trainer_state.get("data", {})
    if args.text is None and args.corpus is None:
        args.corpus = recorded.get("corpus", "shakespeare")
        args.text = recorded.get("text")
        if args.text:
            args.corpus = None
    text, _ = _load_text(args)
    _, val_ids = _splits(text, ckpt.tokenizer, args.val_fraction, ckpt.model.config.block_size)
    start = time.perf_counter()
    loss = evaluate_ids(ckpt.model, val_ids, args.batch_size, show_progress=None)
    windows = val_ids.shape[0] // ckpt.model.config.block_size
    result = {
        "val_loss": loss,
        "windows": windows,
        "tokens": windows * ckpt.model.config.block_size,
        "checkpoint": str(ckpt.path),
        "seconds": round(time.perf_counter() - start, 2),
    }
    print(json.dumps(result) if args.json else f"val loss {loss:.4f} over {windows} windows ({ckpt.path})")
    return 0


def _add_info_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="parameters, FLOPs and memory of a checkpoint's model")
    _add_checkpoint_flags(p)
    p.add_argument("--batch-size", type=positive_int, default=12, help="batch for the memory estimate")
    p.set_defaults(run=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    ckpt = _load(args)
    print(ckpt.model.summary(batch_size=args.batch_size))
    return 0


COMMANDS: list[Callable[[Any], None]] = [
    _add_train_parser,
    _add_sample_parser,
    _add_eval_parser,
    _add_info_parser,
    add_vision_parser,
    add_plot_parser,
    add_attention_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tinygpt", description="A small, real GPT: train on Shakespeare, then sample.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tinygpt`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except TinyGPTError as exc:
        from tinygpt.trainer import TrainingInterrupted

        if isinstance(exc, TrainingInterrupted):
            print(f"tinygpt: {exc}", file=sys.stderr)
            return 130
        print(f"tinygpt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinygpt: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # the environment, not the input: a full disk, a path that is a file
        if isinstance(exc, BrokenPipeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        print(f"tinygpt {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
