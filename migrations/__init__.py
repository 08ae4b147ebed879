"""Alembic migrations of Podium's schema: `upgrade` is the one way to apply them (`podium
migrate` and `podium serve` call it); other commands only check the schema is current.

A schema migrated ahead of this Podium by a newer one (a rollout runs both for a while) is
accepted when every newer migration declared itself additive, else refused with both
revisions named (migrations/applied.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text

from migrations.applied import declared

log = logging.getLogger(__name__)

LOCK_KEY = 0x706F6469756D
"""The PostgreSQL advisory lock held while migrating ("podium" in hex), so instances starting
together migrate one after the other."""


class SchemaBehind(RuntimeError):
    def __init__(self, current: str | None, head: str) -> None:
        super().__init__(
            f"the database schema is at {current or 'nothing'}, this Podium needs {head}: "
            "run `podium migrate` first"
        )


class SchemaAhead(RuntimeError):
    """A newer Podium migrated the schema with migrations that are not additive."""

    def __init__(self, current: str, head: str, blocking: Sequence[str]) -> None:
        why = (
            f"its newer migrations {', '.join(blocking)} are not additive"
            if blocking
            else "it does not say whether its newer migrations are additive"
        )
        super().__init__(
            f"the database schema is at {current}, ahead of this Podium's {head}, and {why}: "
            f"run a Podium that knows {current}"
        )


class SqlNotPrintable(RuntimeError):
    """A migration Alembic cannot write out without the live database (on SQLite, one that
    rebuilds a table: Alembic reads the table first)."""


def _config(versions: Sequence[Path] = (), output: TextIO | None = None) -> Config:
    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(Path(__file__).parent))
    if versions:
        places = [Path(__file__).parent / "versions", *versions]
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", os.pathsep.join(str(p) for p in places))
    return config


def head() -> str:
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None
    return found


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _ahead(connection: Connection, found: str | None, config: Config) -> bool:
    """Whether the schema is ahead of this code; raises `SchemaAhead` when this code must
    not run on it. A revision this code does not know is a newer Podium's."""
    if found is None:
        return False
    try:
        ScriptDirectory.from_config(config).get_revision(found)
        return False
    except CommandError:
        pass
    wanted = ScriptDirectory.from_config(config).get_current_head() or "nothing"
    recorded = declared(connection) or {}
    known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
    newer = {revision: additive for revision, additive in recorded.items() if revision not in known}
    if found not in newer:
        raise SchemaAhead(found, wanted, ())
    if blocking := sorted(revision for revision, additive in newer.items() if not additive):
        raise SchemaAhead(found, wanted, blocking)
    log.warning(
        "the database schema is at %s, ahead of this Podium's %s; its newer migrations (%s) "
        "are additive: running on it",
        found,
        wanted,
        ", ".join(sorted(newer)),
    )
    return True


def upgrade(engine: Engine, revision: str = "head", *, versions: Sequence[Path] = ()) -> None:
    """Bring the schema to the newest migration (idempotent), or to `revision` (the tests of
    a migration start from the one before), one migrator at a time: an advisory lock on
    PostgreSQL, the write lock taken at BEGIN on SQLite. A schema ahead of this code is left
    as it is when that is safe (`SchemaAhead` when not). `versions`: more migration folders
    (a test's newer Podium)."""
    config = _config(versions)
    with (
        engine.connect().execution_options(podium_writer=True) as connection,
        connection.begin(),
    ):
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        before = current(connection)
        if _ahead(connection, before, config):
            return
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        after = current(connection)
    if after != before:
        log.info("migrated the database schema from %s to %s", before or "nothing", after)


def upgrade_sql(engine: Engine, output: TextIO) -> None:
    """Write the SQL that `upgrade` would run on this database, for review (Alembic's
    offline mode): from its schema's revision to the newest, nothing when it is current."""
    with engine.connect() as connection:
        before = current(connection)
        if _ahead(connection, before, _config()) or before == head():
            output.write(f"-- the database schema is at {before}: nothing to migrate\n")
            return
    config = _config(output=output)
    config.attributes["dialect"] = engine.dialect.name
    try:
        command.upgrade(config, f"{before}:head" if before else "head", sql=True)
    except CommandError as error:  # SQLite's table rebuilds need the live table
        raise SqlNotPrintable(f"the migration cannot be printed as SQL: {error}") from None


def check_current(engine: Engine) -> None:
    """Refuse a database whose schema is behind this code (`SchemaBehind`), or ahead of it
    with migrations that are not additive (`SchemaAhead`)."""
    with engine.connect() as connection:
        found = current(connection)
        if _ahead(connection, found, _config()):
            return
    wanted = head()
    if found != wanted:
        raise SchemaBehind(found, wanted)
