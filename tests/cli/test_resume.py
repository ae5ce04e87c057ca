"""``--resume`` continues the run that was started: its text, split, model and settings, not the flags' defaults."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_commands import TINY, assert_one_line_error, run_cli

TEXT_A = "First Citizen: Before we proceed any further, hear me speak.\n" * 6
TEXT_B = "Second Citizen: We are accounted poor citizens, the patricians good.\n" * 6


@pytest.fixture
def texts(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(TEXT_A, encoding="utf-8")
    b.write_text(TEXT_B, encoding="utf-8")
    return a, b


def _train(capsys, out, *flags):
    return run_cli(capsys, "train", "--out", out, *TINY, *flags)


def _iters(out):
    return [json.loads(line)["iter"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_resume_without_text_uses_the_recorded_text_not_the_default_corpus(capsys, tmp_path, texts):
    out = tmp_path / "run"
    assert _train(capsys, out, "--text", texts[0])[0] == 0
    code, stdout, err = _train(capsys, out, "--resume", "--max-iters", 30)
    assert code == 0, err
    assert f"resuming on the text the run recorded: {texts[0].resolve()}" in stdout
    assert _iters(out) == [0, 10, 20, 30]


def test_resume_with_another_text_is_refused_naming_both(capsys, tmp_path, texts):
    out = tmp_path / "run"
    assert _train(capsys, out, "--text", texts[0])[0] == 0
    code, _, err = _train(capsys, out, "--resume", "--text", texts[1], "--max-iters", 30)
    assert_one_line_error(code, err, str(texts[1]), str(texts[0].resolve()), "SHA-256 differs")
    assert _iters(out) == [0, 10, 20]


def test_a_moved_text_file_is_named_and_passing_its_new_path_resumes(capsys, tmp_path, texts):
    out = tmp_path / "run"
    assert _train(capsys, out, "--text", texts[0])[0] == 0
    moved = texts[0].rename(tmp_path / "moved.txt")
    code, _, err = _train(capsys, out, "--resume", "--max-iters", 30)
    assert_one_line_error(code, err, "no longer exists", "--text")
    code, _, err = _train(capsys, out, "--resume", "--text", moved, "--max-iters", 30)
    assert code == 0, err
    assert _iters(out) == [0, 10, 20, 30]


def test_a_forgotten_val_fraction_is_taken_from_the_run_and_a_different_one_refused(capsys, tmp_path, texts):
    out = tmp_path / "run"
    assert _train(capsys, out, "--text", texts[0], "--val-fraction", 0.25)[0] == 0
    code, _, err = _train(capsys, out, "--resume", "--val-fraction", 0.3, "--max-iters", 30)
    assert_one_line_error(code, err, "--val-fraction 0.3", "0.25")
    code, stdout, err = _train(capsys, out, "--resume", "--max-iters", 30)
    assert code == 0, err
    assert "validation fraction 0.25" in stdout
    code, stdout, err = run_cli(capsys, "eval", "--checkpoint", out, "--json")
    assert code == 0, err
    val_chars = len(TEXT_A) - (len(TEXT_A) - int(len(TEXT_A) * 0.25))
    assert json.loads(stdout)["windows"] == val_chars // 8  # the recorded split, not the 0.1 default


def test_a_changed_model_flag_is_refused_naming_both_values(capsys, tmp_path, texts):
    out = tmp_path / "run"
    assert _train(capsys, out, "--text", texts[0])[0] == 0
    code, _, err = _train(capsys, out, "--resume", "--n-layer", 2)
    assert_one_line_error(code, err, "--n-layer 2", "n_layer=1")


def test_training_settings_come_from_the_run_and_typed_changes_are_announced(capsys, tmp_path, texts):
    out = tmp_path / "run"
    assert _train(capsys, out, "--text", texts[0], "--lr", 0.003)[0] == 0
    code, stdout, err = run_cli(capsys, "train", "--out", out, "--resume", "--max-iters", 30)  # no --lr
    assert code == 0, err
    assert "resuming with max_iters 20 -> 30" in stdout
    assert "lr" not in stdout.split("resuming with")[1].split("\n")[0].replace("max_iters", "")
    trainer_json = sorted((out / "checkpoints").glob("step-*"))[-1] / "trainer.json"
    assert json.loads(trainer_json.read_text())["train_config"]["lr"] == 0.003


def test_another_corpus_on_resume_is_refused(capsys, tmp_path, texts):
    out = tmp_path / "run"
    assert _train(capsys, out, "--text", texts[0])[0] == 0
    code, _, err = _train(capsys, out, "--resume", "--corpus", "tinyshakespeare")
    assert_one_line_error(code, err, "--corpus tinyshakespeare", "drop --corpus")
