"""Stretch checks: an optional part the student has not written passes as skipped; once written, it is graded."""

from __future__ import annotations

import pytest

from tinygpt.course.errors import CheckFailed
from tinygpt.course.exercise import STRETCH_SKIPPED, Exercise


def _exercise(message: str) -> Exercise:
    exercise = Exercise(name="demo", title="Demo", teaches="nothing", minutes=5)

    @exercise.check("the stretch part", stretch=True)
    def part(student):
        raise CheckFailed(message, "a hint")

    return exercise


def test_a_stretch_part_not_written_yet_passes_with_a_note():
    check = _exercise("not implemented yet: generate_cached").checks[0]
    assert check.stretch
    note = check.run(None)  # type: ignore[arg-type]
    assert note == f"{STRETCH_SKIPPED}: generate_cached is not written yet (optional)"


def test_a_stretch_part_that_is_written_is_graded():
    check = _exercise("generate_cached: expected 3 at index (0, 4), got 5").checks[0]
    with pytest.raises(CheckFailed, match="expected 3"):
        check.run(None)  # type: ignore[arg-type]
