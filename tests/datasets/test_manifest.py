"""A hostile dataset directory gets one clear error from ``open_dataset``, never a crash or a wrong read."""

import json
import os
import shutil

import pytest

from tinygpt.datasets import open_dataset, prepare_dataset
from tinygpt.errors import CorpusError

TEXT = "".join(f"line {i} of a small corpus, with é and 🙂\n" for i in range(300))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prepared")
    (folder / "corpus.txt").write_text(TEXT, encoding="utf-8")
    prepare_dataset(folder / "data", text=folder / "corpus.txt", log=None)
    return folder / "data"


@pytest.fixture
def dataset(prepared, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(prepared, copy)
    return copy


def edit(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def refused(folder, *needles):
    with pytest.raises(CorpusError) as info:
        open_dataset(folder)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_a_prepared_dataset_opens(dataset):
    opened = open_dataset(dataset)
    assert opened.manifest.dtype == "uint8" and len(opened.train) + len(opened.val) == len(TEXT)
    assert opened.record()["sha256"] == opened.manifest.text_sha256


MANIFEST_EDITS = {
    "format": (lambda m: m.update(format="nanogpt"), "format is 'nanogpt'"),
    "version": (lambda m: m.update(version=2), "reads version 1"),
    "version as text": (lambda m: m.update(version="1"), "version is '1'"),
    "dtype float": (lambda m: m.update(dtype="float32"), "dtype is 'float32'"),
    "dtype signed": (lambda m: m.update(dtype="int64"), "expected one of uint8, uint16, uint32"),
    "vocabulary too big for dtype": (
        lambda m: m["tokenizer"].update(vocab_size=300),
        "does not fit the dtype uint8",
    ),
    "tokens as bool": (lambda m: m["splits"]["train"].update(tokens=True), "splits.train.tokens"),
    "tokens as float": (lambda m: m["splits"]["val"].update(tokens=5.0), "splits.val.tokens"),
    "negative bytes": (lambda m: m["splits"]["val"].update(bytes=-1), "splits.val.bytes"),
    "parent path": (lambda m: m["splits"]["train"].update(file="../train.bin"), "'../train.bin'"),
    "absolute path": (lambda m: m["splits"]["train"].update(file="/etc/passwd"), "'/etc/passwd'"),
    "hidden file": (lambda m: m["splits"]["train"].update(file=".train.bin"), "'.train.bin'"),
    "one file for both": (lambda m: m["splits"]["val"].update(file="train.bin"), "a file of their own"),
    "missing split": (lambda m: m["splits"].pop("val"), "splits lacks val"),
    "unknown field": (lambda m: m.update(extra=1), "unknown fields extra"),
    "not an object": (lambda m: m.update(splits=[1, 2]), "splits must be a JSON object"),
    "fraction": (lambda m: m["split"].update(val_fraction=1.5), "split.val_fraction"),
    "sha": (lambda m: m["source"].update(sha256="abc"), "source.sha256"),
    "no source": (lambda m: m["source"].pop("path"), "exactly one of a path and a corpus"),
    "char tokens differ from characters": (
        lambda m: m["splits"]["train"].update(characters=m["splits"]["train"]["characters"] + 1),
        "tokens for",
    ),
    "tokenizer kind": (lambda m: m["tokenizer"].update(kind="bpe"), "is a char tokenizer"),
    "tokenizer sha": (lambda m: m["tokenizer"].update(sha256="0" * 64), "SHA-256 differs"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_EDITS))
def test_a_manifest_that_does_not_check_out_is_refused(dataset, case):
    change, needle = MANIFEST_EDITS[case]
    edit(dataset, change)
    refused(dataset, needle)


def test_counts_that_do_not_match_the_files_are_refused(dataset):
    edit(
        dataset,
        lambda m: [
            m["splits"]["train"].update(
                tokens=m["splits"]["train"]["tokens"] - 1,
                characters=m["splits"]["train"]["characters"] - 1,
                bytes=m["splits"]["train"]["bytes"] - 1,
            )
        ],
    )
    refused(dataset, "train.bin", "truncated or not this dataset's")


def test_a_truncated_token_file_is_refused(dataset):
    with open(dataset / "val.bin", "r+b") as f:
        f.truncate(10)
    refused(dataset, "val.bin has 10 bytes")


@pytest.mark.parametrize("member", ["train.bin", "manifest.json", "tokenizer.json"])
def test_a_member_that_is_a_link_out_of_the_directory_is_refused(dataset, tmp_path, member):
    outside = tmp_path / "outside"
    shutil.move(dataset / member, outside)
    (dataset / member).symlink_to(outside)
    refused(dataset, member)


def test_a_token_file_that_is_a_fifo_is_refused(dataset):
    (dataset / "val.bin").unlink()
    os.mkfifo(dataset / "val.bin")
    refused(dataset, "val.bin")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[" * 100000 + b"]" * 100000, "nests JSON too deeply"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_manifest_that_is_not_json_is_refused(dataset, content, needle):
    (dataset / "manifest.json").write_bytes(content)
    refused(dataset, needle)


def test_a_huge_manifest_is_refused_without_reading_it(dataset):
    with open(dataset / "manifest.json", "r+b") as f:
        f.truncate(2 << 20)
    refused(dataset, "larger than the 1,048,576")


def test_a_directory_without_a_manifest_says_what_a_dataset_is(tmp_path):
    refused(tmp_path, "has no manifest.json", "tinygpt prepare")
    refused(tmp_path / "nowhere", "does not exist", "tinygpt prepare --text FILE")


def test_a_tokenizer_file_that_is_not_a_tokenizer_is_refused(dataset):
    import hashlib

    junk = json.dumps({"format": "something"}).encode()
    (dataset / "tokenizer.json").write_bytes(junk)
    edit(dataset, lambda m: m["tokenizer"].update(sha256=hashlib.sha256(junk).hexdigest()))
    refused(dataset, "tokenizer.json", "not a tokenizer")
