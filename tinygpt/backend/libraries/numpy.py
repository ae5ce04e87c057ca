"""NumPy: the CPU backend students use, with cache-blocked fast paths for large activations."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from tinygpt.backend.library import Array, ArrayLibrary

# Elements per chunk: x, y, slope and three scratch rows of this size fit in L2 (about 6 x 128 KiB).
CHUNK = 32 * 1024
# Below this many elements the whole array already stays in cache (measured: 768 x 512 ran
# 10% slower chunked; 2048 x 1536 ran 1.8x faster).
CHUNKED_FROM = 1 << 20


class NumPy(ArrayLibrary):
    name = "numpy"
    devices = "cpu"

    def load(self, device: str | None) -> tuple[ModuleType, Any]:
        import array_api_compat.numpy as numpy_xp

        if device not in (None, "", "cpu"):
            raise self.bad_device(
                device, " (numpy runs on the CPU only; for a GPU choose cupy, torch or jax)"
            )
        return numpy_xp, "cpu"

    def owns(self, array: Any) -> bool:
        return isinstance(array, np.ndarray | np.generic)

    def gelu_and_slope(
        self, x: Array, portable: Callable[[Array], tuple[Array, Array]]
    ) -> tuple[Array, Array]:
        """The portable form evaluated one L2-sized chunk at a time on large activations.

        On large activations (B*T*4C floats) every pass of the portable form streams
        the whole array through memory; in chunks the temporaries stay in cache
        (measured: 8.4 -> 4.8 ms on 2048 x 1536).
        """
        if x.size < CHUNKED_FROM:
            return portable(x)
        flat = np.ascontiguousarray(x).reshape(-1)
        y = np.empty_like(flat)
        slope = np.empty_like(flat)
        for start in range(0, flat.size, CHUNK):
            y[start : start + CHUNK], slope[start : start + CHUNK] = portable(flat[start : start + CHUNK])
        return y.reshape(x.shape), slope.reshape(x.shape)

    def masked_softmax(
        self, scores: Array, mask: Array | None, portable: Callable[[Array, Array | None], Array]
    ) -> Array:
        """The portable steps in place, one L2-sized group of (Tq, Tk) matrices at a time.

        Attention scores of a big model are (B, H, T, T): at T = 256 each of the six
        passes would stream 12 MB through memory; per group they stay in cache, and
        exp runs in place, so no second (B, H, T, T) array is allocated.
        """
        if scores.size < CHUNKED_FROM or scores.ndim < 2:
            return portable(scores, mask)
        tq, tk = scores.shape[-2:]
        stack = np.ascontiguousarray(scores).reshape(-1, tq, tk)
        ones = np.ones((tk, 1), dtype=stack.dtype)
        per_chunk = max(1, CHUNK * 2 // (tq * tk))
        for start in range(0, stack.shape[0], per_chunk):
            c = stack[start : start + per_chunk]
            if mask is not None:
                c += mask
            c -= c.max(axis=-1, keepdims=True)
            np.exp(c, out=c)
            c /= c @ ones  # the portable row_sum, without re-making the ones vector per chunk
        return stack.reshape(scores.shape)

    def host_buffer(self, array: Array) -> Any | None:
        return array if array.flags.c_contiguous and array.flags.writeable else None


LIBRARY = NumPy()
