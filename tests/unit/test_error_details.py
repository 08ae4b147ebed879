"""What a refusal carries beside its code (docs/rules.md#errors): every refused argument a
`google.rpc.BadRequest` naming the field, beside its `ErrorInfo`; every `RetryInfo` the same
delay in the `grpc-retry-pushback-ms` trailer that gRPC's retries obey; a refusal retried by
its code but not worth retrying a pushback that says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from service.domain import errors
from service.grpc.errors import _CODES, DETAILS_TRAILER, PUSHBACK_TRAILER, to_status

INVALID_ARGUMENTS: list[tuple[errors.PodiumError, str]] = [
    (errors.InvalidRankType(), "type"),
    (errors.InvalidGroupLabel("nowhere"), "group_label"),
    (errors.InvalidGroupLabel("nowhere", field="group"), "group"),
    (errors.invalid_month(2031, 1, "it is after the current month"), "month"),
    (errors.invalid_page_size(5000, 1000), "page_size"),
    (errors.invalid_page_token("not a page token of this method"), "page_token"),
    (errors.invalid_neighbors(51, 50), "neighbors"),
    (errors.invalid_top(0, 100), "top"),
    (errors.InvalidId("task_id", "t" * 300, "is longer than 200 characters"), "task_id"),
]


def trailers(status: grpc.Status) -> dict[str, str | bytes]:
    return dict(status.trailing_metadata)


def unpacked(status: grpc.Status) -> list[object]:
    rich = status_pb2.Status.FromString(trailers(status)[DETAILS_TRAILER])
    found: list[object] = []
    for detail in rich.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.RetryInfo,
            error_details_pb2.BadRequest,
        ):
            if detail.Unpack(message := kind()):
                found.append(message)
    assert len(found) == len(rich.details)
    return found


@pytest.mark.parametrize(("error", "field"), INVALID_ARGUMENTS)
def test_a_refused_argument_carries_a_bad_request_naming_its_field_beside_its_error_info(
    error: errors.PodiumError, field: str
) -> None:
    status = to_status(error)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    info, bad_request = unpacked(status)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == error.reason
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        (field, error.message)
    ]


def test_every_kind_of_invalid_argument_is_among_those_checked() -> None:
    refused_arguments = {kind for kind, code in _CODES if code == grpc.StatusCode.INVALID_ARGUMENT}
    assert refused_arguments == {type(error) for error, _ in INVALID_ARGUMENTS}


NOW = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "pushback"),
    [
        (errors.StateNotReady(timedelta(seconds=2)), "2000"),
        (errors.StorageDown("e1", timedelta(seconds=1)), "1000"),
        (errors.TooManyCalls(timedelta(milliseconds=250)), "250"),
        (errors.RateLimited(timedelta(seconds=1 / 3)), "334"),
        (errors.TooManyWatchers(timedelta(seconds=5)), "5000"),
        (errors.ProgressNotAvailable(NOW + timedelta(days=2), NOW), str(2 * 86_400_000)),
    ],
)
def test_every_retry_info_has_its_delay_as_a_pushback_rounded_up(
    error: errors.PodiumError, pushback: str
) -> None:
    status = to_status(error)
    [retry] = [d for d in unpacked(status) if isinstance(d, error_details_pb2.RetryInfo)]
    assert retry.retry_delay.ToTimedelta() == error.retry_after  # type: ignore[attr-defined]
    assert trailers(status)[PUSHBACK_TRAILER] == pushback


def test_a_refusal_retried_by_its_code_but_not_worth_retrying_says_not_to() -> None:
    status = to_status(errors.RequestTooLarge("message", 20_000, 16_384))
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailers(status)[PUSHBACK_TRAILER] == "-1"


@pytest.mark.parametrize(
    "error",
    [errors.task_not_found("t1"), errors.Unauthenticated(), errors.InvalidRankType()],
)
def test_other_refusals_carry_no_pushback(error: errors.PodiumError) -> None:
    assert PUSHBACK_TRAILER not in trailers(to_status(error))
