"""Fold rates measured from outside, as an operator would: real `podium serve` processes
folding a topic from offset 0 into a fresh empty database, timed by their folded-events
counters on /metrics; and the peer (`bench/peer.py`) folding the same records in its own
process and virtualenv."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.ingest import Rate
from bench.process import caught_up, cpu_seconds, database_cpu_seconds, folded, folded_and_fetched
from bench.server import PodiumServe, free_port
from bench.waits import BackendStates, with_application
from service.config import Settings
from tests.databases import empty_database

POLL_SECONDS = 0.05
"""How often the counters are read: the error on a rate is at most this over its run."""
ROOT = Path(__file__).resolve().parent.parent
PEER_PYTHON = ROOT / ".venv-peer" / "bin" / "python"


@dataclass(frozen=True)
class Cpu:
    """CPU seconds used so far by each `podium serve` process (by pid) and by PostgreSQL."""

    processes: dict[int, float]
    database: float

    def since(self, earlier: Cpu) -> Cpu:
        return Cpu(
            {pid: t - earlier.processes.get(pid, 0.0) for pid, t in self.processes.items()},
            self.database - earlier.database,
        )


@dataclass(frozen=True)
class Fold:
    """A fold from offset 0: `records` folded after the first counter reading that showed
    any, over `first_to_last` seconds; `start_to_done` from the first process's start to the
    last event folded; `cpu` used between the first folded event and the last."""

    records: int
    first_to_last: float
    start_to_done: float
    cpu: Cpu
    backends: str = ""
    """With `sample_backends`, what PostgreSQL's backends for these processes were doing."""
    peak_memory_mib: float = float("nan")
    """The largest peak resident set (VmHWM) of Podium's processes."""
    whole: Fold | None = None
    """The same fold timed from the first records fetched (the first consumer lag reported)
    to the last folded, every record counted. The window from the first folded event leaves
    out the first batch and also the decoding of the second, done while the first was applied
    (`consumers.runner`): at 50,000 events in batches of 20,000 it counts 30,000, 20,000 of
    them decoded before it began, which flatters a short run against a long one
    (bench/RESULTS.md, issue 26's growth at full size)."""

    @property
    def per_second(self) -> float:
        return self.records / self.first_to_last if self.first_to_last else float("nan")

    @property
    def cpu_per_event(self) -> float:
        """Microseconds of CPU per event folded by Podium's processes (SQLite works in them;
        PostgreSQL's backends are `database_cpu_per_event`): what the machine's other load
        moves far less than the rate."""
        return self._per_event(sum(self.cpu.processes.values()))

    @property
    def database_cpu_per_event(self) -> float:
        """The same of every PostgreSQL backend on the machine (others' included)."""
        return self._per_event(self.cpu.database)

    def _per_event(self, seconds: float) -> float:
        return seconds / self.records * 1e6 if self.records else float("nan")

    @property
    def cores_busy(self) -> float:
        """Cores kept busy while folding, by Podium's processes and PostgreSQL together."""
        return (sum(self.cpu.processes.values()) + self.cpu.database) / self.first_to_last


async def serve_fold(
    settings: Settings,
    kind: str,
    folder: Path,
    expected: int,
    processes: int = 1,
    role: str = "all",
    produce: Callable[[], Awaitable[None]] | None = None,
    sample_backends: bool = False,
) -> Fold:
    """`processes` `podium serve --role ROLE` in one new consumer group fold the settings'
    trips topic from offset 0 into a new empty `kind` database, configured by environment
    only; returns once their counters add up to `expected`. With `produce`, the topic starts
    empty and is filled by it once every process has joined the group, so that no rebalance
    falls within the measurement. `sample_backends` (PostgreSQL) samples what the database
    does for them meanwhile (`bench/waits.py`)."""
    group = f"replay-{uuid.uuid4().hex[:6]}"
    states = BackendStates(group)
    timeout = 120 + expected / 2_000  # a crashed server must not wedge the bench
    with empty_database(kind, folder, prefix="bench") as url, contextlib.ExitStack() as sampling:
        if sample_backends:
            url = with_application(url, group)
            sampling.enter_context(states)
        runs = [
            replace(
                settings,
                database_url=url,
                consumer_group=group,
                metrics_address=f"127.0.0.1:{free_port()}",
            )
            for _ in range(processes)
        ]
        # Made before they start, so that the CPU is sampled from a process's first folded
        # event on, also when it folds its backlog before it reports SERVING.
        servers = [PodiumServe(run, role) for run in runs]

        def sample() -> Cpu:
            pids = [s.pid for s in servers if s.pid is not None]
            return Cpu({pid: cpu_seconds(pid) for pid in pids}, database_cpu_seconds())

        started = time.perf_counter()
        async with contextlib.AsyncExitStack() as stack:
            watching = asyncio.create_task(watch_folded(runs, expected, sample))
            try:
                for server in servers:
                    await stack.enter_async_context(server)
                if produce is not None:
                    await until_joined(runs)
                    await produce()
                (fetched_at, fetched_cpu), first, (done_at, done_cpu) = await asyncio.wait_for(
                    watching, timeout
                )
                first_at, first_count, first_cpu = first
            finally:
                watching.cancel()
    for server in servers:
        if server.stopped is not None and server.stopped.exit_code != 0:
            print(f"WARNING: podium serve exited {server.stopped.exit_code} on SIGTERM")
    peak = max((s.stopped.peak_memory_mib for s in servers if s.stopped), default=float("nan"))
    backends = states.line() if sample_backends else ""
    whole = Fold(
        expected,
        done_at - fetched_at,
        done_at - started,
        done_cpu.since(fetched_cpu),
        backends,
        peak,
    )
    return Fold(
        expected - first_count,
        done_at - first_at,
        done_at - started,
        done_cpu.since(first_cpu),
        backends,
        peak,
        whole,
    )


async def watch_folded(
    runs: Sequence[Settings], expected: int, sample: Callable[[], Cpu]
) -> tuple[tuple[float, Cpu], tuple[float, int, Cpu], tuple[float, Cpu]]:
    """Reads the processes' counters until they add up to `expected`: when the first records
    were fetched, with the CPU then; when the first folded events showed, how many, the CPU
    then; and when the last did, with the CPU then."""
    fetched_at, fetched_cpu = 0.0, Cpu({}, 0.0)
    first_at, first_count, first_cpu = 0.0, 0, Cpu({}, 0.0)
    while True:
        readings = [await asyncio.to_thread(folded_and_fetched_so_far, run) for run in runs]
        now, total = time.perf_counter(), sum(folded for folded, _ in readings)
        if (total or sum(lag for _, lag in readings)) and not fetched_at:
            fetched_at, fetched_cpu = now, sample()
        if total and not first_at:
            first_at, first_count, first_cpu = now, total, sample()
        if total >= expected:
            return (fetched_at, fetched_cpu), (first_at, first_count, first_cpu), (now, sample())
        await asyncio.sleep(POLL_SECONDS)


async def until_joined(runs: Sequence[Settings]) -> None:
    """Until every process reports its consumers caught up (on an empty topic: joined), which
    a process that joined before the last one did only once the group has rebalanced."""
    while not all([await asyncio.to_thread(joined, run) for run in runs]):  # noqa: ASYNC110
        await asyncio.sleep(POLL_SECONDS)


def joined(settings: Settings) -> bool:
    assert settings.metrics_address is not None
    try:
        return caught_up(settings.metrics_address)
    except OSError:
        return False


def folded_and_fetched_so_far(settings: Settings) -> tuple[int, int]:
    """The server's folded counter and consumer lag (`folded_and_fetched`), or zeros while it
    does not answer yet."""
    assert settings.metrics_address is not None
    try:
        return folded_and_fetched(settings.metrics_address, settings)
    except OSError:
        return 0, 0


def folded_so_far(settings: Settings) -> int:
    """The server's counter, or 0 while it does not answer yet."""
    assert settings.metrics_address is not None
    try:
        return folded(settings.metrics_address, settings)
    except OSError:
        return 0


@dataclass(frozen=True)
class PeerFold:
    """The peer's rate, or why it has none."""

    rate: Rate | None
    version: str = ""
    error: str = ""
    committed: int = 0
    """Records whose offsets the peer's group has committed once it stopped."""
    cpu_seconds: float = float("nan")
    """CPU time the peer's process used from its first record to its last."""


async def peer_fold(servers: str, topic: str, expected: int, guarantee: str, fold: str) -> PeerFold:
    """`python -m bench.peer` in the peer's virtualenv, killed if it has not finished in a
    generous time (a peer that hangs against the local broker must not wedge the bench)."""
    if not PEER_PYTHON.exists():
        return PeerFold(None, error=f"not installed ({PEER_PYTHON}: `make bench` installs it)")
    timeout, group = 120 + expected / 2_000, f"peer-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as state:
        process = await asyncio.create_subprocess_exec(
            str(PEER_PYTHON), "-m", "bench.peer", servers, topic, group, str(expected),
            guarantee, fold, state, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            output, errors = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            return PeerFold(None, error=f"no answer within {timeout:.0f} s (killed)")
    lines = output.decode().strip().splitlines()
    if not lines:
        tail = errors.decode(errors="replace")[-500:]
        return PeerFold(None, error=f"exited {process.returncode}: {tail}")
    answer = json.loads(lines[-1])
    if "error" in answer:
        return PeerFold(None, answer.get("version", ""), answer["error"])
    committed = await committed_records(servers, topic, group)
    return PeerFold(
        Rate(answer["records"], answer["seconds"]),
        answer["version"],
        "",
        committed,
        answer.get("cpu_seconds", float("nan")),
    )


async def committed_records(servers: str, topic: str, group: str) -> int:
    """The sum of the group's committed offsets over the topic's partitions (from offset 0:
    the records it has committed), read without joining the group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=group)
    await consumer.start()
    try:
        await consumer.topics()  # the cluster's metadata, this topic's partitions with it
        partitions = consumer.partitions_for_topic(topic) or set()
        offsets = [await consumer.committed(TopicPartition(topic, p)) for p in partitions]
        return sum(offset or 0 for offset in offsets)
    finally:
        await consumer.stop()
