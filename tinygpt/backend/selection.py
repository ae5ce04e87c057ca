"""Choosing the array library and device that every tinygpt computation runs on.

The choice is global (like a "current device"): set it with the environment
variable ``TINYGPT_BACKEND`` (and optionally ``TINYGPT_DEVICE``), with
``tinygpt.backend.use("cupy")``, or for a block of code with
``with tinygpt.backend.using("array_api_strict"): ...``.
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

from tinygpt.errors import BackendError

BACKENDS = ("numpy", "array_api_strict", "cupy")
FLOAT_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Backend:
    """An Array API namespace plus the device arrays are created on."""

    name: str
    xp: ModuleType
    device: Any

    @property
    def float_dtype(self) -> Any:
        """The dtype new floating arrays get (float32 unless a float64 scope is active)."""
        return getattr(self.xp, _state.float_name)

    @property
    def int_dtype(self) -> Any:
        """The dtype of token ids and other indices."""
        return self.xp.int64

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
    if name == "numpy":
        import array_api_compat.numpy as numpy_xp

        if device not in (None, "", "cpu"):
            raise BackendError(
                f"the numpy backend runs on the CPU only, got device {device!r}; "
                "unset TINYGPT_DEVICE or use TINYGPT_BACKEND=cupy for a GPU"
            )
        return Backend("numpy", numpy_xp, "cpu")
    if name == "array_api_strict":
        try:
            import array_api_strict as strict_xp
        except ImportError as exc:
            raise BackendError(
                "backend 'array_api_strict' needs the array-api-strict package: "
                "pip install array-api-strict (or pip install 'tinygpt[test]')"
            ) from exc
        # A simulated second device by default, so arrays created without
        # device= fail loudly instead of silently landing on the CPU.
        dev = strict_xp.Device(device or "device1")
        return Backend("array_api_strict", strict_xp, dev)
    if name == "cupy":
        try:
            import cupy
        except ImportError as exc:
            raise BackendError(
                "TINYGPT_BACKEND=cupy but CuPy is not installed: install it with "
                "pip install 'tinygpt[cuda12]' (or [cuda13] for CUDA 13), "
                "or unset TINYGPT_BACKEND to run on the CPU with NumPy"
            ) from exc
        if not cupy.is_available():
            raise BackendError(
                "TINYGPT_BACKEND=cupy but no CUDA GPU is visible (cupy.is_available() "
                "is False): check nvidia-smi, or unset TINYGPT_BACKEND to use NumPy"
            )
        import array_api_compat.cupy as cupy_xp

        index = 0
        if device:
            text = device.removeprefix("cuda").lstrip(":")
            if not text.isdigit():
                raise BackendError(f"bad cupy device {device!r}: use 'cuda:N', e.g. cuda:0")
            index = int(text)
        count = cupy.cuda.runtime.getDeviceCount()
        if index >= count:
            raise BackendError(f"device cuda:{index} requested but only {count} GPU(s) present")
        gpu = cupy.cuda.Device(index)
        gpu.use()  # CuPy allocates on the current device; array_api_compat ignores device=
        return Backend("cupy", cupy_xp, gpu)
    raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")


def use(name: str, device: str | None = None) -> Backend:
    """Make ``name`` the current backend (``numpy``, ``array_api_strict`` or ``cupy``)."""
    _state.backend = _load(name.strip().lower(), device)
    return _state.backend


def current() -> Backend:
    """The active backend; on first use it comes from ``TINYGPT_BACKEND`` (default numpy)."""
    if _state.backend is None:
        name = os.environ.get("TINYGPT_BACKEND", "").strip() or "numpy"
        use(name, os.environ.get("TINYGPT_DEVICE") or None)
    return _state.backend  # type: ignore[return-value]


@contextlib.contextmanager
def using(name: str, device: str | None = None) -> Iterator[Backend]:
    """Run a block of code on another backend, then restore the previous one."""
    previous = _state.backend
    try:
        yield use(name, device)
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
        yield
    finally:
        _state.float_name = previous


def available_memory(b: Backend | None = None) -> int | None:
    """Bytes free for arrays on the backend's device (None when it cannot be told)."""
    b = b or current()
    if b.name == "cupy":
        with b.device:
            free, _total = b.device.mem_info
            return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
