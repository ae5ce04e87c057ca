"""One rank of a test run under ``mpiexec``: ``python mpi_rank.py ARGS`` is ``tinygpt ARGS`` plus test hooks.

Hooks (environment variables; RANK:STEP means "on rank RANK, just before step STEP"):

    TINYGPT_TEST_WRITES=DIR      record every file-system write below DIR into DIR/../writes.rank<R>.json
    TINYGPT_TEST_FAIL=RANK:STEP  raise RuntimeError there (a crash of one rank)
    TINYGPT_TEST_KILL=RANK:STEP  SIGKILL the rank there (killed by the OOM killer, say)
    TINYGPT_TEST_HANG=RANK:STEP  sleep forever there (a rank that hangs)
    TINYGPT_TEST_DRIFT=RANK:STEP nudge one weight there (a rank whose parameters drift apart)
    TINYGPT_TEST_STEP_DELAY=S    sleep S seconds before every step (time to send a signal mid-run)
    TINYGPT_TEST_IN_MEMORY_BYTES=N  a --text file over N bytes is prepared into the cache (default 16 MB)
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import time
from pathlib import Path


def _rank() -> int:
    return int(os.environ.get("PMI_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or 0)


def _record_writes(root: Path) -> None:
    """An audit hook that notes every write, creation, rename or deletion of a path below ``root``."""
    root = root.resolve()
    writes: list[str] = []
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    path_events = {"os.remove", "os.rmdir", "os.mkdir", "os.rename", "shutil.rmtree", "os.truncate"}

    def below(path: object) -> bool:
        if not isinstance(path, str | bytes | os.PathLike):
            return False
        try:
            return Path(os.fsdecode(path)).resolve().is_relative_to(root)
        except (OSError, ValueError):
            return False

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(flags & write_flags)
            if writing and below(path):
                writes.append(f"open {path}")
        elif event in path_events and any(below(a) for a in args[:2]):
            writes.append(f"{event} {args[0]}")

    sys.addaudithook(hook)
    out = root.parent / f"writes.rank{_rank()}.json"
    atexit.register(lambda: out.write_text(json.dumps(writes)))


def _at_step(variable: str, action) -> None:
    """Run ``action(trainer)`` on the rank and step ``variable`` names, by wrapping the trainer's step."""
    rank, step = map(int, os.environ[variable].split(":"))
    if rank != _rank():
        return
    from tinygpt.training.loop import LanguageModelTrainer

    original = LanguageModelTrainer.train_step

    def train_step(self, *args, **kwargs):
        if self.step == step:
            action(self)
        return original(self, *args, **kwargs)

    LanguageModelTrainer.train_step = train_step


def _delay_steps(seconds: float) -> None:
    from tinygpt.training.loop import LanguageModelTrainer

    original = LanguageModelTrainer.train_step

    def train_step(self, *args, **kwargs):
        time.sleep(seconds)
        return original(self, *args, **kwargs)

    LanguageModelTrainer.train_step = train_step


def _crash(trainer) -> None:
    raise RuntimeError("injected failure for the test")


def _nudge(trainer) -> None:
    p = trainer.model.parameters()[-1]
    p.data = p.data * 1.001


if __name__ == "__main__":
    if os.environ.get("TINYGPT_TEST_WRITES"):
        _record_writes(Path(os.environ["TINYGPT_TEST_WRITES"]))
    if os.environ.get("TINYGPT_TEST_FAIL"):
        _at_step("TINYGPT_TEST_FAIL", _crash)
    if os.environ.get("TINYGPT_TEST_KILL"):
        _at_step("TINYGPT_TEST_KILL", lambda trainer: os.kill(os.getpid(), signal.SIGKILL))
    if os.environ.get("TINYGPT_TEST_HANG"):
        _at_step("TINYGPT_TEST_HANG", lambda trainer: time.sleep(3600))
    if os.environ.get("TINYGPT_TEST_DRIFT"):
        _at_step("TINYGPT_TEST_DRIFT", _nudge)
    if os.environ.get("TINYGPT_TEST_STEP_DELAY"):
        _delay_steps(float(os.environ["TINYGPT_TEST_STEP_DELAY"]))
    if os.environ.get("TINYGPT_TEST_IN_MEMORY_BYTES"):
        from tinygpt.datasets import cache

        cache.IN_MEMORY_BYTES = int(os.environ["TINYGPT_TEST_IN_MEMORY_BYTES"])
    from tinygpt.cli import main

    sys.exit(main(sys.argv[1:]))
