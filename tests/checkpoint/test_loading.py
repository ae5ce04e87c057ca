"""One load per command: each file of the checkpoint or model directory a command reads is opened once,
and no model is given random weights that a file then overwrites.

Every open is counted (``open``, ``io.open`` and ``os.open``, which ``tinygpt.files`` uses), per file.
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lm_helpers import tiny_model
from tinygpt import backend, save_gpt2
from tinygpt.checkpoint import Unfilled, load_checkpoint, resolve_checkpoint, save_checkpoint
from tinygpt.cli import main
from tinygpt.tokenizers import CharTokenizer

TEXT = "First Citizen: Before we proceed any further, hear me speak.\n" * 6
TINY = [
    "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
    "--eval-iters", "2", "--warmup-iters", "2", "--no-progress",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _numpy_backend():
    with backend.using("numpy"):
        yield


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def run(tmp_path, corpus):
    """A run whose latest checkpoint (step 4) is not an evaluation step of a resume to 6, so the resume
    never writes over the checkpoint it read (writing checks what it replaces, and reads that)."""
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--text",
                str(corpus),
                "--out",
                str(out),
                *TINY,
                "--max-iters",
                "4",
                "--eval-interval",
                "3",
            ]
        )
        == 0
    )
    return out


@pytest.fixture
def hf_dir(tmp_path):
    """A Hugging Face GPT-2 directory with a char tokenizer, written by tinygpt itself."""
    tokenizer = CharTokenizer.from_text(TEXT)
    model = tiny_model(tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=16, block_size=16)
    return save_gpt2(tmp_path / "gpt2", model, tokenizer)


@contextlib.contextmanager
def counting(monkeypatch) -> Iterator[tuple[collections.Counter, list[str]]]:
    """Count opens per resolved file, and random weight draws (``normal``/``uniform`` of a real generator)."""
    opens: collections.Counter = collections.Counter()
    draws: list[str] = []
    real_open, real_os_open = io.open, os.open

    def count(file):
        if isinstance(file, str | os.PathLike):
            opens[Path(file).resolve()] += 1

    def counted_open(file, *args, **kwargs):
        count(file)
        return real_open(file, *args, **kwargs)

    def counted_os_open(path, *args, **kwargs):
        count(path)
        return real_os_open(path, *args, **kwargs)

    for name in ("normal", "uniform"):
        real = getattr(backend.Generator, name)

        def drawn(self, *args, _real=real, _name=name, **kwargs):
            if not isinstance(self, Unfilled):
                draws.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(backend.Generator, name, drawn)
    monkeypatch.setattr(builtins, "open", counted_open)
    monkeypatch.setattr(io, "open", counted_open)
    monkeypatch.setattr(os, "open", counted_os_open)
    yield opens, draws
    monkeypatch.undo()


def opened_in(opens: collections.Counter, folder: Path) -> dict[str, int]:
    folder = folder.resolve()
    return {file.name: n for file, n in opens.items() if file.parent == folder}


CHECKPOINT = {"config.json": 1, "tokenizer.json": 1, "model.safetensors": 1, "trainer.json": 1}
HUGGING_FACE = {"config.json": 1, "model.safetensors": 1, "tokenizer.json": 1}


def test_resume_reads_each_file_of_the_latest_checkpoint_once(run, monkeypatch):
    latest = resolve_checkpoint(run, "latest")
    with counting(monkeypatch) as (opens, draws):
        assert main(["train", "--out", str(run), "--resume", "--max-iters", "6", "--no-progress"]) == 0
    assert opened_in(opens, latest) == CHECKPOINT | {"optimizer.safetensors": 1}
    assert opens[(run / "latest.json").resolve()] >= 1  # read once to resume; written and read again later
    assert draws == []  # the loaded model is the one that trains: no fresh random one


@pytest.mark.parametrize("command", [["sample", "--max-new-tokens", "3"], ["eval"], ["info"]])
def test_sample_eval_and_info_read_each_file_of_a_run_once(run, monkeypatch, command):
    best = resolve_checkpoint(run, "best")
    with counting(monkeypatch) as (opens, draws):
        assert main([command[0], "--checkpoint", str(run), *command[1:]]) == 0
    assert opened_in(opens, best) == CHECKPOINT
    assert opens[(run / "best.json").resolve()] == 1
    assert draws == []


@pytest.mark.parametrize("command", [["sample", "--max-new-tokens", "3"], ["info"]])
def test_a_huggingface_directory_is_opened_once(hf_dir, corpus, monkeypatch, command):
    with counting(monkeypatch) as (opens, draws):
        assert main([command[0], "--checkpoint", str(hf_dir), *command[1:]]) == 0
    assert opened_in(opens, hf_dir) == HUGGING_FACE
    assert draws == []


def test_eval_of_a_huggingface_directory_opens_each_file_once(hf_dir, corpus, monkeypatch):
    with counting(monkeypatch) as (opens, draws):
        assert main(["eval", "--checkpoint", str(hf_dir), "--text", str(corpus)]) == 0
    assert opened_in(opens, hf_dir) == HUGGING_FACE
    assert draws == []


@pytest.mark.parametrize("source", ["hf_dir", "run"])
def test_init_from_reads_the_pretrained_files_once_and_draws_no_weights(
    request, tmp_path, corpus, monkeypatch, source
):
    path = request.getfixturevalue(source)
    folder = path if source == "hf_dir" else resolve_checkpoint(path, "best")
    args = ["train", "--init-from", str(path), "--text", str(corpus), "--out", str(tmp_path / "ft")]
    with counting(monkeypatch) as (opens, draws):
        assert main([*args, "--block-size", "8", "--batch-size", "4", "--max-iters", "2", "--eval-interval", "2",
                     "--eval-iters", "1", "--no-progress"]) == 0  # fmt: skip
    assert opened_in(opens, folder) == (HUGGING_FACE if source == "hf_dir" else CHECKPOINT)
    assert draws == []


def test_a_loaded_model_draws_its_dropout_masks_from_the_default_generator(tmp_path):
    """Built without initialisation draws, a loaded model trains as the model it was saved from: the
    dropout masks come from the default generator (whose state a checkpoint keeps), not a private one."""
    tokenizer = CharTokenizer.from_text(TEXT)
    built = tiny_model(tokenizer.vocab_size, dropout=0.5)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "ckpt", built, tokenizer)).model
    ids = [tokenizer.encode(TEXT[:8])]
    outputs = []
    for model in (built, loaded):
        backend.manual_seed(3)
        model.train()
        outputs.append(backend.to_numpy(model(ids).data))
    assert (outputs[0] == outputs[1]).all()
    backend.manual_seed(4)
    assert (backend.to_numpy(loaded(ids).data) != outputs[1]).any()  # the masks are random, not fixed
