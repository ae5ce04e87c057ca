"""Token embeddings and positional encodings."""

from __future__ import annotations

import numpy as np
import pytest

from tests.gradcheck import check_module_gradients, random_tensor
from tinygpt import Embedding, PositionalEncoding, Tensor, backend
from tinygpt.errors import ConfigError, ShapeError
from tinygpt.layers import sinusoidal_table


def classic_sinusoids(length: int, dim: int) -> np.ndarray:
    """pe[pos, 2i] = sin(pos / 10000^(2i/dim)), pe[pos, 2i+1] = cos(pos / 10000^(2i/dim))."""
    pe = np.zeros((length, dim))
    for pos in range(length):
        for i in range(0, dim, 2):
            angle = pos / 10000 ** (i / dim)
            pe[pos, i] = np.sin(angle)
            if i + 1 < dim:
                pe[pos, i + 1] = np.cos(angle)
    return pe


@pytest.mark.parametrize("dim", [8, 7])
def test_sinusoidal_table_matches_classic_formula(xp_backend, float64, dim: int) -> None:
    table = backend.to_numpy(sinusoidal_table(12, dim))
    assert table.shape == (12, dim)
    np.testing.assert_allclose(table, classic_sinusoids(12, dim), rtol=1e-10, atol=1e-12)


def test_sinusoidal_encoding_adds_table_at_offset(xp_backend) -> None:
    pe = PositionalEncoding(10, 4)
    x = Tensor(np.zeros((2, 3, 4)))
    out = pe(x, offset=5).numpy()
    expected = classic_sinusoids(10, 4)[5:8]
    np.testing.assert_allclose(out[0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], expected, rtol=1e-5, atol=1e-6)
    assert pe.parameters() == []
    assert out.dtype == np.float32


def test_sinusoidal_table_follows_the_float_dtype(xp_backend) -> None:
    pe = PositionalEncoding(4, 4)
    assert pe.table().dtype == xp_backend.xp.float32
    with backend.default_float("float64"):
        assert pe.table().dtype == xp_backend.xp.float64


def test_learned_positional_gradient_reaches_only_used_rows(xp_backend, float64) -> None:
    pe = PositionalEncoding(6, 3, kind="learned")
    assert [n for n, _ in pe.named_parameters()] == ["weight"]
    x = random_tensor((2, 2, 3), 1)
    (pe(x, offset=3) * x).sum().backward()
    grad = pe.weight.grad.numpy()
    np.testing.assert_allclose(grad[3:5], x.numpy().sum(0))
    assert not grad[:3].any() and not grad[5:].any()
    check_module_gradients(pe, lambda x: (pe(x, offset=1) ** 2).sum(), [x])


def test_positional_encoding_rejects_too_long_input_and_unknown_kind(xp_backend) -> None:
    pe = PositionalEncoding(4, 2)
    with pytest.raises(ShapeError, match="block_size"):
        pe(Tensor(np.zeros((1, 3, 2))), offset=2)
    with pytest.raises(ConfigError, match="rotary"):
        PositionalEncoding(4, 2, kind="rotary")


def test_embedding_looks_up_rows_and_accumulates_gradient(xp_backend, float64) -> None:
    emb = Embedding(5, 3)
    assert emb.weight.shape == (5, 3)
    assert 0.005 < emb.weight.numpy().std() < 0.05  # N(0, 0.02)
    ids = Tensor(np.array([[1, 4, 1]]))
    out = emb(ids)
    assert out.shape == (1, 3, 3)
    np.testing.assert_array_equal(out.numpy()[0, 2], emb.weight.numpy()[1])
    check_module_gradients(emb, lambda: (emb(ids) ** 2).sum(), [])
