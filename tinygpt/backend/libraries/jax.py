"""JAX (``jax.numpy``): immutable arrays on CPUs and GPUs, run op by op (no ``jax.jit``).

Gradients come from tinygpt's own autograd, not ``jax.grad``: the point is one
implementation on every namespace. JAX arrays cannot be written in place, so
every indexed update makes a new array (``writable = False``). Without x64
JAX has no 64-bit types: indices are int32, and float64 exists only inside
``backend.default_float("float64")``, which enables x64 for that block with
JAX's own scoped setting (the global flag is never changed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tinygpt.backend.library import Array, ArrayLibrary, is_module_array
from tinygpt.errors import BackendError


class Jax(ArrayLibrary):
    name = "jax"
    extra = "jax"
    devices = "cpu, gpu, gpu:N"
    gpu_device = "gpu"
    writable = False
    fixed_shapes = True  # eager JAX compiles every operation once per shape

    def load(self, device: str | None) -> tuple[ModuleType, Any]:
        try:
            import jax
            import jax.numpy as jnp
        except ImportError as exc:
            raise BackendError(
                "TINYGPT_BACKEND=jax but JAX is not installed: pip install 'tinygpt[jax]', "
                "or unset TINYGPT_BACKEND to use NumPy"
            ) from exc
        platform, _, index_text = (device or "cpu").strip().lower().partition(":")
        if platform not in ("cpu", "gpu") or (index_text and not index_text.isdigit()):
            raise self.bad_device(device)
        try:
            found = jax.devices(platform)
        except RuntimeError as exc:
            raise BackendError(
                f"TINYGPT_DEVICE={device} but JAX has no {platform} devices ({exc}); "
                "install jax with GPU support (e.g. pip install 'jax[cuda12]') or use TINYGPT_DEVICE=cpu"
            ) from exc
        index = int(index_text or 0)
        if index >= len(found):
            raise BackendError(f"device {platform}:{index} requested but JAX sees {len(found)}")
        return jnp, found[index]

    def index_dtype(self, xp: ModuleType) -> Any:
        return xp.int64 if _x64_enabled() else xp.int32

    def float_dtype(self, xp: ModuleType, name: str) -> Any:
        if name == "float64" and not _x64_enabled():
            raise BackendError(
                "float64 on jax needs x64: compute inside backend.default_float('float64') "
                "(which enables it for that block) or set JAX_ENABLE_X64=1"
            )
        return getattr(xp, name)

    def float_scope(self, name: str) -> contextlib.AbstractContextManager[None]:
        if name != "float64":
            return contextlib.nullcontext()
        import jax

        return jax.enable_x64(True)  # scoped to the block (and thread), unlike jax.config.update

    def owns(self, array: Any) -> bool:
        return is_module_array(array, "jax") or is_module_array(array, "jaxlib")

    def device_is_host(self, device: Any) -> bool:
        return bool(device.platform == "cpu")

    def gpu_count(self) -> int:
        import jax

        try:
            return len(jax.devices("gpu"))
        except RuntimeError:
            return 0

    def synchronize(self, device: Any) -> None:
        """JAX has no device-wide barrier: results are waited for when read (``float``, ``to_numpy``)."""

    def free_memory(self, device: Any) -> int | None:
        stats = device.memory_stats() if device.platform != "cpu" else None
        if stats and "bytes_limit" in stats:
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
        return super().free_memory(device)

    def scatter_add_rows(
        self, ids: Array, values: Array, num_rows: int, device: Any, portable: Callable[..., Array]
    ) -> Array:
        """JAX's functional scatter-add (repeated ids accumulate)."""
        import jax.numpy as jnp

        out = jnp.zeros((num_rows, values.shape[-1]), dtype=values.dtype, device=device)
        return out.at[ids].add(values)


def _x64_enabled() -> bool:
    import jax

    return bool(jax.config.read("jax_enable_x64"))  # the scoped value inside jax.enable_x64


LIBRARY = Jax()
