"""The vectorized character lookups agree with the plain Python definition on every kind of text."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tinygpt.backend.text import CharacterSet, CharacterTable, UnknownCharacter, distinct_characters

# ASCII, Latin-1, a lone surrogate, CJK, an emoji (4 UTF-8 bytes), control characters.
ALPHABET = st.sampled_from(
    list("ab \n\r\t~\x00\x7f") + ["é", "ÿ", "\ud800", "語", "😀", "\U0010ffff", "\x85"]
)
TEXTS = st.text(ALPHABET, max_size=60)


@given(TEXTS, TEXTS)
@example("", "")
@example("abc", "a" * 70000 + "z")  # larger than the sample the byte scan starts with
def test_character_set_is_the_sorted_set_of_characters_of_every_piece(first, second):
    found = CharacterSet()
    found.add_text(first)
    found.add_utf8(second.encode("utf-8", "surrogatepass"))
    assert found.characters() == sorted(set(first + second))


def test_distinct_characters_of_a_long_text_with_rare_characters():
    text = "ab" * 100_000 + "é" + "c" + "ab" * 100_000 + "😀"
    assert distinct_characters(text) == sorted(set(text))


@given(TEXTS.filter(bool), TEXTS)
def test_table_gives_each_character_its_position_in_the_sorted_vocabulary(vocab_text, text):
    chars = sorted(set(vocab_text))
    table = CharacterTable(chars)
    ids = {c: i for i, c in enumerate(chars)}
    known = "".join(c for c in text if c in ids)
    assert table.encode(known) == [ids[c] for c in known]
    assert table.encode(text, skip=True) == [ids[c] for c in text if c in ids]
    assert table.encode(text, replacement=0) == [ids.get(c, 0) for c in text]
    data = known.encode("utf-8", "surrogatepass")
    assert table.encode_utf8(data, "uint32").tolist() == [ids[c] for c in known]
    missing = [i for i, c in enumerate(text) if c not in ids]
    if missing:
        with pytest.raises(UnknownCharacter) as info:
            table.encode(text)
        assert (info.value.position, info.value.char) == (missing[0], text[missing[0]])
        with pytest.raises(UnknownCharacter) as info:
            table.encode_utf8(text.encode("utf-8", "surrogatepass"), "uint32")
        assert info.value.position == missing[0]


def test_utf8_lookup_returns_the_requested_dtype():
    table = CharacterTable(sorted(set("hello wörld")))
    assert str(table.encode_utf8(b"hello", "uint8").dtype) == "uint8"
    assert str(table.encode_utf8("wörld".encode(), "uint16").dtype) == "uint16"
