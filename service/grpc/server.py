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


def create_server(
    address: str, deps: QueryDeps, principals: PrincipalCache
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """A server bound to `address` (port 0 picks a free one); returns the bound port too.

    Health starts NOT_SERVING; the composition root flips it once the state is caught up.
    """
    server = grpc.aio.server(
        interceptors=[ApiKeyInterceptor(principals)],
        options=[("grpc.so_reuseport", 0)],
    )
    server.add_generic_rpc_handlers(generic_handlers(deps))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*QUERY_SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port, health_servicer


async def set_serving(health_servicer: health.aio.HealthServicer, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", *QUERY_SERVICES):
        await health_servicer.set(name, status)
