"""The OPA input document: everything the Rego policies may look at, built in one place.

The in-process engine and the ``openpolicyagent/opa`` pod (``hms scan --write-input``) get the very
same document, so a policy can never behave differently in Kubernetes mode. Shape::

    {"protocol": <normalized protocol>,              # what the bundle holds
     "fields_read": {rule: [input fields]},          # from the rule AST, through referenced rules
     "lookups": [{"rule", "table", "keys": [input fields]}],  # every table[index]: the fields its index reads
     "fairness": {"attributes": {...}} | null,       # the simulation's selection-rate figures
     "effective_at": RFC 3339, "now": RFC 3339,      # normalized, so Rego's time.parse_rfc3339_ns reads them
     "activation_at": RFC 3339,                      # when it would come into force: max(effective_at, now)
     "freeze_windows": [{"start", "end", "environments", "reason"}],
     "approval_policy": {"required": n, "roles": [...]}}

Weekly freeze windows are resolved to the occurrence around the activation time. Pipeline settings
are arguments, not loaded here, so tests and callers decide where they come from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from hms import clock
from hms.protocol import Protocol
from hms.rules import ir


def fields_read_by_rule(protocol: Protocol) -> dict[str, list[str]]:
    """Input fields each rule reads, directly or through the rules it uses (sorted, for stable findings)."""
    rs = protocol.ruleset
    return {name: sorted(rs.fields_read(name)) for name in rs.by_name}


def lookups(protocol: Protocol) -> list[dict[str, Any]]:
    """Every ``table[key, …]`` (and ``has``) of every rule, with the input fields the keys read (through rules it uses).

    The ethics rule set flags a table keyed by a location code (``rate[zip5]``): a location can stand
    in for race or national origin, so a reviewer should look at what the table encodes.
    """
    rs = protocol.ruleset
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rs.rules:
        for table, key_nodes in _lookups_in(rule.expr):
            keys = out.setdefault((rule.name, table), set())
            for node in (name for k in key_nodes for name in _names_in(k)):
                if node.kind == "input":
                    keys.add(node.name)
                elif node.kind == "rule":
                    keys |= rs.fields_read(node.name)
    return [{"rule": r, "table": t, "keys": sorted(k)} for (r, t), k in sorted(out.items())]


def _children(node: ir.Node) -> list[ir.Node]:
    kids: list[ir.Node] = []
    for f in fields(node):
        value = getattr(node, f.name)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, ir.Node):
                kids.append(v)
    return kids


def _lookups_in(node: ir.Node) -> list[tuple[str, tuple[ir.Node, ...]]]:
    """(table, key expressions) of every lookup and ``has`` test: both reveal what the keys select."""
    found = [(node.table, node.keys)] if isinstance(node, ir.Lookup | ir.Has) else []
    for kid in _children(node):
        found.extend(_lookups_in(kid))
    return found


def _names_in(node: ir.Node) -> list[ir.Name]:
    found = [node] if isinstance(node, ir.Name) else []
    for kid in _children(node):
        found.extend(_names_in(kid))
    return found


def _rfc3339(t: datetime) -> str:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"datetime {t!r} has no timezone")
    return t.isoformat()


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Attribute or key: windows and policies may be the pipeline_config objects or plain dicts."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def weekly_occurrence(w: Any, at: datetime) -> tuple[datetime, datetime]:
    """The occurrence of a weekly window that contains ``at``, else the next one.

    Rego sees only absolute intervals, so recurring windows (``days``/``from_time``/``to_time`` in
    the window's zone) are resolved here against the activation time; one rule then covers both kinds.
    """
    tz = _get(w, "tz")
    local = at.astimezone(tz)
    for offset in range(-1, 8):
        d = (local + timedelta(days=offset)).date()
        if _DAYS[d.weekday()] not in _get(w, "days"):
            continue
        begin = datetime.combine(d, _get(w, "from_time"), tz)
        finish = datetime.combine(d, _get(w, "to_time"), tz)
        if finish <= begin:
            finish += timedelta(days=1)
        if finish > local:
            return begin, finish
    raise ValueError(f"weekly window {w} has no occurrence")


def _window(w: Any, effective_at: datetime) -> dict[str, Any]:
    start, end = _get(w, "start"), _get(w, "end")
    if start is None and _get(w, "days"):
        start, end = weekly_occurrence(w, effective_at)
    return {
        "start": _rfc3339(start) if isinstance(start, datetime) else str(start),
        "end": _rfc3339(end) if isinstance(end, datetime) else str(end),
        "environments": list(_get(w, "environments") or ()),
        "reason": str(_get(w, "reason") or ""),
    }


def build_input(
    protocol: Protocol,
    *,
    fields_read: Mapping[str, Iterable[str]] | None = None,
    fairness: Mapping[str, Any] | None = None,
    freeze_windows: Iterable[Any] = (),
    approval_policy: Any = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The OPA input for one protocol.

    ``fields_read`` defaults to the protocol's own rule AST; ``approval_policy`` (``.required`` and
    ``.roles``, or a dict) defaults to the protocol's ``approvals`` alone — callers with pipeline
    settings pass ``effective_approval_policy(config, protocol)``; ``now`` defaults to the clock.
    """
    now = now or clock.now()
    activation = max(protocol.effective_at, now)
    reads = fields_read_by_rule(protocol) if fields_read is None else {k: sorted(v) for k, v in fields_read.items()}
    policy = approval_policy if approval_policy is not None else protocol.approvals
    return {
        "protocol": protocol.data,
        "fields_read": reads,
        "lookups": lookups(protocol),
        "fairness": dict(fairness) if fairness is not None else None,
        "effective_at": _rfc3339(protocol.effective_at),
        "now": _rfc3339(now),
        "activation_at": _rfc3339(activation),
        "freeze_windows": [_window(w, activation) for w in freeze_windows],
        "approval_policy": {
            "required": int(_get(policy, "required", 0) or 0),
            "roles": list(_get(policy, "roles", ()) or ()),
        },
    }
