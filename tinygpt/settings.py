"""Settings declared once: each config field carries its default, its allowed values and its help.

``GPTConfig`` and ``TrainConfig`` are dataclasses whose fields are made with
``setting(...)``. The same declaration checks values in Python
(``check_settings``), reads ``config.json`` strictly (``from_dict``), and
becomes a command-line flag with that default, range and help
(``tinygpt.cli.args.add_settings``): a default lives in one place.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from tinygpt.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Rule:
    """The values a setting accepts: a Python type, a check, and the words for both."""

    kind: type
    accepts: Callable[[Any], bool]
    text: str  # "an integer >= 1": completes "must be ..."
    choices: tuple[str, ...] | None = None

    def coerce(self, value: Any) -> Any:
        """``value`` as ``kind`` (NumPy integers and whole floats become int), or raise ValueError."""
        if isinstance(value, bool):
            raise ValueError("a boolean is not a number")
        if self.kind is int:
            return operator.index(value) if not isinstance(value, float) else _whole(value)
        if self.kind is float:
            if isinstance(value, str):
                raise ValueError("text is not a number")
            return float(value)
        if not isinstance(value, self.kind):
            raise ValueError(f"expected {self.kind.__name__}")
        return value

    def parse(self, text: str) -> Any:
        """A command-line string as an accepted value, or ValueError naming the rule."""
        value = self.kind(text)
        if not self.accepts(value):
            raise ValueError(text)
        return value


def _whole(value: float) -> int:
    if not value.is_integer():
        raise ValueError("not a whole number")
    return int(value)


POSITIVE_INT = Rule(int, lambda v: v >= 1, "an integer >= 1")
NONNEGATIVE_INT = Rule(int, lambda v: v >= 0, "an integer >= 0")
POSITIVE_FLOAT = Rule(float, lambda v: 0 < v < math.inf, "a number > 0")
NONNEGATIVE_FLOAT = Rule(float, lambda v: 0 <= v < math.inf, "a number >= 0")
PROBABILITY = Rule(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
OPEN_FRACTION = Rule(float, lambda v: 0 < v < 1, "a number in (0, 1)")
TOP_P = Rule(float, lambda v: 0 < v <= 1, "a number in (0, 1]")


def one_of(*choices: str) -> Rule:
    """A rule accepting exactly these strings."""
    return Rule(str, lambda v: v in choices, f"one of {', '.join(map(repr, choices))}", choices)


def setting(default: Any, rule: Rule, help: str, flag: str | None = None) -> Any:
    """A dataclass field with its allowed values and help text (``flag`` if not --field-name)."""
    meta = {"rule": rule, "help": help, "flag": flag}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_of(field: dataclasses.Field[Any]) -> str:
    """The command-line flag of a setting: ``n_layer`` -> ``--n-layer``."""
    return "--" + (field.metadata.get("flag") or field.name.replace("_", "-"))


def check_settings(config: Any) -> None:
    """Coerce and check every ``setting`` field of a dataclass instance, raising ConfigError."""
    for field in dataclasses.fields(config):
        rule: Rule | None = field.metadata.get("rule")
        if rule is None:
            continue
        value = getattr(config, field.name)
        try:
            value = rule.coerce(value)
            ok = rule.accepts(value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"{field.name} ({flag_of(field)}) must be {rule.text}, got {value!r}")
        object.__setattr__(config, field.name, value)


def from_dict(cls: type[T], data: Any, source: str = "config") -> T:
    """Build dataclass ``cls`` from a JSON object, refusing unknown and missing keys by name."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown keys {unknown}; known: {sorted(names)}")
    required = {
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    missing = sorted(required - set(data))
    if missing:
        raise ConfigError(f"{source}: missing keys {missing}")
    try:
        return cls(**data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
