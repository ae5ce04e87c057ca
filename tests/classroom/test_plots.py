"""Pictures: loss curves from metrics.jsonl, attention maps from a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinygpt import backend
from tinygpt import functional as F
from tinygpt.checkpoint import save_checkpoint
from tinygpt.classroom.plots import attention_figure_size, attention_maps, plot_attention, plot_loss_curves
from tinygpt.errors import CheckpointError, ConfigError
from tinygpt.models import GPTConfig, TinyGPT
from tinygpt.tensor import no_grad
from tinygpt.tokenizers import CharTokenizer

pytest.importorskip("matplotlib")
from matplotlib.image import imread

TEXT = "ROMEO.\nBut soft, what light through yonder window breaks?"


@pytest.fixture
def model_and_tokenizer():
    backend.manual_seed(0)
    tokenizer = CharTokenizer.from_text(TEXT)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=3, n_embd=24)
    return TinyGPT(config), tokenizer


@pytest.fixture
def run_dir(tmp_path):
    lines = [
        {"iter": i, "train_loss": 4.0 - 0.1 * i, "val_loss": 4.1 - 0.09 * i, "lr": 1e-3} for i in (0, 10, 20)
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"iter": 3')
    return tmp_path


def test_loss_plot_is_a_640x400_png(run_dir, tmp_path):
    out = plot_loss_curves(run_dir, tmp_path / "pics" / "loss.png")
    assert out.exists()
    assert imread(out).shape[:2] == (400, 640)


def test_loss_plot_without_metrics_names_the_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"metrics\.jsonl"):
        plot_loss_curves(tmp_path, tmp_path / "loss.png")


def test_attention_plot_has_one_panel_per_head_at_the_documented_size(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    out = plot_attention(model, tokenizer, "ROMEO.\nBut soft", 1, tmp_path / "attention.png")
    width, height = attention_figure_size(3)
    assert (width, height) == (700, 640)  # 2 x 2 grid of 3-inch panels
    assert imread(out).shape[:2] == (height, width)


def test_attention_maps_are_causal_and_rows_sum_to_one(xp_backend, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    probs = backend.to_numpy(attention_maps(model, tokenizer.encode("But soft"), 0))
    assert probs.shape == (3, 8, 8)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(probs, k=1) == 0.0)  # the future gets exactly zero weight


def test_attention_maps_are_the_weights_the_model_uses(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    ids = tokenizer.encode("ROMEO.")
    probs = attention_maps(model, ids, 0)  # (H, T, T)
    block = model.blocks[0]
    with no_grad():
        x = model.wpe(model.wte(backend.asarray([ids])))
        qkv = block.attn.qkv(block.ln1(x))
        expected = backend.to_numpy(F.causal_self_attention(qkv, 3).data)[0]  # (T, C)
    v = backend.to_numpy(qkv.data)[0, :, 48:].reshape(6, 3, 8).transpose(1, 0, 2)  # (H, T, D)
    mixed = (backend.to_numpy(probs) @ v).transpose(1, 0, 2).reshape(6, 24)
    np.testing.assert_allclose(mixed, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layer", [2, -1, 99])
def test_attention_rejects_a_layer_the_model_does_not_have(model_and_tokenizer, tmp_path, layer):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(ConfigError, match="numbered 0 to 1"):
        plot_attention(model, tokenizer, "ROMEO", layer, tmp_path / "a.png")


def test_attention_command_draws_from_a_checkpoint(model_and_tokenizer, tmp_path, capsys):
    from tinygpt.cli import main

    model, tokenizer = model_and_tokenizer
    save_checkpoint(tmp_path / "ckpt", model, tokenizer)
    out = tmp_path / "att.png"
    args = ["attention", "--checkpoint", str(tmp_path / "ckpt"), "--prompt", "But soft", "--out", str(out)]
    assert main([*args, "--layer", "1"]) == 0
    assert imread(out).shape[:2] == attention_figure_size(3)[::-1]
    assert main([*args, "--layer", "5"]) == 2
    assert "layer 5 does not exist" in capsys.readouterr().err


def test_plot_command_writes_the_png(run_dir, tmp_path):
    from tinygpt.cli import main

    assert main(["plot", str(run_dir), "--out", str(tmp_path / "curves.png")]) == 0
    assert imread(tmp_path / "curves.png").shape[:2] == (400, 640)


def test_missing_matplotlib_names_the_extra_to_install(monkeypatch, run_dir, tmp_path):
    import sys

    from tinygpt.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(MissingExtraError, match=r"pip install 'tinygpt\[plot\]'"):
        plot_loss_curves(run_dir, tmp_path / "loss.png")
