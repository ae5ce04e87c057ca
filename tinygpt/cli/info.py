"""``tinygpt info``: parameters per layer, FLOPs and memory of a checkpoint's model."""

from __future__ import annotations

import argparse
from typing import Any

from tinygpt.cli.args import add_checkpoint_flags, load, positive_int


def add_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="parameters, FLOPs and memory of a checkpoint's model")
    add_checkpoint_flags(p)
    p.add_argument("--batch-size", type=positive_int, default=12, help="batch for the memory estimate")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(load(args).model.summary(batch_size=args.batch_size))
    return 0
