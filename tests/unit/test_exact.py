"""Exact figures (docs/rules.md#exact-figures): a double stands for its shortest decimal, sums
and products never round, and rounding happens once, half up."""

from __future__ import annotations

from decimal import Decimal, Inexact
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain import exact as module
from service.domain.exact import (
    DIGITS,
    add,
    exact,
    half_up,
    multiply,
    ratio_half_up,
    rounded_up,
    subtract,
)


def test_a_double_stands_for_its_shortest_decimal() -> None:
    assert exact(68.1) == Decimal("68.1")
    assert add(exact(0.1), exact(0.2)) == Decimal("0.3")
    assert exact(5e-324) == Decimal("5E-324")
    assert exact(12.345678901234567) == Decimal("12.345678901234567")


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_no_double_needs_digits_below_ten_to_the_minus_324_nor_more_than_17(value: float) -> None:
    """What `DIGITS` is reckoned from."""
    digits = exact(value).as_tuple()
    assert isinstance(digits.exponent, int)
    assert digits.exponent >= -324
    assert len(digits.digits) <= 17


@given(st.lists(st.tuples(st.floats(0, 10_000), st.floats(0, 10)), max_size=20))
def test_sums_of_products_are_the_sums_of_the_decimals_exactly(
    trips: list[tuple[float, float]],
) -> None:
    total = Decimal(0)
    for km, score in trips:
        total = add(total, multiply(exact(score), exact(km)))
    expected = sum((Fraction(repr(s)) * Fraction(repr(k)) for k, s in trips), Fraction(0))
    assert Fraction(total) == expected


def test_an_operation_that_would_have_to_round_raises_rather_than_rounds() -> None:
    with pytest.raises(Inexact):
        add(Decimal(10) ** DIGITS, Decimal("1E-10"))
    with pytest.raises(Inexact):
        subtract(Decimal("1E+999"), Decimal("1E-999"))


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [("8.125", 2, 813), ("8.12496", 2, 812), ("8.1249999999", 2, 812), ("0.0005", 3, 1)],
)
def test_half_up_rounds_a_half_up(value: str, places: int, expected: int) -> None:
    assert half_up(Decimal(value), places) == expected


def test_rounded_up_keeps_any_part_of_a_unit() -> None:
    assert rounded_up(Decimal("0.0004"), 3) == 1
    assert rounded_up(Decimal("0.002"), 3) == 2
    assert rounded_up(Decimal("-0.0004"), 3) == 0


def test_a_ratio_is_rounded_half_up_once_from_its_exact_value() -> None:
    assert ratio_half_up(Decimal("196.5"), Decimal(3), 0) == 66  # 65.5 exactly
    assert ratio_half_up(Decimal("40.6248"), Decimal(5), 2) == 812  # 8.12496
    assert ratio_half_up(Decimal("1E-9") * 5, Decimal("1E-9"), 2) == 500


def test_remembering_conversions_never_changes_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "REMEMBERED", 3)
    values = [0.1, 0.2, 0.3, 0.4, 0.1, 68.1, 0.2]
    assert [exact(v) for v in values] == [Decimal(repr(v)) for v in values]
