"""Checks of the PyTorch reference model used to validate and benchmark tinygpt."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "torch_reference.py"


def _load_reference():
    """Import scripts/torch_reference.py by path: scripts/ is not a package."""
    spec = importlib.util.spec_from_file_location("torch_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


ref = _load_reference()

V, T, C = 11, 8, 16


def tiny_model(seed: int = 0, positional: str = "learned", fused_sdpa: bool = False) -> ref.TorchGPT:
    """A two-layer model small enough to run in milliseconds."""
    torch.manual_seed(seed)
    config = ref.GPTConfig(vocab_size=V, block_size=T, n_layer=2, n_head=2, n_embd=C, positional=positional)
    return ref.TorchGPT(config, fused_sdpa=fused_sdpa).eval()


def random_tokens(batch: int = 3, length: int = T, seed: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, V, size=(batch, length)))  # (B, T)


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
@pytest.mark.parametrize("fused_sdpa", [False, True])
def test_causal_mask_blocks_future_tokens(positional: str, fused_sdpa: bool) -> None:
    model = tiny_model(positional=positional, fused_sdpa=fused_sdpa)
    x = random_tokens()
    t = 5
    x2 = x.clone()
    x2[:, t] = (x2[:, t] + 1) % V
    with torch.no_grad():
        a, b = model(x), model(x2)  # (B, T, V)
    torch.testing.assert_close(a[:, :t], b[:, :t], rtol=0, atol=0)
    assert not torch.allclose(a[:, t:], b[:, t:])


def test_fused_sdpa_matches_explicit_attention() -> None:
    explicit = tiny_model(seed=3)
    fused = tiny_model(seed=3, fused_sdpa=True)
    x = random_tokens()
    with torch.no_grad():
        torch.testing.assert_close(fused(x), explicit(x), rtol=1e-5, atol=1e-5)


def test_export_then_load_round_trips_weights_and_outputs() -> None:
    source, target = tiny_model(seed=0), tiny_model(seed=1)
    state = ref.export_tinygpt_state(source)
    assert all(v.dtype == np.float32 for v in state.values())
    ref.load_tinygpt_state(target, state)
    again = ref.export_tinygpt_state(target)
    assert state.keys() == again.keys()
    for name in state:
        np.testing.assert_array_equal(state[name], again[name])
    x = random_tokens()
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_exported_dense_weights_are_in_by_out_and_embeddings_untouched() -> None:
    model = tiny_model()
    state = ref.export_tinygpt_state(model)
    assert state["blocks.0.attn.qkv.weight"].shape == (C, 3 * C)
    assert state["blocks.0.mlp.fc.weight"].shape == (C, 4 * C)
    assert state["blocks.0.mlp.proj.weight"].shape == (4 * C, C)
    assert state["wte.weight"].shape == (V, C)
    assert state["wpe.weight"].shape == (T, C)
    assert state["ln_f.weight"].shape == (C,)
    # tinygpt computes x @ W + b; the exported layout must reproduce torch's Linear.
    h = np.random.default_rng(0).standard_normal((4, C)).astype(np.float32)
    expected = model.blocks[0].mlp.fc(torch.from_numpy(h)).detach().numpy()
    got = h @ state["blocks.0.mlp.fc.weight"] + state["blocks.0.mlp.fc.bias"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_parameter_names_match_tinygpt() -> None:
    names = set(ref.export_tinygpt_state(tiny_model()))
    per_block = [
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
    expected = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"}
    expected |= {f"blocks.{i}.{n}" for i in range(2) for n in per_block}
    assert names == expected
    assert "wpe.weight" not in ref.export_tinygpt_state(tiny_model(positional="sinusoidal"))


def test_load_rejects_state_with_wrong_names() -> None:
    state = ref.export_tinygpt_state(tiny_model())
    del state["ln_f.bias"]
    with pytest.raises(KeyError, match="ln_f.bias"):
        ref.load_tinygpt_state(tiny_model(), state)


def test_lm_loss_equals_manual_shifted_cross_entropy() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 5, V)).astype(np.float64)  # (B, T, V)
    tokens = rng.integers(0, V, size=(2, 5))  # (B, T)
    pred = logits[:, :-1]  # (B, T-1, V)
    log_probs = pred - np.log(np.exp(pred).sum(-1, keepdims=True))
    target = tokens[:, 1:]  # (B, T-1)
    manual = -np.take_along_axis(log_probs, target[..., None], -1).mean()
    got = ref.lm_loss(torch.from_numpy(logits), torch.from_numpy(tokens)).item()
    assert got == pytest.approx(manual, rel=1e-12)


def test_evaluate_full_averages_every_non_overlapping_window() -> None:
    model = tiny_model()
    ids = np.random.default_rng(2).integers(0, V, size=5 * T + 3)  # tail is dropped
    windows = torch.from_numpy(ids[: 5 * T].reshape(5, T))
    with torch.no_grad():
        expected = ref.lm_loss(model(windows), windows).item()
    got = ref.evaluate_full(model, ids, T, batch_size=2)  # uneven batches
    assert got == pytest.approx(expected, rel=1e-5)


def test_init_scales_residual_projections_down() -> None:
    torch.manual_seed(0)
    config = ref.GPTConfig(vocab_size=V, block_size=T, n_layer=8, n_embd=256)
    model = ref.TorchGPT(config)
    proj_std = model.blocks[0].mlp.proj.weight.std().item()
    fc_std = model.blocks[0].mlp.fc.weight.std().item()
    assert proj_std == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert fc_std == pytest.approx(0.02, rel=0.05)
    assert torch.all(model.blocks[0].attn.qkv.bias == 0)
    assert torch.all(model.ln_f.weight == 1)


def test_optimizer_decays_matrices_only_and_counts_tied_weight_once() -> None:
    model = tiny_model()
    opt = ref.make_optimizer(model, 1e-3, 0.1, (0.9, 0.99))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() < 2 for p in no_decay["params"])
    assert sum(p is model.wte.weight for p in decay["params"]) == 1
    n_opt = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_opt == model.num_parameters()


def test_lr_schedule_warms_up_then_decays_to_min_lr() -> None:
    def lr(it: int) -> float:
        return ref.lr_at(it, 1e-3, 1e-4, warmup_iters=10, max_iters=110)

    assert lr(0) == pytest.approx(1e-3 / 11)
    assert lr(9) == pytest.approx(1e-3 * 10 / 11)
    assert lr(10) == pytest.approx(1e-3)
    assert lr(60) == pytest.approx(0.55e-3)
    assert lr(110) == pytest.approx(1e-4)
    assert lr(500) == pytest.approx(1e-4)


def test_sinusoidal_table_follows_sin_cos_formula() -> None:
    pe = ref.sinusoidal_table(6, 8).numpy()  # (T, C)
    pos, i = 3, 2
    assert pe[pos, 2 * i] == pytest.approx(math.sin(pos / 10000 ** (2 * i / 8)))
    assert pe[pos, 2 * i + 1] == pytest.approx(math.cos(pos / 10000 ** (2 * i / 8)))


def test_sample_windows_may_start_at_the_last_valid_offset() -> None:
    ids = np.arange(T)
    x = ref.sample_windows(ids, T, 4, np.random.default_rng(0))
    assert x.shape == (4, T)
    assert torch.all(x == torch.arange(T))


def test_short_training_run_reduces_loss() -> None:
    ids = np.tile(np.arange(V), 40)  # a trivially predictable sequence
    config = ref.GPTConfig(vocab_size=V, block_size=T, n_layer=1, n_head=2, n_embd=C)
    result = ref.train(
        config,
        ids,
        ids,
        batch_size=4,
        max_iters=30,
        lr=1e-2,
        warmup_iters=2,
        eval_interval=15,
        eval_iters=2,
        log=lambda s: None,
    )
    assert [e["iter"] for e in result["evals"]] == [0, 15, 30]
    assert result["final_val_loss_full"] < result["evals"][0]["val_loss"] - 0.5
