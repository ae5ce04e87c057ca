"""Layers: the building blocks of models, written once against the Array API."""

from tinygpt.layers.attention import KVCache, MultiHeadAttention, SelfAttention
from tinygpt.layers.dense import (
    GELU,
    Dense,
    Dropout,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from tinygpt.layers.embedding import Embedding, PositionalEncoding, sinusoidal_table
from tinygpt.layers.module import Module, Parameter
from tinygpt.layers.norm import LayerNorm
from tinygpt.layers.transformer import MLP, TransformerBlock

__all__ = [
    "GELU",
    "MLP",
    "Dense",
    "Dropout",
    "Embedding",
    "KVCache",
    "LayerNorm",
    "Linear",
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
    "TransformerBlock",
    "sinusoidal_table",
]
