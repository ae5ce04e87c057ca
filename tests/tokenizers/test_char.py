"""Tests for CharTokenizer: round trips, vocabulary order, errors, and files."""

import json
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tinygpt.errors import TokenizerError
from tinygpt.tokenizers import CharTokenizer


def test_encode_decode_round_trip():
    text = "hello, world\n"
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text


def test_vocabulary_is_sorted_set_of_characters():
    tok = CharTokenizer.from_text("banana!")
    assert tok.chars == ["!", "a", "b", "n"]
    assert tok.vocab_size == len(tok) == 4
    assert tok.encode("ban!") == [2, 1, 3, 0]


def test_same_characters_give_same_tokenizer_regardless_of_order():
    assert CharTokenizer("cab") == CharTokenizer.from_text("abcabc")
    assert CharTokenizer("ab") != CharTokenizer("abc")
    assert CharTokenizer("ab") != CharTokenizer("ab", unknown="a")


def test_chars_is_a_copy():
    tok = CharTokenizer("ab")
    tok.chars.append("z")
    assert tok.vocab_size == 2


def test_unknown_character_error_names_character_code_point_and_position():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(TokenizerError) as info:
        tok.encode("abéc")
    message = str(info.value)
    assert "'é'" in message
    assert "U+00E9" in message
    assert "position 2" in message
    assert "unknown=" in message  # tells the user how to fix it


def test_unknown_policy_maps_unseen_characters_to_given_character():
    tok = CharTokenizer("ab?", unknown="?")
    assert tok.unknown == "?"
    assert tok.decode(tok.encode("a€b😀")) == "a?b?"


def test_unknown_must_be_in_vocabulary():
    with pytest.raises(TokenizerError, match="not in the vocabulary"):
        CharTokenizer("ab", unknown="?")


def test_vocabulary_entries_must_be_single_characters():
    with pytest.raises(TokenizerError, match="single characters"):
        CharTokenizer(["a", "bc"])


def test_empty_vocabulary_is_refused():
    with pytest.raises(TokenizerError, match="empty"):
        CharTokenizer.from_text("")


@pytest.mark.parametrize("bad_id", [-1, 3, 100])
def test_decode_rejects_ids_outside_vocabulary(bad_id):
    tok = CharTokenizer("abc")
    with pytest.raises(TokenizerError, match=rf"token id {bad_id}\b.*\[0, 3\)"):
        tok.decode([0, bad_id])


@pytest.mark.parametrize("bad_id", [1.0, True, "a"])
def test_decode_rejects_non_integer_ids(bad_id):
    with pytest.raises(TokenizerError, match="not an integer"):
        CharTokenizer("abc").decode([bad_id])


def test_decode_accepts_any_iterable_and_tolist_objects():
    class FakeArray:
        def tolist(self):
            return [2, 0, 1]

    tok = CharTokenizer("abc")
    assert tok.decode(iter([0, 1])) == "ab"
    assert tok.decode(range(3)) == "abc"
    assert tok.decode(FakeArray()) == "cab"


def test_save_load_round_trip(tmp_path):
    tok = CharTokenizer("héllo\n😀", unknown="o")
    path = tmp_path / "tok.json"
    tok.save(path)
    assert CharTokenizer.load(path) == tok
    assert CharTokenizer.load(str(path)).unknown == "o"
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # no temp left


def test_saved_file_has_documented_format(tmp_path):
    path = tmp_path / "tok.json"
    CharTokenizer("ba").save(path)
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "format": "tinygpt-char-tokenizer",
        "version": 1,
        "chars": ["a", "b"],
        "unknown": None,
    }


def test_dict_round_trip():
    tok = CharTokenizer("xyz", unknown="y")
    assert CharTokenizer.from_dict(tok.to_dict()) == tok


def test_load_missing_file_names_path(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(TokenizerError, match="nope.json.*does not exist"):
        CharTokenizer.load(path)


def test_load_corrupt_json_names_file(tmp_path):
    path = tmp_path / "tok.json"
    path.write_text('{"format": "tinygpt-char', encoding="utf-8")
    with pytest.raises(TokenizerError, match="tok.json.*not valid JSON"):
        CharTokenizer.load(path)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"format": "something-else"}, "format"),
        ({"version": 2}, "version"),
        ({"chars": ["a", "a", "b"]}, "duplicate"),
        ({"chars": ["a", "bc"]}, "not a single character"),
        ({"chars": [1, 2]}, "not a single character"),
        ({"chars": "ab"}, "must be a list"),
        ({"chars": ["b", "a"]}, "not sorted"),
        ({"unknown": "z"}, "not in the vocabulary"),
    ],
)
def test_load_rejects_bad_contents_naming_file_and_problem(tmp_path, change, problem):
    data = CharTokenizer("ab").to_dict() | change
    path = tmp_path / "tok.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerError, match="tok.json") as info:
        CharTokenizer.load(path)
    assert problem in str(info.value)


def test_load_rejects_json_that_is_not_an_object(tmp_path):
    path = tmp_path / "tok.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(TokenizerError, match="expected a JSON object"):
        CharTokenizer.load(path)


# st.text() draws from all of Unicode (bar surrogates): emoji, CJK, accents,
# combining marks, control characters.
@given(st.text(min_size=1))
@example("naïve café, 東京へ 😀👍🏽 e\u0301")
def test_round_trip_for_arbitrary_unicode(text):
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text


@given(st.text(min_size=1), st.characters())
def test_encoding_an_unseen_character_raises(text, extra):
    tok = CharTokenizer.from_text(text)
    if extra in text:
        return
    with pytest.raises(TokenizerError, match=f"U\\+{ord(extra):04X}"):
        tok.encode(text + extra)


@given(st.text(min_size=1))
def test_save_load_round_trip_for_arbitrary_unicode(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("tok") / "tok.json"
    tok = CharTokenizer.from_text(text)
    tok.save(path)
    assert CharTokenizer.load(path) == tok


def test_unseen_characters_can_be_skipped_or_replaced():
    tok = CharTokenizer.from_text("ab c")
    assert tok.decode(tok.encode("a✓b", on_unknown="skip")) == "ab"
    assert tok.decode(tok.encode("a✓b", on_unknown="replace")) == "a b"
    with pytest.raises(TokenizerError, match=r"--unknown skip\|replace"):
        tok.encode("a✓b")
    with pytest.raises(TokenizerError, match="no space"):
        CharTokenizer.from_text("abc").encode("a✓", on_unknown="replace")


def test_a_text_that_differs_only_by_unicode_normalization_gets_a_hint():
    composed = "café"  # é as one code point, U+00E9
    tok = CharTokenizer.from_text(composed)
    decomposed = unicodedata.normalize("NFD", composed)  # e + U+0301
    with pytest.raises(TokenizerError, match=r"unicodedata.normalize\('NFC', text\)"):
        tok.encode(decomposed)
    with pytest.raises(TokenizerError) as info:
        tok.encode("cafX")
    assert "normaliz" not in str(info.value)  # no hint where normalization would not help


def test_decode_stream_yields_each_character_as_its_id_arrives():
    tok = CharTokenizer.from_text("héllo wörld 🙂\n")
    ids = tok.encode("wörld 🙂\n")
    assert list(tok.decode_stream(iter(ids))) == list("wörld 🙂\n")
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        list(tok.decode_stream([0, 99]))
