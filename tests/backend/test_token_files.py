"""Token files: written in pieces, read window by window, the same batches as ids on the device."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.lm_helpers import host, subprocess_env
from tinygpt import backend
from tinygpt.backend import token_files
from tinygpt.backend.token_files import TokenFile, TokenWriter, token_dtype
from tinygpt.data import sample_windows, sequential_windows
from tinygpt.errors import CorpusError


def write_tokens(path, ids, dtype):
    with open(path, "wb") as f:
        writer = TokenWriter(f, dtype)
        writer.write(ids[:3].tolist())  # a list of ints,
        writer.write([ids[3:5].tolist(), ids[5:9].tolist()])  # a list of lists (encoded pieces),
        writer.write(ids[9:])  # an array
        writer.flush()
    assert writer.count == len(ids)
    return path


@pytest.mark.parametrize(
    ("vocab", "dtype"), [(2, "uint8"), (256, "uint8"), (257, "uint16"), (65536, "uint16"), (65537, "uint32")]
)
def test_the_dtype_is_the_smallest_that_holds_the_vocabulary_and_round_trips(tmp_path, vocab, dtype):
    assert token_dtype(vocab) == dtype
    ids = np.random.default_rng(0).integers(0, vocab, 1000)
    ids[0] = vocab - 1
    path = write_tokens(tmp_path / "t.bin", ids, dtype)
    assert path.stat().st_size == 1000 * np.dtype(dtype).itemsize
    tokens = TokenFile(path, dtype, 1000, vocab)
    assert tokens.shape == (1000,) and len(tokens) == 1000
    assert tokens.read(0, 1000).tolist() == ids.tolist()


def test_windows_from_a_file_are_the_windows_of_the_same_ids_on_the_device(tmp_path, xp_backend):
    ids = np.random.default_rng(1).integers(0, 300, 5000)
    tokens = TokenFile(write_tokens(tmp_path / "t.bin", ids, "uint16"), "uint16", 5000, 300)
    on_device = backend.asarray(ids)
    a, b = backend.Generator(7), backend.Generator(7)
    for _ in range(3):  # the same draws, so a run gets the same batches either way
        from_file = sample_windows(tokens, 16, 4, a)
        assert from_file.dtype == xp_backend.int_dtype
        assert host(from_file).tolist() == host(sample_windows(on_device, 16, 4, b)).tolist()
    pairs = zip(sequential_windows(tokens, 16, 7), sequential_windows(on_device, 16, 7), strict=True)
    for from_file, expected in pairs:
        assert host(from_file).tolist() == host(expected).tolist()


def test_the_map_is_renewed_and_windows_stay_right(tmp_path, monkeypatch):
    monkeypatch.setattr(token_files, "REMAP_BYTES", 100 << 10)  # renewed every read or two
    ids = np.arange(1000) % 250
    tokens = TokenFile(write_tokens(tmp_path / "t.bin", ids, "uint8"), "uint8", 1000, 250)
    for start in range(0, 900, 37):
        assert tokens.gather(np.array([start, start + 1]), 8).tolist() == [
            ids[start : start + 8].tolist(),
            ids[start + 1 : start + 9].tolist(),
        ]


def test_a_file_whose_size_is_not_its_count_is_refused(tmp_path):
    path = write_tokens(tmp_path / "t.bin", np.arange(10), "uint16")
    with pytest.raises(CorpusError, match=r"20 bytes.*11 uint16 tokens \(22 bytes\).*truncated"):
        TokenFile(path, "uint16", 11, 100)


def test_an_id_outside_the_vocabulary_is_refused_where_it_is_read(tmp_path):
    ids = np.zeros(100, dtype=np.int64)
    ids[42] = 77
    tokens = TokenFile(write_tokens(tmp_path / "t.bin", ids, "uint8"), "uint8", 100, 50)
    with pytest.raises(CorpusError, match=r"id 77 at token 42 is outside the vocabulary of 50"):
        tokens.gather(np.array([0, 40]), 8)
    with pytest.raises(CorpusError, match=r"id 77 at token 42"):
        tokens.read(10, 60)
    assert tokens.read(0, 40).max() == 0  # the rest of the file still reads


def test_a_link_or_a_fifo_is_not_a_token_file(tmp_path):
    target = write_tokens(tmp_path / "t.bin", np.arange(10), "uint8")
    (tmp_path / "link.bin").symlink_to(target)
    with pytest.raises(CorpusError, match="symbolic link"):
        TokenFile(tmp_path / "link.bin", "uint8", 10, 10)
    os.mkfifo(tmp_path / "fifo.bin")
    with pytest.raises(CorpusError, match="not a regular file"):
        TokenFile(tmp_path / "fifo.bin", "uint8", 10, 10)
    with pytest.raises(CorpusError, match="not one of"):
        TokenFile(target, "int64", 10, 10)


def test_a_file_larger_than_the_address_space_limit_is_read_window_by_window(tmp_path):
    """Under ``ulimit -v`` below the file's size the whole file cannot be mapped: each window is."""
    path = tmp_path / "huge.bin"
    with open(path, "wb") as f:  # 8 GiB of token 0 (sparse: it takes no disk), one token 5 near the end
        f.truncate(8 << 30)
        f.seek((8 << 30) - 4)
        f.write(np.array([5], dtype="<u2").tobytes())
    script = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        import numpy as np
        from tinygpt import backend
        from tinygpt.backend.token_files import TokenFile
        tokens = TokenFile({str(path)!r}, "uint16", 4 << 30, 10)
        windows = tokens.gather(np.array([0, (4 << 30) - 8]), 8)
        assert windows.tolist() == [[0] * 8, [0] * 6 + [5, 0]], windows
        batch = tokens.random_windows(backend.Generator(0), 64, 12)
        assert batch.shape == (12, 64)
        print("ok")
        """
    )
    env = subprocess_env()  # the repository first, then what PYTHONPATH held (a device's carried wheels)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
