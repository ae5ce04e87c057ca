"""The entry points (``python -m tinygpt``, the ``tinygpt`` script): Ctrl-C during start-up is quiet.

A Ctrl-C in the first few hundred milliseconds lands while NumPy and the commands are being
imported. To hit that moment every time, a ``sitecustomize`` module makes one chosen import
announce itself and block; the test sends SIGINT while it blocks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.lm_helpers import PYTHON, REPO_ROOT, killed_after, subprocess_env

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")

BLOCKER = textwrap.dedent(
    """
    import os, sys, time

    class BlockOneImport:
        def find_spec(self, name, path=None, target=None):
            if name == os.environ["TINYGPT_TEST_BLOCK_IMPORT"]:
                sys.meta_path.remove(self)
                os.write(2, b"blocking the import\\n")
                time.sleep(60)
            return None

    sys.meta_path.insert(0, BlockOneImport())
    """
)


def _console_script_command() -> list[str]:
    """What the installed ``tinygpt`` script runs, as pyproject.toml declares it (pip's wrapper)."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        module, _, function = tomllib.load(f)["project"]["scripts"]["tinygpt"].partition(":")
    return [PYTHON, "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]


@pytest.mark.parametrize("entry", ["python -m tinygpt", "console script"])
@pytest.mark.parametrize("blocked", ["numpy", "tinygpt.cli.train"])
def test_ctrl_c_while_imports_run_exits_130_without_a_traceback(tmp_path, entry, blocked):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    command = [PYTHON, "-m", "tinygpt"] if entry == "python -m tinygpt" else _console_script_command()
    env = subprocess_env(TINYGPT_TEST_BLOCK_IMPORT=blocked)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    child = subprocess.Popen(
        [*command, "info", "--checkpoint", "nowhere"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    with killed_after(child):
        assert child.stderr is not None
        assert child.stderr.readline() == "blocking the import\n"
        child.send_signal(signal.SIGINT)
        err = child.communicate(timeout=30)[1]
    assert child.returncode == 130, err
    assert err == "tinygpt: interrupted\n"


def test_importing_tinygpt_loads_no_array_library():
    # What lets the entry point catch a Ctrl-C before NumPy loads; the names still resolve.
    code = (
        "import sys, tinygpt; assert 'numpy' not in sys.modules, sorted(sys.modules); "
        "from tinygpt import TinyGPT, backend; print(TinyGPT.__module__, backend.__name__)"
    )
    result = subprocess.run(
        [PYTHON, "-c", code], env=subprocess_env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["tinygpt.models.gpt", "tinygpt.backend"]


def test_every_public_name_resolves_to_its_module():
    import tinygpt

    for name in tinygpt.__all__:
        assert getattr(tinygpt, name) is not None, name
    assert set(tinygpt.__all__) == set(tinygpt._EXPORTS) | set(tinygpt._SUBMODULES)
    with pytest.raises(AttributeError, match="no attribute 'Tinygpt'"):
        tinygpt.Tinygpt  # noqa: B018
    assert sys.modules["tinygpt.models"].TinyGPT is tinygpt.TinyGPT
