"""Grading source text as a student file: the solutions, the starters, planted bugs and hostile files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tinygpt.course import registry
from tinygpt.course.notebooks import script
from tinygpt.course.sandbox import grade_file
from tinygpt.course.verdict import Verdict

SOLUTIONS = Path(__file__).resolve().parent / "solutions"

numpy_session = pytest.mark.skipif(
    os.environ.get("TINYGPT_BACKEND", "").strip() not in ("", "numpy"),
    reason="planted bugs, starters and hostile files run in the numpy session (the grader is backend-blind)",
)


def solution(name: str) -> str:
    return (SOLUTIONS / f"{name}.py").read_text(encoding="utf-8")


def starter(name: str) -> str:
    return script(registry.get(name))


def plant(source: str, old: str, new: str) -> str:
    """``source`` with its one occurrence of ``old`` replaced by ``new`` (a planted bug)."""
    assert source.count(old) == 1, f"the bug's anchor must occur once in the solution: {old!r}"
    return source.replace(old, new)


def grade_source(
    name: str, source: str, folder: Path, backend: str | None = None, milestones: bool = True
) -> Verdict:
    """Write ``source`` as ``folder/NAME.py`` and grade it in the sandbox."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    return grade_file(name, path, backend=backend, milestones=milestones)


def failure_text(verdict: Verdict) -> str:
    """Everything a student reads about the failure (message and hint), for matching."""
    return f"{verdict.message}\nhint: {verdict.hint}"


Bug = tuple[
    str, str, str, str
]  # (what the student got wrong, text in the solution, the wrong version, words)


def planted_bugs_fail(name: str, bugs: list[Bug]) -> Callable[..., None]:
    """The test each exercise's test module makes of its ``BUGS``: every planted bug fails, naming its fault.

    Graded without the milestone: a bug the unit checks miss is a gap in them
    (milestone-only bugs have tests of their own).
    """

    @numpy_session
    @pytest.mark.parametrize(("what", "old", "new", "expected"), bugs, ids=[b[0] for b in bugs])
    def test(tmp_path: Path, what: str, old: str, new: str, expected: str) -> None:
        verdict = grade_source(name, plant(solution(name), old, new), tmp_path, milestones=False)
        assert not verdict.passed, f"{what} passed"
        assert expected in failure_text(verdict), verdict.report()

    return test


def fails_only_the_milestone(name: str, source: str, folder: Path, *expected: str) -> None:
    """``source`` passes every unit check and fails the milestone, with each of ``expected`` in its text."""
    verdict = grade_source(name, source, folder)
    assert not verdict.passed and verdict.failed_check == registry.get(name).checks[-1].title, (
        verdict.report()
    )
    for words in expected:
        assert words in failure_text(verdict), verdict.report()
