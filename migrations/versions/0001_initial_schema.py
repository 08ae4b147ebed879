"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "api_keys",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("scopes", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_hash"),
    )
    op.create_table(
        "challenge_entries",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("challenge_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.Column("arrived_at", sa.BigInteger(), nullable=False),
        sa.Column("during_trips", sa.Integer(), nullable=False),
        sa.Column("during_metres", sa.BigInteger(), nullable=False),
        sa.Column("during_weighted", sa.BigInteger(), nullable=False),
        sa.Column("during_weight", sa.BigInteger(), nullable=False),
        sa.Column("before_trips", sa.Integer(), nullable=False),
        sa.Column("before_metres", sa.BigInteger(), nullable=False),
        sa.Column("before_weighted", sa.BigInteger(), nullable=False),
        sa.Column("before_weight", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "challenge_id", "user_id"),
    )
    with op.batch_alter_table("challenge_entries", schema=None) as batch_op:
        batch_op.create_index("ix_challenge_entries_user", ["tenant_id", "user_id"], unique=False)

    op.create_table(
        "challenge_groups",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("challenge_id", sa.String(length=200), nullable=False),
        sa.Column("group_label", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "challenge_id", "group_label"),
    )
    op.create_table(
        "challenges",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("challenge_id", sa.String(length=200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("theme", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.BigInteger(), nullable=False),
        sa.Column("end_at", sa.BigInteger(), nullable=False),
        sa.Column("min_trips", sa.Integer(), nullable=False),
        sa.Column("min_metres", sa.BigInteger(), nullable=False),
        sa.Column("pre_period_us", sa.BigInteger(), nullable=False),
        sa.Column("pre_min_trips", sa.Integer(), nullable=False),
        sa.Column("version_at", sa.BigInteger(), nullable=False),
        sa.Column("version_event", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "challenge_id"),
    )
    op.create_table(
        "consumer_offsets",
        sa.Column("consumer_group", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "topic", "partition"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("record_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.String(length=200), nullable=True),
        sa.Column("event_id", sa.String(length=200), nullable=True),
        sa.Column("first_failed_at", sa.BigInteger(), nullable=False),
        sa.Column("last_failed_at", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.create_index("ix_dead_letters_tenant", ["tenant_id"], unique=False)
        batch_op.create_index("ix_dead_letters_topic", ["topic"], unique=False)

    op.create_table(
        "driver_months",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("month", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("trips", sa.Integer(), nullable=False),
        sa.Column("metres", sa.BigInteger(), nullable=False),
        sa.Column("safety_weighted", sa.BigInteger(), nullable=False),
        sa.Column("eco_driving_weighted", sa.BigInteger(), nullable=False),
        sa.Column("distraction_weighted", sa.BigInteger(), nullable=False),
        sa.Column("speeding_weighted", sa.BigInteger(), nullable=False),
        sa.Column("safety_weight", sa.BigInteger(), nullable=False),
        sa.Column("eco_driving_weight", sa.BigInteger(), nullable=False),
        sa.Column("distraction_weight", sa.BigInteger(), nullable=False),
        sa.Column("speeding_weight", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "year", "month", "user_id"),
    )
    op.create_table(
        "ignored_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ignored_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ignored_events", schema=None) as batch_op:
        batch_op.create_index("ix_ignored_events_tenant", ["tenant_id"], unique=False)

    op.create_table(
        "path_learners",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("enrolled_at", sa.BigInteger(), nullable=True),
        sa.Column("unenrolled_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "session_id", "user_id"),
    )
    op.create_table(
        "path_sessions",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("path_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.BigInteger(), nullable=True),
        sa.Column("ends_at", sa.BigInteger(), nullable=True),
        sa.Column("steps", sa.Text(), nullable=False),
        sa.Column("version_at", sa.BigInteger(), nullable=False),
        sa.Column("version_event", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "session_id"),
    )
    op.create_table(
        "service_state",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "step_attempts",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("attempt_id", sa.String(length=200), nullable=False),
        sa.Column("step_id", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=False),
        sa.Column("time_spent_ms", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("outside_path", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "session_id", "user_id", "attempt_id"),
    )
    op.create_table(
        "step_corrections",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("attempt_id", sa.String(length=200), nullable=False),
        sa.Column("step_id", sa.String(length=200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("corrected_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "session_id", "user_id", "attempt_id"),
    )
    op.create_table(
        "tasks",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("task_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.Integer(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("nb_items", sa.Integer(), nullable=False),
        sa.Column("nb_remaining_items", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("completed_at", sa.BigInteger(), nullable=True),
        sa.Column("failed_at", sa.BigInteger(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "task_id"),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_type_status", ["tenant_id", "type", "status"], unique=False)

    op.create_table(
        "tenant_versions",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "trips",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("trip_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("metres", sa.BigInteger(), nullable=True),
        sa.Column("safety", sa.BigInteger(), nullable=True),
        sa.Column("eco_driving", sa.BigInteger(), nullable=True),
        sa.Column("distraction", sa.BigInteger(), nullable=True),
        sa.Column("speeding", sa.BigInteger(), nullable=True),
        sa.Column("arrived_at", sa.BigInteger(), nullable=True),
        sa.Column("deleted_arrived_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "trip_id"),
    )
    with op.batch_alter_table("trips", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trips_user_ended", ["tenant_id", "user_id", "ended_at"], unique=False
        )

    op.create_table(
        "user_groups",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("group_label", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "group_label", "user_id"),
    )
    with op.batch_alter_table("user_groups", schema=None) as batch_op:
        batch_op.create_index("ix_user_groups_user", ["tenant_id", "user_id"], unique=False)

    op.create_table(
        "users",
        sa.Column("tenant_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_lower", sa.String(length=320), nullable=False),
        sa.Column("firstname", sa.String(length=200), nullable=False),
        sa.Column("lastname", sa.String(length=200), nullable=False),
        sa.Column("pseudo", sa.String(length=200), nullable=False),
        sa.Column("version_at", sa.BigInteger(), nullable=False),
        sa.Column("version_event", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "user_id"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index("ix_users_email", ["tenant_id", "email_lower"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_email")

    op.drop_table("users")
    with op.batch_alter_table("user_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_user_groups_user")

    op.drop_table("user_groups")
    with op.batch_alter_table("trips", schema=None) as batch_op:
        batch_op.drop_index("ix_trips_user_ended")

    op.drop_table("trips")
    op.drop_table("tenant_versions")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_type_status")

    op.drop_table("tasks")
    op.drop_table("step_corrections")
    op.drop_table("step_attempts")
    op.drop_table("service_state")
    op.drop_table("path_sessions")
    op.drop_table("path_learners")
    with op.batch_alter_table("ignored_events", schema=None) as batch_op:
        batch_op.drop_index("ix_ignored_events_tenant")

    op.drop_table("ignored_events")
    op.drop_table("driver_months")
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index("ix_dead_letters_topic")
        batch_op.drop_index("ix_dead_letters_tenant")

    op.drop_table("dead_letters")
    op.drop_table("consumer_offsets")
    op.drop_table("challenges")
    op.drop_table("challenge_groups")
    with op.batch_alter_table("challenge_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_challenge_entries_user")

    op.drop_table("challenge_entries")
    op.drop_table("api_keys")
