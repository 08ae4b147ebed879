"""Effectively once under faults (docs/rules.md#re-sent-events-and-convergence), end to end
through Kafka and gRPC.

Each scenario produces a mixed stream (`tests.reference`) to the real broker, lets `podium
serve` fold it while something goes wrong (kill -9, a frozen instance, a replay from the start,
the database or the broker out of reach), and ends by comparing Podium's answers with the
stream's recomputation: the ranking of both months exactly, the trips of every driver not
ranked, every task; 0 lost, 0 counted twice, and no dead letter (the stream is valid).

The short forms run in `make test`, each with a few thousand events (enough for every fault
to fall mid-stream, few enough to fold in seconds); the long forms (`soak` marker) in
`make soak` (about 25 minutes), with both freezes, which take one and two minutes (a member's
session must expire, then the database's idle-in-transaction timeout). The instance killed
-9 is restarted under the same PODIUM_INSTANCE_ID, as a crashed container is: it removes the
member it left behind and folds again within seconds (without the name, only once that
member's session has expired). Every random choice comes from one seed, printed;
`PODIUM_FAULT_SEED=<seed>` replays it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from podium.v1 import tasks_pb2, tasks_pb2_grpc
from sqlalchemy import Engine, Table, func, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from consumers.backoff import SILENT_DATABASE_SECONDS
from consumers.local_broker import LocalBroker
from service import cli
from service.adapters.database import create_database_engine
from service.adapters.tables import dead_letters, ignored_events
from service.app.records import FAMILIES
from service.bootstrap import Storage
from service.config import Settings
from tests.conftest import ProxiedBroker
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.e2e.test_consumer_group import until_members
from tests.processes import SERVING, ServeProcess
from tests.proxy import Cut, ThreadedTcpProxy
from tests.reference import (
    Producer,
    Stream,
    actual_ranking,
    expected_ranking,
    expected_tasks,
    mixed_stream,
    ranking_answer,
    ranking_differences,
    task_answers,
)
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e]

SMALL_BATCH = "200"
"""Records per batch: small, so a kill falls between transactions as well as inside one."""
INGEST = "podium.ingest"
Offsets = dict[tuple[str, int], int]


def _seed() -> int:
    chosen = os.environ.get("PODIUM_FAULT_SEED")
    seed = int(chosen) if chosen else random.SystemRandom().randrange(1, 2**31)
    print(f"seed {seed} (PODIUM_FAULT_SEED={seed} replays this run)")
    return seed


def _tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:8]}"


# --- the state as the database holds it ------------------------------------------------------


class Database:
    """The test's own view of Podium's database (never through the fault proxy)."""

    def __init__(self, url: str, group: str) -> None:
        self.engine: Engine = create_database_engine(url)
        self.group = group

    def close(self) -> None:
        self.engine.dispose()

    def _offsets(self) -> Offsets:
        with Storage(self.engine).read() as read:
            return read.stored_offsets(self.group)

    async def offsets(self) -> Offsets:
        """Stored next offsets (none before Podium's first migration)."""
        try:
            return await asyncio.to_thread(self._offsets)
        except (sa_exc.OperationalError, sa_exc.ProgrammingError):  # no schema yet
            return {}

    def _count(self, table: Table) -> int:
        with self.engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(table)).scalar_one())

    async def dead_letters(self) -> int:
        return await asyncio.to_thread(self._count, dead_letters)

    async def ignored_events(self) -> int:
        return await asyncio.to_thread(self._count, ignored_events)

    async def key(self, tenant: str) -> str:
        storage = Storage(self.engine)
        return await asyncio.to_thread(
            storage.create_key, tenant, "ranking,tasks", datetime.now(UTC)
        )

    async def until_consumed(
        self, ends: Mapping[tuple[str, int], int], *, within: float, podium: ServeProcess | None
    ) -> float:
        """Wait until every partition's stored offset reaches `ends`; the seconds it took."""
        started = time.monotonic()

        def exited() -> str | None:
            if podium is None or podium.running:
                return None
            return f"podium serve exited with {podium.returncode}"

        try:
            await eventually(
                self.offsets,
                lambda stored: all(stored.get(tp, 0) >= end for tp, end in ends.items()),
                within=within,
                unless=exited,
                what=f"every partition stored up to {dict(ends)}",
            )
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{podium.tail() if podium else ''}") from None
        return time.monotonic() - started

    async def until_moved(self, since: Offsets, *, within: float) -> float:
        """Wait until some stored offset moves past `since` (a batch committed); the seconds
        it took."""
        started = time.monotonic()
        await eventually(
            self.offsets,
            lambda stored: _moved(since, stored),
            within=within,
            every=0.05,
            what="a batch committed",
        )
        return time.monotonic() - started


@asynccontextmanager
async def _database(url: str, group: str) -> AsyncIterator[Database]:
    database = Database(url, group)
    try:
        yield database
    finally:
        database.close()


def _topics(settings: Settings) -> dict[str, str]:
    return {family: settings.topic(family) for family in FAMILIES}


def _total(offsets: Mapping[tuple[str, int], int]) -> int:
    return sum(offsets.values())


def _moved(since: Offsets, now: Offsets) -> bool:
    return any(offset > since.get(tp, 0) for tp, offset in now.items())


# --- the answers -------------------------------------------------------------------------------


async def _differences(channel: grpc.aio.Channel, key: str, stream: Stream) -> list[str]:
    answer = await ranking_answer(channel, key)
    problems: list[str] = []
    for month in (answer.currentMonth, answer.previousMonth):
        expected = expected_ranking(stream, month.year, month.monthNumber)
        problems += ranking_differences(expected, actual_ranking(month))
    if problems:
        return problems
    expected_states = expected_tasks(stream)
    actual_states = await task_answers(channel, key, sorted(expected_states))
    for task_id, state in expected_states.items():
        if actual_states[task_id] != state:
            problems.append(f"task {task_id}: expected {state}, got {actual_states[task_id]}")
    return problems[:20]


async def assert_answers(
    channel: grpc.aio.Channel, key: str, stream: Stream, *, within: float = 20.0
) -> None:
    """Podium's answers equal the recomputation (a query reflects the state within a
    second or so: the answers are polled a little while)."""

    async def differences() -> list[str]:
        try:
            return await _differences(channel, key, stream)
        except grpc.aio.AioRpcError as error:
            return [f"{error.code()}: {error.details()}"]

    problems = await eventually(
        differences,
        lambda found: not found,
        within=within,
        every=0.5,
        what="answers equal to the recomputation",
    )
    assert not problems


def _summary(stream: Stream) -> str:
    now = stream.now
    current = expected_ranking(stream, now.year, now.month)
    counts = stream.counts()
    return (
        f"{len(stream)} events ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); "
        f"{len(current.ranked)} ranked and {len(current.not_ranked)} not ranked this month, "
        f"{len(expected_tasks(stream))} tasks"
    )


async def _finish(
    podium: ServeProcess, database: Database, producer: Producer, stream: Stream
) -> None:
    """Everything produced is folded, the answers equal the recomputation, no dead letter,
    and Podium stops cleanly."""
    caught_up = await database.until_consumed(producer.ends, within=180, podium=podium)
    print(f"caught up with the whole stream {caught_up:.1f} s after the last event was produced")
    await podium.serving()
    key = await database.key(stream.tenant)
    await assert_answers(podium.channel(), key, stream)
    assert await database.dead_letters() == 0, "a valid stream left dead letters"
    assert await podium.terminate() == 0, podium.tail()


# --- 1. kill -9 at random points ---------------------------------------------------------------


@dataclass(frozen=True)
class Kills:
    events: int
    kills: int
    seconds_per_kill: float
    """Production is paced to last about kills x this, so every kill falls mid-stream."""


SHORT_KILLS = Kills(events=6_000, kills=3, seconds_per_kill=15.0)
LONG_KILLS = Kills(events=100_000, kills=20, seconds_per_kill=15.0)


async def _kill_at_random_points(broker: LocalBroker, folder: Path, kind: str, plan: Kills) -> None:
    seed = _seed()
    rng = random.Random(seed)
    stream = mixed_stream(_tenant(), plan.events, now=datetime.now(UTC), seed=seed)
    print(_summary(stream))
    with empty_database(kind, folder) as url:
        settings = isolated_settings(
            broker, url, PODIUM_BATCH_MAX_RECORDS=SMALL_BATCH, PODIUM_INSTANCE_ID="podium-0"
        )
        podium = ServeProcess(settings, folder / "serve.log")
        async with _database(url, settings.consumer_group) as database:
            podium.start()
            try:
                await podium.serving()
                async with Producer(broker.bootstrap_servers, _topics(settings)) as producer:
                    chunk = 100
                    pause = chunk * plan.kills * plan.seconds_per_kill / plan.events
                    producing = asyncio.create_task(
                        producer.progressively(stream.records, chunk=chunk, pause=pause)
                    )
                    for number in range(1, plan.kills + 1):
                        print(f"{number}/{plan.kills}: ", end="")
                        await _kill_once(podium, database, producer, producing, rng)
                    restarted = time.monotonic()
                    await producing
                await database.until_consumed(producer.ends, within=180, podium=podium)
                print(f"caught up {time.monotonic() - restarted:.1f} s after the last restart")
                await _finish(podium, database, producer, stream)
            finally:
                await podium.close()


async def _kill_once(
    podium: ServeProcess,
    database: Database,
    producer: Producer,
    producing: asyncio.Task[None],
    rng: random.Random,
) -> None:
    """Kill -9 at a random moment after the last start (while it starts, joins the group,
    folds the backlog or follows the stream), then start again at once."""
    started = time.monotonic()
    at_start = await database.offsets()
    if rng.random() < 0.7:
        # While it folds the backlog that piled up since the last kill.
        resumed = await _until_folding(database, producer, producing, at_start)
        await asyncio.sleep(rng.uniform(0.0, 0.6))
        when = f"folding resumed {resumed:.1f} s after the start;"
    else:
        await asyncio.sleep(rng.uniform(0.2, 6.0))
        when = "at a random point;"
    stored = await database.offsets()
    lag = _total(producer.ends) - _total(stored)
    await podium.kill()
    print(
        f"kill -9 {when} killed {time.monotonic() - started:.1f} s after the start with "
        f"{_total(stored)} of {producer.sent} produced records folded (lag {lag})"
    )
    podium.start()


async def _until_folding(
    database: Database, producer: Producer, producing: asyncio.Task[None], since: Offsets
) -> float:
    """Wait until a batch commits after `since`; the seconds it took (the stream may be all
    produced and folded already: then there is nothing to wait for)."""
    started = time.monotonic()

    def folding(stored: Offsets) -> bool:
        if _moved(since, stored):
            return True
        return producing.done() and all(stored.get(tp, 0) >= e for tp, e in producer.ends.items())

    await eventually(
        database.offsets, folding, within=90, every=0.05, what="the restarted instance folding"
    )
    return time.monotonic() - started


async def test_kill_9_mid_stream_loses_nothing_and_counts_nothing_twice(
    broker: LocalBroker, tmp_path: Path
) -> None:
    """On PostgreSQL; `make soak` kills on both databases."""
    await _kill_at_random_points(broker, tmp_path, "postgresql", SHORT_KILLS)


# --- 1b. several consumers folding one tenant, killed and rebalanced ---------------------


@dataclass(frozen=True)
class SideBySide:
    consumers: int
    partitions: int
    scattered: bool
    """Every record to a partition picked at random (a producer keying otherwise): one
    user's events reach every consumer."""
    events: int = 6_000
    seconds: float = 40.0
    """Production is paced to last about this long."""


async def _until_replaced(
    settings: Settings, count: int, before: list[str], killed: ServeProcess
) -> None:
    """Until the group is at rest with `count` members and the killed process's old member is
    gone from it (removed by its successor): a group at rest still holding the dead member
    rebalances again once the successor joins."""
    prefix = f"podium-{killed.settings.instance_id}-"
    gone = {member for member in before if member.startswith(prefix)}
    for _ in range(600):
        members = await until_members(settings, count)
        if not gone & set(members):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the killed member {gone} stayed in the group")


async def _side_by_side(broker: LocalBroker, folder: Path, plan: SideBySide) -> None:
    """`plan.consumers` `podium serve --role consumers` in one group fold one tenant on
    PostgreSQL while production goes on: they join one by one (each join a rebalance), one
    is killed -9 and restarted, another stopped (SIGTERM) and restarted; then an `--role api`
    process answers as the recomputation does, with no dead letter, and every consumer still
    runs. How fast a member stops or rejoins is the hand-over tests' (a member stuck
    re-joining the local broker's group ignored SIGTERM for a minute once here)."""
    seed = _seed()
    rng = random.Random(seed)
    stream = mixed_stream(_tenant(), plan.events, now=datetime.now(UTC), seed=seed)
    print(_summary(stream))
    with empty_database("postgresql", folder) as url:
        settings = isolated_settings(
            broker,
            url,
            PODIUM_BATCH_MAX_RECORDS=SMALL_BATCH,
            PODIUM_TOPIC_PARTITIONS=str(plan.partitions),
        )
        members = [
            ServeProcess(
                replace(settings, instance_id=f"podium-{n}"),
                folder / f"consumers-{n}.log",
                role="consumers",
            )
            for n in range(plan.consumers)
        ]
        api = ServeProcess(settings, folder / "api.log", role="api")
        scatter = random.Random(seed) if plan.scattered else None
        async with _database(url, settings.consumer_group) as database:
            try:
                members[0].start()
                await members[0].until_health(INGEST)
                async with Producer(
                    broker.bootstrap_servers, _topics(settings), scatter
                ) as producer:
                    chunk = 100
                    pause = chunk * plan.seconds / plan.events
                    producing = asyncio.create_task(
                        producer.progressively(stream.records, chunk=chunk, pause=pause)
                    )
                    for member in members[1:]:  # each join rebalances the group
                        await _until_folding(
                            database, producer, producing, await database.offsets()
                        )
                        member.start()
                        print(f"started another consumer with {producer.sent} records produced")
                    killed, stopped = rng.sample(members, 2)
                    await _until_folding(database, producer, producing, await database.offsets())
                    # Each fault once the group is at rest: the local broker wedges a group
                    # whose leader goes while it rebalances (every member joins a generation
                    # whose leader is gone, for good; a Kafka elects another).
                    before = await until_members(settings, plan.consumers)
                    await killed.kill()
                    print(f"kill -9 one consumer with {producer.sent} records produced")
                    killed.start()
                    await _until_folding(database, producer, producing, await database.offsets())
                    await _until_replaced(settings, plan.consumers, before, killed)
                    await stopped.until_health(INGEST)  # started: SIGTERM is a clean stop
                    code = await stopped.terminate()
                    print(f"stopped one consumer (exit {code}) with {producer.sent} produced")
                    stopped.start()
                    await producing
                await database.until_consumed(producer.ends, within=180, podium=None)
                api.start()
                await api.serving()
                key = await database.key(stream.tenant)
                await assert_answers(api.channel(), key, stream)
                assert await database.dead_letters() == 0, "a valid stream left dead letters"
                for member in members:  # none failed (their stop is left to `close`)
                    assert member.running, member.tail()
            finally:
                for process in (*members, api):
                    await process.close()


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param(SideBySide(consumers=2, partitions=4, scattered=False), id="two"),
        pytest.param(SideBySide(consumers=3, partitions=6, scattered=True), id="three-scattered"),
    ],
)
async def test_consumers_side_by_side_killed_and_rebalanced_fold_one_tenant_exactly_once(
    broker: LocalBroker, tmp_path: Path, plan: SideBySide
) -> None:
    await _side_by_side(broker, tmp_path, plan)


@pytest.mark.soak
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_soak_twenty_kills_over_a_hundred_thousand_events(
    broker: LocalBroker, tmp_path: Path, kind: str
) -> None:
    await _kill_at_random_points(broker, tmp_path, kind, LONG_KILLS)


# --- 2. two instances in one group, one frozen -------------------------------------------------


@dataclass(frozen=True)
class Freeze:
    events: int
    seconds: float
    """Longer than the Kafka session timeout (aiokafka's default, 10 s, which Podium keeps)
    plus a rebalance, so the group hands the frozen instance's partitions to the other."""
    holding_locks: bool
    """Freeze it inside a batch's transaction, its tenant lock held: for longer than the
    database's idle-in-transaction timeout (60 s), which must end that transaction."""


BETWEEN_BATCHES = Freeze(events=20_000, seconds=25.0, holding_locks=False)
INSIDE_A_TRANSACTION = Freeze(events=60_000, seconds=80.0, holding_locks=True)

LOCK_HOLDERS = text(
    "SELECT a.state FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted "
    "AND a.application_name = :name"
)
"""Sessions holding a tenant's lock: a key of one bigint (`objsubid` 1). Not the relay's lease,
held for as long as the instance relays (two int keys, like the buckets' locks): with it the
instance that won the lease always looked like a holder, and a freeze between batches never
came."""
SESSIONS = text(
    "SELECT state, wait_event, left(query, 50) FROM pg_stat_activity "
    "WHERE application_name = :name ORDER BY state"
)
FROZEN, STEADY = f"podium-frozen-{os.getpid()}", f"podium-steady-{os.getpid()}"
"""The instances' application names, by which their sessions are found: the test process's
own (locks and sessions are the whole cluster's, and both freezes may run at once in two of
the suite's workers)."""


def _named(url: str, name: str) -> str:
    """The database URL with an application name, to find the instance's sessions."""
    return f"{url}&application_name={name}"


async def _lock_holders(database: Database, name: str) -> list[str]:
    """The state of each of the instance's sessions that holds a tenant lock."""

    def states() -> list[str]:
        with database.engine.connect() as c:
            return [str(state) for (state,) in c.execute(LOCK_HOLDERS, {"name": name})]

    return await asyncio.to_thread(states)


async def _sessions(database: Database, name: str) -> list[str]:
    def sessions() -> list[str]:
        with database.engine.connect() as c:
            return [" / ".join(map(str, row)) for row in c.execute(SESSIONS, {"name": name})]

    return await asyncio.to_thread(sessions)


async def _freeze(podium: ServeProcess, database: Database, name: str, holding: bool) -> int:
    """SIGSTOP the instance inside a batch's transaction, its tenant lock held and its session
    waiting on it (idle in transaction), or at a moment it holds no lock, as asked; returns
    the tries it took."""

    def as_asked(holders: list[str]) -> bool:
        if not holding:
            return not holders
        return bool(holders) and all(h.startswith("idle in transaction") for h in holders)

    seen: list[list[str]] = []
    for attempt in range(1, 400):
        if bool(await _lock_holders(database, name)) == holding:
            podium.send(signal.SIGSTOP)
            await asyncio.sleep(0.3)  # a statement sent just before the stop finishes
            seen.append(await _lock_holders(database, name))
            if as_asked(seen[-1]):
                return attempt
            podium.send(signal.SIGCONT)
        await asyncio.sleep(0.01 if holding else 0.05)
    raise AssertionError(
        f"could not freeze the instance at the moment asked for; its lock holders at the "
        f"last stops: {seen[-5:]}, its sessions: {await _sessions(database, name)}"
    )


def _moved_on(since: Offsets, now: Offsets, ends: Offsets) -> bool:
    """Every partition that received records since `since` was folded past it."""
    return all(
        now.get(tp, 0) > since.get(tp, 0) for tp, end in ends.items() if end > since.get(tp, 0)
    )


async def _freeze_one_of_two(broker: LocalBroker, folder: Path, plan: Freeze) -> None:
    seed = _seed()
    stream = mixed_stream(_tenant(), plan.events, now=datetime.now(UTC), seed=seed)
    print(_summary(stream))
    lead, burst = len(stream) // 10, len(stream) * 3 // 10
    with empty_database("postgresql", folder) as url:
        settings = isolated_settings(broker, url, PODIUM_BATCH_MAX_RECORDS=SMALL_BATCH)
        frozen, steady = (
            ServeProcess(
                Settings.from_env({**settings.to_env(), "DATABASE_URL": _named(url, name)}),
                folder / f"{name}.log",
            )
            for name in (FROZEN, STEADY)
        )
        async with _database(url, settings.consumer_group) as database:
            frozen.start()
            steady.start()
            try:
                await frozen.serving()
                await steady.serving()
                async with Producer(broker.bootstrap_servers, _topics(settings)) as producer:
                    await producer.send(stream.records[:lead])
                    await database.until_consumed(producer.ends, within=60, podium=steady)
                    # A burst keeps both busy: the instance is frozen between two of its
                    # batches (the next one fetched) or inside one (its tenant lock held).
                    await producer.send(stream.records[lead:burst])
                    tries = await _freeze(frozen, database, FROZEN, plan.holding_locks)
                    stopped = time.monotonic()
                    at_stop = await database.offsets()
                    print(
                        f"froze {FROZEN} (try {tries}) with sessions "
                        f"{await _sessions(database, FROZEN)}, {_total(at_stop)} of "
                        f"{producer.sent} records folded"
                    )
                    rest = stream.records[burst:]
                    producing = asyncio.create_task(
                        producer.progressively(
                            rest, chunk=100, pause=100 * (plan.seconds + 10) / len(rest)
                        )
                    )
                    taken_over = await _taken_over(database, producer, at_stop, plan.seconds)
                    sessions = await _sessions(database, FROZEN)
                    frozen.send(signal.SIGCONT)
                    print(
                        f"resumed {FROZEN} after {time.monotonic() - stopped:.1f} s, its "
                        f"sessions then {sessions}; {STEADY} had folded every partition "
                        f"{taken_over} s into the freeze"
                    )
                    assert taken_over is not None, (
                        f"no partition of {FROZEN} was folded while it was frozen\n" + steady.tail()
                    )
                    await producing
                caught_up = await database.until_consumed(producer.ends, within=180, podium=steady)
                print(f"caught up {caught_up:.1f} s after the last record was produced")
                for podium, name in ((frozen, FROZEN), (steady, STEADY)):
                    print(
                        f"{name}: {podium.count_in_log('batch discarded')} batch(es) fenced "
                        f"out, {podium.count_in_log('the database failed a batch')} database "
                        "failure(s)"
                    )
                key = await database.key(stream.tenant)
                for podium in (steady, frozen):
                    await podium.serving()
                    await assert_answers(podium.channel(), key, stream)
                assert await database.dead_letters() == 0, "a valid stream left dead letters"
                assert await frozen.terminate() == 0, frozen.tail()
                assert await steady.terminate() == 0, steady.tail()
            finally:
                await frozen.close()
                await steady.close()


async def _taken_over(
    database: Database, producer: Producer, at_stop: Offsets, seconds: float
) -> float | None:
    """Watch for `seconds`: when had every partition been folded past where it stood at the
    freeze (the frozen instance's ones by the other instance)?"""
    started, taken_over = time.monotonic(), None
    while (elapsed := time.monotonic() - started) < seconds:
        if taken_over is None and _moved_on(at_stop, await database.offsets(), producer.ends):
            taken_over = round(elapsed, 1)
        await asyncio.sleep(0.2)
    return taken_over


@pytest.mark.soak
@pytest.mark.timeout(600)
async def test_soak_an_instance_frozen_past_its_session_timeout_is_fenced_out(
    broker: LocalBroker, tmp_path: Path
) -> None:
    await _freeze_one_of_two(broker, tmp_path, BETWEEN_BATCHES)


@pytest.mark.soak
@pytest.mark.timeout(900)
async def test_soak_an_instance_frozen_inside_a_transaction_loses_its_locks_and_its_batch(
    broker: LocalBroker, tmp_path: Path
) -> None:
    await _freeze_one_of_two(broker, tmp_path, INSIDE_A_TRANSACTION)


# --- 3. duplicates and a full replay -----------------------------------------------------------


async def _answer_bytes(channel: grpc.aio.Channel, key: str, stream: Stream) -> list[bytes]:
    ranking = await ranking_answer(channel, key)
    answers = [ranking.SerializeToString(deterministic=True)]
    stub = tasks_pb2_grpc.TaskServiceStub(channel)
    for task_id in stream.task_ids:
        task = await stub.GetTask(
            tasks_pb2.GetTaskRequest(task_id=task_id), metadata=(("x-api-key", key),), timeout=10
        )
        answers.append(task.SerializeToString(deterministic=True))
    return answers


async def _replay_from_the_start(broker: LocalBroker, folder: Path, kind: str, events: int) -> None:
    seed = _seed()
    stream = mixed_stream(_tenant(), events, now=datetime.now(UTC), seed=seed)
    print(_summary(stream))
    with empty_database(kind, folder) as url:
        # Every answer of a big stream is asked for, faster than a key's rate limit allows:
        # the limiter is not what this test is about (tests/unit/test_limits.py).
        settings = isolated_settings(
            broker, url, PODIUM_BATCH_MAX_RECORDS=SMALL_BATCH, PODIUM_RATE_LIMIT_PER_KEY="0"
        )
        podium = ServeProcess(settings, folder / "serve.log")
        async with _database(url, settings.consumer_group) as database:
            podium.start()
            try:
                await podium.serving()
                async with Producer(broker.bootstrap_servers, _topics(settings)) as producer:
                    await producer.send(stream.records)
                folded = await database.until_consumed(producer.ends, within=180, podium=podium)
                print(f"folded {len(stream)} records in {folded:.1f} s")
                key = await database.key(stream.tenant)
                await assert_answers(podium.channel(), key, stream)
                before = await _answer_bytes(podium.channel(), key, stream)
                ignored_before = await database.ignored_events()

                for family in FAMILIES:
                    reset = ["offsets", "reset", "--topic", family, "--to", "earliest"]
                    assert await asyncio.to_thread(cli.main, reset, settings.to_env()) == 0
                replayed = await database.until_consumed(producer.ends, within=180, podium=podium)
                print(f"replayed the whole stream in {replayed:.1f} s after the reset")

                ignored = await database.ignored_events() - ignored_before
                assert ignored > 0, "nothing was folded again: the replay did not happen"
                await assert_answers(podium.channel(), key, stream)
                assert await _answer_bytes(podium.channel(), key, stream) == before
                # An instance with nothing cached answers from the state alone.
                fresh = ServeProcess(settings, folder / "fresh.log", role="api").start()
                try:
                    await fresh.serving()
                    assert await _answer_bytes(fresh.channel(), key, stream) == before
                finally:
                    await fresh.close()
                print(f"the replay folded every record again ({ignored} ignored as seen)")
                assert await database.dead_letters() == 0, "a valid stream left dead letters"
                assert await podium.terminate() == 0, podium.tail()
            finally:
                await podium.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_resent_events_and_a_replay_from_the_start_change_no_answer(
    broker: LocalBroker, tmp_path: Path, kind: str
) -> None:
    await _replay_from_the_start(broker, tmp_path, kind, 4_000)


@pytest.mark.soak
@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_soak_a_replay_of_a_hundred_thousand_events_changes_no_answer(
    broker: LocalBroker, tmp_path: Path, kind: str
) -> None:
    await _replay_from_the_start(broker, tmp_path, kind, 100_000)


# --- 4. the database out of reach --------------------------------------------------------------


@contextmanager
def _proxied_postgresql(folder: Path) -> Iterator[tuple[str, str, ThreadedTcpProxy]]:
    """A fresh schema; its URL, the same URL through a fault proxy, and the proxy."""
    with empty_database("postgresql", folder) as url, ThreadedTcpProxy("127.0.0.1", 5432) as proxy:
        port = make_url(url).port or 5432
        assert port == 5432
        proxied = url.replace(f":{port}/", f":{proxy.port}/", 1)
        yield url, proxied, proxy


async def _watch_health(
    podium: ServeProcess, service: str, seconds: float
) -> list[tuple[float, str]]:
    """The service's health over `seconds`: each change, with when it happened."""
    started, changes, last = time.monotonic(), [], -1
    while (elapsed := time.monotonic() - started) < seconds:
        status = await podium.health(service, seconds=1.0)
        if status != last:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            changes.append((round(elapsed, 1), name))
            last = status
        await asyncio.sleep(0.2)
    return changes


async def _database_outage(
    broker: LocalBroker, folder: Path, cut: Cut, seconds: float, events: int
) -> None:
    seed = _seed()
    stream = mixed_stream(_tenant(), events, now=datetime.now(UTC), seed=seed)
    print(_summary(stream))
    with _proxied_postgresql(folder) as (url, proxied_url, proxy):
        settings = isolated_settings(broker, proxied_url, PODIUM_BATCH_MAX_RECORDS=SMALL_BATCH)
        podium = ServeProcess(settings, folder / "serve.log")
        async with _database(url, settings.consumer_group) as database:
            podium.start()
            try:
                await podium.serving()
                async with Producer(broker.bootstrap_servers, _topics(settings)) as producer:
                    chunk = 100
                    pause = chunk * (seconds + 5) / events
                    producing = asyncio.create_task(
                        producer.progressively(stream.records, chunk=chunk, pause=pause)
                    )
                    await database.until_moved({}, within=30)
                    proxy.cut(cut)
                    at_cut = producer.sent
                    during = await _watch_health(podium, INGEST, seconds)
                    proxy.restore()
                    print(f"database cut ({cut}) for {seconds:.0f} s at record {at_cut}: {during}")
                    recovered = await podium.until_health(INGEST, SERVING, within=120)
                    print(f"{INGEST} SERVING {recovered:.1f} s after the restore")
                    await producing
                # Refused: the first call fails. Blackholed: nothing fails, the wait is reported.
                if cut == "refuse" or seconds > SILENT_DATABASE_SECONDS + 10:
                    assert any(status == "NOT_SERVING" for _, status in during), during
                await _finish(podium, database, producer, stream)
            finally:
                await podium.close()


async def test_the_database_refusing_connections_for_ten_seconds_loses_nothing(
    broker: LocalBroker, tmp_path: Path
) -> None:
    await _database_outage(broker, tmp_path, "refuse", 10.0, 6_000)


@pytest.mark.soak
@pytest.mark.timeout(600)
@pytest.mark.parametrize("cut", ["refuse", "blackhole"])
async def test_soak_the_database_out_of_reach_for_a_minute_loses_nothing(
    broker: LocalBroker, tmp_path: Path, cut: Cut
) -> None:
    await _database_outage(broker, tmp_path, cut, 60.0, 60_000)


# --- 5. the broker out of reach ----------------------------------------------------------------


async def _broker_outage(
    proxied: ProxiedBroker, folder: Path, seconds: float, events: int, cuts: int
) -> None:
    """Produce a part, let Podium fold some of the next one, cut the broker off; `cuts`
    times, then the last part once it is back."""
    seed = _seed()
    stream = mixed_stream(_tenant(), events, now=datetime.now(UTC), seed=seed)
    print(_summary(stream))
    bounds = [len(stream) * n // (cuts + 2) for n in range(cuts + 3)]
    parts = [stream.records[a:b] for a, b in itertools.pairwise(bounds)]
    with empty_database("sqlite", folder) as url:
        settings = isolated_settings(
            proxied.broker,
            url,
            KAFKA_BOOTSTRAP_SERVERS=proxied.bootstrap_servers,
            PODIUM_BATCH_MAX_RECORDS=SMALL_BATCH,
        )
        podium = ServeProcess(settings, folder / "serve.log")
        async with _database(url, settings.consumer_group) as database:
            podium.start()
            try:
                await podium.serving()
                async with Producer(proxied.bootstrap_servers, _topics(settings)) as producer:
                    await producer.send(parts[0])
                    await database.until_consumed(producer.ends, within=60, podium=podium)
                    key = await database.key(stream.tenant)
                    for part in parts[1:-1]:
                        at_send = await database.offsets()
                        await producer.send(part)
                        await database.until_moved(at_send, within=30)
                        proxied.proxy.cut("refuse")
                        answered = await _answers_during(podium, key, seconds)
                        stored = await database.offsets()
                        # The state stands still: the answers are those of what was folded.
                        folded = producer.folded_part(stream, stored)
                        await assert_answers(podium.channel(), key, folded, within=2)
                        proxied.proxy.restore()
                        print(
                            f"broker cut for {seconds:.0f} s with {_total(stored)} of "
                            f"{producer.sent} records folded; {answered} rankings answered "
                            "meanwhile, each the recomputation of what was folded"
                        )
                        resumed = await database.until_consumed(
                            producer.ends, within=120, podium=podium
                        )
                        print(f"caught up {resumed:.1f} s after the restore, by itself")
                    await producer.send(parts[-1])
                await _finish(podium, database, producer, stream)
            finally:
                await podium.close()


async def _answers_during(podium: ServeProcess, key: str, seconds: float) -> int:
    """Ask for the ranking about once a second for `seconds`; every call must answer."""
    started, answered = time.monotonic(), 0
    while time.monotonic() - started < seconds:
        await ranking_answer(podium.channel(), key, seconds=5)
        answered += 1
        await asyncio.sleep(1.0)
    return answered


async def test_the_broker_out_of_reach_for_thirty_seconds_loses_nothing(
    proxied_broker: ProxiedBroker, tmp_path: Path
) -> None:
    await _broker_outage(proxied_broker, tmp_path, 30.0, 6_000, cuts=1)


@pytest.mark.soak
@pytest.mark.timeout(600)
async def test_soak_the_broker_out_of_reach_twice_loses_nothing(
    proxied_broker: ProxiedBroker, tmp_path: Path
) -> None:
    await _broker_outage(proxied_broker, tmp_path, 30.0, 60_000, cuts=2)
