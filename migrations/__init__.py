"""Alembic migrations of Podium's schema: `upgrade` is the one way to apply them (`podium
migrate` and `podium serve` call it); other commands only check the schema is current."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

LOCK_KEY = 0x706F6469756D
"""The PostgreSQL advisory lock held while migrating ("podium" in hex), so instances starting
together migrate one after the other."""


class SchemaBehind(RuntimeError):
    def __init__(self, current: str | None, head: str) -> None:
        super().__init__(
            f"the database schema is at {current or 'nothing'}, this Podium needs {head}: "
            "run `podium migrate` first"
        )


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    return config


def head() -> str:
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None
    return found


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to the newest migration (idempotent), or to `revision` (the tests of
    a migration start from the one before), one migrator at a time: an advisory lock on
    PostgreSQL, the write lock taken at BEGIN on SQLite."""
    config = _config()
    with (
        engine.connect().execution_options(podium_writer=True) as connection,
        connection.begin(),
    ):
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def check_current(engine: Engine) -> None:
    """Refuse a database whose schema is behind this code (`SchemaBehind`)."""
    with engine.connect() as connection:
        found = current(connection)
    wanted = head()
    if found != wanted:
        raise SchemaBehind(found, wanted)
