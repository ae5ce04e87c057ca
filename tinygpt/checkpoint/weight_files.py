"""Weight files that may come from anywhere, read without trusting them.

A safetensors header is checked entry by entry against the file's size before
any tensor is read; tensors must be float (F32, or F16 widened), finite, and the
model small enough for free memory before anything large is allocated.

``SafetensorsFiles`` opens each file once and reads one tensor at a time from it
straight into a fresh host array (a Hugging Face directory: GPT-2's file is
500 MB, and a memory map would count its pages on top of the weights);
``load_safetensors_bytes`` reads a tinygpt checkpoint's file, whose bytes are
already in memory to check their SHA-256.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from safetensors import SafetensorError
from safetensors.numpy import load as st_load

from tinygpt import backend, files
from tinygpt.errors import CheckpointError
from tinygpt.layers import Module

MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on the JSON header
# safetensors dtype -> bytes per element; the float ones load (as float32), the rest are refused by name.
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1}
DTYPE_BYTES |= {"BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}
FLOAT_DTYPES = {"F32": "float32", "F16": "float16"}


def check_finite(file: Path, name: str, array: Any) -> None:
    """Refuse a host array holding NaN or infinity (min/max propagate NaN without a temporary copy)."""
    if array.size and not (math.isfinite(float(array.min())) and math.isfinite(float(array.max()))):
        raise CheckpointError(
            f"{file}: tensor {name!r} holds NaN or infinite values; the weights are unusable "
            "(training diverged before they were saved?): use other weights"
        )


def check_fits(source: Path, num_parameters: int) -> None:
    """Refuse a model whose float32 weights alone would not fit in free memory (before allocating them)."""
    need = 4 * num_parameters
    have = backend.available_memory()
    if have is not None and need > have:
        raise CheckpointError(
            f"{source} describes a model of {num_parameters:,} parameters "
            f"({need / 2**30:.1f} GiB) but only {have / 2**30:.1f} GiB is free; it cannot be loaded here"
        )


def safetensors_header(f: BinaryIO, file: Path) -> dict[str, tuple[str, tuple[int, ...], int]]:
    """Tensor name -> (dtype, shape, offset in the file) from the header of ``f``, open at its start.

    Every entry is checked against the file's size before anything else is read.
    """
    try:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if n < 0 or n > min(size - 8, MAX_HEADER_BYTES):
            raise CheckpointError(
                f"{file} is not a readable safetensors file: its header length ({n:,} bytes) does not "
                f"fit in the file ({size:,} bytes); the file is truncated or not safetensors"
            )
        header = files.parse_json(f.read(n), file, CheckpointError, "a safetensors header")
    except OSError as exc:
        raise CheckpointError(f"cannot read {file}: {exc}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: the safetensors header is not a JSON object; the file is corrupt")
    data_bytes = size - 8 - n
    tensors: dict[str, tuple[str, tuple[int, ...], int]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        shape = entry.get("shape") if isinstance(entry, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            dtype not in DTYPE_BYTES
            or not isinstance(shape, list)
            or not all(type(d) is int and d >= 0 for d in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int and o >= 0 for o in offsets)
        ):
            raise CheckpointError(
                f"{file}: the header entry of tensor {name!r} is malformed; the file is corrupt"
            )
        begin, end = offsets
        if end > data_bytes:
            raise CheckpointError(
                f"{file}: tensor {name!r} lies at bytes {begin:,}..{end:,} but the file holds only "
                f"{data_bytes:,} bytes of data; the file is truncated (download it again)"
            )
        if end - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise CheckpointError(
                f"{file}: tensor {name!r} of shape {shape} and dtype {dtype} cannot take "
                f"{end - begin:,} bytes; the file is corrupt"
            )
        tensors[name] = (dtype, tuple(shape), 8 + n + begin)
    return tensors


class SafetensorsFiles:
    """Tensors by name across one or more safetensors files, each opened once, read one tensor at a time.

    ``read(name)`` gives a finite float32 host array. Use it as a context manager: leaving it
    closes the files.
    """

    def __init__(self, paths: list[Path]) -> None:
        self.where: dict[str, Path] = {}
        self.header: dict[str, tuple[str, tuple[int, ...], int]] = {}
        self._open: dict[Path, BinaryIO] = {}
        try:
            for file in paths:
                self._open[file] = f = files.open_regular(file, CheckpointError)
                for name, entry in safetensors_header(f, file).items():
                    if name in self.where:
                        raise CheckpointError(
                            f"tensor {name!r} is stored twice: in {self.where[name]} and {file}"
                        )
                    self.where[name], self.header[name] = file, entry
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> SafetensorsFiles:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for f in self._open.values():
            f.close()
        self._open.clear()

    def shape(self, name: str) -> tuple[int, ...]:
        return self.header[name][1]

    def read(self, name: str) -> Any:
        """Tensor ``name`` as a float32 host array (float16 is widened), refusing other dtypes and NaN/inf."""
        file, (dtype, shape, offset) = self.where[name], self.header[name]
        if dtype not in FLOAT_DTYPES:
            raise CheckpointError(
                f"{file}: tensor {name!r} has dtype {dtype}; tinygpt reads float weights stored as "
                f"{' or '.join(FLOAT_DTYPES)} (re-save the model in float32)"
            )
        f = self._open[file]
        try:
            f.seek(offset)
            array = backend.read_array(f, shape, FLOAT_DTYPES[dtype])  # straight from the file
        except (OSError, EOFError) as exc:
            raise CheckpointError(f"{file} is not a readable safetensors file ({name!r}): {exc}") from None
        if dtype != "F32":
            array = array.astype("float32")
        check_finite(file, name, array)
        return array


def assign_weights(model: Module, tensors: SafetensorsFiles, names: dict[str, str]) -> None:
    """Fill every parameter of ``model`` from ``tensors`` (``names``: parameter -> stored name), one at a time.

    Every name and shape is checked before the first tensor is read; each tensor is read
    straight into the array the parameter keeps (on NumPy; other backends copy it once).
    """
    params = dict(model.named_parameters())
    if set(names) != set(params):
        raise ValueError(f"the name mapping does not cover parameters {sorted(set(params) ^ set(names))[:5]}")
    for param, stored in names.items():
        file = tensors.where.get(stored)
        if file is None:
            where = ", ".join(sorted({str(f) for f in tensors.where.values()})) or "the weight files"
            raise CheckpointError(
                f"{where} lacks tensor {stored!r} (tinygpt's {param}); the download is incomplete"
            )
        shape = tensors.shape(stored)
        expected = params[param].shape
        if shape != expected:
            raise CheckpointError(
                f"{file}: tensor {stored!r} has shape {list(shape)} but config.json describes "
                f"{list(expected)}; the weights and config.json come from different models"
            )
    for param, stored in names.items():
        p = params[param]
        p.data = backend.asarray(tensors.read(stored), dtype=p.dtype, copy=False)  # a fresh host array


def load_safetensors_bytes(path: Path, name: str, data: bytes) -> dict[str, Any]:
    """All tensors of a safetensors file's bytes as host arrays, refusing NaN and infinity."""
    try:
        arrays = st_load(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path / name} is not a readable safetensors file: {exc}") from None
    for tensor, array in arrays.items():
        check_finite(path / name, tensor, array)
    return arrays
