"""The same parts, another task: an image classifier on 8x8 handwritten digits.

Nothing here is special to vision except the data. The model is ``Dense`` ->
``ReLU`` -> ``Dense``, the very layers TinyGPT's MLP is made of; the loss is
``CrossEntropyLoss`` (the language model scores next characters with the same
``F.cross_entropy``); the optimizer is ``AdamW``; the loop is the generic
``Trainer`` that ``LanguageModelTrainer`` builds on. A language model is an
image classifier whose "images" are contexts and whose classes are characters.

The data is scikit-learn's bundled digits set (1,797 images of 8x8 pixels,
values 0..16, ships with scikit-learn, no download): ``pip install 'tinygpt[vision]'``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tinygpt import backend
from tinygpt.errors import ConfigError
from tinygpt.extras import require
from tinygpt.layers import GELU, Dense, Module, ReLU, Sequential
from tinygpt.losses import CrossEntropyLoss
from tinygpt.optim import AdamW
from tinygpt.tensor import Array, Tensor
from tinygpt.training.trainer import Trainer

IMAGE_PIXELS = 64  # 8 x 8
NUM_CLASSES = 10
ACTIVATIONS: dict[str, Callable[[], Module]] = {"relu": ReLU, "gelu": GELU}


@dataclass
class Digits:
    """Flattened images (N, 64) scaled to [0, 1] and integer labels (N,), on the current backend."""

    x_train: Array
    y_train: Array
    x_test: Array
    y_test: Array


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Digits:
    """scikit-learn's 8x8 digits, shuffled by ``seed`` and split into train and test."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    datasets = require("sklearn.datasets", "vision", "the vision demo (8x8 digits)")
    raw = datasets.load_digits()
    b = backend.current()
    xp = b.xp
    # Host NumPy -> backend, once; pixels 0..16 become 0..1 so the first layer starts in a sane range.
    x = backend.asarray(raw.data, dtype=b.float_dtype) / 16.0  # (N, 64)
    y = backend.asarray(raw.target, dtype=b.int_dtype)  # (N,)
    order = shuffled_indices(x.shape[0], backend.Generator(seed))
    n_test = round(x.shape[0] * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return Digits(
        x_train=xp.take(x, train, axis=0),
        y_train=xp.take(y, train, axis=0),
        x_test=xp.take(x, test, axis=0),
        y_test=xp.take(y, test, axis=0),
    )


def shuffled_indices(n: int, rng: backend.Generator) -> Array:
    """A random permutation of 0..n-1 on the current backend (argsort of uniform draws)."""
    return backend.current().xp.argsort(rng.uniform((n,)))


def digits_classifier(
    hidden: int = 128, activation: str = "relu", rng: backend.Generator | None = None
) -> Sequential:
    """An MLP for flattened 8x8 images: (N, 64) -> Dense -> activation -> Dense -> logits (N, 10)."""
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if hidden < 1:
        raise ConfigError(f"hidden must be a positive integer, got {hidden}")
    return Sequential(
        Dense(IMAGE_PIXELS, hidden, rng=rng),
        ACTIVATIONS[activation](),
        Dense(hidden, NUM_CLASSES, rng=rng),
    )


def minibatches(
    x: Array, y: Array, batch_size: int, rng: backend.Generator | None = None
) -> Iterator[tuple[Tensor, Array]]:
    """(images, labels) batches covering x and y once; shuffled when ``rng`` is given."""
    xp = backend.current().xp
    n = x.shape[0]
    order = shuffled_indices(n, rng) if rng is not None else None
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)  # the Array API leaves out-of-range slice ends undefined
        if order is None:
            yield Tensor(x[start:stop, ...]), y[start:stop]
        else:
            rows = order[start:stop]
            yield Tensor(xp.take(x, rows, axis=0)), xp.take(y, rows, axis=0)


def accuracy(model: Module, x: Array, y: Array) -> float:
    """Fraction of images whose highest logit is the true label."""
    xp = backend.current().xp
    with model.evaluating():
        predicted = xp.argmax(model(Tensor(x)).data, axis=-1)  # (N,)
    hits = xp.sum(xp.astype(predicted == y, backend.current().float_dtype))
    return Tensor(hits).item() / x.shape[0]


def train_digits(
    epochs: int = 20,
    seed: int = 0,
    batch_size: int = 32,
    lr: float = 3e-3,
    hidden: int = 128,
    activation: str = "relu",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train the digits classifier with the generic Trainer; returns accuracies, losses and seconds."""
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    start = time.perf_counter()
    data = load_digits(seed=seed)
    model = digits_classifier(hidden, activation, rng=backend.Generator(seed))
    shuffle = backend.Generator([seed, 1])  # a stream of its own: batches do not depend on init

    def report(record: dict[str, Any]) -> None:
        if log is not None and record["event"] == "epoch":
            log(
                f"epoch {record['epoch']:>3}/{epochs}: train loss {record['train_loss']:.4f}, "
                f"test loss {record['eval_loss']:.4f}"
            )

    trainer = Trainer(
        model,
        CrossEntropyLoss(),
        AdamW(model.parameters(), lr=lr, weight_decay=1e-4),
        callbacks=[report],
    )
    history = trainer.fit(
        lambda: minibatches(data.x_train, data.y_train, batch_size, shuffle),
        epochs=epochs,
        eval_batches=lambda: minibatches(data.x_test, data.y_test, 512),
    )
    result = {
        "test_accuracy": accuracy(model, data.x_test, data.y_test),
        "train_accuracy": accuracy(model, data.x_train, data.y_train),
        "final_train_loss": history[-1]["train_loss"],
        "final_test_loss": history[-1]["eval_loss"],
        "epochs": epochs,
        "steps": trainer.step,
        "parameters": model.num_parameters(),
        "train_images": data.x_train.shape[0],
        "test_images": data.x_test.shape[0],
        "backend": backend.current().name,
        "seconds": round(time.perf_counter() - start, 3),
    }
    if not math.isfinite(result["final_train_loss"]):
        raise ConfigError(f"training diverged (loss {result['final_train_loss']}); lower lr (got {lr})")
    return result
