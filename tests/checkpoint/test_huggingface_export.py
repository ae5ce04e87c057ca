"""Exporting into a directory loses nothing: only the export's own files are written or deleted.

A Hugging Face directory collects other files (a model card, ``.git/`` of a Hub clone, evaluation
results); re-exporting into it must keep them. These tests need neither torch nor transformers
(test_huggingface.py checks the files against transformers).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from tests.lm_helpers import host, tiny_model
from tinygpt import files, load_model, save_gpt2
from tinygpt.checkpoint import huggingface
from tinygpt.errors import ConfigError
from tinygpt.tokenizers import CharTokenizer

TOKENIZER = CharTokenizer("abcdefgh")
IDS = [[0, 3, 5, 1, 2, 7, 4, 6]]


def _model(seed=0):
    return tiny_model(TOKENIZER.vocab_size, seed=seed, weight_std=0.3)


def _tree(path):
    """Every file under ``path`` with its bytes (what a user would lose)."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def _add_users_files(path):
    (path / "README.md").write_text("---\nlicense: mit\n---\n# my model card\n")
    (path / ".git" / "objects").mkdir(parents=True)
    (path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (path / ".git" / "objects" / "ab").write_bytes(b"\x00git object")
    (path / "eval_results").mkdir()
    (path / "eval_results" / "hellaswag.json").write_text('{"acc": 0.25}\n')
    return {k: v for k, v in _tree(path).items() if k.startswith(("README", ".git", "eval_results"))}


def _logits(model):
    return host(model(IDS).data)


def test_a_re_export_keeps_every_file_it_did_not_write(tmp_path):
    out = tmp_path / "hf"
    save_gpt2(out, _model(1), TOKENIZER)
    users = _add_users_files(out)
    new = _model(2)
    save_gpt2(out, new, TOKENIZER)
    tree = _tree(out)
    assert {k: tree[k] for k in users} == users
    np.testing.assert_array_equal(_logits(load_model(out)), _logits(new))
    assert sorted(p.name for p in out.iterdir()) == [
        ".git", "README.md", "config.json", "eval_results", "model.safetensors", "tokenizer.json",
        "tokenizer_config.json",
    ]  # fmt: skip


def test_exporting_into_a_folder_of_other_files_adds_the_export_beside_them(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    save_gpt2(out, _model(), TOKENIZER)
    assert (out / "notes.txt").read_text() == "keep me"
    np.testing.assert_array_equal(_logits(load_model(out)), _logits(_model()))


def test_config_json_lists_what_the_export_wrote_with_its_hash(tmp_path):
    out = tmp_path / "hf"
    save_gpt2(out, _model(), TOKENIZER)
    listed = json.loads((out / "config.json").read_text())[huggingface.EXPORT_MARK]["files"]
    assert listed == {
        name: hashlib.sha256((out / name).read_bytes()).hexdigest()
        for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json")
    }


def test_a_re_export_deletes_its_own_files_it_no_longer_writes(tmp_path):
    out = tmp_path / "hf"
    save_gpt2(out, _model(), TOKENIZER)
    users = _add_users_files(out)
    save_gpt2(out, _model())  # no tokenizer this time: the earlier one would not describe the model
    assert sorted(p.name for p in out.iterdir()) == [
        ".git", "README.md", "config.json", "eval_results", "model.safetensors",
    ]  # fmt: skip
    assert {k: v for k, v in _tree(out).items() if k in users} == users


def test_a_stale_file_changed_since_the_export_wrote_it_is_refused_not_deleted(tmp_path):
    out = tmp_path / "hf"
    save_gpt2(out, _model(), TOKENIZER)
    (out / "tokenizer.json").write_text('{"the user": "edited this"}')
    before = _tree(out)
    with pytest.raises(ConfigError, match=r"holds tokenizer\.json from an earlier export, changed since"):
        save_gpt2(out, _model(2))
    assert _tree(out) == before


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json"])
def test_a_file_the_export_did_not_write_is_never_overwritten(tmp_path, name):
    out = tmp_path / "hf"
    out.mkdir()
    (out / name).write_bytes(b"the user's own file")
    with pytest.raises(ConfigError, match=rf"already holds {name}, which tinygpt did not write"):
        save_gpt2(out, _model(), TOKENIZER)
    assert _tree(out) == {name: b"the user's own file"}
    # A tokenizer file added after an export that wrote none is the user's too.
    other = tmp_path / "other"
    save_gpt2(other, _model())
    (other / "tokenizer.json").write_bytes(b"the user's own file")
    before = _tree(other)
    with pytest.raises(ConfigError, match=r"already holds tokenizer\.json, which tinygpt did not write"):
        save_gpt2(other, _model(), TOKENIZER)
    assert _tree(other) == before


def test_a_config_json_without_the_export_mark_is_refused(tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ConfigError, match=r"config\.json was not written by tinygpt export; refusing"):
        save_gpt2(out, _model(), TOKENIZER)
    assert _tree(out) == {"config.json": b'{"model_type": "gpt2"}'}


def test_a_listed_name_the_export_never_writes_is_never_deleted(tmp_path):
    # config.json may come from anywhere: only the export's own file names are ever deleted.
    out = tmp_path / "hf"
    save_gpt2(out, _model())
    (out / "README.md").write_text("card")
    (tmp_path / "victim").write_text("elsewhere")
    config = json.loads((out / "config.json").read_text())
    digest = hashlib.sha256(b"card").hexdigest()
    config[huggingface.EXPORT_MARK]["files"] |= {"README.md": digest, "../victim": digest}
    (out / "config.json").write_text(json.dumps(config))
    save_gpt2(out, _model())
    assert (out / "README.md").read_text() == "card"
    assert (tmp_path / "victim").read_text() == "elsewhere"


def test_an_export_cut_short_can_be_run_again(tmp_path, monkeypatch):
    out = tmp_path / "hf"
    real = files.write_bytes_atomic

    def killed_before_config(path, data):
        if path.name == "config.json":
            raise OSError("simulated kill")
        real(path, data)

    monkeypatch.setattr(huggingface, "write_bytes_atomic", killed_before_config)
    with pytest.raises(OSError, match="simulated kill"):
        save_gpt2(out, _model(), TOKENIZER)
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    save_gpt2(out, _model(), TOKENIZER)  # the same bytes: recognised as this export's own
    np.testing.assert_array_equal(_logits(load_model(out)), _logits(_model()))


def test_an_export_of_tinygpt_0_1_is_replaced_file_by_file(tmp_path):
    out = tmp_path / "hf"
    save_gpt2(out, _model(1), TOKENIZER)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(config | {huggingface.EXPORT_MARK: True}))  # 0.1's mark
    users = _add_users_files(out)
    save_gpt2(out, _model(2), TOKENIZER)
    assert {k: v for k, v in _tree(out).items() if k in users} == users
    np.testing.assert_array_equal(_logits(load_model(out)), _logits(_model(2)))


def test_an_export_never_touches_a_users_folder_named_like_an_old_copy(tmp_path):
    out = tmp_path / "hf"
    save_gpt2(out, _model(1), TOKENIZER)
    mine = tmp_path / ".hf.old"  # 0.1 swapped directories through this name, deleting what was there
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    save_gpt2(out, _model(2), TOKENIZER)
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hf.old", "hf"]


def test_a_file_in_place_of_the_directory_is_refused(tmp_path):
    (tmp_path / "hf").write_text("mine")
    with pytest.raises(ConfigError, match="is a file; give a directory to export into"):
        save_gpt2(tmp_path / "hf", _model())
    assert (tmp_path / "hf").read_text() == "mine"
