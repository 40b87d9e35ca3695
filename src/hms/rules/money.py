"""Legal rounding: the rounding a statute names, to the unit it names, in decimal.

Benefit law says "rounded to the nearest cent, half a cent up" or "rounded down to
the next lower multiple of $10". Binary floats cannot say that: ``1.005`` is stored
as 1.00499999999999989…, so ``round(1.005, 2)`` gives 1.0. Every function here
rounds the *decimal the user wrote* — the shortest decimal that reads back as the
same float (``repr``: 1.005 is 1.005) — exactly, then returns the float nearest
that exact decimal result.

Modes (all sign-symmetric: a negative amount rounds like its magnitude, then takes
its sign back, so −2.5 half-up is −3):

* ``round_half_up``   — nearest; a tie goes away from zero (2.5 → 3, −2.5 → −3)
* ``round_half_down`` — nearest; a tie goes toward zero (2.5 → 2, −2.5 → −2)
* ``round_half_even`` — nearest; a tie goes to the even multiple (2.5 → 2, 3.5 → 4)
* ``round_up``        — away from zero to the next multiple (2.01 → 3, −2.01 → −3)
* ``round_down``      — toward zero, i.e. truncate (2.99 → 2, −2.99 → −2)

The unit is a literal: 0.01 (cent), 1 (dollar), 10 (ten dollars), 0.05, 50, …

Two implementations, held to each other by a property test
(tests/unit/test_legal_rounding.py): :func:`round_value` is the reference, in
``decimal`` with every inexact operation trapped; :func:`round_array` is the
vectorized one for simulations. It needs no decimal arithmetic on the fast path:
the exact tie ``(k + ½)·unit`` (or multiple ``m·unit``) has at most 15 significant
digits, so the float nearest it is computed exactly (an integer numerator over
``2·10^e``, one correctly rounded division), and since distinct decimals of at
most 15 digits read as distinct floats and rounding to float is monotonic,
comparing the input float with that float says exactly whether the decimal is
below, on or above the tie. Magnitudes beyond that range go through the
reference per value.
"""

from __future__ import annotations

import decimal
import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

MODES = ("round_half_up", "round_half_down", "round_half_even", "round_up", "round_down")
UNIT_MIN, UNIT_MAX, UNIT_DIGITS = Decimal("0.000001"), Decimal("1000000"), 6
# The fast path's tie and multiple must have at most 15 significant digits.
_FAST_LIMIT = 10**13

# Enough digits for any float over the smallest unit (1e308 / 1e-6), so nothing is ever rounded inside.
_CTX = decimal.Context(prec=400, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])


@dataclass(frozen=True)
class Unit:
    """A rounding unit as an exact fraction ``num / den`` (den a power of ten)."""

    decimal: Decimal
    num: int
    den: int


def unit_of(value: float) -> Unit:
    """The unit a rule wrote (``0.01``, ``1``, ``10``); ``ValueError`` says what is wrong with it."""
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"the rounding unit must be a positive number (0.01 cent, 1 dollar, 10), got {value!r}")
    d = Decimal(repr(float(value))).normalize()
    if not UNIT_MIN <= d <= UNIT_MAX or len(d.as_tuple().digits) > UNIT_DIGITS:
        raise ValueError(
            f"the rounding unit must lie between {UNIT_MIN} and {UNIT_MAX} with at most {UNIT_DIGITS} digits,"
            f" got {value!r}"
        )
    sign, digits, exp = d.as_tuple()
    mantissa = int("".join(map(str, digits)))
    assert isinstance(exp, int) and not sign
    if exp >= 0:
        return Unit(d, mantissa * 10**exp, 1)
    return Unit(d, mantissa, 10**-exp)


def round_value(mode: str, x: float, unit: Unit) -> float:
    """Round ``x`` (read as its shortest decimal) to a multiple of ``unit``; the reference implementation."""
    if not math.isfinite(x):
        return x  # the rule's result check reports it (overflow), in both backends
    d = Decimal(repr(abs(x)))
    q, r = _CTX.divmod(d, unit.decimal)  # exact: q = floor(|x| / unit), 0 <= r < unit
    n = int(q)
    if mode == "round_down":
        pass
    elif mode == "round_up":
        n += r > 0
    else:
        c = _CTX.compare(_CTX.multiply(r, 2), unit.decimal)
        if c > 0 or (c == 0 and (mode == "round_half_up" or (mode == "round_half_even" and n % 2))):
            n += 1
    return math.copysign(float(_CTX.multiply(Decimal(n), unit.decimal)), x)


def round_array(mode: str, x: np.ndarray, unit: Unit) -> np.ndarray:
    """:func:`round_value` over an array, vectorized (exactly equal, value by value)."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    p, q = float(unit.num), float(unit.den)
    with np.errstate(all="ignore"):
        y = a * q / p  # |x| / unit, within a few ulps: only used to pick a candidate
        fast = np.isfinite(y) & (a * q < _FAST_LIMIT)
        y = np.where(fast, y, 0.0)
        if mode in ("round_up", "round_down"):
            m = np.rint(y)
            on = (m * p) / q  # the float nearest the exact multiple m·unit
            # below the multiple: the one under it (down) or it (up); above: it (down) or the next (up)
            n = np.where(a < on, m - 1, m) if mode == "round_down" else np.where(a > on, m + 1, m)
        else:
            k = np.floor(y)
            tie = ((2 * k + 1) * p) / (2 * q)  # the float nearest the exact tie (k + ½)·unit
            if mode == "round_half_up":
                up = a >= tie
            elif mode == "round_half_down":
                up = a > tie
            else:
                up = (a > tie) | ((a == tie) & (np.floor(k * 0.5) * 2 != k))  # a tie goes to the even one
            n = k + up
        out = np.copysign((n * p) / q, x)
    slow = ~fast
    if slow.any():
        out[slow] = [round_value(mode, float(v), unit) for v in x[slow]]
    return out


__all__ = ["MODES", "Unit", "round_array", "round_value", "unit_of"]
