"""QueryDeps.cached: one build per answer at a time, whatever the state version."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message
from google.protobuf.wrappers_pb2 import StringValue
from sqlalchemy import Connection, create_engine

from service.clock import FixedClock
from service.domain.rules import Rules
from service.domain.standings import Thresholds
from service.grpc.freshness import ResponseCache, VersionWatcher
from service.grpc.servicers import QueryDeps
from service.metrics import Metrics


def query_deps() -> QueryDeps:
    return QueryDeps(
        engine=create_engine("sqlite://"),
        clock=FixedClock(datetime(2026, 11, 24, tzinfo=UTC)),
        rules=Rules(Thresholds(5, 20_000), timedelta(hours=24)),
        is_ready=lambda: True,
        versions=VersionWatcher(dict),
        cache=ResponseCache(fresh_enough=0.0),
        metrics=Metrics(),
    )


class GatedBuild:
    """A build that reports when it starts and finishes only when released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.versions_built: list[int] = []

    def of(self, version: int) -> Callable[[Connection], Message]:
        def build(_: Connection) -> Message:
            self.versions_built.append(version)
            self.started.set()
            self.release.wait(timeout=10)
            return StringValue(value=f"v{version}")

        return build


async def test_a_newer_version_waits_for_the_build_under_way_rather_than_start_one() -> None:
    deps, builds = query_deps(), GatedBuild()
    first = asyncio.create_task(deps.cached(("ranking",), 1, builds.of(1)))
    await asyncio.to_thread(builds.started.wait, 10)
    second = asyncio.create_task(deps.cached(("ranking",), 2, builds.of(2)))
    await asyncio.sleep(0.05)
    builds.release.set()

    answers = await asyncio.gather(first, second)

    assert builds.versions_built == [1]
    assert [StringValue.FromString(a).value for a in answers] == ["v1", "v1"]


async def test_the_next_call_after_a_build_lands_builds_the_newer_state() -> None:
    deps, builds = query_deps(), GatedBuild()
    builds.release.set()
    await deps.cached(("ranking",), 1, builds.of(1))

    answer = await deps.cached(("ranking",), 2, builds.of(2))

    assert StringValue.FromString(answer).value == "v1"  # standing in while v2 builds
    await asyncio.sleep(0.05)
    assert StringValue.FromString(await deps.cached(("ranking",), 2, builds.of(2))).value == "v2"
    assert builds.versions_built == [1, 2]


async def test_different_answers_build_side_by_side() -> None:
    deps, builds = query_deps(), GatedBuild()
    builds.release.set()
    one = deps.cached(("ranking", "group-1"), 1, builds.of(1))
    two = deps.cached(("ranking", "group-2"), 1, builds.of(1))

    answers = await asyncio.gather(one, two)

    assert [StringValue.FromString(a).value for a in answers] == ["v1", "v1"]
    assert builds.versions_built == [1, 1]
