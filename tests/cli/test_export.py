"""``tinygpt export`` on the command line: it keeps the user's files, and every refusal is one line.

Whether transformers loads the export is checked in test_pretrained.py (it needs the hf extra).
"""

import os

import pytest

from tests.cli.test_commands import TEXT, TINY, assert_one_line_error, run_cli
from tinygpt import backend
from tinygpt.cli import main

EXPORTED = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    text = tmp_path_factory.mktemp("text") / "small.txt"
    text.write_text(TEXT, encoding="utf-8")
    out = tmp_path_factory.mktemp("runs") / "run"
    with backend.using("numpy"):
        assert main(["train", "--text", str(text), "--out", str(out), *TINY]) == 0
    return out


def test_exporting_again_keeps_the_model_card_git_and_eval_results(capsys, run_dir, tmp_path):
    out = tmp_path / "hf"
    assert run_cli(capsys, "export", "--checkpoint", run_dir, "--out", out)[0] == 0
    (out / "README.md").write_text("# my model card\n")
    (out / ".git").mkdir()
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (out / "eval_results").mkdir()
    (out / "eval_results" / "loss.json").write_text("{}\n")
    code, _, err = run_cli(capsys, "export", "--checkpoint", run_dir, "--out", out)
    assert code == 0, err
    assert (out / "README.md").read_text() == "# my model card\n"
    assert (out / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert (out / "eval_results" / "loss.json").read_text() == "{}\n"
    assert sorted(p.name for p in out.iterdir()) == sorted([".git", "README.md", "eval_results", *EXPORTED])


def test_a_file_export_did_not_write_is_refused_in_one_line(capsys, run_dir, tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"mine")
    code, _, err = run_cli(capsys, "export", "--checkpoint", run_dir, "--out", tmp_path / "hf")
    assert_one_line_error(code, err, "already holds model.safetensors, which tinygpt did not write")
    assert (tmp_path / "hf" / "model.safetensors").read_bytes() == b"mine"


@pytest.mark.parametrize("out", [".", ".."])
def test_export_into_the_current_or_parent_directory(capsys, run_dir, tmp_path, monkeypatch, out):
    here = tmp_path / "parent" / "here"
    here.mkdir(parents=True)
    (here / "notes.txt").write_text("mine")
    monkeypatch.chdir(here)
    code, text, err = run_cli(capsys, "export", "--checkpoint", run_dir, "--out", out)
    assert code == 0, err
    target = here if out == "." else here.parent
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [*EXPORTED, "notes.txt" if out == "." else "here"]
    )
    assert f"from_pretrained('{out}')" in text
    code, _, err = run_cli(capsys, "export", "--checkpoint", run_dir, "--out", out)  # and again
    assert code == 0, err
    (target / "tokenizer.json").write_text("edited")  # now a file tinygpt did not write
    code, _, err = run_cli(capsys, "export", "--checkpoint", run_dir, "--out", out)
    assert code == 0, err  # tokenizer.json is still listed as the export's: it is replaced
    (target / "config.json").write_text("{}")
    code, _, err = run_cli(capsys, "export", "--checkpoint", run_dir, "--out", out)
    assert_one_line_error(code, err, "config.json was not written by tinygpt export")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_directory_the_user_cannot_write_is_one_line(capsys, run_dir, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root may write anywhere: take the permission check's answer as a user's
        monkeypatch.setattr(os, "access", lambda path, mode: False)
    try:
        code, _, err = run_cli(capsys, "export", "--checkpoint", run_dir, "--out", locked)
    finally:
        locked.chmod(0o755)
    assert_one_line_error(code, err, "is not writable by this user")
    assert list(locked.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_every_file_train_and_export_write_follows_the_umask(capsys, tmp_path, umask):
    # Another user, or a container with another uid, must be able to load what tinygpt wrote.
    text = tmp_path / "small.txt"
    text.write_text(TEXT, encoding="utf-8")
    previous = os.umask(umask)
    try:
        args = ["--text", text, "--out", tmp_path / "run", *TINY]
        assert run_cli(capsys, "train", *args)[0] == 0
        assert run_cli(capsys, "train", *args, "--resume", "--max-iters", 30)[0] == 0
        assert run_cli(capsys, "export", "--checkpoint", tmp_path / "run", "--out", tmp_path / "hf")[0] == 0
        assert run_cli(capsys, "export", "--checkpoint", tmp_path / "run", "--out", tmp_path / "hf")[0] == 0
    finally:
        os.umask(previous)
    modes = {
        p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777
        for p in [
            tmp_path / "run",
            tmp_path / "hf",
            *(tmp_path / "run").rglob("*"),
            *(tmp_path / "hf").rglob("*"),
        ]
    }
    expected = {name: (0o777 if (tmp_path / name).is_dir() else 0o666) & ~umask for name in modes}
    assert modes == expected
    assert "hf/model.safetensors" in modes
    assert any(name.endswith("/optimizer.safetensors") for name in modes)
