"""Summing and broadcasting arrays across processes: flat buffers, MPI on host memory, NCCL on CuPy.

Data-parallel training (``tinygpt.training.data_parallel``) reduces gradients
from a few flat, contiguous buffers. Where the arrays live decides how:

- NumPy: the flat buffer *is* host memory; MPI sums it in place, no copy.
- array_api_strict: copied to the host, summed by MPI, copied back (tests run this path).
- CuPy: NCCL sums on the GPU (``cupy.cuda.nccl``; its id travels once over MPI).
  Where NCCL cannot be loaded, or ranks share a GPU (NCCL needs one GPU per
  rank), the buffer is staged through host memory and MPI sums it: slower,
  and ``Collectives.warning`` says so in one line.

MPI itself is the training layer's business: it hands in a ``HostCollectives``
(in-place sum and broadcast of host buffers), so nothing here imports mpi4py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from tinygpt.backend.host import asarray, to_numpy
from tinygpt.backend.selection import Backend, current


class HostCollectives(Protocol):
    """What MPI offers: in-place sum and broadcast of host buffers (anything with the buffer protocol)."""

    rank: int
    size: int

    def all_reduce_sum(self, buffer: Any) -> None: ...

    def broadcast(self, buffer: Any, root: int = 0) -> None: ...


def flatten(arrays: Sequence[Any]) -> Any:
    """One new contiguous 1-D array holding ``arrays`` (of one dtype) one after another."""
    xp = current().xp
    return xp.concat([xp.reshape(a, (-1,)) for a in arrays])


def unflatten(flat: Any, shapes: Sequence[tuple[int, ...]]) -> list[Any]:
    """The arrays ``flatten`` joined, cut back out of ``flat`` (N,) in order (views where the backend can)."""
    xp = current().xp
    out, start = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(xp.reshape(flat[start : start + n], shape))
        start += n
    return out


def checksums(arrays: Sequence[Any]) -> list[float]:
    """(sum, sum of squares) of each array in float64, as 2 * len(arrays) Python floats (one host copy)."""
    xp = current().xp
    sums = []
    for a in arrays:
        wide = xp.astype(a, xp.float64)
        sums += [xp.sum(wide), xp.vecdot(xp.reshape(wide, (-1,)), xp.reshape(wide, (-1,)))]
    return [float(v) for v in to_numpy(xp.stack(sums))]


def gpu_count() -> int:
    """CUDA devices this process sees (0 on a backend without GPUs)."""
    if current().name != "cupy":
        return 0
    import cupy

    return int(cupy.cuda.runtime.getDeviceCount())


class Collectives:
    """Sum and broadcast of flat backend arrays over all ranks; ``method`` says how, ``warning`` why not faster.

    Every rank must build it at the same moment (on CuPy it is collective: the
    ranks agree on NCCL or the host-staged path, and NCCL's id is broadcast).
    ``shared_device`` says that some rank shares its GPU with another one.
    """

    def __init__(self, host: HostCollectives, shared_device: bool = False, b: Backend | None = None) -> None:
        self.host = host
        self.backend = b or current()
        self.warning: str | None = None
        self._nccl: Any = None
        if self.backend.name == "numpy":
            self.method = "MPI"
        elif self.backend.name == "cupy":
            self.method = "NCCL"
            self._nccl = self._start_nccl(shared_device)
            if self._nccl is None:
                self.method = "MPI, staged through host memory"
        else:
            self.method = "MPI, staged through host memory"

    def all_reduce_sum(self, flat: Any) -> Any:
        """The element-wise sum of every rank's ``flat`` (N,), on every rank (the input may be reused)."""
        if self._nccl is not None:
            return self._nccl_call("allReduce", flat)
        if self.backend.name == "numpy":
            self.host.all_reduce_sum(flat)  # MPI writes the sum into the buffer itself
            return flat
        staged = np.ascontiguousarray(to_numpy(flat))
        self.host.all_reduce_sum(staged)
        return asarray(staged, dtype=flat.dtype, backend=self.backend, copy=False)

    def broadcast(self, flat: Any, root: int = 0) -> Any:
        """Rank ``root``'s ``flat`` (N,) on every rank."""
        if self._nccl is not None:
            return self._nccl_call("bcast", flat, root)
        if self.backend.name == "numpy":
            self.host.broadcast(flat, root)
            return flat
        staged = np.ascontiguousarray(to_numpy(flat))
        self.host.broadcast(staged, root)
        return asarray(staged, dtype=flat.dtype, backend=self.backend, copy=False)

    # NCCL (never run on this project's CPU machines; see docs/data-parallel.md) --------------------
    def _start_nccl(self, shared_device: bool) -> Any:
        """An NCCL communicator over all ranks, or None (then ``warning`` says why) when any rank cannot."""
        reason, nccl = "", None
        if shared_device:
            reason = "ranks share a GPU and NCCL needs one GPU per rank"
        else:
            try:
                from cupy.cuda import nccl as loaded

                nccl = loaded
                if not nccl.available:
                    reason = "CuPy was built without NCCL"
            except ImportError as exc:
                reason = f"NCCL could not be loaded ({exc})"
        votes = np.array([0.0 if reason else 1.0])
        self.host.all_reduce_sum(votes)  # NCCL only if every rank can use it
        if votes[0] < self.host.size:
            why = reason or "another rank cannot use NCCL"
            self.warning = (
                f"gradients go through host memory over MPI (slower): {why}; "
                "give each rank its own GPU and install NCCL for CuPy (python -m cupyx.tools.install_library --library nccl --cuda 12.x)"
            )
            return None
        assert nccl is not None
        uid = np.zeros(128, dtype=np.int16)  # ncclUniqueId: 128 (signed) chars, sent once over MPI
        if self.host.rank == 0:
            uid[:] = nccl.get_unique_id()
        self.host.broadcast(uid, 0)
        with self.backend.device:
            return nccl.NcclCommunicator(self.host.size, tuple(int(c) for c in uid), self.host.rank)

    def _nccl_call(self, name: str, flat: Any, root: int = 0) -> Any:
        import cupy
        from cupy.cuda import nccl

        kinds = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64, "float16": nccl.NCCL_FLOAT16}
        kind = kinds[str(flat.dtype)]
        with self.backend.device:
            flat = cupy.ascontiguousarray(flat)
            stream = cupy.cuda.get_current_stream().ptr
            if name == "allReduce":  # in place; later kernels on the stream see the sum
                self._nccl.allReduce(flat.data.ptr, flat.data.ptr, flat.size, kind, nccl.NCCL_SUM, stream)
            else:
                self._nccl.broadcast(flat.data.ptr, flat.data.ptr, flat.size, kind, root, stream)
        return flat
