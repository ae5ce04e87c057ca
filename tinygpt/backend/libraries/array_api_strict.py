"""array_api_strict: the standard and nothing more, on a simulated second device (tests)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from tinygpt.backend.library import Array, ArrayLibrary, is_module_array
from tinygpt.errors import BackendError


class ArrayApiStrict(ArrayLibrary):
    name = "array_api_strict"
    extra = "test"
    devices = "device1 (default, simulated), CPU_DEVICE"

    def load(self, device: str | None) -> tuple[ModuleType, Any]:
        try:
            import array_api_strict as strict_xp
        except ImportError as exc:
            raise BackendError(
                "backend 'array_api_strict' needs the array-api-strict package: "
                "pip install array-api-strict (or pip install 'tinygpt[test]')"
            ) from exc
        # A simulated second device by default, so arrays created without
        # device= fail loudly instead of silently landing on the CPU.
        try:
            return strict_xp, strict_xp.Device(device or "device1")
        except ValueError as exc:
            raise self.bad_device(device) from exc

    def owns(self, array: Any) -> bool:
        return is_module_array(array, "array_api_strict")

    def to_host(self, array: Array) -> np.ndarray:
        import array_api_strict

        host = array.to_device(array_api_strict.Device("CPU_DEVICE"))
        return np.array(np.from_dlpack(host), copy=True)

    def asarray(self, data: Any, xp: ModuleType, dtype: Any, device: Any, copy: bool) -> Array:
        if self.owns(data):
            return xp.asarray(data.to_device(device), dtype=dtype, device=device)
        # order="C", not ascontiguousarray, which would make a 0-d array 1-d; array_api_strict
        # wraps the NumPy array it is given, so copy here.
        host = np.array(data, order="C", copy=True if copy else None)
        return xp.asarray(host, dtype=dtype, device=device)


LIBRARY = ArrayApiStrict()
