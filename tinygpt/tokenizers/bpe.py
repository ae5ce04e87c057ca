"""Byte-level BPE: GPT-2's tokenizer, run by Hugging Face ``tokenizers``.

Byte-level means the alphabet is the 256 byte values of UTF-8, each shown as
one printable character (GPT-2's ``bytes_to_unicode`` table). Any text is a
byte string, so any text encodes: there is no unknown character. Byte-pair
encoding then merges the most frequent adjacent pairs into new tokens, so
common words become one token and rare ones fall apart into pieces, down to
single bytes. A token may therefore end in the middle of a UTF-8 character
(an emoji is four bytes): ``decode_stream`` holds such bytes back until the
character is complete.

The saved form (``to_dict``) is Hugging Face's ``tokenizer.json`` itself, so a
tinygpt checkpoint's tokenizer file works in ``transformers`` unchanged.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tinygpt import files
from tinygpt.errors import TokenizerError
from tinygpt.extras import require
from tinygpt.tokenizers.ids import checked_ids

END_OF_TEXT = "<|endoftext|>"
MAX_FILE_BYTES = {"tokenizer.json": 64 << 20, "vocab.json": 32 << 20, "merges.txt": 32 << 20}
MAX_VOCAB = 1 << 20  # GPT-2 has 50,257 tokens; the largest public vocabularies about 256k
# GPT-2's regex never joins a newline that sits between two non-space characters to
# either side, nor a non-space character to the space after it (a space only ever starts
# a pre-token, " word"), so a long text cut there encodes to the same ids, in pieces of
# bounded memory. A newline is preferred; the space lets a text without line breaks be cut.
# (Python's \s is a superset of the Rust regex's, so a cut Python finds is one there too.)
SAFE_CUT = re.compile(r"(?<=\S\n)(?=\S)")
SAFE_CUT_AT_SPACE = re.compile(r"(?<=\S)(?= \S)")
CHUNK_CHARS = 1 << 16
CHUNKS_PER_BATCH = 16


def chunks(text: str, size: int = CHUNK_CHARS) -> Iterator[str]:
    """``text`` in pieces of about ``size`` characters, cut only where GPT-2's pre-tokenizer cuts anyway.

    A piece ends at the first safe line break after ``size`` characters, else at the
    first safe space; a stretch with neither stays whole, however long.
    """
    start = 0
    while len(text) - start > size:
        window = (start + size, start + 2 * size)
        cut = SAFE_CUT.search(text, *window) or SAFE_CUT_AT_SPACE.search(text, *window)
        cut = cut or SAFE_CUT.search(text, window[1]) or SAFE_CUT_AT_SPACE.search(text, window[1])
        if cut is None:
            break
        yield text[start : cut.start()]
        start = cut.start()
    yield text[start:]


def _tokenizers() -> Any:
    return require("tokenizers", "bpe", "the byte-level BPE tokenizer")


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte, inverted: character -> byte value."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte  # bytes that are not printable move above Latin-1
            extra += 1
    return chars


def read_tokenizer_file(file: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of a tokenizer file, refused unless it is a regular file under the size limit."""
    file = Path(file)
    limit = MAX_FILE_BYTES.get(file.name, 64 << 20) if limit is None else limit
    return files.read_file(file, limit, TokenizerError, "a tokenizer file")


def parse_json(data: bytes, source: str) -> Any:
    """JSON from bytes; bad UTF-8, bad syntax or absurd nesting is a TokenizerError naming ``source``."""
    return files.parse_json(data, source, TokenizerError, "a tokenizer file")


def _check_vocab(vocab: Any, source: str, field: str) -> dict[str, int]:
    if not isinstance(vocab, dict):
        raise TokenizerError(
            f"{source}: {field} must be a JSON object token -> id, got {type(vocab).__name__}"
        )
    if len(vocab) > MAX_VOCAB:
        raise TokenizerError(f"{source}: {field} has {len(vocab):,} tokens, more than {MAX_VOCAB:,}")
    for token, index in vocab.items():
        if type(index) is not int or not 0 <= index < MAX_VOCAB:
            raise TokenizerError(
                f"{source}: {field} gives token {token!r} the id {index!r}; ids are integers in [0, {MAX_VOCAB})"
            )
    return vocab


def _check_merges(merges: Any, source: str, field: str) -> None:
    if not isinstance(merges, list):
        raise TokenizerError(f"{source}: {field} must be a list of merges, got {type(merges).__name__}")
    for i, merge in enumerate(merges):
        pair = merge.split(" ") if isinstance(merge, str) else merge
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair)):
            raise TokenizerError(f"{source}: {field} {i} is {merge!r}, not a pair of tokens 'a b'")


def _check_tokenizer_json(data: Any, source: str) -> None:
    """The parts of an HF tokenizer.json that tinygpt relies on, checked before ``tokenizers`` sees it."""
    if not isinstance(data, dict):
        raise TokenizerError(f"{source}: expected a JSON object, got {type(data).__name__}")
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type") != "BPE":
        kind = model.get("type") if isinstance(model, dict) else model
        raise TokenizerError(f"{source}: the model is {kind!r}; tinygpt reads byte-level BPE tokenizers")
    _check_vocab(model.get("vocab"), source, "model.vocab")
    _check_merges(model.get("merges"), source, "model.merges entry")
    added = data.get("added_tokens", [])
    if not isinstance(added, list) or not all(
        isinstance(t, dict) and type(t.get("id")) is int and isinstance(t.get("content"), str) for t in added
    ):
        raise TokenizerError(f"{source}: added_tokens must be a list of {{'id': int, 'content': str, ...}}")
    pre = data.get("pre_tokenizer")
    steps = pre.get("pretokenizers") if isinstance(pre, dict) and pre.get("type") == "Sequence" else [pre]
    if not isinstance(steps, list) or not any(
        isinstance(p, dict) and p.get("type") == "ByteLevel" for p in steps
    ):
        # Without it, characters outside the byte alphabet would be dropped silently.
        kind = pre.get("type") if isinstance(pre, dict) else pre
        raise TokenizerError(
            f"{source}: the pre_tokenizer is {kind!r}, not 'ByteLevel'; tinygpt reads byte-level (GPT-2 style) BPE"
        )
    decoder = data.get("decoder")
    if not isinstance(decoder, dict) or decoder.get("type") != "ByteLevel":
        kind = decoder.get("type") if isinstance(decoder, dict) else decoder
        raise TokenizerError(
            f"{source}: the decoder is {kind!r}, not 'ByteLevel'; tinygpt reads byte-level (GPT-2 style) BPE"
        )


class BPETokenizer:
    """A byte-level BPE tokenizer (GPT-2's kind): any UTF-8 text encodes, nothing is unknown.

    Build one with ``train`` (on your corpus), ``from_gpt2_files`` (``vocab.json`` +
    ``merges.txt``) or ``from_file`` (a Hugging Face ``tokenizer.json``).
    """

    def __init__(self, tokenizer: Any, source: str = "tokenizer") -> None:
        """Wrap a ``tokenizers.Tokenizer``; its ids must run 0 .. vocab_size - 1 without gaps."""
        self._tokenizer = tokenizer
        vocab: dict[str, int] = tokenizer.get_vocab(with_added_tokens=True)
        size = len(vocab)
        if size == 0 or size > MAX_VOCAB or set(vocab.values()) != set(range(size)):
            raise TokenizerError(
                f"{source}: the {size:,} token ids are not exactly 0 .. {size - 1}; "
                "a tokenizer for a model needs one token per embedding row"
            )
        self._size = size
        # Each id's bytes, for streaming: vocabulary tokens spell bytes in GPT-2's
        # printable alphabet; added (special) tokens are plain text.
        byte_of = _byte_decoder()
        pieces = [b""] * size
        for token, index in vocab.items():
            pieces[index] = (
                bytes(byte_of[c] for c in token) if all(c in byte_of for c in token) else token.encode()
            )
        for index, added in tokenizer.get_added_tokens_decoder().items():
            pieces[index] = added.content.encode()
        self._bytes = pieces
        data = json.loads(tokenizer.to_str())
        self._key = json.dumps(data, sort_keys=True)
        pre = data.get("pre_tokenizer") or {}
        self._cuttable = (  # GPT-2's own pre-tokenizer, so chunks() is exact
            pre.get("type") == "ByteLevel"
            and pre.get("use_regex", True)
            and not pre.get("add_prefix_space", False)  # else every piece would gain a leading space
            and data.get("normalizer") is None
            and not any(
                c in t.get("content", "") for t in data.get("added_tokens", []) for c in "\n "
            )  # an added token is matched before pre-tokenization: a cut must not split one
        )

    @classmethod
    def train(cls, text: str, vocab_size: int) -> BPETokenizer:
        """Learn ``vocab_size`` tokens from ``text``: 256 bytes, ``<|endoftext|>``, then merges.

        A text too small to give that many merges is refused, so the vocabulary
        (and the model's embedding) always has exactly the size asked for.
        """
        if not text:
            raise TokenizerError("cannot train a BPE tokenizer on empty text")
        return cls.train_from_pieces(chunks(text), vocab_size)  # the whole text at once takes GBs

    @classmethod
    def train_from_pieces(cls, pieces: Iterable[str], vocab_size: int) -> BPETokenizer:
        """``train`` on a text given as pieces (``chunks``, or a sample of a corpus read from disk).

        Pieces cut where GPT-2's pre-tokenizer cuts anyway give the merges of the whole text.
        """
        if type(vocab_size) is not int or not 257 <= vocab_size <= MAX_VOCAB:
            raise TokenizerError(
                f"vocab_size (--vocab-size) must be an integer in [257, {MAX_VOCAB}] "
                f"(256 bytes + {END_OF_TEXT} + merges), got {vocab_size!r}"
            )
        hf = _tokenizers()
        tokenizer = hf.Tokenizer(hf.models.BPE())
        tokenizer.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = hf.decoders.ByteLevel()
        trainer = hf.trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[END_OF_TEXT],
            initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(pieces, trainer=trainer)
        got = tokenizer.get_vocab_size(with_added_tokens=True)
        if got < vocab_size:
            raise TokenizerError(
                f"the text has too few distinct byte pairs for {vocab_size} tokens: training stopped at {got}; "
                f"ask for vocab_size (--vocab-size) <= {got}, or train on more text"
            )
        return cls(tokenizer, source="trained tokenizer")

    @classmethod
    def from_gpt2_files(
        cls, vocab_json: str | os.PathLike[str], merges_txt: str | os.PathLike[str]
    ) -> BPETokenizer:
        """GPT-2's own format: ``vocab.json`` (token -> id) and ``merges.txt`` (one merge per line)."""
        vocab_source, merges_source = f"vocab file {str(vocab_json)!r}", f"merges file {str(merges_txt)!r}"
        vocab = _check_vocab(
            parse_json(read_tokenizer_file(vocab_json, MAX_FILE_BYTES["vocab.json"]), vocab_source),
            vocab_source,
            "the vocabulary",
        )
        try:
            lines = read_tokenizer_file(merges_txt, MAX_FILE_BYTES["merges.txt"]).decode("utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise TokenizerError(f"{merges_source} is not UTF-8 text ({exc}); the file is corrupt") from None
        lines = [line for line in lines if line and not line.startswith("#version")]
        _check_merges(lines, merges_source, "merge")
        merges = [tuple(line.split(" ")) for line in lines]
        hf = _tokenizers()
        try:
            tokenizer = hf.Tokenizer(hf.models.BPE(vocab, merges))
        except Exception as exc:  # tokenizers raises plain Exceptions, e.g. for a merge of unknown tokens
            raise TokenizerError(f"{merges_source} does not fit {vocab_source}: {exc}") from None
        tokenizer.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = hf.decoders.ByteLevel()
        if END_OF_TEXT in vocab:
            tokenizer.add_special_tokens([END_OF_TEXT])  # as GPT2TokenizerFast does
        return cls(tokenizer, source=vocab_source)

    @classmethod
    def from_file(cls, tokenizer_json: str | os.PathLike[str]) -> BPETokenizer:
        """A Hugging Face ``tokenizer.json`` of a byte-level BPE model (GPT-2's, or one tinygpt saved)."""
        source = f"tokenizer file {str(tokenizer_json)!r}"
        return cls.from_dict(parse_json(read_tokenizer_file(tokenizer_json), source), source=source)

    @classmethod
    def from_dict(cls, data: Any, source: str = "tokenizer data") -> BPETokenizer:
        """Rebuild from Hugging Face's tokenizer.json content (``to_dict`` output), checking it first."""
        _check_tokenizer_json(data, source)
        hf = _tokenizers()
        try:
            tokenizer = hf.Tokenizer.from_str(json.dumps(data))
        except Exception as exc:  # tokenizers raises plain Exceptions for every malformed field
            raise TokenizerError(
                f"{source}: not a tokenizer Hugging Face tokenizers can read: {exc}"
            ) from None
        return cls(tokenizer, source=source)

    def to_dict(self) -> dict[str, Any]:
        """Hugging Face's tokenizer.json content: ``from_dict`` and ``transformers`` both read it."""
        data: dict[str, Any] = json.loads(self._tokenizer.to_str())
        return data

    @property
    def vocab_size(self) -> int:
        """Number of tokens (merges, bytes and special tokens); ids run 0 .. vocab_size - 1."""
        return self._size

    @property
    def backend_tokenizer(self) -> Any:
        """The wrapped ``tokenizers.Tokenizer``."""
        return self._tokenizer

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BPETokenizer):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"

    @property
    def cuttable(self) -> bool:
        """Whether a text cut by ``chunks`` encodes to the ids of the whole (GPT-2's own pre-tokenizer)."""
        return self._cuttable

    def encode(self, text: str, on_unknown: str = "error") -> list[int]:
        """Token ids of ``text``; every text encodes, so ``on_unknown`` never applies."""
        if not isinstance(text, str):
            raise TokenizerError(f"encode expects a str, got {type(text).__name__}")
        if not self._cuttable or len(text) <= CHUNK_CHARS:
            ids: list[int] = self._tokenizer.encode(text, add_special_tokens=False).ids
            return ids
        # A corpus in batches of chunks: all at once, tokenizers keeps ~100 bytes per token.
        return [i for piece in self.encode_pieces(list(chunks(text, CHUNK_CHARS))) for i in piece]

    def encode_pieces(self, pieces: list[str]) -> list[list[int]]:
        """The ids of each piece, encoded in parallel batches (``tokenizers`` uses every core)."""
        # encode_batch_fast (tokenizers >= 0.21) skips the offsets, which tinygpt never uses.
        encode_batch = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)
        ids: list[list[int]] = []
        for first in range(0, len(pieces), CHUNKS_PER_BATCH):
            batch = encode_batch(pieces[first : first + CHUNKS_PER_BATCH], add_special_tokens=False)
            ids.extend(encoding.ids for encoding in batch)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids; bytes that are not valid UTF-8 become U+FFFD, as in GPT-2."""
        text: str = self._tokenizer.decode(checked_ids(ids, self._size), skip_special_tokens=False)
        return text

    def decode_stream(self, ids: Iterable[int]) -> Iterator[str]:
        """Text as ids arrive, holding back the bytes of a character that is not complete yet."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for token in ids:
            piece = decoder.decode(self._bytes[checked_ids([token], self._size)[0]])
            if piece:
                yield piece
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def start_ids(self) -> list[int]:
        """``<|endoftext|>``, where GPT-2 begins a document; a newline's byte where the vocabulary lacks it."""
        index = self._tokenizer.token_to_id(END_OF_TEXT)
        return [index] if index is not None else self.encode("\n")[:1]
