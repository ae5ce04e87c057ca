"""The build-it-yourself course: exercises that grade the student's own tokenizer, attention, layer norm ...

Built on the library, never imported by it. ``registry`` lists the exercises
in teaching order; each is a package in ``exercises/`` (its checks, and its
starter in jupytext percent format); ``sandbox`` grades a student's file in a
child process with time and memory limits; ``checks`` and ``milestone`` are
what exercise authors write checks with. The guide for authors, with an
exemplar, is the last section of docs/course.md.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinygpt.course.verdict import Verdict


def check_notebook(name: str, path: str | os.PathLike[str] | None = None) -> Verdict:
    """Grade the notebook this is called from (the last cell of every exercise notebook)."""
    from tinygpt.course.inplace import check_notebook as check

    return check(name, path)
