"""Fixtures: in-memory ports, databases (SQLite file and PostgreSQL schema) and the ports over
them, the real broker (also behind a fault-injecting proxy)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

import migrations
from consumers.local_broker import LocalBroker, free_port
from service.adapters.database import create_database_engine
from service.bootstrap import Storage
from tests import profiles
from tests.databases import DATABASES, empty_database
from tests.fakes import FakePorts
from tests.proxy import ThreadedTcpProxy

profiles.register()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `postgresql` what runs against PostgreSQL through the fixtures (a `postgresql`
    parameter, `postgresql_engine`), so `make test-fast` can leave it out; tests that reach
    PostgreSQL another way carry the mark themselves."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        fixtures = getattr(item, "fixturenames", ())
        if "postgresql" in params or "postgresql_engine" in fixtures:
            item.add_marker(pytest.mark.postgresql)


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with empty_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="session", params=DATABASES)
def shared_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per kind for the whole run, for the end-to-end tests that share a server."""
    with empty_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    migrations.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def storage(engine: Engine) -> Storage:
    """The ports over `engine`, as `podium` builds them (for tests of storage itself)."""
    return Storage(engine)


@pytest.fixture
def ports() -> FakePorts:
    """In-memory ports: what use-case tests fold events into and read answers from."""
    return FakePorts()


@pytest.fixture
def postgresql_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated PostgreSQL schema, for what only PostgreSQL enforces (column widths, index
    entry sizes)."""
    with empty_database("postgresql", tmp_path) as url:
        engine = create_database_engine(url)
        migrations.upgrade(engine)
        yield engine
        engine.dispose()


@pytest.fixture
def memory_engine() -> Iterator[Engine]:
    """An in-memory SQLite database."""
    engine = create_database_engine("sqlite://")
    migrations.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    with LocalBroker() as running:
        yield running


@dataclass(frozen=True)
class ProxiedBroker:
    """A broker of its own reached only through `proxy`: it advertises the proxy's port, so
    clients come back through the proxy after bootstrapping, and a cut reaches every link."""

    broker: LocalBroker
    proxy: ThreadedTcpProxy

    @property
    def bootstrap_servers(self) -> str:
        return self.proxy.address


@pytest.fixture
def proxied_broker() -> Iterator[ProxiedBroker]:
    """The proxy runs in a thread of its own, so sync tests, async tests of any loop scope and
    tests driving Podium in a subprocess can all cut it (`cut` and `restore` block briefly)."""
    broker_port = free_port()
    with (
        ThreadedTcpProxy("127.0.0.1", broker_port) as proxy,
        LocalBroker(broker_port, advertised_port=proxy.port) as broker,
    ):
        yield ProxiedBroker(broker, proxy)
