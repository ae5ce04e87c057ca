"""Checkpoints: round trips on and across backends, every kind of damage named, atomic writes."""

import json
import os
import re
import shlex
import shutil

import numpy as np
import pytest

from tests.lm_helpers import host, tiny_model
from tinygpt import backend, files
from tinygpt.checkpoint import (
    directory,
    load_checkpoint,
    read_config,
    resolve_checkpoint,
    save_checkpoint,
    save_gpt2,
)
from tinygpt.errors import CheckpointError
from tinygpt.tensor import no_grad
from tinygpt.tokenizers import CharTokenizer
from tinygpt.training.run_directory import RunDirectory

TEXT = "a small text, with Ünïcode ✓ and emoji 🙂\n"
IDS = [[0, 3, 5, 1, 2, 7, 4, 6], [6, 6, 1, 0, 2, 3, 3, 5]]


def _tokenizer():
    return CharTokenizer.from_text(TEXT)


def _model(seed=0, **overrides):
    return tiny_model(_tokenizer().vocab_size, seed=seed, weight_std=0.3, **overrides)


def _logits(model):
    model.eval()
    with no_grad():
        return host(model(backend.asarray(IDS)).data)


def _saved(tmp_path, name="ckpt", seed=0):
    model = _model(seed)
    path = save_checkpoint(tmp_path / name, model, _tokenizer())
    return path, _logits(model)


def _rewrite_config(path, edit):
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config))


def _update_sha(path, name):
    import hashlib

    digest = hashlib.sha256((path / name).read_bytes()).hexdigest()
    _rewrite_config(path, lambda c: c["sha256"].__setitem__(name, digest))


# Round trips -----------------------------------------------------------------------
def test_save_then_load_gives_the_same_logits(xp_backend, tmp_path):
    path, logits = _saved(tmp_path)
    loaded = load_checkpoint(path)
    assert loaded.tokenizer == _tokenizer()
    assert loaded.model.config == _model().config
    np.testing.assert_array_equal(_logits(loaded.model), logits)


@pytest.mark.parametrize(("saver", "loader"), [("numpy", "array_api_strict"), ("array_api_strict", "numpy")])
def test_checkpoint_moves_between_backends(tmp_path, saver, loader):
    def device(name):
        return "device1" if name == "array_api_strict" else None

    with backend.using(saver, device(saver)):
        path, logits = _saved(tmp_path)
    with backend.using(loader, device(loader)):
        loaded = load_checkpoint(path)
        assert backend.current().name == loader
        moved = _logits(loaded.model)
    np.testing.assert_allclose(moved, logits, rtol=1e-5, atol=1e-6)


def test_training_state_round_trips(tmp_path):
    model = _model()
    arrays = {"0.m": np.full((3, 2), 0.5, dtype=np.float32), "0.v": np.ones((3, 2), dtype=np.float32)}
    state = {
        "step": 17,
        "data_rng": backend.Generator(3).get_state(),
        "model_rng": backend.Generator(4).get_state(),
    }
    path = save_checkpoint(tmp_path / "c", model, _tokenizer(), {"step_count": 9, "arrays": arrays}, state)
    loaded = load_checkpoint(path, with_training_state=True)
    assert loaded.trainer_state["step"] == 17
    assert loaded.optimizer_state["step_count"] == 9
    np.testing.assert_array_equal(loaded.optimizer_state["arrays"]["0.m"], arrays["0.m"])


def test_weights_only_checkpoint_cannot_resume(tmp_path):
    path, _ = _saved(tmp_path)
    with pytest.raises(CheckpointError, match="weights only"):
        load_checkpoint(path, with_training_state=True)


def test_saving_over_a_checkpoint_replaces_it(tmp_path):
    path, _ = _saved(tmp_path, seed=0)
    other = _model(seed=5)
    save_checkpoint(path, other, _tokenizer())
    np.testing.assert_array_equal(_logits(load_checkpoint(path).model), _logits(other))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


# Damage: each error is a CheckpointError that names the file -------------------------
def test_truncated_weights_are_reported(tmp_path):
    path, _ = _saved(tmp_path)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors") as err:
        load_checkpoint(path)
    assert "corrupt" in str(err.value)


def test_flipped_bytes_fail_the_sha256_check(tmp_path):
    path, _ = _saved(tmp_path)
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF  # inside the last weight: still parses, but the numbers changed
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*SHA-256"):
        load_checkpoint(path)


def test_truncated_weights_with_matching_sha_are_not_readable_safetensors(tmp_path):
    path, _ = _saved(tmp_path)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) - 40])
    _update_sha(path, "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(path)


def test_random_bytes_as_weights_are_reported(tmp_path):
    path, _ = _saved(tmp_path)
    (path / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(path)
    _update_sha(path, "model.safetensors")  # even when the hash was "fixed up"
    with pytest.raises(CheckpointError, match="model.safetensors.*not a readable safetensors"):
        load_checkpoint(path)


def test_missing_tokenizer_is_reported(tmp_path):
    path, _ = _saved(tmp_path)
    (path / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="tokenizer.json is missing"):
        load_checkpoint(path)


def test_missing_weights_are_reported(tmp_path):
    path, _ = _saved(tmp_path)
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_checkpoint(path)


def test_config_from_another_model_size_is_reported(tmp_path):
    path, _ = _saved(tmp_path)
    _rewrite_config(path, lambda c: c["model"].__setitem__("n_embd", 32))
    with pytest.raises(CheckpointError, match="config.json") as err:
        load_checkpoint(path)
    assert "model.safetensors" in str(err.value)


def test_config_with_an_impossible_model_is_reported(tmp_path):
    path, _ = _saved(tmp_path)
    _rewrite_config(path, lambda c: c["model"].__setitem__("n_embd", 15))  # not divisible by n_head
    with pytest.raises(CheckpointError, match=r"config\.json.*n_embd=15"):
        load_checkpoint(path)


def test_tokenizer_from_another_vocabulary_is_reported(tmp_path):
    path, _ = _saved(tmp_path)
    (path / "tokenizer.json").write_text(json.dumps(CharTokenizer.from_text("abc").to_dict()))
    with pytest.raises(CheckpointError, match=r"tokenizer\.json.*SHA-256"):
        load_checkpoint(path)
    _update_sha(path, "tokenizer.json")  # consistent hash, but 3 characters for a bigger model
    with pytest.raises(CheckpointError, match=r"tokenizer\.json.*3 tokens") as err:
        load_checkpoint(path)
    assert f"vocab_size={_tokenizer().vocab_size}" in str(err.value)


def test_corrupt_tokenizer_json_is_reported(tmp_path):
    path, _ = _saved(tmp_path)
    (path / "tokenizer.json").write_text('{"format": ')
    _update_sha(path, "tokenizer.json")
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        load_checkpoint(path)


def test_directory_that_is_not_a_checkpoint_is_reported(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="neither a checkpoint") as err:
        load_checkpoint(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_missing_path_is_reported(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_wrong_format_version_is_reported(tmp_path, version):
    path, _ = _saved(tmp_path)
    _rewrite_config(path, lambda c: c.__setitem__("version", version))
    with pytest.raises(CheckpointError, match=r"config\.json.*version"):
        load_checkpoint(path)


def test_foreign_or_broken_config_json_is_reported(tmp_path):
    path, _ = _saved(tmp_path)
    (path / "config.json").write_text('{"format": "pytorch"}')
    with pytest.raises(CheckpointError, match=r"config\.json is not a tinygpt checkpoint"):
        read_config(path)
    (path / "config.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(CheckpointError, match=r"config\.json is not UTF-8"):
        load_checkpoint(path)


def test_weight_shape_disagreeing_with_config_is_reported(tmp_path):
    path, _ = _saved(tmp_path)
    _rewrite_config(path, lambda c: c["tensors"].__setitem__("wte.weight", [1, 2]))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*wte\.weight"):
        load_checkpoint(path)


# Run directories ---------------------------------------------------------------------
def _run_dir(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.start()
    first = run.save(1, _model(seed=1), _tokenizer())
    run.publish("best", first)
    run.save(2, _model(seed=2), _tokenizer())
    third = run.save(3, _model(seed=3), _tokenizer())  # step 2 is now referenced by nothing
    return run.path, first, third


def test_resolve_checkpoint_follows_best_and_latest(tmp_path):
    run, first, third = _run_dir(tmp_path)
    assert resolve_checkpoint(run) == first
    assert resolve_checkpoint(run, "best") == first
    assert resolve_checkpoint(run, "latest") == third
    assert resolve_checkpoint(third) == third
    np.testing.assert_array_equal(_logits(load_checkpoint(run).model), _logits(_model(seed=1)))


def test_corrupt_pointer_is_reported(tmp_path):
    run, _, _ = _run_dir(tmp_path)
    (run / "latest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="latest.json"):
        resolve_checkpoint(run, "latest")


def test_pointer_to_a_missing_checkpoint_is_reported(tmp_path):
    run, _, third = _run_dir(tmp_path)
    shutil.rmtree(third)
    with pytest.raises(CheckpointError, match=r"latest\.json.*step-0000003"):
        resolve_checkpoint(run, "latest")


# Atomic writes -------------------------------------------------------------------------
def _crash_on_call(n, real):
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise OSError("simulated crash (disk full)")
        return real(*args, **kwargs)

    return crashing


@pytest.mark.parametrize("nth_write", [1, 2, 3])
def test_crash_while_writing_files_keeps_the_previous_checkpoint(tmp_path, monkeypatch, nth_write):
    path, logits = _saved(tmp_path)
    monkeypatch.setattr(directory, "fsync_write", _crash_on_call(nth_write, files.fsync_write))
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, _model(seed=9), _tokenizer())
    monkeypatch.undo()
    np.testing.assert_array_equal(_logits(load_checkpoint(path).model), logits)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary directory published


def test_crash_while_swapping_directories_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path, logits = _saved(tmp_path)
    real = os.replace

    def crash_when_publishing(src, dst):
        if str(src).endswith(".tmp") and os.fspath(dst) == os.fspath(path):
            raise OSError("simulated crash during rename")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", crash_when_publishing)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, _model(seed=9), _tokenizer())
    monkeypatch.undo()
    np.testing.assert_array_equal(_logits(load_checkpoint(path).model), logits)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_reader_between_the_two_renames_finds_the_previous_checkpoint(tmp_path, monkeypatch):
    # What a reader (or `kill -9`) meets after the old directory was moved aside and before the
    # new one is moved in: the pointer names a directory that is momentarily absent.
    run, _, third = _run_dir(tmp_path)
    logits = _logits(load_checkpoint(third).model)
    real, seen = os.replace, []

    def read_between_the_renames(src, dst):
        if os.fspath(dst) == os.fspath(third) and not third.exists():
            resolved = resolve_checkpoint(run, "latest")
            seen.append((resolved.name, _logits(load_checkpoint(resolved).model)))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", read_between_the_renames)
    save_checkpoint(third, _model(seed=9), _tokenizer())
    monkeypatch.undo()
    [(name, between)] = seen
    assert name.startswith(f".{third.name}.") and name.endswith(".old")
    np.testing.assert_array_equal(between, logits)
    assert sorted(p.name for p in third.parent.iterdir()) == ["step-0000001", "step-0000003"]  # nothing aside


def test_a_kill_between_the_renames_resolves_the_newest_version_moved_aside(tmp_path):
    run, _, third = _run_dir(tmp_path)
    older = third.with_name(f".{third.name}.older.old")
    shutil.copytree(third, older)
    os.utime(older, ns=(1, 1))
    logits = _logits(load_checkpoint(third).model)
    os.replace(third, third.with_name(f".{third.name}.abc123.old"))
    np.testing.assert_array_equal(_logits(load_checkpoint(resolve_checkpoint(run, "latest")).model), logits)


def test_a_kill_between_the_renames_of_tinygpt_0_1_still_resolves(tmp_path):
    run, _, third = _run_dir(tmp_path)
    logits = _logits(load_checkpoint(third).model)
    os.replace(third, third.with_name(f".{third.name}.old"))  # the fixed name 0.1 used
    np.testing.assert_array_equal(_logits(load_checkpoint(resolve_checkpoint(run, "latest")).model), logits)


def test_replacing_a_checkpoint_never_touches_a_users_folder_named_like_the_old_copy(tmp_path):
    path, _ = _saved(tmp_path)
    mine = tmp_path / ".ckpt.old"  # 0.1 moved the old version here, deleting what was there
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    save_checkpoint(path, _model(seed=9), _tokenizer())
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ckpt.old", "ckpt"]


def test_save_checkpoint_refuses_to_replace_what_is_not_a_checkpoint(tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.txt").write_text("mine")
    with pytest.raises(
        CheckpointError, match=r"thesis is a directory that is not a tinygpt checkpoint \(chapter1"
    ):
        save_checkpoint(folder, _model(), _tokenizer())
    (tmp_path / "file").write_text("mine")
    with pytest.raises(CheckpointError, match="is not a directory; refusing to replace it"):
        save_checkpoint(tmp_path / "file", _model(), _tokenizer())
    path, _ = _saved(tmp_path)
    (path / "notes.txt").write_text("mine")  # a checkpoint the user added a file to
    with pytest.raises(CheckpointError, match=r"\(notes\.txt\); refusing to replace it"):
        save_checkpoint(path, _model(seed=9), _tokenizer())
    assert [(folder / "chapter1.txt").read_text(), (tmp_path / "file").read_text()] == ["mine", "mine"]
    assert (path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "file", "thesis"]  # no debris
    (tmp_path / "empty").mkdir()
    save_checkpoint(tmp_path / "empty", _model(), _tokenizer())  # an empty directory is fine


def test_crash_while_replacing_a_pointer_keeps_the_old_pointer(tmp_path, monkeypatch):
    run, _, third = _run_dir(tmp_path)
    monkeypatch.setattr(files, "fsync_write", _crash_on_call(1, files.fsync_write))
    with pytest.raises(OSError, match="simulated crash"):
        files.write_json_atomic(run / "latest.json", {"checkpoint": "checkpoints/step-0000001"})
    monkeypatch.undo()
    assert resolve_checkpoint(run, "latest") == third
    assert sorted(p.name for p in run.iterdir()) == ["best.json", "checkpoints", "latest.json", "run.json"]


def test_checkpoint_files_are_readable_by_others(tmp_path):
    # mkdtemp/mkstemp create private (0700/0600) entries; a published checkpoint follows the umask.
    path, _ = _saved(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o777 & ~umask
    run, _, _ = _run_dir(tmp_path)
    assert (run / "latest.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_commands_in_error_messages_quote_the_path(tmp_path):
    # A command in a message is pasted into a shell: a path with spaces must come out quoted.
    folder = tmp_path / "my model"
    save_gpt2(folder, _model())  # no tokenizer files
    quoted = shlex.quote(str(folder))
    with pytest.raises(CheckpointError, match=re.escape(f"--local-dir {quoted}`")):
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match=re.escape(f"`tinygpt train --init-from {quoted} --out DIR`")):
        load_checkpoint(folder, with_training_state=True)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=re.escape(f"--local-dir {quoted}`, or convert")):
        load_checkpoint(folder)
