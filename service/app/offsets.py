"""Consumed positions as operators see and move them: stored offsets beside each log's range,
resets fenced like a batch, and the offsets of logs that were just created forgotten."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.app.ports import TopicPartition, UnitsOfWork

LogRange = tuple[int, int]
"""A partition's first offset and the offset after its last record."""


@dataclass(frozen=True, slots=True)
class OffsetRow:
    topic: str
    partition: int
    stored: int | None
    log: LogRange | None
    """None: the broker does not know the partition (or was not asked)."""

    @property
    def lag(self) -> int | None:
        if self.log is None or not self.inside_log:
            return None
        start, end = self.log
        return end - (start if self.stored is None else self.stored)

    @property
    def inside_log(self) -> bool:
        if self.log is None or self.stored is None:
            return True
        start, end = self.log
        return start <= self.stored <= end

    @property
    def note(self) -> str:
        if self.log is None:
            return "no such partition in the broker" if self.stored is not None else ""
        if not self.inside_log:
            return "OUTSIDE THE LOG: the partition is stopped until it is reset"
        return "never stored: read from the log's start" if self.stored is None else ""


def offset_rows(
    stored: Mapping[TopicPartition, int], logs: Mapping[TopicPartition, LogRange]
) -> list[OffsetRow]:
    return [
        OffsetRow(topic, partition, stored.get((topic, partition)), logs.get((topic, partition)))
        for topic, partition in sorted(set(stored) | set(logs))
    ]


class BadReset(ValueError):
    pass


def reset_target(to: str, log: LogRange) -> int:
    """Where `--to earliest|latest|OFFSET` moves a partition whose log is `log`."""
    start, end = log
    if to == "earliest":
        return start
    if to == "latest":
        return end
    try:
        offset = int(to)
    except ValueError:
        raise BadReset(f"--to takes earliest, latest or an offset, not {to!r}") from None
    if not start <= offset <= end:
        raise BadReset(f"offset {offset} is outside the log [{start}, {end}]")
    return offset


def reset_offsets(
    unit_of_work: UnitsOfWork,
    group: str,
    targets: Mapping[TopicPartition, int],
    *,
    dry_run: bool = False,
) -> dict[TopicPartition, int | None]:
    """Move stored offsets to `targets`, compare-and-set as a batch commits (a consumer that
    moves one meanwhile fails the reset with `OffsetMoved`); returns where each stood. With
    `dry_run` nothing moves."""
    with unit_of_work() as uow:
        stored = uow.offsets.load(group, targets)
        if not dry_run:
            uow.offsets.advance(group, {tp: (stored.get(tp), to) for tp, to in targets.items()})
            uow.commit()
    return {tp: stored.get(tp) for tp in targets}


def forget_new_logs(unit_of_work: UnitsOfWork, group: str, topics: Sequence[str]) -> list[str]:
    """Topics just created are new logs: offsets stored for an older log of the same name (a
    local broker that started empty, a re-created topic) would skip their first records, so
    they are dropped and the new logs read from their start. Returns the topics that had
    offsets."""
    with unit_of_work() as uow:
        stale = sorted({t for t, _ in uow.offsets.load(group) if t in topics})
        uow.offsets.forget(group, topics)
        uow.commit()
    return stale
