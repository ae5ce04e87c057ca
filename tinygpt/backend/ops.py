"""The few operations the Array API standard lacks, each with a portable fallback.

Each function here has one portable implementation written against the
standard, and optionally a backend fast path; tests check that both agree.
"""

from __future__ import annotations

from typing import Any

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
    for character vocabularies; CuPy uses its atomic scatter-add.
    """
    b = current()
    if b.name == "cupy":
        import cupyx

        with b.device:
            out = b.xp.zeros((num_rows, values.shape[-1]), dtype=values.dtype)
            cupyx.scatter_add(out, ids, values)
            return out
    return scatter_add_rows_portable(ids, values, num_rows)


def scatter_add_rows_portable(ids: Any, values: Any, num_rows: int) -> Any:
    """The Array-API-only form of ``scatter_add_rows``."""
    xp = current().xp
    return xp.matmul(xp.matrix_transpose(one_hot(ids, num_rows, values.dtype)), values)
