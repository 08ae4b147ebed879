"""The port of API keys (beside `service.app.ports`): what the key use cases need from
storage. `service.adapters.keys` implements it over SQL."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from service.domain.auth import ApiKey


class KeyIdTaken(RuntimeError):
    """Another key already has this id (64 random bits: practically never)."""


class KeyStore(Protocol):
    """Each method is one transaction of its own. Every change that can make a key refused
    or accepted (create, revoke) moves the keys' state version in the same transaction, so
    API instances drop what they cached about keys at their next version poll."""

    def add(self, key: ApiKey, key_hash: str) -> None:
        """Store a new key; `KeyIdTaken` if its id is not new."""

    def find(self, key_hash: str) -> ApiKey | None:
        """The key whose SHA-256 is `key_hash`, revoked and expired ones included."""

    def list(self, tenant_id: str | None) -> list[ApiKey]:
        """Every key (of one tenant, when given), oldest first."""

    def revoke(self, key_id: str, now: datetime) -> ApiKey | None:
        """Mark the key revoked at `now` (a revoked key stays revoked at its first time);
        None when no key has this id."""

    def record_use(self, last_used: Mapping[str, datetime]) -> None:
        """Move each key's `last_used_at` on to the time given (never back)."""
