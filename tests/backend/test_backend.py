"""The backend layer: selection, dtype policy, host transfers, RNG and scatter-add."""

from __future__ import annotations

import builtins
import sys

import numpy as np
import pytest

from tinygpt import backend
from tinygpt.backend import selection
from tinygpt.errors import BackendError


# Selection ------------------------------------------------------------------------------
def test_using_restores_the_previous_backend() -> None:
    before = backend.current()
    with backend.using("array_api_strict") as active:
        assert backend.current() is active and active.name == "array_api_strict"
        with backend.using("numpy"):
            assert backend.current().name == "numpy"
        assert backend.current() is active
    assert backend.current() is before


def test_using_restores_after_an_exception() -> None:
    before = backend.current()
    with pytest.raises(KeyError), backend.using("array_api_strict"):
        raise KeyError("boom")
    assert backend.current() is before


def test_use_switches_the_global_backend() -> None:
    before = selection._state.backend
    try:
        assert backend.use(" NumPy ").name == "numpy"
        assert backend.current().name == "numpy"
    finally:
        selection._state.backend = before


def test_unknown_backend_error_lists_valid_names_in_one_line() -> None:
    with pytest.raises(BackendError) as info:
        backend.use("nonsense")
    message = str(info.value)
    assert "nonsense" in message and "\n" not in message
    for name in backend.BACKENDS:
        assert name in message


def test_numpy_backend_rejects_a_gpu_device() -> None:
    with pytest.raises(BackendError, match="CPU only"):
        backend.use("numpy", "cuda:0")


def test_env_cupy_without_cupy_explains_install_or_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    monkeypatch.setenv("TINYGPT_BACKEND", "cupy")
    monkeypatch.delenv("TINYGPT_DEVICE", raising=False)
    monkeypatch.setattr(selection._state, "backend", None)
    with pytest.raises(BackendError) as info:
        backend.current()
    message = str(info.value)
    assert "install" in message and "unset TINYGPT_BACKEND" in message


def test_env_variable_chooses_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINYGPT_BACKEND", "array_api_strict")
    monkeypatch.delenv("TINYGPT_DEVICE", raising=False)
    monkeypatch.setattr(selection._state, "backend", None)
    active = backend.current()
    assert active.name == "array_api_strict"
    assert "device1" in repr(active.device)


# Dtypes ---------------------------------------------------------------------------------
def test_default_float_is_float32_and_indices_are_signed_integers(xp_backend) -> None:
    assert xp_backend.float_dtype == xp_backend.xp.float32
    assert xp_backend.xp.isdtype(xp_backend.int_dtype, "signed integer")


def test_default_float_scope_switches_to_float64_and_back(xp_backend) -> None:
    with backend.default_float("float64"):
        assert xp_backend.float_dtype == xp_backend.xp.float64
        assert backend.asarray([1.0]).dtype == xp_backend.xp.float64
    assert xp_backend.float_dtype == xp_backend.xp.float32


def test_unknown_float_dtype_is_rejected() -> None:
    with pytest.raises(BackendError, match="float16"):
        backend.set_default_float("float16")


# Host transfers -------------------------------------------------------------------------
def test_asarray_makes_float32_from_lists_and_float64_numpy(xp_backend) -> None:
    xp = xp_backend.xp
    assert backend.asarray([[1.0, 2.0]]).dtype == xp.float32
    assert backend.asarray(np.ones(3, dtype=np.float64)).dtype == xp.float32
    with backend.default_float("float64"):  # (JAX has float64 only inside such a block)
        assert backend.asarray(np.ones(3, dtype=np.float32)).dtype == xp.float64
        assert backend.asarray(np.ones(3), dtype="float32").dtype == xp.float32


def test_asarray_gives_integers_the_index_dtype(xp_backend) -> None:
    index = xp_backend.int_dtype
    assert backend.asarray([1, 2]).dtype == index
    assert backend.asarray(np.arange(3, dtype=np.int32)).dtype == index
    assert backend.asarray(np.arange(3, dtype=np.uint8)).dtype == index


def test_asarray_keeps_zero_dimensional_shape(xp_backend) -> None:
    assert backend.asarray(2.5).shape == ()
    assert backend.asarray(np.float64(2.5)).shape == ()
    assert backend.asarray(3).shape == ()


def test_asarray_puts_data_on_the_backend_device(xp_backend) -> None:
    a = backend.asarray([1.0, 2.0])
    assert a.device == xp_backend.device
    b = backend.asarray(a)  # backend array in, same backend array type out
    assert b.device == xp_backend.device


def test_array_api_strict_arrays_land_on_device1() -> None:
    with backend.using("array_api_strict", "device1") as active:
        a = backend.asarray(np.ones(3))
        assert "device1" in repr(a.device)
        assert a.device == active.device
        with backend.using("array_api_strict", "device1"):
            assert backend.asarray(a).device == a.device


def test_to_numpy_round_trip(xp_backend) -> None:
    host = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    back = backend.to_numpy(backend.asarray(host))
    assert type(back) is np.ndarray and back.dtype == np.float32
    np.testing.assert_array_equal(back, host)
    ints = np.arange(5, dtype=np.int64)
    np.testing.assert_array_equal(backend.to_numpy(backend.asarray(ints)), ints)
    assert backend.to_numpy(backend.asarray(1.5)).shape == ()


def test_to_numpy_returns_a_copy(xp_backend) -> None:
    host = np.zeros(3, dtype=np.float32)
    a = backend.asarray(host)
    out = backend.to_numpy(a)
    out[0] = 5.0
    assert backend.to_numpy(a)[0] == 0.0


# Random numbers -------------------------------------------------------------------------
def test_same_seed_gives_same_draws(xp_backend) -> None:
    a, b = backend.Generator(7), backend.Generator(7)
    np.testing.assert_array_equal(backend.to_numpy(a.normal((5,))), backend.to_numpy(b.normal((5,))))
    np.testing.assert_array_equal(
        backend.to_numpy(a.integers(0, 9, (4,))), backend.to_numpy(b.integers(0, 9, (4,)))
    )
    c = backend.Generator(8)
    assert not np.array_equal(
        backend.to_numpy(backend.Generator(7).normal((5,))), backend.to_numpy(c.normal((5,)))
    )


def test_get_state_set_state_repeats_draws(xp_backend) -> None:
    import json

    g = backend.Generator(3)
    g.normal((2,))
    state = json.loads(json.dumps(g.get_state()))  # JSON-able
    first = backend.to_numpy(g.uniform((4,)))
    first_mask = backend.to_numpy(g.keep_mask((8,), 0.5))
    g.set_state(state)
    np.testing.assert_array_equal(backend.to_numpy(g.uniform((4,))), first)
    np.testing.assert_array_equal(backend.to_numpy(g.keep_mask((8,), 0.5)), first_mask)


def test_manual_seed_makes_default_generator_repeatable(xp_backend) -> None:
    backend.manual_seed(11)
    a = backend.to_numpy(backend.default_generator().normal((3,)))
    backend.manual_seed(11)
    np.testing.assert_array_equal(backend.to_numpy(backend.default_generator().normal((3,))), a)


def test_every_backend_draws_identical_numbers(xp_backend) -> None:
    """One host generator: the same seed gives the same numbers as NumPy on every backend.

    Dropout masks too, where the library draws them on the host; CuPy draws them on the GPU
    (seeded from the host stream, so they repeat with it, but are other numbers: docs/gpu.md).
    """

    def draws() -> list[np.ndarray]:
        g = backend.Generator(42)
        return [
            backend.to_numpy(g.normal((3, 2), std=0.5)),
            backend.to_numpy(g.uniform((4,), -1.0, 1.0)),
            backend.to_numpy(g.integers(0, 100, (5,))),
            backend.to_numpy(g.categorical(backend.asarray([[0.2, 0.8], [0.5, 0.5]]))),
            backend.to_numpy(g.keep_mask((6,), 0.5)),  # last: a GPU mask takes fewer host draws
        ]

    here = draws()
    with backend.using("numpy"):
        reference = draws()
    if type(xp_backend.library).keep_mask is not backend.ArrayLibrary.keep_mask:
        here.pop(), reference.pop()
    for a, b in zip(here, reference, strict=True):
        np.testing.assert_array_equal(a, b)


def test_draws_have_requested_dtypes(xp_backend) -> None:
    xp = xp_backend.xp
    g = backend.Generator(0)
    assert g.normal((2,)).dtype == xp.float32
    assert g.uniform((2,)).dtype == xp.float32
    assert g.integers(0, 3, (2,)).dtype == xp_backend.int_dtype
    assert g.keep_mask((2,), 0.5).dtype == xp.float32
    with backend.default_float("float64"):
        assert g.normal((2,), dtype=xp.float64).dtype == xp.float64
    u = backend.to_numpy(g.uniform((1000,), 2.0, 3.0))
    assert u.min() >= 2.0 and u.max() < 3.0


def test_keep_mask_has_mean_one_and_two_values(xp_backend) -> None:
    mask = backend.to_numpy(backend.Generator(1).keep_mask((100, 200), 0.8))
    assert abs(mask.mean() - 1.0) < 0.01
    np.testing.assert_allclose(np.unique(mask), [0.0, 1.25], rtol=1e-6)


def test_categorical_follows_probabilities(xp_backend) -> None:
    probs = np.array([0.1, 0.2, 0.0, 0.7])
    n = 4000
    rows = backend.asarray(np.tile(probs, (n, 1)))
    draws = backend.to_numpy(backend.Generator(2).categorical(rows))
    assert draws.shape == (n,) and np.issubdtype(draws.dtype, np.signedinteger)
    counts = np.bincount(draws, minlength=4)
    assert counts[2] == 0  # zero probability is never drawn
    expected = probs * n
    nonzero = expected > 0
    chi2 = (((counts - expected)[nonzero]) ** 2 / expected[nonzero]).sum()
    assert chi2 < 16.0  # 2 degrees of freedom: p ~ 3e-4 of a false failure


def test_categorical_normalises_unnormalised_rows(xp_backend) -> None:
    draws = backend.to_numpy(backend.Generator(0).categorical(backend.asarray([[0.0, 5.0, 0.0]] * 50)))
    assert (draws == 1).all()


# Scatter-add and one-hot ----------------------------------------------------------------
def test_scatter_add_rows_matches_portable_form_and_manual_loop(xp_backend) -> None:
    rng = np.random.default_rng(0)
    ids = np.array([3, 1, 3, 0, 3, 1], dtype=np.int64)  # duplicates
    values = rng.standard_normal((6, 4)).astype(np.float32)
    expected = np.zeros((5, 4), dtype=np.float32)
    for i, row in zip(ids, values, strict=True):
        expected[i] += row
    ids_b, values_b = backend.asarray(ids), backend.asarray(values)
    fast = backend.to_numpy(backend.scatter_add_rows(ids_b, values_b, 5))
    portable = backend.to_numpy(backend.scatter_add_rows_portable(ids_b, values_b, 5))
    np.testing.assert_allclose(fast, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(portable, expected, rtol=1e-6, atol=1e-6)
    assert fast.shape == (5, 4) and not fast[2].any() and not fast[4].any()


def test_one_hot_rows(xp_backend) -> None:
    out = backend.one_hot(backend.asarray([2, 0, 2]), 4)
    assert out.dtype == xp_backend.xp.float32
    np.testing.assert_array_equal(backend.to_numpy(out), [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 1, 0]])
    with backend.default_float("float64"):
        one = backend.one_hot(backend.asarray([1]), 2, dtype=xp_backend.xp.float64)
        assert one.dtype == xp_backend.xp.float64


def test_asarray_does_not_share_memory_with_the_callers_numpy_array(xp_backend) -> None:
    for dtype in (np.float32, np.int64):
        host = np.zeros(3, dtype=dtype)
        a = backend.asarray(host)
        host[0] = 7
        assert backend.to_numpy(a)[0] == 0
