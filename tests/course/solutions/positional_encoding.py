"""Reference solution of the positional_encoding exercise (the starter, filled in)."""

# %% [markdown]
# # Sinusoidal positions
#
# Attention (the next two exercises) is a weighted average over positions, and an average does
# not care about order: shuffle the tokens of "dog bites man" and every position computes the
# same thing as before, only shuffled. So before the first block, each position adds its own
# vector to its token's embedding, and "man" at position 0 no longer looks like "man" at
# position 2.
#
# The fixed positions of "Attention Is All You Need" are sines and cosines of geometrically
# spaced frequencies. For a model of width `C`, column pair `(2i, 2i + 1)` turns at angular
# frequency `w_i = 1 / 10000^(2i/C)`:
#
#     pe[pos, 2i]     = sin(pos * w_i)
#     pe[pos, 2i + 1] = cos(pos * w_i)          pos = 0, 1, 2, ...   i = 0, 1, ..., ceil(C/2) - 1
#
# **Why sines?** They need no training and exist for every position. Each column pair is a clock
# hand: the fast pairs (`w_0 = 1` radian per step) tell neighbours apart, the slow ones (down to
# about 1/10000) tell far-apart positions apart. And because `sin(a + b)` and `cos(a + b)` are
# fixed combinations of `sin a` and `cos a`, moving `k` positions on is a *rotation* of each pair
# by the angle `k * w_i`: `pe[t + k]` is the same linear function of `pe[t]` for every `t`, which
# makes "the token 3 places back" easy for attention to express.
#
# **Details that matter.** Positions start at 0. Sine and cosine of one frequency sit side by
# side (columns 2i and 2i + 1, interleaved), not sines in the first half and cosines in the
# second: tinygpt (`tinygpt.layers.sinusoidal_table`) uses the interleaved layout, and the grader
# compares with it. For an odd `C` the last column is a sine (there are `ceil(C/2)` frequencies;
# keep the first `C` columns).
#
# Then you add the table to token embeddings `x (B, T, C)`. With an `offset`: when a model
# generates with a KV cache (the last exercise), it feeds only the *new* token, which sits at
# position `offset` (the number of tokens before it), not at position 0.
#
# *Exercise 2 of 10.* Builds on `char_tokenizer` (the ids whose embeddings get a position each).
# Next, `self_attention`: the order-blind average that needs them.

# %%
from typing import Any

from tinygpt import backend

Array = Any  # an array of the current backend: xp = backend.current().xp

# %% [markdown]
# ## The table
#
# Return a `(length, dim)` array in the backend's float dtype (`b.float_dtype`, on `b.device`,
# with `b = backend.current()`). No Python loop over positions is needed: make the positions as a
# column `(length, 1)` and the frequencies as a row `(1, ceil(dim/2))`, and broadcasting gives
# every angle at once.
#
# Hints: `xp.arange(length, dtype=b.float_dtype, device=b.device)`; `xp.arange(0, dim, 2, ...)`
# gives `2i` directly; `x[:, None]` adds an axis; `xp.stack([s, c], axis=-1)` then `xp.reshape`
# interleaves two `(length, n)` arrays into `(length, 2n)`; `table[:, :dim]` crops.


# %%
def sinusoidal_table(length: int, dim: int) -> Array:
    """(length, dim), the backend's float dtype: pe[pos, 2i] = sin(pos / 10000^(2i/dim)), pe[pos, 2i+1] = cos."""
    b = backend.current()
    xp = b.xp
    pos = xp.arange(length, dtype=b.float_dtype, device=b.device)[:, None]  # (length, 1)
    two_i = xp.arange(0, dim, 2, dtype=b.float_dtype, device=b.device)[None, :]  # (1, ceil(dim/2))
    angle = pos / 10000.0 ** (two_i / dim)  # (length, ceil(dim/2))
    table = xp.stack([xp.sin(angle), xp.cos(angle)], axis=-1)  # (length, ceil(dim/2), 2): sin, cos
    return xp.reshape(table, (length, -1))[:, :dim]


# %% [markdown]
# ## Adding positions to tokens
#
# `x` is `(B, T, C)`: `B` sequences of `T` token embeddings. `table` is `(block_size, C)`: one
# row per position the model knows. Position `t` of the input is position `offset + t` of the
# table. A model has no vector for a position at or past `block_size`: when
# `offset + T > block_size`, raise `ValueError` saying so (the caller must crop the input to its
# last `block_size` tokens). Careful: slicing past the end of an array silently returns fewer
# rows, and one row broadcasts over all `T` positions without any error.
#
# Hint: the Array API wants an index for every axis (`table[a:b, :]`, not `table[a:b]`); NumPy
# forgives the short form, the stricter backends do not.


# %%
def add_positions(x: Array, table: Array, offset: int = 0) -> Array:
    """x (B, T, C) + table[offset : offset + T] -> (B, T, C); ValueError if offset + T > table.shape[0]."""
    t = x.shape[-2]
    if offset + t > table.shape[0]:
        raise ValueError(
            f"positions {offset} .. {offset + t - 1} do not all exist: the table has {table.shape[0]} "
            "(block_size); crop the input to its last block_size tokens"
        )
    return x + table[offset : offset + t, :]


# %% [markdown]
# ## Try it
#
# Run this file (`python positional_encoding.py`) or this cell. The grader skips this part.

# %%
if __name__ == "__main__":
    table = sinusoidal_table(6, 4)
    print(backend.to_numpy(table).round(3))  # row 0: [0, 1, 0, 1]; row 1: [0.841, 0.54, 0.01, 1]
    b = backend.current()
    x = b.xp.zeros((1, 3, 4), dtype=b.float_dtype, device=b.device)
    print(backend.to_numpy(add_positions(x, table, offset=2))[0, 0])  # the row of position 2
