"""Fused elementwise kernels: one portable Array-API form each, plus backend fast paths.

The portable form works everywhere and keeps temporaries few with in-place
updates. On CuPy the same formula is one fused CUDA kernel (one read of x, two
writes) instead of a dozen launches. Tests check fast path == portable form.
"""

from __future__ import annotations

import math
from typing import Any

from tinygpt.backend.selection import current

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_and_slope(x: Any) -> tuple[Any, Any]:
    """GELU (tanh form) of x and its derivative, computed together: (y, dy/dx), each like x.

    y = 0.5 x (1 + t), t = tanh(sqrt(2/pi) (x + 0.044715 x^3));
    dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
    """
    if current().name == "cupy":
        return _cupy_gelu()(x)
    return gelu_and_slope_portable(x)


def gelu_and_slope_portable(x: Any) -> tuple[Any, Any]:
    """The Array-API form of ``gelu_and_slope`` (in-place updates keep temporaries to four)."""
    xp = current().xp
    x2 = x * x
    u = x2 * 0.044715
    u += 1.0
    u *= x
    u *= SQRT_2_OVER_PI
    t = xp.tanh(u)
    y = t + 1.0
    y *= x
    y *= 0.5
    slope = t * t
    slope *= -1.0
    slope += 1.0
    x2 *= 3 * 0.044715
    x2 += 1.0
    x2 *= SQRT_2_OVER_PI
    slope *= x2
    slope *= x
    t += 1.0
    slope += t
    slope *= 0.5
    return y, slope


_CUPY_KERNELS: dict[str, Any] = {}


def _cupy_gelu() -> Any:
    if "gelu" not in _CUPY_KERNELS:
        import cupy

        _CUPY_KERNELS["gelu"] = cupy.ElementwiseKernel(
            "T x",
            "T y, T slope",
            """
            const T c = (T)0.7978845608028654;
            const T x2 = x * x;
            const T t = tanh(c * x * ((T)1 + (T)0.044715 * x2));
            y = (T)0.5 * x * ((T)1 + t);
            slope = (T)0.5 * ((T)1 + t) + (T)0.5 * x * ((T)1 - t * t) * c * ((T)1 + (T)0.134145 * x2);
            """,
            "tinygpt_gelu_and_slope",
        )
    return _CUPY_KERNELS["gelu"]
