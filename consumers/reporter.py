"""What the loop tells: metrics, the first catch-up's progress, caught-up, and health.

The loop's other parts say what happened (a batch applied, a lag measured, a back-off begun or
ended, a partition resumed); the reporter alone turns that into metrics, log lines and the
`IngestReport` the composition root turns into health.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from consumers.positions import Positions, Status
from consumers.runs import Run
from consumers.unknown_field_log import UnknownFieldLog
from service.app.ingest import Applied
from service.app.records import DeadLetter
from service.logs import Throttle
from service.metrics import Metrics

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 5.0
"""How often the first catch-up's progress is logged."""


@dataclass(frozen=True, slots=True)
class IngestReport:
    caught_up: bool
    """The first catch-up is done: the state reflects the log as it was at the first
    assignment (stalled partitions aside: they are reported on their own)."""
    backing_off: str | None
    """Why the database is being retried, while it is."""
    stalled: Mapping[TopicPartition, str] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.caught_up and self.backing_off is None and not self.stalled


class Reporter:
    def __init__(
        self,
        positions: Positions,
        joined: asyncio.Event,
        metrics: Metrics,
        family_of: Mapping[str, str],
        report: Callable[[IngestReport], None],
        progress_seconds: float = PROGRESS_SECONDS,
    ) -> None:
        self._positions = positions
        self._joined = joined
        self._metrics = metrics
        self._report = report
        self._progress_seconds = progress_seconds
        self.caught_up = asyncio.Event()
        self._targets: dict[TopicPartition, int] = {}
        """The first catch-up: each partition's log end (its high watermark) as first seen."""
        self._backing_off: str | None = None
        self._last_report: IngestReport | None = None
        self._lags: dict[TopicPartition, int] = {}
        self._folded = 0
        """Events folded since the loop started."""
        self._applied = 0
        """Records applied (folded, ignored or dead-lettered) since the loop started."""
        self._dead_letter_lines = Throttle(1.0)
        self._unknown_fields = UnknownFieldLog(metrics.unknown_fields, family_of)

    # --- health ------------------------------------------------------------------------------

    @property
    def backing_off(self) -> str | None:
        return self._backing_off

    def back_off(self, why: str | None) -> None:
        """The database is being retried (`why`), or no longer (`None`)."""
        self._backing_off = why
        self.publish()

    def publish(self) -> None:
        """Report the loop's state if it changed since last reported."""
        stalled = {
            p: self._positions[p].why_stalled for p in self._positions.with_status(Status.STALLED)
        }
        report = IngestReport(self.caught_up.is_set(), self._backing_off, stalled)
        if report == self._last_report:
            return
        previous = self._last_report.stalled if self._last_report else {}
        for partition in set(previous) | set(stalled):
            self._stalled_gauge(partition, 1 if partition in stalled else 0)
        self._last_report = report
        self._report(report)

    def resumed(self, partition: TopicPartition) -> None:
        """The partition was sought and is fetched from again."""
        self._stalled_gauge(partition, 0)

    def _stalled_gauge(self, partition: TopicPartition, flag: int) -> None:
        self._metrics.partition_stalled.labels(partition.topic, str(partition.partition)).set(flag)

    # --- catching up -------------------------------------------------------------------------

    def measured(self, partition: TopicPartition, highwater: int, lag: int) -> None:
        """The partition's log ends at `highwater`, `lag` records ahead of the state."""
        if not self.caught_up.is_set():
            self._targets.setdefault(partition, highwater)
        self._lags[partition] = lag
        self._metrics.consumer_lag.labels(partition.topic, str(partition.partition)).set(lag)

    def check_caught_up(self) -> None:
        if self.caught_up.is_set() or not self._joined.is_set():
            return
        if self._positions.with_status(Status.UNRESOLVED):
            return
        for partition in self._positions.with_status(Status.READY):
            target = self._targets.get(partition)
            if target is None or self._positions[partition].consumed < target:
                return  # not fetched from yet, or behind
        self.caught_up.set()
        self._metrics.caught_up.set(1)
        log.info("caught up with the topics as they were at start")

    async def log_progress(self) -> None:
        """Until the first catch-up is done, every few seconds: the events folded so far,
        the records still behind, and the time left at the rate so far."""
        started = time.monotonic()
        while True:
            try:
                await asyncio.wait_for(self.caught_up.wait(), self._progress_seconds)
                return
            except TimeoutError:
                pass
            elapsed = time.monotonic() - started
            behind = sum(lag for p, lag in self._lags.items() if p in self._positions)
            rate = self._applied / elapsed if elapsed > 0 else 0.0
            left = behind / rate if rate > 0 else None
            log.info(
                "catching up: %d events folded, %d records behind, %s left",
                self._folded,
                behind,
                "unknown time" if left is None else f"about {left:.0f} s",
                extra={
                    "folded": self._folded,
                    "lag": behind,
                    "records_per_second": round(rate, 1),
                    "eta_seconds": None if left is None else round(left, 1),
                },
            )

    # --- batches -----------------------------------------------------------------------------

    def applied(self, runs: Sequence[Run], applied: Applied, seconds: float) -> None:
        """The runs were applied in one batch in `seconds`: count it, and log its dead
        letters. Records are counted by run (a run's records are all of its partition's
        topic), not record by record; only the unknown fields' notes still visit each."""
        records_by_topic: Counter[str] = Counter()
        for run in runs:
            records_by_topic[run.partition.topic] += len(run.received) + len(run.dead)
        records = records_by_topic.total()
        self._metrics.batch_seconds.observe(seconds)
        self._metrics.batch_records.observe(records)
        dead_by_topic: Counter[str] = Counter(d.record.topic for d in applied.dead_lettered)
        dead_by_kind = Counter((d.record.topic, d.rejection.kind) for d in applied.dead_lettered)
        for (topic, kind), count in dead_by_kind.items():
            self._metrics.events_dead_lettered.labels(topic, kind).inc(count)
        for topic, count in records_by_topic.items():
            self._metrics.events_folded.labels(topic).inc(count - dead_by_topic[topic])
        for ignored in applied.ignored:
            self._metrics.events_ignored.labels(ignored.kind).inc()
        for run in runs:
            for item in run.received:
                if item.unknown_fields:
                    self._unknown_fields.note(run.partition.topic, item.unknown_fields)
        self._folded += applied.folded
        self._applied += records
        for letter in applied.dead_lettered:
            self._log_dead_letter(letter)

    def _log_dead_letter(self, letter: DeadLetter) -> None:
        """One line a second per topic at most, saying how many were left out since."""
        record, rejection = letter.record, letter.rejection
        left_out = self._dead_letter_lines.admit(record.topic)
        if left_out is None:
            return
        log.warning(
            "dead letter %s[%d]@%d of tenant %s (%s): %s%s",
            record.topic,
            record.partition,
            record.offset,
            rejection.tenant_id or "-",
            rejection.kind,
            rejection.reason,
            f" ({left_out} more on this topic since the last line)" if left_out else "",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "tenant": rejection.tenant_id,
                "reason_kind": rejection.kind,
                "reason": rejection.reason,
                "left_out": left_out,
            },
        )
