"""Fused elementwise kernels: one portable Array-API form each, plus backend fast paths.

The portable form works everywhere and keeps temporaries few with in-place
updates (on JAX each ``+=`` makes a new array; nothing relies on the update
being seen elsewhere). A library may run it faster: NumPy over cache-sized
chunks of a large array, CuPy as one compiled CUDA kernel (see
``tinygpt/backend/libraries/``). Tests check fast path == portable form.
"""

from __future__ import annotations

from typing import Any

from tinygpt.backend.library import GELU_CUBIC, SQRT_2_OVER_PI
from tinygpt.backend.selection import current


def gelu_and_slope(x: Any) -> tuple[Any, Any]:
    """GELU (tanh form) of x and its derivative, computed together: (y, dy/dx), each like x.

    y = 0.5 x (1 + t), t = tanh(sqrt(2/pi) (x + 0.044715 x^3));
    dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
    """
    return current().library.gelu_and_slope(x, gelu_and_slope_portable)


def gelu_and_slope_portable(x: Any) -> tuple[Any, Any]:
    """The Array-API form of ``gelu_and_slope`` (in-place updates keep temporaries to four)."""
    xp = current().xp
    x2 = x * x
    u = x2 * GELU_CUBIC
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
    x2 *= 3 * GELU_CUBIC
    x2 += 1.0
    x2 *= SQRT_2_OVER_PI
    slope *= x2
    slope *= x
    t += 1.0
    slope += t
    slope *= 0.5
    return y, slope


def row_sum(x: Any, scale: float = 1.0) -> Any:
    """scale * sum over the last axis, kept as (..., 1): a matrix-vector product.

    For short rows (attention, layer norm, the loss) BLAS's product with a
    constant vector runs several times faster than a reduction ufunc.
    """
    b = current()
    weights = b.xp.full((x.shape[-1], 1), scale, dtype=x.dtype, device=b.device)
    return b.xp.matmul(x, weights)


def masked_softmax(scores: Any, mask: Any | None) -> Any:
    """softmax(scores + mask) over the last axis, reusing ``scores``' memory: (..., Tq, Tk).

    ``mask`` (Tq, Tk) holds 0 where a query may look and -inf where it may not.
    The row maximum is subtracted first so exp never overflows; row sums are
    products with a ones vector (BLAS beats a reduction on short rows).
    """
    return current().library.masked_softmax(scores, mask, masked_softmax_portable)


def masked_softmax_portable(scores: Any, mask: Any | None) -> Any:
    """The Array-API form of ``masked_softmax``."""
    xp = current().xp
    if mask is not None:
        scores += mask
    scores -= xp.max(scores, axis=-1, keepdims=True)
    probs = xp.exp(scores)
    probs /= row_sum(probs)
    return probs
