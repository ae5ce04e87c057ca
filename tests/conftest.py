"""The backend matrix: array tests run once per available backend.

The list is the registry's (``backend.BACKENDS``); a backend that cannot run
here (not installed, no GPU) is skipped with its own error as the reason.
``TINYGPT_TEST_BACKENDS`` (comma-separated) narrows the list; nox sets it to one
backend per session, and then that backend must be available (an error, not a
suite of skips). array_api_strict runs on its simulated ``device1`` so a
creation call without ``device=`` fails here on a CPU, not later on a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tinygpt import backend
from tinygpt.errors import BackendError

ALL = backend.BACKENDS  # every registered library

try:  # property tests: no per-example deadline, since a loaded CI machine (fsync) would flake
    from hypothesis import settings

    settings.register_profile("tinygpt", deadline=None)
    settings.load_profile("tinygpt")
except ImportError:
    pass


def _unavailable(name: str) -> str | None:
    """Why backend ``name`` cannot run here (its own error: what to install, no GPU), or None."""
    device = os.environ.get("TINYGPT_DEVICE") or None
    try:
        with backend.using(name, device if name == os.environ.get("TINYGPT_BACKEND", "").strip() else None):
            return None
    except BackendError as exc:
        return str(exc)
    except Exception as exc:  # e.g. a broken GPU driver
        return f"{type(exc).__name__}: {exc}"


def _requested() -> tuple[list[str], bool]:
    text = os.environ.get("TINYGPT_TEST_BACKENDS", "")
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = set(names) - set(ALL)
    if unknown:
        raise pytest.UsageError(f"TINYGPT_TEST_BACKENDS has unknown backends {sorted(unknown)}; use {ALL}")
    return (names, True) if names else (list(ALL), False)


def _params() -> list:
    names, explicit = _requested()
    params = []
    for name in names:
        why = _unavailable(name)
        if why and explicit:
            # A session that names its backend must not pass by skipping everything.
            raise pytest.UsageError(f"TINYGPT_TEST_BACKENDS names {name!r}, which cannot run here: {why}")
        marks = [pytest.mark.skip(reason=f"{name} backend: {why}")] if why else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=_params())
def xp_backend(request: pytest.FixtureRequest) -> Iterator[backend.Backend]:
    """Run the test on each backend of the matrix; yields the active Backend (``.xp``, ``.device``).

    The backend ``TINYGPT_BACKEND`` names runs on ``TINYGPT_DEVICE`` (a GPU run of the suite).
    """
    chosen = request.param == os.environ.get("TINYGPT_BACKEND", "").strip()
    device = os.environ.get("TINYGPT_DEVICE") or None if chosen else None
    with backend.using(request.param, device) as active:
        backend.manual_seed(0)
        yield active


@pytest.fixture
def float64() -> Iterator[None]:
    """New floating arrays are float64 inside the test (for finite-difference checks)."""
    with backend.default_float("float64"):
        yield
