"""One loader for every command and for ``tinygpt.load_model``, whatever the path names.

    a tinygpt checkpoint directory              its weights, tokenizer (and training state)
    a run directory (``tinygpt train --out``)   its ``best`` or ``latest`` checkpoint, through the pointer
    a Hugging Face GPT-2 directory              its weights and its tokenizer files

Each file is opened once: ``config.json`` says which of the two layouts the
directory holds, and the model is built without random draws (``Unfilled``)
because every weight is read into it next.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tinygpt import backend
from tinygpt.checkpoint import directory
from tinygpt.checkpoint.directory import TRAINING_FILES, checked_config, config_json, parse_json
from tinygpt.checkpoint.huggingface import is_huggingface_config, open_gpt2
from tinygpt.checkpoint.pointers import resolve_checkpoint
from tinygpt.checkpoint.weight_files import assign_weights, check_fits, load_safetensors_bytes
from tinygpt.errors import CheckpointError, ConfigError, TinyGPTError
from tinygpt.models import GPTConfig, TinyGPT
from tinygpt.tokenizers import Tokenizer, tokenizer_from_dict, tokenizer_from_directory

T = TypeVar("T")


@dataclass
class Checkpoint:
    """What a checkpoint directory holds, loaded and validated.

    ``optimizer_state`` is there when loaded ``with_training_state``; ``huggingface`` marks a
    Hugging Face directory (weights and tokenizer only: it records no training or text).
    """

    path: Path
    model: TinyGPT
    tokenizer: Tokenizer
    optimizer_state: dict[str, Any] | None = None
    trainer_state: dict[str, Any] = field(default_factory=dict)
    huggingface: bool = False


class Unfilled(backend.Generator):
    """A generator for a model whose every weight is read next: initialisation draws nothing.

    Drawing GPT-2's 124M random numbers only to overwrite them took longer than reading the
    file. Dropout masks, drawn while training, come from the default generator as in any
    model (a checkpoint keeps its state, so a resumed run draws the masks it would have).
    """

    def normal(self, shape: Sequence[int], std: float = 1.0, dtype: Any = None) -> Any:
        b = backend.current()
        return b.xp.zeros(tuple(shape), dtype=dtype or b.float_dtype, device=b.device)

    def uniform(self, shape: Sequence[int], low: float = 0.0, high: float = 1.0, dtype: Any = None) -> Any:
        return self.normal(shape, dtype=dtype)

    def keep_mask(self, shape: Sequence[int], p_keep: float, dtype: Any = None) -> Any:
        return backend.default_generator().keep_mask(shape, p_keep, dtype)


def load_checkpoint(
    path: str | os.PathLike[str], with_training_state: bool = False, which: str = "best"
) -> Checkpoint:
    """Load and validate a checkpoint, a run directory's ``which`` (best or latest), or a Hugging Face
    GPT-2 directory with its tokenizer, on the current backend.

    ``with_training_state`` also reads the AdamW moments and trainer state a resume needs.
    """

    def load(folder: Path) -> Checkpoint:
        data = config_json(folder)
        if is_huggingface_config(data):
            if with_training_state:
                raise CheckpointError(
                    f"{folder} is a pretrained model with no training state; fine-tune it with "
                    f"`tinygpt train --init-from {shlex.quote(str(folder))} --out DIR` instead of resuming it"
                )
            model, tokenizer = _load_gpt2(folder, data, with_tokenizer=True)
            assert tokenizer is not None
            return Checkpoint(folder, model, tokenizer, huggingface=True)
        return _load_tinygpt(folder, checked_config(data, folder / "config.json"), with_training_state)

    return _following_pointer(Path(path), which, load)


def load_model(path: str | os.PathLike[str], which: str = "best") -> TinyGPT:
    """The model of a tinygpt checkpoint, a run directory (its ``which``) or a Hugging Face GPT-2 directory.

    Weights only, so a Hugging Face directory needs no tokenizer files; ``load_checkpoint``
    gives the tokenizer and the training state too.
    """

    def load(folder: Path) -> TinyGPT:
        data = config_json(folder)
        if is_huggingface_config(data):
            return _load_gpt2(folder, data, with_tokenizer=False)[0]
        return _load_tinygpt(folder, checked_config(data, folder / "config.json"), False).model

    return _following_pointer(Path(path), which, load)


def _following_pointer(path: Path, which: str, load: Callable[[Path], T]) -> T:
    """``load`` the directory ``path`` resolves to. A run that trains meanwhile may prune the checkpoint
    being read once its pointer moves on: the pointer is then followed again (a few times)."""
    folder = resolve_checkpoint(path, which)
    for _ in range(4):
        try:
            return load(folder)
        except CheckpointError:
            if folder == path:
                raise  # no pointer: the checkpoint itself is bad
            moved_on = resolve_checkpoint(path, which)
            if moved_on == folder:
                raise  # the pointer did not move: the checkpoint itself is bad
            folder = moved_on
    return load(folder)


def _load_gpt2(path: Path, data: Any, with_tokenizer: bool) -> tuple[TinyGPT, Tokenizer | None]:
    """A Hugging Face GPT-2 directory: config and weight headers first (cheap, and the bigger problem)."""
    config, tensors, names = open_gpt2(path, data)
    with tensors:
        tokenizer = tokenizer_from_directory(path) if with_tokenizer else None
        if with_tokenizer and tokenizer is None:
            raise CheckpointError(
                f"{path} has no tokenizer files; add the model's tokenizer.json (or vocab.json and merges.txt) "
                "to it, e.g. `huggingface-cli download gpt2 tokenizer.json vocab.json merges.txt "
                f"--local-dir {shlex.quote(str(path))}`"
            )
        if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
            raise CheckpointError(
                f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                f"vocab_size={config.vocab_size}; the tokenizer files belong to another model"
            )
        check_fits(path / "config.json", config.num_parameters())
        model = TinyGPT(config, rng=Unfilled())  # no random draws: every weight is read next
        assign_weights(model, tensors, names)
    return model, tokenizer


def _load_tinygpt(path: Path, config: dict[str, Any], with_training_state: bool) -> Checkpoint:
    """A tinygpt checkpoint directory (``config``: its checked config.json), every file checked first."""
    sha = config["sha256"]
    try:
        model_config = GPTConfig.from_dict(config["model"])
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path / 'config.json'} has an invalid model config: {exc}") from None
    check_fits(path / "config.json", model_config.num_parameters())
    file = path / "tokenizer.json"
    tokenizer_data = parse_json(directory.read_checked(path, "tokenizer.json", sha["tokenizer.json"]), file)
    try:
        tokenizer = tokenizer_from_dict(tokenizer_data, source=str(file))
    except TinyGPTError as exc:
        raise CheckpointError(str(exc)) from None
    if tokenizer.vocab_size != model_config.vocab_size:
        raise CheckpointError(
            f"{file} has {tokenizer.vocab_size} tokens but the model was built for "
            f"vocab_size={model_config.vocab_size}; the files come from different runs"
        )
    weights = directory.read_checkpoint_weights(path, config)
    model = TinyGPT(model_config, rng=Unfilled())  # no random draws: every weight is read next
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
        checkpoint.trainer_state = directory.trainer_state(
            parse_json(directory.read_checked(path, "trainer.json", sha["trainer.json"]), file), file
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
        name = "optimizer.safetensors"
        arrays = load_safetensors_bytes(path, name, directory.read_checked(path, name, sha[name]))
        step_count = checkpoint.trainer_state.get("optimizer_step_count", 0)
        checkpoint.optimizer_state = {"step_count": step_count, "arrays": arrays}
    return checkpoint
