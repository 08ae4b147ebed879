"""Build the gRPC server: query services behind their limits and the API-key interceptor,
health and reflection (free of both), plaintext or TLS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.trace import Tracer
from podium.v1 import (  # noqa: F401  (registers the descriptors for reflection)
    challenges_pb2,
    driver_ranking_pb2,
    paths_pb2,
    tasks_pb2,
)

from service.clock import Clock
from service.grpc.auth import (
    REFUSAL_DELAY_SECONDS,
    SCOPE_OF_SERVICE,
    ApiKeyInterceptor,
    KeyCache,
    KeyUses,
    TokenBuckets,
)
from service.grpc.limits import CallLimits, IdBounds, MetadataSize, grpc_options
from service.grpc.observe import CallMetrics
from service.grpc.servicers import QueryDeps, generic_handlers
from service.metrics import Metrics

QUERY_SERVICES = tuple(SCOPE_OF_SERVICE)


@dataclass(frozen=True)
class Guard:
    """What a query call goes through before its servicer: its metrics, its limits, then
    its key."""

    keys: KeyCache
    clock: Clock
    max_request_bytes: int = 16 * 1024
    max_concurrent_calls: int = 256
    rates: TokenBuckets | None = None
    uses: KeyUses | None = None
    metrics: Metrics | None = None
    tracer: Tracer | None = None
    refusal_delay: float = REFUSAL_DELAY_SECONDS

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """Outermost first: the metrics (every call counted with its real code, refusals
        included), the key (its refusals delayed, so they must not hold a call slot), then
        the limits (a call counts from there on), ids last. Oversized metadata is refused
        before anything else, when the call comes in."""
        observed = [] if self.metrics is None else [CallMetrics(self.metrics, self.tracer)]
        return [
            *observed,
            MetadataSize(self.max_request_bytes),
            ApiKeyInterceptor(self.keys, self.clock, self.rates, self.uses, self.refusal_delay),
            CallLimits(self.max_concurrent_calls, self.max_request_bytes),
            IdBounds(),
        ]


def create_server(
    address: str,
    queries: tuple[QueryDeps, Guard] | None,
    credentials: grpc.ServerCredentials | None = None,
    connections: Sequence[tuple[str, int]] = (),
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """A server bound to `address` (port 0 picks a free one); returns the bound port too.
    Without `queries` it serves health and reflection only (`podium serve --role consumers`).
    With `credentials` it serves TLS only. `connections`: how long connections live and
    how clients may keep them alive (`service.grpc.connections`).

    Health starts NOT_SERVING; the composition root flips it as the state allows.
    """
    interceptors = [] if queries is None else queries[1].interceptors()
    options: list[tuple[str, int]] = [("grpc.so_reuseport", 0), *connections]
    if queries is not None:
        options += grpc_options(queries[1].max_request_bytes)
    server = grpc.aio.server(interceptors=interceptors, options=options)
    services: tuple[str, ...] = ()
    if queries is not None:
        server.add_generic_rpc_handlers(generic_handlers(queries[0]))
        services = QUERY_SERVICES
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port, health_servicer


def create_health_server(
    address: str, health_servicer: health.aio.HealthServicer
) -> tuple[grpc.aio.Server, int]:
    """`PODIUM_HEALTH_ADDRESS`: `grpc.health.v1` alone, plaintext, answering what the API's
    own health service answers (the same servicer), for probes that cannot present a client
    certificate under mutual TLS. Nothing else is served there."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port


async def set_health(
    health_servicer: health.aio.HealthServicer, names: tuple[str, ...], serving: bool
) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in names:
        await health_servicer.set(name, status)
