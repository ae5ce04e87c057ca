"""The ``tinygpt`` command line: one module per command, shared flags in ``args``.

Bad input never shows a traceback: every flag checks its range, and errors
from the library (``TinyGPTError``) print as one line and exit with status 2.
Under ``mpiexec``, rank 0 alone prints them (every rank fails alike, or learns
which one failed).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tinygpt.cli import attention, course, evaluate, export, info, plot, prepare, sample, train, vision
from tinygpt.cli.args import Parser
from tinygpt.errors import TinyGPTError
from tinygpt.training import TrainingInterrupted, distributed

COMMANDS = (prepare, train, sample, evaluate, info, export, vision, plot, attention, course)
PARALLEL_COMMANDS = ("train", "eval")  # the others refuse to run as several processes


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tinygpt", description="A small, real GPT: train on Shakespeare, then sample.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tinygpt`` console script."""
    args = build_parser().parse_args(argv)
    ranks = distributed.launcher_size()
    if ranks > 1 and args.command not in PARALLEL_COMMANDS:
        distributed.report(
            f"tinygpt {args.command}: error: runs in one process, but mpiexec or srun started {ranks}; "
            f"run it without the launcher (only {' and '.join(PARALLEL_COMMANDS)} use several)",
            sys.stderr,
        )
        return 2
    try:
        try:
            return int(args.run(args))
        except BaseException as exc:
            distributed.settle_failure(exc)  # under MPI: the other ranks learn that this one failed
            raise
    except TrainingInterrupted as exc:
        distributed.report(f"tinygpt: {exc}", sys.stderr)
        return exc.exit_code
    except TinyGPTError as exc:
        distributed.report(f"tinygpt {args.command}: error: {exc}", sys.stderr)
        return 2
    except KeyboardInterrupt:
        distributed.report("tinygpt: interrupted", sys.stderr)
        return 130
    except OSError as exc:  # the environment, not the input: a full disk, a path that is a file
        if isinstance(exc, BrokenPipeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        distributed.report(f"tinygpt {args.command}: error: {exc}", sys.stderr)
        return 1
