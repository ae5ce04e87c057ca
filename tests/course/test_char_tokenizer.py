"""The char_tokenizer exercise: its solution passes on every backend; its starter and planted bugs fail, naming the fault."""

from __future__ import annotations

import pytest

from tests.course.helpers import failure_text, grade_source, numpy_session, plant, solution, starter

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


@numpy_session
def test_the_starter_names_the_first_function_to_write(tmp_path):
    verdict = grade_source(NAME, starter(NAME), tmp_path)
    assert verdict.message == "not implemented yet: CharTokenizer.__init__", verdict.report()


@numpy_session
@pytest.mark.parametrize(("what", "old", "new", "expected"), BUGS, ids=[b[0] for b in BUGS])
def test_a_planted_bug_fails_naming_the_fault(tmp_path, what, old, new, expected):
    verdict = grade_source(NAME, plant(solution(NAME), old, new), tmp_path)
    assert not verdict.passed, f"{what} passed"
    assert expected in failure_text(verdict), verdict.report()


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
