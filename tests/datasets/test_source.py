"""Reading a corpus as a stream: the chunks are the text ``read_text`` gives, whatever the chunk size."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygpt.data import read_text
from tinygpt.datasets import source as source_module
from tinygpt.datasets.source import TextSource
from tinygpt.errors import CorpusError

PIECES = st.sampled_from(
    [b"a", b"bc", b"\n", b"\r\n", b"\r", "é".encode(), "語".encode(), "🙂".encode(), b" "]
)


@settings(max_examples=80)
@given(st.lists(PIECES, min_size=1, max_size=40).map(b"".join), st.integers(1, 9))
def test_chunks_are_the_normalized_text_cut_between_characters(tmp_path_factory, raw, chunk_bytes):
    path = tmp_path_factory.mktemp("src") / "t.txt"
    path.write_bytes(raw)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(source_module, "CHUNK_BYTES", chunk_bytes)  # every boundary lands somewhere tricky
        source = TextSource(path)
        chunks = list(source.chunks())
        scan = source.scan(characters=True)
    text = read_text(path)
    assert b"".join(c.data for c in chunks) == text.encode("utf-8")
    assert [c.data.decode("utf-8") for c in chunks]  # each chunk decodes alone: no character is split
    assert sum(c.characters for c in chunks) == scan.characters == len(text)
    assert scan.sha256 == hashlib.sha256(raw).hexdigest()
    assert scan.text_sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert scan.text_bytes == len(text.encode("utf-8"))
    assert scan.character_set.characters() == sorted(set(text))


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 5, 64])
@pytest.mark.parametrize("where", [0, 3, 7, 20])
def test_an_invalid_byte_is_reported_at_its_offset_in_the_file(tmp_path, monkeypatch, chunk_bytes, where):
    raw = bytearray("ab é\r\n語 xyzw 🙂 tail\n".encode())
    raw[where] = 0xFF
    path = tmp_path / "bad.txt"
    path.write_bytes(bytes(raw))
    monkeypatch.setattr(source_module, "CHUNK_BYTES", chunk_bytes)
    with pytest.raises(CorpusError, match=rf"bad byte 0xff at byte offset {where}\b"):
        TextSource(path).scan(characters=False)


def test_a_character_cut_short_at_the_end_of_the_file_is_reported(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_bytes("ok 🙂".encode()[:-1])
    with pytest.raises(CorpusError, match="byte offset 3"):
        TextSource(path).scan(characters=False)


def test_a_named_corpus_reads_like_its_text():
    source = TextSource(corpus="shakespeare")
    from tinygpt.data import shakespeare_text

    assert b"".join(c.data for c in source.chunks()) == shakespeare_text().encode()
    assert source.record() == {"corpus": "shakespeare"}
