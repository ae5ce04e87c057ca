"""Exercise: sinusoidal positions, and adding them to token embeddings with an offset (the KV cache).

The reference is ``tinygpt.layers.sinusoidal_table`` (interleaved: sin in the
even columns, cos in the odd ones, positions from 0) and
``tinygpt.layers.PositionalEncoding(kind="sinusoidal").forward(x, offset)``.
Known mistakes are recognised by computing the table each would produce.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinygpt import backend
from tinygpt.course import checks as C
from tinygpt.course.errors import CheckFailed
from tinygpt.course.exercise import Exercise
from tinygpt.course.student import Student
from tinygpt.layers import Module, PositionalEncoding, sinusoidal_table
from tinygpt.models import GPTConfig, TinyGPT
from tinygpt.tensor import Tensor, no_grad

EXERCISE = Exercise(
    name="positional_encoding",
    title="Sinusoidal positions",
    teaches="why attention needs positions; sin/cos clocks of geometric frequencies; a position offset",
    minutes=25,
)

Array = Any
FORMULA = "pe[pos, 2i] = sin(pos / 10000^(2i/C)), pe[pos, 2i+1] = cos(pos / 10000^(2i/C)), pos from 0"
HALF_EXPONENT = (
    "the pair (2i, 2i+1) turns at 1 / 10000^(2i/C): with i counting pairs (0, 1, 2, ...), the exponent "
    "is 2i/C, not i/C (xp.arange(0, C, 2) gives 2i directly)"
)
COLUMN_EXPONENT = (
    "columns 2i and 2i+1 share one frequency, 1 / 10000^(2i/C): the cos column uses the angle of the sin "
    "column before it, not an exponent of its own"
)
SWAPPED = "sin goes in the even columns (0, 2, 4, ...) and cos in the odd ones: pe[0] = [0, 1, 0, 1, ...]"
FROM_ONE = "positions start at 0: the first row is pe[0] = [sin 0, cos 0, ...] = [0, 1, 0, 1, ...]"
HALVES = (
    "interleave: the sin and cos of one frequency sit side by side (columns 2i and 2i+1), not all sines "
    "in the first half and all cosines in the second (xp.stack([sin, cos], axis=-1), then reshape)"
)
INTEGER_DIVISION = (
    "2i / C is a fraction between 0 and 1: integer division (//) makes it 0, so every pair turns at the same "
    "frequency 1"
)
MULTIPLIED = (
    "divide the position by 10000^(2i/C) (or multiply by 10000^(-2i/C)): the frequencies fall from 1 "
    "radian per step to about 1/10000"
)
ODD = "for an odd C the last column is a sin: make ceil(C/2) frequencies, interleave sin and cos, keep C columns"
DTYPE = (
    "create the positions with xp.arange(length, dtype=b.float_dtype, device=b.device), b = backend.current()"
)
TOO_LONG = (
    "check offset + T against table.shape[0] (block_size) and raise ValueError: the model must crop the "
    "input to its last block_size tokens"
)


def _table(length: int, dim: int, position: Callable[[Any], Any], exponent: Callable[[Any], Any]) -> Array:
    """A sin/cos table, interleaved: positions ``position(arange)``, pair exponents ``exponent(2i)``."""
    b = backend.current()
    xp = b.xp
    pos = position(xp.arange(length, dtype=b.float_dtype, device=b.device))[:, None]
    two_i = xp.arange(0, dim, 2, dtype=b.float_dtype, device=b.device)[None, :]
    angle = pos / 10000.0 ** exponent(two_i)
    return xp.reshape(xp.stack([xp.sin(angle), xp.cos(angle)], axis=-1), (length, -1))[:, :dim]


def _mistakes(length: int, dim: int) -> dict[str, Array]:
    """What each known mistake would give for sinusoidal_table(length, dim)."""
    b = backend.current()
    xp = b.xp
    out = {
        HALF_EXPONENT: _table(length, dim, lambda p: p, lambda two_i: two_i / 2 / dim),
        FROM_ONE: _table(length, dim, lambda p: p + 1, lambda two_i: two_i / dim),
        INTEGER_DIVISION: _table(length, dim, lambda p: p, lambda two_i: two_i * 0.0),
        MULTIPLIED: _table(length, dim, lambda p: p, lambda two_i: -two_i / dim),
    }
    # Each column with its own exponent j / C (j the column), cos in the odd ones.
    j = xp.arange(dim, dtype=b.float_dtype, device=b.device)[None, :]
    pos = xp.arange(length, dtype=b.float_dtype, device=b.device)[:, None]
    angle = pos / 10000.0 ** (j / dim)
    odd = xp.astype(xp.arange(dim, device=b.device) % 2, xp.bool)[None, :]
    out[COLUMN_EXPONENT] = xp.where(odd, xp.cos(angle), xp.sin(angle))
    if dim % 2 == 0:  # the right angles, the wrong layout
        angle = _angles(length, dim)
        out[SWAPPED] = xp.reshape(xp.stack([xp.cos(angle), xp.sin(angle)], axis=-1), (length, dim))
        out[HALVES] = xp.concat([xp.sin(angle), xp.cos(angle)], axis=-1)
    return out


def _angles(length: int, dim: int) -> Array:
    """pos / 10000^(2i/dim): (length, ceil(dim/2))."""
    b = backend.current()
    xp = b.xp
    pos = xp.arange(length, dtype=b.float_dtype, device=b.device)[:, None]
    two_i = xp.arange(0, dim, 2, dtype=b.float_dtype, device=b.device)[None, :]
    return pos / 10000.0 ** (two_i / dim)


def _student_table(student: Student, length: int, dim: int, hint: str = "") -> Array:
    try:
        return student.call("sinusoidal_table", length, dim)
    except CheckFailed as exc:
        if hint and "raised" in exc.message:  # a crash on this shape: say what is special about it
            raise CheckFailed(f"{exc.message} (for sinusoidal_table({length}, {dim}))", hint) from None
        raise


@EXERCISE.check("sinusoidal_table returns (length, dim) in the backend's float dtype", kind="shape")
def table_shape(student: Student) -> None:
    b = backend.current()
    table = _student_table(student, 8, 16)
    C.expect_array(table, "sinusoidal_table(8, 16)", shape=(8, 16), dtype=b.float_dtype, hint=DTYPE)


@EXERCISE.check("sinusoidal_table matches tinygpt.layers.sinusoidal_table (float64)")
def table_values(student: Student) -> None:
    with C.float64():
        for length, dim in ((50, 16), (20, 6)):
            C.compare(
                _student_table(student, length, dim),
                sinusoidal_table(length, dim),
                f"sinusoidal_table({length}, {dim})",
                rtol=1e-9,
                atol=1e-9,
                hint=FORMULA,
                mistakes=lambda length=length, dim=dim: _mistakes(length, dim),
            )


@EXERCISE.check("sinusoidal_table edge cases: odd C, C = 1 and 2, a single position", kind="edge")
def table_edges(student: Student) -> None:
    with C.float64():
        for length, dim, what in (
            (10, 7, "odd C = 7"),
            (5, 1, "C = 1: one sin column, sin(pos)"),
            (6, 2, "C = 2: sin(pos), cos(pos)"),
            (1, 16, "one position: [0, 1, 0, 1, ...]"),
        ):
            hint = ODD if dim % 2 else FORMULA
            C.compare(
                _student_table(student, length, dim, hint),
                sinusoidal_table(length, dim),
                f"sinusoidal_table({length}, {dim}) ({what})",
                rtol=1e-9,
                atol=1e-9,
                hint=hint,
                mistakes=lambda length=length, dim=dim: _mistakes(length, dim),
            )


@EXERCISE.check(
    "sinusoidal_table turns each column pair: pe[t + k] is a fixed function of pe[t]", kind="property"
)
def rotation(student: Student) -> None:
    with C.float64():
        table = C.host(_student_table(student, 64, 16)).astype("float64")
    for k in (1, 5, 17):
        sin_k, cos_k = table[k, 0::2], table[k, 1::2]  # sin(k w_i), cos(k w_i)
        sin_t, cos_t = table[: 64 - k, 0::2], table[: 64 - k, 1::2]
        turned = table[k:, :].copy()
        turned[:, 0::2] = sin_t * cos_k + cos_t * sin_k  # sin(a + b)
        turned[:, 1::2] = cos_t * cos_k - sin_t * sin_k  # cos(a + b)
        bad = abs(turned - table[k:, :]) > 1e-9
        if bad.any():
            t, column = (int(v) for v in divmod(int(bad.reshape(-1).argmax()), 16))
            raise CheckFailed(
                f"pe[{t + k}, {column}] should be pe[{t}] turned by the angle of pe[{k}] (sin(a + b) = "
                f"sin a cos b + cos a sin b): expected {turned[t, column]:.6g}, got {table[t + k, column]:.6g}",
                FROM_ONE,
            )


@EXERCISE.check("add_positions returns x's shape and dtype", kind="shape")
def add_shape(student: Student) -> None:
    x = C.random_array((2, 5, 8))
    out = student.call("add_positions", x, sinusoidal_table(16, 8))
    C.expect_array(out, "add_positions(x (2, 5, 8) float32, table (16, 8))", shape=x.shape, dtype=x.dtype)


def _offset_mistakes(x: Array, table: Array, offset: int) -> dict[str, Array]:
    t = x.shape[1]
    out = {}
    if offset:
        out["position t of x is position offset + t of the table: add table[offset : offset + T]"] = (
            x + table[:t, :]
        )
    out["off by one: position t of x is position offset + t, so the rows are table[offset : offset + T]"] = (
        x + table[offset + 1 : offset + 1 + t, :]
    )
    return out


@EXERCISE.check("add_positions matches PositionalEncoding.forward, with and without an offset")
def add_values(student: Student) -> None:
    with C.float64():
        layer = PositionalEncoding(16, 8, kind="sinusoidal")
        table = sinusoidal_table(16, 8)
        for offset in (0, 3):
            x = C.random_array((2, 5, 8), seed=offset)
            C.compare(
                student.call("add_positions", x, table, offset),
                layer(Tensor.wrap(x), offset=offset).data,
                f"add_positions(x (2, 5, 8), table (16, 8), offset={offset})",
                rtol=1e-12,
                atol=1e-12,
                hint="add table[offset : offset + T] (shape (T, C)) to x (B, T, C): broadcasting adds it to each sequence",
                mistakes=lambda x=x, offset=offset: _offset_mistakes(x, table, offset),
            )


@EXERCISE.check(
    "add_positions edge cases: the last position of the block, and an input longer than the block",
    kind="edge",
)
def add_edges(student: Student) -> None:
    with C.float64():
        layer = PositionalEncoding(16, 8, kind="sinusoidal")
        table = sinusoidal_table(16, 8)
        for t, offset, what in (
            (1, 15, "one token at the last position, 15"),
            (16, 0, "T = block_size = 16"),
        ):
            x = C.random_array((2, t, 8), seed=t)
            C.compare(
                student.call("add_positions", x, table, offset),
                layer(Tensor.wrap(x), offset=offset).data,
                f"add_positions(x (2, {t}, 8), table (16, 8), offset={offset}) ({what})",
                rtol=1e-12,
                atol=1e-12,
                mistakes=lambda x=x, offset=offset: _offset_mistakes(x, table, offset),
            )
        for t, offset in ((2, 15), (17, 0)):
            x = C.random_array((2, t, 8), seed=t)
            label = f"add_positions(x (2, {t}, 8), table (16, 8), offset={offset})"
            C.expect_raises(
                student,
                label,
                student.get("add_positions"),
                x,
                table,
                offset,
                why=f"the table has rows for positions 0 .. 15 only and the input needs positions {offset} .. "
                f"{offset + t - 1}"
                + (" (table[15:17] is one row, which broadcasts silently)" if t == 2 else ""),
                hint=TOO_LONG,
            )


class _StudentPositions(Module):
    """A sinusoidal PositionalEncoding whose table and addition are the student's."""

    def __init__(self, student: Student, block_size: int, dim: int) -> None:
        self.student = student
        self.table_data = _student_table(student, block_size, dim)
        C.expect_array(self.table_data, f"sinusoidal_table({block_size}, {dim})", shape=(block_size, dim))

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        out = self.student.call("add_positions", x.data, self.table_data, offset)
        C.expect_array(out, "add_positions inside the model", shape=x.shape, dtype=x.dtype)
        return Tensor.wrap(out)


# A model in float64: on JAX each new shape compiles (about 7 s in all), hence 30 s rather than 20.
@EXERCISE.check(
    "in a TinyGPT, your positions give the library's logits, with and without a KV cache",
    kind="property",
    timeout=30,
)
def in_the_model(student: Student) -> str:
    config = GPTConfig(vocab_size=13, block_size=16, n_layer=1, n_head=2, n_embd=10, positional="sinusoidal")
    with C.float64(), no_grad():
        reference = TinyGPT(config, rng=backend.Generator(0))
        model = TinyGPT(config, rng=backend.Generator(0))
        model.wpe = _StudentPositions(student, config.block_size, config.n_embd)  # type: ignore[assignment]
        ids = backend.Generator(1).integers(0, config.vocab_size, (2, 12))
        want = reference(ids).data
        C.compare(
            model(ids).data,
            want,
            "the logits of TinyGPT (sinusoidal positions) with yours, ids (2, 12)",
            rtol=1e-9,
            atol=1e-9,
        )
        caches = model.new_caches(2)
        model(ids[:, :9], caches)
        for t in range(9, 12):
            got = model(ids[:, t : t + 1], caches).data
            C.compare(
                got[:, 0, :],
                want[:, t, :],
                f"generating with a KV cache, the logits of the token at position {t} (fed alone, offset={t})",
                rtol=1e-9,
                atol=1e-9,
                hint="a token fed alone sits at position offset, not 0: add table[offset : offset + T]",
            )
    return f"logits agree for {ids.shape[1]} positions, and token by token with a KV cache (offsets 9 .. 11)"
