# %% [markdown]
# # The transformer block: pre-norm, residuals, and the vision demo's Dense layers
#
# A GPT is a stack of identical blocks. Each block does two things to the residual stream `x`
# (`(B, T, C)`: B sequences, T positions, C features per position):
#
#     x = x + attn(ln1(x))     # communicate: every position reads the positions before it
#     x = x + mlp(ln2(x))      # compute: every position thinks on its own
#
# **Why residuals?** Each sublayer only *adds* a change to `x` instead of replacing it. The
# identity path `x -> x` carries the gradient from the loss straight back to the embeddings
# through any number of blocks, and a freshly initialised block (whose branches output almost
# nothing) starts out close to doing nothing, which is a safe place for training to start.
#
# **Why pre-norm?** The layer norm sits *inside* each branch: it normalises what the sublayer
# reads, never the stream itself. The original Transformer normalised after the addition
# (`x = ln(x + attn(x))`, "post-norm"): then every gradient passes through every norm on its way
# down, and deep stacks need learning-rate warm-up to train at all. GPT-2 moved the norm in front.
#
# **Why the MLP is 4 times wider.** Attention mixes positions but is nearly linear in what it
# moves; the MLP is where each position computes: `C -> 4C -> GELU -> C`, applied to every
# position independently. It holds two thirds of a block's parameters. Its two `Dense` layers are
# the very `Dense` layers of tinygpt's vision demo (`tinygpt vision`: `Dense -> ReLU -> Dense` on
# 8x8 digits): a language model's MLP is that image classifier's hidden layer, run at every
# position. GPT-2 uses GELU, a smooth ReLU that lets small negative values through.
#
# You build both classes from the library's layers (`Dense`, `GELU`, `LayerNorm`,
# `MultiHeadAttention`); autograd gives the backward pass. The grader copies the same weights
# into your block and the library's `TransformerBlock`, compares outputs and gradients, then
# puts your block into every layer of a real TinyGPT and trains it on Shakespeare.
#
# *Exercise 6 of 10.* Builds on `multi_head_attention` and `layer_norm` (used here as the library's
# layers). Next, `gpt_model`: a stack of these blocks between the embeddings and the head.

# %%
from tinygpt.backend import Generator
from tinygpt.layers import GELU, Dense, KVCache, LayerNorm, Module, MultiHeadAttention  # noqa: F401 - yours to use
from tinygpt.tensor import Tensor

# %% [markdown]
# ## The MLP
#
# A `Module` finds its parameters through its attributes, and the grader copies weights **by
# name**: name the layers as the library does.
#
# - `self.fc`: `Dense(n_embd, 4 * n_embd, rng=rng)`, the widening layer (weight `(C, 4C)`)
# - `self.act`: `GELU()`
# - `self.proj`: `Dense(4 * n_embd, n_embd, rng=rng)`, back to C (weight `(4C, C)`)
#
# `forward(x)` applies them in that order. Layers are called like functions: `self.fc(x)`.


# %%
class MLP(Module):
    """Position-wise feed-forward: x (B, T, C) -> fc (B, T, 4C) -> GELU -> proj (B, T, C)."""

    def __init__(self, n_embd: int, rng: Generator | None = None) -> None:
        raise NotImplementedError("write MLP.__init__: the layers fc (C -> 4C), act and proj (4C -> C)")

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, C) Tensor -> (B, T, C) Tensor of x's dtype."""
        raise NotImplementedError("write MLP.forward: fc, then the activation, then proj")


# %% [markdown]
# ## The block
#
# Four parts, named as the library names them: `self.ln1 = LayerNorm(n_embd)`,
# `self.attn = MultiHeadAttention(n_embd, n_head, rng=rng)`, `self.ln2 = LayerNorm(n_embd)` (a
# second norm with its own weights: each branch learns its own scale), and `self.mlp = MLP(n_embd,
# rng=rng)`.
#
# `forward(x, cache)` is the two lines at the top, in that order: attention first, then the MLP
# reads the stream *after* attention's change was added. Add each branch to `x` itself (the raw
# stream), not to the normalised `ln1(x)`.
#
# `cache` is for generation: a `KVCache` keeps the keys and values of the tokens seen so far, so
# each new token costs one position of work. Training passes `None`. Hand it on to the attention:
# `self.attn(h, cache=cache)`.


# %%
class TransformerBlock(Module):
    """One pre-norm block: x (B, T, C) -> (B, T, C), with the library TransformerBlock's parameter names."""

    def __init__(self, n_embd: int, n_head: int, rng: Generator | None = None) -> None:
        raise NotImplementedError("write TransformerBlock.__init__: the parts ln1, attn, ln2 and mlp")

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        """x (B, T, C) Tensor -> (B, T, C) Tensor: x + attn(ln1(x)), then x + mlp(ln2(x))."""
        raise NotImplementedError(
            "write TransformerBlock.forward: two residual branches, each behind its norm"
        )


# %% [markdown]
# ## Try it
#
# Run this file (`python transformer_block.py`) or this cell. The grader skips this part.

# %%
if __name__ == "__main__":
    from tinygpt import backend

    block = TransformerBlock(16, 2, rng=backend.Generator(0))
    x = Tensor(backend.Generator(1).normal((2, 5, 16)))  # (B, T, C)
    print(block(x).shape)  # (2, 5, 16): same shape in and out
    for name, p in block.named_parameters():
        print(f"{name:<18} {p.shape}")  # ln1.weight (16,), ..., mlp.fc.weight (16, 64), ...
