"""The two ways grading stops: a usage problem (the command's fault) or a failed check (the student's code)."""

from __future__ import annotations

from tinygpt.errors import TinyGPTError


class CourseError(TinyGPTError):
    """A usage problem with the course: an unknown exercise, a missing or unreadable file."""


class CheckFailed(Exception):
    """One check failed: ``message`` says what was expected, what came out and where; ``hint`` how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
