"""Finding the records a failing batch is at fault for (`service.app.ingest`): dry runs split
the batch until the culprits are found; they become dead letters and the rest is applied once.
The consumer loop and a dead-letter replay both go through here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from service.app.ingest import Applied, Batch, Unresolvable, apply_isolating, find_poison
from service.app.ports import LetterGone, OffsetMoved, StorageUnavailable
from service.app.records import DeadLetter, Received, Record, Rejected
from service.domain import events as ev
from service.logs import describe


def failing_with(*bad: int, together: tuple[int, ...] = ()) -> Callable[[Sequence[int]], None]:
    """A dry run that fails when it holds any of `bad`, or all of `together`."""

    def attempt(items: Sequence[int]) -> None:
        for item in items:
            if item in bad:
                raise ValueError(f"item {item} is bad")
        if together and set(together) <= set(items):
            raise ValueError("these two together")

    return attempt


def test_the_culprits_are_found_each_with_why() -> None:
    items = list(range(10))
    assert find_poison(items, failing_with(3, 8), describe) == [
        (3, "ValueError: item 3 is bad"),
        (8, "ValueError: item 8 is bad"),
    ]


def test_records_that_fail_only_together_leave_the_one_that_arrived_last() -> None:
    items = list(range(8))
    found = find_poison(items, failing_with(together=(1, 6)), describe)
    assert found == [(6, "ValueError: these two together")]


def test_a_batch_failing_without_its_records_or_with_every_record_is_unresolvable() -> None:
    def always(items: Sequence[int]) -> None:
        raise ValueError("the schema is broken")

    with pytest.raises(Unresolvable, match="a batch without records fails too"):
        find_poison([1, 2], always, describe)
    with pytest.raises(Unresolvable, match="every record of the batch fails"):
        find_poison([1, 2], failing_with(1, 2), describe)


@pytest.mark.parametrize("error", [OffsetMoved("moved"), StorageUnavailable("gone"), LetterGone()])
def test_a_failure_that_is_not_the_records_is_passed_on_not_isolated(error: Exception) -> None:
    def attempt(items: Sequence[int]) -> None:
        if items:
            raise error

    with pytest.raises(type(error)):
        find_poison([1, 2, 3], attempt, describe)


MOMENT = datetime(2026, 11, 20, tzinfo=UTC)


def received(offset: int) -> Received:
    record = Record("podium.trips", 0, offset, 0, b"ann", b"")
    meta = ev.Meta("acme", f"e{offset}", MOMENT, MOMENT)
    return Received(ev.Event(meta, ev.TripDeleted(f"t{offset}", "ann")), record)


@dataclass
class FakeFold:
    """Folds a batch unless it holds a bad offset; keeps what it committed."""

    bad: set[int]
    committed: list[Batch] = field(default_factory=list)
    dry_runs: int = 0

    def __call__(self, batch: Batch, dry_run: bool) -> Applied:
        if any(item.record.offset in self.bad for item in batch.received):
            raise OverflowError("int too large to convert")
        if dry_run:
            self.dry_runs += 1
        else:
            self.committed.append(batch)
        return Applied(len(batch.received), tuple(batch.dead))


def test_the_culprits_become_unfoldable_dead_letters_and_the_rest_is_applied_once() -> None:
    fold = FakeFold(bad={2})
    undecodable = DeadLetter(
        Record("podium.trips", 0, 9, 0, None, b"x"), Rejected("bad bytes", "", "", "undecodable")
    )
    batch = Batch(received=[received(n) for n in range(4)], dead=[undecodable])
    applied = apply_isolating(fold, batch, describe)
    [once] = fold.committed
    assert [item.record.offset for item in once.received] == [0, 1, 3]
    assert [d.record.offset for d in once.dead] == [9, 2]
    letter = once.dead[1].rejection
    assert (letter.kind, letter.tenant_id, letter.event_id) == ("unfoldable", "acme", "e2")
    assert letter.reason == "cannot be folded: OverflowError: int too large to convert"
    assert applied.dead_lettered == tuple(once.dead)
    assert fold.dry_runs > 0


def test_a_batch_that_folds_is_applied_as_it_is_and_a_dry_run_stays_one() -> None:
    fold = FakeFold(bad=set())
    batch = Batch(received=[received(n) for n in range(3)])
    apply_isolating(fold, batch, describe)
    assert fold.committed == [batch]
    fold = FakeFold(bad={1})
    apply_isolating(fold, batch, describe, dry_run=True)
    assert fold.committed == []


def test_every_record_may_fail_when_the_caller_says_so() -> None:
    """A dead-letter replay: its letters stay in the store, no stream would be emptied."""
    assert find_poison([1, 2], failing_with(1, 2), describe, every_record_may_fail=True) == [
        (0, "ValueError: item 1 is bad"),
        (1, "ValueError: item 2 is bad"),
    ]
