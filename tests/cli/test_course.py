"""``tinygpt course``: list, start, check, status and a class; exit 0 passed, 1 failed, 2 usage error."""

from __future__ import annotations

import csv
import io
import json

from tests.cli.test_commands import run_cli
from tests.course.helpers import numpy_session, solution
from tinygpt.course.progress import FILENAME

pytestmark = numpy_session


def test_list_shows_the_exercises_in_order_with_their_status(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "course", "list", "--dir", tmp_path, "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows][:1] == ["char_tokenizer"]
    assert {"name", "title", "minutes", "status", "teaches", "checks", "passed"} <= set(rows[0])
    assert all(r["status"] == "not started" for r in rows)
    code, out, _ = run_cli(capsys, "course", "list", "--dir", tmp_path)
    assert code == 0 and "char_tokenizer" in out and "not started" in out


def test_start_writes_the_starter_and_never_overwrites_the_students_file(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "course", "start", "char_tokenizer", "--dir", tmp_path)
    assert code == 0 and "wrote" in out
    path = tmp_path / "char_tokenizer.py"
    assert 'raise NotImplementedError("write encode' in path.read_text(encoding="utf-8")
    path.write_text("# my work\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "course", "start", "char_tokenizer", "--dir", tmp_path)
    assert code == 2 and "already exists" in err and str(path) in err and "Traceback" not in err
    assert path.read_text(encoding="utf-8") == "# my work\n"
    code, out, _ = run_cli(capsys, "course", "start", "char_tokenizer", "--dir", tmp_path, "--force")
    assert code == 0 and "kept your previous file as" in out
    (backup,) = tmp_path.glob("char_tokenizer.*.bak.py")
    assert backup.read_text(encoding="utf-8") == "# my work\n"
    assert "NotImplementedError" in path.read_text(encoding="utf-8")
    code, _, _ = run_cli(capsys, "course", "start", "char_tokenizer", "--dir", tmp_path, "--force")
    assert (
        code == 0 and len(list(tmp_path.glob("char_tokenizer.*.bak*.py"))) == 2
    )  # a second backup, not over the first


def test_check_exit_codes_and_progress(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "course", "check", "char_tokenizer")
    assert code == 2 and "no file char_tokenizer.py" in err and "tinygpt course start char_tokenizer" in err
    code, _, err = run_cli(capsys, "course", "check", "layer_nrom")
    assert code == 2 and "did you mean 'layer_norm'" in err
    run_cli(capsys, "course", "start", "char_tokenizer")
    code, out, _ = run_cli(capsys, "course", "check", "char_tokenizer")
    assert code == 1 and "not implemented yet: CharTokenizer.__init__" in out
    code, out, _ = run_cli(capsys, "course", "status")
    assert code == 0 and "started" in out and "Next: tinygpt course check char_tokenizer" in out
    (tmp_path / "char_tokenizer.py").write_text(solution("char_tokenizer"), encoding="utf-8")
    code, out, _ = run_cli(capsys, "course", "check", "char_tokenizer", "--json")
    assert code == 0 and json.loads(out)["passed"] is True
    rows = json.loads(run_cli(capsys, "course", "list", "--json")[1])
    assert rows[0]["status"] == "passed" and rows[0]["passed"]
    with open(tmp_path / "char_tokenizer.py", "a", encoding="utf-8") as f:
        f.write("# an edit after passing\n")
    assert json.loads(run_cli(capsys, "course", "list", "--json")[1])[0]["status"] == "passed, changed since"


def test_a_damaged_progress_file_is_reported_and_left_alone(capsys, tmp_path):
    progress = tmp_path / FILENAME
    progress.write_text("{not json", encoding="utf-8")
    code, _, err = run_cli(capsys, "course", "list", "--dir", tmp_path)
    assert code == 0 and "not valid JSON" in err and "move the file away" in err
    (tmp_path / "char_tokenizer.py").write_text(solution("char_tokenizer"), encoding="utf-8")
    code, _, err = run_cli(capsys, "course", "check", "char_tokenizer", tmp_path / "char_tokenizer.py")
    assert code == 0 and "progress is not being recorded" in err
    assert progress.read_text(encoding="utf-8") == "{not json"


def test_check_all_grades_a_class(capsys, tmp_path):
    for student, source in (
        ("alice", solution("char_tokenizer")),
        ("bob", "class CharTokenizer:\n    pass\n"),
    ):
        (tmp_path / student).mkdir()
        (tmp_path / student / "char_tokenizer.py").write_text(source, encoding="utf-8")
    (tmp_path / "carol").mkdir()
    code, out, _ = run_cli(capsys, "course", "check", "--all", tmp_path)
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith("alice") and " ok" in lines[1]
    assert lines[2].startswith("bob") and "FAIL" in lines[2]
    assert lines[3].startswith("carol") and " -" in lines[3]
    assert "bob / char_tokenizer:" in out
    rows = json.loads(run_cli(capsys, "course", "check", "--all", tmp_path, "--json")[1])
    status = {(r["student"], r["exercise"]): r["status"] for r in rows}
    assert status[("alice", "char_tokenizer")] == "passed"
    assert status[("bob", "char_tokenizer")] == "failed"
    assert status[("carol", "char_tokenizer")] == "missing"
    table = list(csv.reader(io.StringIO(run_cli(capsys, "course", "check", "--all", tmp_path, "--csv")[1])))
    assert table[0][:2] == ["student", "char_tokenizer"] and table[1][1] == "passed"
    assert not any(
        (tmp_path / s / FILENAME).exists() for s in ("alice", "bob")
    )  # nothing written into their folders


def test_usage_errors_are_one_line(capsys, tmp_path):
    for args in (
        ("course", "check"),
        ("course", "check", "char_tokenizer", "--all", tmp_path),
        ("course", "check", "--all", tmp_path / "nowhere"),
        ("course", "start", "nope"),
        ("course", "check", "char_tokenizer", tmp_path / "x.txt"),
    ):
        code, _, err = run_cli(capsys, *args)
        assert code == 2, args
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)


def test_notebooks_without_the_course_extra_say_what_to_install(capsys, tmp_path, monkeypatch):
    import importlib

    real = importlib.import_module

    def without_notebook_packages(name, *args):
        if name.split(".")[0] in ("jupytext", "nbformat"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr("tinygpt.extras.importlib.import_module", without_notebook_packages)
    code, _, err = run_cli(capsys, "course", "start", "layer_norm", "--dir", tmp_path, "--notebook")
    assert code == 2 and "pip install 'tinygpt[course]'" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "layer_norm.ipynb").write_text("{}", encoding="utf-8")
    code, _, err = run_cli(capsys, "course", "check", "layer_norm", tmp_path / "layer_norm.ipynb")
    assert code == 2 and "pip install 'tinygpt[course]'" in err
    code, _, _ = run_cli(
        capsys, "course", "start", "layer_norm", "--dir", tmp_path
    )  # the .py path needs neither
    assert code == 0


def test_skipping_the_milestone_passes_the_checks_but_not_the_exercise(capsys, tmp_path):
    path = tmp_path / "layer_norm.py"
    path.write_text(solution("layer_norm"), encoding="utf-8")
    code, out, _ = run_cli(capsys, "course", "check", "layer_norm", path, "--no-milestone")
    assert code == 0 and "skipped: milestone: a TinyGPT" in out
    rows = {
        r["name"]: r for r in json.loads(run_cli(capsys, "course", "list", "--dir", tmp_path, "--json")[1])
    }
    assert rows["layer_norm"]["status"] == "started"
