# %% [markdown]
# # The language-model loss: the shift, cross-entropy and its gradient
#
# The model reads a window of tokens `(B, T)` and gives, at every position, one score (logit) per
# vocabulary entry: `(B, T, V)`. Training asks each position to predict the **next** token:
#
#     tokens     t  o  _  b  e
#     predicts   o  _  b  e  ?       (T - 1 scored predictions per row)
#
# **Why the shift?** The causal mask lets position `t` see tokens `0..t`. Scored against
# `tokens[t]` it would only have to copy what it already sees: the loss would fall to 0 and the
# model would learn nothing. Scored against `tokens[t + 1]`, it must predict. So the logits of
# positions `0..T-2` are scored against the tokens of positions `1..T-1`; the last position's
# logits have no next token inside the window and are not scored, and the first token is never a
# target. The library does this in one place, `tinygpt.losses.LanguageModelLoss`:
# `cross_entropy(logits[:, :-1, :], tokens[:, 1:])`.
#
# **Cross-entropy** is minus the log of the probability the softmax gives the right token,
# averaged over the `N = B * (T - 1)` predictions:
#
#     log p = z - logsumexp(z)          logsumexp(z) = m + log(sum(exp(z - m))),  m = max(z)
#     loss  = -mean(log p[target])
#
# **Why subtract the max?** `exp(1000)` is `inf` (in float32 already `exp(89)`), so a naive
# softmax of large logits gives `inf / inf = nan`. With `m` subtracted the largest exponent is
# `exp(0) = 1`. And take the log *of the logsumexp form*, never `log(softmax)`: a confident wrong
# prediction gives the target a probability that underflows to 0, and `log(0) = -inf`, where
# `z - logsumexp(z)` is simply a large negative number.
#
# **The gradient** is the famous one: `dloss/dz = (softmax(z) - onehot(target)) / N` at each
# scored position (and 0 at the last position, which the loss never reads), times the incoming
# gradient `grad_out`. The grader compares it with finite differences and with the library's.
#
# *Exercise 8 of 10.* Builds on `gpt_model` (the logits `(B, T, V)` it scores). Next, `train_step`:
# the loss's gradients turned into an update of every weight.

# %%
from typing import Any

from tinygpt import backend

Array = Any  # an array of the current backend: xp = backend.current().xp

# %% [markdown]
# ## The forward pass
#
# `logits` is a float array `(B, T, V)`, `tokens` an integer array `(B, T)` (the same tokens the
# model read). Return the mean loss as a 0-d array of logits' dtype (`xp.mean` gives one) and a
# `cache` for the backward pass. A window of one token (`T < 2`) has nothing to predict: raise a
# `ValueError`.
#
# Hints: `z = logits[:, :-1, :]` and `targets = tokens[:, 1:]`; reshaping both to `(N, V)` and
# `(N,)` makes the rest simple. `xp.max(z, axis=-1, keepdims=True)`;
# `xp.take_along_axis(logp, targets[:, None], axis=-1)` picks each row's target, or build a
# one-hot: `xp.astype(targets[:, None] == xp.arange(V, dtype=targets.dtype, device=b.device), z.dtype)`.


# %%
def lm_loss_forward(logits: Array, tokens: Array) -> tuple[Array, Any]:
    """logits (B, T, V) float, tokens (B, T) int -> (loss: a 0-d array of logits' dtype, cache)."""
    raise NotImplementedError("write lm_loss_forward: shift, log-softmax with the max subtracted, mean")


# %% [markdown]
# ## The backward pass
#
# `grad_out` is `dL/dloss`, a number (a 0-d array; 1 when the loss is what is minimised). Return
# `(grad_logits,)`: one gradient per float input of `lm_loss_forward` (the integer tokens have
# none), as `layer_norm_backward` and `mha_backward` do. `grad_logits = dL/dlogits` has logits'
# shape `(B, T, V)` and dtype: `(softmax - onehot) / N * grad_out` at positions `0..T-2`, zeros at
# position `T-1`. Build it without writing into an array in place (JAX arrays cannot be written):
# compute the `(B, T-1, V)` part and join a zero slice `(B, 1, V)` after it with
# `xp.concat(..., axis=1)`.


# %%
def lm_loss_backward(grad_out: Array, cache: Any) -> tuple[Array]:
    """grad_out: dL/dloss (a 0-d array) -> (grad_logits (B, T, V) of logits' dtype,)."""
    raise NotImplementedError(
        "write lm_loss_backward: (softmax - onehot) / N at the scored positions, 0 at the last"
    )


# %% [markdown]
# ## Try it
#
# Run this file (`python lm_loss.py`) or this cell. The grader skips this part.

# %%
if __name__ == "__main__":
    import math

    b = backend.current()
    logits = b.xp.zeros((2, 5, 7), dtype=b.float_dtype, device=b.device)  # a model that knows nothing
    tokens = backend.Generator(0).integers(0, 7, (2, 5))
    loss, cache = lm_loss_forward(logits, tokens)
    print(float(loss), math.log(7))  # equal: a uniform guess over 7 tokens costs ln 7
    (grad_logits,) = lm_loss_backward(b.xp.asarray(1.0, dtype=b.float_dtype, device=b.device), cache)
    print(
        grad_logits.shape, float(b.xp.sum(grad_logits))
    )  # (2, 5, 7), 0: each row of softmax - onehot sums to 0
