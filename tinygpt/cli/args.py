"""What the commands share: one-line argument errors, flags made from config settings, backend and checkpoint flags.

Flags of ``GPTConfig`` and ``TrainConfig`` fields are generated from the
fields' declarations (``tinygpt.settings``), so a default, range or help text
is written once, beside the field.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from tinygpt import backend
from tinygpt.checkpoint import Checkpoint, load_checkpoint, resolve_checkpoint
from tinygpt.data import CORPORA, load_corpus
from tinygpt.settings import NONNEGATIVE_INT, OPEN_FRACTION, POSITIVE_FLOAT, POSITIVE_INT, Rule, flag_of


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``tinygpt train: error: argument --lr: ...``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def flag_type(rule: Rule) -> Callable[[str], Any]:
    """An argparse ``type=`` that parses a flag by ``rule`` and names the rule when it fails."""

    def parse(text: str) -> Any:
        try:
            return rule.parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule.text}, got {text!r}") from None

    parse.__name__ = rule.text  # argparse shows it in "invalid <name> value" messages
    return parse


positive_int = flag_type(POSITIVE_INT)
nonnegative_int = flag_type(NONNEGATIVE_INT)
positive_float = flag_type(POSITIVE_FLOAT)


def add_settings(group: Any, config_class: type, skip: tuple[str, ...] = ()) -> None:
    """One flag per ``setting`` field of ``config_class``: its name, type, default, choices and help."""
    for field in dataclasses.fields(config_class):
        rule: Rule | None = field.metadata.get("rule")
        if rule is None or field.name in skip:
            continue
        options: dict[str, Any] = {
            "dest": field.name,
            "help": field.metadata["help"] + " (default: %(default)s)",
        }
        if field.default is not dataclasses.MISSING:
            options["default"] = field.default
        if rule.choices is not None:
            options["choices"] = rule.choices
        else:
            options["type"] = flag_type(rule)
        group.add_argument(flag_of(field), **options)


def settings_from(args: argparse.Namespace, config_class: type, **values: Any) -> Any:
    """Build ``config_class`` from the flags ``add_settings`` made (``values`` fill or override)."""
    names = {f.name for f in dataclasses.fields(config_class)}
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return config_class(**{**given, **values})


def add_backend_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend", choices=backend.BACKENDS, help="array library (default: $TINYGPT_BACKEND or numpy)"
    )
    devices = "; ".join(f"{name}: {lib.devices}" for name, lib in backend.LIBRARIES.items())
    p.add_argument("--device", help=f"device ({devices}; default: $TINYGPT_DEVICE)")


def select_backend(args: argparse.Namespace) -> backend.Backend:
    """The backend the flags name, else the one the environment names."""
    if getattr(args, "backend", None):
        return backend.use(args.backend, getattr(args, "device", None))
    return backend.current()


def add_checkpoint_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        metavar="DIR",
        required=True,
        help="run directory (its best checkpoint) or a checkpoint",
    )
    p.add_argument(
        "--which", choices=("best", "latest"), default="best", help="which checkpoint of a run directory"
    )
    add_backend_flags(p)


def load(args: argparse.Namespace) -> Checkpoint:
    """The checkpoint ``--checkpoint``/``--which`` name, loaded on the selected backend."""
    select_backend(args)
    return load_checkpoint(resolve_checkpoint(args.checkpoint, args.which))


def add_data_flags(p: argparse.ArgumentParser, default_corpus: str | None) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--corpus", choices=CORPORA, default=default_corpus, help="built-in corpus (default: %(default)s)"
    )
    group.add_argument("--text", metavar="PATH", help="train on any UTF-8 text file instead")
    p.add_argument(
        "--val-fraction",
        type=flag_type(OPEN_FRACTION),
        default=0.1,
        help="last fraction of the text held out",
    )


def load_text(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The text ``--corpus``/``--text`` name, and how to find it again (recorded in checkpoints)."""
    text = load_corpus(args.corpus, args.text)
    source = {"text": str(Path(args.text).resolve())} if args.text else {"corpus": args.corpus}
    return text, {**source, "val_fraction": args.val_fraction}
