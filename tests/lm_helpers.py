"""Small builders shared by the language-model tests (generation, checkpoints, trainer, CLI)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tinygpt import backend
from tinygpt.data import split_text, token_array
from tinygpt.models.gpt import GPTConfig, TinyGPT
from tinygpt.tokenizers import CharTokenizer

REPO_ROOT = Path(__file__).resolve().parent.parent

# A short text whose next character is always determined by the current one.
PATTERN_TEXT = "the quick brown fox.\n" * 12


def tiny_config(vocab_size: int, **overrides) -> GPTConfig:
    """A model small enough to train in well under a second."""
    settings = {"block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 16}
    settings.update(overrides)
    return GPTConfig(vocab_size=vocab_size, **settings)


def tiny_model(vocab_size: int, seed: int = 0, weight_std: float | None = None, **overrides) -> TinyGPT:
    """A TinyGPT on the current backend; ``weight_std`` redraws every weight (distinct logits)."""
    backend.manual_seed(seed)
    model = TinyGPT(tiny_config(vocab_size, **overrides))
    if weight_std is not None:
        rng = backend.Generator(seed + 1)
        for _, p in model.named_parameters():
            p.data = rng.normal(p.shape, weight_std)
    return model


def token_splits(text: str, tokenizer: CharTokenizer, val_fraction: float = 0.2):
    """(train_ids, val_ids) backend arrays for ``text``."""
    train, val = split_text(text, val_fraction)
    return token_array(tokenizer.encode(train)), token_array(tokenizer.encode(val))


def host(array) -> np.ndarray:
    return backend.to_numpy(array)


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for ``python -m tinygpt`` run from a temporary directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("TINYGPT_BACKEND", None)
    env.pop("TINYGPT_DEVICE", None)
    env["PYTHONWARNINGS"] = "ignore"
    for threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(threads, "1")  # tiny matmuls: BLAS threads only contend on a shared CPU
    env.update(extra)
    return env


PYTHON = sys.executable


@contextlib.contextmanager
def killed_after(proc: subprocess.Popen, seconds: float = 60) -> Iterator[subprocess.Popen]:
    """Read ``proc``'s pipes inside this: past ``seconds`` it is killed, so a line it never writes
    ends the read (a failed assertion) instead of blocking the suite; it is killed on the way out."""
    watchdog = threading.Timer(seconds, proc.kill)
    watchdog.start()
    try:
        yield proc
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait(timeout=30)
