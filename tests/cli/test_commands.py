"""The command line: train / sample / eval / info work, and every bad input is one clear line."""

import itertools
import json
import math
import shlex
import shutil
import signal
import subprocess

import pytest

from tests.lm_helpers import PYTHON, killed_after, subprocess_env
from tinygpt import backend
from tinygpt.cli import main
from tinygpt.cli import sample as sample_command
from tinygpt.data import min_text_length
from tinygpt.errors import BackendError

TEXT = "First Citizen: Before we proceed any further, hear me speak.\n" * 6  # 366 characters
TINY = [
    "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8",
    "--batch-size", "4", "--max-iters", "20", "--eval-interval", "10", "--eval-iters", "2",
    "--warmup-iters", "2", "--no-progress",
]  # fmt: skip


def run_cli(capsys, *args):
    """``main(args)`` in-process: (exit status, stdout, stderr); argparse exits count too."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def run_subprocess(*args, cwd, **env):
    return subprocess.run(
        [PYTHON, "-m", "tinygpt", *map(str, args)],
        cwd=cwd,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(code, err, *needles):
    assert code not in (0, None), err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "small.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("runs") / "run"
    with backend.using("numpy"):
        assert main(["train", "--text", str(corpus), "--out", str(out), *TINY]) == 0
    return out


# Commands that work ------------------------------------------------------------------------
def test_train_writes_metrics_and_pointers(capsys, corpus, tmp_path):
    code, out, err = run_cli(capsys, "train", "--text", corpus, "--out", tmp_path / "r", *TINY)
    assert code == 0, err
    assert "step    20/20" in out and "done: best val loss" in out
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [0, 10, 20]
    latest = json.loads((tmp_path / "r" / "latest.json").read_text())["checkpoint"]
    assert latest == "checkpoints/step-0000020"
    assert (tmp_path / "r" / json.loads((tmp_path / "r" / "best.json").read_text())["checkpoint"]).is_dir()


def test_train_prints_a_sample_when_asked(capsys, corpus, tmp_path):
    code, out, _ = run_cli(
        capsys, "train", "--text", corpus, "--out", tmp_path / "r", *TINY, "--sample-chars", 30
    )
    assert code == 0
    after = out.split("sample with:")[1].split("\n", 1)[1]  # the sample starts from a newline
    assert len(after) == 1 + 30 + 1 and set(after) <= set(TEXT)


def test_the_printed_sample_command_pastes_as_is(capsys, corpus, tmp_path):
    out = tmp_path / "a b" / "run ☃ $HOME 'x'"
    code, text, err = run_cli(capsys, "train", "--text", corpus, "--out", out, *TINY)
    assert code == 0, err
    command = shlex.split(text.split("sample with: ")[1].splitlines()[0])
    assert command == ["tinygpt", "sample", "--checkpoint", str(out)]
    code, sample, err = run_cli(capsys, *command[1:], "--max-new-tokens", 5)
    assert code == 0, err
    assert len(sample) == 5 + 1


def test_sample_prints_text(capsys, run_dir):
    code, out, err = run_cli(
        capsys, "sample", "--checkpoint", run_dir, "--prompt", "First", "--max-new-tokens", 40, "--seed", 1
    )
    assert code == 0, err
    assert out.startswith("First") and len(out.rstrip("\n")) >= 40
    assert set(out) <= set(TEXT)
    again = run_cli(
        capsys, "sample", "--checkpoint", run_dir, "--prompt", "First", "--max-new-tokens", 40, "--seed", 1
    )
    assert again[1] == out


def test_sample_several_with_filters_and_no_cache(capsys, run_dir):
    code, out, err = run_cli(
        capsys, "sample", "--checkpoint", run_dir, "--which", "latest", "--num-samples", 2,
        "--max-new-tokens", 12, "--top-k", 5, "--top-p", 0.9, "--temperature", 0.7, "--no-cache", "--seed", 0,
    )  # fmt: skip
    assert code == 0, err
    assert "--- sample 1 ---" in out and "--- sample 2 ---" in out


def test_eval_prints_a_json_line_with_val_loss(capsys, run_dir):
    code, out, err = run_cli(capsys, "eval", "--checkpoint", run_dir, "--json")
    assert code == 0, err
    result = json.loads(out.strip())
    assert result["val_loss"] > 0 and result["windows"] >= 1
    assert result["tokens"] == result["windows"] * 8
    assert result["val_bpb"] == pytest.approx(result["val_loss"] / math.log(2))  # ASCII: a byte per token


def test_info_describes_the_model(capsys, run_dir):
    code, out, err = run_cli(capsys, "info", "--checkpoint", run_dir)
    assert code == 0, err
    assert "n_embd=16" in out and "total" in out and "FLOPs per token" in out


def test_python_dash_m_tinygpt_trains_and_samples(tmp_path, corpus):
    done = run_subprocess("train", "--text", corpus, "--out", "r", *TINY, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r" / "metrics.jsonl").exists()
    sample = run_subprocess("sample", "--checkpoint", "r", "--max-new-tokens", 20, cwd=tmp_path)
    assert sample.returncode == 0, sample.stderr
    assert len(sample.stdout.strip("\n")) > 0


def test_minimum_text_length_is_exact():
    for block in (1, 8, 13, 64):
        for fraction in (0.05, 0.1, 0.25, 0.5, 0.9):
            n = min_text_length(block, fraction)
            val = int(n * fraction)
            assert val >= block + 1 and n - val >= block + 1
            val = int((n - 1) * fraction)
            assert val < block + 1 or n - 1 - val < block + 1


def test_text_of_exactly_the_stated_minimum_trains(capsys, tmp_path):
    minimum = min_text_length(8, 0.1)
    path = tmp_path / "t.txt"
    path.write_text(("abcdefghij" * 20)[:minimum])
    code, _, err = run_cli(capsys, "train", "--text", path, "--out", tmp_path / "r", *TINY)
    assert code == 0, err
    path.write_text(("abcdefghij" * 20)[: minimum - 1])
    code, _, err = run_cli(capsys, "train", "--text", path, "--out", tmp_path / "r2", *TINY)
    assert_one_line_error(code, err, f"at least {minimum}")


# Bad flags: one line naming the flag and its range ------------------------------------------
TRAIN_FLAGS = [
    (["--n-layer", "0"], ["--n-layer", ">= 1"]),
    (["--n-head", "0"], ["--n-head", ">= 1"]),
    (["--n-embd", "0"], ["--n-embd", ">= 1"]),
    (["--block-size", "0"], ["--block-size", ">= 1"]),
    (["--batch-size", "0"], ["--batch-size", ">= 1"]),
    (["--max-iters", "0"], ["--max-iters", ">= 1"]),
    (["--lr", "0"], ["--lr", "> 0"]),
    (["--lr", "-1"], ["--lr", "> 0"]),
    (["--lr", "nan"], ["--lr", "> 0"]),
    (["--dropout", "1"], ["--dropout", "[0, 1)"]),
    (["--dropout", "-0.1"], ["--dropout", "[0, 1)"]),
    (["--val-fraction", "1"], ["--val-fraction", "(0, 1)"]),
    (["--val-fraction", "0"], ["--val-fraction", "(0, 1)"]),
    (["--eval-interval", "0"], ["--eval-interval", ">= 1"]),
    (["--n-layer", "two"], ["--n-layer", "integer"]),
    (["--n-embd", "30", "--n-head", "4"], ["n_embd=30", "n_head=4", "--n-embd", "--n-head"]),
    (["--min-lr", "0.1", "--lr", "0.01"], ["--min-lr"]),
]


@pytest.mark.parametrize(
    ("flags", "needles"), TRAIN_FLAGS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_bad_train_flag_is_one_line_naming_the_flag(capsys, corpus, tmp_path, flags, needles):
    code, _, err = run_cli(capsys, "train", "--text", corpus, "--out", tmp_path / "r", *TINY, *flags)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "r" / "latest.json").exists()


SAMPLE_FLAGS = [
    (["--top-p", "0"], ["--top-p", "(0, 1]"]),
    (["--top-p", "1.5"], ["--top-p", "(0, 1]"]),
    (["--temperature", "0"], ["--temperature", "> 0"]),
    (["--temperature", "-2"], ["--temperature", "> 0"]),
    (["--top-k", "0"], ["--top-k", ">= 1"]),
    (["--num-samples", "0"], ["--num-samples", ">= 1"]),
    (["--max-new-tokens", "-5"], ["--max-new-tokens", ">= 0"]),
]


@pytest.mark.parametrize(
    ("flags", "needles"), SAMPLE_FLAGS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_bad_sample_flag_is_one_line_naming_the_flag(capsys, run_dir, flags, needles):
    code, out, err = run_cli(capsys, "sample", "--checkpoint", run_dir, *flags)
    assert_one_line_error(code, err, *needles)
    assert out == ""


# Bad input files and run directories ------------------------------------------------------
def _train_on(capsys, tmp_path, content, *extra):
    path = tmp_path / "input.txt"
    if content is not None:
        path.write_bytes(content)
    return run_cli(capsys, "train", "--text", path, "--out", tmp_path / "r", *TINY, *extra)


def test_missing_text_file(capsys, tmp_path):
    code, _, err = _train_on(capsys, tmp_path, None)
    assert_one_line_error(code, err, "input.txt", "does not exist")


def test_empty_text_file(capsys, tmp_path):
    code, _, err = _train_on(capsys, tmp_path, b"")
    assert_one_line_error(code, err, "input.txt", "empty")


def test_text_shorter_than_a_block_states_the_minimum(capsys, tmp_path):
    code, _, err = _train_on(capsys, tmp_path, b"abcdef")
    assert_one_line_error(code, err, "6 characters", f"at least {min_text_length(8, 0.1)}", "block_size=8")


def test_invalid_utf8_gives_the_byte_offset(capsys, tmp_path):
    code, _, err = _train_on(capsys, tmp_path, b"hello \xff world" * 20)
    assert_one_line_error(code, err, "UTF-8", "byte offset 6", "0xff")


def test_unknown_corpus(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--corpus", "wikipedia", "--out", tmp_path / "r", *TINY)
    assert_one_line_error(code, err, "--corpus", "wikipedia", "shakespeare")


def test_text_path_that_is_a_directory(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--text", tmp_path, "--out", tmp_path / "r", *TINY)
    assert_one_line_error(code, err, "is a directory")


def test_out_path_that_is_a_file(capsys, corpus, tmp_path):
    (tmp_path / "taken").write_text("x")
    code, _, err = run_cli(capsys, "train", "--text", corpus, "--out", tmp_path / "taken", *TINY)
    assert_one_line_error(code, err, "taken")


def test_prompt_with_unseen_character(capsys, run_dir):
    code, out, err = run_cli(capsys, "sample", "--checkpoint", run_dir, "--prompt", "Zebra")
    assert_one_line_error(code, err, "'Z'", "vocabulary")
    assert out == ""  # the prompt is not echoed above the error


def test_eval_on_text_outside_the_checkpoint_vocabulary(capsys, run_dir, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("Zzz! Quite another alphabet: 0123456789 jkqx\n" * 10)
    code, _, err = run_cli(capsys, "eval", "--checkpoint", run_dir, "--text", other)
    assert_one_line_error(code, err, "vocabulary")


def test_checkpoint_whose_tokenizer_has_another_vocabulary(capsys, run_dir, tmp_path):
    import hashlib
    import shutil

    from tinygpt.checkpoint import resolve_checkpoint
    from tinygpt.tokenizers import CharTokenizer

    ckpt = tmp_path / "ckpt"
    shutil.copytree(resolve_checkpoint(run_dir), ckpt)
    (ckpt / "tokenizer.json").write_text(json.dumps(CharTokenizer.from_text("xyz").to_dict()))
    config = json.loads((ckpt / "config.json").read_text())
    config["sha256"]["tokenizer.json"] = hashlib.sha256((ckpt / "tokenizer.json").read_bytes()).hexdigest()
    (ckpt / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli(capsys, "sample", "--checkpoint", ckpt)
    assert_one_line_error(code, err, "tokenizer.json", "3 tokens")


def test_checkpoint_that_is_not_one(capsys, tmp_path):
    code, _, err = run_cli(capsys, "info", "--checkpoint", tmp_path)
    assert_one_line_error(code, err, str(tmp_path), "neither a checkpoint")


def test_resume_with_nothing_to_resume(capsys, corpus, tmp_path):
    code, _, err = run_cli(capsys, "train", "--text", corpus, "--out", tmp_path / "r", *TINY, "--resume")
    assert_one_line_error(code, err, "--resume", "no run")


def test_new_run_into_an_existing_run_dir_is_refused(capsys, corpus, tmp_path):
    out = tmp_path / "r"
    assert run_cli(capsys, "train", "--text", corpus, "--out", out, *TINY)[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, _, err = run_cli(capsys, "train", "--text", corpus, "--out", out, *TINY, "--max-iters", 40)
    assert_one_line_error(code, err, "already holds a run", "--resume", "nothing was overwritten")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_new_run_into_a_directory_with_foreign_files_deletes_nothing(capsys, corpus, tmp_path):
    out = tmp_path / "r"
    (out / "checkpoints" / "resnet-epoch10").mkdir(parents=True)
    (out / "checkpoints" / "resnet-epoch10" / "model.pt").write_bytes(b"another project's weights")
    (out / "metrics.jsonl").write_text('{"iter": 3, "acc": 0.9}\n')
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, _, err = run_cli(capsys, "train", "--text", corpus, "--out", out, *TINY)
    assert_one_line_error(code, err, "checkpoints/resnet-epoch10", "metrics.jsonl", "did not write")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_resume_never_deletes_a_copy_the_user_made_inside_the_run(capsys, corpus, tmp_path):
    out = tmp_path / "r"
    assert run_cli(capsys, "train", "--text", corpus, "--out", out, *TINY)[0] == 0
    keep = out / "checkpoints" / "my-keep"
    shutil.copytree(out / "checkpoints" / "step-0000020", keep)
    before = {p: p.read_bytes() for p in keep.rglob("*")}
    code, _, err = run_cli(
        capsys, "train", "--text", corpus, "--out", out, *TINY, "--max-iters", 40, "--resume"
    )
    assert code == 0, err
    assert {p: p.read_bytes() for p in keep.rglob("*")} == before
    assert (
        not (out / "checkpoints" / "step-0000020").exists()
        or "step-0000020" in (out / "best.json").read_text()
    )


def test_resume_after_finishing_extends_to_more_iterations(capsys, corpus, tmp_path):
    out = tmp_path / "r"
    assert run_cli(capsys, "train", "--text", corpus, "--out", out, *TINY)[0] == 0
    code, stdout, err = run_cli(
        capsys, "train", "--text", corpus, "--out", out, *TINY, "--max-iters", 30, "--resume"
    )
    assert code == 0, err
    assert "resuming" in stdout and "from step 20" in stdout
    rows = [json.loads(line)["iter"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows == [0, 10, 20, 30]


def test_config_too_big_for_memory_gives_the_estimate(capsys, corpus, tmp_path):
    code, _, err = run_cli(
        capsys, "train", "--text", corpus, "--out", tmp_path / "r", *TINY, "--n-embd", 65536, "--n-layer", 64
    )
    assert_one_line_error(code, err, "GiB", "--n-embd")
    assert not (tmp_path / "r").exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow is the point
def test_absurd_learning_rate_is_one_line(capsys, corpus, tmp_path):
    code, _, err = run_cli(
        capsys, "train", "--text", corpus, "--out", tmp_path / "r", *TINY, "--lr", "1e6", "--warmup-iters", 0
    )
    assert_one_line_error(code, err, "step", "learning rate", "--lr")


# Environment (fresh processes: the backend is chosen once per process) --------------------
def test_unknown_backend_lists_the_valid_ones(tmp_path, corpus):
    done = run_subprocess(
        "train", "--text", corpus, "--out", "r", *TINY, cwd=tmp_path, TINYGPT_BACKEND="nonsense"
    )
    assert_one_line_error(done.returncode, done.stderr, "nonsense", "numpy", "array_api_strict", "cupy")


def test_cupy_backend_without_cupy_says_what_to_do(tmp_path, corpus):
    # A `cupy` package that fails to import stands in for a machine without CuPy.
    fake = tmp_path / "fake"
    (fake / "cupy").mkdir(parents=True)
    (fake / "cupy" / "__init__.py").write_text("raise ImportError('No module named cupy')\n")
    env = subprocess_env(TINYGPT_BACKEND="cupy")
    env["PYTHONPATH"] = f"{fake}:{env['PYTHONPATH']}"
    done = subprocess.run(
        [PYTHON, "-m", "tinygpt", "train", "--text", str(corpus), "--out", "r", *TINY],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert_one_line_error(
        done.returncode, done.stderr, "CuPy is not installed", "pip install", "TINYGPT_BACKEND"
    )


def test_an_unusable_device_is_named_as_the_user_gave_it(capsys, run_dir, monkeypatch):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this torch has a CUDA GPU")
    monkeypatch.delenv("TINYGPT_DEVICE", raising=False)
    for flags in (["--backend", "torch", "--device", "cuda"], ["--device", "cuda"]):
        monkeypatch.setenv("TINYGPT_BACKEND", "torch")  # the second: backend from the environment
        code, _, err = run_cli(capsys, "info", "--checkpoint", run_dir, *flags)
        assert_one_line_error(code, err, "--device cuda but torch sees no CUDA GPU", "or use --device cpu")
        assert "TINYGPT_DEVICE" not in err
    monkeypatch.setenv("TINYGPT_DEVICE", "cuda")  # typed as a variable: named as a variable
    with pytest.raises(
        BackendError, match=r"^TINYGPT_DEVICE=cuda but torch sees no CUDA GPU.*TINYGPT_DEVICE=cpu"
    ):
        backend.use("torch", "cuda")
    code, _, err = run_cli(capsys, "info", "--checkpoint", run_dir, "--device", "cuda:1")
    assert_one_line_error(code, err, "--device cuda:1 but torch sees no CUDA GPU")


def test_bad_flag_in_a_fresh_process_has_no_traceback(tmp_path, corpus):
    done = run_subprocess("train", "--text", corpus, "--dropout", "1", cwd=tmp_path)
    assert done.returncode == 2
    assert_one_line_error(done.returncode, done.stderr, "--dropout", "[0, 1)")
    done = run_subprocess("sample", "--checkpoint", tmp_path, cwd=tmp_path)
    assert_one_line_error(done.returncode, done.stderr, "neither a checkpoint")


def test_unseen_prompt_characters_can_be_skipped_or_replaced(capsys, run_dir):
    code, _, err = run_cli(
        capsys, "sample", "--checkpoint", run_dir, "--prompt", "First✓", "--max-new-tokens", 5
    )
    assert_one_line_error(code, err, "✓", "--unknown skip|replace")
    for choice, shown in (("skip", "First"), ("replace", "First ")):
        code, out, err = run_cli(
            capsys, "sample", "--checkpoint", run_dir, "--prompt", "First✓", "--max-new-tokens", 5,
            "--unknown", choice, "--seed", 0,
        )  # fmt: skip
        assert code == 0, err
        assert out.startswith(shown) and len(out) == len(shown) + 5 + 1


def test_several_samples_are_streamed_as_they_are_made_and_ctrl_c_stops(tmp_path, run_dir):
    proc = subprocess.Popen(
        [PYTHON, "-m", "tinygpt", "sample", "--checkpoint", str(run_dir), "--num-samples", "2",
         "--max-new-tokens", "10000000", "--seed", "0"],
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with killed_after(proc):
        assert proc.stdout.readline() == "--- sample 1 ---\n"  # the first sample streams at once
        assert len(proc.stdout.read(200)) == 200
        estimate = proc.stderr.readline() + proc.stderr.readline()  # a blank line, then the estimate
        assert "tinygpt sample: about" in estimate and "Ctrl-C stops" in estimate, estimate
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err


def test_the_estimate_is_said_even_when_the_clock_passes_a_second_between_two_readings(
    capsys, run_dir, monkeypatch
):
    # Each reading of the clock is 0.6 s after the last: the first token is at 0.6 s (too early),
    # the second at 1.2 s. Reading the clock twice per token once skipped the estimate for good.
    clock = itertools.count(0, 0.6)
    monkeypatch.setattr(sample_command.time, "perf_counter", lambda: next(clock))
    code, _, err = run_cli(capsys, "sample", "--checkpoint", run_dir, "--max-new-tokens", "200")
    assert code == 0, err
    assert "tinygpt sample: about 2 min for the remaining 198 tokens" in err, err


def test_time_left_is_said_only_for_long_work():
    from tinygpt.cli.sample import time_left

    assert time_left(10, 20, 0.5) is None  # too early to tell
    assert time_left(500, 1000, 2.0) is None  # 2 more seconds
    assert time_left(100, 1_000_000, 1.0) == (
        "tinygpt sample: about 2.8 h for the remaining 999,900 tokens at 100 tokens/s; Ctrl-C stops"
    )
