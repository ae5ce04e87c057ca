"""``tinygpt sample`` beyond the basics (test_commands.py): padded vocabularies, text on a terminal."""

import os
import pty
import subprocess

import pytest

from tests.cli.test_commands import assert_one_line_error, run_cli
from tests.lm_helpers import PYTHON, subprocess_env, tiny_model
from tinygpt.checkpoint import save_checkpoint, save_gpt2
from tinygpt.tokenizers import CharTokenizer

CHARS = "abcdefgh \n"


@pytest.fixture
def padded_dir(tmp_path):
    """A Hugging Face GPT-2 directory whose model scores 64 ids and whose tokenizer has 10."""
    path = tmp_path / "padded"
    save_gpt2(path, tiny_model(64, seed=0, weight_std=1.0, block_size=32), CharTokenizer(CHARS))
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


def _read_all(fd):
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return out
        if not chunk:
            return out
        out += chunk


@pytest.mark.skipif(os.name != "posix", reason="a pseudo-terminal")
def test_control_characters_are_shown_as_escapes_on_a_terminal_and_exact_in_a_pipe(tmp_path):
    # A model trained on bytes can write ESC sequences; on a terminal they must not take effect.
    chars = "ab \n\t\x1b[\x07\r\x7f\x9b"
    save_checkpoint(
        tmp_path / "ck", tiny_model(len(chars), seed=0, weight_std=0.02, block_size=16), CharTokenizer(chars)
    )
    command = [
        PYTHON,
        "-m",
        "tinygpt",
        "sample",
        "--checkpoint",
        "ck",
        "--prompt",
        "\x1b[",
        "--max-new-tokens",
        300,
        "--seed",
        0,
    ]
    piped = subprocess.run(
        list(map(str, command)),
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    text = piped.decode("utf-8")
    assert text.startswith("\x1b[") and all(c in text for c in "\x1b\x07\r\x7f\x9b\t")  # the exact bytes
    controller, terminal = pty.openpty()
    child = subprocess.Popen(list(map(str, command)), cwd=tmp_path, env=subprocess_env(), stdout=terminal)
    os.close(terminal)
    shown = _read_all(controller).decode("utf-8").replace("\r\n", "\n")  # the terminal's own newline mapping
    os.close(controller)
    assert child.wait(timeout=60) == 0
    expected = text
    for c in "\x1b\x07\r\x7f\x9b":
        expected = expected.replace(c, f"\\x{ord(c):02x}")
    assert shown == expected
    assert "\t" in shown and not any(c in shown for c in "\x1b\x07\r\x7f\x9b")
