"""Parameter, FLOP and memory counts of a TinyGPT, checked by hand and by measurement."""

from __future__ import annotations

import pytest

from tinygpt import backend
from tinygpt import functional as F
from tinygpt.models import GPTConfig, TinyGPT
from tinygpt.tensor import no_grad

# A small model: V=10 characters, T=8, 2 layers, 2 heads, C=16.
SMALL = GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, n_embd=16)


def test_parameter_count_matches_a_hand_count():
    c, v, t = 16, 10, 8
    per_block = (
        2 * c  # ln1 weight and bias
        + (c * 3 * c + 3 * c)  # qkv: 16x48 + 48 = 816
        + (c * c + c)  # attention output projection: 272
        + 2 * c  # ln2
        + (c * 4 * c + 4 * c)  # mlp fc: 16x64 + 64 = 1088
        + (4 * c * c + c)  # mlp proj: 64x16 + 16 = 1040
    )
    assert per_block == 3280
    total = v * c + t * c + 2 * per_block + 2 * c  # wte (also the tied head) + wpe + blocks + ln_f
    assert total == 6880
    assert SMALL.num_parameters() == total
    assert TinyGPT(SMALL).num_parameters() == total


def test_sinusoidal_positions_have_no_parameters():
    config = GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, n_embd=16, positional="sinusoidal")
    assert config.num_parameters() == 6880 - 8 * 16 == TinyGPT(config).num_parameters()


def test_flops_per_token_match_a_hand_count():
    c, v, t, n = 16, 10, 8, 2
    # Per layer and token, a multiply-add per weight: qkv 3C^2, proj C^2, fc 4C^2, mlp proj 4C^2.
    matmul = n * 2 * (3 * c * c + c * c + 4 * c * c + 4 * c * c) + 2 * c * v  # + the tied head
    # Attention per layer and token: q.k over T keys and p.v over T values, C multiply-adds each
    # (the dense (T, T) matmul computes the masked entries too).
    attention = n * (2 * t * c + 2 * t * c)
    assert (matmul, attention) == (12608, 1024)
    flops = SMALL.flops_per_token()
    assert flops["forward"] == matmul + attention == 13632
    assert flops["train_step"] == 3 * 13632  # backward: two matmuls (input and weight grads) per forward one


def test_flops_per_token_match_the_matmuls_a_forward_pass_performs(monkeypatch):
    """Count 2*m*k*n for every matmul the model actually runs on one full window."""
    counted = {"flops": 0}
    linear, attention = F.linear, F.causal_self_attention

    def counting_linear(x, weight, bias=None):
        rows = x.size // x.shape[-1]
        counted["flops"] += 2 * rows * weight.shape[0] * weight.shape[1]
        return linear(x, weight, bias)

    def counting_attention(qkv, n_head, *args, **kwargs):
        b, t, c3 = qkv.shape
        counted["flops"] += 2 * (2 * b * t * t * (c3 // 3))  # q k^T and p v, all heads
        return attention(qkv, n_head, *args, **kwargs)

    monkeypatch.setattr(F, "linear", counting_linear)
    monkeypatch.setattr(F, "causal_self_attention", counting_attention)
    model = TinyGPT(SMALL)
    with no_grad():
        model(backend.asarray([[1, 2, 3, 4, 5, 6, 7, 8]]))
    assert counted["flops"] / SMALL.block_size == SMALL.flops_per_token()["forward"]


def test_summary_lists_every_layer_and_the_totals():
    text = TinyGPT(SMALL).summary(batch_size=4)
    for name in ("wte", "wpe", "blocks.0", "blocks.1", "ln_f"):
        assert name in text
    assert "6,880" in text
    assert "13,632" in text and "40,896" in text
    assert "3,280" in text  # one block


@pytest.mark.parametrize("batch", [1, 12])
def test_memory_estimate_covers_weights_gradients_and_adam_moments(batch):
    weights_and_state = 4 * 4 * SMALL.num_parameters()  # float32 weights, grads, m, v
    assert SMALL.memory_bytes(batch) > weights_and_state
    assert SMALL.memory_bytes(2 * batch) > SMALL.memory_bytes(batch)
