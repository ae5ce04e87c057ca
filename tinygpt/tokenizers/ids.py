"""Token ids checked before decoding: every tokenizer refuses the same bad ids the same way."""

from __future__ import annotations

import operator
from collections.abc import Iterable

from tinygpt.errors import TokenizerError


def checked_ids(ids: Iterable[int], vocab_size: int) -> list[int]:
    """``ids`` (list, iterable, or array with ``.tolist()``) as Python ints in ``[0, vocab_size)``."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    out = []
    for item in ids:
        # operator.index accepts any integer type (numpy ints too) but not
        # floats; bools are ints to Python but surely a bug here.
        try:
            token = operator.index(item)
        except TypeError:
            token = None
        if token is None or isinstance(item, bool):
            raise TokenizerError(f"token id {item!r} is not an integer; decode expects ints")
        if not 0 <= token < vocab_size:
            raise TokenizerError(
                f"token id {token} is outside the vocabulary range "
                f"[0, {vocab_size}); the ids come from a different tokenizer or model"
            )
        out.append(token)
    return out
