"""``Module`` and ``Parameter``: the containers every layer and model is built from.

A Module finds its parameters by looking at its attributes: Parameters,
sub-Modules, and lists of Modules (``blocks.0.attn.qkv.weight``). State dicts
hold host NumPy arrays so they can be saved from any backend and loaded on any.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tinygpt import backend
from tinygpt.errors import CheckpointError
from tinygpt.tensor import Tensor, no_grad


class Parameter(Tensor):
    """A Tensor that is learned: requires grad, and is listed by ``Module.parameters()``."""

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = None) -> None:
        super().__init__(data, requires_grad=True, dtype=dtype)


class Module:
    """Base class of layers: call it like a function; it calls ``forward``."""

    training: bool = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # Traversal ----------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, list | tuple):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item

    def modules(self) -> Iterator[Module]:
        """This module and every module below it."""
        yield self
        for _, child in self.named_children():
            yield from child.modules()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs; a shared (tied) parameter is listed once."""
        seen: set[int] = set()
        for name, param in self._all_parameters(prefix):
            if id(param) not in seen:
                seen.add(id(param))
                yield name, param

    def _all_parameters(self, prefix: str) -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.named_children():
            yield from child._all_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    # Modes --------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active) for this module and all below it."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout off)."""
        return self.train(False)

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """For the block: dropout off and no graph (evaluation, sampling); the mode it had comes back after."""
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                yield
        finally:
            self.train(was_training)

    # State --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Parameter name -> host NumPy copy."""
        return {name: backend.to_numpy(p.data) for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any], source: str = "state dict") -> None:
        """Copy arrays (NumPy or any backend) into the parameters, checking names and shapes."""
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise CheckpointError(
                f"{source} does not match {type(self).__name__}: "
                f"missing {missing[:5] or 'none'}, unexpected {unexpected[:5] or 'none'}"
            )
        for name, p in params.items():
            value = state[name]
            if tuple(value.shape) != p.shape:
                raise CheckpointError(
                    f"{source}: {name} has shape {tuple(value.shape)}, the model expects {p.shape} "
                    "(was it saved from a model of another size?)"
                )
        for name, p in params.items():
            p.data = backend.asarray(backend.to_numpy(state[name]), dtype=p.dtype)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for name, child in self.named_children():
            lines.append("  " + f"({name}): {child!r}".replace("\n", "\n  "))
        return "\n".join(lines) + ")" if len(lines) > 1 else f"{type(self).__name__}()"
