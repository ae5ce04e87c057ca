"""Reference solution of the char_tokenizer exercise (the starter, filled in)."""

# %% [markdown]
# # A character tokenizer, written against the Array API
#
# A language model reads numbers, not text. The simplest bridge: every distinct character of the
# training text gets an integer id, and a text becomes the array of its characters' ids. You will
# write the `CharTokenizer` that tinygpt trains on Shakespeare with.
#
# **Why sort the characters?** The id of a character is its position in the vocabulary. Sorting
# makes that position depend only on *which* characters occur, not on the order they first appear
# in, so the same text always gives the same ids, and a model trained today still reads the ids
# of tomorrow's run.
#
# **Why refuse unknown characters?** A model only knows the characters it was trained on. Silently
# dropping or replacing an unseen one hides a data problem; an error that names the character
# shows it at once.
#
# *Exercise 1 of 10.* The first step: text becomes the integer ids that every later exercise feeds
# a model. Next, `positional_encoding`: where each token sits.

# %% [markdown]
# ## The Array API in four lines
#
# tinygpt runs the same code on NumPy, PyTorch, JAX and CuPy arrays. Its code never imports an
# array library: it asks the backend for the array namespace `xp` and for the device, and passes
# `dtype=` and `device=` whenever it creates an array:
#
# ```python
# b = backend.current()           # the active backend: TINYGPT_BACKEND, numpy by default
# xp = b.xp                       # the namespace: xp.asarray, xp.zeros, xp.arange, xp.sum, ...
# ids = xp.asarray([3, 1, 4], dtype=b.int_dtype, device=b.device)
# backend.to_numpy(ids).tolist()  # back to Python ints: [3, 1, 4]
# ```
#
# Token ids use the backend's index dtype `b.int_dtype` (int64; int32 on JAX). Write your code this
# way and it runs unchanged on a GPU. On the NumPy backend, plain NumPy (`np.asarray(ids)`) is
# accepted as well.

# %%
from typing import Any

from tinygpt import backend

# %% [markdown]
# ## What to write
#
# - `CharTokenizer(text)` keeps `self.chars`: the distinct characters of `text`, **sorted**, each
#   once (a `list` of one-character strings). A character's id is its index in that list.
# - `vocab_size`: how many characters the vocabulary holds.
# - `encode(text)`: the ids of `text`'s characters, as an array of shape `(len(text),)`, dtype
#   `backend.current().int_dtype`, on `backend.current().device`. A character that is not in the
#   vocabulary raises `ValueError` with a message that names it.
# - `decode(ids)`: the text of an array (or a list) of ids. An id outside `[0, vocab_size)` raises
#   an error. Careful: Python lists accept `chars[-1]`, which is not a valid id.
#
# Hints: `sorted(set(text))` gives the vocabulary; a dict from character to id makes `encode` one
# pass; `backend.to_numpy(ids).tolist()` turns any backend's array into Python ints.


# %%
class CharTokenizer:
    """Maps each distinct character of a text to an integer id, and ids back to text."""

    chars: list[str]  # the vocabulary, set by __init__

    def __init__(self, text: str) -> None:
        """Build the vocabulary ``self.chars``: the sorted distinct characters of ``text``."""
        self.chars = sorted(set(text))
        self.ids = {char: i for i, char in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        """Number of characters in the vocabulary; ids run from 0 to vocab_size - 1."""
        return len(self.chars)

    def encode(self, text: str) -> Any:
        """text -> ids: shape (len(text),), dtype backend.current().int_dtype, on the backend's device.

        A character outside the vocabulary raises ValueError naming the character.
        """
        ids = []
        for char in text:
            if char not in self.ids:
                raise ValueError(f"character {char!r} is not in the vocabulary")
            ids.append(self.ids[char])
        b = backend.current()
        return b.xp.asarray(ids, dtype=b.int_dtype, device=b.device)

    def decode(self, ids: Any) -> str:
        """ids (N,) (an array or a list of ints) -> the text they stand for.

        An id outside [0, vocab_size) raises an error (negative ids too).
        """
        values = ids if isinstance(ids, list) else backend.to_numpy(ids).tolist()
        for i in values:
            if not 0 <= i < len(self.chars):
                raise ValueError(f"id {i} is outside the vocabulary [0, {len(self.chars)})")
        return "".join(self.chars[i] for i in values)


# %% [markdown]
# ## Try it
#
# Run this file (`python char_tokenizer.py`) or this cell. The grader skips this part.

# %%
if __name__ == "__main__":
    tokenizer = CharTokenizer("hello world")
    ids = tokenizer.encode("hello")
    print(tokenizer.chars, tokenizer.vocab_size)
    print(ids, ids.dtype)
    print(tokenizer.decode(ids))
