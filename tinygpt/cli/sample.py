"""``tinygpt sample``: generate text from a trained model, streamed as it is made."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from tinygpt import backend
from tinygpt.cli.args import (
    add_checkpoint_flags,
    flag_type,
    for_terminal,
    load,
    nonnegative_int,
    positive_float,
    positive_int,
)
from tinygpt.generation import TextGeneration
from tinygpt.settings import TOP_P
from tinygpt.tokenizers import UNKNOWN_CHOICES

ESTIMATE_AFTER_S = 1.0  # measure the speed this long before saying how long the rest will take
ESTIMATE_FROM_S = 60.0  # say it only when the rest would take longer than this


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sample", help="generate text from a trained model")
    add_checkpoint_flags(p)
    p.add_argument("--prompt", default="", help="text to continue (default: start of a line)")
    p.add_argument("--max-new-tokens", type=nonnegative_int, default=500)
    p.add_argument("--temperature", type=positive_float, default=0.8)
    p.add_argument("--top-k", type=positive_int, default=None)
    p.add_argument("--top-p", type=flag_type(TOP_P), default=None)
    p.add_argument("--num-samples", type=positive_int, default=1, help="samples, each streamed as it is made")
    p.add_argument("--seed", type=nonnegative_int, default=None)
    p.add_argument(
        "--unknown",
        choices=UNKNOWN_CHOICES,
        default="error",
        help="prompt characters the model never saw: an error, skipped, or replaced by a space (default: error)",
    )
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context for every token")
    p.set_defaults(run=run)


def time_left(done: int, total: int, elapsed_s: float) -> str | None:
    """'about 3 min for the remaining 90,000 tokens' when the rest would take long, else None."""
    if done == 0 or elapsed_s < ESTIMATE_AFTER_S:
        return None
    rest = (total - done) * elapsed_s / done
    if rest < ESTIMATE_FROM_S:
        return None
    span = f"{rest / 3600:.1f} h" if rest >= 3600 else f"{rest / 60:.0f} min"
    return (
        f"tinygpt sample: about {span} for the remaining {total - done:,} tokens at {done / elapsed_s:.0f} "
        "tokens/s; Ctrl-C stops"
    )


def run(args: argparse.Namespace) -> int:
    ckpt = load(args)
    gen = TextGeneration(ckpt.model, ckpt.tokenizer)
    if gen.padded_ids:
        size = ckpt.tokenizer.vocab_size
        print(
            f"tinygpt sample: the model scores {ckpt.model.config.vocab_size:,} token ids but its tokenizer "
            f"has {size:,}; the {gen.padded_ids:,} ids from {size:,} on (vocabulary padding) are never sampled",
            file=sys.stderr,
            flush=True,
        )
    rng = backend.Generator(args.seed)  # one stream for all samples: --seed repeats them all
    options = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "rng": rng}
    prompt = ckpt.tokenizer.decode(gen.prompt_ids(args.prompt, args.unknown)) if args.prompt else ""
    total = args.max_new_tokens * args.num_samples
    done, start, estimated = 0, time.perf_counter(), False
    for i in range(args.num_samples):
        pieces = gen.stream(  # checks the prompt and options before anything is printed
            args.prompt, args.max_new_tokens, on_unknown=args.unknown, use_cache=not args.no_cache, **options
        )
        if args.num_samples > 1:
            sys.stdout.write(f"--- sample {i + 1} ---\n")
        sys.stdout.write(for_terminal(prompt, sys.stdout))
        for piece in pieces:
            sys.stdout.write(for_terminal(piece, sys.stdout))
            sys.stdout.flush()
            done += 1
            if not estimated:
                # One reading: two that straddled 1 s once marked the estimate said without saying it.
                elapsed = time.perf_counter() - start
                message = time_left(done, total, elapsed)
                if message is not None:
                    print(f"\n{message}", file=sys.stderr, flush=True)
                estimated = elapsed >= ESTIMATE_AFTER_S  # said now, or the rest is short: asked once
        sys.stdout.write("\n")
        sys.stdout.flush()
    return 0
