"""Why a decision came out as it did, provision by provision: the explanation a notice of action quotes.

A citizen denied a benefit is owed a notice saying why and under which provision. ``explain(ruleset, record)``
returns, per output, its rule's expression, every rule it depends on (transitively) with its value for this
record, each input and parameter value the rules actually read (a table lookup with the key looked up and the
value found, ``fpl[4] = 31,200``), the legal reference of each parameter and rule (hms.rules.references), and
for a boolean outcome a one-line notice built from the deciding comparison: the first failing conjunct of an
``and``, the first succeeding disjunct of an ``or``, followed through the rules it names::

    not eligible: household_income 124,801 > income_limit_pct 4 × poverty_line 31,200 = 124,800
      — Pub. L. 118-XX, sec. 3(b); income_limit_pct: Pub. L. 118-XX, sec. 3(b)(1)

The values are derived here, by a small interpreter over the checked IR that reads only what evaluation reads
(``if``/``and``/``or`` short-circuit, so an untaken branch's inputs are not listed) and does each operation
with the per-record backend's own helpers (hms.rules.record, entity_record). Each rule's value is then
compared with the per-record backend's: a disagreement is said in the explanation's notes, never hidden; the
property test (tests/unit/test_explanations.py) holds the explanation to both backends over random records.
Entity protocols: a person rule's value is a list in member order, each read says whose it is (``member 1``),
and an aggregation lists each member's value of its expression and the result.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hms.rules import entity_record, ir, money, record

NOTICE_DASH = " — "
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}
_NEGATED = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_SHOWN_OP = {"*": "×"}
_MISSING = object()


# ---- what an explanation says (typed; the decision service renders it as pydantic models) ---------------------


@dataclass(frozen=True)
class Read:
    """One input or parameter value a rule read; for a table, the key looked up and the value found.

    In an entity protocol a member's (or sub-group's) value is read once per member: ``who`` names them
    (``("member 0", "member 2")``: the members whose evaluation read it) and ``value`` is the list of their
    values, in that order. ``who`` None: the record's value (a household input, a parameter). ``from_default``:
    the table had no entry for the key and its ``default`` answered.
    """

    name: str
    kind: str  # "input" | "parameter" | "table"
    value: Any
    key: tuple[Any, ...] | None = None
    who: tuple[str, ...] | None = None
    reference: str | None = None
    from_default: bool = False

    @property
    def text(self) -> str:
        """``fpl[4] = 31,200``; ``age: member 0 = 35, member 1 = 70``."""
        head = f"{self.name}[{', '.join(fmt(k) for k in self.key)}]" if self.key is not None else self.name
        tail = " (the table's default: no entry for this key)" if self.from_default else ""
        if self.who is None:
            return f"{head} = {fmt(self.value)}{tail}"
        each = ", ".join(f"{w} = {fmt(x)}" for w, x in zip(self.who, self.value, strict=True))
        return f"{head}: {each}{tail}"


@dataclass(frozen=True)
class Aggregation:
    """``sum/count/any/all/min/max`` over a group's members (or a record's sub-groups): each one's value, then the
    result. ``at``: the group it ran in (None: the record)."""

    expression: str
    over: str  # "members", or a sub-group's plural ("tax_units")
    who: tuple[str, ...]
    values: tuple[Any, ...]
    result: Any
    at: str | None = None


@dataclass(frozen=True)
class RuleStep:
    """One rule evaluated for this record: its expression, value, reference, and what it read.

    ``value`` is a scalar for a record-level rule and a list for a person or sub-group rule, ``who`` naming each
    entry. ``rules_read``: the rules its expression read directly (their own steps say what they read).
    """

    name: str
    expression: str
    value: Any
    reference: str | None = None
    entity: str | None = None
    who: tuple[str, ...] | None = None
    reads: tuple[Read, ...] = ()
    rules_read: tuple[str, ...] = ()
    aggregations: tuple[Aggregation, ...] = ()


@dataclass(frozen=True)
class OutputExplanation:
    """One output: its rule, the rules it depends on (transitively, in evaluation order) and, for a boolean
    outcome, the notice sentence naming the deciding comparison and its provisions."""

    name: str
    value: Any
    rule: RuleStep
    depends_on: tuple[RuleStep, ...]
    notice: str | None = None
    references: tuple[str, ...] = ()  # the provisions the notice cites, in order


@dataclass(frozen=True)
class Explanation:
    """Every output of one decision explained. ``notes``: what could not be explained precisely (said, never
    omitted). ``months``: a period evaluated month by month (``period.straddle: sum_months``), one each."""

    outputs: tuple[OutputExplanation, ...]
    rules: tuple[RuleStep, ...] = ()  # each output's rule and those they depend on, once each, in evaluation order
    authority: str | None = None
    period: str | None = None
    notes: tuple[str, ...] = ()
    months: tuple[Explanation, ...] = ()


# ---- numbers as a notice writes them --------------------------------------------------------------------------


def fmt(x: Any, exact: bool = True) -> str:
    """52,000 for 52000.0, 0.2 for 0.2, true/false, 'text' quoted. ``exact=False`` (a notice's sentence): amounts
    from 100 to the cent, smaller numbers to 6 significant digits; the structured values stay exact."""
    t = type(x)
    if t is str:
        return repr(x)
    if t is int:
        return f"{x:,}"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        if x.is_integer() and abs(x) < 2**53:
            return f"{int(x):,}"
        if not exact:
            return f"{x:,.2f}" if abs(x) >= 100 else f"{x:,.6g}"
        return f"{x:,}"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, str):
        return repr(x)
    if isinstance(x, list | tuple):
        return "[" + ", ".join(fmt(v) for v in x) + "]"
    return str(x)


# ---- the interpreter ------------------------------------------------------------------------------------------


class _Trace:
    """What one rule read while being evaluated (over every member for a person rule)."""

    __slots__ = ("aggregations", "reads", "rules")

    def __init__(self) -> None:
        # (name, key) -> [kind, reference, from_default, value, {who: value}]: the record's value, or each member's
        self.reads: dict[tuple[Any, ...], list[Any]] = {}
        self.rules: dict[str, None] = {}
        self.aggregations: list[Aggregation] = []


class _Interpreter:
    """Evaluates checked IR exactly as hms.rules.record's generated code does, recording what it reads.

    ``v`` is the values in scope (inputs and rules computed so far; a member's, with its household's projected),
    ``M`` the members an aggregation runs over. ``trace`` None evaluates without recording (the notice's
    re-reading of the deciding comparison).
    """

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.references = plan.references
        self.trace: _Trace | None = None
        self.who: str | None = None
        self.at: str | None = None

    def read(self, name: str, kind: str, value: Any, key: tuple[Any, ...] | None = None,
             from_default: bool = False, per_member: bool = True) -> None:
        """``per_member`` False: the record's value (a parameter, a household input), read once for everyone."""
        t = self.trace
        if t is None:
            return
        who = self.who if per_member else None
        k = (name, key)
        entry = t.reads.get(k)
        if entry is None:
            entry = t.reads[k] = [kind, self.references.get(name), from_default, value, None if who is None else {}]
        if who is not None and entry[4] is not None:
            entry[4].setdefault(who, value)

    def ev(self, node: ir.Node, v: Mapping[str, Any], M: Any) -> Any:
        return self.plan.fn(node)(v, M, self)

    def aggregate(self, shown: str, fn: str, arg: _Fn, members: Any, sub: str | None) -> Any:
        labels, values = [], []
        outer = self.who
        k = 0

        def each(m: Mapping[str, Any]) -> Any:
            nonlocal k
            self.who = members.label(k)
            k += 1
            x = arg(m, None, self)
            labels.append(self.who)
            values.append(x)
            return x

        try:
            result = entity_record._aggregate(fn, members, each)  # the per-record backend's own reduction
        finally:
            self.who = outer
        if self.trace is not None:
            self.trace.aggregations.append(
                Aggregation(shown, sub or "members", tuple(labels), tuple(values), result, self.at)
            )
        return result


# ---- what every explanation of a rule set shares, prepared once per rule set --------------------------------

_Fn = Callable[[Mapping[str, Any], Any, "_Interpreter"], Any]


@dataclass(frozen=True)
class _RulePlan:
    """A rule's part of every explanation that does not depend on the record."""

    rule: ir.Rule
    expression: str
    reference: str | None
    entity: str | None
    per_entry: bool  # a person or sub-group rule: one value per member (or sub-group), each named


class _Plan:
    """Everything an explanation of one rule set needs that no record changes: its IR compiled to closures
    (each parameter's value and every name's reference bound in), each output's dependencies, the rules any
    output needs with their expression text and reference. Built on a rule set's first explanation and kept as
    long as the rule set is (a replica's bundle; one per period of a dated protocol), so an answer only
    evaluates and formats values."""

    def __init__(self, rs: Any) -> None:
        self.rs = rs
        self.params, self.tables, self.references = rs.params, rs.tables, rs.references
        # record-level names: read once, not once per member
        self.group_names = frozenset(rs.model.group_inputs()) if rs.model is not None else frozenset()
        self._fns: dict[int, _Fn] = {}  # IR nodes live as long as their rule set, so their id is a stable key
        self.deps = {o: _dependencies(rs, o) for o in rs.outputs}
        needed = frozenset(rs.outputs).union(*self.deps.values())
        self.steps = [
            _RulePlan(r, r.source.strip(), rs.references.get(r.name), rs.entity_of(r.name),
                      rs.model is not None and rs.entity_of(r.name) != rs.model.group)
            for r in rs.rules if r.name in needed  # a rule no output reads is not part of why
        ]

    def fn(self, node: ir.Node) -> _Fn:
        fn = self._fns.get(id(node))
        if fn is None:
            fn = self._fns[id(node)] = _compile(self, node)
        return fn


_BY_RULESET: weakref.WeakKeyDictionary[Any, _Plan] = weakref.WeakKeyDictionary()


def _plan(rs: Any) -> _Plan:
    got = _BY_RULESET.get(rs)
    if got is None:
        got = _BY_RULESET[rs] = _Plan(rs)
    return got


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul,
    "/": record._div, "//": record._floordiv, "%": record._mod,
}


def _compile(plan: _Plan, node: ir.Node) -> _Fn:
    """Python's own operators and hms.rules.record's helpers, in the order its generated code runs them."""
    c = plan.fn
    match node:
        case ir.Const(value=x):
            return lambda v, M, st: x
        case ir.Name(name=n, kind="param"):
            x, k, ref = plan.params[n], (n, None), plan.references.get(n)

            def param(v: Any, M: Any, st: _Interpreter) -> Any:
                t = st.trace
                if t is not None and k not in t.reads:
                    t.reads[k] = ["parameter", ref, False, x, None]
                return x
            return param
        case ir.Name(name=n, kind="rule"):
            def rule(v: Any, M: Any, st: _Interpreter) -> Any:
                if st.trace is not None:
                    st.trace.rules[n] = None
                return v[n]
            return rule
        case ir.Name(name=n) if n in plan.group_names or plan.rs.model is None:
            k, ref = (n, None), plan.references.get(n)

            def record_field(v: Any, M: Any, st: _Interpreter) -> Any:
                x = v[n]
                t = st.trace
                if t is not None and k not in t.reads:
                    t.reads[k] = ["input", ref, False, x, None]
                return x
            return record_field
        case ir.Name(name=n):
            def field_(v: Any, M: Any, st: _Interpreter) -> Any:
                x = v[n]
                st.read(n, "input", x)
                return x
            return field_
        case ir.Lookup(table=t, keys=ks):
            fks = [c(k) for k in ks]
            table = plan.tables[t]

            def lookup(v: Any, M: Any, st: _Interpreter) -> Any:
                keys = tuple(f(v, M, st) for f in fks)
                x = record._lookup(table, keys)
                if st.trace is not None:
                    st.read(t, "table", x, keys, not record._has(table, keys))
                return x
            return lookup
        case ir.Has(table=t, keys=ks):
            fks = [c(k) for k in ks]
            table = plan.tables[t]
            return lambda v, M, st: record._has(table, tuple(f(v, M, st) for f in fks))
        case ir.BinOp(op=op, left=a, right=b):
            fa, fb, f = c(a), c(b), _ARITH[op]
            return lambda v, M, st: f(fa(v, M, st), fb(v, M, st))
        case ir.Unary(op=op, operand=o):
            fo = c(o)
            if op == "not":
                return lambda v, M, st: not fo(v, M, st)
            if op == "-":
                return lambda v, M, st: -fo(v, M, st)
            return lambda v, M, st: +fo(v, M, st)
        case ir.BoolOp(op=op, values=vs):
            fs = [c(e) for e in vs]
            stop = op == "or"  # "and" stops at the first false value, "or" at the first true one

            def boolop(v: Any, M: Any, st: _Interpreter) -> Any:
                out = not stop
                for f in fs:
                    out = f(v, M, st)
                    if bool(out) == stop:
                        return out
                return out
            return boolop
        case ir.Compare(ops=(op,), operands=(a, b)):
            fa, fb, cmp = c(a), c(b), _CMP[op]
            return lambda v, M, st: cmp(fa(v, M, st), fb(v, M, st))
        case ir.Compare(ops=ops, operands=operands):
            fs = [c(o) for o in operands]
            cmps = [_CMP[op] for op in ops]

            def compare(v: Any, M: Any, st: _Interpreter) -> bool:
                left = fs[0](v, M, st)
                for cmp, f in zip(cmps, fs[1:], strict=True):
                    right = f(v, M, st)
                    if not cmp(left, right):
                        return False
                    left = right
                return True
            return compare
        case ir.InTuple(operand=o, values=vals, negate=neg):
            fo, members = c(o), tuple(vals)
            if neg:
                return lambda v, M, st: fo(v, M, st) not in members
            return lambda v, M, st: fo(v, M, st) in members
        case ir.IfExp(test=t, body=b, orelse=e):
            ft, fb, fe = c(t), c(b), c(e)
            return lambda v, M, st: fb(v, M, st) if ft(v, M, st) else fe(v, M, st)
        case ir.Call(func=fn, args=(x, ir.Const(value=unit))) if fn in money.MODES:
            fx = c(x)
            return lambda v, M, st: record._money(fn, fx(v, M, st), unit)
        case ir.Call(func=fn, args=args):
            fs = [c(a) for a in args]
            helper = record.HELPERS[{"round": "_round", "floor": "_floor", "ceil": "_ceil"}.get(fn, fn)]
            return lambda v, M, st: helper(*[f(v, M, st) for f in fs])
        case ir.Aggregate(func=fn, arg=a, over=sub):
            fa, shown = c(a), show(node)
            if sub is None:
                return lambda v, M, st: st.aggregate(shown, fn, fa, M, sub)
            return lambda v, M, st: st.aggregate(shown, fn, fa, M.subs[sub], sub)
    raise AssertionError(f"unhandled IR node {node!r}")


# ---- showing an expression ------------------------------------------------------------------------------------


def show(node: ir.Node) -> str:
    """The expression as written (for the parts of a notice evaluated per member: no single value to show)."""
    match node:
        case ir.Const(value=x):
            return fmt(x)
        case ir.Name(name=n):
            return n
        case ir.Lookup(table=t, keys=ks):
            return f"{t}[{', '.join(show(k) for k in ks)}]"
        case ir.Has(table=t, keys=ks):
            return f"has({t}, {', '.join(show(k) for k in ks)})"
        case ir.BinOp(op=op, left=a, right=b):
            return f"{_paren(a)} {_SHOWN_OP.get(op, op)} {_paren(b)}"
        case ir.Unary(op="not", operand=o):
            return f"not {_paren(o)}"
        case ir.Unary(op=op, operand=o):
            return f"{op}{_paren(o)}"
        case ir.BoolOp(op=op, values=vs):
            return f" {op} ".join(_paren(x) for x in vs)
        case ir.Compare(ops=ops, operands=os_):
            return " ".join([_paren(os_[0]), *(f"{op} {_paren(o)}" for op, o in zip(ops, os_[1:], strict=True))])
        case ir.InTuple(operand=o, values=vals, negate=neg):
            return f"{_paren(o)} {'not in' if neg else 'in'} ({', '.join(fmt(x) for x in vals)})"
        case ir.IfExp(test=t, body=b, orelse=e):
            return f"{_paren(b)} if {_paren(t)} else {_paren(e)}"
        case ir.Call(func=fn, args=args):
            return f"{fn}({', '.join(show(a) for a in args)})"
        case ir.Aggregate(func="count", arg=ir.Const(value=True), over=sub):
            return f"count({sub or 'person'})"
        case ir.Aggregate(func=fn, arg=a, over=sub):
            return f"{fn}({show(a)}{', over=' + sub if sub else ''})"
    return "?"


def _paren(node: ir.Node) -> str:
    text = show(node)
    return f"({text})" if isinstance(node, ir.BinOp | ir.BoolOp | ir.Compare | ir.IfExp | ir.InTuple) else text


class _Shower:
    """An expression with this record's values in it: ``income_limit_pct 4 × poverty_line 31,200``, table keys
    replaced by the key looked up (``fpl[4]``)."""

    def __init__(self, interp: _Interpreter, v: Mapping[str, Any], M: Any, exact: bool = False) -> None:
        self.i, self.v, self.M, self.exact = interp, v, M, exact

    def value(self, node: ir.Node) -> Any:
        return self.i.ev(node, self.v, self.M)

    def fmt(self, x: Any) -> str:
        return fmt(x, self.exact)

    def term(self, node: ir.Node) -> str:
        """An operand of the deciding comparison: ``household_income 52,000``, ``4 × fpl[4] = 124,800``."""
        x = self.value(node)
        if isinstance(node, ir.Const):
            return self.fmt(x)
        if isinstance(node, ir.Name):
            return f"{node.name} {self.fmt(x)}"
        if isinstance(node, ir.Aggregate):
            return f"{show(node)} = {self.fmt(x)}"
        return f"{self.expr(node)} = {self.fmt(x)}"

    def expr(self, node: ir.Node) -> str:
        match node:
            case ir.Const(value=x):
                return self.fmt(x)
            case ir.Name(name=n):
                return f"{n} {self.fmt(self.value(node))}"
            case ir.Lookup(table=t, keys=ks):
                return f"{t}[{', '.join(self.fmt(self.value(k)) for k in ks)}]"
            case ir.BinOp(op=op, left=a, right=b):
                return f"{self.sub(a)} {_SHOWN_OP.get(op, op)} {self.sub(b)}"
            case ir.Unary(op="-", operand=o):
                return f"-{self.sub(o)}"
            case ir.Call(func=fn, args=args) if fn not in money.MODES:
                return f"{fn}({', '.join(self.expr(a) for a in args)})"
            case ir.Call(func=fn, args=(x, unit)):
                return f"{fn}({self.expr(x)}, {show(unit)})"
            case ir.IfExp(test=t, body=b, orelse=e):
                taken = b if self.value(t) else e
                return self.sub(taken)
        return f"{show(node)} {self.fmt(self.value(node))}" if isinstance(node, ir.Aggregate) else show(node)

    def sub(self, node: ir.Node) -> str:
        text = self.expr(node)
        return f"({text})" if isinstance(node, ir.BinOp | ir.IfExp) else text


# ---- the deciding comparison ----------------------------------------------------------------------------------


class _Decider:
    """Finds why a boolean came out as it did: the comparison that decided, following the rules it names."""

    def __init__(self, rs: Any, interp: _Interpreter) -> None:
        self.rs, self.i = rs, interp
        self.rule_refs: list[str] = []  # the provisions of the rules on the deciding path
        self.value_refs: list[str] = []  # "fpl: <provision>" for each parameter the deciding comparison read

    def cite(self, name: str) -> None:
        ref = self.i.references.get(name)
        if ref is None:
            return
        if name in self.rs.by_name:
            if ref not in self.rule_refs:
                self.rule_refs.append(ref)
        elif ref not in self.rule_refs and f"{name}: {ref}" not in self.value_refs:  # said once is enough
            self.value_refs.append(f"{name}: {ref}")

    def references(self, authority: str | None) -> tuple[str, ...]:
        """The rules' provisions (the protocol's authority when none carries one), then the parameters'."""
        rules = self.rule_refs or ([authority] if authority else [])
        return tuple(rules + self.value_refs)

    def why(self, node: ir.Node, v: Mapping[str, Any], M: Any, entity: str | None, depth: int = 0) -> str:
        """``depth`` 0: the output's own expression; deeper ones are inside a rule it names, in parentheses."""
        s = _Shower(self.i, v, M)
        value = s.value(node)
        match node:
            case ir.BoolOp(op=op, values=vs):
                deciding = (op == "and") != bool(value)  # a failing conjunct, a succeeding disjunct
                if deciding:
                    first = next(e for e in vs if bool(s.value(e)) == (op == "or"))
                    return self.why(first, v, M, entity, depth)
                # every conjunct held, or every alternative failed: each one is a reason
                return ("; " if depth == 0 else " and ").join(self.why(e, v, M, entity, depth) for e in vs)
            case ir.Unary(op="not", operand=o):
                return self.why(o, v, M, entity, depth)
            case ir.Name(name=n, kind="rule") if self.rs.entity_of(n) == entity:
                rule = self.rs.by_name[n]
                self.cite(n)
                if isinstance(rule.expr, ir.Aggregate | ir.Const | ir.Has):
                    return f"{n} = {self.why(rule.expr, v, M, entity, depth + 1)}"
                return f"{'' if value else 'not '}{n} ({self.why(rule.expr, v, M, entity, depth + 1)})"
            case ir.Aggregate(func=fn, arg=a, over=sub) if fn in ("any", "all"):
                members = M if sub is None else M.subs[sub]
                # any() true / all() false: the members who made it so; otherwise every member agreed
                hit = fn == "any"
                which = [members.label(k) for k, m in enumerate(members) if bool(self.i.ev(a, m, None)) == hit]
                who = f" ({', '.join(which)})" if which and value == hit else ""
                return f"{show(node)} is {s.fmt(value)}{who}"
            case ir.Name(name=n):
                self.cite(n)
                return f"{n} is {s.fmt(value)}"
            case ir.Compare(ops=ops, operands=operands):
                for o in operands:
                    self._cite_params(o)
                if value:
                    rest = (f"{op} {self.term(s, o, entity)}" for op, o in zip(ops, operands[1:], strict=True))
                    return " ".join([self.term(s, operands[0], entity), *rest])
                left = s.value(operands[0])
                for k, (op, o) in enumerate(zip(ops, operands[1:], strict=True)):
                    right = s.value(o)
                    if not _CMP[op](left, right):
                        if fmt(left, False) == fmt(right, False) and left != right:
                            s = _Shower(self.i, v, M, exact=True)  # 124,800.00 > 124,800.00 would say nothing
                        return f"{self.term(s, operands[k], entity)} {_NEGATED[op]} {self.term(s, o, entity)}"
                    left = right
            case ir.InTuple(operand=o, values=vals, negate=neg):
                self._cite_params(o)
                inside = (not value) if neg else value
                return f"{s.term(o)} {'in' if inside else 'not in'} ({', '.join(s.fmt(x) for x in vals)})"
            case ir.IfExp(test=t, body=b, orelse=e):
                return self.why(b if s.value(t) else e, v, M, entity)
            case ir.Has(table=t, keys=ks):
                self.cite(t)
                keys = ", ".join(s.fmt(s.value(k)) for k in ks)
                return f"{t} {'has' if value else 'has no'} entry for {keys}"
        return f"{show(node)} is {s.fmt(value)}"

    def term(self, s: _Shower, node: ir.Node, entity: str | None) -> str:
        """A compared operand; a rule of the same entity is shown with its own expression, one level down:
        ``income_limit = income_limit_pct 2 × fpl[4] = 62,400``."""
        if isinstance(node, ir.Name) and node.kind == "rule" and self.rs.entity_of(node.name) == entity:
            expr = self.rs.by_name[node.name].expr
            if not isinstance(expr, ir.Const | ir.Name):
                self._cite_params(expr)
                shown = show(expr) if isinstance(expr, ir.Aggregate) else s.expr(expr)
                return f"{node.name} = {shown} = {s.fmt(s.value(node))}"
        return s.term(node)

    def _cite_params(self, node: ir.Node) -> None:
        match node:
            case ir.Name(name=n, kind="param"):
                self.cite(n)
            case ir.Name(name=n, kind="rule"):
                self.cite(n)
            case ir.Lookup(table=t, keys=ks):
                self.cite(t)
                for k in ks:
                    self._cite_params(k)
            case ir.BinOp(left=a, right=b):
                self._cite_params(a)
                self._cite_params(b)
            case ir.Unary(operand=o):
                self._cite_params(o)
            case ir.Call(args=args):
                for a in args:
                    self._cite_params(a)
            case ir.IfExp(test=t, body=b, orelse=e):
                for x in (t, b, e):
                    self._cite_params(x)


# ---- explaining a record --------------------------------------------------------------------------------------


@dataclass
class _Context:
    """Where one rule is evaluated: the values in scope, the members it may aggregate over, and whose it is."""

    v: Mapping[str, Any]
    M: Any
    who: str | None


def explain(rs: Any, rec: Any, *, authority: str | None = None, period: str | None = None,
            values: Mapping[str, Any] | None = None) -> Explanation:
    """Every declared output of ``rs`` (a RuleSet) for one record, explained (see the module docstring).

    ``rec`` is validated as the backends validate it; ``authority`` (the protocol's ``metadata.authority``)
    is what a notice cites when no rule or parameter on its path carries a reference. ``values``: what
    ``rs.evaluate(rec)`` returned, when the caller has just evaluated it for the decision itself (the decision
    service): a household is not checked and evaluated a second time, and each rule's derived value is still
    compared with it.
    """
    if rs.model is None:
        if values is None:
            values = rs.evaluate(rec)  # first: a failure names the record as the decision's does
        contexts = _flat_contexts(rs, rs.coerce_record(rec), values)
    else:
        hh = rs.coerce_record(rec)  # a household already checked (entity_record.HouseholdRecord) passes as it is
        if values is None:
            values = rs.evaluate(hh)
        contexts = _entity_contexts(rs, hh, values)
    plan = _plan(rs)
    interp = _Interpreter(plan)
    notes: list[str] = []
    steps = {p.rule.name: _step(p, contexts[p.rule.name], interp, values[p.rule.name], notes) for p in plan.steps}
    outputs = []
    for o in rs.outputs:
        notice, refs = _notice(rs, o, contexts[o], interp, authority)
        step = steps[o]
        outputs.append(OutputExplanation(o, step.value, step, tuple(steps[d] for d in plan.deps[o]), notice, refs))
    return Explanation(tuple(outputs), tuple(steps.values()), authority, period, tuple(notes))


def months(parts: Sequence[tuple[str, Explanation]], authority: str | None, period: str | None) -> Explanation:
    """A period evaluated month by month (``straddle: sum_months``): each month's explanation; the answer's
    numbers are the months' sums (hms.dated.combine), which no single rule states."""
    note = (f"period {period} straddles a parameter change and was evaluated month by month "
            "(period.straddle: sum_months): each month is explained under months; the answer's numbers are "
            "their sums")
    return Explanation((), (), authority, period, (note,), tuple(e for _, e in parts))


def _step(p: _RulePlan, ctxs: list[_Context], interp: _Interpreter, want: Any, notes: list[str]) -> RuleStep:
    trace = interp.trace = _Trace()
    ev = interp.plan.fn(p.rule.expr)
    got = []
    try:
        for c in ctxs:
            interp.who = interp.at = c.who
            got.append(ev(c.v, c.M, interp))
    finally:
        interp.trace, interp.who, interp.at = None, None, None
    value = got if p.per_entry else got[0]
    if not _same(value, want):
        notes.append(f"rule {p.rule.name!r}: the explanation derives {fmt(value)} but the decision evaluated "
                     f"{fmt(want)}; the decision's value stands")
        value = want
    reads = tuple(
        Read(name, kind, x, key, None, ref, dflt) if each is None
        else Read(name, kind, list(each.values()), key, tuple(each), ref, dflt)
        for (name, key), (kind, ref, dflt, x, each) in trace.reads.items()
    )
    return RuleStep(
        p.rule.name, p.expression, value, p.reference, p.entity, tuple(c.who for c in ctxs) if p.per_entry else None,
        reads, tuple(trace.rules), tuple(trace.aggregations),
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _dependencies(rs: Any, output: str) -> list[str]:
    """The rules an output reads, directly or through other rules, in evaluation order (the output excluded)."""
    seen: set[str] = set()
    stack = list(rs.by_name[output].reads_rules)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(rs.by_name[n].reads_rules)
    return [r.name for r in rs.rules if r.name in seen]


def _notice(rs: Any, output: str, ctxs: list[_Context], interp: _Interpreter,
            authority: str | None) -> tuple[str | None, tuple[str, ...]]:
    """``not eligible: household_income 52,000 > … — provision``: for a boolean output only."""
    rule = rs.by_name[output]
    if rule.expr.type != ir.BOOL:
        return None, ()
    d = _Decider(rs, interp)
    d.cite(output)
    entity = rs.entity_of(output)
    parts = []
    for c in ctxs:
        interp.who = interp.at = c.who
        verdict = interp.ev(rule.expr, c.v, c.M)
        head = f"{c.who}: " if c.who else ""
        parts.append(f"{head}{'' if verdict else 'not '}{output}: {d.why(rule.expr, c.v, c.M, entity)}")
    interp.who = interp.at = None
    refs = d.references(authority)
    return "; ".join(parts) + (NOTICE_DASH + "; ".join(refs) if refs else ""), refs


def _flat_contexts(rs: Any, v: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, list[_Context]]:
    scope = {**v, **values}
    one = [_Context(scope, None, None)]
    return {r.name: one for r in rs.rules}


def _entity_contexts(rs: Any, hh: entity_record.HouseholdRecord, values: Mapping[str, Any]
                     ) -> dict[str, list[_Context]]:
    """The scopes hms.rules.entity_record.evaluate gives each rule, rebuilt from the evaluated values: the record's
    values projected into every member and sub-group, each sub-group's into its members."""
    m = rs.model
    group_rules = [r.name for r in rs.rules if m.rule_entity[r.name] == m.group]
    g = {**hh.group, **{n: values[n] for n in group_rules}}
    members = entity_record._Members({**x, **g} for x in hh.members)
    for r in rs.rules:
        if m.rule_entity[r.name] == m.person:
            for k, x in enumerate(members):
                x[r.name] = values[r.name][k]
    members.subs = {}
    sub_ctx: dict[str, list[_Context]] = {}
    for name, groups in hh.subs.items():
        own = [r.name for r in rs.rules if m.rule_entity[r.name] == name]
        scopes = []
        sub_ctx[name] = []
        for j, sg in enumerate(groups):
            sv = {**sg.values, **g, **{n: values[n][j] for n in own}}
            ms = entity_record._Members(members[k] for k in sg.members)
            ms.numbers = sg.members
            for x in ms:
                x.update(sg.values)
                x.update({n: sv[n] for n in own})
            scopes.append(sv)
            sub_ctx[name].append(_Context(sv, ms, f"{name} {entity_record.label(sg.id)}"))
        members.subs[name] = entity_record._Members(scopes)
        members.subs[name].kind, members.subs[name].ids = name, tuple(sg.id for sg in groups)
    record_ctx = [_Context(g, members, None)]
    person_ctx = [_Context(x, members, f"member {k}") for k, x in enumerate(members)]
    out = {}
    for r in rs.rules:
        e = m.rule_entity[r.name]
        out[r.name] = record_ctx if e == m.group else sub_ctx.get(e, []) if e in m.subgroups else person_ctx
    return out


__all__ = ["Aggregation", "Explanation", "OutputExplanation", "Read", "RuleStep", "explain", "fmt", "months"]
