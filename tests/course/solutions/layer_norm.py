"""Reference solution of the layer_norm exercise (the starter, filled in)."""

# %% [markdown]
# # Layer normalization, forward and backward
#
# Every transformer block normalises its input before attention and before the MLP: each token's
# vector `x` (the last axis, `C` features) is shifted to mean 0 and scaled to variance 1, then a
# learned scale `weight` and shift `bias` (one per feature) give the network back the freedom to
# choose its own range:
#
#     mean = x.mean(last axis)          var = ((x - mean) ** 2).mean(last axis)
#     xhat = (x - mean) / sqrt(var + eps)
#     out  = xhat * weight + bias
#
# **Why?** Without it, the scale of the activations drifts from layer to layer and the gradients
# with it: deep stacks stop learning. Normalising each token on its own (not over the batch, as
# batch norm does) works for any batch size, even one sequence while generating.
#
# **Details that matter.** The variance is the *biased* one (divide by `C`, not `C - 1`): it is the
# variance of these `C` numbers, not an estimate for a population. `eps` goes *inside* the square
# root, so a row whose values are all equal (variance 0) gives `xhat = 0` instead of a division by
# zero. Compute the variance from `x - mean`, not as `mean(x**2) - mean**2`: in float32 that
# difference of two large numbers loses every digit when the mean is large.
#
# Then you write the **backward pass** by hand: given `grad_out = dL/d out`, return `dL/dx`,
# `dL/dweight` and `dL/dbias`. The grader compares it with finite differences in float64 and with
# tinygpt's own `functional.layer_norm`, then plugs your two functions into a real TinyGPT and
# trains it on Shakespeare: it must learn exactly as fast as with the library's layer norm.
#
# *Exercise 5 of 10.* Builds on `multi_head_attention` (a forward and backward pair by hand: the
# same convention here). Next, `transformer_block`: attention and an MLP, each behind a layer norm.

# %%
from typing import Any

from tinygpt import backend

Array = Any  # an array of the current backend: xp = backend.current().xp

# %% [markdown]
# ## The forward pass
#
# `x` has shape `(..., C)` (any number of leading axes: `(B, T, C)` in the model), `weight` and
# `bias` have shape `(C,)`. Return `out` (same shape and dtype as `x`) and a `cache`: whatever the
# backward pass will need (a tuple of arrays is usual). Use `xp = backend.current().xp`:
# `xp.mean(x, axis=-1, keepdims=True)`, `xp.sqrt`, broadcasting does the rest.


# %%
def layer_norm_forward(x: Array, weight: Array, bias: Array, eps: float = 1e-5) -> tuple[Array, Any]:
    """x (..., C), weight (C,), bias (C,) -> (out (..., C), cache), out of x's dtype."""
    xp = backend.current().xp
    mean = xp.mean(x, axis=-1, keepdims=True)
    centered = x - mean
    var = xp.mean(centered * centered, axis=-1, keepdims=True)
    rstd = 1.0 / xp.sqrt(var + eps)
    xhat = centered * rstd
    return xhat * weight + bias, (xhat, rstd, weight)


# %% [markdown]
# ## The backward pass
#
# With `gxhat = grad_out * weight` and `N = C` features per row, the gradient of `x` is
#
#     dx = (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)) / sqrt(var + eps)
#
# (means over the last axis). Each term has a reason: `gxhat` is the direct path; `mean(gxhat)`
# is what flows back through the mean; `xhat * mean(gxhat * xhat)` flows back through the
# variance. `dweight` and `dbias` are summed over **every** leading axis, since the same weight
# is used at every position of every sequence: they have shape `(C,)`.
#
# Hint: derive it on paper for one row first, or check a small case with finite differences:
# `(f(x + h) - f(x - h)) / 2h`.


# %%
def layer_norm_backward(grad_out: Array, cache: Any) -> tuple[Array, Array, Array]:
    """grad_out (..., C) -> (grad_x (..., C), grad_weight (C,), grad_bias (C,))."""
    xp = backend.current().xp
    xhat, rstd, weight = cache
    c = xhat.shape[-1]
    gxhat = grad_out * weight
    grad_x = rstd * (
        gxhat - xp.mean(gxhat, axis=-1, keepdims=True) - xhat * xp.mean(gxhat * xhat, axis=-1, keepdims=True)
    )
    grad_weight = xp.sum(xp.reshape(grad_out * xhat, (-1, c)), axis=0)
    grad_bias = xp.sum(xp.reshape(grad_out, (-1, c)), axis=0)
    return grad_x, grad_weight, grad_bias


# %% [markdown]
# ## Try it
#
# Run this file (`python layer_norm.py`) or this cell. The grader skips this part.

# %%
if __name__ == "__main__":
    b = backend.current()
    xp = b.xp
    x = xp.reshape(xp.arange(12, dtype=b.float_dtype, device=b.device), (2, 2, 3))
    weight = xp.ones((3,), dtype=b.float_dtype, device=b.device)
    bias = xp.zeros((3,), dtype=b.float_dtype, device=b.device)
    out, cache = layer_norm_forward(x, weight, bias)
    print(out)  # every row: about [-1.2247, 0, 1.2247]
    print(layer_norm_backward(xp.ones_like(out), cache)[2])  # grad_bias: [4, 4, 4]
