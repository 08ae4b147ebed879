"""results_outbox: the results of frozen windows, written with the state, relayed to Kafka

One row per result (a month and ranking type, or a challenge, of a tenant), named by its
event id, which the tenant, the window and the kind of result derive: a freeze noticed twice
(by two instances, after a restart or a replay) finds its row there and adds none. `sent_at`
is set once the broker acknowledged the record.

Revision ID: 0013
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None
additive = True

ID_LENGTH = 200
"""`service.domain.bounds.ID_MAX_LENGTH` when this was written (migrations never import the
code, which changes after them)."""


def upgrade() -> None:
    op.create_table(
        "results_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(ID_LENGTH), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("window_name", sa.String(ID_LENGTH), nullable=False),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("sent_at", sa.BigInteger(), nullable=True),
    )
    op.create_index("uq_results_outbox_event", "results_outbox", ["event_id"], unique=True)
    op.create_index("ix_results_outbox_sent", "results_outbox", ["sent_at"])


def downgrade() -> None:
    op.drop_table("results_outbox")
