"""files.py: an interrupt that lands between making a temporary path and the cleanup that knows it."""

import signal
import tempfile

import pytest

from tinygpt import files

real_mkdtemp, real_mkstemp = tempfile.mkdtemp, tempfile.mkstemp


def _ctrl_c_as_it_returns(real):
    """``real``, with a Ctrl-C delivered after it made its path and before its caller sees the name."""

    def make(*args, **kwargs):
        made = real(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)  # Python acts on it at the next bytecode
        return made

    return make


@pytest.mark.parametrize("directory", [True, False], ids=["directory", "file"])
def test_a_ctrl_c_just_after_the_scratch_path_is_made_leaves_nothing(tmp_path, monkeypatch, directory):
    monkeypatch.setattr(tempfile, "mkdtemp", _ctrl_c_as_it_returns(real_mkdtemp))
    monkeypatch.setattr(tempfile, "mkstemp", _ctrl_c_as_it_returns(real_mkstemp))
    (tmp_path / ".out.mine.tmp").write_text("a user's file, named like ours")
    with pytest.raises(KeyboardInterrupt):
        with files.scratch(tmp_path / "out", ".tmp", directory=directory):
            pytest.fail("the interrupt is raised before the block runs")
    assert [p.name for p in tmp_path.iterdir()] == [".out.mine.tmp"]  # only what scratch made is gone
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_an_atomic_write_interrupted_as_its_temporary_file_is_made_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "latest.json"
    target.write_bytes(b"old")
    monkeypatch.setattr(tempfile, "mkstemp", _ctrl_c_as_it_returns(real_mkstemp))
    with pytest.raises(KeyboardInterrupt):
        files.write_bytes_atomic(target, b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["latest.json"]
    assert target.read_bytes() == b"old"


def test_a_ctrl_c_between_the_two_renames_of_a_publish_waits_until_both_are_done(tmp_path, monkeypatch):
    path, new = tmp_path / "ckpt", tmp_path / "new"
    path.mkdir()
    (path / "v").write_text("1")
    new.mkdir()
    (new / "v").write_text("2")
    monkeypatch.setattr(tempfile, "mkdtemp", _ctrl_c_as_it_returns(real_mkdtemp))
    with pytest.raises(KeyboardInterrupt):
        files.publish_directory(new, path)
    assert (path / "v").read_text() == "2"  # the new version is in place, never half of a swap
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # and the old one deleted


def test_held_signals_are_delivered_when_the_block_ends_and_handlers_come_back():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda number, _frame: seen.append(number))
    try:
        with files.interrupts_held():
            signal.raise_signal(signal.SIGTERM)
            assert seen == []  # held
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
