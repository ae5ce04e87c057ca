"""Preparing a dataset: a corpus tokenized once into token files and a manifest, published atomically.

    pass 1 (scan):    read the text once: SHA-256, characters, (char) the vocabulary  -> the split point
    tokenizer:        char: every character of the text; BPE: learned from the training part (or a sample)
    disk check:       the dataset's size against the free space, before a byte is written
    pass 2 (encode):  read it again, encode chunk by chunk, append to train.bin / val.bin
    publish:          everything goes into a hidden temporary directory beside DATA_DIR, which one
                      rename makes DATA_DIR: a crash or Ctrl-C leaves no half dataset

Memory is bounded by the chunk size (16 MB of text at a time), not by the corpus.

The split is ``data.split_text``'s, on the stream: of the text's N characters the last
floor(N * val_fraction) are validation (N comes from pass 1). The ids are those of
``tinygpt train --text`` on the same file: the char vocabulary is every character of
the text, and BPE encodes pieces cut only where GPT-2's pre-tokenizer cuts anyway.

A BPE vocabulary is learned from the whole training part when it is at most
``BPE_SAMPLE_BYTES`` (as ``tinygpt train --text`` does); a larger corpus lends a
sample: ``BPE_SAMPLE_PIECES`` evenly spaced stretches of whole lines, ``BPE_SAMPLE_BYTES``
in all, from the training part (its last chunk, which may hold the split, left out).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tinygpt.backend.text import UnknownCharacter
from tinygpt.backend.token_files import TokenWriter, itemsize, token_dtype
from tinygpt.datasets.dataset import PreparedDataset, open_dataset
from tinygpt.datasets.manifest import (
    MANIFEST,
    TOKENIZER_FILE,
    Manifest,
    Split,
    is_dataset,
    sha256,
    tinygpt_version,
)
from tinygpt.datasets.source import CHUNK_BYTES, Digest, Scan, TextSource, _cut
from tinygpt.errors import ConfigError, CorpusError
from tinygpt.files import fsync_dir, json_bytes, scratch, umask
from tinygpt.progress import Progress
from tinygpt.tokenizers import BPETokenizer, CharTokenizer, Tokenizer
from tinygpt.tokenizers.bpe import CHUNK_CHARS, chunks

BPE_SAMPLE_BYTES = 64 << 20
BPE_SAMPLE_PIECES = 256
BATCH_PIECES = 64  # pieces of CHUNK_CHARS per encode_batch call: ~4 MB of text shared over the cores
MAX_CARRY_CHARS = 4 * CHUNK_BYTES  # text without a safe cut this long is cut anyway (counted: forced_cuts)
DEFAULT_BPE_VOCAB = 2048
TOKENIZERS = ("char", "bpe")


def prepare_dataset(
    out: str | os.PathLike[str],
    text: str | os.PathLike[str] | None = None,
    corpus: str | None = None,
    tokenizer: str = "char",
    vocab_size: int | None = None,
    val_fraction: float = 0.1,
    show_progress: bool | None = None,
    log: Callable[[str], None] | None = print,
) -> PreparedDataset:
    """Tokenize the text file ``text`` (or the named ``corpus``) into the new dataset directory ``out``.

    ``out`` must not exist, or be an empty directory, or hold this very dataset already
    (then it is opened, not rewritten). Nothing outside the temporary directory this
    call makes is ever written or deleted before the final rename.
    """
    say = log or (lambda message: None)
    if tokenizer not in TOKENIZERS:
        raise ConfigError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")
    if tokenizer == "char" and vocab_size is not None:
        raise ConfigError(
            "--vocab-size applies to --tokenizer bpe; a char vocabulary is the text's characters"
        )
    if type(val_fraction) is not float or not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction (--val-fraction) must be in (0, 1), got {val_fraction!r}")
    vocab = vocab_size if vocab_size is not None else DEFAULT_BPE_VOCAB
    out = Path(out)
    existing = _check_out(out)
    source = TextSource(text, corpus)

    started = time.perf_counter()
    scan = _timed(
        say, "read", source.size, lambda on: source.scan(tokenizer == "char", on), show_progress, "scan"
    )
    n_val = int(scan.characters * val_fraction)
    n_train = scan.characters - n_val
    if n_val == 0 or n_train == 0:
        raise CorpusError(
            f"{source.describe()} has {scan.characters:,} characters: too few for a validation fraction of "
            f"{val_fraction} (each part needs one at least); use a longer text or another --val-fraction"
        )
    if existing:
        return _reuse(out, scan, tokenizer, vocab, val_fraction, say)

    sample_bytes = None
    if tokenizer == "char":
        assert scan.character_set is not None
        tok: Tokenizer = CharTokenizer(scan.character_set.characters())
    else:
        sample = _bpe_sample(source, scan, n_train)
        sample_bytes = sum(len(piece.encode("utf-8")) for piece in sample)
        say(
            f"learning a byte-level BPE vocabulary of {vocab} tokens from {sample_bytes / 1e6:,.1f} MB of the training part"
        )
        tok = BPETokenizer.train_from_pieces(sample, vocab)
    dtype = token_dtype(tok.vocab_size)
    estimate = scan.characters if tokenizer == "char" else _estimate_tokens(tok, sample, scan)  # type: ignore[arg-type]
    tokenizer_bytes = json_bytes(tok.to_dict())
    _check_disk(out.parent, estimate * itemsize(dtype) + len(tokenizer_bytes), estimate, dtype)

    with scratch(out, ".partial", directory=True) as tmp:  # removed if anything below fails
        splits, forced = _timed(
            say,
            "encoded",
            source.size,
            lambda on: _write_tokens(tmp, source, scan, n_train, tok, dtype, on),
            show_progress,
            "encode",
        )
        if forced:
            say(
                f"warning: {forced} stretch(es) of over {MAX_CARRY_CHARS:,} characters without a line break or "
                "space were cut anyway: their ids at each cut may differ from encoding the text whole"
            )
        manifest = Manifest(
            tinygpt_version=tinygpt_version(),
            tokenizer_kind=tokenizer,
            vocab_size=tok.vocab_size,
            tokenizer_sha256=sha256(tokenizer_bytes),
            dtype=dtype,
            train=splits["train"],
            val=splits["val"],
            source={
                **source.record(),
                "bytes": scan.file_bytes,
                "sha256": scan.sha256,
                "text_sha256": scan.text_sha256,
            },
            val_fraction=val_fraction,
            bpe_sample_bytes=sample_bytes,
        )
        _write_synced(tmp / TOKENIZER_FILE, tokenizer_bytes)
        _write_synced(tmp / MANIFEST, manifest.to_bytes())  # last: a directory with a manifest is complete
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it private; a dataset is shared like any directory
        fsync_dir(tmp)
        _publish(tmp, out)
    dataset = open_dataset(out)
    m = dataset.manifest
    seconds = time.perf_counter() - started
    say(
        f"prepared {out}: train {m.train.tokens:,} tokens, val {m.val.tokens:,} tokens ({dtype}, "
        f"{tokenizer} vocabulary of {m.vocab_size:,}) from {scan.file_bytes / 1e6:,.1f} MB in {seconds:.1f} s "
        f"({scan.file_bytes / 1e6 / max(seconds, 1e-9):,.1f} MB/s)"
    )
    return dataset


def _timed(
    say: Callable[[str], None],
    verb: str,
    total: int,
    work: Callable[[Callable[[int], None]], Any],
    show_progress: bool | None,
    desc: str,
) -> Any:
    """Run ``work`` under a byte progress bar; say how long it took."""
    start = time.perf_counter()
    with Progress(total=total, enabled=show_progress, desc=desc, unit="B") as bar:
        result = work(bar.update)
    seconds = time.perf_counter() - start
    say(f"{verb} {total / 1e6:,.1f} MB in {seconds:.1f} s ({total / 1e6 / max(seconds, 1e-9):,.1f} MB/s)")
    return result


def _check_out(out: Path) -> bool:
    """Refuse an ``out`` that is a file or a non-empty directory tinygpt did not write; True if it holds a dataset."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise CorpusError(f"--out {out} exists and is not a directory; choose a new path for the dataset")
    if out.is_dir() and any(out.iterdir()):
        if is_dataset(out):
            return True
        raise CorpusError(
            f"--out {out} is a directory with files in it, which tinygpt did not write and will not touch; "
            "choose a new path (or an empty directory) for the dataset"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    return False


def _reuse(
    out: Path, scan: Scan, tokenizer: str, vocab: int, val_fraction: float, say: Callable[[str], None]
) -> PreparedDataset:
    """The dataset already at ``out`` if it is this text with these settings; else refuse (never overwrite)."""
    dataset = open_dataset(out)
    m = dataset.manifest
    differences = [
        what
        for what, same in (
            ("text (its SHA-256)", m.source["sha256"] == scan.sha256),
            (f"tokenizer ({m.tokenizer_kind})", m.tokenizer_kind == tokenizer),
            (f"vocabulary size ({m.vocab_size})", tokenizer == "char" or m.vocab_size == vocab),
            (f"validation fraction ({m.val_fraction})", m.val_fraction == val_fraction),
        )
        if not same
    ]
    if differences:
        dataset.close()
        raise CorpusError(
            f"--out {out} already holds a dataset with another {', '.join(differences)}; tinygpt does not "
            "overwrite it: choose a new --out, or remove that directory yourself"
        )
    say(f"{out} already holds this dataset; using it as it is")
    return dataset


def _check_disk(folder: Path, need: int, tokens: int, dtype: str) -> None:
    free = shutil.disk_usage(folder).free
    if need > free:
        raise CorpusError(
            f"the dataset needs about {need / 1e9:,.2f} GB ({tokens:,} tokens of {dtype}) but {folder} has only "
            f"{free / 1e9:,.2f} GB free; free some space or choose --out on another disk"
        )


def _parts(
    source: TextSource,
    n_train: int,
    on_bytes: Callable[[int], None],
    digest: Any,
    scanned: list[tuple[int, int, int]] | None = None,
) -> Iterator[tuple[str, bytes, int]]:
    """(split, normalized UTF-8, characters) in text order, the chunk holding the split point cut in two."""
    seen = 0
    for chunk in source.chunks(on_bytes, digest, scanned):
        if seen >= n_train:
            yield "val", chunk.data, chunk.characters
        elif seen + chunk.characters <= n_train:
            yield "train", chunk.data, chunk.characters
        else:
            keep = n_train - seen
            head = (
                chunk.data[:keep]
                if chunk.characters == len(chunk.data)  # ASCII: a byte per character
                else chunk.data.decode("utf-8")[:keep].encode("utf-8")
            )
            yield "train", head, keep
            yield "val", chunk.data[len(head) :], chunk.characters - keep
        seen += chunk.characters


def _write_tokens(
    folder: Path,
    source: TextSource,
    scan: Scan,
    n_train: int,
    tokenizer: Tokenizer,
    dtype: str,
    on_bytes: Callable[[int], None],
) -> tuple[dict[str, Split], int]:
    """Encode the text again into ``train.bin`` and ``val.bin`` in ``folder``; the splits and the forced cuts."""
    digest = Digest()  # the text read now must be the text scanned, or the manifest would lie
    counts = {name: {"bytes": 0, "characters": 0} for name in ("train", "val")}
    with contextlib.ExitStack() as files:
        writers = {
            name: TokenWriter(files.enter_context(open(folder / f"{name}.bin", "xb")), dtype)
            for name in ("train", "val")
        }
        parts = _parts(
            source, n_train, on_bytes, digest, scan.chunks
        )  # validated by the scan: not decoded again
        forced = 0
        try:
            if isinstance(tokenizer, CharTokenizer):
                table = tokenizer.table
                for name, data, characters in parts:
                    writers[name].write(table.encode_utf8(data, dtype))
                    counts[name]["bytes"] += len(data)
                    counts[name]["characters"] += characters
            else:
                assert isinstance(tokenizer, BPETokenizer)
                forced = _write_bpe(parts, tokenizer, writers, counts)
        except (UnicodeDecodeError, UnknownCharacter):  # text the scan did not see
            raise CorpusError(f"{source.describe()} changed while being prepared; prepare it again") from None
        for writer in writers.values():
            writer.flush()
    if digest.hexdigest() != scan.sha256:
        raise CorpusError(
            f"{source.describe()} changed while being prepared (its SHA-256 differs); prepare it again"
        )
    splits = {
        name: Split(f"{name}.bin", writers[name].count, counts[name]["bytes"], counts[name]["characters"])
        for name in ("train", "val")
    }
    return splits, forced


def _write_bpe(
    parts: Iterator[tuple[str, bytes, int]],
    tokenizer: BPETokenizer,
    writers: dict[str, TokenWriter],
    counts: dict[str, dict[str, int]],
) -> int:
    """BPE-encode the parts in parallel batches of pieces; each part's pieces end where GPT-2 cuts anyway.

    One batch is encoded on a worker thread (``tokenizers`` lets go of the GIL and uses
    every core) while this thread reads and cuts the next and writes the last one's ids.
    """
    forced = 0
    pending: list[str] = []
    carry, current = "", "train"
    pool = ThreadPoolExecutor(1, thread_name_prefix="tinygpt-encode")
    in_flight: list[tuple[str, Future[list[list[int]]]]] = []

    def encode(name: str, final: bool) -> None:
        while len(pending) >= BATCH_PIECES or (final and pending):
            batch = pending[:BATCH_PIECES]
            del pending[:BATCH_PIECES]
            in_flight.append((name, pool.submit(tokenizer.encode_pieces, batch)))
            while len(in_flight) > 1 or (final and in_flight):  # the earlier batch is done: write it
                done, future = in_flight.pop(0)
                writers[done].write(future.result())
        while final and in_flight:
            done, future = in_flight.pop(0)
            writers[done].write(future.result())

    try:
        for name, data, characters in parts:
            if name != current:  # the training part ends: what it carried is its last piece
                pending.append(carry)
                encode(current, final=True)
                carry, current = "", name
            counts[name]["bytes"] += len(data)
            counts[name]["characters"] += characters
            pieces = list(chunks(carry + data.decode("utf-8"), CHUNK_CHARS))
            carry = pieces.pop()  # may continue in the next chunk: cut it there, where a safe cut is known
            if len(carry) > MAX_CARRY_CHARS:
                pieces.append(carry)
                carry = ""
                forced += 1
            pending.extend(pieces)
            encode(name, final=False)
        if carry:
            pending.append(carry)
        encode(current, final=True)
    finally:
        pool.shutdown(
            cancel_futures=True
        )  # on Ctrl-C: the batch being encoded finishes, the rest never starts
    return forced


def _bpe_sample(source: TextSource, scan: Scan, n_train: int) -> list[str]:
    """The text BPE learns from: the whole training part if small, else evenly spaced stretches of it."""
    seen, whole_end = 0, 0  # whole_end: where the chunks wholly before the split point end, in the file
    for offset, raw_size, characters in scan.chunks:
        if seen + characters > n_train:
            break
        seen += characters
        whole_end = offset + raw_size
    if scan.text_bytes <= BPE_SAMPLE_BYTES or whole_end < BPE_SAMPLE_BYTES:
        pieces: list[str] = []
        carry = ""
        for name, data, _ in _parts(source, n_train, lambda n: None, None):
            if name == "val":
                break
            pieces.extend(chunks(carry + data.decode("utf-8"), CHUNK_CHARS))
            carry = pieces.pop()
        return [*pieces, carry] if carry else pieces
    size = BPE_SAMPLE_BYTES // BPE_SAMPLE_PIECES
    sample: list[str] = []
    for i in range(BPE_SAMPLE_PIECES):
        offset = i * (whole_end - size) // (BPE_SAMPLE_PIECES - 1)
        raw = source.read(offset, size)
        if offset > 0:  # begin after a line break (a character boundary at least)
            newline = raw.find(b"\n")
            begin = newline + 1 if 0 <= newline < len(raw) - 1 else _first_character(raw)
            raw = raw[begin:]
        raw = raw[: _cut(raw)]
        sample.extend(chunks(raw.replace(b"\r\n", b"\n").decode("utf-8"), CHUNK_CHARS))
    return sample


def _first_character(raw: bytes) -> int:
    """Index of the first byte of ``raw`` that starts a UTF-8 character."""
    for index, byte in enumerate(raw[:4]):
        if byte & 0xC0 != 0x80:
            return index
    return 0


def _estimate_tokens(tokenizer: BPETokenizer, sample: list[str], scan: Scan) -> int:
    """Tokens the whole text will take, from the tokens per byte of up to 2 MB of the sample (plus 10 %)."""
    probe, size = [], 0
    for piece in sample:
        probe.append(piece)
        size += len(piece.encode("utf-8"))
        if size >= 2 << 20:
            break
    tokens = sum(len(ids) for ids in tokenizer.encode_pieces(probe))
    return int(1.1 * scan.text_bytes * tokens / max(size, 1)) + 1


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _publish(tmp: Path, out: Path) -> None:
    """Make the complete directory ``tmp`` appear at ``out`` in one rename (replacing at most an empty directory)."""
    try:
        os.rename(tmp, out)
    except OSError as exc:
        raise CorpusError(
            f"cannot publish the dataset at {out}: {exc.strerror} (something was written there meanwhile?); "
            "nothing of it was changed: choose a new --out"
        ) from None
    fsync_dir(out.parent)
