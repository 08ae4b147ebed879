"""The Kafka consumer as the loop sees it: what it calls, how a record becomes ours, how it
stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.protocol.group import LeaveGroupRequest
from aiokafka.structs import ConsumerRecord

from service.app.records import Record
from service.logs import describe

log = logging.getLogger(__name__)

LEAVE_TIMEOUT_SECONDS = 2.0
"""Stopping does not wait longer than this for the group's coordinator to take our leave."""


class Consumer(Protocol):
    """The part of aiokafka's `AIOKafkaConsumer` the loop uses (a fake stands in for tests)."""

    def subscribe(self, topics: list[str], *, listener: Any) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def pause(self, *partitions: TopicPartition) -> None: ...
    def resume(self, *partitions: TopicPartition) -> None: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...
    async def position(self, partition: TopicPartition) -> int: ...
    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]: ...
    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...
    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...


def to_records(messages: Iterable[ConsumerRecord[bytes, bytes]]) -> list[Record]:
    """Our records of consumed messages. Their headers are made ours (a tuple of bytes) once
    for as many messages in a row as carry the same (a producer sends the same headers with
    every record, and aiokafka makes a new list of them for each)."""
    records = []
    last_headers: object = None
    ours: tuple[tuple[str, bytes | None], ...] = ()
    for message in messages:
        headers = message.headers
        if headers != last_headers:
            ours = _headers_of(headers)
            last_headers = headers
        records.append(
            Record(  # positional: once per record consumed
                message.topic,
                message.partition,
                message.offset,
                message.timestamp,
                message.key,
                message.value or b"",
                ours,
            )
        )
    return records


def _headers_of(
    headers: Sequence[tuple[str, bytes | None]],
) -> tuple[tuple[str, bytes | None], ...]:
    if not headers:
        return ()
    return tuple((name, None if value is None else bytes(value)) for name, value in headers)


async def stop_consumer(consumer: Consumer) -> None:
    """Stop the consumer (leaving its group), whatever its fetcher was doing.

    aiokafka 0.14's `Fetcher.close` cancels its pending fetches and awaits them; one that is
    sleeping in its retry back-off after a failed fetch re-raises the CancelledError, and
    `stop()` then skips closing the client. Only a cancellation of our own task is passed on.
    """
    try:
        await leave_first_generation(consumer)
        await consumer.stop()
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        log.warning("a failed fetch was retrying as the consumer stopped; closing its client")
        await consumer._client.close()  # type: ignore[attr-defined]  # what stop() does next


async def leave_first_generation(consumer: Consumer) -> None:
    """Leave the group from generation 0 too.

    aiokafka sends LeaveGroup on stop only from generation 1 on, Kafka's first; Tansu
    numbers generations from 0. A member stopped in its first generation therefore stayed in
    the group until its session expired, and the next start waited for it: its join named the
    departed member leader, the sync failed when that session ended, and it joined again
    (seconds more before SERVING: bench/RESULTS.md). The coordinator is closed first (no
    heartbeat or rejoin runs meanwhile), the leave is sent as aiokafka sends its own, best
    effort.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or coordinator.generation != 0:
        return
    group, member = coordinator.group_id, coordinator.member_id
    await coordinator.close()
    try:
        async with asyncio.timeout(LEAVE_TIMEOUT_SECONDS):
            await coordinator._send_req(LeaveGroupRequest(group, member))
    except (kafka_errors.KafkaError, TimeoutError) as error:
        log.warning(
            "could not leave consumer group %s (%s): a restart waits for its session to expire",
            group,
            describe(error),
        )
