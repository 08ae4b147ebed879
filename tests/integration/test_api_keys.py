"""API keys over SQL and through `podium keys`: made, listed, revoked, expiring, their last
use recorded; keys made before keys had ids keep working (docs/rules.md#api-keys). And the
read model's statement timeout (docs/rules.md#limits)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, select

import migrations
from service import cli
from service.adapters.database import create_database_engine
from service.adapters.keys import SqlKeyStore
from service.adapters.read_model import SqlReadModel, read_model
from service.adapters.tables import api_keys
from service.app.keys import create_key, find_key, list_keys, revoke_key
from service.app.ports import StateVersion, StorageUnavailable
from service.app.state_versions import keys_key
from service.domain.auth import hash_key

NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)


def keys_version(engine: Engine) -> int:
    with read_model(engine) as read:
        return read.state_versions().get(keys_key(), StateVersion(0, None)).number


def test_keys_are_made_listed_revoked_and_their_use_recorded(engine: Engine) -> None:
    store = SqlKeyStore(engine)
    key = create_key(store, "acme", "tasks,ranking", NOW, expires_in=timedelta(days=90))
    create_key(store, "globex", "paths", NOW + timedelta(seconds=1))
    assert keys_version(engine) == 2
    [listed] = list_keys(store, "acme")
    assert (listed.tenant_id, listed.scopes) == ("acme", frozenset({"ranking", "tasks"}))
    assert (listed.created_at, listed.expires_at) == (NOW, NOW + timedelta(days=90))
    assert key.startswith(f"pod_{listed.key_id}_")
    store.record_use({listed.key_id: NOW + timedelta(minutes=2)})
    store.record_use({listed.key_id: NOW + timedelta(minutes=1)})  # never moves back
    revoked = revoke_key(store, listed.key_id, NOW + timedelta(hours=1))
    assert revoked.revoked_at == NOW + timedelta(hours=1)
    assert keys_version(engine) == 3
    found = find_key(store, key)
    assert found is not None
    assert found.last_used_at == NOW + timedelta(minutes=2)
    assert not found.usable(NOW + timedelta(hours=1))
    assert [k.tenant_id for k in list_keys(store)] == ["acme", "globex"]


def test_a_key_made_before_keys_had_ids_keeps_working_with_its_hash_as_its_id(
    database_url: str,
) -> None:
    engine = create_database_engine(database_url)
    try:
        config = migrations._config()
        with engine.connect() as connection, connection.begin():
            config.attributes["connection"] = connection
            command.upgrade(config, "0003")
            old = "pod_" + "Q" * 43
            connection.exec_driver_sql(  # the table as migration 0003 left it
                "INSERT INTO api_keys (key_hash, tenant_id, scopes, created_at) "
                f"VALUES ('{hash_key(old)}', 'acme', 'ranking', 0)"
            )
        migrations.upgrade(engine)
        found = find_key(SqlKeyStore(engine), old)
        assert found is not None
        assert (found.key_id, found.tenant_id) == (hash_key(old)[:16], "acme")
        assert found.usable(NOW)
        with engine.connect() as c:
            assert c.execute(select(api_keys.c.key_id)).scalars().all() == [hash_key(old)[:16]]
    finally:
        engine.dispose()


def run(database_url: str, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(list(args), env={"DATABASE_URL": database_url})
    return code, out.getvalue()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_operator_makes_lists_and_revokes_keys_by_id(database_url: str) -> None:
    assert run(database_url, "migrate")[0] == 0
    code, key = run(
        database_url, "keys", "create", "--tenant", "acme", "--scopes", "ranking",
        "--expires-in", "90d",
    )  # fmt: skip
    assert code == 0
    key = key.strip()
    run(database_url, "keys", "create", "--tenant", "globex", "--scopes", "paths")
    code, listed = run(database_url, "keys", "list", "--tenant", "acme", "--json")
    [shown] = [json.loads(line) for line in listed.splitlines()]
    assert key.startswith(f"pod_{shown['id']}_")
    assert key.split("_", 2)[2] not in listed
    assert shown["scopes"] == ["ranking"]
    expires = datetime.fromisoformat(shown["expiresAt"]) - datetime.fromisoformat(
        shown["createdAt"]
    )
    assert expires == timedelta(days=90)
    assert (shown["lastUsedAt"], shown["revokedAt"], shown["usable"]) == (None, None, True)
    code, line = run(database_url, "keys", "revoke", shown["id"])
    assert code == 0
    assert line.startswith(shown["id"])
    assert line.rstrip().endswith("revoked")
    code, text = run(database_url, "keys", "list")
    assert code == 0
    assert [row.split("\t")[1] for row in text.splitlines()] == ["acme", "globex"]
    assert run(database_url, "keys", "revoke", "0000000000000000")[0] == 1  # no such key


@pytest.mark.parametrize("expires_in", ["90", "0d", "-1d", "3y"])
def test_an_expiry_must_be_a_positive_duration_with_its_unit(expires_in: str) -> None:
    with pytest.raises(SystemExit):
        run("sqlite://", "keys", "create", "--tenant", "a", "--scopes", "ranking",
            "--expires-in", expires_in)  # fmt: skip


SLOW_STATEMENT = {
    "postgresql": "SELECT pg_sleep(5)",
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 10000000000)"
    " SELECT count(*) FROM n",
}


def test_an_answers_statements_stop_at_its_statement_timeout(engine: Engine) -> None:
    """Either statement would run for seconds or hours: failing is the timeout's doing."""

    def run_slow_statement() -> None:
        with read_model(engine, 0.05) as read:
            assert isinstance(read, SqlReadModel)
            read._c.exec_driver_sql(SLOW_STATEMENT[engine.dialect.name])

    with pytest.raises(StorageUnavailable):
        run_slow_statement()
    with read_model(engine) as read:  # the connection went back to the pool without it
        assert isinstance(read, SqlReadModel)
        assert read._c.exec_driver_sql("SELECT 1").scalar() == 1
        if engine.dialect.name == "postgresql":
            assert read._c.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
