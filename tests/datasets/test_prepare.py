"""Preparing a dataset: the ids of ``--text``, any size of vocabulary, and nothing half-written or overwritten."""

import hashlib
import random

import pytest

from tinygpt.data import read_text, split_text
from tinygpt.datasets import open_dataset, prepare_dataset
from tinygpt.datasets import prepare as prepare_module
from tinygpt.datasets import source as source_module
from tinygpt.errors import ConfigError, CorpusError
from tinygpt.tokenizers import CharTokenizer

WORDS = ["the", "and", "King", "café", "naïve", "日本語", "🙂", "don't", "it's", "x9", "—", "Œuvre"]


def generated_text(n_lines=400, seed=0, crlf=False):
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12))) for _ in range(n_lines)]
    return ("\r\n" if crlf else "\n").join(lines) + "\n"


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(generated_text(crlf=True).encode("utf-8"))
    return path


def ids_of(dataset):
    return dataset.train.read(0, len(dataset.train)).tolist(), dataset.val.read(0, len(dataset.val)).tolist()


@pytest.mark.parametrize("chunk_bytes", [7, 1000, 1 << 20])  # the split point mid-chunk, at any size
@pytest.mark.parametrize("fraction", [0.1, 0.37])
def test_char_ids_are_those_of_the_text_split_in_memory(
    tmp_path, text_file, monkeypatch, chunk_bytes, fraction
):
    monkeypatch.setattr(source_module, "CHUNK_BYTES", chunk_bytes)
    dataset = prepare_dataset(tmp_path / "data", text=text_file, val_fraction=fraction, log=None)
    text = read_text(text_file)
    train, val = split_text(text, fraction)
    tokenizer = CharTokenizer.from_text(text)  # what tinygpt train --text uses
    assert dataset.tokenizer == tokenizer
    assert ids_of(dataset) == (tokenizer.encode(train), tokenizer.encode(val))
    m = dataset.manifest
    assert (m.dtype, m.tokenizer_kind, m.vocab_size) == ("uint8", "char", tokenizer.vocab_size)
    assert (m.val.bytes, m.val.characters) == (len(val.encode()), len(val))
    assert m.train.bytes + m.val.bytes == len(text.encode())
    assert m.source["sha256"] == hashlib.sha256(text_file.read_bytes()).hexdigest()
    assert m.text_sha256 == hashlib.sha256(text.encode()).hexdigest()  # \r\n differs: the text is normalized
    assert m.source["bytes"] == text_file.stat().st_size and m.val_fraction == fraction


@pytest.mark.parametrize("chunk_bytes", [97, 1 << 20])
def test_bpe_ids_and_vocabulary_are_those_of_the_text_split_in_memory(
    tmp_path, text_file, monkeypatch, chunk_bytes
):
    pytest.importorskip("tokenizers")
    from tinygpt.tokenizers import BPETokenizer

    monkeypatch.setattr(source_module, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(prepare_module, "CHUNK_CHARS", 50)  # many pieces, cut where GPT-2 cuts
    dataset = prepare_dataset(tmp_path / "data", text=text_file, tokenizer="bpe", vocab_size=300, log=None)
    train, val = split_text(read_text(text_file), 0.1)
    tokenizer = BPETokenizer.train(train, 300)  # what tinygpt train --text --tokenizer bpe uses
    assert dataset.tokenizer == tokenizer
    assert ids_of(dataset) == (tokenizer.encode(train), tokenizer.encode(val))
    assert dataset.manifest.dtype == "uint16" and dataset.manifest.bpe_sample_bytes == len(train.encode())


def test_a_large_corpus_learns_bpe_from_a_sample_of_the_training_part_only(tmp_path, monkeypatch):
    pytest.importorskip("tokenizers")
    path = tmp_path / "corpus.txt"
    path.write_text(generated_text(n_lines=3000, seed=3), encoding="utf-8")
    monkeypatch.setattr(source_module, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(prepare_module, "BPE_SAMPLE_BYTES", 16384)
    monkeypatch.setattr(prepare_module, "BPE_SAMPLE_PIECES", 8)
    source = source_module.TextSource(path)
    scan = source.scan(characters=False)
    n_train = scan.characters - int(scan.characters * 0.1)
    train, _ = split_text(read_text(path), 0.1)
    sample = prepare_module._bpe_sample(source, scan, n_train)
    assert all(piece in train for piece in sample)  # never a character of validation text
    assert 12000 < sum(len(p.encode()) for p in sample) <= 16384
    assert sample[0].startswith(train[:20])  # the first stretch starts at the beginning
    dataset = prepare_dataset(tmp_path / "data", text=path, tokenizer="bpe", vocab_size=300, log=None)
    assert 12000 < dataset.manifest.bpe_sample_bytes <= 16384
    assert ids_of(dataset)[1] == dataset.tokenizer.encode(split_text(read_text(path), 0.1)[1])


def test_a_vocabulary_of_over_65536_characters_is_stored_as_uint32(tmp_path):
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 20000)] + [
        chr(c) for c in range(0x20000, 0x20000 + 50000)
    ]
    random.Random(0).shuffle(chars)
    text = "".join(chars) + "\n" + "".join(chars[:1000])
    path = tmp_path / "wide.txt"
    path.write_text(text, encoding="utf-8")
    dataset = prepare_dataset(tmp_path / "data", text=path, val_fraction=0.01, log=None)
    assert dataset.manifest.dtype == "uint32" and dataset.tokenizer.vocab_size == 70001
    train, val = split_text(text, 0.01)
    assert ids_of(dataset) == (dataset.tokenizer.encode(train), dataset.tokenizer.encode(val))
    assert (tmp_path / "data" / "train.bin").stat().st_size == 4 * len(train)


def test_the_same_dataset_again_is_reused_and_another_refused_untouched(tmp_path, text_file, capsys):
    out = tmp_path / "data"
    prepare_dataset(out, text=text_file, log=None)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = prepare_dataset(out, text=text_file)
    assert "already holds this dataset" in capsys.readouterr().out
    assert again.manifest.val.tokens > 0
    with pytest.raises(CorpusError, match=r"another validation fraction \(0.1\).*does not overwrite"):
        prepare_dataset(out, text=text_file, val_fraction=0.2, log=None)
    other = tmp_path / "other.txt"
    other.write_text(generated_text(seed=9))
    with pytest.raises(CorpusError, match=r"another text \(its SHA-256\)"):
        prepare_dataset(out, text=other, log=None)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_an_out_that_is_not_ours_is_refused_before_reading_and_left_as_it_is(tmp_path, text_file):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(CorpusError, match="did not write and will not touch"):
        prepare_dataset(mine, text=text_file, log=None)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(CorpusError, match="not a directory"):
        prepare_dataset(a_file, text=text_file, log=None)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (
        prepare_dataset(empty, text=text_file, log=None).manifest.train.tokens > 0
    )  # an empty directory is fine


def test_a_dataset_larger_than_the_free_disk_is_refused_up_front_with_the_numbers(
    tmp_path, text_file, monkeypatch
):
    class Usage:
        free = 1000

    monkeypatch.setattr(prepare_module.shutil, "disk_usage", lambda path: Usage)
    with pytest.raises(
        CorpusError, match=r"needs about 0.00 GB \(\d[\d,]* tokens of uint8\) but .* 0.00 GB free"
    ):
        prepare_dataset(tmp_path / "data", text=text_file, log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt"]


def test_a_failure_while_writing_leaves_nothing_behind(tmp_path, text_file, monkeypatch):
    calls = []

    def failing_write(self, ids):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        original(self, ids)

    original = prepare_module.TokenWriter.write
    monkeypatch.setattr(prepare_module.TokenWriter, "write", failing_write)
    monkeypatch.setattr(source_module, "CHUNK_BYTES", 1000)
    with pytest.raises(OSError, match="No space left"):
        prepare_dataset(tmp_path / "data", text=text_file, log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt"]


def test_settings_and_texts_that_cannot_make_a_dataset_are_refused(tmp_path, text_file):
    with pytest.raises(ConfigError, match="--vocab-size applies to --tokenizer bpe"):
        prepare_dataset(tmp_path / "d", text=text_file, vocab_size=300, log=None)
    with pytest.raises(ConfigError, match=r"must be in \(0, 1\)"):
        prepare_dataset(tmp_path / "d", text=text_file, val_fraction=0.0, log=None)
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("abc")
    with pytest.raises(CorpusError, match="3 characters: too few for a validation fraction of 0.1"):
        prepare_dataset(tmp_path / "d", text=tiny, log=None)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(CorpusError, match="is empty"):
        prepare_dataset(tmp_path / "d", text=empty, log=None)
    assert not (tmp_path / "d").exists()


def test_the_published_dataset_opens_and_its_directory_is_not_private(tmp_path, text_file):
    out = tmp_path / "data"
    prepare_dataset(out, text=text_file, log=None)
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "tokenizer.json",
        "train.bin",
        "val.bin",
    ]
    assert out.stat().st_mode & 0o055  # mkdtemp's 0700 was widened to the umask's permissions
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left
    assert open_dataset(out).manifest.tinygpt_version


@pytest.mark.parametrize("change", [b"Z", b"\xff", "é".encode()])
def test_a_text_changed_between_the_two_passes_is_refused_and_nothing_published(
    tmp_path, text_file, monkeypatch, change
):
    scan = source_module.TextSource.scan

    def scan_then_edit(self, *args, **kwargs):
        result = scan(self, *args, **kwargs)
        data = bytearray(text_file.read_bytes())
        data[100 : 100 + len(change)] = change  # the same size, other bytes
        text_file.write_bytes(bytes(data))
        return result

    monkeypatch.setattr(source_module.TextSource, "scan", scan_then_edit)
    with pytest.raises(CorpusError, match="changed while being prepared"):
        prepare_dataset(tmp_path / "data", text=text_file, log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt"]
