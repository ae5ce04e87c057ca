"""PyTorch tensors as plain arrays (``array_api_compat.torch``): CPU, CUDA and Apple GPUs.

Only torch's arrays and kernels are used; gradients come from tinygpt's own
autograd, exactly as on every other backend (torch.autograd is never involved).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from tinygpt.backend.library import Array, ArrayLibrary, is_module_array, tf32_allowed
from tinygpt.errors import BackendError


class Torch(ArrayLibrary):
    name = "torch"
    extra = "torch"
    devices = "cpu, cuda, cuda:N, mps"
    gpu_device = "cuda"

    def load(self, device: str | None) -> tuple[ModuleType, Any]:
        try:
            import torch
        except ImportError as exc:
            raise BackendError(
                "TINYGPT_BACKEND=torch but PyTorch is not installed: pip install 'tinygpt[torch]' "
                "(a CPU-only torch build is enough on the CPU), or unset TINYGPT_BACKEND to use NumPy"
            ) from exc
        import array_api_compat.torch as torch_xp

        text = (device or "cpu").strip().lower()
        try:
            dev = torch.device(text)
        except RuntimeError as exc:
            raise self.bad_device(device) from exc
        if dev.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if count == 0:
                raise BackendError(
                    f"TINYGPT_DEVICE={text} but torch sees no CUDA GPU (a CPU-only build, or no driver): "
                    "install a CUDA build of torch, or use TINYGPT_DEVICE=cpu"
                )
            dev = torch.device("cuda", dev.index or 0)
            if dev.index >= count:
                raise BackendError(f"device cuda:{dev.index} requested but only {count} GPU(s) present")
            if tf32_allowed():
                _allow_tf32(torch)
        elif dev.type == "mps":
            if not torch.backends.mps.is_available():
                raise BackendError("TINYGPT_DEVICE=mps but no Apple GPU is available; use TINYGPT_DEVICE=cpu")
        elif dev.type != "cpu":
            raise self.bad_device(device)
        return torch_xp, dev

    def owns(self, array: Any) -> bool:
        return is_module_array(array, "torch")

    def to_host(self, array: Array) -> np.ndarray:
        return np.array(array.detach().cpu().numpy(), copy=True)  # a CPU tensor's numpy() shares memory

    def host_buffer(self, array: Array) -> Any | None:
        return array.numpy() if array.device.type == "cpu" and array.is_contiguous() else None

    def device_is_host(self, device: Any) -> bool:
        return bool(device.type == "cpu")

    def gpu_count(self) -> int:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0

    def synchronize(self, device: Any) -> None:
        import torch

        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elif device.type == "mps":
            torch.mps.synchronize()

    def free_memory(self, device: Any) -> int | None:
        import torch

        if device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(device)
            return int(free)
        return super().free_memory(device)  # CPU and Apple's unified memory: host RAM

    def scatter_add_rows(
        self, ids: Array, values: Array, num_rows: int, device: Any, portable: Callable[..., Array]
    ) -> Array:
        """``index_add_``: no (N, num_rows) one-hot matrix, whatever the vocabulary size."""
        import torch

        out = torch.zeros((num_rows, values.shape[-1]), dtype=values.dtype, device=values.device)
        return out.index_add_(0, ids, values)


LIBRARY = Torch()


def _allow_tf32(torch: Any) -> None:
    """Let CUDA float32 matrix products use TF32 (torch's default for them is full float32)."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9; mixing it with allow_tf32 is an error there
        matmul.fp32_precision = "tf32"
    else:
        matmul.allow_tf32 = True
