"""Vectorized backend for entity protocols: a group table, a person table, segment reductions.

Persons are sorted (stably) by the row of their group, so each household's members are one
contiguous *segment* in the order given. Projection is ``values[member_of]``; aggregation is
a segment reduction — ``np.bincount`` with weights for sums and counts (it adds each
segment's values left to right from 0.0, as the per-record backend does), ``reduceat`` for
``min``/``max`` — never a Python loop per household. Failures inside member expressions are
found on person rows and reported on the household's row with the first failing member,
exactly as per-record evaluation meets them (hms.rules.entity_record).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hms.rules import ir, vector
from hms.rules.vector import Failure, Mask


class Segments:
    """Members grouped by household row: ``member_of`` sorted, every household non-empty."""

    def __init__(self, member_of: np.ndarray, n: int) -> None:
        self.member_of = member_of
        self.n = n
        self.m = len(member_of)
        self.counts = np.bincount(member_of, minlength=n)
        self.starts = np.cumsum(self.counts) - self.counts

    def project(self, values: Any) -> Any:
        """A group value for each member (scalars stay scalars)."""
        return np.asarray(values)[self.member_of] if np.ndim(values) else values

    def members(self, values: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(values), (self.m,))

    def reduce(self, fn: str, values: Any) -> np.ndarray:
        if fn == "sum":
            weights = self.members(values).astype(np.float64)
            return np.bincount(self.member_of, weights=weights, minlength=self.n)
        if self.n == 0:
            return np.zeros(0, dtype=bool if fn in ("any", "all") else np.float64)
        # Every household has a member, so each segment [starts[i], starts[i + 1]) is non-empty.
        if fn in ("count", "any", "all"):
            x = np.ascontiguousarray(self.members(values), dtype=bool)
            if fn == "any":
                return np.logical_or.reduceat(x, self.starts)
            if fn == "all":
                return np.logical_and.reduceat(x, self.starts)
            return np.add.reduceat(x.view(np.uint8), self.starts, dtype=np.int64).astype(np.float64)
        f = np.minimum if fn == "min" else np.maximum
        return f.reduceat(np.ascontiguousarray(self.members(values), dtype=np.float64), self.starts)

    def any_member(self, bad: np.ndarray) -> np.ndarray:
        return np.bincount(self.member_of, weights=bad.astype(np.float64), minlength=self.n) > 0

    def first_member(self, bad: np.ndarray, row: int) -> int:
        start = int(self.starts[row])
        return start + int(np.argmax(bad[start : start + int(self.counts[row])]))


def member_failure(rule: str, failures: list[Failure], seg: Segments) -> Failure:
    """Failures on person rows as one failure on household rows.

    Per record, a household's members are evaluated one after the other, each through every
    site; so the reported failure is the household's first failing member and, for it, the
    earliest site.
    """
    bads = [np.broadcast_to(f.bad, (seg.m,)) for f in failures]
    bad = np.logical_or.reduce(bads) if len(bads) > 1 else bads[0]

    def message(row: int) -> str:
        p = seg.first_member(bad, row)
        f = next(f for f, b in zip(failures, bads, strict=True) if b[p])
        return f"{f.text(p)} (member {p - int(seg.starts[row])})"

    return Failure(rule, seg.any_member(bad), message)


class MemberValues(dict):
    """Person columns; a group value read by a member expression is projected on first use."""

    def __init__(self, columns: Mapping[str, Any], group: Mapping[str, Any], seg: Segments) -> None:
        super().__init__(columns)
        self.group = group
        self.seg = seg

    def __missing__(self, key: str) -> Any:
        value = self.seg.project(self.group[key])
        self[key] = value
        return value


class GroupEvaluator(vector.Evaluator):
    """The flat evaluator over household rows, plus aggregations over the members."""

    def __init__(
        self,
        values: dict[str, Any],
        members: MemberValues,
        params: Mapping[str, Any],
        tables: Mapping[str, vector.Table],
        seg: Segments,
    ) -> None:
        super().__init__(values, params, tables, seg.n)
        self.members = members
        self.seg = seg

    def ev(self, node: ir.Node, mask: Mask, track: bool) -> Any:
        if isinstance(node, ir.Aggregate):
            sub = self.member_evaluator()
            x = sub.ev(node.arg, None if mask is None else mask[self.seg.member_of], track)
            if sub.failures:
                self.failures.append(member_failure(self.rule, sub.failures, self.seg))
            return self.seg.reduce(node.func, x)
        return super().ev(node, mask, track)

    def member_evaluator(self) -> vector.Evaluator:
        sub = vector.Evaluator(self.members, self.p, self.t, self.seg.m)
        sub.rule = self.rule
        return sub


@dataclass(frozen=True)
class Grouped:
    """Rule values of a vectorized entity evaluation: group rules per household, person rules per person."""

    group: dict[str, np.ndarray]
    person: dict[str, np.ndarray]


_DTYPE = {ir.NUM: np.float64, ir.BOOL: np.bool_, ir.STR: np.str_}


def evaluate(
    rules: list[ir.Rule],
    group_of_rule: Mapping[str, bool],
    group_columns: dict[str, Any],
    person_columns: dict[str, Any],
    seg: Segments,
    params: Mapping[str, Any],
    tables: Mapping[str, vector.Table],
) -> tuple[Grouped, list[Failure], dict[str, Any]]:
    """Every rule over sorted persons; failures are on household rows (see vector.first_failure)."""
    values = dict(group_columns)
    members = MemberValues(person_columns, values, seg)
    ev = GroupEvaluator(values, members, params, tables, seg)
    group_out, person_out = {}, {}
    for r in rules:
        ev.rule = r.name
        if group_of_rule[r.name]:
            with np.errstate(all="ignore"):
                out = ev.ev(r.expr, None, r.can_fail)
            out = np.broadcast_to(np.asarray(out, dtype=_DTYPE[r.expr.type]), (seg.n,))
            if r.expr.type == ir.NUM:
                ev.check(np.isfinite(out), None, "result is not a finite number (overflow)")
            values[r.name] = group_out[r.name] = out
        else:
            sub = ev.member_evaluator()
            with np.errstate(all="ignore"):
                out = sub.ev(r.expr, None, r.can_fail)
            out = np.broadcast_to(np.asarray(out, dtype=_DTYPE[r.expr.type]), (seg.m,))
            if r.expr.type == ir.NUM:
                sub.check(np.isfinite(out), None, "result is not a finite number (overflow)")
            if sub.failures:
                ev.failures.append(member_failure(r.name, sub.failures, seg))
            members[r.name] = person_out[r.name] = out
    return Grouped(group_out, person_out), ev.failures, values


__all__ = ["Grouped", "Segments", "evaluate", "member_failure"]
