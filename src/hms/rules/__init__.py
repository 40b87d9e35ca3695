"""The rule language: check once, evaluate with either backend.

``RuleSet`` is what the rest of the core uses: ``evaluate`` for one record (the
decision service, test cases) and ``evaluate_columns`` for a population (the
simulation). Both run the same checked IR and must agree exactly; the property
tests in tests/unit/test_rules_backends.py hold them to it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hms.errors import BadInput, EvaluationError, Problems, RuleError, shown
from hms.numbers import MAX_EXACT
from hms.rules import entities as entity_rules
from hms.rules import entity_record, entity_vector, ir, record, references, tables, vector
from hms.rules.check import Scope, check_rules
from hms.rules.ir import BOOL, NUM, STR

_TYPE = {"integer": NUM, "number": NUM, "boolean": BOOL, "string": STR}


@dataclass(frozen=True)
class SubgroupTable:
    """A sub-group entity's table for ``evaluate_groups`` (a household's tax units, one row each).

    ``of_person``: each person's row in this table, in the person table's order. ``ids``: each row's
    id, as messages name it (default: the row number). Every row has members, all in one household.
    """

    columns: Mapping[str, Any]
    of_person: Any
    ids: Any = None


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str  # integer | number | boolean | string
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> InputSpec:
        enum = tuple(d["enum"]) if "enum" in d else None
        return cls(name, d["type"], d.get("minimum"), d.get("maximum"), enum)


_scalar_type, _scalar = tables.scalar_type, tables.scalar


class RuleSet:
    """Checked rules of one protocol, compiled for both backends."""

    def __init__(
        self,
        inputs: Mapping[str, Mapping[str, Any]],
        parameters: Mapping[str, Any],
        rules: Mapping[str, Any],
        outputs: Iterable[str],
        *,
        period: str | None = None,
        entities: Mapping[str, Any] | None = None,
    ) -> None:
        """``period``: what the parameters' values are for (dated parameters); missing-key errors name it."""
        self._source = (inputs, parameters, rules, tuple(outputs), entities)
        self.period = period
        self.inputs = {n: InputSpec.from_dict(n, d) for n, d in inputs.items()}
        # Entities (hms.rules.entities): None for a flat protocol, whose rules are all strings.
        self.model: entity_rules.EntityModel | None = None
        if entities is not None:
            self.model, rules = entity_rules.parse_model(entities, inputs, rules)
        else:
            rules = entity_rules.flat_formulas(rules, inputs)
        self.params: dict[str, Any] = {}
        self.tables: dict[str, tables.Table] = {}
        # Each parameter's and rule's legal reference (hms.rules.references), for explanations only.
        self.references: dict[str, str] = {
            n: ref for n, d in self._source[2].items() if (ref := references.of_rule(d)) is not None
        }
        for name, raw in parameters.items():
            value, ref = references.unwrap(raw)
            if ref is not None:
                self.references[name] = ref
            if isinstance(value, Mapping):
                try:
                    self.tables[name] = tables.parse(name, value, period)
                except tables.TableError as e:
                    if ref is None:
                        raise
                    raise tables.TableError(e.message, (name, references.VALUE, *e.path[1:])) from None
            else:
                self.params[name] = _scalar(value)
        clash = set(self.params) & set(self.inputs) | set(self.tables) & set(self.inputs)
        if clash:
            n = sorted(clash)[0]
            raise RuleError(f"parameter {n!r} has the same name as an input", where=f"parameters.{n}")
        scope = Scope(
            {n: _TYPE[s.type] for n, s in self.inputs.items()}
            | ({r: STR for r in self.model.role_fields()} if self.model is not None else {}),
            {n: _scalar_type(v) for n, v in self.params.items()},
            self.tables,
            {},
        )
        self.rules: list[ir.Rule] = (
            check_rules(rules, scope) if self.model is None else entity_rules.check_rules(rules, scope, self.model)
        )
        self.by_name = {r.name: r for r in self.rules}
        self.outputs = list(outputs)
        for o in self.outputs:
            if o not in self.by_name:
                close = difflib.get_close_matches(o, list(self.by_name), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise RuleError(f"output {o!r} is not a rule{hint}", where="outputs")
        compile_rule = record.compile_rule if self.model is None else entity_record.compile_rule
        self._record_fns = {r.name: compile_rule(r, self.params, self.tables) for r in self.rules}
        self._vtables = {n: vector.Table(t) for n, t in self.tables.items()}

    def with_parameters(self, parameters: Mapping[str, Any], *, period: str | None = None) -> RuleSet:
        """The same rules over other parameter values of the same shapes (a dated parameter's value for a period)."""
        inputs, _, rules, outputs, entities = self._source
        return RuleSet(inputs, parameters, rules, outputs, period=period, entities=entities)

    def with_case(self, parameters: Mapping[str, Any], pins: Mapping[str, Any]) -> RuleSet:
        """The same rules with some parameters replaced and some rules pinned to a value.

        Published microsimulation test suites state cases "with the FY2021 deductions" or give an
        intermediate amount (a countable income) instead of the facts behind it. Rebuilding from the
        source keeps one definition of evaluation: a pinned rule becomes a constant, so both backends
        run it the way they run any rule.
        """
        inputs, params, rules, outputs, entities = self._source
        unknown = [n for n in parameters if n not in params]
        if unknown:
            name = unknown[0]
            raise BadInput(f"parameter {name!r} is not a parameter of the protocol", where=f"parameters.{name}")
        for name, value in parameters.items():
            if isinstance(value, Mapping) != isinstance(references.unwrap(params[name])[0], Mapping):
                shape = "a table" if isinstance(references.unwrap(params[name])[0], Mapping) else "a single value"
                raise BadInput(f"parameter {name!r} is {shape} in the protocol", where=f"parameters.{name}")
        new_rules = dict(rules)
        for name, value in pins.items():
            if name not in self.by_name:
                raise BadInput(f"{name!r} is not a rule (only rules can be pinned)", where=f"pin.{name}")
            want = self.type_of(name)
            if _scalar_type(value) != want:
                raise BadInput(f"rule {name!r} is a {want}; cannot pin it to {value!r}", where=f"pin.{name}")
            constant = repr(_scalar(value)) if want == NUM else repr(value)
            old = rules[name]  # an entity protocol's rule may be {entity, formula}: it stays about its entity
            new_rules[name] = {**old, "formula": constant} if isinstance(old, Mapping) else constant
        try:
            return RuleSet(inputs, {**params, **parameters}, new_rules, outputs, period=self.period, entities=entities)
        except RuleError as e:
            raise BadInput(e.message, where=e.where) from None

    # ---- what the rules read (compliance, population checks) ------------------
    def fields_read(self, rule: str | None = None) -> set[str]:
        """Input fields a rule reads, directly or through the rules it uses (all rules when None)."""
        names = [rule] if rule else list(self.by_name)
        seen: set[str] = set()
        out: set[str] = set()
        while names:
            r = self.by_name[names.pop()]
            if r.name in seen:
                continue
            seen.add(r.name)
            out |= r.reads_fields
            names.extend(r.reads_rules)
        return out

    def type_of(self, rule: str) -> str:
        return self.by_name[rule].expr.type

    # ---- per-record ----------------------------------------------------------
    def coerce_record(self, rec: Any, *, where: str = "input", every_error: bool = False) -> dict[str, Any]:
        """Check a record against the declared inputs; numbers become floats.

        An entity protocol's record is a household, ``{household: {...}, members: [...]}``. The first problem
        is raised; with ``every_error`` each field's problem is found and raised together (``BadInputs``),
        so a caller fixing a form sees every field at once (the decision service's 422).
        """
        problems = Problems(every_error)
        if self.model is not None:
            hh = entity_record.coerce_household(
                self.model,
                self.group_specs(),
                self.person_specs(),
                rec,
                _coerce_value,
                where,
                problems,
                self.sub_specs(),
            )
            problems.raise_any()
            return hh  # type: ignore[return-value]
        if not isinstance(rec, Mapping):
            raise BadInput("input must be an object of field values", where=where)
        for key in (k for k in rec if k not in self.inputs):
            close = difflib.get_close_matches(str(key), list(self.inputs), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.add(BadInput(f"unknown field {key!r}{hint}", where=f"{where}.{key}"))
        out: dict[str, Any] = {}
        for name, spec in self.inputs.items():
            if name not in rec:
                problems.add(BadInput("missing field", where=f"{where}.{name}"))
            else:
                out[name] = problems.check(_coerce_value, spec, rec[name], f"{where}.{name}")
        problems.raise_any()
        return out

    def evaluate(self, rec: Mapping[str, Any], *, validated: bool = False) -> dict[str, Any]:
        """Every rule's value for one record (ordered); errors name rule and record.

        Entity protocols: a group rule's value is a scalar, a person rule's a list in member order.
        """
        if self.model is not None:
            hh = entity_record.coerce_household(
                self.model,
                self.group_specs(),
                self.person_specs(),
                rec,
                _coerce_value,
                "input",
                sub_specs=self.sub_specs(),
            )
            return entity_record.evaluate(self.rules, self.model, self._record_fns, hh)
        v = dict(rec) if validated else self.coerce_record(rec)
        for r in self.rules:
            try:
                value = self._record_fns[r.name](v)
            except record._Fail as e:
                raise EvaluationError(str(e), rule=r.name, record=dict(rec)) from None
            except (ZeroDivisionError, OverflowError, ValueError) as e:
                raise EvaluationError(str(e), rule=r.name, record=dict(rec)) from None
            if r.expr.type == NUM and not math.isfinite(value):
                raise EvaluationError("result is not a finite number (overflow)", rule=r.name, record=dict(rec))
            v[r.name] = value
        return {r.name: v[r.name] for r in self.rules}

    def decide(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        """The declared outputs for one record."""
        values = self.evaluate(rec)
        return {o: values[o] for o in self.outputs}

    # ---- vectorized ----------------------------------------------------------
    def coerce_columns(
        self, columns: Mapping[str, Any], *, where: str = "population", first_row: int = 0
    ) -> tuple[dict[str, Any], int]:
        """Check the columns the rules read; numbers become float64 arrays. ``first_row``: the row number of
        the columns' first row in their file (a streamed batch), so a refusal names the file's row."""
        out, n = _coerce_table(self.inputs, self.fields_read(), columns, where, first_row)
        if n is None:
            n = len(next(iter(columns.values()))) if columns else 0
        return out, n

    def coerce_column(self, name: str, column: Any, *, where: str = "population") -> np.ndarray:
        """One column checked against input ``name``'s declaration (``BadInput`` says the first bad row)."""
        return _coerce_column(self.inputs[name], np.asarray(column), where)

    def evaluate_columns(
        self, columns: Mapping[str, Any], *, validated: bool = False, n: int | None = None
    ) -> dict[str, np.ndarray]:
        """Every rule's values over a population (arrays of one row per record)."""
        if self.model is not None:
            raise BadInput(
                f"this protocol declares {self.model.plural}: evaluate a {self.model.group} table with "
                f"its {self.model.person} table (evaluate_groups)"
            )
        if validated:
            values = dict(columns)
            if n is None:
                n = len(next(iter(values.values()))) if values else 0
        else:
            values, n = self.coerce_columns(columns)
        ev = vector.Evaluator(values, self.params, self._vtables, n)
        for r in self.rules:
            ev.rule = r.name
            with np.errstate(all="ignore"):
                out = ev.ev(r.expr, None, r.can_fail)
            out = np.broadcast_to(np.asarray(out, dtype=_DTYPE[r.expr.type]), (n,))
            if r.expr.type == NUM:
                ev.check(np.isfinite(out), None, "result is not a finite number (overflow)")
            values[r.name] = out
        found = vector.first_failure(ev.failures, n)
        if found is not None:
            failure, row = found
            raise EvaluationError(failure.text(row), rule=failure.rule, row=row, record=_row(values, self.inputs, row))
        return {r.name: values[r.name] for r in self.rules}

    # ---- entities --------------------------------------------------------------
    def entity_of(self, rule: str) -> str | None:
        """The entity a rule is about (None for a flat protocol)."""
        return None if self.model is None else self.model.rule_entity[rule]

    def group_specs(self) -> dict[str, InputSpec]:
        m = self.model
        return {} if m is None else {n: self.inputs[n] for n in m.group_inputs()}

    def sub_specs(self) -> dict[str, dict[str, InputSpec]]:
        """Each sub-group entity's inputs (a household's tax units)."""
        m = self.model
        return {} if m is None else {g: {n: self.inputs[n] for n in m.sub_inputs(g)} for g in m.subgroups}

    def person_specs(self) -> dict[str, InputSpec]:
        """Person inputs, and each role field (``role``, ``tax_unit_role``) of an entity declaring roles."""
        m = self.model
        if m is None:
            return {}
        specs = {n: self.inputs[n] for n in m.person_inputs()}
        for name, roles in m.role_fields().items():
            specs[name] = InputSpec(name, "string", enum=roles)
        return specs

    def evaluate_groups(
        self,
        group_columns: Mapping[str, Any],
        person_columns: Mapping[str, Any],
        member_of: Any,
        *,
        n: int | None = None,
        where: str = "population",
        subgroups: Mapping[str, SubgroupTable] | None = None,
    ) -> entity_vector.Grouped:
        """Every rule over a household table and its person table (``member_of``: each person's household row).

        Vectorized with segment reductions; values agree exactly with ``evaluate`` per household.
        Persons may come in any order; within a household their order is the member order.
        ``subgroups``: each sub-group entity's table (a household's tax units) and each person's row in it.
        """
        m = self.model
        if m is None:
            raise BadInput("this protocol declares no entities: use evaluate_columns")
        read = self.fields_read()
        gcols, n_rows = _coerce_table(self.group_specs(), read, group_columns, f"{where} ({m.group} table)")
        if n is not None and n_rows is not None and n != n_rows:
            raise BadInput(f"the {m.group} table has {n_rows} rows, expected {n}", where=where)
        n = n_rows if n_rows is not None else n
        pcols, m_rows = _coerce_table(self.person_specs(), read, person_columns, f"{where} ({m.person} table)")
        idx = _row_index(member_of, f"{m.group} index of the {m.person} table", where)
        if m_rows is not None and len(idx) != m_rows:
            raise BadInput(f"{m.group} index has {len(idx)} rows, the {m.person} table {m_rows}", where=where)
        if n is None:
            n = int(idx.max()) + 1 if len(idx) else 0
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            r = int(np.argmax((idx < 0) | (idx >= n)))
            raise BadInput(f"{m.person} row {r} belongs to {m.group} row {idx[r]}, which does not exist", where=where)
        counts = np.bincount(idx, minlength=n)
        if n and counts.min() == 0:
            raise BadInput(f"{m.group} row {int(np.argmin(counts))} has no members", where=where)
        subs_raw = self._subgroup_tables(subgroups, idx, read, where)
        ordered = bool(np.all(idx[1:] >= idx[:-1]))  # a population's person table is kept sorted
        order = np.arange(len(idx)) if ordered else np.argsort(idx, kind="stable")
        sorted_p = dict(pcols) if ordered else {k: np.asarray(v)[order] for k, v in pcols.items()}
        seg = entity_vector.Segments(idx if ordered else idx[order], n)
        subs = {}
        for g, (cols, of_person, record_of, ids) in subs_raw.items():
            of_sorted = of_person if ordered else of_person[order]
            first = np.full(len(record_of), len(idx), dtype=np.int64)
            np.minimum.at(first, of_sorted, np.arange(len(idx)))
            subs[g] = entity_vector.SubInput(cols, of_sorted, record_of, first, ids)
        entity_of = {
            r.name: "group" if (e := m.rule_entity[r.name]) == m.group else e if e in m.subgroups else "person"
            for r in self.rules
        }
        grouped, failures, gvalues = entity_vector.evaluate(
            self.rules, entity_of, gcols, sorted_p, seg, self.params, self._vtables, subs
        )
        found = vector.first_failure(failures, n)
        if found is not None:
            failure, row = found
            members = range(int(seg.starts[row]), int(seg.starts[row] + seg.counts[row]))
            people = [_row(sorted_p, self.person_specs(), p) for p in members]
            record_: dict[str, Any] = {m.group: _row(gvalues, self.group_specs(), row), m.plural: people}
            for g, sub in subs.items():
                for k, p in enumerate(members):
                    people[k][g] = entity_record.label(sub.ids[sub.of_person[p]])
                rows = sorted(
                    set(sub.of_person[members.start : members.stop].tolist()), key=lambda j: sub.first_person[j]
                )
                if self.sub_specs()[g]:
                    record_[m.plural_of(g)] = [
                        {"id": entity_record.label(sub.ids[j]), **_row(sub.columns, self.sub_specs()[g], j)}
                        for j in rows
                    ]
            raise EvaluationError(failure.text(row), rule=failure.rule, row=row, record=record_)
        if ordered:
            return grouped
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        person = {k: v[inverse] for k, v in grouped.person.items()}
        return entity_vector.Grouped(dict(grouped.group), person, grouped.sub)

    def _subgroup_tables(
        self, tables_: Mapping[str, SubgroupTable] | None, idx: np.ndarray, read: set[str], where: str
    ) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, Any]]:
        """Each sub-group table checked against the persons (person order as given): its columns, each
        person's row, each row's household row, and the row ids."""
        m = self.model
        assert m is not None
        tables_ = tables_ or {}
        for g in tables_:
            if g not in m.subgroups:
                known = ", ".join(m.subgroups) or "none"
                raise BadInput(f"{g!r} is not a sub-group entity of this protocol (sub-groups: {known})", where=where)
        out = {}
        for g in m.subgroups:
            if g not in tables_:
                raise BadInput(f"missing the {g} table and each {m.person}'s {g} (sub-group entity)", where=where)
            t = tables_[g]
            at = f"{where} ({g} table)"
            cols, n_rows = _coerce_table(self.sub_specs()[g], read, t.columns, at)
            of = _row_index(t.of_person, f"{g} index of the {m.person} table", where)
            if len(of) != len(idx):
                raise BadInput(f"{g} index has {len(of)} rows, the {m.person} table {len(idx)}", where=where)
            n_g = n_rows if n_rows is not None else len(t.ids) if t.ids is not None else int(of.max(initial=-1)) + 1
            if t.ids is not None and len(t.ids) != n_g:
                raise BadInput(f"the {g} table has {n_g} rows and {len(t.ids)} ids", where=at)
            if len(of) and (of.min() < 0 or of.max() >= n_g):
                r = int(np.argmax((of < 0) | (of >= n_g)))
                raise BadInput(f"{m.person} row {r} belongs to {g} row {of[r]}, which does not exist", where=where)
            counts = np.bincount(of, minlength=n_g)
            if n_g and counts.min() == 0:
                raise BadInput(f"{g} row {int(np.argmin(counts))} has no members", where=at)
            record_of = np.empty(n_g, dtype=np.int64)
            record_of[of] = idx
            mixed = record_of[of] != idx
            if mixed.any():
                r = int(np.argmax(mixed))
                raise BadInput(
                    f"{m.person} row {r} is in {m.group} row {idx[r]} but its {g} (row {of[r]}) is in "
                    f"{m.group} row {record_of[of[r]]}: a {g} is inside one {m.group}",
                    where=where,
                )
            ids = np.asarray(t.ids) if t.ids is not None else np.arange(n_g)
            out[g] = (cols, of, record_of, ids)
        return out


def _row_index(values: Any, what: str, where: str) -> np.ndarray:
    idx = np.asarray(values)
    if idx.dtype.kind not in "iu" and not (idx.dtype.kind == "f" and np.all(idx == np.floor(idx))):
        raise BadInput(f"{what} must be integers", where=where)
    return idx.astype(np.int64)


def _coerce_table(
    specs: Mapping[str, InputSpec], read: set[str], columns: Mapping[str, Any], where: str, first_row: int = 0
) -> tuple[dict[str, np.ndarray], int | None]:
    """The columns of one entity's table that the rules read, checked; and its row count (None: none read)."""
    out: dict[str, np.ndarray] = {}
    n = None
    for name in sorted(read & set(specs)):
        if name not in columns:
            raise BadInput(f"missing column {name!r} (read by the rules)", where=where)
        col = np.asarray(columns[name])
        if n is None:
            n = len(col)
        elif len(col) != n:
            raise BadInput(f"column {name!r} has {len(col)} rows, expected {n}", where=where)
        out[name] = _coerce_column(specs[name], col, f"{where}: column {name!r}", first_row)
    return out, n


_DTYPE = {NUM: np.float64, BOOL: np.bool_, STR: np.str_}


def _row(values: Mapping[str, Any], inputs: Mapping[str, InputSpec], row: int) -> dict[str, Any]:
    out = {}
    for k in inputs:
        if k in values:
            x = np.asarray(values[k])[row]
            out[k] = x.item() if hasattr(x, "item") else x
    return out


def _coerce_value(spec: InputSpec, x: Any, where: str) -> Any:
    t = spec.type
    if t == "boolean":
        if not isinstance(x, bool):
            raise BadInput(f"expected a boolean, got {type(x).__name__}", where=where)
        return x
    if t == "string":
        if not isinstance(x, str):
            raise BadInput(f"expected a string, got {type(x).__name__}", where=where)
        if spec.enum is not None and x not in spec.enum:
            raise BadInput(f"{shown(x)} is not one of {list(spec.enum)}", where=where)
        return x
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise BadInput(
            f"expected {'an integer' if t == 'integer' else 'a number'}, got {type(x).__name__}", where=where
        )
    if isinstance(x, int) and abs(x) > MAX_EXACT:
        raise BadInput("integer too large to be exact (over 2**53)", where=where)
    f = float(x)
    if not math.isfinite(f):
        raise BadInput("expected a finite number", where=where)
    if t == "integer" and not f.is_integer():
        raise BadInput(f"expected an integer, got {shown(x)}", where=where)
    if spec.minimum is not None and f < spec.minimum:
        raise BadInput(f"{shown(x)} is below the minimum {spec.minimum}", where=where)
    if spec.maximum is not None and f > spec.maximum:
        raise BadInput(f"{shown(x)} is above the maximum {spec.maximum}", where=where)
    if spec.enum is not None and f not in spec.enum:
        raise BadInput(f"{shown(x)} is not one of {list(spec.enum)}", where=where)
    return f


def _coerce_column(spec: InputSpec, col: np.ndarray, where: str, first_row: int = 0) -> np.ndarray:
    t = spec.type
    if t == "boolean":
        if col.dtype != np.bool_:
            raise BadInput(f"expected booleans, got {col.dtype}", where=where)
        return col
    if t == "string":
        if col.dtype.kind not in "UO" or (col.dtype.kind == "O" and not all(isinstance(x, str) for x in col)):
            raise BadInput(f"expected strings, got {col.dtype}", where=where)
        col = col.astype(str)
        if spec.enum is not None:
            bad = ~np.isin(col, np.asarray(spec.enum))
            if bad.any():
                r = int(np.argmax(bad))
                raise BadInput(f"row {first_row + r}: {shown(col[r])} is not one of {list(spec.enum)}", where=where)
        return col
    if col.dtype.kind not in "iuf":
        raise BadInput(f"expected numbers, got {col.dtype}", where=where)
    f = col.astype(np.float64, copy=False)
    if len(col) and not (t == "integer" and col.dtype.kind == "f"):
        # Fast path: two reductions clear the whole column (a NaN makes both NaN and fails the test below);
        # only a column that fails them is searched for its first bad row.
        lo, hi = float(col.min()), float(col.max())
        if (
            math.isfinite(lo)
            and math.isfinite(hi)
            and (spec.minimum is None or lo >= spec.minimum)
            and (spec.maximum is None or hi <= spec.maximum)
        ):
            return f
    checks = [(np.isfinite(f), "not a finite number")]
    if t == "integer" and col.dtype.kind == "f":
        checks.append((f == np.floor(f), "not an integer"))
    if spec.minimum is not None:
        checks.append((f >= spec.minimum, f"below the minimum {spec.minimum}"))
    if spec.maximum is not None:
        checks.append((f <= spec.maximum, f"above the maximum {spec.maximum}"))
    for ok, what in checks:
        if not ok.all():
            r = int(np.argmin(ok))
            raise BadInput(f"row {first_row + r}: {shown(f[r])} is {what}", where=where)
    return f


__all__ = ["InputSpec", "RuleError", "RuleSet", "SubgroupTable"]
