"""migrations say whether an older Podium may run on the schema they leave

Each migration from this one on declares `additive` (a module constant): True when it only
adds what older code never reads (a table, a nullable or defaulted column, an index), so an
older Podium may keep running on the schema it leaves; False when it changes or removes what
older code relies on. The migration environment (migrations/env.py) writes that declaration
into `podium_migrations` as it applies each one, so an older Podium, which has not got the
newer migration files, can still read whether the schema ahead of it is safe for it.

Revision ID: 0011
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None
additive = True


def upgrade() -> None:
    op.create_table(
        "podium_migrations",
        sa.Column("revision", sa.String(64), primary_key=True),
        sa.Column("additive", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("podium_migrations")
