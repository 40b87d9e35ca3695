"""What changed between two versions of a protocol, in the clerk's words, most important first.

A text diff of the canonical YAML buries the change a clerk reviews (``per_member: 800 → 1100``) under
re-sorted keys and number noise (``3200.0`` against ``3200``). This module compares the two documents
section by section and returns typed changes in review order: parameters (scalars, dated values by their
from-date, table entries by key), rules (formula old → new), inputs (added, removed, type or bounds),
tests (cases by name: added, removed, expected changed), then everything else (budget, approvals,
entities, period, outputs, metadata). Numbers compare by value, so ``3200.0`` and ``3200`` are no change.

Pure functions over ``Protocol.data``: no registry, no HTML. ``hms.web.reviews`` puts the result against
prod and against the previous version on the ``BundleView``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hms.dated import is_dated
from hms.protocol import Protocol
from hms.rules import references

#: The order sections are reported in; ``other`` is every section not named before it.
SECTION_ORDER = ("parameters", "rules", "inputs", "tests", "other")
_OWN_SECTIONS = ("parameters", "rules", "inputs", "tests")
_OTHER_ORDER = ("budget", "approvals", "outputs", "entities", "period", "metadata", "apiVersion", "kind")
_ABSENT = object()


@dataclass(frozen=True)
class Change:
    """One change: ``kind`` says what happened, ``path`` where (dotted, as the protocol file spells it).

    ``kind`` is one of ``added``, ``removed``, ``changed`` (a value), ``formula`` (a rule's expression),
    ``dated_added`` / ``dated_removed`` / ``dated_changed`` (a dated value, ``date`` its from-date),
    ``entry_added`` / ``entry_removed`` / ``entry_changed`` (a table entry, ``key`` its key),
    ``case_added`` / ``case_removed`` / ``expect_changed`` / ``case_changed`` (a test case by name).
    """

    section: str
    kind: str
    path: str
    old: Any = None
    new: Any = None
    date: str | None = None
    key: str | None = None

    @property
    def sentence(self) -> str:
        """The change in plain words, e.g. ``per_member: 800 → 1100``."""
        o, n = show(self.old), show(self.new)
        k = self.kind
        if k == "changed":
            return f"{self.path}: {o} → {n}"
        if k == "formula":
            return f"rule {self.path}: {o} → {n}"
        if k == "added":
            return f"{self.path} added: {n}"
        if k == "removed":
            return f"{self.path} removed (was {o})"
        if k == "dated_added":
            return f"{self.path}: new value from {self.date}: {n}"
        if k == "dated_removed":
            return f"{self.path}: value from {self.date} removed (was {o})"
        if k == "dated_changed":
            return f"{self.path} from {self.date}: {o} → {n}"
        if k == "entry_added":
            return f"{self.path}[{self.key}] added: {n}"
        if k == "entry_removed":
            return f"{self.path}[{self.key}] removed (was {o})"
        if k == "entry_changed":
            return f"{self.path}[{self.key}]: {o} → {n}"
        if k == "case_added":
            return f"test case added: {self.key!r}"
        if k == "case_removed":
            return f"test case removed: {self.key!r}"
        if k == "expect_changed":
            return f"test case {self.key!r} expects {o} → {n}"
        if k == "case_changed":
            return f"test case {self.key!r} changed: {o} → {n}"
        return f"{self.path}: {o} → {n}"

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.section, "kind": self.kind, "path": self.path, "old": self.old, "new": self.new,
                "date": self.date, "key": self.key, "sentence": self.sentence}


def show(value: Any) -> str:
    """A value as a clerk reads it: numbers without float noise (``3200.0`` → ``3200``), text unquoted."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def same(a: Any, b: Any) -> bool:
    """Equal by value: numbers by number (``3200.0 == 3200``), but ``True`` is not ``1``; maps and lists deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def diff(old: Protocol | None, new: Protocol) -> list[Change]:
    """The changes from ``old`` to ``new`` (``old`` None: nothing to compare with, so no changes), in review order."""
    if old is None:
        return []
    return diff_data(old.data, new.data)


def diff_data(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """``diff`` over two protocol documents (``Protocol.data``)."""
    out: list[Change] = []
    out += _parameters(old.get("parameters") or {}, new.get("parameters") or {})
    out += _rules(old.get("rules") or {}, new.get("rules") or {})
    out += _inputs(old.get("inputs") or {}, new.get("inputs") or {})
    out += _tests(old.get("tests") or [], new.get("tests") or [])
    rest = [k for k in _OTHER_ORDER if k in old or k in new]
    rest += sorted(k for k in {*old, *new} if k not in _OTHER_ORDER and k not in _OWN_SECTIONS)
    for k in rest:
        out += _generic("other", k, old.get(k, _ABSENT), new.get(k, _ABSENT))
    return out


# ---- sections -----------------------------------------------------------------------------------


def _parameters(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out: list[Change] = []
    for name in _keys(old, new):
        a, b = old.get(name, _ABSENT), new.get(name, _ABSENT)
        path = f"parameters.{name}"
        if a is _ABSENT or b is _ABSENT:
            kind, old_, new_ = ("added", None, b) if a is _ABSENT else ("removed", a, None)
            out.append(Change("parameters", kind, path, old_, new_))
            continue
        # A value written with its reference ({value, reference}) compares by its value; the reference is its own line.
        (a, ref_a), (b, ref_b) = references.unwrap(a), references.unwrap(b)
        if ref_a != ref_b:
            out += _generic("parameters", f"{path}.reference", _ABSENT if ref_a is None else ref_a,
                            _ABSENT if ref_b is None else ref_b)
        if is_dated(a) and is_dated(b):
            out += _dated(path, a, b)
        elif isinstance(a, dict) and isinstance(b, dict):
            out += _table(path, a, b)
        elif not same(a, b):
            out.append(Change("parameters", "changed", path, a, b))
    return out


def _dated(path: str, a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    """Dated values matched by their from-date; a changed reference counts as a change of that value."""
    def by_date(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {str(v.get("from")): v for v in p["values"]}
    da, db = by_date(a), by_date(b)
    out = []
    for d in sorted({*da, *db}):
        va, vb = da.get(d), db.get(d)
        if va is None:
            out.append(Change("parameters", "dated_added", path, None, vb.get("value"), date=d))
        elif vb is None:
            out.append(Change("parameters", "dated_removed", path, va.get("value"), None, date=d))
        elif not same(va.get("value"), vb.get("value")):
            out.append(Change("parameters", "dated_changed", path, va.get("value"), vb.get("value"), date=d))
        elif not same(va, vb):
            out.append(Change("parameters", "dated_changed", path, va, vb, date=d))
    for k in _keys(a, b):
        if k != "values":
            out += _generic("parameters", f"{path}.{k}", a.get(k, _ABSENT), b.get(k, _ABSENT))
    return out


def _flatten(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for k, v in table.items():
        if isinstance(v, dict):
            out.update(_flatten(v, (*prefix, str(k))))
        else:
            out[(*prefix, str(k))] = v
    return out


def _table(path: str, a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    """Table entries matched by key (several keys read ``2, north``); the ``default`` as a value of its own."""
    ea = a.get("entries", a)
    eb = b.get("entries", b)
    fa, fb = _flatten(ea), _flatten(eb)
    out = []
    for key in sorted({*fa, *fb}, key=_key_order):
        label = ", ".join(key)
        va, vb = fa.get(key, _ABSENT), fb.get(key, _ABSENT)
        if va is _ABSENT:
            out.append(Change("parameters", "entry_added", path, None, vb, key=label))
        elif vb is _ABSENT:
            out.append(Change("parameters", "entry_removed", path, va, None, key=label))
        elif not same(va, vb):
            out.append(Change("parameters", "entry_changed", path, va, vb, key=label))
    out += _generic("parameters", f"{path}.default", a.get("default", _ABSENT) if "entries" in a else _ABSENT,
                    b.get("default", _ABSENT) if "entries" in b else _ABSENT)
    return out


def _key_order(key: tuple[str, ...]) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, int(k), "") if k.lstrip("-").isdigit() else (1, 0, k) for k in key)


def _formula(rule: Any) -> Any:
    return rule.get("formula") if isinstance(rule, dict) else rule


def _rules(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out: list[Change] = []
    for name in _keys(old, new):
        a, b = old.get(name, _ABSENT), new.get(name, _ABSENT)
        if a is _ABSENT:
            out.append(Change("rules", "added", f"rules.{name}", None, _formula(b)))
        elif b is _ABSENT:
            out.append(Change("rules", "removed", f"rules.{name}", _formula(a), None))
        else:
            if _formula(a) != _formula(b):
                out.append(Change("rules", "formula", name, _formula(a), _formula(b)))
            da, db = (a if isinstance(a, dict) else {}), (b if isinstance(b, dict) else {})
            for k in _keys(da, db):
                if k != "formula":
                    out += _generic("rules", f"rules.{name}.{k}", da.get(k, _ABSENT), db.get(k, _ABSENT))
    return out


def _inputs(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out: list[Change] = []
    for name in _keys(old, new):
        a, b = old.get(name, _ABSENT), new.get(name, _ABSENT)
        if a is _ABSENT or b is _ABSENT:
            out += _generic("inputs", f"inputs.{name}", a, b)
            continue
        for k in _keys(a, b):
            out += _generic("inputs", f"inputs.{name}.{k}", a.get(k, _ABSENT), b.get(k, _ABSENT))
    return out


def _tests(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[Change]:
    """Cases matched by name (names are what a clerk recognises); the expectation first, then the rest."""
    ca, cb = {c.get("name"): c for c in old}, {c.get("name"): c for c in new}
    out = []
    for name in [n for n in ca if n not in cb]:
        out.append(Change("tests", "case_removed", "tests", ca[name], None, key=name))
    for name in cb:
        if name not in ca:
            out.append(Change("tests", "case_added", "tests", None, cb[name], key=name))
            continue
        a, b = ca[name], cb[name]
        if not same(a.get("expect"), b.get("expect")):
            out.append(Change("tests", "expect_changed", "tests", a.get("expect"), b.get("expect"), key=name))
        for k in _keys(a, b):
            if k not in ("name", "expect") and not same(a.get(k), b.get(k)):
                out.append(Change("tests", "case_changed", f"tests.{k}", a.get(k), b.get(k), key=name))
    return out


def _generic(section: str, path: str, a: Any, b: Any) -> list[Change]:
    """Any other value: maps recurse by key, everything else (lists included) compares as a whole."""
    if a is _ABSENT and b is _ABSENT:
        return []
    if a is _ABSENT:
        return [Change(section, "added", path, None, b)]
    if b is _ABSENT:
        return [Change(section, "removed", path, a, None)]
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[Change] = []
        for k in _keys(a, b):
            out += _generic(section, f"{path}.{k}", a.get(k, _ABSENT), b.get(k, _ABSENT))
        return out
    return [] if same(a, b) else [Change(section, "changed", path, a, b)]


def _keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys in the new document's order, then the ones only the old one has (the file's order, not sorted)."""
    return list(b) + [k for k in a if k not in b]
