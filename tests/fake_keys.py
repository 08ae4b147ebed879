"""An in-memory `KeyStore` (the port in `service.app.key_store`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime

from service.app.key_store import KeyIdTaken
from service.domain.auth import ApiKey


class FakeKeyStore:
    def __init__(self) -> None:
        self.keys: dict[str, tuple[ApiKey, str]] = {}
        """By key id: the key and its hash."""
        self.finds = 0
        self.version = 0
        """Moved by every add and revoke, like the keys' state version."""

    def add(self, key: ApiKey, key_hash: str) -> None:
        if key.key_id in self.keys:
            raise KeyIdTaken(key.key_id)
        self.keys[key.key_id] = (key, key_hash)
        self.version += 1

    def find(self, key_hash: str) -> ApiKey | None:
        self.finds += 1
        return next((key for key, h in self.keys.values() if h == key_hash), None)

    def list(self, tenant_id: str | None) -> list[ApiKey]:
        keys = [k for k, _ in self.keys.values() if tenant_id in (None, k.tenant_id)]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def revoke(self, key_id: str, now: datetime) -> ApiKey | None:
        if key_id not in self.keys:
            return None
        key, key_hash = self.keys[key_id]
        if key.revoked_at is None:
            key = dataclasses.replace(key, revoked_at=now)
            self.keys[key_id] = (key, key_hash)
        self.version += 1
        return key

    def record_use(self, last_used: Mapping[str, datetime]) -> None:
        for key_id, at in last_used.items():
            if key_id in self.keys:
                key, key_hash = self.keys[key_id]
                if key.last_used_at is None or key.last_used_at < at:
                    self.keys[key_id] = (dataclasses.replace(key, last_used_at=at), key_hash)
