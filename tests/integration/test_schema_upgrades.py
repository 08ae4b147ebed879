"""Rolling upgrades and the schema: a schema a newer Podium migrated ahead is accepted when
its newer migrations declared themselves additive, and refused, with both revisions named,
when one did not; `podium migrate --sql` prints the SQL and runs none of it. On both
databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

import migrations
from service.adapters.database import create_database_engine
from service.cli import main

NEWER = '''"""a newer Podium's migration

Revision ID: 0099
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "{head}"
branch_labels = None
depends_on = None
additive = {additive}


def upgrade() -> None:
    op.create_table("newer_things", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("newer_things")
'''


def migrated_by_a_newer_podium(engine: Engine, folder: Path, *, additive: bool) -> None:
    """The schema as a newer Podium leaves it: this Podium's migrations, then one more
    that this Podium has not got."""
    folder.mkdir()
    (folder / "0099_newer.py").write_text(NEWER.format(head=migrations.head(), additive=additive))
    migrations.upgrade(engine, versions=[folder])


def podium(database_url: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv), env={"DATABASE_URL": database_url})
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_schema_ahead_by_additive_migrations_is_used_as_it_is(
    engine: Engine, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    migrated_by_a_newer_podium(engine, tmp_path / "newer", additive=True)
    migrations.check_current(engine)
    migrations.upgrade(engine)  # what `podium serve` does first: nothing to do, no error
    with engine.connect() as connection:
        assert migrations.current(connection) == "0099"
    assert podium(database_url, capsys, "dlq", "list") == (0, "0 dead letter(s)\n")


def test_a_schema_ahead_by_a_migration_that_is_not_additive_is_refused_naming_both(
    engine: Engine, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    migrated_by_a_newer_podium(engine, tmp_path / "newer", additive=False)
    with pytest.raises(migrations.SchemaAhead) as refused:
        migrations.upgrade(engine)
    assert f"at 0099, ahead of this Podium's {migrations.head()}" in str(refused.value)
    assert "0099 are not additive" in str(refused.value)
    code, said = podium(database_url, capsys, "keys", "list")
    assert code == 1
    assert "0099" in said
    assert migrations.head() in said


def test_every_migration_from_0011_on_declares_whether_it_is_additive() -> None:
    script = ScriptDirectory.from_config(migrations._config())
    newest_first = list(script.walk_revisions())
    since = [s for s in newest_first[: [s.revision for s in newest_first].index("0011") + 1]]
    assert all(isinstance(getattr(s.module, "additive", None), bool) for s in since)


def test_migrate_sql_prints_the_migrations_and_changes_nothing(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = create_database_engine(database_url)
    try:
        if engine.dialect.name == "sqlite":  # its table rebuilds (0002, 0008) print only live
            upgrade_to(engine, "0008")
        code, said = podium(database_url, capsys, "migrate", "--sql")
        assert code == 0
        assert "CREATE TABLE podium_migrations" in said
        assert "INSERT INTO podium_migrations (revision, additive) VALUES ('0011'," in said
        with engine.connect() as connection:
            assert migrations.current(connection) in (None, "0008")
            assert "podium_migrations" not in inspect(connection).get_table_names()
        migrations.upgrade(engine)
    finally:
        engine.dispose()
    code, said = podium(database_url, capsys, "migrate", "--sql")
    assert code == 0
    assert said == f"-- the database schema is at {migrations.head()}: nothing to migrate\n"


def upgrade_to(engine: Engine, revision: str) -> None:
    config = migrations._config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
