"""``tinygpt export``: a checkpoint as a Hugging Face GPT-2 directory (config.json, model.safetensors, tokenizer)."""

from __future__ import annotations

import argparse
from typing import Any

from tinygpt.checkpoint import save_gpt2
from tinygpt.cli.args import add_checkpoint_flags, load


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write a checkpoint as a Hugging Face GPT-2 directory",
        description="Write DIR so that transformers.GPT2LMHeadModel.from_pretrained(DIR) and "
        "AutoTokenizer.from_pretrained(DIR) load the model and its tokenizer.",
    )
    add_checkpoint_flags(p)
    p.add_argument(
        "--out",
        metavar="DIR",
        required=True,
        help="directory to write the export's files into (any other file there is kept)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    ckpt = load(args)
    out = save_gpt2(args.out, ckpt.model, ckpt.tokenizer)
    print(
        f"exported {ckpt.path} to {out}; load it with transformers.GPT2LMHeadModel.from_pretrained({str(out)!r})"
    )
    return 0
