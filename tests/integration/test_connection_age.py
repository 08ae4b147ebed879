"""Connections do not live for ever: past `PODIUM_MAX_CONNECTION_AGE_SECONDS` the server
sends GOAWAY and the client's next calls go over a new connection (which a load balancer may
send to a new instance), without a call failing."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.grpc.connections import connection_options
from service.grpc.server import create_server, set_health
from tests.proxy import TcpProxy
from tests.waiting import eventually


async def test_a_client_reconnects_once_its_connection_is_old_and_no_call_fails() -> None:
    server, port, health = create_server(
        "127.0.0.1:0", None, connections=connection_options(0.5, 1.0)
    )
    await server.start()
    await set_health(health, ("",), True)
    try:
        async with (
            TcpProxy("127.0.0.1", port) as proxy,
            grpc.aio.insecure_channel(proxy.address) as channel,
        ):
            stub = health_pb2_grpc.HealthStub(channel)
            answers = []

            async def call() -> int:
                answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                answers.append(answer.status)
                return proxy.accepted

            # 0.5 s of age, spread by 10%: a few reconnections in 30 s; a call failing fails
            await eventually(call, lambda accepted: accepted >= 3, within=30, tolerate=())
            assert proxy.accepted >= 3
            assert set(answers) == {health_pb2.HealthCheckResponse.SERVING}
    finally:
        await server.stop(None)


def test_a_zero_age_leaves_connections_alone_and_keepalive_is_enforced_either_way() -> None:
    assert dict(connection_options(300, 5)) == {
        "grpc.max_connection_age_ms": 300_000,
        "grpc.max_connection_age_grace_ms": 5_000,
        "grpc.keepalive_time_ms": 60_000,
        "grpc.keepalive_timeout_ms": 20_000,
        "grpc.keepalive_permit_without_calls": 1,
        "grpc.http2.min_ping_interval_without_data_ms": 10_000,
        "grpc.http2.max_ping_strikes": 2,
    }
    assert (
        not {"grpc.max_connection_age_ms", "grpc.max_connection_age_grace_ms"}
        & dict(connection_options(0, 5)).keys()
    )
