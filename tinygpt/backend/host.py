"""Moving data between host NumPy arrays (files, printing) and the backend, and reading arrays from files.

Checkpoints are written from host NumPy arrays, so a model trained on a GPU
(or on torch, or JAX) loads on a laptop: every conversion goes through these
two functions, and the registered libraries know how to copy their arrays.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import numpy as np

from tinygpt.backend.registry import LIBRARIES
from tinygpt.backend.selection import FLOAT_DTYPES, Backend, current


def to_numpy(array: Any) -> np.ndarray:
    """A host NumPy copy of any backend's array (or a scalar)."""
    if isinstance(array, np.ndarray | np.generic):
        return np.array(array, copy=True)
    for library in LIBRARIES.values():
        if library.owns(array):
            return library.to_host(array)
    return np.array(array, copy=True)


def read_array(file: BinaryIO, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A new host array of ``shape`` read from ``file`` at its position: little-endian ``dtype`` values.

    The bytes go from the file straight into the array (no memory map, no second copy);
    a file that ends first raises ``EOFError``.
    """
    array = np.empty(shape, dtype=np.dtype(dtype).newbyteorder("<"))
    raw: Any = array.reshape(-1).view(np.uint8)  # the array's own bytes, written in place
    reader: Any = file  # BinaryIO does not declare readinto; every binary file object has it
    done = 0
    while done < raw.size:
        got = reader.readinto(raw[done:])
        if not got:
            raise EOFError(f"the file ends after {done:,} of the tensor's {raw.size:,} bytes")
        done += got
    return array if array.dtype.isnative else array.astype(dtype)


def asarray(data: Any, dtype: Any = None, backend: Backend | None = None, copy: bool = True) -> Any:
    """Put ``data`` (NumPy array, nested lists, scalar, any backend's array) on the backend.

    ``dtype`` may be a backend dtype or a name (``"float32"``, ``"int64"``).
    Without it, floating data gets the default float dtype, integer data the
    backend's index dtype (int64; int32 on JAX without x64), so Python lists
    never silently become float64.

    The result does not share memory with a NumPy ``data`` (as on the other
    backends), so in-place updates such as optimizer steps never write into
    the caller's array; ``copy=False`` skips the copy for a fresh array the
    caller hands over (random draws).
    """
    b = backend or current()
    xp = b.xp
    if isinstance(dtype, str):
        dtype = b.library.float_dtype(xp, dtype) if dtype in FLOAT_DTYPES else getattr(xp, dtype)
    if not (isinstance(data, np.ndarray) or b.library.owns(data)):
        data, copy = to_numpy(data) if _is_array(data) else np.asarray(data), False
    if dtype is None:
        dtype = b.int_dtype if _is_integer_or_bool(data, xp) else b.float_dtype
    return b.library.asarray(data, xp, dtype, b.device, copy)


def _is_array(data: Any) -> bool:
    return hasattr(data, "shape") and hasattr(data, "dtype") and not isinstance(data, np.generic)


def _is_integer_or_bool(data: Any, xp: Any) -> bool:
    kind = getattr(data.dtype, "kind", None)  # NumPy (and JAX) dtypes: one attribute lookup
    if kind is not None:
        return kind in "iub"
    return bool(xp.isdtype(data.dtype, ("integral", "bool")))
