"""Signed states: a deployment's state envelope (live, superseded, rolled back, cancelled, and when it ended) and a
run's envelope (alive, published, aborted), so neither an end nor an abort can be written around the core.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as t:
        t.alter_column("end_envelope", new_column_name="state_envelope", existing_type=sa.Text, existing_nullable=True)
    with op.batch_alter_table("runs") as t:
        t.add_column(sa.Column("envelope", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as t:
        t.drop_column("envelope")
    with op.batch_alter_table("deployments") as t:
        t.alter_column("state_envelope", new_column_name="end_envelope", existing_type=sa.Text, existing_nullable=True)
