"""Checkpoints: self-describing directories that load on any backend.

A checkpoint directory holds
    model.safetensors      weights as float32 host arrays (no pickle: loading runs no code)
    config.json            format version, model config, tensor shapes, SHA-256 of each file
    tokenizer.json         the vocabulary
    optimizer.safetensors  AdamW moments           (training checkpoints only)
    trainer.json           step, RNG states, best validation loss (training checkpoints only)

Writes are atomic: everything goes into a temporary sibling directory whose
files are fsync'ed, then one rename publishes it. A run directory points at
its latest and best checkpoints with small JSON files replaced atomically, so
``kill -9`` at any moment leaves the previous complete checkpoint readable.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from tinygpt import backend
from tinygpt.errors import CheckpointError, ConfigError, TinyGPTError
from tinygpt.files import fsync_dir, fsync_write, json_bytes, umask
from tinygpt.models.gpt import GPTConfig, TinyGPT
from tinygpt.tokenizers import Tokenizer, tokenizer_from_dict

FORMAT = "tinygpt-checkpoint"
VERSION = 1
POINTERS = ("latest", "best")


@dataclass
class Checkpoint:
    """What a checkpoint directory holds, loaded and validated."""

    path: Path
    model: TinyGPT
    tokenizer: Tokenizer
    optimizer_state: dict[str, Any] | None = None
    trainer_state: dict[str, Any] = field(default_factory=dict)


# Writing -------------------------------------------------------------------------
def save_checkpoint(
    path: str | os.PathLike[str],
    model: TinyGPT,
    tokenizer: Tokenizer,
    optimizer_state: dict[str, Any] | None = None,
    trainer_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory at ``path`` atomically (replacing one that is there)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = path.with_name(f".{path.name}.old")
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it private; a checkpoint is shared like any file
        files: dict[str, bytes] = {}
        weights = {name: array.astype("float32") for name, array in model.state_dict().items()}
        files["model.safetensors"] = st_save(weights)
        files["tokenizer.json"] = json_bytes(tokenizer.to_dict())
        if optimizer_state is not None:
            files["optimizer.safetensors"] = st_save(optimizer_state["arrays"])
            trainer_state = {**(trainer_state or {}), "optimizer_step_count": optimizer_state["step_count"]}
        if trainer_state is not None:
            files["trainer.json"] = json_bytes(trainer_state)
        config = {
            "format": FORMAT,
            "version": VERSION,
            "model": model.config.to_dict(),
            "dtype": "float32",
            "tensors": {name: list(array.shape) for name, array in weights.items()},
            "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        }
        for name, data in files.items():
            fsync_write(tmp / name, data)
        fsync_write(tmp / "config.json", json_bytes(config))
        fsync_dir(tmp)
        if path.exists():
            # Between these two renames ``path`` is absent; resolve_checkpoint then finds ``old``.
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():  # failed between the renames: put the old one back
            os.replace(old, path)
        raise
    return path


# Reading -------------------------------------------------------------------------
# A checkpoint may come from anywhere: every file is checked before it is trusted (a regular file
# inside the checkpoint, of a sane size, with the SHA-256 that config.json records), every JSON
# field's type is checked, and the model's size is checked against free memory before allocating.
MAX_JSON_BYTES = {"config.json": 1 << 20, "trainer.json": 1 << 20, "tokenizer.json": 64 << 20}
POINTER_MAX_BYTES = 64 << 10
REQUIRED_FILES = ("model.safetensors", "tokenizer.json")
TRAINING_FILES = ("optimizer.safetensors", "trainer.json")


def _regular_file(folder: Path, name: str) -> Path:
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


def _read_bytes(file: Path, limit: int | None = None) -> bytes:
    try:
        with open(file, "rb") as f:
            data = f.read() if limit is None else f.read(limit + 1)
    except OSError as exc:
        raise CheckpointError(f"cannot read {file}: {exc}") from None
    if limit is not None and len(data) > limit:
        raise CheckpointError(f"{file} is larger than {limit:,} bytes; it is not a tinygpt file")
    return data


def _read(path: Path, name: str, expected_sha: str) -> bytes:
    data = _read_bytes(_regular_file(path, name), MAX_JSON_BYTES.get(name))
    if hashlib.sha256(data).hexdigest() != expected_sha:
        raise CheckpointError(
            f"{path / name} is corrupt (its SHA-256 does not match config.json): it was truncated or "
            "modified after saving; use another checkpoint (e.g. the run's latest) or retrain"
        )
    return data


def parse_json(data: bytes, source: str | Path) -> Any:
    """JSON from bytes; anything that is not (bad UTF-8, bad syntax, absurd nesting) is a CheckpointError."""
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{source} is not UTF-8 text ({exc}); the file is corrupt") from None
    except RecursionError:
        raise CheckpointError(f"{source} nests JSON too deeply to be a tinygpt file") from None
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        raise CheckpointError(f"{source} is not valid JSON ({exc}); the file is corrupt") from None


def _load_safetensors(path: Path, name: str, data: bytes) -> dict[str, Any]:
    try:
        arrays = st_load(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path / name} is not a readable safetensors file: {exc}") from None
    for tensor, array in arrays.items():
        if array.size and not math.isfinite(float(abs(array).max())):
            raise CheckpointError(
                f"{path / name}: tensor {tensor!r} holds NaN or infinite values; the checkpoint is "
                "unusable (training diverged before it was saved?): use an earlier checkpoint"
            )
    return arrays


def _fail_type(file: Path, field: str, expected: str, value: Any) -> CheckpointError:
    return CheckpointError(f"{file}: {field} must be {expected}, got {type(value).__name__} {value!r:.60}")


def read_config(path: Path) -> dict[str, Any]:
    """The validated ``config.json`` of a checkpoint directory."""
    if not (path / "config.json").exists() and not (path / "config.json").is_symlink():
        raise CheckpointError(
            f"{path} is not a tinygpt checkpoint (no config.json); give a run directory "
            "made by `tinygpt train --out DIR` or one of its checkpoints"
        )
    file = _regular_file(path, "config.json")
    config = parse_json(_read_bytes(file, MAX_JSON_BYTES["config.json"]), file)
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
        raise _fail_type(file, "dtype", '"float32"', config.get("dtype"))
    for name, shape in config["tensors"].items():
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            raise _fail_type(file, f"tensors[{name!r}]", "a list of sizes", shape)
    for name, digest in config["sha256"].items():
        if (
            not isinstance(digest, str)
            or len(digest) != 64
            or not all(c in "0123456789abcdef" for c in digest)
        ):
            raise _fail_type(file, f"sha256[{name!r}]", "a SHA-256 hex digest", digest)
    missing = [name for name in REQUIRED_FILES if name not in config["sha256"]]
    if missing:
        raise CheckpointError(
            f"{file} records no SHA-256 for {', '.join(missing)}, so the files cannot be checked; "
            "the checkpoint is corrupt or was not written by tinygpt"
        )
    return config


def _check_fits(path: Path, config: GPTConfig) -> None:
    """Refuse a model whose weights alone would not fit in free memory (before allocating them)."""
    need = 4 * config.num_parameters()
    have = backend.available_memory()
    if have is not None and need > have:
        raise CheckpointError(
            f"{path / 'config.json'} describes a model of {config.num_parameters():,} parameters "
            f"({need / 2**30:.1f} GiB) but only {have / 2**30:.1f} GiB is free; it cannot be loaded here"
        )


def _generator_state(value: Any, file: Path, field: str) -> dict[str, Any]:
    try:
        backend.Generator(0).set_state(value)
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError):
        raise _fail_type(file, field, "a random-generator state", value) from None
    return dict(value)


def _trainer_state(data: Any, file: Path) -> dict[str, Any]:
    """trainer.json with every field's type checked (resume trusts these values)."""
    if not isinstance(data, dict):
        raise _fail_type(file, "the file", "a JSON object", data)
    for key in ("step", "optimizer_step_count", "skipped_steps"):
        value = data.get(key, 0)
        if type(value) is not int or value < 0:
            raise _fail_type(file, key, "an integer >= 0", value)
    best = data.get("best_val_loss")
    if best is not None and (type(best) not in (int, float) or not math.isfinite(best)):
        raise _fail_type(file, "best_val_loss", "a finite number or null", best)
    for key in ("data_rng", "model_rng"):
        if key in data:
            data[key] = _generator_state(data[key], file, key)
    info = data.get("data", {})
    if not isinstance(info, dict) or not all(
        isinstance(info.get(k, ""), str) for k in ("text", "corpus", "sha256")
    ):
        raise _fail_type(file, "data", "an object naming the text or corpus", info)
    fraction = info.get("val_fraction", 0.1)
    if type(fraction) not in (int, float) or not 0 < fraction < 1:
        raise _fail_type(file, "data.val_fraction", "a number in (0, 1)", fraction)
    if not isinstance(data.get("train_config", {}), dict):  # its fields are checked by TrainConfig on resume
        raise _fail_type(file, "train_config", "a JSON object", data["train_config"])
    return data


def load_checkpoint(
    path: str | os.PathLike[str], with_training_state: bool = False, which: str = "best"
) -> Checkpoint:
    """Load and validate a checkpoint, or a run directory's ``which`` (best or latest), on the current backend.

    A run that is training meanwhile may prune the checkpoint being read once its pointer moves
    on; the pointer is then followed again (a few times) instead of failing.
    """
    path = Path(path)
    for _ in range(5):
        is_run = (path / f"{which}.json").exists() and not (path / "config.json").exists()
        target = read_pointer(path, which) if is_run else None
        try:
            return _load(resolve_checkpoint(path, which), with_training_state)
        except CheckpointError:
            if not is_run or read_pointer(path, which) == target:
                raise  # not a pointer that moved on meanwhile: the checkpoint itself is bad
    return _load(resolve_checkpoint(path, which), with_training_state)


def _load(path: Path, with_training_state: bool) -> Checkpoint:
    config = read_config(path)
    sha = config["sha256"]
    try:
        model_config = GPTConfig.from_dict(config["model"])
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path / 'config.json'} has an invalid model config: {exc}") from None
    _check_fits(path, model_config)
    tokenizer_data = parse_json(_read(path, "tokenizer.json", sha["tokenizer.json"]), path / "tokenizer.json")
    try:
        tokenizer = tokenizer_from_dict(tokenizer_data, source=str(path / "tokenizer.json"))
    except TinyGPTError as exc:
        raise CheckpointError(str(exc)) from None
    if tokenizer.vocab_size != model_config.vocab_size:
        raise CheckpointError(
            f"{path / 'tokenizer.json'} has {tokenizer.vocab_size} tokens but the model was built for "
            f"vocab_size={model_config.vocab_size}; the files come from different runs"
        )
    weights = _load_safetensors(
        path, "model.safetensors", _read(path, "model.safetensors", sha["model.safetensors"])
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
    model = TinyGPT(model_config)
    for name, p in model.named_parameters():
        if name in weights and tuple(weights[name].shape) != p.shape:
            raise CheckpointError(
                f"{path / 'config.json'} describes a model whose {name} has shape {p.shape}, but "
                f"{path / 'model.safetensors'} holds {tuple(weights[name].shape)}: config.json was edited "
                "or comes from a model of another size"
            )
    model.load_state_dict(weights, source=str(path / "model.safetensors"))
    checkpoint = Checkpoint(path, model, tokenizer)
    if "trainer.json" in sha:
        file = path / "trainer.json"
        checkpoint.trainer_state = _trainer_state(
            parse_json(_read(path, "trainer.json", sha["trainer.json"]), file), file
        )
    if with_training_state:
        if any(name not in sha for name in TRAINING_FILES):
            raise CheckpointError(
                f"{path} holds weights only (no optimizer or trainer state), so training cannot resume "
                "from it; resume from the run directory's latest checkpoint"
            )
        missing = [k for k in ("step", "data_rng", "model_rng") if k not in checkpoint.trainer_state]
        if missing:
            raise CheckpointError(
                f"{path / 'trainer.json'} lacks {missing}, so training cannot resume from it"
            )
        arrays = _load_safetensors(
            path, "optimizer.safetensors", _read(path, "optimizer.safetensors", sha["optimizer.safetensors"])
        )
        step_count = checkpoint.trainer_state.get("optimizer_step_count", 0)
        checkpoint.optimizer_state = {"step_count": step_count, "arrays": arrays}
    return checkpoint


# Run directories -----------------------------------------------------------------
def read_pointer(run_dir: Path, which: str) -> Path:
    """The checkpoint directory ``run_dir/<which>.json`` names (it need not exist any more)."""
    pointer = run_dir / f"{which}.json"
    try:
        data = parse_json(_read_bytes(_regular_file(run_dir, pointer.name), POINTER_MAX_BYTES), pointer)
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
            # A kill between save_checkpoint's two renames leaves the previous version here.
            moved = checkpoint.with_name(f".{checkpoint.name}.old")
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
