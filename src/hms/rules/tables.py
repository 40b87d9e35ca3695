"""Lookup tables in a protocol's parameters: one key or several, with or without a default.

Statutes tabulate by more than one thing ("the standard by household size and
region") and sometimes say what applies to everything not listed. A parameter that
is a mapping is a table:

* ``fpl: {1: 15060, 2: 20440}`` — one key, read as ``fpl[size]``;
* ``standard: {1: {north: 100, south: 90}, 2: {north: 180, south: 160}}`` — nested
  maps, one level per key, read as ``standard[size, region]``;
* ``bonus: {entries: {…}, default: 0}`` — the same with a value for every key the
  entries lack; without a default a missing key is an error, never a silent 0.

So ``entries`` and ``default`` are reserved as a table's top-level keys. Each
level's keys are integers when every key on that level is one, else strings.
``has(t, k)`` / ``has(t, a, b)`` says whether the entries hold a key, whatever the
default. A missing key's error names the table and the key, and the period once
parameters are dated (``period``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hms.errors import RuleError
from hms.rules.ir import BOOL, NUM, STR

RESERVED = ("entries", "default")
MAX_KEYS = 4
MAX_ENTRIES = 10_000
INT_KEY = re.compile(r"^-?[0-9]{1,15}$")  # a key level indexed by number when every key on it matches


class TableError(RuleError):
    """A table parameter we refuse; ``path`` is where inside ``parameters`` (for the file's line)."""

    def __init__(self, message: str, path: tuple[str, ...], *, where: str | None = None) -> None:
        super().__init__(message, where=where or "parameters." + ".".join(path))
        self.path = path


@dataclass(frozen=True)
class Table:
    """A checked table: every entry's keys as one tuple (numbers as floats), and the default if any."""

    name: str
    key_types: tuple[str, ...]
    value_type: str
    entries: dict[tuple[Any, ...], Any]
    has_default: bool = False
    default: Any = None
    period: str | None = None  # the period these values are for, once parameters are dated

    @property
    def arity(self) -> int:
        return len(self.key_types)

    def keys_at(self, level: int) -> list[Any]:
        """The distinct keys on one level, in first-seen order."""
        return list(dict.fromkeys(k[level] for k in self.entries))


def scalar_type(v: Any) -> str:
    if isinstance(v, bool):
        return BOOL
    if isinstance(v, int | float):
        return NUM
    return STR


def scalar(v: Any) -> Any:
    return float(v) if scalar_type(v) == NUM else v


def parse(name: str, value: Mapping[str, Any], period: str | None = None) -> Table:
    """Check one table parameter; ``TableError`` names the table and the place inside it."""
    body: Mapping[str, Any] = value
    has_default, default = False, None
    reserved = [k for k in value if str(k) in RESERVED]
    if reserved:
        extra = [str(k) for k in value if str(k) not in RESERVED]
        if extra or "entries" not in value or not isinstance(value["entries"], Mapping):
            raise TableError(
                f"'entries' and 'default' are reserved keys of a table: write table {name!r} as"
                " {entries: {key: value, …}, default: value}" + (f" (found {extra[0]!r} beside them)" if extra else ""),
                (name, extra[0] if extra else str(reserved[0])),
            )
        body = value["entries"]
        if "default" in value:
            has_default, default = True, value["default"]
            if isinstance(default, Mapping) or default is None:
                raise TableError(f"the default of table {name!r} must be one value", (name, "default"))
    prefix = (name, "entries") if reserved else (name,)
    leaves: list[tuple[tuple[str, ...], Any]] = []
    _flatten(name, body, (), prefix, leaves)
    depth = len(leaves[0][0])
    for keys, _ in leaves:
        if len(keys) != depth:
            raise TableError(
                f"table {name!r} mixes values under {depth} and under {len(keys)} keys:"
                " every value needs the same number of keys",
                (*prefix, *keys),
            )
    numeric = [all(INT_KEY.match(k[i]) for k, _ in leaves) for i in range(depth)]
    vtypes = {scalar_type(v) for _, v in leaves}
    if len(vtypes) != 1:
        raise TableError(f"values of table {name!r} must all be one type", (name,))
    vtype = vtypes.pop()
    if has_default and scalar_type(default) != vtype:
        raise TableError(
            f"the default of table {name!r} must be {_word(vtype)} like its values, got {_word(scalar_type(default))}",
            (name, "default"),
        )
    entries: dict[tuple[Any, ...], Any] = {}
    written: dict[tuple[Any, ...], tuple[str, ...]] = {}
    for keys, v in leaves:
        key = tuple(float(k) if numeric[i] else k for i, k in enumerate(keys))
        if key in entries:  # "1" and "01" (or "-0" and "0") index one number: the last written would silently win
            a, b = written[key], keys
            same = f"number {_show_key(key[0])}" if len(key) == 1 else f"key {_show_key(key)}"
            raise TableError(
                f"table {name!r} has keys {_written(a)} and {_written(b)}, which are the same {same}",
                (*prefix, *keys),
            )
        entries[key], written[key] = scalar(v), keys
    return Table(
        name,
        tuple(NUM if n else STR for n in numeric),
        vtype,
        entries,
        has_default,
        scalar(default) if has_default else None,
        period,
    )


def _flatten(name: str, node: Mapping[str, Any], keys: tuple[str, ...], prefix: tuple[str, ...], out: list) -> None:
    if not node:
        raise TableError(f"table {name!r} has an empty level", (*prefix, *keys))
    if len(keys) >= MAX_KEYS:
        raise TableError(f"table {name!r} has more than {MAX_KEYS} keys", (*prefix, *keys))
    for k, v in node.items():
        path = (*keys, str(k))
        if isinstance(v, Mapping):
            _flatten(name, v, path, prefix, out)
        else:
            out.append((path, v))
            if len(out) > MAX_ENTRIES:
                raise TableError(f"table {name!r} has more than {MAX_ENTRIES} entries", (name,))


def show_key(keys: tuple[Any, ...]) -> str:
    """``7`` for one key, ``(2, 'north')`` for several; whole numbers without '.0'."""
    shown = [_show(k) for k in keys]
    return shown[0] if len(shown) == 1 else "(" + ", ".join(shown) + ")"


def _show(k: Any) -> str:
    k = k.item() if hasattr(k, "item") else k
    return repr(int(k)) if isinstance(k, float) and k.is_integer() else repr(k)


def missing_key(table: str, keys: tuple[Any, ...], period: str | None = None) -> str:
    """The error for a key a table lacks: the table, the key, the period (when parameters are dated)."""
    when = f" in period {period}" if period is not None else ""
    args = ", ".join(["…"] * len(keys))
    return (
        f"table {table!r} has no key {show_key(keys)}{when}"
        f" (give the table a default, or guard the lookup with has({table}, {args}))"
    )


def _word(t: str) -> str:
    return {NUM: "a number", BOOL: "a boolean", STR: "a string"}[t]


__all__ = ["MAX_ENTRIES", "MAX_KEYS", "RESERVED", "Table", "TableError", "missing_key", "parse", "show_key"]


def _written(keys: tuple[str, ...]) -> str:
    return repr(keys[0]) if len(keys) == 1 else "(" + ", ".join(repr(k) for k in keys) + ")"


def _show_key(key: Any) -> str:
    if isinstance(key, tuple):
        return "(" + ", ".join(_show_key(k) for k in key) + ")"
    return str(int(key)) if isinstance(key, float) and key.is_integer() else repr(key)
