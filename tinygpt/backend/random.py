"""Seeded random numbers on any backend (the Array API standard has no RNG).

All randomness comes from one host NumPy PCG64 generator, so one seed gives the
same run on numpy, array_api_strict, torch and JAX, and its state (a small
JSON-able dict) goes into checkpoints for exact resumes. On CuPy, large draws
(dropout masks) are made on the GPU by a generator seeded from the host one, so
they cost no transfer (``ArrayLibrary.keep_mask``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygpt.backend.host import asarray, to_numpy
from tinygpt.backend.selection import current


class Generator:
    """A reproducible random source whose draws land on the current backend."""

    def __init__(self, seed: int | Sequence[int] | None = 0) -> None:
        self._host = np.random.Generator(np.random.PCG64(seed))

    # State, for checkpoints ------------------------------------------------
    def get_state(self) -> dict:
        """The generator state as plain JSON-able Python values."""
        state = self._host.bit_generator.state
        return {
            "bit_generator": state["bit_generator"],
            "state": {k: int(v) for k, v in state["state"].items()},
            "has_uint32": int(state["has_uint32"]),
            "uinteger": int(state["uinteger"]),
        }

    def set_state(self, state: dict) -> None:
        """Restore a state from ``get_state`` (the next draws repeat exactly)."""
        self._host.bit_generator.state = state

    # Draws ------------------------------------------------------------------
    def normal(self, shape: Sequence[int], std: float = 1.0, dtype: Any = None) -> Any:
        """Normal(0, std) samples of ``shape``, default float dtype."""
        sample = self._host.standard_normal(tuple(shape), dtype=np.float64) * std
        return asarray(sample, dtype=dtype, copy=False)

    def uniform(self, shape: Sequence[int], low: float = 0.0, high: float = 1.0, dtype: Any = None) -> Any:
        """Uniform samples in ``[low, high)``."""
        return asarray(self._host.uniform(low, high, tuple(shape)), dtype=dtype, copy=False)

    def integers(self, low: int, high: int, shape: Sequence[int]) -> Any:
        """Integers in ``[low, high)`` as a backend array of the index dtype."""
        return asarray(self.host_integers(low, high, shape), copy=False)

    def host_integers(self, low: int, high: int, shape: Sequence[int]) -> np.ndarray:
        """The draws of ``integers`` as a host NumPy int64 array (to index host data: token files)."""
        return self._host.integers(low, high, tuple(shape), dtype=np.int64)

    def keep_mask(self, shape: Sequence[int], p_keep: float, dtype: Any = None) -> Any:
        """A dropout mask: 1/p_keep with probability p_keep, else 0 (inverted dropout)."""
        b = current()
        dtype = dtype or b.float_dtype

        def on_host() -> Any:
            keep = self._host.random(tuple(shape), dtype=np.float32) < p_keep
            return asarray(keep.astype(np.float32) * np.float32(1.0 / p_keep), dtype=dtype, copy=False)

        return b.library.keep_mask(self._host, shape, p_keep, dtype, b.device, on_host)

    def categorical(self, probs: Any) -> Any:
        """One index per row of ``probs`` (N, V), drawn with those probabilities.

        Sampling needs a cumulative sum and a search, done on the host: it is a
        tiny (N, V) array once per generated token.
        """
        p = to_numpy(probs).astype(np.float64)
        cdf = np.cumsum(p, axis=-1)
        cdf /= cdf[:, -1:]
        u = self._host.random((p.shape[0], 1))
        idx = np.minimum((cdf < u).sum(axis=-1), p.shape[-1] - 1)
        return asarray(idx.astype(np.int64), copy=False)


_default = Generator(0)


def default_generator() -> Generator:
    """The generator layers use when none is given (dropout, initialisation)."""
    return _default


def manual_seed(seed: int) -> Generator:
    """Reseed the default generator, making initialisation and dropout repeatable."""
    _default._host = np.random.Generator(np.random.PCG64(seed))
    return _default
