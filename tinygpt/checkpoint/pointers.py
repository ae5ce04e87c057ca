"""Pointers: how a run directory names its ``latest`` and ``best`` checkpoints, and how a path resolves.

    RUN/latest.json   {"checkpoint": "checkpoints/step-0000500"}   the newest checkpoint (resume starts here)
    RUN/best.json     {"checkpoint": "checkpoints/step-0000250"}   the lowest validation loss so far

A pointer is replaced atomically (``write_pointer``: a reader sees the old one or
the new one) and may only name a checkpoint inside its run. ``resolve_checkpoint``
turns what a user typed (a checkpoint, a run directory, a model directory) into
the directory to read. ``training.RunDirectory`` decides when a pointer moves.
"""

from __future__ import annotations

import os
from pathlib import Path

from tinygpt import files
from tinygpt.checkpoint.directory import read_json
from tinygpt.errors import CheckpointError

POINTERS = ("latest", "best")
POINTER_MAX_BYTES = 64 << 10


def write_pointer(run_dir: Path, which: str, checkpoint: Path) -> None:
    """Point ``run_dir/<which>.json`` at ``checkpoint`` (a directory inside ``run_dir``), atomically."""
    files.write_json_atomic(
        run_dir / f"{which}.json", {"checkpoint": checkpoint.relative_to(run_dir).as_posix()}
    )


def read_pointer(run_dir: Path, which: str) -> Path:
    """The checkpoint directory ``run_dir/<which>.json`` names (it need not exist any more)."""
    pointer = run_dir / f"{which}.json"
    try:
        target = read_json(run_dir, pointer.name, POINTER_MAX_BYTES, "the run directory")["checkpoint"]
    except (CheckpointError, KeyError, TypeError):
        raise CheckpointError(f"{pointer} is corrupt; point --checkpoint at a checkpoint directory") from None
    parts = Path(target).parts if isinstance(target, str) else ()
    if not parts or Path(target).is_absolute() or ".." in parts:
        raise CheckpointError(
            f"{pointer} names {target!r}, which is not a checkpoint inside the run directory; "
            "point --checkpoint at a checkpoint directory"
        )
    return run_dir / target


def resolve_checkpoint(path: str | os.PathLike[str], which: str = "best") -> Path:
    """The directory to read, given a checkpoint or model directory (itself) or a run directory (its ``which``)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint path {path} does not exist")
    if (path / "config.json").exists():
        return path
    pointer = path / f"{which}.json"
    if pointer.exists():
        checkpoint = read_pointer(path, which)
        for _ in range(8):
            if checkpoint.exists():
                return checkpoint
            # A kill between save_checkpoint's two renames leaves the previous version aside.
            for moved in files.moved_aside(checkpoint):
                if (moved / "config.json").exists():
                    return moved
            # A run training meanwhile may have moved the pointer on and pruned what it named.
            moved_on = read_pointer(path, which)
            if moved_on == checkpoint:
                break
            checkpoint = moved_on
        target = checkpoint.relative_to(path).as_posix()
        raise CheckpointError(
            f"{pointer} points to {target}, which does not exist; the run directory was "
            "edited: point --checkpoint at a checkpoint inside it"
        )
    raise CheckpointError(
        f"{path} is neither a checkpoint (no config.json) nor a run directory (no {which}.json); "
        "give the --out directory of `tinygpt train` or a checkpoint inside it"
    )
