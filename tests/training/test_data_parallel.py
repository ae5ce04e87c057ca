"""Real ``mpiexec -n 2`` runs: two ranks compute what one process computes, write nothing twice, and fail safely.

Each rank is ``tests/training/mpi_rank.py``: ``tinygpt`` plus hooks that record
file writes or inject a crash, a kill or a hang at a chosen step. The runs are
tiny (about a second each). Without mpi4py and mpiexec the tests skip, unless
``TINYGPT_REQUIRE_MPI=1`` (as nox sets it), where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lm_helpers import PYTHON, REPO_ROOT, subprocess_env
from tinygpt.checkpoint import load_checkpoint, resolve_checkpoint

RANK = Path(__file__).with_name("mpi_rank.py")
FLAGS = [
    "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16",
    "--batch-size", "5", "--grad-accum", "3",  # 15 windows a step: 7 on rank 0, 8 on rank 1
    "--max-iters", "50", "--eval-interval", "10", "--eval-iters", "3", "--warmup-iters", "5",
    "--lr", "3e-3", "--dropout", "0", "--no-progress",
]  # fmt: skip
TIMEOUT_S = 120


def _mpiexec() -> str | None:
    beside = Path(sys.executable).with_name("mpiexec")  # the [mpi] extra installs MPICH's here
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _mpi_missing() -> str:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'tinygpt[mpi]')"
    return "" if _mpiexec() else "no mpiexec on PATH (pip install 'tinygpt[mpi]')"


if _mpi_missing():
    if os.environ.get("TINYGPT_REQUIRE_MPI") == "1":
        raise RuntimeError(f"TINYGPT_REQUIRE_MPI=1 but {_mpi_missing()}")
    pytest.skip(_mpi_missing(), allow_module_level=True)


# The session's backends (nox runs one per session); every CPU library runs the same ranks.
BACKENDS = [
    name.strip()
    for name in os.environ.get("TINYGPT_TEST_BACKENDS", "numpy,array_api_strict").split(",")
    if name.strip() and name.strip() != "cupy"  # GPUs: one per rank, not on these machines
]


@pytest.fixture(scope="module", params=BACKENDS)
def backend_name(request):
    return request.param


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    words = "the quick brown fox jumps over a lazy dog while seven wizards box".split()
    text = " ".join(words[(i * 7 + i // 5) % len(words)] for i in range(900)) + "\n"
    path = tmp_path_factory.mktemp("text") / "words.txt"
    path.write_text(text, encoding="utf-8")
    return path


def _env(backend_name, **extra):
    env = subprocess_env(TINYGPT_BACKEND=backend_name, **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    return env


def _command(ranks, *args):
    prefix = [_mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    return [*prefix, PYTHON, str(RANK), *map(str, args)]


def _train(backend_name, corpus, out, ranks, *extra, **env):
    return subprocess.run(
        _command(ranks, "train", "--text", corpus, "--out", out, *FLAGS, *extra),
        env=_env(backend_name, **env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def _losses(out):
    lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
    return [(m["iter"], m["train_loss"], m["val_loss"]) for m in map(json.loads, lines)]


def _assert_close(got, want, rel):
    assert [g[0] for g in got] == [w[0] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g[1:] == pytest.approx(w[1:], rel=rel), (g, w)


def _latest_step(out):
    return load_checkpoint(resolve_checkpoint(out, "latest"), with_training_state=True).trainer_state["step"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, backend_name, corpus):
    """The same 50 steps in one process and over two ranks (the two-rank run records its file writes)."""
    root = tmp_path_factory.mktemp(f"runs-{backend_name}")
    one = _train(backend_name, corpus, root / "one", 1)
    two = _train(backend_name, corpus, root / "two", 2, TINYGPT_TEST_WRITES=str(root / "two"))
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    return root, one, two


def test_two_ranks_log_the_losses_of_one_process(runs):
    root, _, two = runs
    one_losses, two_losses = _losses(root / "one"), _losses(root / "two")
    assert [i for i, _, _ in two_losses] == list(range(0, 51, 10))
    _assert_close(two_losses, one_losses, rel=1e-4)  # the bar; in practice about 1e-7
    assert two_losses[-1][2] < two_losses[0][2] - 0.1  # and it learned something
    first = two.stdout.splitlines()[0]
    assert first.startswith("world size 2 over MPI") and "rank 1 pid" in first


def test_two_ranks_on_a_prepared_dataset_log_the_losses_of_one_process_on_its_text(
    runs, backend_name, corpus
):
    """Every rank maps the same token files; the ids are the text's, so the run is the --text run."""
    from tinygpt.datasets import prepare_dataset

    root, _, _ = runs
    data = root / "data"
    if not data.exists():
        prepare_dataset(data, text=corpus, log=None)
    two = subprocess.run(
        _command(2, "train", "--data", data, "--out", root / "two-data", *FLAGS),
        env=_env(backend_name), capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr
    _assert_close(_losses(root / "two-data"), _losses(root / "one"), rel=1e-4)


def test_two_ranks_on_a_large_text_prepare_it_once_and_log_the_losses_of_one_process(
    runs, backend_name, corpus
):
    """Rank 0 prepares the text into the cache while rank 1 waits; then both map it."""
    root, _, _ = runs
    cache = root / f"cache-{backend_name}"
    two = subprocess.run(
        _command(2, "train", "--text", corpus, "--out", root / "two-cached", *FLAGS),
        env=_env(backend_name, TINYGPT_CACHE=str(cache), TINYGPT_TEST_IN_MEMORY_BYTES="100"),
        capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("preparing it once") == 1 and len(list((cache / "datasets").iterdir())) == 1
    _assert_close(_losses(root / "two-cached"), _losses(root / "one"), rel=1e-4)


def test_only_rank_0_writes_the_run_directory(runs):
    root, _, two = runs
    rank0 = json.loads((root / "writes.rank0.json").read_text())
    rank1 = json.loads((root / "writes.rank1.json").read_text())
    assert rank1 == []
    assert any("metrics.jsonl" in w for w in rank0) and any(
        "latest.json" in w for w in rank0
    )  # the hook sees
    assert two.stdout.count("step    50/50") == 1 and two.stdout.count("done:") == 1  # rank 0 alone prints


def _interrupt(backend_name, corpus, out, signum):
    """Start two ranks, send ``signum`` to mpiexec once step 10 is logged; (exit code, stdout, stderr)."""
    proc = subprocess.Popen(
        _command(2, "train", "--text", corpus, "--out", out, *FLAGS),
        env=_env(backend_name, TINYGPT_TEST_STEP_DELAY="0.02"),  # about 1 s of steps to land in
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not (out / "metrics.jsonl").exists() or len(_losses(out)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=TIMEOUT_S)
        time.sleep(0.01)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, stdout, stderr


@pytest.mark.parametrize(
    ("signum", "exit_code", "ranks"),
    [(signal.SIGINT, 130, 2), (signal.SIGTERM, 143, 1)],
    ids=["ctrl-c-resume-on-2", "sigterm-resume-on-1"],
)
def test_a_signal_to_mpiexec_saves_once_and_resume_continues_exactly(
    tmp_path, backend_name, corpus, runs, signum, exit_code, ranks
):
    out = tmp_path / "run"
    code, _, stderr = _interrupt(backend_name, corpus, out, signum)
    assert code == exit_code, stderr
    ours = [line for line in stderr.splitlines() if line.startswith("tinygpt")]
    step = _latest_step(out)
    assert ours == [
        f"tinygpt: interrupted at step {step}; saved {out}/checkpoints/step-{step:07d}. "
        "Continue with the same command plus --resume"
    ]
    assert "Traceback" not in stderr and 10 < step < 50
    assert len(_losses(out)) == 2  # evaluated at steps 0 and 10 only: one save for the signal

    resumed = _train(backend_name, corpus, out, ranks, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    reference = _losses(runs[0] / "two")
    if ranks == 2:  # the same two ranks replay the uninterrupted run bit for bit
        assert f"resuming {out} from step {step}\n" in resumed.stdout
        assert _losses(out) == reference
    else:  # one process takes over: same global batch, same losses (float32 rounding aside)
        assert "with 1 rank(s) (it ran with 2; the global batch stays 15 windows a step)" in resumed.stdout
        _assert_close(_losses(out), reference, rel=1e-4)


def test_a_one_process_run_resumes_on_two_ranks(tmp_path, backend_name, corpus, runs):
    out = tmp_path / "run"
    half = _train(backend_name, corpus, out, 1, TINYGPT_TEST_FAIL="0:20")
    assert half.returncode != 0 and _latest_step(out) == 20  # a crash after the step-20 checkpoint
    both = _train(backend_name, corpus, out, 2, "--resume")
    assert both.returncode == 0, both.stderr
    assert "from step 20 with 2 rank(s) (it ran with 1;" in both.stdout
    _assert_close(_losses(out), _losses(runs[0] / "one"), rel=1e-4)


def _pids_by_rank(stdout):
    return {int(r): int(p) for r, p in re.findall(r"rank (\d+) pid (\d+)", stdout.splitlines()[0])}


@pytest.mark.parametrize("how", ["crash", "kill", "hang"])
def test_a_rank_that_dies_stops_every_rank_and_the_checkpoint_loads(tmp_path, backend_name, corpus, how):
    out = tmp_path / "run"
    hook = {"crash": "TINYGPT_TEST_FAIL", "kill": "TINYGPT_TEST_KILL", "hang": "TINYGPT_TEST_HANG"}[how]
    started = time.monotonic()
    result = _train(backend_name, corpus, out, 2, **{hook: "1:25", "TINYGPT_COLLECTIVE_TIMEOUT": "3"})
    took = time.monotonic() - started
    assert result.returncode != 0
    assert took < 60, f"the surviving rank took {took:.0f} s to stop"
    text = result.stdout + result.stderr
    if how == "crash":  # the rank says what happened to it
        assert "tinygpt: rank 1 of 2 failed: Traceback" in text and "RuntimeError: injected failure" in text
    elif how == "kill":  # the launcher names the dead process; the first line maps it to its rank
        assert f"PID {_pids_by_rank(result.stdout)[1]} " in text
    else:  # the waiting rank gives up after TINYGPT_COLLECTIVE_TIMEOUT
        assert "rank 0 of 2 failed: waited 3 s for a sum over all ranks" in text
    assert "stopping all 2 ranks" in text or how == "kill"
    assert _latest_step(out) == 20  # the last checkpoint before the failure is intact
    load_checkpoint(out)


def test_parameters_that_drift_apart_stop_the_run_at_the_next_evaluation(tmp_path, backend_name, corpus):
    result = _train(backend_name, corpus, tmp_path / "run", 2, TINYGPT_TEST_DRIFT="1:15")
    assert result.returncode == 2
    names = [name for name, _ in _tiny_names()]
    lines = [line for line in result.stderr.splitlines() if line.startswith("tinygpt")]
    assert lines == [
        f"tinygpt train: error: step 20: the parameters of rank 1 differ from rank 0's (first {names[-1]}); "
        "the ranks no longer compute the same model. Resume from the last checkpoint with --resume; "
        "if it happens again, report it as a bug"
    ]
    assert _latest_step(tmp_path / "run") == 10  # nothing was saved from the drifted weights


def _tiny_names():
    from tinygpt.models.gpt import GPTConfig, TinyGPT

    return TinyGPT(GPTConfig(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=32)).named_parameters()


def test_eval_under_mpiexec_shares_the_windows_and_agrees_with_one_process(backend_name, runs):
    root = runs[0]
    results = []
    for ranks in (1, 2):
        result = subprocess.run(
            _command(ranks, "eval", "--checkpoint", root / "two", "--batch-size", "7", "--json"),
            env=_env(backend_name),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == 1  # one line, from rank 0
        results.append(json.loads(result.stdout))
    assert results[1]["val_loss"] == pytest.approx(results[0]["val_loss"], rel=1e-6)
    assert results[1]["windows"] == results[0]["windows"]


@pytest.mark.parametrize("command", ["sample", "info"])
def test_one_process_commands_refuse_mpiexec_in_one_line(backend_name, runs, command):
    result = subprocess.run(
        _command(2, command, "--checkpoint", runs[0] / "two"),
        env=_env(backend_name),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("tinygpt")]
    assert lines == [
        f"tinygpt {command}: error: runs in one process, but mpiexec or srun started 2; "
        "run it without the launcher (only train and eval use several)"
    ]


def test_a_setup_error_on_one_rank_is_reported_once_naming_it(tmp_path, backend_name, corpus):
    flags = ["train", "--out", tmp_path / "run", *FLAGS]
    result = subprocess.run(
        [_mpiexec(), "-n", "1", *_command(1, *flags, "--text", corpus)]  # MPMD: rank 1 gets another path
        + [":", "-n", "1", *_command(1, *flags, "--text", tmp_path / "missing.txt")],
        env=_env(backend_name),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"tinygpt train: error: rank 1 of 2 failed while setting up: text file "
        f"'{tmp_path / 'missing.txt'}' does not exist; check the path"
    ]


def test_each_rank_gets_its_share_of_the_cores(tmp_path, backend_name, corpus):
    env = {"OMP_NUM_THREADS": "", "OPENBLAS_NUM_THREADS": "", "MKL_NUM_THREADS": ""}
    auto = _train(backend_name, corpus, tmp_path / "a", 2, "--max-iters", "1", "--eval-interval", "1", **env)
    assert auto.returncode == 0, auto.stderr
    cores = len(os.sched_getaffinity(0))
    assert f"{max(1, cores // 2)} BLAS thread(s) each" in auto.stdout.splitlines()[0]
    chosen = _train(backend_name, corpus, tmp_path / "b", 2, "--max-iters", "1", "--eval-interval", "1")
    assert "threads as OMP_NUM_THREADS says" in chosen.stdout.splitlines()[0]  # an explicit choice wins
