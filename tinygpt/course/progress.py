"""A student's progress, kept beside their exercises in ``DIR/.tinygpt-course.json``.

The file lives in the folder the student works in (the one ``tinygpt course
start --dir`` wrote to), so it travels with their work and a class folder
shows each student's own. It records when each exercise was started, last
checked and passed (with the SHA-256 of the file that passed, so an edit after
passing shows). It is written atomically; a damaged or foreign file is
reported, never overwritten and never a crash.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinygpt.course.exercise import Exercise
from tinygpt.course.sandbox import SUFFIXES
from tinygpt.errors import TinyGPTError
from tinygpt.files import parse_json, write_json_atomic

FILENAME = ".tinygpt-course.json"
FORMAT = "tinygpt-course-progress"
VERSION = 1


def student_file(folder: Path, exercise: Exercise) -> Path | None:
    """The student's file for ``exercise`` in ``folder``: ``NAME.py``, else ``NAME.ipynb``, else None."""
    for suffix in SUFFIXES:
        candidate = folder / f"{exercise.name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


class ProgressError(TinyGPTError):
    """The progress file exists but is not one this version of tinygpt wrote."""


def now() -> str:
    """The time as an ISO-8601 string to the second, with the local offset."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Status:
    """Where a student stands on one exercise."""

    state: str  # "not started", "started", "passed", "passed, changed since"
    file: Path | None
    started: str | None = None
    passed: str | None = None
    last_checked: str | None = None
    last_result: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.state,
            "file": None if self.file is None else str(self.file),
            "started": self.started,
            "passed": self.passed,
            "last_checked": self.last_checked,
            "last_result": self.last_result,
        }


class Progress:
    """The progress file of one folder: read once, updated and written atomically."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / FILENAME
        self.problem: str | None = None  # why the file could not be read (then it is never written)
        self.entries: dict[str, dict[str, Any]] = {}
        try:
            self.entries = self._read()
        except ProgressError as exc:
            self.problem = str(exc)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ProgressError(f"cannot read {self.path}: {exc}") from None
        parsed = parse_json(data, self.path, ProgressError, "a tinygpt course progress file")
        if not isinstance(parsed, dict) or parsed.get("format") != FORMAT:
            raise ProgressError(f"{self.path} is not a tinygpt course progress file")
        if parsed.get("version") != VERSION:
            raise ProgressError(
                f"{self.path} has version {parsed.get('version')!r}; this tinygpt reads {VERSION}"
            )
        entries = parsed.get("exercises")
        if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
            raise ProgressError(f"{self.path}: 'exercises' must map names to records")
        return entries

    def warning(self) -> str | None:
        """A line for the student when the file is damaged: progress is not recorded until it is moved away."""
        if self.problem is None:
            return None
        return f"{self.problem}; progress is not being recorded: move the file away to start a fresh one"

    def status(self, exercise: Exercise) -> Status:
        entry = self.entries.get(exercise.name, {})
        path = student_file(self.folder, exercise)
        started = _text(entry.get("started"))
        passed = _text(entry.get("passed"))
        state = "not started" if path is None and started is None else "started"
        if passed is not None:
            state = "passed"
            sha = entry.get("passed_sha256")
            if path is not None and isinstance(sha, str) and _safe_hash(path) not in (sha, None):
                state = "passed, changed since"
        return Status(
            state, path, started, passed, _text(entry.get("last_checked")), _text(entry.get("last_result"))
        )

    def record_start(self, exercise: Exercise, path: Path) -> None:
        entry = self.entries.setdefault(exercise.name, {})
        entry["started"] = now()
        entry["file"] = path.name
        self._write()

    def record_check(self, exercise: Exercise, path: Path, passed: bool, summary: str) -> None:
        entry = self.entries.setdefault(exercise.name, {})
        entry.setdefault("started", now())
        entry["file"] = path.name
        entry["last_checked"] = now()
        entry["last_result"] = summary
        if passed:
            entry["passed"] = entry["last_checked"]
            entry["passed_sha256"] = _safe_hash(path)
        self._write()

    def _write(self) -> None:
        if self.problem is not None:
            return  # never overwrite a file we cannot read: it may be someone's
        write_json_atomic(self.path, {"format": FORMAT, "version": VERSION, "exercises": self.entries})


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _safe_hash(path: Path) -> str | None:
    try:
        return file_hash(path)
    except OSError:
        return None
