"""tinygpt: a small, real GPT library written once against the Python Array API.

Runs on NumPy (CPU), CuPy (GPU, ``TINYGPT_BACKEND=cupy``) and array_api_strict.

The names below load on first use (PEP 562), so ``import tinygpt`` itself imports nothing
heavy: the command line (``tinygpt/__main__.py``) has its Ctrl-C handler in place before
NumPy and the rest load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "TinyGPTError": "tinygpt.errors",
    "TextGeneration": "tinygpt.generation",
    "generate": "tinygpt.generation",
    "Dense": "tinygpt.layers",
    "Dropout": "tinygpt.layers",
    "Embedding": "tinygpt.layers",
    "GELU": "tinygpt.layers",
    "KVCache": "tinygpt.layers",
    "LayerNorm": "tinygpt.layers",
    "Linear": "tinygpt.layers",
    "Module": "tinygpt.layers",
    "MultiHeadAttention": "tinygpt.layers",
    "Parameter": "tinygpt.layers",
    "PositionalEncoding": "tinygpt.layers",
    "ReLU": "tinygpt.layers",
    "SelfAttention": "tinygpt.layers",
    "Sequential": "tinygpt.layers",
    "Sigmoid": "tinygpt.layers",
    "Softmax": "tinygpt.layers",
    "Tanh": "tinygpt.layers",
    "TransformerBlock": "tinygpt.layers",
    "CrossEntropyLoss": "tinygpt.losses",
    "LanguageModelLoss": "tinygpt.losses",
    "MSELoss": "tinygpt.losses",
    "GPTConfig": "tinygpt.models",
    "TinyGPT": "tinygpt.models",
    "load_checkpoint": "tinygpt.checkpoint",
    "load_model": "tinygpt.checkpoint",
    "save_checkpoint": "tinygpt.checkpoint",
    "save_gpt2": "tinygpt.checkpoint",
    "Tensor": "tinygpt.tensor",
    "concat": "tinygpt.tensor",
    "no_grad": "tinygpt.tensor",
    "split": "tinygpt.tensor",
    "stack": "tinygpt.tensor",
    "tensor": "tinygpt.tensor",
    "BPETokenizer": "tinygpt.tokenizers",
    "CharTokenizer": "tinygpt.tokenizers",
    "LanguageModelTrainer": "tinygpt.training",
    "TrainConfig": "tinygpt.training",
    "Trainer": "tinygpt.training",
}
_SUBMODULES = ("backend", "functional", "optim")

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from tinygpt import backend, functional, optim
    from tinygpt.checkpoint import load_checkpoint, load_model, save_checkpoint, save_gpt2
    from tinygpt.errors import TinyGPTError
    from tinygpt.generation import TextGeneration, generate
    from tinygpt.layers import (
        GELU,
        Dense,
        Dropout,
        Embedding,
        KVCache,
        LayerNorm,
        Linear,
        Module,
        MultiHeadAttention,
        Parameter,
        PositionalEncoding,
        ReLU,
        SelfAttention,
        Sequential,
        Sigmoid,
        Softmax,
        Tanh,
        TransformerBlock,
    )
    from tinygpt.losses import CrossEntropyLoss, LanguageModelLoss, MSELoss
    from tinygpt.models import GPTConfig, TinyGPT
    from tinygpt.tensor import Tensor, concat, no_grad, split, stack, tensor
    from tinygpt.tokenizers import BPETokenizer, CharTokenizer
    from tinygpt.training import LanguageModelTrainer, TrainConfig, Trainer


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f"tinygpt.{name}")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'tinygpt' has no attribute {name!r}")
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "GELU",
    "BPETokenizer",
    "CharTokenizer",
    "CrossEntropyLoss",
    "Dense",
    "Dropout",
    "Embedding",
    "GPTConfig",
    "KVCache",
    "LanguageModelLoss",
    "LanguageModelTrainer",
    "LayerNorm",
    "Linear",
    "MSELoss",
    "Module",
    "MultiHeadAttention",
    "Parameter",
    "PositionalEncoding",
    "ReLU",
    "SelfAttention",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Tensor",
    "TextGeneration",
    "TinyGPT",
    "TinyGPTError",
    "TrainConfig",
    "Trainer",
    "TransformerBlock",
    "backend",
    "concat",
    "functional",
    "generate",
    "load_checkpoint",
    "load_model",
    "no_grad",
    "optim",
    "save_checkpoint",
    "save_gpt2",
    "split",
    "stack",
    "tensor",
]
