"""What operators see of a live `podium serve`: its metrics, scraped over HTTP, under the
names the README lists, with the counts the calls and events made; its log, JSON lines that
carry the fields an operator filters on and never a key or a personal field."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from podium.events.v1 import catalog_pb2
from podium.events.v1 import tasks_pb2 as event_tasks_pb2
from podium.v1 import (
    driver_ranking_pb2,
    driver_ranking_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)
from prometheus_client.parser import text_string_to_metric_families

from consumers.local_broker import LocalBroker, free_port
from service.bootstrap import storage
from service.clock import SystemClock
from tests.builders import produce, task_envelope, trip_envelope
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.processes import ServeProcess
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

README = Path(__file__).parents[2] / "README.md"
PERSONAL = ("Secretfirst", "Secretlast", "zoe.secretmail@example.com", "zsecretpseudo")
"""The personal fields of a profile whose fold fails (a NUL byte PostgreSQL refuses)."""
WRONG_KEY = "pod_00000000deadbeef_" + "w" * 43
RANKING = "podium.v1.DriverRankingService/GetDriverRanking"
GET_TASK = "podium.v1.TaskService/GetTask"


@dataclass
class Live:
    serve: ServeProcess
    metrics_url: str
    key: str
    tenant: str
    topics: dict[str, str]
    ranking_calls: int = 0


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with empty_database("postgresql", tmp_path_factory.mktemp("observe")) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(
    broker: LocalBroker, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Live]:
    """One server, JSON logs and metrics on, that has folded good and bad events and answered
    an OK, a NOT_FOUND and a refused key."""
    metrics_port = free_port()
    settings = replace(
        isolated_settings(broker, database_url), metrics_address=f"127.0.0.1:{metrics_port}"
    )
    tenant = f"obs-{uuid.uuid4().hex[:8]}"
    with storage(settings.database_url, migrate=True) as store:
        key = store.create_key(tenant, "ranking,tasks", SystemClock().now())
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    async with ServeProcess(settings, log_path, env={"PODIUM_LOG_FORMAT": "json"}) as serve:
        await serve.serving()
        live = Live(
            serve,
            f"http://127.0.0.1:{metrics_port}/metrics",
            key,
            tenant,
            {family: settings.topic(family) for family in ("trips", "catalog", "tasks")},
        )
        await _feed(live, settings.kafka_bootstrap_servers or "")
        await _call(live)
        yield live


async def _feed(live: Live, servers: str) -> None:
    tenant = live.tenant
    trips = [(b"ann", trip_envelope(f"t{n}", "ann", km=5, tenant=tenant)) for n in range(6)]
    out_of_range = trip_envelope("bad", "ann", km=5, tenant=tenant)
    out_of_range.trip_completed.scores.safety = 42.0
    await produce(servers, live.topics["trips"], [*trips, (b"ann", out_of_range)])
    profile = catalog_pb2.CatalogEvent(event_id="zoe-1", tenant_id=tenant)
    profile.occurred_at.GetCurrentTime()
    profile.user_upserted.user_id = "zoe"
    profile.user_upserted.firstname = "Zoé\x00Secretfirst"
    profile.user_upserted.lastname = "Secretlast"
    profile.user_upserted.email = "zoe.secretmail@example.com"
    profile.user_upserted.pseudo = "zsecretpseudo"
    await produce(servers, live.topics["catalog"], [(b"zoe", profile)])
    created = event_tasks_pb2.TaskCreated(
        task_id="k1", type="TASK_TYPE_PUSH_FAILED_TRIPS", nb_items=3, created_at=profile.occurred_at
    )
    await produce(
        servers,
        live.topics["tasks"],
        [(b"k1", task_envelope("k1", tenant, task_created=created)) for _ in range(2)],
    )


async def _call(live: Live) -> None:
    """Rankings until ann's six trips show (each call counted), a task that does not exist,
    and a refused key."""
    auth = (("x-api-key", live.key),)
    async with grpc.aio.insecure_channel(live.serve.address) as channel:
        ranking = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel)

        async def trips_of_ann() -> int:
            live.ranking_calls += 1
            answer = await ranking.GetDriverRanking(
                driver_ranking_pb2.GetDriverRankingRequest(type="RANKING_TYPE_SAFETY"),
                metadata=auth,
            )
            month = answer.currentMonth
            ranked = sum(d.tripNumber for d in month.driverRanked)
            return ranked + sum(d.tripNumber for d in month.driverNotRanked)

        assert await eventually(trips_of_ann, lambda n: n == 6) == 6
        assert await trips_of_ann() == 6  # the same state: answered from the cache
        tasks = tasks_pb2_grpc.TaskServiceStub(channel)
        for key, code in ((live.key, "NOT_FOUND"), (WRONG_KEY, "UNAUTHENTICATED")):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await tasks.GetTask(
                    tasks_pb2.GetTaskRequest(task_id="nope"), metadata=(("x-api-key", key),)
                )
            assert refused.value.code().name == code


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> its (labels, value) pairs, as a Prometheus server would read them."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(v for got, v in samples.get(name, []) if labels.items() <= got.items())


def documented_metrics() -> list[str]:
    """The names in the README's metrics table, as it says they are scraped."""
    text = README.read_text()
    section = text[text.index("### Metrics") :]
    section = section[: section.index("\n## ")]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])]


async def test_the_metrics_the_readme_lists_are_the_ones_scraped(live: Live) -> None:
    names = documented_metrics()
    assert len(names) >= 20
    samples = await eventually(
        lambda: asyncio.to_thread(scrape, live.metrics_url),
        lambda s: value(s, "podium_events_dead_lettered_total") == 2,
    )
    missing = [name for name in names if name not in samples]
    assert not missing, f"documented but not scraped: {missing}"


async def test_calls_are_counted_with_their_real_code_refusals_included(live: Live) -> None:
    samples = await asyncio.to_thread(scrape, live.metrics_url)
    requests = "podium_grpc_requests_total"
    assert value(samples, requests, method=RANKING, code="OK") == live.ranking_calls
    assert value(samples, requests, method=GET_TASK, code="NOT_FOUND") == 1
    assert value(samples, requests, method=GET_TASK, code="UNAUTHENTICATED") == 1
    assert value(samples, requests, code="OK") == live.ranking_calls  # nothing else was OK
    assert value(samples, "podium_grpc_request_seconds_count", method=GET_TASK) == 2
    assert value(samples, "podium_answer_cache_hits_total", answer="month") >= 1
    assert value(samples, "podium_answer_builds_total", answer="month") >= 2  # two months


async def test_events_are_counted_folded_dead_lettered_by_reason_and_ignored(
    live: Live,
) -> None:
    samples = await eventually(
        lambda: asyncio.to_thread(scrape, live.metrics_url),
        lambda s: value(s, "podium_events_ignored_total") == 1,
    )
    trips, catalog = live.topics["trips"], live.topics["catalog"]
    assert value(samples, "podium_events_folded_total", topic=trips) == 6
    dead = "podium_events_dead_lettered_total"
    assert value(samples, dead, topic=trips, reason="invalid") == 1
    assert value(samples, dead, topic=catalog, reason="invalid") == 1
    assert value(samples, dead) == 2
    assert value(samples, "podium_ingest_caught_up") == 1
    assert value(samples, "podium_partition_stalled") == 0
    assert value(samples, "podium_unknown_fields_total", topic=trips) == 0
    risks = samples["podium_topic_config_risk"]
    assert {labels["setting"] for labels, _ in risks} == {
        "retention.ms",
        "retention.bytes",
        "cleanup.policy",
    }
    assert len(risks) == 12  # four topics it created, each keeping every record: 0
    assert value(samples, "podium_topic_config_risk") == 0
    assert value(samples, "podium_batch_records_count") >= 1
    assert value(samples, "podium_batch_records_sum") == 10  # 7 trips, 1 profile, 2 tasks
    [(labels, one)] = samples["podium_build_info"]
    assert (labels["version"], one) == ("0.1.0", 1.0)


def log_lines(serve: ServeProcess) -> list[dict[str, Any]]:
    """Every line the process wrote to its log, each parsed as JSON (a line that is not
    JSON fails the test)."""
    lines = [line for line in serve.log().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


async def test_the_log_is_json_lines_with_the_fields_operators_filter_on(live: Live) -> None:
    await eventually(
        lambda: log_lines(live.serve),
        lambda lines: any(catalog_letter(line, live) for line in lines),
    )
    lines = log_lines(live.serve)
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert any(line["message"] == "state caught up; serving" for line in lines)
    [letter] = [line for line in lines if catalog_letter(line, live)]
    assert letter["level"] == "WARNING"
    assert (letter["tenant"], letter["offset"]) == (live.tenant, 0)
    assert isinstance(letter["partition"], int)
    assert "NUL" in letter["reason"]


def catalog_letter(line: dict[str, Any], live: Live) -> bool:
    """The log line of the profile dead-lettered for the NUL in its name."""
    return line.get("reason_kind") == "invalid" and line.get("topic") == live.topics["catalog"]


async def test_no_log_line_holds_a_key_or_a_personal_field(live: Live) -> None:
    await eventually(
        lambda: log_lines(live.serve),
        lambda lines: any(catalog_letter(line, live) for line in lines),
    )
    output = live.serve.log()
    secret = live.key.split("_", 2)[2]
    for word in (*PERSONAL, secret, WRONG_KEY):
        assert word not in output
