"""Signed evidence: each approval, check, deployment and pinned policy keeps the DSSE envelope of its in-toto Statement.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("approvals", "checks", "deployments", "policies")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as t:
            t.add_column(sa.Column("envelope", sa.Text, nullable=True))
    with op.batch_alter_table("deployments") as t:  # the signed end (rollback, supersession, cancellation)
        t.add_column(sa.Column("end_envelope", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments") as t:
        t.drop_column("end_envelope")
    for table in TABLES:
        with op.batch_alter_table(table) as t:
            t.drop_column("envelope")
