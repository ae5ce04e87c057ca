"""Summing and broadcasting arrays across processes: flat buffers, MPI on host memory, NCCL on CuPy.

Data-parallel training (``tinygpt.training.data_parallel``) reduces gradients
from a few flat, contiguous buffers. Where the arrays live decides how, and the
backend's ``ArrayLibrary`` says where they live:

- host memory MPI may write (NumPy, torch on the CPU: ``host_buffer``): MPI sums it in place, no copy;
- a device with its own communicator (CuPy: NCCL, ``device_collectives``): summed on the device;
- anything else (array_api_strict, JAX, torch on a GPU, CuPy without NCCL or with
  ranks sharing a GPU): copied to the host, summed by MPI, copied back; slower,
  and ``Collectives.warning`` says so in one line where a faster way exists.

MPI itself is the training layer's business: it hands in a ``HostCollectives``
(in-place sum and broadcast of host buffers), so nothing here imports mpi4py.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from tinygpt.backend.host import asarray, to_numpy
from tinygpt.backend.selection import Backend, current


class HostCollectives(Protocol):
    """What MPI offers: in-place sum and broadcast of host buffers (anything with the buffer protocol),
    small float sums (set-up votes), and a watchdog for device calls that wait on the other ranks."""

    rank: int
    size: int

    def all_reduce_sum(self, buffer: Any) -> None: ...

    def broadcast(self, buffer: Any, root: int = 0) -> None: ...

    def sum_floats(self, values: list[float]) -> list[float]: ...

    def waiting(self, what: str) -> contextlib.AbstractContextManager[None]: ...


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
    b = current()
    xp = b.xp
    sums = []
    with b.library.float_scope("float64"):  # JAX: without x64, float64 would silently be float32
        for a in arrays:
            wide = xp.astype(a, xp.float64)
            sums += [xp.sum(wide), xp.vecdot(xp.reshape(wide, (-1,)), xp.reshape(wide, (-1,)))]
        return [float(v) for v in to_numpy(xp.stack(sums))]


class Collectives:
    """Sum and broadcast of flat backend arrays over all ranks; ``method`` says how, ``warning`` why not faster.

    Every rank must build it at the same moment (a device communicator is
    collective: the ranks agree on it, and NCCL's id is broadcast).
    ``shared_device`` says that some rank shares its GPU with another one.
    """

    def __init__(self, host: HostCollectives, shared_device: bool = False, b: Backend | None = None) -> None:
        self.host = host
        self.backend = b or current()
        library = self.backend.library
        self._device, why = library.device_collectives(host, shared_device, self.backend.device)
        self.warning = None if why is None else f"gradients go through host memory over MPI (slower): {why}"
        probe = self.backend.xp.zeros((1,), dtype=self.backend.float_dtype, device=self.backend.device)
        if self._device is not None:
            self.method = "device communicator (NCCL)"
        elif library.host_buffer(probe) is not None:
            self.method = "MPI"
        else:
            self.method = "MPI, staged through host memory"

    def all_reduce_sum(self, flat: Any) -> Any:
        """The element-wise sum of every rank's ``flat`` (N,), on every rank (the input may be reused)."""
        if self._device is not None:
            return self._device.all_reduce_sum(flat)
        buffer = self.backend.library.host_buffer(flat)
        if buffer is not None:
            self.host.all_reduce_sum(buffer)  # MPI writes the sum into the array's own memory
            return flat
        staged = np.ascontiguousarray(to_numpy(flat))
        self.host.all_reduce_sum(staged)
        return asarray(staged, dtype=flat.dtype, backend=self.backend, copy=False)

    def broadcast(self, flat: Any, root: int = 0) -> Any:
        """Rank ``root``'s ``flat`` (N,) on every rank."""
        if self._device is not None:
            return self._device.broadcast(flat, root)
        buffer = self.backend.library.host_buffer(flat)
        if buffer is not None:
            self.host.broadcast(buffer, root)
            return flat
        staged = np.ascontiguousarray(to_numpy(flat))
        self.host.broadcast(staged, root)
        return asarray(staged, dtype=flat.dtype, backend=self.backend, copy=False)
