"""profile versions findable by the group they list

A frozen window's group is its members as of the freeze: the newest version of each user who
was ever listed in the group. Finding those users by group needs this index; without it the
newest version of every user of the tenant was computed first.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_profile_version_groups_group",
        "profile_version_groups",
        ["tenant_id", "group_label", "user_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_profile_version_groups_group", table_name="profile_version_groups")
