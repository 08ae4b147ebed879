"""driver months findable by the batch that last changed them

An API instance keeps each board it serves and applies what changed since the version it
reflects: the driver months of a calendar month whose stamp (the month's state version the
batch that last changed them moved it to) is above that version, found by this index. Rows
last changed before this migration have no stamp: a kept board starts from a whole read, so
it never needs them as changes.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None
additive = True


def upgrade() -> None:
    op.add_column("driver_months", sa.Column("changed_in", sa.BigInteger(), nullable=True))
    # Partial: only a query that asks for changes (changed_in > v) can use it; a planner
    # without statistics took a full one for the look-up of one driver's month.
    op.create_index(
        "ix_driver_months_changed",
        "driver_months",
        ["tenant_id", "year", "month", "changed_in"],
        postgresql_where=sa.text("changed_in IS NOT NULL"),
        sqlite_where=sa.text("changed_in IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_driver_months_changed", table_name="driver_months")
    op.drop_column("driver_months", "changed_in")
