"""Mutation testing of the course's graders: does each exercise's grader catch small changes to its solution?

    python scripts/course_mutants.py                  # every exercise
    python scripts/course_mutants.py layer_norm --jobs 2 --no-milestone
    python scripts/course_mutants.py --backend array_api_strict   # also kills NumPy-only code

Each reference solution (tests/course/solutions/NAME.py) is parsed and mutated
one change at a time by a small AST mutator: arithmetic operators (+ - * / **),
comparisons (< <= > >= == != in is), boolean operators, numeric constants
(n -> n + 1, x -> 2x), a removed unary minus or ``not``, ``axis=`` and
``keepdims=`` arguments, slice bounds (+1), a one-argument call replaced by its
argument (``sorted(s)`` -> ``s``), and ``raise`` statements replaced by ``pass``. Only function bodies are mutated (not docstrings, not the demo under
``if __name__ == "__main__":``, which the grader never runs). Every mutant is
graded by the real grader in its sandbox; a mutant the grader passes
*survives*. Survivors are printed with their line so each can be judged: a
real gap in the checks, or an equivalent mutant (same behaviour, e.g. ``x * 1``
vs ``x / 1``).

mutmut was considered: it mutates a package and runs pytest on it, while here
the "test" is the grader run on a standalone student file, which a 150-line
mutator fits without a second test layout.
"""

from __future__ import annotations

import argparse
import ast
import copy
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinygpt.course import registry  # noqa: E402
from tinygpt.course.sandbox import grade_file  # noqa: E402

SOLUTIONS = ROOT / "tests" / "course" / "solutions"
SWAP = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
    ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv,
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.And: ast.Or, ast.Or: ast.And,
}  # fmt: skip
SYMBOL = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
    ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.And: "and", ast.Or: "or",
}  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    index: int  # the site's number in traversal order
    line: int
    change: str


def _is_main_guard(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


class _Mutator(ast.NodeTransformer):
    """Numbers every mutation site in function bodies; mutates the one numbered ``target`` (-1: none)."""

    def __init__(self, target: int = -1) -> None:
        self.target = target
        self.count = 0
        self.sites: list[Mutant] = []
        self.depth = 0  # inside a function body

    def _site(self, node: ast.AST, change: str) -> bool:
        """Record a site; True if it is the one to mutate."""
        index = self.count
        self.count += 1
        self.sites.append(Mutant(index, getattr(node, "lineno", 0), change))
        return index == self.target

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring stays
        self.depth += 1
        node.body = node.body[: len(node.body) - len(body)] + [self.visit(s) for s in body]
        self.depth -= 1
        return node

    def visit_If(self, node: ast.If) -> ast.AST:
        if _is_main_guard(node):
            return node
        return self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if self.depth == 0 and not isinstance(node, ast.Module | ast.ClassDef):
            return node
        return super().generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        new = SWAP.get(type(node.op))
        if new and self._site(node, f"{SYMBOL[type(node.op)]} -> {SYMBOL[new]}"):
            node.op = new()
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        new = SWAP.get(type(node.op))
        if new and self._site(node, f"{SYMBOL[type(node.op)]}= -> {SYMBOL[new]}="):
            node.op = new()
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            new = SWAP.get(type(op))
            if new and self._site(node, f"{SYMBOL[type(op)]} -> {SYMBOL[new]}"):
                node.ops[i] = new()
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        new = SWAP[type(node.op)]
        if self._site(node, f"{SYMBOL[type(node.op)]} -> {SYMBOL[new]}"):
            node.op = new()
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.USub | ast.Not) and self._site(
            node, f"removed {'-' if isinstance(node.op, ast.USub) else 'not'}"
        ):
            return node.operand
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            return node
        new = value + 1 if isinstance(value, int) else (value * 2 if value else 1.0)
        if self._site(node, f"{value!r} -> {new!r}"):
            return ast.copy_location(ast.Constant(new), node)
        return node

    def visit_keyword(self, node: ast.keyword) -> ast.AST:
        self.generic_visit(node)
        value = node.value
        if node.arg == "axis" and isinstance(value, ast.UnaryOp | ast.Constant):
            if self._site(value, f"axis={ast.unparse(value)} -> axis=0 / -1"):
                node.value = ast.Constant(0 if ast.unparse(value) != "0" else -1)
        if (
            node.arg == "keepdims"
            and isinstance(value, ast.Constant)
            and self._site(value, "keepdims flipped")
        ):
            node.value = ast.Constant(not value.value)
        return node

    def visit_Slice(self, node: ast.Slice) -> ast.AST:
        self.generic_visit(node)
        for bound in ("lower", "upper"):
            value = getattr(node, bound)
            if value is not None and self._site(value, f"slice {bound} bound + 1"):
                setattr(node, bound, ast.BinOp(value, ast.Add(), ast.Constant(1)))
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if len(node.args) == 1 and not node.keywords and not isinstance(node.args[0], ast.Starred):
            if self._site(node, f"{ast.unparse(node.func)}(x) -> x"):
                return node.args[0]
        return node

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        self.generic_visit(node)
        if self._site(node, "raise -> pass"):
            return ast.copy_location(ast.Pass(), node)
        return node


def mutants(source: str) -> Iterator[tuple[Mutant, str]]:
    """Every (mutant, mutated source) of ``source``."""
    tree = ast.parse(source)
    survey = _Mutator()
    survey.visit(copy.deepcopy(tree))
    for site in survey.sites:
        mutated = _Mutator(site.index).visit(copy.deepcopy(tree))
        yield site, ast.unparse(ast.fix_missing_locations(mutated)) + "\n"


def run(name: str, jobs: int, milestones: bool, backend: str | None) -> tuple[int, list[Mutant], float]:
    """(mutants, survivors, seconds) for one exercise."""
    source = (SOLUTIONS / f"{name}.py").read_text(encoding="utf-8")
    todo = list(mutants(source))
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutants-{name}-") as scratch:

        def survives(item: tuple[Mutant, str]) -> bool:
            site, text = item
            folder = Path(scratch) / str(site.index)
            folder.mkdir()
            path = folder / f"{name}.py"
            path.write_text(text, encoding="utf-8")
            return grade_file(name, path, backend=backend, milestones=milestones).passed

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            alive = list(pool.map(survives, todo))
    return (
        len(todo),
        [site for (site, _), ok in zip(todo, alive, strict=True) if ok],
        time.monotonic() - start,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="exercises (default: all, in teaching order)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants graded at once")
    parser.add_argument(
        "--no-milestone", action="store_true", help="skip the integration milestones (quicker)"
    )
    parser.add_argument(
        "--backend", help="grade on this backend (array_api_strict also kills code that only NumPy accepts)"
    )
    args = parser.parse_args()
    names = args.names or list(registry.ORDER)
    print(f"{'exercise':<22}{'killed':>8}{'mutants':>9}{'score':>8}{'seconds':>9}")
    report = []
    for name in names:
        total, survivors, seconds = run(name, args.jobs, not args.no_milestone, args.backend)
        killed = total - len(survivors)
        print(f"{name:<22}{killed:>8}{total:>9}{killed / max(total, 1):>8.0%}{seconds:>9.0f}", flush=True)
        report.append((name, survivors))
    for name, survivors in report:
        for site in survivors:
            print(f"  survivor {name}.py line {site.line}: {site.change}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
