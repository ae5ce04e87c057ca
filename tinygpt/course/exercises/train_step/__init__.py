"""Exercise: one training step, with global-norm gradient clipping and AdamW (decoupled weight decay).

The references are ``tinygpt.optim``: ``clip_grad_norm`` (and ``clip_scale``'s
``max_norm / (norm + 1e-6)``) and ``AdamW`` on parameter groups from
``TinyGPT.decay_groups`` (decay only for ``ndim >= 2``). Known mistakes are
recognised by computing what each would produce (``_adamw``'s variants, a
training run per train_step mistake) and matching the student's result to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tinygpt import backend
from tinygpt.course import checks as C
from tinygpt.course.errors import CheckFailed
from tinygpt.course.exercise import Exercise
from tinygpt.course.milestone import Milestone, StepFn, train_and_compare
from tinygpt.course.student import Student
from tinygpt.layers import Parameter
from tinygpt.losses import LanguageModelLoss
from tinygpt.models import GPTConfig, TinyGPT
from tinygpt.optim import AdamW, clip_grad_norm, clip_scale

EXERCISE = Exercise(
    name="train_step",
    title="One training step: gradient clipping and AdamW",
    teaches="global-norm clipping; Adam's moments and bias correction; decoupled weight decay; updates "
    "that return new arrays",
    minutes=45,
)

Array = Any


@dataclass(frozen=True)
class StepSettings:
    """The ``settings`` the student's ``train_step`` receives."""

    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float = 1.0


# Hints, in the student's terms --------------------------------------------------------------------
IN_PLACE = (
    "return new arrays (p = p - ...) instead of changing an input in place (p -= ..., p *= ...): the Array "
    "API does not promise in-place updates, JAX's arrays cannot be changed at all, and on NumPy the "
    "caller's array changes behind its back"
)
PER_TENSOR = (
    "clip globally: one norm over every tensor together (the square root of the sum of all their squares) "
    "and one scale for all; clipping each tensor on its own changes the gradient's direction"
)
CLIP_ALWAYS = "clip only when total_norm > max_norm; otherwise return the gradients unchanged"
CLIP_FORMULA = "scale = max_norm / (total_norm + 1e-6), exactly as tinygpt.optim.clip_scale"
NO_SQRT = "the norm is the square root of the sum of squares: math.sqrt(...)"
SUM_OF_NORMS = (
    "one norm over all elements: sqrt(sum over tensors of sum(g * g)), not the sum of the tensors' norms"
)
NORM_AFTER = "return the norm before clipping (the caller logs it and spots a broken batch with it)"
NOT_FINITE = (
    "when total_norm is inf or nan, return the gradients unchanged (math.isfinite): a scale of 0 or nan "
    "would wipe out every weight"
)
NO_BIAS = (
    "divide by the bias corrections: m_hat = m / (1 - beta1**step), v_hat = v / (1 - beta2**step); "
    "then the first step moves each weight by about lr"
)
M_ONLY = "correct v too: v_hat = v / (1 - beta2**step)"
V_ONLY = "correct m too: m_hat = m / (1 - beta1**step)"
EPS_INSIDE = "eps is added after the square root: sqrt(v_hat) + eps, not sqrt(v_hat + eps)"
SWAPPED = "beta1 (0.9 by default) averages the gradient into m, beta2 (0.999) its square into v"
L2 = (
    "decoupled weight decay: shrink the weight itself, param * (1 - lr * weight_decay), instead of adding "
    "weight_decay * param to the gradient (that is L2, which Adam's division by sqrt(v) undoes)"
)
NO_DECAY = "apply the weight decay, param * (1 - lr * weight_decay): even a zero gradient shrinks the weights"
DECAY_NO_LR = "the decay is scaled by the learning rate: param * (1 - lr * weight_decay)"
DECAY_AFTER = (
    "decay the weight as it was before this step: param * (1 - lr * weight_decay) - lr * m_hat / "
    "(sqrt(v_hat) + eps)"
)
IGNORES_MOMENTS = (
    "start from the m and v you are given (the previous step's): m = beta1 * m + (1 - beta1) * grad"
)
V_NOT_SQUARED = "v averages the squared gradient: v = beta2 * v + (1 - beta2) * grad * grad"
STEP_ZERO = (
    "the step count starts at 1: the first update has step = 1 (1 - beta**0 = 0 divides by zero), "
    "the next 2, ..."
)
USE_EPS = "use the eps argument, not a fixed number"
USE_BETAS = "use the betas argument, not fixed numbers"
DECAY_ALL = (
    "weight decay only for matrices (p.ndim >= 2): biases and LayerNorm's weight and bias get none "
    "(TinyGPT.decay_groups)"
)
DECAY_NONE = "pass settings.weight_decay for the matrices (p.ndim >= 2)"
NO_CLIP = "clip the gradients with your clip_grad_norm(grads, settings.grad_clip) before the updates"
NO_ZERO_GRAD = "clear the gradients first (model.zero_grad()): backward adds to the previous step's gradients"
FRESH_STATE = "keep every parameter's m and v in state and hand them to the next step's adamw_update"
STEP_STUCK = "count the steps in state: the step number grows by one per call (1, 2, 3, ...)"


# Inputs and references --------------------------------------------------------------------------
def _copy(x: Array) -> Array:
    """A copy of ``x`` on the backend that nothing else shares (the library updates in place)."""
    return backend.asarray(C.host(x).copy(), dtype=x.dtype)


def _spread(shape: Sequence[int], seed: int, low: float = -3.0, high: float = 0.0) -> Array:
    """Normal values whose scales spread over orders of magnitude (10**low to 10**high)."""
    return C.random_array(shape, seed) * (
        10.0 ** backend.Generator(seed + 100).uniform(tuple(shape), low, high)
    )


def _library_clip(grads: Sequence[Array], max_norm: float) -> tuple[list[Array], float]:
    params = []
    for g in grads:
        p = Parameter(backend.current().xp.zeros_like(g))
        p.grad_data = _copy(g)
        params.append(p)
    norm = clip_grad_norm(params, max_norm)
    return [p.grad_data for p in params], norm


def _clip_mistakes(grads: Sequence[Array], max_norm: float) -> dict[str, list[Array]]:
    """What each known clipping mistake returns as the gradients."""
    xp = backend.current().xp
    norms = [math.sqrt(float(xp.sum(g * g))) for g in grads]
    total = math.sqrt(sum(n * n for n in norms))
    return {
        PER_TENSOR: [
            g * (max_norm / (n + 1e-6)) if n > max_norm else g for g, n in zip(grads, norms, strict=True)
        ],
        CLIP_ALWAYS: [g * (max_norm / (total + 1e-6)) for g in grads],
        CLIP_FORMULA: [g * (max_norm / total) if total > max_norm else g for g in grads],
        SUM_OF_NORMS: [g * (max_norm / (sum(norms) + 1e-6)) if sum(norms) > max_norm else g for g in grads],
        NO_SQRT: [g * (max_norm / (total**2 + 1e-6)) if total**2 > max_norm else g for g in grads],
        "the scale is max_norm / total_norm, below 1: the gradients get shorter": [
            g * ((total + 1e-6) / max_norm) if total > max_norm else g for g in grads
        ],
    }


def _clip(student: Student, grads: Sequence[Array], max_norm: float) -> tuple[list[Any], float]:
    """The student's (clipped grads, total norm), its form checked; the inputs must come back unchanged."""
    before = [C.host(g).copy() for g in grads]
    clipped, norm = C.expect_tuple(
        student.call("clip_grad_norm", list(grads), max_norm),
        2,
        "clip_grad_norm",
        "a pair (clipped grads, total_norm)",
        "return [g * scale for g in grads], total_norm",
    )
    clipped = C.expect_tuple(
        clipped,
        len(grads),
        "clip_grad_norm",
        f"its clipped grads as a list of {len(grads)} arrays, one per gradient",
    )
    _unchanged("clip_grad_norm", "grads", before, grads)
    value = C.number(
        norm, "total_norm, the second value clip_grad_norm returns", "return the norm as float(...)"
    )
    return list(clipped), value


def _unchanged(function: str, name: str, before: Sequence[Any], after: Sequence[Array]) -> None:
    """Each input array still holds what it held before the call (``before``: host copies)."""
    for i, (old, new) in enumerate(zip(before, after, strict=True)):
        label = f"{name}[{i}]" if name == "grads" else name
        C.compare(
            new,
            C.to_backend(old, new),
            f"{function} changed its input {label} in place ({label} after the call)",
            rtol=0,
            atol=0,
            hint=IN_PLACE,
        )


def _adamw(
    p: Array,
    g: Array,
    m: Array,
    v: Array,
    step: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    wd: float,
    mistake: str = "",
) -> tuple[Array, Array, Array]:
    """The AdamW update, or the update with one known ``mistake`` (the result that mistake gives)."""
    xp = backend.current().xp
    beta1, beta2 = (betas[1], betas[0]) if mistake == "swapped" else betas
    if mistake == "fresh":
        m, v = xp.zeros_like(p), xp.zeros_like(p)
    if mistake == "l2":
        g = g + wd * p
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * (xp.abs(g) if mistake == "v_abs" else g * g)
    m_hat = m if mistake in ("no_bias", "v_only") else m / (1.0 - beta1**step)
    v_hat = v if mistake in ("no_bias", "m_only") else v / (1.0 - beta2**step)
    denom = xp.sqrt(v_hat + eps) if mistake == "eps_inside" else xp.sqrt(v_hat) + eps
    update = lr * m_hat / denom
    keep = 1.0 if mistake in ("l2", "no_decay") else 1.0 - wd if mistake == "decay_no_lr" else 1.0 - lr * wd
    if mistake == "decay_after":
        return (p - update) * keep, m, v
    return p * keep - update, m, v


ADAM_MISTAKES = {
    "l2": L2,
    "no_bias": NO_BIAS,
    "m_only": M_ONLY,
    "v_only": V_ONLY,
    "eps_inside": EPS_INSIDE,
    "swapped": SWAPPED,
    "fresh": IGNORES_MOMENTS,
    "no_decay": NO_DECAY,
    "decay_no_lr": DECAY_NO_LR,
    "decay_after": DECAY_AFTER,
    "v_abs": V_NOT_SQUARED,
}


def _library_adamw(
    p: Array, grads: Sequence[Array], lr: float, betas: tuple[float, float], eps: float, wd: float
) -> list[tuple[Array, Array, Array]]:
    """tinygpt.optim.AdamW on one parameter: (param, m, v) after each of ``grads``' steps."""
    param = Parameter(_copy(p))
    optimizer = AdamW([param], lr=lr, betas=betas, eps=eps, weight_decay=wd)
    out = []
    for g in grads:
        param.grad_data = _copy(g)
        optimizer.step()
        state = optimizer.state[id(param)]
        out.append((_copy(param.data), _copy(state["m"]), _copy(state["v"])))
    return out


def _adamw_call(student: Student, *args: Any, **options: Any) -> tuple[Array, Array, Array]:
    """The student's adamw_update(*args): (param, m, v), its form checked; the inputs unchanged."""
    arrays = args[:4]
    before = [C.host(a).copy() for a in arrays]
    try:
        result = student.call("adamw_update", *args, **options)
    except CheckFailed as exc:
        if "ZeroDivisionError" in exc.message:
            raise CheckFailed(exc.message, f"called with step={args[4]}: {STEP_ZERO}") from None
        raise
    param, m, v = C.expect_tuple(
        result,
        3,
        "adamw_update",
        "(param, m, v)",
        "return param, m, v: the caller keeps m and v for the next step",
    )
    for i, (old, new) in enumerate(zip(before, arrays, strict=True)):
        _unchanged("adamw_update", ("param", "grad", "m", "v")[i], [old], [new])
    return param, m, v


# Clipping -------------------------------------------------------------------------------------------
@EXERCISE.check(
    "clip_grad_norm returns one array per gradient, of its shape and dtype, and the norm", kind="shape"
)
def clip_shapes(student: Student) -> None:
    grads = [C.random_array(s, seed=i) for i, s in enumerate(((3, 4), (4,), (2, 2, 3)))]
    clipped, _ = _clip(student, grads, 1.0)
    for i, (got, g) in enumerate(zip(clipped, grads, strict=True)):
        C.expect_array(
            got, f"clipped grads[{i}] (grads[{i}] is {tuple(g.shape)} float32)", shape=g.shape, dtype=g.dtype
        )


@EXERCISE.check("clip_grad_norm matches optim.clip_grad_norm: the global norm, one scale for all (float64)")
def clip_values(student: Student) -> None:
    with C.float64():
        grads = [
            C.random_array((4, 5), 1, scale=2.0),
            C.random_array((5,), 2, 0.1),
            C.random_array((2, 3), 3, 0.3),
        ]
        want, norm = _library_clip(grads, 2.0)
        got, value = _clip(student, grads, 2.0)
        _compare_norm(value, norm, grads, 2.0)
        mistakes = _clip_mistakes(grads, 2.0)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            C.compare(
                g,
                w,
                f"clipped grads[{i}] (total norm {norm:.4g}, max_norm 2)",
                rtol=1e-10,
                atol=1e-13,
                hint=CLIP_FORMULA,
                mistakes={hint: wrong[i] for hint, wrong in mistakes.items()},
            )


def _compare_norm(value: float, norm: float, grads: Sequence[Array], max_norm: float) -> None:
    if not abs(value - norm) <= 1e-10 * abs(norm):
        xp = backend.current().xp
        norms = [math.sqrt(float(xp.sum(g * g))) for g in grads]
        hint = {norm**2: NO_SQRT, sum(norms): SUM_OF_NORMS, max_norm: NORM_AFTER, max(norms): PER_TENSOR}
        raise CheckFailed(
            f"total_norm returned by clip_grad_norm: expected {norm:.8g}, got {value:.8g}",
            next((h for n, h in hint.items() if abs(value - n) <= 1e-6 * abs(n)), NO_SQRT),
        )


@EXERCISE.check(
    "clip_grad_norm edge cases: below or at max_norm nothing changes; small tensors adding up are clipped; "
    "an inf or nan norm leaves the gradients alone",
    kind="edge",
)
def clip_edges(student: Student) -> None:
    xp = backend.current().xp
    with C.float64():
        cases = [
            (
                "a total norm of about 0.4, below max_norm 5",
                [C.random_array((3, 4), 4, 0.1), C.random_array((4,), 5, 0.1)],
                5.0,
            ),
            ("gradients [3, 4] and max_norm 5 (norm exactly max_norm)", [backend.asarray([3.0, 4.0])], 5.0),
            (
                "four tensors, each of norm under max_norm 1, together about 1.6",
                [C.random_array((8,), 10 + i, 0.28) for i in range(4)],
                1.0,
            ),
        ]
        for what, grads, max_norm in cases:
            want, norm = _library_clip(grads, max_norm)
            got, value = _clip(student, grads, max_norm)
            _compare_norm(value, norm, grads, max_norm)
            mistakes = _clip_mistakes(grads, max_norm)
            for i, (g, w) in enumerate(zip(got, want, strict=True)):
                C.compare(
                    g,
                    w,
                    f"clipped grads[{i}] for {what}",
                    rtol=1e-10,
                    atol=1e-13,
                    hint=CLIP_ALWAYS if norm <= max_norm else PER_TENSOR,
                    mistakes={hint: wrong[i] for hint, wrong in mistakes.items()},
                )
    with C.float64():
        for bad in (math.inf, math.nan):
            broken = xp.concat([C.random_array((3,), 20), backend.asarray([bad])])
            grads = [broken, C.random_array((2, 2), 21)]
            got, value = _clip(student, grads, 1.0)
            C.expect(
                math.isnan(value) if math.isnan(bad) else value == math.inf,
                f"for gradients holding {bad}, total_norm should be {bad}, got {value:.6g}",
                "let the inf or nan through: the caller checks math.isfinite(total_norm)",
            )
            for i, (g, w) in enumerate(zip(got, grads, strict=True)):
                C.compare(g, w, f"clipped grads[{i}] when a gradient holds {bad}", 0, 0, hint=NOT_FINITE)


# AdamW on one parameter ---------------------------------------------------------------------------------
@EXERCISE.check(
    "adamw_update returns (param, m, v) of param's shape and dtype, as new arrays: its inputs stay unchanged",
    kind="shape",
)
def adamw_shapes(student: Student) -> None:
    xp = backend.current().xp
    p, g = C.random_array((3, 4), 30), C.random_array((3, 4), 31)
    for step, (m, v) in enumerate(((xp.zeros_like(p), xp.zeros_like(p)), (g * 0.1, g * g * 0.001)), start=1):
        result = _adamw_call(student, p, g, m, v, step, 1e-2, (0.9, 0.999), 1e-8, 0.1)
        for got, name in zip(result, ("param", "m", "v"), strict=True):
            C.expect_array(
                got,
                f"{name} returned by adamw_update (param is (3, 4) float32)",
                shape=p.shape,
                dtype=p.dtype,
            )


def _adam_mistakes(
    p: Array,
    g: Array,
    m: Array,
    v: Array,
    step: int,
    lr: float,
    betas: Any,
    eps: float,
    wd: float,
    which: int,
) -> dict[str, Array]:
    """hint -> what the mistake gives for output ``which`` (0 param, 1 m, 2 v) of one update."""
    out = {
        hint: _adamw(p, g, m, v, step, lr, betas, eps, wd, mistake)[which]
        for mistake, hint in ADAM_MISTAKES.items()
    }
    if eps != 1e-8:
        out[USE_EPS] = _adamw(p, g, m, v, step, lr, betas, 1e-8, wd)[which]
    if tuple(betas) != (0.9, 0.999):
        out[USE_BETAS] = _adamw(p, g, m, v, step, lr, (0.9, 0.999), eps, wd)[which]
    return out


@EXERCISE.check("adamw_update's first step (bias correction): every weight moves by about lr")
def adamw_first_step(student: Student) -> None:
    xp = backend.current().xp
    with C.float64():
        p, g = C.random_array((5, 6), 32), _spread((5, 6), 33, -2.0, 1.0)
        zeros = xp.zeros_like(p)
        ((want, _, _),) = _library_adamw(p, [g], 1e-2, (0.9, 0.999), 1e-8, 0.0)
        got, _, _ = _adamw_call(student, p, g, zeros, zeros, 1, 1e-2, (0.9, 0.999), 1e-8, 0.0)
        mistakes = _adam_mistakes(p, g, zeros, zeros, 1, 1e-2, (0.9, 0.999), 1e-8, 0.0, 0)
        C.compare(
            got,
            want,
            "param after the first step (m = v = 0, step = 1, lr = 0.01, no weight decay; each weight should "
            "move by lr * g / (|g| + eps), about 0.01)",
            rtol=1e-4,  # the size of the step; eps's exact place is the 5-step check's
            atol=1e-9,
            hint=STEP_ZERO
            if not bool(xp.all(xp.isfinite(got)))
            else "m = beta1 * m + (1 - beta1) * grad and v likewise with grad * grad, each divided by its bias "
            "correction 1 - beta**step",
            mistakes=mistakes,
        )


@EXERCISE.check("adamw_update's weight decay is decoupled: a zero gradient still shrinks p by lr * wd * p")
def adamw_decoupled(student: Student) -> None:
    xp = backend.current().xp
    with C.float64():
        p = C.random_array((4, 5), 34)
        zeros = xp.zeros_like(p)
        ((want, _, _),) = _library_adamw(p, [zeros], 0.1, (0.9, 0.999), 1e-8, 0.5)
        got, _, _ = _adamw_call(student, p, zeros, zeros, zeros, 1, 0.1, (0.9, 0.999), 1e-8, 0.5)
        C.compare(
            got,
            want,
            "param after one step with a zero gradient (lr = 0.1, weight_decay = 0.5: expected p * 0.95)",
            rtol=1e-10,
            atol=1e-13,
            hint=NO_DECAY,
            mistakes=_adam_mistakes(p, zeros, zeros, zeros, 1, 0.1, (0.9, 0.999), 1e-8, 0.5, 0),
        )


@EXERCISE.check("adamw_update over 5 steps matches optim.AdamW (float64; the betas, eps and decay given)")
def adamw_steps(student: Student) -> None:
    xp = backend.current().xp
    lr, betas, eps = 0.02, (0.8, 0.95), 1e-4
    with C.float64():
        for shape, wd, seed in (((4, 6), 0.1, 40), ((6,), 0.0, 50)):
            p = C.random_array(shape, seed)
            grads = [_spread(shape, seed + 1 + t, -3.0, 0.5) + 0.02 for t in range(5)]
            want = _library_adamw(p, grads, lr, betas, eps, wd)
            mine = (p, xp.zeros_like(p), xp.zeros_like(p))
            got = mine
            for t, g in enumerate(grads, start=1):
                mistakes = [_adam_mistakes(*got[:1], g, *got[1:], t, lr, betas, eps, wd, k) for k in range(3)]
                got = _adamw_call(student, *got[:1], g, *got[1:], t, lr, betas, eps, wd)
                for k in (1, 2, 0):
                    name = ("param", "m", "v")[k]
                    C.compare(
                        got[k],
                        want[t - 1][k],
                        f"{name} after step {t} (param {shape}, lr {lr}, betas {betas}, eps {eps}, "
                        f"weight_decay {wd})",
                        rtol=1e-9,
                        atol=1e-13,
                        hint=STEP_ZERO if not bool(xp.all(xp.isfinite(got[k]))) else "",
                        mistakes=mistakes[k],
                    )
                got = (_copy(got[0]), _copy(got[1]), _copy(got[2]))


# The whole step in a model ---------------------------------------------------------------------------------------
TINY = GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=8)
TINY_SETTINGS = StepSettings(lr=1e-2, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.1, grad_clip=0.1)
RUN_MISTAKES = {
    "decay_all": DECAY_ALL,
    "decay_none": DECAY_NONE,
    "no_clip": NO_CLIP,
    "no_zero_grad": NO_ZERO_GRAD,
    "fresh": FRESH_STATE,
    "step_stuck": STEP_STUCK,
}


def _tiny_model() -> TinyGPT:
    return TinyGPT(TINY, rng=backend.Generator(60))


def _snapshot(model: TinyGPT) -> dict[str, Array]:
    return {name: _copy(p.data) for name, p in model.named_parameters()}


def _library_run(batches: Sequence[Array], s: StepSettings) -> tuple[list[float], list[dict[str, Array]]]:
    model = _tiny_model()
    optimizer = AdamW(
        model.decay_groups(s.weight_decay), lr=s.lr, betas=s.betas, eps=s.eps, weight_decay=s.weight_decay
    )
    losses, params = [], []
    for batch in batches:
        optimizer.zero_grad()
        loss = LanguageModelLoss()(model(batch), batch)
        loss.backward()
        _, scale = clip_scale(optimizer.parameters, s.grad_clip)
        optimizer.step(grad_scale=scale)
        losses.append(float(loss.item()))
        params.append(_snapshot(model))
    return losses, params


def _mistaken_run(batches: Sequence[Array], s: StepSettings, mistake: str) -> list[dict[str, Array]]:
    """The parameters after each step of a train_step that makes ``mistake`` (a key of ``RUN_MISTAKES``)."""
    xp = backend.current().xp
    model = _tiny_model()
    params = model.parameters()
    moments = [(xp.zeros_like(p.data), xp.zeros_like(p.data)) for p in params]
    out = []
    for t, batch in enumerate(batches, start=1):
        if mistake != "no_zero_grad":
            model.zero_grad()
        LanguageModelLoss()(model(batch), batch).backward()
        grads: list[Array] = [p.grad_data for p in params]
        norm = math.sqrt(sum(float(xp.sum(g * g)) for g in grads))
        if mistake != "no_clip" and norm > s.grad_clip:
            grads = [g * (s.grad_clip / (norm + 1e-6)) for g in grads]
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            decay = {"decay_all": True, "decay_none": False}.get(mistake, p.ndim >= 2)
            m, v = moments[i] if mistake != "fresh" else (xp.zeros_like(p.data), xp.zeros_like(p.data))
            step = 1 if mistake == "step_stuck" else t
            p.data, m, v = _adamw(
                p.data, g, m, v, step, s.lr, s.betas, s.eps, s.weight_decay if decay else 0.0
            )
            moments[i] = (m, v)
        out.append(_snapshot(model))
    return out


def _student_step(student: Student, model: TinyGPT, state: dict, settings: StepSettings) -> StepFn:
    def step(batch: Array) -> float:
        loss = student.call("train_step", model, batch, state, settings)
        return C.number(loss, "the loss train_step returns", "return float(loss.item())")

    return step


@EXERCISE.check(
    "train_step on a tiny TinyGPT matches the library's step for 3 steps: the loss and every parameter "
    "(float64; weight decay on matrices only)"
)
def tiny_model(student: Student) -> None:
    xp = backend.current().xp
    s = TINY_SETTINGS
    with C.float64():
        rng = backend.Generator(61)
        batches = [rng.integers(0, TINY.vocab_size, (3, TINY.block_size)) for _ in range(3)]
        want_losses, want = _library_run(batches, s)
        wrong = {hint: _mistaken_run(batches, s, mistake) for mistake, hint in RUN_MISTAKES.items()}
        model = _tiny_model()
        step = _student_step(student, model, {}, s)
        for t, batch in enumerate(batches, start=1):
            loss = step(batch)
            C.expect(
                abs(loss - want_losses[t - 1]) <= 1e-9 * abs(want_losses[t - 1]),
                f"train_step's loss at step {t}: expected {want_losses[t - 1]:.8g}, got {loss:.8g}",
                "return the loss of this batch, computed before the update: LanguageModelLoss()(model(batch), "
                "batch), as float(loss.item())",
            )
            for name, p in model.named_parameters():
                finite = not hasattr(p.data, "shape") or bool(xp.all(xp.isfinite(p.data)))
                C.compare(
                    p.data,
                    want[t - 1][name],
                    f"parameter {name} {tuple(want[t - 1][name].shape)} after step {t}",
                    rtol=1e-9,
                    atol=1e-13,
                    hint=STEP_ZERO if not finite else "",
                    mistakes={hint: run[t - 1][name] for hint, run in wrong.items()},
                )


@EXERCISE.check(
    "milestone: a TinyGPT with your train_step trains on Shakespeare like the library's", kind="milestone"
)
def milestone(student: Student) -> str:
    def make_step(model: TinyGPT, settings: Milestone) -> StepFn:
        step_settings = StepSettings(
            lr=settings.lr, weight_decay=settings.weight_decay, grad_clip=settings.grad_clip
        )
        return _student_step(student, model, {}, step_settings)

    return train_and_compare(make_step=make_step, what="your train_step")
