"""The processes of one run: rank and world size from an MPI launcher, and what they say to each other.

``tinygpt train`` is one process unless an MPI launcher (``mpiexec``, ``mpirun``,
``srun``) started several; then each learns its rank and the world size from
MPI (``mpi4py``, the ``[mpi]`` extra). A plain run never imports mpi4py.

    world = distributed.world()     # World(rank=0, size=1) outside a launcher
    world.sum_floats([a, b])        # the same sums on every rank
    world.agree()                   # end of set-up: every rank learns who failed, if anyone did

Failures must never leave a rank waiting forever on a peer that is gone:

- a user error in set-up (bad flag, missing file) is agreed at ``agree()`` and
  reported once, by rank 0, naming the rank that hit it;
- an error on one rank during training (``stop_all_on_error``) prints the error
  with its rank and aborts every rank (``MPI_Abort``); rank 0's checkpoints are
  written atomically, so the last one stays loadable;
- a rank that is killed is cleaned up by the launcher (mpiexec and mpirun kill the
  others at once; under Slurm use ``srun --kill-on-bad-exit=1``);
- a rank that hangs is caught by a watchdog: a collective call that waits longer
  than ``TINYGPT_COLLECTIVE_TIMEOUT`` seconds (default 600) aborts every rank.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import traceback
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

from tinygpt import backend
from tinygpt.backend import registry
from tinygpt.errors import DistributedError, MissingExtraError, TinyGPTError

# Environment variables a launcher sets in each process it starts: (rank, world size).
LAUNCHERS = (
    ("PMI_RANK", "PMI_SIZE"),  # MPICH's Hydra mpiexec, Intel MPI, srun --mpi=pmi2
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),  # Open MPI's mpirun
    ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"),  # MVAPICH
    ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS"),  # srun (a batch script itself has no step size)
)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_TIMEOUT_S = 600.0


def launcher_size() -> int:
    """How many processes the launcher started (1 when none did); reads the environment only."""
    for rank_name, size_name in LAUNCHERS:
        if size_name in os.environ and rank_name in os.environ:
            return _int_variable(size_name)
    return 1


def launcher_rank() -> int:
    """This process's rank as the launcher numbered it (0 when none did); reads the environment only."""
    for rank_name, size_name in LAUNCHERS:
        if size_name in os.environ and rank_name in os.environ:
            return _int_variable(rank_name)
    return 0


def _int_variable(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise DistributedError(
            f"the launcher set {name}={os.environ[name]!r}, which is not a number"
        ) from None


@dataclass
class World:
    """The processes of one run. ``size == 1`` is a plain process: every call is a no-op, no MPI."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # rank among the processes on this machine
    local_size: int = 1
    threads: int | None = None  # BLAS threads per rank set here (None: left as the environment says)
    mpi: Any = None  # the mpi4py.MPI module
    comm: Any = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    description: str = "one process"
    agreed: bool = False
    _watchdog: _Watchdog | None = field(default=None, repr=False)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints and writes the run directory."""
        return self.rank == 0

    def use_local_gpu(self, name: str | None = None, explicit: str | None = None) -> bool:
        """Load the backend for this rank (``name``, else ``TINYGPT_BACKEND``); True when ranks share a GPU.

        On a library whose arrays live on a GPU by default (CuPy), each rank takes
        GPU ``local_rank`` (modulo the GPUs it sees) before touching any, so no
        rank opens a context on GPU 0 first. A device named for every rank
        (``explicit``: ``--device``; or ``TINYGPT_DEVICE``) is used as named.
        Whether ranks share a GPU is asked of the GPUs (PCI bus ids, per machine),
        so Slurm's ``--gpus-per-task=1``, which shows each rank one GPU numbered
        0, counts as one GPU per rank. NCCL needs one GPU per rank; ranks that
        share one sum through host memory instead.
        """
        resolved = (name or os.environ.get("TINYGPT_BACKEND", "").strip() or registry.DEFAULT).lower()
        library = registry.library(resolved)
        named = explicit or os.environ.get("TINYGPT_DEVICE") or None
        count = library.gpu_count() if self.size > 1 and named is None and library.default_on_gpu else 0
        if count:
            chosen = backend.use(resolved, library.gpu(self.local_rank % count))
        else:
            chosen = backend.use(name, explicit) if name else backend.current()
        if self.size == 1 or chosen.on_host:
            return False
        here = f"{socket.gethostname()} {chosen.library.gpu_identity(chosen.device)}"
        return len(set(self.gather_text(here))) < self.size

    # Collectives (each one watched: a peer that never arrives aborts the run) ----------------
    def all_reduce_sum(self, buffer: Any) -> None:
        """Sum a host buffer (buffer protocol) over all ranks, in place."""
        if self.size > 1:
            with self.waiting("a sum over all ranks"):
                self.comm.Allreduce(self.mpi.IN_PLACE, buffer, op=self.mpi.SUM)

    def broadcast(self, buffer: Any, root: int = 0) -> None:
        """Rank ``root``'s host buffer, copied into every rank's, in place."""
        if self.size > 1:
            with self.waiting("a broadcast"):
                self.comm.Bcast(buffer, root=root)

    def sum_floats(self, values: list[float]) -> list[float]:
        """The sums of ``values`` over all ranks (float64), the same on every rank."""
        buffer = array("d", values)
        self.all_reduce_sum(buffer)
        return list(buffer)

    def gather_floats(self, values: list[float]) -> list[list[float]]:
        """Every rank's ``values`` (the same count on each), indexed by rank."""
        if self.size == 1:
            return [list(values)]
        received = array("d", bytes(8 * len(values) * self.size))
        with self.waiting("a gather"):
            self.comm.Allgather(array("d", values), received)
        n = len(values)
        return [list(received[r * n : (r + 1) * n]) for r in range(self.size)]

    def gather_text(self, text: str) -> list[str]:
        """Every rank's ``text``, indexed by rank (lengths first, then the bytes: no pickle)."""
        if self.size == 1:
            return [text]
        data = text.encode("utf-8")
        lengths = [int(n[0]) for n in self.gather_floats([float(len(data))])]
        received = bytearray(sum(lengths))
        offsets = [sum(lengths[:r]) for r in range(self.size)]
        with self.waiting("a gather"):
            self.comm.Allgatherv(bytearray(data), [received, lengths, offsets, self.mpi.BYTE])
        return [bytes(received[o : o + n]).decode("utf-8") for o, n in zip(offsets, lengths, strict=True)]

    def barrier(self) -> None:
        """Wait until every rank is here."""
        if self.size > 1:
            with self.waiting("the other ranks"):
                self.comm.Barrier()

    # Failure ----------------------------------------------------------------------------
    def agree(self, failure: BaseException | None = None) -> None:
        """End of set-up: every rank says whether it failed; if any did, every rank raises.

        Called once per rank, either when set-up went well or from the error
        handler with the exception, so the calls always pair up. A rank that did
        not fail raises ``DistributedError`` naming the first rank that did.
        """
        if self.size == 1 or self.agreed:
            return
        self.agreed = True
        message = "" if failure is None else (_describe(failure) or type(failure).__name__)
        messages = self.gather_text(message)
        failed = [r for r, m in enumerate(messages) if m]
        if failed and failure is None:
            first = failed[0]
            others = f" (and {len(failed) - 1} more rank(s))" if len(failed) > 1 else ""
            raise DistributedError(
                f"rank {first} of {self.size} failed while setting up{others}: {messages[first]}"
            )

    @contextlib.contextmanager
    def stop_all_on_error(self, collective: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
        """Errors that only this rank hit stop every rank (``MPI_Abort``) instead of leaving them waiting.

        ``collective`` errors are raised on every rank at the same moment (they
        depend only on all-reduced values), so they end the run normally.
        """
        try:
            yield
        except collective:
            raise
        except BaseException as exc:
            if self.size == 1:
                raise
            self.abort(exc)

    def abort(self, exc: BaseException, code: int = 1) -> NoReturn:
        """Print what went wrong on this rank, then stop every rank of the run."""
        if isinstance(exc, KeyboardInterrupt):
            what, code = "interrupted again", 130
        elif isinstance(exc, TinyGPTError):
            what = str(exc)
        else:
            what = "".join(traceback.format_exception(exc)).rstrip()
        print(
            f"tinygpt: rank {self.rank} of {self.size} failed: {what}\n"
            f"tinygpt: stopping all {self.size} ranks; the last checkpoint stays loadable "
            "(continue with the same command plus --resume)",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(0.5)  # let the launcher forward these lines before it tears the job down
        self.comm.Abort(code)
        os._exit(code)  # Abort does not return; this is for an MPI that does

    @contextlib.contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        """A block that waits on the other ranks (an MPI call, an NCCL sum): past the timeout, abort all."""
        if self._watchdog is None:
            yield
            return
        with self._watchdog.watch(what):
            yield


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, TinyGPTError) else f"{type(exc).__name__}: {exc}"


class _Watchdog:
    """A thread that aborts the run when a collective call waits longer than ``timeout_s``.

    MPI's blocking calls release the GIL, so the thread runs while the main one waits.
    """

    def __init__(self, world: World, timeout_s: float) -> None:
        self.world = world
        self.timeout_s = timeout_s
        self._since: float | None = None
        self._what = ""
        thread = threading.Thread(target=self._run, name="tinygpt-collective-watchdog", daemon=True)
        thread.start()

    @contextlib.contextmanager
    def watch(self, what: str) -> Iterator[None]:
        self._what, self._since = what, time.monotonic()
        try:
            yield
        finally:
            self._since = None

    def _run(self) -> None:
        tick = min(1.0, self.timeout_s / 4)
        while True:
            time.sleep(tick)
            since = self._since
            if since is not None and time.monotonic() - since > self.timeout_s:
                self.world.abort(
                    DistributedError(
                        f"waited {self.timeout_s:g} s for {self._what}: another rank died or hangs "
                        "(raise TINYGPT_COLLECTIVE_TIMEOUT if a step or a checkpoint really takes that long)"
                    )
                )


_world: World | None = None


def world() -> World:
    """This run's ``World``, made on first use: MPI's when a launcher started several processes."""
    global _world
    if _world is None:
        _world = _join() if launcher_size() > 1 else World()
    return _world


def current_world() -> World | None:
    """The ``World`` made so far, if any (error handlers must not start MPI)."""
    return _world


def _join() -> World:
    """Initialise MPI and learn this process's place in the run."""
    expected = launcher_size()
    try:
        from mpi4py import MPI
    except ImportError:
        raise MissingExtraError(
            f"this process is one of {expected} started by an MPI launcher, but mpi4py is not installed: "
            "pip install 'tinygpt[mpi]' (mpi4py plus MPICH), or run tinygpt without mpiexec/srun"
        ) from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() != expected:
        raise DistributedError(
            f"the launcher started {expected} processes but MPI sees a world of {comm.Get_size()}: "
            f"mpiexec and mpi4py use different MPI libraries (mpi4py has {_library(MPI)}); "
            "use the mpiexec installed with tinygpt[mpi] (in the same environment as tinygpt), "
            "or under Slurm srun --mpi=pmi2 (or pmix)"
        )
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this machine
    timeout = float(os.environ.get("TINYGPT_COLLECTIVE_TIMEOUT") or DEFAULT_TIMEOUT_S)
    result = World(
        rank=comm.Get_rank(),
        size=comm.Get_size(),
        local_rank=local.Get_rank(),
        local_size=local.Get_size(),
        mpi=MPI,
        comm=comm,
        timeout_s=timeout,
    )
    result.threads = limit_threads(local, MPI)
    result.description = _describe_world(result, MPI)
    result._watchdog = _Watchdog(result, timeout)
    return result


def limit_threads(local: Any, mpi: Any) -> int | None:
    """Give this rank its share of the machine's cores for BLAS/OpenMP; None when the user chose.

    ``local`` is the communicator of the ranks on this machine. A core that k
    ranks may run on counts 1/k for each, so unbound ranks split the cores
    evenly and ranks the launcher bound to their own cores keep them. An
    explicit ``OMP_NUM_THREADS`` (or OpenBLAS's or MKL's variable) wins.
    """
    if any(os.environ.get(name) for name in THREAD_VARIABLES):
        return None
    cores = os.cpu_count() or 1
    mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(cores))
    users = array("i", [1 if c in mine else 0 for c in range(max(cores, *mine) + 1)])
    local.Allreduce(mpi.IN_PLACE, users, op=mpi.SUM)  # how many ranks here may run on each core
    threads = max(1, int(sum(1 / users[c] for c in mine) + 1e-9))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    threadpool_limits(limits=threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for libraries loaded later
    return threads


def _describe_world(w: World, mpi: Any) -> str:
    hosts = w.gather_text(socket.gethostname())
    pids = [int(p[0]) for p in w.gather_floats([float(os.getpid())])]
    threads = f"{w.threads} BLAS thread(s) each" if w.threads else "threads as OMP_NUM_THREADS says"
    where = ", ".join(_ranks_by_host(hosts, pids))
    return f"world size {w.size} over MPI ({_library(mpi)}), {threads}; {where}"


def _library(mpi: Any) -> str:
    """'MPICH Version: 5.0.2': the first line of the MPI library's own description."""
    return " ".join(mpi.Get_library_version().splitlines()[0].split()).rstrip(",")


def _ranks_by_host(hosts: list[str], pids: list[int], shown: int = 8) -> list[str]:
    """'vm: rank 0 pid 11, rank 1 pid 12' per machine, so a launcher's 'PID 12 killed' names its rank."""
    ranks: dict[str, list[int]] = {}
    for rank, host in enumerate(hosts):
        ranks.setdefault(host, []).append(rank)
    out = []
    for host, here in list(ranks.items())[:shown]:
        listed = ", ".join(f"rank {r} pid {pids[r]}" for r in here[:shown])
        out.append(f"{host}: {listed}" + (f" and {len(here) - shown} more" if len(here) > shown else ""))
    if len(ranks) > shown:
        out.append(f"and {len(ranks) - shown} more machines")
    return out


def silent(message: str) -> None:
    """A log function for ranks other than 0: they compute, rank 0 speaks."""


def report(message: str, file: Any = None) -> None:
    """Print ``message`` on rank 0 only (every rank of a run would print the same line)."""
    if launcher_rank() == 0:
        print(message, file=file or sys.stdout, flush=True)


def settle_failure(exc: BaseException) -> None:
    """In the error handler: let the other ranks know this one failed during set-up (a no-op otherwise)."""
    w = current_world()
    if w is not None and w.size > 1 and not w.agreed:
        with contextlib.suppress(Exception):
            w.agree(exc)
