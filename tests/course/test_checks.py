"""The check helpers' comparisons: what counts as the same value (infinities and NaN included)."""

from __future__ import annotations

import math
import warnings

import pytest

from tinygpt import backend
from tinygpt.course import checks as C
from tinygpt.course.errors import CheckFailed


def test_compare_tells_a_finite_value_from_an_expected_infinity():
    # An additive mask: 0 where a query may look, -inf where it may not.
    want = backend.asarray([[0.0, -math.inf], [0.0, 0.0]])
    C.compare(backend.asarray([[0.0, -math.inf], [0.0, 0.0]]), want, "mask")
    with pytest.raises(CheckFailed, match=r"expected -inf at index \(0, 1\), got 0"):
        C.compare(backend.asarray([[0.0, 0.0], [0.0, 0.0]]), want, "mask")
    with pytest.raises(CheckFailed, match=r"expected 0 at index \(1, 1\), got -inf"):
        C.compare(backend.asarray([[0.0, -math.inf], [0.0, -math.inf]]), want, "mask")
    with pytest.raises(CheckFailed, match=r"expected -inf at index \(0, 1\), got inf"):
        C.compare(backend.asarray([[0.0, math.inf], [0.0, 0.0]]), want, "mask")


def test_compare_reports_nan_and_the_worst_finite_element():
    want = backend.asarray([1.0, 2.0, 3.0])
    with pytest.raises(CheckFailed, match=r"got nan"):
        C.compare(backend.asarray([1.0, math.nan, 3.0]), want, "x")
    with pytest.raises(CheckFailed, match=r"expected 3 at index \(2,\), got 5 .*2 of 3 values differ"):
        C.compare(backend.asarray([1.0, 2.5, 5.0]), want, "x")


def test_compare_reports_a_differing_0d_array_and_its_known_mistake():
    want = backend.asarray(2.0)
    C.compare(backend.asarray(2.0), want, "the loss")
    with pytest.raises(CheckFailed, match=r"^the loss: expected 2, got -2$") as info:
        C.compare(backend.asarray(-2.0), want, "the loss", mistakes={"mind the sign": backend.asarray(-2.0)})
    assert info.value.hint == "mind the sign"


def test_compare_expects_nan_only_where_the_reference_has_it():
    want = backend.asarray([1.0, math.nan])
    C.compare(backend.asarray([1.0, math.nan]), want, "x")
    with pytest.raises(CheckFailed, match=r"expected nan at index \(1,\), got 0"):
        C.compare(backend.asarray([1.0, 0.0]), want, "x")


def test_a_mistake_that_gives_the_right_result_is_not_the_hint():
    want = backend.asarray([1.0, 2.0])
    mistakes = {"not this one (same result here)": want, "this one": backend.asarray([1.0, 3.0])}
    with pytest.raises(CheckFailed) as info:
        C.compare(backend.asarray([1.0, 3.0]), want, "x", mistakes=mistakes)
    assert info.value.hint == "this one"
    with pytest.raises(CheckFailed) as info:
        C.compare(backend.asarray([1.0, 2.5]), want, "x", hint="the plain hint", mistakes=mistakes)
    assert info.value.hint == "the plain hint"


def test_the_grader_s_own_arithmetic_prints_no_numpy_warnings():
    # Shown to the student under "your code printed" otherwise: inf - inf in a comparison, a known
    # mistake whose result is NaN (a softmax over a column of -inf).
    inf = math.inf
    want = backend.asarray([[0.0, -inf], [inf, 1.0]])

    def mistakes():
        row = backend.asarray([-inf, -inf])
        return {"a softmax of a masked row": backend.asarray([[0.0, 1.0], [1.0, 1.0]]) + (row - row)[:, None]}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        C.compare(backend.asarray([[0.0, -inf], [inf, 1.0]]), want, "x")
        with pytest.raises(CheckFailed):
            C.compare(backend.asarray([[0.0, inf], [-inf, 1.0]]), want, "x", mistakes=mistakes)
        assert C.matches(want, want) and not C.matches(want, -want)
