"""Typed intermediate form of a rule expression.

The checker turns Python's AST into these nodes after the allow-list and type
checks, so the two backends only ever see constructs that are legal and typed.
Types: ``num`` (float64 everywhere, so both backends do the same IEEE arithmetic),
``bool`` and ``str``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NUM, BOOL, STR = "num", "bool", "str"


@dataclass(frozen=True)
class Node:
    type: str


@dataclass(frozen=True)
class Const(Node):
    value: float | bool | str


@dataclass(frozen=True)
class Name(Node):
    """A declared input field, a scalar parameter or another rule."""

    name: str
    kind: str  # "input" | "param" | "rule"


@dataclass(frozen=True)
class Lookup(Node):
    """``table[k]`` or ``table[a, b]``: a missing key is the table's default if it has one, else an error."""

    table: str
    keys: tuple[Node, ...]
    may_miss: bool  # False when the table has a default: the lookup itself cannot fail


@dataclass(frozen=True)
class Has(Node):
    """``has(table, k)`` / ``has(table, a, b)``: the entries hold the key (a default does not count)."""

    table: str
    keys: tuple[Node, ...]


@dataclass(frozen=True)
class BinOp(Node):
    op: str  # + - * / // %
    left: Node
    right: Node


@dataclass(frozen=True)
class Unary(Node):
    op: str  # - + not
    operand: Node


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # and | or
    values: tuple[Node, ...]


@dataclass(frozen=True)
class Compare(Node):
    """A comparison chain ``a < b <= c`` (short-circuits like Python)."""

    ops: tuple[str, ...]
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class InTuple(Node):
    operand: Node
    values: tuple[float | bool | str, ...]
    negate: bool


@dataclass(frozen=True)
class IfExp(Node):
    test: Node
    body: Node
    orelse: Node


@dataclass(frozen=True)
class Call(Node):
    func: str  # min max abs round floor ceil, and the legal roundings of hms.rules.money
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Aggregate(Node):
    """``sum/count/any/all/min/max(member_expr)`` in a group rule: ``arg`` is evaluated per member.

    ``count(person)`` is ``Aggregate("count", Const(True))``. ``over`` names a sub-group entity when a
    record rule aggregates over its sub-groups instead (``sum(credit, over=tax_units)``): ``arg`` is then
    evaluated once per sub-group. See hms.rules.entities.
    """

    func: str  # sum | count | any | all | min | max
    arg: Node
    over: str | None = None  # None: the members; else a sub-group entity nested in the record


@dataclass(frozen=True)
class Rule:
    name: str
    source: str
    expr: Node
    reads_fields: frozenset[str]  # input fields read directly
    reads_rules: frozenset[str]
    reads_params: frozenset[str]
    can_fail: bool = field(default=False)


def can_fail(node: Node) -> bool:
    """True when evaluating ``node`` may raise (division, lookup, overflow-prone ops).

    The vectorized backend only tracks which rows are "active" (selected by
    if/and/or) inside subtrees that can fail, so ordinary rules pay nothing for it.
    """
    match node:
        case Lookup(keys=ks, may_miss=miss):
            return miss or any(can_fail(k) for k in ks)
        case Has(keys=ks):
            return any(can_fail(k) for k in ks)
        case BinOp(op=op, left=left, right=right):
            return op in ("/", "//", "%") or can_fail(left) or can_fail(right)
        case Unary(operand=o):
            return can_fail(o)
        case BoolOp(values=vs) | Call(args=vs) | Compare(operands=vs):
            return any(can_fail(v) for v in vs)
        case InTuple(operand=o):
            return can_fail(o)
        case IfExp(test=t, body=b, orelse=e):
            return can_fail(t) or can_fail(b) or can_fail(e)
        case Aggregate(arg=a):
            return can_fail(a)
        case _:
            return False
