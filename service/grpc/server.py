"""Build the gRPC server: query services, API-key interceptor, health and reflection."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service.gen.podium.v1 import (  # noqa: F401  (registers the descriptors for reflection)
    challenges_pb2,
    driver_ranking_pb2,
    paths_pb2,
    tasks_pb2,
)
from service.grpc.auth import SCOPE_OF_SERVICE, ApiKeyInterceptor, PrincipalCache
from service.grpc.servicers import QueryDeps, generic_handlers

QUERY_SERVICES = tuple(SCOPE_OF_SERVICE)
API_HEALTH = "podium.api"
INGEST_HEALTH = "podium.ingest"
"""Health services beside "" (the API of this process, or its consumers when it runs only
them): `podium.api` SERVING once queries answer, `podium.ingest` while ingest keeps up."""


def create_server(
    address: str, queries: tuple[QueryDeps, PrincipalCache] | None
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """A server bound to `address` (port 0 picks a free one); returns the bound port too.
    Without `queries` it serves health and reflection only (`podium serve --role consumers`).

    Health starts NOT_SERVING; the composition root flips it as the state allows.
    """
    interceptors = [] if queries is None else [ApiKeyInterceptor(queries[1])]
    server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
    services: tuple[str, ...] = ()
    if queries is not None:
        server.add_generic_rpc_handlers(generic_handlers(queries[0]))
        services = QUERY_SERVICES
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port, health_servicer


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
