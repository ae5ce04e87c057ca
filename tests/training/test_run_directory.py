"""The run directory: a run deletes only what it wrote, and refuses a directory holding anything else."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest

from tests.lm_helpers import killed_after, subprocess_env, tiny_model
from tinygpt.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from tinygpt.errors import CheckpointError, ConfigError
from tinygpt.tokenizers import CharTokenizer
from tinygpt.training.run_directory import RunDirectory

TEXT = "a small text for a run directory\n"


def _tokenizer():
    return CharTokenizer.from_text(TEXT)


def _model(seed=0):
    return tiny_model(_tokenizer().vocab_size, seed=seed)


def _tree(path):
    """Every file under ``path`` with its bytes (what a user would lose)."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def _started(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.start()
    return run


def test_pruning_keeps_what_the_pointers_name_and_deletes_the_rest_of_ours(tmp_path):
    run = _started(tmp_path)
    first = run.save(1, _model(1), _tokenizer())
    run.publish("best", first)
    run.save(2, _model(2), _tokenizer())
    run.save(3, _model(3), _tokenizer())
    assert sorted(p.name for p in (run.path / "checkpoints").iterdir()) == ["step-0000001", "step-0000003"]
    recorded = json.loads((run.path / "run.json").read_text())["checkpoints"]
    assert sorted(recorded) == ["step-0000001", "step-0000003"]


def test_a_users_copy_inside_the_run_is_never_pruned(tmp_path):
    run = _started(tmp_path)
    first = run.save(1, _model(1), _tokenizer())
    keep = run.path / "checkpoints" / "my-keep"
    shutil.copytree(first, keep)
    lookalike = run.path / "checkpoints" / "step-0000009"  # named like ours, but not recorded
    shutil.copytree(first, lookalike)
    before = _tree(keep), _tree(lookalike)
    reopened = RunDirectory(run.path)
    reopened.resume()
    reopened.save(2, _model(2), _tokenizer())
    reopened.save(3, _model(3), _tokenizer())
    assert (_tree(keep), _tree(lookalike)) == before
    assert not first.exists()  # our own old checkpoint was pruned


def test_a_new_run_refuses_a_directory_with_foreign_checkpoints(tmp_path):
    out = tmp_path / "run"
    foreign = out / "checkpoints" / "resnet-epoch10"
    foreign.mkdir(parents=True)
    (foreign / "model.pt").write_bytes(b"weights of another project")
    before = _tree(out)
    with pytest.raises(ConfigError, match=r"checkpoints/resnet-epoch10.*nothing was changed"):
        RunDirectory(out).start()
    assert _tree(out) == before


@pytest.mark.parametrize("name", ["metrics.jsonl", "notes.txt", "best.json.bak"])
def test_a_new_run_refuses_a_directory_with_files_it_did_not_write(tmp_path, name):
    out = tmp_path / "run"
    out.mkdir()
    (out / name).write_text('{"iter": 5, "mine": true}\n')
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        RunDirectory(out).start()
    assert (out / name).read_text() == '{"iter": 5, "mine": true}\n'


def test_the_error_lists_a_few_foreign_entries_and_counts_the_rest(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for i in range(8):
        (out / f"file{i}").write_text("x")
    with pytest.raises(ConfigError, match=r"file0, file1, file2, file3, file4 and 3 more"):
        RunDirectory(out).start()


def test_an_empty_or_missing_directory_is_fine(tmp_path):
    (tmp_path / "empty").mkdir()
    RunDirectory(tmp_path / "empty").start()
    RunDirectory(tmp_path / "new" / "nested").start()
    assert (tmp_path / "new" / "nested" / "run.json").exists()


def _killed_while_saving(path, *args, **kwargs):
    (path.parent / f".{path.name}.abc.tmp").mkdir(parents=True)
    raise OSError("simulated kill while writing the checkpoint")


def test_a_run_that_never_saved_is_started_over(tmp_path, monkeypatch):
    run = _started(tmp_path)
    run.log({"iter": 0, "val_loss": 1.0})
    monkeypatch.setattr("tinygpt.training.run_directory.save_checkpoint", _killed_while_saving)
    with pytest.raises(OSError, match="simulated kill"):
        run.save(0, _model(), _tokenizer())
    monkeypatch.undo()
    again = RunDirectory(run.path)
    again.start()
    assert not (run.path / "metrics.jsonl").exists()
    assert list((run.path / "checkpoints").iterdir()) == []


def test_a_run_from_tinygpt_0_1_is_adopted_without_touching_unnamed_folders(tmp_path):
    out = tmp_path / "run"
    old = save_checkpoint(out / "checkpoints" / "step-0000010", _model(1), _tokenizer())
    other = save_checkpoint(out / "checkpoints" / "step-0000005", _model(2), _tokenizer())
    for which in ("latest", "best"):
        (out / f"{which}.json").write_text(json.dumps({"checkpoint": "checkpoints/step-0000010"}))
    run = RunDirectory(out)
    assert run.resume() == old
    run.save(20, _model(3), _tokenizer())
    assert other.exists()  # not named by a pointer, so not known to be ours: kept
    assert old.exists()  # still the best
    assert resolve_checkpoint(out, "latest").name == "step-0000020"


def test_an_unreadable_pointer_deletes_nothing(tmp_path):
    run = _started(tmp_path)
    first = run.save(1, _model(1), _tokenizer())
    (run.path / "best.json").write_text("{not json")
    (run.path / ".latest.json.abc.tmp").write_text("half")
    second = run.save(2, _model(2), _tokenizer())
    assert first.exists() and second.exists()
    assert not (run.path / ".latest.json.abc.tmp").exists()


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        RunDirectory(tmp_path / "file").start()


def test_resume_without_a_run_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no run to continue"):
        RunDirectory(tmp_path).resume()


def test_debris_of_a_killed_save_is_ours_and_cleaned(tmp_path, monkeypatch):
    run = _started(tmp_path)
    run.save(1, _model(1), _tokenizer())
    monkeypatch.setattr("tinygpt.training.run_directory.save_checkpoint", _killed_while_saving)
    with pytest.raises(OSError, match="simulated kill"):
        run.save(2, _model(2), _tokenizer())
    monkeypatch.undo()
    assert RunDirectory(run.path).foreign_entries() == []
    reopened = RunDirectory(run.path)
    reopened.resume()
    reopened.save(3, _model(3), _tokenizer())
    assert sorted(p.name for p in (run.path / "checkpoints").iterdir()) == ["step-0000003"]


# One writer per run directory --------------------------------------------------------------
def test_a_second_holder_is_refused_at_once_naming_the_first(tmp_path):
    first, second = RunDirectory(tmp_path / "run"), RunDirectory(tmp_path / "run")
    with first.locked():
        with pytest.raises(
            ConfigError, match=rf"in use by another tinygpt process \(pid {os.getpid()} on host "
        ):
            with second.locked():
                pass
    with second.locked():  # released: free again
        pass


def test_a_lock_left_by_a_killed_process_is_not_stale(tmp_path):
    code = (
        "import os, sys, time; from tinygpt.training import RunDirectory\n"
        f"r = RunDirectory({str(tmp_path / 'run')!r})\n"
        "with r.locked():\n    print('locked', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=subprocess_env()
    )
    with killed_after(proc):
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"pid {proc.pid}"):
            with RunDirectory(tmp_path / "run").locked():
                pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert (tmp_path / "run" / "run.lock").exists()  # left behind by the kill ...
    with RunDirectory(tmp_path / "run").locked():  # ... and not in the way
        pass


def test_a_new_directory_made_only_for_the_lock_is_removed_again(tmp_path):
    with RunDirectory(tmp_path / "new").locked():
        assert (tmp_path / "new" / "run.lock").exists()
    assert not (tmp_path / "new").exists()


# Readers while a run trains --------------------------------------------------------------------
def test_a_reader_follows_the_pointer_when_its_checkpoint_is_pruned_mid_read(tmp_path, monkeypatch):
    from tinygpt.checkpoint import directory

    run = _started(tmp_path)
    run.save(1, _model(1), _tokenizer())
    real_read, calls = directory.read_checked, {"n": 0}

    def read_while_the_run_moves_on(path, name, sha):
        calls["n"] += 1
        if calls["n"] == 1:  # the trainer saves step 2 and prunes step 1 while we read it
            run.save(2, _model(2), _tokenizer())
        return real_read(path, name, sha)

    monkeypatch.setattr(directory, "read_checked", read_while_the_run_moves_on)
    loaded = load_checkpoint(run.path, which="latest")
    assert loaded.path.name == "step-0000002"
    assert not (run.path / "checkpoints" / "step-0000001").exists()


def test_readers_never_fail_while_a_writer_saves_and_prunes(tmp_path):
    run = _started(tmp_path)
    run.save(0, _model(0), _tokenizer())
    models = [_model(i) for i in range(3)]
    barrier, stop, errors = threading.Barrier(2), threading.Event(), []

    def write():
        barrier.wait()
        for step in range(1, 40):
            run.save(step, models[step % 3], _tokenizer())
        stop.set()

    def read():
        barrier.wait()
        while not stop.is_set():
            try:
                load_checkpoint(run.path, which="latest")
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]


def test_rewriting_metrics_goes_through_a_fresh_temporary_name(tmp_path):
    run = _started(tmp_path)
    for step in (0, 10, 20):
        run.log({"iter": step, "val_loss": 1.0})
    fixed = run.path / ".metrics.jsonl.tmp"  # the name tinygpt 0.1 rewrote through, whoever held it
    fixed.write_text("not ours to overwrite")
    run.trim_metrics(before_step=20)
    assert [json.loads(line)["iter"] for line in (run.path / "metrics.jsonl").read_text().splitlines()] == [
        0,
        10,
    ]
    assert fixed.read_text() == "not ours to overwrite"
    assert sorted(p.name for p in run.path.iterdir() if p.name.startswith(".")) == [".metrics.jsonl.tmp"]


def test_a_users_checkpoint_named_like_the_next_one_is_never_replaced(tmp_path):
    run = _started(tmp_path)
    first = run.save(1, _model(1), _tokenizer())
    lookalike = run.path / "checkpoints" / "step-0000002"  # the user's copy, named like the next save
    shutil.copytree(first, lookalike)
    before = _tree(lookalike)
    with pytest.raises(CheckpointError, match=r"step-0000002 exists, but this run did not write it"):
        run.save(2, _model(2), _tokenizer())
    assert _tree(lookalike) == before
    assert resolve_checkpoint(run.path, "latest") == first
