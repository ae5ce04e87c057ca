"""Single-head and multi-head attention, and the KV cache."""

from __future__ import annotations

import numpy as np
import pytest

from tests.gradcheck import check_module_gradients, random_tensor
from tinygpt import MultiHeadAttention, SelfAttention, Tensor, concat, no_grad
from tinygpt.backend import Generator
from tinygpt.errors import ConfigError
from tinygpt.layers import KVCache


def test_multi_head_attention_gradients_match_finite_differences(xp_backend, float64) -> None:
    attn = MultiHeadAttention(4, 2, rng=Generator(1))
    x = random_tensor((2, 3, 4), 2)
    check_module_gradients(attn, lambda x: (attn(x) ** 2).sum(), [x], samples=8)


def test_self_attention_gradients_match_finite_differences(xp_backend, float64) -> None:
    attn = SelfAttention(4, rng=Generator(3))
    x = random_tensor((2, 3, 4), 4)
    check_module_gradients(attn, lambda x: (attn(x) ** 2).sum(), [x], samples=8)


@pytest.mark.parametrize("causal", [True, False])
def test_one_head_attention_equals_self_attention(xp_backend, float64, causal: bool) -> None:
    single = SelfAttention(6, causal=causal, rng=Generator(5))
    multi = MultiHeadAttention(6, 1, causal=causal, rng=Generator(6))
    q, k, v = single.query, single.key, single.value
    multi.qkv.weight.data = concat([q.weight, k.weight, v.weight], axis=1).data
    multi.qkv.bias.data = concat([q.bias, k.bias, v.bias], axis=0).data
    multi.proj.weight.data = single.proj.weight.data
    multi.proj.bias.data = single.proj.bias.data

    x_single, x_multi = random_tensor((2, 5, 6), 7), random_tensor((2, 5, 6), 7)
    x_single.requires_grad = x_multi.requires_grad = True
    seed = random_tensor((2, 5, 6), 8)
    out_single, out_multi = single(x_single), multi(x_multi)
    np.testing.assert_allclose(out_multi.numpy(), out_single.numpy(), rtol=1e-10, atol=1e-12)
    out_single.backward(seed)
    out_multi.backward(seed)
    np.testing.assert_allclose(x_multi.grad.numpy(), x_single.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name in ("weight", "bias"):
        parts = [getattr(layer, name).grad.numpy() for layer in (q, k, v)]
        fused = getattr(multi.qkv, name).grad.numpy()
        np.testing.assert_allclose(fused, np.concatenate(parts, axis=-1), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(
            getattr(multi.proj, name).grad.numpy(), getattr(single.proj, name).grad.numpy(), rtol=1e-10
        )


@pytest.mark.parametrize("layer", ["multi", "single"])
def test_causal_attention_ignores_future_inputs(xp_backend, float64, layer: str) -> None:
    attn = (
        MultiHeadAttention(8, 2, rng=Generator(9)) if layer == "multi" else SelfAttention(8, rng=Generator(9))
    )
    x = random_tensor((1, 6, 8), 10)
    changed = x.numpy()
    changed[0, 3] += 5.0
    a, b = attn(x).numpy(), attn(Tensor(changed)).numpy()
    np.testing.assert_array_equal(a[0, :3], b[0, :3])
    assert not np.allclose(a[0, 3:], b[0, 3:])


def test_non_causal_attention_sees_future_inputs(xp_backend, float64) -> None:
    attn = MultiHeadAttention(8, 2, causal=False, rng=Generator(9))
    x = random_tensor((1, 4, 8), 11)
    changed = x.numpy()
    changed[0, 3] += 5.0
    assert not np.allclose(attn(x).numpy()[0, 0], attn(Tensor(changed)).numpy()[0, 0])


def test_heads_must_divide_the_width() -> None:
    with pytest.raises(ConfigError, match="divisible"):
        MultiHeadAttention(10, 3)


@pytest.mark.parametrize("fixed_shapes", [False, True], ids=["sliced", "fixed-shapes"])
def test_kv_cache_gives_the_same_outputs_as_full_attention(
    xp_backend, float64, fixed_shapes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fixed-shapes (JAX's form): attend over the whole capacity, the unfilled tail masked out.
    monkeypatch.setattr(xp_backend.library, "fixed_shapes", fixed_shapes)
    attn = MultiHeadAttention(8, 2, rng=Generator(12)).eval()
    x = random_tensor((2, 5, 8), 13)
    with no_grad():
        full = attn(x).numpy()
        cache = KVCache(batch=2, n_head=2, capacity=7, head_dim=4, keep_weights=True)
        first = attn(x[:, :2], cache=cache).numpy()  # a prompt of two tokens
        steps = [attn(x[:, t : t + 1], cache=cache).numpy() for t in range(2, 5)]
    np.testing.assert_allclose(np.concatenate([first, *steps], axis=1), full, rtol=1e-10, atol=1e-12)
    assert cache.length == 5
    assert cache.weights is not None and tuple(cache.weights.shape) == (2, 2, 1, 5)  # the last token's


def test_attention_dropout_only_in_training(xp_backend, float64) -> None:
    attn = MultiHeadAttention(8, 2, dropout=0.5, rng=Generator(14))
    x = random_tensor((1, 4, 8), 15)
    assert not np.allclose(attn(x).numpy(), attn(x).numpy())  # fresh masks each call
    attn.eval()
    np.testing.assert_array_equal(attn(x).numpy(), attn(x).numpy())
