"""Adoption day, as a platform team runs it: a fresh deployment (an empty database, new
topics), last month's history brought in with `podium produce --timestamps occurred-at`, the
catalog sent today with a plain `podium produce`. Last month's rankings (GetDriverRanking's
previousMonth and ListMonthRanking, the tenant and each group) and the challenge that ended
last month, frozen now (its ranking, progress and counters, the tenant and each group),
answer what the recomputation of tests/reference.py says (docs/events.md, "Record timestamps
and backfills"; docs/rules.md, "Arrival time and freezes")."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from podium.v1 import (
    challenges_pb2,
    challenges_pb2_grpc,
    common_pb2,
    driver_ranking_pb2,
    driver_ranking_pb2_grpc,
)

from consumers.local_broker import LocalBroker
from tests.databases import DATABASES, empty_database
from tests.e2e.conftest import isolated_settings
from tests.processes import ServeProcess
from tests.reference import (
    Backfill,
    ChallengeProgress,
    ChallengeRanking,
    Ranking,
    actual_challenge_progress,
    actual_challenge_ranking,
    actual_ranking,
    backfill,
    expected_challenge_progress,
    expected_challenge_ranking,
    expected_ranking,
    json_lines,
    progress_differences,
)
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e]

PODIUM = str(Path(sys.executable).parent / "podium")
COMMAND_SECONDS = 120
GRACE = timedelta(hours=1)
"""The deployment's grace, short so that last month is frozen whenever the test runs (but in
a month's first hour, when the recomputation expects it live, and so does Podium)."""
T = TypeVar("T")


async def podium(env: Mapping[str, str], *args: str) -> str:
    """A `podium` command as a platform team runs it; what it printed (it must succeed)."""
    process = await asyncio.create_subprocess_exec(
        PODIUM,
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), COMMAND_SECONDS)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def settled(probe: Callable[[], Awaitable[T]], expected: T) -> T:
    """The answer once it equals `expected`, or the last one after the wait (to compare)."""
    return await eventually(probe, lambda answer: answer == expected, within=60)


@pytest.mark.parametrize("database", DATABASES)
async def test_a_backfill_into_a_fresh_deployment_answers_last_month_as_the_recomputation_says(
    broker: LocalBroker, tmp_path: Path, database: str
) -> None:
    now = datetime.now(UTC)
    plan = backfill("adopter", now, seed=21)
    (tmp_path / "history.jsonl").write_text(json_lines(plan.history))
    (tmp_path / "today.jsonl").write_text(json_lines(plan.today))
    with empty_database(database, tmp_path) as url:
        grace = str(int(GRACE.total_seconds()))
        settings = isolated_settings(broker, url, PODIUM_LATE_EVENT_GRACE_SECONDS=grace)
        async with ServeProcess(settings, tmp_path / "serve.log") as serve:
            await serve.serving()
            env = {**os.environ, **settings.to_env(), "PODIUM_GRPC_ADDRESS": serve.address}
            key = (
                (
                    await podium(
                        env,
                        "keys",
                        "create",
                        "--tenant",
                        "adopter",
                        "--scopes",
                        "ranking,challenges",
                    )
                )
                .strip()
                .splitlines()[-1]
            )
            history = str(tmp_path / "history.jsonl")
            sent = await podium(env, "produce", "--timestamps", "occurred-at", history)
            assert f"{len(plan.history)} event(s) sent" in sent
            await podium(env, "produce", str(tmp_path / "today.jsonl"))
            await answers_match(plan, serve.channel(), key)


async def answers_match(plan: Backfill, channel: grpc.aio.Channel, key: str) -> None:
    auth = (("x-api-key", key),)
    rankings = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel)
    challenges = challenges_pb2_grpc.ChallengeServiceStub(channel)
    stream, last = plan.stream, plan.stream.now.replace(day=1) - timedelta(days=1)
    safety = common_pb2.RANKING_TYPE_SAFETY

    for group in ("", *plan.groups):
        expected = expected_ranking(stream, last.year, last.month, group=group, grace=GRACE)
        assert_listed_with_names(expected, plan, group)

        async def previous_month(group: str = group) -> Ranking:
            answer = await rankings.GetDriverRanking(
                driver_ranking_pb2.GetDriverRankingRequest(type=safety, group_label=group),
                metadata=auth,
            )
            return actual_ranking(answer.previousMonth)

        async def listed(group: str = group) -> Ranking:
            def page(not_ranked: bool) -> Awaitable[driver_ranking_pb2.ListMonthRankingResponse]:
                return rankings.ListMonthRanking(
                    driver_ranking_pb2.ListMonthRankingRequest(
                        type=safety,
                        group_label=group,
                        month=common_pb2.YearMonth(year=last.year, month_number=last.month),
                        page_size=1000,
                        not_ranked=not_ranked,
                    ),
                    metadata=auth,
                )

            ranked, others = await page(False), await page(True)
            assert (ranked.nextPageToken, others.nextPageToken) == ("", "")
            month = driver_ranking_pb2.MonthRanking(
                monthNumber=ranked.monthNumber,
                year=ranked.year,
                driverRanked=ranked.driverRanked,
                driverNotRanked=others.driverNotRanked,
            )
            return actual_ranking(month)

        assert await settled(previous_month, expected) == expected, f"group {group!r}"
        assert await settled(listed, expected) == expected, f"group {group!r}"

        ranking = expected_challenge_ranking(stream, plan.challenge_id, group=group, grace=GRACE)
        progress = expected_challenge_progress(stream, plan.challenge_id, group=group, grace=GRACE)

        async def challenge_ranking(group: str = group) -> ChallengeRanking:
            request = challenges_pb2.GetChallengeRankingRequest(
                challenge_id=plan.challenge_id, group=group
            )
            return actual_challenge_ranking(
                await challenges.GetChallengeRanking(request, metadata=auth)
            )

        async def challenge_progress(group: str = group) -> ChallengeProgress:
            request = challenges_pb2.GetChallengeProgressRequest(
                challenge_id=plan.challenge_id, group=group
            )
            return actual_challenge_progress(
                await challenges.GetChallengeProgress(request, metadata=auth)
            )

        assert await settled(challenge_ranking, ranking) == ranking, f"group {group!r}"
        shown = await settled(challenge_progress, progress)
        assert shown == progress, (group, progress_differences(progress, shown))


def assert_listed_with_names(expected: Ranking, plan: Backfill, group: str) -> None:
    """The recomputation is worth comparing with: last month's groups hold drivers whose only
    profile came today, and everyone with a profile has a name."""
    today_only = {
        r.key.decode()
        for r in plan.today
        if r.family == "catalog"
        and not any(h.family == "catalog" and h.key == r.key for h in plan.history)
    }
    listed = {r.user_id for r in expected.ranked} | set(expected.not_ranked)
    assert listed & today_only, f"group {group!r} lists no driver first heard of today"
    named = [r.firstname for r in expected.ranked] + [n for *_, n in expected.not_ranked.values()]
    assert sum(1 for name in named if name) >= len(listed) - 3  # three drivers have no profile
