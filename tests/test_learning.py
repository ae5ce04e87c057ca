"""End to end: small networks actually learn, identically on every CPU backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygpt as tg
from tinygpt import backend

ROOT = Path(__file__).resolve().parents[1]
XOR_INPUTS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_TARGETS = np.array([[0.0], [1.0], [1.0], [0.0]])


def train_xor(steps: int = 150, activation: type[tg.Module] = tg.Tanh) -> list[float]:
    """Train a 2-8-1 MLP on XOR with Adam on the current backend; return the losses."""
    backend.manual_seed(0)
    model = tg.Sequential(tg.Dense(2, 8), activation(), tg.Dense(8, 1))
    optimizer = tg.optim.Adam(model.parameters(), lr=0.05)
    loss_fn = tg.MSELoss()
    x, y = tg.Tensor(XOR_INPUTS), tg.Tensor(XOR_TARGETS)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("activation", [tg.Tanh, tg.ReLU])
def test_mlp_learns_xor(xp_backend, activation) -> None:
    losses = train_xor(activation=activation)
    assert losses[0] > 0.1
    assert losses[-1] < 0.01, f"final loss {losses[-1]:.4f}"


def test_training_is_identical_on_numpy_and_array_api_strict() -> None:
    runs = {}
    for name in ("numpy", "array_api_strict"):
        with backend.using(name):
            runs[name] = train_xor(steps=60)
    np.testing.assert_allclose(runs["array_api_strict"], runs["numpy"], rtol=1e-5, atol=1e-7)


def run_demo(name: str) -> list[float]:
    # The repository first, what PYTHONPATH held after it (a GPU machine's carried wheels live there).
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "TINYGPT_BACKEND": name, "PYTHONPATH": path}
    env.pop("TINYGPT_DEVICE", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "mlp_demo.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return [float(line.split()[-1]) for line in result.stdout.splitlines() if line.startswith("step")]


def test_mlp_demo_script_prints_the_same_losses_on_both_backends() -> None:
    pytest.importorskip("array_api_strict")
    numpy_losses = run_demo("numpy")
    assert len(numpy_losses) == 6 and numpy_losses[-1] < 0.1 * numpy_losses[0]
    np.testing.assert_allclose(run_demo("array_api_strict"), numpy_losses, rtol=1e-5, atol=1e-6)
