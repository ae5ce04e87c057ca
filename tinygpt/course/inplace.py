"""Grading a notebook from inside itself: the last cell of every exercise notebook calls ``check_notebook``.

Colab keeps the notebook in the browser, so its live copy is fetched from the
front end; Jupyter (and VS Code) grade the file as last saved, found through
the path the front end gives the kernel, else ``NAME.ipynb`` in the working folder.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from tinygpt.course.errors import CourseError
from tinygpt.course.sandbox import grade_file
from tinygpt.course.verdict import Verdict


def _colab_notebook() -> dict[str, Any] | None:
    """The live notebook as Colab's front end holds it, or None outside Colab."""
    if "google.colab" not in sys.modules:
        return None
    from google.colab import _message  # type: ignore[import-not-found]

    reply = _message.blocking_request("get_ipynb", request="", timeout_sec=30)
    notebook = reply.get("ipynb") if isinstance(reply, dict) else None
    return notebook if isinstance(notebook, dict) else None


def _saved_notebook(name: str) -> Path | None:
    """The notebook file this kernel runs, as the front end tells it, else ``NAME.ipynb`` here."""
    candidates = [os.environ.get("JPY_SESSION_NAME", "")]  # jupyter_server 2 tells the kernel its notebook
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            candidates.append(str(shell.user_ns.get("__vsc_ipynb_file__", "")))  # VS Code
    except ImportError:
        pass
    candidates.append(f"{name}.ipynb")
    for candidate in candidates:
        if candidate.endswith(".ipynb") and Path(candidate).is_file():
            return Path(candidate)
    return None


def check_notebook(name: str, path: str | os.PathLike[str] | None = None) -> Verdict:
    """Grade this notebook for exercise ``name`` (or the notebook at ``path``) and print the report."""
    live = None if path is not None else _colab_notebook()
    if live is not None:
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / f"{name}.ipynb"
            copy.write_text(json.dumps(live), encoding="utf-8")
            verdict = grade_file(name, copy)
        verdict.file = f"{name}.ipynb (this notebook)"
    else:
        target = Path(path) if path is not None else _saved_notebook(name)
        if target is None:
            raise CourseError(
                f"cannot find this notebook's file: save it as {name}.ipynb in {Path.cwd()}, "
                f"or call check_notebook({name!r}, 'path/to/notebook.ipynb')"
            )
        saved = datetime.datetime.fromtimestamp(target.stat().st_mtime).strftime("%H:%M:%S")
        print(f"grading {target} as saved at {saved} (save the notebook first to grade your latest edits)")
        verdict = grade_file(name, target)
    print(verdict.report())
    return verdict
