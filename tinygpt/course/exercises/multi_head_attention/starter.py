# %% [markdown]
# # Multi-head attention, forward and backward
#
# One head of attention makes one weighted average per position: it can look at the previous
# character *or* at the start of the word, not both. **Multi-head attention** runs `H` heads side
# by side, each on its own slice of `D = C / H` features, and concatenates their outputs: several
# patterns at once, for the cost of one head of width `C`.
#
# In tinygpt (as in GPT-2), one `Dense(C, 3C)` layer makes the queries, keys and values of every
# head at once: its output `qkv (B, T, 3C)` holds `[q | k | v]` side by side on the last axis, and
# inside each, head `h` owns features `h*D .. (h+1)*D - 1`. After attention, a `Dense(C, C)`
# projection mixes the heads. Those two are ordinary Dense layers the library already has; you
# write the part in between, the attention itself, **qkv (B, T, 3C) -> out (B, T, C)**, and its
# backward pass.
#
# **Heads as an axis, not a loop.** Reshape each of q, k, v from `(B, T, C)` to `(B, T, H, D)`
# (each token's features, cut into H blocks of D) and move the head axis forward: `(B, H, T, D)`.
# Now `matmul` batches over `B` *and* `H`: all heads are computed by the same few array calls, and
# a Python loop over heads (slow, H small matmuls) is never needed. The transpose is not optional:
# a reshape straight to `(B, H, T, D)` is legal but wrong, since it cuts the sequence instead of
# the features and mixes different tokens into one head.
#
# **The backward pass by hand.** tinygpt computes attention as one graph node with a hand-written
# backward (`tinygpt.functional.causal_self_attention`): one node instead of a dozen keeps the
# graph small and the memory low. You write the same. Then the grader checks it against finite
# differences in float64 and against the library's backward, and plugs your two functions into a
# real TinyGPT that must train on Shakespeare exactly like the library's.
#
# *Exercise 4 of 10.* Builds on `self_attention` (the mask, the softmax, one head). Next,
# `layer_norm`: the other piece a transformer block is made of.

# %%
import math
from typing import Any

from tinygpt import backend

Array = Any  # an array of the current backend: xp = backend.current().xp

# %% [markdown]
# ## Two helpers from the self_attention exercise
#
# Written out for you (use them, or paste your own): the additive causal mask and a softmax over
# the last axis that does not overflow.


# %%
def causal_mask(t: int) -> Array:
    """(T, T) of the backend's float dtype: 0 where key j <= query i, -inf where j > i."""
    b = backend.current()
    xp = b.xp
    rows = xp.arange(t, device=b.device)[:, None]
    cols = xp.arange(t, device=b.device)[None, :]
    zeros = xp.zeros((t, t), dtype=b.float_dtype, device=b.device)
    return xp.where(cols <= rows, zeros, xp.full((t, t), -math.inf, dtype=b.float_dtype, device=b.device))


def softmax(z: Array) -> Array:
    """z (..., N) -> probabilities over the last axis (..., N); the row maximum is subtracted first."""
    xp = backend.current().xp
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


# %% [markdown]
# ## Splitting and merging heads
#
# `split_heads(x, n_head)`: `(B, T, C) -> (B, H, T, D)` with `D = C // H`; head `h` of token `t`
# is `x[b, t, h*D:(h+1)*D]`. `merge_heads(y)` is its inverse: `(B, H, T, D) -> (B, T, H*D)`.
#
# Hints: `xp.reshape(x, (B, T, H, D))`, then `xp.permute_dims(..., (0, 2, 1, 3))`; merging is the
# same two steps backwards (permute first, then reshape).


# %%
def split_heads(x: Array, n_head: int) -> Array:
    """x (B, T, C) -> (B, H, T, D), D = C // n_head: head h holds features h*D .. (h+1)*D - 1."""
    raise NotImplementedError("write split_heads: reshape to (B, T, H, D), then move the head axis forward")


def merge_heads(y: Array) -> Array:
    """y (B, H, T, D) -> (B, T, H*D): the inverse of split_heads."""
    raise NotImplementedError("write merge_heads: move the head axis back next to D, then reshape")


# %% [markdown]
# ## The forward pass
#
# `qkv (B, T, 3C)`: q is `qkv[:, :, :C]`, k is `qkv[:, :, C:2C]`, v is `qkv[:, :, 2C:]`. Split
# each into heads `(B, H, T, D)`, then per head, exactly as in the self_attention exercise:
#
#     probs = softmax(q @ k^T / sqrt(D) + causal_mask(T))     (B, H, T, T)
#     out   = merge_heads(probs @ v)                          (B, T, C)
#
# Note `sqrt(D)`, the size of one head, not `sqrt(C)`. Return `(out, cache)`: the cache holds what
# your backward pass needs (a tuple such as `(q, k, v, probs)`). Keep nothing in global variables:
# in a model, every layer runs forward before any of them runs backward.


# %%
def mha_forward(qkv: Array, n_head: int) -> tuple[Array, Any]:
    """qkv (B, T, 3C) laid out [q | k | v] -> (out (B, T, C), cache): causal attention with n_head heads."""
    raise NotImplementedError("write mha_forward: split q, k, v into heads, attend with the causal mask")


# %% [markdown]
# ## The backward pass
#
# Given `grad_out = dL/d out (B, T, C)`, return `dL/d qkv (B, T, 3C)`, as a tuple with one
# gradient per array input of `mha_forward`: `(grad_qkv,)`. Split `grad_out` into heads
# `gy (B, H, T, D)` and go back through the forward pass one line at a time (`^T` is
# `xp.matrix_transpose`, the last two axes):
#
#     y = probs @ v                    ->  gv = probs^T @ gy          gp = gy @ v^T
#     probs = softmax(s)  (each row)   ->  gs = probs * (gp - sum(gp * probs, last axis))
#     s = q @ k^T / sqrt(D) + mask     ->  gq = gs @ k / sqrt(D)      gk = gs^T @ q / sqrt(D)
#
# Why each piece: `probs @ v` is a product, so each factor's gradient is the other one, transposed
# to fit. In the softmax, raising one score raises its own weight and lowers all the others of
# the row (they still sum to 1): that is the `- sum(gp * probs)` term. The mask is a constant, so
# it has no gradient of its own; a masked weight is exactly 0, so `gs` is 0 there too, and no
# gradient flows to the future. Finally `grad_qkv` has the layout of `qkv`:
# `[merge_heads(gq) | merge_heads(gk) | merge_heads(gv)]` (`xp.concat(..., axis=-1)`).


# %%
def mha_backward(grad_out: Array, cache: Any) -> tuple[Array]:
    """grad_out (B, T, C) -> (grad_qkv (B, T, 3C),), laid out [dq | dk | dv] like qkv."""
    raise NotImplementedError("write mha_backward: go back through probs @ v, the softmax and q @ k^T")


# %% [markdown]
# ## Try it
#
# Run this file (`python multi_head_attention.py`) or this cell. The grader skips this part.

# %%
if __name__ == "__main__":
    b = backend.current()
    x = backend.Generator(0).normal((1, 2, 6))  # (B, T, C)
    print(split_heads(x, 3).shape)  # (1, 3, 2, 2)
    qkv = backend.Generator(1).normal((2, 5, 3 * 8))  # (B, T, 3C) with C = 8
    out, cache = mha_forward(qkv, n_head=2)
    print(out.shape)  # (2, 5, 8)
    (grad_qkv,) = mha_backward(b.xp.ones_like(out), cache)
    print(grad_qkv.shape)  # (2, 5, 24)
