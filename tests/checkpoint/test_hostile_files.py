"""Hostile or damaged run directories fail fast and clearly: one CheckpointError, never a hang.

Every case writes the damage *and* a matching SHA-256 into config.json where it matters, so the
check that catches it is the one under test, not the hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save as st_save

from tests.lm_helpers import tiny_model
from tinygpt import backend
from tinygpt.checkpoint import load_checkpoint, resolve_checkpoint
from tinygpt.errors import CheckpointError, CorpusError
from tinygpt.tokenizers import CharTokenizer
from tinygpt.training import LanguageModelTrainer, RunDirectory, TrainConfig
from tinygpt.training.loop import print_line

TEXT = "to be or not to be, that is the question.\n" * 8


def _run(tmp_path: Path) -> Path:
    """A real run directory with two evaluations (latest and best checkpoints, metrics.jsonl)."""
    tokenizer = CharTokenizer.from_text(TEXT)
    ids = backend.asarray(tokenizer.encode(TEXT))
    model = tiny_model(tokenizer.vocab_size)
    config = TrainConfig(batch_size=2, max_iters=4, eval_interval=2, eval_iters=1, warmup_iters=1)
    trainer = LanguageModelTrainer(
        model,
        tokenizer,
        ids[:250],
        ids[250:],
        config,
        out_dir=tmp_path / "run",
        log=None,
        show_progress=False,
    )
    trainer.train()
    return tmp_path / "run"


def _rewrite(checkpoint: Path, name: str, data: bytes) -> None:
    """Replace one file of a checkpoint and record its new SHA-256, as a forger would."""
    (checkpoint / name).write_bytes(data)
    config = json.loads((checkpoint / "config.json").read_text())
    config["sha256"][name] = hashlib.sha256(data).hexdigest()
    (checkpoint / "config.json").write_text(json.dumps(config))


def _latest(run: Path) -> Path:
    return resolve_checkpoint(run, "latest")


def _fails_fast(fn, *needles, seconds=5.0):
    start = time.monotonic()
    with pytest.raises(CheckpointError) as info:
        fn()
    assert time.monotonic() - start < seconds
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_weights_that_are_a_fifo_are_refused_without_blocking(tmp_path):
    ckpt = _latest(_run(tmp_path))
    (ckpt / "model.safetensors").unlink()
    os.mkfifo(ckpt / "model.safetensors")
    _fails_fast(lambda: load_checkpoint(ckpt), "model.safetensors", "not a regular file")


def test_a_symlink_out_of_the_checkpoint_is_refused(tmp_path):
    ckpt = _latest(_run(tmp_path))
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes((ckpt / "model.safetensors").read_bytes())
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors").symlink_to(outside)
    _fails_fast(lambda: load_checkpoint(ckpt), "symbolic link out of the checkpoint")


def test_a_missing_sha256_entry_is_refused_not_skipped(tmp_path):
    ckpt = _latest(_run(tmp_path))
    config = json.loads((ckpt / "config.json").read_text())
    del config["sha256"]["model.safetensors"]
    (ckpt / "config.json").write_text(json.dumps(config))
    _fails_fast(lambda: load_checkpoint(ckpt), "no SHA-256 for model.safetensors")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, bad):
    ckpt = _latest(_run(tmp_path))
    weights = load_checkpoint(ckpt).model.state_dict()
    weights["blocks.0.mlp.fc.weight"][1, 2] = bad
    _rewrite(ckpt, "model.safetensors", st_save({k: v.astype(np.float32) for k, v in weights.items()}))
    _fails_fast(lambda: load_checkpoint(ckpt), "blocks.0.mlp.fc.weight", "NaN or infinite")


def test_a_config_for_a_model_that_cannot_fit_is_refused_before_allocating(tmp_path):
    ckpt = _latest(_run(tmp_path))
    config = json.loads((ckpt / "config.json").read_text())
    config["model"].update(n_embd=65536, n_layer=4096, n_head=1)
    (ckpt / "config.json").write_text(json.dumps(config))
    _fails_fast(lambda: load_checkpoint(ckpt), "parameters", "GiB", seconds=2.0)


def test_deeply_nested_or_huge_json_is_refused(tmp_path):
    ckpt = _latest(_run(tmp_path))
    (ckpt / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    _fails_fast(lambda: load_checkpoint(ckpt), "config.json")
    (ckpt / "config.json").write_text(" " * (2 << 20) + "{}")
    _fails_fast(lambda: load_checkpoint(ckpt), "larger than")


def test_a_huge_tokenizer_with_duplicates_is_checked_in_linear_time(tmp_path):
    ckpt = _latest(_run(tmp_path))
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 100_000)] + ["a"]
    chars.sort()
    data = json.dumps({"format": "tinygpt-char-tokenizer", "version": 1, "chars": chars + ["a"]}).encode()
    _rewrite(ckpt, "tokenizer.json", data)
    _fails_fast(lambda: load_checkpoint(ckpt), "duplicate", seconds=2.0)


@pytest.mark.parametrize("target", ["/etc", "../../outside", "", 7, None])
def test_a_pointer_out_of_the_run_directory_is_refused(tmp_path, target):
    run = _run(tmp_path)
    (run / "best.json").write_text(json.dumps({"checkpoint": target}))
    _fails_fast(lambda: load_checkpoint(run), "best.json")


def test_metrics_with_foreign_bytes_and_types_do_not_break_resume(tmp_path):
    run = _run(tmp_path)
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b'\xff\xfe not utf-8\n{"iter": "two"}\n[1, 2]\n{"iter": null}\n{"iter": 1e999}\n')
    reopened = RunDirectory(run)
    reopened.resume()
    reopened.trim_metrics(3)
    kept = [json.loads(line)["iter"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert kept == [0, 2]


# Every field of every file, random JSON values ----------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _field_paths(value, prefix=()):
    """Every path to a value inside a JSON document (dict keys and list indices)."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _field_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value[:3]):
            yield from _field_paths(child, (*prefix, i))


def _replaced(document, path, value):
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copy


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    with backend.using("numpy"):
        return _run(tmp_path_factory.mktemp("pristine"))


FILES = [
    "config.json",
    "trainer.json",
    "tokenizer.json",
    "latest.json",
    "best.json",
    "run.json",
    "metrics.jsonl",
]
RUN_FILES = ("latest.json", "best.json", "run.json", "metrics.jsonl")


def _targets(run: Path, name: str):
    file = (run if name in RUN_FILES else _latest(run)) / name
    text = file.read_text()
    document = json.loads(
        text.splitlines()[0] if name == "metrics.jsonl" else text
    )  # JSONL: its first record
    return [(file, document, path) for path in _field_paths(document)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_json_in_any_field_of_any_file_is_a_checkpoint_error_or_loads(
    pristine, tmp_path_factory, data
):
    import shutil

    run = tmp_path_factory.mktemp("fuzz") / "run"
    shutil.copytree(pristine, run, symlinks=True)
    name = data.draw(st.sampled_from(FILES))
    file, document, path = data.draw(st.sampled_from(_targets(run, name)))
    value = data.draw(JSON_VALUES)
    print(f"{name} at {list(path)} := {value!r}")
    raw = json.dumps(_replaced(document, path, value)).encode()
    if name == "metrics.jsonl":
        raw = b"\n".join([raw, *file.read_bytes().splitlines()[1:]]) + b"\n"
    if file.parent.name.startswith("step-") and name != "config.json":
        _rewrite(file.parent, name, raw)  # a forged file with a matching hash
    else:
        file.write_bytes(raw)
    start = time.monotonic()
    with backend.using("numpy"):
        try:
            load_checkpoint(run, with_training_state=False)
            load_checkpoint(_latest(run), with_training_state=True)
            reopened = RunDirectory(run)
            reopened.resume()
            reopened.trim_metrics(2)
            _resume_a_trainer(run)
        except (CheckpointError, CorpusError):
            pass
    assert time.monotonic() - start < 10.0


def _resume_a_trainer(run: Path) -> None:
    """What `tinygpt train --resume` does with the files: every value it reads is checked."""
    run_dir = RunDirectory(run)
    ckpt = load_checkpoint(run_dir.resume(), with_training_state=True)
    ids = backend.asarray(ckpt.tokenizer.encode(TEXT))
    config = TrainConfig(batch_size=2, max_iters=4, eval_interval=2, eval_iters=1)
    trainer = LanguageModelTrainer(
        ckpt.model,
        ckpt.tokenizer,
        ids[:250],
        ids[250:],
        config,
        out_dir=run_dir,
        log=print_line,
        show_progress=False,
    )
    trainer.restore(ckpt)


def test_metrics_lines_nested_too_deeply_or_with_huge_numbers_are_dropped(tmp_path):
    run = _run(tmp_path)
    with open(run / "metrics.jsonl", "a") as f:
        f.write("[" * 50_000 + "]" * 50_000 + "\n" + '{"iter": 1' + "0" * 5000 + "}\n")
    reopened = RunDirectory(run)
    reopened.resume()
    reopened.trim_metrics(3)
    assert [json.loads(line)["iter"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0, 2]
