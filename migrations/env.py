"""Alembic environment: migrations run on the connection `podium migrate` hands in."""

from __future__ import annotations

from alembic import context

from service.adapters.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `podium migrate`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
