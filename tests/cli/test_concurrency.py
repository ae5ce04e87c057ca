"""Two processes on one run directory: the second is refused at once, the files stay consistent."""

from __future__ import annotations

import itertools
import json
import subprocess
import time

import pytest

from tests.cli.test_commands import TINY
from tests.lm_helpers import PYTHON, subprocess_env

# Import tinygpt first (the slow part), then wait at the barrier: both start training together.
BEHIND_A_BARRIER = """
import os, sys, time
from tinygpt.cli import main
flag = sys.argv[1]
while not os.path.exists(flag):
    time.sleep(0.001)
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("First Citizen: Before we proceed any further, hear me speak.\n" * 6, encoding="utf-8")
    return path


def _together(tmp_path, *argv_lists):
    flag = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", BEHIND_A_BARRIER, str(flag), *map(str, argv)],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argv_lists
    ]
    time.sleep(1.0)  # both are past their imports, spinning at the barrier
    flag.write_text("go")
    return [(p.wait(timeout=60), *p.communicate()) for p in procs]


def _assert_one_ran_one_was_refused(results, out):
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    (refused,) = [err for code, _, err in results if code == 2]
    assert "in use by another tinygpt process (pid " in refused and " on host " in refused, refused
    assert "Traceback" not in refused
    iters = [json.loads(line)["iter"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(a < b for a, b in itertools.pairwise(iters)), iters  # no duplicates, no disorder


def test_two_new_runs_into_one_directory(tmp_path, corpus):
    out = tmp_path / "run"
    argv = ["train", "--text", corpus, "--out", out, *TINY, "--max-iters", 200, "--eval-interval", 20]
    _assert_one_ran_one_was_refused(_together(tmp_path, argv, argv), out)


def test_two_resumes_of_one_run(tmp_path, corpus):
    out = tmp_path / "run"
    first = subprocess.run(
        [PYTHON, "-m", "tinygpt", "train", "--text", str(corpus), "--out", str(out), *map(str, TINY)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    argv = ["train", "--out", out, "--resume", "--max-iters", 200]
    _assert_one_ran_one_was_refused(_together(tmp_path, argv, argv), out)
