"""Tokenizers: text to integer ids and back, one interface for every kind.

``CharTokenizer`` (one code point per token) is the classroom default;
``BPETokenizer`` is GPT-2's byte-level BPE (Hugging Face ``tokenizers``,
extra ``[bpe]``). Every tokenizer saves itself as a JSON object (``to_dict``)
that a checkpoint keeps as ``tokenizer.json``; ``tokenizer_from_dict`` reads
any of them back. A BPE tokenizer's JSON is Hugging Face's ``tokenizer.json``;
``huggingface_files`` and ``tokenizer_from_directory`` write and read the
files of a Hugging Face model directory, char tokenizers included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tinygpt import files
from tinygpt.errors import TokenizerError
from tinygpt.tokenizers.bpe import END_OF_TEXT, BPETokenizer, parse_json, read_tokenizer_file
from tinygpt.tokenizers.char import FORMAT as CHAR_FORMAT
from tinygpt.tokenizers.char import UNKNOWN_CHOICES, CharTokenizer


@runtime_checkable
class Tokenizer(Protocol):
    """What the model, the trainer, the sampler and checkpoints need of a tokenizer."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str, on_unknown: str = "error") -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def decode_stream(self, ids: Iterable[int]) -> Iterator[str]:
        """Text as ids arrive (one piece per complete character run); joined, it equals ``decode``."""
        ...

    def start_ids(self) -> list[int]:
        """Where generation from an empty prompt begins (a newline; GPT-2's ``<|endoftext|>``)."""
        ...

    def to_dict(self) -> dict[str, Any]: ...


# A char vocabulary in Hugging Face's format: a BPE model with no merges (every
# character its own token, no pre-tokenizer) whose decoder joins tokens as they are.
_CHAR_DECODER = {"type": "Fuse"}


def _char_tokenizer_json(tokenizer: CharTokenizer) -> dict[str, Any]:
    chars = tokenizer.chars
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": dict(_CHAR_DECODER),
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": tokenizer.unknown,  # CharTokenizer(unknown=c) maps unseen characters to c; so does HF
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {c: i for i, c in enumerate(chars)},
            "merges": [],
        },
    }


def _is_char_tokenizer_json(data: dict[str, Any]) -> bool:
    model = data.get("model")
    return (
        isinstance(model, dict)
        and model.get("type") == "BPE"
        and model.get("merges") == []
        and data.get("decoder") == _CHAR_DECODER
        and data.get("pre_tokenizer") is None
        and data.get("normalizer") is None
        and not data.get("added_tokens")
    )


def _char_from_tokenizer_json(data: dict[str, Any], source: str) -> CharTokenizer:
    vocab = data["model"].get("vocab")
    if not isinstance(vocab, dict) or not all(type(i) is int for i in vocab.values()):
        raise TokenizerError(f"{source}: model.vocab must be a JSON object character -> integer id")
    chars = sorted(vocab, key=vocab.__getitem__)
    if [vocab[c] for c in chars] != list(range(len(chars))):
        raise TokenizerError(f"{source}: the character ids are not exactly 0 .. {len(chars) - 1}")
    unknown = data["model"].get("unk_token")
    return CharTokenizer.from_dict(
        {"format": CHAR_FORMAT, "version": 1, "chars": chars, "unknown": unknown}, source=source
    )


def tokenizer_from_dict(data: Any, source: str = "tokenizer data") -> Tokenizer:
    """Rebuild whichever tokenizer wrote ``data`` (``to_dict`` output, or any HF BPE tokenizer.json)."""
    if isinstance(data, dict) and data.get("format") == CHAR_FORMAT:
        return CharTokenizer.from_dict(data, source=source)
    if isinstance(data, dict) and "model" in data:
        if _is_char_tokenizer_json(data):
            return _char_from_tokenizer_json(data, source)
        return BPETokenizer.from_dict(data, source=source)
    kind = data.get("format") if isinstance(data, dict) else type(data).__name__
    raise TokenizerError(
        f"{source}: not a tokenizer this tinygpt reads (format {kind!r}); "
        f"known: {[CHAR_FORMAT]} and Hugging Face tokenizer.json with a BPE model"
    )


def _file_in(folder: Path, name: str) -> Path | None:
    """``folder/name`` if present; a symbolic link out of ``folder`` is refused (it may point anywhere)."""
    return files.member(folder, name, TokenizerError)


def tokenizer_from_directory(path: str | Path) -> Tokenizer | None:
    """The tokenizer of a model directory: ``tokenizer.json``, else ``vocab.json`` + ``merges.txt``; None if neither."""
    folder = Path(path)
    tokenizer_json = _file_in(folder, "tokenizer.json")
    if tokenizer_json is not None:
        source = str(tokenizer_json)
        return tokenizer_from_dict(parse_json(read_tokenizer_file(tokenizer_json), source), source)
    vocab, merges = _file_in(folder, "vocab.json"), _file_in(folder, "merges.txt")
    if vocab is not None and merges is not None:
        return BPETokenizer.from_gpt2_files(vocab, merges)
    if vocab is not None or merges is not None:
        have, lack = ("vocab.json", "merges.txt") if vocab is not None else ("merges.txt", "vocab.json")
        raise TokenizerError(
            f"{folder} has {have} but no {lack}; a GPT-2 tokenizer needs both (or a tokenizer.json): copy it in"
        )
    return None


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# Every name huggingface_files may write.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")


def huggingface_files(tokenizer: Tokenizer) -> dict[str, bytes]:
    """Tokenizer files for a Hugging Face model directory: ``transformers`` loads them and gives tinygpt's ids.

    ``tokenizer.json`` always, with ``tokenizer_config.json``; for BPE also GPT-2's
    ``vocab.json`` + ``merges.txt``.
    """
    if isinstance(tokenizer, CharTokenizer):
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
        if tokenizer.unknown is not None:
            config["unk_token"] = tokenizer.unknown
        return {
            "tokenizer.json": _json(_char_tokenizer_json(tokenizer)),
            "tokenizer_config.json": _json(config),
        }
    if not isinstance(tokenizer, BPETokenizer):
        raise TokenizerError(
            f"{type(tokenizer).__name__} has no Hugging Face form; use a char or BPE tokenizer"
        )
    data = tokenizer.to_dict()
    files = {"tokenizer.json": _json(data)}
    special = END_OF_TEXT if END_OF_TEXT in data["model"]["vocab"] else None
    files["tokenizer_config.json"] = _json(
        {
            "tokenizer_class": "GPT2Tokenizer",
            "add_prefix_space": False,
            "clean_up_tokenization_spaces": False,
            **({"bos_token": special, "eos_token": special, "unk_token": special} if special else {}),
        }
    )
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    if all(merge.count(" ") == 1 for merge in merges):  # else a token holds a space: merges.txt cannot say it
        files["vocab.json"] = _json(data["model"]["vocab"])
        files["merges.txt"] = ("#version: 0.2\n" + "".join(m + "\n" for m in merges)).encode("utf-8")
    return files


__all__ = [
    "TOKENIZER_FILES",
    "UNKNOWN_CHOICES",
    "BPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "huggingface_files",
    "tokenizer_from_dict",
    "tokenizer_from_directory",
]
