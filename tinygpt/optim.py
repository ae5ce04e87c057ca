"""Optimizers, gradient clipping and learning-rate schedules.

Optimizers update parameters under ``no_grad``: in place where the backend's
arrays are writable, and always by assigning the result back (``p.data -= step``,
``state["m"] = m``), so the same code is correct on immutable JAX arrays. Parameters can be
given as a list or as groups (dicts with ``params`` and per-group settings),
so that, for example, biases and norms skip weight decay.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from tinygpt import backend
from tinygpt.errors import ConfigError
from tinygpt.layers.module import Parameter
from tinygpt.tensor import Array, Tensor, no_grad, op

# Every optimizer and clipping setting with its allowed range, checked in one place: at construction
# (the defaults and each group's overrides), by set_lr and by clip_scale, so one NaN cannot poison
# every weight.
_SETTINGS: dict[str, tuple[Callable[[float], bool], str, str]] = {
    "lr": (lambda x: x >= 0, ">= 0", "a typical learning rate is 1e-3 for Adam/AdamW, 0.01-0.1 for SGD"),
    "momentum": (lambda x: 0 <= x < 1, "in [0, 1)", "0.9 is usual; 0 turns momentum off"),
    "weight_decay": (lambda x: x >= 0, ">= 0", "0.01-0.1 is usual; 0 turns it off"),
    "eps": (lambda x: x > 0, "> 0", "1e-8 is usual: it keeps the division away from zero"),
    "beta": (lambda x: 0 <= x < 1, "in [0, 1)", "(0.9, 0.999) is usual"),
    "max_norm": (lambda x: x > 0, "> 0", "1.0 is usual (to not clip, do not call it)"),
}


def check_optimizer_settings(owner: str, settings: dict[str, Any]) -> None:
    """Raise ConfigError unless every known setting is a finite number in its range (betas: a pair)."""
    for key, value in settings.items():
        if key == "betas":
            pair = isinstance(value, tuple | list) and len(value) == 2
            if not (pair and all(_in_range(beta, "beta") for beta in value)):
                raise ConfigError(
                    f"{owner}: betas must be a pair of finite numbers in [0, 1), got {value!r}; "
                    f"{_SETTINGS['beta'][2]}"
                )
        elif key in _SETTINGS and not _in_range(value, key):
            _, allowed, hint = _SETTINGS[key]
            raise ConfigError(f"{owner}: {key} must be a finite number {allowed}, got {value!r}; {hint}")


def _in_range(value: Any, rule: str) -> bool:
    try:
        number = math.nan if isinstance(value, bool | str) else float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and _SETTINGS[rule][0](number)


def _groups(owner: str, params: Iterable[Any], defaults: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(params, Tensor) or hasattr(params, "parameters"):
        raise ConfigError(
            f"{owner} takes a list of parameters, got {type(params).__name__}: pass model.parameters()"
        )
    items = list(params)
    if not items:
        raise ConfigError(f"{owner} got an empty parameter list: pass model.parameters()")
    groups = items if isinstance(items[0], dict) else [{"params": items}]
    out = []
    for group in groups:
        if not isinstance(group, dict) or "params" not in group:
            raise ConfigError(
                f"{owner}: a parameter group must be a dict with 'params' (and settings), got {group!r:.80}"
            )
        unknown = sorted(set(group) - set(defaults) - {"params"})
        if unknown:
            raise ConfigError(
                f"{owner}: unknown setting {unknown[0]!r} in a parameter group; known: {sorted(defaults)}"
            )
        merged = {**defaults, **group, "params": list(group["params"])}
        for p in merged["params"]:
            if not isinstance(p, Tensor):
                raise ConfigError(
                    f"{owner} optimizes tinygpt Parameters (Tensors), got {type(p).__name__}: "
                    "pass model.parameters(), or wrap an array as tinygpt.Parameter(array)"
                )
        check_optimizer_settings(owner, {k: v for k, v in group.items() if k != "params"})
        out.append(merged)
    return out


class Optimizer:
    """Base class: holds parameter groups and per-parameter state."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        check_optimizer_settings(type(self).__name__, defaults)
        self.param_groups = _groups(type(self).__name__, params, defaults)
        self.state: dict[int, dict[str, Any]] = {}
        self.step_count = 0

    @property
    def parameters(self) -> list[Parameter]:
        return [p for g in self.param_groups for p in g["params"]]

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every group (schedules call this each step)."""
        check_optimizer_settings(type(self).__name__, {"lr": lr})
        for group in self.param_groups:
            group["lr"] = lr

    def zero_grad(self) -> None:
        for p in self.parameters:
            p.zero_grad()

    @op("optimizer_step")
    def step(self, grad_scale: float = 1.0) -> None:
        """Update every parameter that has a gradient.

        ``grad_scale`` multiplies the gradients on the fly: gradient clipping
        folded into the update (see ``clip_scale``) costs no extra pass.
        """
        self.step_count += 1
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad_data is not None:
                        self._update(p, p.grad_data, group, self.state.setdefault(id(p), {}), grad_scale)

    def _update(
        self, p: Parameter, g: Array, group: dict[str, Any], state: dict[str, Any], grad_scale: float
    ) -> None:
        raise TypeError(f"{type(self).__name__} must define _update()")

    # Checkpoint support: state keyed by parameter position, arrays on the host.
    def state_dict(self) -> dict[str, Any]:
        arrays: dict[str, Any] = {}
        for i, p in enumerate(self.parameters):
            for key, value in self.state.get(id(p), {}).items():
                arrays[f"{i}.{key}"] = backend.to_numpy(value)
        return {"step_count": self.step_count, "arrays": arrays}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` output; names, indices and shapes are checked (ConfigError)."""
        params = self.parameters
        loaded: dict[int, dict[str, Any]] = {}
        for name, value in state["arrays"].items():
            index, _, key = name.partition(".")
            if not index.isdigit() or not key or int(index) >= len(params):
                raise ConfigError(f"optimizer state {name!r} names no parameter of this model")
            p = params[int(index)]
            if tuple(value.shape) != p.shape:
                raise ConfigError(f"optimizer state {name} has shape {value.shape}, parameter has {p.shape}")
            loaded.setdefault(id(p), {})[key] = backend.asarray(value, dtype=p.dtype)
        self.step_count = int(state["step_count"])
        self.state = loaded


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and (L2) weight decay."""

    def __init__(
        self, params: Iterable[Any], lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def _update(
        self, p: Parameter, g: Array, group: dict[str, Any], state: dict[str, Any], grad_scale: float
    ) -> None:
        if grad_scale != 1.0:
            g = g * grad_scale
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.data
        if group["momentum"]:
            buf = state.get("momentum")
            state["momentum"] = buf = g if buf is None else group["momentum"] * buf + g
            g = buf
        p.data -= group["lr"] * g


class Adam(Optimizer):
    """Adam: per-parameter step sizes from running averages of g and g^2.

    ``decoupled=True`` is AdamW: weight decay shrinks the weights directly
    (p *= 1 - lr * wd) instead of being added to the gradient, so it is not
    rescaled by the adaptive step size. ``weight_decay`` defaults to the class's
    ``default_weight_decay``: 0 for Adam, 0.01 for AdamW.
    """

    decoupled = False
    default_weight_decay = 0.0

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float | None = None,
    ) -> None:
        wd = self.default_weight_decay if weight_decay is None else weight_decay
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": wd})

    def _update(
        self, p: Parameter, g: Array, group: dict[str, Any], state: dict[str, Any], grad_scale: float
    ) -> None:
        xp = backend.current().xp
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if grad_scale != 1.0 and wd and not self.decoupled:
            g, grad_scale = g * grad_scale, 1.0
        if wd and not self.decoupled:
            g = g + wd * p.data
        if "m" not in state:
            state["m"] = xp.zeros_like(p.data)
            state["v"] = xp.zeros_like(p.data)
        # In place where arrays are writable; on JAX each update is a new array, hence the write-back.
        m, v = state["m"], state["v"]
        m *= beta1
        m += ((1.0 - beta1) * grad_scale) * g
        g2 = g * g
        g2 *= (1.0 - beta2) * grad_scale * grad_scale
        v *= beta2
        v += g2
        state["m"], state["v"] = m, v
        t = self.step_count
        bias1 = 1.0 - beta1**t
        bias2 = 1.0 - beta2**t
        if wd and self.decoupled:
            p.data *= 1.0 - lr * wd
        denom = xp.sqrt(v)
        denom *= 1.0 / math.sqrt(bias2)
        denom += group["eps"]
        step = m / denom
        step *= lr / bias1
        p.data -= step


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter); PyTorch's default decay 0.01."""

    decoupled = True
    default_weight_decay = 0.01


@op("grad_norm")
def grad_norm(params: Iterable[Parameter]) -> float:
    """The global L2 norm of all gradients (as one long vector)."""
    xp = backend.current().xp
    squares = [
        xp.vecdot(xp.reshape(p.grad_data, (-1,)), xp.reshape(p.grad_data, (-1,)))
        for p in params
        if p.grad_data is not None
    ]
    if not squares:
        return 0.0
    total = float(xp.sum(xp.stack(squares)))  # one device-to-host sync, not one per parameter
    return math.sqrt(total)


@op("clip_grad_norm")
def clip_scale(params: Iterable[Parameter], max_norm: float) -> tuple[float, float]:
    """(global gradient norm, factor that brings it to at most ``max_norm``) without touching grads.

    Pass the factor to ``optimizer.step(grad_scale=...)``: clipping then costs
    no pass of its own over the gradients. A non-finite norm gives factor 1.
    """
    check_optimizer_settings("gradient clipping", {"max_norm": max_norm})  # max_norm < 0 flips every sign
    norm = grad_norm(params)
    if math.isfinite(norm) and norm > max_norm:
        return norm, max_norm / (norm + 1e-6)
    return norm, 1.0


@op("clip_grad_norm")
def clip_grad_norm(params: Iterable[Parameter], max_norm: float) -> float:
    """Scale all gradients so their global norm is at most ``max_norm``; returns the norm before.

    A non-finite norm is returned as is and nothing is scaled, so the caller
    can detect it (the trainer stops or skips the step).
    """
    params = list(params)
    norm, scale = clip_scale(params, max_norm)
    if scale != 1.0:
        for p in params:
            if p.grad_data is not None:
                p.grad_data = p.grad_data * scale
    return norm


def warmup_cosine_lr(lr: float, min_lr: float, warmup_iters: int, max_iters: int) -> Callable[[int], float]:
    """Linear warm-up to ``lr`` over ``warmup_iters``, then cosine decay to ``min_lr`` at ``max_iters``.

    Warm-up avoids huge early steps while Adam's second-moment estimates are
    still noisy; the cosine tail lets the model settle into a minimum.
    """
    if min_lr > lr:
        raise ConfigError(f"min_lr ({min_lr}) must not exceed lr ({lr})")

    def schedule(it: int) -> float:
        if it < warmup_iters:
            return lr * (it + 1) / (warmup_iters + 1)
        if it > max_iters:
            return min_lr
        span = max(1, max_iters - warmup_iters)
        ratio = (it - warmup_iters) / span
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)

    return schedule
