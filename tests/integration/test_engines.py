"""An instance's engines: the ingest writes on one of its own, queries read on another."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

import migrations
from service.adapters.database import WRITER_CACHE_KIB, create_writer_engine
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
