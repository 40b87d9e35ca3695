"""Entities: people grouped into a household, declared by a protocol, and rules over them.

Real benefit rules are written over the members of a unit ("any member is 60 or older",
"the sum of the members' earned income", "the number of children"), as OpenFisca and
PolicyEngine model them. A protocol may therefore declare one *person* entity and one
*group* entity (``group_of: person``), give each input and rule an entity, and connect
the two levels in exactly two ways:

- **aggregation**, members → group: ``sum count any all min max`` with one argument, allowed
  only in a group rule, over an expression evaluated per member (``count(person)`` counts the
  members; ``min``/``max`` with two or more arguments stay the scalar ones);
- **projection**, group → members: a person rule may read any group value, the same for
  every member of the household.

A group rule that reads a person value without aggregating it is refused at load, naming
the rule and the column. ``role`` (one of the person entity's ``roles``) is a string every
member carries. A household has at least one member: the request, test case or population
row of a household without members is refused at input validation, so ``min``/``max`` are
always defined and no aggregate has an empty case to invent.

Several group entities may be declared, OpenFisca-style: every person belongs to exactly one
entity of each group kind. One of them is the *record* (``record: true``, else the first declared):
the decision request, the test case, the population row with the weights (a household). The others
are *sub-groups* of the record (a household's tax units): each member names its sub-group by id
(``tax_unit: 1``) and a sub-group is inside one record; a sub-group declaring ``roles`` gives each
member a ``tax_unit_role``. A sub-group rule aggregates over its own members and reads record values
(projection); a person rule reads the values of its record and of each of its sub-groups. Because
each sub-group lies inside one record, a record rule aggregates over its sub-groups directly
(``sum(unit_credit, over=tax_units)``, ``count(tax_units)``), each counted once. Groups that need not
nest (a tax unit and an SPM unit) read each other only through their members, where each member has
one of each (``any(spm_poor)`` in a tax-unit rule). Refused at load, naming the rule and column: a
group reading another group's value directly, and ``sum(unit_credit)`` over a household's members
(the expression reads no member value, so it would count each tax unit once per member).
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hms.errors import RuleError
from hms.rules import ir
from hms.rules.check import FUNCTIONS, MAX_DEPTH, Scope, _Checker, _word, dependencies, order, parse
from hms.rules.ir import BOOL, NUM, STR

AGGREGATIONS = ("sum", "count", "any", "all", "min", "max")
ROLE = "role"
DEFAULT_PLURAL = "members"
_ARG_TYPE = {"sum": NUM, "min": NUM, "max": NUM, "count": BOOL, "any": BOOL, "all": BOOL}
_RESULT_TYPE = {"sum": NUM, "min": NUM, "max": NUM, "count": NUM, "any": BOOL, "all": BOOL}


@dataclass(frozen=True)
class EntityModel:
    """Who is who: the person entity, its group, and the entity of every input and rule."""

    person: str  # e.g. "person"
    plural: str  # the key of the members list in a request or test case, e.g. "members"
    group: str  # e.g. "household"
    roles: tuple[str, ...]  # values of ``role``; empty: members carry no role
    input_entity: Mapping[str, str]  # input -> entity name
    rule_entity: Mapping[str, str]  # rule -> entity name
    subgroups: tuple[str, ...] = ()  # group entities other than the record (e.g. "tax_unit"), in declared order
    sub_plural: Mapping[str, str] | None = None  # sub-group -> the key of its inputs list in a request
    sub_roles: Mapping[str, tuple[str, ...]] | None = None  # sub-group -> its roles (``tax_unit_role``)

    def role_fields(self) -> dict[str, tuple[str, ...]]:
        """Each role a member carries and its values: ``role`` (the person entity's ``roles``: the member's
        role in the record) and ``<sub-group>_role`` for a sub-group declaring roles (``tax_unit_role``)."""
        out = {ROLE: self.roles} if self.roles else {}
        return out | {role_field(g): r for g, r in (self.sub_roles or {}).items()}

    def entity(self, name: str) -> str | None:
        """The entity of an input, rule or role field (None: a parameter or unknown)."""
        if name in self.role_fields():
            return self.person
        return self.input_entity.get(name, self.rule_entity.get(name))

    def plural_of(self, sub: str) -> str:
        return (self.sub_plural or {}).get(sub, f"{sub}s")

    def sub_inputs(self, sub: str) -> list[str]:
        return [n for n, e in self.input_entity.items() if e == sub]

    def is_person(self, name: str) -> bool:
        """True for a person-level input, rule or role field."""
        return self.entity(name) == self.person

    def person_inputs(self) -> list[str]:
        return [n for n, e in self.input_entity.items() if e == self.person]

    def group_inputs(self) -> list[str]:
        return [n for n, e in self.input_entity.items() if e == self.group]

    def reserved(self) -> set[str]:
        names = {self.person, self.plural, self.group, *AGGREGATIONS}
        names |= set(self.subgroups) | {self.plural_of(g) for g in self.subgroups}
        return names | ({ROLE} if self.roles else set()) | {role_field(g) for g in self.sub_roles or {}}


def role_field(sub: str) -> str:
    """The member field holding a member's role in its sub-group of kind ``sub`` (``tax_unit_role``)."""
    return f"{sub}_{ROLE}"


def parse_model(
    entities: Mapping[str, Any], inputs: Mapping[str, Mapping[str, Any]], rules: Mapping[str, Any]
) -> tuple[EntityModel, dict[str, str]]:
    """The model and each rule's formula; a mistake is a ``RuleError`` naming the field."""
    if not isinstance(entities, Mapping) or not entities:
        raise RuleError("entities must map entity names to their declarations", where="entities")
    people = [n for n, d in entities.items() if "group_of" not in d]
    groups = [n for n, d in entities.items() if "group_of" in d]
    if len(people) != 1:
        raise RuleError(
            f"declare exactly one person entity (without group_of); found {len(people)}: {people}", where="entities"
        )
    if not groups:
        raise RuleError(
            f"declare exactly one group entity (with group_of: {people[0]}); found {len(groups)}", where="entities"
        )
    person = people[0]
    pdecl = entities[person]
    if "record" in pdecl:
        raise RuleError("record belongs to a group entity", where=f"entities.{person}.record")
    marked = [g for g in groups if entities[g].get("record") is True]
    if len(marked) > 1:
        raise RuleError(
            f"one group entity is the record (record: true); found {len(marked)}: {marked}",
            where=f"entities.{marked[1]}.record",
        )
    group = marked[0] if marked else groups[0]
    subgroups = tuple(g for g in groups if g != group)
    for g in groups:
        if entities[g]["group_of"] != person:
            raise RuleError(
                f"group_of must name the person entity {person!r}, not {entities[g]['group_of']!r}",
                where=f"entities.{g}.group_of",
            )
    gdecl = entities[group]
    for key in ("plural", "roles"):
        if key in gdecl:
            raise RuleError(f"{key} belongs to the person entity {person!r}", where=f"entities.{group}.{key}")
    sub_plural, sub_roles = {}, {}
    for g in subgroups:
        if "roles" in entities[g]:
            sub_roles[g] = tuple(entities[g]["roles"])
        sub_plural[g] = entities[g].get("plural", f"{g}s")
    plural = pdecl.get("plural", DEFAULT_PLURAL)
    if plural in (person, *groups):
        raise RuleError(f"plural {plural!r} must differ from the entity names", where=f"entities.{person}.plural")
    for g, pl in sub_plural.items():
        if pl in (person, plural, *groups) or list(sub_plural.values()).count(pl) > 1:
            raise RuleError(
                f"plural {pl!r} must differ from the entity names and the other plurals", where=f"entities.{g}.plural"
            )
    roles = tuple(pdecl.get("roles", ()))
    known = (person, group, *subgroups)
    declared = ", ".join(known)
    input_entity = {}
    for name, decl in inputs.items():
        e = decl.get("entity", group)
        if e not in known:
            raise RuleError(f"unknown entity {e!r}; declared: {declared}", where=f"inputs.{name}.entity")
        input_entity[name] = e
    rule_entity, formulas = {}, {}
    for name, decl in rules.items():
        if isinstance(decl, str):
            rule_entity[name], formulas[name] = group, decl
            continue
        e = decl.get("entity", group)
        if e not in known:
            raise RuleError(f"unknown entity {e!r}; declared: {declared}", where=f"rules.{name}.entity")
        rule_entity[name], formulas[name] = e, decl["formula"]
    model = EntityModel(person, plural, group, roles, input_entity, rule_entity, subgroups, sub_plural, sub_roles)
    taken = model.reserved()
    for kind, names in (("input", inputs), ("rule", rules)):
        for name in names:
            if name in taken:
                raise RuleError(
                    f"{kind} name {name!r} is reserved when entities are declared "
                    f"(entity names, {', '.join(repr(p) for p in (plural, *sub_plural.values()))}, "
                    f"{', '.join(repr(r) for r in (ROLE, *map(role_field, sub_roles)))}, the aggregations)",
                    where=f"{kind}s.{name}",
                )
    return model, formulas


def flat_formulas(rules: Mapping[str, Any], inputs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """A flat protocol's rules are strings, or ``{formula, reference}``; the entity form needs ``entities:``."""
    for name, decl in inputs.items():
        if "entity" in decl:
            raise RuleError(
                "an input with an entity needs the protocol to declare entities (entities: person, household)",
                where=f"inputs.{name}.entity",
            )
    formulas = {}
    for name, decl in rules.items():
        if isinstance(decl, str):
            formulas[name] = decl
        elif isinstance(decl, Mapping) and "entity" not in decl and isinstance(decl.get("formula"), str):
            formulas[name] = decl["formula"]  # {formula, reference}: a rule with its legal reference
        else:
            raise RuleError(
                "a rule with an entity needs the protocol to declare entities (entities: person, household)",
                rule=name,
            )
    return formulas


class _EntityChecker(_Checker):
    """The flat checker plus aggregation calls and the entity of every name."""

    def __init__(self, rule: str, scope: Scope, model: EntityModel) -> None:
        super().__init__(rule, scope)
        self.model = model
        self.entity = model.rule_entity[rule]  # the entity the expression being checked is about

    def check(self, node: ast.expr, depth: int = 0) -> ir.Node:
        match node:
            case ast.Call(func=ast.Name(id=fn), args=args, keywords=kws) if fn in AGGREGATIONS and (
                fn not in FUNCTIONS or len(args) == 1
            ):
                if depth > MAX_DEPTH:
                    raise self.fail(node, f"expression nested deeper than {MAX_DEPTH}")
                over = self._over_keyword(node, fn, kws)
                if len(args) != 1:
                    raise self.fail(node, f"{fn}() takes one expression over the members, e.g. {_example(fn)}")
                return self.aggregate(node, fn, args[0], depth + 1, over)
        out = super().check(node, depth)
        if isinstance(out, ir.Compare | ir.InTuple):
            self._check_role_literals(node, out)
        return out

    def _over_keyword(self, node: ast.expr, fn: str, kws: list[ast.keyword]) -> str | None:
        """``over=tax_units`` (or ``over=tax_unit``): the sub-group entity a record rule aggregates over."""
        if not kws:
            return None
        m = self.model
        kw = kws[0]
        names = {**{g: g for g in m.subgroups}, **{m.plural_of(g): g for g in m.subgroups}}
        if len(kws) > 1 or kw.arg != "over" or not isinstance(kw.value, ast.Name) or kw.value.id not in names:
            subs = ", ".join(m.plural_of(g) for g in m.subgroups)
            extra = f"; or over= one of the sub-groups: {subs}" if subs else ""
            raise self.fail(node, f"{fn}() takes one expression over the members, e.g. {_example(fn)}{extra}")
        return names[kw.value.id]

    def aggregate(self, node: ast.expr, fn: str, arg: ast.expr, depth: int, sub: str | None = None) -> ir.Node:
        m = self.model
        if self.entity == m.person or self._in_aggregate:
            where = "inside another aggregation" if self._in_aggregate else ""
            groups = " or ".join((m.group, *m.subgroups))
            raise self.fail(
                node,
                f"{fn}() over the members is only allowed in a {groups} rule"
                + (f" ({where})" if where else f"; {self.rule!r} is a {m.person} rule"),
            )
        if sub is None and fn == "count" and isinstance(arg, ast.Name):
            if arg.id in (m.person, m.plural):
                return ir.Aggregate(NUM, "count", ir.Const(BOOL, True))
            sub = next((g for g in m.subgroups if arg.id in (g, m.plural_of(g))), None)
            if sub is not None:
                self._check_over(node, fn, sub)
                return ir.Aggregate(NUM, "count", ir.Const(BOOL, True), sub)
        if sub is not None:
            self._check_over(node, fn, sub)
        over = self.entity  # the group whose members (or sub-groups) are aggregated: the rule's own entity
        self.entity, self._in_aggregate, self._over_sub = sub or m.person, True, sub
        self._reads = {}
        try:
            value = self.check(arg, depth)
            reads = self._reads
        finally:
            self.entity, self._in_aggregate, self._over_sub = over, False, None
            self._reads = None
        want = _ARG_TYPE[fn]
        per = sub or "member"
        if value.type != want:
            hint = f"; count the members with count({m.person})" if fn == "count" and sub is None else ""
            raise self.fail(arg, f"argument of {fn}() must be {_word(want)} per {per}, got {_word(value.type)}{hint}")
        if fn == "sum" and sub is None and m.person not in reads:
            self._check_repeated_sum(over, reads)
        return ir.Aggregate(_RESULT_TYPE[fn], fn, value, sub)

    def _check_over(self, node: ast.expr, fn: str, sub: str) -> None:
        """Only the record is made of whole sub-groups: a tax unit lies inside one household, not inside
        a family unit (nor the other way round)."""
        m = self.model
        if self.entity != m.group:
            why = f"a {sub} lies inside one {m.group}"
            if self.entity != sub:
                why += f", not inside one {self.entity}"
            raise self.fail(
                node,
                f"{fn}() over the {m.plural_of(sub)} is only allowed in a {m.group} rule ({self.rule!r} is a "
                f"{self.entity} rule): {why}",
            )

    def _check_repeated_sum(self, over: str, reads: Mapping[str, tuple[ast.AST, str]]) -> None:
        """``sum(unit_tax)`` over a household's members adds each tax unit's value once per member of the
        unit: the same for each of its members, since the expression reads no member's own value."""
        m = self.model
        for ent, (node, name) in reads.items():
            if ent in m.subgroups and ent != over:
                fix = (
                    f"sum it over the {m.plural_of(ent)} instead, sum({name}, over={m.plural_of(ent)}), or"
                    if over == m.group
                    else "to read it through the members,"
                )
                fields = m.role_fields()
                role = next((r for r in (role_field(ent), ROLE) if r in fields), None)
                example = f" (e.g. {name} if {role} == {fields[role][0]!r} else 0)" if role else ""
                raise self.fail(
                    node,
                    f"{name!r} is a {ent} value: summing it over the {m.plural} of a {over} would count it once "
                    f"per member of the {ent}; {fix} weight it by a member value{example}",
                )

    _in_aggregate = False
    _over_sub: str | None = None  # inside sum(…, over=<sub-group>): the sub-group evaluated
    _reads: dict[str, tuple[ast.AST, str]] | None = None  # inside an aggregation: entity -> first name read

    def name(self, node: ast.AST, name: str) -> ir.Node:
        m = self.model
        if name in (m.person, m.plural):
            raise self.fail(node, f"{name!r} names the members: count them with count({m.person})")
        if name == m.group:
            raise self.fail(node, f"{name!r} is the group entity, not a value")
        if name in m.subgroups or name in [m.plural_of(g) for g in m.subgroups]:
            raise self.fail(
                node,
                f"{name!r} names a sub-group entity, not a value; a {m.group} rule counts its sub-groups with "
                f"count({name}) and aggregates their values with e.g. sum(x, over={name})",
            )
        if name in AGGREGATIONS and name not in FUNCTIONS:
            raise self.fail(node, f"{name} is an aggregation: call it over the members, e.g. {_example(name)}")
        if name == ROLE and not m.roles:
            raise self.fail(node, f"{ROLE!r} needs roles on the person entity (entities.{m.person}.roles)")
        out = super().name(node, name)
        ent = m.entity(name)
        if self._reads is not None and ent is not None:
            self._reads.setdefault(ent, (node, name))
        if self._over_sub is not None:
            self._check_over_read(node, name, ent, out.type)
            return out
        if self.entity != m.person and ent == m.person:
            raise self.fail(
                node,
                f"{name!r} is a {m.person} value and {self.rule!r} is a {self.entity} rule: "
                f"aggregate it over the members, e.g. {_aggregate_hint(name, out.type)}",
            )
        if ent in m.subgroups:
            self._check_subgroup_read(node, name, ent, out.type)
        return out

    def _check_over_read(self, node: ast.AST, name: str, ent: str | None, t: str) -> None:
        """Inside ``sum(…, over=tax_units)`` the expression is one tax unit's: its values and the record's."""
        m, sub = self.model, self._over_sub
        if ent == m.person:
            raise self.fail(
                node,
                f"{name!r} is a {m.person} value and the aggregation over the {m.plural_of(sub)} in {self.rule!r} "
                f"is evaluated once per {sub}: aggregate it over the {sub}'s members in a {sub} rule first "
                f"(entity: {sub}, formula: sum({name}))",
            )
        if ent in m.subgroups and ent != sub:
            raise self.fail(
                node,
                f"{name!r} is a {ent} value and the aggregation over the {m.plural_of(sub)} in {self.rule!r} is "
                f"evaluated once per {sub}: a {sub} may straddle several {m.plural_of(ent)} (read it through the "
                f"members, e.g. {_aggregate_hint(name, t)})",
            )

    def _check_subgroup_read(self, node: ast.AST, name: str, ent: str, t: str) -> None:
        """A sub-group value is defined for its own members, its own rules and person rules, nowhere else:
        a group rule reads it through its members (aggregating its projection to each member)."""
        m = self.model
        if self.entity == m.person:
            return  # a person rule, or a member expression: each member has one entity of each kind
        if self.entity == ent:
            return  # the sub-group's own rule
        here = self.entity
        if here == m.group:
            raise self.fail(
                node,
                f"{name!r} is a {ent} value and {self.rule!r} is a {m.group} rule: a {m.group} has several "
                f"{m.plural_of(ent)}; aggregate over them, e.g. sum({name}, over={m.plural_of(ent)})",
            )
        raise self.fail(
            node,
            f"{name!r} is a {ent} value and {self.rule!r} is a {here} rule: a {here} may straddle several "
            f"{m.plural_of(ent)}, so it reads {ent} values only through its members (e.g. "
            f"{_aggregate_hint(name, t)}); "
            "a person rule may read both",
        )

    def unknown(self, node: ast.AST, name: str, functions_only: bool = False) -> RuleError:
        """The flat checker's "did you mean", with the aggregations among the candidates."""
        pool = sorted(FUNCTIONS | set(AGGREGATIONS)) if functions_only else [*self.scope.known(), *AGGREGATIONS]
        close = difflib.get_close_matches(name, pool, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return self.fail(node, f"unknown {'function' if functions_only else 'name'} {name!r}{hint}")

    def _check_role_literals(self, node: ast.AST, out: ir.Compare | ir.InTuple) -> None:
        """``role == "chld"`` (or ``tax_unit_role == "filr"``) is a typo, not a rule that is always false."""
        fields = self.model.role_fields()
        if not fields:
            return
        operands = out.operands if isinstance(out, ir.Compare) else (out.operand,)
        literals = (
            [o.value for o in out.operands if isinstance(o, ir.Const)] if isinstance(out, ir.Compare) else out.values
        )
        named = next((o.name for o in operands if isinstance(o, ir.Name) and o.name in fields), None)
        if named is None:
            return
        roles = fields[named]
        for lit in literals:
            if isinstance(lit, str) and lit not in roles:
                close = difflib.get_close_matches(lit, roles, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                what = "a role" if named == ROLE else f"a {named[: -len(ROLE) - 1]} role"
                raise self.fail(node, f"{lit!r} is not {what}; roles: {', '.join(roles)}{hint}")


def _example(fn: str) -> str:
    return {"count": "count(age >= 60)", "any": "any(disabled)", "all": "all(age < 18)"}.get(fn, f"{fn}(income)")


def _aggregate_hint(name: str, t: str) -> str:
    if t == BOOL:
        return f"any({name}), all({name}) or count({name})"
    if t == STR:
        return f"count({name} == '…')"
    return f"sum({name}), max({name}) or count({name} > 0)"


def check_rules(formulas: Mapping[str, str], scope: Scope, model: EntityModel) -> list[ir.Rule]:
    """Parse, order and type every rule of an entity protocol (one order over both levels)."""
    clashes = (set(formulas) & (set(scope.inputs) | set(scope.scalars) | set(scope.tables))) | (
        set(formulas) & FUNCTIONS
    )
    if clashes:
        n = sorted(clashes)[0]
        raise RuleError(f"rule name {n!r} clashes with an input, parameter or function", rule=n)
    out = []
    for name in order(dependencies(formulas)):
        c = _EntityChecker(name, scope, model)
        expr = c.check(parse(name, formulas[name]))
        scope.rules[name] = expr.type
        out.append(
            ir.Rule(
                name,
                formulas[name],
                expr,
                frozenset(c.fields),
                frozenset(c.rules),
                frozenset(c.params),
                ir.can_fail(expr),
            )
        )
    return out


__all__ = ["AGGREGATIONS", "ROLE", "EntityModel", "check_rules", "flat_formulas", "parse_model", "role_field"]
