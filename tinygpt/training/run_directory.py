"""The run directory: everything ``tinygpt train --out DIR`` writes, and nothing it did not.

    DIR/run.json          marks DIR as a tinygpt run; lists the checkpoints this run wrote
    DIR/metrics.jsonl     one JSON line per evaluation
    DIR/latest.json       pointer to the newest checkpoint (resume starts here)
    DIR/best.json         pointer to the checkpoint with the lowest validation loss
    DIR/checkpoints/      step-NNNNNNN/ checkpoint directories

A training run deletes old checkpoints to save disk, so it must know which ones
are its own: a checkpoint is recorded in ``run.json`` *before* it is written,
and pruning only ever removes recorded checkpoints that no pointer needs. A
copy the user made (``cp -a checkpoints/step-0000030 checkpoints/keep``) or a
folder that was there before is never touched. A new run refuses a directory
that holds anything it did not create, and says what it found.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX (Windows): no lock, one process per run is then the user's care
    fcntl = None  # type: ignore[assignment]

from tinygpt.checkpoint import POINTERS, read_pointer, resolve_checkpoint, save_checkpoint, write_pointer
from tinygpt.checkpoint.directory import read_json
from tinygpt.errors import CheckpointError, ConfigError
from tinygpt.files import listing, write_bytes_atomic, write_json_atomic

RUN_FILE = "run.json"
RUN_FORMAT = "tinygpt-run"
RUN_VERSION = 1
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
LOCK = "run.lock"
# Files a run writes at the top of its directory (pointers are "<which>.json").
_OWN_FILES = {RUN_FILE, METRICS, LOCK, CHECKPOINTS, *(f"{p}.json" for p in POINTERS)}


class RunDirectory:
    """The ``--out`` directory of one training run: checkpoints, pointers, metrics.

    ``start()`` claims a directory for a new run, ``resume()`` reopens one;
    afterwards ``save()`` writes a checkpoint and points ``latest`` at it,
    ``publish("best", path)`` moves the best pointer, and ``log()`` appends metrics.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._recorded: list[str] = []
        self._lock_fd: int | None = None
        self.opened = False  # by start() or resume(), once per run

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    # One writer ---------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[RunDirectory]:
        """Hold the run's lock for the block; refuse at once if another process holds it."""
        if self._lock_fd is not None:  # already ours: re-entrant within this object
            yield self
            return
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {self.path} is a file, not a directory; choose another --out")
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock_fd = self._acquire()
        except BaseException:
            if created:
                _remove_if_empty(self.path)
            raise
        try:
            yield self
        finally:
            (self.path / LOCK).unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None
            if created:
                _remove_if_empty(self.path)

    def _acquire(self) -> int:
        lock = self.path / LOCK
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)  # the umask decides, as for every file
            if fcntl is None:
                return fd
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise ConfigError(
                    f"{self.path} is in use by another tinygpt process ({holder}); one process per run "
                    "directory: wait for it to finish or stop it, or choose another --out"
                ) from None
            try:  # the holder we waited on may have unlinked the file: lock the one at the path
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}, since {stamp}\n".encode())
        return fd

    # Opening -----------------------------------------------------------------------
    def holds_run(self) -> bool:
        """True when a run has published a checkpoint here (``latest.json`` exists)."""
        return (self.path / "latest.json").exists()

    def check_new(self) -> None:
        """Raise ``ConfigError`` unless a new run may start here (changes nothing)."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {self.path} is a file, not a directory; choose another --out")
        if self.holds_run():
            raise ConfigError(
                f"{self.path} already holds a run; pass --resume to continue it, or choose another --out "
                "(nothing was overwritten)"
            )
        foreign = self.foreign_entries()
        if foreign:
            raise ConfigError(
                f"{self.path} is not empty and holds files tinygpt did not write "
                f"({listing(foreign)}); choose an empty or new --out directory (nothing was changed)"
            )

    def start(self) -> None:
        """Claim the directory for a new run; refuse one that holds a run or anything foreign."""
        self.check_new()
        self.path.mkdir(parents=True, exist_ok=True)
        # What is left is a run of ours that never published a checkpoint: start it over.
        self._recorded = self._read_recorded()
        for name in self._recorded:
            self._remove_checkpoint(name)
        (self.path / METRICS).unlink(missing_ok=True)
        self._recorded = []
        self._write_recorded()
        self.opened = True

    def resume(self) -> Path:
        """Reopen a run for ``--resume``; returns its latest checkpoint directory."""
        if not self.holds_run():
            raise ConfigError(
                f"--resume: {self.path} holds no run to continue (no latest.json); drop --resume to start one"
            )
        latest = resolve_checkpoint(self.path, "latest")
        if (self.path / RUN_FILE).exists():
            self._recorded = self._read_recorded()
        else:  # a run from tinygpt 0.1: adopt only the checkpoints its pointers name
            self._recorded = sorted(_names(self._referenced() or set()))
            self._write_recorded()
        self.opened = True
        return latest

    def foreign_entries(self) -> list[str]:
        """Paths (relative to the run directory) that no tinygpt run of this directory wrote."""
        if not self.path.is_dir():
            return []
        is_run = (self.path / RUN_FILE).exists() or self.holds_run()
        recorded = set(self._read_recorded()) | _names(self._referenced() or set())
        foreign = []
        for child in sorted(self.path.iterdir()):
            name = child.name
            if name == CHECKPOINTS and child.is_dir() and not child.is_symlink():
                foreign += [
                    f"{CHECKPOINTS}/{c.name}"
                    for c in sorted(child.iterdir())
                    if not _is_own_checkpoint_entry(c.name, recorded)
                ]
            elif name == METRICS and not is_run:
                foreign.append(name)
            elif name not in _OWN_FILES and not _is_pointer_temp(name):
                foreign.append(name)
        return foreign

    # Checkpoints -----------------------------------------------------------------------
    def save(
        self,
        step: int,
        model: Any,
        tokenizer: Any,
        optimizer_state: dict[str, Any] | None = None,
        trainer_state: dict[str, Any] | None = None,
    ) -> Path:
        """Write the checkpoint of ``step`` and make it the run's latest."""
        name = f"step-{step:07d}"
        path = self.path / CHECKPOINTS / name
        if name not in self._recorded:  # recorded first: a kill mid-write leaves only our own debris
            if path.exists() or path.is_symlink():
                raise CheckpointError(
                    f"{path} exists, but this run did not write it (run.json does not list it); refusing "
                    "to replace it: move it out of the run directory, then resume"
                )
            self._recorded.append(name)
            self._write_recorded()
        path = save_checkpoint(path, model, tokenizer, optimizer_state, trainer_state)
        self.publish("latest", path)
        return path

    def publish(self, which: str, checkpoint: Path) -> None:
        """Point ``which`` (latest or best) at ``checkpoint``, then prune checkpoints of ours nothing needs."""
        write_pointer(self.path, which, checkpoint)
        leftovers = [*self.path.glob(".*.json.*.tmp"), *self.path.glob(f".{METRICS}.*.tmp")]
        for leftover in leftovers:  # pointer and metrics writes cut short by a kill
            leftover.unlink(missing_ok=True)
        self.prune()

    def prune(self) -> None:
        """Delete recorded checkpoints that neither pointer references (never anything unrecorded)."""
        referenced = self._referenced()
        if referenced is None:
            return  # cannot tell what an unreadable pointer needs: delete nothing
        keep = []
        for name in self._recorded:
            if f"{CHECKPOINTS}/{name}" in referenced:
                keep.append(name)
            else:
                self._remove_checkpoint(name)
        if keep != self._recorded:
            self._recorded = keep
            self._write_recorded()

    # Metrics -----------------------------------------------------------------------------
    def log(self, record: dict[str, Any]) -> None:
        """Append one evaluation record to ``metrics.jsonl``."""
        with open(self.path / METRICS, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def trim_metrics(self, before_step: int) -> None:
        """Forget records from ``before_step`` on (a resumed run logs them again)."""
        path = self.path / METRICS
        if not path.exists():
            return
        kept = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                step = json.loads(line)["iter"]
            except (ValueError, KeyError, TypeError, IndexError, RecursionError):
                continue  # a line cut short by a kill, or not ours
            if type(step) is int and step < before_step:
                kept.append(line)
        # Rewritten aside and renamed, so a kill during the rewrite cannot lose the earlier lines.
        write_bytes_atomic(path, "".join(k + "\n" for k in kept).encode("utf-8"))

    # Internals -----------------------------------------------------------------------------
    def _read_recorded(self) -> list[str]:
        file = self.path / RUN_FILE
        if not file.exists():
            return []
        data = read_json(self.path, RUN_FILE, 1 << 20, "the run directory")
        names = data.get("checkpoints") if isinstance(data, dict) else None
        if (
            not isinstance(data, dict)
            or data.get("format") != RUN_FORMAT
            or not isinstance(names, list)
            or not all(isinstance(n, str) and _is_checkpoint_name(n) for n in names)
        ):
            raise CheckpointError(f"{file} is not a tinygpt run file; the run directory is damaged")
        return list(names)

    def _write_recorded(self) -> None:
        write_json_atomic(
            self.path / RUN_FILE,
            {"format": RUN_FORMAT, "version": RUN_VERSION, "checkpoints": self._recorded},
        )

    def _referenced(self) -> set[str] | None:
        """Checkpoint paths the pointers name (relative, posix); None if a pointer is unreadable."""
        referenced = set()
        for which in POINTERS:
            if not (self.path / f"{which}.json").exists():
                continue
            try:
                referenced.add(read_pointer(self.path, which).relative_to(self.path).as_posix())
            except CheckpointError:
                return None
        return referenced

    def _remove_checkpoint(self, name: str) -> None:
        folder = self.path / CHECKPOINTS
        shutil.rmtree(folder / name, ignore_errors=True)
        for debris in (
            *folder.glob(f".{name}.*.tmp"),
            *folder.glob(f".{name}.*.old"),
            folder / f".{name}.old",
        ):
            shutil.rmtree(debris, ignore_errors=True)


def _holder(fd: int) -> str:
    """What the lock's holder wrote about itself (it may take a moment after its flock to write it)."""
    for _ in range(50):
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        if text:
            return text
        time.sleep(0.01)
    return "another process"


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()  # only succeeds when nothing is left in it


def _names(referenced: set[str]) -> set[str]:
    """Checkpoint folder names from pointer targets (``checkpoints/step-0000030`` -> ``step-0000030``)."""
    prefix = f"{CHECKPOINTS}/"
    return {
        r[len(prefix) :] for r in referenced if r.startswith(prefix) and _is_checkpoint_name(r[len(prefix) :])
    }


def _is_checkpoint_name(name: str) -> bool:
    return name.startswith("step-") and name[5:].isdigit() and "/" not in name


def _is_own_checkpoint_entry(name: str, recorded: set[str]) -> bool:
    """A checkpoint this run recorded, or the temporary / moved-aside copy ``save_checkpoint`` makes of one."""
    if name in recorded:
        return True
    if name.startswith("."):
        base = name[1:].split(".", 1)[0]
        return base in recorded and name.endswith((".tmp", ".old"))
    return False


def _is_pointer_temp(name: str) -> bool:
    """Temporary files of an atomic JSON write (``.latest.json.abc123.tmp``) or of a metrics rewrite."""
    own = {RUN_FILE, METRICS, *(f"{p}.json" for p in POINTERS)}
    if name == f".{METRICS}.tmp":  # the fixed name tinygpt 0.1 rewrote metrics through
        return True
    return name.startswith(".") and name.endswith(".tmp") and any(name.startswith(f".{j}.") for j in own)
