"""state_version_shards: the versions that writers of one tenant move side by side

A batch that holds its tenant's lock shared (per-user events only) moves the shard of its
lock bucket of each version it changes (the tenant's, a calendar month's) rather than the
version's own row, which another writer of the tenant would have to wait for; a part's
version is its own plus its shards'. A driver month's `changed_in` names the shard and its
version (`service.app.shards.stamp`).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None
additive = True

ID_LENGTH = 200
"""`service.domain.bounds.ID_MAX_LENGTH` when this was written (migrations never import the
code, which changes after them)."""


def upgrade() -> None:
    op.create_table(
        "state_version_shards",
        sa.Column("key", sa.String(ID_LENGTH), primary_key=True),
        sa.Column("shard", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("state_version_shards")
