"""``tinygpt prepare``: one command, one line per refusal, and an interrupted run leaves nothing behind."""

import os
import random
import signal
import subprocess
import time

import pytest

from tests.cli.test_commands import assert_one_line_error, run_cli
from tests.corpus_inputs import REFUSED, refused_input
from tests.lm_helpers import PYTHON, subprocess_env
from tinygpt.datasets import open_dataset

# The subprocess tests take seconds: they run in the numpy session only (the command is the same everywhere).
numpy_session = pytest.mark.skipif(
    os.environ.get("TINYGPT_BACKEND", "numpy") != "numpy", reason="runs in the numpy session only"
)


def write_corpus(path, megabytes, seed=0):
    rng = random.Random(seed)
    words = ["the", "king", "café", "naïve", "🙂", "it's", "don't", "and", "night"] + [
        "".join(rng.choices("abcdefghijklmnop", k=rng.randint(2, 9))) for _ in range(3000)
    ]
    lines, size = [], 0
    while size < megabytes * 1e6:
        line = " ".join(rng.choices(words, k=rng.randint(1, 14))) + "\n"
        lines.append(line)
        size += len(line.encode())
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_prepare_writes_a_dataset_and_says_how_to_train_on_it(capsys, tmp_path):
    corpus = write_corpus(tmp_path / "c.txt", 0.2)
    code, out, err = run_cli(capsys, "prepare", "--text", corpus, "--out", tmp_path / "data", "--no-progress")
    assert code == 0, err
    assert "read 0.2 MB" in out and "encoded 0.2 MB" in out and "MB/s" in out
    assert f"tinygpt train --data {tmp_path / 'data'}" in out
    assert open_dataset(tmp_path / "data").manifest.tokenizer_kind == "char"


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_prepare_refuses_what_cannot_be_a_corpus_in_one_line_within_a_second(capsys, tmp_path, kind):
    with refused_input(kind, tmp_path) as path:
        start = time.perf_counter()
        code, _, err = run_cli(capsys, "prepare", "--text", path, "--out", tmp_path / "data")
        assert time.perf_counter() - start < 1.0
    assert_one_line_error(code, err, "tinygpt prepare: error:", REFUSED[kind])
    assert not (tmp_path / "data").exists()


def test_prepare_flags_are_checked(capsys, tmp_path):
    corpus = write_corpus(tmp_path / "c.txt", 0.01)
    code, _, err = run_cli(capsys, "prepare", "--text", corpus)
    assert_one_line_error(code, err, "--out")
    code, _, err = run_cli(
        capsys, "prepare", "--text", corpus, "--out", tmp_path / "d", "--val-fraction", "1"
    )
    assert_one_line_error(code, err, "--val-fraction", "(0, 1)")
    code, _, err = run_cli(capsys, "prepare", "--out", tmp_path / "d")
    assert_one_line_error(code, err, "one of the arguments --text --corpus is required")
    code, _, err = run_cli(
        capsys, "prepare", "--text", corpus, "--out", tmp_path / "d", "--vocab-size", "300"
    )
    assert_one_line_error(code, err, "--vocab-size applies to --tokenizer bpe")


@numpy_session
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_prepare_stopped_midway_leaves_nothing_behind(tmp_path, signum, code):
    pytest.importorskip("tokenizers")
    corpus = write_corpus(tmp_path / "c.txt", 3)
    process = subprocess.Popen(
        [PYTHON, "-m", "tinygpt", "prepare", "--text", str(corpus), "--out", str(tmp_path / "data"),
         "--tokenizer", "bpe", "--vocab-size", "2000", "--no-progress"],
        cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not [
        p for p in tmp_path.iterdir() if p.name.startswith(".data.") and p.name.endswith(".partial")
    ]:  # encoding has begun
        assert process.poll() is None and time.monotonic() < deadline, process.communicate(timeout=60)
        time.sleep(0.005)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == code, (out, err)
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]  # no dataset, no temporary directory
