"""Deployments record their protocol's own effective time (a late activation is not retroactive).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from hms.registry.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as t:
        t.add_column(sa.Column("effective_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments") as t:
        t.drop_column("effective_at")
