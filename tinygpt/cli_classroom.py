"""Classroom commands: ``tinygpt vision``, ``tinygpt plot`` and ``tinygpt attention``.

Each ``add_*_parser`` adds one subcommand to ``tinygpt``'s parser (they are
listed in ``tinygpt.cli.COMMANDS``); the work is done by ``tinygpt.vision``
and ``tinygpt.plots``, imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tinygpt import backend


def _add_backend_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend", choices=backend.BACKENDS, help="array library (default: $TINYGPT_BACKEND or numpy)"
    )
    p.add_argument("--device", help="device, e.g. cuda:1 (default: $TINYGPT_DEVICE)")


# vision ----------------------------------------------------------------------------


def add_vision_parser(sub: Any) -> None:
    from tinygpt.cli import nonnegative_int, positive_float, positive_int

    p = sub.add_parser(
        "vision",
        help="train an image classifier on 8x8 digits with the same parts as TinyGPT",
        description="Dense -> ReLU -> Dense on scikit-learn's digits, trained by the generic Trainer "
        "with CrossEntropyLoss and AdamW (needs pip install 'tinygpt[vision]').",
    )
    p.add_argument("--epochs", type=positive_int, default=20)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--lr", type=positive_float, default=3e-3)
    p.add_argument("--hidden", type=positive_int, default=128, help="width of the hidden layer")
    p.add_argument("--activation", choices=("relu", "gelu"), default="relu")
    p.add_argument("--json", action="store_true", help="end with one JSON line (test_accuracy, seconds)")
    _add_backend_flags(p)
    p.set_defaults(run=cmd_vision)


def cmd_vision(args: argparse.Namespace) -> int:
    from tinygpt.cli import _select_backend
    from tinygpt.vision import train_digits

    _select_backend(args)
    result = train_digits(
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        hidden=args.hidden,
        activation=args.activation,
        log=None if args.json else lambda line: print(line, flush=True),
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"test accuracy {100 * result['test_accuracy']:.1f}% on {result['test_images']} images "
            f"({result['parameters']:,} parameters, {result['backend']}, {result['seconds']:.1f} s)"
        )
    return 0


# plot --------------------------------------------------------------------------------


def add_plot_parser(sub: Any) -> None:
    p = sub.add_parser(
        "plot",
        help="draw a run's train/validation loss curves to a PNG",
        description="Read RUN_DIR/metrics.jsonl and draw the losses (needs pip install 'tinygpt[plot]').",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out directory of `tinygpt train`")
    p.add_argument("--out", metavar="FILE.png", required=True, help="where to write the picture")
    p.set_defaults(run=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    from tinygpt.plots import plot_loss_curves

    print(f"wrote {plot_loss_curves(args.run_dir, args.out)}")
    return 0


# attention ------------------------------------------------------------------------------


def add_attention_parser(sub: Any) -> None:
    from tinygpt.cli import _add_checkpoint_flags, nonnegative_int

    p = sub.add_parser(
        "attention",
        help="draw each head's attention over a prompt to a PNG",
        description="Heat maps of every head of one layer: which earlier characters each character "
        "reads (needs pip install 'tinygpt[plot]').",
    )
    _add_checkpoint_flags(p)
    p.add_argument("--prompt", required=True, help="the text to look at (at most block_size characters)")
    p.add_argument("--layer", type=nonnegative_int, default=0, help="which block, from 0")
    p.add_argument("--out", metavar="FILE.png", required=True, help="where to write the picture")
    p.set_defaults(run=cmd_attention)


def cmd_attention(args: argparse.Namespace) -> int:
    from tinygpt.cli import _load
    from tinygpt.plots import plot_attention

    ckpt = _load(args)
    print(f"wrote {plot_attention(ckpt.model, ckpt.tokenizer, args.prompt, args.layer, args.out)}")
    return 0
