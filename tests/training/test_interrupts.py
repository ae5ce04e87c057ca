"""Real training processes killed at random moments (SIGKILL) or stopped with Ctrl-C or SIGTERM.

Whatever the moment, the run directory must stay loadable and ``--resume`` must
finish the run with the same metrics an uninterrupted run writes.
"""

import itertools
import json
import os
import random
import signal
import subprocess
import time

import pytest

from tests.lm_helpers import PYTHON, subprocess_env
from tinygpt.checkpoint import load_checkpoint, resolve_checkpoint

MAX_ITERS = 400
EVAL_INTERVAL = 10
FLAGS = [
    "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16", "--batch-size", "8",
    "--max-iters", str(MAX_ITERS), "--eval-interval", str(EVAL_INTERVAL), "--eval-iters", "2",
    "--warmup-iters", "20", "--dropout", "0.1", "--no-progress",
]  # fmt: skip
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    words = "the quick brown fox jumps over a lazy dog while seven wizards box".split()
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("text") / "words.txt"
    path.write_text(" ".join(rng.choice(words) for _ in range(400)) + "\n", encoding="utf-8")
    return path


def _start(corpus, out, *extra):
    return subprocess.Popen(
        [PYTHON, "-m", "tinygpt", "train", "--text", str(corpus), "--out", str(out), *FLAGS, *extra],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _last_iter(out):
    """The last evaluated step in metrics.jsonl (-1 if none yet); tolerates a half-written line."""
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return -1
    for line in reversed(lines):
        try:
            return json.loads(line)["iter"]
        except (json.JSONDecodeError, KeyError):
            continue
    return -1


def _wait_for_iter(proc, out, target):
    """Poll until the run has evaluated step ``target``; False if the process ended first."""
    deadline = time.monotonic() + TIMEOUT_S
    while _last_iter(out) < target:
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.005)
    return True


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _latest_step(out):
    return load_checkpoint(resolve_checkpoint(out, "latest"), with_training_state=True).trainer_state["step"]


def _finish(proc):
    stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, stdout, stderr


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus):
    """The metrics of the same run, never interrupted."""
    out = tmp_path_factory.mktemp("reference") / "run"
    code, _, stderr = _finish(_start(corpus, out))
    assert code == 0, stderr
    return _metrics(out)


def _seed() -> int:
    """A fresh random seed, printed (pytest shows it on failure); TINYGPT_TEST_SEED replays one."""
    seed = int(os.environ.get("TINYGPT_TEST_SEED") or int.from_bytes(os.urandom(4), "little"))
    print(f"random seed {seed} (replay with TINYGPT_TEST_SEED={seed})")
    return seed


def test_sigkill_at_random_moments_then_resume_finishes_the_run(tmp_path, corpus, reference):
    rng = random.Random(_seed())
    out = tmp_path / "run"
    kills = []
    for attempt in range(4):
        has_run = (out / "latest.json").exists()
        proc = _start(corpus, out, *(["--resume"] if has_run else []))
        if attempt == 0:
            time.sleep(rng.uniform(0.0, 0.5))  # anywhere, possibly before the first checkpoint
        elif attempt < 3:
            # after this process has written a checkpoint of its own, then a random moment later; far
            # enough from the end that a fast machine cannot finish the run before the kill lands
            target = max(_last_iter(out), 0) + EVAL_INTERVAL * rng.randint(1, 3)
            assert _wait_for_iter(proc, out, min(target, MAX_ITERS // 2)), _finish(proc)[2]
            time.sleep(rng.uniform(0.0, 0.02))
        if attempt == 3:
            code, _, stderr = _finish(proc)  # the last one runs to the end
            assert code == 0, stderr
            break
        proc.send_signal(signal.SIGKILL)
        code, _, _ = _finish(proc)
        kills.append((attempt, code, _last_iter(out)))
        if (out / "latest.json").exists():  # whatever the moment, what is published loads
            assert 0 <= _latest_step(out) <= MAX_ITERS

    assert sum(code == -signal.SIGKILL for _, code, _ in kills) >= 2, kills
    print("kills (attempt, exit code, last evaluated step):", kills)
    assert _latest_step(out) == MAX_ITERS
    load_checkpoint(out)  # the best checkpoint too
    iters = [m["iter"] for m in _metrics(out)]
    assert all(a < b for a, b in itertools.pairwise(iters)), iters
    assert iters == list(range(0, MAX_ITERS + 1, EVAL_INTERVAL))
    # Resuming replays exactly: the same losses as the run that was never killed.
    for got, want in zip(_metrics(out), reference, strict=True):
        assert (got["iter"], got["train_loss"], got["val_loss"]) == (
            want["iter"],
            want["train_loss"],
            want["val_loss"],
        )
    leftovers = [p.name for p in (out / "checkpoints").iterdir()]
    pointed = {
        json.loads((out / f"{w}.json").read_text())["checkpoint"].split("/")[-1] for w in ("latest", "best")
    }
    assert set(leftovers) == pointed  # no temporary or orphaned checkpoint directories


@pytest.mark.parametrize(
    ("signum", "exit_code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143)],  # Ctrl-C; docker stop, Slurm, systemd, mpiexec
    ids=["ctrl-c", "sigterm"],
)
def test_a_stop_signal_saves_exits_and_resume_continues_from_that_step(
    tmp_path, corpus, reference, signum, exit_code
):
    out = tmp_path / "run"
    proc = _start(corpus, out)
    assert _wait_for_iter(proc, out, EVAL_INTERVAL * 3)
    time.sleep(random.Random(_seed()).uniform(0.0, 0.02))
    proc.send_signal(signum)
    code, _, stderr = _finish(proc)
    assert code == exit_code, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "--resume" in lines[0]
    step = _latest_step(out)
    assert f"interrupted at step {step}" in lines[0]
    assert EVAL_INTERVAL * 3 <= step < MAX_ITERS

    code, stdout, stderr = _finish(_start(corpus, out, "--resume"))
    assert code == 0, stderr
    assert f"from step {step}" in stdout
    assert _latest_step(out) == MAX_ITERS
    assert _metrics(out) and [m["iter"] for m in _metrics(out)] == [m["iter"] for m in reference]
    for got, want in zip(_metrics(out), reference, strict=True):
        assert (got["train_loss"], got["val_loss"]) == (want["train_loss"], want["val_loss"])
