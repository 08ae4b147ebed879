"""The demo's API key: made once per tenant and database, then reused.

A key's secret is shown once and stored only hashed, so the demo keeps the keys it made in a
file of its own, `podium-demo-keys.json`, beside the SQLite database (in the current directory
for other databases), readable by its owner only. A key from the file is reused while the
database knows it for that tenant and it can still ask every family; else a new one is made
with the service's key use case and the file rewritten. Nothing is revoked: a key someone else
made for the tenant is never touched.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from service.app.key_store import KeyStore
from service.app.keys import create_key, find_key
from service.domain.auth import SCOPES

KEY_FILE = "podium-demo-keys.json"


def key_file(database_url: str) -> Path:
    """Where the demo keeps its keys for this database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).resolve().parent / KEY_FILE
    return Path.cwd() / KEY_FILE


def demo_key(store: KeyStore, path: Path, tenant: str, now: datetime) -> tuple[str, bool]:
    """The tenant's demo key, and whether it was made just now."""
    kept = _read(path)
    key = kept.get(tenant)
    if key is not None:
        found = find_key(store, key)
        if (
            found is not None
            and found.tenant_id == tenant
            and found.usable(now)
            and found.scopes >= set(SCOPES)
        ):
            return key, False
    key = create_key(store, tenant, ",".join(SCOPES), now)
    _write(path, {**kept, tenant: key})
    return key, True


def _read(path: Path) -> dict[str, str]:
    try:
        kept = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(kept, dict):
        return {}
    return {t: k for t, k in kept.items() if isinstance(t, str) and isinstance(k, str)}


def _write(path: Path, keys: dict[str, str]) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(keys, file, indent=2, sort_keys=True)
        file.write("\n")
