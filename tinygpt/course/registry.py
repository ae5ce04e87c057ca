"""The exercises in teaching order: the one list every command reads.

Each name in ``ORDER`` is a package ``tinygpt/course/exercises/NAME/`` that
defines ``EXERCISE``; ``tests/course/test_exercises.py`` fails on a listed name
without a package and on a package that is not listed.
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

_loaded: dict[str, Exercise] = {}


def _load(name: str) -> Exercise:
    if name not in _loaded:
        package = f"tinygpt.course.exercises.{name}"
        exercise = importlib.import_module(package).EXERCISE
        if exercise.name != name:
            raise RuntimeError(f"{package} defines EXERCISE named {exercise.name!r}; name it {name!r}")
        _loaded[name] = exercise
    return _loaded[name]


def exercises() -> list[Exercise]:
    """Every exercise, in teaching order."""
    return [_load(name) for name in ORDER]


def get(name: str) -> Exercise:
    """The exercise called ``name``; an unknown name is a ``CourseError`` listing the others."""
    if name not in ORDER:
        close = difflib.get_close_matches(name, ORDER, n=1)
        maybe = f" (did you mean {close[0]!r}?)" if close else ""
        raise CourseError(f"unknown exercise {name!r}{maybe}; the exercises are: {', '.join(ORDER)}")
    return _load(name)
