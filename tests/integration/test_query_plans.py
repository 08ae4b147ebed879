"""Every answer's statements are planned to cost what the answer reads, also on a PostgreSQL
database that was never analyzed: a rebuild from the topics fills one, and until its
statistics exist the planner takes every table for a handful of rows
(docs/operations.md#the-planners-statistics).

The statements are the ones the real read model issues while the real servicers build each
answer (captured as they reach the driver), explained with their own parameters. A plan whose
cost grows with the product of two tables shows as a nested loop whose inner side is not
looked up by the outer row (it is read whole for each outer row), a hash or merge join (each
side read whole, where a group's answer should read the group), or a sequential scan of a
table holding thousands of rows."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from podium.v1 import (
    challenges_pb2,
    common_pb2,
    driver_ranking_pb2,
    paths_pb2,
    tasks_pb2,
)
from sqlalchemy import Engine, event, func, select, text

import migrations
from service.adapters.database import create_database_engine
from service.adapters.tables import metadata
from service.app.ingest import Batch, apply_batch
from service.app.ports import ReadModel
from service.bootstrap import Storage
from service.domain import events as ev
from tests.api import KEY, NOW, Clock, api, channel_to, guard, query_deps
from tests.builders import RULES, challenge, meta, received, registration, trip, user
from tests.databases import empty_database

pytestmark = pytest.mark.postgresql

DRIVERS = 10_000
"""One group of this many drivers: a plan that joins it row by row against a whole table
reads 10,000 x 10,000 rows (about ten seconds), one that looks each member up reads 10,000."""
OTHER_TENANT_DRIVERS = 2_000
SMALL_GROUP = 10
BIG_TABLE_ROWS = 1_000
"""A table with at least this many rows must never be scanned whole."""
PROFILES_ARRIVED = datetime(2026, 8, 1, tzinfo=UTC)
MOVED_ARRIVED = datetime(2026, 11, 5, tzinfo=UTC)
"""After October froze (2026-11-02): October keeps the members it had, November follows."""
SAFETY = common_pb2.RANKING_TYPE_SAFETY
AUTH = (("x-api-key", KEY),)


def _world() -> Iterator[list[ev.Event]]:
    """Batches of the world the answers read: a tenant of DRIVERS drivers in one group (a few
    also in a small one, a hundred who moved after October froze), three months of trips, a
    running challenge of two groups and an ended one of none with every driver registered,
    a task and a learner; and another tenant with trips of its own."""
    yield [
        user(f"d{n}", "big", *(["small"] if n < SMALL_GROUP else []), at=PROFILES_ARRIVED)
        for n in range(DRIVERS)
    ]
    yield [user(f"d{n}", "big", "moved", at=MOVED_ARRIVED) for n in range(SMALL_GROUP, 110)] + [
        user(f"o{n}", "big", tenant="other", at=PROFILES_ARRIVED)
        for n in range(OTHER_TENANT_DRIVERS)
    ]
    for month, day in ((9, 12), (10, 15), (11, 10)):
        at = datetime(2026, month, day, 8, tzinfo=UTC)
        yield [
            trip(f"t{month}-{n}", f"d{n}", km=5 + n % 20, safety=5 + n % 50 / 10, ended_at=at)
            for n in range(DRIVERS)
        ] + [
            trip(f"o{month}-{n}", f"o{n}", ended_at=at, tenant="other")
            for n in range(OTHER_TENANT_DRIVERS)
        ]
    live = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    ended = (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
    yield [
        challenge("live", start=live[0], end=live[1], groups=("big", "small"), at=PROFILES_ARRIVED),
        challenge("ended", start=ended[0], end=ended[1], at=PROFILES_ARRIVED),
    ]
    for challenge_id, start in (("live", live[0]), ("ended", ended[0])):
        yield [
            registration(challenge_id, f"d{n}", registered_at=start - timedelta(days=1))
            for n in range(DRIVERS)
        ]
    yield [*_task(), *_learner()]


def _task() -> list[ev.Event]:
    created = datetime(2026, 11, 18, tzinfo=UTC)
    return [
        ev.Event(
            meta(at=created), ev.TaskCreated("task-1", ev.TaskType.PUSH_FAILED_TRIPS, 10, created)
        ),
        ev.Event(meta(at=created + timedelta(hours=1)), ev.TaskStarted("task-1", created)),
    ]


def _learner() -> list[ev.Event]:
    opened = datetime(2026, 11, 1, tzinfo=UTC)
    steps = (ev.Step("s1", mandatory=True), ev.Step("s2", mandatory=False))
    session = ev.PathSessionPublished("session-1", "path", "Session", opened, None, steps)
    attempt = ev.StepAttempted(
        "session-1", "d1", "s1", "a1", opened, opened + timedelta(minutes=5), 300_000, 80.0
    )
    return [
        ev.Event(meta(at=opened), session),
        ev.Event(meta(at=opened), ev.PathEnrolled("session-1", "d1", opened)),
        ev.Event(meta(at=opened + timedelta(minutes=5)), attempt),
    ]


def _fold(engine: Engine) -> None:
    storage = Storage(engine)
    for events in _world():
        for first in range(0, len(events), 10_000):
            batch = Batch(received=received(events[first : first + 10_000]))
            apply_batch(
                storage.unit_of_work,
                batch,
                rules=RULES,
                consumer_group="plans",
                now=NOW,
            )


@pytest.fixture(scope="module")
def never_analyzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The world folded into a PostgreSQL schema whose tables autovacuum may never analyze."""
    with empty_database("postgresql", tmp_path_factory.mktemp("plans")) as url:
        engine = create_database_engine(url)
        migrations.upgrade(engine)
        with engine.begin() as connection:
            for table in metadata.sorted_tables:
                connection.exec_driver_sql(
                    f"ALTER TABLE {table.name} SET (autovacuum_enabled = false)"
                )
        _fold(engine)
        yield engine
        engine.dispose()


STATEMENT_TIMEOUT_SECONDS = 2.0
"""Each of an answer's statements may run this long: a plan that joins the big group row by
row against a whole table takes about ten seconds here, one that looks members up a tenth."""


def _bounded(engine: Engine) -> Callable[..., AbstractContextManager[ReadModel]]:
    def read_models(statement_timeout: float | None = None) -> AbstractContextManager[ReadModel]:
        return Storage(engine).read(statement_timeout=STATEMENT_TIMEOUT_SECONDS)

    return read_models


class Captured:
    """The statements sent to the database while it listens (from any thread)."""

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self.statements: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in ("SELECT", "WITH"):
            with self._lock:
                self.statements.append((statement, parameters))

    def take(self) -> list[tuple[str, Any]]:
        with self._lock:
            taken, self.statements = self.statements, []
        return taken


def _month(year: int, number: int) -> common_pb2.YearMonth:
    return common_pb2.YearMonth(year=year, month_number=number)


RANKING = "/podium.v1.DriverRankingService/"
CHALLENGES = "/podium.v1.ChallengeService/"


def _calls() -> Iterator[tuple[str, str, Message]]:
    """(what, method, request) of every method, for the whole tenant and for groups, the live
    month and frozen ones, a running challenge and an ended one."""
    for group in ("", "big", "small", "moved"):
        who = group or "tenant"
        yield (
            f"GetDriverRanking {who}",
            RANKING + "GetDriverRanking",
            driver_ranking_pb2.GetDriverRankingRequest(type=SAFETY, group_label=group),
        )
        for month in (_month(2026, 11), _month(2026, 10), _month(2026, 9)):
            yield (
                f"ListMonthRanking {who} {month.month_number}",
                RANKING + "ListMonthRanking",
                driver_ranking_pb2.ListMonthRankingRequest(
                    type=SAFETY, group_label=group, month=month
                ),
            )
        driver, month = ("d10", _month(2026, 11)) if group == "moved" else ("d1", _month(2026, 10))
        yield (
            f"GetDriverRank {who}",
            RANKING + "GetDriverRank",
            driver_ranking_pb2.GetDriverRankRequest(
                type=SAFETY, group_label=group, user_id=driver, neighbors=3, month=month
            ),
        )
    for challenge_id, groups in (("live", ("", "big", "small")), ("ended", ("", "big"))):
        for group in groups:
            which = f"{challenge_id} {group or 'every group'}"
            yield (
                f"GetChallengeRanking {which}",
                CHALLENGES + "GetChallengeRanking",
                challenges_pb2.GetChallengeRankingRequest(challenge_id=challenge_id, group=group),
            )
            yield (
                f"GetChallengeRank {which}",
                CHALLENGES + "GetChallengeRank",
                challenges_pb2.GetChallengeRankRequest(
                    challenge_id=challenge_id, group=group, user_id="d1", neighbors=3
                ),
            )
            if challenge_id == "ended":
                yield (
                    f"GetChallengeProgress {which}",
                    CHALLENGES + "GetChallengeProgress",
                    challenges_pb2.GetChallengeProgressRequest(
                        challenge_id=challenge_id, group=group
                    ),
                )
    yield ("GetTask", "/podium.v1.TaskService/GetTask", tasks_pb2.GetTaskRequest(task_id="task-1"))
    for learner in ("d1", "d1@example.com"):
        yield (
            f"GetPathSessionStats {learner}",
            "/podium.v1.PathService/GetPathSessionStats",
            paths_pb2.GetPathSessionStatsRequest(session_id="session-1", user_email_or_id=learner),
        )


def _explained(engine: Engine, statement: str, parameters: Any) -> dict[str, Any]:
    with engine.connect() as connection:
        raw = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
        document = raw.scalar_one()
    plans = document if isinstance(document, list) else json.loads(document)
    plan: dict[str, Any] = plans[0]["Plan"]
    return plan


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


CONDITIONS = ("Index Cond", "Recheck Cond", "Filter", "Join Filter", "Hash Cond", "Merge Cond")


def _looks_up_by(inner: dict[str, Any], outer: dict[str, Any]) -> bool:
    """Whether the inner side's conditions name a relation of the outer side: it is then
    looked up for each outer row, not read whole each time."""
    aliases = {node["Alias"] for node in _nodes(outer) if "Alias" in node}
    conditions = [str(node[c]) for node in _nodes(inner) for c in CONDITIONS if c in node]
    return any(f"{alias}." in condition for alias in aliases for condition in conditions)


def product_shapes(plan: dict[str, Any], big: set[str]) -> list[str]:
    """What in `plan` costs the product of two tables, or a whole big table."""
    found = []
    for node in _nodes(plan):
        kind = node["Node Type"]
        relation = node.get("Relation Name", "")
        if kind == "Seq Scan" and relation in big:
            found.append(f"a sequential scan of {relation}")
        if kind in ("Index Scan", "Index Only Scan") and "Index Cond" not in node:
            found.append(f"a whole index of {relation} read ({node.get('Index Name')})")
        if kind in ("Hash Join", "Merge Join"):
            found.append(f"a {kind.lower()}: each side read whole")
        if kind == "Nested Loop":
            outer, inner = node["Plans"]
            if "Join Filter" in node:
                found.append(f"a nested loop filtering each pair ({node['Join Filter']})")
            elif not _looks_up_by(inner, outer):
                found.append("a nested loop reading its inner side whole for each outer row")
    return found


def _big_tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return {
            table.name
            for table in metadata.sorted_tables
            if connection.execute(select(func.count()).select_from(table)).scalar_one()
            >= BIG_TABLE_ROWS
        }


def _never_analyzed(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema()"
                    " AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)"
                )
            ).scalars()
        )


async def test_every_answer_is_planned_by_what_it_reads_on_a_database_never_analyzed(
    never_analyzed: Engine,
) -> None:
    engine = never_analyzed
    big = _big_tables(engine)
    assert {"driver_months", "user_groups", "users", "challenge_entries"} <= big
    captured = Captured(engine)
    problems: dict[str, list[str]] = {}
    for name, method, request in _calls():
        deps = query_deps(_bounded(engine), clock=Clock(NOW))  # each answer built afresh
        async with api(deps, guard()) as port, channel_to(port) as channel:
            captured.take()
            try:
                call: Any = channel.unary_unary(method)
                answer: bytes = await call(request.SerializeToString(), metadata=AUTH)
            except grpc.aio.AioRpcError as error:
                problems[name] = [f"answered {error.code().name}: {error.details()}"]
            else:
                assert answer, name
        statements = captured.take()
        assert statements, name
        for statement, parameters in statements:
            shapes = product_shapes(_explained(engine, statement, parameters), big)
            if shapes:
                problems.setdefault(name, []).append(f"{shapes}: {' '.join(statement.split())}")
    assert _never_analyzed(engine) == []
    assert problems == {}, "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in problems.items())


def test_the_checks_see_a_join_planned_row_by_row_against_a_whole_table(
    never_analyzed: Engine,
) -> None:
    """The shape a rebuilt database got before its reads were written to look members up."""
    statement = (
        "SELECT g.user_id, m.trips FROM user_groups g LEFT JOIN driver_months m"
        " ON m.tenant_id = g.tenant_id AND m.year = 2026 AND m.month = 11"
        " AND m.user_id = g.user_id WHERE g.tenant_id = 'acme' AND g.group_label = 'big'"
    )
    plan = _explained(never_analyzed, statement, {})
    assert product_shapes(plan, _big_tables(never_analyzed)), json.dumps(plan, indent=1)
