"""Exact figures (docs/rules.md#exact-figures): the decimals producers' doubles stand for,
added and multiplied without rounding, and rounded once, at the end.

A double a producer sends stands for the shortest decimal that reads back as it (its `repr`:
68.1 is 68.1, not the binary fraction 68.099999999999994315658...). Figures are kept as
`decimal.Decimal` values of those decimals, and every operation on them goes through
`EXACT`, a context whose precision no figure within the bounds can reach and which traps
`Inexact`: an operation that would have to round raises instead of rounding silently (the
record that caused it is then dead-lettered as unfoldable), so a sum is always the exact sum.
The thread's own decimal context is never used: it rounds to 28 digits.

Rounding is for answers only, and is done once, here, in integer arithmetic: half up (a half
goes up: 8.125 -> 8.13) for scores and distances, up for what a driver lacks of a threshold.
Figures are never negative, so "half up" and "half away from zero" agree.
"""

from __future__ import annotations

from decimal import (
    ROUND_CEILING,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

DIGITS = 1_000
"""The precision of `EXACT`, in significant digits. A double's shortest decimal has at most 17
significant digits, none below 10^-324 (the smallest positive double is 5e-324), so a score
times a distance has none below 10^-648; the bounds keep a trip's distance within 10^4 km and
its scores within 10, so a product is below 10^5 and a sum of a trillion of them below 10^17.
No figure within the bounds needs more than 665 digits."""

EXACT = Context(
    prec=DIGITS,
    Emin=-999_999,
    Emax=999_999,
    traps=[Inexact, InvalidOperation, DivisionByZero, Overflow],
)
"""The context of every operation on figures: an inexact one raises `decimal.Inexact`."""

ZERO = Decimal(0)

add = EXACT.add
subtract = EXACT.subtract
multiply = EXACT.multiply


def exact(value: float) -> Decimal:
    """The decimal a producer's double stands for: the shortest that reads back as it.

    Remembered for the next conversion of the same double (scores repeat: producers send a
    few hundred distinct ones), since `repr` is the costly part of folding a trip."""
    found = _DECIMALS.get(value)
    if found is None:
        found = Decimal(repr(value))
        if len(_DECIMALS) >= REMEMBERED:
            _DECIMALS.clear()
        _DECIMALS[value] = found
    return found


REMEMBERED = 65_536
"""Doubles whose decimal `exact` remembers at most (a few MiB); beyond, it starts again."""
_DECIMALS: dict[float, Decimal] = {}


def half_up(value: Decimal, places: int) -> int:
    """`value` in units of 10^-places, rounded half up: `half_up(Decimal("8.125"), 2)` is 813
    (hundredths), `half_up(Decimal("12.3455"), 3)` 12346 (metres of kilometres)."""
    return int(value.scaleb(places, EXACT).to_integral_value(ROUND_HALF_UP))


def rounded_up(value: Decimal, places: int) -> int:
    """`value` in units of 10^-places, rounded up: what is still missing, however little."""
    return int(value.scaleb(places, EXACT).to_integral_value(ROUND_CEILING))


def ratio_half_up(numerator: Decimal, denominator: Decimal, places: int) -> int:
    """`numerator / denominator` in units of 10^-places, rounded half up, exactly (a mean:
    a quotient of decimals is in general no decimal, so it is worked out in integers).
    `denominator` is positive."""
    top, top_scale = numerator.as_integer_ratio()
    bottom, bottom_scale = denominator.as_integer_ratio()
    # numerator / denominator = (top * bottom_scale) / (top_scale * bottom)
    unit: int = 10**places
    dividend = top * bottom_scale * unit
    divisor = top_scale * bottom
    return (2 * dividend + divisor) // (2 * divisor)
