"""Fetched records as the loop hands them on: decoded, by partition, with their epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from consumers.consumer import to_records
from consumers.decode import decode_noting_unknown_fields
from service.app.records import DeadLetter, Received, Record, Rejected
from service.app.records import split as split_by


@dataclass(frozen=True, slots=True)
class Fetched:
    partition: TopicPartition
    epoch: int
    messages: list[ConsumerRecord[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Run:
    """A partition's fetched records, decoded, with the epoch they were fetched in."""

    partition: TopicPartition
    epoch: int
    next_offset: int
    received: list[Received]
    dead: list[DeadLetter]


def decode_record(record: Record, family_of: Mapping[str, str]) -> Received | DeadLetter:
    """An event, or a dead letter when the record cannot be decoded."""
    return _decoded(family_of.get(record.topic, ""), record)


def _decoded(family: str, record: Record) -> Received | DeadLetter:
    decoded, unknown_fields = decode_noting_unknown_fields(
        family, record.value, record.headers, record.timestamp_ms
    )
    if isinstance(decoded, Rejected):
        return DeadLetter(record, decoded)
    return Received(decoded, record, unknown_fields)


def split(
    records: Sequence[Record], family_of: Mapping[str, str]
) -> tuple[list[Received], list[DeadLetter]]:
    """Decode each record: the ones that become events, and the ones that become dead letters."""
    return split_by(records, lambda record: decode_record(record, family_of))


def decode_runs(fetched: Sequence[Fetched], family_of: Mapping[str, str]) -> list[Run]:
    """Each fetch's records decoded; a fetch holds one partition's, so one topic family's."""
    runs = []
    for item in fetched:
        family = family_of.get(item.partition.topic, "")
        received, dead = split_by(to_records(item.messages), partial(_decoded, family))
        next_offset = item.messages[-1].offset + 1
        runs.append(Run(item.partition, item.epoch, next_offset, received, dead))
    return runs
