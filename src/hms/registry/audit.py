"""The audit trail: append-only, each row hashing its predecessor, the tip kept in ``audit_head``.

An edited row breaks its own hash, an inserted or deleted row breaks the link of the
next one, and deleting rows at the end no longer matches the head. Appends lock the
head row, so two writers can never produce two rows with the same predecessor.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hms import clock
from hms.registry.models import AuditEntry, AuditHead

GENESIS = "0" * 64


def _canonical(details: Any) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(
    prev_hash: str, entry_id: int, at: datetime, actor: str, action: str, subject: str, details: str
) -> str:
    body = _canonical([prev_hash, entry_id, at.astimezone(UTC).isoformat(), actor, action, subject, details])
    return hashlib.sha256(body.encode()).hexdigest()


def append(session: Session, *, actor: str, action: str, subject: str, details: dict[str, Any]) -> AuditEntry:
    """Add one entry in the caller's transaction: it commits with the change it describes, or not at all.

    When the transaction acts for an authenticated principal (``session_scope(principal=…)``), the entry
    says how it was authenticated (``airflow-token``, ``os-account``, ``pipeline``) and, for the pipeline,
    for which run and on whose behalf: part of the hashed details, like everything else.
    """
    from hms.registry.db import PRINCIPAL_KEY

    if PRINCIPAL_KEY in session.info and "principal" not in details:
        details = {**details, "principal": session.info[PRINCIPAL_KEY]}
    head = session.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    at = clock.now()
    text = _canonical(details)
    entry_id = head.last_id + 1
    h = row_hash(head.last_hash, entry_id, at, actor, action, subject, text)
    entry = AuditEntry(
        id=entry_id, at=at, actor=actor, action=action, subject=subject, details=text, prev_hash=head.last_hash, hash=h
    )
    session.add(entry)
    head.last_id, head.last_hash = entry_id, h
    session.flush()
    return entry


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    count: int
    first_bad_id: int | None = None
    reason: str | None = None


def verify(session: Session) -> VerifyResult:
    """Walk the chain from the genesis; report the first row that does not hold."""
    prev, expected_id, count = GENESIS, 1, 0
    for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id)).yield_per(1000):
        if e.id != expected_id:
            return VerifyResult(False, count, e.id, f"row {expected_id} is missing (next row is {e.id})")
        if e.prev_hash != prev:
            return VerifyResult(False, count, e.id, "link to the previous row does not match")
        if row_hash(e.prev_hash, e.id, e.at, e.actor, e.action, e.subject, e.details) != e.hash:
            return VerifyResult(False, count, e.id, "row content does not match its hash (edited)")
        prev, expected_id, count = e.hash, e.id + 1, count + 1
    head = session.get(AuditHead, 1)
    if head is None or head.last_id != count or head.last_hash != prev:
        last = head.last_id if head else None
        return VerifyResult(False, count, last, f"chain ends at row {count} but the head records row {last} (deleted)")
    return VerifyResult(True, count)


def entries(session: Session, subject: str | None = None, limit: int = 50) -> list[AuditEntry]:
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if subject:
        q = q.where(AuditEntry.subject == subject)
    return list(session.scalars(q).all())
