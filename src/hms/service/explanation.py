"""``explain: true``: a decision answered with why, provision by provision (hms.rules.explain).

A citizen denied a benefit is owed a notice saying why and under which provision; a caller asking with
``"explain": true`` gets, beside each answer's outputs, every output's rule expression, the rules it depends
on with their values, the inputs and parameter values read (a table lookup with its key) and the legal
reference of each, and a notice sentence for each boolean outcome. These are its response models (the core
speaks dataclasses), the validation of the flag, and the one call the decision handlers make.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from hms.periods import Period
from hms.rules import explain as core
from hms.service.refusal import Refusal

Scalar = bool | int | float | str
Value = Scalar | list[Scalar]

FLAG = "explain"
DESCRIPTION = ("true: each answer carries its explanation (rule expressions, values read, intermediate rules, legal "
               "references, a notice sentence per boolean outcome); default false")


class Read(BaseModel):
    name: str
    kind: Literal["input", "parameter", "table"]
    value: Value = Field(description="with who: each one's value, in that order")
    key: list[Scalar] | None = Field(None, description="a table lookup: the key(s) looked up")
    who: list[str] | None = Field(None, description='whose values: ["member 0", "member 2"]; absent: the record\'s')
    reference: str | None = None
    from_default: bool = Field(False, description="the table had no entry for the key: its default answered")
    text: str = Field(description='as a notice writes it: "fpl[4] = 31,200"')


class Aggregation(BaseModel):
    expression: str
    over: str
    who: list[str]
    values: list[Scalar]
    result: Scalar
    at: str | None = None


class RuleStep(BaseModel):
    name: str
    expression: str = Field(description="the rule's formula as the protocol writes it")
    value: Value = Field(description="a person or sub-group rule's is a list, one per entry of who")
    reference: str | None = None
    entity: str | None = None
    who: list[str] | None = None
    reads: list[Read] = Field(description="the inputs and parameters it read (an untaken branch reads none)")
    rules_read: list[str]
    aggregations: list[Aggregation] = []


class OutputExplanation(BaseModel):
    name: str
    value: Value
    expression: str
    reference: str | None = None
    depends_on: list[str] = Field(description="every rule it depends on, transitively, in evaluation order; each "
                                  "one's step (value, reads, reference) is in the explanation's rules")
    notice: str | None = Field(None, description="boolean outcomes: the deciding comparison and its provisions")
    references: list[str] = Field([], description="the provisions the notice cites, in order")


class Explanation(BaseModel):
    outputs: list[OutputExplanation]
    rules: list[RuleStep] = Field(description="each output's rule and every rule they depend on, once each, in "
                                  "evaluation order, with its value for this input and what it read")
    authority: str | None = Field(None, description="the protocol's legal authority (metadata.authority)")
    period: str | None = None
    notes: list[str] = Field([], description="anything that could not be explained precisely, said here")
    months: list[Explanation] = Field([], description="a period evaluated month by month: each month's explanation")


def requested(data: dict[str, Any]) -> bool:
    """The request's ``explain`` flag: absent is false; anything but a JSON boolean is a 422 naming it."""
    flag = data.get(FLAG, False)
    if not isinstance(flag, bool):
        raise Refusal(422, f"{FLAG} must be true or false", ["body", FLAG])
    return flag


def answer(protocol: Any, period: Period | None, rec: Any,
           evaluated: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """One answer's explanation as JSON (what ``Explanation`` describes), under the rules ``period`` is decided
    with: one rule set, or one per month when it straddles a parameter change (``straddle: sum_months``).

    ``evaluated``: each of those rule sets' values for ``rec`` (``RuleSet.evaluate``), in the plan's order, when
    the decision has just computed them; the explanation then does not evaluate the record again."""
    plan = protocol.plan(period)
    label = period.label if period is not None else None
    values: Sequence[Mapping[str, Any] | None] = evaluated if evaluated is not None else [None] * len(plan)
    if len(values) != len(plan):
        raise ValueError(f"{len(values)} evaluations for a plan of {len(plan)} rule sets")
    if len(plan) == 1:
        return _explanation(core.explain(plan[0][1], rec, authority=protocol.authority, period=label,
                                         values=values[0]))
    months = [(m.label, core.explain(rs, rec, authority=protocol.authority, period=m.label, values=v))
              for (m, rs), v in zip(plan, values, strict=True)]
    return _explanation(core.months(months, protocol.authority, label))


def _explanation(e: core.Explanation) -> dict[str, Any]:
    """Each rule step once (outputs share the rules they depend on): the answer stays small for a household."""
    return {
        "outputs": [_output(o) for o in e.outputs],
        "rules": [_step(s) for s in e.rules],
        "authority": e.authority,
        "period": e.period,
        "notes": list(e.notes),
        "months": [_explanation(m) for m in e.months],
    }


def _output(o: core.OutputExplanation) -> dict[str, Any]:
    d = {"name": o.name, "value": plain(o.value), "expression": o.rule.expression}
    if o.rule.reference is not None:
        d["reference"] = o.rule.reference
    d["depends_on"] = [s.name for s in o.depends_on]
    if o.notice is not None:
        d["notice"] = o.notice
    d["references"] = list(o.references)
    return d


# A household's explanation is many reads, most without a key, a member or a reference: only the fields that say
# something are set (the answer is sent with its unset fields left out), each tested once, in the models' order.


def _step(s: core.RuleStep) -> dict[str, Any]:
    d = {"name": s.name, "expression": s.expression, "value": plain(s.value)}
    if s.reference is not None:
        d["reference"] = s.reference
    if s.entity is not None:
        d["entity"] = s.entity
    if s.who is not None:
        d["who"] = list(s.who)
    d["reads"] = [_read(r) for r in s.reads]
    d["rules_read"] = list(s.rules_read)
    if s.aggregations:
        d["aggregations"] = [_aggregation(a) for a in s.aggregations]
    return d


def _aggregation(a: core.Aggregation) -> dict[str, Any]:
    d = {"expression": a.expression, "over": a.over, "who": list(a.who), "values": [plain(x) for x in a.values],
         "result": plain(a.result)}
    if a.at is not None:
        d["at"] = a.at
    return d


def _read(r: core.Read) -> dict[str, Any]:
    d = {"name": r.name, "kind": r.kind, "value": plain(r.value)}
    if r.key is not None:
        d["key"] = [plain(k) for k in r.key]
    if r.who is not None:
        d["who"] = list(r.who)
    if r.reference is not None:
        d["reference"] = r.reference
    if r.from_default:
        d["from_default"] = True
    d["text"] = r.text
    return d


_AS_IS = frozenset({bool, int, str})


def plain(v: Any) -> Any:
    """Whole-number floats as integers (31200, not 31200.0), as the answer's outputs are written."""
    t = type(v)
    if t in _AS_IS:
        return v
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v
