"""The tinygpt checkpoint: a self-describing directory, written atomically, read without trusting it.

A checkpoint directory holds
    model.safetensors      weights as float32 host arrays (no pickle: loading runs no code)
    config.json            format version, model config, tensor shapes, SHA-256 of each file
    tokenizer.json         the vocabulary
    optimizer.safetensors  AdamW moments           (training checkpoints only)
    trainer.json           step, RNG states, best validation loss (training checkpoints only)

Writes are atomic: everything goes into a temporary sibling directory whose
files are fsync'ed, then one rename publishes it. Reads check every file before
trusting it: a regular file inside the checkpoint, of a sane size, with the
SHA-256 that config.json records; every JSON field's type; the model's size
against free memory before allocating (``loading.py`` puts these together).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

from safetensors.numpy import save as st_save

from tinygpt import backend, files
from tinygpt.checkpoint.weight_files import load_safetensors_bytes
from tinygpt.errors import CheckpointError
from tinygpt.files import fsync_dir, fsync_write, json_bytes, listing, publish_directory, scratch, umask
from tinygpt.models import TinyGPT
from tinygpt.tokenizers import Tokenizer

FORMAT = "tinygpt-checkpoint"
VERSION = 1
MAX_JSON_BYTES = {"config.json": 1 << 20, "trainer.json": 1 << 20, "tokenizer.json": 64 << 20}
REQUIRED_FILES = ("model.safetensors", "tokenizer.json")
TRAINING_FILES = ("optimizer.safetensors", "trainer.json")
CHECKPOINT_FILES = ("config.json", *REQUIRED_FILES, *TRAINING_FILES)


# Reading the files of a checkpoint ----------------------------------------------------------------
def checkpoint_file(path: Path, name: str, where: str = "the checkpoint") -> Path:
    """``path/name`` if it is there (a symbolic link only to somewhere inside ``path``)."""
    file = files.member(path, name, CheckpointError, where)
    if file is None:
        raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing")
    return file


def parse_json(data: bytes, source: str | Path) -> Any:
    """JSON from bytes; anything that is not (bad UTF-8, bad syntax, absurd nesting) is a CheckpointError."""
    return files.parse_json(data, source, CheckpointError, "a tinygpt file")


def read_json(folder: Path, name: str, limit: int = 1 << 20, where: str = "the checkpoint") -> Any:
    """A small JSON file of ``folder`` (a checkpoint, a run or a model directory), checked first."""
    file = checkpoint_file(folder, name, where)
    return parse_json(files.read_file(file, limit, CheckpointError), file)


def read_checked(path: Path, name: str, expected_sha: str) -> bytes:
    """A file of a tinygpt checkpoint whose SHA-256 must be the one config.json records."""
    data = files.read_file(checkpoint_file(path, name), MAX_JSON_BYTES.get(name), CheckpointError)
    if hashlib.sha256(data).hexdigest() != expected_sha:
        raise CheckpointError(
            f"{path / name} is corrupt (its SHA-256 does not match config.json): it was truncated or "
            "modified after saving; use another checkpoint (e.g. the run's latest) or retrain"
        )
    return data


def fail_type(file: Path, field: str, expected: str, value: Any) -> CheckpointError:
    """The error for a JSON field of the wrong type, naming the file, the field and the value."""
    return CheckpointError(f"{file}: {field} must be {expected}, got {type(value).__name__} {value!r:.60}")


def config_json(path: Path, where: str = "the checkpoint") -> Any:
    """The parsed ``config.json`` of a checkpoint or model directory, not yet checked."""
    if not (path / "config.json").exists() and not (path / "config.json").is_symlink():
        raise CheckpointError(
            f"{path} is not a tinygpt checkpoint (no config.json); give a run directory "
            "made by `tinygpt train --out DIR` or one of its checkpoints"
        )
    return read_json(path, "config.json", MAX_JSON_BYTES["config.json"], where)


def read_config(path: Path) -> dict[str, Any]:
    """The validated ``config.json`` of a tinygpt checkpoint directory."""
    return checked_config(config_json(path), path / "config.json")


def checked_config(config: Any, file: Path) -> dict[str, Any]:
    """``config.json``'s parsed contents, every section and field checked."""
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


def _generator_state(value: Any, file: Path, field: str) -> dict[str, Any]:
    try:
        backend.Generator(0).set_state(value)
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError):
        raise fail_type(file, field, "a random-generator state", value) from None
    return dict(value)


def trainer_state(data: Any, file: Path) -> dict[str, Any]:
    """trainer.json with every field's type checked (resume trusts these values)."""
    if not isinstance(data, dict):
        raise fail_type(file, "the file", "a JSON object", data)
    for key in ("step", "optimizer_step_count", "skipped_steps"):
        value = data.get(key, 0)
        if type(value) is not int or value < 0:
            raise fail_type(file, key, "an integer >= 0", value)
    best = data.get("best_val_loss")
    if best is not None and (type(best) not in (int, float) or not math.isfinite(best)):
        raise fail_type(file, "best_val_loss", "a finite number or null", best)
    for key in ("data_rng", "model_rng"):
        if key in data:
            data[key] = _generator_state(data[key], file, key)
    info = data.get("data", {})
    if not isinstance(info, dict) or not all(
        isinstance(info.get(k, ""), str) for k in ("text", "corpus", "sha256")
    ):
        raise fail_type(file, "data", "an object naming the text or corpus", info)
    fraction = info.get("val_fraction", 0.1)
    if type(fraction) not in (int, float) or not 0 < fraction < 1:
        raise fail_type(file, "data.val_fraction", "a number in (0, 1)", fraction)
    if not isinstance(data.get("train_config", {}), dict):  # its fields are checked by TrainConfig on resume
        raise fail_type(file, "train_config", "a JSON object", data["train_config"])
    return data


# Writing -------------------------------------------------------------------------------------------
def save_checkpoint(
    path: str | os.PathLike[str],
    model: TinyGPT,
    tokenizer: Tokenizer,
    optimizer_state: dict[str, Any] | None = None,
    trainer_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory at ``path`` atomically (replacing a checkpoint that is there).

    Anything else at ``path`` (a file, a directory holding files a checkpoint does not) is refused,
    so a mistyped path never costs a user's folder.
    """
    path = Path(path)
    _check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with scratch(path, ".tmp", directory=True) as tmp:  # removed if anything below fails
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it private; a checkpoint is shared like any file
        written: dict[str, bytes] = {}
        weights = {name: array.astype("float32") for name, array in model.state_dict().items()}
        written["model.safetensors"] = st_save(weights)
        written["tokenizer.json"] = json_bytes(tokenizer.to_dict())
        if optimizer_state is not None:
            written["optimizer.safetensors"] = st_save(optimizer_state["arrays"])
            trainer_state = {**(trainer_state or {}), "optimizer_step_count": optimizer_state["step_count"]}
        if trainer_state is not None:
            written["trainer.json"] = json_bytes(trainer_state)
        config = {
            "format": FORMAT,
            "version": VERSION,
            "model": model.config.to_dict(),
            "dtype": "float32",
            "tensors": {name: list(array.shape) for name, array in weights.items()},
            "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in written.items()},
        }
        for name, data in written.items():
            fsync_write(tmp / name, data)
        fsync_write(tmp / "config.json", json_bytes(config))
        fsync_dir(tmp)
        publish_directory(tmp, path)  # between its two renames, resolve_checkpoint finds the old one
    return path


def _check_replaceable(path: Path) -> None:
    """Refuse to replace ``path`` unless it is absent, an empty directory, or a tinygpt checkpoint."""
    if not (path.exists() or path.is_symlink()):
        return
    if path.is_symlink() or not path.is_dir():
        raise CheckpointError(
            f"{path} exists and is not a directory; refusing to replace it with a checkpoint: "
            "choose another path (nothing was changed)"
        )
    names = sorted(p.name for p in path.iterdir())
    if not names:
        return
    foreign = [name for name in names if name not in CHECKPOINT_FILES]
    if not foreign:
        try:
            config = read_json(path, "config.json")
        except CheckpointError:  # missing, a link, unreadable: not known to be ours
            config = None
        if isinstance(config, dict) and config.get("format") == FORMAT:
            return
    raise CheckpointError(
        f"{path} is a directory that is not a tinygpt checkpoint "
        f"({listing(foreign or names)}); refusing to replace it: choose another path (nothing was changed)"
    )
