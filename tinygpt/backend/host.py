"""Moving data between host NumPy arrays (files, printing) and the backend.

Checkpoints are written from host NumPy arrays, so a model trained on a GPU
loads on a laptop: every conversion goes through these two functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import is_cupy_array, is_numpy_array

from tinygpt.backend.selection import Backend, current


def to_numpy(array: Any) -> np.ndarray:
    """A host NumPy copy of any backend array (or scalar)."""
    if is_numpy_array(array) or isinstance(array, np.generic):
        return np.array(array, copy=True)
    if is_cupy_array(array):
        return array.get()
    if type(array).__module__.startswith("array_api_strict"):
        import array_api_strict

        host = array.to_device(array_api_strict.Device("CPU_DEVICE"))
        return np.array(np.from_dlpack(host), copy=True)
    return np.array(array, copy=True)


def asarray(data: Any, dtype: Any = None, backend: Backend | None = None, copy: bool = True) -> Any:
    """Put ``data`` (NumPy array, nested lists, scalar, backend array) on the backend.

    ``dtype`` may be a backend dtype or a name (``"float32"``, ``"int64"``).
    Without it, floating data gets the default float dtype, integer data int64,
    so Python lists never silently become float64.

    The result does not share memory with a NumPy ``data`` (as on the other
    backends), so in-place updates such as optimizer steps never write into
    the caller's array; ``copy=False`` skips the copy for a fresh array the
    caller hands over (random draws).
    """
    b = backend or current()
    xp = b.xp
    if isinstance(dtype, str):
        dtype = getattr(xp, dtype)
    if not (is_numpy_array(data) or is_cupy_array(data) or _is_strict(data)):
        data = np.asarray(data)
    if dtype is None:
        dtype = b.int_dtype if _is_integer_or_bool(data) else b.float_dtype
    if b.name == "array_api_strict":
        if not _is_strict(data):
            data = np.asarray(to_numpy(data), order="C")  # ascontiguousarray would make 0-d 1-d
            return xp.asarray(data, dtype=dtype, device=b.device)
        return xp.asarray(data.to_device(b.device), dtype=dtype, device=b.device)
    if b.name == "cupy":
        with b.device:
            return xp.asarray(data, dtype=dtype)
    if not is_numpy_array(data):
        data, copy = to_numpy(data), False  # to_numpy already copied
    return xp.asarray(data, dtype=dtype, device=b.device, copy=True if copy else None)


def _is_strict(data: Any) -> bool:
    return type(data).__module__.startswith("array_api_strict")


def _is_integer_or_bool(data: Any) -> bool:
    kind = getattr(getattr(data, "dtype", None), "kind", None)
    if kind is not None:
        return kind in "iub"
    return str(data.dtype).split(".")[-1].startswith(("int", "uint", "bool"))
