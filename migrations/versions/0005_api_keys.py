"""API keys get an id, an expiry, a revocation time and a last use

A key is now `pod_<id>_<secret>`, its id shown by `podium keys list` and named by `podium keys
revoke`. Keys made before have no id in them and keep working unchanged (they are still found
by their SHA-256); each is given the first 16 hex digits of its stored SHA-256 as its id, which
its holder can compute: `printf %s "$KEY" | sha256sum | cut -c1-16`.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.BigInteger(), nullable=True))
    op.execute("UPDATE api_keys SET key_id = substr(key_hash, 1, 16)")
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("key_id", existing_type=sa.String(length=16), nullable=False)
        batch.create_unique_constraint("api_keys_key_id_key", ["key_id"])


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint("api_keys_key_id_key", type_="unique")
        batch.drop_column("last_used_at")
        batch.drop_column("revoked_at")
        batch.drop_column("expires_at")
        batch.drop_column("key_id")
