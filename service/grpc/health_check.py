"""`podium health`: ask a running instance's `grpc.health.v1` how a service is, as a probe
does, and say it in one word."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = "SERVING"


async def check_health(
    address: str, credentials: grpc.ChannelCredentials | None, service: str, seconds: float
) -> str:
    """`SERVING`, `NOT_SERVING`, `SERVICE_UNKNOWN`, or `UNREACHABLE (<gRPC code>)` when the
    instance does not answer (not listening, a TLS handshake refused, the timeout)."""
    channel = (
        grpc.aio.insecure_channel(address)
        if credentials is None
        else grpc.aio.secure_channel(address, credentials)
    )
    async with channel:
        try:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=seconds
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return "SERVICE_UNKNOWN"
            return f"UNREACHABLE ({error.code().name})"
    name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return name


def dialable(address: str) -> str:
    """Where to reach a listener bound to `address`: a wildcard host (every interface) is
    reached on the loopback."""
    host, _, port = address.rpartition(":")
    if host in ("", "0.0.0.0"):
        return f"127.0.0.1:{port}"
    if host in ("[::]", "::"):
        return f"[::1]:{port}"
    return address
