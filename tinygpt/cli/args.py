"""What the commands share: one-line argument errors, flags made from config settings, backend and checkpoint flags,
model text made safe for a terminal.

Flags of ``GPTConfig`` and ``TrainConfig`` fields are generated from the
fields' declarations (``tinygpt.settings``), so a default, range or help text
is written once, beside the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TextIO

from tinygpt import backend
from tinygpt.checkpoint import Checkpoint, load_checkpoint
from tinygpt.data import CORPORA, load_corpus
from tinygpt.errors import ConfigError
from tinygpt.settings import NONNEGATIVE_INT, OPEN_FRACTION, POSITIVE_FLOAT, POSITIVE_INT, Rule, flag_of
from tinygpt.training import distributed


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``tinygpt train: error: argument --lr: ...``."""

    def error(self, message: str) -> NoReturn:
        text = f"{self.prog}: error: {message} (see {self.prog} --help)\n"
        self.exit(2, text if distributed.launcher_rank() == 0 else None)  # under mpiexec, once


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


class Given(argparse.Action):
    """Store the value and remember that the user gave this flag (``given(args)``).

    Resuming a run must tell "--val-fraction 0.1 typed now" from "0.1 because nothing was typed".
    """

    def __call__(
        self, parser: Any, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


def given(args: argparse.Namespace) -> set[str]:
    """The destinations of the ``Given`` flags the user typed."""
    return set(getattr(args, "given", ()))


def add_settings(group: Any, config_class: type, skip: tuple[str, ...] = ()) -> None:
    """One flag per ``setting`` field of ``config_class``: its name, type, default, choices and help."""
    for field in dataclasses.fields(config_class):
        rule: Rule | None = field.metadata.get("rule")
        if rule is None or field.name in skip:
            continue
        options: dict[str, Any] = {
            "dest": field.name,
            "help": field.metadata["help"] + " (default: %(default)s)",
            "action": Given,
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
    """The backend the flags name, else the one the environment names; errors name what was typed."""
    name, device = getattr(args, "backend", None), getattr(args, "device", None)
    if name or device:
        return backend.use_typed(name, device)
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


# Control characters (C0 but newline and tab, DEL, C1) as visible escapes: text a model writes must
# not drive the terminal it is shown on (an ESC sequence can move the cursor, recolour, retitle).
_VISIBLE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (0x09, 0x0A)}


def for_terminal(text: str, stream: TextIO) -> str:
    """``text`` with control characters shown as ``\\x1b``-style escapes when ``stream`` is a terminal.

    Files and pipes get the text exactly as the model wrote it.
    """
    return text.translate(_VISIBLE) if stream.isatty() else text


def load(args: argparse.Namespace) -> Checkpoint:
    """The checkpoint ``--checkpoint``/``--which`` name, loaded on the selected backend."""
    select_backend(args)
    return load_checkpoint(args.checkpoint, which=args.which)


def add_data_flags(p: argparse.ArgumentParser, default_corpus: str | None) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--corpus",
        choices=CORPORA,
        default=default_corpus,
        action=Given,
        help="built-in corpus (default: %(default)s; on resume and eval: what the run recorded)",
    )
    group.add_argument(
        "--text",
        metavar="PATH",
        action=Given,
        help="any UTF-8 text file instead (one over 16 MB is prepared once into $TINYGPT_CACHE and memory-mapped)",
    )
    group.add_argument(
        "--data",
        metavar="DIR",
        action=Given,
        help="a dataset tinygpt prepare wrote: its tokenizer and split, its tokens memory-mapped (any size)",
    )
    p.add_argument(
        "--val-fraction",
        type=flag_type(OPEN_FRACTION),
        default=0.1,
        action=Given,
        help="last fraction of the text held out (default: %(default)s; on resume and eval: what the run recorded)",
    )


def load_text(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The text ``--corpus``/``--text`` name, and how to find it again (recorded in checkpoints)."""
    text = load_corpus(args.corpus, args.text)
    source = {"text": str(Path(args.text).resolve())} if args.text else {"corpus": args.corpus}
    return text, {**source, "val_fraction": args.val_fraction, "sha256": text_sha256(text)}


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def recorded_text(
    args: argparse.Namespace, recorded: dict[str, Any], strict: bool
) -> tuple[str, dict[str, Any]]:
    """The text and split a run recorded (``trainer.json``'s ``data``), for resume (strict) or eval.

    Flags the user typed win in eval; in a resume (``strict``) a flag that disagrees with the
    recording is refused with both values, so a run never silently changes its data.
    """
    typed = given(args)
    if not recorded:  # a run from before tinygpt recorded its data: the flags it is
        return load_text(args)
    fraction = recorded.get("val_fraction", 0.1)
    if "val_fraction" in typed and args.val_fraction != fraction:
        if strict:
            raise ConfigError(
                f"--val-fraction {args.val_fraction} conflicts with the run, which holds out {fraction}: "
                "changing it would move validation text into training; drop --val-fraction to resume"
            )
        fraction = args.val_fraction
    if typed & {"text", "corpus"} and not strict:
        text, info = load_text(args)
        return text, {**info, "val_fraction": fraction}
    where = recorded.get("text") or f"the {recorded.get('corpus', 'shakespeare')!r} corpus"
    if "text" in typed:
        text = load_corpus(None, args.text)
    elif "corpus" in typed:
        if args.corpus != recorded.get("corpus"):
            raise ConfigError(
                f"--corpus {args.corpus} conflicts with the run, which trained on {where}; "
                "drop --corpus to resume on the recorded text"
            )
        text = load_corpus(args.corpus, None)
    elif "text" in recorded:
        if not Path(recorded["text"]).exists():
            raise ConfigError(
                f"the run trained on {recorded['text']}, which no longer exists; if it moved, pass "
                "--text with its new path"
            )
        text = load_corpus(None, recorded["text"])
    else:
        text = load_corpus(recorded.get("corpus", "shakespeare"), None)
    digest = recorded.get("sha256")
    if digest is not None and text_sha256(text) != digest:
        given_path = f"--text {args.text}" if "text" in typed else where
        raise ConfigError(
            f"{given_path} is not the text the run trained on ({where}): its SHA-256 differs. "
            "Resume with the original text, or start a new run with --out elsewhere"
        )
    source: dict[str, Any] = {k: recorded[k] for k in ("text", "corpus") if k in recorded}
    if "text" in typed:
        source = {"text": str(Path(args.text).resolve())}
    return text, {**source, "val_fraction": fraction, "sha256": text_sha256(text)}
