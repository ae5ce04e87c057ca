"""What ``train`` and ``eval`` read: ``--corpus``, ``--text`` or ``--data``, and how a run finds it again.

Whatever the flag, a command gets one ``TrainingData``: the token ids of the
training and validation parts (arrays on the device, or ``TokenFile`` s read
window by window from a prepared dataset), the UTF-8 bytes of the validation
text (for bits per byte), the tokenizer, and the record a checkpoint keeps.

- ``--corpus NAME`` and a ``--text`` file up to ``IN_MEMORY_BYTES`` are read into memory;
- a larger ``--text`` file is prepared once into the cache, keyed on its SHA-256
  (``datasets/cache.py``), and memory-mapped: the same ids as in memory;
- ``--data DIR`` is a dataset ``tinygpt prepare`` wrote; its tokenizer and split are its own.

A resume checks that the data is the data the run trained on (the text's SHA-256,
and for a dataset its token counts and tokenizer), as it checks a ``--text`` file.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinygpt.cli.args import given, load_text, recorded_text
from tinygpt.data import split_for_training, split_text
from tinygpt.datasets import PreparedDataset, cache, open_dataset
from tinygpt.datasets.cache import cached_dataset
from tinygpt.errors import ConfigError, DistributedError
from tinygpt.tokenizers import BPETokenizer, Tokenizer
from tinygpt.training import distributed


@dataclass
class TrainingData:
    """The ids a run trains and validates on, and where they came from."""

    train_ids: Any  # (N,) ids on the device, or a TokenFile
    val_ids: Any
    val_bytes: int  # UTF-8 bytes of the validation text: loss per token becomes bits per byte
    tokenizer: Tokenizer
    info: dict[str, Any]  # what a checkpoint records (``trainer.json``'s "data")

    @classmethod
    def from_dataset(cls, dataset: PreparedDataset, **extra: Any) -> TrainingData:
        return cls(
            dataset.train, dataset.val, dataset.val_bytes, dataset.tokenizer, {**extra, **dataset.record()}
        )

    @classmethod
    def from_text(
        cls, text: str, tokenizer: Tokenizer, info: dict[str, Any], block_size: int
    ) -> TrainingData:
        fraction = info["val_fraction"]
        train_ids, val_ids = split_for_training(text, tokenizer, fraction, block_size)
        _, val_text = split_text(text, fraction)
        return cls(train_ids, val_ids, len(val_text.encode("utf-8")), tokenizer, info)


TokenizerMaker = Callable[[str, float], Tokenizer]  # (text, val_fraction) -> the tokenizer of a fresh run


def tokenizer_kind(tokenizer: Tokenizer) -> tuple[str, int | None]:
    """(``--tokenizer``, ``--vocab-size``) that make ``tokenizer`` anew: the key of a cached dataset."""
    return ("bpe", tokenizer.vocab_size) if isinstance(tokenizer, BPETokenizer) else ("char", None)


def is_large(path: str | Path) -> bool:
    """Whether a ``--text`` file is prepared into the cache rather than read into memory."""
    try:
        return Path(path).stat().st_size > cache.IN_MEMORY_BYTES
    except OSError:
        return False  # read_text says what is wrong with it


def _check_dataset_flags(args: argparse.Namespace, dataset: PreparedDataset) -> None:
    """Refuse a --tokenizer, --vocab-size or --val-fraction that disagrees with the dataset's own."""
    typed, m = given(args), dataset.manifest
    where = f"--data {args.data}"
    if "tokenizer" in typed and args.tokenizer != m.tokenizer_kind:
        raise ConfigError(
            f"--tokenizer {args.tokenizer} conflicts with {where}, whose ids are the dataset's tokenizer "
            f"({m.tokenizer_kind}); drop --tokenizer, or prepare the text again with it (tinygpt prepare)"
        )
    if "vocab_size" in typed and args.vocab_size != m.vocab_size:
        raise ConfigError(
            f"--vocab-size {args.vocab_size} conflicts with {where}, prepared with the dataset's tokenizer of "
            f"{m.vocab_size} tokens; drop --vocab-size, or prepare the text again (tinygpt prepare)"
        )
    if "val_fraction" in typed and args.val_fraction != m.val_fraction:
        raise ConfigError(
            f"--val-fraction {args.val_fraction} conflicts with {where}, split at {m.val_fraction} when it was "
            "prepared; drop --val-fraction, or prepare the text again with it (tinygpt prepare)"
        )


def _cached(
    args: argparse.Namespace, path: str, tokenizer: str, vocab_size: int | None, fraction: float
) -> PreparedDataset:
    """``cached_dataset`` for every rank: rank 0 prepares it, the others wait (however long it takes)."""
    world = distributed.world()
    progress = getattr(args, "progress", None) if world.is_main else False
    if world.size == 1:
        dataset = cached_dataset(path, tokenizer, vocab_size, fraction, progress)
        assert dataset is not None
        return dataset
    failure: BaseException | None = None
    dataset = None
    if world.is_main:
        try:
            dataset = cached_dataset(path, tokenizer, vocab_size, fraction, progress)
        except BaseException as exc:  # the others must still be let go
            failure = exc
    request = world.comm.Ibarrier()  # a barrier without the collective watchdog: preparing may take hours
    while not request.Test():
        time.sleep(0.2)
    if failure is not None:
        raise failure
    if dataset is None:
        dataset = cached_dataset(path, tokenizer, vocab_size, fraction, False, log=None, prepare=False)
    if dataset is None:
        raise DistributedError(f"rank 0 could not prepare {path}; its error is above")
    return dataset


def new_run_data(args: argparse.Namespace, make_tokenizer: TokenizerMaker, block_size: int) -> TrainingData:
    """The data of a fresh run from ``--data``, ``--text`` or ``--corpus`` (``make_tokenizer`` for text in memory)."""
    if getattr(args, "data", None):
        dataset = open_dataset(args.data)
        _check_dataset_flags(args, dataset)
        return TrainingData.from_dataset(dataset)
    if args.text and is_large(args.text):
        dataset = _cached(args, args.text, args.tokenizer, args.vocab_size, args.val_fraction)
        return TrainingData.from_dataset(dataset, text=str(Path(args.text).resolve()))
    text, info = load_text(args)
    return TrainingData.from_text(text, make_tokenizer(text, info["val_fraction"]), info, block_size)


def fixed_tokenizer_data(args: argparse.Namespace, tokenizer: Tokenizer, block_size: int) -> TrainingData:
    """A fresh run whose tokenizer is given (``--init-from``): a dataset must be of that very tokenizer."""
    if getattr(args, "data", None):
        dataset = open_dataset(args.data)
        _check_dataset_flags(args, dataset)
        _check_same_tokenizer(dataset, tokenizer, f"--data {args.data}")
        return TrainingData.from_dataset(dataset)
    text, info = load_text(args)
    return TrainingData.from_text(text, tokenizer, info, block_size)


def _check_same_tokenizer(dataset: PreparedDataset, tokenizer: Tokenizer, where: str) -> None:
    if dataset.tokenizer.to_dict() != tokenizer.to_dict():
        raise ConfigError(
            f"{where} was prepared with another tokenizer than the model's ({dataset.manifest.tokenizer_kind} of "
            f"{dataset.manifest.vocab_size} tokens; the model has {tokenizer.vocab_size}): its ids would mean "
            "other text; evaluate or train the model on the text itself (--text)"
        )


def recorded_run_data(
    args: argparse.Namespace, recorded: dict[str, Any], tokenizer: Tokenizer, block_size: int, strict: bool
) -> TrainingData:
    """The data a run recorded, for resume (``strict``: a flag that disagrees is refused) or eval.

    In eval a typed ``--data``, ``--text`` or ``--corpus`` wins; on resume it must be the same data
    (its text's SHA-256), and a dataset also the same tokens and tokenizer.
    """
    typed = given(args)
    if "data" in typed or (not typed & {"text", "corpus"} and "data" in recorded and "text" not in recorded):
        path = args.data if "data" in typed else recorded["data"]
        if "data" not in typed and not Path(path).exists():
            raise ConfigError(
                f"the run trained on the dataset {path}, which no longer exists; if it moved, pass --data "
                "with its new path"
            )
        dataset = open_dataset(path)
        _check_same_tokenizer(dataset, tokenizer, f"--data {path}")
        if "val_fraction" in typed and args.val_fraction != dataset.manifest.val_fraction:
            raise ConfigError(
                f"--val-fraction {args.val_fraction} conflicts with --data {path}, split at "
                f"{dataset.manifest.val_fraction} when it was prepared; drop --val-fraction"
            )
        data = TrainingData.from_dataset(dataset)
        if strict:
            _check_same_data(recorded, data, f"--data {path}" if "data" in typed else str(path))
        return data
    text_path = args.text if "text" in typed else (recorded.get("text") if not typed & {"corpus"} else None)
    fraction = args.val_fraction if "val_fraction" in typed else recorded.get("val_fraction", 0.1)
    if text_path is not None and Path(text_path).exists() and is_large(text_path):
        if strict and "val_fraction" in typed and fraction != recorded.get("val_fraction", fraction):
            raise ConfigError(
                f"--val-fraction {fraction} conflicts with the run, which holds out {recorded['val_fraction']}: "
                "changing it would move validation text into training; drop --val-fraction to resume"
            )
        kind, vocab = tokenizer_kind(tokenizer)
        dataset = _cached(args, str(text_path), kind, vocab, fraction)
        if dataset.tokenizer.to_dict() != tokenizer.to_dict():
            raise ConfigError(
                f"{text_path} was prepared with another tokenizer than the run's; evaluate it with "
                "`tinygpt prepare` of the same settings, or on a smaller text"
            )
        data = TrainingData.from_dataset(dataset, text=str(Path(text_path).resolve()))
        if strict:
            _check_same_data(recorded, data, f"--text {args.text}" if "text" in typed else str(text_path))
        return data
    text, info = recorded_text(args, recorded, strict)
    return TrainingData.from_text(text, tokenizer, info, block_size)


def _check_same_data(recorded: dict[str, Any], data: TrainingData, given_as: str) -> None:
    """Refuse to resume on data that is not what the run trained on: its text, and a dataset's tokens."""
    where = (
        recorded.get("data")
        or recorded.get("text")
        or f"the {recorded.get('corpus', 'shakespeare')!r} corpus"
    )
    same_text = recorded.get("sha256") in (None, data.info["sha256"])
    then, now = recorded.get("dataset"), data.info.get("dataset")
    same_tokens = then is None or now is None or {k: then.get(k) for k in now} == now
    if recorded.get("val_fraction", data.info["val_fraction"]) != data.info["val_fraction"]:
        same_text = False
    if not (same_text and same_tokens):
        raise ConfigError(
            f"{given_as} is not the data the run trained on ({where}): its SHA-256, split or token counts "
            "differ. Resume with the original data, or start a new run with --out elsewhere"
        )
