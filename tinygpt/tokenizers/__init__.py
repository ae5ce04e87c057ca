"""Tokenizers: text to integer ids and back, one interface for every kind.

``CharTokenizer`` (one code point per token) is the classroom default. Every
tokenizer saves itself as a JSON object (``to_dict``) that a checkpoint keeps
as ``tokenizer.json``; ``tokenizer_from_dict`` reads any of them back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from tinygpt.errors import TokenizerError
from tinygpt.tokenizers.char import FORMAT as CHAR_FORMAT
from tinygpt.tokenizers.char import UNKNOWN_CHOICES, CharTokenizer


@runtime_checkable
class Tokenizer(Protocol):
    """What the model, the trainer, the sampler and checkpoints need of a tokenizer."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str, on_unknown: str = "error") -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def start_ids(self) -> list[int]:
        """Where generation from an empty prompt begins (a newline; GPT-2's ``<|endoftext|>``)."""
        ...

    def to_dict(self) -> dict[str, Any]: ...


def tokenizer_from_dict(data: Any, source: str = "tokenizer data") -> Tokenizer:
    """Rebuild whichever tokenizer wrote ``data`` (``to_dict`` output), checking every field."""
    if isinstance(data, dict) and data.get("format") == CHAR_FORMAT:
        return CharTokenizer.from_dict(data, source=source)
    kind = data.get("format") if isinstance(data, dict) else type(data).__name__
    raise TokenizerError(
        f"{source}: not a tokenizer this tinygpt reads (format {kind!r}); known: {[CHAR_FORMAT]}"
    )


__all__ = ["UNKNOWN_CHOICES", "CharTokenizer", "Tokenizer", "tokenizer_from_dict"]
