"""The ports' contract: the same tests on the in-memory fakes and on the SQL adapters over
SQLite and PostgreSQL. What passes here on all three is what lets the use-case tests run on
the fakes (`tests/fakes.py`) and trust the answer for the databases."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.exc import DBAPIError

import migrations
from service.adapters.database import create_database_engine
from service.adapters.tables import metadata
from service.app.ports import (
    IgnoredEntry,
    Letter,
    LetterFilter,
    LetterGone,
    OffsetMoved,
    OutboxEntry,
    TripKey,
    UnitOfWork,
)
from service.app.records import DeadLetter, IgnoredEvent, Record, Rejected
from service.app.shards import Locks, stamp
from service.app.state_versions import shard_key
from service.bootstrap import Storage
from service.domain.challenges import Challenge, Entry
from service.domain.events import (
    ChallengeTheme,
    PathSessionPublished,
    ScoreKind,
    Step,
    TaskType,
    UserUpserted,
)
from service.domain.exact import add, exact
from service.domain.paths import Attempt, Correction, LearnerState
from service.domain.ranking import Month, MonthTotals, Profile
from service.domain.standings import Tally
from service.domain.tasks import Creation, Report, TaskFacts
from service.domain.trips import StoredTrip, Tombstone, TripFacts
from service.domain.versions import Version
from tests.builders import Ports, record
from tests.databases import DATABASES, empty_database
from tests.fakes import FakePorts

AT = datetime(2026, 11, 3, 8, 30, 0, 123456, tzinfo=UTC)
HOUR = timedelta(hours=1)
V1, V2 = Version(AT, "e1"), Version(AT + HOUR, "e2")
NOVEMBER = Month(2026, 11)


# --- the ports under test --------------------------------------------------------------------


class Databases:
    """One migrated database of each kind for the module, made when first asked for and
    emptied before each test (migrating one per test would cost more than the tests)."""

    def __init__(self, stack: contextlib.ExitStack, folder: Path) -> None:
        self._stack = stack
        self._folder = folder
        self._engines: dict[str, Engine] = {}

    def empty(self, kind: str) -> Engine:
        if kind not in self._engines:
            url = self._stack.enter_context(empty_database(kind, self._folder))
            engine = create_database_engine(url)
            self._stack.callback(engine.dispose)
            migrations.upgrade(engine)
            self._engines[kind] = engine
        engine = self._engines[kind]
        with engine.begin() as c:
            for table in reversed(metadata.sorted_tables):
                c.execute(delete(table))
        return engine


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    with contextlib.ExitStack() as stack:
        yield Databases(stack, tmp_path_factory.mktemp("contract"))


@pytest.fixture(params=["fake", *DATABASES])
def ports(request: pytest.FixtureRequest, databases: Databases) -> Ports:
    if request.param == "fake":
        return FakePorts()
    return Storage(databases.empty(request.param))


@contextlib.contextmanager
def committing(ports: Ports) -> Iterator[UnitOfWork]:
    with ports.unit_of_work() as uow:
        yield uow
        uow.commit()


# --- builders --------------------------------------------------------------------------------


def profile(user_id: str, *groups: str, email: str = "", firstname: str = "") -> UserUpserted:
    return UserUpserted(
        user_id,
        email or f"{user_id}@example.com",
        firstname or user_id.title(),
        "Doe",
        user_id[:3],
        groups,
    )


def facts(trip_id: str, user_id: str = "ann", deleted: datetime | None = None) -> TripFacts:
    """A trip whose doubles have 17 significant digits, and one as small as a double gets."""
    scores = (8.123456789012345, None, 5e-324, None)
    return TripFacts(trip_id, user_id, AT, 12.345678901234567, scores, AT, deleted)


def fine(whole: int, last: int = 1) -> Decimal:
    """`whole` and a digit 10^-45 further: more digits than a double (17) or Python's default
    decimal context (28) keep, so a store keeping or adding less than exactly shows."""
    return add(Decimal(whole), Decimal(last).scaleb(-45))


def km(metres: int) -> Decimal:
    return add(Decimal(metres).scaleb(-3), Decimal(1).scaleb(-45))


def totals(trips: int, metres: int, base: int = 1) -> MonthTotals:
    """Each score kind's figures distinct, so that a tally of the wrong kind shows, and exact
    far beyond a double (`fine`), tiny ones included."""
    weighted = (fine(base * 10, 1), fine(base * 20, 2), fine(base * 30, 3), fine(base * 40, 4))
    weight = tuple(Decimal(base * n).scaleb(-300) for n in (1, 2, 3, 4))
    return MonthTotals(trips, km(metres), weighted, (weight[0], weight[1], weight[2], weight[3]))


def summed(kind: ScoreKind, *parts: MonthTotals) -> Tally:
    return MonthTotals.sum(parts).tally(kind)


def a_challenge(challenge_id: str = "c1", groups: tuple[str, ...] = ()) -> Challenge:
    return Challenge(
        challenge_id,
        f"Challenge {challenge_id}",
        ChallengeTheme.ECO_DRIVING,
        AT,
        AT + timedelta(days=7),
        groups,
        3,
        exact(19.9996),
        timedelta(days=14),
        4,
    )


def entry(user_id: str, during: int = 0, before: int = 0) -> Entry:
    tally = Tally(during, km(during * 1000), fine(during * 7), Decimal(during * 3).scaleb(-300))
    return Entry(user_id, AT, tally, Tally(before))


STEPS = (
    Step("s1"),
    Step(
        "s2",
        mandatory=False,
        due_at=AT + timedelta(days=2),
        due_after_enrollment=timedelta(hours=50),
        min_score=62.5,
        max_attempts=3,
        time_limit=timedelta(minutes=90),
        requires_correction=True,
        mandatory_replay=True,
    ),
)
SESSION = PathSessionPublished("p1", "path", "Safety basics", AT, AT + timedelta(days=9), STEPS)
ANN_P1 = ("acme", "p1", "ann")


def attempt(attempt_id: str, score: float | None = 75.5, step: str = "s1") -> Attempt:
    return Attempt(step, attempt_id, AT - HOUR, AT, 60_000, score, score is None)


def correction(attempt_id: str, score: float = 90.0) -> Correction:
    return Correction("s2", attempt_id, score, AT + HOUR)


def task(task_id: str, task_type: TaskType = TaskType.PUSH_FAILED_TRIPS) -> TaskFacts:
    return TaskFacts(
        task_id,
        Creation(task_type, 40, AT, Version(AT, f"created-{task_id}")),
        started_at=AT + HOUR,
        progress=(Report(AT + HOUR, 30), Report(AT + 2 * HOUR, 12)),
    )


def sent(offset: int, topic: str = "podium.trips") -> Record:
    """A record whose every field is worth keeping: a partition, a millisecond, binary bytes,
    a header without a value."""
    return record(
        offset,
        b"\x00\xff value",
        topic=topic,
        partition=2,
        timestamp_ms=1_793_000_000_123,
        headers=[("content-type", b"application/json"), ("trace", None)],
    )


def dead(
    offset: int, reason: str = "bad", tenant: str | None = "acme", topic: str = "podium.trips"
) -> DeadLetter:
    return DeadLetter(sent(offset, topic), Rejected(reason, tenant, f"event-{offset}"))


def ignored(
    offset: int, reason: str = "ignored", tenant: str = "acme", kind: str = "k"
) -> IgnoredEvent:
    return IgnoredEvent(sent(offset, "podium.tasks"), tenant, f"event-{offset}", kind, reason)


def letters(ports: Ports, which: LetterFilter | None = None) -> list[Letter]:
    with ports.read() as read:
        return read.dead_letters(which or LetterFilter())


def without_ids(found: list[Letter]) -> list[Letter]:
    return [replace(letter, id=0) for letter in found]


def ignored_entries(
    ports: Ports, tenant: str | None = None, kind: str | None = None, limit: int | None = None
) -> list[IgnoredEntry]:
    with ports.read() as read:
        return read.ignored_events(tenant, kind, limit)


# --- users -----------------------------------------------------------------------------------


def test_a_profile_is_read_back_with_its_version_and_its_groups_once_each(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.users.replace(
            [("acme", profile("ann", "north", "south", "north"), V1), ("other", profile("bob"), V2)]
        )
    with ports.unit_of_work() as uow:
        keys = [("acme", "ann"), ("acme", "bob"), ("other", "bob")]
        assert uow.users.versions(keys) == {("acme", "ann"): V1, ("other", "bob"): V2}
    with ports.read() as read:
        assert read.profiles("acme", None) == [Profile("ann", "Ann", "Doe", "ann")]
        assert read.profiles("acme", "north") == [Profile("ann", "Ann", "Doe", "ann")]
        assert read.profiles("acme", "east") == []


def test_replacing_a_profile_replaces_its_group_membership_whatever_the_version(
    ports: Ports,
) -> None:
    with committing(ports) as uow:
        uow.users.replace([("acme", profile("ann", "north"), V2), ("acme", profile("bob"), V1)])
    with committing(ports) as uow:
        uow.users.replace([("acme", profile("ann", "south", firstname="Annie"), V1)])
    with ports.unit_of_work() as uow:
        assert uow.users.versions([("acme", "ann")]) == {("acme", "ann"): V1}
    with ports.read() as read:
        assert read.profiles("acme", "north") == []
        assert read.profiles("acme", "south") == [Profile("ann", "Annie", "Doe", "ann")]
        assert sorted(p.user_id for p in read.profiles("acme", None)) == ["ann", "bob"]


def test_a_group_stays_known_once_a_profile_version_listed_it(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.users.record_versions(
            [
                ("acme", profile("ann", "north", "south"), V1, AT),
                ("acme", profile("ann", "east"), V2, AT + HOUR),
                ("other", profile("bob", "west"), V1, AT),
            ]
        )
    with ports.read() as read:
        assert read.known_groups("acme") == {"north", "south", "east"}
        assert read.known_groups("nobody") == frozenset()


@pytest.mark.parametrize("ports", ["fake", "postgresql"], indirect=True)
def test_two_rows_of_one_key_in_one_replace_are_refused(ports: Ports) -> None:
    """The use cases never ask for it; PostgreSQL refuses it and the fakes too (SQLite would
    keep the last, so it is not asked)."""
    with pytest.raises((ValueError, DBAPIError)), ports.unit_of_work() as uow:
        uow.users.replace([("acme", profile("ann"), V1), ("acme", profile("ann"), V2)])


# --- trips and driver months -----------------------------------------------------------------


def test_trips_are_loaded_by_key_as_saved_facts_or_tombstones(ports: Ports) -> None:
    saved: dict[TripKey, StoredTrip] = {
        ("acme", "t1"): facts("t1"),
        ("acme", "t2"): Tombstone("t2", "ann", AT),
    }
    with committing(ports) as uow:
        assert uow.trips.add_new(saved) == {}
    with ports.unit_of_work() as uow:
        keys = [("acme", "t1"), ("acme", "t2"), ("acme", "t3"), ("other", "t1")]
        assert uow.trips.load(keys) == saved


def test_new_trips_are_added_and_the_stored_ones_among_them_returned_unchanged(
    ports: Ports,
) -> None:
    """Stored before, a trip is left as it is and returned; the others are added, even with
    the same content as a stored one."""
    with committing(ports) as uow:
        uow.trips.add_new({("acme", "t1"): facts("t1"), ("acme", "t2"): facts("t2")})
    with committing(ports) as uow:
        uow.trips.add_new({("acme", "t3"): Tombstone("t3", "ann", AT)})
    with committing(ports) as uow:
        stored = uow.trips.add_new(
            {
                ("acme", "t0"): facts("t0"),
                ("acme", "t1"): facts("t1", deleted=AT),
                ("acme", "t3"): facts("t3"),
                ("acme", "t4"): facts("t4"),
                ("other", "t1"): facts("t1"),
            }
        )
        assert stored == {("acme", "t1"): facts("t1"), ("acme", "t3"): Tombstone("t3", "ann", AT)}
    with committing(ports) as uow:
        assert uow.trips.add_new({("acme", "t4"): facts("t4")}) == {("acme", "t4"): facts("t4")}
    with ports.unit_of_work() as uow:
        keys = [("acme", f"t{n}") for n in range(5)] + [("other", "t1")]
        assert uow.trips.load(keys) == {
            ("acme", "t0"): facts("t0"),
            ("acme", "t1"): facts("t1"),
            ("acme", "t2"): facts("t2"),
            ("acme", "t3"): Tombstone("t3", "ann", AT),
            ("acme", "t4"): facts("t4"),
            ("other", "t1"): facts("t1"),
        }


def test_a_changed_trip_is_replaced_whole(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.trips.add_new({("acme", "t1"): facts("t1"), ("acme", "t2"): Tombstone("t2", "ann", AT)})
    changed = {("acme", "t1"): facts("t1", deleted=AT + HOUR), ("acme", "t2"): facts("t2")}
    with committing(ports) as uow:
        uow.trips.replace(changed)
    with ports.unit_of_work() as uow:
        assert uow.trips.load([("acme", "t1"), ("acme", "t2")]) == changed


def test_the_trips_of_users_are_their_recorded_ones_deleted_included_tombstones_left_out(
    ports: Ports,
) -> None:
    with committing(ports) as uow:
        uow.trips.add_new(
            {
                ("acme", "t1"): facts("t1"),
                ("acme", "t2"): facts("t2", deleted=AT),
                ("acme", "t3"): Tombstone("t3", "ann", AT),
                ("acme", "t4"): facts("t4", "bob"),
                ("other", "t5"): facts("t5"),
            }
        )
    with ports.unit_of_work() as uow:
        found = sorted(uow.trips.of_users("acme", ["ann", "ann"]), key=lambda t: t.trip_id)
        assert found == [facts("t1"), facts("t2", deleted=AT)]
        assert uow.trips.of_users("acme", []) == []


def test_a_driver_month_delta_creates_the_month_at_zero_then_adds(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.driver_months.add({("acme", "ann", NOVEMBER): totals(2, 9_000)})
    with committing(ports) as uow:
        uow.driver_months.add(
            {
                ("acme", "ann", NOVEMBER): totals(1, 4_000, base=5),
                ("acme", "bob", NOVEMBER): totals(1, 3_000),
            }
        )
    with ports.read() as read:
        assert read.month_tallies("acme", NOVEMBER, ScoreKind.SAFETY, None) == {
            "ann": summed(ScoreKind.SAFETY, totals(2, 9_000), totals(1, 4_000, base=5)),
            "bob": summed(ScoreKind.SAFETY, totals(1, 3_000)),
        }


def test_the_driver_months_changed_after_a_version_are_found_by_their_stamp(
    ports: Ports,
) -> None:
    """Each shard of a month's version has its own range of stamps: a change is found by the
    version of its own shard, whatever the other shards' are."""
    month = "acme\x1fmonth"
    with committing(ports) as uow:
        assert uow.versions.shard_numbers([(month, 0)]) == {}
        uow.driver_months.add(
            {
                ("acme", "ann", NOVEMBER): totals(2, 9_000),
                ("acme", "bob", NOVEMBER): totals(1, 1_000),
                ("acme", "cid", NOVEMBER.previous()): totals(1, 1_000),
            },
            {
                ("acme", "ann", NOVEMBER): stamp(0, 1),
                ("acme", "bob", NOVEMBER): stamp(3, 1),
                ("acme", "cid", NOVEMBER.previous()): stamp(0, 1),
            },
        )
        uow.versions.bump({}, {(month, 0): None, (month, 3): None})
    with committing(ports) as uow:
        found = uow.versions.shard_numbers([(month, 0), (month, 3), (month, 9), ("never", 0)])
        assert found == {(month, 0): 1, (month, 3): 1}
        uow.driver_months.add(
            {
                ("acme", "bob", NOVEMBER): -totals(1, 1_000),
                ("other", "ann", NOVEMBER): totals(1, 1),
            },
            {("acme", "bob", NOVEMBER): stamp(3, 2), ("other", "ann", NOVEMBER): stamp(0, 7)},
        )
    with ports.read() as read:
        kind = ScoreKind.SAFETY
        assert read.month_changes("acme", NOVEMBER, kind, {0: 0, 3: 0}) == {
            "ann": summed(kind, totals(2, 9_000)),
            "bob": None,  # its trips were all taken away again
        }
        assert read.month_changes("acme", NOVEMBER, kind, {0: 1, 3: 1}) == {"bob": None}
        assert read.month_changes("acme", NOVEMBER, kind, {0: 0, 3: 2}) == {
            "ann": summed(kind, totals(2, 9_000))
        }
        assert read.month_changes("acme", NOVEMBER, kind, {3: 0}) == {"bob": None}
        assert read.month_changes("acme", NOVEMBER, kind, {0: 1, 3: 2}) == {}
        assert read.month_changes("acme", NOVEMBER, kind, {}) == {}


def test_a_version_counts_its_shards_and_each_shard_is_read_on_its_own(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.versions.bump({"acme": AT}, {("acme", 1): AT + HOUR, ("acme", 0): None})
        uow.versions.bump({}, {("acme", 1): AT, ("beta", 2): None})
    with ports.read() as read:
        assert read.state_versions(["acme"]) == {
            "acme": (4, AT + HOUR),
            shard_key("acme", 0): (1, None),
            shard_key("acme", 1): (2, AT + HOUR),
        }
        everything = read.state_versions()
    assert everything["beta"] == (1, None)
    assert everything[shard_key("beta", 2)] == (1, None)
    assert len(everything) == 5


def test_the_tallies_are_of_the_ranking_type_asked(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.driver_months.add({("acme", "ann", NOVEMBER): totals(2, 9_000)})
    with ports.read() as read:
        tallies = {kind: read.month_tallies("acme", NOVEMBER, kind, None) for kind in ScoreKind}
    assert tallies == {kind: {"ann": summed(kind, totals(2, 9_000))} for kind in ScoreKind}
    assert len({tally["ann"] for tally in tallies.values()}) == len(ScoreKind)


def test_a_month_whose_trips_were_all_deleted_is_left_out_of_the_tallies(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.users.replace([("acme", profile("ann", "north"), V1)])
        uow.driver_months.add(
            {
                ("acme", "ann", NOVEMBER): totals(2, 9_000),
                ("acme", "bob", NOVEMBER): totals(1, 1_000),
                ("acme", "bob", NOVEMBER.previous()): totals(1, 1_000),
                ("other", "bob", NOVEMBER): totals(1, 1_000),
            }
        )
    with committing(ports) as uow:
        uow.driver_months.add({("acme", "ann", NOVEMBER): -totals(2, 9_000)})
    with ports.read() as read:
        assert read.month_tallies("acme", NOVEMBER, ScoreKind.SAFETY, None) == {
            "bob": summed(ScoreKind.SAFETY, totals(1, 1_000))
        }
        assert read.month_tallies("acme", NOVEMBER, ScoreKind.SAFETY, "north") == {}


def test_a_groups_tallies_are_its_members_months_only(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.users.replace(
            [
                ("acme", profile("ann", "north"), V1),
                ("acme", profile("bob", "south"), V1),
                ("acme", profile("cyd", "north"), V1),
                ("other", profile("dee", "north"), V1),
            ]
        )
        uow.driver_months.add(
            {("acme", user, NOVEMBER): totals(1, 1_000) for user in ("ann", "bob", "dee", "eve")}
        )
    with ports.read() as read:
        north = read.month_tallies("acme", NOVEMBER, ScoreKind.SAFETY, "north")
        everyone = read.month_tallies("acme", NOVEMBER, ScoreKind.SAFETY, None)
    assert north == {"ann": summed(ScoreKind.SAFETY, totals(1, 1_000))}
    assert sorted(everyone) == ["ann", "bob", "dee", "eve"]


def test_a_frozen_membership_is_each_users_newest_version_that_arrived_before_it(
    ports: Ports,
) -> None:
    """Names stay today's; groups are those of the newest version among the ones that had
    arrived (an older version arriving later does not win over a newer one), and a user none
    of whose versions had arrived is placed by the one that arrived first."""
    v0, v3 = Version(AT - HOUR, "e0"), Version(AT + 3 * HOUR, "e3")
    with committing(ports) as uow:
        uow.users.record_versions(
            [
                ("acme", profile("ann", "north"), V1, AT),
                ("acme", profile("ann", "west"), v0, AT + HOUR / 2),
                ("acme", profile("ann", "south", firstname="Annie"), V2, AT + 2 * HOUR),
                ("acme", profile("bob", "north"), v3, AT + 3 * HOUR),
                ("other", profile("dee", "north"), V1, AT),
            ]
        )
        uow.users.record_versions([("acme", profile("ann", "north"), V1, AT + 9 * HOUR)])
        uow.users.replace(
            [
                ("acme", profile("ann", "south", firstname="Annie"), V2),
                ("acme", profile("bob", "north"), v3),
                ("other", profile("dee", "north"), V1),
            ]
        )
        uow.driver_months.add(
            {("acme", user, NOVEMBER): totals(1, 1_000) for user in ("ann", "bob")}
        )
        uow.challenges.put_entries([("acme", "c1", entry(u), AT) for u in ("ann", "bob")])
    early, late = AT + HOUR, AT + 4 * HOUR
    with ports.read() as read:
        assert sorted(p.user_id for p in read.profiles("acme", "north", early)) == ["ann", "bob"]
        assert sorted(read.profiles("acme", None, early), key=lambda p: p.user_id) == [
            Profile("ann", "Annie", "Doe", "ann"),
            Profile("bob", "Bob", "Doe", "bob"),
        ]
        assert read.profiles("acme", "south", early) == []
        assert sorted(read.known_groups("acme")) == ["north", "south", "west"]
        assert [p.user_id for p in read.profiles("acme", "north", late)] == ["bob"]
        assert [p.user_id for p in read.profiles("acme", "south", late)] == ["ann"]
        tallies = read.month_tallies("acme", NOVEMBER, ScoreKind.SAFETY, "north", early)
        assert sorted(tallies) == ["ann", "bob"]
        frozen = read.challenge_entries("acme", "c1", AT + HOUR, "north", early)
        assert sorted(e.user_id for e, _ in frozen) == ["ann", "bob"]
        assert [e.user_id for e, _ in read.challenge_entries("acme", "c1", late, "north")] == [
            "bob"
        ]
        # Before any version arrived, each user takes the one that arrived first: Ann's V1
        # (its copy arriving later changes nothing), Bob's only one.
        assert sorted(p.user_id for p in read.profiles("acme", "north", AT)) == ["ann", "bob"]


def test_a_user_first_heard_of_after_a_freeze_is_placed_by_the_version_that_arrived_first(
    ports: Ports,
) -> None:
    """Whatever the versions' own times; of versions that arrived first together, the newest;
    a copy of a version arriving earlier than it first did moves its arrival back."""
    older, newer = Version(AT - 5 * HOUR, "e1"), Version(AT + 5 * HOUR, "e2")
    tied_a, tied_b = Version(AT, "e3"), Version(AT, "e4")
    with committing(ports) as uow:
        uow.users.record_versions(
            [
                ("acme", profile("ann", "east", firstname="Annie"), newer, AT + 2 * HOUR),
                ("acme", profile("ann", "west"), older, AT + 3 * HOUR),
                ("acme", profile("bob", "east"), tied_a, AT + 2 * HOUR),
                ("acme", profile("bob", "west"), tied_b, AT + 2 * HOUR),
            ]
        )
        uow.users.replace(
            [
                ("acme", profile("ann", "east", firstname="Annie"), newer),
                ("acme", profile("bob", "west"), tied_b),
            ]
        )
    with ports.read() as read:
        assert read.profiles("acme", "east", AT) == [Profile("ann", "Annie", "Doe", "ann")]
        assert [p.user_id for p in read.profiles("acme", "west", AT)] == ["bob"]
    with committing(ports) as uow:
        uow.users.record_versions([("acme", profile("ann", "west"), older, AT + HOUR)])
    with ports.read() as read:
        assert sorted(p.user_id for p in read.profiles("acme", "west", AT)) == ["ann", "bob"]
        assert read.profiles("acme", "east", AT) == []
        once_both_came = AT + 2 * HOUR + timedelta(microseconds=1)
        assert [p.user_id for p in read.profiles("acme", "east", once_both_came)] == ["ann"]


# --- challenges ------------------------------------------------------------------------------


def test_a_challenge_is_loaded_with_its_version_and_its_groups_sorted(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.challenges.replace([("acme", a_challenge(groups=("south", "north")), V1)])
    published = a_challenge(groups=("north", "south"))
    with ports.unit_of_work() as uow:
        keys = [("acme", "c1"), ("acme", "c2"), ("other", "c1")]
        assert uow.challenges.load(keys) == {("acme", "c1"): (published, V1)}
    with ports.read() as read:
        assert read.challenge("acme", "c1") == published
        assert read.challenge("other", "c1") is None


def test_the_challenges_that_ended_by_a_moment_are_listed_by_tenant_then_id(
    ports: Ports,
) -> None:
    c1 = a_challenge("c1")
    later = replace(a_challenge("c0"), end_at=c1.end_at + HOUR)
    with committing(ports) as uow:
        uow.challenges.replace([("acme", c1, V1), ("acme", later, V1), ("globex", c1, V1)])
    with ports.read() as read:
        assert read.challenges_ended(c1.end_at - HOUR) == []
        ended = [("acme", "c1", c1.end_at), ("globex", "c1", c1.end_at)]
        assert read.challenges_ended(c1.end_at) == ended
        assert read.challenges_ended(later.end_at) == [("acme", "c0", later.end_at), *ended]


def test_replacing_a_challenge_replaces_its_groups_and_keeps_its_registrations(
    ports: Ports,
) -> None:
    with committing(ports) as uow:
        uow.challenges.replace([("acme", a_challenge(groups=("north",)), V1)])
        uow.challenges.put_entries([("acme", "c1", entry("ann", 2), AT)])
    republished = replace(a_challenge(groups=("west",)), title="Renamed")
    with committing(ports) as uow:
        uow.challenges.replace([("acme", republished, V2)])
    with ports.unit_of_work() as uow:
        assert uow.challenges.load([("acme", "c1")]) == {("acme", "c1"): (republished, V2)}
        assert uow.challenges.entries([("acme", "c1", "ann")]) == {
            ("acme", "c1", "ann"): (entry("ann", 2), AT)
        }


def test_entries_are_read_back_whole_with_when_their_registration_arrived(
    ports: Ports,
) -> None:
    with committing(ports) as uow:
        uow.challenges.put_entries(
            [
                ("acme", "c1", entry("ann", 2, 1), AT + HOUR),
                ("acme", "c1", replace(entry("bob"), registered_at=AT - HOUR), AT),
                ("acme", "c2", entry("ann"), AT),
            ]
        )
    with ports.unit_of_work() as uow:
        keys = [("acme", "c1", "ann"), ("acme", "c1", "bob"), ("acme", "c1", "cyd")]
        assert uow.challenges.entries(keys) == {
            ("acme", "c1", "ann"): (entry("ann", 2, 1), AT + HOUR),
            ("acme", "c1", "bob"): (replace(entry("bob"), registered_at=AT - HOUR), AT),
        }


def test_registrations_are_recorded_once_each_and_read_back_in_time_order(
    ports: Ports,
) -> None:
    early, late = (AT - HOUR, AT + HOUR), (AT, AT)
    with committing(ports) as uow:
        uow.challenges.add_registrations(
            [(("acme", "c1", "ann"), late), (("acme", "c1", "ann"), early)]
        )
        uow.challenges.add_registrations(
            [(("acme", "c1", "ann"), late), (("acme", "c1", "bob"), late)]
        )
        uow.challenges.add_registrations([(("acme", "c2", "ann"), late)])
    with ports.unit_of_work() as uow:
        keys = [("acme", "c1", "ann"), ("acme", "c1", "cyd"), ("other", "c1", "ann")]
        assert uow.challenges.registrations(keys) == {("acme", "c1", "ann"): [early, late]}
        assert uow.challenges.registrations_of("acme", "c1") == {
            "ann": [early, late],
            "bob": [late],
        }
        assert uow.challenges.registrations_of("other", "c1") == {}


def test_replacing_a_challenges_entries_removes_those_left_out(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.challenges.put_entries(
            [
                ("acme", "c1", entry("ann", 2), AT),
                ("acme", "c1", entry("bob", 1), AT),
                ("acme", "c2", entry("ann", 3), AT),
            ]
        )
    with committing(ports) as uow:
        uow.challenges.replace_entries("acme", "c1", [(entry("bob", 7), AT + HOUR)])
    with ports.unit_of_work() as uow:
        keys = [("acme", "c1", "ann"), ("acme", "c1", "bob"), ("acme", "c2", "ann")]
        assert uow.challenges.entries(keys) == {
            ("acme", "c1", "bob"): (entry("bob", 7), AT + HOUR),
            ("acme", "c2", "ann"): (entry("ann", 3), AT),
        }


def test_putting_an_entry_replaces_it_whole(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.challenges.put_entries([("acme", "c1", entry("ann", 2, 1), AT)])
    again = replace(entry("ann", 5), registered_at=AT - HOUR)
    with committing(ports) as uow:
        uow.challenges.put_entries([("acme", "c1", again, AT + HOUR)])
    with ports.unit_of_work() as uow:
        assert uow.challenges.entries([("acme", "c1", "ann")]) == {
            ("acme", "c1", "ann"): (again, AT + HOUR)
        }


def test_adding_to_entries_only_touches_stored_rows(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.challenges.put_entries([("acme", "c1", entry("ann", 2, 1), AT)])
    during = Tally(1, km(500), fine(3), Decimal(2).scaleb(-300))
    before = Tally(-1, km(-100), fine(-1), Decimal(-1).scaleb(-300))
    with committing(ports) as uow:
        uow.challenges.add_to_entries(
            {("acme", "c1", "ann"): (during, before), ("acme", "c1", "bob"): (during, before)}
        )
    stored = entry("ann", 2, 1)
    added = replace(stored, during=stored.during + during, before=stored.before + before)
    with ports.unit_of_work() as uow:
        assert uow.challenges.entries([("acme", "c1", "ann"), ("acme", "c1", "bob")]) == {
            ("acme", "c1", "ann"): (added, AT)
        }


def test_entries_of_users_only_returns_registrations_of_published_challenges(
    ports: Ports,
) -> None:
    with committing(ports) as uow:
        uow.challenges.replace([("acme", a_challenge("c1"), V1)])
        uow.challenges.put_entries(
            [
                ("acme", "c1", entry("ann", 1), AT),
                ("acme", "c2", entry("ann", 2), AT),
                ("acme", "c1", entry("bob", 3), AT),
                ("other", "c1", entry("ann", 4), AT),
            ]
        )
    with ports.unit_of_work() as uow:
        users = [("acme", "ann"), ("other", "ann")]
        assert uow.challenges.entries_of_users(users) == [("acme", "c1", entry("ann", 1))]
        assert uow.challenges.entries_of_users([]) == []
        # A tenant without any registration among a batch's users: the others' still found.
        with_unregistered = [("none", "ann"), ("acme", "bob"), ("none", "bob")]
        assert uow.challenges.entries_of_users(iter(with_unregistered)) == [
            ("acme", "c1", entry("bob", 3))
        ]
        assert uow.challenges.entries_of_users([("none", "ann")]) == []


def test_challenge_entries_are_those_arrived_before_the_bound_with_their_profiles(
    ports: Ports,
) -> None:
    with committing(ports) as uow:
        uow.users.replace([("acme", profile("ann", firstname="Annie"), V1)])
        uow.challenges.put_entries(
            [
                ("acme", "c1", entry("ann", 1), AT),
                ("acme", "c1", entry("bob", 2), AT),
                ("acme", "c1", entry("cyd", 3), AT + HOUR),
                ("acme", "c2", entry("dee", 4), AT),
            ]
        )
    with ports.read() as read:
        found = read.challenge_entries("acme", "c1", AT + HOUR, None)
    assert sorted(found, key=lambda e: e[0].user_id) == [
        (entry("ann", 1), Profile("ann", "Annie", "Doe", "ann")),
        (entry("bob", 2), Profile("bob")),
    ]


def test_a_groups_challenge_entries_are_its_members_only(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.users.replace(
            [("acme", profile("ann", "north"), V1), ("acme", profile("bob", "south"), V1)]
        )
        uow.challenges.put_entries(
            [("acme", "c1", entry(user), AT) for user in ("ann", "bob", "cyd")]
        )
    with ports.read() as read:
        north = read.challenge_entries("acme", "c1", AT + HOUR, "north")
    assert [e.user_id for e, _ in north] == ["ann"]


# --- path sessions and learners --------------------------------------------------------------


def test_a_session_is_read_back_whole_with_its_version(ports: Ports) -> None:
    undated = PathSessionPublished("p2", "path", "Undated", None, None, ())
    with committing(ports) as uow:
        uow.paths.replace_sessions([("acme", SESSION, V1), ("acme", undated, V1)])
    with ports.unit_of_work() as uow:
        keys = [("acme", "p1"), ("acme", "p2"), ("other", "p1")]
        assert uow.paths.session_versions(keys) == {("acme", "p1"): V1, ("acme", "p2"): V1}
    with ports.read() as read:
        assert read.path_session("acme", "p1") == SESSION
        assert read.path_session("acme", "p2") == undated
        assert read.path_session("other", "p1") is None


def test_replacing_a_session_replaces_its_steps(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.paths.replace_sessions([("acme", SESSION, V1)])
    shorter = replace(SESSION, name="Renamed", steps=STEPS[1:])
    with committing(ports) as uow:
        uow.paths.replace_sessions([("acme", shorter, V2)])
    with ports.unit_of_work() as uow:
        assert uow.paths.session_versions([("acme", "p1")]) == {("acme", "p1"): V2}
    with ports.read() as read:
        assert read.path_session("acme", "p1") == shorter


def test_enrollments_are_replaced_whole_a_missing_time_included(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.paths.put_enrollments({ANN_P1: (AT, None), ("acme", "p1", "bob"): (AT, AT + HOUR)})
    with committing(ports) as uow:
        uow.paths.put_enrollments({ANN_P1: (None, AT + HOUR)})
    with ports.unit_of_work() as uow:
        keys = [ANN_P1, ("acme", "p1", "bob"), ("acme", "p1", "cyd")]
        assert uow.paths.enrollments(keys) == {
            ANN_P1: (None, AT + HOUR),
            ("acme", "p1", "bob"): (AT, AT + HOUR),
        }


def test_an_attempt_is_recorded_once_and_the_first_one_stays(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.paths.put_enrollments({ANN_P1: (AT, None)})
        uow.paths.add_attempts([(ANN_P1, attempt("a1")), (ANN_P1, attempt("a1", 10.0))])
    with committing(ports) as uow:
        uow.paths.add_attempts([(ANN_P1, attempt("a1", 20.0)), (ANN_P1, attempt("a2", None))])
    with ports.read() as read:
        state = read.learner_state(*ANN_P1)
    assert state is not None
    assert state.attempts == (attempt("a1"), attempt("a2", None))


def test_a_correction_is_replaced_whole_by_its_attempt(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.paths.put_corrections([(ANN_P1, correction("a1")), (ANN_P1, correction("a2"))])
    newer = replace(correction("a1", 40.0), corrected_at=AT + 2 * HOUR)
    with committing(ports) as uow:
        uow.paths.put_corrections([(ANN_P1, newer)])
    with ports.unit_of_work() as uow:
        keys = [(*ANN_P1, "a1"), (*ANN_P1, "a2"), (*ANN_P1, "a3"), ("acme", "p1", "bob", "a1")]
        assert uow.paths.corrections(keys) == {
            (*ANN_P1, "a1"): newer,
            (*ANN_P1, "a2"): correction("a2"),
        }


def test_a_learners_state_is_their_enrollment_attempts_and_corrections_by_attempt_id(
    ports: Ports,
) -> None:
    bob = ("acme", "p1", "bob")
    with committing(ports) as uow:
        uow.paths.put_enrollments({ANN_P1: (AT, AT + HOUR), bob: (AT, None)})
        uow.paths.add_attempts(
            [(ANN_P1, attempt(a)) for a in ("a2", "a10", "a1")] + [(bob, attempt("b1"))]
        )
        uow.paths.put_corrections([(ANN_P1, correction("a2")), (ANN_P1, correction("a1"))])
        uow.paths.add_attempts([(("acme", "p2", "ann"), attempt("a3"))])
    with ports.read() as read:
        assert read.learner_state(*ANN_P1) == LearnerState(
            AT,
            AT + HOUR,
            (attempt("a1"), attempt("a10"), attempt("a2")),
            (correction("a1"), correction("a2")),
        )


def test_a_learner_without_an_enrollment_has_no_state(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.paths.add_attempts([(ANN_P1, attempt("a1"))])
        uow.paths.put_corrections([(ANN_P1, correction("a1"))])
    with ports.read() as read:
        assert read.learner_state(*ANN_P1) is None


def test_a_user_is_resolved_by_id_or_by_email_whatever_its_case(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.users.replace([("acme", profile("ann", email="Ann.Lee@Example.com"), V1)])
    with ports.read() as read:
        assert read.resolve_user("acme", "ann") == "ann"
        assert read.resolve_user("acme", "ANN.lee@example.COM") == "ann"
        assert read.resolve_user("acme", "ANN") is None
        assert read.resolve_user("other", "ann") is None
        assert read.resolve_user("other", "ann.lee@example.com") is None


def test_an_id_wins_over_another_users_email_and_the_smallest_id_over_a_shared_email(
    ports: Ports,
) -> None:
    with committing(ports) as uow:
        uow.users.replace(
            [
                ("acme", profile("x@example.com", email="someone@example.com"), V1),
                ("acme", profile("bob", email="x@example.com"), V1),
                ("acme", profile("zed", email="shared@example.com"), V1),
                ("acme", profile("amy", email="Shared@example.com"), V1),
            ]
        )
    with ports.read() as read:
        assert read.resolve_user("acme", "x@example.com") == "x@example.com"
        assert read.resolve_user("acme", "shared@example.com") == "amy"


def test_a_learner_known_only_from_an_enrollment_is_resolved_by_id_exactly(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.paths.put_enrollments({("acme", "p1", "Kim"): (AT, None)})
    with ports.read() as read:
        assert read.resolve_user("acme", "Kim") == "Kim"
        assert read.resolve_user("acme", "kim") is None
        assert read.resolve_user("other", "Kim") is None


# --- tasks -----------------------------------------------------------------------------------


def test_task_facts_are_saved_whole_and_loaded_by_key(ports: Ports) -> None:
    waiting = TaskFacts("k2", started_at=AT, progress=(Report(AT - HOUR, 3),))
    with committing(ports) as uow:
        uow.tasks.save(
            {("acme", "k1"): task("k1"), ("other", "k1"): task("k1"), ("acme", "k2"): waiting}
        )
    done = replace(task("k1"), failed_at=AT + 2 * HOUR, failure_reason="it broke")
    with committing(ports) as uow:
        uow.tasks.save({("acme", "k1"): done})
    with ports.unit_of_work() as uow:
        assert uow.tasks.load([("acme", "k1"), ("acme", "k2"), ("acme", "k3")]) == {
            ("acme", "k1"): done,
            ("acme", "k2"): waiting,
        }
    with ports.read() as read:
        assert read.task_facts("acme", "k1") == done
        assert read.task_facts("acme", "k2") == waiting
        assert read.task_facts("acme", "k3") is None


def test_pauses_are_kept_once_each_per_tenant_and_type_earliest_first(ports: Ports) -> None:
    trips, crashes = TaskType.PUSH_FAILED_TRIPS, TaskType.PUSH_FAILED_CRASHES
    with committing(ports) as uow:
        uow.tasks.add_pauses([("acme", trips, AT + HOUR), ("acme", trips, AT)])
        uow.tasks.add_pauses([("acme", trips, AT), ("acme", crashes, AT), ("other", trips, AT)])
    with ports.unit_of_work() as uow:
        assert uow.tasks.pauses([("acme", trips), ("acme", crashes), ("nobody", trips)]) == {
            ("acme", trips): [AT, AT + HOUR],
            ("acme", crashes): [AT],
        }
    with ports.read() as read:
        assert read.task_pauses("acme", trips) == [AT, AT + HOUR]
        assert read.task_pauses("nobody", trips) == []


# --- ignored events --------------------------------------------------------------------------


def test_an_ignored_event_is_kept_once_per_record(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.ignored_events.add([ignored(1), ignored(2, "first"), ignored(2, "last")], AT)
    with committing(ports) as uow:
        uow.ignored_events.add([ignored(1, "again"), ignored(2, "again")], AT + HOUR)
    entries = ignored_entries(ports)
    assert [(e.record, e.reason, e.ignored_at) for e in entries] == [
        (Record("podium.tasks", 2, 2, 0, None, b""), "last", AT),
        (Record("podium.tasks", 2, 1, 0, None, b""), "ignored", AT),
    ]
    assert [(e.tenant_id, e.event_id, e.kind) for e in entries] == [
        ("acme", "event-2", "k"),
        ("acme", "event-1", "k"),
    ]


def test_ignored_events_are_listed_newest_first_of_a_tenant_and_a_kind(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.ignored_events.add([ignored(1), ignored(2, kind="other")], AT)
    with committing(ports) as uow:
        uow.ignored_events.add([ignored(3, tenant="beta"), ignored(4)], AT)

    def offsets(
        tenant: str | None = None, kind: str | None = None, limit: int | None = None
    ) -> list[int]:
        return [e.record.offset for e in ignored_entries(ports, tenant, kind, limit)]

    assert offsets() == [4, 3, 2, 1]
    assert offsets(tenant="acme") == [4, 2, 1]
    assert offsets(kind="k") == [4, 3, 1]
    assert offsets(tenant="acme", kind="k", limit=1) == [4]
    assert offsets(limit=0) == offsets(tenant="", kind="") == [4, 3, 2, 1]
    ids = [e.id for e in ignored_entries(ports)]
    assert ids == sorted(ids, reverse=True)


# --- offsets ---------------------------------------------------------------------------------


def test_an_offset_is_stored_from_nothing_then_advanced_by_compare_and_set(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.offsets.advance("g", {("t", 0): (None, 5), ("t", 1): (None, 3)})
    with committing(ports) as uow:
        uow.offsets.advance("g", {("t", 0): (5, 9)})
    with ports.read() as read:
        assert read.stored_offsets("g") == {("t", 0): 9, ("t", 1): 3}
        assert read.stored_offsets("h") == {}


@pytest.mark.parametrize(
    "move",
    [
        {("t", 0): (4, 9)},  # from where it no longer is
        {("t", 0): (None, 9)},  # from nothing, when another consumer stored it meanwhile
        {("t", 1): (4, 9)},  # from an offset, when none is stored
        {("t", 0): (5, 9), ("t", 1): (4, 9)},  # one of two
    ],
)
def test_advancing_from_an_offset_that_is_not_stored_raises_offset_moved(
    ports: Ports, move: dict[tuple[str, int], tuple[int | None, int]]
) -> None:
    with committing(ports) as uow:
        uow.offsets.advance("g", {("t", 0): (None, 5)})
    with ports.unit_of_work() as uow, pytest.raises(OffsetMoved):
        uow.offsets.advance("g", move)
    with ports.read() as read:
        assert read.stored_offsets("g") == {("t", 0): 5}


def test_offsets_are_loaded_for_the_group_or_the_partitions_asked(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.offsets.advance("g", {("t", 0): (None, 5), ("u", 0): (None, 3)})
        uow.offsets.advance("h", {("t", 0): (None, 7)})
    with ports.unit_of_work() as uow:
        assert uow.offsets.load("g") == {("t", 0): 5, ("u", 0): 3}
        assert uow.offsets.load("g", [("t", 0), ("t", 9)]) == {("t", 0): 5}
        assert uow.offsets.load("g", []) == {}
        assert uow.offsets.load("nobody") == {}


def test_forgetting_topics_drops_their_offsets_in_the_group_only(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.offsets.advance("g", {("t", 0): (None, 5), ("t", 1): (None, 5), ("u", 0): (None, 3)})
        uow.offsets.advance("h", {("t", 0): (None, 7)})
    with committing(ports) as uow:
        uow.offsets.forget("g", ["t", "absent"])
        uow.offsets.forget("g", [])
    with ports.read() as read:
        assert read.stored_offsets("g") == {("u", 0): 3}
        assert read.stored_offsets("h") == {("t", 0): 7}


# --- dead letters ----------------------------------------------------------------------------


def test_a_dead_letter_keeps_the_whole_record_and_why_it_failed(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.dead_letters.add([dead(7, "scores.safety 42.0 is out of range")], AT)
        uow.dead_letters.add([dead(8, "UNDECODABLE", tenant=None)], AT)
    assert without_ids(letters(ports)) == [
        Letter(0, sent(7), "scores.safety 42.0 is out of range", "acme", "event-7", AT, AT, 1),
        Letter(0, sent(8), "UNDECODABLE", None, "event-8", AT, AT, 1),
    ]


def test_a_second_letter_for_the_same_record_is_ignored(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.dead_letters.add([dead(7, "first"), dead(7, "last")], AT)
    with committing(ports) as uow:
        uow.dead_letters.add([dead(7, "again"), dead(7, "again", topic="podium.tasks")], AT + HOUR)
    assert [(x.record.topic, x.reason, x.first_failed_at, x.attempts) for x in letters(ports)] == [
        ("podium.trips", "last", AT, 1),
        ("podium.tasks", "again", AT + HOUR, 1),
    ]


def test_new_letters_get_ids_above_every_stored_one_in_the_order_listed(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.dead_letters.add([dead(9), dead(3)], AT)
    with committing(ports) as uow:
        uow.dead_letters.add([dead(1)], AT)
    assert [x.record.offset for x in letters(ports)] == [9, 3, 1]


def test_a_letter_failing_again_has_the_new_reason_and_one_more_attempt(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.dead_letters.add([dead(7, "old"), dead(8, "kept")], AT)
    first, second = letters(ports)
    with committing(ports) as uow:
        uow.dead_letters.failed_again(first.id, "new", AT + HOUR)
        uow.dead_letters.failed_again(first.id + second.id + 100, "nobody's", AT + HOUR)
    assert letters(ports) == [
        replace(first, reason="new", last_failed_at=AT + HOUR, attempts=2),
        second,
    ]


def test_removing_a_letter_already_gone_raises_letter_gone(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.dead_letters.add([dead(7), dead(8)], AT)
    first, second = letters(ports)
    with committing(ports) as uow:
        uow.dead_letters.remove([first.id])
        uow.dead_letters.remove([])
    with pytest.raises(LetterGone), ports.unit_of_work() as uow:
        uow.dead_letters.remove([first.id, second.id])
    assert letters(ports) == [second]


def test_dead_letters_are_filtered_as_the_filter_says(ports: Ports) -> None:
    with committing(ports) as uow:
        uow.dead_letters.add(
            [
                dead(1, "scores.safety 42.0 is out of range"),
                dead(2, "UNDECODABLE: truncated", tenant=None),
                dead(3, "trip 't1' is already recorded", topic="podium.tasks"),
                dead(4, "undecodable too", tenant="beta", topic="podium.tasks"),
            ],
            AT,
        )
    ids = [x.id for x in letters(ports)]

    def offsets(which: LetterFilter) -> list[int]:
        return [x.record.offset for x in letters(ports, which)]

    assert offsets(LetterFilter()) == [1, 2, 3, 4]
    assert offsets(LetterFilter(ids=(ids[3], ids[0]))) == [1, 4]
    assert offsets(LetterFilter(topic="podium.tasks")) == [3, 4]
    assert offsets(LetterFilter(tenant_id="acme")) == [1, 3]
    assert offsets(LetterFilter(reason="Undecodable")) == [2, 4]
    assert offsets(LetterFilter(topic="podium.tasks", tenant_id="beta", reason="undecod")) == [4]
    assert offsets(LetterFilter(limit=2)) == [1, 2]
    assert offsets(LetterFilter(limit=0)) == [1, 2, 3, 4]
    assert offsets(LetterFilter(topic="", tenant_id="", reason="")) == [1, 2, 3, 4]


# --- state versions and service state --------------------------------------------------------


def test_a_state_version_moves_on_by_one_per_bump_keeping_its_latest_arrival(
    ports: Ports,
) -> None:
    with committing(ports) as uow:
        uow.versions.bump({"a": AT + HOUR, "b": None, "c": AT})
    with committing(ports) as uow:
        uow.versions.bump({"a": AT, "b": AT})
        uow.versions.bump({})
        uow.versions.bump({"c": None})
    with ports.read() as read:
        assert read.state_versions() == {
            "a": (2, AT + HOUR),
            "b": (2, AT),
            "c": (2, AT),
        }


def test_a_group_has_caught_up_once_marked_so(ports: Ports) -> None:
    with ports.read() as read:
        assert not read.has_caught_up("g")
    ports.mark_caught_up("g", AT)
    ports.mark_caught_up("g", AT + HOUR)
    with ports.read() as read:
        assert read.has_caught_up("g")
        assert not read.has_caught_up("h")


# --- the unit of work ------------------------------------------------------------------------


def test_a_unit_of_work_reads_its_own_writes_and_nobody_else_does_before_its_commit(
    ports: Ports,
) -> None:
    with ports.unit_of_work() as uow:
        uow.lock(Locks({"acme"}, {"beta": {3, 1}}))
        uow.users.replace([("acme", profile("ann"), V1)])
        uow.versions.bump({"acme": None})
        assert uow.users.versions([("acme", "ann")]) == {("acme", "ann"): V1}
        with ports.read() as read:
            assert (read.profiles("acme", None), read.state_versions()) == ([], {})
        uow.commit()
    with ports.read() as read:
        assert (len(read.profiles("acme", None)), read.state_versions()) == (1, {"acme": (1, None)})


def test_leaving_a_unit_of_work_without_a_commit_discards_its_writes(ports: Ports) -> None:
    with ports.unit_of_work() as uow:
        uow.versions.bump({"acme": None})
        uow.offsets.advance("g", {("t", 0): (None, 5)})
    with ports.read() as read:
        assert (read.state_versions(), read.stored_offsets("g")) == ({}, {})


def test_a_failure_inside_a_unit_of_work_discards_its_writes(ports: Ports) -> None:
    def fail() -> None:
        with ports.unit_of_work() as uow:
            uow.versions.bump({"acme": None})
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail()
    with ports.read() as read:
        assert read.state_versions() == {}


def test_writes_after_a_commit_need_a_commit_of_their_own(ports: Ports) -> None:
    with ports.unit_of_work() as uow:
        uow.versions.bump({"kept": None})
        uow.commit()
        uow.versions.bump({"kept": None, "lost": None})
        assert uow.offsets.load("g") == {}
    with ports.read() as read:
        assert read.state_versions() == {"kept": (1, None)}


def test_a_unit_of_work_is_used_inside_its_with_block_only(ports: Ports) -> None:
    uow = ports.unit_of_work()
    with pytest.raises(RuntimeError):
        uow.commit()
    with pytest.raises(RuntimeError):
        uow.lock(Locks({"acme"}))
    with uow:
        uow.lock(Locks({"acme"}))
    with pytest.raises(RuntimeError):
        uow.commit()
    with committing(ports) as again:
        again.lock(Locks(buckets={"acme": {0}}))


# --- the outbox of results ----------------------------------------------------------------------


def outbox_entry(event_id: str, tenant: str = "acme") -> OutboxEntry:
    return OutboxEntry(event_id, tenant, "month_frozen", f"2026-10/{event_id}", AT, b"\x0a\x01x")


def test_a_result_is_kept_once_by_its_event_id_and_goes_out_in_outbox_order(
    ports: Ports,
) -> None:
    with ports.results_work() as work:
        work.results.add([outbox_entry("e2"), outbox_entry("e1")], AT)
        work.commit()
    with ports.results_work() as work:
        again = replace(outbox_entry("e1", "globex"), payload=b"other")
        work.results.add([again, outbox_entry("e3")], AT + HOUR)
        work.commit()
    with ports.results_work() as work:
        assert work.results.recorded(["e1", "e3", "e9"]) == {"e1", "e3"}
        unsent = work.results.unsent(10)
    assert [e.event_id for e in unsent] == ["e2", "e1", "e3"]
    assert [e.id for e in unsent] == sorted(e.id for e in unsent)
    assert unsent[1] == replace(outbox_entry("e1"), id=unsent[1].id, recorded_at=AT)
    assert unsent[2].recorded_at == AT + HOUR


def test_a_result_marked_sent_keeps_its_first_mark_and_leaves_the_unsent(ports: Ports) -> None:
    with ports.results_work() as work:
        work.results.add([outbox_entry("e1"), outbox_entry("e2")], AT)
        work.commit()
    with ports.results_work() as work:
        first, second = work.results.unsent(10)
        work.results.mark_sent([first.id], AT + HOUR)
        work.commit()
    with ports.results_work() as work:
        work.results.mark_sent([first.id], AT + 2 * HOUR)
        work.commit()
    with ports.results_work() as work:
        assert work.results.unsent(10) == [second]
        assert work.results.unsent(0) == []
