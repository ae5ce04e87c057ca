"""CuPy: NVIDIA GPUs, with an atomic scatter-add, a one-kernel GELU and dropout masks drawn on the GPU."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from tinygpt.backend.library import GELU_CUBIC, SQRT_2_OVER_PI, Array, ArrayLibrary
from tinygpt.errors import BackendError


class CuPy(ArrayLibrary):
    name = "cupy"
    extra = "cuda12"
    devices = "cuda, cuda:N"
    gpu_device = "cuda"

    def load(self, device: str | None) -> tuple[ModuleType, Any]:
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
        with device:
            free, _total = device.mem_info
            return int(free)

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
        """Drawn on the GPU by a generator seeded from the host one: no host-to-device transfer."""
        import cupy

        with device:
            gpu = cupy.random.default_rng(int(host.integers(2**63)))
            draw = gpu.random(tuple(shape), dtype=cupy.float32)
            return (draw < p_keep).astype(dtype) * (1.0 / p_keep)

    # Across processes: NCCL sums on the GPUs (never run on this project's CPU machines) -------------
    def device_is_host(self, device: Any) -> bool:
        return False

    def gpu_count(self) -> int:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())

    def device_collectives(
        self, host: Any, shared_device: bool, device: Any
    ) -> tuple[Any | None, str | None]:
        """NCCL over all ranks (its id broadcast once over MPI), if every rank can use it."""
        reason, nccl = "", None
        if shared_device:
            reason = "ranks share a GPU and NCCL needs one GPU per rank"
        else:
            try:
                from cupy.cuda import nccl as loaded

                nccl = loaded
                if not nccl.available:
                    reason = "CuPy was built without NCCL"
            except ImportError as exc:
                reason = f"NCCL could not be loaded ({exc})"
        votes = np.array([0.0 if reason else 1.0])
        host.all_reduce_sum(votes)  # NCCL only if every rank can use it
        if votes[0] < host.size:
            why = reason or "another rank cannot use NCCL"
            return None, (
                f"{why}; give each rank its own GPU and install NCCL for CuPy "
                "(python -m cupyx.tools.install_library --library nccl --cuda 12.x)"
            )
        assert nccl is not None
        uid = np.zeros(128, dtype=np.int16)  # ncclUniqueId: 128 (signed) chars, sent once over MPI
        if host.rank == 0:
            uid[:] = nccl.get_unique_id()
        host.broadcast(uid, 0)
        with device:
            communicator = nccl.NcclCommunicator(host.size, tuple(int(c) for c in uid), host.rank)
        return _Nccl(communicator, device), None


class _Nccl:
    """Sum and broadcast of flat CuPy arrays with NCCL, in place on the current stream."""

    def __init__(self, communicator: Any, device: Any) -> None:
        self.communicator = communicator
        self.device = device

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
            stream = cupy.cuda.get_current_stream().ptr
            if name == "allReduce":  # in place; later kernels on the stream see the sum
                self.communicator.allReduce(
                    flat.data.ptr, flat.data.ptr, flat.size, kind, nccl.NCCL_SUM, stream
                )
            else:
                self.communicator.broadcast(flat.data.ptr, flat.data.ptr, flat.size, kind, root, stream)
        return flat


LIBRARY = CuPy()

_KERNELS: dict[str, Any] = {}


def _gelu_kernel() -> Any:
    if "gelu" not in _KERNELS:
        import cupy

        # The formula of kernels.gelu_and_slope_portable, with the same constants, as one kernel.
        _KERNELS["gelu"] = cupy.ElementwiseKernel(
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
    return _KERNELS["gelu"]
