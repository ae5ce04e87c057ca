"""Hostile student files: each gives one clear grade message, and the grader neither hangs nor crashes.

The files stand in for the char_tokenizer exercise; what they do happens in the
constructor the first check calls (or at import). Time limits are scaled to a
tenth (2 s a check) so an endless loop costs seconds, not the real 20.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from tests.course.helpers import numpy_session, solution
from tinygpt.course import registry
from tinygpt.course.errors import CourseError
from tinygpt.course.sandbox import MEMORY_MB, grade_file

pytestmark = numpy_session
NAME = "char_tokenizer"
FIRST = registry.get(NAME).checks[0].title


def grade_body(tmp_path: Path, body: str, top: str = "", name: str = NAME) -> tuple[object, float]:
    """Grade a file whose CharTokenizer.__init__ runs ``body`` (and whose module runs ``top``)."""
    source = (
        f"import os, sys\n{textwrap.dedent(top)}\n\nclass CharTokenizer:\n    def __init__(self, text):\n"
    )
    source += textwrap.indent(textwrap.dedent(body), "        ") + "\n"
    path = tmp_path / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    start = time.monotonic()
    verdict = grade_file(name, path, time_scale=0.1)
    return verdict, time.monotonic() - start


def test_an_endless_loop_times_out_and_the_group_is_killed(tmp_path):
    verdict, seconds = grade_body(tmp_path, "while True:\n    pass")
    assert not verdict.passed
    assert verdict.message == f"'{FIRST}' did not finish within 2 s", verdict.report()
    assert "endless loop" in verdict.hint
    assert seconds < 10


def test_a_segfault_is_a_crash_message(tmp_path):
    verdict, _ = grade_body(tmp_path, "import ctypes\nctypes.string_at(0)")
    assert f"crashed the Python process during '{FIRST}' (SIGSEGV)" in verdict.message, verdict.report()
    assert "Fatal Python error" in verdict.output  # faulthandler's traceback shows the student's line


def test_sys_exit_in_a_function_is_named(tmp_path):
    verdict, _ = grade_body(tmp_path, "sys.exit(0)")
    assert verdict.message.startswith("CharTokenizer called sys.exit() or exit()"), verdict.report()
    assert "char_tokenizer.py line 6: `sys.exit(0)`" in verdict.message


def test_sys_exit_at_the_top_of_the_file_is_named(tmp_path):
    verdict, _ = grade_body(tmp_path, "pass", top="sys.exit(3)")
    assert verdict.failed_check == "loading your file"
    assert "called sys.exit() or exit()" in verdict.message, verdict.report()


def test_os_exit_ends_the_process_with_a_clear_message(tmp_path):
    verdict, _ = grade_body(tmp_path, "os._exit(0)")
    assert f"ended the Python process during '{FIRST}' (exit status 0)" in verdict.message, verdict.report()
    assert "os._exit" in verdict.hint


def test_a_50_gb_allocation_stops_at_the_memory_cap_quickly(tmp_path):
    verdict, seconds = grade_body(tmp_path, "self.table = bytearray(50 * 2**30)")
    assert verdict.message.startswith("CharTokenizer ran out of memory"), verdict.report()
    assert f"{MEMORY_MB} MB" in verdict.hint
    assert seconds < 10


def test_memory_that_grows_slowly_stops_at_the_cap(tmp_path):
    # 16 MB at a time, never touched: the cap counts what is reserved, so this stops without using RAM.
    body = (
        "import numpy\nself.rows = []\nwhile True:\n    self.rows.append(numpy.empty(2**24, dtype='uint8'))"
    )
    verdict, _ = grade_body(tmp_path, body)
    assert "ran out of memory" in verdict.message, verdict.report()


def test_a_print_flood_is_stopped_and_truncated(tmp_path):
    verdict, seconds = grade_body(tmp_path, "while True:\n    print('x' * 1000)")
    assert "printed more than the grader keeps" in verdict.message, verdict.report()
    assert len(verdict.output) < 3000
    assert seconds < 15


def test_reading_standard_input_fails_at_once(tmp_path):
    verdict, seconds = grade_body(tmp_path, "self.chars = sorted(set(input('text? ')))")
    assert "reads from standard input (input())" in verdict.message, verdict.report()
    assert seconds < 10


def test_child_processes_do_not_outlive_the_grading(tmp_path):
    marker = tmp_path / "child.pid"
    body = f"""
    import subprocess
    child = subprocess.Popen(["sleep", "1000"])
    open({str(marker)!r}, "w").write(str(child.pid))
    while True:
        pass
    """
    verdict, _ = grade_body(tmp_path, body)
    assert "did not finish" in verdict.message, verdict.report()
    pid = int(marker.read_text())
    for _ in range(50):  # the process group was killed; give the kernel a moment to reap it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the student's child process {pid} survived the grading")


def test_a_fork_bomb_is_contained(tmp_path):
    body = """
    children = 0
    try:
        while True:
            if os.fork() == 0:
                import time
                time.sleep(60)
                os._exit(0)
            children += 1
    except OSError:
        raise RuntimeError(f"forked {children} processes, then the system said no")
    """
    verdict, seconds = grade_body(tmp_path, body)
    # As a user, RLIMIT_NPROC refuses the forks; as root (which it does not bind) the grader counts them.
    assert "processes" in verdict.message, verdict.report()
    assert seconds < 15


def test_endless_recursion_is_named(tmp_path):
    verdict, _ = grade_body(tmp_path, "def again(n):\n    return again(n + 1)\nagain(0)")
    assert "recursed without end (RecursionError)" in verdict.message, verdict.report()


def test_a_forked_child_cannot_confuse_the_report(tmp_path):
    # The fork returns into the grader in both processes; only the real child's events count.
    forked = "        if not FORKED:\n            FORKED.append(os.fork())\n        self.chars = sorted(set(text))\n"
    source = solution(NAME).replace("        self.chars = sorted(set(text))\n", forked, 1)
    path = tmp_path / f"{NAME}.py"
    path.write_text("import os\nFORKED = []\n" + source, encoding="utf-8")
    verdict = grade_file(NAME, path, time_scale=0.5)
    assert verdict.passed, verdict.report()


def test_a_syntax_error_names_the_line(tmp_path):
    path = tmp_path / f"{NAME}.py"
    path.write_text("class CharTokenizer:\n    def __init__(self, text)\n        pass\n", encoding="utf-8")
    verdict = grade_file(NAME, path)
    assert verdict.failed_check == "loading your file"
    assert "is not valid Python" in verdict.message and "line 2" in verdict.message, verdict.report()


def test_a_file_that_is_not_utf8_is_refused_clearly(tmp_path):
    path = tmp_path / f"{NAME}.py"
    path.write_bytes(b"# caf\xe9\nx = 1\n")
    verdict = grade_file(NAME, path)
    assert "is not UTF-8 text" in verdict.message, verdict.report()


def test_a_missing_function_is_named(tmp_path):
    path = tmp_path / f"{NAME}.py"
    path.write_text("class Tokenizer:\n    pass\n", encoding="utf-8")
    verdict = grade_file(NAME, path)
    assert verdict.message == "char_tokenizer.py defines no `CharTokenizer`", verdict.report()


def test_prints_are_shown_under_a_failure(tmp_path):
    verdict, _ = grade_body(tmp_path, "print('looking at', text[:5])\nraise ValueError('nope')")
    assert "ValueError: nope" in verdict.message
    assert "looking at To be" in verdict.output


@pytest.mark.parametrize("name", ["char_tokenizer.txt", "missing.py"])
def test_a_wrong_path_is_a_usage_error(tmp_path, name):
    path = tmp_path / name
    if path.suffix == ".txt":
        path.write_text("x", encoding="utf-8")
    with pytest.raises(CourseError):
        grade_file(NAME, path)


def test_an_unknown_exercise_is_a_usage_error_with_a_suggestion(tmp_path):
    with pytest.raises(CourseError, match="did you mean 'char_tokenizer'"):
        grade_file("char_tokeniser", tmp_path / "x.py")


def test_a_students_numpy_py_does_not_shadow_the_library(tmp_path):
    (tmp_path / "numpy.py").write_text(
        "raise SystemExit('the student file numpy.py was imported')\n", encoding="utf-8"
    )
    path = tmp_path / f"{NAME}.py"
    path.write_text(solution(NAME), encoding="utf-8")
    verdict = grade_file(NAME, path)
    assert verdict.passed, verdict.report()
