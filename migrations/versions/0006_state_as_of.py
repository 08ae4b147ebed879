"""state versions keep the arrival time of the newest event that moved them

Answers carry it as `asOf`. Versions moved before this revision have none until their next
event.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("state_versions") as batch:
        batch.add_column(sa.Column("as_of", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("state_versions") as batch:
        batch.drop_column("as_of")
