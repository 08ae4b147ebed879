"""The operator's view of consumed positions: stored offsets beside each log's range, and
where a reset moves a partition. Pure: the caller reads the database and the broker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TopicPartition = tuple[str, int]
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
