"""What an exercise is: its description, its starter source and its checks, in teaching order.

Each exercise is a package ``tinygpt/course/exercises/NAME/``: ``__init__.py``
makes ``EXERCISE = Exercise(...)`` and registers its checks with the
``@EXERCISE.check(...)`` decorator (they run in the order they are written,
simple to deep); ``starter.py`` beside it is the student's starting file in
jupytext "percent" format, from which both the ``.py`` starter and the
``.ipynb`` notebook are made.

A check registered with ``stretch=True`` grades an optional part (the KV cache
of generation): while the student has not written it (the starter's
``NotImplementedError`` is still there) it passes with the note "skipped
(stretch): ..." instead of failing; once written, it is graded like any other.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tinygpt.course.errors import CheckFailed

if TYPE_CHECKING:
    from tinygpt.course.student import Student

CHECK_TIMEOUT_S = 20.0  # a unit check: well under the 30 s the issue allows
MILESTONE_TIMEOUT_S = 150.0  # an integration milestone: under 3 min on a 2-core laptop
CheckFn = Callable[["Student"], "str | None"]
KINDS = ("shape", "values", "edge", "property", "gradient", "milestone")
NOT_IMPLEMENTED = "not implemented yet: "  # how Student reports a body that still raises NotImplementedError
STRETCH_SKIPPED = "skipped (stretch)"


@dataclass(frozen=True)
class Check:
    """One check: ``run(student)`` returns on success and raises ``CheckFailed`` otherwise."""

    title: str
    run: Callable[[Student], str | None]  # an optional one-line note for the report (a milestone's losses)
    kind: str
    timeout: float
    stretch: bool = False  # optional: passes as "skipped (stretch)" while the student has not written it


@dataclass
class Exercise:
    """One exercise of the course: what it teaches, how long it takes, its starter and its checks."""

    name: str
    title: str
    teaches: str
    minutes: int
    checks: list[Check] = field(default_factory=list)

    def check(
        self, title: str, kind: str = "values", timeout: float | None = None, stretch: bool = False
    ) -> Callable[[CheckFn], CheckFn]:
        """Register the decorated function as the next check (``kind`` is one of ``KINDS``).

        ``stretch=True``: an optional part; not written yet, it is skipped with a note, not failed.
        """
        if kind not in KINDS:
            raise ValueError(f"check kind must be one of {KINDS}, got {kind!r}")
        limit = (
            timeout
            if timeout is not None
            else MILESTONE_TIMEOUT_S
            if kind == "milestone"
            else CHECK_TIMEOUT_S
        )

        def register(fn: CheckFn) -> CheckFn:
            self.checks.append(Check(title, _optional(fn) if stretch else fn, kind, limit, stretch))
            return fn

        return register

    @property
    def starter(self) -> str:
        """The percent-format source of the student's starting file (``starter.py`` beside the checks)."""
        package = f"tinygpt.course.exercises.{self.name}"
        return (importlib.resources.files(package) / "starter.py").read_text(encoding="utf-8")

    @property
    def time_limit(self) -> float:
        """Seconds the whole check may take at most (loading the file plus every check)."""
        return CHECK_TIMEOUT_S + sum(c.timeout for c in self.checks)


def _optional(fn: CheckFn) -> CheckFn:
    """``fn``, except that a student function still "not implemented yet" makes it pass with a note."""

    def run(student: Student) -> str | None:
        try:
            return fn(student)
        except CheckFailed as exc:
            if not exc.message.startswith(NOT_IMPLEMENTED):
                raise
            return f"{STRETCH_SKIPPED}: {exc.message[len(NOT_IMPLEMENTED) :]} is not written yet (optional)"

    return run
