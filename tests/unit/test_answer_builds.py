"""The answer cache: values by the versions of what they reflect, one build per answer at a
time whatever the version, bytes made once per value, everything under one budget."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from google.protobuf.wrappers_pb2 import StringValue

from service.app.answers import Key, Query
from service.app.ports import ReadModel, StateVersion
from service.grpc.cache import AnswerCache, Encoded, Loaded, Made, message

AS_OF = datetime(2026, 11, 20, 9, tzinfo=UTC)


class Versions:
    """What the instance knows of the state's versions; `acme` moved by an event at AS_OF."""

    def __init__(self) -> None:
        self.number = 1

    def __call__(self, key: str) -> StateVersion:
        return StateVersion(self.number, AS_OF)

    def database(self, statement_timeout: float | None = None) -> Any:
        @contextlib.contextmanager
        def opened() -> Iterator[ReadModel]:
            yield cast(ReadModel, _Snapshot(self.number))

        return opened()


@dataclass
class _Snapshot:
    number: int

    def state_versions(self, keys: Any = None) -> dict[str, StateVersion]:
        return {"acme": StateVersion(self.number, AS_OF)}


@dataclass(frozen=True)
class Board(Query[str]):
    """A value read by version: `reads` and `updates` say which were read and which made from
    the one kept."""

    name: str = "board"
    reads: list[int] = field(default_factory=list, compare=False)
    updates: list[tuple[int, int]] = field(default_factory=list, compare=False)
    gate: threading.Event | None = None
    started: threading.Event = field(default_factory=threading.Event, compare=False)
    keeps: bool = False
    bytes_held: int = 10

    @property
    def key(self) -> Key:
        return ("board", self.name)

    @property
    def reflects(self) -> tuple[str, ...]:
        return ("acme",)

    def load(self, read: ReadModel) -> str:
        number = cast(_Snapshot, read).number
        self.started.set()
        if self.gate is not None:
            self.gate.wait(timeout=10)
        self.reads.append(number)
        return f"v{number}"

    def update(
        self, read: ReadModel, kept: str, was: Mapping[str, int], now: Mapping[str, int]
    ) -> str | None:
        if not self.keeps:
            return None
        self.updates.append((was["acme"], now["acme"]))
        return f"{kept}+v{now['acme']}"

    def size(self, value: str) -> int:
        return self.bytes_held


def cache(versions: Versions, **options: Any) -> AnswerCache:
    options.setdefault("fresh_enough", 0.0)
    return AnswerCache(versions.database, versions, **options)


async def test_a_value_is_read_once_for_its_version_with_its_as_of_and_a_serial_of_its_own() -> (
    None
):
    versions, board = Versions(), Board()
    answers = cache(versions, while_rebuilding=0.0)
    one, two = await asyncio.gather(answers.value(board), answers.value(board))
    versions.number = 2
    newer = await answers.value(board)

    assert board.reads == [1, 2]
    assert one is two
    assert (one.value, one.as_of, one.versions, newer.value) == ("v1", AS_OF, {"acme": 1}, "v2")
    assert newer.serial != one.serial


async def test_a_newer_version_waits_for_the_build_under_way_rather_than_start_one() -> None:
    versions, board = Versions(), Board(gate=threading.Event())
    answers = cache(versions)
    first = asyncio.create_task(answers.value(board))
    await asyncio.to_thread(board.started.wait, 10)
    versions.number = 2
    second = asyncio.create_task(answers.value(board))
    assert board.gate is not None
    board.gate.set()

    replies = await asyncio.gather(first, second)

    assert board.reads == [1]
    assert [r.value for r in replies] == ["v1", "v1"]


async def test_the_next_call_after_a_build_lands_builds_the_newer_state() -> None:
    versions, board = Versions(), Board()
    answers = cache(versions)
    await answers.value(board)
    versions.number = 2

    assert (await answers.value(board)).value == "v1"  # standing in while v2 is read
    await answers.settled()
    assert (await answers.value(board)).value == "v2"
    assert board.reads == [1, 2]


async def test_a_kept_value_is_updated_from_the_versions_it_reflects_to_the_new_ones() -> None:
    versions, board = Versions(), Board(keeps=True)
    answers = cache(versions, while_rebuilding=0.0)
    await answers.value(board)
    versions.number = 3
    updated = await answers.value(board)

    assert board.reads == [1]
    assert board.updates == [(1, 3)]
    assert (updated.value, updated.versions) == ("v1+v3", {"acme": 3})


async def test_different_answers_build_side_by_side() -> None:
    versions = Versions()
    answers = cache(versions)
    one, two = Board("group-1"), Board("group-2")

    replies = await asyncio.gather(answers.value(one), answers.value(two))

    assert [r.value for r in replies] == ["v1", "v1"]
    assert (one.reads, two.reads) == ([1], [1])


async def test_an_answer_made_from_a_value_is_made_once_from_that_value() -> None:
    versions, board = Versions(), Board()
    answers = cache(versions)
    made: list[str] = []

    async def answer() -> str:
        loaded = await answers.value(board)

        def make() -> StringValue:
            made.append(loaded.value)
            return StringValue(value=loaded.value)

        answer = await answers.made(("answer",), (loaded,), message(make))
        assert answer.as_of == loaded.as_of
        return StringValue.FromString(answer.data).value

    assert [await answer(), await answer()] == ["v1", "v1"]
    versions.number = 2
    await answer()  # v1's board may stand in while v2's is read, and v1's answer with it
    await answers.settled()
    await answer()  # v1's answer may stand in while v2's is made
    await answers.settled()
    assert await answer() == "v2"
    assert made == ["v1", "v2"]  # each made once, from its own board


async def test_bytes_are_made_with_what_the_previous_bytes_of_their_key_kept() -> None:
    answers = cache(Versions())
    given: list[object] = []

    def make(text: str) -> Any:
        def encode(kept: object) -> Encoded:
            given.append(kept)
            return Encoded(text.encode(), kept=f"pieces of {text}")

        return encode

    first = Loaded("v1", AS_OF, 101, read_at=0.0)
    second = Loaded("v2", AS_OF, 102, read_at=0.0)
    await answers.made(("month",), (first,), make("v1"))
    await answers.made(("month",), (second,), make("v2"))
    await answers.settled()
    made = await answers.made(("month",), (second,), make("v2"))

    assert given == [None, "pieces of v1"]
    assert (made.data, made.kept) == (b"v2", "pieces of v2")


async def test_a_response_is_joined_once_while_its_parts_are_the_same_bytes() -> None:
    answers = cache(Versions())
    joins: list[int] = []
    current = Made(b"current", AS_OF, 7, 0.0)
    previous = Made(b"previous", AS_OF - timedelta(days=30), 8, 0.0)

    def join(_: object) -> Encoded:
        joins.append(1)
        return Encoded(current.data + previous.data)

    first = await answers.made(("ranking",), (current, previous), join)
    again = await answers.made(("ranking",), (current, previous), join)

    assert again is first
    assert (first.data, first.as_of, len(joins)) == (b"currentprevious", AS_OF, 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_previous_answer_stands_in_while_a_newer_one_is_made_within_the_bound() -> None:
    clock, gate = Clock(), threading.Event()
    answers = cache(Versions(), while_rebuilding=1.0, clock=clock)
    first = Loaded("v1", AS_OF, 1, read_at=clock.now)
    newer = Loaded("v2", AS_OF + timedelta(seconds=5), 2, read_at=clock.now)

    def make(loaded: Loaded[str], wait: bool = False) -> Any:
        def build() -> StringValue:
            if wait:
                gate.wait(timeout=10)
            return StringValue(value=loaded.value)

        return message(build)

    def text(made: Made) -> str:
        return StringValue.FromString(made.data).value

    assert text(await answers.made(("answer",), (first,), make(first))) == "v1"
    clock.now += 0.5
    standing_in = await answers.made(("answer",), (newer,), make(newer, wait=True))
    assert (text(standing_in), standing_in.as_of) == ("v1", AS_OF)  # v1, saying so
    clock.now += 0.6  # v1 was read 1.1 s ago: beyond the bound, callers wait for v2
    waiting = asyncio.create_task(answers.made(("answer",), (newer,), make(newer)))
    await asyncio.sleep(0)
    assert not waiting.done()
    gate.set()
    answer = await waiting
    assert (text(answer), answer.as_of) == ("v2", newer.as_of)


async def test_a_very_young_value_is_served_even_after_the_state_moved() -> None:
    clock, versions = Clock(), Versions()

    @dataclass(frozen=True)
    class Timed(Board):
        def load(self, read: ReadModel) -> str:
            clock.now += 1.0  # built in a second (on this clock): a window of up to 4 s
            return super().load(read)

    board = Timed()
    answers = cache(versions, fresh_enough=60.0, clock=clock)
    await answers.value(board)
    versions.number = 2
    clock.now += 3.0  # still within the window that build earned

    assert (await answers.value(board)).value == "v1"
    await answers.settled()
    assert board.reads == [1]


async def test_the_least_recently_used_leave_first_beyond_the_budget() -> None:
    versions = Versions()
    answers = cache(versions, budget_bytes=250)
    a, b, c = (Board(name, bytes_held=100) for name in "abc")
    await answers.value(a)
    await answers.value(b)
    await answers.value(a)  # a used again: b is now the least recently used
    await answers.value(c)

    assert answers.held_bytes == 200
    for board in (a, b, c):
        await answers.value(board)
    assert (a.reads, b.reads, c.reads) == ([1], [1, 1], [1, 1])  # b, then c, read again


async def test_an_answer_bigger_than_the_budget_is_kept_alone() -> None:
    answers = cache(Versions(), budget_bytes=50)
    small, big = Board("small", bytes_held=10), Board("big", bytes_held=500)
    await answers.value(small)
    await answers.value(big)
    await answers.value(big)

    assert big.reads == [1]
    assert answers.held_bytes == 500


async def test_bytes_made_inline_are_made_at_once_and_kept_for_the_same_sources() -> None:
    answers = cache(Versions())
    part = Made(b"part", AS_OF, 9, 0.0)
    calls: list[int] = []

    def join(_: object) -> Encoded:
        calls.append(1)
        return Encoded(part.data * 2)

    made = answers.made(("joined",), (part,), join, inline=True)
    first = await made
    assert (first.data, len(calls)) == (b"partpart", 1)
    assert await answers.made(("joined",), (part,), join, inline=True) is first
    assert len(calls) == 1


async def test_a_value_made_anew_quickly_keeps_the_window_its_slowest_build_earned() -> None:
    clock, versions = Clock(), Versions()
    slow = threading.Event()

    @dataclass(frozen=True)
    class Timed(Board):
        def load(self, read: ReadModel) -> str:
            if not slow.is_set():
                clock.now += 1.0  # the first, whole read takes a second (on this clock)
                slow.set()
            return super().load(read)

    board = Timed(keeps=True)
    answers = cache(versions, fresh_enough=0.5, clock=clock)
    await answers.value(board)  # built in a second: a window of half a second
    versions.number = 2
    clock.now += 0.6
    await answers.value(board)
    await answers.settled()
    assert board.updates == [(1, 2)]  # updated in no time at all
    versions.number = 3
    clock.now += 0.1  # within the half second the first build earned
    assert (await answers.value(board)).value == "v1+v2"
    await answers.settled()
    assert board.updates == [(1, 2)]  # not made anew: no build was started
