"""What an exercise is: its description, its starter source and its checks, in teaching order.

Each exercise is a package ``tinygpt/course/exercises/NAME/``: ``__init__.py``
makes ``EXERCISE = Exercise(...)`` and registers its checks with the
``@EXERCISE.check(...)`` decorator (they run in the order they are written,
simple to deep); ``starter.py`` beside it is the student's starting file in
jupytext "percent" format, from which both the ``.py`` starter and the
``.ipynb`` notebook are made.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinygpt.course.student import Student

CHECK_TIMEOUT_S = 20.0  # a unit check: well under the 30 s the issue allows
MILESTONE_TIMEOUT_S = 150.0  # an integration milestone: under 3 min on a 2-core laptop
CheckFn = Callable[["Student"], "str | None"]
KINDS = ("shape", "values", "edge", "property", "gradient", "milestone")


@dataclass(frozen=True)
class Check:
    """One check: ``run(student)`` returns on success and raises ``CheckFailed`` otherwise."""

    title: str
    run: Callable[[Student], str | None]  # an optional one-line note for the report (a milestone's losses)
    kind: str
    timeout: float


@dataclass
class Exercise:
    """One exercise of the course: what it teaches, how long it takes, its starter and its checks."""

    name: str
    title: str
    teaches: str
    minutes: int
    checks: list[Check] = field(default_factory=list)

    def check(
        self, title: str, kind: str = "values", timeout: float | None = None
    ) -> Callable[[CheckFn], CheckFn]:
        """Register the decorated function as the next check (``kind`` is one of ``KINDS``)."""
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
            self.checks.append(Check(title, fn, kind, limit))
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
