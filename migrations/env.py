"""Alembic environment: migrations run on the connection `podium migrate` hands in, or
(`podium migrate --sql`) are written out as SQL for the dialect it names."""

from __future__ import annotations

from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo

from migrations.applied import record_applied
from service.adapters.tables import metadata


def _record(ctx: MigrationContext, step: MigrationInfo, **_: Any) -> None:
    """Each applied migration that declares `additive` leaves that declaration in the
    schema, where an older Podium reads it (migrations/applied.py)."""
    script = step.up_revision
    if step.is_upgrade and not step.is_stamp and script is not None:
        additive = getattr(getattr(script, "module", None), "additive", None)
        if additive is not None:
            record_applied(ctx, script.revision, additive)


options: dict[str, Any] = {
    "target_metadata": metadata,
    "render_as_batch": True,
    "on_version_apply": [_record],
}
if context.is_offline_mode():
    context.configure(
        dialect_name=context.config.attributes["dialect"], literal_binds=True, **options
    )
else:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `podium migrate`")
    context.configure(connection=connection, **options)
with context.begin_transaction():
    context.run_migrations()
