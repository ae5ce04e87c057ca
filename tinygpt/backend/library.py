"""``ArrayLibrary``: everything tinygpt must know about one array library, in one object.

Each backend is one subclass in ``tinygpt/backend/libraries/`` (numpy,
array_api_strict, cupy, torch, jax) registered once in ``registry.py``. The
rest of tinygpt never asks which library it runs on: it asks the library
object (through ``backend.current()``) for what differs:

- how to import the namespace and parse ``TINYGPT_DEVICE`` (``load``);
- host <-> device copies (``asarray``, ``to_host``, ``owns``);
- dtypes: the index dtype, and whether float64 needs a scope (JAX);
- whether its arrays may be written in place (``writable``), and whether new
  shapes are expensive (``fixed_shapes``: JAX compiles each op per shape);
- device synchronisation and free memory (profiler, memory check); TF32 (``tf32_allowed``);
- fast paths: scatter-add, GELU, masked softmax, dropout masks. Each receives
  its portable Array-API form as the last argument and may simply call it
  (the default); tests check every fast path equals that portable form;
- across processes (data parallelism): whether an array's memory is a host
  buffer MPI may sum in place, how many GPUs a machine has, and a device-side
  communicator (NCCL on CuPy) where there is one.

The array library itself is imported inside ``load`` and the methods, never
when tinygpt is imported: ``import tinygpt`` needs NumPy only.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from tinygpt.errors import BackendError

Array = Any

# GELU, GPT-2's tanh approximation: tanh(sqrt(2/pi) (x + 0.044715 x^3)). The portable form
# (kernels.py) and compiled fast paths (CuPy's kernel) share these constants.
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_CUBIC = 0.044715


class ArrayLibrary:
    """One array library as tinygpt sees it; the defaults suit a mutable, CPU-only library."""

    name = ""
    extra = ""  # the pip extra that installs it ("" when a core dependency)
    devices = "cpu"  # the TINYGPT_DEVICE values it understands, for help texts and errors
    gpu_device: str | None = None  # the TINYGPT_DEVICE value that picks the first GPU (None: no GPU)
    writable = True  # arrays may be updated in place (False: every update makes a new array)
    # Each new array shape costs a compilation (JAX): prefer fixed shapes where they cost little,
    # e.g. the KV cache then attends over its whole capacity, the unfilled tail masked out.
    fixed_shapes = False
    default_on_gpu = False  # with TINYGPT_DEVICE unset, arrays live on a GPU (CuPy): each rank picks its own
    # The same inputs give the same bits on every run (False: atomic adds, whose order varies).
    repeatable = True

    # Loading ----------------------------------------------------------------------------
    def load(self, device: str | None) -> tuple[ModuleType, Any]:
        """Import the library; return its Array API namespace and the device ``device`` names.

        Raise ``BackendError`` naming the fix when the library or device is missing.
        """
        raise NotImplementedError(f"{type(self).__name__} must define load()")

    def bad_device(self, device: str | None, why: str = "") -> BackendError:
        """The one-line error every library gives for a ``TINYGPT_DEVICE`` it cannot use."""
        return BackendError(
            f"bad {self.name} device {device!r}{why}: use one of {self.devices} "
            "(TINYGPT_DEVICE or --device; unset it for the default)"
        )

    # Dtypes ------------------------------------------------------------------------------
    def index_dtype(self, xp: ModuleType) -> Any:
        """The dtype of token ids and other indices."""
        return xp.int64

    def float_dtype(self, xp: ModuleType, name: str) -> Any:
        """The floating dtype called ``name`` ("float32" or "float64")."""
        return getattr(xp, name)

    def float_scope(self, name: str) -> contextlib.AbstractContextManager[None]:
        """A context in which arrays of dtype ``name`` can be made and computed with."""
        return contextlib.nullcontext()

    # Host copies ---------------------------------------------------------------------------
    def owns(self, array: Any) -> bool:
        """Whether ``array`` is one of this library's arrays."""
        return False

    def to_host(self, array: Array) -> np.ndarray:
        """A host NumPy copy of one of this library's arrays."""
        return np.array(array, copy=True)

    def asarray(self, data: Any, xp: ModuleType, dtype: Any, device: Any, copy: bool) -> Array:
        """``data`` (a host NumPy array or one of this library's arrays) as an array of ``dtype`` on
        ``device``; with ``copy`` it never shares memory with a NumPy ``data``."""
        return xp.asarray(data, dtype=dtype, device=device, copy=True if copy else None)

    # Devices -------------------------------------------------------------------------------
    def synchronize(self, device: Any) -> None:
        """Wait until the device has finished queued work (a no-op for synchronous CPU libraries)."""

    def free_memory(self, device: Any) -> int | None:
        """Bytes free for arrays on ``device`` (None when it cannot be told); host RAM by default."""
        return host_free_memory()

    # Fast paths: each gets its portable form last and may just call it ---------------------
    def scatter_add_rows(
        self, ids: Array, values: Array, num_rows: int, device: Any, portable: Callable[..., Array]
    ) -> Array:
        """Rows of ``values`` (N, C) summed into (num_rows, C) at ``ids`` (N,)."""
        return portable(ids, values, num_rows)

    def gelu_and_slope(
        self, x: Array, portable: Callable[[Array], tuple[Array, Array]]
    ) -> tuple[Array, Array]:
        """GELU of ``x`` and its slope, each like x."""
        return portable(x)

    def masked_softmax(
        self, scores: Array, mask: Array | None, portable: Callable[[Array, Array | None], Array]
    ) -> Array:
        """softmax(scores + mask) over the last axis (may reuse ``scores``' memory)."""
        return portable(scores, mask)

    def keep_mask(
        self,
        host: np.random.Generator,
        shape: Sequence[int],
        p_keep: float,
        dtype: Any,
        device: Any,
        portable: Callable[[], Array],
    ) -> Array:
        """A dropout mask (1/p_keep with probability p_keep, else 0); portable: drawn on the host."""
        return portable()

    # Across processes (data parallelism) -----------------------------------------------------
    def host_buffer(self, array: Array) -> Any | None:
        """``array``'s own memory as a host buffer MPI may sum into in place; None: stage a copy."""
        return None

    def device_is_host(self, device: Any) -> bool:
        """Whether arrays on ``device`` live in host memory (all local ranks then share it)."""
        return True

    def gpu_count(self) -> int:
        """GPUs this process can see (0 for a CPU-only library)."""
        return 0

    def gpu_identity(self, device: Any) -> str:
        """What names ``device``'s physical GPU on its machine (its PCI bus id where the library tells)."""
        return str(device)

    def gpu(self, index: int) -> str:
        """The ``TINYGPT_DEVICE`` value naming GPU ``index`` of this machine."""
        return f"{self.gpu_device}:{index}"

    def device_collectives(
        self, host: Any, shared_device: bool, device: Any
    ) -> tuple[Any | None, str | None]:
        """A device-side communicator (``all_reduce_sum(flat)``, ``broadcast(flat, root)``), or
        (None, why not) where sums go through host memory. Called on every rank at once."""
        return None, None

    def __repr__(self) -> str:
        return f"<array library {self.name!r}>"


def tf32_allowed() -> bool:
    """Whether float32 matrix products may use TF32 tensor cores (``TINYGPT_TF32=1``; off by default).

    TF32 keeps 10 bits of mantissa: several times faster on NVIDIA GPUs since
    Ampere, but results then differ from the CPU's at about 1e-3 (docs/gpu.md).
    """
    value = os.environ.get("TINYGPT_TF32", "").strip()
    if value not in ("", "0", "1"):
        raise BackendError(
            f"TINYGPT_TF32={value!r}: use 1 to allow TF32 matrix products, 0 or unset for full float32"
        )
    return value == "1"


def host_free_memory() -> int | None:
    """Bytes of host memory available (Linux ``MemAvailable``, else free pages), or None."""
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


def is_module_array(array: Any, module: str) -> bool:
    """Whether ``array``'s type comes from package ``module`` (no import of that package)."""
    return type(array).__module__.split(".")[0] == module
