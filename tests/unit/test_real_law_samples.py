"""The real-law samples (issue 17, item 7): public law with its published figures, and another model's
published test cases as the expected answers (docs/real-law.md).

Each sample packs, every case passes through both backends, the compliance scan finds nothing to deny,
and the SNAP cases' two fiscal-year halves add up to the calendar-year totals PolicyEngine-US asserts.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from hms import bundle, protocol
from hms.cases import case_ruleset, run_cases
from hms.compliance import scan
from tests.unit.compliance_helpers import NOW, SETTINGS

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = {
    "federal-eitc-2026": 48,
    "snap-texas-fy2026": 48,
}


def _load(pid: str) -> protocol.Protocol:
    return protocol.load(ROOT / "include" / "protocols" / f"{pid}.yml")


@pytest.mark.parametrize("pid", sorted(SAMPLES))
def test_the_sample_packs_and_every_published_case_passes_in_both_backends(pid: str) -> None:
    p = _load(pid)
    assert bundle.read_bytes(bundle.build(p)).protocol.data["metadata"]["id"] == pid
    results = run_cases(p)
    assert len(results) == SAMPLES[pid]
    assert [r.line() for r in results if not r.ok] == []
    assert all("[PE " in r.name for r in results), "every case names the published file it came from"


@pytest.mark.parametrize("pid", sorted(SAMPLES))
def test_the_sample_has_nothing_the_compliance_scan_denies(pid: str) -> None:
    result = scan(_load(pid), ["privacy", "ethics", "legal"], settings=SETTINGS, now=NOW)
    assert result.ok, result


def test_the_snap_halves_add_up_to_the_published_calendar_year_totals() -> None:
    """PolicyEngine-US asserts `snap` for a calendar year: 9 months of one fiscal year + 3 of the next."""
    p = _load("snap-texas-fy2026")
    halves: dict[str, list[float]] = defaultdict(list)
    published: dict[str, float] = {}
    for case in p.tests:
        name, annual = re.fullmatch(r"(\w+), .*; annual ([\d.]+)\]", case["name"]).groups()  # type: ignore[union-attr]
        rs = case_ruleset(p.ruleset, case)
        halves[name].append(float(rs.evaluate(rs.coerce_record(case["input"]))["amount"]))
        published[name] = float(annual)
    assert len(published) == 24
    for name, (first_nine, last_three) in halves.items():
        assert 9 * first_nine + 3 * last_three == pytest.approx(published[name], abs=0.1), name


def test_the_eitc_phase_out_reads_the_larger_of_earned_income_and_agi() -> None:
    """26 U.S.C. 32(a)(2)(B): the published case with 12,200 of capital gains is phased out on its AGI."""
    p = _load("federal-eitc-2026")
    case = next(c for c in p.tests if c["name"].startswith("investment income at the 12,200 cap"))
    got = p.ruleset.evaluate(p.ruleset.coerce_record(case["input"]))
    assert got["earned_income"] == 20000 and got["adjusted_gross_income"] == 32200
    assert got["eitc"] == 4260.81
