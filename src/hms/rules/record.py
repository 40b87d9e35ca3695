"""Per-record backend: each rule becomes a small compiled Python function.

Used by the decision service and the test cases. Every number is a Python float
(IEEE float64, like the vectorized backend), ``if``/``and``/``or`` short-circuit
as in Python, and the helpers below turn division by zero, a missing table key
or an overflow into an :class:`EvaluationError` naming the rule and the record.
Code generation is safe because it only ever sees checked IR: names are
identifiers from the schema and constants go through ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import numpy as np

from hms.rules import ir, money, tables


class _Fail(Exception):
    """Raised inside generated code; wrapped with the rule and record by the caller."""


def _div(a: float, b: float) -> float:
    if b == 0:
        raise _Fail("division by zero")
    return a / b


def _floordiv(a: float, b: float) -> float:
    if b == 0:
        raise _Fail("division by zero")
    return float(np.floor_divide(a, b))


def _mod(a: float, b: float) -> float:
    if b == 0:
        raise _Fail("modulo by zero")
    return float(np.remainder(a, b))


def _lookup(table: tables.Table, keys: tuple[Any, ...]) -> Any:
    try:
        return table.entries[keys]
    except (KeyError, TypeError):
        if table.has_default:
            return table.default
        raise _Fail(tables.missing_key(table.name, keys, table.period)) from None


def _has(table: tables.Table, keys: tuple[Any, ...]) -> bool:
    try:
        return keys in table.entries
    except TypeError:
        return False


def _round(x: float, digits: float = 0.0) -> float:
    return float(np.round(np.float64(x), int(digits)))


@cache
def _unit(value: float) -> money.Unit:
    return money.unit_of(value)


def _money(mode: str, x: float, unit: float) -> float:
    """Legal rounding in decimal (hms.rules.money's reference implementation)."""
    return money.round_value(mode, x, _unit(unit))


HELPERS = {
    "_div": _div,
    "_floordiv": _floordiv,
    "_mod": _mod,
    "_lookup": _lookup,
    "_has": _has,
    "_round": _round,
    "_money": _money,
    # np.floor / np.ceil as the vectorized backend: an infinity stays one (math.floor raises on it)
    "_floor": lambda x: float(np.floor(x)),
    "_ceil": lambda x: float(np.ceil(x)),
    "min": min,
    "max": max,
    "abs": abs,
}


def source(node: ir.Node) -> str:
    """Python source for ``node`` reading values from ``v`` and tables from ``T``."""
    match node:
        case ir.Const(value=value):
            return repr(value)
        case ir.Name(name=name, kind="param"):
            return f"P[{name!r}]"
        case ir.Name(name=name):
            return f"v[{name!r}]"
        case ir.Lookup(table=t, keys=ks):
            return f"_lookup(T[{t!r}], ({''.join(source(k) + ', ' for k in ks)}))"
        case ir.Has(table=t, keys=ks):
            return f"_has(T[{t!r}], ({''.join(source(k) + ', ' for k in ks)}))"
        case ir.BinOp(op="/", left=a, right=b):
            return f"_div({source(a)}, {source(b)})"
        case ir.BinOp(op="//", left=a, right=b):
            return f"_floordiv({source(a)}, {source(b)})"
        case ir.BinOp(op="%", left=a, right=b):
            return f"_mod({source(a)}, {source(b)})"
        case ir.BinOp(op=op, left=a, right=b):
            return f"({source(a)} {op} {source(b)})"
        case ir.Unary(op="not", operand=o):
            return f"(not {source(o)})"
        case ir.Unary(op=op, operand=o):
            return f"({op}{source(o)})"
        case ir.BoolOp(op=op, values=vs):
            return "(" + f" {op} ".join(source(v) for v in vs) + ")"
        case ir.Compare(ops=ops, operands=operands):
            parts = [source(operands[0])]
            for op, o in zip(ops, operands[1:], strict=True):
                parts += [op, source(o)]
            return "(" + " ".join(parts) + ")"
        case ir.InTuple(operand=o, values=vals, negate=neg):
            return f"({source(o)} {'not in' if neg else 'in'} {tuple(vals)!r})"
        case ir.IfExp(test=t, body=b, orelse=e):
            return f"({source(b)} if {source(t)} else {source(e)})"
        case ir.Call(func=fn, args=(x, ir.Const(value=unit))) if fn in money.MODES:
            return f"_money({fn!r}, {source(x)}, {unit!r})"
        case ir.Call(func=fn, args=args):
            name = {"round": "_round", "floor": "_floor", "ceil": "_ceil"}.get(fn, fn)
            return f"{name}(" + ", ".join(source(a) for a in args) + ")"
        case ir.Aggregate(func=fn, arg=a, over=None):
            # Members are ``M`` (hms.rules.entity_record); inside, ``v`` is one member's values.
            return f"_aggregate({fn!r}, M, lambda v: {source(a)})"
        case ir.Aggregate(func=fn, arg=a, over=sub):
            # A record's sub-groups are ``M.subs[sub]``; inside, ``v`` is one sub-group's values.
            return f"_aggregate({fn!r}, M.subs[{sub!r}], lambda v: {source(a)})"
    raise AssertionError(f"unhandled IR node {node!r}")


def compile_rule(rule: ir.Rule, params: Mapping[str, Any], tables: Mapping[str, Any]) -> Callable[[dict], Any]:
    code = compile(f"lambda v: {source(rule.expr)}", f"<rule {rule.name}>", "eval")
    env = {"__builtins__": {}, "P": dict(params), "T": dict(tables), **HELPERS}
    return eval(code, env)


__all__ = ["HELPERS", "_Fail", "compile_rule", "source"]
