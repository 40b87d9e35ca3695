"""Periods a protocol's rules are evaluated for: a calendar month (``2025-03``) or year (``2025``).

Benefit law is stated per period: a monthly allotment, a yearly credit, amounts that change on the
first day of a fiscal year. A decision, a test case and a simulation each name the period they are for;
without one it is the period that contains their instant (``as_of``, the effective time), read in that
instant's own offset, because "March" means the March of the place the law speaks of.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from hms.errors import BadInput

UNITS = ("month", "year")
_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")
_YEAR = re.compile(r"^([0-9]{4})$")


@dataclass(frozen=True, order=True)
class Period:
    """[start, end) of whole days; ``label`` is how users write it (``2025-03``, ``2025``)."""

    start: date
    end: date
    unit: str

    @property
    def label(self) -> str:
        return f"{self.start.year:04d}-{self.start.month:02d}" if self.unit == "month" else f"{self.start.year:04d}"

    def months(self) -> list[Period]:
        """The months of the period, in order (a month is its own only month)."""
        if self.unit == "month":
            return [self]
        return [month(self.start.year, m) for m in range(1, 13)]

    def __str__(self) -> str:
        return self.label


def month(year: int, m: int) -> Period:
    end = date(year + 1, 1, 1) if m == 12 else date(year, m + 1, 1)
    return Period(date(year, m, 1), end, "month")


def year(y: int) -> Period:
    return Period(date(y, 1, 1), date(y + 1, 1, 1), "year")


def parse(text: object, unit: str, *, where: str) -> Period:
    """``2025-03`` for a monthly protocol, ``2025`` for a yearly one; anything else is a ``BadInput``."""
    if not isinstance(text, str):
        raise BadInput(f"a period is a string ({_example(unit)}), got {type(text).__name__}", where=where)
    if unit == "month" and (m := _MONTH.match(text)):
        return month(int(m.group(1)), int(m.group(2)))
    if unit == "year" and (m := _YEAR.match(text)):
        return year(int(m.group(1)))
    shown = text if len(text) <= 40 else text[:40] + "…"
    raise BadInput(f"period {shown!r} is not a {unit} ({_example(unit)})", where=where)


def containing(at: datetime, unit: str) -> Period:
    """The period that holds the instant ``at`` (in its own offset)."""
    return month(at.year, at.month) if unit == "month" else year(at.year)


def _example(unit: str) -> str:
    return "e.g. 2025-03" if unit == "month" else "e.g. 2025"
