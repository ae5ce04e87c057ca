"""The profiler: time by kind of operation, forward and backward, and no trace left afterwards."""

from __future__ import annotations

import pytest

from tinygpt import functional as F
from tinygpt import optim
from tinygpt.classroom.profiler import CATEGORIES, Profiler
from tinygpt.data import token_array
from tinygpt.models import GPTConfig, TinyGPT
from tinygpt.tensor import Tensor
from tinygpt.tokenizers import CharTokenizer
from tinygpt.training import LanguageModelTrainer, TrainConfig

TEXT = "to be or not to be, that is the question; whether tis nobler in the mind to suffer. " * 12


def _tiny_trainer() -> LanguageModelTrainer:
    tokenizer = CharTokenizer.from_text(TEXT)
    ids = token_array(tokenizer.encode(TEXT))
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32)
    settings = TrainConfig(batch_size=4, max_iters=3, eval_interval=3, eval_iters=1)
    return LanguageModelTrainer(TinyGPT(config), tokenizer, ids[:800], ids[800:], settings, log=None)


def test_profiling_training_steps_times_matmul_attention_and_optimizer():
    trainer = _tiny_trainer()
    with Profiler() as prof:
        for _ in range(3):
            trainer.train_step(trainer.train_batches.draw())
    parts = prof.breakdown()
    for category in ("matmul", "attention", "normalisation", "elementwise", "loss", "optimizer"):
        assert parts[category] > 0.0, category
    # backward closures made while profiling are timed under their op's category
    assert prof.backward_seconds["matmul"] > 0.0 and prof.backward_seconds["attention"] > 0.0
    assert sum(parts[c] for c in CATEGORIES) <= parts["total"]
    assert parts["other"] >= 0.0
    # 2 blocks x 4 Dense + the tied head = 9 linears forward and 9 backward per step
    assert prof.calls["matmul"] == 3 * 18
    assert prof.calls["optimizer"] == 3 * 2  # clip_grad_norm and step


def test_nothing_is_patched_and_observing_ends_on_exit_even_after_an_error():
    before = (F.linear, vars(Tensor)["__add__"], vars(optim.Optimizer)["step"])
    with pytest.raises(ZeroDivisionError), Profiler() as prof:
        assert F.linear is before[0]  # ops are marked with @op, never replaced
        1 / 0  # noqa: B018
    assert (F.linear, vars(Tensor)["__add__"], vars(optim.Optimizer)["step"]) == before
    F.linear(Tensor([[1.0]]), Tensor([[2.0]]))
    assert prof.calls["matmul"] == 0 and not prof.active


def test_graphs_built_while_profiling_still_run_backward_after_exit():
    x = Tensor([[1.0, 2.0]], requires_grad=True)
    w = Tensor([[1.0], [3.0]], requires_grad=True)
    with Profiler() as prof:
        y = F.linear(x, w).sum()
    y.backward()
    assert x.grad.tolist() == [[1.0, 3.0]]
    assert prof.calls["matmul"] == 1  # the backward ran after exit: not counted


def test_report_is_a_table_with_every_category_and_other():
    with Profiler() as prof:
        (Tensor([1.0, 2.0]) * 2.0).sum()
    lines = prof.report().splitlines()
    names = [line.split()[0] for line in lines[1:]]
    assert names == [*CATEGORIES, "other", "total"]
    assert prof.calls["elementwise"] == 2


def test_profilers_do_not_nest():
    with Profiler(), pytest.raises(RuntimeError, match="already active"), Profiler():
        pass


def test_train_command_with_profile_prints_the_table(tmp_path, capsys):
    from tinygpt.cli import main

    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    args = ["train", "--text", str(text), "--out", str(tmp_path / "run"), "--max-iters", "2"]
    args += ["--eval-interval", "2", "--eval-iters", "1", "--n-layer", "1", "--n-embd", "16"]
    args += ["--n-head", "2", "--block-size", "8", "--batch-size", "2", "--no-progress", "--profile"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "matmul" in out and "optimizer" in out and "other" in out
