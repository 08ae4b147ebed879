"""The operator's tools for what ingest set aside, through `podium dlq` and `podium ignored`,
on both databases (the replay's orchestration is tested on the fakes, in
tests/unit/test_dead_letter_replay.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from service.adapters.tables import dead_letters, trips
from service.app.records import DeadLetter, Rejected
from service.bootstrap import Storage
from service.cli import main
from service.domain import events as ev
from tests.builders import T0, apply, consume, meta, record, trip_envelope

NOW = datetime(2026, 11, 20, tzinfo=UTC)
STAMP = int(NOW.timestamp() * 1000)
"""When the records of these tests were written to their topic."""


def podium(database_url: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv), env={"DATABASE_URL": database_url})
    return code, capsys.readouterr().out


def trip_count(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(trips)).scalar_one())


def test_a_bad_event_is_listed_and_replaying_it_unchanged_keeps_it(
    storage: Storage, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = trip_envelope("bad", "ann", safety=8.0)
    broken.trip_completed.scores.safety = 42.0
    consume(
        storage,
        record(7, broken.SerializeToString(), timestamp_ms=STAMP),
        record(8, b"\x00garbage", timestamp_ms=STAMP),
        now=NOW,
    )

    code, out = podium(database_url, capsys, "dlq", "list", "--json")
    letters = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(x["topic"], x["offset"], x["tenantId"], x["attempts"]) for x in letters] == [
        ("podium.trips", 7, "acme", 1),
        ("podium.trips", 8, None, 1),
    ]
    assert letters[0]["reason"] == "scores.safety 42.0 is out of range [0, 10]"

    code, out = podium(database_url, capsys, "dlq", "list", "--json", "--reason", "UNDECODABLE")
    assert [json.loads(line)["offset"] for line in out.splitlines()] == [8]
    code, out = podium(database_url, capsys, "dlq", "list", "--tenant", "acme")
    assert len(out.splitlines()) == 1

    code, out = podium(database_url, capsys, "dlq", "replay", str(letters[0]["id"]))
    assert code == 1
    assert out.split() == [str(letters[0]["id"]), "still", "failing"]
    code, out = podium(database_url, capsys, "dlq", "list", "--json")
    again = [json.loads(line) for line in out.splitlines()]
    assert [(x["offset"], x["attempts"]) for x in again] == [(7, 2), (8, 1)]
    assert again[0]["reason"] == letters[0]["reason"]
    assert trip_count(storage.engine) == 0


def test_a_valid_event_in_the_store_is_applied_exactly_once_on_replay(
    storage: Storage, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # As after a bug that has since been fixed: a sound event sits in the store.
    sound = record(3, trip_envelope("t1", "ann").SerializeToString(), timestamp_ms=STAMP)
    with storage.unit_of_work() as uow:
        uow.dead_letters.add([DeadLetter(sound, Rejected("a bug, since fixed", "acme", "x"))], NOW)
        uow.commit()
    engine = storage.engine

    code, out = podium(database_url, capsys, "dlq", "replay", "--topic", "podium.trips")
    assert code == 0
    assert out.split()[1:] == ["applied"]
    assert trip_count(engine) == 1
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(dead_letters)).scalar_one() == 0

    code, out = podium(database_url, capsys, "dlq", "replay", "--topic", "podium.trips")
    assert (code, out) == (0, "")
    assert trip_count(engine) == 1


def test_a_dry_run_replay_says_what_would_happen_and_changes_nothing(
    storage: Storage, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sound = record(3, trip_envelope("t1", "ann").SerializeToString(), timestamp_ms=STAMP)
    broken = trip_envelope("bad", "ann", safety=8.0)
    broken.trip_completed.scores.safety = 42.0
    with storage.unit_of_work() as uow:
        uow.dead_letters.add([DeadLetter(sound, Rejected("a bug, since fixed", "acme", "x"))], NOW)
        uow.commit()
    consume(storage, record(7, broken.SerializeToString(), timestamp_ms=STAMP), now=NOW)
    code, out = podium(database_url, capsys, "dlq", "list", "--json")
    before = [json.loads(line) for line in out.splitlines()]

    code, out = podium(database_url, capsys, "dlq", "replay", "--dry-run", "--json")
    assert code == 1  # one would still fail
    planned = [json.loads(line) for line in out.splitlines()]
    assert [(x["outcome"], x["dryRun"]) for x in planned] == [
        ("would apply", True),
        ("would fail", True),
    ]
    assert planned[1]["reason"] == "scores.safety 42.0 is out of range [0, 10]"
    code, out = podium(database_url, capsys, "dlq", "list", "--json")
    assert [json.loads(line) for line in out.splitlines()] == before  # attempts included
    assert trip_count(storage.engine) == 0

    code, out = podium(database_url, capsys, "dlq", "replay", "--json")
    done = [json.loads(line) for line in out.splitlines()]
    assert [(x["id"], x["outcome"], x["dryRun"]) for x in done] == [
        (before[0]["id"], "applied", False),
        (before[1]["id"], "still failing", False),
    ]
    assert trip_count(storage.engine) == 1


def test_an_operator_lists_the_ignored_events(
    storage: Storage, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def event(payload: ev.Payload) -> ev.Event:
        return ev.Event(meta("acme"), payload)

    apply(
        storage,
        event(ev.TaskCreated("k1", ev.TaskType.PUSH_FAILED_TRIPS, 5, T0)),
        event(ev.TaskCompleted("k1", T0)),
    )
    failed = ev.TaskFailed("k1", T0 + timedelta(hours=1), "too late")
    apply(storage, event(ev.TaskProgressed("k1", 3)), event(failed))
    code, out = podium(database_url, capsys, "ignored", "list", "--json", "--tenant", "acme")
    assert code == 0
    listed = [json.loads(line) for line in out.splitlines()]
    assert [(x["kind"], x["tenantId"]) for x in listed] == [("terminal_state", "acme")] * 2
    assert (
        listed[0]["reason"] == "task is COMPLETED since 2026-11-10T12:00:00+00:00, a terminal state"
    )
