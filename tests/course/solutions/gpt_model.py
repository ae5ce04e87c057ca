"""Reference solution of the gpt_model exercise (the starter, filled in)."""

# %% [markdown]
# # The TinyGPT forward pass: embeddings, positions, blocks, a tied head
#
# You have the parts; now the model. Token ids `(B, T)` go in, one score (logit) per vocabulary
# entry at every position comes out, `(B, T, V)`:
#
#     x = wte[ids] + wpe[0..T-1]           # (B, T, C): what each token is, plus where it is
#     for block in blocks: x = block(x)     # (B, T, C): n_layer pre-norm transformer blocks, in order
#     x = ln_f(x)                           # (B, T, C): one last layer norm
#     logits = x @ wte.T                    # (B, T, V): the same table reads tokens out
#
# **Why positions?** Attention is a weighted sum over the positions a token may see: it does not
# know where they are. Without a position vector added to each token, "to be" and "be to" would
# look alike. GPT-2 *learns* its position vectors: a second table `wpe` of `block_size` rows,
# looked up at positions 0, 1, ..., T - 1. That table is also why the model has a maximum
# context: there is no row for position `block_size`, so a longer prompt must be refused (or
# cropped to its last `block_size` tokens by whoever calls the model).
#
# **Why a final layer norm?** Every block adds to the residual stream, so its scale grows with
# depth; the blocks normalise what they *read*, never the stream itself. `ln_f` normalises it
# once before the output layer.
#
# **Why tie the head to the embedding?** The output layer scores each vocabulary entry by a dot
# product with a C-vector; the embedding table already holds one C-vector per entry. Using the
# same table (`logits = x @ wte.weight.T`, no separate head weight) saves `V * C` parameters and
# makes tokens that are read alike also predicted alike. The table then learns from both ends:
# its gradient is the sum of what flows back through the head and through the lookup.
#
# The grader copies the same weights into your model and the library's `TinyGPT`, compares the
# logits and every gradient, then trains your model beside the library's on Shakespeare.
#
# *Exercise 7 of 10.* Builds on `transformer_block` (the blocks it stacks) and
# `positional_encoding` (learned positions, this time). Next, `lm_loss`: how its logits are scored.

# %%
from typing import Any

from tinygpt import backend
from tinygpt.backend import Generator
from tinygpt.layers import Embedding, LayerNorm, Module, TransformerBlock
from tinygpt.models import GPTConfig
from tinygpt.tensor import Tensor

Array = Any  # an array of the current backend: xp = backend.current().xp

# %% [markdown]
# ## The parts
#
# The grader copies weights **by name**, so name them as the library's `TinyGPT` does (`c` is
# the `GPTConfig`: `c.vocab_size`, `c.block_size`, `c.n_layer`, `c.n_head`, `c.n_embd`):
#
# - `self.wte = Embedding(c.vocab_size, c.n_embd, rng=rng)`: the token table, weight `(V, C)`
# - `self.wpe = Embedding(c.block_size, c.n_embd, rng=rng)`: the position table, `(block_size, C)`
# - `self.blocks`: a **list** of `c.n_layer` `TransformerBlock(c.n_embd, c.n_head, rng=rng)`
#   (a Module finds the parameters of Modules kept in a list: `blocks.0.attn.qkv.weight`, ...)
# - `self.ln_f = LayerNorm(c.n_embd)`
#
# Keep `self.config = config`, and nothing else that holds weights: in particular no head.
#
# ## The forward pass
#
# `ids` is an integer array `(B, T)` of the backend. Steps, with the shapes:
#
# 1. `T > block_size`: refuse with a `ValueError` whose message names `block_size` (the
#    position table has no row for position `block_size`). `T == block_size` is fine.
# 2. `tok = self.wte(ids)`: `(B, T, C)`.
# 3. `pos = self.wpe(positions)` with positions `0 .. T-1`:
#    `xp.arange(T, dtype=b.int_dtype, device=b.device)` (`b = backend.current()`): `(T, C)`.
#    `tok + pos` broadcasts it over the batch.
# 4. every block, in order; then `self.ln_f`.
# 5. the head: `x @ self.wte.weight.T`, `(B, T, C) @ (C, V)`. Tensors support `@` and `.T`,
#    and autograd sends the gradient into the table from both places it is used.


# %%
class GPTModel(Module):
    """A GPT with a tied head: ids (B, T) -> logits (B, T, V), with the library TinyGPT's parameter names."""

    def __init__(self, config: GPTConfig, rng: Generator | None = None) -> None:
        c = config
        self.config = config
        self.wte = Embedding(c.vocab_size, c.n_embd, rng=rng)
        self.wpe = Embedding(c.block_size, c.n_embd, rng=rng)
        self.blocks = [TransformerBlock(c.n_embd, c.n_head, rng=rng) for _ in range(c.n_layer)]
        self.ln_f = LayerNorm(c.n_embd)

    def forward(self, ids: Array) -> Tensor:
        """ids (B, T) integer array -> logits (B, T, vocab_size) Tensor of the model's float dtype."""
        b = backend.current()
        t = ids.shape[1]
        if t > self.config.block_size:
            raise ValueError(
                f"{t} tokens exceed block_size={self.config.block_size}; crop the prompt to its last "
                f"{self.config.block_size} tokens"
            )
        positions = b.xp.arange(t, dtype=b.int_dtype, device=b.device)
        x = self.wte(ids) + self.wpe(positions)  # (B, T, C) + (T, C)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        return x @ self.wte.weight.T  # (B, T, C) @ (C, V): the tied head


# %% [markdown]
# ## Try it
#
# Run this file (`python gpt_model.py`) or this cell. The grader skips this part.

# %%
if __name__ == "__main__":
    model = GPTModel(GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=16), rng=Generator(0))
    ids = backend.asarray([[1, 2, 3], [4, 5, 6]])  # (B, T) = (2, 3)
    print(model(ids).shape)  # (2, 3, 20)
    print(sorted(name for name, _ in model.named_parameters())[:4])  # blocks.0.attn.proj.bias, ...
