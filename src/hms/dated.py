"""Dated parameters: amounts that change on dates, and the rules evaluated for a period.

Legal parameters carry dated values and their references (a standard deduction per fiscal year, a
poverty guideline per calendar year), as OpenFisca's parameter files do:

    standard_deduction:
      values:
        - {from: 2023-10-01, value: 198, reference: "USDA FNS, SNAP FY2024 COLA"}
        - {from: 2024-10-01, value: 204, reference: "USDA FNS, SNAP FY2025 COLA"}

A protocol with dated parameters states its ``period: {unit: month | year}``. Evaluating for a period
takes each parameter's value in force on the period's first day. A value that changes inside the period
(a fiscal year starting in October, inside a calendar year) is what ``period.straddle`` says: ``error``
(the default) refuses naming the parameter, the date and the rules that read it; ``sum_months``
evaluates each month with its own values and sums the numbers (a boolean or text output must then be
the same in every month, else an error naming the rule). A period before a parameter's first value is
an error naming the parameter and the period — never a silent fallback to a later amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from hms.errors import BadInput, EvaluationError
from hms.periods import Period
from hms.rules.references import with_reference


@dataclass(frozen=True)
class DatedValue:
    start: date
    value: Any
    reference: str | None = None


@dataclass(frozen=True)
class DatedParameter:
    """One parameter's values in date order; ``value_at`` is the one in force on a day."""

    name: str
    values: tuple[DatedValue, ...]

    def value_at(self, day: date, period: Period) -> DatedValue:
        current = None
        for v in self.values:
            if v.start <= day:
                current = v
        if current is None:
            raise BadInput(
                f"parameter {self.name!r} has no value for period {period} (its first value is from "
                f"{self.values[0].start.isoformat()})",
                where=f"parameters.{self.name}",
            )
        return current

    def changes_within(self, period: Period) -> list[date]:
        return [v.start for v in self.values if period.start < v.start < period.end]


def is_dated(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("values"), list)


def parse(parameters: Mapping[str, Any], where: Any) -> dict[str, DatedParameter]:
    """The dated parameters of a protocol, checked: dates valid and increasing, one shape and type throughout.

    ``where(path)`` turns a path inside ``parameters`` into "file:line" for errors.
    """
    out: dict[str, DatedParameter] = {}
    for name, value in parameters.items():
        if not is_dated(value):
            continue
        items: list[DatedValue] = []
        for i, item in enumerate(value["values"]):
            try:
                start = date.fromisoformat(item["from"])
            except ValueError:
                raise BadInput(
                    f"parameter {name!r}: {item['from']!r} is not a date (YYYY-MM-DD)",
                    where=where((name, "values", i, "from")),
                ) from None
            if items and start <= items[-1].start:
                raise BadInput(
                    f"parameter {name!r}: values must be in date order, each from a later date "
                    f"({start.isoformat()} after {items[-1].start.isoformat()})",
                    where=where((name, "values", i, "from")),
                )
            if items and _shape(item["value"]) != _shape(items[0].value):
                raise BadInput(
                    f"parameter {name!r}: every dated value must have the same shape and type as the first "
                    f"({_shape(items[0].value)}), got {_shape(item['value'])}",
                    where=where((name, "values", i, "value")),
                )
            items.append(DatedValue(start, item["value"], item.get("reference")))
        out[name] = DatedParameter(name, tuple(items))
    return out


def _shape(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string"


def values_for(parameters: Mapping[str, Any], dated: Mapping[str, DatedParameter], period: Period, day: date
               ) -> dict[str, Any]:
    """Every parameter's value in force on ``day`` (of ``period``, named in errors), with that value's reference
    (hms.rules.references: the rules see the value, an explanation cites the reference)."""
    out = {}
    for name, value in parameters.items():
        if name in dated:
            v = dated[name].value_at(day, period)
            value = with_reference(v.value, v.reference)
        out[name] = value
    return out


def changes_within(dated: Mapping[str, DatedParameter], period: Period) -> list[tuple[str, date]]:
    """(parameter, date) of every value that starts strictly inside ``period``."""
    return sorted(((name, d) for name, p in dated.items() for d in p.changes_within(period)), key=lambda x: x[1])


def combine(results: list[dict[str, Any]], period: Period | None = None) -> dict[str, Any]:
    """One period's values from its months' (``straddle: sum_months``): numbers added month by month, in
    order (the same float operations in both backends), booleans and text the same in every month.

    Works on one record's values (scalars, a member rule's lists) and on columns (NumPy arrays).
    """
    if len(results) == 1:
        return results[0]
    out: dict[str, Any] = {}
    for key in results[0]:
        values = [r[key] for r in results]
        out[key] = _combine_one(key, values, period)
    return out


def _combine_one(rule: str, values: list[Any], period: Period | None) -> Any:
    first = values[0]
    if isinstance(first, list):
        return [_combine_one(rule, list(column), period) for column in zip(*values, strict=True)]
    if isinstance(first, np.ndarray):
        if first.dtype.kind == "f":
            total = first.copy()
            for v in values[1:]:
                total = total + v
            return total
        same = np.ones(len(first), dtype=bool)
        for v in values[1:]:
            same &= v == first
        if not same.all():
            row = int(np.argmin(same))
            raise EvaluationError(_differs(rule, period), rule=rule, row=row)
        return first
    if isinstance(first, float) and not isinstance(first, bool):
        total = first
        for v in values[1:]:
            total = total + v
        return total
    if any(v != first for v in values[1:]):
        raise EvaluationError(_differs(rule, period), rule=rule)
    return first


def _differs(rule: str, period: Period | None) -> str:
    within = f" of {period}" if period is not None else ""
    return f"rule {rule!r} is not the same in every month{within}; only numbers are summed over months"
