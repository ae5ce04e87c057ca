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
                raise BackendError(f"bad cupy device {device!r}: use 'cuda' or 'cuda:N', e.g. cuda:0")
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
