"""API keys over SQL (the `KeyStore` port): stored as SHA-256 hashes beside their id,
tenant, scopes and life; never the key itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, exc, insert, select, update

from service.adapters.database import WRITER
from service.adapters.stores.state_versions import SqlStateVersionStore
from service.adapters.tables import api_keys
from service.app.key_store import KeyIdTaken
from service.app.state_versions import keys_key
from service.domain.auth import ApiKey, parse_scopes


class SqlKeyStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, key: ApiKey, key_hash: str) -> None:
        taken = select(api_keys.c.key_id).where(api_keys.c.key_id == key.key_id)
        with self._writing() as c:
            if c.execute(taken).first() is not None:
                raise KeyIdTaken(key.key_id)
            try:
                c.execute(
                    insert(api_keys).values(
                        key_hash=key_hash,
                        key_id=key.key_id,
                        tenant_id=key.tenant_id,
                        scopes=",".join(sorted(key.scopes)),
                        created_at=key.created_at,
                        expires_at=key.expires_at,
                    )
                )
            except exc.IntegrityError as error:  # a concurrent `add` of the same id
                raise KeyIdTaken(key.key_id) from error
            SqlStateVersionStore(c).bump({keys_key(): None})

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction that takes SQLite's write lock at BEGIN (`WRITER`), so it queues
        behind a batch being folded rather than failing when it reads then writes."""
        with self._engine.connect().execution_options(**WRITER) as c, c.begin():
            yield c

    def find(self, key_hash: str) -> ApiKey | None:
        with self._engine.connect() as c:
            row = c.execute(select(api_keys).where(api_keys.c.key_hash == key_hash)).first()
        return None if row is None else _key_from_row(row)

    def list(self, tenant_id: str | None) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if tenant_id is not None:
            query = query.where(api_keys.c.tenant_id == tenant_id)
        with self._engine.connect() as c:
            return [_key_from_row(row) for row in c.execute(query)]

    def revoke(self, key_id: str, now: datetime) -> ApiKey | None:
        with self._writing() as c:
            c.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            row = c.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
            if row is None:
                return None
            SqlStateVersionStore(c).bump({keys_key(): None})
        return _key_from_row(row)

    def record_use(self, last_used: Mapping[str, datetime]) -> None:
        if not last_used:
            return
        when = api_keys.c.last_used_at
        with self._writing() as c:
            for key_id, at in sorted(last_used.items()):
                c.execute(
                    update(api_keys)
                    .where(api_keys.c.key_id == key_id, when.is_(None) | (when < at))
                    .values(last_used_at=at)
                )


def _key_from_row(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        tenant_id=row.tenant_id,
        scopes=parse_scopes(row.scopes),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )
