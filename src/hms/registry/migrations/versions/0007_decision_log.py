"""The decision log: every answer of a decision service, its input masked per declared data class.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from hms.registry.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(36), primary_key=True),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("protocol_id", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("bundle_sha256", sa.String(64), nullable=False),
        sa.Column("decided_at", UTCDateTime, nullable=False),
        sa.Column("as_of", UTCDateTime, nullable=False),
        sa.Column("period", sa.String(20), nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("batch_id", sa.String(36), nullable=True),
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
    )
    op.create_index("ix_decisions_env_protocol_at", "decisions", ["environment", "protocol_id", "decided_at"])


def downgrade() -> None:
    op.drop_index("ix_decisions_env_protocol_at", "decisions")
    op.drop_table("decisions")
