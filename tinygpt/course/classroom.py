"""Grading a class: one sub-folder per student, every exercise's file in each, graded in the sandbox.

Files are graded a few at a time (one sandboxed process each, one BLAS thread
each), so a class of 30 on a 2-core laptop takes about the time of 15 students
graded one after another. Nothing is written into the students' folders.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tinygpt.course import registry
from tinygpt.course.errors import CourseError
from tinygpt.course.exercise import Exercise
from tinygpt.course.progress import student_file
from tinygpt.course.sandbox import grade_file
from tinygpt.course.verdict import Verdict
from tinygpt.errors import TinyGPTError


@dataclass
class StudentResults:
    """One student's folder: a verdict per exercise, None where the file is missing."""

    name: str
    folder: Path
    verdicts: dict[str, Verdict | None] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        return sum(1 for v in self.verdicts.values() if v is not None and v.passed)


def student_folders(class_dir: Path) -> list[Path]:
    """The sub-folders of ``class_dir`` (hidden ones skipped), sorted by name."""
    if not class_dir.is_dir():
        raise CourseError(
            f"{class_dir} is not a folder; give the folder that holds one sub-folder per student"
        )
    folders = sorted(p for p in class_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise CourseError(f"{class_dir} has no student folders (expected one sub-folder per student)")
    return folders


def default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def grade_class(
    class_dir: Path,
    jobs: int | None = None,
    backend: str | None = None,
    device: str | None = None,
    on_done: Callable[[str, str, Verdict], None] | None = None,
) -> list[StudentResults]:
    """Grade every student's file for every exercise, ``jobs`` at a time (missing files are None)."""
    exercises = registry.exercises()
    students = [StudentResults(folder.name, folder) for folder in student_folders(class_dir)]
    work = []
    for student in students:
        for exercise in exercises:
            path = student_file(student.folder, exercise)
            student.verdicts[exercise.name] = None
            if path is not None:
                work.append((student, exercise, path))

    def grade(item: tuple[StudentResults, Exercise, Path]) -> None:
        student, exercise, path = item
        try:
            verdict = grade_file(exercise.name, path, backend, device)
        except TinyGPTError as exc:  # an unreadable notebook, say: that student's failure, not the class's
            verdict = Verdict(exercise.name, str(path), False, len(exercise.checks), message=str(exc))
        student.verdicts[exercise.name] = verdict
        if on_done is not None:
            on_done(student.name, exercise.name, verdict)

    with ThreadPoolExecutor(max_workers=jobs or default_jobs()) as pool:
        list(pool.map(grade, work))
    return students
