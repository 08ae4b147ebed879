"""`podium demo`: the demo world of one tenant (`service.demo.world`) sent through Kafka as
producers send events, folded by the running Podium, and grpcurl commands that answer with it.

1. Wait until the Podium at PODIUM_GRPC_ADDRESS reports SERVING (a clear error if none answers).
2. Make or reuse the tenant's demo key (`service.demo.key_file`).
3. Decide the world's `now`: if the tenant already has the demo's world (its anchor task is
   found), the `now` it was made for, so the very same events are sent again and change
   nothing; else the current time. A world for a new `now` under the same ids would re-send
   every trip with other times, and a trip is immutable: they would be dead-lettered.
4. Send it (`consumers.publish`: each record checked with the consumer's decoder, keyed as
   docs/rules.md#events says, the binary envelope, its timestamp the moment the event happened).
5. Wait until the offsets Podium stored with its state reach the end of what was sent, then
   until the ranking shows it (an answer may be a second behind the state).
6. Print the commands, each ready to run, with the key and ids that exist.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from podium.v1 import (
    driver_ranking_pb2,
    driver_ranking_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)

from consumers.publish import from_envelope, publish
from service.bootstrap import Storage, storage
from service.clock import Clock
from service.config import Settings
from service.demo.key_file import demo_key, key_file
from service.demo.world import World, demo_world
from service.domain.events import TaskStatus
from service.domain.ranking import Month

T = TypeVar("T")

ANSWER_SECONDS = 10.0
"""How long to wait for any answer from PODIUM_GRPC_ADDRESS before saying none came."""
POLL_SECONDS = 0.2
SHOWN_GROUP = "north"


class DemoFailed(RuntimeError):
    """The demo could not be made; the message says why and what to do."""


async def run_demo(
    settings: Settings,
    tenant: str,
    within: float,
    clock: Clock,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> None:
    def say(text: str) -> None:
        print(f"podium demo: {text}", file=err, flush=True)

    if settings.tls_cert_file is not None:
        raise DemoFailed(
            "podium demo speaks plaintext gRPC, as `make run` serves it: "
            "PODIUM_TLS_CERT_FILE is set"
        )
    address = settings.grpc_address
    async with grpc.aio.insecure_channel(address) as channel:
        await _until_serving(channel, address, within, say)
        with storage(settings.database_url) as store:
            now = clock.now().replace(microsecond=0)
            path = key_file(settings.database_url)
            key, made = demo_key(store.keys(), path, tenant, now)
            which = "made a key" if made else "reusing the key"
            say(f"{which} of tenant {tenant!r}, kept in {path}")
            world = await _world(channel, key, tenant, now, settings)
            if Month.of(world.now) != Month.of(now):
                say(
                    f"tenant {tenant!r} has the demo world made on {world.now:%Y-%m-%d}; it is "
                    f"sent again as it was. For a world dated today: --tenant {tenant}-2"
                )
            records = [from_envelope(e, int(at.timestamp() * 1000)) for e, at in world.sent]
            started = asyncio.get_running_loop().time()
            ends = await publish(settings, records)
            say(f"{len(records):,} events sent to {settings.kafka_servers}")
            await _until_folded(store, settings, ends, within)
            await _until_ranked(channel, key, world, now, within)
            seconds = asyncio.get_running_loop().time() - started
            say(f"folded by Podium and answered {seconds:.1f} s after sending")
    print(_script(world, address, key, path), file=out)


async def _until(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    within: float,
    failure: Callable[[T], str],
) -> T:
    """Probe until `done`; after `within` seconds, fail saying `failure(last value)`."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if done(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise DemoFailed(failure(value))
        await asyncio.sleep(POLL_SECONDS)


async def _until_serving(
    channel: grpc.aio.Channel, address: str, within: float, say: Callable[[str], None]
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING

    async def status() -> int | None:
        try:
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.aio.AioRpcError:
            return None
        return int(answer.status)

    first = await _until(
        status,
        lambda s: s is not None,
        min(ANSWER_SECONDS, within),
        lambda _: (
            f"no Podium answers on {address}: start one with `make run` (in another "
            "terminal), or set PODIUM_GRPC_ADDRESS to where it serves"
        ),
    )
    if first != serving:
        say(f"Podium on {address} is catching up; waiting until it serves")
        await _until(
            status,
            lambda s: s == serving,
            within,
            lambda _: f"Podium on {address} did not report SERVING within {within:.0f} s",
        )


async def _world(
    channel: grpc.aio.Channel, key: str, tenant: str, now: datetime, settings: Settings
) -> World:
    """The world already folded for this tenant (found by its anchor task), else a new one."""
    fresh = demo_world(tenant, now)
    try:
        task = await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(
            tasks_pb2.GetTaskRequest(task_id=fresh.anchor_task),
            metadata=(("x-api-key", key),),
            timeout=ANSWER_SECONDS,
        )
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return fresh
        if error.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise DemoFailed(
                f"the Podium on {settings.grpc_address} refuses the key made in "
                f"{settings.database_url}: does it use this DATABASE_URL?"
            ) from None
        raise DemoFailed(
            f"the Podium on {settings.grpc_address} answered {error.details()}"
        ) from None
    return demo_world(tenant, task.createdAt.ToDatetime(UTC))


async def _until_folded(
    store: Storage, settings: Settings, ends: dict[tuple[str, int], int], within: float
) -> None:
    """Until the offsets stored with the state reach the end of every partition written."""
    group = settings.consumer_group

    def stored() -> dict[tuple[str, int], int]:
        with store.read() as read:
            return read.stored_offsets(group)

    def behind(offsets: dict[tuple[str, int], int]) -> list[tuple[str, int]]:
        return [where for where, end in ends.items() if offsets.get(where, 0) < end]

    await _until(
        lambda: asyncio.to_thread(stored),
        lambda offsets: not behind(offsets),
        within,
        lambda offsets: (
            f"Podium has not folded the demo's events {within:.0f} s after they "
            f"were sent ({len(behind(offsets))} of {len(ends)} partitions behind): does the Podium "
            f"on {settings.grpc_address} read {settings.kafka_servers} as consumer group {group!r} "
            f"into {settings.database_url}?"
        ),
    )


async def _until_ranked(
    channel: grpc.aio.Channel, key: str, world: World, now: datetime, within: float
) -> None:
    """Until the shown group's ranking of this month counts every trip the world has there."""
    month = Month.of(now)
    members = world.members[SHOWN_GROUP]
    expected = world.trips_ended(members, month.starts_at, month.next().starts_at)
    stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel)
    request = driver_ranking_pb2.GetDriverRankingRequest(
        type="RANKING_TYPE_SAFETY", group_label=SHOWN_GROUP
    )

    async def trips() -> int:
        answer = await stub.GetDriverRanking(request, metadata=(("x-api-key", key),), timeout=10)
        current = answer.currentMonth
        return sum(d.tripNumber for d in current.driverRanked) + sum(
            d.tripNumber for d in current.driverNotRanked
        )

    await _until(
        trips,
        lambda counted: counted == expected,
        within,
        lambda counted: (
            f"the {SHOWN_GROUP} ranking shows {counted} of the demo's {expected} "
            f"trips this month after {within:.0f} s"
        ),
    )


def _script(world: World, address: str, key: str, path: Path) -> str:
    """What the demo prints: comments, and commands that answer as written."""
    grpcurl = _grpcurl()
    auth = shlex.quote(f"x-api-key: {key}")

    def call(method: str, request: dict[str, object]) -> str:
        data = shlex.quote(json.dumps(request))
        return f"{grpcurl} -plaintext -H {auth} -d {data} {address} {method}"

    ranking = "podium.v1.DriverRankingService/GetDriverRanking"
    months = "podium.v1.DriverRankingService/ListMonthRanking"
    last_month = Month.of(world.now).previous()
    shown_driver = world.members[SHOWN_GROUP][0]
    shown_user = world.registered[world.running_challenge][0]
    task = "podium.v1.TaskService/GetTask"
    stats = "podium.v1.PathService/GetPathSessionStats"
    lines = [
        f"# Tenant {world.tenant!r}: {world.drivers} drivers in {len(world.groups)} groups "
        f"({', '.join(world.groups)}), 3 challenges, 2 path sessions, 20 tasks,",
        f"# dated around {world.now:%Y-%m-%d %H:%M} UTC. Its key (every scope), kept in {path}:",
        f"#   KEY={key}",
        "",
        f"# The safety ranking of the {SHOWN_GROUP} group, this month and last:",
        call(ranking, {"type": "RANKING_TYPE_SAFETY", "group_label": SHOWN_GROUP}),
        "# The same a page of 5 at a time (pass nextPageToken as page_token for the next):",
        call(months, {"type": "RANKING_TYPE_SAFETY", "group_label": SHOWN_GROUP, "page_size": 5}),
        f"# Last month of the {SHOWN_GROUP} group (frozen once the late-event grace is over):",
        call(
            months,
            {
                "type": "RANKING_TYPE_SAFETY",
                "group_label": SHOWN_GROUP,
                "month": {"year": last_month.year, "month_number": last_month.number},
            },
        ),
        f"# One driver of the {SHOWN_GROUP} group with two ranked drivers above and below (or"
        " what they lack):",
        call(
            "podium.v1.DriverRankingService/GetDriverRank",
            {
                "type": "RANKING_TYPE_SAFETY",
                "group_label": SHOWN_GROUP,
                "user_id": shown_driver,
                "neighbors": 2,
            },
        ),
        "# The eco-driving ranking of the east group:",
        call(ranking, {"type": "RANKING_TYPE_ECO_DRIVING", "group_label": "east"}),
        "# A safety challenge running for 20 days more, its live ranking:",
        call(
            "podium.v1.ChallengeService/GetChallengeRanking",
            {"challenge_id": world.running_challenge},
        ),
        "# One registered user's place in it, with their neighbours:",
        call(
            "podium.v1.ChallengeService/GetChallengeRank",
            {"challenge_id": world.running_challenge, "user_id": shown_user, "neighbors": 2},
        ),
        "# An eco-driving challenge that ended last month, its users' progress:",
        call(
            "podium.v1.ChallengeService/GetChallengeProgress",
            {"challenge_id": world.ended_challenge},
        ),
        "# The same 5 users at a time (pass nextPageToken as page_token for the next):",
        call(
            "podium.v1.ChallengeService/GetChallengeProgress",
            {"challenge_id": world.ended_challenge, "page_size": 5},
        ),
        "# A distance cup, its ranking in the west group:",
        call(
            "podium.v1.ChallengeService/GetChallengeRanking",
            {"challenge_id": world.distance_challenge, "group": "west"},
        ),
        "# A task in each state:",
    ]
    for status in TaskStatus:
        lines.append(f"#   {status.name}")
        lines.append(call(task, {"task_id": world.tasks[status][0]}))
    lines.append("# Learners of the two path sessions, by email or user id:")
    for learner in world.learners:
        if learner.label in SHOWN_LEARNERS:
            lines.append(f"#   {learner.session_id}, {learner.label}")
            lines.append(
                call(stats, {"session_id": learner.session_id, "user_email_or_id": learner.email})
            )
    return "\n".join(lines)


SHOWN_LEARNERS = frozenset(
    {"late", "awaiting correction", "to retake, mandatory replay", "unsuccessful, session ended"}
)


def _grpcurl() -> str:
    """grpcurl as the printed commands run it: from PATH, else the one beside this Python
    (the dev tools put it in .venv/bin)."""
    if shutil.which("grpcurl"):
        return "grpcurl"
    beside = Path(sys.executable).parent / "grpcurl"
    return str(beside) if beside.exists() else "grpcurl"
