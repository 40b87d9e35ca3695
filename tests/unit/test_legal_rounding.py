"""Legal rounding (issue 17, item 3): the statute's mode, to the statute's unit, in decimal.

``round`` rounds the binary float half to even, so ``round(1.005, 2)`` is 1.0; the
explicit functions round the decimal that was written, so 1.005 to the cent half-up
is 1.01 — in the per-record backend (decimal) and the vectorized one (exact float
comparisons) alike.
"""

from __future__ import annotations

import decimal
import re
from decimal import ROUND_DOWN, ROUND_HALF_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hms.errors import EvaluationError, RuleError
from hms.rules import RuleSet, money

X = {"x": {"type": "number"}}


def both(expr: str, x: float) -> tuple[float, float]:
    """The rule's value for ``x`` in the per-record and in the vectorized backend."""
    rs = RuleSet(X, {}, {"r": expr}, ["r"])
    return rs.evaluate({"x": x})["r"], float(rs.evaluate_columns({"x": np.array([x])})["r"][0])


def test_half_up_to_the_cent_rounds_the_decimal_written_not_the_binary_float():
    assert both("round_half_up(x, 0.01)", 1.005) == (1.01, 1.01)
    assert both("round(x, 2)", 1.005) == (1.0, 1.0)  # the binary float 1.00499…: why round() is not for money


@pytest.mark.parametrize(
    ("expr", "x", "expected"),
    [
        ("round_half_up(x, 1)", 2.5, 3.0),
        ("round_half_up(x, 1)", -2.5, -3.0),  # away from zero: sign-symmetric
        ("round_half_up(x, 0.01)", 2.675, 2.68),
        ("round_half_down(x, 1)", 2.5, 2.0),
        ("round_half_down(x, 1)", -2.5, -2.0),
        ("round_half_down(x, 0.01)", 1.005, 1.0),
        ("round_half_down(x, 0.01)", 1.0051, 1.01),
        ("round_half_even(x, 1)", 2.5, 2.0),
        ("round_half_even(x, 1)", 3.5, 4.0),
        ("round_half_even(x, 0.01)", 1.005, 1.0),
        ("round_half_even(x, 0.01)", 1.015, 1.02),
        ("round_up(x, 1)", 2.01, 3.0),
        ("round_up(x, 1)", -2.01, -3.0),
        ("round_up(x, 10)", 1201.0, 1210.0),
        ("round_up(x, 0.01)", 0.07, 0.07),  # an exact multiple stays, though 0.07 / 0.01 is 7.000000000000001
        ("round_down(x, 1)", 2.99, 2.0),
        ("round_down(x, 1)", -2.99, -2.0),
        ("round_down(x, 10)", 1209.99, 1200.0),
        ("round_down(x, 0.1)", 0.3, 0.3),  # 0.3 / 0.1 is 2.9999999999999996 in floats
        ("round_half_up(x, 0.05)", 1.025, 1.05),
        ("round_down(x, 50)", 12_349.0, 12_300.0),
    ],
)
def test_each_mode_rounds_as_its_name_says_in_both_backends(expr, x, expected):
    assert both(expr, x) == (expected, expected)


def test_a_negative_amount_rounds_like_its_magnitude():
    for mode in money.MODES:
        for x in (0.5, 1.5, 2.345, 7.0, 0.004):
            assert both(f"{mode}(x, 0.01)", -x) == tuple(-v for v in both(f"{mode}(x, 0.01)", x)), (mode, x)


_STDLIB = {
    "round_half_up": ROUND_HALF_UP,
    "round_half_down": ROUND_HALF_DOWN,
    "round_half_even": ROUND_HALF_EVEN,
    "round_up": ROUND_UP,
    "round_down": ROUND_DOWN,
}
amounts = st.one_of(
    st.floats(-1e15, 1e15, allow_nan=False),
    st.integers(-(10**9), 10**9).map(lambda m: m / 1000),  # mills: a tie at the cent every tenth
    st.integers(-(10**7), 10**7).map(lambda m: m / 2),  # halves: ties at the dollar
    st.integers(-(10**6), 10**6).map(lambda m: m / 100),  # cents: exact multiples
    st.floats(allow_nan=False, allow_infinity=False),  # every magnitude, up to 1.8e308
)


@settings(max_examples=400, deadline=None)
@given(mode=st.sampled_from(money.MODES), x=amounts, places=st.integers(-3, 4))
def test_power_of_ten_units_round_like_the_standard_librarys_decimal_quantize(mode, x, places):
    unit = Decimal(1).scaleb(-places)
    with decimal.localcontext(prec=400):  # room for every float's digits: the standard library's own rounding
        exact = Decimal(repr(x)).quantize(unit, rounding=_STDLIB[mode]) if places >= 0 else _to(x, unit, mode)
    expected = float(exact)
    assert money.round_value(mode, x, money.unit_of(float(unit))) == expected


def _to(x: float, unit: Decimal, mode: str) -> Decimal:
    return (Decimal(repr(x)) / unit).quantize(Decimal(1), rounding=_STDLIB[mode]) * unit


@settings(max_examples=500, deadline=None)
@given(
    mode=st.sampled_from(money.MODES),
    xs=st.lists(amounts, min_size=1, max_size=30),
    unit=st.sampled_from([0.01, 1.0, 10.0, 0.05, 0.5, 50.0, 0.001, 25.0, 0.1, 0.000001, 1_000_000.0, 0.25]),
)
def test_the_vectorized_rounding_equals_the_decimal_reference_value_by_value(mode, xs, unit):
    u = money.unit_of(unit)
    got = money.round_array(mode, np.asarray(xs), u)
    expected = [money.round_value(mode, x, u) for x in xs]
    assert [v.hex() for v in got.tolist()] == [v.hex() for v in expected]  # bit for bit, the sign of zero too


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("round_half_up(x)", "takes 2 arguments, the amount and the unit"),
        ("round_half_up(x, 0.01, 1)", "takes 2 arguments"),
        ("round_up(x, x)", "unit must be a literal number"),
        ("round_down(x, 0)", "must be a positive number"),
        ("round_down(x, -1)", "unit must be a literal number"),
        ("round_half_even(x, 0.0000001)", "between 0.000001 and 1000000"),
        ("round_half_even(x, 1.2345678)", "at most 6 digits"),
        ("round_half_upp(x, 1)", "did you mean 'round_half_up'"),
    ],
)
def test_a_bad_legal_rounding_call_is_refused_at_load_naming_the_rule(expr, says):
    with pytest.raises(RuleError, match=says) as e:
        RuleSet(X, {}, {"benefit": expr}, ["benefit"])
    assert e.value.rule == "benefit"


def test_round_stays_half_to_even_on_the_binary_value_so_recorded_bundles_decide_as_before():
    assert both("round(x)", 2.5) == (2.0, 2.0)
    assert both("round(x)", 0.5) == (0.0, 0.0)


def test_rounding_an_overflowed_amount_is_the_overflow_error_in_both_backends():
    rs = RuleSet(X, {}, {"r": "round_half_up(x * 1e308 * 10, 1)"}, ["r"])
    with pytest.raises(EvaluationError, match="not a finite number"):
        rs.evaluate({"x": 1.0})
    with pytest.raises(EvaluationError, match="not a finite number"):
        rs.evaluate_columns({"x": np.array([0.0, 1.0])})


def test_a_constant_amount_is_rounded_for_every_row():
    rs = RuleSet(X, {}, {"r": "round_half_up(1.005, 0.01) + x"}, ["r"])
    assert rs.evaluate_columns({"x": np.zeros(3)})["r"].tolist() == [1.01, 1.01, 1.01]


def test_every_example_in_the_readmes_rounding_table_is_what_the_function_gives():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Legal rounding") : readme.index("## Populations")]
    examples = re.findall(r"`(round_\w+)\((−?-?[\d.]+), ([\d.]+)\)` = (−?[\d.]+)", section)
    assert len(examples) == 10
    for fn, x, unit, expected in examples:
        value = float(x.replace("−", "-"))
        assert money.round_value(fn, value, money.unit_of(float(unit))) == float(expected.replace("−", "-")), fn
