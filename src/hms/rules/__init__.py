"""The rule language: check once, evaluate with either backend.

``RuleSet`` is what the rest of the core uses: ``evaluate`` for one record (the
decision service, test cases) and ``evaluate_columns`` for a population (the
simulation). Both run the same checked IR and must agree exactly; the property
tests in tests/unit/test_rules_backends.py hold them to it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hms.errors import BadInput, EvaluationError, RuleError, shown
from hms.numbers import MAX_EXACT
from hms.rules import ir, record, vector
from hms.rules.check import Scope, check_rules
from hms.rules.ir import BOOL, NUM, STR

_TYPE = {"integer": NUM, "number": NUM, "boolean": BOOL, "string": STR}
INT_KEY = re.compile(r"^-?[0-9]{1,15}$")  # a table key indexed by number


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


def _scalar_type(v: Any) -> str:
    if isinstance(v, bool):
        return BOOL
    if isinstance(v, int | float):
        return NUM
    return STR


def _scalar(v: Any) -> Any:
    return float(v) if _scalar_type(v) == NUM else v


class RuleSet:
    """Checked rules of one protocol, compiled for both backends."""

    def __init__(
        self,
        inputs: Mapping[str, Mapping[str, Any]],
        parameters: Mapping[str, Any],
        rules: Mapping[str, str],
        outputs: Iterable[str],
    ) -> None:
        self._source = (inputs, parameters, rules, tuple(outputs))
        self.inputs = {n: InputSpec.from_dict(n, d) for n, d in inputs.items()}
        self.params: dict[str, Any] = {}
        self.tables: dict[str, dict[Any, Any]] = {}
        tables_types: dict[str, tuple[str, str]] = {}
        for name, value in parameters.items():
            if isinstance(value, Mapping):
                keys = [str(k) for k in value]
                numeric = all(INT_KEY.match(k) for k in keys)
                vtypes = {_scalar_type(v) for v in value.values()}
                if len(vtypes) != 1:
                    raise RuleError(f"values of table {name!r} must all be one type", where=f"parameters.{name}")
                self.tables[name] = {
                    (float(k) if numeric else str(k)): _scalar(v) for k, v in zip(keys, value.values(), strict=True)
                }
                if len(self.tables[name]) != len(keys):  # "1" and "01": the last one would silently win
                    raise RuleError(f"table {name!r} has two keys that are the same number", where=f"parameters.{name}")
                tables_types[name] = (NUM if numeric else STR, vtypes.pop())
            else:
                self.params[name] = _scalar(value)
        clash = set(self.params) & set(self.inputs) | set(self.tables) & set(self.inputs)
        if clash:
            n = sorted(clash)[0]
            raise RuleError(f"parameter {n!r} has the same name as an input", where=f"parameters.{n}")
        scope = Scope(
            {n: _TYPE[s.type] for n, s in self.inputs.items()},
            {n: _scalar_type(v) for n, v in self.params.items()},
            tables_types,
            {},
        )
        self.rules: list[ir.Rule] = check_rules(rules, scope)
        self.by_name = {r.name: r for r in self.rules}
        self.outputs = list(outputs)
        for o in self.outputs:
            if o not in self.by_name:
                close = difflib.get_close_matches(o, list(self.by_name), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise RuleError(f"output {o!r} is not a rule{hint}", where="outputs")
        self._record_fns = {r.name: record.compile_rule(r, self.params, self.tables) for r in self.rules}
        self._vtables = {n: vector.Table(n, t) for n, t in self.tables.items()}

    def with_case(self, parameters: Mapping[str, Any], pins: Mapping[str, Any]) -> RuleSet:
        """The same rules with some parameters replaced and some rules pinned to a value.

        Published microsimulation test suites state cases "with the FY2021 deductions" or give an
        intermediate amount (a countable income) instead of the facts behind it. Rebuilding from the
        source keeps one definition of evaluation: a pinned rule becomes a constant, so both backends
        run it the way they run any rule.
        """
        inputs, params, rules, outputs = self._source
        unknown = [n for n in parameters if n not in params]
        if unknown:
            name = unknown[0]
            raise BadInput(f"parameter {name!r} is not a parameter of the protocol", where=f"parameters.{name}")
        for name, value in parameters.items():
            if isinstance(value, Mapping) != isinstance(params[name], Mapping):
                shape = "a table" if isinstance(params[name], Mapping) else "a single value"
                raise BadInput(f"parameter {name!r} is {shape} in the protocol", where=f"parameters.{name}")
        new_rules = dict(rules)
        for name, value in pins.items():
            if name not in self.by_name:
                raise BadInput(f"{name!r} is not a rule (only rules can be pinned)", where=f"pin.{name}")
            want = self.type_of(name)
            if _scalar_type(value) != want:
                raise BadInput(f"rule {name!r} is a {want}; cannot pin it to {value!r}", where=f"pin.{name}")
            new_rules[name] = repr(_scalar(value)) if want == NUM else repr(value)
        try:
            return RuleSet(inputs, {**params, **parameters}, new_rules, outputs)
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
    def coerce_record(self, rec: Any, *, where: str = "input") -> dict[str, Any]:
        """Check a record against the declared inputs; numbers become floats."""
        if not isinstance(rec, Mapping):
            raise BadInput("input must be an object of field values", where=where)
        extra = [k for k in rec if k not in self.inputs]
        if extra:
            close = difflib.get_close_matches(str(extra[0]), list(self.inputs), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise BadInput(f"unknown field {extra[0]!r}{hint}", where=f"{where}.{extra[0]}")
        out: dict[str, Any] = {}
        for name, spec in self.inputs.items():
            if name not in rec:
                raise BadInput("missing field", where=f"{where}.{name}")
            out[name] = _coerce_value(spec, rec[name], f"{where}.{name}")
        return out

    def evaluate(self, rec: Mapping[str, Any], *, validated: bool = False) -> dict[str, Any]:
        """Every rule's value for one record (ordered); errors name rule and record."""
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
    def coerce_columns(self, columns: Mapping[str, Any], *, where: str = "population") -> tuple[dict[str, Any], int]:
        """Check the columns the rules read; numbers become float64 arrays."""
        needed = sorted(self.fields_read())
        n = None
        out: dict[str, Any] = {}
        for name in needed:
            if name not in columns:
                raise BadInput(f"missing column {name!r} (read by the rules)", where=where)
            col = np.asarray(columns[name])
            if n is None:
                n = len(col)
            elif len(col) != n:
                raise BadInput(f"column {name!r} has {len(col)} rows, expected {n}", where=where)
            out[name] = _coerce_column(self.inputs[name], col, f"{where}: column {name!r}")
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


def _coerce_column(spec: InputSpec, col: np.ndarray, where: str) -> np.ndarray:
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
                raise BadInput(f"row {r}: {shown(col[r])} is not one of {list(spec.enum)}", where=where)
        return col
    if col.dtype.kind not in "iuf":
        raise BadInput(f"expected numbers, got {col.dtype}", where=where)
    f = col.astype(np.float64, copy=False)
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
            raise BadInput(f"row {r}: {shown(f[r])} is {what}", where=where)
    return f


__all__ = ["InputSpec", "RuleError", "RuleSet"]
