"""The stored schema agrees with the bounds validation holds events to (service.domain.bounds)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from sqlalchemy import Engine, String, insert, inspect, select

from service.adapters.tables import metadata, state_versions, step_attempts
from service.app.state_versions import month_key, profiles_key
from service.domain import bounds
from service.domain.ranking import Month


def test_the_migrated_string_columns_are_as_wide_as_the_tables_say(engine: Engine) -> None:
    inspector = inspect(engine)
    declared, migrated = {}, {}
    for table in metadata.sorted_tables:
        reflected = {c["name"]: c["type"] for c in inspector.get_columns(table.name)}
        for column in table.c:
            if isinstance(column.type, String) and column.type.length is not None:
                declared[(table.name, column.name)] = column.type.length
                migrated[(table.name, column.name)] = getattr(
                    reflected[column.name], "length", None
                )
    assert migrated == declared
    assert declared[("trips", "trip_id")] == bounds.ID_MAX_LENGTH
    assert declared[("users", "email_lower")] == bounds.EMAIL_MAX_LENGTH


def test_the_longest_scope_of_the_longest_tenant_id_fits_its_column() -> None:
    tenant = "t" * bounds.TENANT_ID_MAX_LENGTH
    last_month = Month.of(bounds.TIME_MAX).previous()
    scopes = [tenant, profiles_key(tenant), month_key(tenant, last_month)]
    assert max(len(s) for s in scopes) <= bounds.ID_MAX_LENGTH
    assert state_versions.c.key.type.length == bounds.ID_MAX_LENGTH  # type: ignore[attr-defined]


def test_the_widest_key_of_ids_at_their_byte_bound_fits_a_postgresql_index_entry(
    postgresql_engine: Engine,
) -> None:
    """Four ids of random 4-byte characters, as long as the bounds let them be (they hardly
    compress, unlike repeated characters). SQLite has no limit on an index entry."""
    engine = postgresql_engine
    chars = bounds.ID_MAX_BYTES // 4
    rng = random.Random(7)

    def wide_id() -> str:
        return "".join(chr(rng.randint(0x10000, 0x1FFFF)) for _ in range(chars))

    at = datetime(2026, 11, 3, tzinfo=UTC)
    key = {"tenant_id": wide_id(), "session_id": wide_id(), "user_id": wide_id()}
    with engine.begin() as c:
        c.execute(
            insert(step_attempts).values(
                **key,
                attempt_id=wide_id(),
                step_id=wide_id(),
                started_at=at,
                ended_at=at,
                time_spent_ms=1,
                score=None,
                outside_path=False,
            )
        )
        assert c.execute(select(step_attempts.c.user_id)).scalar_one() == key["user_id"]
