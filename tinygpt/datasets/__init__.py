"""Prepared datasets: a corpus tokenized once, its tokens memory-mapped at training time.

``prepare_dataset`` (``tinygpt prepare``) reads a text of any size in chunks, learns
the tokenizer, and writes a self-describing directory (``manifest.py`` says what is
in it); ``open_dataset`` reads it back, trusting nothing, with each split as a
``TokenFile`` that ``data.sample_windows`` reads batches from. Memory stays flat
however large the corpus (nanoGPT's ``train.bin`` idea, behind one command).
"""

from tinygpt.datasets.dataset import PreparedDataset, open_dataset
from tinygpt.datasets.manifest import Manifest, Split, is_dataset
from tinygpt.datasets.prepare import prepare_dataset

__all__ = ["Manifest", "PreparedDataset", "Split", "is_dataset", "open_dataset", "prepare_dataset"]
