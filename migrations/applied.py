"""Which migrations were applied and whether each is additive, as the migrations themselves
wrote it (`podium_migrations`, from revision 0011 on): how a Podium tells a schema that a
newer Podium migrated ahead of it, and that it may still run on, from one it must not touch.

A migration is additive when it only adds what older code never reads: a table, a nullable
or defaulted column, an index. One that renames, drops, retypes or rewrites what older code
relies on declares `additive = False`, and older instances refuse the schema it leaves."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import Connection

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext

applied_migrations = sa.Table(
    "podium_migrations",
    sa.MetaData(),
    sa.Column("revision", sa.String(64), primary_key=True),
    sa.Column("additive", sa.Boolean(), nullable=False),
)


def record_applied(ctx: MigrationContext, revision: str, additive: bool) -> None:
    """Written in the migration's own transaction (or into the SQL `--sql` prints)."""
    ctx.execute(applied_migrations.insert().values(revision=revision, additive=additive))


def declared(connection: Connection) -> dict[str, bool] | None:
    """Each recorded revision and whether it is additive; None when the table is missing
    (a schema from before revision 0011)."""
    if not sa.inspect(connection).has_table("podium_migrations"):
        return None
    rows = connection.execute(
        sa.select(applied_migrations.c.revision, applied_migrations.c.additive)
    )
    return {revision: bool(additive) for revision, additive in rows}
