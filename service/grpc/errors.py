"""The one place where domain errors become gRPC statuses with `google.rpc.Status` details
(docs/rules.md#errors): an `ErrorInfo` always, a `RetryInfo` when the caller may retry later
(with the same delay in the `grpc-retry-pushback-ms` trailer, which gRPC's own retries obey),
a `BadRequest` when an argument of the request is refused."""

from __future__ import annotations

import collections
import math
from datetime import timedelta
from typing import NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from service.domain import errors

DOMAIN = "podium"
DETAILS_TRAILER = "grpc-status-details-bin"
PUSHBACK_TRAILER = "grpc-retry-pushback-ms"
"""gRPC's retry pushback (gRFC A6): a client whose service config retries the status waits
this many milliseconds before its next attempt; a negative value tells it not to retry."""
RETRIED_BY_CODE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
"""Codes clients retry by their code alone (Podium's service config does): a refusal of one
of these that has no RetryInfo (a request too large) tells them not to."""

_CODES: list[tuple[type[errors.PodiumError], grpc.StatusCode]] = [
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.FeatureDisabled, grpc.StatusCode.PERMISSION_DENIED),
    (errors.InvalidRankType, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidGroupLabel, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.StateNotReady, grpc.StatusCode.UNAVAILABLE),
    (errors.StorageDown, grpc.StatusCode.UNAVAILABLE),
    (errors.ProgressNotAvailable, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.NotApplicableForChallenge, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.InvalidId, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.TooManyWatchers, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.RequestTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.TooManyCalls, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.RateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
]


def status_code_of(error: errors.PodiumError) -> grpc.StatusCode:
    return next(
        (code for kind, code in _CODES if isinstance(error, kind)), grpc.StatusCode.INTERNAL
    )


class _Status(
    collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status
):
    """What a call is aborted with: its code, message and trailers."""


def to_status(error: errors.PodiumError) -> grpc.Status:
    code = status_code_of(error)
    metadata = dict(error.metadata)
    if error.code is not None:
        metadata["code"] = str(error.code)
    details: list[Message] = [
        error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata)
    ]
    retry_after: timedelta | None = getattr(error, "retry_after", None)
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(retry_after)
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    if error.field is not None:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=error.field, description=error.message
        )
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=error.message, details=packed
    )
    trailers: list[tuple[str, str | bytes]] = [(DETAILS_TRAILER, status.SerializeToString())]
    pushback = _pushback_ms(code, retry_after)
    if pushback is not None:
        trailers.append((PUSHBACK_TRAILER, pushback))
    return _Status(code, error.message, tuple(trailers))


def _pushback_ms(code: grpc.StatusCode, retry_after: timedelta | None) -> str | None:
    """The pushback beside a RetryInfo (rounded up: an attempt never comes before the delay
    is over), or -1 for a refusal retried by its code that is not worth retrying."""
    if retry_after is not None:
        return str(max(0, math.ceil(retry_after / timedelta(milliseconds=1))))
    return "-1" if code in RETRIED_BY_CODE else None


async def abort(
    context: grpc.aio.ServicerContext[object, object], error: errors.PodiumError
) -> NoReturn:
    await context.abort_with_status(to_status(error))
    raise AssertionError("abort_with_status returned")  # pragma: no cover
