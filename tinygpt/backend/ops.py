"""The few operations the Array API standard lacks, each with a portable form.

Each function here has one portable implementation written against the
standard; a library may add a fast path (``ArrayLibrary.scatter_add_rows``),
and tests check that both agree.
"""

from __future__ import annotations

from typing import Any

import array_api_extra as xpx

from tinygpt.backend.selection import current


def one_hot(ids: Any, num_classes: int, dtype: Any = None) -> Any:
    """(N,) integer ids -> (N, num_classes) one-hot rows in ``dtype``."""
    b = current()
    xp = b.xp
    classes = xp.arange(num_classes, dtype=ids.dtype, device=b.device)
    return xp.astype(ids[:, None] == classes[None, :], dtype or b.float_dtype)


def scatter_add_rows(ids: Any, values: Any, num_rows: int) -> Any:
    """Sum rows of ``values`` (N, C) into a (num_rows, C) table at ``ids`` (N,).

    Repeated ids accumulate (an embedding used twice gets both gradients).
    Portable form: one-hot(ids).T @ values, which is also the fastest on CPU
    for character vocabularies; CuPy, torch and JAX use their scatter-add.
    """
    b = current()
    return b.library.scatter_add_rows(ids, values, num_rows, b.device, scatter_add_rows_portable)


def scatter_add_rows_portable(ids: Any, values: Any, num_rows: int) -> Any:
    """The Array-API-only form of ``scatter_add_rows``."""
    xp = current().xp
    return xp.matmul(xp.matrix_transpose(one_hot(ids, num_rows, values.dtype)), values)


def set_at(x: Any, index: Any, values: Any, copy: bool | None = None) -> Any:
    """``x`` with ``x[index] = values``; use the result, never ``x`` afterwards.

    Where the backend's arrays are writable (NumPy, torch, CuPy, array_api_strict)
    ``x`` is updated in place and returned; on JAX a new array is returned
    (``array_api_extra.at``). ``copy=True`` forces the copying form everywhere
    (the portable form tests compare the in-place one with).
    """
    b = current()
    if copy is None:
        copy = not b.writable
    if not copy:  # what ``xpx.at`` does on writable arrays, without its dispatch (per token, per layer)
        x[index] = values
        return x
    return xpx.at(x, index).set(values, copy=True, xp=b.xp)
