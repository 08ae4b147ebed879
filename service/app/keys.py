"""Key management use cases: create, list, revoke, and find who a presented key is
(docs/rules.md#api-keys). The secret of a key is shown once, at creation; only its SHA-256
is stored."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from service.app.key_store import KeyIdTaken, KeyStore
from service.domain.auth import (
    KEY_ID_LENGTH,
    KEY_PREFIX,
    ApiKey,
    hash_key,
    parse_scopes,
    well_formed,
)
from service.domain.bounds import TENANT_ID_MAX_LENGTH


class UnknownKey(ValueError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"no key has the id {key_id!r}")


def new_key() -> tuple[str, str]:
    """A fresh key and its id: `pod_<id>_<secret>`."""
    key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}", key_id


def create_key(
    store: KeyStore,
    tenant_id: str,
    scopes: str,
    now: datetime,
    expires_in: timedelta | None = None,
) -> str:
    """A new key for `tenant_id` with `scopes` (comma-separated), valid for `expires_in` when
    given; returns the key itself, which is never shown again."""
    parsed = parse_scopes(scopes)
    tenant_id = tenant_id.strip()
    if not tenant_id:
        raise ValueError("a tenant is needed")
    if len(tenant_id) > TENANT_ID_MAX_LENGTH or "\x00" in tenant_id:
        raise ValueError(f"a tenant id is 1 to {TENANT_ID_MAX_LENGTH} characters, without NUL")
    if expires_in is not None and expires_in <= timedelta(0):
        raise ValueError("a key must expire after it is made")
    expires_at = None if expires_in is None else now + expires_in
    for _ in range(3):
        key, key_id = new_key()
        try:
            store.add(ApiKey(key_id, tenant_id, parsed, now, expires_at), hash_key(key))
        except KeyIdTaken:
            continue
        return key
    raise KeyIdTaken("three random key ids were taken in a row")


def list_keys(store: KeyStore, tenant_id: str | None = None) -> list[ApiKey]:
    return store.list(tenant_id)


def revoke_key(store: KeyStore, key_id: str, now: datetime) -> ApiKey:
    """Revoke a key by its id; revoking it again changes nothing. `UnknownKey` if no key
    has this id."""
    revoked = store.revoke(key_id, now)
    if revoked is None:
        raise UnknownKey(key_id)
    return revoked


def find_key(store: KeyStore, key: str) -> ApiKey | None:
    """The stored key a caller presented, usable or not (the caller checks that at each
    call, against its clock); None for anything else. A string that is not shaped like a
    key is refused without asking the store."""
    if not well_formed(key):
        return None
    return store.find(hash_key(key))
