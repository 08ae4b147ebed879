"""state that converges whatever the arrival order

- tasks keep their facts (first creation, earliest start, lowest remaining count, earliest
  completion and failure) instead of a status reached in arrival order, and pauses are kept
  in `task_pauses`; a task canceled under the old rule keeps `canceled_at`, its start (or
  creation) being the earliest moment a pause could have reached it;
- every registration is kept in `challenge_registrations`: a challenge's entry is the earliest
  one that arrived before the challenge froze; entries of challenges not yet published are
  dropped (their registrations stay and make the entries at publication);
- every profile version is kept in `profile_versions` with its groups: a frozen window keeps
  the membership of the versions that arrived before its freeze. Versions stored before this
  migration are taken as having arrived when they occurred.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.String(length=200)
CANCELED, IN_PROGRESS, FAILED = 4, 2, 5


def upgrade() -> None:
    _tasks()
    _registrations()
    _profile_versions()


def _tasks() -> None:
    op.create_table(
        "task_pauses",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("type", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("paused_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "type", "paused_at"),
    )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("created_version_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("created_version_event", ID, nullable=True))
        batch.add_column(sa.Column("lowest_remaining", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("canceled_at", sa.BigInteger(), nullable=True))
    tasks = sa.table(
        "tasks",
        *(
            sa.column(name)
            for name in (
                "status",
                "nb_items",
                "nb_remaining_items",
                "created_at",
                "started_at",
                "created_version_at",
                "created_version_event",
                "lowest_remaining",
                "canceled_at",
            )
        ),
    )
    op.execute(
        sa.update(tasks).values(
            created_version_at=tasks.c.created_at, created_version_event=sa.literal("")
        )
    )
    op.execute(
        sa.update(tasks)
        .where(
            tasks.c.status.in_([IN_PROGRESS, CANCELED, FAILED]),
            tasks.c.nb_remaining_items < tasks.c.nb_items,
        )
        .values(lowest_remaining=tasks.c.nb_remaining_items)
    )
    op.execute(
        sa.update(tasks)
        .where(tasks.c.status == CANCELED)
        .values(canceled_at=sa.func.coalesce(tasks.c.started_at, tasks.c.created_at))
    )
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_type_status")
        batch.drop_column("status")
        batch.drop_column("nb_remaining_items")
        batch.alter_column("type", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("nb_items", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("created_at", existing_type=sa.BigInteger(), nullable=True)


def _registrations() -> None:
    op.create_table(
        "challenge_registrations",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("challenge_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.Column("arrived_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "challenge_id", "user_id", "registered_at", "arrived_at"
        ),
    )
    columns = ("tenant_id", "challenge_id", "user_id", "registered_at", "arrived_at")
    entries = sa.table("challenge_entries", *(sa.column(c) for c in columns))
    registrations = sa.table("challenge_registrations", *(sa.column(c) for c in columns))
    op.execute(
        sa.insert(registrations).from_select(
            list(columns), sa.select(*(entries.c[c] for c in columns))
        )
    )
    challenges = sa.table("challenges", sa.column("tenant_id"), sa.column("challenge_id"))
    published = sa.exists().where(
        challenges.c.tenant_id == entries.c.tenant_id,
        challenges.c.challenge_id == entries.c.challenge_id,
    )
    op.execute(sa.delete(entries).where(~published))


def _profile_versions() -> None:
    key = ("tenant_id", "user_id", "version_at", "version_event")
    op.create_table(
        "profile_versions",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("version_at", sa.BigInteger(), nullable=False),
        sa.Column("version_event", ID, nullable=False),
        sa.Column("arrived_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*key),
    )
    op.create_index("ix_profile_versions_arrival", "profile_versions", ["tenant_id", "arrived_at"])
    op.create_table(
        "profile_version_groups",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("version_at", sa.BigInteger(), nullable=False),
        sa.Column("version_event", ID, nullable=False),
        sa.Column("group_label", ID, nullable=False),
        sa.PrimaryKeyConstraint(*key, "group_label"),
    )
    users = sa.table(
        "users", *(sa.column(c) for c in ("tenant_id", "user_id", "version_at", "version_event"))
    )
    versions = sa.table("profile_versions", *(sa.column(c) for c in (*key, "arrived_at")))
    op.execute(
        sa.insert(versions).from_select(
            [*key, "arrived_at"], sa.select(*(users.c[c] for c in key), users.c.version_at)
        )
    )
    groups = sa.table(
        "user_groups", *(sa.column(c) for c in ("tenant_id", "user_id", "group_label"))
    )
    version_groups = sa.table(
        "profile_version_groups", *(sa.column(c) for c in (*key, "group_label"))
    )
    op.execute(
        sa.insert(version_groups).from_select(
            [*key, "group_label"],
            sa.select(
                groups.c.tenant_id,
                groups.c.user_id,
                users.c.version_at,
                users.c.version_event,
                groups.c.group_label,
            ).join(
                users,
                (users.c.tenant_id == groups.c.tenant_id) & (users.c.user_id == groups.c.user_id),
            ),
        )
    )


def downgrade() -> None:
    raise NotImplementedError(
        "0004 is one way: tasks keep facts from here on, and their old statuses cannot be "
        "told apart from them again"
    )
