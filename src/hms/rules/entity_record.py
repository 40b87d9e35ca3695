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
from dataclasses import dataclass
from typing import Any

import numpy as np

from hms.errors import BadInput, EvaluationError, Problems
from hms.rules import ir, record
from hms.rules.entities import EntityModel

MAX_MEMBERS = 100


@dataclass(frozen=True)
class HouseholdRecord:
    """A validated household: the group's input values and each member's (numbers as floats)."""

    group: dict[str, Any]
    members: tuple[dict[str, Any], ...]

    def nested(self, model: EntityModel) -> dict[str, Any]:
        """The request form, for error messages."""
        return {model.group: dict(self.group), model.plural: [dict(m) for m in self.members]}


def _aggregate(fn: str, members: Iterable[dict[str, Any]], f: Callable[[dict[str, Any]], Any]) -> Any:
    values = []
    for k, m in enumerate(members):
        try:
            values.append(f(m))
        except record._Fail as e:
            raise record._Fail(f"{e} (member {k})") from None
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
    for key in rec:
        if key not in (model.group, model.plural):
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
    members = tuple(
        _fields(m, person_specs, group_specs, coerce_value, f"{where}.{model.plural}.{k}", problems)
        for k, m in enumerate(raw)
    )
    return HouseholdRecord(group, members)


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
    """Every rule's value: a scalar for a group rule, a list in member order for a person rule."""
    g = dict(hh.group)
    members = [{**m, **g} for m in hh.members]
    out: dict[str, Any] = {}
    for r in rules:
        fn = fns[r.name]
        if model.rule_entity[r.name] == model.group:
            value = _one(r, fn, g, members, hh, model, "")
            g[r.name] = value
            for m in members:
                m[r.name] = value
            out[r.name] = value
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


__all__ = ["MAX_MEMBERS", "HouseholdRecord", "coerce_household", "compile_rule", "evaluate"]
