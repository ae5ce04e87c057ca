# %% [markdown]
# # The causal mask and single-head self-attention
#
# Attention lets every position gather information from the others. Each position `t` makes
# three vectors from its input `x[t]`: a **query** `q = x @ w_q` ("what am I looking for?"), a
# **key** `k = x @ w_k` ("what do I hold?") and a **value** `v = x @ w_v` ("what do I pass on?").
# Query `t` scores every key `j` with a dot product, the softmax turns the scores of one query
# into weights that sum to 1, and the output at `t` is the weighted average of the values:
#
#     weights = softmax(q @ k^T / sqrt(D) + mask)        (B, T, T): row t = how much t reads each j
#     out     = weights @ v                               (B, T, D)
#
# **Why divide by sqrt(D)?** A dot product of two `D`-dimensional vectors with unit-variance
# entries has variance `D`. Unscaled, the scores grow with the head size, the softmax saturates
# (one weight near 1, the rest near 0) and its gradients vanish. Dividing by `sqrt(D)` keeps
# the scores around 1 whatever `D` is.
#
# **Why the mask?** A language model learns to predict token `t + 1` from tokens `0 .. t`. If
# position `t` could read position `t + 1`, it would copy the answer and learn nothing. So query
# `t` may only look at keys `j <= t`: the mask is 0 there and `-inf` above the diagonal, and it
# is **added to the scores before the softmax**: `exp(-inf) = 0` exactly, and the remaining
# weights of the row still sum to 1. Multiplying a score by 0 does not mask it (`exp(0) = 1`
# still gives the future a weight); zeroing weights *after* the softmax leaves rows that no
# longer sum to 1.
#
# **Why subtract the maximum in the softmax?** `softmax(z)_j = exp(z_j) / sum_i exp(z_i)`.
# Scores of 1000 are not rare in a trained model, and `exp(1000)` is `inf` (in float32 already
# `exp(89)` is): `inf / inf` is `nan`. Subtracting the row's maximum changes nothing in the
# result (the factor `exp(-max)` cancels) and makes the largest exponent `exp(0) = 1`.
#
# *Exercise 3 of 10.* Builds on `positional_encoding` (token vectors that know where they are).
# Next, `multi_head_attention`: this head, H times side by side, with its backward pass.

# %%
import math
from typing import Any

from tinygpt import backend

Array = Any  # an array of the current backend: xp = backend.current().xp

# %% [markdown]
# ## The causal mask
#
# `causal_mask(T)` is `(T, T)` in the backend's float dtype: entry `[i, j]` is `0.0` where query
# `i` may see key `j` (`j <= i`: the diagonal and below) and `-inf` (`-math.inf`) above it.
# For `T = 3`:
#
#     [[0, -inf, -inf],
#      [0,    0, -inf],
#      [0,    0,    0]]
#
# Hints: `xp.arange(T, device=b.device)[:, None]` is a column of row numbers, `[None, :]` a row
# of column numbers; comparing them broadcasts to `(T, T)`; `xp.where(condition, a, b)` picks
# elementwise (make `a` and `b` with `xp.zeros` / `xp.full(..., -math.inf, ...)`, `dtype=` and
# `device=` given).


# %%
def causal_mask(t: int) -> Array:
    """(T, T) of the backend's float dtype: 0 where key j <= query i, -inf where j > i."""
    raise NotImplementedError("write causal_mask: 0 on and below the diagonal, -inf above it")


# %% [markdown]
# ## A softmax that does not overflow
#
# Over the last axis, for any leading axes: `z (..., N) -> (..., N)`, each row summing to 1.
# Keep the row maximum and the row sum as columns (`keepdims=True`) so that they broadcast
# against their own row. A row may hold `-inf` entries (masked keys): they must come out as 0.


# %%
def softmax(z: Array) -> Array:
    """z (..., N) -> probabilities over the last axis (..., N), z's dtype; stable for large z."""
    raise NotImplementedError("write softmax: subtract the row maximum, exponentiate, divide by the row sum")


# %% [markdown]
# ## The attention weights
#
# `q` and `k` are `(B, T, D)`. Return `softmax(q @ k^T / sqrt(D) + causal_mask(T))`, `(B, T, T)`.
# Use `xp.matrix_transpose(k)` (it swaps the last two axes): then the same code also works with
# more leading axes, `(B, H, T, D)`, which the next exercise (multi-head attention) needs.


# %%
def attention_weights(q: Array, k: Array) -> Array:
    """q, k (..., T, D) -> causal attention weights (..., T, T), each row summing to 1."""
    raise NotImplementedError(
        "write attention_weights: scaled scores, plus the causal mask, then the softmax"
    )


# %% [markdown]
# ## Self-attention
#
# `x` is `(B, T, C)`; `w_q`, `w_k`, `w_v` are `(C, D)` (tinygpt stores weights input-first, so a
# projection is `x @ w`, as in `tinygpt.layers.Dense`). Return `weights @ v`, `(B, T, D)`.
# tinygpt's `SelfAttention` layer is this, plus biases and an output projection.


# %%
def self_attention(x: Array, w_q: Array, w_k: Array, w_v: Array) -> Array:
    """x (B, T, C), w_q, w_k, w_v (C, D) -> causal single-head attention (B, T, D), x's dtype."""
    raise NotImplementedError("write self_attention: project q, k, v, then weights @ v")


# %% [markdown]
# ## Try it
#
# Run this file (`python self_attention.py`) or this cell. The grader skips this part.

# %%
if __name__ == "__main__":
    print(backend.to_numpy(causal_mask(3)))  # 0 on and below the diagonal, -inf above
    b = backend.current()
    x = backend.Generator(0).normal((1, 4, 8))  # (B, T, C)
    w = [backend.Generator(i).normal((8, 4)) for i in (1, 2, 3)]
    q, k = x @ w[0], x @ w[1]
    print(backend.to_numpy(attention_weights(q, k)).round(2))  # lower triangular, rows sum to 1
    print(self_attention(x, *w).shape)  # (1, 4, 4)
    print("the scores are divided by sqrt(D) =", math.sqrt(q.shape[-1]))
