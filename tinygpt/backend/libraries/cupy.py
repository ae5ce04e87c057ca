"""CuPy: NVIDIA GPUs, with an atomic scatter-add, a one-kernel GELU and dropout masks drawn on the GPU.

CuPy 14's wheels carry none of CUDA's libraries: NVRTC, cuBLAS and cuRAND come
from a CUDA toolkit or from NVIDIA's wheels (``tinygpt[cuda12]`` installs them
through CuPy's ``[ctk]`` extra), NCCL from ``nvidia-nccl-cu12``/``-cu13``.
``load`` checks each one and names the pip command for the first one missing.
What holds bit for bit on a GPU, and what only to rounding: docs/gpu.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from tinygpt.backend.library import GELU_CUBIC, SQRT_2_OVER_PI, Array, ArrayLibrary, tf32_allowed
from tinygpt.errors import BackendError

NCCL_ID_BYTES = 128  # NCCL_UNIQUE_ID_BYTES: ncclUniqueId is 128 chars; CuPy >= 14 hands it over as bytes
# CUDA libraries every training step needs: (name cuda-pathfinder knows, what it is, cuda-toolkit extra).
CUDA_LIBRARIES = (
    ("nvrtc", "NVRTC (the run-time compiler of CuPy's kernels)", "nvrtc"),
    ("cublas", "cuBLAS (matrix products)", "cublas"),
    ("curand", "cuRAND (dropout masks)", "curand"),
)


class CuPy(ArrayLibrary):
    name = "cupy"
    extra = "cuda12"
    devices = "cuda, cuda:N"
    gpu_device = "cuda"
    default_on_gpu = True
    repeatable = False  # cupyx.scatter_add adds with atomics: the order, so the last bits, vary by run

    def load(self, device: str | None) -> tuple[ModuleType, Any]:
        try:
            import cupy
        except ImportError as exc:
            raise BackendError(
                "TINYGPT_BACKEND=cupy but CuPy is not installed: install it with "
                "pip install 'tinygpt[cuda12]' (or [cuda13] for CUDA 13), "
                "or unset TINYGPT_BACKEND to run on the CPU with NumPy"
            ) from exc
        if tf32_allowed():
            os.environ["CUPY_TF32"] = "1"  # CuPy reads it at its first float32 matrix product
        if not cupy.is_available():
            raise BackendError(
                "TINYGPT_BACKEND=cupy but no CUDA GPU is visible (cupy.is_available() "
                "is False): check nvidia-smi, or unset TINYGPT_BACKEND to use NumPy"
            )
        problem = cuda_library_problem(cuda_major())
        if problem:
            raise BackendError(problem)
        import array_api_compat.cupy as cupy_xp

        text = (device or "").removeprefix("cuda").lstrip(":")
        if text and not text.isdigit():
            raise self.bad_device(device)
        index = int(text or 0)
        count = cupy.cuda.runtime.getDeviceCount()
        if index >= count:
            raise BackendError(f"device cuda:{index} requested but only {count} GPU(s) present")
        gpu = cupy.cuda.Device(index)
        gpu.use()  # CuPy allocates on the current device; array_api_compat ignores device=
        return cupy_xp, gpu

    def owns(self, array: Any) -> bool:
        from array_api_compat import is_cupy_array

        return is_cupy_array(array)

    def to_host(self, array: Array) -> np.ndarray:
        return array.get()

    def asarray(self, data: Any, xp: ModuleType, dtype: Any, device: Any, copy: bool) -> Array:
        with device:
            return xp.asarray(data, dtype=dtype)  # host data is always copied to the GPU

    def synchronize(self, device: Any) -> None:
        device.synchronize()

    def free_memory(self, device: Any) -> int | None:
        """Free device memory plus the blocks CuPy's pool holds for reuse (arrays get those first)."""
        import cupy

        with device:
            free, _total = device.mem_info
            return int(free) + int(cupy.get_default_memory_pool().free_bytes())

    def gpu_identity(self, device: Any) -> str:
        return str(device.pci_bus_id)  # the same physical GPU, whatever CUDA_VISIBLE_DEVICES numbers it

    def scatter_add_rows(
        self, ids: Array, values: Array, num_rows: int, device: Any, portable: Callable[..., Array]
    ) -> Array:
        """CuPy's atomic scatter-add (the sum order may differ from run to run)."""
        import cupy
        import cupyx

        with device:
            out = cupy.zeros((num_rows, values.shape[-1]), dtype=values.dtype)
            cupyx.scatter_add(out, ids, values)
            return out

    def gelu_and_slope(
        self, x: Array, portable: Callable[[Array], tuple[Array, Array]]
    ) -> tuple[Array, Array]:
        """The portable formula compiled into one CUDA kernel: one read of x, two writes."""
        return _gelu_kernel()(x)

    def keep_mask(
        self,
        host: np.random.Generator,
        shape: Sequence[int],
        p_keep: float,
        dtype: Any,
        device: Any,
        portable: Callable[[], Array],
    ) -> Array:
        """Drawn on the GPU (no host-to-device copy) by one generator per GPU, reseeded from the host one.

        The mask is a function of the host generator's state, as on the CPU
        (same seed, same masks; resumes repeat them), but not the same numbers:
        cuRAND's Philox stream, not NumPy's PCG64.
        """
        import cupy

        with device:
            generator = _mask_generator(device)
            generator.seed(int(host.integers(2**63)))
            draw = generator.random_sample(tuple(shape), dtype=cupy.float32)
            return (draw < p_keep).astype(dtype) * (1.0 / p_keep)

    # Across processes: NCCL sums on the GPUs -------------------------------------------------
    def device_is_host(self, device: Any) -> bool:
        return False

    def gpu_count(self) -> int:
        try:
            import cupy

            return int(cupy.cuda.runtime.getDeviceCount())
        except Exception:  # no CuPy, or no driver: load() says which, with the fix
            return 0

    def device_collectives(
        self, host: Any, shared_device: bool, device: Any
    ) -> tuple[Any | None, str | None]:
        """NCCL over all ranks (its id broadcast once over MPI), if every rank can use it."""
        nccl, reason = _load_nccl(shared_device)
        if host.sum_floats([0.0 if reason else 1.0])[0] < host.size:  # NCCL only if every rank can
            return None, reason or "another rank cannot use NCCL (it shares a GPU, or lacks NCCL)"
        assert nccl is not None
        uid = np.zeros(NCCL_ID_BYTES, dtype=np.uint8)  # sent once over MPI
        if host.rank == 0:
            uid[:] = nccl_id_to_host(nccl.get_unique_id())
        host.broadcast(uid, 0)
        with host.waiting("NCCL's set-up (every rank joins one communicator)"), device:
            communicator = nccl.NcclCommunicator(host.size, nccl_id_from_host(uid), host.rank)
        return _Nccl(communicator, device, host), None


def cuda_major() -> int:
    """The CUDA major version CuPy was built for (12 or 13): it names the pip packages to install."""
    import cupy

    return int(cupy.cuda.runtime.runtimeGetVersion()) // 1000


def cuda_library_problem(
    major: int, libraries: Sequence[tuple[str, str, str]] = CUDA_LIBRARIES
) -> str | None:
    """One line naming the first CUDA library CuPy cannot load and the pip command for it; None if all load."""
    try:
        from cuda import pathfinder  # CuPy >= 14 finds CUDA's libraries with it
    except ImportError:
        return None  # an older CuPy: it reports a missing library itself, at first use
    for library, what, extra in libraries:
        try:
            pathfinder.load_nvidia_dynamic_lib(library)
        except pathfinder.DynamicLibNotFoundError:
            return (
                f"TINYGPT_BACKEND=cupy but CUDA's {what} library cannot be loaded: "
                f"pip install 'cuda-toolkit[{extra}]=={major}.*' (or pip install 'tinygpt[cuda{major}]', "
                "which brings every CUDA library tinygpt uses), or install the CUDA toolkit"
            )
    return None


def nccl_id_to_host(uid: Any) -> np.ndarray:
    """NCCL's unique id (bytes, CuPy >= 14) as (128,) uint8, a host buffer MPI can broadcast."""
    if not isinstance(uid, bytes) or len(uid) != NCCL_ID_BYTES:
        raise BackendError(
            f"NCCL's unique id should be {NCCL_ID_BYTES} bytes (CuPy >= 14), got a {type(uid).__name__} "
            "of another length: upgrade CuPy (pip install -U 'tinygpt[cuda12]', or [cuda13])"
        )
    return np.frombuffer(uid, dtype=np.uint8).copy()


def nccl_id_from_host(buffer: np.ndarray) -> bytes:
    """The id ``nccl_id_to_host`` made, back as the bytes ``NcclCommunicator`` takes."""
    return np.ascontiguousarray(buffer, dtype=np.uint8).tobytes()


def _load_nccl(shared_device: bool) -> tuple[Any | None, str]:
    """CuPy's NCCL module, or why this rank cannot use it ('' when it can)."""
    if shared_device:
        return None, (
            "ranks share a GPU and NCCL needs one GPU per rank: start at most as many ranks on a "
            "machine as it has GPUs"
        )
    try:
        from cupy.cuda import nccl
    except ImportError as exc:
        major = cuda_major()
        return None, f"NCCL cannot be loaded ({exc}): pip install nvidia-nccl-cu{major}"
    if not nccl.available:
        return None, f"this CuPy was built without NCCL: pip install nvidia-nccl-cu{cuda_major()}"
    return nccl, ""


class _Nccl:
    """Sum and broadcast of flat CuPy arrays with NCCL, in place on the current stream.

    Each call waits for its stream inside the host's watchdog: NCCL's kernels
    spin forever when a peer died, and this is where that shows.
    """

    def __init__(self, communicator: Any, device: Any, host: Any) -> None:
        self.communicator = communicator
        self.device = device
        self.host = host

    def all_reduce_sum(self, flat: Array) -> Array:
        return self._call("allReduce", flat)

    def broadcast(self, flat: Array, root: int = 0) -> Array:
        return self._call("broadcast", flat, root)

    def _call(self, name: str, flat: Array, root: int = 0) -> Array:
        import cupy
        from cupy.cuda import nccl

        kinds = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64, "float16": nccl.NCCL_FLOAT16}
        kind = kinds[str(flat.dtype)]
        with self.device:
            flat = cupy.ascontiguousarray(flat)
            stream = cupy.cuda.get_current_stream()
            with self.host.waiting(f"an NCCL {name} over all ranks"):
                if name == "allReduce":  # in place; later kernels on the stream see the sum
                    self.communicator.allReduce(
                        flat.data.ptr, flat.data.ptr, flat.size, kind, nccl.NCCL_SUM, stream.ptr
                    )
                else:
                    self.communicator.broadcast(
                        flat.data.ptr, flat.data.ptr, flat.size, kind, root, stream.ptr
                    )
                stream.synchronize()
        return flat


LIBRARY = CuPy()

_KERNELS: dict[str, Any] = {}
_MASK_GENERATORS: dict[int, Any] = {}


def _mask_generator(device: Any) -> Any:
    """This GPU's dropout generator, made once: cuRAND's Philox, whose reseeding costs nothing.

    (A new ``cupy.random.default_rng`` per mask would set up ~13 MB of XORWOW
    states on an H200 every time.)
    """
    if device.id not in _MASK_GENERATORS:
        import cupy
        from cupy.cuda import curand

        _MASK_GENERATORS[device.id] = cupy.random.RandomState(
            0, method=curand.CURAND_RNG_PSEUDO_PHILOX4_32_10
        )
    return _MASK_GENERATORS[device.id]


# The formula of kernels.gelu_and_slope_portable, with the same constants, as one kernel. NVRTC may
# contract a * b + c into one FMA (one rounding instead of two), so it matches the op-by-op form to
# float32 rounding, not bit for bit (docs/gpu.md).
GELU_KERNEL = (
    "T x",
    "T y, T slope",
    f"""
    const T c = (T){SQRT_2_OVER_PI!r};
    const T x2 = x * x;
    const T t = tanh(c * x * ((T)1 + (T){GELU_CUBIC!r} * x2));
    y = (T)0.5 * x * ((T)1 + t);
    slope = (T)0.5 * ((T)1 + t) + (T)0.5 * x * ((T)1 - t * t) * c * ((T)1 + (T){3 * GELU_CUBIC!r} * x2);
    """,
    "tinygpt_gelu_and_slope",
)


def _gelu_kernel() -> Any:
    if "gelu" not in _KERNELS:
        import cupy

        _KERNELS["gelu"] = cupy.ElementwiseKernel(*GELU_KERNEL)
    return _KERNELS["gelu"]
