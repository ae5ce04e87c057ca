"""Training loops: learning, exact resume, determinism, non-finite handling, metrics, odd texts."""

import json
import math

import numpy as np
import pytest

from tests.lm_helpers import PATTERN_TEXT, tiny_model, token_splits
from tinygpt import backend
from tinygpt.checkpoint import load_checkpoint, resolve_checkpoint
from tinygpt.errors import ConfigError, CorpusError, NumericalError
from tinygpt.layers import Dense
from tinygpt.losses import MSELoss
from tinygpt.optim import SGD
from tinygpt.tensor import Tensor
from tinygpt.tokenizers import CharTokenizer
from tinygpt.training import LanguageModelTrainer, TrainConfig, Trainer, TrainingInterrupted, evaluate_ids


def _config(**overrides):
    settings = {
        "batch_size": 8,
        "max_iters": 60,
        "lr": 1e-2,
        "min_lr": 1e-3,
        "warmup_iters": 5,
        "weight_decay": 0.0,
        "eval_interval": 20,
        "eval_iters": 2,
        "seed": 7,
    }
    settings.update(overrides)
    return TrainConfig(**settings)


def _trainer(text=PATTERN_TEXT, out_dir=None, model_seed=0, callbacks=(), **overrides):
    tokenizer = CharTokenizer.from_text(text)
    train_ids, val_ids = token_splits(text, tokenizer)
    model_options = {k: overrides.pop(k) for k in ("n_embd", "dropout", "block_size") if k in overrides}
    model = tiny_model(tokenizer.vocab_size, seed=model_seed, **model_options)
    return LanguageModelTrainer(
        model,
        tokenizer,
        train_ids,
        val_ids,
        _config(**overrides),
        out_dir=out_dir,
        callbacks=callbacks,
        show_progress=False,
    )


def _repeats(value):
    """``value`` as a repeat must give it: bit for bit, or to float32 rounding where the backend is
    not ``repeatable`` (CuPy: atomic adds in the embedding gradient; docs/gpu.md)."""
    return value if backend.current().library.repeatable else pytest.approx(value, rel=1e-4, abs=1e-6)


def _step_losses():
    losses = {}

    def record(event):
        if event["event"] == "step":
            losses[event["step"]] = event["loss"]

    return losses, record


# Learning -----------------------------------------------------------------------------
def test_tiny_model_memorizes_a_repeated_text(xp_backend):
    trainer = _trainer(n_embd=32, max_iters=200, eval_interval=200, eval_iters=4)
    summary = trainer.train()
    assert summary["train_loss"] < 0.1
    assert evaluate_ids(trainer.model, trainer.train_ids) < 0.1
    assert trainer.step == 200


def test_generic_trainer_fits_a_tiny_regression():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 1)).astype(np.float32)
    y = 3.0 * x - 1.0
    backend.manual_seed(0)
    model = Dense(1, 1)
    trainer = Trainer(model, MSELoss(), SGD(model.parameters(), lr=0.3))

    def batches():
        return [
            (Tensor(backend.asarray(x[i : i + 16])), backend.asarray(y[i : i + 16])) for i in range(0, 64, 16)
        ]

    history = trainer.fit(batches, epochs=40, eval_batches=batches)
    assert len(history) == 40 and trainer.step == 160
    assert history[-1]["train_loss"] < 1e-4 < history[0]["train_loss"]
    assert history[-1]["eval_loss"] < 1e-4
    np.testing.assert_allclose(backend.to_numpy(model.weight.data), [[3.0]], atol=1e-2)
    np.testing.assert_allclose(backend.to_numpy(model.bias.data), [-1.0], atol=1e-2)


def test_gradient_accumulation_averages_the_batches():
    trainer = _trainer(grad_accum=3, max_iters=5, eval_interval=5)
    assert len(trainer.train_batches.draw()) == 3
    assert math.isfinite(trainer.train_step(trainer.train_batches.draw())["loss"])


# Determinism and resume --------------------------------------------------------------
def test_same_seed_gives_bit_identical_losses():
    runs = []
    for _ in range(2):
        losses, record = _step_losses()
        _trainer(callbacks=[record], max_iters=50, eval_interval=50, dropout=0.1).train()
        runs.append([losses[s] for s in range(1, 51)])
    assert runs[1] == _repeats(runs[0])
    losses, record = _step_losses()
    _trainer(callbacks=[record], max_iters=50, eval_interval=50, dropout=0.1, seed=8).train()
    assert [losses[s] for s in range(1, 51)] != runs[0]


@pytest.mark.parametrize("stop_at", [20, 33])  # at an evaluation checkpoint, and between two
def test_resume_repeats_the_uninterrupted_losses_exactly(tmp_path, stop_at):
    options = {"max_iters": 60, "eval_interval": 20, "dropout": 0.1}
    reference, record = _step_losses()
    full = _trainer(out_dir=tmp_path / "full", callbacks=[record], **options).train()

    first, record_first = _step_losses()
    box = {}

    def stop(event):  # what a Ctrl-C after step ``stop_at`` does
        record_first(event)
        if event["event"] == "step" and event["step"] == stop_at:
            box["trainer"].request_stop()

    box["trainer"] = _trainer(out_dir=tmp_path / "split", callbacks=[stop], **options)
    with pytest.raises(TrainingInterrupted, match=f"step {stop_at}.*--resume"):
        box["trainer"].train()
    assert first == _repeats({s: reference[s] for s in range(1, stop_at + 1)})

    resumed, record_resumed = _step_losses()
    fresh = _trainer(out_dir=tmp_path / "split", callbacks=[record_resumed], model_seed=99, **options)
    fresh.resume()
    assert fresh.step == stop_at
    summary = fresh.train()
    assert resumed == _repeats({s: reference[s] for s in range(stop_at + 1, 61)})
    assert summary["val_loss"] == _repeats(full["val_loss"])
    assert summary["best_val_loss"] == _repeats(full["best_val_loss"])

    def metrics(run):
        return [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    assert [m["iter"] for m in metrics("split")] == [0, 20, 40, 60]
    for a, b in zip(metrics("full"), metrics("split"), strict=True):
        assert (a["iter"], a["lr"]) == (b["iter"], b["lr"])
        assert (b["train_loss"], b["val_loss"]) == _repeats((a["train_loss"], a["val_loss"]))


def test_restore_refuses_a_checkpoint_of_another_vocabulary(tmp_path):
    _trainer(out_dir=tmp_path, max_iters=5, eval_interval=5).train()
    other = _trainer(text="completely different words! " * 10, max_iters=5)
    with pytest.raises(Exception, match="vocabulary"):
        other.restore(load_checkpoint(resolve_checkpoint(tmp_path, "latest"), with_training_state=True))


# Non-finite values ---------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow is the point
def test_absurd_learning_rate_stops_with_numerical_error(tmp_path):
    trainer = _trainer(out_dir=tmp_path, lr=1e6, min_lr=0.0, warmup_iters=0, max_iters=40, eval_interval=1)
    with pytest.raises(NumericalError, match=r"step \d+.*learning rate") as err:
        trainer.train()
    assert f"step {trainer.step}" in str(err.value)
    latest = load_checkpoint(resolve_checkpoint(tmp_path, "latest"), with_training_state=True)
    assert latest.trainer_state["step"] == trainer.step  # the last step that was still finite
    for p in latest.model.parameters():
        assert np.isfinite(backend.to_numpy(p.data)).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow is the point
def test_skip_mode_drops_non_finite_steps_and_counts_them():
    events, record = [], []

    def keep(event):
        if event["event"] == "step":
            events.append(event)

    record.append(keep)
    trainer = _trainer(
        callbacks=record,
        lr=1e6,
        min_lr=0.0,
        warmup_iters=0,
        max_iters=30,
        eval_interval=30,
        on_nonfinite="skip",
    )
    summary = trainer.train()
    skipped = sum(e["skipped"] for e in events)
    assert trainer.step == 30
    assert 0 < skipped == trainer.skipped_steps == summary["skipped_steps"]
    for p in trainer.model.parameters():  # a skipped step never writes non-finite weights
        assert np.isfinite(backend.to_numpy(p.data)).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow is the point
def test_generic_trainer_skips_exactly_the_bad_steps():
    backend.manual_seed(0)
    model = Dense(2, 1)
    bad_steps = {1, 3}
    step = {"n": 0}

    def loss_fn(prediction, target):
        loss = ((prediction - target) ** 2).mean()
        step["n"] += 1
        return loss * math.inf if step["n"] - 1 in bad_steps else loss

    trainer = Trainer(model, loss_fn, SGD(model.parameters(), lr=0.1), grad_clip=1.0, on_nonfinite="skip")
    x = Tensor(backend.asarray([[1.0, 2.0], [0.5, -1.0]]))
    y = backend.asarray([[1.0], [0.0]])
    weights = []
    for _ in range(5):
        before = backend.to_numpy(model.weight.data)
        record = trainer.train_step((x, y))
        weights.append((record["skipped"], np.array_equal(before, backend.to_numpy(model.weight.data))))
    assert weights == [(False, False), (True, True), (False, False), (True, True), (False, False)]
    assert trainer.skipped_steps == 2 and trainer.step == 5


def test_on_nonfinite_must_be_stop_or_skip():
    with pytest.raises(ConfigError, match="on_nonfinite"):
        _config(on_nonfinite="ignore")


# Metrics and texts ---------------------------------------------------------------------
def test_metrics_jsonl_records_every_evaluation(tmp_path):
    _trainer(out_dir=tmp_path, max_iters=30, eval_interval=10).train()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [0, 10, 20, 30]
    for r in rows:
        assert {"iter", "train_loss", "val_loss", "lr", "elapsed_s", "ms_per_iter"} <= set(r)
        assert math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) and r["lr"] > 0
    assert rows[0]["ms_per_iter"] is None and all(r["ms_per_iter"] > 0 for r in rows[1:])
    assert [r["elapsed_s"] for r in rows] == sorted(r["elapsed_s"] for r in rows)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert json.loads((tmp_path / "latest.json").read_text())["checkpoint"] == "checkpoints/step-0000030"
    assert (tmp_path / "best.json").exists()


def test_non_ascii_text_trains_and_round_trips(tmp_path):
    text = "Café déjà vu — 日本語のテキスト 🙂🚀 naïve façade.\n" * 8
    trainer = _trainer(text=text, out_dir=tmp_path, max_iters=30, eval_interval=15)
    summary = trainer.train()
    assert summary["train_loss"] < math.log(trainer.tokenizer.vocab_size)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.tokenizer == trainer.tokenizer
    assert {"é", "日", "🙂", "—"} <= set(ckpt.tokenizer.chars)


def test_too_short_text_is_refused_naming_the_split_and_block_size():
    with pytest.raises(CorpusError, match=r"validation split has \d+ tokens, fewer than block_size=8"):
        _trainer(text="abcdefghij" * 3, block_size=8)


@pytest.mark.parametrize(
    ("field", "value"),
    [("batch_size", 0), ("max_iters", 0), ("lr", 0.0), ("lr", -1.0), ("min_lr", 1.0), ("eval_interval", 0)],
)
def test_train_config_rejects_out_of_range_values(field, value):
    with pytest.raises(ConfigError, match=field):
        _config(**{field: value})


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow is the point
def test_generic_trainer_stops_on_a_non_finite_loss_naming_the_step():
    backend.manual_seed(0)
    model = Dense(2, 1)
    trainer = Trainer(model, lambda p, t: ((p - t) ** 2).mean() * math.nan, SGD(model.parameters(), lr=0.1))
    trainer.step = 12
    before = backend.to_numpy(model.weight.data)
    with pytest.raises(NumericalError, match=r"step 12: the loss or gradient is not finite.*learning rate"):
        trainer.train_step((Tensor(backend.asarray([[1.0, 2.0]])), backend.asarray([[1.0]])))
    np.testing.assert_array_equal(backend.to_numpy(model.weight.data), before)


def test_resume_after_a_kill_between_checkpoint_renames(tmp_path):
    # save_checkpoint moves the old directory aside, then the new one in; a kill between the
    # two leaves latest.json naming a missing directory. Resume must find the moved one.
    first = _trainer(out_dir=tmp_path, max_iters=40, eval_interval=20)
    first.callbacks.append(lambda e: first.request_stop() if e.get("step") == 20 else None)
    with pytest.raises(TrainingInterrupted):
        first.train()
    latest = resolve_checkpoint(tmp_path, "latest")
    latest.rename(latest.with_name(f".{latest.name}.k1ll3d.old"))  # what publish_directory leaves
    fresh = _trainer(out_dir=tmp_path, max_iters=40, eval_interval=20, model_seed=5)
    fresh.restore(load_checkpoint(resolve_checkpoint(tmp_path, "latest"), with_training_state=True))
    assert fresh.step == 20
    fresh.train()
    assert load_checkpoint(resolve_checkpoint(tmp_path, "latest"), True).trainer_state["step"] == 40
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
