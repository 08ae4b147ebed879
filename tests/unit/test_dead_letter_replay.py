"""Dead letters listed and replayed through the use cases (`service.app.dead_letters`), on the
fakes; `podium dlq` itself is tested on both databases in tests/integration/test_operator_cli.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumers.runs import decode_record, split
from service.app.dead_letters import list_letters, replay
from service.app.ingest import Applied, Batch, apply_batch
from service.app.ports import Letter, LetterFilter, LetterGone
from service.app.records import DeadLetter, Record, Rejected
from service.app.shards import Buckets
from service.logs import describe
from tests.builders import RULES, TOPICS, consume, record, trip_envelope
from tests.fakes import FakePorts

NOW = datetime(2026, 11, 20, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
STAMP = int(NOW.timestamp() * 1000)
"""When the records of these tests were written to their topic."""


def listed(ports: FakePorts, which: LetterFilter | None = None) -> list[Letter]:
    with ports.read() as read:
        return list_letters(read, which or LetterFilter())


def replayed(ports: FakePorts, letters: list[Letter]) -> Applied:
    return replay(
        ports.unit_of_work,
        letters,
        lambda r: decode_record(r, TOPICS),
        describe,
        rules=RULES,
        consumer_group="podium",
        now=LATER,
        buckets=Buckets(4),
    )


def test_a_bad_event_is_listed_and_replaying_it_unchanged_keeps_it(ports: FakePorts) -> None:
    broken = trip_envelope("bad", "ann", safety=8.0)
    broken.trip_completed.scores.safety = 42.0
    consume(
        ports,
        record(7, broken.SerializeToString(), timestamp_ms=STAMP),
        record(8, b"\x00garbage", timestamp_ms=STAMP),
        now=NOW,
    )

    letters = listed(ports)
    assert [(x.record.topic, x.record.offset, x.tenant_id, x.attempts) for x in letters] == [
        ("podium.trips", 7, "acme", 1),
        ("podium.trips", 8, None, 1),
    ]
    assert letters[0].reason == "scores.safety 42.0 is out of range [0, 10]"
    undecodable = listed(ports, LetterFilter(reason="UNDECODABLE"))
    assert [x.record.offset for x in undecodable] == [8]
    assert len(listed(ports, LetterFilter(tenant_id="acme"))) == 1

    outcome = replayed(ports, letters[:1])
    assert [d.record.id for d in outcome.dead_lettered] == [letters[0].record.id]
    again = listed(ports)
    assert [(x.record.offset, x.attempts) for x in again] == [(7, 2), (8, 1)]
    assert again[0].reason == letters[0].reason
    assert (again[0].first_failed_at, again[0].last_failed_at) == (NOW, LATER)
    assert ports.state.trips == {}


def test_a_valid_event_in_the_store_is_applied_exactly_once_on_replay(ports: FakePorts) -> None:
    # As after a bug that has since been fixed: a sound event sits in the store.
    sound = record(3, trip_envelope("t1", "ann").SerializeToString(), timestamp_ms=STAMP)
    with ports.unit_of_work() as uow:
        uow.dead_letters.add([DeadLetter(sound, Rejected("a bug, since fixed", "acme", "x"))], NOW)
        uow.commit()

    letters = listed(ports, LetterFilter(topic="podium.trips"))
    outcome = replayed(ports, letters)
    assert (outcome.folded, outcome.dead_lettered) == (1, ())
    assert list(ports.state.trips) == [("acme", "t1")]
    assert listed(ports) == []

    assert replayed(ports, listed(ports, LetterFilter(topic="podium.trips"))).folded == 0
    assert list(ports.state.trips) == [("acme", "t1")]


def test_a_letter_another_replay_applied_first_is_not_applied_again(ports: FakePorts) -> None:
    sound = record(3, trip_envelope("t1", "ann").SerializeToString(), timestamp_ms=STAMP)
    with ports.unit_of_work() as uow:
        uow.dead_letters.add([DeadLetter(sound, Rejected("a bug, since fixed", "acme", "x"))], NOW)
        uow.commit()
    letters = listed(ports)
    replayed(ports, letters)
    state, commits = ports.state, ports.commits

    with pytest.raises(LetterGone):
        replayed(ports, letters)  # the same listing, replayed again
    assert (ports.state, ports.commits) == (state, commits)


def _unfoldable_letters_kept(ports: FakePorts) -> list[Record]:
    """Two valid trip records (offsets 7 and 8), kept as letters whose fold failed once."""
    valid = [
        record(n, trip_envelope(f"t{n}", "ann").SerializeToString(), timestamp_ms=STAMP)
        for n in (7, 8)
    ]
    received, _ = split(valid, TOPICS)
    kept = [
        DeadLetter(
            item.record, Rejected("cannot be folded: a lost disk", "acme", "e", "unfoldable")
        )
        for item in received
    ]
    apply_batch(ports.unit_of_work, Batch(dead=kept), rules=RULES, consumer_group="podium", now=NOW)
    return valid


def test_a_replay_keeps_the_letters_whose_fold_still_fails_and_applies_the_others(
    ports: FakePorts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the consumer loop does (`apply_isolating`): the records a failing batch is at fault
    for are found by dry runs and stay, with the fold's error as their new reason."""
    valid = _unfoldable_letters_kept(ports)
    still_failing = valid[0].id

    def folding_all_but_one(unit_of_work: object, batch: Batch, **options: object) -> Applied:
        if any(item.record.id == still_failing for item in batch.received):
            raise OverflowError("int too large to convert")
        return apply_batch(unit_of_work, batch, **options)  # type: ignore[arg-type]

    monkeypatch.setattr("service.app.dead_letters.apply_batch", folding_all_but_one)
    outcome = replayed(ports, listed(ports))

    assert [d.record.id for d in outcome.dead_lettered] == [still_failing]
    [left] = listed(ports)
    assert (left.record.offset, left.attempts) == (7, 2)
    assert left.reason == "cannot be folded: OverflowError: int too large to convert"
    assert set(ports.state.trips) == {("acme", "t8")}


def test_a_replay_whose_every_letter_still_fails_keeps_them_all_and_stalls_nothing(
    ports: FakePorts, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unfoldable_letters_kept(ports)

    def folding_none(unit_of_work: object, batch: Batch, **options: object) -> Applied:
        if batch.received:
            raise OverflowError("int too large to convert")
        return apply_batch(unit_of_work, batch, **options)  # type: ignore[arg-type]

    monkeypatch.setattr("service.app.dead_letters.apply_batch", folding_none)
    outcome = replayed(ports, listed(ports))

    assert sorted(d.record.offset for d in outcome.dead_lettered) == [7, 8]
    assert [(x.record.offset, x.attempts) for x in listed(ports)] == [(7, 2), (8, 2)]
    assert ports.state.trips == {}
