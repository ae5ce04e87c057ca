"""The ``--text`` cache: a file is prepared once, found again by its content, and a tampered entry is refused."""

import hashlib
import json

import pytest

from tinygpt.datasets.cache import cached_dataset, cached_dataset_path, file_sha256
from tinygpt.errors import CorpusError


@pytest.fixture
def text_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGPT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "t.txt"
    path.write_text("".join(f"line {i}, twice as long as it needs to be\n" for i in range(2000)))
    return path


def test_a_text_is_prepared_once_and_found_again_by_its_content(text_file, tmp_path, capsys):
    digest = hashlib.sha256(text_file.read_bytes()).hexdigest()
    assert file_sha256(text_file) == digest
    first = cached_dataset(text_file, val_fraction=0.2)
    assert first.path == cached_dataset_path(digest, "char", None, 0.2)
    assert first.path.parent == tmp_path / "cache" / "datasets" and digest in first.path.name
    assert "preparing it once" in capsys.readouterr().out
    moved = tmp_path / "moved.txt"
    text_file.rename(moved)
    again = cached_dataset(moved, val_fraction=0.2)
    assert "using the prepared dataset" in capsys.readouterr().out
    assert again.path == first.path and again.manifest == first.manifest
    assert cached_dataset(moved, val_fraction=0.3, log=None).path != first.path  # other settings, other entry


def test_only_looking_finds_nothing_before_it_is_prepared(text_file):
    assert cached_dataset(text_file, prepare=False, log=None) is None
    cached_dataset(text_file, log=None)
    assert cached_dataset(text_file, prepare=False, log=None) is not None


def test_a_cache_entry_of_another_text_is_refused(text_file):
    dataset = cached_dataset(text_file, log=None)
    manifest = json.loads((dataset.path / "manifest.json").read_text())
    manifest["source"]["sha256"] = "0" * 64
    (dataset.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusError, match="not of .*t.txt.*remove it"):
        cached_dataset(text_file, log=None)
