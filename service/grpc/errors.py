"""The one place where domain errors become gRPC statuses with `google.rpc.Status` details."""

from __future__ import annotations

from typing import NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from service.domain import errors

DOMAIN = "podium"

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


def to_status(error: errors.PodiumError) -> grpc.Status:
    code = status_code_of(error)
    metadata = dict(error.metadata)
    if error.code is not None:
        metadata["code"] = str(error.code)
    details = [error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata)]
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(retry_after)
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=error.message, details=packed
    )
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


async def abort(
    context: grpc.aio.ServicerContext[object, object], error: errors.PodiumError
) -> NoReturn:
    await context.abort_with_status(to_status(error))
    raise AssertionError("abort_with_status returned")  # pragma: no cover
