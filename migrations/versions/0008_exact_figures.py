"""exact figures, and task progress kept with its time

- a trip keeps the doubles its producer sent (`distance_km` and its scores, REAL/float8) and a
  challenge its `min_distance_km`, instead of whole metres and score units of 1/10,000;
- tallies (driver months, challenge entries) keep exact decimals (NUMERIC on PostgreSQL, text
  on SQLite) in kilometres, instead of integer metres and score units;
- a task's progress reports are kept with their times (`task_progress`), so a report dated
  after the task ended changes nothing.

Figures stored before this migration were rounded (to the metre, to 1/10,000 of a point):
each is converted exactly as stored (12,345 m becomes 12.345 km, 81,234 units 8.1234), so
rankings answer as before. Rebuilding the state from the topics (a new consumer group, or an
empty database) gives the exact figures of the trips folded before it. A task's lowest count
stored before it is dated at the epoch: it counts whatever the task's end, as it did.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.String(length=200)
SCORES = ("safety", "eco_driving", "distraction", "speeding")
METRES_PLACES, UNITS_PLACES = 3, 4
"""Metres are km to 3 places; score units are points to 4; score units x metres are 7."""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql()
    else:
        _sqlite()
    _task_progress()


def _doubles() -> dict[str, dict[str, tuple[str, int]]]:
    """Columns that become the producer's doubles: table -> {old name: (new name, places)}."""
    return {
        "trips": {
            "metres": ("distance_km", METRES_PLACES),
            **{score: (score, UNITS_PLACES) for score in SCORES},
        },
        "challenges": {"min_metres": ("min_distance_km", METRES_PLACES)},
    }


def _exacts() -> dict[str, dict[str, tuple[str, int]]]:
    """Columns that become exact decimals: table -> {old name: (new name, places)}."""
    tally = {
        "metres": ("km", METRES_PLACES),
        "weighted": ("weighted", METRES_PLACES + UNITS_PLACES),
        "weight": ("weight", METRES_PLACES),
    }
    driver_months = {
        "metres": ("km", METRES_PLACES),
        **{f"{s}_weighted": (f"{s}_weighted", METRES_PLACES + UNITS_PLACES) for s in SCORES},
        **{f"{s}_weight": (f"{s}_weight", METRES_PLACES) for s in SCORES},
    }
    entries = {
        f"{prefix}_{old}": (f"{prefix}_{new}", places)
        for prefix in ("during", "before")
        for old, (new, places) in tally.items()
    }
    return {"driver_months": driver_months, "challenge_entries": entries}


def _postgresql() -> None:
    """In place: a double is the integer divided in floating point (IEEE division rounds
    correctly, so 12345 / 1000 is the double nearest 12.345, the one a producer sending 12.345
    sends); a decimal is the integer times a power of ten, which NUMERIC makes exactly."""
    for table, columns in _doubles().items():
        for old, (new, places) in columns.items():
            op.execute(
                f"ALTER TABLE {table} ALTER COLUMN {old} TYPE DOUBLE PRECISION"
                f" USING {old}::DOUBLE PRECISION / {10**places}"
            )
            if new != old:
                op.execute(f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}")
    for table, columns in _exacts().items():
        for old, (new, places) in columns.items():
            op.execute(
                f"ALTER TABLE {table} ALTER COLUMN {old} TYPE NUMERIC"
                f" USING {old}::NUMERIC * 0.{'0' * (places - 1)}1"
            )
            if new != old:
                op.execute(f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}")


def _sqlite() -> None:
    """Each table is rebuilt with the new column types (its values cast), then the values
    are scaled: a double divided in floating point, a decimal written out digit by digit."""
    changes: list[tuple[str, dict[str, tuple[str, int]], sa.types.TypeEngine[Any]]]
    changes = [(t, c, sa.Float()) for t, c in _doubles().items()]
    changes += [(t, c, sa.Text()) for t, c in _exacts().items()]
    for table, columns, new_type in changes:
        with op.batch_alter_table(table, recreate="always") as batch:
            for old, (new, _) in columns.items():
                batch.alter_column(
                    old,
                    new_column_name=new,
                    type_=new_type,
                    existing_type=sa.BigInteger(),
                    existing_nullable=table != "trips",
                )
        if isinstance(new_type, sa.Float):
            scaled = {new: f"{new} / {10**places}.0" for new, places in columns.values()}
        else:
            scaled = {new: _sqlite_decimal(new, places) for new, places in columns.values()}
        assignments = ", ".join(f"{column} = {value}" for column, value in scaled.items())
        op.execute(f"UPDATE {table} SET {assignments}")


def _sqlite_decimal(column: str, places: int) -> str:
    """SQL writing the integer `column` divided by 10^places as a decimal: 12345 with 3
    places is '12.345', 5 is '0.005', -5 is '-0.005'."""
    whole = f"abs(CAST({column} AS INTEGER))"
    sign = f"CASE WHEN CAST({column} AS INTEGER) < 0 THEN '-' ELSE '' END"
    scale = 10**places
    return f"{sign} || printf('%d.%0{places}d', {whole} / {scale}, {whole} % {scale})"


def _task_progress() -> None:
    op.create_table(
        "task_progress",
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("task_id", ID, nullable=False),
        sa.Column("reported_at", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "task_id", "reported_at"),
    )
    op.execute(
        "INSERT INTO task_progress (tenant_id, task_id, reported_at, remaining)"
        " SELECT tenant_id, task_id, 0, lowest_remaining FROM tasks"
        " WHERE lowest_remaining IS NOT NULL"
    )
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("lowest_remaining")


def downgrade() -> None:
    raise NotImplementedError(
        "0008 is one way: exact figures cannot be told in whole metres and score units again"
    )
