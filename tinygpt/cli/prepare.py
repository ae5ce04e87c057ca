"""``tinygpt prepare``: tokenize a corpus once into a dataset directory that ``train --data`` memory-maps."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Any

from tinygpt import backend
from tinygpt.cli.args import flag_type, positive_int
from tinygpt.data import CORPORA
from tinygpt.datasets import prepare_dataset
from tinygpt.datasets.prepare import DEFAULT_BPE_VOCAB, TOKENIZERS
from tinygpt.settings import OPEN_FRACTION


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "prepare",
        help="tokenize a corpus once into DATA_DIR (train --data DATA_DIR memory-maps it)",
        description="Tokenize a text file of any size into DATA_DIR: manifest.json, tokenizer.json, train.bin, "
        "val.bin. The text is read in chunks (twice: a scan, then the encoding), never whole, and the "
        "directory appears only when complete.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", metavar="PATH", help="a UTF-8 text file")
    source.add_argument("--corpus", choices=CORPORA, help="a built-in corpus")
    p.add_argument("--out", metavar="DATA_DIR", required=True, help="the dataset directory to create")
    p.add_argument(
        "--tokenizer",
        choices=TOKENIZERS,
        default="char",
        help="char: one token per character of the text; bpe: byte-level BPE learned from the training part "
        "(default: char)",
    )
    p.add_argument(
        "--vocab-size",
        type=positive_int,
        help=f"BPE vocabulary size, bytes and <|endoftext|> included (default: {DEFAULT_BPE_VOCAB})",
    )
    p.add_argument(
        "--val-fraction",
        type=flag_type(OPEN_FRACTION),
        default=0.1,
        help="last fraction of the text's characters held out for validation (default: %(default)s)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: on a terminal)",
    )
    p.set_defaults(run=run)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM (a batch system's stop) unwinds like Ctrl-C, so the temporary directory is removed."""

    def stop(signum: int, frame: Any) -> None:
        print("tinygpt prepare: stopped by SIGTERM; nothing was published", file=sys.stderr, flush=True)
        raise SystemExit(128 + signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    backend.tune_allocator()  # each 16 MB chunk reuses the last one's memory instead of page-faulting anew
    with _sigterm_unwinds():
        prepare_dataset(
            args.out,
            text=args.text,
            corpus=args.corpus,
            tokenizer=args.tokenizer,
            vocab_size=args.vocab_size,
            val_fraction=args.val_fraction,
            show_progress=args.progress,
        )
    print(f"train on it with: tinygpt train --data {args.out}")
    return 0
