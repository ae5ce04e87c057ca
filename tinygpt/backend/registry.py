"""The registry: the array libraries tinygpt can run on, by name.

Adding a backend is one new module in ``tinygpt/backend/libraries/`` (an
``ArrayLibrary`` subclass) plus one line in ``LIBRARIES`` below. Nothing else
in tinygpt knows backend names: the CLI's ``--backend`` choices, the error
for an unknown name and the test matrix all read this table.
"""

from __future__ import annotations

from tinygpt.backend.libraries import array_api_strict, cupy, jax, numpy, torch
from tinygpt.backend.library import ArrayLibrary
from tinygpt.errors import BackendError

LIBRARIES: dict[str, ArrayLibrary] = {
    library.name: library
    for library in (numpy.LIBRARY, array_api_strict.LIBRARY, cupy.LIBRARY, torch.LIBRARY, jax.LIBRARY)
}
BACKENDS: tuple[str, ...] = tuple(LIBRARIES)
DEFAULT = "numpy"  # when TINYGPT_BACKEND is unset: a core dependency, runs everywhere


def library(name: str) -> ArrayLibrary:
    """The registered library called ``name``; the error lists every valid name."""
    try:
        return LIBRARIES[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}") from None
