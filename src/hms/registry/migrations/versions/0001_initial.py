"""Initial registry schema: bundles, approvals, deployments, checks, generations, audit chain.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from hms.registry.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SHA = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "bundles",
        sa.Column("sha256", SHA, primary_key=True),
        sa.Column("protocol_id", sa.String(63), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("protocol_id", "version", name="uq_bundle_protocol_version"),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("bundle_sha256", SHA, sa.ForeignKey("bundles.sha256"), nullable=False, index=True),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("role", sa.String(100), nullable=False),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("bundle_sha256", "user", name="uq_approval_bundle_user"),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("protocol_id", sa.String(63), nullable=False),
        sa.Column("bundle_sha256", SHA, sa.ForeignKey("bundles.sha256"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("activate_at", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime),
        sa.Column("previous_sha256", SHA),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(250), index=True),
    )
    op.create_index("ix_deployments_env_protocol", "deployments", ["environment", "protocol_id"])
    op.create_table(
        "checks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("bundle_sha256", SHA, sa.ForeignKey("bundles.sha256"), nullable=False, index=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(250)),
    )
    op.create_table(
        "env_generations",
        sa.Column("environment", sa.String(63), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(250), nullable=False, index=True),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", SHA, nullable=False),
        sa.Column("hash", SHA, nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_id", sa.Integer, nullable=False),
        sa.Column("last_hash", SHA, nullable=False),
    )
    op.bulk_insert(
        sa.table("audit_head", sa.column("id"), sa.column("last_id"), sa.column("last_hash")),
        [{"id": 1, "last_id": 0, "last_hash": "0" * 64}],
    )


def downgrade() -> None:
    for t in ("audit_head", "audit", "env_generations", "checks", "deployments", "approvals", "bundles"):
        op.drop_table(t)
