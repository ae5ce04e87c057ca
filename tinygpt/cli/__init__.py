"""The ``tinygpt`` command line: one module per command, shared flags in ``args``.

Bad input never shows a traceback: every flag checks its range, and errors
from the library (``TinyGPTError``) print as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tinygpt.cli import attention, evaluate, info, plot, sample, train, vision
from tinygpt.cli.args import Parser
from tinygpt.errors import TinyGPTError
from tinygpt.training import TrainingInterrupted

COMMANDS = (train, sample, evaluate, info, vision, plot, attention)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tinygpt", description="A small, real GPT: train on Shakespeare, then sample.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tinygpt`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except TrainingInterrupted as exc:
        print(f"tinygpt: {exc}", file=sys.stderr)
        return exc.exit_code
    except TinyGPTError as exc:
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
