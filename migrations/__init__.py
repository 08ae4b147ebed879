"""Alembic migrations of Podium's schema: `upgrade` is the one way to apply them (`podium
migrate` and `podium serve` call it); other commands only check the schema is current.

A schema migrated ahead of this Podium by a newer one (a rollout runs both for a while) is
accepted when every newer migration declared itself additive, else refused with both
revisions named (migrations/applied.py)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sqlalchemy import Connection, Engine, exc, text

from migrations.applied import declared

if TYPE_CHECKING:
    from alembic.config import Config

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


VERSIONS = Path(__file__).parent / "versions"
_REVISION = re.compile(r'^revision = "([^"]+)"$', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision = (?:None|"([^"]+)")$', re.MULTILINE)


def _config(versions: Sequence[Path] = (), output: TextIO | None = None) -> Config:
    from alembic.config import Config

    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(Path(__file__).parent))
    if versions:
        places = [Path(__file__).parent / "versions", *versions]
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", os.pathsep.join(str(p) for p in places))
    return config


def head() -> str:
    from alembic.script import ScriptDirectory

    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None
    return found


def current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def written_head() -> str | None:
    """The newest revision as the migration files write it (`revision = "..."`, the one no
    other names as its `down_revision`), read without Alembic, whose import is most of a
    process's start when the schema is current (bench/RESULTS.md, issue 26). None when the
    files do not say it plainly (a branch, a merge): Alembic is asked then."""
    revisions, parents = set(), set()
    for script in VERSIONS.glob("*.py"):
        source = script.read_text("utf-8")
        revision, parent = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or parent is None:
            continue
        revisions.add(revision.group(1))
        if parent.group(1) is not None:
            parents.add(parent.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def is_current(engine: Engine) -> bool:
    """The schema is at this code's newest revision, read cheaply (`written_head`, the
    version table): False whenever that cannot be told, and Alembic is asked then."""
    wanted = written_head()
    if wanted is None:
        return False
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except exc.DBAPIError:
        return False  # no version table yet: an empty database
    return [row[0] for row in rows] == [wanted]


def _ahead(connection: Connection, found: str | None, config: Config) -> bool:
    """Whether the schema is ahead of this code; raises `SchemaAhead` when this code must
    not run on it. A revision this code does not know is a newer Podium's."""
    if found is None:
        return False
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

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
    (a test's newer Podium). A schema already at the newest revision is told cheaply
    (`is_current`), without importing Alembic."""
    if revision == "head" and not versions and is_current(engine):
        return
    from alembic import command

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
    from alembic import command
    from alembic.util import CommandError

    config = _config(output=output)
    config.attributes["dialect"] = engine.dialect.name
    try:
        command.upgrade(config, f"{before}:head" if before else "head", sql=True)
    except CommandError as error:  # SQLite's table rebuilds need the live table
        raise SqlNotPrintable(f"the migration cannot be printed as SQL: {error}") from None


def check_current(engine: Engine) -> None:
    """Refuse a database whose schema is behind this code (`SchemaBehind`), or ahead of it
    with migrations that are not additive (`SchemaAhead`)."""
    if is_current(engine):
        return
    with engine.connect() as connection:
        found = current(connection)
        if _ahead(connection, found, _config()):
            return
    wanted = head()
    if found != wanted:
        raise SchemaBehind(found, wanted)
