"""Choosing the array library and device that every tinygpt computation runs on.

The choice is global (like a "current device"): set it with the environment
variable ``TINYGPT_BACKEND`` (and optionally ``TINYGPT_DEVICE``), with
``tinygpt.backend.use("torch", "cuda:1")``, or for a block of code with
``with tinygpt.backend.using("array_api_strict"): ...``. The names and what
each library can do come from ``registry.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tinygpt.backend import registry
from tinygpt.backend.library import ArrayLibrary
from tinygpt.errors import BackendError

FLOAT_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Backend:
    """An Array API namespace, the device arrays are created on, and the library that knows the rest."""

    name: str
    xp: ModuleType
    device: Any
    library: ArrayLibrary

    @property
    def float_dtype(self) -> Any:
        """The dtype new floating arrays get (float32 unless a float64 scope is active)."""
        return self.library.float_dtype(self.xp, _state.float_name)

    @property
    def int_dtype(self) -> Any:
        """The dtype of token ids and other indices (int64; int32 on JAX without x64)."""
        return self.library.index_dtype(self.xp)

    @property
    def writable(self) -> bool:
        """Whether arrays may be updated in place (False on JAX: every update makes a new array)."""
        return self.library.writable

    @property
    def on_host(self) -> bool:
        """Whether arrays live in host memory (the CPU), not on a GPU."""
        return self.library.device_is_host(self.device)

    @property
    def fixed_shapes(self) -> bool:
        """Whether new array shapes are expensive (JAX compiles each operation per shape)."""
        return self.library.fixed_shapes

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device!r})"


class _State:
    backend: Backend | None = None
    float_name: str = "float32"
    allocator_tuned: bool = False


_state = _State()


def tune_allocator() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS; True if applied.

    NumPy allocates fresh activations every training step; with glibc's
    defaults each large one is an mmap that page-faults on first touch.
    Raising the mmap and trim thresholds lets freed blocks be reused (about
    25% of step time on small models). This changes the allocator of the
    whole process, so tinygpt never does it on import: the ``Trainer`` and the
    command line call it. ``TINYGPT_MALLOC_TUNING=0`` turns it off; it is a
    no-op where the C library is not glibc.
    """
    if _state.allocator_tuned or os.environ.get("TINYGPT_MALLOC_TUNING", "1") == "0":
        return _state.allocator_tuned
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 * 1024 * 1024)  # glibc's maximum on 64-bit
    mallopt(m_trim_threshold, 1024 * 1024 * 1024)
    _state.allocator_tuned = True
    return True


def _load(name: str, device: str | None) -> Backend:
    library = registry.library(name)
    xp, dev = library.load(device)
    return Backend(name, xp, dev, library)


def use(name: str, device: str | None = None) -> Backend:
    """Make ``name`` the current backend (one of ``registry.BACKENDS``) on ``device``."""
    _state.backend = _load(name.strip().lower(), device)
    return _state.backend


def use_typed(name: str | None, device: str | None) -> Backend:
    """The backend ``--backend NAME --device DEVICE`` asks for; either may be None (not typed).

    What was not typed comes from ``TINYGPT_BACKEND`` / ``TINYGPT_DEVICE`` (then the default).
    An error names what the user typed (``--device cuda``), not the variable the libraries'
    messages name (``TINYGPT_DEVICE=cuda``); a value from the environment keeps that wording.
    """
    typed = {"BACKEND": name is not None, "DEVICE": device is not None}
    if name is None:
        name = os.environ.get("TINYGPT_BACKEND", "").strip() or registry.DEFAULT
        device = device if device is not None else os.environ.get("TINYGPT_DEVICE") or None
    try:
        return use(name, device)
    except BackendError as exc:
        message = str(exc)
        for variable, flag in (("BACKEND", "--backend"), ("DEVICE", "--device")):
            if typed[variable]:
                message = message.replace(f"TINYGPT_{variable}=", f"{flag} ")
                message = message.replace(f"unset TINYGPT_{variable}", f"drop {flag}")
        raise BackendError(message) from None


def current() -> Backend:
    """The active backend; on first use it comes from ``TINYGPT_BACKEND`` (default numpy)."""
    if _state.backend is None:
        name = os.environ.get("TINYGPT_BACKEND", "").strip() or registry.DEFAULT
        use(name, os.environ.get("TINYGPT_DEVICE") or None)
    return _state.backend  # type: ignore[return-value]


@contextlib.contextmanager
def using(name: str, device: str | None = None) -> Iterator[Backend]:
    """Run a block of code on another backend, then restore the previous one."""
    previous = _state.backend
    try:
        active = use(name, device)
        with active.library.float_scope(_state.float_name):
            yield active
    finally:
        _state.backend = previous


def set_default_float(name: str) -> None:
    """Set the dtype new floating arrays get: ``"float32"`` (default) or ``"float64"``."""
    if name not in FLOAT_DTYPES:
        raise BackendError(f"unknown float dtype {name!r}: choose one of {', '.join(FLOAT_DTYPES)}")
    _state.float_name = name


@contextlib.contextmanager
def default_float(name: str) -> Iterator[None]:
    """Create floating arrays as ``name`` inside the block (float64 for gradient checks)."""
    previous = _state.float_name
    set_default_float(name)
    try:
        with current().library.float_scope(name):  # JAX: x64 for this block only
            yield
    finally:
        _state.float_name = previous


def available_memory(b: Backend | None = None) -> int | None:
    """Bytes free for arrays on the backend's device (None when it cannot be told)."""
    b = b or current()
    return b.library.free_memory(b.device)


def synchronize(b: Backend | None = None) -> None:
    """Wait until the backend's device has finished its queued work (timing GPU code)."""
    b = b or current()
    b.library.synchronize(b.device)
