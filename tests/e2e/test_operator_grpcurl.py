"""An operator's session with grpcurl against the live server, through reflection."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.builders import produce, trip_envelope, user_envelope
from tests.e2e.conftest import Running
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


async def grpcurl(*args: str) -> tuple[int, str]:
    """Run grpcurl without blocking the event loop the server shares with the test."""
    process = await asyncio.create_subprocess_exec(
        GRPCURL,
        "-plaintext",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_reflection_lists_the_services(running: Running) -> None:
    code, output = await grpcurl(running.address, "list")
    assert code == 0
    assert set(output.split()) >= {
        "podium.v1.DriverRankingService",
        "podium.v1.ChallengeService",
        "podium.v1.TaskService",
        "podium.v1.PathService",
        "grpc.health.v1.Health",
    }


async def test_health_says_serving(running: Running) -> None:
    code, output = await grpcurl(running.address, "grpc.health.v1.Health/Check")
    assert code == 0
    assert json.loads(output) == {"status": "SERVING"}


async def test_grpcurl_prints_a_ranking_with_the_public_api_field_names(running: Running) -> None:
    await produce(
        running.servers,
        running.settings.topic("catalog"),
        [(b"ann", user_envelope("ann", "north", tenant=running.tenant))],
    )
    await produce(
        running.servers,
        running.settings.topic("trips"),
        [(b"ann", trip_envelope(f"t{i}", "ann", km=5, tenant=running.tenant)) for i in range(5)],
    )
    request = json.dumps({"type": "RANKING_TYPE_SAFETY", "group_label": "north"})
    _, output = await eventually(
        lambda: grpcurl(
            "-H",
            f"x-api-key: {running.key}",
            "-d",
            request,
            running.address,
            "podium.v1.DriverRankingService/GetDriverRanking",
        ),
        lambda done: done[0] == 0 and '"driverRankedNumber": 1' in done[1],
        within=20,
        every=0.2,
        what="a ranking with ann in it",
    )
    answer = json.loads(output)
    assert answer["type"] == "RANKING_TYPE_SAFETY"
    month = answer["currentMonth"]
    assert month["driverRankedNumber"] == 1
    assert month["driverRanked"][0] == {
        "userId": "ann",
        "firstname": "Ann",
        "lastname": "Doe",
        "pseudo": "ann",
        "rank": 1,
        "score": 8,
        "distance": 25,
        "tripNumber": 5,
    }
    assert {"monthNumber", "year"} <= month.keys()


async def test_an_error_shows_its_reason_to_the_operator(running: Running) -> None:
    code, output = await grpcurl(
        "-H",
        f"x-api-key: {running.key}",
        "-d",
        "{}",
        running.address,
        "podium.v1.DriverRankingService/GetDriverRanking",
    )
    assert code != 0
    assert "Code: InvalidArgument" in output
    assert '"reason":"invalid_rank_type"' in output.replace(" ", "")


async def test_grpcurl_shows_figures_rounded_once_from_the_exact_ones(running: Running) -> None:
    """The README's session: 8.12496 ties with 8.12; five trips of 3.99992 km show 20 km and
    fall a metre short of the 20 km threshold."""
    drivers = {"ann": (5.0, 8.12496), "bob": (6.0, 8.12), "dee": (3.99992, 8.0)}
    await produce(
        running.servers,
        running.settings.topic("trips"),
        [
            (
                user.encode(),
                trip_envelope(f"{user}{i}", user, km=km, safety=score, tenant=running.tenant),
            )
            for user, (km, score) in drivers.items()
            for i in range(5)
        ],
    )

    async def call(method: str, **request: str) -> dict[str, Any]:
        body = json.dumps({"type": "RANKING_TYPE_SAFETY", **request})
        code, output = await grpcurl(
            "-H", f"x-api-key: {running.key}", "-d", body, running.address, method
        )
        assert code == 0, output
        answer: dict[str, Any] = json.loads(output)
        return answer

    async def month() -> dict[str, Any]:
        answer = await call("podium.v1.DriverRankingService/GetDriverRanking")
        return dict(answer["currentMonth"])

    current = await eventually(month, lambda m: len(m.get("driverNotRanked", [])) == 1)
    assert [
        (d["userId"], d["rank"], d["score"], d["distance"]) for d in current["driverRanked"]
    ] == [
        ("bob", 1, 8.12, 30),
        ("ann", 1, 8.12, 25),
    ]
    dee = await call("podium.v1.DriverRankingService/GetDriverRank", user_id="dee")
    assert dee["driverNotRanked"] == {"userId": "dee", "distance": 20, "tripNumber": 5}
    assert dee["shortfall"] == {"distanceShortKm": 0.001}
