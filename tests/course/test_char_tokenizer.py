"""The char_tokenizer exercise: its planted bugs fail, naming the fault (its solution and starter: test_exercises.py)."""

from __future__ import annotations

import pytest

from tests.course.helpers import (
    failure_text,
    grade_source,
    numpy_session,
    plant,
    planted_bugs_fail,
    solution,
)

NAME = "char_tokenizer"

# (what the student got wrong, text in the solution, the wrong version, words the failure must contain)
BUGS = [
    (
        "unsorted vocabulary",
        "self.chars = sorted(set(text))",
        "self.chars = list(dict.fromkeys(text))",
        "sort the characters",
    ),
    (
        "ids as a list",
        "return b.xp.asarray(ids, dtype=b.int_dtype, device=b.device)",
        "return ids",
        "should be an array",
    ),
    (
        "float ids",
        "return b.xp.asarray(ids, dtype=b.int_dtype, device=b.device)",
        "return b.xp.asarray(ids, dtype=b.float_dtype, device=b.device)",
        "should have dtype int64, got float32",
    ),
    (
        "ids from 1",
        "self.ids = {char: i for i, char in enumerate(self.chars)}",
        "self.ids = {char: i + 1 for i, char in enumerate(self.chars)}",
        "ids start at 0",
    ),
    (
        "unknown characters skipped",
        """            if char not in self.ids:
                raise ValueError(f"character {char!r} is not in the vocabulary")
            ids.append(self.ids[char])""",
        """            if char in self.ids:
                ids.append(self.ids[char])""",
        "'z' is not in the vocabulary",
    ),
    (
        "KeyError for an unknown character",
        """            if char not in self.ids:
                raise ValueError(f"character {char!r} is not in the vocabulary")
            ids.append(self.ids[char])""",
        "            ids.append(self.ids[char])",
        "so refuse it with a ValueError",
    ),
    (
        "negative ids wrap around",
        "            if not 0 <= i < len(self.chars):",
        "            if not i < len(self.chars):",
        "negative indices from the end",
    ),
    (
        "vocab_size off by one",
        "        return len(self.chars)\n",
        "        return len(self.chars) - 1\n",
        "vocab_size: expected",
    ),
]


test_a_planted_bug_fails_naming_the_fault = planted_bugs_fail(NAME, BUGS)


@numpy_session
def test_ids_without_device_fail_on_the_strict_backend(tmp_path):
    pytest.importorskip("array_api_strict")
    source = plant(
        solution(NAME),
        "return b.xp.asarray(ids, dtype=b.int_dtype, device=b.device)",
        "return b.xp.asarray(ids, dtype=b.int_dtype)",
    )
    verdict = grade_source(NAME, source, tmp_path, backend="array_api_strict")
    assert not verdict.passed
    assert "pass device=backend.current().device" in failure_text(verdict), verdict.report()


@numpy_session
def test_plain_numpy_is_accepted_on_the_numpy_backend(tmp_path):
    source = plant(
        solution(NAME), "from tinygpt import backend\n", "import numpy as np\n\nfrom tinygpt import backend\n"
    )
    source = plant(
        source,
        "return b.xp.asarray(ids, dtype=b.int_dtype, device=b.device)",
        "return np.array(ids, dtype=np.int64)",
    )
    verdict = grade_source(NAME, source, tmp_path, backend="numpy")
    assert verdict.passed, verdict.report()
