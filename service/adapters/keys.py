"""API keys: created by the CLI, stored as SHA-256 hashes, looked up per call."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import Engine, insert, select

from service.adapters.tables import api_keys
from service.domain.auth import Principal, parse_scopes

KEY_PREFIX = "pod_"


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: Engine, tenant_id: str, scopes: str, now: datetime) -> str:
    parsed = parse_scopes(scopes)
    if not tenant_id.strip():
        raise ValueError("a tenant is needed")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as c:
        c.execute(
            insert(api_keys).values(
                key_hash=hash_key(key),
                tenant_id=tenant_id.strip(),
                scopes=",".join(sorted(parsed)),
                created_at=now,
            )
        )
    return key


def find_principal(engine: Engine, key: str) -> Principal | None:
    with engine.connect() as c:
        row = c.execute(
            select(api_keys.c.tenant_id, api_keys.c.scopes).where(
                api_keys.c.key_hash == hash_key(key)
            )
        ).first()
    if row is None:
        return None
    return Principal(row.tenant_id, parse_scopes(row.scopes))
