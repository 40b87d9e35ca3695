"""Run a protocol's test cases through both rule backends.

A case passes only when the per-record backend (what the decision service runs)
and the vectorized backend (what the simulation runs) both give the expected
values — so a sample that passes here is answered the same way in production
and in the budget gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hms.errors import EvaluationError
from hms.protocol import Protocol

# Expected amounts are compared exactly up to float64 noise on the cent: 1e-9.
ABS_TOL = 1e-9


@dataclass
class CaseResult:
    name: str
    ok: bool
    mismatches: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"  {'✅' if self.ok else '❌'} {self.name}" + ("" if self.ok else ": " + "; ".join(self.mismatches))


def same_value(want: Any, got: Any) -> bool:
    if isinstance(want, list):  # a rule about each member: one value per member, in order
        if isinstance(got, np.ndarray):
            got = list(got)
        return isinstance(got, list) and len(got) == len(want) and all(map(same_value, want, got))
    if isinstance(want, bool) or isinstance(got, bool | np.bool_):
        return isinstance(got, bool | np.bool_) and bool(got) == want
    if isinstance(want, int | float):
        # JSON answers carry whole numbers as integers (the decision service prints 4000, not 4000.0).
        numeric = isinstance(got, int | float | np.integer | np.floating)
        return numeric and math.isclose(float(got), want, rel_tol=0, abs_tol=ABS_TOL)
    return got == want


def _show(x: Any) -> str:
    if isinstance(x, list | np.ndarray):
        return "[" + ", ".join(_show(v) for v in x) + "]"
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return repr(x)


def run_cases(protocol: Protocol) -> list[CaseResult]:
    rs = protocol.ruleset
    if rs.model is not None:
        return _run_household_cases(protocol)
    cases = protocol.tests
    records = [rs.coerce_record(c["input"]) for c in cases]
    vector_out: dict[str, np.ndarray] | None = None
    vector_error: str | None = None
    try:
        columns = {name: np.asarray([r[name] for r in records]) for name in rs.inputs}
        vector_out = rs.evaluate_columns(columns)
    except EvaluationError as e:
        vector_error = str(e)
    results = []
    for i, (case, rec) in enumerate(zip(cases, records, strict=True)):
        res = CaseResult(case["name"], True)
        try:
            got = rs.evaluate(rec, validated=True)
        except EvaluationError as e:
            res.ok = False
            res.mismatches.append(f"error: {e}")
            results.append(res)
            continue
        for key, want in case["expect"].items():
            if not same_value(want, got[key]):
                res.ok = False
                res.mismatches.append(f"{key}: expected {_show(want)}, got {_show(got[key])}")
            elif vector_out is not None and not same_value(want, vector_out[key][i]):
                res.ok = False
                res.mismatches.append(
                    f"{key}: vectorized backend gave {_show(vector_out[key][i])}, per-record {_show(got[key])}"
                )
        if vector_error is not None:
            res.ok = False
            res.mismatches.append(f"vectorized backend failed: {vector_error}")
        results.append(res)
    return results


def _run_household_cases(protocol: Protocol) -> list[CaseResult]:
    """Entity protocols: every case is a household; the vectorized run gets a household and a person table."""
    rs = protocol.ruleset
    model = rs.model
    assert model is not None
    cases = protocol.tests
    households = [rs.coerce_record(c["input"]) for c in cases]
    sizes = [len(h.members) for h in households]
    starts = np.cumsum([0, *sizes])
    group = {name: np.asarray([h.group[name] for h in households]) for name in rs.group_specs()}
    person = {name: np.asarray([m[name] for h in households for m in h.members]) for name in rs.person_specs()}
    member_of = np.repeat(np.arange(len(households)), sizes)
    vector_out = None
    vector_error: str | None = None
    try:
        vector_out = rs.evaluate_groups(group, person, member_of, n=len(households))
    except EvaluationError as e:
        vector_error = str(e)
    results = []
    for i, (case, hh) in enumerate(zip(cases, households, strict=True)):
        res = CaseResult(case["name"], True)
        try:
            got = rs.evaluate(hh, validated=True)
        except EvaluationError as e:
            results.append(CaseResult(case["name"], False, [f"error: {e}"]))
            continue
        for key, want in case["expect"].items():
            if vector_out is None:
                vec = None
            elif rs.entity_of(key) == model.group:
                vec = vector_out.group[key][i]
            else:
                vec = list(vector_out.person[key][starts[i] : starts[i + 1]])
            if not same_value(want, got[key]):
                res.ok = False
                res.mismatches.append(f"{key}: expected {_show(want)}, got {_show(got[key])}")
            elif vector_out is not None and not same_value(want, vec):
                res.ok = False
                res.mismatches.append(f"{key}: vectorized backend gave {_show(vec)}, per-record {_show(got[key])}")
        if vector_error is not None:
            res.ok = False
            res.mismatches.append(f"vectorized backend failed: {vector_error}")
        results.append(res)
    return results
