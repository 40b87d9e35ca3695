"""Parse and check rule expressions against an allow-list.

Only a small, loop-free subset of Python expression syntax is accepted, so every
rule terminates and cannot reach anything but its declared inputs, parameters and
other rules. Errors name the rule, the column and, for unknown names, the closest
known one.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping

from hms.errors import RuleError
from hms.numbers import MAX_EXACT
from hms.rules import ir, money
from hms.rules.ir import BOOL, NUM, STR
from hms.rules.tables import Table

FUNCTIONS = {"min", "max", "abs", "round", "floor", "ceil", "has", *money.MODES}
_KEY_NAMES = ("a", "b", "c", "d")
MAX_NODES = 500
MAX_DEPTH = 40
MAX_TUPLE = 200

_BIN = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}
_CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_FORBIDDEN = {
    ast.Attribute: "attribute access",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.Lambda: "lambda",
    ast.NamedExpr: "':='",
    ast.Starred: "'*' unpacking",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.JoinedStr: "f-strings",
    ast.Slice: "slices",
    ast.Dict: "dict literals",
    ast.List: "list literals (use a tuple after 'in')",
    ast.Set: "set literals",
}


class Scope:
    """What names a rule may use, with their types."""

    def __init__(
        self,
        inputs: Mapping[str, str],
        scalars: Mapping[str, str],
        tables: Mapping[str, Table],
        rules: Mapping[str, str],
    ) -> None:
        self.inputs = dict(inputs)  # field -> type
        self.scalars = dict(scalars)  # param -> type
        self.tables = dict(tables)  # table -> its keys' and values' types
        self.rules = dict(rules)  # rule -> type (filled as rules are typed)

    def known(self) -> list[str]:
        return [*self.inputs, *self.scalars, *self.tables, *self.rules, *FUNCTIONS]


def parse(rule: str, source: str) -> ast.expr:
    """Syntax and allow-list check: Python's parser, then size and construct limits."""
    if "\x00" in source:
        raise RuleError("NUL byte in expression", rule=rule)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise RuleError(f"syntax error: {e.msg}", rule=rule, column=e.offset or 0) from None
    except (RecursionError, MemoryError, ValueError):
        raise RuleError("expression too deeply nested", rule=rule) from None
    count = 0
    for node in ast.walk(tree):
        count += 1
        for kind, what in _FORBIDDEN.items():
            if isinstance(node, kind):
                raise RuleError(f"not allowed in rules: {what}", rule=rule, column=_col(node))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            raise RuleError("not allowed in rules: '**' (write the multiplication out)", rule=rule, column=_col(node))
    if count > MAX_NODES:
        raise RuleError(f"expression has {count} nodes; the limit is {MAX_NODES}", rule=rule)
    return tree.body


def _col(node: ast.AST) -> int | None:
    col = getattr(node, "col_offset", None)
    return col + 1 if col is not None else None


class _Checker:
    def __init__(self, rule: str, scope: Scope) -> None:
        self.rule = rule
        self.scope = scope
        self.fields: set[str] = set()
        self.rules: set[str] = set()
        self.params: set[str] = set()

    def fail(self, node: ast.AST, message: str) -> RuleError:
        return RuleError(message, rule=self.rule, column=_col(node))

    def expect(self, node: ast.AST, got: ir.Node, want: str, what: str) -> None:
        if got.type != want:
            raise self.fail(node, f"{what} must be {_word(want)}, got {_word(got.type)}")

    def check(self, node: ast.expr, depth: int = 0) -> ir.Node:
        if depth > MAX_DEPTH:
            raise self.fail(node, f"expression nested deeper than {MAX_DEPTH}")
        d = depth + 1
        match node:
            case ast.Constant(value=bool() as v):
                return ir.Const(BOOL, v)
            case ast.Constant(value=int() | float() as v):
                if (isinstance(v, float) and v != v) or v in (float("inf"), float("-inf")):
                    raise self.fail(node, "non-finite constant")
                if isinstance(v, int) and abs(v) > MAX_EXACT:
                    raise self.fail(node, "integer constant larger than 2**53 cannot be exact")
                return ir.Const(NUM, float(v))
            case ast.Constant(value=str() as v):
                return ir.Const(STR, v)
            case ast.Constant():
                raise self.fail(node, f"constant {node.value!r} is not allowed")
            case ast.Name(id=name):
                return self.name(node, name)
            case ast.Subscript(value=ast.Name(id=table), slice=index):
                t = self.table(node, table)
                keys = self.keys(node, t, index.elts if isinstance(index, ast.Tuple) else [index], d, f"{table}[…]")
                return ir.Lookup(t.value_type, table, keys, not t.has_default)
            case ast.Subscript():
                raise self.fail(node, "only a parameter table can be indexed, as table[key]")
            case ast.BinOp(op=op, left=left, right=right):
                sym = _BIN.get(type(op))
                if sym is None:
                    raise self.fail(node, f"operator {type(op).__name__} is not allowed")
                lv, rv = self.check(left, d), self.check(right, d)
                if sym == "+" and lv.type == STR and rv.type == STR:
                    raise self.fail(node, "string concatenation is not allowed")
                self.expect(left, lv, NUM, f"left side of '{sym}'")
                self.expect(right, rv, NUM, f"right side of '{sym}'")
                return ir.BinOp(NUM, sym, lv, rv)
            case ast.UnaryOp(op=ast.Not(), operand=o):
                v = self.check(o, d)
                self.expect(o, v, BOOL, "operand of 'not'")
                return ir.Unary(BOOL, "not", v)
            case ast.UnaryOp(op=ast.USub() | ast.UAdd() as op, operand=o):
                v = self.check(o, d)
                self.expect(o, v, NUM, "operand of unary minus/plus")
                return ir.Unary(NUM, "-" if isinstance(op, ast.USub) else "+", v)
            case ast.UnaryOp():
                raise self.fail(node, "operator '~' is not allowed")
            case ast.BoolOp(op=op, values=values):
                vs = tuple(self.check(v, d) for v in values)
                word = "and" if isinstance(op, ast.And) else "or"
                for src, v in zip(values, vs, strict=True):
                    self.expect(src, v, BOOL, f"operand of '{word}'")
                return ir.BoolOp(BOOL, word, vs)
            case ast.Compare(left=left, ops=[ast.In() | ast.NotIn() as op], comparators=[ast.Tuple(elts=elts)]):
                operand = self.check(left, d)
                if len(elts) > MAX_TUPLE:
                    raise self.fail(node, f"tuple after 'in' has more than {MAX_TUPLE} items")
                values = []
                for e in elts:
                    c = self.check(e, d)
                    if not isinstance(c, ir.Const):
                        raise self.fail(e, "the tuple after 'in' must hold literals only")
                    self.expect(e, c, operand.type, "items of the tuple after 'in'")
                    values.append(c.value)
                return ir.InTuple(BOOL, operand, tuple(values), isinstance(op, ast.NotIn))
            case ast.Compare(left=left, ops=ops, comparators=comps):
                operands = [self.check(left, d), *(self.check(c, d) for c in comps)]
                syms = []
                for i, op in enumerate(ops):
                    sym = _CMP.get(type(op))
                    if sym is None:
                        raise self.fail(node, "'in' needs a literal tuple, e.g. x in (1, 2); 'is' is not allowed")
                    a, b = operands[i], operands[i + 1]
                    if a.type != b.type:
                        raise self.fail(node, f"cannot compare {_word(a.type)} with {_word(b.type)}")
                    if a.type in (STR, BOOL) and sym not in ("==", "!="):
                        raise self.fail(node, f"'{sym}' is only for numbers")
                    syms.append(sym)
                return ir.Compare(BOOL, tuple(syms), tuple(operands))
            case ast.IfExp(test=test, body=body, orelse=orelse):
                t, b, e = self.check(test, d), self.check(body, d), self.check(orelse, d)
                self.expect(test, t, BOOL, "condition of 'if'")
                if b.type != e.type:
                    raise self.fail(node, f"both branches must have one type, got {_word(b.type)} and {_word(e.type)}")
                return ir.IfExp(b.type, t, b, e)
            case ast.Call(func=ast.Name(id="has"), args=args, keywords=kws):
                if kws or not args or not isinstance(args[0], ast.Name):
                    raise self.fail(node, "has() takes a table and its keys, e.g. has(rates, size) or has(t, a, b)")
                t = self.table(args[0], args[0].id)
                return ir.Has(BOOL, t.name, self.keys(node, t, args[1:], d, "has()"))
            case ast.Call(func=ast.Name(id=fn), args=args, keywords=kws):
                if fn not in FUNCTIONS:
                    raise self.unknown(node, fn, functions_only=True)
                if kws:
                    raise self.fail(node, f"{fn}() takes no keyword arguments")
                vs = tuple(self.check(a, d) for a in args)
                for a, v in zip(args, vs, strict=True):
                    self.expect(a, v, NUM, f"argument of {fn}()")
                if fn in money.MODES:
                    return self.money(node, fn, vs)
                lo, hi = {"min": (2, 50), "max": (2, 50), "round": (1, 2)}.get(fn, (1, 1))
                if not lo <= len(vs) <= hi:
                    raise self.fail(node, f"{fn}() takes {lo}" + (f" to {hi}" if hi != lo else "") + " arguments")
                if fn == "round" and len(vs) == 2 and not isinstance(vs[1], ir.Const):
                    raise self.fail(node, "round()'s digits must be a literal integer")
                return ir.Call(NUM, fn, vs)
            case ast.Call():
                raise self.fail(node, f"only {', '.join(sorted(FUNCTIONS))} can be called")
            case ast.Tuple():
                raise self.fail(node, "tuples are only allowed after 'in'")
            case _:
                raise self.fail(node, f"{type(node).__name__} is not allowed in rules")

    def table(self, node: ast.AST, name: str) -> Table:
        if name not in self.scope.tables:
            if name in self.scope.inputs or name in self.scope.scalars or name in self.scope.rules:
                raise self.fail(node, f"{name!r} is not a lookup table")
            raise self.unknown(node, name)
        self.params.add(name)
        return self.scope.tables[name]

    def keys(self, node: ast.AST, t: Table, srcs: list[ast.expr], depth: int, what: str) -> tuple[ir.Node, ...]:
        """The keys of a lookup or a has(): as many as the table has levels, each of its level's type."""
        if len(srcs) != t.arity:
            form = f"{t.name}[{', '.join(_KEY_NAMES[: t.arity])}]"
            plural = "s" if t.arity > 1 else ""
            raise self.fail(node, f"table {t.name!r} takes {t.arity} key{plural} ({form}), {what} gives {len(srcs)}")
        keys = tuple(self.check(k, depth) for k in srcs)
        for i, (src, k) in enumerate(zip(srcs, keys, strict=True)):
            which = f"key {i + 1} of table {t.name!r}" if t.arity > 1 else f"index of table {t.name!r}"
            self.expect(src, k, t.key_types[i], which)
        return keys

    def money(self, node: ast.AST, fn: str, vs: tuple[ir.Node, ...]) -> ir.Node:
        """``round_half_up(x, 0.01)``: the unit is a literal, checked here so a bad one fails at load."""
        if len(vs) != 2:
            raise self.fail(node, f"{fn}() takes 2 arguments, the amount and the unit, e.g. {fn}(x, 0.01)")
        unit = vs[1]
        if not isinstance(unit, ir.Const):
            raise self.fail(node, f"{fn}()'s unit must be a literal number: 0.01 (cent), 1 (dollar), 10")
        try:
            money.unit_of(float(unit.value))
        except ValueError as e:
            raise self.fail(node, f"{fn}(): {e}") from None
        return ir.Call(NUM, fn, vs)

    def name(self, node: ast.AST, name: str) -> ir.Node:
        s = self.scope
        if name in s.inputs:
            self.fields.add(name)
            return ir.Name(s.inputs[name], name, "input")
        if name in s.scalars:
            self.params.add(name)
            return ir.Name(s.scalars[name], name, "param")
        if name in s.rules:
            self.rules.add(name)
            return ir.Name(s.rules[name], name, "rule")
        if name in s.tables:
            raise self.fail(node, f"table {name!r} must be indexed, e.g. {name}[key]")
        if name in FUNCTIONS:
            raise self.fail(node, f"{name} is a function: call it, e.g. {name}(a, b)")
        raise self.unknown(node, name)

    def unknown(self, node: ast.AST, name: str, functions_only: bool = False) -> RuleError:
        pool = sorted(FUNCTIONS) if functions_only else self.scope.known()
        close = difflib.get_close_matches(name, pool, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        what = "function" if functions_only else "name"
        return self.fail(node, f"unknown {what} {name!r}{hint}")


def _word(t: str) -> str:
    return {NUM: "a number", BOOL: "a boolean", STR: "a string"}[t]


def dependencies(rules: Mapping[str, str]) -> dict[str, set[str]]:
    """Which rules each rule names (syntactically), for ordering before type checking."""
    deps: dict[str, set[str]] = {}
    for name, source in rules.items():
        tree = parse(name, source)
        deps[name] = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in rules}
    return deps


def order(deps: Mapping[str, set[str]]) -> list[str]:
    """Topological order (declaration order among independents); a cycle is an error naming it."""
    done: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = [*stack[stack.index(n) :], n]
            raise RuleError("rule cycle: " + " -> ".join(cycle), rule=n)
        state[n] = 1
        for d in sorted(deps[n], key=list(deps).index):
            visit(d, [*stack, n])
        state[n] = 2
        done.append(n)

    for n in deps:
        visit(n, [])
    return done


def check_rules(rules: Mapping[str, str], scope: Scope) -> list[ir.Rule]:
    """Parse, order and type every rule; returns them in evaluation order."""
    clashes = (set(rules) & (set(scope.inputs) | set(scope.scalars) | set(scope.tables))) | (set(rules) & FUNCTIONS)
    if clashes:
        n = sorted(clashes)[0]
        raise RuleError(f"rule name {n!r} clashes with an input, parameter or function", rule=n)
    out = []
    for name in order(dependencies(rules)):
        c = _Checker(name, scope)
        expr = c.check(parse(name, rules[name]))
        scope.rules[name] = expr.type
        out.append(
            ir.Rule(
                name, rules[name], expr, frozenset(c.fields), frozenset(c.rules), frozenset(c.params), ir.can_fail(expr)
            )
        )
    return out
