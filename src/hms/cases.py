"""Run a protocol's test cases through both rule backends.

A case passes only when the per-record backend (what the decision service runs)
and the vectorized backend (what the simulation runs) both give the expected
values — so a sample that passes here is answered the same way in production
and in the budget gate.

Cases are written the way published microsimulation test suites write them: a
case may carry its own tolerance (``tolerance: {absolute: 5}``), its own parameter
values (``parameters: {standard_deduction: …}``, "with the FY2021 deductions") and
pinned intermediate values (``pin: {countable_income: 1200}``). Every case gets a
result of its own: one case whose rules fail does not fail the others, in either
backend.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hms.dated import combine
from hms.errors import EvaluationError
from hms.rules import SubgroupTable

if TYPE_CHECKING:
    from hms.periods import Period
    from hms.protocol import Protocol
    from hms.rules import RuleSet

# Without a tolerance of its own, an expected amount is compared exactly up to float64 noise on the cent.
ABS_TOL = 1e-9


@dataclass(frozen=True)
class Tolerance:
    """How far a number may be from the expected one: within ``absolute`` or within ``relative`` of it."""

    absolute: float = ABS_TOL
    relative: float = 0.0

    @classmethod
    def of(cls, case: Mapping[str, Any]) -> Tolerance:
        t = case.get("tolerance") or {}
        return cls(float(t.get("absolute", ABS_TOL)), float(t.get("relative", 0.0)))

    def describe(self) -> str:
        parts = [f"±{_show(self.absolute)}"] if self.absolute != ABS_TOL else []
        parts += [f"±{self.relative:.4%}"] if self.relative else []
        return " or ".join(parts)


EXACT = Tolerance()


@dataclass
class CaseResult:
    name: str
    ok: bool
    mismatches: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"  {'✅' if self.ok else '❌'} {self.name}" + ("" if self.ok else ": " + "; ".join(self.mismatches))


def same_value(want: Any, got: Any, tolerance: Tolerance = EXACT) -> bool:
    if isinstance(want, list):  # a rule about each member: one value per member, in order
        if isinstance(got, np.ndarray):
            got = list(got)
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(same_value(w, g, tolerance) for w, g in zip(want, got, strict=True))
        )
    if isinstance(want, bool) or isinstance(got, bool | np.bool_):
        return isinstance(got, bool | np.bool_) and bool(got) == want
    if isinstance(want, int | float):
        # JSON answers carry whole numbers as integers (the decision service prints 4000, not 4000.0).
        numeric = isinstance(got, int | float | np.integer | np.floating)
        return numeric and math.isclose(float(got), want, rel_tol=tolerance.relative, abs_tol=tolerance.absolute)
    return got == want


def own_rules(case: Mapping[str, Any]) -> bool:
    """Whether the case runs other rules than the protocol's (parameters replaced or rules pinned).

    Such a case proves the formula, not the law in force; the decision service cannot be asked it.
    """
    return bool(case.get("parameters")) or bool(case.get("pin"))


def case_ruleset(ruleset: RuleSet, case: Mapping[str, Any]) -> RuleSet:
    """The rules a case runs: the protocol's, or a copy with its parameters and pins."""
    if not own_rules(case):
        return ruleset
    return ruleset.with_case(case.get("parameters") or {}, case.get("pin") or {})


def _show(x: Any) -> str:
    if isinstance(x, list | np.ndarray):
        return "[" + ", ".join(_show(v) for v in x) + "]"
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return repr(x)


def _vectorized(rs: RuleSet, records: list[Any]) -> list[dict[str, Any] | str]:
    """Each record's values from the vectorized backend, or the error of that record alone.

    A batch evaluation stops at the first failing row; then each record is evaluated on its own so the
    other cases still get the vectorized backend's answer.
    """
    run = _run_flat if rs.model is None else _run_households
    try:
        return list(run(rs, records))
    except EvaluationError:
        if len(records) == 1:
            raise
    results: list[dict[str, Any] | str] = []
    for r in records:
        try:
            results.append(run(rs, [r])[0])
        except EvaluationError as e:
            results.append(str(e))
    return results


def _run_flat(rs: RuleSet, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    columns = {name: np.asarray([r[name] for r in batch]) for name in rs.inputs}
    out = rs.evaluate_columns(columns, validated=True, n=len(batch))
    return [{k: v[i] for k, v in out.items()} for i in range(len(batch))]


def _run_households(rs: RuleSet, households: list[Any]) -> list[dict[str, Any]]:
    """Entity protocols: the batch as a household table, a person table and a table per sub-group entity;
    person and sub-group rules as lists (member order; sub-groups in order of first appearance)."""
    sizes = [len(h.members) for h in households]
    starts = np.cumsum([0, *sizes])
    group = {name: np.asarray([h.group[name] for h in households]) for name in rs.group_specs()}
    person = {name: np.asarray([m[name] for h in households for m in h.members]) for name in rs.person_specs()}
    member_of = np.repeat(np.arange(len(households)), sizes)
    tables, sub_starts = {}, {}
    for g, specs in rs.sub_specs().items():
        rows = [(i, sg) for i, h in enumerate(households) for sg in h.subs.get(g, ())]
        of_person = np.zeros(int(starts[-1]), dtype=np.int64)
        for j, (i, sg) in enumerate(rows):
            of_person[[starts[i] + k for k in sg.members]] = j
        columns = {name: np.asarray([sg.values[name] for _, sg in rows]) for name in specs}
        ids = np.asarray([sg.id for _, sg in rows], dtype=object)
        tables[g] = SubgroupTable(columns, of_person, ids)
        sub_starts[g] = np.cumsum([0, *(len(h.subs.get(g, ())) for h in households)])
    out = rs.evaluate_groups(group, person, member_of, n=len(households), subgroups=tables)
    results = []
    for i in range(len(households)):
        values = {k: v[i] for k, v in out.group.items()}
        values |= {k: list(v[starts[i] : starts[i + 1]]) for k, v in out.person.items()}
        for g, cols in out.sub.items():
            a, b = sub_starts[g][i], sub_starts[g][i + 1]
            values |= {k: list(v[a:b]) for k, v in cols.items()}
        results.append(values)
    return results


def run_cases(protocol: Protocol) -> list[CaseResult]:
    cases = protocol.tests
    groups: dict[str, list[int]] = {}
    for i, case in enumerate(cases):
        key = json.dumps([case.get("parameters") or {}, case.get("pin") or {}, case.get("period")], sort_keys=True)
        groups.setdefault(key, []).append(i)
    results: list[CaseResult | None] = [None] * len(cases)
    for indexes in groups.values():
        first = cases[indexes[0]]
        period = protocol.case_period(first)
        rulesets = [case_ruleset(rs, first) for _, rs in protocol.plan(period)]  # one per month when summed
        records = [rulesets[0].coerce_record(cases[i]["input"]) for i in indexes]
        per_month = []
        for rs in rulesets:
            try:
                per_month.append(_vectorized(rs, records))
            except EvaluationError as e:
                per_month.append([str(e)])
        for k, (i, rec) in enumerate(zip(indexes, records, strict=True)):
            vector = _months_combined([m[k] for m in per_month], period)
            results[i] = _judge(cases[i], rulesets, rec, vector, period)
    return [r for r in results if r is not None]


def _months_combined(values: list[dict[str, Any] | str], period: Period | None) -> dict[str, Any] | str:
    failed = next((v for v in values if isinstance(v, str)), None)
    if failed is not None:
        return failed
    try:
        return combine([v for v in values if not isinstance(v, str)], period)
    except EvaluationError as e:
        return str(e)


def _judge(
    case: Mapping[str, Any], rulesets: list[RuleSet], rec: Any, vector: dict[str, Any] | str, period: Period | None
) -> CaseResult:
    res = CaseResult(case["name"], True)
    tol = Tolerance.of(case)
    within = f" (tolerance {tol.describe()})" if tol != EXACT else ""
    try:
        got = combine([rs.evaluate(rec, validated=True) for rs in rulesets], period)
    except EvaluationError as e:
        return CaseResult(case["name"], False, [f"error: {e}"])
    for key, want in case["expect"].items():
        if not same_value(want, got[key], tol):
            res.ok = False
            res.mismatches.append(f"{key}: expected {_show(want)}, got {_show(got[key])}{within}")
        elif isinstance(vector, dict) and not same_value(want, vector[key], tol):
            res.ok = False
            res.mismatches.append(
                f"{key}: vectorized backend gave {_show(vector[key])}, per-record {_show(got[key])}"
            )
    if isinstance(vector, str):
        res.ok = False
        res.mismatches.append(f"vectorized backend failed: {vector}")
    return res
