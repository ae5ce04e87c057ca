"""A prepared dataset opened for training: its manifest, its tokenizer, and each split as a ``TokenFile``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tinygpt.backend.token_files import TokenFile
from tinygpt.datasets.manifest import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_TOKENIZER_BYTES,
    TOKENIZER_FILE,
    Manifest,
    parse_manifest,
    read_member,
    sha256,
)
from tinygpt.errors import CorpusError, TinyGPTError
from tinygpt.files import parse_json
from tinygpt.tokenizers import BPETokenizer, CharTokenizer, Tokenizer, tokenizer_from_dict


class PreparedDataset:
    """The directory ``tinygpt prepare`` wrote, checked as it opens (``open_dataset``).

    ``train`` and ``val`` are ``TokenFile`` s: ``data.sample_windows`` and
    ``data.sequential_windows`` read batches from them as from id arrays on the device.
    """

    def __init__(self, path: Path, manifest: Manifest, tokenizer: Tokenizer) -> None:
        self.path = path
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.train = TokenFile(
            path / manifest.train.file, manifest.dtype, manifest.train.tokens, manifest.vocab_size
        )
        try:
            self.val = TokenFile(
                path / manifest.val.file, manifest.dtype, manifest.val.tokens, manifest.vocab_size
            )
        except BaseException:
            self.train.close()
            raise

    @property
    def val_bytes(self) -> int:
        """UTF-8 bytes of the validation text: with its token count, loss becomes bits per byte."""
        return self.manifest.val.bytes

    def record(self) -> dict[str, Any]:
        """What a checkpoint keeps to find this data again and to check, on resume, that it is the same."""
        m = self.manifest
        return {
            "data": str(self.path.resolve()),
            "val_fraction": m.val_fraction,
            "sha256": m.text_sha256,
            "dataset": {
                "source_sha256": m.source["sha256"],
                "tokenizer_sha256": m.tokenizer_sha256,
                "train_tokens": m.train.tokens,
                "val_tokens": m.val.tokens,
            },
        }

    def close(self) -> None:
        self.train.close()
        self.val.close()

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"PreparedDataset({str(self.path)!r}, {m.tokenizer_kind} {m.vocab_size}, {m.dtype}, "
            f"train {m.train.tokens:,} tokens, val {m.val.tokens:,})"
        )


def open_dataset(path: str | os.PathLike[str]) -> PreparedDataset:
    """Open the dataset directory at ``path``, refusing anything that does not check out in one clear error."""
    folder = Path(path)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a directory"
        raise CorpusError(
            f"dataset {str(folder)!r} {what}; make one with `tinygpt prepare --text FILE --out {folder}`"
        )
    source = str(folder / MANIFEST)
    manifest = parse_manifest(read_member(folder, MANIFEST, MAX_MANIFEST_BYTES), source)
    raw = read_member(folder, TOKENIZER_FILE, MAX_TOKENIZER_BYTES)
    where = str(folder / TOKENIZER_FILE)
    if sha256(raw) != manifest.tokenizer_sha256:
        raise CorpusError(
            f"{where} is not the tokenizer {source} names (its SHA-256 differs): prepare the dataset again"
        )
    try:
        tokenizer = tokenizer_from_dict(parse_json(raw, where, CorpusError, "a tokenizer file"), where)
    except TinyGPTError as exc:
        raise CorpusError(str(exc)) from None
    kind = (
        "bpe"
        if isinstance(tokenizer, BPETokenizer)
        else "char"
        if isinstance(tokenizer, CharTokenizer)
        else None
    )
    if kind != manifest.tokenizer_kind or tokenizer.vocab_size != manifest.vocab_size:
        raise CorpusError(
            f"{where} is a {kind} tokenizer of {tokenizer.vocab_size:,} tokens, but {source} says "
            f"{manifest.tokenizer_kind} of {manifest.vocab_size:,}: prepare the dataset again"
        )
    for split in (manifest.train, manifest.val):
        member = folder / split.file
        if member.is_symlink() or not member.resolve().is_relative_to(folder.resolve()):
            raise CorpusError(
                f"{member} is a link or lies outside {folder}; refusing it: prepare the dataset again"
            )
    return PreparedDataset(folder, manifest, tokenizer)
