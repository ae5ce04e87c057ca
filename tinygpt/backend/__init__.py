"""The backend layer: everything that differs between NumPy, array_api_strict, CuPy, torch and JAX.

Nothing outside this package imports an array library or knows backend names.
Library code asks ``current()`` for the namespace (``current().xp``) and
device, creates arrays with explicit ``dtype=`` and ``device=``, and uses the
helpers below for what the Array API standard does not have (random numbers,
scatter-add, indexed updates that also work on immutable arrays, host copies).
Each array library is one ``ArrayLibrary`` in ``libraries/``, listed in
``registry.py``.
"""

from tinygpt.backend.host import asarray, read_array, to_numpy
from tinygpt.backend.kernels import (
    gelu_and_slope,
    gelu_and_slope_portable,
    masked_softmax,
    masked_softmax_portable,
    row_sum,
)
from tinygpt.backend.library import ArrayLibrary
from tinygpt.backend.ops import one_hot, scatter_add_rows, scatter_add_rows_portable, set_at
from tinygpt.backend.random import Generator, default_generator, manual_seed
from tinygpt.backend.registry import BACKENDS, LIBRARIES
from tinygpt.backend.selection import (
    Backend,
    available_memory,
    current,
    default_float,
    set_default_float,
    synchronize,
    tune_allocator,
    use,
    use_typed,
    using,
)

__all__ = [
    "BACKENDS",
    "LIBRARIES",
    "ArrayLibrary",
    "Backend",
    "Generator",
    "asarray",
    "available_memory",
    "current",
    "default_float",
    "default_generator",
    "gelu_and_slope",
    "gelu_and_slope_portable",
    "manual_seed",
    "masked_softmax",
    "masked_softmax_portable",
    "one_hot",
    "read_array",
    "row_sum",
    "scatter_add_rows",
    "scatter_add_rows_portable",
    "set_at",
    "set_default_float",
    "synchronize",
    "to_numpy",
    "tune_allocator",
    "use",
    "use_typed",
    "using",
]
