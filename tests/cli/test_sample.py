"""``tinygpt sample`` beyond the basics (test_commands.py): padded vocabularies."""

import pytest

from tests.cli.test_commands import assert_one_line_error, run_cli
from tests.lm_helpers import tiny_model
from tinygpt.tokenizers import CharTokenizer

CHARS = "abcdefgh \n"


@pytest.fixture
def padded_dir(tmp_path):
    """A Hugging Face GPT-2 directory whose model scores 64 ids and whose tokenizer has 10."""
    path = tmp_path / "padded"
    tiny_model(64, seed=0, weight_std=1.0, block_size=32).save_pretrained(path, CharTokenizer(CHARS))
    return path


def test_a_padded_vocabulary_samples_whole_text_and_says_so_once(capsys, padded_dir):
    code, out, err = run_cli(
        capsys, "sample", "--checkpoint", padded_dir, "--prompt", "ab", "--max-new-tokens", 300,
        "--num-samples", 2, "--seed", 0,
    )  # fmt: skip
    assert code == 0, err
    assert err.count("\n") == 1, err
    assert "scores 64 token ids but its tokenizer has 10; the 54 ids from 10 on" in err
    samples = out.split("--- sample ")[1:]
    assert len(samples) == 2
    for sample in samples:
        text = sample.split("---\n", 1)[1]
        assert text.startswith("ab") and len(text) == 2 + 300 + 1 and set(text) <= set(CHARS)


def test_a_padded_vocabulary_still_evaluates_describes_and_refuses_fine_tuning(capsys, padded_dir, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("abc defgh\n" * 40)
    code, out, err = run_cli(capsys, "eval", "--checkpoint", padded_dir, "--text", text)
    assert code == 0, err
    assert "val loss" in out
    code, out, err = run_cli(capsys, "info", "--checkpoint", padded_dir)
    assert code == 0, err
    assert "vocab_size=64" in out
    code, _, err = run_cli(
        capsys, "train", "--init-from", padded_dir, "--text", text, "--out", tmp_path / "ft", "--max-iters", 1
    )
    assert_one_line_error(code, err, "cannot be fine-tuned")
