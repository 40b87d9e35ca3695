"""Vectorized backend for entity protocols: a group table, a person table, segment reductions.

Persons are sorted (stably) by the row of their group, so each household's members are one
contiguous *segment* in the order given. Projection is ``values[member_of]``; aggregation is
a segment reduction — ``np.bincount`` with weights for sums and counts (it adds each
segment's values left to right from 0.0, as the per-record backend does), ``reduceat`` for
``min``/``max`` — never a Python loop per household. Failures inside member expressions are
found on person rows and reported on the household's row with the first failing member,
exactly as per-record evaluation meets them (hms.rules.entity_record).

Sub-groups (a household's tax units) are a second segmentation of the same persons: each
person names its row in the sub-group's table. Their members are not contiguous among
persons sorted by household, so a sub-group's reductions go through one stable permutation
(``Scattered``); within a sub-group the member order stays the household's. A failure in a
sub-group rule is reported on the household's row with its first failing sub-group, in the
order the per-record backend visits them (first appearance among the members). A record rule
aggregating over its sub-groups (``sum(x, over=tax_units)``) evaluates ``x`` on the sub-group's rows
and reduces them per record in that same order (``SubRows``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hms.rules import ir, vector
from hms.rules.entity_record import label
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
        """A group value for each member, in person order (scalars stay scalars)."""
        return np.asarray(values)[self.member_of] if np.ndim(values) else values

    def members(self, values: Any) -> np.ndarray:
        """Person values in segment order (for this class, person order)."""
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
        """Groups with a member for which ``bad`` (person order) holds."""
        return np.bincount(self.member_of, weights=bad.astype(np.float64), minlength=self.n) > 0

    def first_member(self, bad: np.ndarray, row: int) -> int:
        """The person (index in person order) of group ``row`` first in member order with ``bad``."""
        start = int(self.starts[row])
        return start + int(np.argmax(bad[start : start + int(self.counts[row])]))

    def number(self, p: int) -> int:
        """Person ``p``'s member number in its record, as the per-record backend counts it."""
        return p - int(self.starts[self.member_of[p]])


class Scattered(Segments):
    """A sub-group's members: ``group_of`` (person order) need not be sorted; ``member_no`` numbers
    each person within its record.

    The same reductions serve a record's sub-groups (``sum(credit, over=tax_units)``): ``group_of`` is
    then each sub-group row's record row and ``perm`` orders a record's sub-groups as the per-record
    backend visits them (first appearance among the members).
    """

    def __init__(
        self, group_of: np.ndarray, n: int, member_no: np.ndarray | None = None, perm: np.ndarray | None = None
    ) -> None:
        self.perm = np.argsort(group_of, kind="stable") if perm is None else perm
        super().__init__(group_of[self.perm], n)
        self.group_of = group_of
        self.member_no = member_no

    def project(self, values: Any) -> Any:
        return np.asarray(values)[self.group_of] if np.ndim(values) else values

    def members(self, values: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(values), (self.m,))[self.perm]

    def any_member(self, bad: np.ndarray) -> np.ndarray:
        return np.bincount(self.group_of, weights=bad.astype(np.float64), minlength=self.n) > 0

    def first_member(self, bad: np.ndarray, row: int) -> int:
        start = int(self.starts[row])
        k = int(np.argmax(bad[self.perm[start : start + int(self.counts[row])]]))
        return int(self.perm[start + k])

    def number(self, p: int) -> int:
        assert self.member_no is not None, "sub-group rows are not members"
        return int(self.member_no[p])


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
        return f"{f.text(p)} (member {seg.number(p)})"

    return Failure(rule, seg.any_member(bad), message)


@dataclass(frozen=True)
class SubInput:
    """One sub-group entity's table, checked: its input columns, each person's row in it (person order),
    each row's record row, first member (person index) and id (for messages)."""

    columns: dict[str, Any]
    of_person: np.ndarray
    record_of: np.ndarray
    first_person: np.ndarray
    ids: Any


def subgroup_failure(rule: str, entity: str, failures: list[Failure], sub: SubInput, n: int) -> Failure:
    """Failures on sub-group rows as one failure on record rows: a record's first failing sub-group in
    the order the per-record backend visits them (first appearance among its members)."""
    n_sub = len(sub.record_of)
    bads = [np.broadcast_to(f.bad, (n_sub,)) for f in failures]
    bad = np.logical_or.reduce(bads) if len(bads) > 1 else bads[0]

    def message(row: int) -> str:
        rows = np.nonzero(bad & (sub.record_of == row))[0]
        j = int(rows[np.argmin(sub.first_person[rows])])
        f = next(f for f, b in zip(failures, bads, strict=True) if b[j])
        return f"{f.text(j)} ({entity} {label(sub.ids[j])})"

    return Failure(rule, np.bincount(sub.record_of, weights=bad.astype(np.float64), minlength=n) > 0, message)


class MemberValues(dict):
    """Person columns; a record or sub-group value read by a member expression is projected on first use."""

    def __init__(
        self,
        columns: Mapping[str, Any],
        group: Mapping[str, Any],
        seg: Segments,
        subs: tuple[tuple[Mapping[str, Any], Segments], ...] = (),
    ) -> None:
        super().__init__(columns)
        self.group = group
        self.seg = seg
        self.subs = subs

    def __missing__(self, key: str) -> Any:
        if key in self.group:
            value = self.seg.project(self.group[key])
        else:
            values, seg = next((v, s) for v, s in self.subs if key in v)
            value = seg.project(values[key])
        self[key] = value
        return value


class SubValues(dict):
    """A sub-group table's columns; a record value read by a sub-group rule is projected on first use."""

    def __init__(self, columns: Mapping[str, Any], record: Mapping[str, Any], record_of: np.ndarray) -> None:
        super().__init__(columns)
        self.record = record
        self.record_of = record_of

    def __missing__(self, key: str) -> Any:
        x = self.record[key]
        value = np.asarray(x)[self.record_of] if np.ndim(x) else x
        self[key] = value
        return value


@dataclass(frozen=True)
class SubRows:
    """A record's sub-groups of one kind, for a record rule aggregating over them: the sub-group table's
    values (record values projected), its rows segmented by record, and the checked input."""

    values: SubValues
    seg: Scattered
    input: SubInput


def sub_rows(values: SubValues, sub: SubInput, n: int) -> SubRows:
    """Sub-group rows grouped by record row, each record's in first-appearance order (as per record)."""
    perm = np.lexsort((sub.first_person, sub.record_of))
    return SubRows(values, Scattered(sub.record_of, n, perm=perm), sub)


class GroupEvaluator(vector.Evaluator):
    """The flat evaluator over household rows, plus aggregations over the members (and, for the record,
    over its sub-groups: ``subs``)."""

    def __init__(
        self,
        values: dict[str, Any],
        members: MemberValues,
        params: Mapping[str, Any],
        tables: Mapping[str, vector.Table],
        seg: Segments,
        subs: Mapping[str, SubRows] | None = None,
    ) -> None:
        super().__init__(values, params, tables, seg.n)
        self.members = members
        self.seg = seg
        self.subs = subs or {}

    def ev(self, node: ir.Node, mask: Mask, track: bool) -> Any:
        if isinstance(node, ir.Aggregate) and node.over is not None:
            rows = self.subs[node.over]
            sub = vector.Evaluator(rows.values, self.p, self.t, rows.seg.m)
            sub.rule = self.rule
            x = sub.ev(node.arg, None if mask is None else rows.seg.project(mask), track)
            if sub.failures:
                self.failures.append(subgroup_failure(self.rule, node.over, sub.failures, rows.input, self.seg.n))
            return rows.seg.reduce(node.func, x)
        if isinstance(node, ir.Aggregate):
            sub = self.member_evaluator()
            x = sub.ev(node.arg, None if mask is None else self.seg.project(mask), track)
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
    """Rule values of a vectorized entity evaluation: record rules per household, person rules per person,
    sub-group rules per row of each sub-group's table."""

    group: dict[str, np.ndarray]
    person: dict[str, np.ndarray]
    sub: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


_DTYPE = {ir.NUM: np.float64, ir.BOOL: np.bool_, ir.STR: np.str_}


def evaluate(
    rules: list[ir.Rule],
    entity_of: Mapping[str, str],
    group_columns: dict[str, Any],
    person_columns: dict[str, Any],
    seg: Segments,
    params: Mapping[str, Any],
    tables: Mapping[str, vector.Table],
    subs: Mapping[str, SubInput] | None = None,
) -> tuple[Grouped, list[Failure], dict[str, Any]]:
    """Every rule over sorted persons; failures are on household rows (see vector.first_failure).

    ``entity_of``: each rule's entity, ``"group"`` for the record, ``"person"``, or a sub-group's name.
    """
    subs = subs or {}
    values = dict(group_columns)
    member_no = np.arange(seg.m) - seg.starts[seg.member_of] if subs else None
    sub_values = {g: SubValues(s.columns, values, s.record_of) for g, s in subs.items()}
    sub_segs = {g: Scattered(s.of_person, len(s.record_of), member_no) for g, s in subs.items()}
    members = MemberValues(person_columns, values, seg, tuple((sub_values[g], sub_segs[g]) for g in subs))
    rows = {g: sub_rows(sub_values[g], s, seg.n) for g, s in subs.items()}
    ev = GroupEvaluator(values, members, params, tables, seg, rows)
    group_out: dict[str, np.ndarray] = {}
    person_out: dict[str, np.ndarray] = {}
    sub_out: dict[str, dict[str, np.ndarray]] = {g: {} for g in subs}
    for r in rules:
        ev.rule = r.name
        entity = entity_of[r.name]
        if entity == "group":
            with np.errstate(all="ignore"):
                out = ev.ev(r.expr, None, r.can_fail)
            out = np.broadcast_to(np.asarray(out, dtype=_DTYPE[r.expr.type]), (seg.n,))
            if r.expr.type == ir.NUM:
                ev.check(np.isfinite(out), None, "result is not a finite number (overflow)")
            values[r.name] = group_out[r.name] = out
        elif entity in subs:
            sev = GroupEvaluator(sub_values[entity], members, params, tables, sub_segs[entity])
            sev.rule = r.name
            with np.errstate(all="ignore"):
                out = sev.ev(r.expr, None, r.can_fail)
            out = np.broadcast_to(np.asarray(out, dtype=_DTYPE[r.expr.type]), (sev.n,))
            if r.expr.type == ir.NUM:
                sev.check(np.isfinite(out), None, "result is not a finite number (overflow)")
            if sev.failures:
                ev.failures.append(subgroup_failure(r.name, entity, sev.failures, subs[entity], seg.n))
            sub_values[entity][r.name] = sub_out[entity][r.name] = out
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
    return Grouped(group_out, person_out, sub_out), ev.failures, values


__all__ = ["Grouped", "Scattered", "Segments", "SubInput", "SubRows", "evaluate", "member_failure", "subgroup_failure"]
