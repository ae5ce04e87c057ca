"""What every benchmark shares: the model configs, memory readings, the machine, one worker per process.

Each measurement runs in its own process (``run_worker``: ``python scripts/bench.py --worker KIND ...``,
under ``mpiexec`` for several ranks), so peak memory is per framework and per side.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
from pathlib import Path

CONFIGS = {
    # name: (n_layer, n_head, n_embd, block_size, batch_size, timed steps)
    "small": (4, 4, 128, 64, 12, 40),
    "bigger": (6, 6, 384, 256, 8, 6),
    "gpu": (6, 6, 384, 256, 64, 20),  # nanoGPT's shakespeare_char size; for --gpu
    "gpt2": (12, 12, 768, 1024, 1, 2),  # GPT-2 small's shape and vocabulary (124 M parameters); --projection
}
VOCABS = {"gpt2": 50257}
VOCAB = 84  # the Shakespeare corpus's character count
SCRIPTS = Path(__file__).resolve().parent.parent  # scripts/: bench.py, torch_reference.py
ENTRY = SCRIPTS / "bench.py"


def rss_mb() -> float:
    """Resident memory of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    """Peak resident memory of this process image (VmHWM; ru_maxrss can carry the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> None:
    """Restart the process's peak resident memory (VmHWM) from its current size (Linux 4.0+)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def run_worker(
    args: list[str],
    backend: str = "numpy",
    device: str = "cpu",
    ranks: int = 1,
    threads: int | None = None,
    env: dict[str, str] | None = None,
) -> dict:
    """Run ``bench.py --worker *args`` in a fresh process (``ranks`` > 1: under mpiexec); its JSON result."""
    env = {**os.environ, "TINYGPT_BACKEND": backend, "TINYGPT_DEVICE": device, **(env or {})}
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    launcher = [mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    out = subprocess.run(
        [*launcher, sys.executable, str(ENTRY), "--worker", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if out.returncode != 0:
        raise SystemExit(f"benchmark worker {args} failed:\n{out.stderr}")
    results = [json.loads(line) for line in out.stdout.strip().splitlines() if line.startswith("{")]
    return next(r for r in results if r.get("rank", 0) == 0)  # rank 0's view of a parallel step


def mpiexec() -> str:
    """MPICH's mpiexec beside this Python (the [mpi] extra), else the one on PATH."""
    beside = Path(sys.executable).with_name("mpiexec")  # where pip install 'tinygpt[mpi]' puts MPICH's
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        raise SystemExit("--data-parallel needs mpiexec: pip install 'tinygpt[mpi]'")
    return found


def machine() -> str:
    """'AMD EPYC ..., 2 cores, Python 3.11.7, numpy 2.4.6, torch ...': where a figure was measured."""
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib import metadata

    versions = []
    for package in ("numpy", "torch", "jax"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    versions = ", ".join(versions)
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {versions}"
