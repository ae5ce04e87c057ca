"""Checkpoints in one home: the tinygpt format, a run's pointers, Hugging Face GPT-2, one loader.

    directory.py     the tinygpt checkpoint directory: written atomically, every file checked when read
    pointers.py      a run's latest.json / best.json (written and read), and what a typed path resolves to
    huggingface.py   GPT-2's config and weight names, in (read) and out (``save_gpt2``, ``tinygpt export``)
    weight_files.py  safetensors files read without trusting them, one tensor at a time
    loading.py       ``load_checkpoint`` (model, tokenizer, training state) and ``load_model`` (weights)

It sits above the models (it builds a ``TinyGPT`` and knows tokenizers) and below
training, which decides when to write a checkpoint into its run directory. The checks
on files themselves (regular files, links, sizes) are ``tinygpt.files``'s, shared with
the tokenizers and the datasets.
"""

from tinygpt.checkpoint.directory import FORMAT, VERSION, read_config, save_checkpoint
from tinygpt.checkpoint.huggingface import save_gpt2
from tinygpt.checkpoint.loading import Checkpoint, Unfilled, load_checkpoint, load_model
from tinygpt.checkpoint.pointers import POINTERS, read_pointer, resolve_checkpoint, write_pointer

__all__ = [
    "FORMAT",
    "POINTERS",
    "VERSION",
    "Checkpoint",
    "Unfilled",
    "load_checkpoint",
    "load_model",
    "read_config",
    "read_pointer",
    "resolve_checkpoint",
    "save_checkpoint",
    "save_gpt2",
    "write_pointer",
]
