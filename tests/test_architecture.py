"""The shape of the house: imports point one way, no circles, array libraries only in the backend.

Every import in ``tinygpt/`` is read from the source (function-level imports
included), so a circle cannot hide behind a late import. Backend names
(``"cupy"``, ``"jax"``...) are compared nowhere but in that backend's own module
of ``tinygpt/backend/libraries/``: everything else asks the library object.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tinygpt.backend.registry import BACKENDS

PACKAGE = Path(__file__).resolve().parent.parent / "tinygpt"

# Lowest first. A module may import modules of its own layer or of layers listed before it.
LAYERS: list[tuple[str, ...]] = [
    ("tinygpt.errors",),
    ("tinygpt.settings", "tinygpt.files", "tinygpt.extras", "tinygpt.progress"),
    ("tinygpt.backend",),
    ("tinygpt.tensor", "tinygpt.tokenizers", "tinygpt.data", "tinygpt.datasets"),
    ("tinygpt.functional",),
    ("tinygpt.layers",),
    ("tinygpt.losses", "tinygpt.optim", "tinygpt.models"),
    ("tinygpt.checkpoint",),
    ("tinygpt.generation", "tinygpt.training"),
    ("tinygpt.classroom", "tinygpt.course"),
    ("tinygpt.cli",),
    ("tinygpt", "tinygpt.__main__"),
]
ARRAY_LIBRARIES = {
    "numpy",
    "cupy",
    "cupyx",
    "jax",
    "jaxlib",
    "torch",
    "array_api_strict",
    "array_api_compat",
    "array_api_extra",
}
LIBRARIES_PACKAGE = "tinygpt.backend.libraries"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    this = _module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule if submodule in MODULES else base, node.lineno))
    return found


def _internal_graph() -> dict[str, set[str]]:
    return {
        name: {target for target, _ in _imports(path) if target in MODULES and target != name}
        for name, path in MODULES.items()
    }


def _layer(module: str) -> int:
    best, index = -1, -1
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            matches = module == prefix or (prefix != "tinygpt" and module.startswith(prefix + "."))
            if matches and len(prefix) > best:
                best, index = len(prefix), i
    assert index >= 0, f"{module} belongs to no layer in tests/test_architecture.py: add it"
    return index


def test_there_is_no_import_circle():
    graph = _internal_graph()
    # Depth-first search for a back edge; report the circle itself.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state:
                circle = visit(target)
                if circle:
                    return circle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            circle = visit(module)
            assert circle is None, "import circle: " + " -> ".join(circle)


def test_imports_point_down_the_layers():
    wrong = []
    for name, path in MODULES.items():
        for target, line in _imports(path):
            if target in MODULES and target != name and _layer(target) > _layer(name):
                wrong.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line} {name} imports {target} (a higher layer)"
                )
    assert not wrong, "\n".join(wrong)


def test_only_the_backend_imports_an_array_library():
    wrong = []
    for name, path in MODULES.items():
        if name.startswith("tinygpt.backend"):
            continue
        for target, line in _imports(path):
            if target.split(".")[0] in ARRAY_LIBRARIES:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not wrong, "array libraries are the backend's business:\n" + "\n".join(wrong)


def _backend_name_comparisons(path: Path) -> list[tuple[str, int]]:
    """(backend name, line) for every ``== "cupy"``, ``in ("torch", "jax")`` or ``case "numpy":``."""

    def names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant) and node.value in BACKENDS:
            return [node.value]
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return [n for element in node.elts for n in names(element)]
        return []

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                found += [(name, node.lineno) for name in names(operand)]
        elif isinstance(node, ast.MatchValue):
            found += [(name, node.lineno) for name in names(node.value)]
    return found


def test_only_a_backends_own_module_compares_its_name():
    wrong = []
    for name, path in MODULES.items():
        own = name.rpartition(".")[2] if name.startswith(LIBRARIES_PACKAGE + ".") else None
        for backend_name, line in _backend_name_comparisons(path):
            if backend_name != own:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} compares with {backend_name!r}")
    assert not wrong, (
        "ask the backend's ArrayLibrary (tinygpt/backend/library.py) instead of its name:\n"
        + "\n".join(wrong)
    )


def test_the_name_checker_catches_comparisons(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        'if b.name == "cupy":\n    pass\nok = name in ("torch", "x")\nmatch n:\n    case "jax":\n        pass\n'
        'fine = name == "cupy_like"\n',
        encoding="utf-8",
    )
    assert [n for n, _ in _backend_name_comparisons(probe)] == ["cupy", "torch", "jax"]


def test_the_checker_sees_function_level_imports(tmp_path):
    # The test above must not be fooled by an import hidden inside a function.
    source = "def f():\n    import numpy\n    from tinygpt.cli import main\n"
    path = PACKAGE / "_probe_for_architecture_test.py"
    path.write_text(source, encoding="utf-8")
    try:
        MODULES["tinygpt._probe_for_architecture_test"] = path
        targets = [t for t, _ in _imports(path)]
        assert "numpy" in targets and "tinygpt.cli" in targets
    finally:
        MODULES.pop("tinygpt._probe_for_architecture_test", None)
        path.unlink()


def test_every_file_docs_architecture_names_exists():
    """docs/architecture.md walks through the code by file name: each one it names must be there."""
    root = PACKAGE.parent
    text = (root / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w./-]+\.py|[\w/]+/)`", text))
    assert len(named) > 20  # the walk-through names files, not just ideas
    missing = []
    for name in sorted(named):
        places = [root / name, PACKAGE / name]
        if "/" not in name.rstrip("/"):  # a bare file name, in the sentence about its package
            places += list(PACKAGE.rglob(name))
        if not any(place.exists() for place in places):
            missing.append(name)
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"
