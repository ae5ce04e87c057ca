"""The manifest of a prepared dataset: what ``manifest.json`` says, written once and read back strictly.

A dataset directory is self-describing::

    DATA_DIR/
      manifest.json    this file: format, tokenizer, dtype, counts per split, source, split rule
      tokenizer.json   the tokenizer (a char vocabulary, or Hugging Face's BPE tokenizer.json)
      train.bin        token ids of the training part, flat little-endian uint8/uint16/uint32
      val.bin          token ids of the validation part

Reading trusts nothing: every field must be present with its type and range, the
dtype must be one of three, file names must be plain names inside the directory,
each file must be a regular file (no link) whose size matches its count, and the
tokenizer must be the one the manifest names (its SHA-256 and vocabulary size).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinygpt import files
from tinygpt.backend.token_files import TOKEN_DTYPES, itemsize
from tinygpt.errors import CorpusError
from tinygpt.files import json_bytes, parse_json

FORMAT = "tinygpt-dataset"
VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
SPLITS = ("train", "val")
MAX_MANIFEST_BYTES = 1 << 20
MAX_TOKENIZER_BYTES = 64 << 20
KINDS = ("char", "bpe")
SPLIT_RULE = (
    "the text is UTF-8 with \\r\\n read as \\n; of its N characters, the last floor(N * val_fraction) "
    "are the validation part and the rest, before them, the training part (tinygpt.data.split_text)"
)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Split:
    """One split's token file and what it holds: tokens, and the UTF-8 bytes and characters of its text."""

    file: str
    tokens: int
    bytes: int
    characters: int


@dataclass(frozen=True)
class Manifest:
    """Everything ``manifest.json`` records (see the module docstring for the directory)."""

    tinygpt_version: str
    tokenizer_kind: str  # "char" or "bpe"
    vocab_size: int
    tokenizer_sha256: str  # of tokenizer.json
    dtype: str
    train: Split
    val: Split
    source: dict[str, Any]  # "path" or "corpus", "bytes", "sha256", "text_sha256"
    val_fraction: float
    bpe_sample_bytes: int | None = None  # how much of the training part the BPE vocabulary was learned from

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "tinygpt_version": self.tinygpt_version,
            "tokenizer": {
                "file": TOKENIZER_FILE,
                "kind": self.tokenizer_kind,
                "vocab_size": self.vocab_size,
                "sha256": self.tokenizer_sha256,
                **({"bpe_sample_bytes": self.bpe_sample_bytes} if self.bpe_sample_bytes is not None else {}),
            },
            "dtype": self.dtype,
            "splits": {name: dataclasses.asdict(getattr(self, name)) for name in SPLITS},
            "source": dict(self.source),
            "split": {"rule": SPLIT_RULE, "val_fraction": self.val_fraction},
        }

    def to_bytes(self) -> bytes:
        return json_bytes(self.to_dict())

    @property
    def text_sha256(self) -> str:
        """SHA-256 of the normalized text: what a ``--text`` run records, so either can resume the other."""
        return str(self.source["text_sha256"])


class _Reader:
    """Typed field access that turns every surprise into one CorpusError naming the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, problem: str) -> CorpusError:
        return CorpusError(
            f"{self.source}: {problem}; it is not a dataset this tinygpt wrote: prepare it again"
        )

    def object(
        self, data: Any, where: str, keys: set[str], optional: frozenset[str] | set[str] = frozenset()
    ) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(f"{where} must be a JSON object, got {type(data).__name__}")
        missing, unknown = keys - data.keys(), data.keys() - keys - optional
        if missing:
            raise self.fail(f"{where} lacks {', '.join(sorted(missing))}")
        if unknown:
            raise self.fail(f"{where} has unknown fields {', '.join(sorted(map(str, unknown)))}")
        return data

    def integer(self, value: Any, where: str, low: int = 0) -> int:
        if type(value) is not int or value < low:
            raise self.fail(f"{where} must be an integer >= {low}, got {value!r}")
        return value

    def text(self, value: Any, where: str, pattern: re.Pattern[str] | None = None) -> str:
        if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
            raise self.fail(f"{where} is {value!r}, not a valid value")
        return value

    def choice(self, value: Any, where: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(f"{where} is {value!r}; expected one of {', '.join(choices)}")
        return str(value)


def parse_manifest(data: bytes, source: str) -> Manifest:
    """A ``Manifest`` from the bytes of ``manifest.json``, every field checked."""
    r = _Reader(source)
    top = r.object(
        parse_json(data, source, CorpusError, "a dataset manifest"),
        "the manifest",
        {"format", "version", "tinygpt_version", "tokenizer", "dtype", "splits", "source", "split"},
    )
    if top["format"] != FORMAT:
        raise r.fail(f"format is {top['format']!r}, expected {FORMAT!r}")
    if type(top["version"]) is not int or top["version"] != VERSION:
        raise r.fail(f"version is {top['version']!r}; this tinygpt reads version {VERSION}")
    tok = r.object(
        top["tokenizer"], "tokenizer", {"file", "kind", "vocab_size", "sha256"}, {"bpe_sample_bytes"}
    )
    if tok["file"] != TOKENIZER_FILE:
        raise r.fail(f"tokenizer.file is {tok['file']!r}, expected {TOKENIZER_FILE!r}")
    dtype = r.choice(top["dtype"], "dtype", TOKEN_DTYPES)
    vocab_size = r.integer(tok["vocab_size"], "tokenizer.vocab_size", 1)
    if vocab_size > 1 << (8 * itemsize(dtype)):
        raise r.fail(f"a vocabulary of {vocab_size:,} tokens does not fit the dtype {dtype}")
    splits = r.object(top["splits"], "splits", set(SPLITS))
    parsed = {}
    for name in SPLITS:
        entry = r.object(splits[name], f"splits.{name}", {"file", "tokens", "bytes", "characters"})
        parsed[name] = Split(
            file=r.text(entry["file"], f"splits.{name}.file", _PLAIN_NAME),
            tokens=r.integer(entry["tokens"], f"splits.{name}.tokens", 1),
            bytes=r.integer(entry["bytes"], f"splits.{name}.bytes", 1),
            characters=r.integer(entry["characters"], f"splits.{name}.characters", 1),
        )
    if parsed["train"].file == parsed["val"].file or TOKENIZER_FILE in (
        parsed["train"].file,
        parsed["val"].file,
    ):
        raise r.fail("the splits and the tokenizer must each have a file of their own")
    where = r.object(top["source"], "source", {"bytes", "sha256", "text_sha256"}, {"path", "corpus"})
    if ("path" in where) == ("corpus" in where):
        raise r.fail("source must name exactly one of a path and a corpus")
    r.text(where.get("path", where.get("corpus")), "source.path or source.corpus")
    r.integer(where["bytes"], "source.bytes", 1)
    r.text(where["sha256"], "source.sha256", _SHA256)
    r.text(where["text_sha256"], "source.text_sha256", _SHA256)
    split = r.object(top["split"], "split", {"rule", "val_fraction"})
    fraction = split["val_fraction"]
    if type(fraction) is not float or not 0.0 < fraction < 1.0:
        raise r.fail(f"split.val_fraction must be a number in (0, 1), got {fraction!r}")
    kind = r.choice(tok["kind"], "tokenizer.kind", KINDS)
    for name, part in parsed.items():
        if not part.characters <= part.bytes <= 4 * part.characters:
            raise r.fail(
                f"splits.{name} has {part.bytes:,} bytes for {part.characters:,} characters (UTF-8 is 1-4 a character)"
            )
        if kind == "char" and part.tokens != part.characters:
            raise r.fail(
                f"splits.{name} has {part.tokens:,} tokens for {part.characters:,} characters (one each)"
            )
        if kind == "bpe" and part.tokens > part.bytes:
            raise r.fail(
                f"splits.{name} has {part.tokens:,} tokens for {part.bytes:,} bytes (at most one a byte)"
            )
    sample = tok.get("bpe_sample_bytes")
    return Manifest(
        tinygpt_version=r.text(top["tinygpt_version"], "tinygpt_version"),
        tokenizer_kind=kind,
        vocab_size=vocab_size,
        tokenizer_sha256=r.text(tok["sha256"], "tokenizer.sha256", _SHA256),
        dtype=dtype,
        train=parsed["train"],
        val=parsed["val"],
        source=dict(where),
        val_fraction=fraction,
        bpe_sample_bytes=None if sample is None else r.integer(sample, "tokenizer.bpe_sample_bytes", 1),
    )


def read_member(folder: Path, name: str, limit: int) -> bytes:
    """The bytes of ``folder/name``, read under ``tinygpt.files``' one rule: a regular file inside the
    dataset (a link only to somewhere inside it), of at most ``limit`` bytes."""
    path = files.member(folder, name, CorpusError, "the dataset")
    if path is None:
        raise CorpusError(f"{folder} has no {name}; it is not a prepared dataset (see tinygpt prepare)")
    return files.read_file(path, limit, CorpusError, "a dataset file")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tinygpt_version() -> str:
    """This tinygpt's version, as installed (recorded in every manifest)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tinygpt")
    except PackageNotFoundError:
        return "unknown"


def is_dataset(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like a prepared dataset (a directory with a manifest); ``open_dataset`` checks it."""
    return (Path(path) / MANIFEST).is_file()
