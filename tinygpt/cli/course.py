"""``tinygpt course``: the build-it-yourself course: list, start, check, status, and grading a class."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

from tinygpt import backend
from tinygpt.cli.args import add_backend_flags, positive_int
from tinygpt.course import classroom, notebooks, registry
from tinygpt.course.errors import CourseError
from tinygpt.course.exercise import Exercise
from tinygpt.course.progress import Progress, now, student_file
from tinygpt.course.sandbox import grade_file
from tinygpt.course.verdict import Verdict
from tinygpt.files import write_bytes_atomic


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "course",
        help="build it yourself: exercises that grade your own tokenizer, attention, layer norm ...",
        description="Write every piece of TinyGPT yourself: start an exercise, fill it in, check it "
        "(each check runs your file in a separate process and stops at the first problem). "
        "Docs: docs/course.md.",
    )
    commands = p.add_subparsers(dest="course_command", required=True, metavar="COMMAND", parser_class=type(p))

    listing = commands.add_parser("list", help="the exercises in teaching order, with your status")
    listing.add_argument("--dir", default=".", help="the folder your exercises are in (default: here)")
    listing.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    listing.set_defaults(run=run_list)

    start = commands.add_parser("start", help="write an exercise's starter file for you to fill in")
    start.add_argument("name", metavar="NAME", help="the exercise (see `tinygpt course list`)")
    start.add_argument("--dir", default=".", help="where to write NAME.py (default: here)")
    start.add_argument("--notebook", action="store_true", help="write NAME.ipynb (needs tinygpt[course])")
    start.add_argument(
        "--force", action="store_true", help="replace an existing file, keeping a dated backup"
    )
    start.set_defaults(run=run_start)

    check = commands.add_parser(
        "check",
        help="grade your file for an exercise (exit 0 passed, 1 failed, 2 usage error)",
        description="Grade your file: `check NAME [PATH]` (PATH defaults to ./NAME.py), or a whole class "
        "with `check --all CLASS_DIR` (one folder per student).",
    )
    check.add_argument("name", metavar="NAME", nargs="?", help="the exercise")
    check.add_argument("path", metavar="PATH", nargs="?", help="your .py or .ipynb file (default: ./NAME.py)")
    check.add_argument("--all", metavar="CLASS_DIR", help="grade every student folder in CLASS_DIR")
    check.add_argument(
        "--no-milestone", action="store_true", help="skip the integration milestone (quicker, while you work)"
    )
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.add_argument("--csv", action="store_true", help="with --all: print the table as CSV")
    check.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        help="with --all: files graded at once (default: the cores, at most 4)",
    )
    add_backend_flags(check)
    check.set_defaults(run=run_check)

    status = commands.add_parser("status", help="how far you are: passed, started, and what to do next")
    status.add_argument("--dir", default=".", help="the folder your exercises are in (default: here)")
    status.set_defaults(run=run_status)


# list and status ---------------------------------------------------------------------------
def _listing(folder: Path) -> tuple[list[dict[str, Any]], Progress]:
    progress = Progress(folder)
    rows = []
    for number, exercise in enumerate(registry.exercises(), start=1):
        status = progress.status(exercise)
        rows.append(
            {
                "number": number,
                "name": exercise.name,
                "title": exercise.title,
                "teaches": exercise.teaches,
                "minutes": exercise.minutes,
                "checks": len(exercise.checks),
                **status.to_dict(),
            }
        )
    return rows, progress


def _warn(progress: Progress) -> None:
    warning = progress.warning()
    if warning:
        print(f"tinygpt course: warning: {warning}", file=sys.stderr)


def _when(row: dict[str, Any]) -> str:
    if row["status"].startswith("passed"):
        return f"{row['status']} {row['passed'][:16].replace('T', ' ')}"
    return row["status"]


def run_list(args: argparse.Namespace) -> int:
    rows, progress = _listing(Path(args.dir))
    _warn(progress)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'#':>2}  {'exercise':<22}{'min':>4}  {'status':<28}what it teaches")
    for row in rows:
        print(f"{row['number']:>2}  {row['name']:<22}{row['minutes']:>4}  {_when(row):<28}{row['teaches']}")
    total = sum(r["minutes"] for r in rows)
    print(f"\n{len(rows)} exercises, about {total / 60:.1f} hours. Start one: tinygpt course start NAME")
    return 0


def run_status(args: argparse.Namespace) -> int:
    rows, progress = _listing(Path(args.dir))
    _warn(progress)
    passed = [r for r in rows if r["status"].startswith("passed")]
    for row in rows:
        line = f"  {row['name']:<22}{_when(row)}"
        if row["status"] == "started" and row["last_result"]:
            line += f"  (last check: {row['last_result'][:70]})"
        print(line)
    print(f"\n{len(passed)} of {len(rows)} exercises passed.")
    todo = next((r for r in rows if not r["status"].startswith("passed")), None)
    if todo is not None:
        if todo["status"] == "not started":
            print(f"Next: tinygpt course start {todo['name']}")
        else:
            print(f"Next: tinygpt course check {todo['name']} {todo['file']}")
    return 0


# start ------------------------------------------------------------------------------------------
def run_start(args: argparse.Namespace) -> int:
    exercise = registry.get(args.name)
    folder = Path(args.dir)
    if folder.exists() and not folder.is_dir():
        raise CourseError(f"--dir {folder} is a file, not a folder")
    suffix = ".ipynb" if args.notebook else ".py"
    target = folder / f"{exercise.name}{suffix}"
    text = (
        notebooks.notebook(exercise, notebooks.install_requirement())
        if args.notebook
        else notebooks.script(exercise)
    )
    backup = None
    if target.exists() or target.is_symlink():
        if not args.force:
            raise CourseError(
                f"{target} already exists (your work?) and was left as it is; check it with "
                f"`tinygpt course check {exercise.name} {target}`, or pass --force to start afresh "
                "(the old file is kept as a dated backup)"
            )
        if target.is_dir():
            raise CourseError(f"{target} is a folder; move it away first")
        backup = _backup(target)
    write_bytes_atomic(target, text.encode("utf-8"))
    Progress(folder).record_start(exercise, target)
    if backup is not None:
        print(f"kept your previous file as {backup}")
    print(f"wrote {target}: {exercise.title}, about {exercise.minutes} minutes")
    print(
        f"fill in the bodies that raise NotImplementedError, then: tinygpt course check {exercise.name} {target}"
    )
    return 0


def _backup(path: Path) -> Path:
    """Move ``path`` aside to ``NAME.YYYYmmdd-HHMMSS.bak.py`` (never over an existing file)."""
    stamp = now()[:19].replace("-", "").replace(":", "").replace("T", "-")
    for n in range(1000):
        extra = f"-{n}" if n else ""
        candidate = path.with_name(f"{path.stem}.{stamp}{extra}.bak{path.suffix}")
        try:
            os.link(path, candidate)  # fails if the name is taken: nothing is ever overwritten
        except FileExistsError:
            continue
        except OSError:  # no hard links here (some file systems): an exclusive copy
            try:
                with open(candidate, "xb") as out:
                    out.write(path.read_bytes())
            except FileExistsError:
                continue
        path.unlink()
        return candidate
    raise CourseError(f"could not find a free backup name for {path}")


# check ------------------------------------------------------------------------------------------
def _backend_name(args: argparse.Namespace) -> str | None:
    if args.backend:
        backend.use(args.backend, args.device)  # fails here, in one line, if it cannot run
        return str(args.backend)
    if args.device:
        return backend.current().name
    return None


def run_check(args: argparse.Namespace) -> int:
    if args.all:
        if args.name or args.path:
            raise CourseError("give either NAME [PATH] or --all CLASS_DIR, not both")
        return run_class(args)
    if args.csv:
        raise CourseError("--csv goes with --all CLASS_DIR (a class table)")
    if not args.name:
        raise CourseError("name the exercise to check, e.g. `tinygpt course check char_tokenizer`")
    exercise = registry.get(args.name)
    path = Path(args.path) if args.path else Path(f"{exercise.name}.py")
    verdict = grade_file(
        exercise.name, path, _backend_name(args), args.device, milestones=not args.no_milestone
    )
    _record(exercise, path, verdict)
    print(json.dumps(verdict.to_dict(), indent=2) if args.json else verdict.report())
    return 0 if verdict.passed else 1


def _record(exercise: Exercise, path: Path, verdict: Verdict) -> None:
    progress = Progress(path.parent)
    _warn(progress)
    try:
        progress.record_check(exercise, path, verdict.complete, verdict.short)
    except OSError as exc:  # a read-only folder: grading still counts
        print(f"tinygpt course: warning: progress not recorded ({exc})", file=sys.stderr)


def run_class(args: argparse.Namespace) -> int:
    """``check --all CLASS_DIR``: every student's every exercise; a table, JSON or CSV."""
    if args.json and args.csv:
        raise CourseError("choose one of --json and --csv")
    chosen = _backend_name(args)
    exercises = registry.exercises()
    folders = classroom.student_folders(Path(args.all))
    files = sum(1 for f in folders for e in exercises if student_file(f, e) is not None)
    print(f"grading {files} files of {len(folders)} students ...", file=sys.stderr)
    done = [0]

    def progress(student: str, exercise: str, verdict: Verdict) -> None:
        done[0] += 1
        print(f"  [{done[0]}/{files}] {student} {exercise}: {verdict.short}", file=sys.stderr)

    students = classroom.grade_class(Path(args.all), args.jobs, chosen, args.device, on_done=progress)
    rows = [
        {
            "student": s.name,
            "exercise": e.name,
            "status": "missing" if v is None else "passed" if v.passed else "failed",
            "failed_check": None if v is None else v.failed_check,
            "message": "" if v is None or v.passed else v.message,
            "file": None if v is None else v.file,
            "seconds": None if v is None else round(v.seconds, 2),
        }
        for s in students
        for e in exercises
        for v in [s.verdicts[e.name]]
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["student", *(e.name for e in exercises), "passed"])
        for s in students:
            cells = [_cell(s.verdicts[e.name]) for e in exercises]
            writer.writerow([s.name, *cells, s.passed])
    else:
        _print_class_table(students, exercises)
    return 0


def _cell(verdict: Verdict | None) -> str:
    return "missing" if verdict is None else verdict.short


def _print_class_table(students: list[classroom.StudentResults], exercises: list[Exercise]) -> None:
    width = max(8, *(len(s.name) for s in students))
    heads = [f"{i:>6}" for i in range(1, len(exercises) + 1)]
    print(f"{'student':<{width}}{''.join(heads)}  passed")
    for s in students:
        marks = "".join(
            f"{'-' if v is None else 'ok' if v.passed else 'FAIL':>6}"
            for v in (s.verdicts[e.name] for e in exercises)
        )
        print(f"{s.name:<{width}}{marks}  {s.passed}/{len(exercises)}")
    print("\n" + "  ".join(f"{i}={e.name}" for i, e in enumerate(exercises, start=1)) + "   (- = no file)")
    failures = [
        (s.name, e.name, v)
        for s in students
        for e in exercises
        for v in [s.verdicts[e.name]]
        if v and not v.passed
    ]
    if failures:
        print("\nfailures (first message):")
        for student, exercise, verdict in failures:
            print(f"  {student} / {exercise}: {verdict.short.removeprefix('failed: ')}")
