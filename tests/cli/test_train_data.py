"""``train --data`` and ``eval --data``: a prepared dataset trains, resumes and evaluates like its text does."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.cli.test_commands import TINY, assert_one_line_error, run_cli
from tests.lm_helpers import subprocess_env
from tinygpt.datasets import cache as cache_module
from tinygpt.datasets import open_dataset

numpy_session = pytest.mark.skipif(
    os.environ.get("TINYGPT_BACKEND", "numpy") != "numpy", reason="runs in the numpy session only"
)


def write_text(path, lines=400, seed=0):
    rng = random.Random(seed)
    words = ["the", "king", "café", "naïve", "🙂", "it's", "and", "night", "sword", "crown", "é"]
    path.write_text(
        "".join(" ".join(rng.choices(words, k=rng.randint(1, 10))) + "\r\n" for _ in range(lines)),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def text(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGPT_CACHE", str(tmp_path / "cache"))
    return write_text(tmp_path / "corpus.txt")


def prepare(capsys, text, out, *flags):
    code, _, err = run_cli(capsys, "prepare", "--text", text, "--out", out, "--no-progress", *flags)
    assert code == 0, err
    return out


def train(capsys, out, *flags):
    return run_cli(capsys, "train", "--out", out, *TINY, *flags)


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def losses(out):
    return [(m["iter"], m["train_loss"], m["val_loss"], m["val_bpb"]) for m in metrics(out)]


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_prepare_train_resume_eval_round_trip(capsys, tmp_path, text, tokenizer):
    extra = ("--tokenizer", "bpe", "--vocab-size", "300") if tokenizer == "bpe" else ()
    if extra:
        pytest.importorskip("tokenizers")
    data = prepare(capsys, text, tmp_path / "data", *extra)
    run = tmp_path / "run"
    code, out, err = train(capsys, run, "--data", data)
    assert code == 0, err
    assert f"on {open_dataset(data).manifest.train.tokens:,} tokens" in out
    code, out, err = train(capsys, run, "--resume", "--max-iters", 30)
    assert code == 0, err
    assert f"resuming on the data the run recorded: {data.resolve()}" in out
    assert [m["iter"] for m in metrics(run)] == [0, 10, 20, 30]
    code, out, err = run_cli(capsys, "eval", "--checkpoint", run, "--json")
    assert code == 0, err
    recorded = json.loads(out)
    code, out, err = run_cli(capsys, "eval", "--checkpoint", run, "--data", data, "--json")
    assert json.loads(out)["val_loss"] == recorded["val_loss"] and recorded["val_bpb"] > 0


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_data_and_text_give_the_same_ids_and_so_the_same_run(capsys, tmp_path, text, tokenizer):
    extra = ("--tokenizer", "bpe", "--vocab-size", "300") if tokenizer == "bpe" else ()
    if extra:
        pytest.importorskip("tokenizers")
    data = prepare(capsys, text, tmp_path / "data", *extra)
    assert train(capsys, tmp_path / "from-text", "--text", text, *extra)[0] == 0
    assert train(capsys, tmp_path / "from-data", "--data", data)[0] == 0
    assert losses(tmp_path / "from-data") == losses(
        tmp_path / "from-text"
    )  # same ids, same windows: same losses
    _, out, _ = run_cli(capsys, "eval", "--checkpoint", tmp_path / "from-text", "--json")
    _, out_data, _ = run_cli(capsys, "eval", "--checkpoint", tmp_path / "from-text", "--data", data, "--json")
    assert json.loads(out)["val_loss"] == json.loads(out_data)["val_loss"]


def test_a_large_text_is_prepared_once_into_the_cache_and_trains_as_in_memory(
    capsys, tmp_path, text, monkeypatch
):
    assert train(capsys, tmp_path / "in-memory", "--text", text)[0] == 0
    monkeypatch.setattr(cache_module, "IN_MEMORY_BYTES", 1000)  # the text is now "large"
    code, out, err = train(capsys, tmp_path / "cached", "--text", text)
    assert code == 0, err
    assert "preparing it once" in out and str(tmp_path / "cache" / "datasets") in out
    assert losses(tmp_path / "cached") == losses(tmp_path / "in-memory")
    code, out, err = train(capsys, tmp_path / "cached", "--resume", "--max-iters", 30)
    assert code == 0, err
    assert "using the prepared dataset" in out  # found again by the file's SHA-256
    code, out, err = train(capsys, tmp_path / "again", "--text", text)
    assert "using the prepared dataset" in out


def test_resume_on_other_data_is_refused_naming_it(capsys, tmp_path, text):
    data = prepare(capsys, text, tmp_path / "data")
    run = tmp_path / "run"
    assert train(capsys, run, "--data", data)[0] == 0
    other = prepare(capsys, write_text(tmp_path / "other.txt", seed=5), tmp_path / "other")
    code, _, err = train(capsys, run, "--resume", "--data", other, "--max-iters", 30)
    assert_one_line_error(code, err, str(other), "not the data the run trained on")
    shutil.rmtree(data)
    shutil.move(other, data)  # another dataset at the recorded path
    code, _, err = train(capsys, run, "--resume", "--max-iters", 30)
    assert_one_line_error(code, err, "not the data the run trained on")
    assert [m["iter"] for m in metrics(run)] == [0, 10, 20]


def test_a_dataset_fixes_its_tokenizer_and_split(capsys, tmp_path, text):
    data = prepare(capsys, text, tmp_path / "data")
    code, _, err = train(capsys, tmp_path / "r1", "--data", data, "--tokenizer", "bpe")
    assert_one_line_error(code, err, "--tokenizer", "the dataset's tokenizer")
    code, _, err = train(capsys, tmp_path / "r2", "--data", data, "--val-fraction", "0.2")
    assert_one_line_error(code, err, "--val-fraction 0.2", "0.1", "tinygpt prepare")
    code, _, err = train(capsys, tmp_path / "r3", "--data", tmp_path / "nowhere")
    assert_one_line_error(code, err, "does not exist", "tinygpt prepare")
    code, _, err = train(capsys, tmp_path / "r4", "--data", data, "--text", text)
    assert_one_line_error(code, err, "not allowed with argument")


def test_sample_needs_no_dataset(capsys, tmp_path, text):
    data = prepare(capsys, text, tmp_path / "data")
    assert train(capsys, tmp_path / "run", "--data", data)[0] == 0
    shutil.rmtree(data)
    code, out, err = run_cli(capsys, "sample", "--checkpoint", tmp_path / "run", "--max-new-tokens", "20")
    assert code == 0, err and out


# Memory: what the issue is for. Subprocesses, so the numpy session only -------------------------------
RANK_MEMORY = textwrap.dedent(
    """
    import resource, sys
    limit = int(sys.argv[1])
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from tinygpt.cli import main
    code = main(sys.argv[2:])
    peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
    print("PEAK_KB", peak)
    sys.exit(code)
    """
)


def train_measured(cwd, address_space_limit, *args):
    result = subprocess.run(
        [sys.executable, "-c", RANK_MEMORY, str(address_space_limit), "train", *map(str, args), *TINY],
        cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split("PEAK_KB")[-1].split()[0]) / 1024


@numpy_session
def test_training_memory_does_not_grow_with_the_dataset(capsys, tmp_path):
    small = prepare(capsys, write_text(tmp_path / "small.txt", lines=2_000), tmp_path / "small")
    large = prepare(capsys, write_text(tmp_path / "large.txt", lines=100_000, seed=1), tmp_path / "large")
    assert (large / "train.bin").stat().st_size > 40 * (small / "train.bin").stat().st_size  # ~4 MB vs 80 kB
    peak_small = train_measured(tmp_path, 0, "--data", small, "--out", tmp_path / "r-small")
    peak_large = train_measured(tmp_path, 0, "--data", large, "--out", tmp_path / "r-large")
    # In memory, the large text would cost ~25 bytes a character (text, ids, arrays): over 80 MB more.
    assert peak_large - peak_small < 15, (peak_small, peak_large)


@numpy_session
def test_training_on_a_dataset_larger_than_the_address_space_limit(capsys, tmp_path):
    data = prepare(capsys, write_text(tmp_path / "t.txt"), tmp_path / "data")
    manifest = json.loads((data / "manifest.json").read_text())
    tokens = 8 << 30  # 8 GiB of token 0 ("\n"): a sparse file that takes no disk
    with open(data / "train.bin", "r+b") as f:
        f.truncate(tokens)
    manifest["splits"]["train"].update(tokens=tokens, characters=tokens, bytes=tokens)
    (data / "manifest.json").write_text(json.dumps(manifest))
    peak = train_measured(tmp_path, 2 << 30, "--data", data, "--out", tmp_path / "run")  # 2 GiB for 8 GiB
    assert peak < 500
