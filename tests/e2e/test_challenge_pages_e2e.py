"""A challenge's ranking and progress a page at a time, through the broker and the gRPC API
(docs/rules.md#boards-pages-and-neighbours), on each database."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from podium.v1 import challenges_pb2, challenges_pb2_grpc

from tests.builders import (
    challenge_envelope,
    produce,
    registration_envelope,
    trip_envelope,
    user_envelope,
)
from tests.e2e.conftest import Running
from tests.e2e.test_operator_grpcurl import grpcurl
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

USERS = [f"u{i:02}" for i in range(25)]
RANKED = USERS[:20]
"""Each with a trip during the challenge scoring 5.0 to 8.5 (ties across page cuts) and two
trips before at 6.0; the last five have no trip during, so are not ranked."""


class Paged(Protocol):
    @property
    def nextPageToken(self) -> str: ...


M = TypeVar("M", bound=Paged)
Page = Callable[[str, int], Awaitable[M]]


async def seed(running: Running, start: datetime, end: datetime) -> None:
    topic, tenant = running.settings.topic, running.tenant
    await produce(
        running.servers,
        topic("catalog"),
        [(u.encode(), user_envelope(u, "north", tenant=tenant)) for u in USERS]
        + [
            (
                c.encode(),
                challenge_envelope(c, start=start, end=end, groups=["north"], tenant=tenant),
            )
            for c in ("c1", "c2")
        ],
    )
    await produce(
        running.servers,
        topic("enrollments"),
        [
            (u.encode(), registration_envelope(c, u, registered_at=start, tenant=tenant))
            for c in ("c1", "c2")
            for u in USERS
        ],
    )
    trips = []
    for i, user in enumerate(RANKED):
        for j in range(2):
            before = start - timedelta(hours=j + 1)
            pre = trip_envelope(f"{user}-pre{j}", user, safety=6.0, ended_at=before, tenant=tenant)
            trips.append((user.encode(), pre))
        score, during = 5.0 + (i % 8) / 2, start + timedelta(hours=1)
        trip = trip_envelope(f"{user}-in", user, safety=score, ended_at=during, tenant=tenant)
        trips.append((user.encode(), trip))
    await produce(running.servers, topic("trips"), trips)


def stub(running: Running) -> challenges_pb2_grpc.ChallengeServiceAsyncStub:
    return challenges_pb2_grpc.ChallengeServiceStub(running.channel)


def pager(
    running: Running, send: Callable[..., Awaitable[M]], ask: Callable[..., Message], challenge: str
) -> Page[M]:
    """Either method's pages: `send` its stub's method, `ask` its request."""
    return lambda token, size: send(
        ask(challenge_id=challenge, page_size=size, page_token=token), metadata=running.auth
    )


def ranking(
    running: Running, challenge: str = "c1"
) -> Page[challenges_pb2.GetChallengeRankingResponse]:
    ask = challenges_pb2.GetChallengeRankingRequest
    return pager(running, stub(running).GetChallengeRanking, ask, challenge)


def progress(
    running: Running, challenge: str = "c1"
) -> Page[challenges_pb2.GetChallengeProgressResponse]:
    ask = challenges_pb2.GetChallengeProgressRequest
    return pager(running, stub(running).GetChallengeProgress, ask, challenge)


async def pages(call: Page[M], size: int, token: str = "") -> list[M]:
    """Every page from the one `token` names (the first when empty) to the last."""
    found = [await call(token, size)]
    while token := found[-1].nextPageToken:
        found.append(await call(token, size))
    return found


async def settled(running: Running) -> None:
    """Every trip folded: 20 users ranked, 60 trips before and during counted."""
    await eventually(
        lambda: progress(running)("", 0),
        lambda p: p.rankedUsers == 20 and p.totalNumberTrips == 20 and len(p.users) == 20,
    )


def joined(found: Sequence[Message]) -> bytes:
    """The pages as one answer, without `asOf` (each read has its own): what the whole answer
    is, byte for byte, when every page carries the same header and counters and its part of
    the lists."""
    heads, one = set(), type(found[0])()
    for page in found:
        head = type(page)()
        head.CopyFrom(page)
        for name in ("users", "usersNotRanked", "nextPageToken"):
            if name in head.DESCRIPTOR.fields_by_name:
                head.ClearField(name)
        heads.add(without_as_of(head))
        one.MergeFrom(page)  # the lists add up
    assert len(heads) == 1
    one.ClearField("nextPageToken")
    return without_as_of(one)


def without_as_of(answer: Message) -> bytes:
    bare = type(answer)()
    bare.CopyFrom(answer)
    bare.ClearField("asOf")
    return bare.SerializeToString()


def names(users: object) -> list[str]:
    return [u.username for u in users]  # type: ignore[attr-defined]


async def test_pages_joined_are_the_whole_answer(running: Running) -> None:
    now = datetime.now(UTC)
    await seed(running, now - timedelta(days=5), now - timedelta(hours=1))
    await settled(running)

    whole = await ranking(running)("", 0)
    assert (whole.registeredUsers, whole.rankedUsers, whole.nextPageToken) == (25, 20, "")
    by_ten = await pages(ranking(running), 10)
    assert [len(p.users) + len(p.usersNotRanked) for p in by_ten] == [10, 10, 5]
    assert [u for p in by_ten for u in p.users] == list(whole.users)
    assert [u for p in by_ten for u in p.usersNotRanked] == list(whole.usersNotRanked)
    assert {(p.registeredUsers, p.rankedUsers, p.challengeId) for p in by_ten} == {(25, 20, "c1")}
    by_seven = await pages(ranking(running), 7)
    assert [len(p.users) for p in by_seven] == [7, 7, 6, 0]
    assert [len(p.usersNotRanked) for p in by_seven] == [0, 0, 1, 4]

    assert joined(by_ten) == without_as_of(whole)

    whole_progress = await progress(running)("", 0)
    assert whole_progress.nextPageToken == ""
    by_nine = await pages(progress(running), 9)
    assert [len(p.users) for p in by_nine] == [9, 9, 2]
    assert [u for p in by_nine for u in p.users] == list(whole_progress.users)
    assert joined(by_nine) == without_as_of(whole_progress)
    assert len(await pages(progress(running), 1000)) == 1


async def test_a_token_continues_its_own_list_only(running: Running) -> None:
    now = datetime.now(UTC)
    await seed(running, now - timedelta(days=5), now - timedelta(hours=1))
    await settled(running)
    token = (await ranking(running)("", 10)).nextPageToken
    progress_token = (await progress(running)("", 10)).nextPageToken

    async def refused(call: Awaitable[Message]) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        status = rpc_status.from_call(error.value)
        assert status is not None
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info)
        return error.value.code(), info.reason

    bad = (grpc.StatusCode.INVALID_ARGUMENT, "invalid_page_token")
    assert await refused(ranking(running, "c2")(token, 10)) == bad
    assert await refused(progress(running, "c2")(progress_token, 10)) == bad
    assert await refused(progress(running)(token, 10)) == bad
    assert await refused(ranking(running)(progress_token, 10)) == bad
    in_group = challenges_pb2.GetChallengeRankingRequest(
        challenge_id="c1", group="north", page_size=10, page_token=token
    )
    assert await refused(stub(running).GetChallengeRanking(in_group, metadata=running.auth)) == bad
    stranger = running.for_new_tenant()
    assert await refused(ranking(stranger)(token, 10)) == bad
    too_big = (grpc.StatusCode.INVALID_ARGUMENT, "invalid_page_size")
    assert await refused(ranking(running)("", 1001)) == too_big
    assert await refused(progress(running)(progress_token, -1)) == too_big
    assert await refused(progress(running, "missing")("", 1001)) == too_big  # checked first
    rest = await ranking(running)(token, 0)  # 0 with a token: 100, so the 15 left
    assert (len(rest.users), len(rest.usersNotRanked), rest.nextPageToken) == (10, 5, "")


async def test_an_event_between_pages_neither_repeats_nor_skips_a_user_who_did_not_move(
    running: Running,
) -> None:
    """u00 (5.0, last of the ranked) jumps to the top between the first page and the next:
    every other user is listed once, on the page they would have been on."""
    now = datetime.now(UTC)
    start = now - timedelta(days=5)
    await seed(running, start, now - timedelta(hours=1))
    await settled(running)
    first = await ranking(running)("", 10)
    first_progress = await progress(running)("", 7)
    assert "u00" not in names(first.users) + names(first_progress.users)

    when, tenant = start + timedelta(hours=2), running.tenant
    jump = trip_envelope("u00-jump", "u00", km=30.0, safety=10.0, ended_at=when, tenant=tenant)
    await produce(running.servers, running.settings.topic("trips"), [(b"u00", jump)])
    await eventually(lambda: ranking(running)("", 0), lambda r: names(r.users)[:1] == ["u00"])
    await eventually(lambda: progress(running)("", 0), lambda p: names(p.users)[:1] == ["u00"])

    rest = await pages(ranking(running), 10, first.nextPageToken)
    listed = names(first.users) + [
        u for p in rest for u in names(p.users) + names(p.usersNotRanked)
    ]
    assert sorted(listed) == USERS[1:]  # u00 moved up past the cut: on the first page now
    rest_progress = await pages(progress(running), 7, first_progress.nextPageToken)
    listed = names(first_progress.users) + [u for p in rest_progress for u in names(p.users)]
    assert sorted(listed) == RANKED[1:]


async def test_an_operator_pages_with_grpcurl(running: Running) -> None:
    """The README's session: the first page, then the next with its nextPageToken."""
    now = datetime.now(UTC)
    await seed(running, now - timedelta(days=5), now - timedelta(hours=1))
    await settled(running)

    async def call(**request: object) -> dict[str, object]:
        code, output = await grpcurl(
            "-H",
            f"x-api-key: {running.key}",
            "-d",
            json.dumps({"challenge_id": "c1", **request}),
            running.address,
            "podium.v1.ChallengeService/GetChallengeRanking",
        )
        assert code == 0, output
        answer: dict[str, object] = json.loads(output)
        return answer

    first = await call(page_size=2)
    assert [u["username"] for u in first["users"]] == ["u07", "u15"]  # type: ignore[attr-defined]
    token = first["nextPageToken"]
    second = await call(page_size=2, page_token=token)
    assert [u["username"] for u in second["users"]] == ["u06", "u14"]  # type: ignore[attr-defined]
    assert "nextPageToken" not in await call()
