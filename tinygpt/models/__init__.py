"""Models assembled from tinygpt layers."""

from tinygpt.models.config import GPTConfig
from tinygpt.models.gpt import TinyGPT

__all__ = ["GPTConfig", "TinyGPT"]
