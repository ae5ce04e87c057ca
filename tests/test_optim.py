"""Optimizers against hand-written NumPy references, clipping and LR schedules."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tinygpt import Dense, Parameter, Tensor, backend
from tinygpt.errors import ConfigError
from tinygpt.optim import SGD, Adam, AdamW, clip_grad_norm, clip_scale, grad_norm, warmup_cosine_lr

STEPS = 4


def gradient_sequence(shape: tuple[int, ...], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(STEPS)]


def run(optimizer, params: list[Parameter], grads: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Feed the given gradients for STEPS steps; return the parameters after each step."""
    history = []
    for step in range(STEPS):
        optimizer.zero_grad()
        for p, g in zip(params, grads, strict=True):
            p.grad = Tensor(g[step], dtype=p.dtype)
        optimizer.step()
        history.append([p.numpy() for p in params])
    return history


def reference_sgd(p, grads, lr, momentum, wd):
    out, buf = [], None
    for g in grads:
        g = g + wd * p
        buf = g if buf is None else momentum * buf + g
        p = p - lr * (buf if momentum else g)
        out.append(p)
    return out


def reference_adam(p, grads, lr, betas, eps, wd, decoupled):
    m, v, out = np.zeros_like(p), np.zeros_like(p), []
    for t, g in enumerate(grads, start=1):
        if wd and not decoupled:
            g = g + wd * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        bias1, bias2 = 1 - betas[0] ** t, 1 - betas[1] ** t
        if decoupled:
            p = p * (1 - lr * wd)
        p = p - lr / bias1 * m / (np.sqrt(v) / np.sqrt(bias2) + eps)
        out.append(p)
    return out


@pytest.mark.parametrize(("momentum", "wd"), [(0.0, 0.0), (0.9, 0.0), (0.0, 0.1), (0.8, 0.05)])
def test_sgd_matches_reference(xp_backend, float64, momentum: float, wd: float) -> None:
    start = np.random.default_rng(0).standard_normal((3, 2))
    p = Parameter(start)
    grads = gradient_sequence((3, 2), 1)
    history = run(SGD([p], lr=0.1, momentum=momentum, weight_decay=wd), [p], [grads])
    expected = reference_sgd(start, grads, 0.1, momentum, wd)
    for got, want in zip(history, expected, strict=True):
        np.testing.assert_allclose(got[0], want, rtol=1e-12)


@pytest.mark.parametrize(("cls", "wd"), [(Adam, 0.0), (Adam, 0.1), (AdamW, 0.0), (AdamW, 0.1)])
def test_adam_and_adamw_match_reference(xp_backend, float64, cls, wd: float) -> None:
    start = np.random.default_rng(2).standard_normal((4,))
    p = Parameter(start)
    grads = gradient_sequence((4,), 3)
    opt = cls([p], lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd)
    history = run(opt, [p], [grads])
    expected = reference_adam(start, grads, 0.01, (0.8, 0.95), 1e-6, wd, decoupled=cls is AdamW)
    for got, want in zip(history, expected, strict=True):
        np.testing.assert_allclose(got[0], want, rtol=1e-12)


def test_adamw_default_weight_decay_is_decoupled(xp_backend, float64) -> None:
    p = Parameter([1.0, -2.0])
    opt = AdamW([p], lr=0.1)
    assert opt.param_groups[0]["weight_decay"] == 0.01
    assert Adam([p]).param_groups[0]["weight_decay"] == 0.0  # the one default AdamW changes
    p.grad = Tensor([0.0, 0.0])
    opt.step()  # zero gradient: only the decay moves the weights
    np.testing.assert_allclose(p.numpy(), [1.0 * (1 - 0.1 * 0.01), -2.0 * (1 - 0.1 * 0.01)], rtol=1e-12)


def test_param_groups_use_their_own_weight_decay(xp_backend, float64) -> None:
    a0, b0 = np.random.default_rng(4).standard_normal((2, 2)), np.random.default_rng(5).standard_normal(3)
    a, b = Parameter(a0), Parameter(b0)
    ga, gb = gradient_sequence((2, 2), 6), gradient_sequence((3,), 7)
    opt = AdamW([{"params": [a], "weight_decay": 0.2}, {"params": [b], "weight_decay": 0.0}], lr=0.05)
    history = run(opt, [a, b], [ga, gb])
    want_a = reference_adam(a0, ga, 0.05, (0.9, 0.999), 1e-8, 0.2, True)
    want_b = reference_adam(b0, gb, 0.05, (0.9, 0.999), 1e-8, 0.0, True)
    np.testing.assert_allclose(history[-1][0], want_a[-1], rtol=1e-12)
    np.testing.assert_allclose(history[-1][1], want_b[-1], rtol=1e-12)


def test_parameters_without_gradient_are_not_updated(xp_backend) -> None:
    a, b = Parameter([1.0]), Parameter([2.0])
    opt = Adam([a, b], lr=0.1)
    a.grad = Tensor([1.0])
    opt.step()
    assert b.numpy()[0] == 2.0 and a.numpy()[0] != 1.0


def test_set_lr_changes_every_group(xp_backend) -> None:
    opt = SGD([{"params": [Parameter([1.0])]}, {"params": [Parameter([1.0])], "lr": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    opt.set_lr(0.01)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.01]


def test_optimizer_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="empty"):
        SGD([])
    with pytest.raises(ConfigError, match="learning rate"):
        SGD([Parameter([1.0])], lr=-1.0)
    with pytest.raises(ConfigError, match="betas"):
        Adam([Parameter([1.0])], betas=(0.9, 1.0))


NAN, INF = math.nan, math.inf
BAD_SETTINGS = [
    *[(cls, {"lr": v}, rf"lr must be a finite number >= 0, got {v}") for cls in (SGD, Adam, AdamW) for v in (NAN, INF, -1e-3)],
    *[(cls, {"weight_decay": v}, "weight_decay must be a finite number >= 0") for cls in (SGD, Adam, AdamW) for v in (NAN, -0.1)],
    (SGD, {"momentum": NAN}, r"momentum must be a finite number in \[0, 1\), got nan"),
    (SGD, {"momentum": 1.0}, r"momentum must be a finite number in \[0, 1\), got 1.0"),
    (SGD, {"momentum": -0.5}, r"momentum .* got -0.5"),
    *[(cls, {"betas": v}, r"betas must be a pair of finite numbers in \[0, 1\)") for cls in (Adam, AdamW) for v in ((NAN, 0.9), (0.9, 1.5), (0.9,), 0.9)],
    *[(cls, {"eps": v}, "eps must be a finite number > 0") for cls in (Adam, AdamW) for v in (0.0, -1e-8, NAN)],
    (AdamW, {"lr": "3e-4"}, "lr must be a finite number >= 0, got '3e-4'"),
    (AdamW, {"lr": True}, "lr must be a finite number >= 0, got True"),
]  # fmt: skip


@pytest.mark.parametrize(("cls", "settings", "message"), BAD_SETTINGS)
def test_every_optimizer_refuses_non_finite_or_out_of_range_settings(cls, settings, message) -> None:
    # One lr=nan step would make every weight NaN: refused where it enters, naming the value and a fix.
    with pytest.raises(ConfigError, match=rf"^{cls.__name__}: {message}.*(usual|typical)"):
        cls([Parameter([1.0])], **settings)
    with pytest.raises(ConfigError, match=message):  # a group's own setting is checked the same way
        cls([{"params": [Parameter([1.0])], **settings}])


def test_set_lr_refuses_a_non_finite_rate() -> None:
    opt = AdamW([Parameter([1.0])])
    with pytest.raises(ConfigError, match="AdamW: lr must be a finite number >= 0, got nan"):
        opt.set_lr(math.nan)
    assert opt.param_groups[0]["lr"] == 1e-3


def test_optimizers_take_parameters_and_say_so(xp_backend) -> None:
    model = Dense(2, 1)
    with pytest.raises(ConfigError, match=r"SGD optimizes tinygpt Parameters \(Tensors\), got ndarray"):
        SGD([np.zeros(3)])
    with pytest.raises(
        ConfigError, match=r"takes a list of parameters, got Dense: pass model.parameters\(\)"
    ):
        AdamW(model)
    with pytest.raises(ConfigError, match=r"a parameter group must be a dict with 'params'"):
        AdamW([{"lr": 0.1}])
    with pytest.raises(ConfigError, match=r"unknown setting 'weight_deacy' in a parameter group"):
        AdamW([{"params": model.parameters(), "weight_deacy": 0.0}])


@pytest.mark.parametrize("max_norm", [-1.0, 0.0, math.nan, math.inf, "1"])
def test_clipping_refuses_a_max_norm_that_is_not_positive_and_finite(xp_backend, max_norm) -> None:
    p = Parameter([3.0, 4.0])
    p.grad_data = backend.asarray([3.0, 4.0])
    for clip in (clip_grad_norm, clip_scale):
        with pytest.raises(ConfigError, match=r"max_norm must be a finite number > 0, got .*1\.0 is usual"):
            clip([p], max_norm)
    np.testing.assert_array_equal(backend.to_numpy(p.grad_data), [3.0, 4.0])  # a negative one flipped signs


def test_updates_keep_float32(xp_backend) -> None:
    p = Parameter([1.0, 2.0])
    for opt in (SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1), AdamW([p], lr=0.1)):
        p.grad = Tensor([0.5, -0.5])
        opt.step()
        opt.step()
        assert p.dtype == xp_backend.xp.float32
        assert all(v.dtype == xp_backend.xp.float32 for s in opt.state.values() for v in s.values())


def test_optimizer_state_dict_round_trip(xp_backend, float64) -> None:
    start = np.random.default_rng(8).standard_normal((3,))
    grads = gradient_sequence((3,), 9) + gradient_sequence((3,), 10)

    def steps(opt, p, gs):
        for g in gs:
            p.grad = Tensor(g)
            opt.step()

    p = Parameter(start)
    opt = AdamW([p], lr=0.01, weight_decay=0.1)
    steps(opt, p, grads[:3])
    saved, middle = opt.state_dict(), p.numpy()
    assert saved["step_count"] == 3
    assert set(saved["arrays"]) == {"0.m", "0.v"}
    assert all(type(v) is np.ndarray for v in saved["arrays"].values())
    steps(opt, p, grads[3:])

    q = Parameter(middle)
    resumed = AdamW([q], lr=0.01, weight_decay=0.1)
    resumed.load_state_dict(saved)
    steps(resumed, q, grads[3:])
    np.testing.assert_array_equal(q.numpy(), p.numpy())


def test_optimizer_state_dict_rejects_wrong_shapes(xp_backend) -> None:
    p = Parameter([1.0, 2.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad = Tensor([1.0, 1.0])
    opt.step()
    state = opt.state_dict()
    with pytest.raises(ConfigError, match="shape"):
        SGD([Parameter([1.0])], lr=0.1, momentum=0.9).load_state_dict(state)


def test_adamw_matches_torch(float64) -> None:
    torch = pytest.importorskip("torch")
    start = np.random.default_rng(11).standard_normal((3, 4))
    grads = [np.random.default_rng(12 + i).standard_normal((3, 4)) for i in range(5)]
    ours = Parameter(start)
    theirs = torch.tensor(start, requires_grad=True)
    opt = AdamW([ours], lr=0.02, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    topt = torch.optim.AdamW([theirs], lr=0.02, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    for g in grads:
        ours.grad = Tensor(g)
        theirs.grad = torch.tensor(g)
        opt.step()
        topt.step()
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


# Clipping ---------------------------------------------------------------------------
def test_clip_grad_norm_scales_to_max_norm(xp_backend) -> None:
    a, b = Parameter([0.0, 0.0]), Parameter([0.0])
    a.grad, b.grad = Tensor([3.0, 4.0]), Tensor([12.0])
    assert grad_norm([a, b]) == pytest.approx(13.0)
    before = clip_grad_norm([a, b], max_norm=6.5)
    assert before == pytest.approx(13.0)
    assert grad_norm([a, b]) == pytest.approx(6.5, rel=1e-5)
    np.testing.assert_allclose(a.grad.numpy(), [1.5, 2.0], rtol=1e-5)


def test_clip_grad_norm_is_a_no_op_below_max_norm(xp_backend) -> None:
    a = Parameter([0.0, 0.0])
    a.grad = Tensor([3.0, 4.0])
    grad = a.grad_data
    assert clip_grad_norm([a], max_norm=10.0) == pytest.approx(5.0)
    assert a.grad_data is grad


def test_clip_grad_norm_leaves_non_finite_gradients_for_the_caller(xp_backend) -> None:
    a, b = Parameter([0.0]), Parameter([0.0])
    a.grad, b.grad = Tensor([math.inf]), Tensor([1.0])
    assert math.isinf(clip_grad_norm([a, b], 1.0))
    assert b.grad.numpy()[0] == 1.0


# Schedules --------------------------------------------------------------------------
def test_warmup_cosine_schedule_values() -> None:
    lr, min_lr, warmup, max_iters = 1.0, 0.1, 10, 110
    schedule = warmup_cosine_lr(lr, min_lr, warmup, max_iters)
    assert schedule(0) == pytest.approx(lr / (warmup + 1))  # small but non-zero first step
    warm = [schedule(i) for i in range(warmup)]
    assert all(a < b for a, b in itertools.pairwise(warm))
    assert schedule(warmup) == pytest.approx(lr)
    assert schedule(60) == pytest.approx(min_lr + 0.5 * (lr - min_lr))  # half way down the cosine
    assert schedule(max_iters) == pytest.approx(min_lr)
    assert schedule(max_iters + 50) == pytest.approx(min_lr)
    decay = [schedule(i) for i in range(warmup, max_iters + 1)]
    assert all(a >= b for a, b in itertools.pairwise(decay))


def test_warmup_cosine_rejects_min_above_max() -> None:
    with pytest.raises(ConfigError, match="min_lr"):
        warmup_cosine_lr(0.1, 0.2, 10, 100)


@pytest.mark.parametrize(
    "make", [lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1), lambda ps: SGD(ps, lr=0.1, momentum=0.9)]
)
def test_grad_scale_in_step_equals_clipping_first(xp_backend, make):
    """Clipping folded into the update (clip_scale + step(grad_scale)) == clip_grad_norm then step."""
    rng = np.random.default_rng(3)
    start = [rng.standard_normal((4, 3)), rng.standard_normal((3,))]
    grads = [rng.standard_normal((4, 3)) * 5, rng.standard_normal((3,)) * 5]
    results = []
    for folded in (False, True):
        params = [Parameter(w) for w in start]
        opt = make(params)
        for _ in range(3):
            for p, g in zip(params, grads, strict=True):
                p.grad = Tensor(g).data
            if folded:
                _, scale = clip_scale(params, 1.0)
                opt.step(grad_scale=scale)
            else:
                clip_grad_norm(params, 1.0)
                opt.step()
        results.append([p.numpy() for p in params])
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
