"""The exercises in teaching order: the one list every command reads.

Adding an exercise needs no edit here when its name is already listed: each
name is a package ``tinygpt/course/exercises/NAME/`` that defines ``EXERCISE``.
A listed name whose package does not exist yet is skipped (it is being written);
``tests/course/test_registry.py`` fails on a package that is not listed.
"""

from __future__ import annotations

import difflib
import importlib

from tinygpt.course.errors import CourseError
from tinygpt.course.exercise import Exercise

ORDER = (
    "char_tokenizer",  # text to ids with the Array API: xp, dtype=, device=
    "positional_encoding",  # sinusoidal positions
    "self_attention",  # the causal mask and one head
    "multi_head_attention",  # heads as an axis, forward and backward
    "layer_norm",  # forward and backward by hand
    "transformer_block",  # pre-LN, residuals, the vision Dense layers reused
    "gpt_model",  # the TinyGPT forward pass (an exercise may not be named like a module it imports: tinygpt)
    "lm_loss",  # the shift, cross-entropy and its gradient
    "train_step",  # AdamW, weight decay, clipping
    "generation",  # temperature, top-k; the KV cache as a stretch
)

_loaded: dict[str, Exercise | None] = {}


def _load(name: str) -> Exercise | None:
    if name not in _loaded:
        package = f"tinygpt.course.exercises.{name}"
        try:
            module = importlib.import_module(package)
        except ModuleNotFoundError as exc:
            if exc.name != package:
                raise
            _loaded[name] = None
        else:
            exercise = module.EXERCISE
            if exercise.name != name:
                raise RuntimeError(f"{package} defines EXERCISE named {exercise.name!r}; name it {name!r}")
            _loaded[name] = exercise
    return _loaded[name]


def exercises() -> list[Exercise]:
    """Every exercise that exists, in teaching order."""
    return [e for e in (_load(name) for name in ORDER) if e is not None]


def names() -> list[str]:
    return [e.name for e in exercises()]


def get(name: str) -> Exercise:
    """The exercise called ``name``; an unknown name is a ``CourseError`` listing the others."""
    exercise = _load(name) if name in ORDER else None
    if exercise is None:
        known = names()
        close = difflib.get_close_matches(name, known, n=1)
        maybe = f" (did you mean {close[0]!r}?)" if close else ""
        raise CourseError(f"unknown exercise {name!r}{maybe}; the exercises are: {', '.join(known)}")
    return exercise
