"""Models assembled from tinygpt layers."""

from tinygpt.models.gpt import GPTConfig, TinyGPT

__all__ = ["GPTConfig", "TinyGPT"]
