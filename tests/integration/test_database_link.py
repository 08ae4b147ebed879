"""A PostgreSQL link that goes silent fails within a bound instead of hanging forever.

A network that drops everything (a dead host, a cut link, a failover to another address)
sends no reset: without a connect timeout, TCP keepalives and a user timeout, a connection
attempt or a call waiting for its answer waits for ever, the consumer loop with it (it reports
nothing, since nothing fails). The proxy stands in for the silent server on a new connection;
the probes of an open one are checked on its socket (a proxy on 127.0.0.1 answers them itself,
so it cannot stand in for a dead network there).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, exc

from service.adapters.database import (
    LINK_DEFAULTS,
    create_database_engine,
    is_storage_failure,
)
from tests.proxy import ThreadedTcpProxy
from tests.services_up import POSTGRES_URL

pytestmark = pytest.mark.postgresql


@pytest.fixture
def proxy() -> Iterator[ThreadedTcpProxy]:
    with ThreadedTcpProxy("127.0.0.1", 5432) as running:
        yield running


def _through(proxy: ThreadedTcpProxy, query: str = "") -> str:
    url = POSTGRES_URL.replace(":5432/", f":{proxy.port}/", 1)
    return f"{url}?{query}" if query else url


def _parameters(engine: Engine) -> dict[str, str]:
    raw = engine.raw_connection()
    try:
        parameters: dict[str, str] = raw.driver_connection.info.get_parameters()  # type: ignore[union-attr]
        return parameters
    finally:
        raw.close()


def _socket_options(engine: Engine) -> dict[str, int]:
    raw = engine.raw_connection()
    try:
        fd = raw.driver_connection.pgconn.socket  # type: ignore[union-attr]
        sock = socket.socket(fileno=fd)
        try:
            return {
                "keepalive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                "idle": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                "interval": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                "count": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                "user_timeout_ms": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
            }
        finally:
            sock.detach()  # the descriptor stays psycopg's
    finally:
        raw.close()


def test_a_connection_to_a_server_that_never_answers_fails_within_the_connect_timeout(
    proxy: ThreadedTcpProxy,
) -> None:
    """(Two seconds here rather than the default ten, to keep the test short.)"""
    engine = create_database_engine(_through(proxy, "connect_timeout=2"))
    try:
        proxy.cut("blackhole")  # accepted, then silence
        started = time.monotonic()
        with pytest.raises(exc.OperationalError) as failed:
            engine.connect().close()
        assert time.monotonic() - started < 10
        assert is_storage_failure(failed.value), "a silent server is retried, never blamed on data"
    finally:
        proxy.restore()
        engine.dispose()


def test_postgresql_connections_time_out_probe_a_silent_link_and_give_up_on_it() -> None:
    engine = create_database_engine(POSTGRES_URL)
    try:
        parameters, options = _parameters(engine), _socket_options(engine)
    finally:
        engine.dispose()
    assert {name: parameters.get(name) for name in LINK_DEFAULTS} == LINK_DEFAULTS
    assert options == {
        "keepalive": 1,
        "idle": int(LINK_DEFAULTS["keepalives_idle"]),
        "interval": int(LINK_DEFAULTS["keepalives_interval"]),
        "count": int(LINK_DEFAULTS["keepalives_count"]),
        "user_timeout_ms": int(LINK_DEFAULTS["tcp_user_timeout"]),
    }
    # Dead within the user timeout, and before the idle-in-transaction timeout ends a session.
    assert int(LINK_DEFAULTS["tcp_user_timeout"]) <= 60_000


def test_database_url_parameters_override_the_link_defaults() -> None:
    engine = create_database_engine(f"{POSTGRES_URL}?keepalives_idle=42&tcp_user_timeout=7000")
    try:
        options = _socket_options(engine)
    finally:
        engine.dispose()
    assert options["idle"] == 42
    assert options["user_timeout_ms"] == 7000
    assert options["interval"] == int(LINK_DEFAULTS["keepalives_interval"])
