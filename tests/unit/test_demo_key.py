"""The demo's key: made once per tenant and database, kept beside the database for its owner
only, reused while the database still takes it."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

from service.app.keys import list_keys, revoke_key
from service.demo.key_file import KEY_FILE, demo_key, key_file
from tests.fake_keys import FakeKeyStore

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def test_the_key_file_lies_beside_the_sqlite_database_else_in_the_current_directory(
    tmp_path: Path,
) -> None:
    assert key_file(f"sqlite:///{tmp_path}/state/podium.db") == tmp_path / "state" / KEY_FILE
    assert key_file("sqlite:///podium.db") == Path.cwd() / KEY_FILE
    assert key_file("postgresql://podium@db/podium") == Path.cwd() / KEY_FILE


def test_a_key_is_made_once_kept_for_its_owner_only_and_reused(tmp_path: Path) -> None:
    store, path = FakeKeyStore(), tmp_path / KEY_FILE
    key, made = demo_key(store, path, "demo", NOW)
    assert made
    assert json.loads(path.read_text()) == {"demo": key}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert demo_key(store, path, "demo", NOW) == (key, False)
    [stored] = list_keys(store, "demo")
    assert stored.scopes == {"ranking", "challenges", "tasks", "paths"}


def test_each_tenant_has_its_own_key_in_the_same_file(tmp_path: Path) -> None:
    store, path = FakeKeyStore(), tmp_path / KEY_FILE
    first, _ = demo_key(store, path, "demo", NOW)
    second, made = demo_key(store, path, "other", NOW)
    assert made
    assert second != first
    assert json.loads(path.read_text()) == {"demo": first, "other": second}


def test_a_key_the_database_no_longer_takes_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    store = FakeKeyStore()
    old, _ = demo_key(store, path, "demo", NOW)
    revoke_key(store, list_keys(store, "demo")[0].key_id, NOW)
    new, made = demo_key(store, path, "demo", NOW)
    assert made
    assert new != old
    other_database = FakeKeyStore()
    newest, made = demo_key(other_database, path, "demo", NOW)
    assert made
    assert newest not in (old, new)
    assert json.loads(path.read_text()) == {"demo": newest}


def test_an_unreadable_key_file_is_written_anew(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.write_text("not json")
    key, made = demo_key(FakeKeyStore(), path, "demo", NOW)
    assert made
    assert json.loads(path.read_text()) == {"demo": key}
