"""tinygpt: a small, real GPT library written once against the Python Array API.

Runs on NumPy (CPU), CuPy (GPU, ``TINYGPT_BACKEND=cupy``) and array_api_strict.
"""

from tinygpt import backend, functional, optim
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

__version__ = "0.1.0"

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
    "no_grad",
    "optim",
    "split",
    "stack",
    "tensor",
]
