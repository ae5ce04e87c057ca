"""TinyGPT against the PyTorch reference with the same weights: logits, gradients, training.

An independent implementation of the same architecture is the strongest check
that the whole model (not just each op) is right. Skipped where torch is absent.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygpt as tg
from tinygpt import backend

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "torch_reference.py"


def _reference():
    if "torch_reference" in sys.modules:
        return sys.modules["torch_reference"]
    spec = importlib.util.spec_from_file_location("torch_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_same_weights_give_same_logits_loss_and_gradients(xp_backend, positional):
    ref = _reference()
    config = tg.GPTConfig(vocab_size=13, block_size=12, n_layer=2, n_head=2, n_embd=16, positional=positional)
    model = tg.TinyGPT(config)
    theirs = ref.TorchGPT(ref.GPTConfig(13, 12, 2, 2, 16, positional=positional))
    ref.load_tinygpt_state(theirs, model.state_dict())
    tokens = np.random.default_rng(0).integers(0, 13, (3, 12))

    logits = model(backend.asarray(tokens))
    loss = tg.LanguageModelLoss()(logits, backend.asarray(tokens))
    loss.backward()
    t_tokens = torch.from_numpy(tokens)
    t_logits = theirs(t_tokens)
    t_loss = ref.lm_loss(t_logits, t_tokens)
    t_loss.backward()

    np.testing.assert_allclose(logits.numpy(), t_logits.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-5)
    their_grads = {n: p.grad for n, p in theirs.named_parameters()}
    transposed = ref._linear_weight_names(theirs)
    for name, p in model.named_parameters():
        want = their_grads[name].numpy()
        want = want.T if name in transposed else want
        np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-3, atol=2e-6, err_msg=name)


def test_training_steps_follow_pytorch(xp_backend):
    """Same init, same batches, AdamW + clipping + schedule: the loss curves coincide."""
    ref = _reference()
    config = tg.GPTConfig(vocab_size=13, block_size=12, n_layer=2, n_head=2, n_embd=16)
    model = tg.TinyGPT(config)
    theirs = ref.TorchGPT(ref.GPTConfig(13, 12, 2, 2, 16))
    ref.load_tinygpt_state(theirs, model.state_dict())
    schedule = tg.optim.warmup_cosine_lr(3e-3, 3e-4, 5, 30)
    ours_opt = tg.optim.AdamW(model.decay_groups(0.1), lr=3e-3, betas=(0.9, 0.99))
    their_opt = ref.make_optimizer(theirs, lr=3e-3, weight_decay=0.1, betas=(0.9, 0.99))
    rng = np.random.default_rng(1)
    stream = np.arange(13 * 8) % 13  # a learnable pattern: each token predicts the next
    ours, their_losses = [], []
    for step in range(30):
        starts = rng.integers(0, stream.size - 12, 4)
        tokens = np.stack([stream[i : i + 12] for i in starts])
        ours_opt.set_lr(schedule(step))
        ours_opt.zero_grad()
        loss = tg.LanguageModelLoss()(model(backend.asarray(tokens)), backend.asarray(tokens))
        loss.backward()
        _, scale = tg.optim.clip_scale(model.parameters(), 0.5)
        ours_opt.step(grad_scale=scale)
        ours.append(loss.item())

        for group in their_opt.param_groups:
            group["lr"] = schedule(step)
        their_opt.zero_grad()
        t_tokens = torch.from_numpy(tokens)
        t_loss = ref.lm_loss(theirs(t_tokens), t_tokens)
        t_loss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.5)
        their_opt.step()
        their_losses.append(t_loss.item())
    np.testing.assert_allclose(ours, their_losses, rtol=2e-4)
    assert ours[-1] < ours[0] - 0.3  # and it learned something
