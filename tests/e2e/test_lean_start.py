"""A `--role consumers` start imports only what it needs before it folds: Alembic when the
schema must be migrated (an empty database), not when it is current (every restart), and
OpenTelemetry's SDK and exporter only when tracing is configured; and `podium serve` joins
its consumer group before it loads the database's, the API's and the fold's modules. Checked
in a fresh process (what it imported, in `sys.modules`), on both databases; the time it saves
is in `make bench BENCH_ARGS='--section handover'`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import text

import migrations
from consumers.local_broker import LocalBroker
from service.adapters.database import create_database_engine
from tests.e2e.conftest import isolated_settings

HEAVY = (
    "alembic",
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)

START_AND_STOP = f"""
import asyncio, json, os, sys
from service.bootstrap import Podium
from service.config import Settings

async def main():
    podium = Podium(Settings.from_env(os.environ), "consumers")
    try:
        await podium.start()
    finally:
        await podium.stop()

asyncio.run(main())
print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))
"""


def started_and_stopped(env: dict[str, str]) -> list[str]:
    """What of HEAVY a `--role consumers` process had imported once started (and stopped)."""
    done = subprocess.run(
        [sys.executable, "-c", START_AND_STOP],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    imported: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return imported


def test_a_consumer_imports_alembic_only_to_migrate_and_no_tracing_it_was_not_given(
    broker: LocalBroker, database_url: str
) -> None:
    env = isolated_settings(broker, database_url).to_env()
    assert started_and_stopped(env) == ["alembic"]  # an empty database: migrated
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            assert migrations.current(connection) == migrations.head()
            version = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalar_one() == migrations.written_head()
    finally:
        engine.dispose()
    assert started_and_stopped(env) == []  # the schema current: a restart


LATER = ("service.bootstrap", "sqlalchemy", "grpc", "consumers.decode", "alembic")
"""What a process joining early has not loaded yet when it joins."""
LOADED_AT_JOIN = f"""
import json, os, signal, sys
import consumers.handover as handover

joining = handover.join
seen = []

async def join(settings):
    seen.extend(name for name in {LATER!r} if name in sys.modules)
    member = await joining(settings)
    os.kill(os.getpid(), signal.SIGTERM)  # started: stop now
    return member

handover.join = join
from service.cli import main

code = main(["serve", "--role", "consumers"])
print(json.dumps({{"code": code, "loaded when joining": seen}}))
"""


def test_podium_serve_joins_its_group_before_it_loads_the_rest(
    broker: LocalBroker, database_url: str
) -> None:
    env = {**os.environ, **isolated_settings(broker, database_url).to_env()}
    done = subprocess.run(
        [sys.executable, "-c", LOADED_AT_JOIN],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    said = json.loads(done.stdout.strip().splitlines()[-1])
    assert said == {"code": 0, "loaded when joining": []}, done.stderr[-3000:]


def test_the_newest_revision_read_from_the_files_is_alembics() -> None:
    assert migrations.written_head() == migrations.head()
