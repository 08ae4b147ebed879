"""Who is calling: a tenant and the query families its key may use; API keys and their life
(docs/rules.md#api-keys)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

SCOPES = ("ranking", "challenges", "tasks", "paths")

KEY_PREFIX = "pod_"
KEY_ID_LENGTH = 16
"""A key's id: 16 hex digits (64 random bits), unique among keys; never secret."""
KEY_SECRET_LENGTH = 43
"""A key's secret: 32 random bytes (256 bits) in URL-safe base64, without padding."""

_SECRET = f"[A-Za-z0-9_-]{{{KEY_SECRET_LENGTH}}}"
_KEY = re.compile(f"{KEY_PREFIX}(?:(?P<id>[0-9a-f]{{{KEY_ID_LENGTH}}})_)?{_SECRET}")
"""`pod_<id>_<secret>`, or a key made before keys had ids: `pod_<secret>`."""


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    scopes: frozenset[str]
    key_id: str = ""
    """The id of the key the caller presented (for logs and per-key limits)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key, without its secret: what `podium keys list` shows."""

    key_id: str
    tenant_id: str
    scopes: frozenset[str]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        """Neither revoked nor expired at `now` (a key expires at `expires_at`, included)."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    @property
    def principal(self) -> Principal:
        return Principal(self.tenant_id, self.scopes, self.key_id)


def parse_scopes(raw: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in raw.split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known: {', '.join(SCOPES)}")
    if not scopes:
        raise ValueError(f"at least one scope is needed: {', '.join(SCOPES)}")
    return scopes


def hash_key(key: str) -> str:
    """What is stored of a key. Keys carry 256 random bits, so a fast hash is enough: there
    is nothing to brute-force."""
    return hashlib.sha256(key.encode()).hexdigest()


def well_formed(key: str) -> bool:
    """Whether `key` has the shape of a key Podium makes (now or before keys had ids): one
    that does not cannot be stored, so it is refused without a look-up."""
    return _KEY.fullmatch(key) is not None
