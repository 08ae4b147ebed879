"""dead letters and ignored events kept once per record; raw record timestamps

A replay from offset 0 must not keep a record's dead letter (or ignored event) twice, so both
are unique on (topic, partition, offset); duplicates an older version kept are dropped, the
first one staying. A dead letter's record timestamp is kept as the record carried it (epoch
milliseconds): a record is dead-lettered precisely when its timestamp is unusable.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RECORD = ("topic", "partition", "offset")


def _drop_duplicates(name: str) -> None:
    table = sa.table(name, sa.column("id"), *(sa.column(c) for c in RECORD))
    keep = sa.select(sa.func.min(table.c.id)).group_by(*(table.c[c] for c in RECORD))
    op.execute(sa.delete(table).where(table.c.id.not_in(keep)))


def upgrade() -> None:
    for name in ("dead_letters", "ignored_events"):
        _drop_duplicates(name)
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("record_timestamp_ms", sa.BigInteger(), nullable=True))
    letters = sa.table(
        "dead_letters", sa.column("record_timestamp"), sa.column("record_timestamp_ms")
    )
    op.execute(sa.update(letters).values(record_timestamp_ms=letters.c.record_timestamp / 1000))
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_column("record_timestamp")
        batch.alter_column("record_timestamp_ms", existing_type=sa.BigInteger(), nullable=False)
        batch.create_index("uq_dead_letters_record", list(RECORD), unique=True)
    with op.batch_alter_table("ignored_events") as batch:
        batch.create_index("uq_ignored_events_record", list(RECORD), unique=True)


def downgrade() -> None:
    with op.batch_alter_table("ignored_events") as batch:
        batch.drop_index("uq_ignored_events_record")
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_index("uq_dead_letters_record")
        batch.add_column(sa.Column("record_timestamp", sa.BigInteger(), nullable=True))
    letters = sa.table(
        "dead_letters", sa.column("record_timestamp"), sa.column("record_timestamp_ms")
    )
    op.execute(sa.update(letters).values(record_timestamp=letters.c.record_timestamp_ms * 1000))
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_column("record_timestamp_ms")
        batch.alter_column("record_timestamp", existing_type=sa.BigInteger(), nullable=False)
