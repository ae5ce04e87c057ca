"""``tinygpt train --tokenizer bpe``: a BPE run trains, resumes, samples, evaluates, in bits per byte too."""

from __future__ import annotations

import json
import math
import random

import pytest

from tests.cli.test_commands import TINY, assert_one_line_error, run_cli
from tinygpt import backend
from tinygpt.cli import main
from tinygpt.data import split_text
from tinygpt.tokenizers import BPETokenizer

pytest.importorskip("tokenizers")


def _text() -> str:
    """About 6 kB of made-up words with accents, CJK and emoji: enough byte pairs for 300 tokens."""
    rng = random.Random(0)
    syllables = ["ka", "ré", "tö", "mi", "sun", "ell", "an", "th", "qu", "語", "本", "🙂", " ", "\n"]
    return "".join(rng.choice(syllables) for _ in range(2500))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "words.txt"
    path.write_text(_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("runs") / "bpe"
    flags = ["--text", str(corpus), "--out", str(out), "--tokenizer", "bpe", "--vocab-size", "300"]
    with backend.using("numpy"):
        assert main(["train", *flags, *TINY]) == 0
    return out


def _checkpoint(run):
    return run / json.loads((run / "latest.json").read_text())["checkpoint"]


def test_bpe_is_trained_on_the_training_split_only_and_saved_as_hugging_face_json(bpe_run, corpus):
    saved = json.loads((_checkpoint(bpe_run) / "tokenizer.json").read_text(encoding="utf-8"))
    assert saved["model"]["type"] == "BPE" and len(saved["model"]["vocab"]) == 300
    train_text, _ = split_text(corpus.read_text(encoding="utf-8"), 0.1)
    assert BPETokenizer.from_dict(saved) == BPETokenizer.train(train_text, 300)


def test_metrics_report_bits_per_byte_of_the_validation_text(bpe_run, corpus):
    tokenizer = BPETokenizer.from_file(_checkpoint(bpe_run) / "tokenizer.json")
    _, val_text = split_text(corpus.read_text(encoding="utf-8"), 0.1)
    tokens, nbytes = len(tokenizer.encode(val_text)), len(val_text.encode("utf-8"))
    assert tokens < nbytes  # tokens span several bytes, so bpb is not loss / ln 2
    rows = [json.loads(line) for line in (bpe_run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        assert row["val_bpb"] == pytest.approx(row["val_loss"] * tokens / nbytes / math.log(2), rel=1e-12)


def test_sample_eval_info_and_attention_work_with_a_bpe_checkpoint(capsys, bpe_run, corpus, tmp_path):
    code, out, err = run_cli(
        capsys, "sample", "--checkpoint", bpe_run, "--prompt", "ka 語🙂", "--max-new-tokens", 30, "--seed", 1
    )
    assert code == 0, err
    assert out.startswith("ka 語🙂")
    code, out, err = run_cli(capsys, "sample", "--checkpoint", bpe_run, "--max-new-tokens", 10, "--seed", 1)
    assert code == 0, err  # an empty prompt starts from <|endoftext|>

    code, out, err = run_cli(capsys, "eval", "--checkpoint", bpe_run, "--json")
    assert code == 0, err
    result = json.loads(out)
    tokenizer = BPETokenizer.from_file(_checkpoint(bpe_run) / "tokenizer.json")
    _, val_text = split_text(corpus.read_text(encoding="utf-8"), 0.1)
    ratio = len(tokenizer.encode(val_text)) / len(val_text.encode("utf-8"))
    assert result["val_bpb"] == pytest.approx(result["val_loss"] * ratio / math.log(2), rel=1e-12)

    code, out, err = run_cli(capsys, "info", "--checkpoint", bpe_run)
    assert code == 0, err
    assert "vocab_size=300" in out

    pytest.importorskip("matplotlib")
    code, out, err = run_cli(
        capsys, "attention", "--checkpoint", bpe_run, "--prompt", "kaqu ré", "--out", tmp_path / "a.png"
    )
    assert code == 0, err
    assert (tmp_path / "a.png").stat().st_size > 0


def test_resume_keeps_the_run_tokenizer_and_refuses_conflicting_flags(capsys, corpus, tmp_path):
    out = tmp_path / "run"
    flags = ["--text", corpus, "--out", out, "--tokenizer", "bpe", "--vocab-size", 300]
    assert run_cli(capsys, "train", *flags, *TINY)[0] == 0
    code, _, err = run_cli(capsys, "train", "--out", out, "--resume", "--tokenizer", "char", *TINY)
    assert_one_line_error(code, err, "--tokenizer char conflicts", "--tokenizer bpe")
    code, _, err = run_cli(capsys, "train", "--out", out, "--resume", "--vocab-size", 500, *TINY)
    assert_one_line_error(code, err, "--vocab-size 500 conflicts", "vocab_size=300")
    more = [a if a != "20" else "30" for a in TINY]
    code, printed, err = run_cli(capsys, "train", "--out", out, "--resume", "--tokenizer", "bpe", *more)
    assert code == 0, err
    assert "resuming" in printed and "step    30/30" in printed


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--vocab-size", "500"], ["--vocab-size applies to --tokenizer bpe"]),
        (["--tokenizer", "bpe", "--vocab-size", "100"], ["--vocab-size", "[257,", "got 100"]),
        (["--tokenizer", "bpe", "--vocab-size", "50000"], ["too few distinct byte pairs", "--vocab-size"]),
        (["--tokenizer", "word"], ["--tokenizer", "invalid choice"]),
    ],
)
def test_bad_tokenizer_flags_are_one_line(capsys, corpus, tmp_path, flags, needles):
    code, _, err = run_cli(capsys, "train", "--text", corpus, "--out", tmp_path / "r", *flags, *TINY)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
