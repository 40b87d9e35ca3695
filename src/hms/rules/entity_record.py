"""Per-record backend for entity protocols: one household (its values and its members) at a time.

The decision service and the test cases run this. A household's group values are written
into every member's values as they are computed (projection), so a person rule reads
``v["rent"]`` like any name; a group rule gets the members as ``M`` and an aggregation
evaluates its expression for each member in order, then reduces. Sums add left to right
from 0.0 and ``min``/``max`` use NumPy's reductions, exactly as the vectorized backend
(hms.rules.entity_vector) does, so both agree bit for bit. A failure inside a member says
which member (``(member 2)``, counting from 0 in the order given).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from hms.errors import BadInput, EvaluationError, Problems
from hms.rules import ir, record
from hms.rules.entities import EntityModel

MAX_MEMBERS = 100


@dataclass(frozen=True)
class SubGroup:
    """One sub-group of a record (a tax unit of a household): its id, input values and member numbers."""

    id: Any  # int or str, as the request gave it
    values: dict[str, Any]
    members: tuple[int, ...]  # indexes into HouseholdRecord.members, in member order


@dataclass(frozen=True)
class HouseholdRecord:
    """A validated household: the group's input values and each member's (numbers as floats).

    ``subs``: each sub-group entity's groups in order of first appearance among the members.
    """

    group: dict[str, Any]
    members: tuple[dict[str, Any], ...]
    subs: Mapping[str, tuple[SubGroup, ...]] = field(default_factory=dict)

    def nested(self, model: EntityModel) -> dict[str, Any]:
        """The request form, for error messages."""
        members = [dict(m) for m in self.members]
        out: dict[str, Any] = {model.group: dict(self.group), model.plural: members}
        for sub, groups in self.subs.items():
            for g in groups:
                for k in g.members:
                    members[k][sub] = g.id
            if model.sub_inputs(sub):
                out[model.plural_of(sub)] = [{"id": g.id, **g.values} for g in groups]
        return out


def label(group_id: Any) -> str:
    """A sub-group id as messages show it (``1`` for 1 and 1.0, ``a`` for "a"): the same in both backends."""
    if isinstance(group_id, np.generic):
        group_id = group_id.item()
    if isinstance(group_id, float) and group_id.is_integer():
        return str(int(group_id))
    return str(group_id)


class _Members(list):
    """Values aggregated over, as messages name them: a household's or a sub-group's members (``member k``,
    ``numbers[k]`` their number in the household), or a household's sub-groups of kind ``kind`` (``tax_unit
    7``, ``ids[k]``). ``subs``: on a household's members, its sub-groups of each kind, for
    ``sum(x, over=tax_units)``. Labels are made only for a message: evaluation pays nothing for them."""

    numbers: tuple[int, ...] = ()
    kind: str = ""
    ids: tuple[Any, ...] = ()
    subs: Mapping[str, _Members] = MappingProxyType({})  # replaced per instance

    def label(self, k: int) -> str:
        if self.kind:
            return f"{self.kind} {label(self.ids[k])}"
        return f"member {self.numbers[k] if self.numbers else k}"


def _aggregate(fn: str, members: Iterable[dict[str, Any]], f: Callable[[dict[str, Any]], Any]) -> Any:
    values = []
    for k, m in enumerate(members):
        try:
            values.append(f(m))
        except record._Fail as e:
            where = members.label(k) if isinstance(members, _Members) else f"member {k}"
            raise record._Fail(f"{e} ({where})") from None
    if fn == "sum":
        acc = 0.0
        for x in values:
            acc += x
        return acc
    if fn == "count":
        return float(sum(1 for x in values if x))
    if fn == "any":
        return any(values)
    if fn == "all":
        return all(values)
    reduce = np.minimum.reduce if fn == "min" else np.maximum.reduce
    return float(reduce(np.asarray(values, dtype=np.float64)))


def compile_rule(rule: ir.Rule, params: Mapping[str, Any], tables: Mapping[str, Any]) -> Callable[[dict, list], Any]:
    """``fn(values, members)``: the flat backend's code and environment, plus the members and ``_aggregate``.

    The environment is taken from the flat backend's compiled function (its globals), so whatever
    helpers or tables record.compile_rule provides, entity rules get too.
    """
    env = dict(record.compile_rule(rule, params, tables).__globals__)
    env["_aggregate"] = _aggregate
    code = compile(f"lambda v, M: {record.source(rule.expr)}", f"<rule {rule.name}>", "eval")
    return eval(code, env)


def coerce_household(
    model: EntityModel,
    group_specs: Mapping[str, Any],
    person_specs: Mapping[str, Any],
    rec: Any,
    coerce_value: Callable[[Any, Any, str], Any],
    where: str = "input",
    problems: Problems | None = None,
    sub_specs: Mapping[str, Mapping[str, Any]] | None = None,
) -> HouseholdRecord:
    """Check ``{household: {...}, members: [{...}, ...]}``; errors name the field (``input.members.1.age``).

    The first problem is raised, unless ``problems`` collects: then each field's problem is added to it and
    the caller raises them together. A wrong shape (not an object, members not a list) still stops at once.
    """
    problems = problems or Problems()
    if isinstance(rec, HouseholdRecord):
        return rec
    shape = f"{{{model.group}: {{…}}, {model.plural}: [{{…}}, …]}}"
    if not isinstance(rec, Mapping):
        raise BadInput(f"input must be an object {shape}", where=where)
    sub_specs = sub_specs or {}
    sub_lists = {model.plural_of(g): g for g in model.subgroups}
    for key in rec:
        if key not in (model.group, model.plural, *sub_lists):
            if key in group_specs:
                hint = f"; {key!r} belongs in {model.group!r}"
            elif key in person_specs:
                hint = f"; {key!r} belongs in each of {model.plural!r}"
            else:
                hint = ""
            problems.add(BadInput(f"unknown field {key!r}: input is {shape}{hint}", where=f"{where}.{key}"))
    if model.group not in rec and group_specs:
        problems.add(BadInput("missing field", where=f"{where}.{model.group}"))
        group: dict[str, Any] = {}
    else:
        group = _fields(
            rec.get(model.group, {}), group_specs, person_specs, coerce_value, f"{where}.{model.group}", problems
        )
    raw = rec.get(model.plural)
    if raw is None:
        problems.add(BadInput("missing field", where=f"{where}.{model.plural}"))
        return HouseholdRecord(group, ())
    if not isinstance(raw, list):
        raise BadInput(
            f"{model.plural} must be a list of objects, one per {model.person}", where=f"{where}.{model.plural}"
        )
    if not raw:
        problems.add(BadInput(f"a {model.group} has at least one member", where=f"{where}.{model.plural}"))
    if len(raw) > MAX_MEMBERS:
        raise BadInput(f"at most {MAX_MEMBERS} members per {model.group}", where=f"{where}.{model.plural}")
    ids: dict[str, list[Any]] = {g: [] for g in model.subgroups}
    members_l = []
    for k, m in enumerate(raw):
        at = f"{where}.{model.plural}.{k}"
        if model.subgroups and isinstance(m, Mapping):
            for g in model.subgroups:
                if g not in m:
                    problems.add(BadInput(f"missing field: the id of this member's {g}", where=f"{at}.{g}"))
                    ids[g].append(None)
                else:
                    ids[g].append(problems.check(_group_id, g, m[g], f"{at}.{g}"))
            m = {key: x for key, x in m.items() if key not in model.subgroups}
        members_l.append(_fields(m, person_specs, group_specs, coerce_value, at, problems))
    members = tuple(members_l)
    subs = {
        g: _subgroups(
            model, g, ids[g], rec.get(model.plural_of(g)), sub_specs.get(g, {}), coerce_value, where, problems
        )
        for g in model.subgroups
    }
    return HouseholdRecord(group, members, subs)


def _group_id(sub: str, value: Any, where: str) -> Any:
    """A sub-group id: an integer or a non-empty string (``tax_unit: 1``)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise BadInput(f"the id of a {sub} must be an integer or a non-empty string, got {value!r}", where=where)
    return value


def _subgroups(
    model: EntityModel,
    sub: str,
    ids: list[Any],
    listed: Any,
    specs: Mapping[str, Any],
    coerce_value: Callable[[Any, Any, str], Any],
    where: str,
    problems: Problems,
) -> tuple[SubGroup, ...]:
    """The sub-groups named by the members, in order of first appearance, with the inputs the record lists."""
    plural = model.plural_of(sub)
    order: dict[Any, list[int]] = {}
    for k, i in enumerate(ids):
        if i is not None:
            order.setdefault(i, []).append(k)
    values: dict[Any, dict[str, Any]] = {i: {} for i in order}
    if listed is None:
        if specs:
            problems.add(BadInput(f"missing field: the {plural} with their inputs", where=f"{where}.{plural}"))
    elif not isinstance(listed, list):
        raise BadInput(f"{plural} must be a list of objects {{id, …inputs}}, one per {sub}", where=f"{where}.{plural}")
    else:
        seen = set()
        for j, item in enumerate(listed):
            at = f"{where}.{plural}.{j}"
            if not isinstance(item, Mapping) or "id" not in item:
                problems.add(BadInput(f"a {sub} is an object with its id and inputs", where=f"{at}.id"))
                continue
            gid = problems.check(_group_id, sub, item["id"], f"{at}.id")
            if gid in seen:
                problems.add(BadInput(f"{sub} {gid!r} is listed twice", where=f"{at}.id"))
            elif gid is not None and gid not in order:
                problems.add(BadInput(f"{sub} {gid!r} has no members (no member names it)", where=f"{at}.id"))
            seen.add(gid)
            rest = {key: x for key, x in item.items() if key != "id"}
            values[gid] = _fields(rest, specs, {}, coerce_value, at, problems)
        if specs:
            for gid, ks in order.items():
                if gid not in seen:
                    problems.add(
                        BadInput(f"no {sub} with id {gid!r} in {plural}", where=f"{where}.{model.plural}.{ks[0]}.{sub}")
                    )
    return tuple(SubGroup(gid, values.get(gid, {}), tuple(ks)) for gid, ks in order.items())


def _fields(
    rec: Any,
    specs: Mapping[str, Any],
    other: Mapping[str, Any],
    coerce_value: Callable[[Any, Any, str], Any],
    where: str,
    problems: Problems,
) -> dict[str, Any]:
    if not isinstance(rec, Mapping):
        problems.add(BadInput("must be an object of field values", where=where))
        return {}
    for key in rec:
        if key not in specs:
            close = difflib.get_close_matches(str(key), list(specs), n=1)
            if key in other:
                hint = "; it is declared for the other entity"
            else:
                hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.add(BadInput(f"unknown field {key!r}{hint}", where=f"{where}.{key}"))
    out = {}
    for name, spec in specs.items():
        if name not in rec:
            problems.add(BadInput("missing field", where=f"{where}.{name}"))
        else:
            out[name] = problems.check(coerce_value, spec, rec[name], f"{where}.{name}")
    return out


def evaluate(
    rules: list[ir.Rule], model: EntityModel, fns: Mapping[str, Callable[[dict, list], Any]], hh: HouseholdRecord
) -> dict[str, Any]:
    """Every rule's value: a scalar for a record rule, a list in member order for a person rule, a list in
    sub-group order (first appearance among the members) for a sub-group rule."""
    g = dict(hh.group)
    members = _Members({**m, **g} for m in hh.members)
    subs: dict[str, list[tuple[SubGroup, dict[str, Any], _Members]]] = {}
    members.subs = {}
    for name, groups in hh.subs.items():
        subs[name] = []
        for sg in groups:
            v = {**sg.values, **g}
            ms = _Members(members[k] for k in sg.members)
            ms.numbers = sg.members
            for m in ms:
                m.update(sg.values)
            subs[name].append((sg, v, ms))
        members.subs[name] = _Members(v for _, v, _ in subs[name])
        members.subs[name].kind, members.subs[name].ids = name, tuple(sg.id for sg in groups)
    out: dict[str, Any] = {}
    for r in rules:
        fn = fns[r.name]
        entity = model.rule_entity[r.name]
        if entity == model.group:
            value = _one(r, fn, g, members, hh, model, "")
            g[r.name] = value
            for m in members:
                m[r.name] = value
            for groups in subs.values():
                for _, v, _ in groups:
                    v[r.name] = value
            out[r.name] = value
        elif entity in subs:
            values = []
            for sg, v, ms in subs[entity]:
                v[r.name] = _one(r, fn, v, ms, hh, model, f" ({entity} {label(sg.id)})")
                for m in ms:
                    m[r.name] = v[r.name]
                values.append(v[r.name])
            out[r.name] = values
        else:
            values = []
            for k, m in enumerate(members):
                m[r.name] = _one(r, fn, m, members, hh, model, f" (member {k})")
                values.append(m[r.name])
            out[r.name] = values
    return out


def _one(r: ir.Rule, fn: Callable, v: dict, members: list, hh: HouseholdRecord, model: EntityModel, who: str) -> Any:
    try:
        value = fn(v, members)
    except record._Fail as e:
        raise EvaluationError(f"{e}{who}", rule=r.name, record=hh.nested(model)) from None
    except (ZeroDivisionError, OverflowError, ValueError) as e:
        raise EvaluationError(f"{e}{who}", rule=r.name, record=hh.nested(model)) from None
    if r.expr.type == ir.NUM and not math.isfinite(value):
        raise EvaluationError(f"result is not a finite number (overflow){who}", rule=r.name, record=hh.nested(model))
    return value


__all__ = ["MAX_MEMBERS", "HouseholdRecord", "SubGroup", "coerce_household", "compile_rule", "evaluate", "label"]
