"""The positional_encoding exercise: its planted bugs fail, naming the fault (its solution and starter: test_exercises.py)."""

from __future__ import annotations

from tests.course.helpers import (
    planted_bugs_fail,
)

NAME = "positional_encoding"
ANGLE = "    angle = pos / 10000.0 ** (two_i / dim)  # (length, ceil(dim/2))\n"
STACK = "    table = xp.stack([xp.sin(angle), xp.cos(angle)], axis=-1)"
CHECK = "    if offset + t > table.shape[0]:\n"
ADD = "    return x + table[offset : offset + t, :]\n"

# (what the student got wrong, text in the solution, the wrong version, words the failure must contain)
BUGS = [
    (
        "exponent i/C instead of 2i/C",
        ANGLE,
        "    angle = pos / 10000.0 ** (two_i / 2 / dim)\n",
        "the exponent is 2i/C, not i/C",
    ),
    (
        "each column its own exponent",
        "    two_i = xp.arange(0, dim, 2, dtype=b.float_dtype, device=b.device)[None, :]  # (1, ceil(dim/2))\n"
        + ANGLE
        + STACK
        + "  # (length, ceil(dim/2), 2): sin, cos\n"
        + "    return xp.reshape(table, (length, -1))[:, :dim]\n",
        "    j = xp.arange(dim, dtype=b.float_dtype, device=b.device)[None, :]\n"
        "    angle = pos / 10000.0 ** (j / dim)\n"
        "    odd = xp.astype(xp.arange(dim, device=b.device) % 2, xp.bool)[None, :]\n"
        "    return xp.where(odd, xp.cos(angle), xp.sin(angle))\n",
        "share one frequency",
    ),
    (
        "sin and cos swapped",
        STACK,
        "    table = xp.stack([xp.cos(angle), xp.sin(angle)], axis=-1)",
        "sin goes in the even columns",
    ),
    (
        "positions from 1",
        "    pos = xp.arange(length, dtype=b.float_dtype, device=b.device)[:, None]",
        "    pos = xp.arange(1, length + 1, dtype=b.float_dtype, device=b.device)[:, None]",
        "positions start at 0",
    ),
    (
        "integer division in the exponent",
        ANGLE,
        "    angle = pos / 10000.0 ** (two_i // dim)\n",
        "integer division (//) makes it 0",
    ),
    (
        "multiplied by the frequency's inverse",
        ANGLE,
        "    angle = pos * 10000.0 ** (two_i / dim)\n",
        "divide the position by 10000^(2i/C)",
    ),
    (
        "sines in the first half, cosines in the second",
        STACK + "  # (length, ceil(dim/2), 2): sin, cos\n"
        "    return xp.reshape(table, (length, -1))[:, :dim]\n",
        "    return xp.concat([xp.sin(angle), xp.cos(angle)], axis=-1)[:, :dim]\n",
        "interleave",
    ),
    (
        "odd C not handled",
        "    return xp.reshape(table, (length, -1))[:, :dim]\n",
        "    return xp.reshape(table, (length, dim))\n",
        "for an odd C the last column is a sin",
    ),
    (
        "no dtype: integer positions give float64",
        "    pos = xp.arange(length, dtype=b.float_dtype, device=b.device)[:, None]  # (length, 1)\n"
        "    two_i = xp.arange(0, dim, 2, dtype=b.float_dtype, device=b.device)[None, :]",
        "    pos = xp.arange(length, device=b.device)[:, None]\n    two_i = xp.arange(0, dim, 2, device=b.device)[None, :]",
        "should have dtype float32, got float64",
    ),
    ("offset ignored", ADD, "    return x + table[:t, :]\n", "add table[offset : offset + T]"),
    ("offset off by one", ADD, "    return x + table[offset + 1 : offset + 1 + t, :]\n", "off by one"),
    ("no block check", CHECK, "    if False:\n", "broadcasts silently"),
    (
        "block check off by one",
        CHECK,
        "    if offset + t > table.shape[0] + 1:\n",
        "needs positions 15 .. 16",
    ),
    (
        "the wrong error",
        "        raise ValueError(\n",
        "        raise IndexError(\n",
        "so refuse it with a ValueError",
    ),
]


test_a_planted_bug_fails_naming_the_fault = planted_bugs_fail(NAME, BUGS)
