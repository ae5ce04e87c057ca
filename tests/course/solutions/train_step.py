"""Reference solution of the train_step exercise (the starter, filled in)."""

# %% [markdown]
# # One training step: gradient clipping and AdamW
#
# A training step is always the same moves: **forward** (logits from a batch), **loss**,
# **backward** (every parameter gets its gradient), **clip**, **update**. tinygpt's autograd does
# the first three; you write the last two on raw arrays, then the step that ties them together.
# The grader compares each piece with `tinygpt.optim` and finally trains a real TinyGPT on
# Shakespeare with your step: it must learn exactly as well as with the library's.
#
# **Why clip?** One unlucky batch can give a gradient a hundred times the usual size, and one
# such step can throw the weights far from where training was going. Clipping caps the *length*
# of the gradient and keeps its *direction*: all gradients together are one long vector, and when
# its norm (the square root of the sum of every element squared, over *every* tensor) exceeds
# `max_norm`, every tensor is multiplied by the same factor. Clipping each tensor on its own would
# change the direction.
#
# **Why Adam?** Gradients of different weights differ in scale by orders of magnitude. Adam keeps,
# per weight, a running mean of the gradient `m` and of its square `v`, and steps by
# `m / sqrt(v)`: about `lr` for every weight, whatever its gradient's scale.
#
# **Why bias correction?** `m` and `v` start at 0, so after the first step `m = (1 - beta1) * g`
# is ten times too small and `v` a thousand times. Dividing by `1 - beta**step` undoes that
# exactly (step counts from 1): the first step then moves every weight by about `lr`.
#
# **Why decoupled weight decay (the W of AdamW)?** Weight decay pulls weights towards 0 so that
# none grows large without need. Adding `wd * p` to the gradient (L2) does not do that in Adam:
# the sum is divided by `sqrt(v)`, so a weight with large gradients is barely decayed. AdamW
# shrinks the weight itself, `p <- p - lr * wd * p`, apart from the gradient step. Only matrices
# decay (the linear layers' weights and the embeddings); biases and LayerNorm's scale and shift
# do not (`TinyGPT.decay_groups`): pulling a LayerNorm scale towards 0 would switch features off.
#
# **Why return new arrays?** The Array API standard does not promise that an array can be changed
# in place, and JAX's arrays cannot: `p -= lr * step` fails there, and on NumPy it silently
# changes the caller's array too. Write `p = p - lr * step` and return the result; the caller
# stores it.
#
# *Exercise 9 of 10.* Builds on `lm_loss` (the loss whose gradients the step follows). Next,
# `generation`: the trained model writes text.

# %%
import math
from typing import Any

from tinygpt import backend
from tinygpt.losses import LanguageModelLoss

Array = Any  # an array of the current backend: xp = backend.current().xp

# %% [markdown]
# ## Global-norm clipping
#
# `grads` is a list of arrays of any shapes (one per parameter). Return the clipped gradients (a
# list of the same length, shapes and dtypes) and the total norm **before** clipping, as a Python
# float. When `total_norm > max_norm`, multiply every gradient by
# `scale = max_norm / (total_norm + 1e-6)` (tinygpt's and PyTorch's formula); otherwise return
# them unchanged. A norm that is `inf` or `nan` (a broken batch) is returned as it is, with the
# gradients unchanged: the caller sees it and skips the step, instead of every weight turning NaN.
#
# Hints: `float(xp.sum(g * g))` is one tensor's sum of squares; `import math` for `math.sqrt` and
# `math.isfinite`.


# %%
def clip_grad_norm(grads: list[Array], max_norm: float) -> tuple[list[Array], float]:
    """grads: arrays of any shapes -> (clipped grads, same shapes and dtypes; total norm before, a float)."""
    xp = backend.current().xp
    total_norm = math.sqrt(sum(float(xp.sum(g * g)) for g in grads))
    if not math.isfinite(total_norm) or total_norm <= max_norm:
        return list(grads), total_norm
    scale = max_norm / (total_norm + 1e-6)
    return [g * scale for g in grads], total_norm


# %% [markdown]
# ## The AdamW update of one parameter
#
# `param`, `grad`, `m` and `v` have the same shape and dtype; `m` and `v` are what the previous
# call returned (zeros before the first step); `step` is 1 on the first call, 2 on the next ...
#
#     m = beta1 * m + (1 - beta1) * grad
#     v = beta2 * v + (1 - beta2) * grad**2
#     m_hat = m / (1 - beta1**step)          v_hat = v / (1 - beta2**step)
#     param = param * (1 - lr * weight_decay) - lr * m_hat / (sqrt(v_hat) + eps)
#
# `eps` is added to the square root (it only keeps a division by 0 away); the decay uses the
# weight as it was before this step. Return the three new arrays; change none of the inputs.


# %%
def adamw_update(
    param: Array,
    grad: Array,
    m: Array,
    v: Array,
    step: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> tuple[Array, Array, Array]:
    """One AdamW step: arrays of one shape and dtype -> (new param, new m, new v)."""
    xp = backend.current().xp
    beta1, beta2 = betas
    m = beta1 * m + (1.0 - beta1) * grad
    v = beta2 * v + (1.0 - beta2) * (grad * grad)
    m_hat = m / (1.0 - beta1**step)
    v_hat = v / (1.0 - beta2**step)
    param = param * (1.0 - lr * weight_decay) - lr * m_hat / (xp.sqrt(v_hat) + eps)
    return param, m, v


# %% [markdown]
# ## The training step
#
# `model` is a `TinyGPT`; `batch` holds token ids `(B, T)`; `state` is a dict that starts empty
# and is handed back to you on every call: keep the step count and every parameter's `m` and `v`
# in it. `settings` has the attributes `lr`, `betas`, `eps`, `weight_decay` and `grad_clip`.
#
# 1. clear the old gradients (`model.zero_grad()`: `backward` *adds* to a parameter's gradient);
# 2. `loss = LanguageModelLoss()(model(batch), batch)`, then `loss.backward()`;
# 3. clip `[p.grad_data for p in model.parameters()]` to `settings.grad_clip`;
# 4. update every parameter with `adamw_update`, weight decay only where `p.ndim >= 2`, and store
#    the result: `p.data = new_param` (a parameter's raw array is `p.data`);
# 5. return the loss (computed before the update) as a float: `float(loss.item())`.


# %%
def train_step(model: Any, batch: Array, state: dict, settings: Any) -> float:
    """Forward, loss, backward, clip, AdamW on every parameter; returns the loss before the update."""
    xp = backend.current().xp
    model.zero_grad()
    loss = LanguageModelLoss()(model(batch), batch)
    loss.backward()
    params = model.parameters()
    grads, _ = clip_grad_norm([p.grad_data for p in params], settings.grad_clip)
    if "m" not in state:
        state["step"] = 0
        state["m"] = [xp.zeros_like(p.data) for p in params]
        state["v"] = [xp.zeros_like(p.data) for p in params]
    state["step"] += 1
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        decay = settings.weight_decay if p.ndim >= 2 else 0.0
        p.data, state["m"][i], state["v"][i] = adamw_update(
            p.data,
            g,
            state["m"][i],
            state["v"][i],
            state["step"],
            settings.lr,
            settings.betas,
            settings.eps,
            decay,
        )
    return float(loss.item())


# %% [markdown]
# ## Try it
#
# Run this file (`python train_step.py`) or this cell: the loss should fall. The grader skips
# this part.

# %%
if __name__ == "__main__":
    from types import SimpleNamespace

    from tinygpt.data import sample_windows, token_array
    from tinygpt.models import GPTConfig, TinyGPT
    from tinygpt.tokenizers import CharTokenizer

    text = "the quick brown fox jumps over the lazy dog. " * 20
    tokenizer = CharTokenizer.from_text(text)
    ids = token_array(tokenizer.encode(text))
    model = TinyGPT(
        GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32),
        rng=backend.Generator(0),
    )
    settings = SimpleNamespace(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, grad_clip=1.0)
    state: dict = {}
    rng = backend.Generator(1)
    for i in range(60):
        loss = train_step(model, sample_windows(ids, 16, 8, rng), state, settings)
        if i % 20 == 0:
            print(f"step {i}: loss {loss:.3f}")  # falls from about 3.4 to below 0.5
    print("gradient norm of [3, 4] clipped to 1:", clip_grad_norm([backend.asarray([3.0, 4.0])], 1.0)[1])
