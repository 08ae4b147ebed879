"""Consumed messages made our records (`consumers.consumer.to_records`)."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from consumers.consumer import to_records

JSON = ("content-type", b"application/json")


def message(
    offset: int, headers: list[tuple[str, bytes | bytearray | None]]
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("trips", 3, offset, 1_000 + offset, 0, b"k", b"v", None, 1, 1, headers)


def test_each_record_keeps_its_own_message_headers_as_bytes_in_a_tuple() -> None:
    # Headers equal to the previous message's are made once; any change is seen.
    headers: list[list[tuple[str, bytes | bytearray | None]]] = [
        [JSON],
        [JSON],
        [],
        [("content-type", bytearray(b"application/json"))],
        [JSON, ("x-empty", None)],
        [JSON, ("x-empty", None)],
        [("content-type", b"text/plain")],
        [JSON],
    ]
    records = to_records([message(n, h) for n, h in enumerate(headers)])
    assert [r.headers for r in records] == [
        tuple((name, None if value is None else bytes(value)) for name, value in h) for h in headers
    ]
    assert all(type(v) is bytes for r in records for _, v in r.headers if v is not None)
    assert [(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value) for r in records][
        :2
    ] == [("trips", 3, 0, 1_000, b"k", b"v"), ("trips", 3, 1, 1_001, b"k", b"v")]


def test_a_message_without_a_value_becomes_a_record_with_an_empty_one() -> None:
    empty = ConsumerRecord("trips", 0, 9, 5, 0, None, None, None, 0, 0, [])
    (record,) = to_records([empty])
    assert (record.key, record.value, record.headers) == (None, b"", ())
