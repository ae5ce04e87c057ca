"""The pre-norm transformer block."""

from __future__ import annotations

import numpy as np

from tests.gradcheck import check_module_gradients, random_tensor
from tinygpt import TransformerBlock
from tinygpt.backend import Generator


def test_block_gradients_match_finite_differences(xp_backend, float64) -> None:
    block = TransformerBlock(4, 2, rng=Generator(1))
    x = random_tensor((1, 3, 4), 2)
    check_module_gradients(block, lambda x: (block(x) ** 2).sum(), [x], samples=4)


def test_block_is_pre_norm_residual(xp_backend, float64) -> None:
    block = TransformerBlock(8, 2, rng=Generator(3))
    for norm, seed in ((block.ln1, 4), (block.ln2, 5)):
        norm.weight.data = random_tensor((8,), seed).data  # non-trivial norms
    x = random_tensor((2, 4, 8), 6)
    h = x + block.attn(block.ln1(x))
    expected = h + block.mlp(block.ln2(h))
    np.testing.assert_allclose(block(x).numpy(), expected.numpy(), rtol=1e-12)


def test_block_with_zeroed_sublayer_outputs_is_identity(xp_backend, float64) -> None:
    block = TransformerBlock(8, 2, rng=Generator(7))
    for layer in (block.attn.proj, block.mlp.proj):
        layer.weight.data = layer.weight.data * 0.0
        layer.bias.data = layer.bias.data * 0.0
    x = random_tensor((2, 4, 8), 8, scale=10.0)  # not normalised: the residual path is untouched
    np.testing.assert_array_equal(block(x).numpy(), x.numpy())


def test_block_parameter_names(xp_backend) -> None:
    names = [n for n, _ in TransformerBlock(4, 2).named_parameters()]
    assert names == [
        "ln1.weight",
        "ln1.bias",
        "attn.qkv.weight",
        "attn.qkv.bias",
        "attn.proj.weight",
        "attn.proj.bias",
        "ln2.weight",
        "ln2.bias",
        "mlp.fc.weight",
        "mlp.fc.bias",
        "mlp.proj.weight",
        "mlp.proj.bias",
    ]
