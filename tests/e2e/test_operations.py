"""docs/operations.md, "Rebuild the state from the topics", followed literally: a live
deployment (`podium serve`) folds a world of every family; its answers to every method are
read; then the section's commands run as an operator runs them (their own processes, the
settings in the environment), beside the live deployment: `podium migrate`, the keys copied,
`podium serve` started in a consumer group of its own and waited for with grpcurl until it is
SERVING. The rebuilt instance, asked the same with the same key, answers the same bytes. Both
databases.

Step 5 of the section (comparing answers with grpcurl) is what the test does for every method,
through gRPC. The answers that depend on the time of the call are asked so that they cannot
move between the two reads a minute apart: past months by number, a challenge ended more than
a month ago (its progress), one running for weeks to come (its ranking), a path session open
for a year whose steps have no due dates, tasks; the current month's ranking moves only if the
month turns or the previous month freezes between the two reads.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message
from podium.events.v1 import catalog_pb2, enrollments_pb2, tasks_pb2, trips_pb2
from podium.v1 import (
    challenges_pb2,
    common_pb2,
    driver_ranking_pb2,
    paths_pb2,
)
from podium.v1 import tasks_pb2 as task_answers_pb2

from consumers.local_broker import LocalBroker, free_port
from service.config import Settings
from service.domain.ranking import Month
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.processes import ServeProcess
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e]

RUNBOOK = Path(__file__).parents[2] / "docs" / "operations.md"
BIN = Path(sys.executable).parent
TENANT = "ops"
DRIVERS = 12
SAFETY = common_pb2.RANKING_TYPE_SAFETY
RANKING = "/podium.v1.DriverRankingService/"
CHALLENGES = "/podium.v1.ChallengeService/"
ENVIRONMENT = {"OLD_DATABASE_URL", "DATABASE_URL", "PODIUM_CONSUMER_GROUP", "PODIUM_GRPC_ADDRESS"}
"""What the section's first step exports: the test gives each its value for this machine."""


def rebuild_blocks() -> list[str]:
    """The shell blocks of the rebuild section, in order, unindented."""
    text = RUNBOOK.read_text()
    section = text[text.index("## Rebuild the state from the topics") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"^( *)```sh\n(.*?)^\1```", section, re.MULTILINE | re.DOTALL)
    return ["\n".join(line[len(indent) :] for line in body.splitlines()) for indent, body in blocks]


def steps_for(kind: str) -> tuple[list[str], list[str]]:
    """The exported names, then the commands to run for `kind`: migrating, copying the keys
    with the database's own tool, serving and waiting for SERVING."""
    env, migrate, postgresql_keys, sqlite_keys, serve, _compare = rebuild_blocks()
    exported = re.findall(r"^export (\w+)=", env, re.MULTILINE)
    keys = postgresql_keys if kind == "postgresql" else sqlite_keys
    assert "psql" in postgresql_keys
    assert "sqlite3" in sqlite_keys
    assert "podium serve &" in serve
    return exported, [*_lines(migrate), *_lines(keys), *_lines(serve)]


def _lines(block: str) -> Iterator[str]:
    for line in block.splitlines():
        command = line.split("  #", 1)[0].strip()
        if command and not command.startswith("#"):
            yield command


@asynccontextmanager
async def operator(
    commands: Sequence[str], env: dict[str, str], folder: Path
) -> AsyncIterator[None]:
    """Run the commands as a shell would, one after the other in `folder`; those ending in `&`
    stay in the background until the block ends."""
    background: list[asyncio.subprocess.Process] = []
    log = (folder / "operator.log").open("ab")
    try:
        for command in commands:
            if command.endswith("&"):
                background.append(
                    await asyncio.create_subprocess_exec(
                        *shlex.split(command[:-1]), env=env, cwd=folder, stdout=log, stderr=log
                    )
                )
                continue
            done = await asyncio.to_thread(
                subprocess.run,
                ["bash", "-c", command],
                env=env,
                cwd=folder,
                capture_output=True,
                timeout=300,
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
        yield
    finally:
        for process in background:
            process.terminate()
            await asyncio.wait_for(process.wait(), 60)
        log.close()


# --- the world ------------------------------------------------------------------------------


Sent = tuple[str, bytes, Message, datetime]
"""(family, key, envelope, the record's timestamp: when the event happened)."""


def _stamped(envelope: Message, event_id: str, at: datetime) -> Message:
    envelope.event_id = event_id  # type: ignore[attr-defined]
    envelope.tenant_id = TENANT  # type: ignore[attr-defined]
    envelope.occurred_at.FromDatetime(at)  # type: ignore[attr-defined]
    return envelope


def world(now: datetime) -> Iterator[Sent]:
    """Drivers of two groups with trips in three months, a challenge running for weeks to come
    and one that ended more than a month ago, tasks, a learner who completed a path session."""
    this = Month.of(now)
    past = this.previous().previous()
    joined = past.starts_at - timedelta(days=10)
    for n in range(DRIVERS):
        profile = catalog_pb2.CatalogEvent()
        profile.user_upserted.user_id = f"d{n}"
        profile.user_upserted.email = f"d{n}@example.com"
        profile.user_upserted.firstname = f"Driver{n}"
        profile.user_upserted.groups.append("north" if n < DRIVERS // 2 else "south")
        yield "catalog", f"d{n}".encode(), _stamped(profile, f"profile-{n}", joined), joined
    for month in (past, this.previous(), this):
        for n in range(DRIVERS):
            for t in range(6):
                span = (min(now, month.next().starts_at) - month.starts_at) * 0.9
                ended = month.starts_at + span * (t + 1) / 7
                trip = trips_pb2.TripEvent()
                trip.trip_completed.trip_id = f"trip-{month.year}-{month.number}-{n}-{t}"
                trip.trip_completed.user_id = f"d{n}"
                trip.trip_completed.distance_km = 4 + (n * 7 + t) % 5
                trip.trip_completed.scores.safety = (n * 13 + t * 7) % 100 / 10
                trip.trip_completed.started_at.FromDatetime(ended - timedelta(minutes=20))
                trip.trip_completed.ended_at.FromDatetime(ended)
                event_id = f"e-{trip.trip_completed.trip_id}"
                yield "trips", f"d{n}".encode(), _stamped(trip, event_id, ended), ended
    ended_start = past.starts_at + timedelta(days=10)
    challenges: tuple[tuple[str, datetime, datetime, list[str]], ...] = (
        ("running", now - timedelta(days=10), now + timedelta(days=20), ["north", "south"]),
        ("ended", ended_start, ended_start + timedelta(days=15), []),
    )
    for challenge_id, start, end, groups in challenges:
        published = catalog_pb2.CatalogEvent()
        challenge = published.challenge_published
        challenge.challenge_id = challenge_id
        challenge.title = challenge_id
        challenge.theme = common_pb2.CHALLENGE_THEME_SAFETY
        challenge.groups.extend(groups)
        challenge.pre_challenge_min_trips = 1
        challenge.start_at.FromDatetime(start)
        challenge.end_at.FromDatetime(end)
        at = start - timedelta(days=2)
        yield "catalog", challenge_id.encode(), _stamped(published, f"pub-{challenge_id}", at), at
        for n in range(DRIVERS):
            registered = enrollments_pb2.EnrollmentEvent()
            registered.challenge_registered.challenge_id = challenge_id
            registered.challenge_registered.user_id = f"d{n}"
            registered.challenge_registered.registered_at.FromDatetime(start - timedelta(days=1))
            at = start - timedelta(days=1)
            event_id = f"reg-{challenge_id}-{n}"
            yield "enrollments", f"d{n}".encode(), _stamped(registered, event_id, at), at
    yield from _tasks(now - timedelta(hours=2))
    yield from _learner(now - timedelta(days=30))


def _created(task_id: str, at: datetime) -> tasks_pb2.TaskEvent:
    created = tasks_pb2.TaskEvent()
    created.task_created.task_id = task_id
    created.task_created.type = common_pb2.TASK_TYPE_PUSH_FAILED_TRIPS
    created.task_created.nb_items = 10
    created.task_created.created_at.FromDatetime(at)
    return created


def _tasks(at: datetime) -> Iterator[Sent]:
    started = tasks_pb2.TaskEvent()
    started.task_started.task_id = "task-1"
    started.task_started.started_at.FromDatetime(at + timedelta(minutes=1))
    progressed = tasks_pb2.TaskEvent()
    progressed.task_progressed.task_id = "task-1"
    progressed.task_progressed.nb_remaining_items = 4
    done = tasks_pb2.TaskEvent()
    done.task_completed.task_id = "task-2"
    done.task_completed.completed_at.FromDatetime(at + timedelta(minutes=3))
    for n, (task_id, envelope) in enumerate(
        (
            ("task-1", _created("task-1", at)),
            ("task-1", started),
            ("task-1", progressed),
            ("task-2", _created("task-2", at)),
            ("task-2", done),
        )
    ):
        moment = at + timedelta(minutes=n)
        yield "tasks", task_id.encode(), _stamped(envelope, f"task-event-{n}", moment), moment


def _learner(opened: datetime) -> Iterator[Sent]:
    published = catalog_pb2.CatalogEvent()
    session = published.path_session_published
    session.session_id, session.path_id, session.name = "session-1", "path", "Safety path"
    session.starts_at.FromDatetime(opened)
    session.ends_at.FromDatetime(opened + timedelta(days=400))
    session.steps.add(step_id="step-1", mandatory=True)
    session.steps.add(step_id="step-2", mandatory=False)
    yield "catalog", b"session-1", _stamped(published, "session-1", opened), opened
    enrolled = enrollments_pb2.EnrollmentEvent()
    enrolled.path_enrolled.session_id, enrolled.path_enrolled.user_id = "session-1", "d0"
    enrolled.path_enrolled.enrolled_at.FromDatetime(opened)
    yield "enrollments", b"d0", _stamped(enrolled, "enrolled", opened), opened
    for n, step in enumerate(("step-1", "step-2")):
        at = opened + timedelta(days=n + 1)
        attempt = enrollments_pb2.EnrollmentEvent()
        attempted = attempt.step_attempted
        attempted.session_id, attempted.user_id, attempted.step_id = "session-1", "d0", step
        attempted.attempt_id = f"attempt-{n}"
        attempted.started_at.FromDatetime(at - timedelta(minutes=10))
        attempted.ended_at.FromDatetime(at)
        attempted.time_spent_ms = 600_000
        attempted.score = 70 + n * 10
        yield "enrollments", b"d0", _stamped(attempt, f"attempt-{n}", at), at


async def send(settings: Settings, sent: Iterator[Sent]) -> int:
    """Each record with its event's time as its timestamp, as a backfill sends them."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    count = 0
    try:
        for family, key, envelope, at in sent:
            await producer.send(
                settings.topic(family),
                envelope.SerializeToString(),
                key=key,
                timestamp_ms=int(at.timestamp() * 1000),
            )
            count += 1
        await producer.flush()
    finally:
        await producer.stop()
    return count


# --- the answers ----------------------------------------------------------------------------


def questions(now: datetime) -> list[tuple[str, str, Message]]:
    """(what, method, request) for every method."""
    past = Month.of(now).previous().previous()
    month = common_pb2.YearMonth(year=past.year, month_number=past.number)
    ranking = driver_ranking_pb2
    return [
        ("ranking", RANKING + "GetDriverRanking", ranking.GetDriverRankingRequest(type=SAFETY)),
        (
            "ranking north",
            RANKING + "GetDriverRanking",
            ranking.GetDriverRankingRequest(type=SAFETY, group_label="north"),
        ),
        (
            "past month",
            RANKING + "ListMonthRanking",
            ranking.ListMonthRankingRequest(type=SAFETY, month=month, page_size=5),
        ),
        (
            "past month south",
            RANKING + "ListMonthRanking",
            ranking.ListMonthRankingRequest(type=SAFETY, group_label="south", month=month),
        ),
        (
            "a driver in the past month",
            RANKING + "GetDriverRank",
            ranking.GetDriverRankRequest(type=SAFETY, user_id="d3", neighbors=2, month=month),
        ),
        (
            "running challenge",
            CHALLENGES + "GetChallengeRanking",
            challenges_pb2.GetChallengeRankingRequest(challenge_id="running"),
        ),
        (
            "running challenge north",
            CHALLENGES + "GetChallengeRanking",
            challenges_pb2.GetChallengeRankingRequest(challenge_id="running", group="north"),
        ),
        (
            "a user in the running challenge",
            CHALLENGES + "GetChallengeRank",
            challenges_pb2.GetChallengeRankRequest(
                challenge_id="running", user_id="d2", neighbors=2
            ),
        ),
        (
            "ended challenge's progress",
            CHALLENGES + "GetChallengeProgress",
            challenges_pb2.GetChallengeProgressRequest(challenge_id="ended"),
        ),
        (
            "ended challenge's progress south",
            CHALLENGES + "GetChallengeProgress",
            challenges_pb2.GetChallengeProgressRequest(challenge_id="ended", group="south"),
        ),
        (
            "task in progress",
            "/podium.v1.TaskService/GetTask",
            task_answers_pb2.GetTaskRequest(task_id="task-1"),
        ),
        (
            "task completed",
            "/podium.v1.TaskService/GetTask",
            task_answers_pb2.GetTaskRequest(task_id="task-2"),
        ),
        (
            "learner by email",
            "/podium.v1.PathService/GetPathSessionStats",
            paths_pb2.GetPathSessionStatsRequest(
                session_id="session-1", user_email_or_id="d0@example.com"
            ),
        ),
    ]


async def answers(address: str, key: str, now: datetime) -> dict[str, bytes]:
    found = {}
    async with grpc.aio.insecure_channel(address) as channel:
        for what, method, request in questions(now):
            call: Any = channel.unary_unary(method)
            found[what] = await call(request.SerializeToString(), metadata=(("x-api-key", key),))
    return found


def run(env: dict[str, str], *command: str, folder: Path) -> str:
    done = subprocess.run(command, env=env, cwd=folder, capture_output=True, timeout=120)
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    return done.stdout.decode()


async def until_folded(env: dict[str, str], folder: Path, records: int) -> None:
    """Until `podium offsets show` says every partition was folded to its end, and the
    partitions hold the records sent."""

    async def offsets() -> list[dict[str, Any]]:
        output = await asyncio.to_thread(
            run, env, str(BIN / "podium"), "offsets", "show", "--json", folder=folder
        )
        return [json.loads(line) for line in output.splitlines()]

    await eventually(
        offsets,
        lambda rows: sum(r["logEnd"] for r in rows) >= records and all(r["lag"] == 0 for r in rows),
        within=300,
        every=0.5,
        what="every partition folded to its end",
    )


@contextmanager
def _database(kind: str, folder: Path, name: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / name}"
        return
    with empty_database("postgresql", folder) as url:
        yield url


def _operator_environment(settings: Settings) -> dict[str, str]:
    """What an operator's shell holds: the deployment's settings, Podium and grpcurl."""
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, **settings.to_env(), "PATH": path}


async def _live_answers(
    deployment: ServeProcess, env: dict[str, str], folder: Path, now: datetime
) -> tuple[str, dict[str, bytes]]:
    """The world sent and folded by the live deployment; a key made for it, and its answers."""
    records = await send(deployment.settings, world(now))
    scopes = "ranking,challenges,tasks,paths"
    podium = str(BIN / "podium")
    key = run(env, podium, "keys", "create", "--tenant", TENANT, "--scopes", scopes, folder=folder)
    await until_folded(env, folder, records)
    return key.strip(), await answers(deployment.address, key.strip(), now)


async def _rebuilt_answers(
    kind: str,
    env: dict[str, str],
    databases: tuple[str, str],
    folder: Path,
    key: str,
    now: datetime,
) -> dict[str, bytes]:
    """The rebuild section's commands, with its settings given values for this machine; then
    the rebuilt instance's answers."""
    exported, commands = steps_for(kind)
    assert set(exported) == ENVIRONMENT
    old, rebuilt = databases
    address = f"127.0.0.1:{free_port()}"
    rebuild_env = {
        **env,
        "OLD_DATABASE_URL": old,
        "DATABASE_URL": rebuilt,
        "PODIUM_CONSUMER_GROUP": f"rebuilt-{uuid.uuid4().hex[:6]}",
        "PODIUM_GRPC_ADDRESS": address,
    }
    async with operator(commands, rebuild_env, folder):
        return await answers(address, key, now)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_the_runbook_rebuild_answers_every_method_byte_for_byte_as_the_live_state(
    broker: LocalBroker, tmp_path: Path, kind: str
) -> None:
    now = datetime.now(UTC)
    with (
        _database(kind, tmp_path, "podium.db") as live_url,
        _database(kind, tmp_path, "podium-rebuilt.db") as rebuilt_url,
    ):
        live = isolated_settings(broker, live_url)
        async with ServeProcess(live, tmp_path / "live.log") as deployment:
            await deployment.serving()
            env = _operator_environment(deployment.settings)
            key, before = await _live_answers(deployment, env, tmp_path, now)
            databases = (live_url, rebuilt_url)
            after = await _rebuilt_answers(kind, env, databases, tmp_path, key, now)

    assert set(before) == {what for what, _, _ in questions(now)}
    assert all(before.values()), before
    for what in before:
        assert after[what] == before[what], what
