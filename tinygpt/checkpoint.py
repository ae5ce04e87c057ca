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
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from tinygpt.errors import CheckpointError, ConfigError, TinyGPTError
from tinygpt.files import fsync_dir, fsync_write, json_bytes, umask
from tinygpt.models.gpt import GPTConfig, TinyGPT
from tinygpt.tokenizer import CharTokenizer

FORMAT = "tinygpt-checkpoint"
VERSION = 1
POINTERS = ("latest", "best")


@dataclass
class Checkpoint:
    """What a checkpoint directory holds, loaded and validated."""

    path: Path
    model: TinyGPT
    tokenizer: CharTokenizer
    optimizer_state: dict[str, Any] | None = None
    trainer_state: dict[str, Any] = field(default_factory=dict)


# Writing -------------------------------------------------------------------------
def save_checkpoint(
    path: str | os.PathLike[str],
    model: TinyGPT,
    tokenizer: CharTokenizer,
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
def _read(path: Path, name: str, expected_sha: str | None) -> bytes:
    file = path / name
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {file}: {exc}") from None
    if expected_sha is not None and hashlib.sha256(data).hexdigest() != expected_sha:
        raise CheckpointError(
            f"{file} is corrupt (its SHA-256 does not match config.json): it was truncated or "
            "modified after saving; use another checkpoint (e.g. the run's latest) or retrain"
        )
    return data


def _load_safetensors(path: Path, name: str, data: bytes) -> dict[str, Any]:
    try:
        return st_load(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path / name} is not a readable safetensors file: {exc}") from None


def read_config(path: Path) -> dict[str, Any]:
    """The validated ``config.json`` of a checkpoint directory."""
    file = path / "config.json"
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} is not a tinygpt checkpoint (no config.json); give a run directory "
            "made by `tinygpt train --out DIR` or one of its checkpoints"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file} is not valid JSON ({exc}); the checkpoint is corrupt") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{file} is not a tinygpt checkpoint config (format is not {FORMAT!r})")
    if config.get("version") != VERSION:
        raise CheckpointError(
            f"{file} has checkpoint format version {config.get('version')!r}; this tinygpt reads "
            f"version {VERSION}: upgrade tinygpt or re-save the checkpoint"
        )
    for key in ("model", "tensors", "sha256"):
        if not isinstance(config.get(key), dict):
            raise CheckpointError(f"{file} lacks the {key!r} section; the checkpoint is corrupt")
    return config


def load_checkpoint(path: str | os.PathLike[str], with_training_state: bool = False) -> Checkpoint:
    """Load and validate a checkpoint (or a run directory: its best checkpoint) on the current backend."""
    path = resolve_checkpoint(path)
    config = read_config(path)
    sha = config["sha256"]
    try:
        model_config = GPTConfig.from_dict(config["model"])
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path / 'config.json'} has an invalid model config: {exc}") from None
    weights = _load_safetensors(
        path, "model.safetensors", _read(path, "model.safetensors", sha.get("model.safetensors"))
    )
    for name, shape in config["tensors"].items():
        if name not in weights:
            raise CheckpointError(f"{path / 'model.safetensors'} lacks tensor {name!r} listed in config.json")
        if list(weights[name].shape) != list(shape):
            raise CheckpointError(
                f"{path / 'model.safetensors'}: {name} has shape {list(weights[name].shape)}, "
                f"config.json says {shape}"
            )
        if str(weights[name].dtype) != config.get("dtype", "float32"):
            raise CheckpointError(
                f"{path / 'model.safetensors'}: {name} has dtype {weights[name].dtype}, expected float32"
            )
    try:
        tokenizer = CharTokenizer.from_dict(
            json.loads(_read(path, "tokenizer.json", sha.get("tokenizer.json")).decode("utf-8")),
            source=str(path / "tokenizer.json"),
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path / 'tokenizer.json'} is not valid JSON: {exc}") from None
    except TinyGPTError as exc:
        raise CheckpointError(str(exc)) from None
    if tokenizer.vocab_size != model_config.vocab_size:
        raise CheckpointError(
            f"{path / 'tokenizer.json'} has {tokenizer.vocab_size} characters but the model was built for "
            f"vocab_size={model_config.vocab_size}; the files come from different runs"
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
        try:
            checkpoint.trainer_state = json.loads(
                _read(path, "trainer.json", sha["trainer.json"]).decode("utf-8")
            )
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path / 'trainer.json'} is not valid JSON: {exc}") from None
    if with_training_state:
        if "trainer.json" not in sha or "optimizer.safetensors" not in sha:
            raise CheckpointError(
                f"{path} holds weights only (no optimizer or trainer state), so training cannot resume "
                "from it; resume from the run directory's latest checkpoint"
            )
        trainer_state = checkpoint.trainer_state
        arrays = _load_safetensors(
            path, "optimizer.safetensors", _read(path, "optimizer.safetensors", sha["optimizer.safetensors"])
        )
        checkpoint.optimizer_state = {"step_count": trainer_state["optimizer_step_count"], "arrays": arrays}
    return checkpoint


# Run directories -----------------------------------------------------------------
def resolve_checkpoint(path: str | os.PathLike[str], which: str = "best") -> Path:
    """A checkpoint directory, given one or a run directory (then its ``which``: best or latest)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint path {path} does not exist")
    if (path / "config.json").exists():
        return path
    pointer = path / f"{which}.json"
    if pointer.exists():
        try:
            target = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            raise CheckpointError(
                f"{pointer} is corrupt; point --checkpoint at a checkpoint directory"
            ) from None
        checkpoint = path / target
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
