"""Which database failures are the database's (retry the batch) and which the batch's own
(isolate and dead-letter its bad records); migrations one at a time; commands that refuse a
schema that is behind."""

from __future__ import annotations

import io
import threading
from contextlib import redirect_stderr
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, exc, text

import migrations
from service import cli
from service.adapters.database import (
    create_database_engine,
    is_storage_failure,
    storage_failures_as_unavailable,
)
from service.app.ports import StorageUnavailable
from tests.services_up import POSTGRES_URL


def _wrapped(orig: Exception, kind: type[exc.DBAPIError] = exc.OperationalError) -> exc.DBAPIError:
    return kind("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "orig",
    [
        psycopg.errors.LockNotAvailable(),  # lock_timeout
        psycopg.errors.QueryCanceled(),  # statement_timeout
        psycopg.errors.SerializationFailure(),
        psycopg.errors.DeadlockDetected(),
        psycopg.errors.AdminShutdown(),
        psycopg.errors.IdleInTransactionSessionTimeout(),
        psycopg.errors.UndefinedTable(),  # a broken schema: stall, never dead-letter
    ],
)
def test_postgresql_failures_that_say_nothing_about_the_records_are_retried(
    orig: Exception,
) -> None:
    assert is_storage_failure(_wrapped(orig))


@pytest.mark.parametrize(
    "orig",
    [
        psycopg.errors.NumericValueOutOfRange(),
        psycopg.errors.StringDataRightTruncation(),
        psycopg.errors.UniqueViolation(),
    ],
)
def test_postgresql_failures_a_record_causes_are_the_batchs_own(orig: Exception) -> None:
    assert not is_storage_failure(_wrapped(orig, exc.DataError))


def test_a_lost_connection_and_a_locked_sqlite_file_are_retried() -> None:
    assert is_storage_failure(_wrapped(psycopg.OperationalError("connection refused")))
    assert is_storage_failure(_wrapped(Exception("database is locked")))
    assert is_storage_failure(ConnectionResetError())


def test_python_errors_from_a_record_are_the_batchs_own() -> None:
    assert not is_storage_failure(OverflowError("int too large"))
    assert not is_storage_failure(_wrapped(Exception("bad"), exc.IntegrityError))


def test_the_databases_failures_reach_the_loop_as_storage_unavailable(tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with (
        pytest.raises(StorageUnavailable),
        storage_failures_as_unavailable(),
        engine.connect() as c,
    ):
        c.execute(text("SELECT * FROM no_such_table"))
    with pytest.raises(OverflowError), storage_failures_as_unavailable():
        raise OverflowError("a record's own")
    engine.dispose()


def test_instances_starting_together_migrate_one_after_the_other(database_url: str) -> None:
    engines = [create_database_engine(database_url) for _ in range(3)]
    failures: list[BaseException] = []

    def upgrade(engine: Engine) -> None:
        try:
            migrations.upgrade(engine)
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)

    threads = [threading.Thread(target=upgrade, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    migrations.check_current(engines[0])
    for engine in engines:
        engine.dispose()


def test_commands_other_than_migrate_refuse_a_schema_that_is_behind(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'old.db'}"}
    err = io.StringIO()
    with redirect_stderr(err):
        refused = cli.main(["keys", "create", "--tenant", "acme", "--scopes", "tasks"], env=env)
    assert refused == 1  # a runtime failure: the command line and the settings are sound
    assert "run `podium migrate`" in err.getvalue()
    with redirect_stderr(io.StringIO()):
        assert cli.main(["migrate"], env=env) == 0
        assert cli.main(["keys", "create", "--tenant", "acme", "--scopes", "tasks"], env=env) == 0


def _select_one(database_url: str) -> int:
    engine = create_database_engine(database_url)
    try:
        with storage_failures_as_unavailable(), engine.connect() as c:
            one: int = c.exec_driver_sql("SELECT 1").scalar_one()
            return one
    finally:
        engine.dispose()


@pytest.mark.postgresql
@pytest.mark.parametrize("sslmode", ["disable", "prefer"])
def test_sslmode_in_database_url_reaches_postgresql(sslmode: str) -> None:
    assert _select_one(f"{POSTGRES_URL}?sslmode={sslmode}") == 1


@pytest.mark.postgresql
def test_sslmode_require_is_refused_by_a_server_without_tls() -> None:
    """The test server speaks no TLS: `require` failing shows the mode got there."""
    with pytest.raises(StorageUnavailable, match="SSL was required"):
        _select_one(f"{POSTGRES_URL}?sslmode=require")
