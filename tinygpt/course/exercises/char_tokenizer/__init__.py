"""Exercise: the character tokenizer, and the Array API (``xp``, ``dtype=``, ``device=``).

The reference is ``tinygpt.CharTokenizer``: the student's ids must be the
library's, as an integer array of the backend's index dtype on its device.
"""

from __future__ import annotations

from typing import Any

from tinygpt import backend
from tinygpt.course import checks as C
from tinygpt.course.errors import CheckFailed
from tinygpt.course.exercise import Exercise
from tinygpt.course.student import Student
from tinygpt.data import load_corpus
from tinygpt.errors import TinyGPTError
from tinygpt.tokenizers import CharTokenizer as Reference

EXERCISE = Exercise(
    name="char_tokenizer",
    title="A character tokenizer",
    teaches="text to integer ids and back; writing against the Array API (xp, dtype=, device=)",
    minutes=25,
)

SAMPLE = "To be, or not to be: that is the question.\n"
MIXED = "naïve café: ß, Ω, 😀\tand\r\n a tab"  # beyond ASCII: one id per character, not per byte
IDS_HINT = "make the ids with xp.asarray(ids, dtype=b.int_dtype, device=b.device), b = backend.current()"


def _tokenizer(student: Student, text: str) -> Any:
    return student.call("CharTokenizer", text)


def _encode(student: Student, tokenizer: Any, text: str) -> Any:
    return student.call_method(tokenizer, "encode", text)


def _reference_ids(text: str, vocabulary: str) -> Any:
    return backend.asarray(Reference.from_text(vocabulary).encode(text), dtype=backend.current().int_dtype)


@EXERCISE.check("CharTokenizer builds the sorted vocabulary; vocab_size counts it", kind="shape")
def vocabulary(student: Student) -> None:
    tokenizer = _tokenizer(student, SAMPLE)
    chars = student.invoke("CharTokenizer.chars", lambda: tokenizer.chars)
    want = Reference.from_text(SAMPLE).chars
    C.expect(
        isinstance(chars, list) and all(isinstance(c, str) and len(c) == 1 for c in chars),
        f"CharTokenizer(text).chars should be a list of one-character strings, got {chars!r:.100}",
        "self.chars = sorted(set(text)) gives exactly that",
    )
    if chars != want:
        if sorted(chars) == want:
            hint = "sort the characters (sorted(...)): then an id depends only on which characters occur"
        elif sorted(set(chars)) == want:
            hint = "each character once: the vocabulary is the *set* of characters"
        else:
            missing = sorted(set(want) - set(chars))
            hint = (
                f"the vocabulary misses {missing!r}"
                if missing
                else "only characters of the text belong in it"
            )
        raise CheckFailed(f"CharTokenizer({SAMPLE!r}).chars: expected {want!r}, got {chars!r}", hint)
    size = student.invoke("CharTokenizer.vocab_size", lambda: tokenizer.vocab_size)
    C.expect(
        type(size) is int and size == len(want),
        f"vocab_size: expected {len(want)} (the number of distinct characters), got {size!r}",
        "return len(self.chars)",
    )


@EXERCISE.check("encode returns an integer array of the backend", kind="shape")
def encode_array(student: Student) -> None:
    b = backend.current()
    ids = _encode(student, _tokenizer(student, SAMPLE), "to be")
    C.expect_array(ids, "encode('to be')", shape=(5,), dtype=b.int_dtype, hint=IDS_HINT)


@EXERCISE.check("encode gives the ids of tinygpt.CharTokenizer")
def same_ids(student: Student) -> None:
    for vocabulary, text in ((SAMPLE, SAMPLE), (SAMPLE, "question: to be"), (MIXED, MIXED)):
        ids = _encode(student, _tokenizer(student, vocabulary), text)
        want = _reference_ids(text, vocabulary)
        C.compare(
            ids,
            want,
            f"CharTokenizer({vocabulary!r}).encode({text!r})",
            rtol=0,
            atol=0,
            hint="a character's id is its index in the sorted vocabulary self.chars",
            mistakes={"ids start at 0: the first character of self.chars has id 0": want + 1},
        )


@EXERCISE.check("decode(encode(text)) gives the text back", kind="property")
def round_trip(student: Student) -> None:
    for text in (SAMPLE, MIXED):
        tokenizer = _tokenizer(student, text)
        ids = _encode(student, tokenizer, text)
        back = student.call_method(tokenizer, "decode", ids)
        C.expect(
            isinstance(back, str), f"decode should return a str, got {type(back).__name__}", "''.join(...)"
        )
        C.expect(
            back == text, f"decode(encode({text!r})) gave {back!r}", "decode looks each id up in self.chars"
        )
    as_list = student.call_method(_tokenizer(student, SAMPLE), "decode", [0, 1, 2])
    want = Reference.from_text(SAMPLE).decode([0, 1, 2])
    C.expect(
        as_list == want,
        f"decode([0, 1, 2]) should give {want!r} (a list of ints works too), got {as_list!r}",
        "turn the ids into Python ints first: backend.to_numpy(ids).tolist() for an array, a list as it is",
    )


@EXERCISE.check("encode and decode edge cases: empty text, a one-character vocabulary", kind="edge")
def edge_cases(student: Student) -> None:
    b = backend.current()
    tokenizer = _tokenizer(student, "abc")
    empty = _encode(student, tokenizer, "")
    C.expect_array(
        empty, "encode('')", shape=(0,), dtype=b.int_dtype, hint="an empty text has no ids: " + IDS_HINT
    )
    back = student.call_method(tokenizer, "decode", empty)
    C.expect(back == "", f"decode(encode('')) should be '', got {back!r}")
    single = _tokenizer(student, "aaaa")
    C.compare(
        _encode(student, single, "aa"),
        _reference_ids("aa", "aaaa"),
        "CharTokenizer('aaaa').encode('aa')",
        rtol=0,
        atol=0,
    )


@EXERCISE.check("encode and decode refuse characters and ids they do not know", kind="edge")
def refusals(student: Student) -> None:
    tokenizer = _tokenizer(student, "abc")
    exc = C.expect_raises(
        student,
        "encode('abz')",
        tokenizer.encode,
        "abz",
        why="'z' is not in the vocabulary ['a', 'b', 'c']",
        hint="raise ValueError(f'character {c!r} is not in the vocabulary'), never skip or guess: a KeyError "
        "says 'no such key', a ValueError that names the character says what is wrong with the text",
    )
    C.expect(
        "z" in str(exc),
        f"encode('abz') raised ValueError({str(exc)!r}), which does not name the character 'z'",
        "put the character in the message: f'character {c!r} is not in the vocabulary'",
    )
    for bad in (3, -1):
        if student.raises(f"decode([{bad}])", tokenizer.decode, [bad]) is None:
            got = student.call_method(tokenizer, "decode", [bad])
            why = "Python lists count negative indices from the end; " if bad < 0 else ""
            raise CheckFailed(
                f"decode([{bad}]) returned {got!r}, but {bad} is not an id of a 3-character vocabulary (0, 1, 2)",
                f"{why}refuse ids outside [0, vocab_size) with an error",
            )


@EXERCISE.check("encode and decode 100,000 characters of Shakespeare like the library", kind="property")
def shakespeare(student: Student) -> None:
    try:
        text = load_corpus("shakespeare")[:100_000]
    except TinyGPTError as exc:
        raise CheckFailed(f"this check reads Shakespeare, which is missing: {exc}") from None
    tokenizer = _tokenizer(student, text)
    ids = _encode(student, tokenizer, text)
    C.compare(ids, _reference_ids(text, text), "encode(shakespeare)", rtol=0, atol=0)
    back = student.call_method(tokenizer, "decode", ids)
    C.expect(back == text, "decode(encode(shakespeare)) differs from the text")
