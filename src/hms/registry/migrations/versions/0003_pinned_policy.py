"""The pinned pipeline policy: what the gates enforce lives in the registry, applied by an admin; each
approval and deployment records the digest of the policy it was evaluated under.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from hms.registry.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sha256", sa.String(64), nullable=False, index=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("applied_by", sa.String(200), nullable=False),
        sa.Column("applied_at", UTCDateTime, nullable=False),
    )
    for table in ("approvals", "deployments"):
        with op.batch_alter_table(table) as t:
            t.add_column(sa.Column("policy_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    for table in ("approvals", "deployments"):
        with op.batch_alter_table(table) as t:
            t.drop_column("policy_sha256")
    op.drop_table("policies")
