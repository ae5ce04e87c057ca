"""TinyGPT's own model: GPT-2's initialisation, the tied head, attention maps, config checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinygpt import backend
from tinygpt.errors import ConfigError, ShapeError, TokenIdError
from tinygpt.models import GPTConfig, TinyGPT
from tinygpt.tensor import no_grad


def _weights(model):
    return {name: backend.to_numpy(p.data) for name, p in model.named_parameters()}


def test_gpt2_initialisation_scales_residual_projections_and_zeroes_biases(xp_backend):
    n_layer = 6
    config = GPTConfig(vocab_size=300, block_size=128, n_layer=n_layer, n_head=4, n_embd=128)
    weights = _weights(TinyGPT(config))
    residual_std = 0.02 / math.sqrt(2 * n_layer)
    for name, w in weights.items():
        if name.endswith(("attn.proj.weight", "mlp.proj.weight")):
            assert w.std() == pytest.approx(residual_std, rel=0.05), name
        elif name.endswith(("qkv.weight", "fc.weight")) or name in ("wte.weight", "wpe.weight"):
            assert w.std() == pytest.approx(0.02, rel=0.05), name
        elif ".ln" in name or name.startswith("ln_f"):
            expected = 1.0 if name.endswith("weight") else 0.0
            np.testing.assert_array_equal(w, np.full_like(w, expected), err_msg=name)
        elif name.endswith("bias"):
            np.testing.assert_array_equal(w, np.zeros_like(w), err_msg=name)
        else:
            raise AssertionError(f"a parameter the test does not know: {name}")
        if w.std() > 0:
            assert abs(w.mean()) < 0.002, name  # zero-mean draws


def test_the_output_head_is_the_token_embedding(xp_backend):
    model = TinyGPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))
    assert "lm_head.weight" not in dict(model.named_parameters())
    ids = backend.asarray([[1, 2, 3]])
    before = backend.to_numpy(model(ids).data)
    model.wte.weight.data = model.wte.weight.data * 2.0  # scales both reading and writing tokens
    assert not np.allclose(backend.to_numpy(model(ids).data), before)


def test_attention_maps_are_causal_distributions(xp_backend):
    model = TinyGPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16))
    maps = model.attention_maps(backend.asarray([[1, 2, 3, 4, 5]]))
    assert len(maps) == 2
    for weights in maps:
        w = backend.to_numpy(weights)
        assert w.shape == (1, 2, 5, 5)
        np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
        assert np.all(np.triu(w[0, 0], k=1) == 0.0)


def test_config_sizes_accept_numpy_integers_and_refuse_fractions():
    config = GPTConfig(vocab_size=np.int64(5), n_layer=np.int32(2))
    assert type(config.vocab_size) is int and config.n_layer == 2
    with pytest.raises(ConfigError, match=r"n_layer \(--n-layer\) must be an integer >= 1"):
        GPTConfig(vocab_size=5, n_layer=2.5)
    with pytest.raises(ConfigError, match="vocab_size"):
        GPTConfig(vocab_size=True)


def test_config_from_dict_is_strict_about_keys():
    with pytest.raises(ConfigError, match=r"unknown keys \['n_layers'\]"):
        GPTConfig.from_dict({"vocab_size": 5, "n_layers": 2})
    with pytest.raises(ConfigError, match=r"missing keys \['vocab_size'\]"):
        GPTConfig.from_dict({"n_layer": 2})


# The Python API checks its inputs as the CLI does ------------------------------------------
def _small():
    return TinyGPT(GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=8))


@pytest.mark.parametrize("bad", [-1, 5, -5, 1000])
def test_token_ids_outside_the_vocabulary_are_refused_negative_ones_included(xp_backend, bad):
    with pytest.raises(TokenIdError, match=rf"token id {bad} is outside the vocabulary \[0, 5\)"):
        _small()(backend.asarray([[0, bad, 1]]))


def test_plain_lists_work_and_a_1d_prompt_is_explained(xp_backend):
    model = _small()
    np.testing.assert_array_equal(
        backend.to_numpy(model([[1, 2, 3]]).data), backend.to_numpy(model(backend.asarray([[1, 2, 3]])).data)
    )
    with pytest.raises(ShapeError, match=r"1-D sequence of 3 ids; for one sequence pass \[ids\]"):
        model([1, 2, 3])


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ([[]], r"at least one sequence of at least one token, got shape \(1, 0\)"),
        ([], r"got a 1-D sequence of 0 ids"),
        ([[1.5, 2.0]], r"must be integers, got dtype .*float.*round them with int\(\)"),
        ("abc", r"must be integers in a backend array, a Tensor or nested lists, got str"),
        (None, r"must be integers in a backend array, a Tensor or nested lists, got NoneType"),
        ({"ids": [1]}, r"got dict"),
    ],
)
def test_empty_float_text_or_missing_ids_are_refused_naming_what_was_expected(xp_backend, ids, message):
    with pytest.raises(ShapeError, match=message):
        _small()(ids)


@pytest.mark.parametrize("config", [None, {"vocab_size": 5}, 5])
def test_tinygpt_needs_a_gptconfig(config):
    with pytest.raises(ConfigError, match="TinyGPT needs a GPTConfig"):
        TinyGPT(config)


def test_generation_refuses_out_of_range_prompt_ids(xp_backend):
    from tinygpt.generation import generate

    with pytest.raises(TokenIdError, match="-2"):
        generate(_small(), [[1, -2]], 3)


def test_next_token_logits_equal_the_last_position_of_forward(xp_backend):
    # Sampling's path: the head runs on the last position only, with and without a KV cache.
    model = TinyGPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)).eval()
    ids = backend.asarray(np.random.default_rng(0).integers(0, 11, (2, 6)))
    with no_grad():
        full = backend.to_numpy(model(ids).data)  # (B, T, V)
        last = backend.to_numpy(model.next_token_logits(ids).data)  # (B, V)
        caches = model.new_caches(2)
        prompt = backend.to_numpy(model.next_token_logits(ids[:, :5], caches).data)
        step = backend.to_numpy(model.next_token_logits(ids[:, 5:], caches).data)
    assert last.shape == (2, 11)
    np.testing.assert_allclose(last, full[:, -1, :], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prompt, full[:, 4, :], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(step, full[:, 5, :], rtol=1e-5, atol=1e-6)


def test_next_token_logits_are_differentiable_like_forward(xp_backend):
    model = TinyGPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))
    ids = backend.asarray([[1, 2, 3, 4]])
    model.next_token_logits(ids).sum().backward()
    fast = {name: backend.to_numpy(p.grad_data) for name, p in model.named_parameters()}
    model.zero_grad()
    model(ids)[:, -1, :].sum().backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(
            fast[name], backend.to_numpy(p.grad_data), rtol=1e-5, atol=1e-7, err_msg=name
        )
