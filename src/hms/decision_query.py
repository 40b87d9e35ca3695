"""Reading the decision log (``decisions`` table, written by hms.service.decision_log): one answer, or a window.

``hms decisions show ID`` and ``hms decisions list`` read here, and replay (hms.replay) selects its window with
the same ``since``: a relative age (``30d``, ``12h``, ``90m``) back from ``hms.clock.now()``, or an ISO 8601
instant with its offset. What is read is what was written: inputs as their protocol's declaration masked them,
so nothing here can show a personal value the log did not keep.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from hms import clock
from hms.errors import BadInput
from hms.registry.models import LoggedDecision

LOG_URL_ENV = "HMS_DECISION_LOG_URL"
_AGE = re.compile(r"^\s*(\d{1,6})\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
MAX_LIST = 10_000
# Who may read the log over the HMS API (roles of the pinned policy's ``users:``): those who run the services
# and those who answer for them afterwards. Masked as it is, it is still a record of who asked for what.
READER_ROLES = ("ops", "admin", "auditor")


def log_url() -> str | None:
    """Where the log is: ``HMS_DECISION_LOG_URL``, else the registry (None: hms.registry.db decides)."""
    return os.environ.get(LOG_URL_ENV) or None


def parse_age(text: str, *, where: str) -> timedelta:
    m = _AGE.match(text or "")
    if not m or int(m.group(1)) == 0:
        raise BadInput(f"{text!r} is not an age: write it as Nd, Nh or Nm (30d, 12h, 90m)", where=where)
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def parse_since(text: str, *, where: str = "--since", now: datetime | None = None) -> datetime:
    """``30d`` (back from now) or an ISO 8601 instant with its offset; never in the future."""
    now = now or clock.now()
    if _AGE.match(text or ""):
        return now - parse_age(text, where=where)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{text!r} is neither an age (30d, 12h, 90m) nor an ISO 8601 instant", where=where) from None
    if at.tzinfo is None:
        raise BadInput(f"{text!r} has no offset: write it as 2026-11-01T00:00:00-05:00 or use an age",
                       where=where)
    if at > now:
        raise BadInput(f"{at.isoformat()} is in the future (now is {now.isoformat()})", where=where)
    return at


@dataclass(frozen=True)
class DecisionRecord:
    """One logged answer as ``hms decisions`` shows it."""

    decision_id: str
    environment: str
    protocol_id: str
    version: int
    bundle_sha256: str
    decided_at: datetime
    as_of: datetime
    period: str | None
    latency_ms: float
    batch_id: str | None
    key_id: str | None
    input: Any
    outputs: dict[str, Any]

    @classmethod
    def of(cls, row: LoggedDecision) -> DecisionRecord:
        return cls(row.decision_id, row.environment, row.protocol_id, row.version, row.bundle_sha256,
                   row.decided_at, row.as_of, row.period, row.latency_ms, row.batch_id, row.key_id,
                   json.loads(row.input), json.loads(row.outputs))

    def to_dict(self) -> dict[str, Any]:
        return {"decision_id": self.decision_id, "environment": self.environment, "protocol": self.protocol_id,
                "version": self.version, "bundle_sha256": self.bundle_sha256,
                "decided_at": self.decided_at.isoformat(), "as_of": self.as_of.isoformat(), "period": self.period,
                "latency_ms": round(self.latency_ms, 3), "batch_id": self.batch_id, "key_id": self.key_id,
                "input": self.input, "outputs": self.outputs}

    def line(self) -> str:
        outs = " ".join(f"{k}={v}" for k, v in self.outputs.items())
        return (f"{self.decision_id} {self.decided_at.isoformat(timespec='seconds')} {self.environment} "
                f"{self.protocol_id} v{self.version} ({self.bundle_sha256[:12]}) {outs}")


def show(decision_id: str, url: str | None = None) -> DecisionRecord:
    from hms.registry.db import session_scope

    with session_scope(url or log_url(), read_only=True) as s:
        row = s.get(LoggedDecision, decision_id.strip())
        if row is None:
            raise BadInput(f"no decision {decision_id!r} in the decision log", where="DECISION_ID")
        return DecisionRecord.of(row)


def window(
    *, protocol: str | None = None, environment: str | None = None, since: datetime | None = None,
    until: datetime | None = None, limit: int = 100, url: str | None = None,
) -> list[DecisionRecord]:
    """Logged answers, newest first, at most ``limit`` (≤ MAX_LIST)."""
    from hms.registry.db import session_scope

    if not 1 <= limit <= MAX_LIST:
        raise BadInput(f"--limit must be 1 … {MAX_LIST}, not {limit}", where="--limit")
    q = select(LoggedDecision)
    if protocol:
        q = q.where(LoggedDecision.protocol_id == protocol)
    if environment:
        q = q.where(LoggedDecision.environment == environment)
    if since is not None:
        q = q.where(LoggedDecision.decided_at >= since)
    if until is not None:
        q = q.where(LoggedDecision.decided_at < until)
    q = q.order_by(LoggedDecision.decided_at.desc(), LoggedDecision.decision_id).limit(limit)
    with session_scope(url or log_url(), read_only=True) as s:
        return [DecisionRecord.of(r) for r in s.scalars(q)]
