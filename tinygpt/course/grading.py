"""Running an exercise's checks on a student's file, in order, stopping at the first failure.

This runs inside the sandbox's child process (``tinygpt.course.sandbox``): it
reports each step as an event (a JSON-able dict) through ``emit``, so the
parent always knows which check is running and can time it out.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinygpt.course.errors import CheckFailed
from tinygpt.course.exercise import Exercise
from tinygpt.course.student import MEMORY_HINT, Student
from tinygpt.course.verdict import LOADING

Emit = Callable[[dict[str, Any]], None]


def grade(
    exercise: Exercise, path: Path, display: str, emit: Emit, memory_limit: str, milestones: bool = True
) -> bool:
    """Load the student's file, then run every check until one fails; True if all passed.

    Without ``milestones`` the integration milestone is skipped (``check --no-milestone``).

    Events: ``{"event": "start", "index": i}`` before step i (0 is loading the
    file), then ``{"event": "passed", "index": i, "seconds": s, "note": ...}`` or
    ``{"event": "failed", "index": i, "seconds": s, "message": ..., "hint": ...}``;
    finally ``{"event": "done"}``.
    """
    steps: list[tuple[int, str, Callable[[], Any]]] = []
    holder: dict[str, Student] = {}

    def load() -> None:
        holder["student"] = Student.load(path, display, memory_limit)

    steps.append((0, LOADING, load))
    for i, check in enumerate(exercise.checks, start=1):
        if check.kind == "milestone" and not milestones:
            continue

        def run_check(run: Callable[[Student], str | None] = check.run) -> str | None:
            return run(holder["student"])

        steps.append((i, check.title, run_check))
    passed = True
    for index, title, run in steps:
        emit({"event": "start", "index": index})
        start = time.perf_counter()
        try:
            note = run()
        except CheckFailed as exc:
            emit(_failed(index, start, exc.message, exc.hint))
            passed = False
            break
        except MemoryError:
            emit(
                _failed(index, start, f"'{title}' ran out of memory", MEMORY_HINT.format(limit=memory_limit))
            )
            passed = False
            break
        except Exception as exc:  # the check could not read what the student's code returned
            emit(_failed(index, start, *_check_crashed(title, exc)))
            passed = False
            break
        except BaseException as exc:  # SystemExit or KeyboardInterrupt raised where no call caught it
            emit(_failed(index, start, f"'{title}' was stopped by {type(exc).__name__}", _STOPPED))
            passed = False
            break
        emit(
            {
                "event": "passed",
                "index": index,
                "seconds": time.perf_counter() - start,
                "note": note if isinstance(note, str) else "",
            }
        )
    emit({"event": "done"})
    return passed


_STOPPED = "your code calls sys.exit() or exit() somewhere the check reaches: return values instead"


def _failed(index: int, start: float, message: str, hint: str) -> dict[str, Any]:
    return {
        "event": "failed",
        "index": index,
        "seconds": time.perf_counter() - start,
        "message": message,
        "hint": hint,
    }


def _check_crashed(title: str, exc: Exception) -> tuple[str, str]:
    """A check raised something other than CheckFailed: most often it met a result it did not expect."""
    last = traceback.extract_tb(exc.__traceback__)[-1]
    return (
        f"'{title}' could not use what your code returned: {type(exc).__name__}: {exc}",
        f"return what the starter's docstring describes (types and shapes); if it does, this is a bug in the "
        f"grader at {Path(last.filename).name}:{last.lineno}: please report it",
    )
