"""Which profile version places a user in a frozen window's groups
(docs/rules.md#arrival-time-and-freezes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.domain.membership import ProfileVersion, version_at_freeze
from service.domain.versions import Version

FREEZE = datetime(2026, 11, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)


def version(
    groups: str, *, occurred: datetime, arrived: datetime, event: str = "e"
) -> ProfileVersion:
    return ProfileVersion(Version(occurred, event), arrived, frozenset(groups.split()))


def test_the_newest_version_that_arrived_before_the_freeze_places_the_user() -> None:
    west = version("west", occurred=FREEZE - 9 * HOUR, arrived=FREEZE - 8 * HOUR)
    east = version("east", occurred=FREEZE - 5 * HOUR, arrived=FREEZE - HOUR)
    older_but_later = version("south", occurred=FREEZE - 20 * HOUR, arrived=FREEZE - HOUR / 2)
    assert version_at_freeze([east, older_but_later, west], FREEZE) == east


def test_a_user_who_moved_after_the_freeze_stays_where_they_were() -> None:
    west = version("west", occurred=FREEZE - 9 * HOUR, arrived=FREEZE - 8 * HOUR)
    north = version("north", occurred=FREEZE + HOUR, arrived=FREEZE + HOUR)
    at_the_freeze = version("south", occurred=FREEZE, arrived=FREEZE)
    assert version_at_freeze([north, at_the_freeze, west], FREEZE) == west


def test_a_user_first_heard_of_after_the_freeze_takes_the_version_that_arrived_first() -> None:
    """A catalog backfilled after the freeze: the first version to arrive places the user,
    whatever the versions' own times."""
    first = version("east", occurred=FREEZE + 30 * HOUR, arrived=FREEZE + 2 * HOUR)
    older = version("west", occurred=FREEZE - 30 * HOUR, arrived=FREEZE + 3 * HOUR)
    newer = version("north", occurred=FREEZE + 40 * HOUR, arrived=FREEZE + 4 * HOUR)
    assert version_at_freeze([newer, older, first], FREEZE) == first


def test_of_versions_that_arrived_first_together_the_newest_places_the_user() -> None:
    """What Podium held once those had arrived: the newest by its time, then its event id."""
    same = FREEZE + HOUR
    a = version("east", occurred=FREEZE - HOUR, arrived=same, event="e1")
    b = version("west", occurred=FREEZE - HOUR, arrived=same, event="e2")
    c = version("north", occurred=FREEZE - 2 * HOUR, arrived=same, event="e3")
    assert version_at_freeze([b, c, a], FREEZE) == b


def test_a_user_without_versions_has_none() -> None:
    assert version_at_freeze([], FREEZE) is None
