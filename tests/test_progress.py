"""Progress output: a bar on a terminal (tqdm or the built-in line), plain lines otherwise."""

from __future__ import annotations

import io
import sys

from tinygpt.progress import Progress


def test_without_a_terminal_lines_go_to_the_log_and_steps_print_nothing(capsys):
    lines: list[str] = []
    progress = Progress(total=10, enabled=False)
    for _ in range(10):
        progress.update(loss=1.0)
    progress.write("step 10: val loss 1.0", lines.append)
    progress.close()
    assert lines == ["step 10: val loss 1.0"]
    assert capsys.readouterr() == ("", "")


def test_without_tqdm_a_terminal_gets_the_built_in_bar(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now fails
    fake_terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", fake_terminal)
    progress = Progress(total=3, enabled=True, desc="train")
    for _ in range(3):
        progress.update(loss=2.5)
    progress.write("evaluated")
    progress.close()
    drawn = fake_terminal.getvalue()
    assert "\r" in drawn and "train 3/3" in drawn and "loss=2.5000" in drawn
    assert capsys.readouterr().out == "evaluated\n"
