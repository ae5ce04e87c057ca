"""Reading weight files that may come from anywhere, without trusting them.

Every file is checked before it is used: a regular file inside its directory
(no FIFO, device or symlink out of it), JSON of a sane size, a safetensors
header whose tensors lie inside the file, float dtypes only, finite values,
and a model small enough for free memory before anything large is allocated.

Two layouts are read here, below the model so ``TinyGPT.from_pretrained`` can
use them: tinygpt checkpoints (``config.json`` with SHA-256 digests, run
directories with ``best.json``/``latest.json`` pointers; written by
``tinygpt.checkpoint``) and plain safetensors files read one tensor at a time
through a memory map (Hugging Face directories, see ``huggingface.py``).
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.numpy import load as st_load

from tinygpt import backend, files
from tinygpt.errors import CheckpointError
from tinygpt.layers import Module

FORMAT = "tinygpt-checkpoint"
VERSION = 1
MAX_JSON_BYTES = {"config.json": 1 << 20, "trainer.json": 1 << 20, "tokenizer.json": 64 << 20}
POINTER_MAX_BYTES = 64 << 10
REQUIRED_FILES = ("model.safetensors", "tokenizer.json")
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on the JSON header
# safetensors dtype -> bytes per element; the float ones load (as float32), the rest are refused by name.
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1}
DTYPE_BYTES |= {"BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}
FLOAT_DTYPES = ("F32", "F16")


# Files ---------------------------------------------------------------------------
def regular_file(folder: Path, name: str) -> Path:
    """``folder/name`` if it is a regular file inside ``folder`` (no FIFO, device or escaping symlink)."""
    file = folder / name
    try:
        info = file.lstat()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {folder} is incomplete: {name} is missing") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {file}: {exc}") from None
    if stat.S_ISLNK(info.st_mode):
        target = file.resolve()
        if not target.is_relative_to(folder.resolve()):
            raise CheckpointError(
                f"{file} is a symbolic link out of the checkpoint (to {target}); refusing it"
            )
        info = target.stat() if target.exists() else info
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{file} is not a regular file (a FIFO, device or directory); refusing it")
    return file


def read_bytes(file: Path, limit: int | None = None) -> bytes:
    """The bytes of ``file``, refusing one larger than ``limit``."""
    try:
        with open(file, "rb") as f:
            data = f.read() if limit is None else f.read(limit + 1)
    except OSError as exc:
        raise CheckpointError(f"cannot read {file}: {exc}") from None
    if limit is not None and len(data) > limit:
        raise CheckpointError(f"{file} is larger than {limit:,} bytes; it is not a tinygpt file")
    return data


def parse_json(data: bytes, source: str | Path) -> Any:
    """JSON from bytes; anything that is not (bad UTF-8, bad syntax, absurd nesting) is a CheckpointError."""
    return files.parse_json(data, source, CheckpointError, "a tinygpt file")


def read_json(folder: Path, name: str, limit: int = 1 << 20) -> Any:
    """A small JSON file of ``folder``, checked as a regular file first."""
    file = regular_file(folder, name)
    return parse_json(read_bytes(file, limit), file)


def check_finite(file: Path, name: str, array: Any) -> None:
    """Refuse a host array holding NaN or infinity (min/max propagate NaN without a temporary copy)."""
    if array.size and not (math.isfinite(float(array.min())) and math.isfinite(float(array.max()))):
        raise CheckpointError(
            f"{file}: tensor {name!r} holds NaN or infinite values; the weights are unusable "
            "(training diverged before they were saved?): use other weights"
        )


def check_fits(source: Path, num_parameters: int) -> None:
    """Refuse a model whose float32 weights alone would not fit in free memory (before allocating them)."""
    need = 4 * num_parameters
    have = backend.available_memory()
    if have is not None and need > have:
        raise CheckpointError(
            f"{source} describes a model of {num_parameters:,} parameters "
            f"({need / 2**30:.1f} GiB) but only {have / 2**30:.1f} GiB is free; it cannot be loaded here"
        )


# Safetensors files read through a memory map ----------------------------------------
def safetensors_header(file: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (dtype, shape) from a safetensors header, every entry checked against the file's size."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if n < 0 or n > min(size - 8, MAX_HEADER_BYTES):
                raise CheckpointError(
                    f"{file} is not a readable safetensors file: its header length ({n:,} bytes) does not "
                    f"fit in the file ({size:,} bytes); the file is truncated or not safetensors"
                )
            header = parse_json(f.read(n), file)
    except OSError as exc:
        raise CheckpointError(f"cannot read {file}: {exc}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: the safetensors header is not a JSON object; the file is corrupt")
    data_bytes = size - 8 - n
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        shape = entry.get("shape") if isinstance(entry, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            dtype not in DTYPE_BYTES
            or not isinstance(shape, list)
            or not all(type(d) is int and d >= 0 for d in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int and o >= 0 for o in offsets)
        ):
            raise CheckpointError(
                f"{file}: the header entry of tensor {name!r} is malformed; the file is corrupt"
            )
        begin, end = offsets
        if end > data_bytes:
            raise CheckpointError(
                f"{file}: tensor {name!r} lies at bytes {begin:,}..{end:,} but the file holds only "
                f"{data_bytes:,} bytes of data; the file is truncated (download it again)"
            )
        if end - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise CheckpointError(
                f"{file}: tensor {name!r} of shape {shape} and dtype {dtype} cannot take "
                f"{end - begin:,} bytes; the file is corrupt"
            )
        tensors[name] = (dtype, tuple(shape))
    return tensors


class SafetensorsFiles:
    """Tensors by name across one or more safetensors files, read one at a time through a memory map.

    ``read(name)`` gives a finite float32 host array.
    """

    def __init__(self, files: list[Path]) -> None:
        self.where: dict[str, Path] = {}
        self.header: dict[str, tuple[str, tuple[int, ...]]] = {}
        for file in files:
            for name, entry in safetensors_header(file).items():
                if name in self.where:
                    raise CheckpointError(
                        f"tensor {name!r} is stored twice: in {self.where[name]} and {file}"
                    )
                self.where[name], self.header[name] = file, entry

    def shape(self, name: str) -> tuple[int, ...]:
        return self.header[name][1]

    def read(self, name: str) -> Any:
        """Tensor ``name`` as a float32 host array (float16 is widened), refusing other dtypes and NaN/inf."""
        file, (dtype, _) = self.where[name], self.header[name]
        if dtype not in FLOAT_DTYPES:
            raise CheckpointError(
                f"{file}: tensor {name!r} has dtype {dtype}; tinygpt reads float weights stored as "
                f"{' or '.join(FLOAT_DTYPES)} (re-save the model in float32)"
            )
        try:
            # Opened per tensor: closing unmaps the file, so its pages never add up in memory.
            with safe_open(str(file), framework="numpy") as f:
                array = f.get_tensor(name)
        except (SafetensorError, ValueError, OSError) as exc:
            raise CheckpointError(f"{file} is not a readable safetensors file ({name!r}): {exc}") from None
        if dtype != "F32":
            array = array.astype("float32")
        check_finite(file, name, array)
        return array


class Unfilled(backend.Generator):
    """A generator whose "random" draws are zeros: for a model whose every weight is loaded next.

    Drawing GPT-2's 124M random numbers only to overwrite them took longer than reading the file.
    """

    def normal(self, shape: Sequence[int], std: float = 1.0, dtype: Any = None) -> Any:
        b = backend.current()
        return b.xp.zeros(tuple(shape), dtype=dtype or b.float_dtype, device=b.device)

    def uniform(self, shape: Sequence[int], low: float = 0.0, high: float = 1.0, dtype: Any = None) -> Any:
        return self.normal(shape, dtype=dtype)


def assign_weights(model: Module, tensors: SafetensorsFiles, names: dict[str, str]) -> None:
    """Fill every parameter of ``model`` from ``tensors`` (``names``: parameter -> stored name), one at a time.

    Every name and shape is checked before the first tensor is read; only one tensor is
    ever held twice (while it is copied out of the file).
    """
    params = dict(model.named_parameters())
    if set(names) != set(params):
        raise ValueError(f"the name mapping does not cover parameters {sorted(set(params) ^ set(names))[:5]}")
    for param, stored in names.items():
        file = tensors.where.get(stored)
        if file is None:
            where = ", ".join(sorted({str(f) for f in tensors.where.values()})) or "the weight files"
            raise CheckpointError(
                f"{where} lacks tensor {stored!r} (tinygpt's {param}); the download is incomplete"
            )
        shape = tensors.shape(stored)
        expected = params[param].shape
        if shape != expected:
            raise CheckpointError(
                f"{file}: tensor {stored!r} has shape {list(shape)} but config.json describes "
                f"{list(expected)}; the weights and config.json come from different models"
            )
    for param, stored in names.items():
        array = tensors.read(stored)
        p = params[param]
        p.data = backend.asarray(array, dtype=p.dtype, copy=False)  # a fresh host array: no second copy
        del array


# tinygpt checkpoints -------------------------------------------------------------------
def read_checked(path: Path, name: str, expected_sha: str) -> bytes:
    """A file of a tinygpt checkpoint whose SHA-256 must be the one config.json records."""
    data = read_bytes(regular_file(path, name), MAX_JSON_BYTES.get(name))
    if hashlib.sha256(data).hexdigest() != expected_sha:
        raise CheckpointError(
            f"{path / name} is corrupt (its SHA-256 does not match config.json): it was truncated or "
            "modified after saving; use another checkpoint (e.g. the run's latest) or retrain"
        )
    return data


def load_safetensors_bytes(path: Path, name: str, data: bytes) -> dict[str, Any]:
    """All tensors of a safetensors file's bytes as host arrays, refusing NaN and infinity."""
    try:
        arrays = st_load(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path / name} is not a readable safetensors file: {exc}") from None
    for tensor, array in arrays.items():
        check_finite(path / name, tensor, array)
    return arrays


def fail_type(file: Path, field: str, expected: str, value: Any) -> CheckpointError:
    """The error for a JSON field of the wrong type, naming the file, the field and the value."""
    return CheckpointError(f"{file}: {field} must be {expected}, got {type(value).__name__} {value!r:.60}")


def read_config(path: Path) -> dict[str, Any]:
    """The validated ``config.json`` of a tinygpt checkpoint directory."""
    if not (path / "config.json").exists() and not (path / "config.json").is_symlink():
        raise CheckpointError(
            f"{path} is not a tinygpt checkpoint (no config.json); give a run directory "
            "made by `tinygpt train --out DIR` or one of its checkpoints"
        )
    file = regular_file(path, "config.json")
    config = parse_json(read_bytes(file, MAX_JSON_BYTES["config.json"]), file)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{file} is not a tinygpt checkpoint config (format is not {FORMAT!r})")
    if config.get("version") != VERSION or type(config.get("version")) is not int:
        raise CheckpointError(
            f"{file} has checkpoint format version {config.get('version')!r}; this tinygpt reads "
            f"version {VERSION}: upgrade tinygpt or re-save the checkpoint"
        )
    for key in ("model", "tensors", "sha256"):
        if not isinstance(config.get(key), dict):
            raise CheckpointError(f"{file} lacks the {key!r} section; the checkpoint is corrupt")
    if config.get("dtype", "float32") != "float32":
        raise fail_type(file, "dtype", '"float32"', config.get("dtype"))
    for name, shape in config["tensors"].items():
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            raise fail_type(file, f"tensors[{name!r}]", "a list of sizes", shape)
    for name, digest in config["sha256"].items():
        if (
            not isinstance(digest, str)
            or len(digest) != 64
            or not all(c in "0123456789abcdef" for c in digest)
        ):
            raise fail_type(file, f"sha256[{name!r}]", "a SHA-256 hex digest", digest)
    missing = [name for name in REQUIRED_FILES if name not in config["sha256"]]
    if missing:
        raise CheckpointError(
            f"{file} records no SHA-256 for {', '.join(missing)}, so the files cannot be checked; "
            "the checkpoint is corrupt or was not written by tinygpt"
        )
    return config


def read_checkpoint_weights(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The weights of a tinygpt checkpoint as host float32 arrays, checked against ``config.json``."""
    sha = config["sha256"]
    weights = load_safetensors_bytes(
        path, "model.safetensors", read_checked(path, "model.safetensors", sha["model.safetensors"])
    )
    for name, shape in config["tensors"].items():
        if name not in weights:
            raise CheckpointError(f"{path / 'model.safetensors'} lacks tensor {name!r} listed in config.json")
        if list(weights[name].shape) != list(shape):
            raise CheckpointError(
                f"{path / 'model.safetensors'}: {name} has shape {list(weights[name].shape)}, "
                f"config.json says {shape}"
            )
        if str(weights[name].dtype) != "float32":
            raise CheckpointError(
                f"{path / 'model.safetensors'}: {name} has dtype {weights[name].dtype}, expected float32"
            )
    return weights


def read_pointer(run_dir: Path, which: str) -> Path:
    """The checkpoint directory ``run_dir/<which>.json`` names (it need not exist any more)."""
    pointer = run_dir / f"{which}.json"
    try:
        data = parse_json(read_bytes(regular_file(run_dir, pointer.name), POINTER_MAX_BYTES), pointer)
        target = data["checkpoint"]
    except (CheckpointError, KeyError, TypeError):
        raise CheckpointError(f"{pointer} is corrupt; point --checkpoint at a checkpoint directory") from None
    parts = Path(target).parts if isinstance(target, str) else ()
    if not parts or Path(target).is_absolute() or ".." in parts:
        raise CheckpointError(
            f"{pointer} names {target!r}, which is not a checkpoint inside the run directory; "
            "point --checkpoint at a checkpoint directory"
        )
    return run_dir / target


def resolve_checkpoint(path: str | os.PathLike[str], which: str = "best") -> Path:
    """A checkpoint directory, given one or a run directory (then its ``which``: best or latest)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint path {path} does not exist")
    if (path / "config.json").exists():
        return path
    pointer = path / f"{which}.json"
    if pointer.exists():
        checkpoint = read_pointer(path, which)
        target = checkpoint.relative_to(path).as_posix()
        if not checkpoint.exists():
            # A kill between save_checkpoint's two renames leaves the previous version aside.
            for moved in files.moved_aside(checkpoint):
                if (moved / "config.json").exists():
                    return moved
            raise CheckpointError(
                f"{pointer} points to {target}, which does not exist; the run directory was "
                "edited: point --checkpoint at a checkpoint inside it"
            )
        return checkpoint
    raise CheckpointError(
        f"{path} is neither a checkpoint (no config.json) nor a run directory (no {which}.json); "
        "give the --out directory of `tinygpt train` or a checkpoint inside it"
    )
