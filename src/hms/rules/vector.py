"""Vectorized NumPy backend for simulations over whole populations.

Semantics match the per-record backend exactly: float64 arithmetic, and errors
only where the per-record backend would raise. Python's ``if``/``and``/``or``
short-circuit, so a division in a branch that a row never takes must not fail for
that row; inside subtrees that can fail we carry an *active-row mask* and check
errors only on active rows. Subtrees that cannot fail are computed plainly, which
keeps ordinary rules close to hand-written NumPy speed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hms.rules import ir, money, tables

Mask = np.ndarray | None  # None: every row is active


class Failure:
    """Rows on which one failure site (a division, a lookup, a rule's result) failed."""

    def __init__(self, rule: str, bad: np.ndarray, message: Any) -> None:
        self.rule = rule
        self.bad = bad
        self.message = message  # str, or a function of the row

    def text(self, row: int) -> str:
        return self.message(row) if callable(self.message) else self.message


def first_failure(failures: list[Failure], n: int) -> tuple[Failure, int] | None:
    """The failure the per-record backend would report: lowest row, then evaluation order.

    Per-record evaluation stops at a row's first failing site; vectorized evaluation
    visits sites in the same depth-first, left-to-right, rule-by-rule order but row
    by row in bulk. So the reported failure is the lowest failing row and, for that
    row, the earliest site in evaluation order. Rows after a failure compute garbage
    that can only fail on rows already failed.
    """
    if not failures:
        return None
    row = min(int(np.argmax(np.broadcast_to(f.bad, (n,)))) for f in failures)
    for f in failures:
        if np.broadcast_to(f.bad, (n,))[row]:
            return f, row
    raise AssertionError("unreachable")


class _Level:
    """One key level of a table: each row's key becomes its rank among the level's keys (-1: absent)."""

    def __init__(self, keys: list[Any], numeric: bool) -> None:
        self.keys = np.asarray(sorted(keys), dtype=np.float64 if numeric else str)
        self.dense: np.ndarray | None = None
        small = numeric and len(self.keys) and self.keys[-1] - self.keys[0] <= 4096
        if small and all(float(k).is_integer() for k in self.keys):
            self.lo = self.keys[0]
            self.dense = np.full(int(self.keys[-1] - self.lo) + 1, -1, dtype=np.int64)
            self.dense[(self.keys - self.lo).astype(np.int64)] = np.arange(len(self.keys))

    def rank(self, index: np.ndarray) -> np.ndarray:
        if self.dense is not None:
            rel = index - self.lo
            ok = (rel >= 0) & (rel < len(self.dense)) & (rel == np.floor(rel))
            return np.where(ok, self.dense[np.where(ok, rel, 0).astype(np.int64)], -1)
        pos = np.minimum(np.searchsorted(self.keys, index), len(self.keys) - 1)
        return np.where(self.keys[pos] == index, pos, -1)


class Table:
    """A lookup table prepared for vectorized access.

    One key: each row's rank on the level indexes the values directly. Several:
    the ranks combine into one integer code per row (mixed radix), looked up
    among the sorted codes of the entries.
    """

    def __init__(self, table: tables.Table) -> None:
        self.name = table.name
        self.table = table
        self.levels = [_Level(table.keys_at(i), t == ir.NUM) for i, t in enumerate(table.key_types)]
        self.radix = [len(lv.keys) for lv in self.levels]
        keys = list(table.entries)
        codes = np.zeros(len(keys), dtype=np.int64)
        for i, (lv, n) in enumerate(zip(self.levels, self.radix, strict=True)):
            codes = codes * n + np.searchsorted(lv.keys, np.asarray([k[i] for k in keys], dtype=lv.keys.dtype))
        order = np.argsort(codes)
        self.codes = codes[order]
        self.values = np.asarray(list(table.entries.values()))[order]

    def lookup(self, index: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Values (the default where a key is missing, if the table has one) and a mask of rows found."""
        ok: Any = True
        code: Any = 0
        for lv, n, ix in zip(self.levels, self.radix, index, strict=True):
            r = lv.rank(np.asarray(ix))
            ok = ok & (r >= 0)
            code = code * n + np.maximum(r, 0)
        if len(self.levels) == 1:  # one key: its rank is its entry's position (codes are 0, 1, 2, …)
            pos = code
        else:
            pos = np.minimum(np.searchsorted(self.codes, code), len(self.codes) - 1)
            ok = ok & (self.codes[pos] == code)
        values = self.values[pos]
        if self.table.has_default:
            values = np.where(ok, values, self.table.default)
        return values, ok


def _and(mask: Mask, cond: np.ndarray) -> np.ndarray:
    return cond if mask is None else mask & cond


class Evaluator:
    def __init__(self, values: dict[str, Any], params: Mapping[str, Any], tables: Mapping[str, Table], n: int) -> None:
        self.v = values
        self.p = params
        self.t = tables
        self.n = n
        self.rule = ""
        self.failures: list[Failure] = []

    def check(self, ok: Any, mask: Mask, message: Any) -> None:
        """Record the active rows where ``ok`` is false (never raises: see first_failure)."""
        ok = np.asarray(ok)
        bad = ~ok if mask is None else (mask & ~ok)
        if bad.any():
            self.failures.append(Failure(self.rule, bad, message))

    def ev(self, node: ir.Node, mask: Mask, track: bool) -> Any:
        """Evaluate ``node``; ``track`` is False in subtrees that cannot fail (no mask work)."""
        match node:
            case ir.Const(value=value):
                return value
            case ir.Name(name=name, kind="param"):
                return self.p[name]
            case ir.Name(name=name):
                return self.v[name]
            case ir.Lookup(table=t, keys=ks, may_miss=miss):
                # constant keys get rows too, so a failure names the first active row
                idx = [np.broadcast_to(self.ev(k, mask, track), (self.n,)) for k in ks]
                table = self.t[t]
                values, ok = table.lookup(idx)
                if miss:
                    keys_at = lambda r: tuple(ix[r] for ix in idx)  # noqa: E731 (the failing row is known later)
                    self.check(ok, mask, lambda r: tables.missing_key(table.name, keys_at(r), table.table.period))
                return values
            case ir.Has(table=t, keys=ks):
                return self.t[t].lookup([np.broadcast_to(self.ev(k, mask, track), (self.n,)) for k in ks])[1]
            case ir.BinOp(op=op, left=a, right=b):
                x, y = self.ev(a, mask, track), self.ev(b, mask, track)
                if op == "+":
                    return np.add(x, y)
                if op == "-":
                    return np.subtract(x, y)
                if op == "*":
                    return np.multiply(x, y)
                self.check(np.asarray(y) != 0, mask, "division by zero" if op != "%" else "modulo by zero")
                with np.errstate(divide="ignore", invalid="ignore"):
                    f = {"/": np.divide, "//": np.floor_divide, "%": np.remainder}[op]
                    return f(x, y)
            case ir.Unary(op="not", operand=o):
                return np.logical_not(self.ev(o, mask, track))
            case ir.Unary(op="-", operand=o):
                return np.negative(self.ev(o, mask, track))
            case ir.Unary(operand=o):
                return self.ev(o, mask, track)
            case ir.BoolOp(op=op, values=vs):
                acc = self.ev(vs[0], mask, track)
                for v in vs[1:]:
                    if op == "and":
                        sub = _and(mask, np.asarray(acc, dtype=bool)) if track and ir.can_fail(v) else mask
                        acc = np.logical_and(acc, self.ev(v, sub, track))
                    else:
                        sub = _and(mask, ~np.asarray(acc, dtype=bool)) if track and ir.can_fail(v) else mask
                        acc = np.logical_or(acc, self.ev(v, sub, track))
                return acc
            case ir.Compare(ops=ops, operands=operands):
                left = self.ev(operands[0], mask, track)
                acc: Any = True
                for op, o in zip(ops, operands[1:], strict=True):
                    sub = (
                        _and(mask, np.asarray(acc, dtype=bool))
                        if track and ir.can_fail(o) and acc is not True
                        else mask
                    )
                    right = self.ev(o, sub, track)
                    acc = np.logical_and(acc, _CMP[op](left, right))
                    left = right
                return acc
            case ir.InTuple(operand=o, values=vals, negate=neg):
                x = self.ev(o, mask, track)
                hit = np.isin(x, np.asarray(vals)) if np.ndim(x) else (x in vals)
                return np.logical_not(hit) if neg else hit
            case ir.IfExp(test=t, body=b, orelse=e):
                cond = self.ev(t, mask, track)
                cb = np.asarray(cond, dtype=bool)
                bm = _and(mask, cb) if track and ir.can_fail(b) else mask
                em = _and(mask, ~cb) if track and ir.can_fail(e) else mask
                return np.where(cond, self.ev(b, bm, track), self.ev(e, em, track))
            case ir.Call(func=fn, args=args):
                vs = [self.ev(a, mask, track) for a in args]
                if fn == "min":
                    return _reduce(np.minimum, vs)
                if fn == "max":
                    return _reduce(np.maximum, vs)
                if fn == "abs":
                    return np.abs(vs[0])
                if fn == "floor":
                    return np.floor(vs[0])
                if fn == "ceil":
                    return np.ceil(vs[0])
                if fn in money.MODES:
                    return money.round_array(fn, np.broadcast_to(vs[0], (self.n,)), money.unit_of(float(vs[1])))
                return np.round(vs[0], int(vs[1]) if len(vs) > 1 else 0)
        raise AssertionError(f"unhandled IR node {node!r}")


def _reduce(f: Any, vs: list[Any]) -> Any:
    acc = vs[0]
    for v in vs[1:]:
        acc = f(acc, v)
    return acc


_CMP = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}
