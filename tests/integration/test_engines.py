"""An instance's engines: the ingest writes on one of its own, queries read on another."""

from __future__ import annotations

import gc
import sqlite3
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

import migrations
from service.adapters.database import (
    WRITER_CACHE_KIB,
    create_database_engine,
    create_writer_engine,
    renew_connections,
)
from service.bootstrap import Storage


def cache_kib(engine: Engine) -> int:
    with engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA cache_size").scalar_one()
    return -int(pages)


def checked_out(engine: Engine) -> int:
    return cast(QueuePool, engine.pool).checkedout()


def test_the_ingest_writes_on_its_own_engine_with_a_bigger_page_cache(tmp_path: Path) -> None:
    storage = Storage.of(f"sqlite:///{tmp_path / 'podium.db'}")
    try:
        assert storage.writer is not None
        with storage.unit_of_work():
            assert checked_out(storage.writer) == 1
            assert checked_out(storage.engine) == 0
        assert cache_kib(storage.writer) == WRITER_CACHE_KIB
        assert cache_kib(storage.engine) < WRITER_CACHE_KIB  # readers keep SQLite's default
    finally:
        storage.close()


def test_an_in_memory_database_has_one_engine_for_everything() -> None:
    assert create_writer_engine("sqlite://") is None
    storage = Storage.of("sqlite://")
    try:
        assert storage.writer is None
        migrations.upgrade(storage.engine)
        with storage.unit_of_work() as uow:
            uow.offsets.advance("group", {("trips", 0): (None, 5)})
            uow.commit()
        with storage.read() as read:
            assert read.stored_offsets("group") == {("trips", 0): 5}  # one database
    finally:
        storage.close()


def test_renewed_connections_are_closed_even_those_checked_out_then(tmp_path: Path) -> None:
    """After ANALYZE the readers' connections are replaced so that they load the new
    statistics; one a query holds meanwhile is closed once returned, never left to the
    garbage collector (which Python 3.13 reports as an unclosed database, an error here)."""
    engine = create_database_engine(f"sqlite:///{tmp_path / 'podium.db'}")
    try:
        held = engine.connect()
        with engine.connect() as idle:
            idle_one = idle.connection.driver_connection
        held_one = held.connection.driver_connection
        assert idle_one is not held_one
        renew_connections(engine)
        held.close()
        with engine.connect() as first, engine.connect() as second:
            renewed = {first.connection.driver_connection, second.connection.driver_connection}
            assert not renewed & {idle_one, held_one}
        gc.collect()
        for old in (idle_one, held_one):
            with pytest.raises(sqlite3.ProgrammingError, match="closed"):
                cast(sqlite3.Connection, old).execute("SELECT 1")
    finally:
        engine.dispose()


def test_an_in_memory_database_keeps_its_connection_when_renewed() -> None:
    engine = create_database_engine("sqlite://")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE kept (x)")
        renew_connections(engine)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM kept").scalar_one() == 0
    finally:
        engine.dispose()
