"""``tinygpt vision``: an image classifier made of TinyGPT's parts (classroom)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tinygpt.classroom.vision import train_digits
from tinygpt.cli.args import add_backend_flags, nonnegative_int, positive_float, positive_int, select_backend


def add_parser(sub: Any) -> None:
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
    add_backend_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    select_backend(args)
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
