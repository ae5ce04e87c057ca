"""Differentiable operations as functions: primitives and fused ops.

Primitives (``exp``, ``softmax``, ``gelu`` ...) are thin functional forms of the
``Tensor`` methods. The fused ops below (``linear``, ``layer_norm``,
``cross_entropy``, ``causal_self_attention``, ``embedding``) compute a whole
formula in one node with a hand-written backward pass: fewer temporaries, fewer
passes over memory, and much smaller graphs than the same formula composed from
primitives. Tests check each fused op against its composed form.
"""

from __future__ import annotations

import math
from typing import Any

from tinygpt import backend
from tinygpt.backend import Generator
from tinygpt.errors import ShapeError, TokenIdError
from tinygpt.tensor import Array, Tensor, concat, no_grad, op, split, stack, tensor

__all__ = [
    "attention_weights",
    "causal_mask",
    "causal_self_attention",
    "concat",
    "cross_entropy",
    "dropout",
    "embedding",
    "exp",
    "gelu",
    "layer_norm",
    "linear",
    "log",
    "log_softmax",
    "merge_heads",
    "mse_loss",
    "no_grad",
    "relu",
    "sigmoid",
    "softmax",
    "split",
    "split_heads",
    "sqrt",
    "stack",
    "tanh",
    "tensor",
]


# Primitives in functional form ---------------------------------------------------
def exp(x: Tensor) -> Tensor:
    return x.exp()


def log(x: Tensor) -> Tensor:
    return x.log()


def sqrt(x: Tensor) -> Tensor:
    return x.sqrt()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def relu(x: Tensor) -> Tensor:
    return x.relu()


def gelu(x: Tensor) -> Tensor:
    """GELU with the tanh approximation, as in GPT-2."""
    return x.gelu()


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.softmax(axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.log_softmax(axis=axis)


# Fused ops -------------------------------------------------------------------------
def _column_sum(x2: Array) -> Array:
    """Sum over the rows of a (N, C) matrix -> (C,), as ones (1, N) @ x2 (a bias gradient)."""
    b = backend.current()
    ones = b.xp.ones((1, x2.shape[0]), dtype=x2.dtype, device=b.device)
    return b.xp.reshape(b.xp.matmul(ones, x2), (x2.shape[-1],))


@op("linear")
def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight + bias, one node. x (..., in), weight (in, out), bias (out,) -> (..., out)."""
    xp = backend.current().xp
    if x.shape[-1] != weight.shape[0]:
        raise ShapeError(
            f"linear: input has {x.shape[-1]} features but the weight expects {weight.shape[0]} "
            f"(input shape {x.shape}, weight shape {weight.shape})"
        )
    n_in, n_out = weight.shape
    lead = x.shape[:-1]
    x2 = xp.reshape(x.data, (-1, n_in))  # one big matmul instead of one per batch row
    out = xp.matmul(x2, weight.data)
    if bias is not None:
        out += bias.data
    out = xp.reshape(out, (*lead, n_out))

    def backward(g: Array) -> tuple[Array | None, ...]:
        g2 = xp.reshape(g, (-1, n_out))
        gx = gw = gb = None
        if x.requires_grad:
            gx = xp.reshape(xp.matmul(g2, xp.matrix_transpose(weight.data)), (*lead, n_in))
        if weight.requires_grad:
            gw = xp.matmul(xp.matrix_transpose(x2), g2)
        if bias is not None and bias.requires_grad:
            gb = _column_sum(g2)
        return (gx, gw) if bias is None else (gx, gw, gb)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.from_op(out, parents, backward)


@op("layer_norm")
def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Normalise the last axis to zero mean, unit variance, then scale and shift.

    x (..., C), weight and bias (C,). The backward pass is the closed form
    dx = rstd * (gx̂ - mean(gx̂) - x̂ * mean(gx̂ * x̂)), with gx̂ = g * weight.
    """
    xp = backend.current().xp
    if x.shape[-1] != weight.shape[0]:
        raise ShapeError(f"layer_norm: input has {x.shape[-1]} features, weight has {weight.shape[0]}")
    c = x.shape[-1]
    centered = x.data - backend.row_sum(x.data, 1.0 / c)
    # vecdot sums products without materialising centered**2 (one pass fewer).
    rstd = 1.0 / xp.sqrt(xp.vecdot(centered, centered)[..., None] * (1.0 / c) + eps)
    xhat = centered * rstd
    out = xhat * weight.data
    out += bias.data

    def backward(g: Array) -> tuple[Array | None, ...]:
        gx = gw = gb = None
        if weight.requires_grad:
            gw = _column_sum(xp.reshape(g * xhat, (-1, c)))
        if bias.requires_grad:
            gb = _column_sum(xp.reshape(g, (-1, c)))
        if x.requires_grad:
            gxhat = g * weight.data
            proj = xp.vecdot(gxhat, xhat)[..., None] * (1.0 / c)  # mean(gxhat * xhat)
            gx = gxhat - backend.row_sum(gxhat, 1.0 / c)
            gx -= xhat * proj
            gx *= rstd
        return gx, gw, gb

    return Tensor.from_op(out, (x, weight, bias), backward)


def index_array(ids: Any, what: str = "token ids") -> Array:
    """Integer ids as a backend array: a Tensor's data, a backend array, or nested lists converted.

    Anything else (None, floats, strings) is refused naming what was expected: a float id
    would otherwise be truncated somewhere without a word.
    """
    data = ids.data if isinstance(ids, Tensor) else ids
    if not isinstance(ids, Tensor) and not hasattr(data, "device"):  # nested lists, or a host NumPy array
        if not isinstance(data, list | tuple) and not hasattr(data, "shape"):
            raise ShapeError(
                f"{what} must be integers in a backend array, a Tensor or nested lists, got {type(ids).__name__}"
            )
        try:
            data = backend.asarray(data)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ShapeError(f"{what} must be integers in nested lists, got {ids!r:.60}: {exc}") from None
        if 0 in data.shape:  # [] or [[]]: no values to be floats; the caller's shape check explains
            data = backend.asarray(ids, dtype=backend.current().int_dtype)
    if not backend.current().xp.isdtype(data.dtype, "integral"):
        hint = (
            ": floats are not ids (round them with int() first)"
            if backend.current().xp.isdtype(data.dtype, "real floating")
            else ""
        )
        raise ShapeError(f"{what} must be integers, got dtype {data.dtype}{hint}")
    return data


def _check_ids(flat: Array, vocab: int) -> None:
    """Raise TokenIdError unless every id is in [0, vocab): ``take`` would wrap -1 to the last row."""
    if flat.shape[0] == 0:
        return
    xp = backend.current().xp
    low, high = int(xp.min(flat)), int(xp.max(flat))
    if low < 0 or high >= vocab:
        bad = low if low < 0 else high
        raise TokenIdError(
            f"token id {bad} is outside the vocabulary [0, {vocab}); the ids come from another tokenizer "
            "or model (negative ids are not counted from the end)"
        )


@op("embedding")
def embedding(ids: Tensor | Array, weight: Tensor) -> Tensor:
    """Rows of ``weight`` (V, C) at integer ``ids`` (...) -> (..., C).

    The gradient scatter-adds back into the table: an id used twice gets both
    contributions (``backend.scatter_add_rows``).
    """
    b = backend.current()
    xp = b.xp
    idx = index_array(ids)
    flat = xp.reshape(idx, (-1,))
    vocab, width = weight.shape
    _check_ids(flat, vocab)
    out = xp.reshape(xp.take(weight.data, flat, axis=0), tuple(idx.shape) + (width,))

    def backward(g: Array) -> tuple[Array]:
        return (backend.scatter_add_rows(flat, xp.reshape(g, (-1, width)), vocab),)

    return Tensor.from_op(out, (weight,), backward)


@op("cross_entropy")
def cross_entropy(logits: Tensor, targets: Tensor | Array) -> Tensor:
    """Mean of -log softmax(logits)[target]. logits (..., V), integer targets (...).

    Fused: the gradient is (softmax(logits) - one_hot(target)) / N, computed
    from the softmax the forward pass already made.
    """
    b = backend.current()
    xp = b.xp
    tgt = index_array(targets, "cross_entropy targets")
    vocab = logits.shape[-1]
    if tuple(tgt.shape) != logits.shape[:-1]:
        raise ShapeError(
            f"cross_entropy: targets have shape {tuple(tgt.shape)}, expected {logits.shape[:-1]} "
            f"(logits shape {logits.shape})"
        )
    z = xp.reshape(logits.data, (-1, vocab))
    t = xp.reshape(tgt, (-1,))
    n = z.shape[0]
    shifted = z - xp.max(z, axis=-1, keepdims=True)
    e = xp.exp(shifted)
    total = backend.row_sum(e)
    picked = xp.take_along_axis(shifted, t[:, None], axis=-1)
    loss = xp.mean(xp.log(total) - picked)

    def backward(g: Array) -> tuple[Array]:
        grad = e / total
        grad -= backend.one_hot(t, vocab, z.dtype)
        grad *= g / n
        return (xp.reshape(grad, logits.shape),)

    return Tensor.from_op(loss, (logits,), backward)


@op("mse_loss")
def mse_loss(prediction: Tensor, target: Tensor | Array) -> Tensor:
    """Mean squared error."""
    target = target if isinstance(target, Tensor) else Tensor(target, dtype=prediction.dtype)
    diff = prediction - target
    return (diff * diff).mean()


@op("dropout")
def dropout(x: Tensor, p: float, rng: Generator | None, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (training only)."""
    if not training or p == 0.0:
        return x
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if rng is None:
        raise ValueError("dropout with p > 0 in training needs a random Generator")
    mask = rng.keep_mask(x.shape, 1.0 - p, dtype=x.dtype)
    return Tensor.from_op(x.data * mask, (x,), lambda g: (g * mask,))


@op("causal_mask")
def causal_mask(t_query: int, t_key: int | None = None, offset: int = 0) -> Array:
    """Additive mask (t_query, t_key): 0 where query i may see key j (j <= i + offset), else -inf.

    ``offset`` is the number of cached tokens before the first query (KV cache).
    Adding -inf before the softmax gives an exact zero weight (no denormals).
    """
    b = backend.current()
    xp = b.xp
    t_key = t_query + offset if t_key is None else t_key
    rows = xp.arange(t_query, device=b.device)[:, None] + offset
    cols = xp.arange(t_key, device=b.device)[None, :]
    zeros = xp.zeros((t_query, t_key), dtype=b.float_dtype, device=b.device)
    return xp.where(cols <= rows, zeros, -math.inf)


def split_heads(x: Array, n_head: int, parts: int = 1) -> tuple[Array, ...]:
    """(B, T, parts * C) -> ``parts`` views (B, H, T, D), heads batched as an axis (D = C / H).

    ``parts=3`` takes q, k, v apart from a fused projection laid out [q | k | v].
    """
    xp = backend.current().xp
    bsz, t, width = x.shape
    if width % parts or (width // parts) % n_head:
        raise ShapeError(f"width {width} must be {parts} * n_embd with n_embd divisible by n_head={n_head}")
    d = width // parts // n_head
    heads = xp.permute_dims(xp.reshape(x, (bsz, t, parts, n_head, d)), (2, 0, 3, 1, 4))  # (parts, B, H, T, D)
    return tuple(heads[i, ...] for i in range(parts))


def merge_heads(*heads: Array) -> Array:
    """The inverse of ``split_heads``: (B, H, T, D) arrays -> (B, T, len(heads) * H * D)."""
    xp = backend.current().xp
    bsz, h, t, d = heads[0].shape
    # One copy: stacking the (B, T, H, D) views writes the (B, T, n, H, D) layout directly.
    stacked = xp.stack([xp.permute_dims(y, (0, 2, 1, 3)) for y in heads], axis=2)
    return xp.reshape(stacked, (bsz, t, len(heads) * h * d))


@op("attention_weights")
def attention_weights(q: Array, k: Array, mask: Array | None) -> Array:
    """softmax(q k^T / sqrt(D) + mask) for raw arrays (B, H, Tq, D), (B, H, Tk, D)."""
    xp = backend.current().xp
    scores = xp.matmul(q * (1.0 / math.sqrt(q.shape[-1])), xp.matrix_transpose(k))
    return backend.masked_softmax(scores, mask)


@op("causal_self_attention")
def causal_self_attention(
    qkv: Tensor,
    n_head: int,
    dropout_p: float = 0.0,
    rng: Generator | None = None,
    training: bool = False,
    causal: bool = True,
) -> Tensor:
    """Multi-head attention from a fused projection, one node with a hand-written backward.

    qkv (B, T, 3C) holds q, k, v side by side; heads are batched as (B, H, T, D)
    views, never looped over. Returns the heads merged back: (B, T, C).
    """
    xp = backend.current().xp
    q, k, v = split_heads(qkv.data, n_head, parts=3)  # (B, H, T, D) each
    t = q.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1])
    probs = attention_weights(q, k, causal_mask(t) if causal else None)  # (B, H, T, T)
    keep = None
    if training and dropout_p > 0.0:
        if rng is None:
            raise ValueError("attention dropout in training needs a random Generator")
        keep = rng.keep_mask(probs.shape, 1.0 - dropout_p, dtype=probs.dtype)
    used = probs if keep is None else probs * keep
    out = merge_heads(xp.matmul(used, v))  # (B, H, T, D) -> (B, T, C)

    def backward(g: Array) -> tuple[Array]:
        (gy,) = split_heads(g, n_head)  # (B, H, T, D)
        gv = xp.matmul(xp.matrix_transpose(used), gy)
        gp = xp.matmul(gy, xp.matrix_transpose(v))  # (B, H, T, T)
        if keep is not None:
            gp = gp * keep
        gp -= xp.vecdot(gp, probs)[..., None]  # softmax backward, in place
        gp *= probs
        gq = xp.matmul(gp, k) * scale
        gk = xp.matmul(xp.matrix_transpose(gp), q) * scale
        return (merge_heads(gq, gk, gv),)  # (B, T, 3C): the layout of qkv

    return Tensor.from_op(out, (qkv,), backward)
