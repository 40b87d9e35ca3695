"""Registry tables. A bundle's sha256 is its identity: reviews, deployments, checks and audit rows point at it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in Python on every backend (SQLite has no time zones; naive values are refused on the way in)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime written to the registry; use an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


SHA = String(64)


class Bundle(Base):
    __tablename__ = "bundles"
    sha256: Mapped[str] = mapped_column(SHA, primary_key=True)
    protocol_id: Mapped[str] = mapped_column(String(63), index=True)
    version: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    manifest: Mapped[str] = mapped_column(Text)  # canonical JSON
    content: Mapped[bytes] = mapped_column(LargeBinary)
    # A version number names one content forever: `--to 3` and `id@3` must mean one bundle.
    __table_args__ = (UniqueConstraint("protocol_id", "version", name="uq_bundle_protocol_version"),)


class Approval(Base):
    __tablename__ = "approvals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bundle_sha256: Mapped[str] = mapped_column(SHA, ForeignKey("bundles.sha256"), index=True)
    user: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(10))  # approve | reject
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    policy_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the pinned policy it met
    envelope: Mapped[str | None] = mapped_column(Text, nullable=True)  # its signed statement (hms.attest)
    # One decision per clerk per bundle: two clicks, or two clerks racing, cannot double count.
    __table_args__ = (UniqueConstraint("bundle_sha256", "user", name="uq_approval_bundle_user"),)


class Deployment(Base):
    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    environment: Mapped[str] = mapped_column(String(63))
    protocol_id: Mapped[str] = mapped_column(String(63))
    bundle_sha256: Mapped[str] = mapped_column(SHA, ForeignKey("bundles.sha256"))
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))  # pending | live | superseded | rolled_back | cancelled
    activate_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    previous_sha256: Mapped[str | None] = mapped_column(SHA, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str | None] = mapped_column(String(250), nullable=True, index=True)
    # The protocol's own effective time, recorded with the row: an activation later than it is "in force from
    # activate_at, not retroactive" (hms.effective_time). NULL for rows written before migration 0002.
    effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    policy_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the pinned policy it met
    envelope: Mapped[str | None] = mapped_column(Text, nullable=True)  # its signed statement (hms.attest)
    # Its state now (state, ended_at), signed at every change: an end, a supersession or a cancellation written
    # around the core does not count (hms.attest.rows).
    state_envelope: Mapped[str | None] = mapped_column(Text, nullable=True)
    __table_args__ = (Index("ix_deployments_env_protocol", "environment", "protocol_id"),)


class Run(Base):
    """A pipeline run that deploys (its id is the ``run_id`` its deployment rows carry) and how it ended.

    ``alive`` from its first deploy, ``published`` when it took its bundle all the way, ``aborted`` when ops (or
    Airflow, on a run marked failed) stopped it: from ``ended_at`` on, none of its pending activations comes
    into force (hms.run_state), whatever the DAG does or fails to do.
    """

    __tablename__ = "runs"
    run_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))  # alive | published | aborted
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_by: Mapped[str] = mapped_column(String(200))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    envelope: Mapped[str | None] = mapped_column(Text, nullable=True)  # its state, signed (hms.attest.rows)


class Check(Base):
    """A recorded result of test / simulate / scan / chaos for one bundle: what clerks read before approving."""

    __tablename__ = "checks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bundle_sha256: Mapped[str] = mapped_column(SHA, ForeignKey("bundles.sha256"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    ok: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[str] = mapped_column(Text)  # JSON
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    envelope: Mapped[str | None] = mapped_column(Text, nullable=True)  # its signed statement (hms.attest)


class Policy(Base):
    """One applied pipeline policy; the newest row is the one every gate enforces. Never updated."""

    __tablename__ = "policies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(SHA, index=True)
    text: Mapped[str] = mapped_column(Text)  # the file as applied, byte for byte (UTF-8)
    source: Mapped[str] = mapped_column(String(1000))
    applied_by: Mapped[str] = mapped_column(String(200))
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime)
    envelope: Mapped[str | None] = mapped_column(Text, nullable=True)  # its signed statement (hms.attest)


class EnvGeneration(Base):
    """A counter per environment, bumped with every change: decision services poll this one row."""

    __tablename__ = "env_generations"
    environment: Mapped[str] = mapped_column(String(63), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)


class AuditEntry(Base):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(250), index=True)
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(SHA)
    hash: Mapped[str] = mapped_column(SHA)


class AuditHead(Base):
    """The chain's tip, one row: appends lock it (so ids and hashes never fork) and verify compares against it
    (so deleting the newest rows is detected too)."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(SHA)


class LoggedDecision(Base):
    """One answer of a decision service (hms.service.decision_log), its input masked per declared data class.

    No foreign key to ``bundles``: the log may live in its own database (``HMS_DECISION_LOG_URL``), written by
    replicas that hold only read access to the registry. Rows are written in batches off the request path and
    pruned after the retention period; they are not evidence, so they carry no signature.
    """

    __tablename__ = "decisions"
    decision_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    environment: Mapped[str] = mapped_column(String(63))
    protocol_id: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column(Integer)
    bundle_sha256: Mapped[str] = mapped_column(SHA)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    period: Mapped[str | None] = mapped_column(String(20), nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    batch_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # the batch request it answered in
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)  # which environment key hashed it
    input: Mapped[str] = mapped_column(Text)  # JSON, masked (hms.decision_masking)
    outputs: Mapped[str] = mapped_column(Text)  # JSON, as answered
    __table_args__ = (Index("ix_decisions_env_protocol_at", "environment", "protocol_id", "decided_at"),)
