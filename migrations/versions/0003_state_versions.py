"""state versions keyed by the part of the state they version

`tenant_versions.tenant_id` held tenants and finer parts of a tenant's state (its profiles, a
month of its driver months) alike: the table and its key say so now.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.rename_table("tenant_versions", "state_versions")
    with op.batch_alter_table("state_versions") as batch:
        batch.alter_column("tenant_id", new_column_name="key")


def downgrade() -> None:
    with op.batch_alter_table("state_versions") as batch:
        batch.alter_column("key", new_column_name="tenant_id")
    op.rename_table("state_versions", "tenant_versions")
