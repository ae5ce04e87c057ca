# %% [markdown]
# # Generation: temperature, top-k, sampling, and the KV cache
#
# A language model gives, at every position, logits for the next token. Generating text repeats
# one move: run the model on the text so far, turn the **last** position's logits into
# probabilities, draw a token, append it, again. You write that loop, and the draw.
#
# **Why temperature, and why before the softmax?** `softmax(logits / T)`: below 1 it sharpens
# the distribution (safer, more repetitive text), above 1 it flattens it (more surprising, more
# errors), and as `T -> 0` it becomes the argmax: greedy decoding. It divides the *logits*:
# raising probabilities to `1/T` is the same only if you renormalise, and dividing the
# probabilities by `T` changes nothing but their sum.
#
# **Why top-k?** A character model gives every one of its 65 characters some probability; drawn
# often enough, the unlikely ones make the text derail. top-k keeps the k most likely tokens and
# renormalises. Set the others' logits to `-inf` *before* the softmax: `exp(-inf) = 0`.
#
# **Why crop the context?** The model has positions for `block_size` tokens only. Once the text is
# longer, it sees the **last** `block_size` tokens (the most recent context); the text you return
# still holds every token.
#
# **Why a KV cache (the stretch part)?** Without one, every new token re-runs the model over the
# whole context: O(T^2) work for T tokens. Causal attention means earlier positions never change,
# so their keys and values can be kept: each new token then passes through the model alone.
#
# *Exercise 10 of 10, the last.* Builds on `gpt_model` (the logits of the last position) and
# `positional_encoding` (the offset the KV cache needs). After it, `tinygpt train` and `tinygpt
# sample` run the library's version of everything you wrote.

# %%
from typing import Any

from tinygpt import backend
from tinygpt.tensor import no_grad  # noqa: F401  (generate runs the model under no_grad)

Array = Any  # an array of the current backend: xp = backend.current().xp

# %% [markdown]
# ## From logits to probabilities
#
# `logits` has shape `(B, V)`: one row per sequence, one logit per vocabulary entry. Return
# probabilities `(B, V)` of the logits' dtype, each row summing to 1:
#
# 1. divide by `temperature` (> 0);
# 2. with `top_k` (an int, or None for no cut): keep every token whose logit is at least the k-th
#    largest of its row (ties at the k-th value are all kept, as `tinygpt.generation.filter_logits`
#    does); set the rest to `-inf`. `top_k >= V` keeps everything;
# 3. a softmax over the last axis, after subtracting the row's maximum (with `T = 0.01`, logits
#    of 10 become 1000, and `exp(1000)` is inf).
#
# Hints: `xp.sort(z, axis=-1, descending=True)[:, k - 1 : k]` is the k-th largest of each row, as
# `(B, 1)`; `xp.where(z < kth, -xp.inf, z)`.


# %%
def next_token_probs(logits: Array, temperature: float, top_k: int | None) -> Array:
    """logits (B, V) -> probabilities (B, V) after temperature and top-k; rows sum to 1."""
    raise NotImplementedError("write next_token_probs: divide by the temperature, cut to the top k, softmax")


# %% [markdown]
# ## Drawing the next token
#
# Draw one token per row from those probabilities by the **inverse CDF**: take one uniform number
# `u` in [0, 1) per row, and the token is the first whose cumulative probability exceeds `u`
# (the number of tokens whose cumulative probability is still below `u`). A token of probability
# 0.3 owns an interval of length 0.3 of [0, 1), so `u` falls into it 30% of the time.
#
# Draw the numbers with `u = rng.uniform((B, 1))`, **exactly once per call**: `rng` is a
# `backend.Generator`, so the grader can compare your tokens with the library's on the same seed.
# `temperature == 0` means greedy: return the argmax of each row, and draw nothing.
#
# Return `(B,)` token ids of the backend's index dtype `backend.current().int_dtype`.
# Hints: `xp.cumulative_sum(probs, axis=-1)`; `xp.astype(cdf < u, b.int_dtype)` counts with
# `xp.sum(..., axis=-1)`; rounding can leave the last cumulative value a hair below `u`, so cap
# the id at `V - 1` (`xp.minimum`).


# %%
def sample_next(logits: Array, temperature: float, top_k: int | None, rng: backend.Generator) -> Array:
    """logits (B, V) -> one sampled token id per row, (B,) of the index dtype (argmax when temperature == 0)."""
    raise NotImplementedError("write sample_next: probabilities, one uniform number per row, inverse CDF")


# %% [markdown]
# ## The generation loop
#
# `model` is a `TinyGPT`; `ids` `(B, T)` is the prompt (token ids of the index dtype). Make the
# generator once, `rng = backend.Generator(seed)`, then `max_new_tokens` times:
#
# 1. crop: the model sees the last `model.config.block_size` tokens (write the start as
#    `max(0, T - block_size)`: NumPy accepts `ids[:, -block_size:]` on a shorter array, the Array API
#    standard does not promise it);
# 2. `logits = model(context).data[:, -1, :]`: the last position's logits, `(B, V)` (`.data` is a
#    Tensor's raw array);
# 3. draw the next token with your `sample_next` and append it to `ids` (`xp.concat` on axis 1).
#
# Return `(B, T + max_new_tokens)`: the prompt followed by the new tokens. Run the model under
# `with no_grad():` (generation needs no gradients: nothing is kept for a backward pass).


# %%
def generate(
    model: Any,
    ids: Array,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> Array:
    """Prompt ids (B, T) -> (B, T + max_new_tokens): the prompt and the sampled continuation."""
    raise NotImplementedError("write generate: crop, last position's logits, sample_next, append; repeat")


# %% [markdown]
# ## Stretch: generation with the KV cache
#
# Optional: while this body raises `NotImplementedError`, its check is reported as skipped.
#
# Same arguments, the **same tokens** as your `generate`, but each new token passes through the
# model alone. `caches = model.new_caches(B)` gives one empty cache per block; the model then
# remembers every position it has seen:
#
#     logits = model.next_token_logits(ids, caches).data   # the prompt, once: (B, V)
#     logits = model.next_token_logits(nxt, caches).data   # then each new token alone, nxt (B, 1)
#
# A cache holds at most `block_size` positions: when the prompt plus the new tokens would not fit
# (`T + max_new_tokens > block_size`), return your `generate(...)` instead.


# %%
def generate_cached(
    model: Any,
    ids: Array,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> Array:
    """Like generate, with the KV cache: the prompt once, then one new token at a time."""
    raise NotImplementedError(
        "write generate_cached (optional): prefill the caches, then feed each new token"
    )


# %% [markdown]
# ## Try it
#
# Run this file (`python generation.py`) or this cell. The grader skips this part.

# %%
if __name__ == "__main__":
    from tinygpt.models import GPTConfig, TinyGPT

    b = backend.current()
    logits = backend.asarray([[2.0, 1.0, 0.5, -1.0]])
    print(next_token_probs(logits, 1.0, None))  # about [0.61, 0.22, 0.14, 0.03]
    print(next_token_probs(logits, 1.0, 2))  # about [0.73, 0.27, 0, 0]
    print(sample_next(logits, 0.0, None, backend.Generator(0)))  # [0]: greedy
    model = TinyGPT(
        GPTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=16), rng=backend.Generator(0)
    )
    prompt = b.xp.asarray([[1, 2, 3]], dtype=b.int_dtype, device=b.device)
    print(generate(model, prompt, 12, temperature=0.8, top_k=5, seed=1))  # (1, 15): longer than the block
