"""The student's file, loaded as a module, and every call into it translated into one clear failure.

Checks never call student code directly: ``Student.call`` and ``Student.invoke``
run it and turn whatever goes wrong into ``CheckFailed`` in the student's terms:
"not implemented yet: encode" for an untouched body, the exception and the
student's own line for a crash, and plain words for ``sys.exit()``, ``input()``,
running out of memory or endless recursion.
"""

from __future__ import annotations

import errno
import importlib.util
import linecache
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from tinygpt.course.errors import CheckFailed

CELL_MARKER = re.compile(r"^# tinygpt-course: cell (\d+)$")
"""Marks the first line of each notebook cell in code extracted from an ``.ipynb`` (see ``notebooks``)."""

MEMORY_HINT = (
    "the grader lets your code use {limit}; this exercise needs a few MB. Look for an array far bigger "
    "than the inputs (a (T, T, C) intermediate, a Python list of every element, an accidental outer product)"
)


class Student:
    """The student's module plus the means to call into it safely.

    ``path`` is the file that runs (for a notebook: its extracted code);
    ``display`` is the name the student knows (``layer_norm.ipynb``).
    """

    def __init__(self, module: ModuleType, path: Path, display: str, memory_limit: str = "its memory limit"):
        self.module = module
        self.path = path
        self.display = display
        self.memory_limit = memory_limit
        self._cells = _cell_starts(path)

    # Loading ------------------------------------------------------------------
    @classmethod
    def load(
        cls, path: str | Path, display: str | None = None, memory_limit: str = "its memory limit"
    ) -> Student:
        """Run the student's file as a fresh module (``__name__`` is not ``"__main__"``: demos stay off)."""
        path = Path(path).resolve()
        display = display or path.name
        name = "student_" + re.sub(r"\W", "_", path.stem)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise CheckFailed(
                f"cannot load {display} as Python code", "give the path of a .py or .ipynb file"
            )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling-free introspection look modules up by name
        student = cls(module, path, display, memory_limit)
        try:
            source = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise CheckFailed(f"{display} is not UTF-8 text ({exc})", "save the file as UTF-8") from None
        try:
            compile(source, str(path), "exec")
        except SyntaxError as exc:
            where = student.where(exc.lineno or 0)
            text = (exc.text or "").strip()
            raise CheckFailed(
                f"{display} is not valid Python: {exc.msg} at {where}" + (f": `{text}`" if text else ""),
                "fix the syntax error; `python -m py_compile FILE` shows it too",
            ) from None
        student.invoke("loading your file", spec.loader.exec_module, module)
        return student

    # Calling --------------------------------------------------------------------
    def get(self, name: str) -> Any:
        """The student's top-level ``name`` (a function or class), or a failure naming it."""
        try:
            return getattr(self.module, name)
        except AttributeError:
            raise CheckFailed(
                f"{self.display} defines no `{name}`",
                f"keep the name and signature of `{name}` as the starter wrote them",
            ) from None

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the student's top-level function or class ``name``; any trouble becomes ``CheckFailed``."""
        return self.invoke(name, self.get(name), *args, **kwargs)

    def call_method(self, obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``obj.name(...)`` on an object the student's code made."""
        label = f"{type(obj).__name__}.{name}"
        try:
            method = getattr(obj, name)
        except AttributeError:
            raise CheckFailed(
                f"your {type(obj).__name__} has no method `{name}`", "keep the methods the starter declares"
            ) from None
        return self.invoke(label, method, *args, **kwargs)

    def invoke(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` (student code, labelled ``label`` in messages); translate every way it can fail."""
        error = self._run(label, fn, args, kwargs)
        if isinstance(error, _Returned):
            return error.value
        raise error

    def raises(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Exception | None:
        """The exception (an ``Exception``) student code raised, or None if it returned normally.

        For checks that *want* an error (an unknown character). Not-implemented
        bodies, ``sys.exit()``, memory and recursion still fail as usual.
        """
        try:
            fn(*args, **kwargs)
        except (NotImplementedError, MemoryError, RecursionError, EOFError) as exc:
            raise self._failure(label, exc) from None
        except Exception as exc:
            return exc
        except BaseException as exc:
            raise self._failure(label, exc) from None
        return None

    def _run(self, label: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        try:
            return _Returned(fn(*args, **kwargs))
        except CheckFailed as exc:  # a check helper the student's code called back into
            return exc
        except BaseException as exc:
            return self._failure(label, exc)

    def _failure(self, label: str, exc: BaseException) -> CheckFailed:
        frame = self._deepest_own_frame(exc.__traceback__)
        where = f" ({self.where(frame[1])}{_code(frame[0], frame[1])})" if frame else ""
        if isinstance(exc, NotImplementedError) and frame is not None:
            function = frame[2] if frame[2] != "<module>" else label
            detail = str(exc) or f"write {function}"
            return CheckFailed(
                f"not implemented yet: {function}",
                f"{detail} (the starter's `raise NotImplementedError` is still at {self.where(frame[1])}; "
                "replace it with your code)",
            )
        if isinstance(exc, SystemExit):
            return CheckFailed(
                f"{label} called sys.exit() or exit(){where}",
                "the grader calls your functions itself; return a value instead of exiting",
            )
        if isinstance(exc, KeyboardInterrupt):
            return CheckFailed(f"{label} was interrupted (KeyboardInterrupt){where}", "run the check again")
        if isinstance(exc, EOFError):
            return CheckFailed(
                f"{label} reads from standard input (input()){where}, and the grader gives it none",
                "take values as arguments instead of asking for them",
            )
        if isinstance(exc, MemoryError):
            return CheckFailed(
                f"{label} ran out of memory{where}", MEMORY_HINT.format(limit=self.memory_limit)
            )
        if isinstance(exc, OSError) and exc.errno == errno.EFBIG:  # RLIMIT_FSIZE: the output file is full
            return CheckFailed(
                f"{label} printed more than the grader keeps{where}, so it was stopped",
                "a print inside a loop? print a few values, or shapes, not every element",
            )
        if isinstance(exc, RecursionError):
            return CheckFailed(
                f"{label} recursed without end (RecursionError){where}",
                "a function calls itself, directly or through another, with no case that stops",
            )
        text = str(exc).strip().splitlines()
        message = f": {text[0][:300]}" if text else ""
        return CheckFailed(
            f"{label} raised {type(exc).__name__}{message}{where}",
            "read the line above; run your file on a small input to see it happen",
        )

    # Where in the student's file ------------------------------------------------------
    def _deepest_own_frame(self, tb: TracebackType | None) -> tuple[str, int, str] | None:
        """(filename, line, function) of the innermost traceback frame inside the student's file.

        The function is its qualified name where Python knows it (``CharTokenizer.encode``).
        """
        own = None
        while tb is not None:
            code = tb.tb_frame.f_code
            if code.co_filename == str(self.path):
                own = (code.co_filename, tb.tb_lineno, getattr(code, "co_qualname", code.co_name))
            tb = tb.tb_next
        return own

    def where(self, line: int) -> str:
        """``layer_norm.py line 12``, or ``layer_norm.ipynb cell 4, line 3`` for notebook code."""
        if not self._cells:
            return f"{self.display} line {line}"
        starts = [(s, n) for s, n in self._cells if s <= line]
        if not starts:
            return f"{self.display} (setup code)"
        start, cell = starts[-1]
        return f"{self.display} cell {cell}, line {line - start}"


class _Returned:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _code(filename: str, line: int) -> str:
    text = linecache.getline(filename, line).strip()
    return f": `{text[:120]}`" if text else ""


def _cell_starts(path: Path) -> list[tuple[int, int]]:
    """(line of a cell marker, cell number) for code extracted from a notebook; empty for a .py file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    starts = []
    for i, text in enumerate(lines, start=1):
        match = CELL_MARKER.match(text)
        if match:
            starts.append((i, int(match.group(1))))
    return starts
