"""Load and validate policy protocols (YAML or JSON) into ``Protocol`` objects.

Validation runs in layers, each error naming the file, the line (YAML) and the
JSON path: safe parsing (yamlsafe), the JSON Schema in
include/schema/protocol.schema.json (unknown keys rejected, ``metadata.id`` a DNS
label; just before it, each input's data-class declaration: hms.declarations), the
inputs' ``synthetic`` hints (hms.column_synthesis), the timezone of ``effective_at``,
then the rules (rules/) and the test cases against the declared inputs and outputs.
The normalized form (canonical JSON) is what a bundle holds, so its hash is the
protocol's identity.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from hms import numbers
from hms.cases import case_ruleset, own_rules
from hms.column_synthesis import check_hints
from hms.dated import DatedParameter, combine
from hms.dated import changes_within as dated_changes
from hms.dated import parse as parse_dated
from hms.dated import values_for as dated_values
from hms.declarations import check_inputs
from hms.errors import BadInput, RuleError, clip, shown
from hms.periods import Period, containing
from hms.periods import parse as read_period
from hms.rules import RuleSet
from hms.rules.tables import TableError
from hms.rules.tables import parse as parse_table
from hms.yamlsafe import Document, json_path, load_file, load_text

SCHEMA_PATH = Path(__file__).resolve().parent / "protocol.schema.json"
BUDGET_AMOUNT_DEFAULT = "amount"


@cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


@cache
def _validator() -> jsonschema.protocols.Validator:
    from hms.schema_check import validator_class

    cls = validator_class()
    return cls(schema(), format_checker=cls.FORMAT_CHECKER)


@dataclass(frozen=True)
class Protocol:
    """A validated protocol: normalized data plus its compiled rules."""

    data: dict[str, Any]
    source: str
    ruleset: RuleSet = field(repr=False)  # the rules with the parameters of the effective period
    dated: dict[str, DatedParameter] = field(default_factory=dict, repr=False)
    _by_period: dict[str, RuleSet] = field(default_factory=dict, repr=False, compare=False)

    # ---- periods (hms.periods, hms.dated) -------------------------------------------------------
    @property
    def period_unit(self) -> str | None:
        """``month`` or ``year`` when the protocol states a period, else None (one set of values, no period)."""
        return (self.data.get("period") or {}).get("unit")

    @property
    def straddle(self) -> str:
        return (self.data.get("period") or {}).get("straddle", "error")

    def default_period(self, at: datetime | None = None) -> Period | None:
        """The period holding ``at`` (default: the effective time), or None for a protocol without periods.

        Read in the effective time's offset: the law's "March" is March where it is in force, not in UTC.
        """
        unit = self.period_unit
        if unit is None:
            return None
        eff = self.effective_at
        return containing((at or eff).astimezone(eff.tzinfo), unit)

    def parse_period(self, text: object, *, where: str) -> Period:
        unit = self.period_unit
        if unit is None:
            raise BadInput("this protocol states no period (period: {unit: month|year})", where=where)
        return read_period(text, unit, where=where)

    def ruleset_on(self, day: date, period: Period) -> RuleSet:
        """The rules with every parameter's value in force on ``day`` (errors name ``period``)."""
        key = day.isoformat()
        rs = self._by_period.get(key)
        if rs is None:
            values = dated_values(self.data.get("parameters", {}), self.dated, period, day)
            rs = self.ruleset.with_parameters(values, period=period.label)
            self._by_period[key] = rs
        return rs

    def decide(self, rec: Any, period: Period | None = None) -> dict[str, Any]:
        """The declared outputs for one record in ``period`` (default: the effective period)."""
        period = period or self.default_period()
        return combine([rs.decide(rec) for _, rs in self.plan(period)], period)

    def case_period(self, case: dict[str, Any]) -> Period | None:
        """The period a test case is for: its own ``period``, else the effective period (None: no periods)."""
        if "period" in case:
            return self.parse_period(case["period"], where="period")
        return self.default_period()

    def plan(self, period: Period | None) -> list[tuple[Period | None, RuleSet]]:
        """The rule sets a period is evaluated with: one, or one per month when a value changes inside it
        and ``period.straddle`` is ``sum_months``. A change with ``straddle: error`` is refused here."""
        if period is None or not self.dated:
            return [(period, self.ruleset if period is None else self.ruleset_on(period.start, period))]
        changes = dated_changes(self.dated, period)
        if not changes:
            return [(period, self.ruleset_on(period.start, period))]
        if self.straddle == "sum_months":
            return [(m, self.ruleset_on(m.start, m)) for m in period.months()]
        name, day = changes[0]
        readers = sorted(r for r in self.ruleset.by_name if name in self.ruleset.by_name[r].reads_params)
        raise BadInput(
            f"parameter {name!r} changes on {day.isoformat()}, inside period {period}: rules "
            f"{', '.join(readers) or '(none)'} have no single value for it; ask for a period within one value, "
            "or set period.straddle: sum_months",
            where=f"{self.source}: parameters.{name}",
        )

    @property
    def id(self) -> str:
        return self.data["metadata"]["id"]

    @property
    def version(self) -> int:
        return self.data["metadata"]["version"]

    @property
    def title(self) -> str:
        return self.data["metadata"]["title"]

    @property
    def author(self) -> str:
        return self.data["metadata"]["author"]

    @property
    def authority(self) -> str | None:
        return self.data["metadata"].get("authority")

    @property
    def effective_at(self) -> datetime:
        return datetime.fromisoformat(self.data["metadata"]["effective_at"])

    @property
    def budget(self) -> dict[str, Any] | None:
        return self.data.get("budget")

    @property
    def budget_amount(self) -> str:
        return (self.budget or {}).get("amount", BUDGET_AMOUNT_DEFAULT)

    @property
    def budget_period(self) -> str:
        return (self.budget or {}).get("period", "year")

    @property
    def amount_period(self) -> str:
        return (self.budget or {}).get("amount_period", self.budget_period)

    @property
    def eligibility_rule(self) -> str | None:
        """The boolean rule eligibility and fairness are computed on: named in ``budget.eligible``, or the
        only boolean output. None when there is none, or several and none is named (then the simulation asks)."""
        named = (self.budget or {}).get("eligible")
        if named is not None:
            return named
        flags = boolean_outputs(self.ruleset, self.outputs)
        return flags[0] if len(flags) == 1 else None

    @property
    def approvals(self) -> dict[str, Any]:
        return self.data.get("approvals", {})

    @property
    def tests(self) -> list[dict[str, Any]]:
        return self.data["tests"]

    @property
    def service_cases(self) -> list[dict[str, Any]]:
        """The cases the decision service can be asked: those that run the protocol's own parameters and rules."""
        return [c for c in self.data["tests"] if not own_rules(c)]

    @property
    def inputs(self) -> dict[str, dict[str, Any]]:
        return self.data["inputs"]

    @property
    def outputs(self) -> list[str]:
        return self.data["outputs"]

    def canonical_json(self) -> bytes:
        return canonical_json(self.data)


def canonical_json(data: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: one byte sequence per document."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def load(path: str | Path) -> Protocol:
    """Load a protocol file; every refusal is a ``BadInput`` naming file, line and path."""
    return from_document(load_file(path))


def loads(text: str, source: str = "<protocol>") -> Protocol:
    return from_document(load_text(text, source))


def from_data(data: Any, source: str = "<protocol>") -> Protocol:
    """Validate already-parsed data (e.g. a bundle's protocol.json)."""
    return from_document(Document(data, {}, source))


def _jsonify(x: Any, path: tuple, doc: Document) -> Any:
    """JSON-compatible copy: mapping keys become strings (two keys that become one string are refused,
    e.g. ``1`` and ``"1"``); numbers within ``hms.numbers``' bound; NaN/inf and lone surrogates refused."""
    if isinstance(x, dict):
        out = {}
        written: dict[str, Any] = {}
        for k, v in x.items():
            if isinstance(k, int | float) and not isinstance(k, bool) and (why := numbers.check(k)):
                raise BadInput(f"key {why}", where=doc.where(path))
            key = str(k).lower() if isinstance(k, bool) else _text(str(k), path, doc)
            if key in out:
                raise BadInput(
                    f"keys {shown(written[key])} and {shown(k)} in {json_path(path)} are the same key {shown(key)}",
                    where=doc.where((*path, key)),
                )
            written[key] = k
            out[key] = _jsonify(v, (*path, key), doc)
        return out
    if isinstance(x, list):
        return [_jsonify(v, (*path, i), doc) for i, v in enumerate(x)]
    if isinstance(x, float) and not math.isfinite(x):
        raise BadInput("NaN and infinity are not allowed", where=doc.where(path))
    if isinstance(x, int | float) and not isinstance(x, bool) and (why := numbers.check(x)):
        raise BadInput(why, where=doc.where(path))
    if isinstance(x, str):
        return _text(x, path, doc)
    if x is None or isinstance(x, bool | int | float):
        return x
    raise BadInput(f"unsupported value of type {type(x).__name__}", where=doc.where(path))


def _text(s: str, path: tuple, doc: Document) -> str:
    """A string that UTF-8 can hold: a lone surrogate ("\\ud800" in JSON or YAML) would fail the bundle's encoding."""
    if not s.isascii():
        try:
            s.encode()
        except UnicodeEncodeError as e:
            raise BadInput(
                f"{shown(s[e.start : e.end])} is not a Unicode character (a lone surrogate)", where=doc.where(path)
            ) from None
    return s


def from_document(doc: Document) -> Protocol:
    if not isinstance(doc.data, dict):
        raise BadInput("a protocol must be a mapping (apiVersion, kind, metadata, …)", where=doc.where(()))
    data = _jsonify(doc.data, (), doc)
    check_inputs(data.get("inputs"), doc.where)
    _check_schema(data, doc)
    check_hints(data["inputs"], lambda name: lambda path: doc.where(("inputs", name, *path)))
    meta = data["metadata"]
    try:
        eff = datetime.fromisoformat(meta["effective_at"])
    except ValueError:
        raise BadInput(
            "effective_at is not an ISO 8601 date-time", where=doc.where(("metadata", "effective_at"))
        ) from None
    if eff.tzinfo is None or eff.utcoffset() is None:
        raise BadInput(
            "effective_at must carry a timezone, e.g. 2026-12-01T00:00:00-05:00",
            where=doc.where(("metadata", "effective_at")),
        )
    dated = parse_dated(data.get("parameters", {}), lambda path: doc.where(("parameters", *path)))
    if dated and "period" not in data:
        first = next(iter(dated))
        raise BadInput(
            f"parameter {first!r} has dated values: the protocol must state the period its rules are for "
            "(period: {unit: month} or {unit: year})",
            where=doc.where(("parameters", first)),
        )
    parameters, period = _effective_parameters(data, dated, eff, doc)
    try:
        ruleset = RuleSet(
            data["inputs"],
            parameters,
            data["rules"],
            data["outputs"],
            entities=data.get("entities"),
            period=period.label if period is not None and dated else None,
        )
    except TableError as e:
        raise TableError(e.message, e.path, where=doc.where(("parameters", *e.path))) from None
    except RuleError as e:
        if e.rule is None and e.where and e.where.split(".", 1)[0] in ("entities", "inputs", "rules"):
            raise RuleError(e.message, where=doc.where(_dotted(e.where))) from None
        if e.rule is not None:
            where = doc.where(("rules", e.rule)) + (f", column {e.column}" if e.column else "")
            raise RuleError(f"rule {e.rule!r}: {e.message}", rule=e.rule, column=e.column, where=where) from None
        raise RuleError(e.message, where=f"{doc.source}: {e.where}") from None
    if "budget" in data:
        amount = data["budget"].get("amount", BUDGET_AMOUNT_DEFAULT)
        if amount not in ruleset.by_name or ruleset.type_of(amount) != "num":
            raise BadInput(
                f"budget needs a numeric rule {amount!r} giving the cost per record (set budget.amount)",
                where=doc.where(("budget",)),
            )
        if ruleset.model is not None and ruleset.entity_of(amount) != ruleset.model.group:
            raise BadInput(
                f"budget.amount {amount!r} is a rule about each {ruleset.model.person}; the cost is per "
                f"{ruleset.model.group}: aggregate it, e.g. a {ruleset.model.group} rule sum({amount})",
                where=doc.where(("budget",)),
            )
        _check_budget_outcomes(data["budget"], data["outputs"], ruleset, doc)
    proto = Protocol(data, doc.source, ruleset, dated)
    _check_cases(data, proto, doc)
    return proto


def _effective_parameters(
    data: dict[str, Any], dated: dict[str, DatedParameter], eff: datetime, doc: Document
) -> tuple[dict[str, Any], Period | None]:
    """The parameter values the rules are checked with: those of the effective period.

    Every dated table value is checked as a table too, not only the effective one's: a later year's table
    with colliding keys is refused at pack, not on the day it comes into force.
    """
    parameters = data.get("parameters", {})
    unit = (data.get("period") or {}).get("unit")
    if not dated or unit is None:
        return parameters, None
    for p in dated.values():
        for i, v in enumerate(p.values):
            if isinstance(v.value, dict):
                try:
                    parse_table(p.name, v.value)
                except TableError as e:
                    path = ("parameters", p.name, "values", i, "value", *e.path[1:])
                    raise TableError(e.message, e.path, where=doc.where(path)) from None
    period = containing(eff, unit)
    try:
        return dated_values(parameters, dated, period, period.start), period
    except BadInput as e:
        raise BadInput(
            f"{e.message}, the period of metadata.effective_at", where=doc.where(_dotted(e.where or ""))
        ) from None


def _check_schema(data: dict[str, Any], doc: Document) -> None:
    err = best_match(_validator().iter_errors(data))
    if err is None:
        return
    path = tuple(err.absolute_path)
    message = err.message
    shown_instance = repr(err.instance)
    if len(shown_instance) > 200 and shown_instance in message:  # jsonschema quotes the whole value
        message = message.replace(shown_instance, shown(err.instance))
    if err.validator in ("maxProperties", "maxItems", "minProperties", "minItems") and hasattr(err.instance, "__len__"):
        most = "at most" if err.validator.startswith("max") else "at least"
        message = f"{len(err.instance)} entries; {most} {err.validator_value}"
    elif err.validator in ("maxLength", "minLength") and isinstance(err.instance, str):
        most = "at most" if err.validator == "maxLength" else "at least"
        message = f"{shown(err.instance, 60)} has {len(err.instance)} characters; {most} {err.validator_value}"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed)
        if extra:
            path = (*path, extra[0])
            hint = f"; allowed: {', '.join(sorted(allowed))}" if allowed else ""
            message = f"unknown field {shown(extra[0])}{clip(hint)}"
    elif err.validator in ("pattern", "maxLength") and path[-2:] == ("metadata", "id"):
        message = (
            f"metadata.id {shown(err.instance)} must be a DNS label: lowercase letters, digits and '-', at most 63"
        )
    elif err.validator == "pattern" and err.validator_value == "^[a-z_][a-z0-9_]{0,62}$":
        message = (
            f"{shown(err.instance)} is not a valid name (lowercase letters, digits, '_'; not starting with a digit)"
        )
    elif err.validator == "required":
        message = err.message.replace("is a required property", "is required")
    elif err.validator == "oneOf" and len(path) == 2 and path[0] == "rules":
        message = "a rule is a formula (a string) or {entity, formula}, each optionally with its reference"
        if isinstance(err.instance, dict):
            extra = sorted(k for k in err.instance if k not in ("entity", "formula", "description", "reference"))
            if extra:
                path = (*path, extra[0])
                message = f"unknown field {extra[0]!r}; allowed: description, entity, formula, reference"
    raise BadInput(message, where=doc.where(path))


def boolean_outputs(ruleset: RuleSet, outputs: list[str]) -> list[str]:
    """Boolean outputs with one value per record (for an entity protocol: the group's rules)."""
    group = ruleset.model.group if ruleset.model is not None else None
    return [o for o in outputs if ruleset.type_of(o) == "bool" and ruleset.entity_of(o) == group]


def _check_budget_outcomes(budget: dict[str, Any], outputs: list[str], ruleset: RuleSet, doc: Document) -> None:
    """The figures a budget reports are computed on outcomes the protocol names: no silent choice."""
    named = budget.get("eligible")
    if named is not None:
        group = ruleset.model.group if ruleset.model is not None else None
        if named not in ruleset.by_name or ruleset.type_of(named) != "bool" or ruleset.entity_of(named) != group:
            what = f"a boolean {group} rule" if group else "a boolean rule"
            raise BadInput(f"budget.eligible {named!r} must be {what}", where=doc.where(("budget", "eligible")))
    else:
        flags = boolean_outputs(ruleset, outputs)
        if len(flags) > 1:
            raise BadInput(
                f"the protocol has {len(flags)} boolean outputs ({', '.join(flags)}): name the one the eligibility "
                "and fairness figures are computed on in budget.eligible",
                where=doc.where(("budget",)),
            )
    period = budget.get("period", "year")
    if budget.get("amount_period", period) == "year" and period == "month":
        raise BadInput(
            "a yearly amount (budget.amount_period) cannot be counted against a monthly cap (budget.period)",
            where=doc.where(("budget", "amount_period")),
        )


def _check_cases(data: dict[str, Any], proto: Protocol, doc: Document) -> None:
    names = set()
    for i, case in enumerate(data["tests"]):
        if case["name"] in names:
            raise BadInput(f"duplicate test name {case['name']!r}", where=doc.where(("tests", i, "name")))
        names.add(case["name"])
        ruleset = proto.ruleset
        try:
            period = proto.parse_period(case["period"], where="period") if "period" in case else proto.default_period()
            plans = proto.plan(period)
        except BadInput as e:
            raise BadInput(f"test {case['name']!r}: {e.message}", where=doc.where(("tests", i, "period"))) from None
        rs = plans[0][1]
        if own_rules(case):
            try:
                rs = case_ruleset(rs, case)
            except BadInput as e:
                section, _, rest = (e.where or "").partition(".")
                path = ("tests", i, section, *rest.split(".")) if rest else ("tests", i, section)
                raise BadInput(f"test {case['name']!r}: {e.message}", where=doc.where(path)) from None
        try:
            rec = rs.coerce_record(case["input"], where="input")
        except BadInput as e:
            field_ = _dotted((e.where or "input").split(".", 1)[-1]) if "." in (e.where or "") else ()
            raise BadInput(
                f"test {case['name']!r}: {e.message}", where=doc.where(("tests", i, "input", *field_))
            ) from None
        for key, want in case["expect"].items():
            if key not in ruleset.by_name:
                raise BadInput(
                    f"test {case['name']!r} expects {shown(key)}, which is not a rule",
                    where=doc.where(("tests", i, "expect", key)),
                )
            t = rs.type_of(key)
            entity = rs.entity_of(key) if rs.model is not None else None
            if rs.model is not None and entity == rs.model.person:
                _check_list_expectation(
                    case, key, want, t, len(rec.members), "member", doc.where(("tests", i, "expect", key))
                )
                continue
            if rs.model is not None and entity in rs.model.subgroups:
                count = len(rec.subs.get(entity, ()))
                _check_list_expectation(case, key, want, t, count, entity, doc.where(("tests", i, "expect", key)))
                continue
            if not _type_ok(t, want):
                raise BadInput(
                    f"test {case['name']!r}: expected value for {shown(key)} must be a {t}, got {shown(want)}",
                    where=doc.where(("tests", i, "expect", key)),
                )


def _type_ok(t: str, want: Any) -> bool:
    return (
        (t == "num" and isinstance(want, int | float) and not isinstance(want, bool))
        or (t == "bool" and isinstance(want, bool))
        or (t == "str" and isinstance(want, str))
    )


def _check_list_expectation(
    case: dict[str, Any], key: str, want: Any, t: str, count: int, entity: str, where: str
) -> None:
    """A person or sub-group rule's expected value is a list, one value per member (or sub-group) in order."""
    if not isinstance(want, list) or len(want) != count:
        order = "" if entity == "member" else ", in the order their members first appear"
        raise BadInput(
            f"test {case['name']!r}: {key!r} is a rule about each {entity}: expect a list of {count} values, "
            f"one per {entity}{order}, got {want!r}",
            where=where,
        )
    for k, w in enumerate(want):
        if not _type_ok(t, w):
            raise BadInput(
                f"test {case['name']!r}: expected value for {key!r} of {entity} {k} must be a {t}, got {w!r}",
                where=where,
            )


def _dotted(where: str) -> tuple[str | int, ...]:
    """``members.1.age`` → ("members", 1, "age"): a path ``Document.where`` finds the line of."""
    return tuple(int(p) if p.isdigit() else p for p in where.split("."))


__all__ = ["Protocol", "canonical_json", "from_data", "json_path", "load", "loads", "schema"]
