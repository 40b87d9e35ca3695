"""The budget names what its figures measure: the outcomes fairness is computed on, and the period (issue 17)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from hms import population as P
from hms import protocol
from hms.errors import BadInput
from hms.simulate import simulate
from tests.dated_protocols import data as sample_data

FOUR_HOUSEHOLDS = {
    "household_size": [1, 2, 3, 4],
    "household_income": [1000, 1000, 1000, 10**7],
    "county_fire_declared": [True, True, True, True],
    "race_ethnicity": ["A", "A", "B", "B"],
    "weight": [1, 1, 1, 1],
}


def _protocol(change: Any = None) -> protocol.Protocol:
    d = sample_data(3, offset=timedelta(days=1))
    if change is not None:
        change(d)
    return protocol.from_data(d, "budget-test.yml")


def _two_flags(d: dict[str, Any]) -> None:
    d["rules"]["large_household"] = "household_size >= 3"
    d["outputs"].append("large_household")


def test_two_boolean_outputs_and_none_named_is_refused_at_load_asking_for_budget_eligible() -> None:
    with pytest.raises(BadInput) as e:
        _protocol(_two_flags)
    assert "2 boolean outputs (eligible, large_household)" in e.value.message
    assert "budget.eligible" in e.value.message


def test_the_named_outcome_is_what_eligibility_and_fairness_measure() -> None:
    def named(d: dict[str, Any]) -> None:
        _two_flags(d)
        d["budget"]["eligible"] = "large_household"

    r = simulate(_protocol(named), P.from_columns(FOUR_HOUSEHOLDS))
    assert r.outcome == "large_household" and r.fairness["outcome"] == "large_household"
    assert r.eligible == 2
    assert r.fairness["attributes"]["race_ethnicity"]["rates"] == {"A": 0.0, "B": 1.0}
    # The amount's figures are the amount's: A's two households get 1,000 and 2,000, B's one gets 3,000.
    assert r.fairness["amount_attributes"]["race_ethnicity"]["means"] == {"A": 1500.0, "B": 1500.0}


def test_budget_eligible_naming_a_number_is_refused_naming_the_field() -> None:
    with pytest.raises(BadInput) as e:
        _protocol(lambda d: d["budget"].update(eligible="amount"))
    assert "budget.eligible 'amount' must be a boolean rule" in e.value.message


def test_monthly_amounts_count_twelve_times_against_a_yearly_cap_and_the_figures_say_so() -> None:
    pop = P.from_columns(FOUR_HOUSEHOLDS)
    yearly = simulate(_protocol(), pop)
    monthly = simulate(_protocol(lambda d: d["budget"].update(amount_period="month", period="year")), pop)
    assert yearly.cost_cents == 600_000 and monthly.cost_cents == 12 * 600_000
    assert any("cost $72,000 of cap $1,000,000,000 per year (monthly amounts × 12)" in x for x in monthly.lines())
    assert any("cost $6,000 of cap $1,000,000,000 per year (0.0 %)" in x for x in yearly.lines())
    assert monthly.to_dict()["period"] == "year" and monthly.to_dict()["amount_period"] == "month"


def test_a_yearly_amount_against_a_monthly_cap_is_refused() -> None:
    with pytest.raises(BadInput) as e:
        _protocol(lambda d: d["budget"].update(period="month", amount_period="year"))
    assert "cannot be counted against a monthly cap" in e.value.message


def test_the_report_states_the_period_and_the_mean_amount_by_group() -> None:
    from hms import report

    pop = P.from_columns(FOUR_HOUSEHOLDS)
    r = simulate(_protocol(lambda d: d["budget"].update(amount_period="month")), pop)
    html = report.render(r)
    assert "total cost per year (monthly amounts × 12)" in html
    assert "Mean amount per household by group" in html and "$18,000" in html
