"""Hand-over: how long a partition goes unfolded when its consumer ends. A real
`podium serve --role consumers` folds a stream of trip events; it is ended (kill -9, a crash;
SIGTERM, a clean stop), and as soon as it has exited a replacement is started in its place (the
same settings, as a restarted container or a StatefulSet's pod gets them). The figure is the
time from the signal to the first event the replacement folds (its folded-events counter on
/metrics), with the part the old process took to exit and the part the replacement took from
its start, split at its join request and its assignment (read from its log); with and without
an instance name, at the default session and a shorter one. Then with two members, one stopped
by SIGTERM while the other takes its partitions over (a rolling deploy whose replacement is
already up and in the group, a scale-down): the time until every partition folds again, read
from the offsets each batch commits to the database.

Each configuration folds a tenant of its own: the tenant's lock is a PostgreSQL advisory lock
keyed by the tenant alone, shared by every schema of the database, so a bench or a test folding
the bench's usual tenant in another schema of the same database would hold it (a first batch
seen waiting 1.1 s for it, issue 26)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from bench.fold import POLL_SECONDS, folded_so_far
from bench.harness import BackgroundLoad
from bench.ingest import bench_settings
from bench.server import free_port
from consumers.local_broker import LocalBroker
from consumers.topics import ensure_topics
from service.bootstrap import Storage
from service.config import Settings
from tests.databases import empty_database

PARTITIONS = 4
RATE = 200.0
"""Trip events a second while the consumers are ended and replaced: enough that every
partition has records waiting once the replacement joins."""
FIRST_FOLD_TIMEOUT_SECONDS = 120.0
SIGNALS = (signal.SIGKILL, signal.SIGTERM)
CONFIGURATIONS = (
    ("without PODIUM_INSTANCE_ID, the default 6 s session", None, 6.0),
    ("with PODIUM_INSTANCE_ID, the default 6 s session", "consumers-0", 6.0),
    ("with PODIUM_INSTANCE_ID, PODIUM_SESSION_TIMEOUT_SECONDS=3", "consumers-0", 3.0),
)
"""Without a name the replacement waits for the killed member's session; the local broker
holds a join for half the session (at least a second), measured."""
SURVIVOR_CONFIGURATIONS = (
    ("the default 6 s session", 6.0),
    ("PODIUM_SESSION_TIMEOUT_SECONDS=3", 3.0),
    ("PODIUM_SESSION_TIMEOUT_SECONDS=2", 2.0),
)
"""The surviving member hears of the rebalance at its next heartbeat (`HEARTBEAT_MS` apart, a
third of the session before issue 26) and joins again (the local broker holds the join for half
the session)."""


def say(text: str) -> None:
    print(text, flush=True)


JOINING = "(Re-)joining group"
ASSIGNED = "Setting newly assigned partitions"
"""aiokafka's log lines as a member sends its join request and as it is given partitions."""


@dataclass(frozen=True)
class Handover:
    exited: float
    """From the signal to the old process's exit."""
    first_fold: float
    """From the signal to the replacement's first folded event."""
    joining: float
    """From the replacement's start to its (last) join request."""
    assigned: float
    """From the replacement's start to its assignment."""


class Consumers:
    """One `podium serve --role consumers` process, its log in a file kept if it fails."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = replace(settings, metrics_address=f"127.0.0.1:{free_port()}")
        self._log = folder / f"handover-{uuid.uuid4().hex[:6]}.log"
        self._process: asyncio.subprocess.Process | None = None
        self._started = 0.0

    async def start(self) -> Consumers:
        self._started = time.time()
        with self._log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "podium"),
                "serve",
                "--role",
                "consumers",
                # The operator's settings, the drain on SIGTERM included.
                env={
                    **os.environ,
                    **replace(self.settings, grpc_address=f"127.0.0.1:{free_port()}").to_env(),
                },
                stdout=log,
                stderr=log,
            )
        return self

    async def first_fold(self, since: float) -> float:
        """Seconds from `since` (a perf_counter reading) to this process's first folded
        event."""
        deadline = time.perf_counter() + FIRST_FOLD_TIMEOUT_SECONDS
        while not await asyncio.to_thread(folded_so_far, self.settings):
            assert self._process is not None
            if self._process.returncode is not None or time.perf_counter() > deadline:
                raise RuntimeError(
                    f"the replacement folded nothing (exit code {self._process.returncode}); "
                    f"its log: {self._log}\n{self._log.read_text(errors='replace')[-3000:]}"
                )
            await asyncio.sleep(POLL_SECONDS)
        return time.perf_counter() - since

    def moments(self) -> tuple[float, float]:
        """Seconds from this process's start to its last join request before its first
        assignment, and to that assignment, from its log (NaN when not seen)."""
        joining = assigned = float("nan")
        for line in self._log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
                at = datetime.fromisoformat(record["time"]).timestamp() - self._started
                message = str(record.get("message", ""))
            except (ValueError, KeyError, TypeError):
                continue
            if message.startswith(JOINING):
                joining = at
            elif message.startswith(ASSIGNED):
                assigned = at
                break
        return joining, assigned

    async def end(self, sig: signal.Signals) -> None:
        assert self._process is not None
        if self._process.returncode is None:
            self._process.send_signal(sig)
        await self._process.wait()


async def handovers(
    settings: Settings, folder: Path, repetitions: int
) -> dict[signal.Signals, list[Handover]]:
    """Each signal in turn, `repetitions` times, each replacement becoming the next one ended."""
    measured: dict[signal.Signals, list[Handover]] = {sig: [] for sig in SIGNALS}
    current = await Consumers(settings, folder).start()
    try:
        await current.first_fold(time.perf_counter())
        for _ in range(repetitions):
            for sig in SIGNALS:
                await asyncio.sleep(1.0)  # folding steadily, its offsets committed
                signalled = time.perf_counter()
                await current.end(sig)
                exited = time.perf_counter() - signalled
                current = await Consumers(settings, folder).start()
                first_fold = await current.first_fold(signalled)
                measured[sig].append(Handover(exited, first_fold, *current.moments()))
    finally:
        with contextlib.suppress(ProcessLookupError):
            await current.end(signal.SIGTERM)
    return measured


async def until_every_partition_moves(store: Storage, settings: Settings) -> float:
    """Seconds until every trips partition's stored offset is past where it was on the call."""
    topic, started = settings.topic("trips"), time.perf_counter()

    def offsets() -> dict[tuple[str, int], int]:
        with store.read() as read:
            stored = read.stored_offsets(settings.consumer_group)
        return {tp: offset for tp, offset in stored.items() if tp[0] == topic}

    before = await asyncio.to_thread(offsets)
    while True:
        now = await asyncio.to_thread(offsets)
        if len(now) == PARTITIONS and all(now[tp] > before.get(tp, -1) for tp in now):
            return time.perf_counter() - started
        if time.perf_counter() - started > FIRST_FOLD_TIMEOUT_SECONDS:
            raise RuntimeError(f"partitions not all folding: {before} -> {now}")
        await asyncio.sleep(POLL_SECONDS)


async def survivor_handovers(settings: Settings, folder: Path, repetitions: int) -> list[float]:
    """Two members fold; one is stopped (SIGTERM) and the other takes its partitions: the
    seconds from the signal until every partition folds again. The stopped one is started
    again (and the group rebalanced) before the next, the other one then stopped."""
    named = [replace(settings, instance_id=f"consumers-{n}") for n in range(2)]
    members = [await Consumers(s, folder).start() for s in named]
    measured = []
    store = Storage.of(settings.database_url)
    try:
        for member in members:
            await member.first_fold(time.perf_counter())
        for turn in range(repetitions):
            await asyncio.sleep(1.0)  # both members folding, their offsets committed
            stopped = turn % 2
            signalled = time.perf_counter()
            await members[stopped].end(signal.SIGTERM)
            await until_every_partition_moves(store, settings)
            measured.append(time.perf_counter() - signalled)
            members[stopped] = await Consumers(named[stopped], folder).start()
            await members[stopped].first_fold(time.perf_counter())  # the group rebalanced
    finally:
        store.close()
        for member in members:
            with contextlib.suppress(ProcessLookupError):
                await member.end(signal.SIGTERM)
    return measured


def spread(values: list[float]) -> str:
    values = [v for v in values if v == v] or [float("nan")]  # NaN: not seen
    return (
        f"min {min(values):.2f} s, median {statistics.median(values):.2f} s, "
        f"max {max(values):.2f} s"
    )


async def bench_handover(
    kind: str, broker: LocalBroker, folder: Path, args: argparse.Namespace
) -> None:
    repetitions = 3 if args.quick else 5
    say(f"\n== {kind}: hand-over, a consumer ended and replaced, to its first folded event ==")
    for label, instance_id, session in CONFIGURATIONS:
        with empty_database(kind, folder, prefix="bench") as url:
            settings = replace(
                bench_settings(
                    broker.bootstrap_servers, url, f"h{uuid.uuid4().hex[:6]}.", PARTITIONS
                ),
                instance_id=instance_id,
                session_timeout_seconds=session,
            )
            await ensure_topics(settings)
            topic = settings.topic("trips")
            tenant = f"handover-{uuid.uuid4().hex[:6]}"
            async with BackgroundLoad(broker.bootstrap_servers, topic, RATE, 1_000, tenant):
                measured = await handovers(settings, folder, repetitions)
        say(f"{label}:")
        for sig, runs in measured.items():
            name = "kill -9" if sig is signal.SIGKILL else "SIGTERM"
            say(
                f"  {name} to the replacement's first folded event ({len(runs)} runs): "
                f"{spread([r.first_fold for r in runs])}; the old process exited in "
                f"{spread([r.exited for r in runs])}, the replacement folded "
                f"{spread([r.first_fold - r.exited for r in runs])} after its start"
            )
            say(
                "    the replacement's split: its start to its join request "
                f"{spread([r.joining for r in runs])}; the join "
                f"{spread([r.assigned - r.joining for r in runs])}; its assignment to its "
                f"first folded event {spread([r.first_fold - r.exited - r.assigned for r in runs])}"
            )
    for label, session in SURVIVOR_CONFIGURATIONS:
        with empty_database(kind, folder, prefix="bench") as url:
            settings = replace(
                bench_settings(
                    broker.bootstrap_servers, url, f"h{uuid.uuid4().hex[:6]}.", PARTITIONS
                ),
                session_timeout_seconds=session,
            )
            await ensure_topics(settings)
            topic = settings.topic("trips")
            tenant = f"handover-{uuid.uuid4().hex[:6]}"
            async with BackgroundLoad(broker.bootstrap_servers, topic, RATE, 1_000, tenant):
                moved = await survivor_handovers(settings, folder, repetitions)
        say(
            f"two members (a rolling deploy's replacement already in the group), {label}: "
            "SIGTERM to one until every partition folds again "
            f"({len(moved)} runs): {spread(moved)}"
        )
