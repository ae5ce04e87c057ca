"""The backend matrix: array tests run once per available backend.

``TINYGPT_TEST_BACKENDS`` (comma-separated) narrows the list; nox sets it to one
backend per session. array_api_strict runs on its simulated ``device1`` so a
creation call without ``device=`` fails here on a CPU, not later on a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tinygpt import backend

ALL = ("numpy", "array_api_strict", "cupy")

try:  # property tests: no per-example deadline, since a loaded CI machine (fsync) would flake
    from hypothesis import settings

    settings.register_profile("tinygpt", deadline=None)
    settings.load_profile("tinygpt")
except ImportError:
    pass


def _cupy_ready() -> tuple[bool, str]:
    try:
        import cupy
    except ImportError:
        return False, "CuPy is not installed"
    try:
        if cupy.is_available():
            return True, ""
    except Exception as exc:  # a broken driver install counts as unavailable
        return False, f"cupy.is_available() failed: {exc}"
    return False, "no CUDA GPU (cupy.is_available() is False)"


def _requested() -> list[str]:
    text = os.environ.get("TINYGPT_TEST_BACKENDS", "")
    names = [n.strip() for n in text.split(",") if n.strip()] or list(ALL)
    unknown = set(names) - set(ALL)
    if unknown:
        raise pytest.UsageError(f"TINYGPT_TEST_BACKENDS has unknown backends {sorted(unknown)}; use {ALL}")
    return names


def _params() -> list:
    params = []
    for name in _requested():
        marks = []
        if name == "cupy":
            ok, why = _cupy_ready()
            if not ok:
                marks.append(pytest.mark.skip(reason=f"cupy backend: {why}"))
        if name == "array_api_strict":
            try:
                import array_api_strict  # noqa: F401
            except ImportError:
                marks.append(pytest.mark.skip(reason="array-api-strict is not installed"))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=_params())
def xp_backend(request: pytest.FixtureRequest) -> Iterator[backend.Backend]:
    """Run the test on each backend of the matrix; yields the active Backend (``.xp``, ``.device``)."""
    device = "device1" if request.param == "array_api_strict" else None
    with backend.using(request.param, device) as active:
        backend.manual_seed(0)
        yield active


@pytest.fixture
def float64() -> Iterator[None]:
    """New floating arrays are float64 inside the test (for finite-difference checks)."""
    with backend.default_float("float64"):
        yield
