"""Calling Podium from Python (docs/clients.md): a channel that sends the API key on every
call, with Podium's service config (retries and recommended deadlines) and TLS set, and the
error details Podium's refusals carry. The generated messages and stubs are the package
`podium` (`podium.v1.driver_ranking_pb2`, `podium.v1.driver_ranking_pb2_grpc`, ...).

`channel()` is a `grpc.aio` channel, `sync_channel()` a blocking one; both take the same
arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import grpc
from google.protobuf import any_pb2, message
from google.rpc import error_details_pb2, status_pb2

from podium_client.keys import AioKeyInterceptor, KeyInterceptor

__all__ = ["API_KEY_HEADER", "channel", "error_details", "service_config", "sync_channel"]

API_KEY_HEADER = "x-api-key"
Options = Sequence[tuple[str, Any]]


def service_config() -> dict[str, Any]:
    """Podium's service config, a fresh copy each time (change it freely and pass it to
    `channel(service_config=...)`): calls answered UNAVAILABLE or RESOURCE_EXHAUSTED are
    retried, after the delay the server's `grpc-retry-pushback-ms` trailer names when it
    sends one (a refusal not worth retrying says so with a negative delay); each method has
    its recommended deadline (10 s for whole answers, 5 s for one driver, user, task or
    learner; none for `WatchDriverRanking`), which a call's own `timeout` overrides. The same
    JSON is `service_config.json` in this package, for other languages."""
    text = resources.files(__package__).joinpath("service_config.json").read_text()
    config: dict[str, Any] = json.loads(text)
    return config


def channel(
    target: str,
    *,
    api_key: str,
    root_certificates: bytes | None = None,
    certificate_chain: bytes | None = None,
    private_key: bytes | None = None,
    insecure: bool = False,
    service_config: Mapping[str, Any] | None = None,
    options: Options = (),
) -> grpc.aio.Channel:
    """An asyncio channel to Podium at `target` (`host:port`) that sends `api_key` on every
    call. TLS by default: `root_certificates` (PEM) is the CA that signed the server's
    certificate (None: the system's); under mutual TLS, `certificate_chain` and
    `private_key` (PEM) are the client's. `insecure=True` speaks plaintext (a local
    `make run`). `options` are more gRPC channel options."""
    interceptors = [AioKeyInterceptor(API_KEY_HEADER, api_key)]
    settings = _options(service_config, options)
    credentials = _credentials(insecure, root_certificates, certificate_chain, private_key)
    if credentials is None:
        return grpc.aio.insecure_channel(target, settings, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, settings, interceptors=interceptors)


def sync_channel(
    target: str,
    *,
    api_key: str,
    root_certificates: bytes | None = None,
    certificate_chain: bytes | None = None,
    private_key: bytes | None = None,
    insecure: bool = False,
    service_config: Mapping[str, Any] | None = None,
    options: Options = (),
) -> grpc.Channel:
    """`channel()`, blocking: for callers without an event loop."""
    settings = _options(service_config, options)
    credentials = _credentials(insecure, root_certificates, certificate_chain, private_key)
    if credentials is None:
        plain = grpc.insecure_channel(target, settings)
    else:
        plain = grpc.secure_channel(target, credentials, settings)
    return grpc.intercept_channel(plain, KeyInterceptor(API_KEY_HEADER, api_key))


def error_details(error: grpc.aio.AioRpcError | grpc.Call) -> list[message.Message]:
    """The details of a refusal, unpacked: Podium's `ErrorInfo` (its `reason`), a
    `RetryInfo` when the call may be retried later, a `BadRequest` naming the invalid
    fields (docs/rules.md#errors). Details of other types stay packed (`Any`)."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            return [_unpacked(detail) for detail in status_pb2.Status.FromString(value).details]
    return []


_DETAILS: tuple[type[message.Message], ...] = (
    error_details_pb2.ErrorInfo,
    error_details_pb2.RetryInfo,
    error_details_pb2.BadRequest,
)


def _unpacked(detail: any_pb2.Any) -> message.Message:
    for kind in _DETAILS:
        if detail.Unpack(unpacked := kind()):
            return unpacked
    return detail


def _options(config: Mapping[str, Any] | None, options: Options) -> list[tuple[str, Any]]:
    chosen = service_config() if config is None else config
    return [("grpc.service_config", json.dumps(chosen)), ("grpc.enable_retries", 1), *options]


def _credentials(
    insecure: bool,
    root_certificates: bytes | None,
    certificate_chain: bytes | None,
    private_key: bytes | None,
) -> grpc.ChannelCredentials | None:
    if insecure:
        if root_certificates or certificate_chain or private_key:
            raise ValueError("certificates are for TLS: leave them out with insecure=True")
        return None
    if (certificate_chain is None) != (private_key is None):
        raise ValueError("a client certificate needs its private key, and the key its certificate")
    return grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
