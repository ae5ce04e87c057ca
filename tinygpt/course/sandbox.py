"""Student code is untrusted: it runs in a child process with a time limit, a memory cap and its output captured.

The parent (``grade_file``) starts ``python -c 'from tinygpt.course.sandbox import
main; ...'`` in a new session (its own process group), with standard input
empty, standard output and error going to a temporary file, and one extra pipe
file descriptor on which the child reports each check as a line of JSON (no
pickle: nothing the child sends is executed). The child limits itself before it
loads the student's file: memory (``RLIMIT_DATA``), file size (so a print flood
stops at ``OUTPUT_LIMIT``), CPU seconds, core dumps, and the number of processes
(a fork bomb stops at a few dozen). The parent gives each check its own wall-clock
deadline; on a timeout, or whenever grading ends, the whole process group is
killed, so neither an endless loop nor a forgotten child process outlives it.

What this protects is the machine and the grader, not the grade: the student's
code runs in the same process as the checks and could forge their report. A
teacher who needs exam integrity reads the code (see docs/course.md).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinygpt.course import registry
from tinygpt.course.errors import CourseError
from tinygpt.course.exercise import CHECK_TIMEOUT_S, Exercise
from tinygpt.course.verdict import LOADING, OUTPUT_SHOWN, CheckResult, Verdict

MEMORY_MB = 2048  # numpy + tinygpt need ~100 MB, torch ~200, JAX ~350; a milestone adds tens
OUTPUT_LIMIT = 8 * 2**20  # bytes of printing before the child is stopped (SIGXFSZ)
CHANNEL_LIMIT = 2**20  # bytes of events the parent reads at most
MAX_PROCESSES = 64  # in the child's process group; the exercises need one
EXTRA_TASKS = 256  # processes/threads the child may add to what the user already runs (a fork bomb stops)
STARTUP_TIMEOUT_S = 60.0  # importing the library (JAX, torch) before the first event
GRACE_S = 2.0  # after "done", time to exit before the group is killed
SUFFIXES = (".py", ".ipynb")
TIME_FACTOR_ENV = "TINYGPT_COURSE_TIME_FACTOR"
_FD_HINT = "do not close or write to file descriptors your code did not open"
# ``python -c`` puts the working folder first on sys.path: drop it, so a student's tinygpt.py or numpy.py
# there cannot shadow the library (their folder is appended at the end instead).
_BOOT = (
    "import sys\nif sys.path and sys.path[0] == '':\n    del sys.path[0]\n"
    "from tinygpt.course.sandbox import main\nsys.exit(main(sys.argv[1:]))"
)


def time_factor() -> float:
    """``$TINYGPT_COURSE_TIME_FACTOR``: every check's time limit is multiplied by it (a slow machine: 2)."""
    text = os.environ.get(TIME_FACTOR_ENV, "").strip()
    try:
        factor = float(text) if text else 1.0
    except ValueError:
        factor = -1.0
    if not 0.01 <= factor <= 100:
        raise CourseError(
            f"{TIME_FACTOR_ENV}={text!r} must be a number from 0.01 to 100 (2 doubles every time limit)"
        )
    return factor


def grade_file(
    name: str,
    path: str | os.PathLike[str],
    backend: str | None = None,
    device: str | None = None,
    time_scale: float | None = None,
    milestones: bool = True,
) -> Verdict:
    """Grade the student's ``path`` (``.py`` or ``.ipynb``) for exercise ``name`` in a sandboxed child.

    ``time_scale`` multiplies every check's time limit (default: ``time_factor()``); without
    ``milestones`` the integration milestone is skipped (the verdict lists it in ``skipped``).
    """
    exercise = registry.get(name)
    scale = time_factor() if time_scale is None else time_scale
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise CourseError(f"{path} is neither a .py nor an .ipynb file; give the file you wrote for {name}")
    if not path.is_file():
        if path.exists():
            raise CourseError(f"{path} is not a file; give the file you wrote for {name}")
        raise CourseError(
            f"no file {path}: start the exercise with `tinygpt course start {name}`, or give the path of your file"
        )
    if not hasattr(os, "killpg") or not hasattr(os, "waitid"):
        raise CourseError("the course grader needs Linux or macOS (on Windows, use WSL)")
    with tempfile.TemporaryDirectory(prefix="tinygpt-course-") as scratch:
        code = path.resolve()
        if path.suffix == ".ipynb":
            from tinygpt.course.notebooks import extract_code

            code = Path(scratch) / f"{name}.py"
            code.write_text(extract_code(path), encoding="utf-8")
        return _Run(exercise, code, path, backend, device, scale, milestones).supervise()


@dataclass
class _Run:
    exercise: Exercise
    code: Path  # the file the child runs
    shown: Path  # the file the student gave
    backend: str | None
    device: str | None
    scale: float
    milestones: bool
    results: list[CheckResult] = field(default_factory=list)
    message: str = ""
    hint: str = ""
    done: bool = False

    def supervise(self) -> Verdict:
        start = time.monotonic()
        read_fd, write_fd = os.pipe()
        output = tempfile.TemporaryFile()
        try:
            proc = self._spawn(write_fd, output)
        except BaseException:
            os.close(read_fd)
            output.close()
            raise
        finally:
            os.close(write_fd)
        try:
            self._follow(proc, read_fd)
        finally:
            _kill_group(proc)
            os.close(read_fd)
        proc.wait()
        text = _tail(output)
        output.close()
        if not self.done and not self.message:
            self._died(proc.returncode)
        return Verdict(
            exercise=self.exercise.name,
            file=str(self.shown),
            passed=self.done
            and not self.message
            and len(self.results) == len(self._steps())
            and all(r.passed for r in self.results),
            total=len(self.exercise.checks),
            skipped=[c.title for c in self.exercise.checks if c.kind == "milestone" and not self.milestones],
            results=self.results,
            message=self.message,
            hint=self.hint,
            output=text,
            seconds=time.monotonic() - start,
            backend=self.backend or os.environ.get("TINYGPT_BACKEND", "").strip() or "numpy",
        )

    def _spawn(self, write_fd: int, output: Any) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.update(
            OPENBLAS_NUM_THREADS="1",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONFAULTHANDLER="1",
        )
        if self.backend:
            env["TINYGPT_BACKEND"] = self.backend
        if self.device:
            env["TINYGPT_DEVICE"] = self.device
        home = self.shown.resolve().parent
        cmd = [
            sys.executable,
            "-c",
            _BOOT,
            self.exercise.name,
            str(self.code),
            "--display",
            self.shown.name,
            "--home",
            str(home),
            "--fd",
            str(write_fd),
            "--memory-mb",
            str(MEMORY_MB),
            *([] if self.milestones else ["--no-milestone"]),
            "--cpu-seconds",
            str(int(self.scale * self.exercise.time_limit + STARTUP_TIMEOUT_S)),
        ]
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            start_new_session=True,
            cwd=home,
            env=env,
        )

    def _steps(self) -> list[int]:
        """The step indices the child runs: 0 (loading the file), then the checks not skipped."""
        return [0] + [
            i for i, c in enumerate(self.exercise.checks, 1) if self.milestones or c.kind != "milestone"
        ]

    def _title(self, index: int) -> str:
        return LOADING if index == 0 else self.exercise.checks[index - 1].title

    def _limit(self, index: int) -> float:
        return self.scale * (CHECK_TIMEOUT_S if index == 0 else self.exercise.checks[index - 1].timeout)

    def _follow(self, proc: subprocess.Popen[bytes], read_fd: int) -> None:
        """Read events until "done", a timeout, or the child's end; fill results and the failure."""
        buffer = b""
        received = 0
        current: int | None = None  # the step running now (0: loading the file), None between steps
        step_started = time.monotonic()
        deadline = step_started + STARTUP_TIMEOUT_S
        channel_open = True
        ended_at: float | None = None
        counted_at = 0.0
        while not self.done:
            now = time.monotonic()
            if now - counted_at > 0.25:  # a fork bomb run as root ignores RLIMIT_NPROC: count the group
                counted_at = now
                if _group_size(proc.pid) > MAX_PROCESSES:
                    self._fail(
                        current,
                        now - step_started,
                        f"your code started more than {MAX_PROCESSES} processes, so it was stopped",
                        "the exercises need no processes of their own: remove os.fork, subprocess and multiprocessing",
                    )
                    return
            if ended_at is None and _has_exited(proc.pid):
                ended_at = now
            if ended_at is not None and (not channel_open or now - ended_at > 0.2):
                return  # the child ended without "done" (a grandchild may still hold the pipe open)
            if now > deadline:
                if channel_open:
                    self._timed_out(current, now - step_started)
                else:
                    self._fail(
                        current, now - step_started, "your code closed the grader's report channel", _FD_HINT
                    )
                return
            if not channel_open:
                time.sleep(0.02)
                continue
            ready, _, _ = select.select([read_fd], [], [], 0.05)
            if not ready:
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:  # every copy of the pipe's write end is closed: the child is ending
                channel_open = False
                deadline = min(deadline, now + GRACE_S)
                continue
            received += len(chunk)
            if received > CHANNEL_LIMIT:
                self._fail(current, now - step_started, "the grader's report channel was flooded", _FD_HINT)
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                event = _parse(line, proc.pid, len(self.exercise.checks))
                if event is None:
                    continue
                kind, index = event["event"], event.get("index", 0)
                seconds = event.get("seconds", 0.0)
                if kind == "done":
                    self.done = True
                    break
                if kind == "start":
                    current, step_started = index, time.monotonic()
                    deadline = step_started + self._limit(index)
                elif kind == "passed":
                    note = event.get("note")
                    self.results.append(
                        CheckResult(self._title(index), True, seconds, note if isinstance(note, str) else "")
                    )
                    current = None
                    deadline = time.monotonic() + STARTUP_TIMEOUT_S  # until the next "start"
                elif kind == "failed":
                    self._fail(index, seconds, str(event.get("message", "")), str(event.get("hint", "")))

    def _fail(self, index: int | None, seconds: float, message: str, hint: str) -> None:
        self.results.append(CheckResult(LOADING if index is None else self._title(index), False, seconds))
        self.message, self.hint = message, hint

    def _timed_out(self, index: int | None, seconds: float) -> None:
        if index is None and self.results:
            self._fail(
                None, seconds, "the grader stalled between two checks", "try again; if it repeats, report it"
            )
            return
        if index is None:
            self._fail(
                None,
                seconds,
                f"the grader's process did not start within {STARTUP_TIMEOUT_S:.0f} s",
                "the machine is very busy, or importing the array library hangs; try again",
            )
            return
        self._fail(
            index,
            seconds,
            f"'{self._title(index)}' did not finish within {self._limit(index):.0f} s",
            "an endless loop (a `while` whose condition never changes), or a far too slow one: "
            "a Python loop over every element instead of whole-array operations",
        )

    def _died(self, code: int | None) -> None:
        steps = self._steps()
        index = steps[len(self.results)] if len(self.results) < len(steps) else None
        where = f"during '{self._title(index)}'" if index is not None else "after the checks"
        if code is not None and code < 0:
            sig = -code
            if sig == signal.SIGXFSZ:
                message, hint = (
                    f"your code printed more than {OUTPUT_LIMIT // 2**20} MB {where}, so it was stopped",
                    "a print inside a loop? print a few values, or shapes, not every element",
                )
            elif sig == signal.SIGXCPU:
                message, hint = f"your code used up its CPU time {where}", "an endless or far too slow loop"
            elif sig == signal.SIGKILL:
                message, hint = (
                    f"the process running your code was killed {where} (out of memory?)",
                    f"the grader allows {MEMORY_MB} MB; look for a huge array",
                )
            else:
                name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
                message, hint = (
                    f"your code crashed the Python process {where} ({name})",
                    "a crash below Python: ctypes, or a C extension given bad memory; "
                    "the last lines it printed (below) show where",
                )
        else:
            message, hint = (
                f"your code ended the Python process {where} (exit status {code}) before the checks could finish",
                "remove os._exit() (and any exit at the top level of your file); the grader calls your functions",
            )
        self._fail(index, 0.0, message, hint)


def _parse(line: bytes, pid: int, checks: int) -> dict[str, Any] | None:
    """One well-formed event from the child process itself; lines from forked children, or garbled, are None."""
    try:
        event = json.loads(line.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(event, dict) or event.get("pid") != pid:
        return None
    if event.get("event") not in ("start", "passed", "failed", "done"):
        return None
    index = event.get("index", 0)
    if type(index) is not int or not 0 <= index <= checks:
        return None
    seconds = event.get("seconds", 0.0)
    event["seconds"] = float(seconds) if type(seconds) in (int, float) else 0.0
    return event


def _has_exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (its process group id stays ours to kill)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _group_size(pgid: int) -> int:
    """How many processes are in process group ``pgid`` (0 where /proc cannot tell)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    count = 0
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rpartition(b")")[2].split()
            except OSError:
                continue
            if len(fields) > 2 and fields[2] == str(pgid).encode():
                count += 1
    return count


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group (before the child is reaped, so the id is still its)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(output: Any) -> str:
    """The last ``OUTPUT_SHOWN`` characters the student's code printed."""
    size = output.seek(0, os.SEEK_END)
    output.seek(max(0, size - 4 * OUTPUT_SHOWN))
    text = output.read().decode("utf-8", errors="replace")
    if len(text) > OUTPUT_SHOWN or size > 4 * OUTPUT_SHOWN:
        return f"[... {size:,} bytes in all; the last part:]\n" + text[-OUTPUT_SHOWN:]
    return text


# The child --------------------------------------------------------------------------------
def _limit_self(memory_mb: int, cpu_seconds: int) -> None:
    """Limits on this process (and what it forks), set before any student code runs."""
    import resource

    def lower(kind: int, value: int) -> None:
        hard = resource.getrlimit(kind)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value))

    if hasattr(resource, "RLIMIT_DATA"):
        lower(resource.RLIMIT_DATA, memory_mb * 2**20)
    lower(resource.RLIMIT_FSIZE, OUTPUT_LIMIT)
    lower(resource.RLIMIT_CORE, 0)
    lower(resource.RLIMIT_CPU, cpu_seconds)
    tasks = _user_tasks()
    if tasks is not None and hasattr(resource, "RLIMIT_NPROC"):
        lower(resource.RLIMIT_NPROC, tasks + EXTRA_TASKS)


def _user_tasks() -> int | None:
    """Threads the real user runs now (what RLIMIT_NPROC counts on Linux), or None without /proc."""
    uid = os.getuid()
    total = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as f:
                status = f.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)]:
            total += int(fields.get("Threads", "1").strip() or 1)
    return total or None


def main(argv: list[str]) -> int:
    """The child: limit itself, then grade and report events on ``--fd``."""
    parser = argparse.ArgumentParser(prog="tinygpt.course.sandbox")
    parser.add_argument("exercise")
    parser.add_argument("file")
    parser.add_argument("--display", required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, default=MEMORY_MB)
    parser.add_argument("--cpu-seconds", type=int, default=600)
    parser.add_argument("--no-milestone", action="store_true")
    args = parser.parse_args(argv)
    _limit_self(args.memory_mb, args.cpu_seconds)
    channel = os.fdopen(args.fd, "w", encoding="ascii", closefd=False)

    def emit(event: dict[str, Any]) -> None:
        # The pid is read at each event: a process the student's code forked reports as itself, and is ignored.
        channel.write(json.dumps({**event, "pid": os.getpid()}, ensure_ascii=True) + "\n")
        channel.flush()

    sys.dont_write_bytecode = True
    sys.path.append(args.home)  # the student's own modules import, after the library's (never shadowing it)
    from tinygpt.course.grading import grade

    exercise = registry.get(args.exercise)
    grade(
        exercise,
        Path(args.file),
        args.display,
        emit,
        f"{args.memory_mb} MB",
        milestones=not args.no_milestone,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the verdict is sent: skip the student's atexit handlers and threads
