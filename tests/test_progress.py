"""Progress output: a tqdm bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import io
import sys

from tinygpt.progress import Progress


def test_without_a_terminal_lines_go_to_the_log_and_steps_print_nothing(capsys):
    lines: list[str] = []
    with Progress(total=10, enabled=False) as progress:
        for _ in range(10):
            progress.update(loss=1.0)
        progress.write("step 10: val loss 1.0", lines.append)
    assert lines == ["step 10: val loss 1.0"]
    assert capsys.readouterr() == ("", "")


def test_on_a_terminal_the_bar_shows_the_count_and_loss_and_lines_print_above_it(monkeypatch, capsys):
    fake_terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", fake_terminal)
    with Progress(total=3, enabled=True, desc="train") as progress:
        for _ in range(3):
            progress.update(loss=2.5)
        progress.write("evaluated")
    drawn = fake_terminal.getvalue()
    assert "\r" in drawn and "train" in drawn and "3/3" in drawn and "loss=2.5000" in drawn
    assert "evaluated" in capsys.readouterr().out + drawn
