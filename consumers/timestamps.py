"""protobuf's Timestamp as the domain's datetime: one way for the binary route and the JSON
fast path (`consumers.json_events`), so both give the same moment and refuse the same range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# What protobuf's well-known types allow (google/protobuf/timestamp.proto, duration.proto);
# a broken producer can send anything, which Python's datetime cannot always hold.
TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)  # 0001-01-01 .. 9999-12-31
NANOS = 999_999_999


def is_timestamp(seconds: int, nanos: int) -> bool:
    """Whether protobuf allows this Timestamp (its JSON parser refuses the others)."""
    return TIMESTAMP_SECONDS[0] <= seconds <= TIMESTAMP_SECONDS[1] and 0 <= nanos <= NANOS


def moment(seconds: int, nanos: int) -> datetime:
    """The datetime of a valid Timestamp (`is_timestamp`), to the microsecond like
    Timestamp.ToDatetime but cheaper on the ingest path (positional timedelta)."""
    return EPOCH + timedelta(0, seconds, nanos // 1000)
