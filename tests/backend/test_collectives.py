"""Flat buffers and the sum over ranks, with a stand-in for MPI (real MPI runs in tests/training/test_data_parallel.py)."""

import contextlib

import numpy as np
import pytest

from tests.lm_helpers import host
from tinygpt import backend
from tinygpt.backend import collectives
from tinygpt.backend.library import ArrayLibrary


class TwoRanks:
    """Plays rank 0 of two: the other rank contributes ``other`` to sums of buffers, broadcasts ``theirs``,
    and votes in set-up (``sum_floats``) as this rank does.

    The tests pass ``shared_device=True``: a real NCCL communicator would wait for a second process.
    """

    rank, size = 0, 2

    def __init__(self, other, theirs=None):
        self.other, self.theirs, self.calls = other, theirs, []

    def sum_floats(self, values):
        return [2 * v for v in values]

    @contextlib.contextmanager
    def waiting(self, what):
        yield

    def all_reduce_sum(self, buffer):
        view = np.frombuffer(memoryview(buffer), dtype=np.asarray(buffer).dtype)
        view += self.other[: view.size].astype(view.dtype)
        self.calls.append(("sum", type(buffer).__module__.split(".")[0]))

    def broadcast(self, buffer, root=0):
        view = np.frombuffer(memoryview(buffer), dtype=np.asarray(buffer).dtype)
        view[:] = self.theirs
        self.calls.append(("broadcast", root))


def test_flatten_and_unflatten_round_trip_in_order(xp_backend):
    rng = backend.Generator(0)
    arrays = [rng.normal((2, 3)), rng.normal((4,)), rng.normal((1, 2, 2))]
    flat = collectives.flatten(arrays)
    assert flat.shape == (14,)
    np.testing.assert_array_equal(host(flat), np.concatenate([host(a).ravel() for a in arrays]))
    back = collectives.unflatten(flat, [a.shape for a in arrays])
    for got, want in zip(back, arrays, strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(host(got), host(want))


def test_sum_over_ranks_adds_every_element_on_each_backend(xp_backend):
    mine = backend.asarray(np.arange(6, dtype=np.float32))
    other = np.full(6, 0.5, dtype=np.float32)
    ranks = TwoRanks(other)
    together = collectives.Collectives(ranks, shared_device=True)
    total = together.all_reduce_sum(mine)
    np.testing.assert_array_equal(host(total), np.arange(6) + 0.5)
    assert total.dtype == mine.dtype
    assert ranks.calls == [("sum", "numpy")]  # MPI only ever sees host memory
    in_place = xp_backend.name in ("numpy", "torch")  # their arrays' own memory is a host buffer
    expected = "MPI" if in_place else "MPI, staged through host memory"
    assert together.method == expected
    has_device_communicator = (
        type(xp_backend.library).device_collectives is not ArrayLibrary.device_collectives
    )
    if has_device_communicator:  # CuPy: NCCL declined, and the one line says why
        assert "ranks share a GPU" in together.warning
    else:
        assert together.warning is None


def test_broadcast_gives_every_rank_the_roots_values(xp_backend):
    ranks = TwoRanks(None, theirs=np.arange(4, dtype=np.float32))
    got = collectives.Collectives(ranks, shared_device=True).broadcast(
        backend.asarray(np.zeros(4, dtype=np.float32)), 0
    )
    np.testing.assert_array_equal(host(got), np.arange(4))
    assert ranks.calls == [("broadcast", 0)]


def test_checksums_are_float64_sums_and_sums_of_squares(xp_backend):
    arrays = [backend.asarray([[1.0, 2.0], [3.0, -4.0]]), backend.asarray([0.5])]
    assert collectives.checksums(arrays) == pytest.approx([2.0, 30.0, 0.5, 0.25])
    changed = [backend.asarray([[1.0, 2.0], [3.0, -4.0 + 2.0**-20]]), arrays[1]]
    assert collectives.checksums(changed) != collectives.checksums(arrays)  # one ulp-sized change shows
    # Sums of float32 values that float32 cannot hold exactly (2**24 + 1), but float64 can.
    big = [backend.asarray([2.0**24, 1.0])]
    assert collectives.checksums(big)[0] == 2.0**24 + 1


def test_cpu_only_libraries_see_no_gpus_and_live_on_the_host(xp_backend):
    if xp_backend.name in ("numpy", "array_api_strict"):
        assert xp_backend.library.gpu_count() == 0
    assert xp_backend.on_host == (xp_backend.name != "cupy")  # the CPU machines of this matrix
