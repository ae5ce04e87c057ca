"""The registry and what each array library declares: devices, dtypes, mutability, fast paths."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tinygpt import backend
from tinygpt.backend.library import ArrayLibrary
from tinygpt.backend.registry import LIBRARIES
from tinygpt.errors import BackendError

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


# The registry -------------------------------------------------------------------------------
def test_every_registered_library_is_named_by_its_key() -> None:
    assert backend.BACKENDS == tuple(LIBRARIES)
    assert {"numpy", "array_api_strict", "cupy", "torch", "jax"} <= set(LIBRARIES)
    for name, library in LIBRARIES.items():
        assert isinstance(library, ArrayLibrary) and library.name == name and library.devices


def test_every_library_loads_or_says_how_to_get_it() -> None:
    for name in backend.BACKENDS:
        try:
            with backend.using(name) as active:
                assert active.library is LIBRARIES[name]
        except BackendError as exc:
            message = str(exc)
            assert "pip install" in message or "GPU" in message, message


def test_the_unknown_backend_error_comes_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINYGPT_BACKEND", "nonsense")
    monkeypatch.setattr(backend.selection._state, "backend", None)
    with pytest.raises(BackendError, match="choose one of numpy, array_api_strict, cupy, torch, jax"):
        backend.current()


# Indexed updates: in place where writable, a new array otherwise ------------------------------
def test_set_at_in_place_equals_the_copying_form(xp_backend) -> None:
    host = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    values = backend.asarray(-np.ones((2, 1, 4), dtype=np.float32))
    index = (slice(None), slice(1, 2), slice(None))
    original = backend.asarray(host)
    copied = backend.set_at(original, index, values, copy=True)
    np.testing.assert_array_equal(backend.to_numpy(original), host)  # the copying form leaves x alone
    fast = backend.set_at(backend.asarray(host), index, values)
    want = host.copy()
    want[:, 1:2, :] = -1
    np.testing.assert_array_equal(backend.to_numpy(copied), want)
    np.testing.assert_array_equal(backend.to_numpy(fast), want)


def test_set_at_writes_in_place_exactly_where_the_backend_says_it_may(xp_backend) -> None:
    x = backend.asarray(np.zeros(3, dtype=np.float32))
    y = backend.set_at(x, (slice(0, 1),), backend.asarray(np.ones(1, dtype=np.float32)))
    assert (y is x) == xp_backend.writable


def test_only_jax_arrays_are_immutable() -> None:
    assert [name for name, library in LIBRARIES.items() if not library.writable] == ["jax"]


# JAX ----------------------------------------------------------------------------------------
@needs_jax
def test_jax_indices_are_int32_unless_x64_and_the_global_flag_is_never_changed() -> None:
    import jax

    before = jax.config.read("jax_enable_x64")
    with backend.using("jax") as active:
        assert active.int_dtype == (active.xp.int64 if before else active.xp.int32)
        with backend.default_float("float64"):
            assert active.int_dtype == active.xp.int64
            assert backend.asarray([1.0]).dtype == active.xp.float64
    assert jax.config.read("jax_enable_x64") == before


@needs_jax
def test_jax_float64_outside_a_float64_block_is_a_clear_error() -> None:
    import jax

    if jax.config.read("jax_enable_x64"):
        pytest.skip("JAX_ENABLE_X64 is set: float64 is available everywhere")
    with backend.using("jax"):
        backend.set_default_float("float64")
        try:
            with pytest.raises(BackendError, match="default_float"):
                backend.asarray([1.0])
        finally:
            backend.set_default_float("float32")


@needs_jax
@pytest.mark.parametrize("device", ["tpu", "gpu:x", "cuda:0"])
def test_jax_rejects_unknown_devices_naming_the_valid_ones(device: str) -> None:
    with pytest.raises(BackendError, match="cpu, gpu, gpu:N"):
        backend.use("jax", device)


@needs_jax
def test_jax_without_a_gpu_says_so() -> None:
    import jax

    try:
        jax.devices("gpu")
        pytest.skip("this machine has a JAX GPU")
    except RuntimeError:
        pass
    with pytest.raises(BackendError, match="no gpu devices"):
        backend.use("jax", "gpu:0")


# torch --------------------------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("device", ["tpu", "cuda:x", "xla"])
def test_torch_rejects_unknown_devices_naming_the_valid_ones(device: str) -> None:
    with pytest.raises(BackendError, match="cpu, cuda, cuda:N, mps"):
        backend.use("torch", device)


@needs_torch
def test_torch_without_a_gpu_says_so() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(BackendError, match="no CUDA GPU"):
        backend.use("torch", "cuda:0")


@needs_torch
def test_torch_arrays_on_the_cpu_do_not_share_memory_with_host_copies() -> None:
    with backend.using("torch", "cpu"):
        a = backend.asarray(np.zeros(3, dtype=np.float32))
        host = backend.to_numpy(a)
        host[0] = 5.0
        assert backend.to_numpy(a)[0] == 0.0


@pytest.mark.parametrize("name", ["numpy", "array_api_strict", "torch", "jax", "cupy"])
def test_a_bad_device_is_the_same_one_line_error_on_every_backend(name):
    from tinygpt.errors import BackendError

    with pytest.raises(BackendError) as info:
        backend.use(name, "bogus:7")
    message = str(info.value)
    assert "\n" not in message
    if "not installed" not in message and "no CUDA GPU" not in message:  # the library itself is missing
        assert message.startswith(f"bad {name} device 'bogus:7'") and "use one of" in message


def test_torch_tf32_switch_uses_the_api_torch_has():
    torch = pytest.importorskip("torch")
    from tinygpt.backend.libraries.torch import _allow_tf32

    matmul = torch.backends.cuda.matmul
    name = "fp32_precision" if hasattr(matmul, "fp32_precision") else "allow_tf32"
    before = getattr(matmul, name)
    try:
        _allow_tf32(torch)
        assert getattr(matmul, name) in ("tf32", True)
    finally:
        setattr(matmul, name, before)
