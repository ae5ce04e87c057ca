"""``tinygpt attention``: each head's attention over a prompt as a PNG (classroom)."""

from __future__ import annotations

import argparse
from typing import Any

from tinygpt.classroom.plots import plot_attention
from tinygpt.cli.args import add_checkpoint_flags, load, nonnegative_int


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "attention",
        help="draw each head's attention over a prompt to a PNG",
        description="Heat maps of every head of one layer: which earlier characters each character "
        "reads (needs pip install 'tinygpt[plot]').",
    )
    add_checkpoint_flags(p)
    p.add_argument("--prompt", required=True, help="the text to look at (at most block_size characters)")
    p.add_argument("--layer", type=nonnegative_int, default=0, help="which block, from 0")
    p.add_argument("--out", metavar="FILE.png", required=True, help="where to write the picture")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    ckpt = load(args)
    print(f"wrote {plot_attention(ckpt.model, ckpt.tokenizer, args.prompt, args.layer, args.out)}")
    return 0
