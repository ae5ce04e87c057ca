"""What every exercise must be, checked over the registry: a new exercise is covered by adding it.

Each exercise has a starter, a reference solution in tests/course/solutions/,
and a test module tests/course/test_NAME.py with at least four planted bugs.
The solution passes on every backend (this is the one course test the other
CI sessions run); the unchanged starter fails with "not implemented yet".
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path

import pytest

from tests.course.helpers import SOLUTIONS, grade_source, numpy_session, solution, starter
from tinygpt import backend
from tinygpt.course import registry
from tinygpt.course.exercise import KINDS

NAMES = registry.ORDER
TESTS = Path(__file__).resolve().parent


def test_every_exercise_package_is_in_the_teaching_order():
    import tinygpt.course.exercises as package

    found = {m.name for m in pkgutil.iter_modules(package.__path__) if m.ispkg}
    assert found <= set(registry.ORDER), f"add {sorted(found - set(registry.ORDER))} to registry.ORDER"
    assert set(registry.ORDER) <= found, f"write {sorted(set(registry.ORDER) - found)} or drop it from ORDER"
    assert [e.name for e in registry.exercises()] == list(registry.ORDER)


@pytest.mark.parametrize("name", registry.ORDER)
def test_no_exercise_is_named_like_a_module(name):
    # The student's NAME.py sits in their folder: a `tinygpt.py` would import itself as tinygpt.
    assert importlib.util.find_spec(name) is None, (
        f"{name}.py would shadow the module {name}: rename the exercise"
    )


@pytest.mark.parametrize("name", NAMES)
def test_an_exercise_is_complete(name):
    exercise = registry.get(name)
    assert exercise.title and exercise.teaches and 5 <= exercise.minutes <= 90
    assert exercise.checks, "an exercise needs checks"
    kinds = [c.kind for c in exercise.checks]
    assert set(kinds) <= set(KINDS)
    assert kinds[0] in ("shape", "values"), "start simple: shapes and dtypes, or values"
    assert "milestone" not in kinds[:-1], "an integration milestone is the last check"
    assert all(c.timeout <= (180 if c.kind == "milestone" else 30) for c in exercise.checks)
    assert "NotImplementedError" in exercise.starter
    assert (SOLUTIONS / f"{name}.py").is_file(), f"write tests/course/solutions/{name}.py"
    module = importlib.import_module(f"tests.course.test_{name}")
    assert len(module.BUGS) >= 4, f"tests/course/test_{name}.py plants at least 4 bugs"


@pytest.mark.parametrize("name", NAMES)
def test_each_starter_says_where_it_fits_in_the_course(name):
    order = list(registry.ORDER)
    i = order.index(name)
    first_cell = " ".join(
        line.lstrip("# ") for line in registry.get(name).starter.split("\n# %%", 1)[0].splitlines()
    )
    assert f"*Exercise {i + 1} of {len(order)}" in first_cell
    if i > 0:
        assert any(f"`{earlier}`" in first_cell for earlier in order[:i]), "name what it builds on"
    if i + 1 < len(order):
        assert f"Next, `{order[i + 1]}`" in first_cell


def _outline(source: str) -> tuple[list[str], list[str]]:
    """The signatures and docstrings of a file's functions and classes, and its lines of text (``#`` at column 0)."""
    signatures = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.col_offset in (0, 4):
            head = ast.unparse(node.args) if isinstance(node, ast.FunctionDef) else ""
            returns = ast.unparse(node.returns) if isinstance(node, ast.FunctionDef) and node.returns else ""
            signatures.append(f"{node.name}({head}) -> {returns}: {ast.get_docstring(node)!r}")
    return signatures, [line for line in source.splitlines() if line.startswith("#")]


@pytest.mark.parametrize("name", NAMES)
def test_the_solution_is_the_starter_filled_in(name):
    # The same text, signatures and docstrings: an edit of the starter must reach the solution too.
    assert _outline(solution(name)) == _outline(registry.get(name).starter)


def test_the_course_takes_four_to_six_hours():
    assert 4 * 60 <= sum(e.minutes for e in registry.exercises()) <= 6 * 60


@pytest.mark.parametrize("name", NAMES)
def test_the_solution_passes(tmp_path, name):
    # JAX runs op by op (no jit): a milestone takes ~40 s there, so that session checks the rest.
    milestones = not backend.current().fixed_shapes
    verdict = grade_source(name, solution(name), tmp_path, milestones=milestones)
    assert verdict.passed, verdict.report()
    last = registry.get(name).checks[-1]
    if last.kind == "milestone" and milestones:
        assert "after 150 steps on Shakespeare: loss" in verdict.results[-1].note, (
            "the note gives both losses"
        )


def _first_to_write(name: str) -> str:
    """The qualified name of the first function in the starter whose body raises NotImplementedError."""
    tree = ast.parse(registry.get(name).starter)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            prefix, members = "", [node]
        elif isinstance(node, ast.ClassDef):
            prefix, members = f"{node.name}.", [m for m in node.body if isinstance(m, ast.FunctionDef)]
        else:
            continue
        for member in members:
            if any(isinstance(n, ast.Raise) for n in ast.walk(member)):
                return prefix + member.name
    raise AssertionError(f"{name}'s starter raises NotImplementedError nowhere")


@numpy_session
@pytest.mark.parametrize("name", NAMES)
def test_the_starter_fails_naming_the_first_function_to_write(tmp_path, name):
    verdict = grade_source(name, starter(name), tmp_path)
    assert verdict.failed_check != "loading your file", (
        "the starter must load: demos go under `if __name__ == '__main__':`"
    )
    assert verdict.message == f"not implemented yet: {_first_to_write(name)}", verdict.report()


def test_the_docs_name_only_exercises_that_are_planned():
    docs = Path(__file__).resolve().parents[2] / "docs"
    for page in docs.glob("*.md"):
        for name in re.findall(r"tinygpt course (?:start|check) ([a-z_]+)", page.read_text(encoding="utf-8")):
            assert name in registry.ORDER or name == "NAME", f"docs/{page.name} names exercise {name!r}"
