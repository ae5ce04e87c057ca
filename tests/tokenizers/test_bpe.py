"""Tests for BPETokenizer: GPT-2 parity with transformers, round trips, streaming, HF files, hostile files."""

import json
import os
import random
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.lm_helpers import tiny_model
from tinygpt.checkpoint import load_checkpoint, save_checkpoint
from tinygpt.errors import MissingExtraError, TokenizerError
from tinygpt.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    huggingface_files,
    tokenizer_from_dict,
    tokenizer_from_directory,
)

tokenizers = pytest.importorskip("tokenizers")

WORDS = ["the", "and", "héllo", "wörld", "café", "naïve", "日本語", "テキスト", "🙂", "🚀", "ñandú", "Œuvre"]
SPACES = [" ", " ", " ", "  ", "\t", "\n", "\n\n", "   "]
# Accents, CJK, emoji, and whitespace runs (tabs, several spaces, blank lines), some unseen in training.
PROBE = "Héllo  wörld!\tcafé\t\tnaïve\n\n日本語のテキスト 🙂🚀👩‍👩‍👧 x    y\r\n  end\n<|endoftext|>Zebra\n"


SYLLABLES = ["ka", "ré", "tö", "mi", "sun", "ell", "ñu", "語", "本", "テ", "キ", "🙂", "an", "th", "qu", "ï"]


def corpus(n=4000, seed=0):
    """A text of our own with every kind of character the probe has: words, and made-up words."""
    rng = random.Random(seed)
    words = WORDS + ["".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))) for _ in range(300)]
    return "".join(rng.choice(words) + rng.choice(SPACES) for _ in range(n))


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """vocab.json + merges.txt in GPT-2's format, written by Hugging Face tokenizers itself."""
    folder = tmp_path_factory.mktemp("gpt2")
    hf = tokenizers.Tokenizer(tokenizers.models.BPE())
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf.train_from_iterator([corpus()], trainer=trainer)
    hf.model.save(str(folder))
    assert sorted(p.name for p in folder.iterdir()) == ["merges.txt", "vocab.json"]
    return folder


@pytest.fixture(scope="module")
def bpe(gpt2_dir):
    return BPETokenizer.from_gpt2_files(gpt2_dir / "vocab.json", gpt2_dir / "merges.txt")


def transformers_gpt2(folder):
    transformers = pytest.importorskip("transformers")
    os.environ["HF_HUB_OFFLINE"] = "1"
    return transformers.GPT2TokenizerFast.from_pretrained(str(folder))


# Parity with transformers' GPT-2 tokenizer ---------------------------------------------------
def test_encode_and_decode_equal_transformers_gpt2_tokenizer(bpe, gpt2_dir):
    hf = transformers_gpt2(gpt2_dir)
    ids = bpe.encode(PROBE)
    assert ids == hf.encode(PROBE)
    assert len(ids) < len(PROBE.encode("utf-8"))  # merges were used, not only bytes
    assert bpe.decode(ids) == hf.decode(ids) == PROBE
    assert bpe.vocab_size == len(hf) == 400


def test_every_text_round_trips_losslessly(bpe):
    assert bpe.decode(bpe.encode(PROBE)) == PROBE
    assert bpe.encode("") == [] and bpe.decode([]) == ""


@settings(max_examples=60)
@given(st.text(max_size=60))
def test_any_unicode_text_round_trips(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


def test_on_unknown_is_accepted_and_changes_nothing(bpe):
    unseen = "Ωμέγα ☃ \u0000"
    assert bpe.encode(unseen, "error") == bpe.encode(unseen, "skip") == bpe.encode(unseen, "replace")
    assert bpe.decode(bpe.encode(unseen)) == unseen


def test_start_is_end_of_text(bpe):
    assert bpe.start_ids() == [bpe.encode("<|endoftext|>")[0]]
    assert bpe.decode(bpe.start_ids()) == "<|endoftext|>"


def test_decode_refuses_ids_outside_the_vocabulary_and_non_integers(bpe):
    with pytest.raises(TokenizerError, match=r"token id 400 is outside the vocabulary range \[0, 400\)"):
        bpe.decode([1, 400])
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        bpe.decode([-1])
    with pytest.raises(TokenizerError, match="not an integer"):
        bpe.decode([1.0])
    with pytest.raises(TokenizerError, match="not an integer"):
        list(bpe.decode_stream([True]))


# Training ---------------------------------------------------------------------------------
def test_training_gives_the_requested_vocabulary_size_and_round_trips():
    text = corpus(seed=1)
    tok = BPETokenizer.train(text, 300)
    assert tok.vocab_size == 300
    assert tok.decode(tok.encode(PROBE)) == PROBE
    assert tok.decode(tok.start_ids()) == "<|endoftext|>"
    assert len(tok.encode(text)) < len(text.encode("utf-8")) / 2  # the merges compress the corpus
    assert BPETokenizer.train(text, 300) == tok  # training is deterministic


def test_training_refuses_a_vocabulary_smaller_than_the_bytes():
    with pytest.raises(TokenizerError, match=r"\[257, .*got 256"):
        BPETokenizer.train("some text", 256)


def test_training_refuses_more_tokens_than_the_text_can_give():
    with pytest.raises(TokenizerError, match=r"too few distinct byte pairs.*<= 2\d\d"):
        BPETokenizer.train("ab ab ab", 5000)


def test_missing_tokenizers_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import now fails
    with pytest.raises(MissingExtraError, match=r"pip install 'tinygpt\[bpe\]'"):
        BPETokenizer.train("text", 300)


def test_a_long_text_encodes_in_chunks_to_exactly_the_ids_of_one_piece(monkeypatch):
    from tinygpt.tokenizers import bpe as bpe_module

    tricky = "x\nY. \nZ\n\nW\r\nV.\n  U\t\nT 🙂\n語\n<|endoftext|>\nS  \n\n\n R\n"
    text = corpus(n=600, seed=4).replace(" ", "\n", 40) + tricky * 30
    tok = BPETokenizer.train(text, 320)  # merges of newline runs (" \n", "\n\n") exist
    whole = tok.backend_tokenizer.encode(text, add_special_tokens=False).ids
    monkeypatch.setattr(bpe_module, "CHUNK_CHARS", 1)  # cut at every place chunks() allows
    pieces = list(bpe_module.chunks(text, 1))
    assert len(pieces) > 200 and "".join(pieces) == text
    assert tok.encode(text) == whole


# Every kind of space Python or the Rust regex may disagree on, contractions, digits, punctuation.
CUT_ALPHABET = list("ab Z9'.\n\r\t-") + [
    "'s",
    "'ll",
    " \n",
    "\x1c",
    "\x85",
    "\xa0",
    "\u2028",
    "\u3000",
    "é",
    "🙂",
    "語",
]


@settings(max_examples=60)
@given(st.lists(st.sampled_from(CUT_ALPHABET), min_size=1, max_size=80).map("".join))
def test_cutting_at_every_safe_place_never_changes_the_ids(bpe, text):
    from tinygpt.tokenizers import bpe as bpe_module

    pieces = list(bpe_module.chunks(text, 1))  # cut wherever chunks() allows: line breaks and spaces
    assert "".join(pieces) == text
    hf = bpe.backend_tokenizer
    whole = hf.encode(text, add_special_tokens=False).ids
    assert [i for piece in pieces for i in hf.encode(piece, add_special_tokens=False).ids] == whole


def test_a_text_without_line_breaks_is_cut_at_spaces():
    from tinygpt.tokenizers import bpe as bpe_module

    text = "word " * 50_000
    pieces = list(bpe_module.chunks(text, 1000))
    assert len(pieces) > 100 and max(map(len, pieces)) <= 2000 and "".join(pieces) == text


def test_training_on_pieces_learns_the_merges_of_the_whole_text():
    from tinygpt.tokenizers import bpe as bpe_module

    text = corpus(n=3000, seed=5)
    assert BPETokenizer.train_from_pieces(bpe_module.chunks(text, 50), 400) == BPETokenizer.train(text, 400)


# Streaming: a token may end inside a UTF-8 character ------------------------------------
def test_stream_holds_back_bytes_of_an_incomplete_character():
    tok = BPETokenizer.train(corpus(seed=2), 257)  # bytes only: an emoji is four tokens
    text = "a🙂b日本\n"
    ids = tok.encode(text)
    assert len(ids) == len(text.encode("utf-8"))
    pieces = list(tok.decode_stream(ids))
    assert pieces == ["a", "🙂", "b", "日", "本", "\n"]
    assert "".join(pieces) == tok.decode(ids) == text


def test_stream_of_merged_tokens_equals_decode(bpe):
    ids = bpe.encode(PROBE)
    pieces = list(bpe.decode_stream(iter(ids)))  # ids may arrive one at a time
    assert "".join(pieces) == bpe.decode(ids)
    assert all("\ufffd" not in p for p in pieces)


def test_stream_of_invalid_bytes_gives_replacement_characters_like_decode():
    tok = BPETokenizer.train(corpus(seed=2), 257)
    emoji = tok.encode("🙂")
    ids = emoji[:2] + tok.encode("x") + emoji[:1]  # a character cut short, twice
    assert "".join(tok.decode_stream(ids)) == tok.decode(ids) == "\ufffdx\ufffd"


# Saving: to_dict is Hugging Face's tokenizer.json -------------------------------------------
def test_to_dict_is_a_hugging_face_tokenizer_json(bpe, tmp_path):
    data = bpe.to_dict()
    assert data["model"]["type"] == "BPE" and data["decoder"]["type"] == "ByteLevel"
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert hf.encode(PROBE).ids == bpe.encode(PROBE)
    back = tokenizer_from_dict(json.loads(json.dumps(data)), source="t")
    assert isinstance(back, BPETokenizer) and back == bpe
    assert BPETokenizer.from_file(tmp_path / "tokenizer.json") == bpe


def test_checkpoint_round_trip_keeps_the_bpe_tokenizer(bpe, tmp_path, xp_backend):
    path = save_checkpoint(tmp_path / "ckpt", tiny_model(bpe.vocab_size, seed=0), bpe)
    saved = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    assert saved["model"]["type"] == "BPE"  # the checkpoint's tokenizer.json is Hugging Face's
    loaded = load_checkpoint(path).tokenizer
    assert isinstance(loaded, BPETokenizer) and loaded == bpe
    assert loaded.encode(PROBE) == bpe.encode(PROBE)


# Hugging Face model directories -----------------------------------------------------------
def test_directory_with_gpt2_files_or_tokenizer_json_or_nothing(bpe, gpt2_dir, tmp_path):
    assert tokenizer_from_directory(gpt2_dir) == bpe
    assert tokenizer_from_directory(tmp_path) is None
    (tmp_path / "tokenizer.json").write_text(json.dumps(bpe.to_dict()), encoding="utf-8")
    assert tokenizer_from_directory(tmp_path) == bpe


def test_directory_with_only_half_of_the_gpt2_files_says_which_is_missing(gpt2_dir, tmp_path):
    (tmp_path / "vocab.json").write_bytes((gpt2_dir / "vocab.json").read_bytes())
    with pytest.raises(TokenizerError, match="has vocab.json but no merges.txt"):
        tokenizer_from_directory(tmp_path)


def test_exported_bpe_files_load_in_transformers_with_the_same_ids(bpe, tmp_path):
    transformers = pytest.importorskip("transformers")
    os.environ["HF_HUB_OFFLINE"] = "1"
    tok = BPETokenizer.train(corpus(seed=3), 350)  # <|endoftext|> is id 0 here, unlike GPT-2
    for name, data in huggingface_files(tok).items():
        (tmp_path / name).write_bytes(data)
    assert {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"} <= {
        p.name for p in tmp_path.iterdir()
    }
    for hf in (
        transformers.AutoTokenizer.from_pretrained(str(tmp_path)),
        transformers.GPT2TokenizerFast.from_pretrained(str(tmp_path)),
    ):
        assert hf.encode(PROBE) == tok.encode(PROBE)
        assert hf.decode(tok.encode(PROBE)) == PROBE
        assert hf.eos_token_id == tok.start_ids()[0]
    assert tokenizer_from_directory(tmp_path) == tok


CHAR_TEXT = "Hello,  wörld!\n\tNaïve café — done.\n\n"


@pytest.mark.parametrize("unknown", [None, " "])
def test_exported_char_tokenizer_loads_in_transformers_and_back_as_a_char_tokenizer(tmp_path, unknown):
    transformers = pytest.importorskip("transformers")
    os.environ["HF_HUB_OFFLINE"] = "1"
    char = CharTokenizer.from_text(CHAR_TEXT, unknown=unknown)
    for name, data in huggingface_files(char).items():
        (tmp_path / name).write_bytes(data)
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    probe = "Naïve  wörld,\tcafé!\n\nHello — done."
    assert hf.encode(probe) == char.encode(probe)
    assert hf.decode(char.encode(probe)) == char.decode(char.encode(probe)) == probe
    if unknown is not None:  # an unseen character maps to the unknown one on both sides
        assert hf.encode("Zé") == char.encode("Zé")
    back = tokenizer_from_directory(tmp_path)
    assert isinstance(back, CharTokenizer) and back == char


# Hostile files: each is one TokenizerError naming the file ------------------------------------
def test_truncated_tokenizer_json(bpe, tmp_path):
    text = json.dumps(bpe.to_dict())
    (tmp_path / "tokenizer.json").write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(TokenizerError, match="tokenizer.json.*not valid JSON.*truncated"):
        tokenizer_from_directory(tmp_path)


def _edited(bpe, edit):
    data = bpe.to_dict()
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d["model"].update(vocab=[["a", 0]]), "model.vocab must be a JSON object"),
        (lambda d: d["model"]["vocab"].update(a="1"), "gives token 'a' the id '1'"),
        (lambda d: d["model"]["vocab"].update(a=True), "gives token 'a' the id True"),
        (lambda d: d["model"]["vocab"].update(a=10**12), "gives token 'a' the id 1000000000000"),
        (lambda d: d["model"]["merges"].append(7), "model.merges entry .* is 7"),
        (lambda d: d["model"]["merges"].append("a b c"), "not a pair of tokens"),
        (lambda d: d["model"].update(type="WordPiece"), "the model is 'WordPiece'"),
        (lambda d: d.update(model=None), "the model is None"),
        (lambda d: d.update(decoder={"type": "WordPiece"}), "the decoder is 'WordPiece'"),
        (lambda d: d.update(pre_tokenizer=None), "the pre_tokenizer is None, not 'ByteLevel'"),
        (lambda d: d.update(pre_tokenizer={"type": "Sequence", "pretokenizers": 3}), "pre_tokenizer is 'Seq"),
        (lambda d: d.update(added_tokens=[{"id": "0"}]), "added_tokens must be"),
        (lambda d: d["model"]["vocab"].update({"zz-gap": 5000}), r"ids are not exactly 0 \.\. 400"),
        (lambda d: d["model"]["merges"].append(["\u0100\u0101", "zzq"]), "not a tokenizer Hugging Face"),
    ],
)
def test_tokenizer_json_with_wrong_types_or_values(bpe, tmp_path, edit, needle):
    file = tmp_path / "tokenizer.json"
    file.write_text(json.dumps(_edited(bpe, edit)), encoding="utf-8")
    with pytest.raises(TokenizerError, match=needle) as info:
        tokenizer_from_directory(tmp_path)
    assert str(file) in str(info.value)


def test_tokenizer_json_that_is_not_an_object(tmp_path):
    (tmp_path / "tokenizer.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(TokenizerError, match="not a tokenizer this tinygpt reads"):
        tokenizer_from_directory(tmp_path)


@pytest.mark.parametrize("name", ["tokenizer.json", "vocab.json", "merges.txt"])
def test_huge_files_are_refused_before_reading(tmp_path, gpt2_dir, name):
    for other in ("vocab.json", "merges.txt"):
        (tmp_path / other).write_bytes((gpt2_dir / other).read_bytes())
    with open(tmp_path / name, "wb") as f:
        f.truncate(100 << 20)  # sparse: 100 MiB that take no disk
    with pytest.raises(TokenizerError, match=f"{name} is 104,857,600 bytes, larger than"):
        tokenizer_from_directory(tmp_path)


@pytest.mark.parametrize(
    ("vocab", "merges", "needle"),
    [
        ('{"a": 0, "b"', "#version: 0.2\n", "vocab.json.*not valid JSON"),
        ('["a", "b"]', "#version: 0.2\n", "must be a JSON object token -> id, got list"),
        ('{"a": "0"}', "#version: 0.2\n", "gives token 'a' the id '0'"),
        ('{"a": 0, "b": 2}', "#version: 0.2\n", r"ids are not exactly 0 \.\. 1"),
        ('{"a": 0, "b": 1}', "#version: 0.2\na b c\n", "merge 0 is 'a b c'"),
        ('{"a": 0, "b": 1}', "#version: 0.2\na z\n", "merges.txt.*does not fit.*vocab.json"),
        ('{"a": 0, "b": 1}', b"#version: 0.2\n\xff\xfe\n", "merges.txt.*not UTF-8"),
    ],
)
def test_damaged_gpt2_files(tmp_path, vocab, merges, needle):
    (tmp_path / "vocab.json").write_text(vocab, encoding="utf-8")
    (tmp_path / "merges.txt").write_bytes(merges if isinstance(merges, bytes) else merges.encode())
    with pytest.raises(TokenizerError, match=needle):
        tokenizer_from_directory(tmp_path)


def test_symlink_out_of_the_directory_is_refused(bpe, tmp_path):
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps(bpe.to_dict()), encoding="utf-8")
    model = tmp_path / "model"
    model.mkdir()
    (model / "tokenizer.json").symlink_to(outside)
    with pytest.raises(TokenizerError, match="symbolic link out of the directory"):
        tokenizer_from_directory(model)


def test_a_fifo_or_directory_is_refused(tmp_path):
    (tmp_path / "tokenizer.json").mkdir()
    with pytest.raises(TokenizerError, match="not a regular file"):
        tokenizer_from_directory(tmp_path)
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "tokenizer.json")
    with pytest.raises(TokenizerError, match="not a regular file"):
        tokenizer_from_directory(fifo_dir)  # never blocks on open
