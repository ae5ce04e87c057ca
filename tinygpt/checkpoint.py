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
import math
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.numpy import save as st_save

from tinygpt import backend
from tinygpt.errors import CheckpointError, ConfigError, TinyGPTError
from tinygpt.files import fsync_dir, fsync_write, json_bytes, listing, publish_directory, umask
from tinygpt.models import GPTConfig, TinyGPT
from tinygpt.models.huggingface import is_huggingface_directory, open_gpt2
from tinygpt.models.weights import (
    FORMAT,
    VERSION,
    check_fits,
    fail_type,
    load_safetensors_bytes,
    parse_json,
    read_checked,
    read_checkpoint_weights,
    read_config,
    read_json,
    read_pointer,
    resolve_checkpoint,
)
from tinygpt.tokenizers import Tokenizer, tokenizer_from_dict, tokenizer_from_directory

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
    """Write a checkpoint directory at ``path`` atomically (replacing a checkpoint that is there).

    Anything else at ``path`` (a file, a directory holding files a checkpoint does not) is refused,
    so a mistyped path never costs a user's folder.
    """
    path = Path(path)
    _check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
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
        publish_directory(tmp, path)  # between its two renames, resolve_checkpoint finds the old one
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


CHECKPOINT_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "optimizer.safetensors",
    "trainer.json",
)


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


# Reading -------------------------------------------------------------------------
# A checkpoint may come from anywhere: every file is checked before it is trusted (a regular file
# inside the checkpoint, of a sane size, with the SHA-256 that config.json records), every JSON
# field's type is checked, and the model's size is checked against free memory before allocating.
# The file-level checks live in tinygpt.models.weights, so TinyGPT.from_pretrained shares them.
TRAINING_FILES = ("optimizer.safetensors", "trainer.json")
_read = read_checked  # a module attribute: tests replace it to act between reads


def _generator_state(value: Any, file: Path, field: str) -> dict[str, Any]:
    try:
        backend.Generator(0).set_state(value)
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError):
        raise fail_type(file, field, "a random-generator state", value) from None
    return dict(value)


def _trainer_state(data: Any, file: Path) -> dict[str, Any]:
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


def load_checkpoint(
    path: str | os.PathLike[str], with_training_state: bool = False, which: str = "best"
) -> Checkpoint:
    """Load and validate a checkpoint, or a run directory's ``which`` (best or latest), on the current backend.

    A run that is training meanwhile may prune the checkpoint being read once its pointer moves
    on; the pointer is then followed again (a few times) instead of failing.
    """
    path = Path(path)
    if is_huggingface_directory(path):
        if with_training_state:
            raise CheckpointError(
                f"{path} is a pretrained model with no training state; fine-tune it with "
                f"`tinygpt train --init-from {shlex.quote(str(path))} --out DIR` instead of resuming it"
            )
        return load_pretrained(path)
    for _ in range(5):
        is_run = (path / f"{which}.json").exists() and not (path / "config.json").exists()
        target = read_pointer(path, which) if is_run else None
        try:
            return _load(resolve_checkpoint(path, which), with_training_state)
        except CheckpointError:
            if not is_run or read_pointer(path, which) == target:
                raise  # not a pointer that moved on meanwhile: the checkpoint itself is bad
    return _load(resolve_checkpoint(path, which), with_training_state)


def load_pretrained(path: str | os.PathLike[str]) -> Checkpoint:
    """A Hugging Face GPT-2 directory with its own tokenizer, as a weights-only Checkpoint."""
    path = Path(path)
    open_gpt2(path)  # the config and weight files first: a cheap check, and the bigger problem
    tokenizer = tokenizer_from_directory(path)
    if tokenizer is None:
        raise CheckpointError(
            f"{path} has no tokenizer files; add the model's tokenizer.json (or vocab.json and merges.txt) "
            f"to it, e.g. `huggingface-cli download gpt2 tokenizer.json vocab.json merges.txt --local-dir {shlex.quote(str(path))}`"
        )
    model = TinyGPT.from_pretrained(path)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise CheckpointError(
            f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but the model only "
            f"vocab_size={model.config.vocab_size}; the tokenizer files belong to another model"
        )
    return Checkpoint(path, model, tokenizer)


def _load(path: Path, with_training_state: bool) -> Checkpoint:
    config = read_config(path)
    sha = config["sha256"]
    try:
        model_config = GPTConfig.from_dict(config["model"])
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path / 'config.json'} has an invalid model config: {exc}") from None
    check_fits(path / "config.json", model_config.num_parameters())
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
    weights = read_checkpoint_weights(path, config)
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
        arrays = load_safetensors_bytes(
            path, "optimizer.safetensors", _read(path, "optimizer.safetensors", sha["optimizer.safetensors"])
        )
        step_count = checkpoint.trainer_state.get("optimizer_step_count", 0)
        checkpoint.optimizer_state = {"step_count": step_count, "arrays": arrays}
    return checkpoint
