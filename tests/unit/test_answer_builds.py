"""Answers: one build per answer at a time, whatever the state version."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from google.protobuf.message import Message
from google.protobuf.wrappers_pb2 import StringValue

from service.app.ports import ReadModel, StateVersion
from service.grpc.answers import Answers, Loaded, ResponseCache


@contextlib.contextmanager
def no_database(statement_timeout: float | None = None) -> Iterator[ReadModel]:
    yield cast(ReadModel, cast(Any, None))


AS_OF = datetime(2026, 11, 20, 9, tzinfo=UTC)


@contextlib.contextmanager
def versioned_database(statement_timeout: float | None = None) -> Iterator[ReadModel]:
    """A read model that knows only the state versions: `acme` moved by an event at AS_OF."""
    yield cast(ReadModel, _Versions())


class _Versions:
    def state_versions(self, keys: Any = None) -> dict[str, StateVersion]:
        return {"acme": StateVersion(3, AS_OF)}


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


async def test_a_value_is_read_once_for_its_version_with_its_as_of_and_a_serial_of_its_own() -> (
    None
):
    reads: list[int] = []

    def load(version: int) -> Callable[[ReadModel], str]:
        def read(_: ReadModel) -> str:
            reads.append(version)
            return f"board v{version}"

        return read

    cache = Answers(
        versioned_database,
        ResponseCache(),
        while_rebuilding=0.0,
        values=ResponseCache(fresh_enough=0.0),
    )
    one, two = await asyncio.gather(
        cache.value(("board",), 1, load(1), ["acme"]), cache.value(("board",), 1, load(1))
    )
    newer = await cache.value(("board",), 2, load(2), ["acme"])
    assert reads == [1, 2]
    assert one is two
    assert (one.value, one.as_of, newer.value) == ("board v1", AS_OF, "board v2")
    assert newer.serial != one.serial


async def test_an_answer_made_from_a_value_is_made_once_from_that_value() -> None:
    cache = Answers(versioned_database, ResponseCache(), values=ResponseCache(fresh_enough=0.0))
    made: list[str] = []

    async def answer(version: int) -> str:
        loaded = await cache.value(("board",), version, lambda _: f"v{version}", ["acme"])

        def make() -> Message:
            made.append(loaded.value)
            return StringValue(value=loaded.value)

        answer = await cache.made(("answer",), loaded, make)
        assert answer.as_of == loaded.as_of
        return text(answer.data)

    assert [await answer(1), await answer(1)] == ["v1", "v1"]
    await answer(2)  # v1's board may stand in while v2's is read, and v1's answer with it
    await cache.settled()
    await answer(2)  # v1's answer may stand in while v2's is made
    await cache.settled()
    assert await answer(2) == "v2"
    assert made == ["v1", "v2"]  # each made once, from its own board


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_previous_answer_stands_in_while_a_newer_one_is_made_within_the_bound() -> None:
    clock, gate = Clock(), threading.Event()
    cache = Answers(no_database, ResponseCache(), while_rebuilding=1.0, clock=clock)
    first = Loaded("v1", AS_OF, 1, read_at=clock.now)
    newer = Loaded("v2", AS_OF + timedelta(seconds=5), 2, read_at=clock.now)

    def make(loaded: Loaded[str], wait: bool = False) -> Callable[[], Message]:
        def build() -> Message:
            if wait:
                gate.wait(timeout=10)
            return StringValue(value=loaded.value)

        return build

    assert text((await cache.made(("answer",), first, make(first))).data) == "v1"
    clock.now += 0.5
    standing_in = await cache.made(("answer",), newer, make(newer, wait=True))
    assert (text(standing_in.data), standing_in.as_of) == ("v1", AS_OF)  # v1, saying so
    clock.now += 0.6  # v1 was read 1.1 s ago: beyond the bound, callers wait for v2
    waiting = asyncio.create_task(cache.made(("answer",), newer, make(newer)))
    await asyncio.sleep(0)
    assert not waiting.done()
    gate.set()
    answer = await waiting
    assert (text(answer.data), answer.as_of) == ("v2", newer.as_of)
