"""The outcome of grading one file: which checks passed, the first failure, and the report a student reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OUTPUT_SHOWN = 2000  # characters of the student's own prints shown under a failure
LOADING = "loading your file"  # the title of step 0, before the first check


@dataclass
class CheckResult:
    """One check that ran: its title, whether it passed, how long it took, an optional note."""

    title: str
    passed: bool
    seconds: float
    note: str = ""


@dataclass
class Verdict:
    """Grading one student file for one exercise."""

    exercise: str
    file: str
    passed: bool
    total: int  # checks the exercise has
    results: list[CheckResult] = field(default_factory=list)  # in order; the last one failed unless passed
    message: str = ""  # the failure: what was expected, what came out, where
    hint: str = ""  # how to fix it, in the student's terms
    output: str = ""  # what the student's code printed (truncated)
    seconds: float = 0.0
    backend: str = ""
    skipped: list[str] = field(default_factory=list)  # checks not run (the milestone, with --no-milestone)

    @property
    def complete(self) -> bool:
        """Passed with nothing skipped: the exercise is done."""
        return self.passed and not self.skipped

    @property
    def failed_check(self) -> str | None:
        """The title of the check that failed (``loading your file`` included), or None."""
        return None if self.passed or not self.results else self.results[-1].title

    @property
    def checks_passed(self) -> int:
        return sum(r.passed for r in self.results if r.title != LOADING)

    @property
    def short(self) -> str:
        """One line for a class table: ``passed`` or ``failed: <message, cut>``."""
        if self.passed:
            return "passed" if not self.skipped else "passed (milestone skipped)"
        first = self.message.splitlines()[0] if self.message else "failed"
        return "failed: " + (first if len(first) <= 90 else first[:87] + "...")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed_check"] = self.failed_check
        data["checks_passed"] = self.checks_passed
        return data

    def report(self) -> str:
        """The text ``tinygpt course check`` prints: one line per check, then the failure and its hint."""
        lines = [
            f"{self.exercise}: checking {self.file}" + (f" ({self.backend} backend)" if self.backend else "")
        ]
        for i, result in enumerate(self.results):
            number = "   " if result.title == LOADING else f"{i:>2}."
            mark = "ok  " if result.passed else "FAIL"
            note = f"  {result.note}" if result.note else ""
            lines.append(f"  {mark} {number} {result.title} ({result.seconds:.1f} s){note}")
        if self.passed and self.skipped:
            lines.append(
                f"{self.exercise}: passed {self.total - len(self.skipped)} of {self.total} checks in "
                f"{self.seconds:.1f} s; skipped: {', '.join(self.skipped)} (check without --no-milestone to finish)"
            )
            return "\n".join(lines)
        if self.passed:
            lines.append(f"{self.exercise}: passed all {self.total} checks in {self.seconds:.1f} s")
            return "\n".join(lines)
        lines += ["", *("  " + line for line in self.message.splitlines())]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        if self.output.strip():
            shown = [
                line if len(line) <= 160 else line[:157] + "..." for line in self.output.rstrip().splitlines()
            ]
            lines += ["", "  your code printed:", *("    " + line for line in shown)]
        lines += [
            "",
            f"{self.exercise}: failed at '{self.failed_check}' ({self.checks_passed} of {self.total} checks passed); "
            "fix it and check again",
        ]
        return "\n".join(lines)
