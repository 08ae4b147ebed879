"""The outbox of results on both databases (docs/rules.md#results-out): a frozen window's
result is written once, with its final standings, whoever notices the freeze and however
often; the relay's marks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from podium.events.v1 import results_pb2
from podium.v1 import common_pb2

from service.app.results import (
    due_results,
    mark_sent,
    record_all_results,
    record_results,
    unsent_results,
)
from service.bootstrap import Storage
from service.cli import main
from service.domain.events import ScoreKind
from service.domain.ranking import Month
from service.domain.results import ChallengeWindow, MonthWindow, result_event_id
from service.result_events import encode
from tests.builders import RULES, apply, challenge, registration, trip, user

OCTOBER = Month(2026, 10)
IN_OCTOBER = datetime(2026, 10, 20, 12, tzinfo=UTC)
OCTOBER_FREEZES = datetime(2026, 11, 2, tzinfo=UTC)
BEFORE_FREEZE = OCTOBER_FREEZES - timedelta(seconds=1)


def october(storage: Storage) -> None:
    """ann ranked in west (six trips), bob not ranked (one trip), cid known with no trip;
    after October froze, ann moves to east."""
    apply(storage, user("ann", "west", at=IN_OCTOBER), user("bob", at=IN_OCTOBER))
    apply(storage, user("cid", "west", "north", at=IN_OCTOBER))
    trips = [trip(f"a{i}", "ann", km=10, safety=8.0, ended_at=IN_OCTOBER) for i in range(6)]
    apply(storage, *trips, trip("b1", "bob", km=5, safety=9.0, ended_at=IN_OCTOBER))
    apply(storage, user("ann", "east", at=OCTOBER_FREEZES + timedelta(days=3)))


def stored(storage: Storage) -> dict[str, results_pb2.ResultEvent]:
    return {
        e.event_id: results_pb2.ResultEvent.FromString(e.payload)
        for e in storage.list_results(None, False, None)
    }


def test_nothing_is_recorded_before_the_freeze_then_one_result_per_ranking_type(
    storage: Storage,
) -> None:
    apply(storage, user("ann", "west", at=IN_OCTOBER))
    apply(storage, trip("a1", "ann", ended_at=IN_OCTOBER))
    assert record_all_results(storage.results_work, RULES, BEFORE_FREEZE, encode) == 0

    assert record_all_results(storage.results_work, RULES, OCTOBER_FREEZES, encode) == 4

    results = stored(storage)
    windows = [MonthWindow("acme", OCTOBER, kind) for kind in ScoreKind]
    assert sorted(results) == sorted(result_event_id(w) for w in windows)
    kinds = {r.month_frozen.type for r in results.values()}
    assert kinds == {
        common_pb2.RANKING_TYPE_SAFETY,
        common_pb2.RANKING_TYPE_ECO_DRIVING,
        common_pb2.RANKING_TYPE_DISTRACTION,
        common_pb2.RANKING_TYPE_SPEEDING,
    }
    for result in results.values():
        assert result.tenant_id == "acme"
        assert result.occurred_at.ToDatetime(UTC) == OCTOBER_FREEZES
        assert (result.month_frozen.month.year, result.month_frozen.month.month_number) == (
            2026,
            10,
        )


def test_a_months_result_holds_its_final_standings_with_the_groups_at_the_freeze(
    storage: Storage,
) -> None:
    october(storage)

    record_all_results(storage.results_work, RULES, OCTOBER_FREEZES + timedelta(days=5), encode)

    safety = stored(storage)[result_event_id(MonthWindow("acme", OCTOBER, ScoreKind.SAFETY))]
    month = safety.month_frozen
    assert [(d.user_id, d.rank, d.score, d.distance_km, d.trips) for d in month.ranked] == [
        ("ann", 1, 8.0, 60.0, 6)
    ]
    assert list(month.ranked[0].groups) == ["west"]  # as October froze, not today's east
    assert [(d.user_id, d.trips, d.HasField("score")) for d in month.not_ranked] == [
        ("bob", 1, True),
        ("cid", 0, False),
    ]
    assert list(month.not_ranked[1].groups) == ["north", "west"]
    eco = stored(storage)[result_event_id(MonthWindow("acme", OCTOBER, ScoreKind.ECO_DRIVING))]
    assert [d.user_id for d in eco.month_frozen.ranked] == []  # no trip carries that score


def test_a_freeze_noticed_again_by_another_instance_or_after_a_restart_adds_nothing(
    storage: Storage,
) -> None:
    october(storage)
    first = record_all_results(storage.results_work, RULES, OCTOBER_FREEZES, encode)
    before = storage.list_results(None, False, None)

    again = record_results(
        storage.results_work, RULES, OCTOBER_FREEZES + timedelta(days=30), encode, limit=8
    )

    assert (first, again) == (4, [])
    assert storage.list_results(None, False, None) == before


def test_an_event_arriving_after_the_freeze_shows_it_whatever_the_clock_says(
    storage: Storage,
) -> None:
    october(storage)  # its last event arrived on 5 November, after October froze

    recorded = record_results(storage.results_work, RULES, IN_OCTOBER, encode, limit=8)

    assert len(recorded) == 4


def test_a_challenge_freezes_into_one_result_with_its_ranking_progress_and_counters(
    storage: Storage,
) -> None:
    start, end = datetime(2026, 10, 10, tzinfo=UTC), datetime(2026, 10, 17, tzinfo=UTC)
    apply(storage, user("ann", "west", at=start), user("bob", at=start))
    apply(storage, challenge("c1", start=start, end=end, pre_min_trips=1, at=start))
    apply(
        storage,
        registration("c1", "ann", registered_at=start),
        registration("c1", "bob", registered_at=start),
    )
    apply(
        storage,
        trip("before", "ann", km=10, safety=6.0, ended_at=start - timedelta(days=1)),
        trip("during", "ann", km=10, safety=9.0, ended_at=start + timedelta(days=1)),
    )
    freezes = end + RULES.late_event_grace
    record_all_results(storage.results_work, RULES, freezes - timedelta(seconds=1), encode)
    assert result_event_id(ChallengeWindow("acme", "c1")) not in stored(storage)

    record_all_results(storage.results_work, RULES, freezes, encode)

    result = stored(storage)[result_event_id(ChallengeWindow("acme", "c1"))]
    frozen = result.challenge_frozen
    assert result.occurred_at.ToDatetime(UTC) == freezes
    assert frozen.challenge_id == "c1"
    assert [(u.user_id, u.rank, u.score, list(u.groups)) for u in frozen.ranked] == [
        ("ann", 1, 9.0, ["west"])
    ]
    assert [u.user_id for u in frozen.not_ranked] == ["bob"]
    assert [(p.user_id, p.score_evolution) for p in frozen.progress] == [("ann", 3.0)]
    counters = (
        frozen.registered_users,
        frozen.ranked_users,
        frozen.users_with_data_before,
        frozen.total_distance_km,
        frozen.total_trips,
    )
    assert counters == (2, 1, 1, 10.0, 1)


def test_results_go_out_in_outbox_order_and_a_marked_one_is_not_sent_again(
    storage: Storage,
) -> None:
    october(storage)
    record_all_results(storage.results_work, RULES, OCTOBER_FREEZES, encode)
    pending = unsent_results(storage.results_work, 100)
    assert [e.id for e in pending] == sorted(e.id for e in pending)
    assert len(pending) == 4

    sent_at = OCTOBER_FREEZES + timedelta(minutes=1)
    mark_sent(storage.results_work, [pending[0].id, pending[1].id], sent_at)
    mark_sent(storage.results_work, [pending[0].id], sent_at + timedelta(hours=1))

    assert unsent_results(storage.results_work, 100) == pending[2:]
    listed = storage.list_results("acme", False, None)
    assert [e.sent_at for e in listed] == [sent_at, sent_at, None, None]
    assert storage.list_results("acme", True, 1) == pending[2:3]
    assert storage.list_results("globex", False, None) == []


def test_podium_results_list_shows_the_outbox_with_each_result(
    storage: Storage, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    october(storage)
    record_all_results(storage.results_work, RULES, OCTOBER_FREEZES, encode)
    first = unsent_results(storage.results_work, 1)[0]
    mark_sent(storage.results_work, [first.id], OCTOBER_FREEZES + timedelta(minutes=1))

    assert main(["results", "list", "--json"], env={"DATABASE_URL": database_url}) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(listed) == 4
    assert listed[0]["eventId"] == first.event_id
    assert listed[0]["sentAt"] == "2026-11-02T00:01:00+00:00"
    assert [entry["sentAt"] for entry in listed[1:]] == [None, None, None]
    assert {entry["window"] for entry in listed} == {f"2026-10/{kind.name}" for kind in ScoreKind}
    assert listed[0]["result"]["monthFrozen"]["month"] == {"year": 2026, "monthNumber": 10}

    assert main(["results", "list", "--unsent"], env={"DATABASE_URL": database_url}) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(line.split("\t")[1:3] == ["acme", "month_frozen"] for line in lines)
    assert all(line.endswith("\tunsent") for line in lines)


def test_the_results_due_are_read_without_recording_any(storage: Storage) -> None:
    apply(storage, user("ann", "west", at=IN_OCTOBER), trip("a1", "ann", ended_at=IN_OCTOBER))
    with storage.read() as read:
        assert due_results(read, RULES, BEFORE_FREEZE) == set()
        due = due_results(read, RULES, OCTOBER_FREEZES)

    assert due == {result_event_id(MonthWindow("acme", OCTOBER, kind)) for kind in ScoreKind}
    assert storage.list_results(None, False, None) == []
