"""Answers: one build per answer at a time, whatever the state version."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

from google.protobuf.message import Message
from google.protobuf.wrappers_pb2 import StringValue

from service.app.ports import ReadModel
from service.grpc.answers import Answers, ResponseCache


@contextlib.contextmanager
def no_database(statement_timeout: float | None = None) -> Iterator[ReadModel]:
    yield cast(ReadModel, cast(Any, None))


def answers() -> Answers:
    return Answers(no_database, ResponseCache(fresh_enough=0.0))


class GatedBuild:
    """A build that reports when it starts and finishes only when released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.versions_built: list[int] = []

    def of(self, version: int) -> Callable[[ReadModel], Message]:
        def build(_: ReadModel) -> Message:
            self.versions_built.append(version)
            self.started.set()
            self.release.wait(timeout=10)
            return StringValue(value=f"v{version}")

        return build


def text(answer: bytes) -> str:
    return StringValue.FromString(answer).value


async def test_a_newer_version_waits_for_the_build_under_way_rather_than_start_one() -> None:
    cache, builds = answers(), GatedBuild()
    first = asyncio.create_task(cache.get(("ranking",), 1, builds.of(1)))
    await asyncio.to_thread(builds.started.wait, 10)
    second = asyncio.create_task(cache.get(("ranking",), 2, builds.of(2)))
    builds.release.set()

    replies = await asyncio.gather(first, second)

    assert builds.versions_built == [1]
    assert [text(a) for a in replies] == ["v1", "v1"]


async def test_the_next_call_after_a_build_lands_builds_the_newer_state() -> None:
    cache, builds = answers(), GatedBuild()
    builds.release.set()
    await cache.get(("ranking",), 1, builds.of(1))

    reply = await cache.get(("ranking",), 2, builds.of(2))

    assert text(reply) == "v1"  # standing in while v2 builds
    await cache.settled()
    assert text(await cache.get(("ranking",), 2, builds.of(2))) == "v2"
    assert builds.versions_built == [1, 2]


async def test_different_answers_build_side_by_side() -> None:
    cache, builds = answers(), GatedBuild()
    builds.release.set()
    one = cache.get(("ranking", "group-1"), 1, builds.of(1))
    two = cache.get(("ranking", "group-2"), 1, builds.of(1))

    replies = await asyncio.gather(one, two)

    assert [text(a) for a in replies] == ["v1", "v1"]
    assert builds.versions_built == [1, 1]
