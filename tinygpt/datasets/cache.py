"""``--text`` for a large file: prepared once into a cache directory named by its SHA-256, reused after.

``tinygpt train --text big.txt`` on a file too large to hold in memory comfortably
goes the way of ``tinygpt prepare``: the file is hashed (with a progress bar), and
``$TINYGPT_CACHE/datasets/<sha256>-<tokenizer>-val<fraction>`` is opened if an
earlier run prepared it, else prepared now. The file's content names the directory,
so an edited file is prepared again and a moved one is found again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tinygpt.data import default_cache_dir
from tinygpt.datasets.dataset import PreparedDataset, open_dataset
from tinygpt.datasets.manifest import is_dataset
from tinygpt.datasets.prepare import DEFAULT_BPE_VOCAB, prepare_dataset
from tinygpt.datasets.source import Digest, TextSource
from tinygpt.errors import CorpusError
from tinygpt.progress import Progress

IN_MEMORY_BYTES = 16 << 20
"""A ``--text`` file up to this size is read into memory (the same ids either way); a larger one is prepared."""


def file_sha256(path: str | os.PathLike[str], show_progress: bool | None = None) -> str:
    """SHA-256 of the file at ``path``, read in chunks with a progress bar (refusing what cannot be a corpus)."""
    source = TextSource(path)
    digest = Digest()
    with Progress(total=source.size, enabled=show_progress, desc="hash", unit="B") as bar:
        for _, raw in source.raw_chunks():
            digest.update(raw)
            bar.update(len(raw))
    return digest.hexdigest()


def cached_dataset_path(sha256: str, tokenizer: str, vocab_size: int | None, val_fraction: float) -> Path:
    """Where the cache keeps the dataset of a text with this SHA-256 and these settings."""
    kind = "char" if tokenizer == "char" else f"bpe{vocab_size or DEFAULT_BPE_VOCAB}"
    return default_cache_dir() / "datasets" / f"{sha256}-{kind}-val{val_fraction!r}"


def cached_dataset(
    text: str | os.PathLike[str],
    tokenizer: str = "char",
    vocab_size: int | None = None,
    val_fraction: float = 0.1,
    show_progress: bool | None = None,
    log: Callable[[str], None] | None = print,
    prepare: bool = True,
) -> PreparedDataset | None:
    """The prepared dataset of the text file ``text``: from the cache, or prepared into it now.

    ``prepare=False`` only looks: None when the cache does not hold it yet (a data-parallel
    rank waits for rank 0 to prepare it).
    """
    sha256 = file_sha256(text, show_progress)
    path = cached_dataset_path(sha256, tokenizer, vocab_size, val_fraction)
    if is_dataset(path):
        dataset = open_dataset(path)
        if dataset.manifest.source["sha256"] != sha256:  # the cache was tampered with: do not trust it
            raise CorpusError(f"the cached dataset {path} is not of {text} (its SHA-256 differs); remove it")
        if log is not None:
            log(f"using the prepared dataset {path} (cached by the SHA-256 of {text})")
        return dataset
    if not prepare:
        return None
    if log is not None:
        log(f"{text} is {Path(text).stat().st_size / 1e6:,.1f} MB: preparing it once into {path}")
    try:
        return prepare_dataset(
            path,
            text=text,
            tokenizer=tokenizer,
            vocab_size=vocab_size,
            val_fraction=val_fraction,
            show_progress=show_progress,
            log=log,
        )
    except CorpusError:
        if is_dataset(path):  # another process prepared the same text at the same time: theirs is as good
            return open_dataset(path)
        raise
