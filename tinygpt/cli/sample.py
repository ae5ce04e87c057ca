"""``tinygpt sample``: generate text from a trained model."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tinygpt.cli.args import (
    add_checkpoint_flags,
    flag_type,
    load,
    nonnegative_int,
    positive_float,
    positive_int,
)
from tinygpt.generation import TextGeneration
from tinygpt.settings import TOP_P


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sample", help="generate text from a trained model")
    add_checkpoint_flags(p)
    p.add_argument("--prompt", default="", help="text to continue (default: start of a line)")
    p.add_argument("--max-new-tokens", type=nonnegative_int, default=500)
    p.add_argument("--temperature", type=positive_float, default=0.8)
    p.add_argument("--top-k", type=positive_int, default=None)
    p.add_argument("--top-p", type=flag_type(TOP_P), default=None)
    p.add_argument("--num-samples", type=positive_int, default=1)
    p.add_argument("--seed", type=nonnegative_int, default=None)
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context for every token")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    ckpt = load(args)
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
