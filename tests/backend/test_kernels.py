"""Fast paths in tinygpt.backend.kernels must equal their portable Array-API forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinygpt import backend


def _reference_gelu(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = math.sqrt(2 / math.pi)
    t = np.tanh(c * (x + 0.044715 * x**3))
    return 0.5 * x * (1 + t), 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)


def test_gelu_fast_path_equals_portable_form(xp_backend):
    x = backend.asarray(np.linspace(-8, 8, 4001).reshape(1, 4001))
    fast = [backend.to_numpy(a) for a in backend.gelu_and_slope(x)]
    portable = [backend.to_numpy(a) for a in backend.gelu_and_slope_portable(x)]
    for f, p in zip(fast, portable, strict=True):
        assert f.dtype == np.float32
        np.testing.assert_allclose(f, p, rtol=2e-6, atol=2e-6)


def test_gelu_chunked_numpy_path_equals_portable_form(xp_backend):
    """Large inputs take the chunked NumPy path (several chunks plus a ragged tail)."""
    from tinygpt.backend.libraries.numpy import CHUNKED_FROM

    host = np.random.default_rng(0).standard_normal(CHUNKED_FROM + 12345) * 4
    x = backend.asarray(host)
    fast = [backend.to_numpy(a) for a in backend.gelu_and_slope(x)]
    portable = [backend.to_numpy(a) for a in backend.gelu_and_slope_portable(x)]
    for f, p in zip(fast, portable, strict=True):
        if xp_backend.name == "numpy":
            np.testing.assert_array_equal(f, p)  # the same function, chunk by chunk
        else:  # CuPy's one kernel: NVRTC contracts a * b + c to one FMA, one rounding fewer
            np.testing.assert_allclose(f, p, rtol=2e-6, atol=2e-6)


def test_gelu_and_slope_match_the_formula_in_float64(xp_backend, float64):
    host = np.linspace(-6, 6, 601)
    y, slope = (backend.to_numpy(a) for a in backend.gelu_and_slope(backend.asarray(host)))
    want_y, want_slope = _reference_gelu(host)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(slope, want_slope, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (8, 6, 64, 64)])
def test_masked_softmax_is_a_causal_softmax(xp_backend, shape):
    from tinygpt.functional import causal_mask

    host = np.random.default_rng(0).standard_normal(shape) * 3
    got = backend.to_numpy(backend.masked_softmax(backend.asarray(host), causal_mask(shape[-1])))
    masked = np.where(np.tril(np.ones(shape[-2:], dtype=bool)), host, -np.inf)
    want = np.exp(masked - masked.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert np.all(got[..., 0, 1:] == 0)  # the first query sees only itself


@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (8, 6, 256, 256)])  # portable path, and chunked on NumPy
def test_masked_softmax_fast_path_equals_portable_form(xp_backend, shape):
    from tinygpt.functional import causal_mask

    host = np.random.default_rng(0).standard_normal(shape) * 3
    mask = causal_mask(shape[-1])
    fast = backend.to_numpy(backend.masked_softmax(backend.asarray(host), mask))
    portable = backend.to_numpy(backend.masked_softmax_portable(backend.asarray(host), mask))
    np.testing.assert_allclose(fast, portable, rtol=1e-6, atol=1e-7)
